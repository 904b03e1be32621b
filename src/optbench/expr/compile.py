"""Checked trees become functions of the variables, evaluated in any namespace `xp`.

Variable-free subtrees are folded once, here (so `1/0` or `exp(1000)` is refused as a
ParseError pointing at it, instead of failing on every evaluation). The rest becomes nested
closures: evaluating walks no tree and looks nothing up but `xp`'s functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from optbench.expr.errors import ParseError
from optbench.expr.parse import (
    CONSTANTS,
    MAX_VARIABLES,
    Node,
    fold,
    parse_expression,
    variables_of,
)

Fn = Callable[[Sequence[Any], Any], Any]


def _compile(node: Node, index: dict[str, int], text: str) -> Fn:
    if not variables_of(node):
        try:
            value = fold(node)
        except ZeroDivisionError:
            raise ParseError("division by zero", text, node.offset) from None
        except (OverflowError, ValueError) as exc:
            raise ParseError(f"constant part cannot be computed ({exc or 'overflow'})", text,
                             node.offset) from None
        if not math.isfinite(value):
            raise ParseError("constant part overflows", text, node.offset)
        return lambda v, xp: value
    op, args = node.op, node.args
    if op == "var":
        i = index[node.value]
        return lambda v, xp: v[i]
    if op == "const":
        value = CONSTANTS[node.value]
        return lambda v, xp: value
    if op in ("neg", "pos"):
        a = _compile(args[0], index, text)
        return (lambda v, xp: -a(v, xp)) if op == "neg" else a
    if op == "call":
        a, name = _compile(args[0], index, text), node.value
        return lambda v, xp: getattr(xp, name)(a(v, xp))
    a, b = _compile(args[0], index, text), _compile(args[1], index, text)
    if op == "/" and not variables_of(args[1]) and fold(args[1]) == 0.0:
        # x/0 is never finite (and the linear analysis would divide by zero): refuse it
        # like 1/0. (b compiled: the constant folds without error.)
        raise ParseError("division by zero", text, args[1].offset)
    if op == "+":
        return lambda v, xp: a(v, xp) + b(v, xp)
    if op == "-":
        return lambda v, xp: a(v, xp) - b(v, xp)
    if op == "*":
        return lambda v, xp: a(v, xp) * b(v, xp)
    if op == "/":
        return lambda v, xp: a(v, xp) / b(v, xp)
    return lambda v, xp: a(v, xp) ** b(v, xp)


def linear_form(node: Node, index: dict[str, int]) -> tuple[list[float], float] | None:
    """(a, c) with node = a·x + c when node is linear in the variables, else None."""
    n = len(index)
    if not variables_of(node):
        return [0.0] * n, fold(node)
    op, args = node.op, node.args
    if op == "var":
        a = [0.0] * n
        a[index[node.value]] = 1.0
        return a, 0.0
    if op in ("neg", "pos"):
        inner = linear_form(args[0], index)
        if inner is None or op == "pos":
            return inner
        return [-v for v in inner[0]], -inner[1]
    if op in ("+", "-"):
        left, right = linear_form(args[0], index), linear_form(args[1], index)
        if left is None or right is None:
            return None
        sign = 1.0 if op == "+" else -1.0
        return ([p + sign * q for p, q in zip(left[0], right[0], strict=True)],
                left[1] + sign * right[1])
    if op == "*":
        for lin, const in ((args[0], args[1]), (args[1], args[0])):
            if not variables_of(const):
                inner, k = linear_form(lin, index), fold(const)
                return None if inner is None else ([k * v for v in inner[0]], k * inner[1])
        return None
    if op == "/" and not variables_of(args[1]):
        inner, k = linear_form(args[0], index), fold(args[1])
        return None if inner is None else ([v / k for v in inner[0]], inner[1] / k)
    if op == "**" and not variables_of(args[1]) and fold(args[1]) == 1.0:
        return linear_form(args[0], index)
    return None


@dataclass(frozen=True)
class Expression:
    """A compiled expression: `expr(values, xp)`, values in the order of `variables`."""

    text: str
    tree: Node
    variables: tuple[str, ...]
    fn: Fn

    def __call__(self, values: Sequence[Any], xp: Any) -> Any:
        return self.fn(values, xp)


def _order(found: list[str], declared: Sequence[str] | None, text: str) -> tuple[str, ...]:
    if declared is None:
        order = tuple(found)
    else:
        order = tuple(declared)
        if len(set(order)) != len(order):
            raise ParseError("a variable is declared twice", ", ".join(order), 0)
        missing = [v for v in found if v not in order]
        if missing:
            raise ParseError(f"variable {missing[0]!r} is not among the declared "
                             f"variables ({', '.join(order)})", text, text.find(missing[0]))
    if len(order) > MAX_VARIABLES:
        raise ParseError(f"{len(order)} variables; the limit is {MAX_VARIABLES}", text, 0)
    return order


def compile_expression(text: str, variables: Sequence[str] | None = None) -> Expression:
    """Parse and compile `text`; variables ordered by first appearance unless declared."""
    tree = parse_expression(text)
    order = _order(variables_of(tree), variables, text)
    return Expression(text, tree, order, _compile(tree, {v: i for i, v in enumerate(order)},
                                                  text))
