"""Levenberg–Marquardt for F independent fits at once, on the backend's device (issue 16).

Every array has the fits on its leading axis and stays where the backend keeps it (a CUDA
device: no per-fit round trip to the host). One iteration, for every running fit at once:

    g = Jᵀr,  A = JᵀJ,  D² = running max of diag(A)         (MINPACK's scaling, mode 1)
    (A + λ·D²) δ = −g                                        (batched Cholesky, p small)
    r', J' at x + δ                                          (ONE batched call, r and J)
    ρ = actual / predicted relative reduction of the sum of squares (MINPACK's formulas)
    accepted where ρ >= 1e-4 and r', J' are finite: x, r, J take the trial's values

Damping: Nielsen's update of Marquardt's λ, per fit (accepted: λ·max(1/3, 1 − (2ρ − 1)³),
ν = 2; rejected: λ·ν, ν doubled). Why not Moré's trust region (the single fit's lm): its
inner λ iteration takes a different number of solves per fit, which a batch would wait for
at every step; here every fit costs exactly one solve and one evaluation per iteration, the
same program for all, as a GPU wants (Gpufit does the same with a ×10/÷10 rule; Nielsen's
smooth rule needs fewer rejected steps).

Tests per fit after every iteration, MINPACK's (ftol, xtol as the single fit's, 1e-10):
    converged  |actred| <= ftol and prered <= ftol and ρ/2 <= 1;  ||D·δ|| <= xtol·||D·x||;
               the residuals are all zero
    stalled    the same tests met at machine precision only (tolerances below it); the
               damping overflowed (no step reduces the sum of squares)
    max_steps  `max_steps` iterations without meeting them
    diverged   the residuals are not finite at the start
A fit that stops is frozen (its status leaves RUNNING, `where` keeps its values); the driver
(optbench.fitting.batch) removes frozen fits from the arrays once they are half of them, so
they cost nothing after that.

The linear solve is a Cholesky factorization written against xp over the batch (p³/6
element-wise operations on (F,) arrays): it never raises on a matrix that is not positive
definite (torch.linalg.solve would, for the whole batch), it reports such fits instead
(their step is rejected and λ grows), and it runs on every backend's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

# Status codes, kept as numbers in the backend's arrays (float: every backend has it).
RUNNING, FTOL, XTOL, BOTH, ZERO, MAX_STEPS, STALL_F, STALL_X, STALL_DAMPING, \
    STALL_JACOBIAN, DIVERGED = range(11)
CONVERGED_CODES = (FTOL, XTOL, BOTH, ZERO)

LAMBDA0 = 1e-3  # λ relative to D² (Nielsen's τ)
ACCEPT = 1e-4  # lmder's threshold on ρ
MAX_LAMBDA = 1e32  # beyond it no step can help: stalled
POLISH = 2  # iterations after the tolerances are met (a single fit's lm refines too)


@dataclass
class Batch:
    """The working set of fits: every field has them on its leading axis."""

    x: Any  # (F, p)
    r: Any  # (F, m) residuals at x
    J: Any  # (F, m, p) their Jacobian at x
    f: Any  # (F,) sum of squares at x
    lam: Any  # (F,) λ
    nu: Any  # (F,) ν, the growth factor of λ after a rejection
    d2: Any  # (F, p) D²
    status: Any  # (F,) code (RUNNING while it runs)
    steps: Any  # (F,) iterations taken
    verdict: Any  # (F,) the converged code met first, while the fit polishes (POLISH)
    polish: Any  # (F,) iterations since then

    def select(self, mask: Any) -> Batch:
        return Batch(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})


def init(objective: Any, xp: Any, X: Any, data: Any) -> Batch:
    """The batch at its start X (F, p): one batched evaluation of r and J."""
    r, J = objective.batched_residuals_and_jacobian(X, data)
    f = xp.sum(r * r, axis=1)
    d2 = xp.sum(J * J, axis=1)
    finite_j = xp.isfinite(xp.sum(J, axis=(1, 2)))  # one reduction (J may be a view)
    status = xp.where(xp.isfinite(f), xp.zeros_like(f) + RUNNING, xp.zeros_like(f) + DIVERGED)
    status = xp.where((status == RUNNING) & ~finite_j, xp.zeros_like(f) + STALL_JACOBIAN,
                      status)
    status = xp.where((status == RUNNING) & (f == 0), xp.zeros_like(f) + ZERO, status)
    return Batch(x=X, r=r, J=J, f=f, lam=xp.full_like(f, LAMBDA0), nu=xp.full_like(f, 2.0),
                 d2=xp.where(d2 > 0, d2, xp.ones_like(d2)), status=status,
                 steps=xp.zeros_like(f), verdict=xp.zeros_like(f) + RUNNING,
                 polish=xp.zeros_like(f))


def cholesky_solve(M: Any, b: Any, xp: Any) -> tuple[Any, Any]:
    """Solve M·y = b for each fit, M (F, p, p) symmetric, b (F, p): (y, ok), ok False
    where M is not (numerically) positive definite; y is then finite but meaningless."""
    p = M.shape[-1]
    L: list[list[Any]] = [[None] * p for _ in range(p)]
    ok = xp.isfinite(b[:, 0]) | ~xp.isfinite(b[:, 0])  # all True, of b's kind and device
    for j in range(p):
        s = M[:, j, j]
        for k in range(j):
            s = s - L[j][k] * L[j][k]
        good = s > 0
        ok = ok & good
        d = xp.sqrt(xp.where(good, s, xp.ones_like(s)))
        L[j][j] = d
        for i in range(j + 1, p):
            t = M[:, i, j]
            for k in range(j):
                t = t - L[i][k] * L[j][k]
            L[i][j] = t / d
    z: list[Any] = []
    for i in range(p):  # L z = b
        t = b[:, i]
        for k in range(i):
            t = t - L[i][k] * z[k]
        z.append(t / L[i][i])
    y: list[Any] = [None] * p
    for i in reversed(range(p)):  # Lᵀ y = z
        t = z[i]
        for k in range(i + 1, p):
            t = t - L[k][i] * y[k]
        y[i] = t / L[i][i]
    return xp.stack(y, axis=-1), ok


def step(objective: Any, xp: Any, b: Batch, data: Any, eye: Any, iteration: int, *,
         ftol: float, xtol: float, eps: float, max_steps: int) -> Batch:
    """One iteration of every running fit; stopped fits keep their values."""
    running = b.status == RUNNING
    # Batched matrix products (BLAS where the library has it), not einsum: numpy's einsum
    # of this contraction is a plain C loop, most of an iteration's time at 10^4 fits.
    JT = xp.swapaxes(b.J, 1, 2)
    g = xp.matmul(JT, b.r[:, :, None])[:, :, 0]
    A = xp.matmul(JT, b.J)
    d2 = xp.maximum(b.d2, xp.einsum("fpp->fp", A))  # column norms², from A's diagonal
    M = A + (b.lam[:, None] * d2)[:, :, None] * eye
    delta, ok = cholesky_solve(M, -g, xp)
    trial = b.x + delta
    rt, Jt = objective.batched_residuals_and_jacobian(trial, data)
    ft = xp.sum(rt * rt, axis=1)
    # A non-finite entry makes the sum non-finite: one reduction instead of a mask of J.
    finite = ok & xp.isfinite(ft) & xp.isfinite(xp.sum(Jt, axis=(1, 2)))
    one = xp.ones_like(b.f)
    f_safe = xp.where(b.f > 0, b.f, one)
    # MINPACK's relative reductions: actual (−1 for a step that grows ||r|| tenfold or
    # is not finite) and predicted, (δᵀAδ + 2λ·δᵀD²δ)/f: no cancellation, as lmder.
    actred = xp.where(finite & (0.01 * ft < b.f), 1 - ft / f_safe, -one)
    dAd = xp.einsum("fp,fpq,fq->f", delta, A, delta)
    dDd = xp.sum(d2 * delta * delta, axis=1)
    prered = xp.where(ok, (dAd + 2 * b.lam * dDd) / f_safe, one)
    ratio = xp.where(prered != 0, actred / xp.where(prered != 0, prered, one), 0 * one)
    accept = running & finite & (ratio >= ACCEPT)

    grow = xp.maximum(one / 3, 1 - (2 * ratio - 1) ** 3)
    lam = xp.where(accept, b.lam * grow, b.lam * b.nu)
    nu = xp.where(accept, 2 * one, 2 * b.nu)
    x = xp.where(accept[:, None], trial, b.x)
    f = xp.where(accept, ft, b.f)

    xnorm = xp.sqrt(xp.sum(d2 * x * x, axis=1))
    dnorm = xp.sqrt(xp.sum(d2 * delta * delta, axis=1))
    f_met = (xp.abs(actred) <= ftol) & (prered <= ftol) & (0.5 * ratio <= 1)
    x_met = dnorm <= xtol * xnorm
    code = xp.where(f_met & x_met, BOTH * one,
                    xp.where(f_met, FTOL * one, xp.where(x_met, XTOL * one, RUNNING * one)))
    code = xp.where(accept & (ft == 0), ZERO * one, code)
    stuck_f = (xp.abs(actred) <= eps) & (prered <= eps) & (0.5 * ratio <= 1)
    code = xp.where((code == RUNNING) & stuck_f, STALL_F * one, code)
    code = xp.where((code == RUNNING) & (dnorm <= eps * xnorm), STALL_X * one, code)
    code = xp.where((code == RUNNING) & ~(lam <= MAX_LAMBDA), STALL_DAMPING * one, code)
    code = xp.where((code == RUNNING) & (iteration >= max_steps), MAX_STEPS * one, code)
    # Converged: POLISH more iterations first (steps near the solution are Gauss–Newton
    # steps, λ -> 0, converging fast), then the fit stops with the verdict met first.
    met = (code == FTOL) | (code == XTOL) | (code == BOTH)
    verdict = xp.where(running & (b.verdict == RUNNING) & met, code, b.verdict)
    polishing = verdict != RUNNING
    polish = xp.where(running & polishing, b.polish + 1, b.polish)
    code = xp.where(polishing, xp.where((polish > POLISH) | (iteration >= max_steps)
                                        | (code == ZERO), verdict, RUNNING * one), code)
    return replace(
        b, x=x, f=f, lam=lam, nu=nu, d2=d2,
        r=xp.where(accept[:, None], rt, b.r), J=xp.where(accept[:, None, None], Jt, b.J),
        status=xp.where(running, code, b.status), verdict=verdict, polish=polish,
        steps=xp.where(running, b.steps + 1, b.steps))
