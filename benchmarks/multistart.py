"""Multi-start: `optbench solve --starts 1000` on the tutorial puzzle against one start.

Both run the solve defaults (until f - f* <= 1e-20 per start on average, or 10000 steps) on
the torch backend, with NAdam (the default) and with lbfgs; the starts run as one (1000, 4)
batch. Loop times from the records. NAdam is also compared at an equal 2000 steps: the cost
of a batched step against a single one.

    python benchmarks/multistart.py [--starts 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics

from optbench.solving import solve_equations

TUTORIAL = ["A + B = 9", "C - D = 1", "A + C = 8", "B - D = 2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="torch")
    args = parser.parse_args()
    for optimizer, steps in (("nadam", None), ("nadam", 2000), ("lbfgs", None)):
        options = {"steps": steps} if steps else {}
        solve_equations(TUTORIAL, backend=args.backend, optimizer=optimizer, steps=20)
        one, many = [], []
        for _ in range(args.repeats):
            r1 = solve_equations(TUTORIAL, backend=args.backend, optimizer=optimizer,
                                 **options)[0]
            rk = solve_equations(TUTORIAL, backend=args.backend, optimizer=optimizer,
                                 starts=args.starts, **options)[0]
            one.append(r1.time_s)
            many.append(rk.time_s)
        t1, tk = statistics.median(one), statistics.median(many)
        label = f"{optimizer}" + (f", {steps} steps" if steps else ", to tolerance")
        print(f"{label}:")
        print(f"  one start           : {t1 * 1e3:8.1f} ms  ({r1.steps} steps, {r1.status})")
        print(f"  {args.starts} starts (batch): {tk * 1e3:8.1f} ms  ({rk.steps} steps, "
              f"{rk.status})")
        print(f"  ratio               : {tk / t1:8.2f}   (target <= 3)")

if __name__ == "__main__":
    main()
