"""Rprop (resilient backpropagation), as torch.optim.Rprop computes it.

Each coordinate has its own step size, grown by etaplus while its gradient keeps its sign and
shrunk by etaminus when the sign flips (and that step is skipped); lr is the initial size.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.errors import UsageError
from optbench.hookspecs import hookimpl
from optbench.optimizers import common


class RpropState(NamedTuple):
    t: int
    prev: Any  # the previous step's gradient (zeroed where its sign flipped)
    step_size: Any  # per-coordinate step sizes


def rprop(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)) -> Method:
    etaminus, etaplus = etas
    step_size_min, step_size_max = step_sizes
    if not 0.0 < etaminus < 1.0 < etaplus:
        raise UsageError(f"etas={etaminus:g},{etaplus:g} is not accepted: expected "
                         "etaminus,etaplus with 0 < etaminus < 1 < etaplus")
    if step_size_min > step_size_max:
        raise UsageError(f"step_sizes={step_size_min:g},{step_size_max:g} is not accepted: "
                         "expected min,max with min <= max")

    def init(x, xp):
        zeros = xp.zeros_like(x)
        return RpropState(0, zeros, zeros + lr)

    def step(objective, x, state):
        xp = objective.xp
        f, g = objective.value_and_grad(x)
        sign = xp.sign(g * state.prev)
        factor = xp.where(sign > 0, etaplus, sign)
        factor = xp.where(factor < 0, etaminus, factor)
        factor = xp.where(factor == 0, 1.0, factor)
        step_size = xp.clip(state.step_size * factor, step_size_min, step_size_max)
        d = xp.where(factor == etaminus, 0.0, g)  # no step where the sign flipped
        x_new = x - xp.sign(d) * step_size
        return x_new, RpropState(state.t + 1, d, step_size), f, g

    return Method(init, step)


class Rprop(Optimizer):
    name = "rprop"
    description = "resilient backpropagation, sign-based steps (torch.optim.Rprop)"
    hyperparams = (
        common.lr(1e-2),
        Param("etas", "floats", (0.5, 1.2), "step size factors (etaminus,etaplus)",
              low=0, low_open=True, length=2),
        Param("step_sizes", "floats", (1e-6, 50.0), "step size bounds (min,max)",
              low=0, length=2),
        *common.SCHEDULE_PARAMS,
    )
    run_defaults = common.TUTORIAL_RUN_DEFAULTS

    def method(self, **hp):
        return common.scheduled(rprop, hp)


@hookimpl
def register_optimizers(register):
    register(Rprop())
