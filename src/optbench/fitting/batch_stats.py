"""The statistics of retired fits, batched (issue 16), as fitting/statistics.py computes them
for one fit: covariance s²·(JᵀJ)⁻¹, the parameters in the null space of a rank-deficient J
named and their standard errors NaN.

On the device: R of J's QR factorization (F, p, p); only R, x, the sum of squares and the
status come to the host, never J. There, in float64 and vectorized over the fits,
(JᵀJ)⁻¹ = R⁻¹R⁻ᵀ by back substitution (p³/6 operations on arrays of F numbers: LAPACK
called once per 5×5 matrix costs 10 µs each, more than the whole solve's iteration per fit).
A fit whose R is not safely far from singular — its condition number, bounded within a
factor p by ||R||·||R⁻¹|| (Frobenius), reaches 1/(p·max(n, p)·eps) — takes the single fit's
path instead: R's SVD, the singular values below max(n, p)·eps·s₁ dropped, the parameters
with a share of their null space named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.fitting.statistics import NULL_SHARE
from optbench.optimizers import batch_lm as blm


def _host(objective: Any, value: Any) -> np.ndarray:
    return np.asarray(objective.to_numpy(value), dtype=np.float64)


def triangular(xp: Any, J: Any) -> Any:
    """R (k, p, p) of each J (k, m, p), m >= p, non-finite entries read as 0."""
    J = xp.where(xp.isfinite(J), J, xp.zeros_like(J))
    out = xp.linalg.qr(J, mode="r")
    return out[1] if isinstance(out, tuple) else out  # torch: (Q, R) with Q empty


def upper_inverse(R: np.ndarray) -> np.ndarray:
    """R⁻¹ of each upper-triangular R (k, p, p), by back substitution over the batch (inf or
    NaN where a diagonal entry is 0: such fits take the SVD path)."""
    p = R.shape[1]
    inv = np.zeros_like(R)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for j in range(p):
            inv[:, j, j] = 1.0 / R[:, j, j]
            for i in range(j - 1, -1, -1):
                acc = np.einsum("ki,ki->k", R[:, i, i + 1:j + 1], inv[:, i + 1:j + 1, j])
                inv[:, i, j] = -acc / R[:, i, i]
    return inv


def covariance_core(R: np.ndarray, n: np.ndarray, finite_j: np.ndarray, eps: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pinv(JᵀJ), rank, lost) per fit from R (J = QR)."""
    k, p, _ = R.shape
    inverse = np.empty_like(R)
    rank = np.full(k, p, dtype=np.int64)
    lost = np.zeros((k, p), dtype=bool)
    rinv = upper_inverse(R)
    with np.errstate(invalid="ignore", over="ignore"):
        cond = (np.sqrt(np.einsum("kij,kij->k", R, R))
                * np.sqrt(np.einsum("kij,kij->k", rinv, rinv)))
        safe = finite_j & np.isfinite(cond) & (cond * p * np.maximum(n, p) * eps < 1)
        inverse[safe] = np.matmul(rinv[safe], np.swapaxes(rinv[safe], 1, 2))
    hard = np.flatnonzero(~safe)
    if hard.size:  # the single fit's path (fitting/statistics.py), for these few
        _, s, vt = np.linalg.svd(np.where(np.isfinite(R[hard]), R[hard], 0.0))
        cutoff = s[:, :1] * np.maximum(n[hard], p)[:, None] * eps
        kept = (s > cutoff) & finite_j[hard, None]
        rank[hard] = np.count_nonzero(kept, axis=1)
        v = np.swapaxes(vt, 1, 2)  # columns: right singular vectors
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_s2 = np.where(kept, 1.0 / np.where(kept, s, 1.0) ** 2, 0.0)
            inverse[hard] = np.einsum("fik,fk,fjk->fij", v, inv_s2, v)
            share = np.einsum("fik,fk->fi", v * v, (~kept).astype(np.float64))
        lost[hard] = (share > NULL_SHARE) | ~finite_j[hard, None]
    return inverse, rank, lost


def retire_stats(out: Any, xp: Any, objective: Any, done: blm.Batch, ids: np.ndarray) -> None:
    """Write the retired fits `done` (rows `ids` of the whole batch) into `out`."""
    R = _host(objective, triangular(xp, done.J))
    grad = 2 * xp.matmul(xp.swapaxes(done.J, 1, 2), done.r[:, :, None])[:, :, 0]
    x, f = _host(objective, done.x), _host(objective, done.f)
    status = _host(objective, done.status).astype(np.int64)
    finite_j = np.isfinite(_host(objective, xp.sum(done.J, axis=(1, 2))))
    out.x[ids] = x
    out.rss[ids] = f
    out.code[ids] = status
    out.steps[ids] = _host(objective, done.steps).astype(np.int64)
    out.grad_norm[ids] = np.sqrt(np.sum(_host(objective, grad) ** 2, axis=1))
    n = out.counts[ids]
    p = x.shape[1]
    eps = float(np.finfo(np.dtype(objective.dtype)).eps)
    inverse, rank, lost = covariance_core(R, n, finite_j, eps)
    out.rank[ids] = rank
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = n - p
        s2 = np.where(dof > 0, f / np.where(dof > 0, dof, 1), np.nan)
        cov = s2[:, None, None] * inverse
        cov = np.where(lost[:, :, None] | lost[:, None, :], np.nan, cov)
    out.cov[ids] = cov
    out.lost[ids] = lost
    diverged = np.flatnonzero(status == blm.DIVERGED)
    if diverged.size:  # say where: the first point whose residual is not finite
        r = _host(objective, done.r[objective.from_numpy(status == blm.DIVERGED) > 0]
                  if not isinstance(done.r, np.ndarray) else done.r[status == blm.DIVERGED])
        for row, i in zip(r, ids[diverged], strict=True):
            k = int(np.flatnonzero(~np.isfinite(row[:out.counts[i]]))[0]) \
                if np.any(~np.isfinite(row[:out.counts[i]])) else 0
            out.where[int(i)] = (k, float(row[k]))
