"""Adamax (Adam with the infinity norm), as torch.optim.Adamax computes it."""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class AdamaxState(NamedTuple):
    t: int
    m: Any  # first moment
    u: Any  # exponentially weighted infinity norm


def adamax(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0) -> Method:
    beta1, beta2 = betas

    def init(x, xp):
        zeros = xp.zeros_like(x)
        return AdamaxState(0, zeros, zeros)

    def step(objective, x, state):
        xp = objective.xp
        f, g = objective.value_and_grad(x)
        t = state.t + 1
        d = g + weight_decay * x if weight_decay else g
        m = common.lerp(state.m, d, 1 - beta1)
        u = xp.maximum(state.u * beta2, xp.abs(d) + eps)
        clr = lr / (1 - beta1**t)
        # torch: param.addcdiv_(exp_avg, exp_inf, value=-clr), i.e. x + (-clr*m)/u
        return x + (-clr * m) / u, AdamaxState(t, m, u), f, g

    return Method(init, step)


class Adamax(Optimizer):
    name = "adamax"
    description = "Adamax, Adam with the infinity norm (torch.optim.Adamax)"
    hyperparams = (
        common.lr(2e-3), common.betas(), common.eps(), common.weight_decay(0.0),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(adamax, hp)


@hookimpl
def register_optimizers(register):
    register(Adamax())
