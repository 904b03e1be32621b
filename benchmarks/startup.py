"""Start-up time of the command line, against the bare interpreter's, measured in one run.

    python benchmarks/startup.py [--repeat 5]

Times `optbench --help`, `optbench list` and `optbench grad "x*x" --at x=3.6` as
subprocesses (wall time, median of N runs, after one warm-up run of each) and prints them
next to `python -c pass`, so that what optbench itself adds is visible whatever the
machine. The targets are about 0.3 s for the first two and under 2 s for the derivative;
they are measured here rather than asserted in a test (the project has no timed tests).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "optbench --help": [sys.executable, "-m", "optbench", "--help"],
    "optbench list": [sys.executable, "-m", "optbench", "list"],
    # The tutorial's first task, on the default backends (autograd and fd): target < 2 s.
    'optbench grad "x*x"': [sys.executable, "-m", "optbench", "grad", "x*x", "--at", "x=3.6"],
}


def wall_time(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def median_time(argv: list[str], repeat: int) -> float:
    wall_time(argv)  # warm-up: file-system caches, .pyc files
    return statistics.median(wall_time(argv) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    args = parser.parse_args()
    times = {name: median_time(argv, args.repeat) for name, argv in COMMANDS.items()}
    bare = times["python -c pass"]
    print(f"{'command':<20} {'median':>9} {'over bare python':>17}   ({args.repeat} runs)")
    for name, seconds in times.items():
        extra = "" if name == "python -c pass" else f"{(seconds - bare) * 1e3:+14.0f} ms"
        print(f"{name:<20} {seconds * 1e3:6.0f} ms {extra:>17}")


if __name__ == "__main__":
    main()
