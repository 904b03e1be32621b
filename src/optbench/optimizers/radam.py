"""RAdam (rectified Adam), as torch.optim.RAdam computes it."""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class RAdamState(NamedTuple):
    t: int
    m: Any  # first moment
    v: Any  # second moment


def radam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
          decoupled_weight_decay=False) -> Method:
    beta1, beta2 = betas
    rho_inf = 2 / (1 - beta2) - 1

    def init(x, xp):
        zeros = xp.zeros_like(x)
        return RAdamState(0, zeros, zeros)

    def step(objective, x, state):
        xp = objective.xp
        f, g = objective.value_and_grad(x)
        t = state.t + 1
        x_new, d = x, g
        if weight_decay:
            if decoupled_weight_decay:
                x_new = x * (1 - lr * weight_decay)
            else:
                d = g + weight_decay * x
        m = common.lerp(state.m, d, 1 - beta1)
        v = state.v * beta2 + (1 - beta2) * d * d  # torch's addcmul order
        bias_correction1 = 1 - beta1**t
        bias_correction2 = 1 - beta2**t
        m_hat = m / bias_correction1
        rho_t = rho_inf - 2 * t * (beta2**t) / bias_correction2

        def rect():
            return ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5

        def adaptive_lr():
            return bias_correction2**0.5 / (xp.sqrt(v) + eps)

        if isinstance(rho_t, float):  # step by step: torch's own branch
            if rho_t > 5.0:
                x_new = x_new - m_hat * lr * adaptive_lr() * rect()
            else:
                x_new = x_new - m_hat * lr
        else:  # t traced in a compiled loop: torch's capturable form
            x_new = x_new - m_hat * lr * xp.where(rho_t > 5.0, rect() * adaptive_lr(), 1.0)
        return x_new, RAdamState(t, m, v), f, g

    return Method(init, step)


class RAdam(Optimizer):
    name = "radam"
    description = "rectified Adam (torch.optim.RAdam)"
    hyperparams = (
        common.lr(1e-3), common.betas(), common.eps(), common.weight_decay(0.0),
        Param("decoupled_weight_decay", "bool", False, "decay x itself, as AdamW does"),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(radam, hp)


@hookimpl
def register_optimizers(register):
    register(RAdam())
