"""Levenberg–Marquardt in Moré's scaled trust-region form, as MINPACK's lmder.

One `step` is one outer iteration of lmder: the Jacobian at x (the backend's, through
Objective.residuals_and_jacobian), then trial steps p solving

    min ||J p + r||   subject to   ||D p|| <= Δ

(D the diagonal scaling: the running maximum of the Jacobian's column norms, lmder's mode 1)
until one reduces the sum of squares enough (ratio of actual to predicted reduction >=
1e-4), each trial costing one evaluation of the residuals alone. Δ and the Levenberg
parameter λ are updated after every trial as lmder does them (same constants).

The subproblem (Moré's lmpar) is solved from the SVD of the scaled Jacobian J·D⁻¹ instead
of lmder's pivoted QR: λ = 0 when the Gauss–Newton step (minimum-norm where J is rank
deficient) lies within 1.1·Δ, else Moré's safeguarded Newton iteration on
φ(λ) = ||q(λ)|| − Δ to |φ| <= 0.1·Δ, starting from the previous λ as lmder does. With the
SVD each iteration of it is O(n): no refactorization per λ. Both run on the host in numpy
(see optbench.optimizers.least_squares).

What ends a run (done() -> (status, message)), lmder's info codes:
    converged  1: actual and predicted relative reductions of the sum of squares <= ftol
               2: Δ <= xtol·||D x|| (the relative change of x is below xtol)
               4: the cosine between r and every column of J <= gtol (at least 0)
    stalled    6, 7, 8: the same tests met at machine precision while the tolerances are
               smaller: no further reduction is possible in this dtype;
               the Jacobian is not finite at x; MAX_TRIALS trials without a reduction
After a "converged" test, up to `refine` Gauss–Newton steps (Anderson-mixed from the third
on) judged by the contraction of their corrections carry x to the digits the tests cannot
see (least_squares.refine); the message says how many were taken and why they ended.
refine=0 stops where lmder stops.
A non-finite sum of squares at x is returned as f, and the runner ends the run "diverged".
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import numpy as np

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import least_squares as ls

MAX_TRIALS = 200  # trials in one iteration; Δ shrinks by >= 10x on each failed one
LMPAR_ITERATIONS = 10  # lmpar's limit


class LMState(NamedTuple):
    iteration: int  # outer iterations begun
    diag: Any  # D (numpy), None before the first iteration
    delta: float  # Δ
    par: float  # λ of the last subproblem (lmpar starts from it)
    done: tuple[str, str] | None
    refining: ls.Refining | None = None  # converged, now refining (see `refine`)


def lmpar(s: np.ndarray, vt: np.ndarray, uf: np.ndarray, delta: float, par: float,
          eps: float) -> tuple[float, np.ndarray]:
    """Moré's Levenberg–Marquardt parameter: (λ, q) with q = −(ĴᵀĴ + λI)⁻¹Ĵᵀr, Ĵ = U·s·Vᵀ,
    uf = Uᵀr, and ||q|| within 10% of Δ unless λ = 0 (the Gauss–Newton step fits)."""
    n = vt.shape[1]
    if s.size == 0 or s[0] == 0:
        return 0.0, np.zeros(n)
    rank = np.count_nonzero(s > s[0] * max(vt.shape[0], n, uf.size) * eps)
    su = s * uf
    gn = -(vt[:rank].T @ (uf[:rank] / s[:rank]))
    gn_norm = math.sqrt(float(gn @ gn))
    if gn_norm - delta <= 0.1 * delta:
        return 0.0, gn
    # φ in plain floats: a fit has a handful of parameters, and numpy's per-call overhead
    # on arrays of 2-10 numbers would cost more than the arithmetic (this loop ran 100 µs a
    # call in numpy, most of lm's own time per step).
    terms = list(zip((s * s).tolist(), su.tolist(), strict=True))

    def phi(lam: float) -> tuple[float, float]:
        q2 = cubed = 0.0
        for s2, su_j in terms:
            denom = s2 + lam
            t = su_j / denom
            t *= t
            q2 += t
            cubed += t / denom
        q_norm = math.sqrt(q2)
        return q_norm - delta, -cubed / q_norm

    # Bounds on λ: phi(upper) <= 0 (||Ĵᵀr||/Δ); the Newton step from 0 where J has full rank
    # (φ is convex in λ, so it undershoots the root).
    upper = math.sqrt(float(su @ su)) / delta
    lower = 0.0
    if rank == n:
        f0, d0 = phi(0.0)
        lower = -f0 / d0
    lam = par
    for _ in range(LMPAR_ITERATIONS):
        if not lower <= lam <= upper or lam == 0:
            lam = max(0.001 * upper, math.sqrt(lower * upper))
        value, derivative = phi(lam)
        if abs(value) <= 0.1 * delta:
            break
        if value < 0:
            upper = lam
        newton = value / derivative
        lower = max(lower, lam - newton)
        lam = lam - (value + delta) / delta * newton
    return lam, -(vt.T @ (su / (s * s + lam)))


def lm(ftol: float = ls.FTOL, xtol: float = ls.XTOL, gtol: float = ls.GTOL,
       factor: float = 100.0, scale: str = "jacobian", refine: int = ls.REFINE_STEPS
       ) -> Method:
    def init(x, xp):
        return LMState(0, None, 0.0, 0.0, None)

    def step(objective, x, state):
        eps = ls.machine_eps(objective)
        e = ls.evaluate(objective, x)
        iteration = state.iteration + 1

        def final(status: str, message: str, st: LMState = state) -> tuple:
            return x, st._replace(iteration=iteration, done=(status, message)), e.f, e.g

        if not math.isfinite(e.fnorm):
            return x, state._replace(iteration=iteration), e.f, e.g  # runner: diverged
        if not ls.every(np.isfinite(e.jac)):
            return final(ls.STALLED, "the Jacobian is not finite at x")
        x_host = ls.host(objective, x).reshape(-1)
        n = x_host.size
        colnorms = np.where(e.colnorms > 0, e.colnorms, 1.0)
        if scale == "none":
            diag = np.ones(n)
        elif state.diag is None:
            diag = colnorms
        else:
            diag = np.maximum(state.diag, colnorms)
        xnorm = ls.scaled_norm(diag, x_host, e.colnorms)
        delta, par = state.delta, state.par
        if state.diag is None:
            delta = factor * xnorm if xnorm > 0 else factor
        state = LMState(iteration, diag, delta, par, None, state.refining)
        if state.refining is not None:
            x_next, refining, verdict = ls.refine(objective, x, x_host, e, diag, eps,
                                                  state.refining, xtol, refine)
            return x_next, state._replace(refining=refining, done=verdict), e.f, e.g

        gnorm = ls.scaled_gradient(e)
        if gnorm <= gtol:
            return final(*ls.undetermined((ls.CONVERGED, f"the residuals are orthogonal to "
                         f"the Jacobian's columns to gtol={gtol:g} (cosine {gnorm:.3g})"), e))

        u, s, vt = ls.svd(e.jac / diag)
        uf = u.T @ e.r
        fnorm = e.fnorm
        for _ in range(MAX_TRIALS):
            par, q = lmpar(s, vt, uf, delta, par, eps)
            p = q / diag
            pnorm = ls.norm(q)
            if iteration == 1:
                delta = min(delta, pnorm)
            trial_host, trial = ls.point(objective, x_host + p)
            fnorm1 = ls.trial_norm(objective, trial)
            actred = 1.0 - (fnorm1 / fnorm) ** 2 if 0.1 * fnorm1 < fnorm else -1.0
            temp1 = ls.norm(e.jac @ p) / fnorm
            temp2 = math.sqrt(par) * pnorm / fnorm
            prered = temp1 * temp1 + temp2 * temp2 / 0.5
            dirder = -(temp1 * temp1 + temp2 * temp2)
            ratio = actred / prered if prered != 0 else 0.0
            # Δ and λ as lmder updates them.
            if ratio <= 0.25:
                temp = 0.5 if actred >= 0 else 0.5 * dirder / (dirder + 0.5 * actred)
                if 0.1 * fnorm1 >= fnorm or temp < 0.1:
                    temp = 0.1
                delta = temp * min(delta, pnorm / 0.1)
                par = par / temp
            elif par == 0 or ratio >= 0.75:
                delta = pnorm / 0.5
                par = 0.5 * par
            accepted = ratio >= 1e-4
            if accepted:
                xnorm = ls.scaled_norm(diag, trial_host, e.colnorms)
            new_state = state._replace(delta=delta, par=par)
            x_out = trial if accepted else x
            reason = _verdict(actred, prered, ratio, delta, xnorm, gnorm, ftol, xtol, gtol,
                              eps)
            if reason is not None and reason[0] == ls.CONVERGED and refine > 0:
                # An accepted step with λ = 0 was a Gauss–Newton step: the refinement's
                # first correction (least_squares.refine, a seeded start).
                seeded = (ls.Refining(reason, 0, x, fnorm, pnorm) if accepted and par == 0
                          else ls.Refining(reason))
                return x_out, new_state._replace(refining=seeded), e.f, e.g
            if reason is not None:
                return x_out, new_state._replace(done=ls.undetermined(reason, e)), e.f, e.g
            if accepted:
                return x_out, new_state, e.f, e.g
        return final(ls.STALLED, f"no reduction of the sum of squares in {MAX_TRIALS} "
                     f"trial steps", state._replace(delta=delta, par=par))

    def done(state):
        return state.done

    return Method(init, ls.quiet(step), done)


def _verdict(actred: float, prered: float, ratio: float, delta: float, xnorm: float,
             gnorm: float, ftol: float, xtol: float, gtol: float, eps: float
             ) -> tuple[str, str] | None:
    """lmder's tests after a trial: (status, message), or None to go on."""
    f_met = abs(actred) <= ftol and prered <= ftol and 0.5 * ratio <= 1
    x_met = delta <= xtol * xnorm
    if f_met or x_met:
        said = []
        if f_met:
            said.append(f"relative reduction of the sum of squares <= ftol={ftol:g}")
        if x_met:
            said.append(f"relative change of x <= xtol={xtol:g}")
        return ls.CONVERGED, " and ".join(said)
    if abs(actred) <= eps and prered <= eps and 0.5 * ratio <= 1:
        return ls.STALLED, (f"ftol={ftol:g} is too small: no further reduction of the sum "
                            f"of squares is possible in this precision")
    if delta <= eps * xnorm:
        return ls.STALLED, (f"xtol={xtol:g} is too small: no further improvement of x is "
                            f"possible in this precision")
    if gnorm <= eps:
        return ls.STALLED, (f"gtol={gtol:g} is too small: the residuals are orthogonal to "
                            f"the Jacobian's columns to machine precision")
    return None


SCALES = ("jacobian", "none")


class LevenbergMarquardt(Optimizer):
    name = "lm"
    description = ("Levenberg-Marquardt (MINPACK lmder: scaled trust region) on the "
                   "residuals' Jacobian; least-squares problems only")
    needs_residuals: ClassVar[bool] = True
    hyperparams = (
        *ls.tolerance_params(),
        Param("factor", "float", 100.0, "initial trust-region radius: factor·||D x0||",
              low=0, low_open=True),
        Param("scale", "str", "jacobian", "diagonal scaling D: jacobian (the running "
              "maximum of the column norms, MINPACK's mode 1) or none", choices=SCALES),
        Param("refine", "int", ls.REFINE_STEPS, "most Gauss-Newton refinement steps after "
              "the tolerances are met, each kept only where the iteration contracts (0: "
              "stop where MINPACK stops)", low=0),
    )

    def method(self, **hp):
        return lm(**hp)


@hookimpl
def register_optimizers(register):
    register(LevenbergMarquardt())
