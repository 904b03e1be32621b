"""The analysis of a linear system M·x = b, in words a person can check by hand.

Numbers come from the SVD (rank, minimum-norm solution, nullspace); the general solution is
spelled out from the reduced row echelon form in exact fractions, so the tutorial's puzzle
reads "A = 7 - D, B = 2 + D, C = 1 + D" rather than a basis of floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np


def analyse(matrix: np.ndarray, rhs: np.ndarray, variables: Sequence[str],
            rcond: float = 1e-12) -> dict[str, Any]:
    """rank, consistent, min_norm, nullspace, residual_norm, general (text), family."""
    _, s, vt = np.linalg.svd(matrix)
    tol = rcond * (s[0] if s.size else 0.0) * max(matrix.shape)
    rank = int(np.sum(s > tol))
    min_norm = np.linalg.pinv(matrix, rcond=rcond) @ rhs
    residual = float(np.linalg.norm(matrix @ min_norm - rhs))
    consistent = residual <= 1e-9 * max(1.0, float(np.linalg.norm(rhs)))
    nullspace = vt[rank:]
    # An inconsistent system's least-squares solutions solve the normal equations.
    a, b = (matrix, rhs) if consistent else (matrix.T @ matrix, matrix.T @ rhs)
    return {
        "rank": rank,
        "consistent": bool(consistent),
        "min_norm": min_norm.tolist(),
        "nullspace": nullspace.tolist(),
        "residual_norm": residual,
        "family": bool(nullspace.shape[0] > 0),
        "general": general_solution(a, b, variables),
    }


def _exact(value: float) -> Fraction:
    # The decimal a person wrote (0.1 stays 1/10), not the binary float's expansion.
    return Fraction(repr(float(value)))


def _rref(rows: list[list[Fraction]], n: int) -> tuple[list[list[Fraction]], list[int]]:
    pivots: list[int] = []
    r = 0
    for c in range(n):
        pivot = next((i for i in range(r, len(rows)) if rows[i][c] != 0), None)
        if pivot is None:
            continue
        rows[r], rows[pivot] = rows[pivot], rows[r]
        lead = rows[r][c]
        rows[r] = [v / lead for v in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][c] != 0:
                k = rows[i][c]
                rows[i] = [a - k * b for a, b in zip(rows[i], rows[r], strict=True)]
        pivots.append(c)
        r += 1
        if r == len(rows):
            break
    return rows, pivots


def _number(q: Fraction) -> str:
    if q.denominator == 1:
        return str(q.numerator)
    as_float = float(q)
    text = f"{as_float:.10g}"
    return text if Fraction(text) == q else f"{q.numerator}/{q.denominator}"


def general_solution(matrix: np.ndarray, rhs: np.ndarray, variables: Sequence[str]) -> str:
    """'A = 7 - D, B = 2 + D, C = 1 + D' (free variables on the right), or 'A = 1, B = 2'.

    Exact for coefficients written as short decimals; where floating point made the
    elimination inexact, the rank from the SVD above is the one to trust.
    """
    n = len(variables)
    rows = [[_exact(v) for v in row] + [_exact(b)] for row, b in zip(matrix, rhs, strict=True)]
    rows, pivots = _rref(rows, n)
    free = [c for c in range(n) if c not in pivots]
    parts = []
    for r, p in enumerate(pivots):
        terms = [_number(rows[r][n])] if rows[r][n] != 0 else []
        for f in free:
            k = -rows[r][f]
            if k == 0:
                continue
            mag = "" if abs(k) == 1 else f"{_number(abs(k))}*"
            sign = "-" if k < 0 else "+"
            terms.append(f"{sign} {mag}{variables[f]}" if terms else
                         f"{'-' if k < 0 else ''}{mag}{variables[f]}")
        parts.append(f"{variables[p]} = {' '.join(terms) if terms else '0'}")
    if free:
        parts.append(f"{', '.join(variables[f] for f in free)} free")
    return ", ".join(parts)
