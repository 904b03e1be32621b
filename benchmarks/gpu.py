"""The GPU figures of one lent device, measured in one process (benchmarks/gpu_check.sh runs it).

1. HBM bound: torch.sum over a float32 device array as large as the data, timed with CUDA
   events, gives the streaming-read bandwidth; a regression step at n_samples 10^8 float32
   must read V (n × 3) and y (n) once, 16 bytes per sample. Each torch objective path
   (auto = what optbench picks; triton, fused, blocks; off = autograd as written) is timed
   over several NAdam steps, with the peak device memory against the data.
2. The tutorial's regression (20 points, NAdam lr 0.01, 1000 steps, float32) on CUDA: the
   hand-written loop (torch.optim.NAdam), optbench step by step, and `--compile` with CUDA
   graphs in each mode (eager: the step's kernels captured; inductor: torch.compile's fused
   kernels captured). Per-step loop time, set-up (capture and compilation) and end to end.

Each part is guarded: one that fails is reported and the others still run.

    PYTHONPATH=src:. python benchmarks/gpu.py [--n 100000000] [--steps 20] [--json gpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback

import numpy as np
import torch

from benchmarks.scale import cuda_event_time, cuda_read_gbs


def scale(n: int, steps: int, kernels: list[str]) -> dict:
    from optbench import api
    from optbench.backends.pytorch import TorchObjective

    t0 = time.perf_counter()
    plan = api.plan("regression", "torch", "nadam", steps=1, problem_params={"n_samples": n})
    make_s = time.perf_counter() - t0
    data = plan.instance.data
    data_bytes = sum(v.size for v in data.values()) * 4
    bandwidth = cuda_read_gbs(torch, data_bytes)
    bound = data_bytes / (bandwidth * 1e9)
    out = {"n": n, "dtype": "float32", "data_bytes": data_bytes, "make_s": make_s,
           "hbm_read_gbs": bandwidth, "bound_s": bound, "kernels": {}}
    print(f"scale: n {n}, data {data_bytes / 1e9:.2f} GB, HBM read {bandwidth:.0f} GB/s, "
          f"bound {bound * 1e3:.3f} ms per step", flush=True)
    for kernel in kernels:
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            stream = None if kernel == "auto" else kernel
            objective = TorchObjective(plan.problem, data, "float32", "cuda", stream=stream)
            x = objective.from_numpy(plan.instance.x0)
            state = plan.method.init(x, torch)
            x, state, _, _ = plan.method.step(objective, x, state)  # compiles, if fused
            torch.cuda.synchronize()
            setup = time.perf_counter() - t0
            used = "off" if objective.stream is None else objective.stream.kernel

            def run(x=x, state=state, objective=objective):
                for _ in range(steps):
                    x, state, _, _ = plan.method.step(objective, x, state)

            step = cuda_event_time(torch, run, 3) / steps
            peak = torch.cuda.max_memory_allocated()
            row = {"kernel": used, "asked": kernel, "step_s": step, "ratio": step / bound,
                   "setup_s": setup, "peak_bytes": peak, "memory_ratio": peak / data_bytes,
                   "fallback": getattr(objective.stream, "fallback", None)}
            del objective, x, state
        except Exception as exc:  # report it and go on
            row = {"error": f"{type(exc).__name__}: {exc}"[:500],
                   "trace": traceback.format_exc()[-2000:]}
        out["kernels"][kernel] = row
        print(f"  kernel {kernel}: {json.dumps(row)[:400]}", flush=True)
    return out


def tutorial_loop_cuda(steps: int) -> dict:
    """The tutorial as written, on the GPU (benchmarks/overhead.py's loop, same data)."""
    from benchmarks.overhead import tutorial_loop
    from optbench import api

    plan = api.plan("regression", "torch", "nadam", steps=steps)
    x = plan.instance.data["V"][:, 1]  # the columns are x², x, 1
    elapsed, w = tutorial_loop(x, plan.instance.data["y"], plan.instance.x0, steps,
                               torch.float32, device="cuda")
    return {"loop_s": elapsed, "per_step_us": elapsed / steps * 1e6, "x": w.tolist()}


def tutorial(steps: int) -> dict:
    import optbench

    out: dict = {}
    try:
        tutorial_loop_cuda(steps)  # warm-up: CUDA context, kernels
        out["hand_written"] = tutorial_loop_cuda(steps)
    except Exception as exc:
        out["hand_written"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    print(f"tutorial hand-written: {out['hand_written']}", flush=True)
    runs = [("optbench_eager", {}, None), ("graphs_eager", {"compile": True}, "eager"),
            ("graphs_inductor", {"compile": True}, "inductor")]
    for name, options, mode in runs:
        try:
            if mode:
                os.environ["OPTBENCH_CUDA_GRAPHS"] = mode
            t0 = time.perf_counter()
            rec = optbench.solve(problem="regression", backend="torch", optimizer="nadam",
                                 device="cuda", dtype="float32", steps=steps, **options)
            wall = time.perf_counter() - t0
            out[name] = {"loop_s": rec.time_s, "setup_s": rec.setup_s,
                         "end_to_end_s": rec.time_s + rec.setup_s, "wall_s": wall,
                         "per_step_us": rec.time_s / steps * 1e6, "status": rec.status,
                         "x": [float(v) for v in rec.x]}
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500],
                         "trace": traceback.format_exc()[-2000:]}
        print(f"tutorial {name}: {json.dumps(out[name])[:600]}", flush=True)
    hand = out["hand_written"].get("loop_s")
    for name in ("optbench_eager", "graphs_eager", "graphs_inductor"):
        row = out[name]
        if hand and "loop_s" in row:
            row["loop_ratio_to_hand"] = row["loop_s"] / hand
            row["end_to_end_ratio_to_hand"] = row["end_to_end_s"] / hand
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--kernels", nargs="+",
                        default=["auto", "triton", "fused", "blocks", "off"])
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-tutorial", action="store_true")
    parser.add_argument("--json", default="gpu.json")
    args = parser.parse_args()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    try:
        from torch.utils._triton import has_triton

        report["triton"] = bool(has_triton())
    except ImportError:
        report["triton"] = False
    print(report, flush=True)
    report["tutorial"] = {} if args.skip_tutorial else tutorial(1000)
    _write(args.json, report)
    if not args.skip_scale:
        try:
            report["scale"] = scale(args.n, args.steps, args.kernels)
        except Exception as exc:
            report["scale"] = {"error": f"{type(exc).__name__}: {exc}"[:500],
                               "trace": traceback.format_exc()[-2000:]}
    _write(args.json, report)
    _summary(report)


