"""Averaged SGD, as torch.optim.ASGD computes it.

The iterate x is the SGD iterate, as torch's parameter is; the running average that ASGD is
named for is carried in the state (`ax`, torch's state["ax"]), starting at t0.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class ASGDState(NamedTuple):
    t: int
    eta: float  # the step size of this step (lr at first)
    mu: float  # the averaging weight of this step (1 until t0)
    ax: Any  # the averaged iterate


def asgd(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0) -> Method:
    def init(x, xp):
        return ASGDState(0, lr, 1.0, xp.zeros_like(x))

    def step(objective, x, state):
        f, g = objective.value_and_grad(x)
        t = state.t + 1
        eta, mu = state.eta, state.mu
        d = g + weight_decay * x if weight_decay else g
        x_new = x * (1 - lambd * eta) - eta * d
        # torch copies x into ax while mu == 1; this weighted form is that copy exactly
        # then (x*1 + ax*0), and needs no branch on mu (a traced number in a compiled loop).
        ax = x_new * mu + state.ax * (1 - mu)
        eta = lr / ((1 + lambd * lr * t) ** alpha)
        s = t - t0
        mu = 1 / ((1 + s + abs(s - 1)) / 2)  # 1 / max(1, t - t0), as arithmetic
        return x_new, ASGDState(t, eta, mu, ax), f, g

    return Method(init, step)


class ASGD(Optimizer):
    name = "asgd"
    description = "averaged stochastic gradient descent (torch.optim.ASGD)"
    hyperparams = (
        common.lr(1e-2),
        Param("lambd", "float", 1e-4, "decay term", low=0),
        Param("alpha", "float", 0.75, "power for the eta update", low=0),
        Param("t0", "float", 1e6, "step at which averaging starts", low=0),
        common.weight_decay(0.0),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(asgd, hp)


@hookimpl
def register_optimizers(register):
    register(ASGD())
