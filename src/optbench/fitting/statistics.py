"""The statistics of a least-squares fit, from the residuals r and their Jacobian J at the
solution, in float64 numpy (whatever the backend and dtype of the run).

    s² = RSS / (n − p)            RSS = Σ rᵢ²  (weighted residuals where σ was given)
    covariance = s² · (JᵀJ)⁻¹     standard errors: the square roots of its diagonal

(JᵀJ)⁻¹ is formed from the singular values of J, V·diag(1/σ²)·Vᵀ, never by inverting JᵀJ,
whose condition number is the square of J's. Where J is rank-deficient (numerical rank:
singular values above σ_max · max(n, p) · eps, numpy's matrix_rank), the parameters that
take part in its null space are not identifiable: they are named, and their standard errors
and covariances are NaN (null in JSON); the others come from the pseudo-inverse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NULL_SHARE = 1e-6
"""A parameter is not identifiable when its share of the null space of J (the squared norm
of its row of the null-space basis, at most 1) is above this."""


@dataclass
class FitStatistics:
    parameters: list[str]
    estimates: list[float]
    stderr: list[float]
    rel_stderr: list[float]
    covariance: list[list[float]]
    correlation: list[list[float]]
    rss: float
    residual_sd: float
    n_points: int
    dof: int
    r2: float | None
    rank: int
    not_identifiable: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The record's `fit`: the contract's fields first (parameters, estimates, stderr,
        covariance, rss, dof, r2), then the rest."""
        from optbench.core.record import _finite

        return _finite({
            "parameters": self.parameters, "estimates": self.estimates,
            "stderr": self.stderr, "covariance": self.covariance, "rss": self.rss,
            "dof": self.dof, "r2": self.r2, "rel_stderr": self.rel_stderr,
            "correlation": self.correlation, "residual_sd": self.residual_sd,
            "n_points": self.n_points, "rank": self.rank,
            "not_identifiable": self.not_identifiable})

    def note(self) -> str:
        """What the record's message must say about the statistics ("" when nothing)."""
        notes = []
        if self.not_identifiable:
            notes.append(f"not identifiable at the solution: {', '.join(self.not_identifiable)}"
                         f" (the Jacobian has rank {self.rank} of {len(self.parameters)}); "
                         "their standard errors are undefined")
        if self.dof == 0:
            notes.append("as many points as parameters: no degrees of freedom left for "
                         "standard errors")
        return "; ".join(notes)


def r_squared(rss: float, response: np.ndarray | None, weights: np.ndarray | None
              ) -> float | None:
    """1 − RSS/TSS, TSS the (weighted) sum of squares of the response about its (weighted)
    mean; None where there is no response of the data alone or it does not vary."""
    if response is None:
        return None
    w2 = np.ones_like(response) if weights is None else np.asarray(weights) ** 2
    mean = float(np.sum(w2 * response) / np.sum(w2))
    tss = float(np.sum(w2 * (response - mean) ** 2))
    return 1.0 - rss / tss if tss > 0 else None


def fit_statistics(r: Any, jacobian: Any, parameters: Sequence[str], estimates: Any,
                   response: np.ndarray | None = None, weights: np.ndarray | None = None
                   ) -> FitStatistics:
    """Statistics of the fit whose (weighted) residuals at `estimates` are r, J = dr/dx."""
    r = np.asarray(r, dtype=np.float64).reshape(-1)
    J = np.asarray(jacobian, dtype=np.float64)
    x = np.asarray(estimates, dtype=np.float64).reshape(-1)
    n, p = J.shape
    if r.shape != (n,) or x.shape != (p,) or len(parameters) != p:
        raise ValueError(f"residuals {r.shape}, Jacobian {J.shape}, estimates {x.shape} and "
                         f"{len(parameters)} parameters do not match")
    rss = float(r @ r)
    dof = n - p
    s2 = rss / dof if dof > 0 else math.nan
    if not np.all(np.isfinite(J)):
        cov = np.full((p, p), math.nan)
        rank, lost = 0, list(parameters)
    else:
        # The thin SVD: U is n × min(n, p), never n × n (a million points would ask for
        # terabytes). With fewer points than parameters Vᵀ lacks rows: complete it from the
        # full SVD of JᵀJ's size (p × p), which is small.
        if n >= p:
            _, sv, vt = np.linalg.svd(J, full_matrices=False)
        else:
            _, sv, vt = np.linalg.svd(J, full_matrices=True)
        sv_full = np.zeros(p)
        sv_full[:sv.size] = sv
        cutoff = (sv_full[0] if p else 0.0) * max(n, p) * np.finfo(np.float64).eps
        kept = sv_full > cutoff
        rank = int(np.count_nonzero(kept))
        v = vt.T
        inverse = (v[:, kept] / sv_full[kept] ** 2) @ v[:, kept].T  # pinv(JᵀJ)
        cov = s2 * inverse
        null = v[:, ~kept]
        share = np.sum(null**2, axis=1) if null.size else np.zeros(p)
        lost_mask = share > NULL_SHARE
        lost = [name for name, bad in zip(parameters, lost_mask, strict=True) if bad]
        cov[lost_mask, :] = math.nan
        cov[:, lost_mask] = math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.diag(cov))
        rel = se / np.abs(x)
        corr = cov / np.outer(se, se)
    return FitStatistics(
        parameters=list(parameters), estimates=x.tolist(), stderr=se.tolist(),
        rel_stderr=rel.tolist(), covariance=cov.tolist(), correlation=corr.tolist(),
        rss=rss, residual_sd=math.sqrt(s2) if dof > 0 else math.nan, n_points=n, dof=dof,
        r2=r_squared(rss, response, weights), rank=rank, not_identifiable=lost)
