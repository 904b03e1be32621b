"""Scale: one step of the regression at n_samples 10^7 (float64, torch CPU) against the
memory-bandwidth bound, and peak memory against the data, measured in one run.

Bound: a step must read the design matrix V (n x 3) and y (n) at least once: 32 bytes per
sample. Bandwidth: a numpy streaming read (sum of a large array) in the same process.
Peak memory: the process's peak RSS growth while preparing and stepping, against the bytes
of the data. Run in a fresh process (it reads ru_maxrss).

    python benchmarks/scale.py [--n 10000000] [--steps 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def stream_read_gbs(n_bytes: int, repeats: int = 5) -> float:
    a = np.ones(n_bytes // 8)
    best = min(_timed(lambda: a.sum()) for _ in range(repeats))
    return a.nbytes / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    import torch

    from optbench import api

    api.plan("regression", "torch", "nadam", steps=1)  # imports and registry, not data
    base = rss_peak_mb()
    plan = api.plan("regression", "torch", "nadam", steps=1,
                    problem_params={"n_samples": args.n})
    data_bytes = sum(v.nbytes for v in plan.instance.data.values())
    objective = plan.backends[0].prepare(plan.problem, plan.instance.data, dtype="float64",
                                         device="cpu")
    x = objective.from_numpy(plan.instance.x0)
    state = plan.method.init(x, objective.xp)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        x, state, _, _ = plan.method.step(objective, x, state)
        times.append(time.perf_counter() - start)
    peak = rss_peak_mb() - base
    step = statistics.median(times[1:]) if len(times) > 1 else times[0]
    bandwidth = stream_read_gbs(data_bytes)
    bound = data_bytes / (bandwidth * 1e9)
    print(f"n_samples {args.n}, float64, torch CPU ({torch.get_num_threads()} threads)")
    print(f"data (V and y)          : {data_bytes / 1e6:9.1f} MB")
    print(f"numpy streaming read    : {bandwidth:9.2f} GB/s")
    print(f"bandwidth bound per step: {bound * 1e3:9.2f} ms   (data read once)")
    print(f"optbench step (median)  : {step * 1e3:9.2f} ms   ratio {step / bound:.2f} "
          "(target <= 2)")
    print(f"peak RSS growth         : {peak:9.1f} MB   ratio to data {peak * 1e6 / data_bytes:.2f}"
          " (target <= 2; the data included)")


if __name__ == "__main__":
    main()
