"""What the least-squares optimizers (lm, gn) share: the residuals and Jacobian on the host,
MINPACK's scaled gradient test, and the hyperparameters and statuses of its tests.

Where the arithmetic runs: the backend evaluates r(x) and J(x) (its own automatic
differentiation, in its dtype and on its device); r and J then come to the host once per
Jacobian (r alone once per trial point), and the small linear algebra — the SVD of the m×n
Jacobian and the n×n trust-region subproblem — is numpy in float64. Least-squares fits have
few parameters, so that work is microseconds, and it is the same numpy code on every
backend: trajectories differ only by the rounding of r and J.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from optbench.core import Param

FTOL_HELP = ("converged when both the actual and the predicted relative reduction of the "
             "sum of squares are at most this")
XTOL_HELP = "converged when the relative change of the scaled x is at most this"
GTOL_HELP = ("converged when the cosine between the residuals and every column of the "
             "Jacobian is at most this")

# The defaults ask for about ten significant digits of x and of the sum of squares: what a
# fit's reader takes from its table, and what NIST's reference fits are judged on (LRE >= 8
# is "good"). MINPACK's sqrt(eps) ~1.5e-8 stops earlier, at 5-7 digits on ill-conditioned
# fits; the extra iterations cost little, as lm converges fast near the solution.
FTOL = 1e-10
XTOL = 1e-10
GTOL = 0.0


def tolerance_params() -> tuple[Param, ...]:
    return (
        Param("ftol", "float", FTOL, FTOL_HELP, low=0),
        Param("xtol", "float", XTOL, XTOL_HELP, low=0),
        Param("gtol", "float", GTOL, GTOL_HELP, low=0),
    )


class Evaluation(NamedTuple):
    """r and J at a point, on the host in float64, and what the steps need of them."""

    r: np.ndarray  # (m,)
    jac: np.ndarray  # (m, n)
    fnorm: float  # ||r||
    colnorms: np.ndarray  # ||J[:, j]||
    jtr: np.ndarray  # Jᵀr (host)
    f: float  # sum r² = ||r||², on the host (the step's f)
    g: np.ndarray  # 2 Jᵀr, on the host (the step's g)


def host(objective: Any, array: Any) -> np.ndarray:
    return np.asarray(objective.to_numpy(array), dtype=np.float64)


def quiet(step: Any) -> Any:
    """`step` with numpy's overflow and invalid-operation warnings off, once for the whole
    step: a trial point where the model overflows is an ordinary event here (the step is
    rejected, the radius shrinks), not something to warn about."""
    def quiet_step(objective: Any, x: Any, state: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore"):
            return step(objective, x, state)

    return quiet_step


def every(mask: np.ndarray) -> bool:
    """mask.all(), at a third of its per-call cost (it goes through Python)."""
    return np.count_nonzero(mask) == mask.size


def norm(v: np.ndarray) -> float:
    """||v||, as np.linalg.norm computes it for a real vector (sqrt of the dot product),
    without its per-call overhead: these solvers take it several times a step on vectors
    of a few numbers. Called inside `quiet` (an overflow is inf, silently)."""
    return math.sqrt(float(v @ v))


try:  # LAPACK's reduced SVD as numpy's linalg calls it (present in numpy 1.x and 2.x)
    from numpy.linalg._umath_linalg import svd_s as _svd_s
except ImportError:  # pragma: no cover - another numpy layout: the public function
    _svd_s = None


def svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.linalg.svd(a, full_matrices=False) of a real float64 matrix, calling LAPACK's
    gufunc directly: np.linalg's checks and wrapping cost ~10 µs a call, as much as the
    factorization of a fit's small Jacobian. Where LAPACK did not converge (its outputs are
    then NaN), np.linalg.svd is called, and raises LinAlgError as it always did."""
    if _svd_s is not None and a.dtype == np.float64 and a.ndim == 2 and a.size:
        u, s, vt = _svd_s(a, signature="d->ddd")
        if math.isfinite(float(s.sum())):
            return u, s, vt
    return np.linalg.svd(a, full_matrices=False)


