"""The compiled whole loop against the tutorial's hand-written torch loop, in one process.

The task is `optbench run --backend jax --compile` with its defaults: the tutorial's
regression (x²+2x+3, 20 points, mean squared error), NAdam, lr 0.01, 1000 steps, same data and
start for both. For each dtype it prints, as medians over the repeats (each repeat a full
`api.execute`: prepare, compile, run):

  - the loop time of the compiled loop (record.time_s, the target is <= 2 ms),
  - its set-up time (record.setup_s: conversion and compilation),
  - the step-by-step jax loop (eager optimizer between jit-compiled value_and_grad calls),
  - the tutorial's loop as written, torch.optim.NAdam (benchmarks/overhead.py's tutorial_loop),
  - the ratio tutorial / compiled and how far apart the final points are.

    python plugins/optbench-jax/benchmarks/whole_loop.py [--steps 1000] [--repeats 7]
                                                         [--dtype float64 float32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from optbench import api


def tutorial_loop(x: np.ndarray, y: np.ndarray, w0: np.ndarray, steps: int,
                  dtype: torch.dtype) -> tuple[float, np.ndarray]:
    """The tutorial as written: torch.optim.NAdam over y_pred = a·x² + b·x + c (a copy of
    benchmarks/overhead.py's, so that this plugin's benchmark stands alone)."""
    xt = torch.as_tensor(x, dtype=dtype)
    yt = torch.as_tensor(y, dtype=dtype)
    w = torch.tensor(w0, dtype=dtype, requires_grad=True)
    opt = torch.optim.NAdam([w], lr=0.01)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        y_pred = w[0] * xt**2 + w[1] * xt + w[2]
        loss = torch.mean((y_pred - yt) ** 2)
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    return elapsed, w.detach().numpy().astype(np.float64)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"],
                        choices=["float64", "float32"])
    args = parser.parse_args()
    torch.set_num_threads(1)  # as benchmarks/overhead.py: tiny tensors gain nothing

    for dtype in args.dtype:
        compiled = api.plan("regression", "jax", "nadam", lr=0.01, steps=args.steps,
                            dtype=dtype, compile=True)
        stepwise = api.plan("regression", "jax", "nadam", lr=0.01, steps=args.steps,
                            dtype=dtype)
        backend = compiled.backends[0]
        data, w0 = compiled.instance.data, compiled.instance.x0
        x, y = data["V"][:, -2], data["y"]  # the x column of the design matrix
        tdtype = getattr(torch, dtype)

        tutorial_loop(x, y, w0, 50, tdtype)  # warm-ups: first calls allocate and compile
        api.execute(compiled, backend)
        api.execute(stepwise, backend)
        loop, setup, step_by_step, tutorial = [], [], [], []
        for _ in range(args.repeats):
            record = api.execute(compiled, backend)
            loop.append(record.time_s)
            setup.append(record.setup_s)
            t, w_tutorial = tutorial_loop(x, y, w0, args.steps, tdtype)
            tutorial.append(t)
        for _ in range(max(1, args.repeats // 3)):  # slow: ~0.5 ms a step
            step_by_step.append(api.execute(stepwise, backend).time_s)
        assert record.status == "max_steps" and record.dtype == dtype, record.message

        t_loop, t_tut = statistics.median(loop), statistics.median(tutorial)
        gap = float(np.max(np.abs(np.asarray(record.x) - w_tutorial)))
        print(f"{dtype}, regression, NAdam lr 0.01, {args.steps} steps "
              f"(medians of {args.repeats})")
        print(f"  jax compiled loop, time_s       : {ms(t_loop)}  "
              f"(min {ms(min(loop)).strip()}, {t_loop / args.steps * 1e6:.2f} us/step; "
              f"target <= 2 ms)")
        print(f"  jax compile + set-up, setup_s   : {ms(statistics.median(setup))}")
        print(f"  jax step by step, time_s        : {ms(statistics.median(step_by_step))}")
        print(f"  tutorial loop, torch.optim.NAdam: {ms(t_tut)}  "
              f"({t_tut / args.steps * 1e6:.1f} us/step)")
        print(f"  ratio tutorial / compiled       : {t_tut / t_loop:9.1f}x")
        print(f"  max |x_jax - x_tutorial|        : {gap:.2e}")


if __name__ == "__main__":
    main()
