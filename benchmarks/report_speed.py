"""How long `optbench report` takes on a campaign of 300 runs, and how big its page is.

Builds the campaign once with `optbench bench` (3 problems × 2 backends × 5 optimizers ×
10 seeds, 200 steps: 300 runs), unless --results names one, then times each report command
as a user runs it (a fresh process: imports included), the median of --repeats:

    python benchmarks/report_speed.py [--results FILE] [--repeats 3] [--workdir DIR]

The issue's bound: `report FILE --html page.html` under 10 s on the project's machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# As the `optbench` script runs it.
OPTBENCH = [sys.executable, "-c", "from optbench.cli.main import main; main()"]
CAMPAIGN = ["--problem", "regression,puzzle,rosenbrock", "--backend", "torch,autograd",
            "--optimizer", "nadam,adam,lbfgs,sgd,rmsprop", "--seeds", "10", "--steps", "200"]
BOUND_S = 10.0


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([*OPTBENCH, *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=None,
                        help="an existing results file (default: run the 300-run campaign)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the results, page and figures here (default: a temporary "
                             "folder, removed)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="optbench-report-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = args.results
        if results is None:
            results = work / "results.jsonl"
            if not results.exists():
                print(f"building the campaign: optbench bench {' '.join(CAMPAIGN)}", flush=True)
                took = run(["bench", *CAMPAIGN, "--quiet", "--output", str(results)])
                print(f"  {took:.1f} s")
        runs = sum(1 for line in results.read_text(encoding="utf-8").splitlines()
                   if line.strip())
        page = work / "page.html"
        commands = {
            "report FILE --html page.html": ["--html", str(page)],
            "report FILE --plot DIR": ["--plot", str(work / "png")],
            "report FILE --plot DIR --figure-format png,svg,pdf":
                ["--plot", str(work / "all"), "--figure-format", "png,svg,pdf"],
            "report FILE --html page.html --plot DIR":
                ["--html", str(page), "--plot", str(work / "both")],
        }
        print(f"{runs} runs in {results}; median of {args.repeats} (a fresh process each)")
        for label, extra in commands.items():
            times = [run(["report", str(results), *extra]) for _ in range(args.repeats)]
            median = statistics.median(times)
            note = ""
            if extra[0] == "--html" and len(extra) == 2:
                note = f"  page {page.stat().st_size / 1e6:.2f} MB" + (
                    "" if median < BOUND_S else f"  OVER the {BOUND_S:g} s bound")
            print(f"  {label:<52} {median:6.2f} s{note}", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
