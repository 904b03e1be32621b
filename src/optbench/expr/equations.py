"""Equations `lhs = rhs` (or `==`) and systems of them.

A system's objective is the tutorial's: the sum of squared residuals lhs − rhs. When every
equation is linear, its exact coefficient matrix and right-hand side are extracted for the
pseudo-inverse analysis.

A system is bounded as a whole, not only equation by equation (each is at most MAX_LENGTH
characters, see parse.py): at most MAX_EQUATIONS equations, MAX_SYSTEM_LENGTH characters in
all and MAX_VARIABLES unknowns, so that parsing, the matrix and its analysis stay within a
second and a few megabytes. Before these limits, 100,000 copies of `x = 1` asked the SVD for
a 74.5 GiB matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.expr.compile import Expression, _compile, _order, linear_form
from optbench.expr.errors import ParseError
from optbench.expr.parse import MAX_LENGTH, MAX_VARIABLES, Node, parse_expression, variables_of

MAX_EQUATIONS = 1_000
MAX_SYSTEM_LENGTH = 50_000  # characters, all equations together


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


def sides(text: str) -> tuple[str, str]:
    """The texts of an equation's left and right sides (ParseError without one '=')."""
    lhs, rhs_at = _split(text)
    return lhs, text[rhs_at:]


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
    if residual.constant:
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

    @property
    def size(self) -> int:
        """Nodes in the equations' trees: each is an intermediate array when evaluated."""
        return sum(eq.residual.size for eq in self.equations)

    def residuals(self, values: Sequence[Any], xp: Any) -> list[Any]:
        return [fn(values, xp) for fn in self.residual_fns]

    def objective(self, values: Sequence[Any], xp: Any) -> Any:
        """Sum of squared residuals (the tutorial's puzzle objective)."""
        total = 0.0
        for r in self.residuals(values, xp):
            total = total + r * r
        return total


def limits() -> str:
    return (f"a system has at most {MAX_EQUATIONS} equations, {MAX_SYSTEM_LENGTH} characters "
            f"in all and {MAX_VARIABLES} unknowns")


def check_size(texts: Sequence[str]) -> None:
    """Refuse a system beyond the limits before any of it is parsed."""
    if len(texts) > MAX_EQUATIONS:
        raise ParseError(f"{len(texts)} equations; the limit is {MAX_EQUATIONS} "
                         f"({limits()})", "")
    total = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str) or len(text) > MAX_LENGTH:
            parse_equation(text)  # refused on its own, pointing at the place
        total += len(text)
        if total > MAX_SYSTEM_LENGTH:
            whole = sum(len(t) for t in texts if isinstance(t, str))
            raise ParseError(f"equations of {whole} characters in all (the limit is passed "
                             f"in equation {i + 1}); the limit is {MAX_SYSTEM_LENGTH} "
                             f"({limits()})", "")


def parse_system(texts: Sequence[str], variables: Sequence[str] | None = None) -> System:
    if not texts:
        raise ParseError("no equation given", "")
    check_size(texts)
    equations = tuple(parse_equation(t) for t in texts)
    found: dict[str, None] = {}
    for eq in equations:
        for v in variables_of(eq.residual):
            found.setdefault(v, None)
    order = _order(list(found), variables, "; ".join(texts))
    index = {v: i for i, v in enumerate(order)}
    fns = tuple(_compile(eq.residual, index, eq.text) for eq in equations)
    forms = []
    for eq in equations:
        form = linear_form(eq.residual, index, eq.text)
        if form is None:
            break
        forms.append(form)
    matrix = rhs = None
    if len(forms) == len(equations):
        matrix = np.zeros((len(forms), len(order)), dtype=np.float64)
        for row, (coefficients, _) in enumerate(forms):
            for column, value in coefficients.items():
                matrix[row, column] = value
        rhs = -np.array([c for _, c in forms], dtype=np.float64)
    return System(equations, order, fns, matrix, rhs)


def as_expression(text: str, variables: Sequence[str] | None = None) -> Expression:
    from optbench.expr.compile import compile_expression

    return compile_expression(text, variables)


def compile_equation(text: str, variables: Sequence[str] | None = None) -> Expression:
    """One equation's residual, lhs − rhs, compiled as an Expression over `variables` (its
    names in this order; default: order of first appearance). What a model fitted to data
    evaluates at every point at once, data columns being variables holding arrays."""
    equation = parse_equation(text)
    order = _order(variables_of(equation.residual), variables, text)
    fn = _compile(equation.residual, {v: i for i, v in enumerate(order)}, text)
    return Expression(text, equation.residual, order, fn)
