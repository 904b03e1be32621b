"""What a batch of fits returns (issue 16): per fit its group key, status and message,
estimates, standard errors, RSS..., as numpy arrays (a million fits stay a few arrays);
`records()` gives DESIGN.md's run records with `group` and `fit`, `rows()` the flat rows of
`--output`, `summary()` the counts by status and the time per fit."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optbench.optimizers import batch_lm as blm

STATUS = {blm.RUNNING: "error", blm.FTOL: "converged", blm.XTOL: "converged",
          blm.BOTH: "converged", blm.ZERO: "converged", blm.MAX_STEPS: "max_steps",
          blm.STALL_F: "stalled", blm.STALL_X: "stalled", blm.STALL_DAMPING: "stalled",
          blm.STALL_JACOBIAN: "stalled", blm.DIVERGED: "diverged"}


def _message(code: int, fit: BatchFit, i: int | None) -> str:
    """The message of fit i (None: the status's reason alone)."""
    ftol, xtol = fit.ftol, fit.xtol
    text = {
        blm.FTOL: f"relative reduction of the sum of squares <= ftol={ftol:g}",
        blm.XTOL: f"relative change of x <= xtol={xtol:g}",
        blm.BOTH: (f"relative reduction of the sum of squares <= ftol={ftol:g} and "
                   f"relative change of x <= xtol={xtol:g}"),
        blm.ZERO: "the residuals are all zero",
        blm.MAX_STEPS: f"{fit.max_steps} steps without meeting ftol or xtol",
        blm.STALL_F: (f"ftol={ftol:g} is too small: no further reduction of the sum of "
                      "squares is possible in this precision"),
        blm.STALL_X: (f"xtol={xtol:g} is too small: no further improvement of x is "
                      "possible in this precision"),
        blm.STALL_DAMPING: ("no step reduces the sum of squares (the damping grew beyond "
                            f"{blm.MAX_LAMBDA:g})"),
        blm.STALL_JACOBIAN: "the Jacobian is not finite at the start",
        blm.RUNNING: "the fit did not run",
    }.get(code)
    if code == blm.DIVERGED and i is not None:
        k, value = fit.where.get(i, (0, math.nan))
        text = (f"the residuals are not finite at the start: at point {k} of the group "
                f"lhs - rhs = {value}; give a start where they are, with x0")
    if code == blm.DIVERGED and i is None:
        text = "the residuals are not finite at the start"
    if i is None:
        return text
    lost = [n for n, bad in zip(fit.parameters, fit.lost[i], strict=True) if bad]
    if lost and code != blm.DIVERGED and code != blm.STALL_JACOBIAN:
        text += (f"; not identifiable at the solution: {', '.join(lost)} (the Jacobian "
                 f"has rank {fit.rank[i]} of {len(fit.parameters)})")
    return text


@dataclass
class BatchFit:
    parameters: list[str]
    equation: str
    keys: np.ndarray
    counts: np.ndarray  # points per group
    x0: np.ndarray
    backend: str
    device: str
    dtype: str
    ftol: float
    xtol: float
    max_steps: int
    seed: int
    x: np.ndarray = field(repr=False)
    cov: np.ndarray = field(repr=False)
    lost: np.ndarray = field(repr=False)
    rss: np.ndarray = field(repr=False)
    grad_norm: np.ndarray = field(repr=False)
    rank: np.ndarray = field(repr=False)
    code: np.ndarray = field(repr=False)
    steps: np.ndarray = field(repr=False)
    where: dict[int, tuple[int, float]] = field(default_factory=dict, repr=False)
    time_s: float = 0.0
    setup_s: float = 0.0
    iterations: int = 0
    chunks: int = 0

    @classmethod
    def empty(cls, bp: Any) -> BatchFit:
        F, p = bp.x0.shape
        return cls(list(bp.model.parameters), bp.model.equation, bp.grouped.keys,
                   bp.grouped.counts, bp.x0, bp.backend.name, bp.device, bp.dtype, bp.ftol,
                   bp.xtol, bp.steps, bp.seed, x=np.full((F, p), np.nan),
                   cov=np.full((F, p, p), np.nan), lost=np.zeros((F, p), dtype=bool),
                   rss=np.full(F, np.nan), grad_norm=np.full(F, np.nan),
                   rank=np.zeros(F, dtype=np.int64), code=np.zeros(F, dtype=np.int64),
                   steps=np.zeros(F, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.keys.size)

    @property
    def status(self) -> np.ndarray:
        return np.array([STATUS[int(c)] for c in self.code])

    @property
    def stderr(self) -> np.ndarray:
        return np.sqrt(np.diagonal(self.cov, axis1=1, axis2=2))

    @property
    def dof(self) -> np.ndarray:
        return self.counts - len(self.parameters)

    def message(self, i: int) -> str:
        return _message(int(self.code[i]), self, i)

    def _key(self, i: int) -> Any:
        key = self.keys[i]
        return key.item() if hasattr(key, "item") else key

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per fit (the --output file): group, status, message, steps, rss,
        dof, n_points, rank, each parameter's estimate, then each one's `_stderr`."""
        from optbench.core.record import _finite

        se = self.stderr
        out = []
        for i in range(len(self)):
            row: dict[str, Any] = {
                "group": self._key(i), "status": STATUS[int(self.code[i])],
                "message": self.message(i), "steps": int(self.steps[i]),
                "rss": float(self.rss[i]), "dof": int(self.dof[i]),
                "n_points": int(self.counts[i]), "rank": int(self.rank[i])}
            for k, name in enumerate(self.parameters):
                row[name] = float(self.x[i, k])
            for k, name in enumerate(self.parameters):
                row[f"{name}_stderr"] = float(se[i, k])
            out.append(_finite(row))
        return out

    def records(self) -> list[dict[str, Any]]:
        """DESIGN.md's run records, one per group, each with `group` and `fit`."""
        from optbench.core.record import _finite

        se, per_fit = self.stderr, self.time_s / max(1, len(self))
        out = []
        for i in range(len(self)):
            with np.errstate(divide="ignore", invalid="ignore"):
                corr = self.cov[i] / np.outer(se[i], se[i])
                rel = se[i] / np.abs(self.x[i])
            dof = int(self.dof[i])
            fit = {"parameters": self.parameters, "estimates": self.x[i].tolist(),
                   "stderr": se[i].tolist(), "covariance": self.cov[i].tolist(),
                   "rss": float(self.rss[i]), "dof": dof, "r2": None,
                   "rel_stderr": rel.tolist(), "correlation": corr.tolist(),
                   "residual_sd": math.sqrt(self.rss[i] / dof) if dof > 0 else None,
                   "n_points": int(self.counts[i]), "rank": int(self.rank[i]),
                   "not_identifiable": [n for n, bad in zip(self.parameters, self.lost[i],
                                                            strict=True) if bad]}
            out.append(_finite({
                "problem": "model", "problem_params": {"equation": self.equation},
                "backend": self.backend, "device": self.device, "dtype": self.dtype,
                "optimizer": "lm", "optimizer_params": {"ftol": self.ftol, "xtol": self.xtol},
                "seed": self.seed, "status": STATUS[int(self.code[i])],
                "message": self.message(i), "steps": int(self.steps[i]),
                "n_evals": int(self.steps[i]) + 1, "variables": self.parameters,
                "x0": self.x0[i].tolist(), "x": self.x[i].tolist(),
                "f": float(self.rss[i]), "grad_norm": float(self.grad_norm[i]),
                "reference": None, "time_s": per_fit, "setup_s": 0.0, "trace": [],
                "group": self._key(i), "fit": fit}))
        return out

    def summary(self) -> dict[str, Any]:
        """Counts by status, by reason among those that did not converge, rank-deficient
        fits, and the time per fit."""
        statuses = Counter(STATUS[int(c)] for c in self.code)
        reasons = Counter(_message(int(c), self, None) for c in self.code
                          if STATUS[int(c)] != "converged")
        return {"fits": len(self), "statuses": dict(statuses), "reasons": dict(reasons),
                "rank_deficient": int(np.count_nonzero(self.lost.any(axis=1)
                                                       & (self.code != blm.DIVERGED))),
                "time_s": self.time_s, "setup_s": self.setup_s,
                "time_per_fit_s": self.time_s / max(1, len(self)),
                "iterations": self.iterations, "chunks": self.chunks,
                "backend": self.backend, "device": self.device, "dtype": self.dtype}