def evaluate(objective: Any, x: Any) -> Evaluation:
    r_b, j_b = objective.residuals_and_jacobian(x)
    r = host(objective, r_b).reshape(-1)
    jac = host(objective, j_b).reshape(r.size, -1)
    fnorm = norm(r)
    colnorms = np.sqrt((jac * jac).sum(axis=0))
    jtr = jac.T @ r
    # The step's f and g stay on the host, where they were computed: the runner reads f
    # as a float and takes g's norm (runner.loop), and a round trip to the device (a
    # reduction there, a host-to-device copy of g) cost 30 µs a step on torch and more on
    # jax, a tenth of a fit's step. The record's final f and gradient are the backend's.
    return Evaluation(r, jac, fnorm, colnorms, jtr, fnorm * fnorm, 2.0 * jtr)


def trial_norm(objective: Any, x_trial: Any) -> float:
    """||r|| at a trial point; inf where r is not finite (the step is then too long)."""
    r = host(objective, objective.residuals(x_trial))
    value = norm(r)
    return value if math.isfinite(value) else math.inf


def scaled_gradient(e: Evaluation) -> float:
    """MINPACK's gnorm: max_j |J[:, j]·r| / (||J[:, j]||·||r||), over nonzero columns (0
    where r is 0): the cosine of the angle between r and the Jacobian's columns."""
    if e.fnorm == 0:
        return 0.0
    nonzero = e.colnorms > 0
    if every(nonzero):
        return float((np.abs(e.jtr) / (e.colnorms * e.fnorm)).max())
    if not nonzero.any():
        return 0.0
    dots = np.abs(e.jtr[nonzero])
    return float(np.max(dots / (e.colnorms[nonzero] * e.fnorm)))


def point(objective: Any, x_host: np.ndarray) -> tuple[np.ndarray, Any]:
    """x as the backend holds it (rounded to the run's dtype) and the backend's array."""
    x_b = objective.from_numpy(x_host)
    if objective.dtype == "float64":
        return x_host, x_b
    return np.asarray(x_host.astype(np.dtype(objective.dtype)), dtype=np.float64), x_b


def scaled_norm(diag: np.ndarray, x: np.ndarray, colnorms: np.ndarray) -> float:
    """||D x|| over the parameters the residuals depend on at x (a nonzero Jacobian
    column). MINPACK's ||D x|| counts every parameter: one that ran off to 1e51 where the
    model no longer depends on it (an exponential rate, NIST MGH17 on Gauss-Newton) makes
    every step "relatively" small, and the xtol test would call that point converged."""
    scaled = diag * x
    depends = colnorms > 0
    if not every(depends):
        scaled = scaled[depends]
    return norm(scaled)


def undetermined(verdict: tuple[str, str], e: Evaluation) -> tuple[str, str]:
    """A "converged" verdict where some Jacobian column is zero becomes "stalled": the
    residuals do not depend on those parameters there (an exponential's rate run off to
    1e51, say), so the point is stationary only because they are stuck, and nothing
    determines them."""
    zero = np.flatnonzero(e.colnorms == 0)
    if verdict[0] != CONVERGED or zero.size == 0:
        return verdict
    names = ", ".join(f"x[{i}]" for i in zero[:8]) + (", ..." if zero.size > 8 else "")
    return STALLED, (f"{verdict[1]}; but the residuals do not depend on {names} at this "
                     f"point (zero Jacobian column): not determined, not a fit")


_EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}


def machine_eps(objective: Any) -> float:
    eps = _EPS.get(objective.dtype)
    return eps if eps is not None else float(np.finfo(np.dtype(objective.dtype)).eps)


CONVERGED = "converged"
STALLED = "stalled"


