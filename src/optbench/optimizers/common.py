"""Hyperparameter declarations the first-order optimizers share, and the wiring of a
learning-rate schedule (optbench.optimizers.schedules) into any of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from optbench.core import Method, Param
from optbench.optimizers import schedules

# The tutorial's learning rate: `optbench run` uses it for the first-order methods unless
# --lr says otherwise (the declared defaults stay torch.optim's).
TUTORIAL_RUN_DEFAULTS = {"lr": 0.01}


def lr(default: float) -> Param:
    return Param("lr", "float", default, "learning rate", low=0, low_open=True)


def betas() -> Param:
    return Param("betas", "floats", (0.9, 0.999), "moment decay rates (beta1,beta2)",
                 low=0, high=1, high_open=True, length=2)


def eps(default: float = 1e-8) -> Param:
    return Param("eps", "float", default, "added to the denominator for stability",
                 low=0, low_open=True)


def lerp(start: Any, end: Any, weight: float) -> Any:
    """torch.lerp's arithmetic (ATen's CPU kernel), rounding included: from the nearer end."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


def weight_decay(default: float) -> Param:
    return Param("weight_decay", "float", default, "weight decay (L2 penalty)", low=0)


# Declared by every first-order optimizer: -O schedule=cosine -O T_max=1000.
SCHEDULE_PARAMS = schedules.PARAMS


class ScheduledState(NamedTuple):
    inner: Any  # the optimizer's own state
    schedule: schedules.ScheduleState  # .lr: the learning rate of the coming step


def _never_done(state: Any) -> None:
    # A scheduled step reads its lr on the host (a Python float) between steps; a Method
    # with `done` is one the compiled loop (--compile) refuses, with that reason.
    return None


def scheduled(make: Callable[..., Method], hp: dict[str, Any]) -> Method:
    """`make(**hp)`, the optimizer, with the schedule that hp names (if any) setting its lr.

    The optimizer's pure functions take lr as a bound constant, so a scheduled step binds
    the step's lr afresh (`make(lr=..., ...)`, a closure, cheap) and runs the optimizer's
    step on its own state: the lr changes between steps exactly as torch's scheduler changes
    `param_group["lr"]` between `optimizer.step()` calls, and no optimizer needs code of its
    own for schedules. Where torch reads lr only when it creates the state (rprop's step
    sizes, asgd's first eta), init binds the schedule's first lr, as torch's state is made
    after the scheduler has set it.
    """
    s = schedules.settings(hp)
    own = {k: v for k, v in hp.items() if k not in schedules.NAMES}
    if s is None:
        return make(**own)
    schedule = schedules.make(s, own["lr"])
    make(**own)  # refuses bad hyperparameters now, not at the first step

    def init(x, xp):
        sched = schedule.start()
        return ScheduledState(make(**{**own, "lr": sched.lr}).init(x, xp), sched)

    def step(objective, x, state):
        method = make(**{**own, "lr": state.schedule.lr})
        x_new, inner, f, g = method.step(objective, x, state.inner)
        return x_new, ScheduledState(inner, schedule.advance(state.schedule, f)), f, g

    return Method(init, step, done=_never_done)
