"""Scale: a step of the regression at a large sample (10^7 float64 on the CPU by default,
10^8 float32 on CUDA) against the memory-bandwidth bound, and peak memory against the data,
measured in one run.

Bound: a step must read the design matrix V (n × 3) and y (n) at least once: (3 + 1) ×
itemsize bytes per sample. Bandwidth, in the same process: on the CPU a numpy streaming
read (sum of an array as large as the data); on CUDA torch.sum of a device array as large
as the data, timed with CUDA events. Peak memory: on the CPU the process's peak RSS growth
while making the data and stepping (run it in a fresh process: it reads ru_maxrss); on
CUDA torch.cuda.max_memory_allocated, both against the bytes of the data.

    python benchmarks/scale.py [--n 10000000] [--steps 10] [--device cpu|cuda]
                               [--dtype float64|float32] [--kernel auto|off|blocks|fused]

--kernel picks the torch objective's path: auto (what optbench uses), off (autograd of the
objective as written, the baseline), blocks or fused (see backends/torch_streaming.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def numpy_read_gbs(n_bytes: int, repeats: int = 5) -> float:
    a = np.ones(n_bytes // 8)
    best = min(_timed(a.sum) for _ in range(repeats))
    return a.nbytes / best / 1e9


def cuda_event_time(torch, fn, repeats: int) -> float:
    """Best of `repeats` device times of fn() after one warm-up call, in seconds (CUDA
    events, not host clocks: the device runs behind the host)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(stop) / 1e3)
    return best


def cuda_read_gbs(torch, n_bytes: int, repeats: int = 20) -> float:
    """HBM streaming-read bandwidth: torch.sum over a float32 device array of n_bytes."""
    a = torch.ones(n_bytes // 4, dtype=torch.float32, device="cuda")
    seconds = cuda_event_time(torch, a.sum, repeats)
    nbytes = a.nbytes
    del a
    torch.cuda.empty_cache()
    return nbytes / seconds / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["float64", "float32"])
    parser.add_argument("--kernel", default="auto", choices=["auto", "off", "blocks", "fused"])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    dtype = args.dtype or ("float64" if args.device == "cpu" else "float32")
    import torch

    from optbench import api
    from optbench.backends.pytorch import TorchObjective

    cuda = args.device == "cuda"
    api.plan("regression", "torch", "nadam", steps=1)  # imports and registry, not data
    base = rss_peak_mb()
    plan = api.plan("regression", "torch", "nadam", steps=1,
                    problem_params={"n_samples": args.n})
    data = plan.instance.data
    itemsize = np.dtype(dtype).itemsize
    data_bytes = sum(v.size for v in data.values()) * itemsize
    setup = time.perf_counter()
    objective = TorchObjective(plan.problem, data, dtype, args.device,
                               stream=None if args.kernel == "auto" else args.kernel)
    if cuda:
        del data, plan.instance.data["V"], plan.instance.data["y"]  # the host copies
    kernel = "off" if objective.stream is None else objective.stream.kernel
    x = objective.from_numpy(plan.instance.x0)
    state = plan.method.init(x, objective.xp)
    x, state, _, _ = plan.method.step(objective, x, state)  # compiles a fused kernel
    objective.synchronize()
    setup = time.perf_counter() - setup
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        x, state, _, _ = plan.method.step(objective, x, state)
        objective.synchronize()
        times.append(time.perf_counter() - start)
    step = statistics.median(times)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 1e6
        bandwidth = cuda_read_gbs(torch, data_bytes)
        where = f"CUDA {torch.cuda.get_device_name()}"
    else:
        peak = rss_peak_mb() - base
        bandwidth = numpy_read_gbs(data_bytes)
        where = f"CPU, {torch.get_num_threads()} threads"
    bound = data_bytes / (bandwidth * 1e9)
    print(f"n_samples {args.n}, {dtype}, torch {where}, kernel {kernel}")
    print(f"data (V and y)          : {data_bytes / 1e6:9.1f} MB")
    print(f"streaming read          : {bandwidth:9.2f} GB/s  "
          f"({'torch.sum on the device' if cuda else 'numpy sum'}, same run)")
    print(f"bandwidth bound per step: {bound * 1e3:9.3f} ms   (data read once)")
    print(f"optbench step (median)  : {step * 1e3:9.3f} ms   ratio {step / bound:.2f}")
    print(f"set-up (incl. compile)  : {setup:9.2f} s")
    memory = "peak device memory" if cuda else "peak RSS growth   "
    print(f"{memory}      : {peak:9.1f} MB   ratio to data {peak * 1e6 / data_bytes:.2f}"
          " (the data included)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"n": args.n, "dtype": dtype, "device": args.device, "kernel": kernel,
                       "data_bytes": data_bytes, "bandwidth_gbs": bandwidth,
                       "bound_s": bound, "step_s": step, "ratio": step / bound,
                       "setup_s": setup, "peak_mb": peak,
                       "memory_ratio": peak * 1e6 / data_bytes}, handle, indent=1)


if __name__ == "__main__":
    main()
