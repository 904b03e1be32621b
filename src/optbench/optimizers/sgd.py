"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, as
torch.optim.SGD computes it."""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.errors import UsageError
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class SGDState(NamedTuple):
    t: int
    buf: Any  # momentum buffer (zeros before the first step)


def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False) -> Method:
    if nesterov and (momentum <= 0 or dampening != 0):
        raise UsageError("nesterov=true is accepted only with momentum > 0 and dampening=0")

    def init(x, xp):
        return SGDState(0, xp.zeros_like(x))

    def step(objective, x, state):
        f, g = objective.value_and_grad(x)
        d = g + weight_decay * x if weight_decay else g
        buf = state.buf
        if momentum:
            # torch starts the buffer at the first gradient, undamped. With buf = 0 before
            # the first step, 0*momentum + (1 - dampening*0)*d is exactly d; written as
            # arithmetic on t, not an `if`, so a compiled loop (t traced) runs it too.
            buf = state.buf * momentum + (1 - dampening * (state.t > 0)) * d
            d = d + momentum * buf if nesterov else buf
        return x - lr * d, SGDState(state.t + 1, buf), f, g

    return Method(init, step)


class SGD(Optimizer):
    name = "sgd"
    description = "gradient descent with momentum and Nesterov (torch.optim.SGD)"
    hyperparams = (
        common.lr(1e-3),
        Param("momentum", "float", 0.0, "momentum factor", low=0),
        Param("dampening", "float", 0.0, "dampening of the momentum", low=0),
        common.weight_decay(0.0),
        Param("nesterov", "bool", False, "Nesterov momentum"),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(sgd, hp)


@hookimpl
def register_optimizers(register):
    register(SGD())
