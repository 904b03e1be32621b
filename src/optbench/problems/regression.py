"""Polynomial least squares, the tutorial's second task.

Minimizes the *mean* squared error mean((y − V·w)²) as the tutorial does, V holding the
polynomial's terms, highest power first (the order of numpy.polyfit and of `coefficients`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench.core import Instance, LeastSquares, Param, Problem, Reference
from optbench.errors import UsageError
from optbench.hookspecs import hookimpl
from optbench.problems.polynomial_basis import (
    LARGE_SAMPLE,
    column_scale,
    orthogonal_instance,
    vandermonde,
)


def term_names(degree: int) -> tuple[str, ...]:
    """("x^2", "x", "1") for degree 2: the unknown coefficient of each term."""
    return tuple("1" if p == 0 else "x" if p == 1 else f"x^{p}" for p in range(degree, -1, -1))


def read_points(path: str) -> tuple[np.ndarray, np.ndarray]:
    """x and y from a CSV of x,y rows; a first row that is not numeric is a header."""
    xs: list[float] = []
    ys: list[float] = []
    first_row = True
    try:
        # utf-8-sig: a byte-order mark (spreadsheet exports) must not hide the first number.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for lineno, row in enumerate(csv.reader(handle), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                header_allowed, first_row = first_row, False
                try:
                    if len(row) != 2:
                        raise ValueError
                    x, y = float(row[0]), float(row[1])
                    if not (math.isfinite(x) and math.isfinite(y)):
                        raise ValueError
                except ValueError:
                    if header_allowed:
                        continue  # a header: the first row that is not blank
                    shown = ",".join(row)[:60]
                    raise UsageError(f"data={path}: line {lineno} is {shown!r}; expected two "
                                     f"finite numbers x,y") from None
                xs.append(x)
                ys.append(y)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"data={path}: cannot read it ({exc.__class__.__name__}); "
                         f"expected a CSV file of x,y points") from None
    if len(xs) < 2:
        raise UsageError(f"data={path}: holds {len(xs)} points; expected at least 2 x,y rows")
    return np.array(xs), np.array(ys)


class Regression(Problem):
    name = "regression"
    description = "fit a polynomial to points by mean squared error (the tutorial's x²+2x+3)"
    params = (
        Param("degree", "int", 2, "degree of the polynomial", low=0, high=20),
        Param("coefficients", "floats", (1.0, 2.0, 3.0),
              "coefficients of the polynomial that makes y, highest power first; the fitted "
              "model has degree+1 terms, whether more (an exact fit) or fewer (a best fit)"),
        Param("n_samples", "int", 20, "number of sample points", low=1, high=10**9),
        Param("x_scale", "float", 5.0, "x ~ x_scale·N(0,1)", low=0, low_open=True),
        Param("noise", "float", 0.0, "standard deviation of noise added to y", low=0),
        Param("data", "path", None, "CSV of x,y points used instead of a drawn sample"),
        Param("basis", "str", "monomial", "the optimizer's variables: the coefficients "
              "themselves (monomial, the tutorial's) or those of an orthonormal basis of the "
              "same polynomials (orthogonal: well conditioned, mapped back for reports)",
              choices=("monomial", "orthogonal")),
    )

    least_squares = LeastSquares(design="V", target="y")

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return term_names(params["degree"])

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        degree = params["degree"]
        rng = np.random.default_rng(seed)
        if params["data"] is not None:
            x, y = read_points(params["data"])
        else:
            coefficients = np.asarray(params["coefficients"], dtype=np.float64)
            x = rng.standard_normal(params["n_samples"])
            x *= params["x_scale"]  # in place: the same numbers, no second copy of x
            y = np.polyval(coefficients, x)
            if params["noise"]:
                y = y + params["noise"] * rng.standard_normal(x.shape)
        x0 = rng.standard_normal(degree + 1)
        if params["basis"] == "orthogonal":
            return orthogonal_instance(x, y, degree, x0, term_names(degree))
        # The design matrix is built once here, so that no backend recomputes powers per step.
        design = vandermonde(x, degree)
        return Instance(data={"V": design, "y": y}, x0=x0, variables=term_names(degree))

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.mean(xp.square(data["y"] - data["V"] @ x))

    def reference(self, instance: Instance) -> Reference:
        design, y = np.asarray(instance.data["V"]), np.asarray(instance.data["y"])
        if instance.basis is not None:  # V holds Q: its least squares is Qᵀy, exactly
            z = design.T @ y
            return Reference(x=instance.to_user(z), f=float(np.mean(np.square(y - design @ z))))
        if design.shape[0] >= LARGE_SAMPLE:
            return streamed_reference(design, y)
        # numpy.polyfit's method: least squares on the column-scaled Vandermonde matrix.
        scale = column_scale(design)
        w, *_ = np.linalg.lstsq(design / scale, y, rcond=None)
        w = w / scale
        return Reference(x=w, f=float(np.mean(np.square(y - design @ w))))


def streamed_reference(design: np.ndarray, y: np.ndarray, rows: int = LARGE_SAMPLE
                       ) -> Reference:
    """polyfit's column-scaled least squares by a tall-skinny QR of row blocks, so that a
    large sample's reference costs no copy of the design matrix (lstsq on the whole of it
    would make several): the blocks [V_b/s, y_b] are folded into one triangular factor of
    [V/s, y], whose last column holds Qᵀy. Householder QR, backward stable like lstsq."""
    n, p = design.shape
    blocks = [slice(lo, min(lo + rows, n)) for lo in range(0, n, rows)]
    scale = np.sqrt(sum(np.einsum("ij,ij->j", design[b], design[b]) for b in blocks))
    scale = np.where(scale == 0, 1.0, scale)
    r = np.zeros((0, p + 1))
    for b in blocks:
        r = np.linalg.qr(np.vstack([r, np.column_stack([design[b] / scale, y[b]])]),
                         mode="r")
    w = np.linalg.solve(r[:p, :p], r[:p, p]) / scale
    squares = sum(float(np.sum(np.square(y[b] - design[b] @ w))) for b in blocks)
    return Reference(x=w, f=squares / n)


@hookimpl
def register_problems(register):
    register(Regression())
