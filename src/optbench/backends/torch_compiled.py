"""`--compile` on the torch backend: the optimizer's own step, compiled by torch.compile.

The same optax-style step runs on a functional objective (torch.func.grad_and_value, which
torch.compile traces; torch.autograd.grad is not). Each compiled call unrolls up to
UNROLL steps, so Python and dispatch overhead is paid once per call, not once per step.
The state's Python numbers become 0-d tensors first (a Python step count would be baked
into the graph as a constant and force a recompilation at every call), and its tensors are
made distinct.
"""

from __future__ import annotations

import math
from typing import Any

UNROLL = 10


class _Functional:
    """What a step sees inside the compiled graph: xp and value_and_grad, nothing else."""

    def __init__(self, torch: Any, fn: Any) -> None:
        self.xp = torch
        self._grad_and_value = torch.func.grad_and_value(fn)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        g, f = self._grad_and_value(x)
        return f, g


def _tensorize(torch: Any, state: Any, like: Any) -> Any:
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_tensorize(torch, s, like) for s in state))
    if isinstance(state, (int, float)) and not isinstance(state, bool):
        return torch.tensor(float(state), dtype=like.dtype, device=like.device)
    if isinstance(state, torch.Tensor):
        # init may hand out one zeros tensor for two moments; aliased inputs would make the
        # compiled graph's guards fail on the next call (m is v no longer) and recompile.
        return state.clone()
    return state


def compiled_loop(objective: Any, method: Any, steps: int, x0: Any) -> Any:
    torch = objective.xp
    functional = _Functional(torch, lambda x: objective._fn(x, objective.data, torch))
    # The largest unroll that divides the step count, so one graph serves every call.
    unroll = max(k for k in range(1, min(UNROLL, max(steps, 1)) + 1) if steps % k == 0)

    def chunk(x: Any, state: Any) -> tuple[Any, Any, Any]:
        fs = []
        for _ in range(unroll):
            x, state, f, _ = method.step(functional, x, state)
            fs.append(f)
        return x, state, torch.stack(fs)

    compiled = torch.compile(chunk, fullgraph=True, dynamic=False)
    state0 = _tensorize(torch, method.init(x0, torch), x0)
    if steps:
        compiled(x0, state0)  # compile now: this is set-up time

    def run() -> tuple[Any, Any]:
        x, state, parts = x0, state0, []
        for _ in range(math.ceil(steps / unroll) if steps else 0):
            x, state, fs = compiled(x, state)
            parts.append(fs)
        objective.n_evals += steps
        objective.n_fevals += steps
        fs = torch.cat(parts) if parts else torch.zeros(0, dtype=x0.dtype)
        return x, fs

    return run
