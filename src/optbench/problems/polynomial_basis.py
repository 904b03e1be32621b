"""Polynomial bases for least squares: the Vandermonde matrix and an orthonormal basis of
the same polynomials that loses no digits to rounding (what `-P basis=orthogonal` fits in).

The orthonormal basis is built with a little doubled-precision arithmetic (error-free
transformations: numpy has no fused multiply-add and no float128 everywhere), and so is the
final refinement of a converged run (OrthogonalInstance.finalize): the digits it reports do
not depend on which BLAS computed the run, nor on its code path (AVX-512, AVX2, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.core import Instance

LARGE_SAMPLE = 1 << 16
"""From this many points the design matrix is stored column-major and the regression's
reference is computed block by block (regression.streamed_reference)."""


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


def _fast_two_sum(a, b):
    """a + b = s + e exactly, where |a| >= |b| (or a is 0)."""
    s = a + b
    return s, b - (s - a)


def _two_product(a, b):
    """a·b = p + e exactly (Dekker's split; numpy has no fused multiply-add)."""
    p = a * b
    a_hi = 134217729.0 * a
    a_hi = a_hi - (a_hi - a)
    b_hi = 134217729.0 * b
    b_hi = b_hi - (b_hi - b)
    a_lo, b_lo = a - a_hi, b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


# Double-double numbers: pairs (hi, lo) of arrays, value hi + lo, |lo| <= ulp(hi)/2, about
# 106 bits. Only elementwise numpy operations: each is one IEEE operation, so the results are
# the same whatever BLAS numpy or torch use and whatever instructions the CPU has.

def _dd_add(ah, al, bh, bl):
    s, e = _two_sum(ah, bh)
    return _fast_two_sum(s, e + (al + bl))


def _dd_mul(ah, al, bh, bl):
    p, e = _two_product(ah, bh)
    return _fast_two_sum(p, e + (ah * bl + al * bh))


def _dd_sum(hi, lo):
    """Sum over the first axis by halves: log2(n) vectorized double-double additions."""
    while hi.shape[0] > 1:
        if hi.shape[0] % 2:
            hi = np.concatenate([hi, np.zeros_like(hi[:1])])
            lo = np.concatenate([lo, np.zeros_like(lo[:1])])
        hi, lo = _dd_add(hi[0::2], lo[0::2], hi[1::2], lo[1::2])
    return hi[0], lo[0]


def _dd_matvec(a: np.ndarray, vh: np.ndarray, vl: np.ndarray):
    """a @ v, a in doubles, v and the result in double-double."""
    ph, pl = _dd_mul(a.T, 0.0, vh[:, None], vl[:, None])
    return _dd_sum(ph, pl)


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
    return OrthogonalInstance(inst.data, inst.from_user(x0), variables, basis, abscissae=x)


REFINE_WITHIN = math.sqrt(np.finfo(np.float64).eps)
"""A run is refined only when its fitted values are within this fraction of ‖y‖ of the
least-squares fit (half of float64's digits): the refinement then recomputes the digits
that rounding in the run's arithmetic left uncertain, and does no optimizer's work."""


@dataclass(frozen=True)
class OrthogonalInstance(Instance):
    """The regression in an orthonormal basis, with the sample's abscissae kept for the
    final refinement of float64 runs (see `finalize`)."""

    abscissae: Any = None

    def finalize(self, x: Any, dtype: str) -> tuple[Any, str]:
        """A converged float64 run's x, refined to the least-squares solution of the data as
        read, correctly rounded (refine_least_squares); the note says that it was.

        Why: the run's residuals y − Q·z are computed by the backend's BLAS, whose order of
        sums differs between libraries and CPU code paths (MKL on AVX-512 or AVX2, OpenBLAS's
        kernels); in ill-conditioned fits (NIST's Wampler) the last digits of x followed that
        order. Refinement with exact residuals has one answer whatever the path.
        """
        x = np.asarray(x, dtype=np.float64)
        if dtype != "float64" or self.abscissae is None or not np.all(np.isfinite(x)):
            return x, ""
        result = refine_least_squares(self.abscissae, np.asarray(self.data["y"]),
                                      np.asarray(self.basis), x)
        if result.distance > REFINE_WITHIN:  # not converged: the run's x stands as it is
            return x, ""
        if not result.converged:
            return x, ("not refined: exact-residual refinement did not converge "
                       "(the basis is too ill-conditioned)")
        nonzero = x != 0
        moved = float(np.max(np.abs(result.x - x)[nonzero] / np.abs(x[nonzero]),
                             initial=0.0))
        return result.x, f"x refined with exact residuals (moved by at most {moved:.1e} relative)"


@dataclass(frozen=True)
class Refinement:
    x: np.ndarray
    distance: float
    """‖fitted values − least-squares fit‖ / ‖y‖ at the starting point, computed exactly."""
    converged: bool


def normal_residual(t: np.ndarray, y: np.ndarray, xh: np.ndarray, xl: np.ndarray,
                    rows: int = LARGE_SAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Vᵀ(y − V·x) in double-double, V = vander(t) with exact powers, x = xh + xl.

    Residuals by Horner's rule and the sums of their products with the powers are carried
    in double-double: their rounding is about 2⁻¹⁰⁶ of the terms summed, far below a
    double's, so the result is that of exact arithmetic for every purpose here. Row blocks
    keep the temporaries small for large samples.
    """
    p = xh.size
    gh, gl = np.zeros(p), np.zeros(p)
    for lo in range(0, t.size, rows):
        tb, yb = t[lo:lo + rows], y[lo:lo + rows]
        ah, al = np.full_like(tb, xh[0]), np.full_like(tb, xl[0])
        for k in range(1, p):
            ah, al = _dd_mul(ah, al, tb, 0.0)
            ah, al = _dd_add(ah, al, xh[k], xl[k])
        rh, rl = _dd_add(yb, 0.0, -ah, -al)
        ph, pl = np.ones_like(tb), np.zeros_like(tb)
        for j in range(p - 1, -1, -1):  # the powers t⁰, t¹, ...: columns last to first
            sh, sl = _dd_sum(*_dd_mul(ph, pl, rh, rl))
            gh[j], gl[j] = _dd_add(gh[j], gl[j], sh, sl)
            if j:
                ph, pl = _dd_mul(ph, pl, tb, 0.0)
    return gh, gl


def refine_least_squares(t: np.ndarray, y: np.ndarray, basis: np.ndarray, x: np.ndarray,
                         max_passes: int = 6) -> Refinement:
    """Iterative refinement of x towards the exact least-squares solution of y ≈ vander(t)·x
    (t and y the doubles read; powers exact), with residuals in double-double.

    A correction is x += B·Bᵀ·Vᵀr, B = `basis` (V·B is orthonormal up to rounding, so
    B·Bᵀ ≈ (VᵀV)⁻¹ and Bᵀ·Vᵀr is the distance to the fit in the orthonormal variables). Its
    fixed point is Vᵀr = 0 exactly, whatever B's rounding: B only sets how fast the passes
    converge, and x is held in double-double until a pass no longer changes its rounding to
    doubles. The result is then the exact solution correctly rounded — the same bits from
    any starting point near it, so from any BLAS. `converged` is False where the passes do
    not contract (a basis too ill-conditioned for the doubles it is stored in).
    """
    eps = np.finfo(np.float64).eps
    scale = float(np.sqrt(np.sum(y * y))) or 1.0
    xh, xl = np.array(x, dtype=np.float64), np.zeros(x.size)
    distance, previous = math.inf, math.inf
    for npass in range(max_passes):
        gh, gl = normal_residual(t, y, xh, xl)
        wh, wl = _dd_matvec(basis.T, gh, gl)
        size = float(np.sqrt(np.sum(wh * wh)))
        if not math.isfinite(size):
            break
        if npass == 0:
            distance = size / scale
            if distance > REFINE_WITHIN:
                break
        elif size > previous / 2 and size > eps * eps * scale:
            break  # no contraction, and not yet at double-double's rounding
        previous = size
        dh, dl = _dd_matvec(basis, wh, wl)
        nh, nl = _dd_add(xh, xl, dh, dl)
        if not np.all(np.isfinite(nh)):
            break
        settled = npass > 0 and np.array_equal(nh, xh)
        xh, xl = nh, nl
        if settled:
            return Refinement(xh, distance, True)
    return Refinement(np.array(x, dtype=np.float64), distance, False)
