"""An equation puzzle, the tutorial's third task: A+B=9, C−D=1, A+C=8, B−D=2.

Minimizes the *sum* of squared residuals, as the tutorial does. Equations come in the
expression language (optbench.expr); a linear system becomes its exact matrix M and
right-hand side b, and its reference is the pseudo-inverse analysis: rank, consistency,
minimum-norm solution and nullspace basis.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench.core import Instance, Param, Problem, Reference
from optbench.errors import UsageError
from optbench.expr import System, parse_system
from optbench.expr.equations import MAX_EQUATIONS, MAX_VARIABLES
from optbench.expr.linear import analyse
from optbench.hookspecs import hookimpl


def parse_matrix(text: str) -> np.ndarray:
    """ "1,1; 0,1" -> [[1, 1], [0, 1]]: rows separated by ';', entries by ','."""
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.split(";") if row.strip()]
    except ValueError:
        rows = []
    if not rows or len({len(r) for r in rows}) != 1 or not np.all(np.isfinite(rows)):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise UsageError(f"matrix={shown!r} is not accepted: expected rows of numbers, "
                         f"entries separated by ',' and rows by ';' (e.g. '1,1;0,1')")
    if len(rows) > MAX_EQUATIONS or len(rows[0]) > MAX_VARIABLES:
        # The same bounds as a system of equations (expr/equations.py).
        raise UsageError(f"matrix= has {len(rows)} rows and {len(rows[0])} columns; the "
                         f"limits are {MAX_EQUATIONS} rows and {MAX_VARIABLES} columns")
    return np.array(rows, dtype=np.float64)


TUTORIAL_EQUATIONS = "A + B = 9; C - D = 1; A + C = 8; B - D = 2"


def split_equations(text: str) -> list[str]:
    """Equations separated by ';' or line breaks."""
    return [e.strip() for e in text.replace("\n", ";").split(";") if e.strip()]


class Puzzle(Problem):
    name = "puzzle"
    description = "solve equations by least squares (the tutorial's A+B=9, C-D=1, ...)"
    has_residuals = True
    params = (
        Param("equations", "str", TUTORIAL_EQUATIONS, "equations separated by ';'",
              unused_with=("matrix",)),
        Param("variables", "str", None, "the order of the variables, e.g. A,B,C,D"),
        Param("matrix", "str", None, "a linear system as numbers instead: coefficients, "
              "rows separated by ';' (with rhs)"),
        Param("rhs", "floats", None, "right-hand side of matrix, one number per row"),
    )

    def _system(self, params: Mapping[str, Any]) -> System:
        names = params["variables"].split(",") if params["variables"] else None
        return parse_system(split_equations(params["equations"]), names)

    def _matrix(self, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        matrix = parse_matrix(params["matrix"])
        if params["rhs"] is None:
            raise UsageError("matrix= needs rhs=, one number per row")
        rhs = np.asarray(params["rhs"], dtype=np.float64)
        if rhs.shape[0] != matrix.shape[0]:
            raise UsageError(f"rhs has {rhs.shape[0]} numbers; the matrix has "
                             f"{matrix.shape[0]} rows, and rhs needs one number per row")
        return matrix, rhs

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        if params["matrix"] is None:
            return self._system(params).variables
        n = parse_matrix(params["matrix"]).shape[1]
        letters = string.ascii_uppercase
        return tuple(letters[i] if n <= len(letters) else f"x{i}" for i in range(n))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        variables = self.variables(params)
        x0 = np.random.default_rng(seed).standard_normal(len(variables))
        if params["matrix"] is not None:
            matrix, rhs = self._matrix(params)
            return Instance(data={"M": matrix, "b": rhs}, x0=x0, variables=variables)
        system = self._system(params)
        if system.linear:  # the exact matrix: faster to evaluate, and it has a reference
            return Instance(data={"M": system.matrix, "b": system.rhs}, x0=x0,
                            variables=variables)
        return Instance(data={"_system": system}, x0=x0, variables=variables)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        # x may carry leading batch dimensions (several starts): sum over the last one only.
        if "M" in data:
            return xp.sum(xp.square(x @ data["M"].T - data["b"]), axis=-1)
        system: System = data["_system"]
        return system.objective([x[..., i] for i in range(len(system.variables))], xp)

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        """lhs − rhs of each equation (a linear system: M·x − b), in the order given."""
        if "M" in data:
            return data["M"] @ x - data["b"]
        system: System = data["_system"]
        values = [x[i] for i in range(len(system.variables))]
        # An equation whose residual folds to a number is made an array like x's entries.
        return xp.stack([r if hasattr(r, "shape") else x[0] * 0.0 + r
                         for r in system.residuals(values, xp)])

    def reference(self, instance: Instance) -> Reference | None:
        if "M" not in instance.data:
            return None  # nonlinear: no closed form
        matrix, rhs = np.asarray(instance.data["M"]), np.asarray(instance.data["b"])
        a = analyse(matrix, rhs, instance.variables)
        details = {k: a[k] for k in ("rank", "consistent", "nullspace", "general", "note")
                   if k in a}
        return Reference(x=np.asarray(a["min_norm"]), f=a["residual_norm"] ** 2,
                         unique=not a["family"], details=details)


@hookimpl
def register_problems(register):
    register(Puzzle())
