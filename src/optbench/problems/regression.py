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
        if design.shape[0] > LARGE_SAMPLE:
            return streamed_reference(design, y)
        # numpy.polyfit's method: least squares on the column-scaled Vandermonde matrix.
        scale = column_scale(design)
        w, *_ = np.linalg.lstsq(design / scale, y, rcond=None)
        w = w / scale
        return Reference(x=w, f=float(np.mean(np.square(y - design @ w))))


LARGE_SAMPLE = 1 << 16
"""From this many points the reference is computed block by block (streamed_reference)."""


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


def vandermonde(x: np.ndarray, degree: int) -> np.ndarray:
    """numpy.vander(x, degree + 1), the same numbers. A large sample's is stored
    column-major: a block of rows is then degree + 1 contiguous runs, which a streaming
    kernel reads at memory speed, and no row-major temporary of the whole matrix is made.
    A small one keeps numpy's row-major order, and with it the rounding that V @ w has
    always had (the order of a matrix-vector product's sums follows the layout)."""
    if x.size < LARGE_SAMPLE:
        return np.vander(x, degree + 1)
    design = np.empty((x.size, degree + 1), order="F")
    design[:, degree] = 1.0
    if degree:
        design[:, degree - 1] = x
    for j in range(degree - 2, -1, -1):
        np.multiply(design[:, j + 1], x, out=design[:, j])
    return design


def column_scale(design: np.ndarray) -> np.ndarray:
    scale = np.sqrt(np.sum(design * design, axis=0))
    return np.where(scale == 0, 1.0, scale)


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_product(a, b):
    """a·b = p + e exactly (Dekker's split; numpy has no fused multiply-add)."""
    p = a * b
    a_hi = 134217729.0 * a
    a_hi = a_hi - (a_hi - a)
    b_hi = 134217729.0 * b
    b_hi = b_hi - (b_hi - b)
    a_lo, b_lo = a - a_hi, b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _accurate_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in doubled precision, rounded once: as if computed exactly, then rounded."""
    total = np.zeros((a.shape[0], b.shape[1]))
    error = np.zeros_like(total)
    for j in range(a.shape[1]):
        p, p_err = _two_product(a[:, j:j + 1], b[j:j + 1, :])
        total, s_err = _two_sum(total, p)
        error = error + (s_err + p_err)
    return total + error


def _shift_matrix(degree: int, center: float, width: float) -> np.ndarray:
    """M with w = M·a: a the coefficients in t = (x − center)/width, w those in x (both
    highest power first), each entry rounded once from exact rational arithmetic."""
    from fractions import Fraction

    c, h = Fraction(center), Fraction(width)
    m = np.zeros((degree + 1, degree + 1))
    for k in range(degree + 1):  # power of t
        for j in range(k + 1):  # power of x
            m[degree - j, degree - k] = float(math.comb(k, j) * (-c) ** (k - j) / h ** k)
    return m


def _orthonormal_basis(t: np.ndarray, y: np.ndarray, degree: int, shift: np.ndarray,
                       align: bool):
    """(Q, basis) for polynomials in t: Q = vander(t)·Bt orthonormal, basis = shift·Bt,
    with Bt's first column along a first least-squares estimate (see orthogonal_instance)."""
    vt = np.vander(t, degree + 1)
    scale = column_scale(vt)
    q, r = np.linalg.qr(vt / scale)
    eye = np.eye(degree + 1)
    bt = np.linalg.solve(r, eye) / scale[:, None]
    z = q.T @ y
    norm = float(np.linalg.norm(z))
    if align and degree > 0 and math.isfinite(norm) and norm > 0:
        # A reflection that turns the first axis onto z: the fit becomes z ≈ (±|z|, 0, ...).
        v = z / norm
        v[0] += math.copysign(1.0, v[0])
        bt = bt @ (eye - 2.0 * np.outer(v, v) / (v @ v))
    for _ in range(2):  # re-orthonormalize against Q as computed accurately
        q = _accurate_matmul(vt, bt)
        _, r = np.linalg.qr(q)
        bt = bt @ np.linalg.solve(r, eye)
    q = _accurate_matmul(vt, bt)
    return q, _accurate_matmul(shift, bt), vt, bt


def _amplification(q, basis, vt, bt, shift, y) -> float:
    """How much rounding the least-squares solution z = Qᵀy suffers in w = basis·z and in
    the fitted values: sums of absolute terms over the sums (1: no cancellation)."""
    z = q.T @ y
    a = bt @ z
    tiny = np.finfo(float).tiny
    fitted = max(float(np.linalg.norm(vt @ a)), tiny)
    w = max(float(np.linalg.norm(shift @ a)), tiny)
    return max(float(np.linalg.norm(np.abs(vt) @ np.abs(a))) / fitted,
               float(np.linalg.norm(np.abs(q) @ np.abs(z))) / fitted,
               float(np.linalg.norm(np.abs(shift) @ np.abs(a))) / w,
               float(np.linalg.norm(np.abs(basis) @ np.abs(z))) / w)


def _power_of_two_above(value: float) -> float:
    return 2.0 ** math.ceil(math.log2(value)) if value > 0 else 1.0


def orthogonal_instance(x: np.ndarray, y: np.ndarray, degree: int, x0: np.ndarray,
                        variables: tuple[str, ...]) -> Instance:
    """The same least squares in an orthonormal basis: Q = V·B with orthonormal columns.

    The objective mean((y − Q·z)²) has the Hessian (2/n)·I: every optimizer sees a perfectly
    conditioned problem, and the ill-conditioning of the monomials (NIST's Filip, Wampler)
    is left to the map w = B·z, done for reports. So that the map and the objective lose no
    digits to rounding:

    - Q = V·B is computed in doubled precision and rounded once, so the data the optimizer
      sees differ from exact polynomial values by rounding of each entry, not by the
      ill-conditioning of a factorization (a Householder Q is only normwise accurate).
    - B's first column lies along a first least-squares estimate (a reflection of a QR
      basis), so the solution is z ≈ (±|z|, small, ...): w = B·z and y − Q·z are then sums
      without cancellation, and the small components carry the correction.
    - The powers are of t = (x − c)/h, h a power of two: c = 0 (exact scaling), or the
      middle of the data where the estimate says the polynomial loses fewer digits
      evaluated about it (NIST's Filip: x in [-9, -3]); w = M·a maps the coefficients back.
    """
    h0 = _power_of_two_above(float(np.max(np.abs(x))))
    options = [(0.0, h0)]
    lo, hi = float(np.min(x)), float(np.max(x))
    if degree > 1 and hi > lo:
        h = _power_of_two_above((hi - lo) / 2)
        c = round((lo + hi) / 2 / h * 8) / 8 * h  # few significant bits: x − c mostly exact
        if c != 0:
            options.append((c, h))
    best = None
    for align in (False, True):
        for c, h in options:
            shift = _shift_matrix(degree, c, h)
            q, basis, vt, bt = _orthonormal_basis((x - c) / h, y, degree, shift, align)
            lost = _amplification(q, basis, vt, bt, shift, y)
            if best is None or lost < best[0]:
                best = (lost, q, basis)
        if best[0] <= 1.5:  # sums with little cancellation: the plain basis will do
            break
    _, q, basis = best
    inst = Instance(data={"V": q, "y": y}, x0=x0, variables=variables, basis=basis)
    return Instance(inst.data, inst.from_user(x0), variables, basis)


@hookimpl
def register_problems(register):
    register(Regression())
