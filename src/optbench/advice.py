"""What would have got there: measured advice for a run that ended far from a known optimum.

A newcomer's first run (the tutorial: NAdam, lr 0.01, 1000 steps) ends at `max_steps` with
a relative error of 0.26, and a status alone does not say whether more steps, a larger
learning rate or another method is the answer. When the optimum is known, `advise` runs the
same task (same data, start and backend) a few more ways, each bounded in steps and time,
and says what each reached. It measures; it never guesses from rules of thumb.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from optbench.core import Backend, RunRecord

FAR = 1e-4
"""A run is far from the optimum when ‖x − x*‖/‖x*‖ exceeds this (or, where x* is not
unique, when f − f* exceeds it relative to max(1, |f*|))."""
PROBE_TIME_S = (1.0, 10.0)
"""Each probe's loop may take 12× the run's own loop time (ten times its steps, and some),
at least 1 s and at most 10 s; a probe cut short says where it stopped."""


def is_far(record: RunRecord, plan: Any) -> bool:
    """True when the run ended far from a known optimum (and so deserves a note)."""
    if plan.reference is None or record.status in ("converged", "error") or record.f is None:
        return False
    if record.relative_error is not None:
        return not record.relative_error <= FAR  # NaN (a diverged x) is far too
    gap = record.f - plan.reference.f
    return not gap <= FAR * max(1.0, abs(plan.reference.f))


def _gap(record: RunRecord, plan: Any) -> float:
    if record.relative_error is not None:
        return record.relative_error
    if record.f is None or not math.isfinite(record.f):
        return math.inf
    return (record.f - plan.reference.f) / max(1.0, abs(plan.reference.f))


def _variant(plan: Any, budget_s: float, optimizer: str | None = None,
             lr: float | None = None, steps: int | None = None) -> Any:
    """The same task, run another way; None when the optimizer cannot take that change."""
    from optbench import api
    from optbench.plugins import get_registry

    opt = get_registry().get("optimizer", optimizer) if optimizer else plan.optimizer
    if optimizer:  # another method: its own defaults, nothing carried over
        hp = api.optimizer_hyperparams(opt)
    else:
        hp = dict(plan.optimizer_params)
        if lr is not None:
            hp["lr"] = lr
        hp = api.optimizer_hyperparams(opt, hp)
    f_star = plan.reference.f
    return dataclasses.replace(
        plan, optimizer=opt, optimizer_params=hp, method=opt.method(**hp),
        steps=steps if steps is not None else plan.steps,
        tol=1e-12 * max(1.0, abs(f_star)), max_time=budget_s, compile=False)


def _describe(what: str, record: RunRecord, plan: Any) -> str:
    if record.status == "error":
        return f"{what}: failed ({record.message})"
    if record.status == "diverged":
        return f"{what}: diverged"
    gap = _gap(record, plan)
    label = "rel. error" if record.relative_error is not None else "rel. f - f*"
    when = f"after {record.steps} steps" if record.status != "converged" else \
        f"in {record.steps} steps"
    cut = " (the probe's time limit stopped it)" if record.status == "timeout" else ""
    return f"{what}: {label} {gap:.2g} {when}{cut}"


def advise(plan: Any, record: RunRecord, backend: Backend) -> str | None:
    """One line for a run that ended far from its known optimum, else None.

    Probes, each on the same task and backend: ten times the steps; ten times the learning
    rate (first-order methods); and lbfgs, when another optimizer was used.
    """
    from optbench import api

    if not is_far(record, plan):
        return None
    low, high = PROBE_TIME_S
    budget = min(high, max(low, 12 * record.time_s))
    probes: list[tuple[str, Any]] = []
    if plan.method.run is None and plan.steps > 0:
        probes.append((f"--steps {plan.steps * 10}",
                       _variant(plan, budget, steps=plan.steps * 10)))
    lr = plan.optimizer_params.get("lr")
    if isinstance(lr, (int, float)) and plan.optimizer.name != "lbfgs":
        probes.append((f"--lr {lr * 10:g}", _variant(plan, budget, lr=lr * 10)))
    if plan.optimizer.name != "lbfgs":
        probes.append(("--optimizer lbfgs",
                       _variant(plan, budget, optimizer="lbfgs", steps=100)))
    found = [_describe(what, api.execute(p, backend), plan) for what, p in probes]
    head = (f"{backend.name} ended far from the optimum ({record.status}, "
            f"{'rel. error' if record.relative_error is not None else 'rel. f - f*'} "
            f"{_gap(record, plan):.2g})")
    if not found:
        return head
    return f"{head}; measured on the same task: " + "; ".join(found)
