"""Start-up: wall time of `optbench --help` and `optbench list` in a new process."""

import subprocess
import sys
import time


def _wall(*args: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "optbench", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def track_help_s():
    return _wall("--help")


def track_list_s():
    return _wall("list")


track_help_s.unit = "seconds"
track_list_s.unit = "seconds"
