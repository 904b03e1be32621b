"""`expr`: minimize any expression of the language, given as text or in a TOML file.

    optbench run --problem expr -P "objective=(1-x)^2 + 100*(y-x^2)^2"
    optbench run --problem expr -P file=problem.toml

problem.toml:
    objective = "(1-x)^2 + 100*(y-x^2)^2"
    variables = ["x", "y"]        # optional: the order of x (else order of appearance)
    x0 = [-1.2, 1.0]              # optional: the start (else drawn from the seed)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tomllib

from optbench.core import Instance, Param, Problem
from optbench.errors import UsageError
from optbench.expr import Expression, compile_expression
from optbench.hookspecs import hookimpl
from optbench.userfiles import read_text


def read_toml(path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A TOML file as a dict, refusing unknown keys; errors name the file (and line).

    Read through userfiles: a FIFO, a device or a file over the limit for equations files
    (an 8 GB sparse file, /dev/zero) is refused before anything is read.
    """
    text = read_text(path, "equations")
    try:
        content = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses into nested arrays and tables
        raise UsageError(f"{path}: arrays or tables nest too deeply; expected "
                         f"{', '.join(allowed)}") from None
    unknown = sorted(set(content) - set(allowed))
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r}; accepted: {', '.join(allowed)}")
    return content


def names_list(value: Any, where: str) -> list[str] | None:
    """Variable names from "x,y" or ["x", "y"]."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise UsageError(f"{where}: variables must be names, e.g. x,y or [\"x\", \"y\"]")
    return [n.strip() for n in names]


def numbers_list(value: Any, n: int, where: str) -> np.ndarray:
    if (not isinstance(value, list) or len(value) != n
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise UsageError(f"{where}: x0 must be a list of {n} numbers")
    return np.asarray(value, dtype=np.float64)


def natural_order_of(names: Sequence[str]) -> tuple[str, ...]:
    from optbench.problems.model import natural_order

    return natural_order(names)


def warn_list_order(variables: Sequence[str], what: str, how: str) -> None:
    """Variables undeclared are taken in order of appearance: a list-valued start then
    lands on them in that order, which is a trap where it is not their natural order
    (b4 before b3). Warn, naming both orders."""
    natural = natural_order_of(variables)
    if tuple(variables) != natural:
        warnings.warn(f"{what} is a list, matched to the variables in order of appearance "
                      f"({', '.join(variables)}), not in natural order ({', '.join(natural)}); "
                      f"declare the order to be sure: {how}", UserWarning, stacklevel=3)


class ExpressionProblem(Problem):
    name = "expr"
    description = "minimize an expression, e.g. -P 'objective=(1-x)^2 + 100*(y-x^2)^2'"
    params = (
        Param("objective", "str", None, "the expression to minimize"),
        Param("file", "path", None, "a TOML file with objective, variables and x0"),
        Param("variables", "str", None, "the order of the variables, e.g. x,y"),
    )

    def _load(self, params: Mapping[str, Any]) -> tuple[Expression, np.ndarray | None]:
        text, variables, x0 = params["objective"], params["variables"], None
        if (text is None) == (params["file"] is None):
            raise UsageError("expr needs exactly one of -P objective=EXPRESSION or "
                             "-P file=problem.toml")
        if params["file"] is not None:
            path = params["file"]
            content = read_toml(path, ("objective", "variables", "x0"))
            text = content.get("objective")
            if not isinstance(text, str):
                raise UsageError(f"{path}: needs objective = \"...\" (an expression)")
            variables = content.get("variables", variables)
            x0 = content.get("x0")
        expression = compile_expression(text, names_list(variables, "expr"))
        if not expression.variables:
            raise UsageError(f"objective={text!r} has no variable to minimize over")
        if x0 is not None:
            x0 = numbers_list(x0, len(expression.variables), str(params["file"]))
            if variables is None:
                natural = natural_order_of(expression.variables)
                warn_list_order(expression.variables, f"{params['file']}: x0",
                                "variables = [" + ", ".join(f'"{n}"' for n in natural) + "]")
        return expression, x0

    def warn_list_order(self, params: Mapping[str, Any], what: str = "--x0") -> None:
        """Called when a start is given as a list (api.plan, for --x0): warn where it is
        matched to the variables in an order that is not their natural one."""
        if params["variables"] is None and params["file"] is None:
            variables = self._load(params)[0].variables
            warn_list_order(variables, what,
                            f"-P variables={','.join(natural_order_of(variables))}")

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return self._load(params)[0].variables

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        expression, x0 = self._load(params)
        if x0 is None:
            x0 = np.random.default_rng(seed).standard_normal(len(expression.variables))
        # The compiled expression travels with the data; backends convert only arrays.
        return Instance(data={"_expression": expression}, x0=x0,
                        variables=expression.variables)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        expression: Expression = data["_expression"]
        return expression([x[..., i] for i in range(len(expression.variables))], xp)


@hookimpl
def register_problems(register):
    register(ExpressionProblem())
