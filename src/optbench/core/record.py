"""The run record: plain data describing one run, as DESIGN.md's JSON contract lays it out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

STATUSES = ("converged", "max_steps", "diverged", "timeout", "stalled", "error")
"""converged: the requested tolerance (--tol) was met, or, with none requested, the
optimizer's own stationarity test; stalled: the optimizer stopped itself before that (a line
search that finds no decrease, a step too small to change x, scipy's own stop short of
--tol); see optbench.runner.stopping.settle."""


@dataclass
class RunRecord:
    problem: str
    problem_params: dict[str, Any]
    backend: str
    device: str
    dtype: str
    optimizer: str
    optimizer_params: dict[str, Any]
    seed: int
    status: str
    message: str
    steps: int
    n_evals: int
    variables: list[str]
    x0: list[float]
    x: list[float]
    f: float | None
    grad_norm: float | None
    reference: dict[str, Any] | None
    time_s: float
    setup_s: float
    trace: list[list[float]] = field(default_factory=list)
    # Extensions of the contract:
    n_fevals: int = 0
    """Evaluations of the objective itself (finite differences make 2n+1 per gradient)."""
    relative_error: float | None = None
    """‖x − x*‖ / ‖x*‖ where the optimum is known and unique, else None."""
    code: dict[str, Any] | None = None
    """The code that ran: optbench's version, git revision, dirty flag and diff digest, and
    the plugins' versions (optbench.results.code). Campaigns record it (`--resume` compares
    it); None for a run outside a campaign, and then absent from `to_json`."""

    @property
    def success(self) -> bool:
        """True when the run converged (status "converged"), as scipy's `result.success`.

        Derived from `status`, so it is an attribute of the object only: `to_json` (the
        fixed JSON contract, the results files) carries `status`, which says the same."""
        return self.status == "converged"

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> RunRecord:
        """A record back from its JSON dict; fields the contract does not name (a
        campaign's `host`, `campaign`, ...) are left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        """A dict that `json.dumps` writes as strict JSON (non-finite numbers become null)."""
        out = _finite(asdict(self))
        if out["code"] is None:  # `optbench run`'s records stay as the contract has them
            del out["code"]
        return out


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
