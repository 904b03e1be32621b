"""The analysis of a linear system M·x = b, in words a person can check by hand.

Numbers come from the SVD (rank, minimum-norm solution, nullspace); the general solution is
spelled out from the reduced row echelon form in exact fractions, so the tutorial's puzzle
reads "A = 7 - D, B = 2 + D, C = 1 + D" rather than a basis of floats.

Both are bounded before they start. The SVD is the thin one for tall systems (the full U of
100,000 equations is 74.5 GiB). Exact elimination costs about m·(n+1)·min(m, n) operations
on fractions whose digits grow as it goes (a dense 60×60 system of short decimals took 5 s):
beyond EXACT_BUDGET the general solution is not spelled out, and a note says why; rank,
min_norm and nullspace, from the SVD, are always there.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

# Fraction operations of the exact elimination: about a second for a dense 36×36 system of
# short decimals, and any puzzle a person writes by hand.
EXACT_BUDGET = 50_000


def exact_cost(rows: int, columns: int) -> int:
    """Operations of Gauss-Jordan elimination on a rows × (columns + 1) augmented matrix."""
    return rows * (columns + 1) * min(rows, columns)


def analyse(matrix: np.ndarray, rhs: np.ndarray, variables: Sequence[str],
            rcond: float = 1e-12) -> dict[str, Any]:
    """rank, consistent, min_norm, nullspace, residual_norm, general (text), family; and note
    (why general is None) where the exact elimination is beyond its budget."""
    m, n = matrix.shape
    # vt must be n×n to hold the nullspace; U is never needed, and only a wide system
    # (m < n) needs the full SVD for that, which then costs m×m (m < n <= MAX_VARIABLES).
    u, s, vt = np.linalg.svd(matrix, full_matrices=m < n)
    tol = rcond * (s[0] if s.size else 0.0) * max(matrix.shape)
    rank = int(np.sum(s > tol))
    # The pseudo-inverse's solution from the same SVD (pinv would compute a second one).
    min_norm = vt[:rank].T @ ((u[:, :rank].T @ rhs) / s[:rank])
    residual = float(np.linalg.norm(matrix @ min_norm - rhs))
    consistent = residual <= 1e-9 * max(1.0, float(np.linalg.norm(rhs)))
    nullspace = vt[rank:]
    # An inconsistent system's least-squares solutions solve the normal equations.
    a, b = (matrix, rhs) if consistent else (matrix.T @ matrix, matrix.T @ rhs)
    out: dict[str, Any] = {
        "rank": rank,
        "consistent": bool(consistent),
        "min_norm": min_norm.tolist(),
        "nullspace": nullspace.tolist(),
        "residual_norm": residual,
        "family": bool(nullspace.shape[0] > 0),
        "general": None,
    }
    cost = exact_cost(*a.shape)
    if cost > EXACT_BUDGET:
        out["note"] = (f"general solution not spelled out: exact elimination of this "
                       f"{a.shape[0]}×{a.shape[1]} system would take about {cost:,} fraction "
                       f"operations, beyond the limit of {EXACT_BUDGET:,}; rank, min_norm "
                       f"and nullspace come from the SVD")
    elif not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        out["note"] = ("general solution not spelled out: the normal equations overflow the "
                       "float range; rank, min_norm and nullspace come from the SVD")
    else:
        out["general"] = general_solution(a, b, variables)
    return out


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
