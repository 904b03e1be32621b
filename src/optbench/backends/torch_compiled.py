"""`--compile` on the torch backend: the optimizer's own step, compiled by torch.compile on
the CPU and captured in a CUDA graph on a GPU.

The loop runs in chunks (`run(n)`: about n more steps, continuing where the previous call
stopped), so that the runner can stop it at --max-time and no buffer grows with the step
count. The same optax-style step runs on a functional objective (torch.func.grad_and_value, which
torch.compile traces; torch.autograd.grad is not). Each compiled call unrolls up to
UNROLL steps, so Python and dispatch overhead is paid once per call, not once per step.
The state's Python numbers become 0-d tensors first (a Python step count would be baked
into the graph as a constant and force a recompilation at every call), and its tensors are
made distinct.

On CUDA a step of the tutorial's regression is ~30 kernels of a few microseconds each, and
the time goes to launching them. A CUDA graph captures UNROLL steps once and replays them
with one launch (`graphed_loop`); with mode "inductor" the captured steps are torch.compile's
fused kernels (fewer and faster, at a compilation of tens of seconds), with mode "eager"
they are the step's own kernels (captured in milliseconds). OPTBENCH_CUDA_GRAPHS chooses;
eager is the default, so that the end-to-end time stays far below the hand-written loop's.
"""

from __future__ import annotations

import math
import os
from typing import Any

UNROLL = 10
CUDA_GRAPH_MODES = ("eager", "inductor")


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


def _unroll(steps: int) -> int:
    # The largest unroll that divides the step count, so one graph serves every call.
    return max(k for k in range(1, min(UNROLL, max(steps, 1)) + 1) if steps % k == 0)


def _chunk(objective: Any, method: Any, unroll: int) -> Any:
    """`unroll` steps of `method` as one function of (x, state): what gets compiled."""
    torch = objective.xp
    functional = _Functional(torch, lambda x: objective._fn(x, objective.data, torch))

    def chunk(x: Any, state: Any) -> tuple[Any, Any, Any]:
        fs = []
        for _ in range(unroll):
            x, state, f, _ = method.step(functional, x, state)
            fs.append(f)
        return x, state, torch.stack(fs)

    return chunk


def compiled_loop(objective: Any, method: Any, steps: int, x0: Any) -> Any:
    if objective.device != "cpu":
        mode = os.environ.get("OPTBENCH_CUDA_GRAPHS", "eager")
        return graphed_loop(objective, method, steps, x0, mode=mode)
    torch = objective.xp
    unroll = _unroll(steps)
    chunk = _chunk(objective, method, unroll)

    compiled = torch.compile(chunk, fullgraph=True, dynamic=False)
    state0 = _tensorize(torch, method.init(x0, torch), x0)
    if steps:
        compiled(x0, state0)  # compile now: this is set-up time
    at = {"x": x0, "state": state0, "left": steps}

    def run(n: int | None = None) -> tuple[Any, Any]:
        x, state = at["x"], at["state"]
        parts = [torch.zeros(0, dtype=x0.dtype)]
        for _ in range(_calls(n, at["left"], unroll)):
            x, state, fs = compiled(x, state)
            parts.append(fs)
        done = (len(parts) - 1) * unroll
        at.update(x=x, state=state, left=at["left"] - done)
        objective.n_evals += done
        objective.n_fevals += done
        return x, torch.cat(parts)

    return run


def _calls(n: int | None, left: int, unroll: int) -> int:
    """Calls of `unroll` steps for a chunk of about n steps (None: all that are left): at
    least one while steps are left, never past them (`unroll` divides the step count)."""
    want = left if n is None else min(max(n, 1), left)
    return math.ceil(want / unroll) if want > 0 else 0


def _tensors(state: Any) -> list[Any]:
    if isinstance(state, tuple):
        return [t for s in state for t in _tensors(s)]
    return [state] if hasattr(state, "copy_") else []


def graphed_loop(objective: Any, method: Any, steps: int, x0: Any, *, mode: str = "eager"
                 ) -> Any:
    """The loop as replays of one CUDA graph of `unroll` steps (see the module's docstring).

    The graph reads x and the state from static buffers and writes the next ones back into
    them, so that replays chain; each replay's f values are copied out after it, on the
    device, without a synchronization.
    """
    if mode not in CUDA_GRAPH_MODES:
        from optbench.errors import UsageError

        raise UsageError(f"OPTBENCH_CUDA_GRAPHS={mode!r}; accepted: "
                         + ", ".join(CUDA_GRAPH_MODES))
    torch = objective.xp
    unroll = _unroll(steps)
    chunk = _chunk(objective, method, unroll)
    if mode == "inductor":
        chunk = torch.compile(chunk, fullgraph=True, dynamic=False)
    x_static = x0.clone()
    state_static = _tensorize(torch, method.init(x0, torch), x0)
    inputs = [x_static, *_tensors(state_static)]
    initial = [t.clone() for t in inputs]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up before capture (allocator, cuBLAS, compile)
        for _ in range(2):
            chunk(x_static, state_static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        x_out, state_out, fs_out = chunk(x_static, state_static)
        for static, new in zip(inputs, [x_out, *_tensors(state_out)], strict=True):
            static.copy_(new)
    left = {"steps": steps, "fresh": True}

    def run(n: int | None = None) -> tuple[Any, Any]:
        if left.pop("fresh", False):  # the first chunk starts from x0, as run() always did
            torch.cuda.current_stream().wait_stream(side)
            for static, start in zip(inputs, initial, strict=True):
                static.copy_(start)
        calls = _calls(n, left["steps"], unroll)
        fs = torch.empty(calls * unroll, dtype=x0.dtype, device=x0.device)
        for k in range(calls):
            graph.replay()
            fs[k * unroll:(k + 1) * unroll].copy_(fs_out)
        left["steps"] -= calls * unroll
        objective.n_evals += calls * unroll
        objective.n_fevals += calls * unroll
        return x_static.clone(), fs

    return run