def _write(path: str, report: dict) -> None:
    with open(path, "w") as handle:
        json.dump(report, handle, indent=1, default=float)


def _summary(report: dict) -> None:
    t = report["tutorial"]
    print("\n== summary ==")
    for name in ("hand_written", "optbench_eager", "graphs_eager", "graphs_inductor"):
        row = t.get(name, {})
        if "per_step_us" in row:
            extra = (f", setup {row['setup_s']:.3f} s, end-to-end/hand "
                     f"{row.get('end_to_end_ratio_to_hand', float('nan')):.3f}, loop/hand "
                     f"{row.get('loop_ratio_to_hand', float('nan')):.3f}"
                     if "setup_s" in row else "")
            print(f"tutorial {name:16s}: {row['per_step_us']:8.2f} us/step{extra}")
        else:
            print(f"tutorial {name:16s}: {row.get('error')}")
    s = report.get("scale", {})
    for kernel, row in s.get("kernels", {}).items():
        if "step_s" in row:
            print(f"scale {kernel:7s}: step {row['step_s'] * 1e3:.3f} ms, bound "
                  f"{s['bound_s'] * 1e3:.3f} ms, ratio {row['ratio']:.2f}, memory/data "
                  f"{row['memory_ratio']:.2f}, setup {row['setup_s']:.1f} s")
        else:
            print(f"scale {kernel:7s}: {row.get('error')}")


if __name__ == "__main__":
    np.set_printoptions(precision=6)
    main()
