"""A safe expression language: parse text without eval, evaluate it with any backend's xp."""

from optbench.expr.compile import Expression, compile_expression
from optbench.expr.equations import (
    Equation,
    System,
    compile_equation,
    parse_equation,
    parse_system,
)
from optbench.expr.errors import ParseError

__all__ = ["Equation", "Expression", "ParseError", "System", "compile_equation",
           "compile_expression", "parse_equation", "parse_system"]
