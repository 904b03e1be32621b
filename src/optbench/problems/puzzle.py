"""A linear equation puzzle, the tutorial's third task: A+B=9, C−D=1, A+C=8, B−D=2.

Minimizes the *sum* of squared residuals ‖M·x − b‖², as the tutorial does. The reference is
the pseudo-inverse analysis: rank, consistency, minimum-norm solution and nullspace basis.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench.core import Instance, Param, Problem, Reference
from optbench.errors import UsageError
from optbench.hookspecs import hookimpl

TUTORIAL_MATRIX = "1,1,0,0; 0,0,1,-1; 1,0,1,0; 0,1,0,-1"
TUTORIAL_RHS = (9.0, 1.0, 8.0, 2.0)


def parse_matrix(text: str) -> np.ndarray:
    """ "1,1; 0,1" -> [[1, 1], [0, 1]]: rows separated by ';', entries by ','."""
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.split(";") if row.strip()]
    except ValueError:
        rows = []
    if not rows or len({len(r) for r in rows}) != 1 or not np.all(np.isfinite(rows)):
        raise UsageError(f"matrix={text!r} is not accepted: expected rows of numbers, entries "
                         f"separated by ',' and rows by ';' (e.g. '1,1;0,1')")
    return np.array(rows, dtype=np.float64)


def linear_analysis(matrix: np.ndarray, rhs: np.ndarray, rcond: float = 1e-12
                    ) -> dict[str, Any]:
    """Rank, consistency, minimum-norm (least-squares) solution and a nullspace basis."""
    _, s, vt = np.linalg.svd(matrix)
    tol = rcond * (s[0] if s.size else 0.0) * max(matrix.shape)
    rank = int(np.sum(s > tol))
    min_norm = np.linalg.pinv(matrix, rcond=rcond) @ rhs
    residual = matrix @ min_norm - rhs
    scale = max(1.0, float(np.linalg.norm(rhs)))
    consistent = bool(np.linalg.norm(residual) <= 1e-9 * scale)
    nullspace = vt[rank:]
    return {"rank": rank, "consistent": consistent, "min_norm": min_norm,
            "nullspace": nullspace, "residual_norm": float(np.linalg.norm(residual))}


class Puzzle(Problem):
    name = "puzzle"
    description = "solve a linear system by least squares (the tutorial's A+B=9, C-D=1, ...)"
    params = (
        Param("matrix", "str", TUTORIAL_MATRIX, "coefficients, rows separated by ';'"),
        Param("rhs", "floats", TUTORIAL_RHS, "right-hand side, one number per row"),
    )

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        n = parse_matrix(params["matrix"]).shape[1]
        letters = string.ascii_uppercase
        return tuple(letters[i] if n <= len(letters) else f"x{i}" for i in range(n))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        matrix = parse_matrix(params["matrix"])
        rhs = np.asarray(params["rhs"], dtype=np.float64)
        if rhs.shape[0] != matrix.shape[0]:
            raise UsageError(f"rhs has {rhs.shape[0]} numbers; the matrix has "
                             f"{matrix.shape[0]} rows, and rhs needs one number per row")
        x0 = np.random.default_rng(seed).standard_normal(matrix.shape[1])
        return Instance(data={"M": matrix, "b": rhs}, x0=x0, variables=self.variables(params))

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(data["M"] @ x - data["b"]))

    def reference(self, instance: Instance) -> Reference:
        matrix, rhs = np.asarray(instance.data["M"]), np.asarray(instance.data["b"])
        a = linear_analysis(matrix, rhs)
        details = {"rank": a["rank"], "consistent": a["consistent"],
                   "nullspace": a["nullspace"].tolist()}
        return Reference(x=a["min_norm"], f=a["residual_norm"] ** 2,
                         unique=a["nullspace"].shape[0] == 0, details=details)


@hookimpl
def register_problems(register):
    register(Puzzle())
