"""An optimizer of our own: Polyak's heavy ball, written once against `xp` in optax's
manner (pure init/step), so it runs on every backend."""

from __future__ import annotations

from typing import Any, NamedTuple

import optbench
from optbench.core import Method, Optimizer, Param


class HeavyBallState(NamedTuple):
    previous: Any  # the iterate before x (x itself at the start: no momentum yet)


def heavy_ball(lr: float, momentum: float) -> Method:
    def init(x, xp):
        return HeavyBallState(previous=x)  # never mutated: no copy needed

    def step(objective, x, state):
        f, g = objective.value_and_grad(x)  # f and g at x, in the backend's arrays
        x_next = x - lr * g + momentum * (x - state.previous)
        return x_next, HeavyBallState(previous=x), f, g

    return Method(init, step)


class HeavyBall(Optimizer):
    name = "heavyball"
    description = "Polyak's heavy ball: x − lr·∇f(x) + momentum·(x − x_prev)"
    hyperparams = (
        Param("lr", "float", 0.01, "learning rate", low=0, low_open=True),
        Param("momentum", "float", 0.9, "momentum factor", low=0, high=1, high_open=True),
    )

    def method(self, lr: float, momentum: float) -> Method:
        return heavy_ball(lr, momentum)


@optbench.hookimpl
def register_optimizers(register):
    register(HeavyBall())
