"""Checked trees become functions of the variables, evaluated in any namespace `xp`.

Variable-free subtrees are folded once, here (so `1/0` or `exp(1000)` is refused as a
ParseError pointing at it, instead of failing on every evaluation), and so are the constant
factors of each product (x*1e100*1e100*1e100*1e100 is inf wherever x is not 0). The rest
becomes nested closures: evaluating walks no tree and looks nothing up but `xp`'s functions.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from optbench.expr.errors import ParseError
from optbench.expr.parse import (
    MAX_VARIABLES,
    XP_NAMES,
    Node,
    fold,
    parse_expression,
    variables_of,
)

Fn = Callable[[Sequence[Any], Any], Any]


def _compile(node: Node, index: dict[str, int], text: str, in_product: bool = False) -> Fn:
    if node.constant:
        try:
            value = fold(node)
        except ZeroDivisionError:
            raise ParseError("division by zero", text, node.offset) from None
        except (OverflowError, ValueError) as exc:
            raise ParseError(f"constant part cannot be computed ({exc or 'overflow'})", text,
                             node.offset) from None
        if not math.isfinite(value):
            raise ParseError(f"constant part overflows the float range (above "
                             f"{sys.float_info.max:.3g})", text, node.offset)
        return lambda v, xp: value
    op, args = node.op, node.args
    if op == "var":
        i = index[node.value]
        return lambda v, xp: v[i]
    if op in ("neg", "pos"):
        a = _compile(args[0], index, text, in_product)
        return (lambda v, xp: -a(v, xp)) if op == "neg" else a
    if op == "call":
        a, name = _compile(args[0], index, text), node.value
        if name in XP_NAMES:
            names = XP_NAMES[name]
            return lambda v, xp: xp_function(xp, names)(a(v, xp))
        return lambda v, xp: getattr(xp, name)(a(v, xp))
    # The operands of a product are part of it (checked with it), except a divisor that
    # holds variables: its own constant factors do not fold into the product's.
    a = _compile(args[0], index, text, op in ("*", "/"))
    b = _compile(args[1], index, text, op == "*")
    if op == "/" and args[1].constant and fold(args[1]) == 0.0:
        # x/0 is never finite (and the linear analysis would divide by zero): refuse it
        # like 1/0. (b compiled: the constant folds without error.)
        raise ParseError("division by zero", text, args[1].offset)
    if op in ("*", "/") and not in_product:  # after the operands: their own errors first
        _check_factor(node, text)
    if op == "+":
        return lambda v, xp: a(v, xp) + b(v, xp)
    if op == "-":
        return lambda v, xp: a(v, xp) - b(v, xp)
    if op == "*":
        return lambda v, xp: a(v, xp) * b(v, xp)
    if op == "/":
        return lambda v, xp: a(v, xp) / b(v, xp)
    return lambda v, xp: a(v, xp) ** b(v, xp)


def xp_function(xp: Any, names: tuple[str, ...]) -> Any:
    """The first of `names` that the namespace has (see parse.XP_NAMES)."""
    for name in names:
        fn = getattr(xp, name, None)
        if fn is not None:
            return fn
    raise AttributeError(f"the array namespace {getattr(xp, '__name__', xp)!r} has none of "
                         f"{', '.join(names)}")


def _factor(node: Node) -> float:
    """The product of the constant factors of a product (x*1e100*1e100 -> 1e200)."""
    if node.constant:
        return abs(fold(node))
    if node.op in ("neg", "pos"):
        return _factor(node.args[0])
    if node.op == "*":
        return _factor(node.args[0]) * _factor(node.args[1])
    if node.op == "/" and node.args[1].constant:
        return _factor(node.args[0]) / abs(fold(node.args[1]))
    if node.op == "/":
        return _factor(node.args[0])
    return 1.0


def _check_factor(node: Node, text: str) -> None:
    # A product's constant factors are never folded into one number (x*1e100*1e100 is
    # (x*1e100)*1e100), so that each is in range while their product is not: the
    # expression is then inf (or 0·inf) wherever x is not 0. Refused here, as bad input,
    # like a constant that overflows. Checked once per product, from its outermost node.
    try:
        factor = _factor(node)
    except ZeroDivisionError:
        raise ParseError("division by zero", text, node.offset) from None
    if not math.isfinite(factor):
        raise ParseError(f"the constant factors of this product overflow the float range "
                         f"(above {sys.float_info.max:.3g})", text, node.offset)


Linear = tuple[dict[int, float], float]


def linear_form(node: Node, index: dict[str, int], text: str = "") -> Linear | None:
    """({i: a_i}, c) with node = Σ a_i·x_i + c when node is linear in the variables, else
    None. Coefficients are kept sparse: a dense row per node cost nodes × unknowns.
    A coefficient that overflows the float range is a ParseError pointing at its node."""
    if node.constant:
        return {}, fold(node)
    op, args = node.op, node.args
    result: Linear | None
    if op == "var":
        return {index[node.value]: 1.0}, 0.0
    if op in ("neg", "pos"):
        inner = linear_form(args[0], index, text)
        if inner is None or op == "pos":
            return inner
        result = {i: -v for i, v in inner[0].items()}, -inner[1]
    elif op in ("+", "-"):
        left = linear_form(args[0], index, text)
        right = None if left is None else linear_form(args[1], index, text)
        if left is None or right is None:
            return None
        sign = 1.0 if op == "+" else -1.0
        coefficients = dict(left[0])
        for i, v in right[0].items():
            coefficients[i] = coefficients.get(i, 0.0) + sign * v
        result = coefficients, left[1] + sign * right[1]
    elif op == "*" and (args[0].constant or args[1].constant):
        lin, const = (args[1], args[0]) if args[0].constant else (args[0], args[1])
        inner, k = linear_form(lin, index, text), fold(const)
        if inner is None:
            return None
        result = {i: k * v for i, v in inner[0].items()}, k * inner[1]
    elif op == "/" and args[1].constant:
        inner, k = linear_form(args[0], index, text), fold(args[1])
        if inner is None:
            return None
        result = {i: v / k for i, v in inner[0].items()}, inner[1] / k
    elif op == "**" and args[1].constant and fold(args[1]) == 1.0:
        return linear_form(args[0], index, text)
    else:
        return None
    if not (math.isfinite(result[1]) and all(math.isfinite(v) for v in result[0].values())):
        raise ParseError(f"a coefficient overflows the float range (above "
                         f"{sys.float_info.max:.3g})", text, node.offset)
    return result


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