# Refinement after convergence. MINPACK's tests judge a step by the reduction of the sum of
# squares it brings. Near the solution that reduction is quadratic in the error of x, and it
# falls below ftol (or below the rounding of the sum itself) while x still has digits to
# gain: on a large-residual fit Gauss–Newton converges only linearly (NIST ENSO: each step
# keeps 0.64 of the error), and lmder stops there with 4 correct digits. The Gauss–Newton
# correction q = −J⁺r, computed from Jᵀr, still carries those digits. So once the tests are
# met, lm and gn go on with full Gauss–Newton steps judged by the corrections instead of by
# f (as Deuflhard's Gauss–Newton codes do): the ratio θ = ||q_k+1|| / ||q_k|| of successive
# corrections (scaled norm) is the iteration's rate, and ||q_k+1||·θ/(1 − θ) bounds the
# error left after step k+1. The refinement ends with that step once the bound is at most
# xtol·||D x||, or once the correction is below rounding; where θ > CONTRACTION (the
# iteration does not converge there) or the sum of squares grew measurably, it ends at the
# point before the last step (the point the tests accepted, at worst). Each step costs one
# Jacobian. Where the method's own last step was a full Gauss–Newton step (lm's λ = 0), it
# is the first correction of that sequence (a seeded start: Refining's prev_* describe it),
# so a fit that contracts fast ends after one refinement step, not two.
#
# Acceleration. Near the solution that iteration is linear, e_k+1 = M·e_k with M =
# (JᵀJ)⁻¹·Σ r_i∇²r_i, and on a large-residual fit its rate is slow (NIST Thurber: θ = 0.67,
# 26 Jacobians for 10 digits). From its third step on, the refinement takes Anderson's
# mixing of the last ANDERSON_MEMORY points instead of the plain step (Walker & Ni 2011;
# for a linear map it is GMRES on (I − M)e = q, done in at most n + 1 steps): the point
# x − (ΔX + ΔP)γ + p − ... minimizing the scaled norm of the combined corrections. The
# tests above are unchanged, with θ the plain iteration's rate ρ measured by its first two
# steps (the error of a point is about ||q||/(1 − ρ) however it was reached, and the final
# point is a plain step, whose error is about ρ||q||/(1 − ρ)). A mixed step that contracts
# less than ρ, or increases the sum of squares, is undone: the refinement takes the plain
# step from the point before it instead, and mixes no more (rounding in the Jacobian, as
# fd's, can make the mixture worse than the plain iteration; NIST Lanczos3 on fd).
CONTRACTION = 0.9
ANDERSON_MEMORY = 8
REFINE_STEPS = 100  # the default limit of refinement steps after convergence


class Refining(NamedTuple):
    verdict: tuple[str, str]  # the tests' verdict (converged), reported at the end
    steps: int = 0  # refinement steps taken
    prev_x: Any = None  # the point before the last step (backend array); None before one
    # (a seeded start: the point before the method's own last step, a Gauss–Newton step)
    prev_fnorm: float = math.inf  # ||r|| there
    prev_q: float = math.inf  # ||q|| of the last step (scaled)
    rate: float = math.nan  # ρ: the plain iteration's rate, once two plain steps are taken
    history: tuple[tuple[np.ndarray, np.ndarray], ...] = ()  # (x, p) on the host, for mixing
    mixed: bool = False  # the last step was a mixed one
    mixing: bool = True  # no mixed step failed yet


def gauss_newton(jac: np.ndarray, r: np.ndarray, diag: np.ndarray, eps: float
                 ) -> np.ndarray:
    """The scaled minimum-norm Gauss–Newton step q = D·p minimizing ||J p + r||."""
    u, s, vt = svd(jac / diag)
    if s.size == 0 or s[0] == 0:
        return np.zeros(jac.shape[1])
    rank = np.count_nonzero(s > s[0] * max(jac.shape) * eps)
    return -(vt[:rank].T @ ((u[:, :rank].T @ r) / s[:rank]))


