"""Equations `lhs = rhs` (or `==`) and systems of them.

A system's objective is the tutorial's: the sum of squared residuals lhs − rhs. When every
equation is linear, its exact coefficient matrix and right-hand side are extracted for the
pseudo-inverse analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.expr.compile import Expression, _compile, _order, linear_form
from optbench.expr.errors import ParseError
from optbench.expr.parse import Node, parse_expression, variables_of


def _split(text: str) -> tuple[str, int]:
    """(lhs, offset of rhs) at the one '=' or '==' of an equation."""
    marks = []
    i = 0
    while i < len(text):
        if text[i] == "=":
            width = 2 if text[i:i + 2] == "==" else 1
            marks.append((i, width))
            i += width
        else:
            i += 1
    if not marks:
        raise ParseError("an equation needs '=' between its two sides", text, len(text))
    if len(marks) > 1:
        raise ParseError("two '=' in one equation; write one equation per argument", text,
                         marks[1][0], marks[1][1])
    at, width = marks[0]
    return text[:at], at + width


@dataclass(frozen=True)
class Equation:
    text: str
    residual: Node  # lhs − rhs


def parse_equation(text: str) -> Equation:
    if not isinstance(text, str):
        raise ParseError("expected an equation as text", str(text))
    lhs_text, rhs_at = _split(text)
    lhs = parse_expression(lhs_text, full=text, base=0)
    rhs = parse_expression(text[rhs_at:], full=text, base=rhs_at)
    residual = Node("-", (lhs, rhs), offset=0)
    if not variables_of(residual):
        raise ParseError("the equation has no variable", text, 0, len(text))
    return Equation(text, residual)


@dataclass(frozen=True)
class System:
    """Equations over shared variables. `residuals(values, xp)` is a list of arrays."""

    equations: tuple[Equation, ...]
    variables: tuple[str, ...]
    residual_fns: tuple[Any, ...]
    matrix: np.ndarray | None  # for a linear system: residuals = matrix·x − rhs
    rhs: np.ndarray | None

    @property
    def linear(self) -> bool:
        return self.matrix is not None

    def residuals(self, values: Sequence[Any], xp: Any) -> list[Any]:
        return [fn(values, xp) for fn in self.residual_fns]

    def objective(self, values: Sequence[Any], xp: Any) -> Any:
        """Sum of squared residuals (the tutorial's puzzle objective)."""
        total = 0.0
        for r in self.residuals(values, xp):
            total = total + r * r
        return total


def parse_system(texts: Sequence[str], variables: Sequence[str] | None = None) -> System:
    if not texts:
        raise ParseError("no equation given", "", 0)
    equations = tuple(parse_equation(t) for t in texts)
    found: dict[str, None] = {}
    for eq in equations:
        for v in variables_of(eq.residual):
            found.setdefault(v, None)
    order = _order(list(found), variables, "; ".join(texts))
    index = {v: i for i, v in enumerate(order)}
    fns = tuple(_compile(eq.residual, index, eq.text) for eq in equations)
    forms = [linear_form(eq.residual, index) for eq in equations]
    matrix = rhs = None
    if all(f is not None for f in forms):
        matrix = np.array([f[0] for f in forms], dtype=np.float64).reshape(len(forms), len(order))
        rhs = -np.array([f[1] for f in forms], dtype=np.float64)
    return System(equations, order, fns, matrix, rhs)


def as_expression(text: str, variables: Sequence[str] | None = None) -> Expression:
    from optbench.expr.compile import compile_expression

    return compile_expression(text, variables)
