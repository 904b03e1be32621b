"""The optimization loop: step, check the stop rules, sample the trace — and time only the
steps.

Timing discipline (benchopt's callback timer): the clock runs while the optimizer steps and
is paused while the trace is recorded, so a trace costs no loop time. On asynchronous
devices (CUDA) the device is synchronized only at sampled steps and at check points, so
steps in between queue freely.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from optbench.core import Method, Objective
from optbench.runner.stopping import Criterion, Progress

# Asynchronous devices read f back to the host (a synchronization) this often at least.
ASYNC_CHECK_EVERY = 16


def sample_steps(steps: int, per_decade: int = 12) -> set[int]:
    """Geometrically spaced steps 0, 1, 2, ... up to `steps`, about `per_decade` per decade."""
    out = {0, steps}
    k, ratio = 1.0, 10.0 ** (1.0 / per_decade)
    while k <= steps:
        out.add(int(k))
        k = max(k * ratio, int(k) + 1)
    return out


@dataclass
class LoopResult:
    status: str
    message: str
    steps: int
    x: Any  # backend array: the last point reached
    time_s: float
    trace: list[list[float]] = field(default_factory=list)


def optimize(objective: Objective, method: Method, x0: Any, *, steps: int,
             criteria: list[Criterion], per_decade: int = 12) -> LoopResult:
    """Run `method` from `x0` (backend array) for at most `steps` steps.

    The trace samples about `per_decade` steps per decade (0: none; the caller adds the
    final point).
    """
    xp = objective.xp
    sampled = sample_steps(steps, per_decade) if per_decade else set()
    check_every = ASYNC_CHECK_EVERY if objective.asynchronous else 1
    step, done = method.step, method.done
    trace: list[list[float]] = []

    def grad_norm(g: Any) -> float:
        return float(xp.sqrt(xp.sum(g * g)))

    x = x0
    state = method.init(x, xp)
    elapsed = 0.0
    status, message = "max_steps", f"reached the step limit ({steps})"
    objective.synchronize()
    started = time.perf_counter()
    for k in range(steps):
        x_next, state, f, g = step(objective, x, state)  # f, g are at x, reached after k steps
        is_sample = k in sampled
        if is_sample or k % check_every == 0:
            objective.synchronize()
            now = time.perf_counter()
            f_host = float(f)
            if is_sample:  # pause the clock while the trace is written
                elapsed += now - started
                trace.append([k, elapsed, f_host])
                started = time.perf_counter()
                now_elapsed = elapsed
            else:
                now_elapsed = elapsed + (now - started)
            progress = Progress(k, f_host, g, now_elapsed, grad_norm)
            verdict = next((v for c in criteria if (v := c.check(progress))), None)
            if verdict:
                status, message = verdict
                break
        if done is not None and (reason := done(state)):
            x, k = x_next, k + 1
            status, message = "converged", reason
            break
        x = x_next
    else:
        k = steps
    objective.synchronize()
    elapsed += time.perf_counter() - started
    return LoopResult(status, message, k, x, elapsed, trace)


def finite(values: Any) -> bool:
    return all(math.isfinite(v) for v in values)
