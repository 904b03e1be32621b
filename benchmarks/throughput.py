"""Campaign throughput: runs per second in-process, with --workers N, and on a Dask cluster.

    python benchmarks/throughput.py [--steps 300] [--seeds 4] [--workers 2] [--repeat 3]

One campaign (regression,puzzle × torch,autograd,fd × nadam,lbfgs × 4 seeds: 48 runs of
300 steps by default) is run as a subprocess `optbench bench ... --output <tmp>` three ways,
each timed by wall clock, start-up included:

- in-process (the default, one run at a time);
- `--workers N` (a local Dask cluster that the command starts and stops itself);
- `--scheduler tcp://127.0.0.1:PORT`, on a cluster this script starts first: `dask scheduler`
  and N `dask worker --nthreads 1` processes on 127.0.0.1 (free ports), stopped at the end.
  Its first campaign finds the workers cold (imports, warm-up runs); later ones warm. The
  cluster's own start-up is not in these times (it is printed apart).

Each figure is the median over --repeat campaigns (the cluster's cold figure is one campaign),
with its ratio to in-process. Every campaign must write all its records, or the script fails.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def campaign_argv(steps: int, seeds: int) -> list[str]:
    return ["--problem", "regression,puzzle", "--backend", "torch,autograd,fd",
            "--optimizer", "nadam,lbfgs", "--seeds", str(seeds), "--steps", str(steps)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wall_of_campaign(grid: list[str], extra: list[str], out_dir: Path, n_runs: int) -> float:
    """Seconds for one `optbench bench` subprocess, from start to exit; checks its output."""
    output = Path(tempfile.mkdtemp(dir=out_dir)) / "results.jsonl"
    argv = [sys.executable, "-m", "optbench", "bench", "-q", *grid, "--output", str(output),
            *extra]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=600)
    elapsed = time.perf_counter() - started
    lines = output.read_bytes().count(b"\n") if output.exists() else 0
    if done.returncode != 0 or lines != n_runs:
        raise SystemExit(f"throughput: {' '.join(extra) or 'in-process'}: exit "
                         f"{done.returncode}, {lines} of {n_runs} records: {done.stderr}")
    return elapsed


class Cluster:
    """`dask scheduler` and N `dask worker` processes on 127.0.0.1; logs under `logs`."""

    def __init__(self, n_workers: int, logs: Path) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.logs = logs
        self.workers: list[subprocess.Popen] = []
        self.scheduler = self._spawn("scheduler", [
            "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
            "--no-dashboard", "--dashboard-address", "127.0.0.1:0"])
        for i in range(n_workers):
            self.workers.append(self._spawn(f"worker{i}", [
                "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                "--nworkers", "1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                "--local-directory", str(logs / f"worker{i}"), "--death-timeout", "60"]))

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        dask = Path(sys.executable).with_name("dask")
        command = [str(dask)] if dask.exists() else [sys.executable, "-m", "dask"]
        with open(self.logs / f"{name}.log", "wb") as log:
            return subprocess.Popen([*command, *argv], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.logs)

    def wait(self, timeout: float = 60) -> None:
        import distributed

        with distributed.Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(len(self.workers), timeout=timeout)

    def stop(self) -> None:
        # Workers first, while their scheduler is there; then the scheduler.
        for group in (self.workers, [self.scheduler]):
            for proc in group:
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="for --workers and the cluster")
    parser.add_argument("--repeat", type=int, default=3, help="campaigns per way (median)")
    args = parser.parse_args()
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SystemExit("throughput: needs Dask distributed: pip install "
                         "'optbench[distributed]'") from None
    grid = campaign_argv(args.steps, args.seeds)
    n_runs = 2 * 3 * 2 * args.seeds

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="optbench-throughput-") as tmp:
        tmp_dir = Path(tmp)
        started = time.perf_counter()
        cluster = Cluster(args.workers, tmp_dir)
        try:
            cluster.wait()
            cluster_start = time.perf_counter() - started
            walls: dict[str, list[float]] = {"in-process": [], f"--workers {args.workers}": [],
                                             "cluster, cold workers": [],
                                             "cluster, warm workers": []}
            for r in range(args.repeat):
                walls["in-process"].append(wall_of_campaign(grid, [], tmp_dir, n_runs))
                walls[f"--workers {args.workers}"].append(wall_of_campaign(
                    grid, ["--workers", str(args.workers)], tmp_dir, n_runs))
                on_cluster = wall_of_campaign(grid, ["--scheduler", cluster.address],
                                              tmp_dir, n_runs)
                walls["cluster, cold workers" if r == 0 else "cluster, warm workers"].append(
                    on_cluster)
        finally:
            cluster.stop()

    load_after = os.getloadavg()[0]
    print(f"campaign: {n_runs} runs of {args.steps} steps ({' '.join(grid)})")
    print(f"machine: {os.cpu_count()} CPU cores, load average {load_before:.1f} before, "
          f"{load_after:.1f} after; cluster: 1 scheduler + {args.workers} workers "
          f"(--nthreads 1) on 127.0.0.1, started in {cluster_start:.1f} s (not counted)")
    print(f"wall time of `optbench bench` as a subprocess, start-up included, median of "
          f"{args.repeat} (cold cluster: 1)")
    print()
    base = statistics.median(walls["in-process"])
    print(f"{'way':<24} {'wall s':>8} {'runs/s':>8} {'vs in-process':>14}")
    for way, times in walls.items():
        if not times:
            continue
        wall = statistics.median(times)
        print(f"{way:<24} {wall:8.2f} {n_runs / wall:8.1f} {base / wall:13.2f}x")


if __name__ == "__main__":
    main()
