"""Framework overhead: optbench's torch NAdam loop against the tutorial's hand-written loop.

Both minimize the tutorial's regression (x²+2x+3, 20 points, mean squared error) with NAdam,
lr 0.01, 1000 steps, float32, from the same data and the same start, in this one process.
Prints the loop times (median of several repeats, after a warm-up) and their ratio.

    python benchmarks/overhead.py [--steps 1000] [--repeats 7] [--dtype float32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from optbench import api


def tutorial_loop(x: np.ndarray, y: np.ndarray, w0: np.ndarray, steps: int,
                  dtype: torch.dtype, device: str = "cpu") -> tuple[float, np.ndarray]:
    """The tutorial as written: torch.optim.NAdam over y_pred = a·x² + b·x + c (on CUDA the
    clock waits for the device at both ends)."""
    xt = torch.as_tensor(x, dtype=dtype, device=device)
    yt = torch.as_tensor(y, dtype=dtype, device=device)
    w = torch.tensor(w0, dtype=dtype, device=device, requires_grad=True)
    opt = torch.optim.NAdam([w], lr=0.01)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        y_pred = w[0] * xt**2 + w[1] * xt + w[2]
        loss = torch.mean((y_pred - yt) ** 2)
        loss.backward()
        opt.step()
    sync()
    elapsed = time.perf_counter() - start
    return elapsed, w.detach().cpu().numpy().astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--compiled", action="store_true",
                        help="also time --compile (torch.compile of the steps)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # both sides alike; tiny tensors gain nothing from threads

    plan = api.plan("regression", "torch", "nadam", lr=0.01, steps=args.steps,
                    dtype=args.dtype)
    backend = plan.backends[0]
    x = plan.instance.data["V"][:, -2]  # the x column of the design matrix
    y = plan.instance.data["y"]
    w0 = plan.instance.x0
    tdtype = getattr(torch, args.dtype)

    tutorial, ours = [], []
    tutorial_loop(x, y, w0, 50, tdtype)  # warm-up: first calls allocate and dispatch slowly
    api.execute(plan, backend)
    for _ in range(args.repeats):
        t, w_tut = tutorial_loop(x, y, w0, args.steps, tdtype)
        tutorial.append(t)
        record = api.execute(plan, backend)
        ours.append(record.time_s)
    t_med, o_med = statistics.median(tutorial), statistics.median(ours)
    gap = float(np.max(np.abs(np.asarray(record.x) - w_tut)))
    print(f"tutorial loop, torch.optim.NAdam : {t_med * 1e3:8.2f} ms  "
          f"({t_med / args.steps * 1e6:.1f} us/step)")
    print(f"optbench torch nadam             : {o_med * 1e3:8.2f} ms  "
          f"({o_med / args.steps * 1e6:.1f} us/step)")
    print(f"ratio optbench / tutorial        : {o_med / t_med:8.3f}   (target <= 1.0)")
    print(f"max |x_optbench - x_tutorial|    : {gap:.2e}   ({args.dtype}, {args.steps} steps)")
    if args.compiled:
        compiled_plan = api.plan("regression", "torch", "nadam", lr=0.01, steps=args.steps,
                                 dtype=args.dtype, compile=True)
        runs = [api.execute(compiled_plan, backend) for _ in range(args.repeats)]
        loop = statistics.median(r.time_s for r in runs)
        first = runs[0]
        print(f"optbench --compile, loop         : {loop * 1e3:8.2f} ms  ratio "
              f"{loop / t_med:.3f} (target <= 0.1)")
        print(f"optbench --compile, end to end   : {(first.setup_s + first.time_s):8.2f} s   "
              f"(compilation {first.setup_s:.2f} s; target: no slower than the tutorial loop)")


if __name__ == "__main__":
    main()
