"""Adagrad, as torch.optim.Adagrad computes it (dense gradients)."""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class AdagradState(NamedTuple):
    t: int
    sum: Any  # running sum of squared gradients


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
            eps=1e-10) -> Method:
    def init(x, xp):
        return AdagradState(0, xp.zeros_like(x) + initial_accumulator_value)

    def step(objective, x, state):
        xp = objective.xp
        f, g = objective.value_and_grad(x)
        t = state.t + 1
        d = g + weight_decay * x if weight_decay else g
        clr = lr / (1 + (t - 1) * lr_decay)
        s = state.sum + d * d
        x_new = x + (-clr * d) / (xp.sqrt(s) + eps)  # torch's addcdiv order
        return x_new, AdagradState(t, s), f, g

    return Method(init, step)


class Adagrad(Optimizer):
    name = "adagrad"
    description = "Adagrad (torch.optim.Adagrad)"
    hyperparams = (
        common.lr(1e-2),
        Param("lr_decay", "float", 0.0, "learning rate decay", low=0),
        common.weight_decay(0.0),
        Param("initial_accumulator_value", "float", 0.0,
              "initial value of the sum of squared gradients", low=0),
        common.eps(1e-10),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(adagrad, hp)


@hookimpl
def register_optimizers(register):
    register(Adagrad())
