"""A small, safe expression language, parsed with Python's `ast` and an allow-list.

Accepted: numbers, names, + − * / ** (and ^ as power), unary ±, parentheses, and the
functions and constants in `FUNCTIONS` and `CONSTANTS`. Nothing is ever evaluated by
Python's eval or exec: the allowed tree is compiled into closures over an array namespace
`xp`, so every backend can evaluate and differentiate it.

Limits keep hostile text cheap to refuse: its length, the nesting depth, the number of
variables, the size of constants and of constant exponents (no `9**9**9` hang).
"""

from __future__ import annotations

import ast
import bisect
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from optbench.expr.errors import ParseError

MAX_LENGTH = 10_000
MAX_DEPTH = 400  # depth of the tree: a sum of a few hundred terms is fine
MAX_PARENS = 64  # nesting of parentheses and brackets
MAX_VARIABLES = 256
MAX_CONSTANT = 1e100
MAX_EXPONENT = 1_000

FUNCTIONS = ("sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sinh", "cosh",
             "atan", "arctan", "asin", "acos", "log10", "log1p", "expm1")
# The function of each language name in an array namespace, names tried in order: the
# language's own (the array API standard's, which numpy >= 2, torch and jax.numpy have),
# then numpy's older spelling (numpy 1.x, autograd over it). `arctan` is a synonym of
# `atan`. Names not listed are the same in every namespace.
XP_NAMES = {"atan": ("atan", "arctan"), "arctan": ("arctan", "atan"),
            "asin": ("asin", "arcsin"), "acos": ("acos", "arccos")}
# The same in Python's math module, for folding constant parts.
_MATH_NAMES = {"abs": "fabs", "arctan": "atan"}
CONSTANTS = {"pi": math.pi, "e": math.e}

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")


@dataclass(frozen=True)
class Node:
    """The checked tree: op is "num", "var", "const", "call", "neg", "pos" or a binary op."""

    op: str
    args: tuple[Node, ...] = ()
    value: Any = None  # number, variable name, constant name or function name
    offset: int = 0
    # Computed once, bottom up, when the node is made: asking "is this subtree free of
    # variables?" by walking it at every node made compiling quadratic in the depth (ten
    # deep 9 KB equations took 36 s).
    constant: bool = field(init=False, repr=False, compare=False)
    size: int = field(init=False, repr=False, compare=False)  # nodes in the subtree

    def __post_init__(self) -> None:
        object.__setattr__(self, "constant",
                           self.op != "var" and all(a.constant for a in self.args))
        object.__setattr__(self, "size", 1 + sum(a.size for a in self.args))


class _Source:
    """The user's text and the text given to `ast` (^ became **): maps offsets back."""

    def __init__(self, text: str, base: int = 0) -> None:
        self.text = text
        self.base = base
        self.python = text.replace("^", "**")
        carets = [i for i, ch in enumerate(text) if ch == "^"]
        self._shifts = [c + k + 1 for k, c in enumerate(carets)]  # python offsets after ^

    def offset(self, python_offset: int) -> int:
        # _shifts is sorted: bisect counts those before the offset (a linear count made
        # refusing a long text with many carets quadratic).
        return self.base + python_offset - bisect.bisect_left(self._shifts, python_offset)


def _check_text(text: str, full: str, base: int) -> None:
    if not isinstance(text, str):
        raise ParseError("expected text", str(text))
    if len(full) > MAX_LENGTH:
        raise ParseError(f"text of {len(full)} characters is longer than the limit of "
                         f"{MAX_LENGTH}", full, MAX_LENGTH, 1)
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
            if depth > MAX_PARENS:
                raise ParseError(f"parentheses nest deeper than {MAX_PARENS}", full, base + i)
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ParseError(f"unbalanced parentheses: {ch!r} without its opening one",
                                 full, base + i)
    if depth > 0:
        opening = max(text.rfind(c) for c in "([{")
        raise ParseError("unbalanced parentheses: '(' without ')'", full, base + opening)
    for i, ch in enumerate(text):
        # Printable ASCII only: ast then names what is refused (strings, lambda, ...).
        # No comments, line continuations or line breaks that would hide part of the text.
        if not (" " <= ch <= "~") or ch in "#\\":
            raise ParseError(f"character {ch!r} is not part of the language", full, base + i)


def parse_expression(text: str, *, full: str | None = None, base: int = 0) -> Node:
    """Parse and check one expression; raise ParseError pointing at what is refused."""
    full = text if full is None else full
    _check_text(text, full, base)
    if not text.strip():
        raise ParseError("empty expression", full, base)
    src = _Source(text, base)
    try:
        # The tokenizer warns about some texts ("1if x else 2": invalid decimal literal);
        # a warning printed to stderr would break the command line's one-line contract.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(src.python.strip(), mode="eval")
    except SyntaxError as exc:
        python_offset = (exc.offset or 1) - 1 + (len(src.python) - len(src.python.lstrip()))
        raise ParseError(f"not an expression ({exc.msg})", full, src.offset(python_offset)
                         ) from None
    except (MemoryError, RecursionError, ValueError):
        raise ParseError("expression too complex to parse", full, base) from None
    lead = len(src.python) - len(src.python.lstrip())
    return _Checker(src, full, lead).visit(tree.body, 0)


