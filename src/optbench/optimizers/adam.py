"""Adam and AdamW, as torch.optim.Adam and torch.optim.AdamW compute them."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class AdamState(NamedTuple):
    t: int
    m: Any  # first moment
    v: Any  # second moment
    v_max: Any  # running max of v (amsgrad), else None


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
         decoupled=False) -> Method:
    """Adam; `decoupled=True` is AdamW (weight decay applied to x, not added to g)."""
    beta1, beta2 = betas

    def init(x, xp):
        zeros = xp.zeros_like(x)
        return AdamState(0, zeros, zeros, zeros if amsgrad else None)

    def step(objective, x, state):
        xp = objective.xp
        f, g = objective.value_and_grad(x)
        t = state.t + 1
        # AdamW decays x itself; Adam adds the L2 term to the gradient.
        x_new = x * (1 - lr * weight_decay) if weight_decay and decoupled else x
        g_eff = g + weight_decay * x if weight_decay and not decoupled else g
        m = state.m + (g_eff - state.m) * (1 - beta1)  # torch: exp_avg.lerp_(grad, 1-beta1)
        v = state.v * beta2 + (1 - beta2) * (g_eff * g_eff)
        v_max = xp.maximum(state.v_max, v) if amsgrad else None
        step_size = lr / (1 - beta1**t)
        bias_correction2_sqrt = (1 - beta2**t) ** 0.5
        denom = xp.sqrt(v_max if amsgrad else v) / bias_correction2_sqrt + eps
        x_new = x_new - step_size * (m / denom)
        return x_new, AdamState(t, m, v, v_max), f, g

    return Method(init, step)


class Adam(Optimizer):
    name = "adam"
    description = "Adam (torch.optim.Adam)"
    hyperparams = (
        common.lr(1e-3), common.betas(), common.eps(), common.weight_decay(0.0),
        Param("amsgrad", "bool", False, "use the running maximum of the second moment"),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(adam, hp)


class AdamW(Optimizer):
    name = "adamw"
    description = "Adam with decoupled weight decay (torch.optim.AdamW)"
    hyperparams = (
        common.lr(1e-3), common.betas(), common.eps(), common.weight_decay(1e-2),
        Param("amsgrad", "bool", False, "use the running maximum of the second moment"),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(functools.partial(adam, decoupled=True), hp)


@hookimpl
def register_optimizers(register):
    register(Adam())
    register(AdamW())
