"""Learning-rate schedules, as torch.optim.lr_scheduler computes them.

A schedule is a pair of pure functions over a small state, `start()` and `advance(state, f)`;
`state.lr` is the learning rate of the coming optimizer step. optbench's "epoch" is one
optimizer step: `advance` is torch's `scheduler.step()` called once after every
`optimizer.step()` (ReduceLROnPlateau's `scheduler.step(loss)` gets f, the objective at the
point that step started from).

The lr is computed with torch's own *recursive* formulas (each lr from the previous one, as
torch's get_lr does when stepped without an epoch), not with the closed forms, so that the
sequences are torch's to the last bit rather than within rounding.

Learning rates are Python floats, computed on the host between steps: a scheduled optimizer
does not run as one compiled loop (`--compile`).

Differences from torch, where torch has no answer or more than optbench needs:
- onecycle schedules the lr only (torch's cycle_momentum=False); past total_steps (where
  torch raises) the lr stays at its final value, max_lr/(div_factor*final_div_factor).
- plateau minimizes f (mode="min") and keeps torch's eps=1e-8 (the smallest change applied).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from optbench.core import Param
from optbench.errors import UsageError


class ScheduleState(NamedTuple):
    epoch: int  # torch's last_epoch: the optimizer steps taken
    lr: float  # the learning rate of the next step
    extra: tuple = ()  # what a schedule carries besides (warm restarts, plateau)


class Schedule(NamedTuple):
    start: Callable[[], ScheduleState]
    advance: Callable[[ScheduleState, Any], ScheduleState]


def _int(name, help, low=1):
    return Param(name, "int", None, help, low=low)


def _float(name, help, **bounds):
    return Param(name, "float", None, help, **bounds)


# Declared on every first-order optimizer; all unset (None) unless a schedule is chosen.
PARAMS: tuple[Param, ...] = (
    Param("schedule", "str", None, "learning-rate schedule (torch.optim.lr_scheduler)",
          choices=("step", "multistep", "exponential", "cosine", "cosine_restarts",
                   "linear", "onecycle", "plateau")),
    _int("step_size", "schedule step: steps between decays"),
    _float("gamma", "schedule step, multistep, exponential: decay factor", low=0,
           low_open=True),
    Param("milestones", "floats", None, "schedule multistep: steps at which lr decays",
          low=0),
    _int("T_max", "schedule cosine: steps of the half cosine"),
    _float("eta_min", "schedule cosine, cosine_restarts: minimum lr", low=0),
    _int("T_0", "schedule cosine_restarts: steps until the first restart"),
    _int("T_mult", "schedule cosine_restarts: growth of the period after a restart"),
    _float("start_factor", "schedule linear: factor of lr at step 0", low=0, low_open=True,
           high=1),
    _float("end_factor", "schedule linear: factor of lr after total_iters", low=0, high=1),
    _int("total_iters", "schedule linear: steps of the ramp"),
    _float("max_lr", "schedule onecycle: peak lr", low=0, low_open=True),
    _int("total_steps", "schedule onecycle: steps of the cycle"),
    _float("pct_start", "schedule onecycle: fraction of the cycle spent increasing lr",
           low=0, high=1),
    Param("anneal_strategy", "str", None, "schedule onecycle: annealing",
          choices=("cos", "linear")),
    _float("div_factor", "schedule onecycle: initial lr = max_lr/div_factor", low=0,
           low_open=True),
    _float("final_div_factor", "schedule onecycle: final lr = initial lr/final_div_factor",
           low=0, low_open=True),
    Param("three_phase", "bool", None, "schedule onecycle: torch's three-phase cycle"),
    _float("factor", "schedule plateau: lr reduction factor", low=0, high=1, high_open=True),
    _int("patience", "schedule plateau: steps without improvement before a reduction",
         low=0),
    _float("threshold", "schedule plateau: smallest improvement that counts", low=0),
    Param("threshold_mode", "str", None, "schedule plateau: threshold relative or absolute",
          choices=("rel", "abs")),
    _int("cooldown", "schedule plateau: steps after a reduction before counting again",
         low=0),
    _float("min_lr", "schedule plateau: lower bound on lr", low=0),
)
NAMES = frozenset(p.name for p in PARAMS)

# Each schedule's parameters: required ones (None) and torch's defaults of the others.
ACCEPTS: dict[str, dict[str, Any]] = {
    "step": {"step_size": None, "gamma": 0.1},
    "multistep": {"milestones": None, "gamma": 0.1},
    "exponential": {"gamma": None},
    "cosine": {"T_max": None, "eta_min": 0.0},
    "cosine_restarts": {"T_0": None, "T_mult": 1, "eta_min": 0.0},
    "linear": {"start_factor": 1.0 / 3, "end_factor": 1.0, "total_iters": 5},
    "onecycle": {"max_lr": None, "total_steps": None, "pct_start": 0.3,
                 "anneal_strategy": "cos", "div_factor": 25.0, "final_div_factor": 1e4,
                 "three_phase": False},
    "plateau": {"factor": 0.1, "patience": 10, "threshold": 1e-4, "threshold_mode": "rel",
                "cooldown": 0, "min_lr": 0.0},
}


def settings(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The chosen schedule's settings (defaults filled in) from validated hyperparameters,
    None without a schedule; UsageError for a parameter of another schedule or a missing
    required one."""
    name = values.get("schedule")
    given = {k: v for k, v in values.items() if k in NAMES and k != "schedule"
             and v is not None}
    if name is None:
        if given:
            key = next(iter(given))
            owners = [s for s, accepted in ACCEPTS.items() if key in accepted]
            raise UsageError(f"{key}={given[key]} is a learning-rate schedule parameter: set "
                             f"schedule={'|'.join(owners)} with it")
        return None
    accepted = ACCEPTS[name]
    for key, value in given.items():
        if key not in accepted:
            raise UsageError(f"{key}={value} is not a parameter of schedule={name}; it "
                             f"accepts: {', '.join(accepted)}")
    missing = [k for k, default in accepted.items() if default is None and k not in given]
    if missing:
        raise UsageError(f"schedule={name} needs {' and '.join(missing)} (e.g. "
                         f"-O {missing[0]}=...); it accepts: {', '.join(accepted)}")
    out = {**accepted, **given, "schedule": name}
    if name == "multistep":
        if any(not float(m).is_integer() for m in out["milestones"]):
            raise UsageError(f"milestones={','.join(f'{m:g}' for m in out['milestones'])} "
                             "is not accepted: expected step numbers (integers >= 0)")
        out["milestones"] = tuple(int(m) for m in out["milestones"])
    if name == "onecycle":
        _phases(out)  # refuses a phase of no length
    return out


