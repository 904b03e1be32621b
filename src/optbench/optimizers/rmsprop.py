"""RMSprop, plain or centered, with momentum, as torch.optim.RMSprop computes it."""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class RMSpropState(NamedTuple):
    t: int
    square_avg: Any
    grad_avg: Any  # centered only, else None
    buf: Any  # momentum buffer (momentum > 0 only, else None)


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
            centered=False) -> Method:
    def init(x, xp):
        zeros = xp.zeros_like(x)
        return RMSpropState(0, zeros, zeros if centered else None,
                            zeros if momentum > 0 else None)

    def step(objective, x, state):
        xp = objective.xp
        f, g = objective.value_and_grad(x)
        d = g + weight_decay * x if weight_decay else g
        square_avg = state.square_avg * alpha + (1 - alpha) * d * d  # addcmul order
        grad_avg = None
        if centered:
            grad_avg = common.lerp(state.grad_avg, d, 1 - alpha)
            avg = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = xp.sqrt(square_avg) + eps
        buf = None
        if momentum > 0:
            buf = state.buf * momentum + d / avg
            x_new = x - lr * buf
        else:
            x_new = x + (-lr * d) / avg  # torch's addcdiv order
        return x_new, RMSpropState(state.t + 1, square_avg, grad_avg, buf), f, g

    return Method(init, step)


class RMSprop(Optimizer):
    name = "rmsprop"
    description = "RMSprop, optionally centered (torch.optim.RMSprop)"
    hyperparams = (
        common.lr(1e-2),
        Param("alpha", "float", 0.99, "smoothing constant", low=0),
        common.eps(),
        common.weight_decay(0.0),
        Param("momentum", "float", 0.0, "momentum factor", low=0),
        Param("centered", "bool", False, "normalize by the estimated variance of the gradient"),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(rmsprop, hp)


@hookimpl
def register_optimizers(register):
    register(RMSprop())
