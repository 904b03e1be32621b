"""Polynomial least squares, the tutorial's second task.

Minimizes the *mean* squared error mean((y − V·w)²) as the tutorial does, V holding the
polynomial's terms, highest power first (the order of numpy.polyfit and of `coefficients`).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench import memory
from optbench.core import Instance, LeastSquares, Param, Problem, Reference
from optbench.errors import UsageError
from optbench.hookspecs import hookimpl
from optbench.problems.polynomial_basis import (
    LARGE_SAMPLE,
    column_scale,
    orthogonal_instance,
    refine_least_squares,
    vandermonde,
)
from optbench.userfiles import csv_rows


def term_names(degree: int) -> tuple[str, ...]:
    """("x^2", "x", "1") for degree 2: the unknown coefficient of each term."""
    return tuple("1" if p == 0 else "x" if p == 1 else f"x^{p}" for p in range(degree, -1, -1))


# A line of x,y holds two fields of at most csv's field limit (131,072 characters); a longer
# line is refused as it is read, so that a file of one huge line is never held whole.


def bytes_per_point(degree: int) -> int:
    """Bytes a run holds per sample point: x, y and the design matrix's degree+1 columns,
    with the backends' copies and the autodiff temporaries (measured on autograd: 12
    float64 per point at degree 2, 24 at degree 8), and a margin."""
    return 8 * (2 * (degree + 1) + 8)


def read_points(path: str, per_point: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x and y from a CSV of x,y rows; a first row that is not numeric is a header.

    The file is read through userfiles (a regular file within the limit for data files) and
    line by line. Given `per_point`, the bytes the run will hold per point, the reading is
    refused as soon as it passes the points that fit in the memory available, before the
    arrays grow beyond them.
    """
    name = f"data={path}"
    have = memory.available() if per_point else 0
    max_points = have // per_point if per_point else None
    xs, ys = array("d"), array("d")  # 16 bytes a point, not two Python floats' 64
    first_row = True
    for line, row in csv_rows(path, name, "a CSV file of x,y points"):
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
            raise UsageError(f"{name}: line {line} is {shown!r}; expected two finite "
                             f"numbers x,y") from None
        if max_points is not None and len(xs) >= max_points:
            raise UsageError(f"{name} holds more than {max_points} points, which would need "
                             f"more than the {memory.human(have)} of memory available to "
                             f"optbench")
        xs.append(x)
        ys.append(y)
    if len(xs) < 2:
        raise UsageError(f"{name}: holds {len(xs)} points; expected at least 2 x,y rows")
    return np.frombuffer(xs, dtype=np.float64), np.frombuffer(ys, dtype=np.float64)


class Regression(Problem):
    name = "regression"
    description = "fit a polynomial to points by mean squared error (the tutorial's x²+2x+3)"
    params = (
        Param("degree", "int", 2, "degree of the polynomial", low=0, high=20),
        Param("coefficients", "floats", (1.0, 2.0, 3.0),
              "coefficients of the polynomial that makes y, highest power first; the fitted "
              "model has degree+1 terms, whether more (an exact fit) or fewer (a best fit)",
              unused_with=("data",)),
        Param("n_samples", "int", 20, "number of sample points", low=1, high=10**9,
              unused_with=("data",)),
        Param("x_scale", "float", 5.0, "x ~ x_scale·N(0,1)", low=0, low_open=True,
              unused_with=("data",)),
        Param("noise", "float", 0.0, "standard deviation of noise added to y", low=0,
              unused_with=("data",)),
        Param("data", "path", None, "CSV of x,y points used instead of a drawn sample"),
        Param("basis", "str", "monomial", "the optimizer's variables: the coefficients "
              "themselves (monomial, the tutorial's) or those of an orthonormal basis of the "
              "same polynomials (orthogonal: well conditioned, mapped back for reports)",
              choices=("monomial", "orthogonal")),
    )

    least_squares = LeastSquares(design="V", target="y")
    has_residuals = True

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return term_names(params["degree"])

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        degree = params["degree"]
        rng = np.random.default_rng(seed)
        per_point = bytes_per_point(degree)
        if params["data"] is not None:
            x, y = read_points(params["data"], per_point)
        else:
            memory.require(params["n_samples"] * per_point,
                           f"n_samples={params['n_samples']} at degree {degree}")
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

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        # The objective is a mean: sum(r²) equals it when r is scaled by 1/sqrt(n). With
        # basis=orthogonal, V holds the orthonormal basis and x is its coefficients z: the
        # residuals are those of the same polynomial, in the optimizer's variables.
        y = data["y"]
        return (y - data["V"] @ x) * (1.0 / math.sqrt(y.shape[0]))

    def reference(self, instance: Instance) -> Reference:
        design, y = np.asarray(instance.data["V"]), np.asarray(instance.data["y"])
        if instance.basis is not None:  # V holds Q: its least squares is Qᵀy, exactly
            z = design.T @ y
            x = instance.to_user(z)
            # Qᵀy mapped back keeps ~7 digits on Wampler1; refined with exact residuals, x*
            # is the exact solution correctly rounded, as a refined run's x is.
            abscissae = getattr(instance, "abscissae", None)
            if abscissae is not None:
                refined = refine_least_squares(abscissae, y, np.asarray(instance.basis), x)
                x = refined.x if refined.converged else x
            return Reference(x=x, f=float(np.mean(np.square(y - design @ z))))
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
