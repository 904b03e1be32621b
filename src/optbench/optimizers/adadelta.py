"""Adadelta, as torch.optim.Adadelta computes it."""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class AdadeltaState(NamedTuple):
    t: int
    square_avg: Any  # running average of squared gradients
    acc_delta: Any  # running average of squared updates


def adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0) -> Method:
    def init(x, xp):
        zeros = xp.zeros_like(x)
        return AdadeltaState(0, zeros, zeros)

    def step(objective, x, state):
        xp = objective.xp
        f, g = objective.value_and_grad(x)
        d = g + weight_decay * x if weight_decay else g
        square_avg = state.square_avg * rho + (1 - rho) * (d * d)
        std = xp.sqrt(square_avg + eps)
        delta = xp.sqrt(state.acc_delta + eps) / std * d
        acc_delta = state.acc_delta * rho + (1 - rho) * (delta * delta)
        return x - lr * delta, AdadeltaState(state.t + 1, square_avg, acc_delta), f, g

    return Method(init, step)


class Adadelta(Optimizer):
    name = "adadelta"
    description = "Adadelta (torch.optim.Adadelta)"
    hyperparams = (
        common.lr(1.0),
        Param("rho", "float", 0.9, "decay rate of the running averages", low=0, high=1),
        common.eps(1e-6),
        common.weight_decay(0.0),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(adadelta, hp)


@hookimpl
def register_optimizers(register):
    register(Adadelta())
