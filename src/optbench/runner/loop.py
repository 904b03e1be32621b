"""The optimization loop: step, check the stop rules, sample the trace — and time only the
steps.

Timing discipline (benchopt's callback timer): the clock runs while the optimizer steps and
is paused while the trace is recorded, so a trace costs no loop time. On asynchronous
devices (CUDA) the device is synchronized only at sampled steps and at check points, so
steps in between queue freely.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optbench.core import Method, Objective
from optbench.runner.stopping import Criterion, Progress, TimeLimit, self_stop

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
    by_method: bool = False
    """The optimizer stopped itself (its done(), or a driver's own end), not a stop rule:
    its status is settled against the requested tolerance at the final point
    (stopping.settle)."""


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
        if isinstance(g, np.ndarray):  # computed on the host (lm, gn: see Method)
            return float(np.sqrt(np.sum(g * g)))
        return float(xp.sqrt(xp.sum(g * g)))

    x = x0
    state = method.init(x, xp)
    elapsed = 0.0
    status, message = "max_steps", f"reached the step limit ({steps})"
    by_method = False
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
            status, message = self_stop(reason)
            by_method = True
            break
        x = x_next
    else:
        k = steps
    objective.synchronize()
    elapsed += time.perf_counter() - started
    return LoopResult(status, message, k, x, elapsed, trace, by_method)


def drive(objective: Objective, method: Method, x0: Any, *, steps: int,
          criteria: list[Criterion], per_decade: int = 12) -> LoopResult:
    """Run a method that drives its own loop (Method.run: scipy.optimize and the like).

    The driver calls back after each iteration; the callback samples the trace and asks
    the stop rules, pausing the clock meanwhile, exactly as `optimize` does.
    """
    xp = objective.xp
    sampled = sample_steps(steps, per_decade) if per_decade else set()
    trace: list[list[float]] = []
    clock = {"elapsed": 0.0, "started": 0.0}
    verdict: list[tuple[str, str]] = []
    last = {"k": 0}

    def grad_norm(g: Any) -> float:
        return math.inf if g is None else float(xp.sqrt(xp.sum(g * g)))

    def on_iteration(k: int, x: Any, f: Any, g: Any) -> tuple[str, str] | None:
        objective.synchronize()
        now = time.perf_counter()
        clock["elapsed"] += now - clock["started"]
        last["k"] = k
        f_host = float(f)
        if k in sampled:
            trace.append([k, clock["elapsed"], f_host])
        progress = Progress(k, f_host, g, clock["elapsed"], grad_norm)
        found = next((v for c in criteria if (v := c.check(progress))), None)
        if found:
            verdict.append(found)
        clock["started"] = time.perf_counter()
        return found

    objective.synchronize()
    clock["started"] = time.perf_counter()
    x, status, message = method.run(objective, x0, steps, on_iteration)
    objective.synchronize()
    clock["elapsed"] += time.perf_counter() - clock["started"]
    if verdict:
        status, message = verdict[0]
    return LoopResult(status, message, last["k"], x, clock["elapsed"], trace,
                      by_method=not verdict and status in ("converged", "stalled"))


CHUNK_MAX = 1 << 16
"""The most steps of a compiled loop run by one call: the f values of one call (512 KiB in
float64) are all a compiled run holds per step, however many steps it takes."""


def run_compiled(objective: Objective, method: Method, x0: Any, *, steps: int,
                 f_star: float | None, tol: float | None, max_time: float | None = None,
                 per_decade: int = 12) -> tuple[LoopResult, float]:
    """The loop compiled by the backend (Objective.compiled_loop), run in chunks; returns
    the result and the compile time (for setup_s).

    The compiled program continues from where its previous call stopped, and each call runs
    a chunk of steps. Between chunks the stop rules are applied to its f values: divergence
    (the first non-finite f, at its step), tolerance (the chunk's last f) and --max-time. With
    a time limit the chunks start at one step and double, but a chunk is never longer than
    the time left predicted from the last one, so a run stops about when the limit says;
    without one every chunk is CHUNK_MAX steps. The trace's times inside a chunk assume
    equal steps, since a compiled call reports only its total time.

    A backend's loop that takes no step count (the contract before chunks) runs all steps
    in one call, as it did.
    """
    import numpy as np

    t0 = time.perf_counter()
    loop = objective.compiled_loop(method, steps, x0)
    objective.synchronize()
    compile_s = time.perf_counter() - t0

    chunked = _takes_a_count(loop)
    samples = sorted(sample_steps(steps, per_decade)) if per_decade else []
    limit = TimeLimit(max_time) if max_time is not None else None
    trace: list[list[float]] = []
    x, done, elapsed, want = x0, 0, 0.0, (1 if limit else CHUNK_MAX)
    status, message = "max_steps", f"compiled loop ran all {steps} steps"
    while done < steps:
        start = time.perf_counter()
        x, fs = loop(min(want, steps - done)) if chunked else loop()
        objective.synchronize()
        spent = time.perf_counter() - start
        fs = np.asarray(objective.to_numpy(fs), dtype=np.float64).reshape(-1)
        ran = min(len(fs), steps - done)
        if ran == 0:
            raise RuntimeError(f"the compiled loop ran no step ({steps - done} were left)")
        for k in samples:
            if done <= k < done + ran:
                trace.append([k, elapsed + spent * (k - done) / ran, float(fs[k - done])])
        elapsed += spent
        bad = np.flatnonzero(~np.isfinite(fs[:ran]))
        if bad.size:
            status, done = "diverged", done + int(bad[0])
            message = f"f became {fs[bad[0]]} at step {done} (compiled loop)"
            break
        done += ran
        if tol is not None and f_star is not None and fs[ran - 1] - f_star <= tol:
            status = "converged"
            message = f"f - f* <= {tol:g} (checked between compiled chunks)"
            break
        if limit is not None:
            if verdict := limit.check(Progress(done, float(fs[ran - 1]), None, elapsed, None)):
                status, message = verdict
                break
            # Double the chunk, but not past the time left at the last chunk's pace.
            left = math.ceil((max_time - elapsed) * ran / spent) if spent > 0 else want
            want = max(1, min(2 * ran, CHUNK_MAX, left))
    return LoopResult(status, message, done, x, elapsed, trace), compile_s


def _takes_a_count(loop: Any) -> bool:
    """Whether a compiled loop accepts the chunk's step count (`loop(n)`)."""
    try:
        parameters = inspect.signature(loop).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in parameters)