def refine(objective: Any, x: Any, x_host: np.ndarray, e: Evaluation, diag: np.ndarray,
           eps: float, ref: Refining, xtol: float, limit: int
           ) -> tuple[Any, Refining, tuple[str, str] | None]:
    """One refinement step from x (see above): (next x, state, final verdict or None)."""
    status, message = ref.verdict

    def finish(x_final: Any, steps: int, why: str) -> tuple:
        note = (f"; then {steps} Gauss-Newton refinement step{'s' if steps != 1 else ''} "
                f"({why})" if steps else "")
        return x_final, ref, undetermined((status, message + note), e)

    back = max(ref.steps - 1, 0)

    def undo_mixing() -> tuple:
        # The plain step from the point before the mixed one, and no more mixing.
        x_before, p_before = ref.history[-1]
        _, trial = point(objective, x_before + p_before)
        return trial, ref._replace(mixed=False, mixing=False), None

    # Back to the point before the last step, unless that step was the method's own (a
    # seeded start, no refinement step taken): then here, where its tests stopped.
    before = ref.prev_x if ref.steps else x
    grew = ref.prev_x is not None and not e.fnorm <= ref.prev_fnorm * (1 + math.sqrt(eps))
    if grew and ref.mixed:
        return undo_mixing()
    if grew:
        return finish(before, back, "the next one increased the sum of squares")
    q = gauss_newton(e.jac, e.r, diag, eps)
    q_norm = norm(q)
    xnorm = max(scaled_norm(diag, x_host, e.colnorms), np.finfo(float).tiny)
    error = math.inf
    rate, history = ref.rate, ref.history
    if ref.prev_x is not None:
        theta = q_norm / ref.prev_q
        if not theta <= CONTRACTION:
            return finish(before, back, f"the next one did not contract: rate "
                          f"{theta:.2g}")
        if ref.mixed and theta > rate:
            return undo_mixing()
        if math.isnan(rate):
            rate = theta  # the second plain step: the plain iteration's rate
        bound = max(rate, theta)
        error = q_norm * bound / (1.0 - bound) / xnorm
    if not math.isfinite(q_norm) or q_norm <= eps * xnorm:  # q not finite: nor is ||q||
        return finish(x, ref.steps, "the correction is below rounding")
    if ref.steps >= limit:
        return finish(x, ref.steps, f"the limit refine={limit}")
    p = q / diag
    history = (*history, (x_host, p))[-(ANDERSON_MEMORY + 1):]
    ahead = Refining(ref.verdict, ref.steps + 1, x, e.fnorm, q_norm, rate, history,
                     False, ref.mixing)
    if error <= xtol:
        _, trial = point(objective, x_host + p)
        x_final, _, verdict = finish(trial, ahead.steps, f"estimated relative error of x "
                                     f"{error:.1g}")
        return x_final, ahead, verdict
    mixed = _anderson(history, diag, eps) if ref.mixing and not math.isnan(rate) else None
    _, trial = point(objective, x_host + p if mixed is None else mixed)
    return trial, ahead._replace(mixed=mixed is not None), None


def _anderson(history: tuple[tuple[np.ndarray, np.ndarray], ...], diag: np.ndarray,
              eps: float) -> np.ndarray | None:
    """Anderson's mixing of the points (x_j, p_j) (p_j the plain correction at x_j): x_k +
    p_k − (ΔX + ΔP)γ, γ minimizing ||D(p_k − ΔP γ)||; None with fewer than two points."""
    if len(history) < 2:
        return None
    xs = np.stack([h[0] for h in history], axis=1)
    ps = np.stack([h[1] for h in history], axis=1)
    dx, dp = np.diff(xs, axis=1), np.diff(ps, axis=1)
    u, s, vt = svd(dp * diag[:, None])
    if s.size == 0 or not s[0] > 0:
        return None
    keep = s > s[0] * max(dp.shape) * eps
    gamma = vt[keep].T @ ((u[:, keep].T @ (diag * ps[:, -1])) / s[keep])
    mixed = xs[:, -1] + ps[:, -1] - (dx + dp) @ gamma
    return mixed if np.all(np.isfinite(mixed)) else None
