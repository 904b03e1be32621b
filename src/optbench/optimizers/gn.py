"""Gauss–Newton with a backtracking (Armijo) line search.

One `step`: the Jacobian at x, the Gauss–Newton direction p minimizing ||J p + r|| (the
minimum-norm one where J is rank deficient: SVD of the column-scaled Jacobian, singular
values below n·eps·s_max dropped), then t = 1, 1/2, 1/4, ... until the sum of squares
f = ||r||² decreases by the Armijo condition f(x + t p) <= f(x) + c1·t·∇f·p, at most max_ls
halvings. The linear algebra runs on the host in numpy (optbench.optimizers.least_squares).

What ends a run (done() -> (status, message)):
    converged  the actual and predicted relative reductions of f are <= ftol; the relative
               change of the scaled x is <= xtol; the scaled gradient is <= gtol (MINPACK's
               tests, as lm has them); then, as lm, up to `refine` Gauss-Newton steps
               judged by their corrections (optbench.optimizers.least_squares)
    stalled    the line search found no decrease in max_ls halvings; p is not a descent
               direction (the Jacobian is too ill-conditioned at x); J is not finite at x
Without a trust region, Gauss–Newton can fail where lm does not (a large-residual fit, a
start far away): that is what lm is for.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import numpy as np

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import least_squares as ls


class GNState(NamedTuple):
    iteration: int
    done: tuple[str, str] | None
    refining: ls.Refining | None = None  # converged, now refining (as lm does)


def gauss_newton_direction(jac: np.ndarray, r: np.ndarray, colnorms: np.ndarray,
                           eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(p, D·p): the minimum-norm solution of min ||J p + r|| in the scaled variables
    D·p, D the column norms (so that the rank cutoff does not depend on units)."""
    diag = np.where(colnorms > 0, colnorms, 1.0)
    u, s, vt = ls.svd(jac / diag)
    if s.size == 0 or s[0] == 0:
        return np.zeros(jac.shape[1]), np.zeros(jac.shape[1])
    rank = int(np.sum(s > s[0] * max(jac.shape) * eps))
    q = -(vt[:rank].T @ ((u[:, :rank].T @ r) / s[:rank]))
    return q / diag, q


def gn(ftol: float = ls.FTOL, xtol: float = ls.XTOL, gtol: float = ls.GTOL,
       c1: float = 1e-4, max_ls: int = 40, refine: int = ls.REFINE_STEPS) -> Method:
    def init(x, xp):
        return GNState(0, None)

    def step(objective, x, state):
        eps = ls.machine_eps(objective)
        e = ls.evaluate(objective, x)
        iteration = state.iteration + 1

        def final(status: str, message: str) -> tuple:
            return x, GNState(iteration, (status, message)), e.f, e.g

        if not math.isfinite(e.fnorm):
            return x, GNState(iteration, None), e.f, e.g  # the runner: diverged
        if not np.all(np.isfinite(e.jac)):
            return final(ls.STALLED, "the Jacobian is not finite at x")
        gnorm = ls.scaled_gradient(e)
        if gnorm <= gtol:
            return final(*ls.undetermined((ls.CONVERGED, f"the residuals are orthogonal to "
                         f"the Jacobian's columns to gtol={gtol:g} (cosine {gnorm:.3g})"), e))
        x_host = ls.host(objective, x).reshape(-1)
        if state.refining is not None:
            diag = np.where(e.colnorms > 0, e.colnorms, 1.0)
            x_next, refining, verdict = ls.refine(objective, x, x_host, e, diag, eps,
                                                  state.refining, xtol, refine)
            return x_next, GNState(iteration, verdict, refining), e.f, e.g
        p, q = gauss_newton_direction(e.jac, e.r, e.colnorms, eps)
        f0 = e.fnorm * e.fnorm
        jp = e.jac @ p
        slope = 2.0 * float(e.r @ jp)  # ∇f·p
        diag = np.where(e.colnorms > 0, e.colnorms, 1.0)
        if ls.norm(q) <= xtol * ls.scaled_norm(diag, x_host, e.colnorms):
            # The whole correction is below xtol: no step can change x by more (a zero
            # residual reached to rounding, where no step decreases f measurably). Judged
            # before the slope: at the exact solution p is rounding and ∇f·p may be 0.
            verdict = ls.undetermined((ls.CONVERGED, f"the Gauss-Newton correction is "
                                       f"below xtol={xtol:g} relative to x"), e)
            return final(*verdict)
        if not slope < 0:
            return final(ls.STALLED, "the Gauss-Newton direction is not one of descent "
                         f"(∇f·p = {slope:.3g}): the Jacobian is too ill-conditioned at x")
        t = 1.0
        for _ in range(max_ls + 1):
            trial_host, trial = ls.point(objective, x_host + t * p)
            fnorm1 = ls.trial_norm(objective, trial)
            f1 = fnorm1 * fnorm1
            if f1 <= f0 + c1 * t * slope:
                break
            t *= 0.5
        else:
            return final(ls.STALLED, f"the line search found no decrease of the sum of "
                         f"squares in {max_ls} halvings (f = {f0:.6g})")
        actred = 1.0 - f1 / f0
        # The linear model's reduction along t·p: (2t·rᵀJp + t²||Jp||²)/f, made positive.
        prered = -(t * slope + t * t * float(jp @ jp)) / f0
        xnorm = ls.scaled_norm(diag, trial_host, e.colnorms)
        said = []
        if abs(actred) <= ftol and prered <= ftol:
            said.append(f"relative reduction of the sum of squares <= ftol={ftol:g}")
        if t * ls.norm(q) <= xtol * xnorm:
            said.append(f"relative change of x <= xtol={xtol:g}")
        done = ls.undetermined((ls.CONVERGED, " and ".join(said)), e) if said else None
        if done is not None and done[0] == ls.CONVERGED and refine > 0:
            return trial, GNState(iteration, None, ls.Refining(done)), e.f, e.g
        if done is None and f0 - f1 <= eps * f0 and t * ls.norm(q) <= (
                eps * xnorm):
            done = (ls.STALLED, "no further reduction is possible in this precision")
        return trial, GNState(iteration, done), e.f, e.g

    def done(state):
        return state.done

    return Method(init, ls.quiet(step), done)


class GaussNewton(Optimizer):
    name = "gn"
    description = ("Gauss-Newton with a backtracking (Armijo) line search on the residuals' "
                   "Jacobian; least-squares problems only")
    needs_residuals: ClassVar[bool] = True
    hyperparams = (
        *ls.tolerance_params(),
        Param("c1", "float", 1e-4, "Armijo's sufficient-decrease constant", low=0,
              low_open=True, high=1, high_open=True),
        Param("max_ls", "int", 40, "most halvings of the step in one line search", low=0),
        Param("refine", "int", ls.REFINE_STEPS, "most Gauss-Newton refinement steps after "
              "the tolerances are met, judged by the contraction of the corrections (0: "
              "none)", low=0),
    )

    def method(self, **hp):
        return gn(**hp)


@hookimpl
def register_optimizers(register):
    register(GaussNewton())
