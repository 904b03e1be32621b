"""NAdam, as torch.optim.NAdam computes it (Dozat 2016, with torch's momentum decay)."""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class NAdamState(NamedTuple):
    t: int
    mu_product: float  # product of the momentum schedule so far
    m: Any
    v: Any


def nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
          decoupled_weight_decay=False) -> Method:
    beta1, beta2 = betas

    def init(x, xp):
        zeros = xp.zeros_like(x)
        return NAdamState(0, 1.0, zeros, zeros)

    def step(objective, x, state):
        xp = objective.xp
        f, g = objective.value_and_grad(x)
        t = state.t + 1
        bias_correction2 = 1 - beta2**t
        x_new, g_eff = x, g
        if weight_decay:
            if decoupled_weight_decay:
                x_new = x * (1 - lr * weight_decay)
            else:
                g_eff = g + weight_decay * x
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = state.mu_product * mu
        m = state.m + (g_eff - state.m) * (1 - beta1)
        v = state.v * beta2 + (1 - beta2) * (g_eff * g_eff)
        denom = xp.sqrt(v / bias_correction2) + eps
        x_new = x_new + (-lr * (1.0 - mu) / (1.0 - mu_product)) * (g_eff / denom)
        mu_product_next = mu_product * mu_next
        x_new = x_new + (-lr * mu_next / (1.0 - mu_product_next)) * (m / denom)
        return x_new, NAdamState(t, mu_product, m, v), f, g

    return Method(init, step)


class NAdam(Optimizer):
    name = "nadam"
    description = "Adam with Nesterov momentum (torch.optim.NAdam); the tutorial's choice"
    hyperparams = (
        common.lr(2e-3), common.betas(), common.eps(), common.weight_decay(0.0),
        Param("momentum_decay", "float", 4e-3, "momentum decay (psi)", low=0),
        Param("decoupled_weight_decay", "bool", False, "decay x itself, as AdamW does"),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(nadam, hp)


@hookimpl
def register_optimizers(register):
    register(NAdam())