class _Checker:
    def __init__(self, src: _Source, full: str, lead: int) -> None:
        self.src, self.full, self.lead = src, full, lead

    def where(self, node: ast.AST) -> int:
        return self.src.offset(getattr(node, "col_offset", 0) + self.lead)

    def refuse(self, reason: str, node: ast.AST) -> ParseError:
        start = getattr(node, "col_offset", 0)
        end = getattr(node, "end_col_offset", start + 1) or start + 1
        return ParseError(reason, self.full, self.where(node), max(1, end - start))

    def visit(self, node: ast.AST, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.refuse(f"expression nests deeper than {MAX_DEPTH}", node)
        at = self.where(node)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.refuse(f"{type(value).__name__} constants are not accepted; "
                                  "only numbers", node)
            try:
                number = float(value)
            except OverflowError:  # an integer literal of hundreds of digits
                number = math.inf
            if not math.isfinite(number) or abs(number) > MAX_CONSTANT:
                raise self.refuse(f"constant larger than {MAX_CONSTANT:g}", node)
            return Node("num", value=number, offset=at)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return Node("const", value=node.id, offset=at)
            if node.id in FUNCTIONS:
                raise self.refuse(f"function {node.id!r} needs an argument: {node.id}(...)",
                                  node)
            if node.id.startswith("__"):
                raise self.refuse(f"name {node.id!r} is not accepted", node)
            return Node("var", value=node.id, offset=at)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            op = "neg" if isinstance(node.op, ast.USub) else "pos"
            return Node(op, (self.visit(node.operand, depth + 1),), offset=at)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left = self.visit(node.left, depth + 1)
            right = self.visit(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):
                self._check_exponent(right, node.right)
            return Node(_BINARY[type(node.op)], (left, right), offset=at)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise self.refuse(f"{_describe(node)} is not accepted; the language has numbers, "
                          "names, + - * / ** ^, parentheses and "
                          f"{', '.join(FUNCTIONS)}", node)

    def _call(self, node: ast.Call, depth: int) -> Node:
        func = node.func
        if not isinstance(func, ast.Name):
            raise self.refuse("only the built-in functions can be called: "
                              f"{', '.join(FUNCTIONS)}", func)
        if func.id not in FUNCTIONS:
            raise self.refuse(f"unknown function {func.id!r}; accepted: "
                              f"{', '.join(FUNCTIONS)}", func)
        if node.keywords:
            raise self.refuse("keyword arguments are not accepted", node.keywords[0].value)
        if len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise self.refuse(f"{func.id}() takes exactly one argument", node)
        arg = self.visit(node.args[0], depth + 1)
        return Node("call", (arg,), value=func.id, offset=self.where(node))

    def _check_exponent(self, exponent: Node, node: ast.AST) -> None:
        # A constant exponent is folded (bounded at every level) and must be small, so that
        # 9**9**9 is refused here instead of hanging or overflowing later.
        if not exponent.constant:
            return
        try:
            value = fold(exponent)
        except (OverflowError, ValueError, ZeroDivisionError):
            value = math.inf
        if not math.isfinite(value) or abs(value) > MAX_EXPONENT:
            raise self.refuse(f"constant exponent larger than {MAX_EXPONENT}", node)


def _describe(node: ast.AST) -> str:
    names = {ast.Attribute: "attribute access", ast.Subscript: "subscripts",
             ast.Lambda: "lambda", ast.ListComp: "comprehensions",
             ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
             ast.GeneratorExp: "comprehensions", ast.Compare: "comparisons",
             ast.BoolOp: "boolean operators", ast.IfExp: "conditional expressions",
             ast.List: "lists", ast.Tuple: "tuples", ast.Dict: "dicts", ast.Set: "sets",
             ast.NamedExpr: "assignment expressions", ast.JoinedStr: "strings",
             ast.Await: "await", ast.Starred: "starred expressions"}
    for kind, name in names.items():
        if isinstance(node, kind):
            return name
    if isinstance(node, ast.BinOp):
        return f"operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"operator {type(node.op).__name__}"
    return type(node).__name__


def variables_of(node: Node) -> list[str]:
    """Variable names in order of first appearance (left to right)."""
    seen: dict[str, None] = {}

    def walk(n: Node) -> None:
        if n.op == "var":
            seen.setdefault(n.value, None)
        for a in n.args:
            walk(a)

    walk(node)
    return list(seen)


def _pow(a: float, b: float) -> float:
    if abs(b) > MAX_EXPONENT:
        raise OverflowError
    return a**b


_FOLD: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "**": _pow,
}


def fold(node: Node) -> float:
    """The value of a variable-free tree, in Python floats (bounded: see _pow)."""
    if node.op == "num":
        return node.value
    if node.op == "const":
        return CONSTANTS[node.value]
    if node.op in ("neg", "pos"):
        v = fold(node.args[0])
        return -v if node.op == "neg" else v
    if node.op == "call":
        return float(getattr(math, _MATH_NAMES.get(node.value, node.value))(
            fold(node.args[0])))
    if node.op in _FOLD:
        result = _FOLD[node.op](fold(node.args[0]), fold(node.args[1]))
        if isinstance(result, complex):
            raise ValueError("complex result")
        return float(result)
    raise ValueError(f"not a constant: {node.op}")
