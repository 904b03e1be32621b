"""What recording the trace costs: the loop's wall time with the trace against without it.

The loop pauses its clock while it records a trace point, so time_s never includes the
trace; this measures the wall-clock price anyway, per backend, in one process, alternating
the two variants to share the machine's noise.

    python benchmarks/trace_cost.py [--steps 1000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

from optbench import api
from optbench.runner import stopping
from optbench.runner.loop import optimize


def wall(plan, backend, per_decade: int) -> float:
    objective = backend.prepare(plan.problem, plan.instance.data, dtype=plan.dtype,
                                device=plan.device)
    x0 = objective.from_numpy(plan.instance.x0)
    criteria = stopping.criteria(None, None, None)
    start = time.perf_counter()
    optimize(objective, plan.method, x0, steps=plan.steps, criteria=criteria,
             per_decade=per_decade)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"{'backend':10} {'with trace':>12} {'without':>12} {'cost':>8}   (median of "
          f"{args.repeats}, {args.steps} nadam steps, tutorial regression)")
    for name in ("torch", "autograd", "fd"):
        plan = api.plan("regression", name, "nadam", steps=args.steps)
        backend = plan.backends[0]
        wall(plan, backend, 12)  # warm-up
        with_trace, without = [], []
        for _ in range(args.repeats):
            with_trace.append(wall(plan, backend, 12))
            without.append(wall(plan, backend, 0))
        w, wo = statistics.median(with_trace), statistics.median(without)
        print(f"{name:10} {w * 1e3:10.2f}ms {wo * 1e3:10.2f}ms {100 * (w - wo) / wo:7.2f}%"
              f"   (target < 5%)")


if __name__ == "__main__":
    main()