def make(s: Mapping[str, Any], base_lr: float) -> Schedule:
    """The schedule `s` (from `settings`) starting from the optimizer's lr `base_lr`."""
    return _MAKERS[s["schedule"]](s, base_lr)


def _plain(first: Callable[[], float], following: Callable[[int, float], float]) -> Schedule:
    """A schedule whose next lr depends only on the epoch and the current lr."""
    def start():
        return ScheduleState(0, first())

    def advance(state, f):
        epoch = state.epoch + 1
        return ScheduleState(epoch, following(epoch, state.lr))

    return Schedule(start, advance)


def _step(s, base):
    step_size, gamma = s["step_size"], s["gamma"]
    return _plain(lambda: base,
                  lambda e, lr: lr if e % step_size != 0 else lr * gamma)


def _multistep(s, base):
    milestones, gamma = Counter(s["milestones"]), s["gamma"]
    return _plain(lambda: base,
                  lambda e, lr: lr * gamma ** milestones[e] if e in milestones else lr)


def _exponential(s, base):
    gamma = s["gamma"]
    return _plain(lambda: base, lambda e, lr: lr * gamma)


def _cosine(s, base):
    t_max, eta_min = s["T_max"], s["eta_min"]

    def following(e, lr):
        if (e - 1 - t_max) % (2 * t_max) == 0:
            return lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return ((1 + math.cos(math.pi * e / t_max))
                / (1 + math.cos(math.pi * (e - 1) / t_max)) * (lr - eta_min) + eta_min)

    return _plain(lambda: base, following)


