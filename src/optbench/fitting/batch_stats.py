"""The statistics of retired fits, batched (issue 16), as fitting/statistics.py computes them
for one fit: covariance s²·(JᵀJ)⁻¹ from the singular values of J, the parameters in the
null space of a rank-deficient J named and their standard errors NaN.

On the device: R of J's QR factorization (F, p, p) and R's SVD, the same singular values
and right vectors as J's (J = QR); only those, x, the sum of squares and the status come
to the host, never J. The covariance is then formed on the host in float64, vectorized.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.fitting.statistics import NULL_SHARE
from optbench.optimizers import batch_lm as blm


def _host(objective: Any, value: Any) -> np.ndarray:
    return np.asarray(objective.to_numpy(value), dtype=np.float64)


def singular(xp: Any, J: Any) -> tuple[Any, Any]:
    """(s, Vᵀ) of each J (k, m, p), m >= p, non-finite entries read as 0."""
    J = xp.where(xp.isfinite(J), J, xp.zeros_like(J))
    out = xp.linalg.qr(J, mode="r")
    R = out[1] if isinstance(out, tuple) else out  # torch: (Q, R) with Q empty
    _, s, vt = xp.linalg.svd(R)
    return s, vt


def retire_stats(out: Any, xp: Any, objective: Any, done: blm.Batch, ids: np.ndarray) -> None:
    """Write the retired fits `done` (rows `ids` of the whole batch) into `out`."""
    s, vt = singular(xp, done.J)
    grad = 2 * xp.einsum("fmp,fm->fp", done.J, done.r)
    s, vt = _host(objective, s), _host(objective, vt)
    x, f = _host(objective, done.x), _host(objective, done.f)
    status = _host(objective, done.status).astype(np.int64)
    finite_j = np.all(np.isfinite(_host(objective, done.J.reshape(done.J.shape[0], -1))),
                      axis=1)
    out.x[ids] = x
    out.rss[ids] = f
    out.code[ids] = status
    out.steps[ids] = _host(objective, done.steps).astype(np.int64)
    out.grad_norm[ids] = np.sqrt(np.sum(_host(objective, grad) ** 2, axis=1))
    n = out.counts[ids]
    p = x.shape[1]
    eps = float(np.finfo(np.dtype(objective.dtype)).eps)
    cutoff = s[:, :1] * np.maximum(n, p)[:, None] * eps
    kept = (s > cutoff) & finite_j[:, None]
    out.rank[ids] = np.count_nonzero(kept, axis=1)
    v = np.swapaxes(vt, 1, 2)  # columns: right singular vectors
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_s2 = np.where(kept, 1.0 / np.where(kept, s, 1.0) ** 2, 0.0)
        inverse = np.einsum("fik,fk,fjk->fij", v, inv_s2, v)  # pinv(JᵀJ)
        share = np.einsum("fik,fk->fi", v * v, (~kept).astype(np.float64))
        lost = (share > NULL_SHARE) | ~finite_j[:, None]
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