def _linear(s, base):
    start, end, total = s["start_factor"], s["end_factor"], s["total_iters"]

    def following(e, lr):
        if e > total:
            return lr
        return lr * (1.0 + (end - start) / (total * start + (e - 1) * (end - start)))

    return _plain(lambda: base * start, following)


def _cosine_restarts(s, base):
    t_0, t_mult, eta_min = s["T_0"], s["T_mult"], s["eta_min"]

    def lr(t_cur, t_i):
        return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2

    def start():
        return ScheduleState(0, lr(0, t_0), (0, t_0))

    def advance(state, f):
        t_cur, t_i = state.extra
        t_cur += 1
        if t_cur >= t_i:
            t_cur, t_i = t_cur % t_i, t_i * t_mult
        return ScheduleState(state.epoch + 1, lr(t_cur, t_i), (t_cur, t_i))

    return Schedule(start, advance)


def _phases(s):
    """OneCycleLR's phases: (end_step, start_lr, end_lr) by name."""
    total, pct = s["total_steps"], s["pct_start"]
    if s["three_phase"]:
        phases = [(float(pct * total) - 1, "initial", "max"),
                  (float(2 * pct * total) - 2, "max", "initial"),
                  (total - 1, "initial", "min")]
    else:
        phases = [(float(pct * total) - 1, "initial", "max"), (total - 1, "max", "min")]
    start = 0.0
    for end, _, _ in phases:
        if end == start:  # torch would divide by zero at that step
            raise UsageError(f"pct_start={pct:g} is not accepted with total_steps={total}: "
                             "it leaves a phase of the cycle with no steps")
        start = end
    return phases


def _onecycle(s, base):
    total, phases = s["total_steps"], _phases(s)
    initial = s["max_lr"] / s["div_factor"]
    lrs = {"initial": initial, "max": s["max_lr"], "min": initial / s["final_div_factor"]}
    cos = s["anneal_strategy"] == "cos"

    def at(step_num):
        if step_num > total:  # torch raises; optbench stays at the end of the cycle
            return lrs["min"]
        start_step = 0.0
        for i, (end_step, first, last) in enumerate(phases):
            if step_num <= end_step or i == len(phases) - 1:
                pct = (step_num - start_step) / (end_step - start_step)
                a, b = lrs[first], lrs[last]
                if cos:
                    return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
                return (b - a) * pct + a
            start_step = end_step
        raise AssertionError("unreachable: the last phase always matches")

    return _plain(lambda: at(0), lambda e, lr: at(e))


def _plateau(s, base):
    factor, patience, cooldown, min_lr = s["factor"], s["patience"], s["cooldown"], s["min_lr"]
    threshold, relative = s["threshold"], s["threshold_mode"] == "rel"
    eps = 1e-8  # torch's default: smaller reductions are not applied

    def better(a, best):
        return a < best * (1.0 - threshold) if relative else a < best - threshold

    def start():
        return ScheduleState(0, base, (math.inf, 0, 0))  # best, bad steps, cooldown left

    def advance(state, f):
        best, bad, cooling = state.extra
        current, lr = float(f), state.lr
        if better(current, best):
            best, bad = current, 0
        else:
            bad += 1
        if cooling > 0:
            cooling, bad = cooling - 1, 0  # bad steps in cooldown do not count
        if bad > patience:
            new_lr = max(lr * factor, min_lr)
            if lr - new_lr > eps:
                lr = new_lr
            cooling, bad = cooldown, 0
        return ScheduleState(state.epoch + 1, lr, (best, bad, cooling))

    return Schedule(start, advance)


_MAKERS: dict[str, Callable[[Mapping[str, Any], float], Schedule]] = {
    "step": _step, "multistep": _multistep, "exponential": _exponential, "cosine": _cosine,
    "cosine_restarts": _cosine_restarts, "linear": _linear, "onecycle": _onecycle,
    "plateau": _plateau,
}
