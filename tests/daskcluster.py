"""Campaigns on a real Dask cluster in tests: `dask scheduler` and `dask worker` processes,
the `optbench bench` command in a subprocess, and the checks its results must pass.

Shared by test_distributed.py (the cluster as it should work) and test_dask_faults.py (what
goes wrong with it). Everything listens on 127.0.0.1 only, on free ports; every wait is
bounded. Cluster logs go to files under the tests' tmp directories.

Time limits here are hang detectors only, wide enough to hold on a 2-core machine shared
3 times over (what each expects on such a loaded machine is said where it is set).
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from optbench.results import run_key
from records import read_records

DASK = Path(sys.executable).with_name("dask")
GRID = ["--problem", "regression,puzzle", "--backend", "torch,autograd,fd",
        "--optimizer", "nadam,lbfgs", "--seeds", "4", "--steps", "300"]
N_RUNS = 48
TOL = 1e-12
# The 48-run campaign takes 15-40 s on the loaded machine (in-process, or on 2 workers).
CAMPAIGN_TIMEOUT_S = 300
# A cluster of a scheduler and two workers is up in 5-15 s on the loaded machine.
CLUSTER_TIMEOUT_S = 90
# A scheduler that cannot be reached is reported in under 10 s (the product's promise).
CONNECT_HANG_S = 60


def free_port() -> int:
    """A port nothing listens on now (bound to 0 on the loopback, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_setup(address_space: int | None) -> Callable[[], None]:
    def setup() -> None:
        # SIGINT not inherited as ignored (background jobs); the address space bounded where
        # a regression could allocate without end.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return setup


def bench_cli(*argv: str, timeout: float = CAMPAIGN_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python -m optbench bench -q ARGV` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "optbench", "bench", "-q", *argv],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def bench_popen(*argv: str, address_space: int | None = None) -> subprocess.Popen:
    """`python -m optbench bench -q ARGV`, started; under RLIMIT_AS=address_space if given."""
    return subprocess.Popen([sys.executable, "-m", "optbench", "bench", "-q", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=_child_setup(address_space))


def finish(proc: subprocess.Popen, timeout: float = CAMPAIGN_TIMEOUT_S) -> tuple[str, str]:
    """The process's (stdout, stderr) once it has ended; killed (and the test failed) if it
    is still running after `timeout` seconds: a hang."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"still running after {timeout} s (a hang): {err[-2000:]}")


def by_key(records: list[dict]) -> dict[str, dict]:
    """Records by run key; each key exactly once."""
    keyed = {run_key(r): r for r in records}
    assert len(keyed) == len(records), "duplicate run key"
    return keyed


def assert_one_line_error(code: int, out: str, err: str, expected_code: int,
                          fragments: list[str]) -> str:
    assert code == expected_code, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optbench: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_lost_line(code: int, out: str, err: str, path: Path, written: int, lost: int,
                     already: int = 0) -> str:
    """Runs lost to the infrastructure: exit 1 and one line that counts what was written and
    what was not run, and says that --resume completes them. The line is returned."""
    assert code == 1, err
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    summary = f"{written} runs written to {path}" + (f", {already} already there"
                                                     if already else "")
    assert lines[0].startswith(f"optbench: error: {summary}; {lost} runs were not run "
                               "(lost to the infrastructure: "), (lines[0], summary, lost)
    assert lines[0].endswith("): rerun with --resume to complete them"), lines[0]
    return lines[0]


def assert_connect_fails(tmp_path: Path, address: str, fragments: list[str],
                         address_space: int | None = None) -> list[float]:
    """`bench --scheduler ADDRESS` fails as one line, exit 1, nothing appended: run twice at
    once, to a new file and with --resume to an existing one (which would be appended to),
    each under RLIMIT_AS=address_space if given. Returns each one's wall time (the product
    must take under 10 s from its start; CONNECT_HANG_S here is only the hang detector)."""
    new = tmp_path / "new.jsonl"
    existing = tmp_path / "existing.jsonl"
    existing.write_text(json.dumps({"problem": "booth", "backend": "fd", "seed": 9,
                                    "status": "converged"}) + "\n", encoding="utf-8")
    before = existing.read_bytes()
    start = time.monotonic()
    procs = [bench_popen(*GRID, "-o", str(new), "--scheduler", address,
                         address_space=address_space),
             bench_popen(*GRID, "-o", str(existing), "--resume", "--scheduler", address,
                         address_space=address_space)]
    walls: dict[int, float] = {}
    try:
        while len(walls) < len(procs) and time.monotonic() - start < CONNECT_HANG_S:
            for i, proc in enumerate(procs):
                if i not in walls and proc.poll() is not None:
                    walls[i] = time.monotonic() - start
            time.sleep(0.01)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    results = [(proc.returncode, *proc.communicate(timeout=30)) for proc in procs]
    assert len(walls) == len(procs), f"still running after {CONNECT_HANG_S} s (a hang)"
    for code, out, err in results:
        assert_one_line_error(code, out, err, 1, [address, *fragments])
    assert not new.exists()
    assert existing.read_bytes() == before
    return [walls[i] for i in range(len(procs))]


def assert_same_runs(records: list[dict], reference: dict[str, dict]) -> None:
    """The same set of run keys as the in-process campaign, each once, the same final x."""
    keyed = by_key(records)
    assert set(keyed) == set(reference)
    hostname = socket.gethostname()
    for key, r in keyed.items():
        ref = reference[key]
        assert r["status"] == ref["status"] != "error", (r["status"], r["message"])
        assert r["steps"] == ref["steps"]
        assert len(r["x"]) == len(ref["x"])
        for a, b in zip(r["x"], ref["x"], strict=True):
            assert math.isclose(a, b, rel_tol=TOL, abs_tol=TOL), (key, r["x"], ref["x"])
        assert r["host"]["hostname"] == hostname  # who ran it: the workers, on this machine
        assert r["device"] == r["host"]["device"] == "cpu"


_IN_PROCESS: dict[str, dict] = {}


def in_process_records(tmp_path_factory) -> dict[str, dict]:
    """The campaign run in-process (the default), by run key: the reference. Computed once
    for all the test modules that ask."""
    if not _IN_PROCESS:
        path = tmp_path_factory.mktemp("inprocess") / "results.jsonl"
        done = bench_cli(*GRID, "-o", str(path))
        assert done.returncode == 0, done.stderr
        records = by_key(read_records(path))
        assert len(records) == N_RUNS
        _IN_PROCESS.update(records)
    return _IN_PROCESS


# -- a real cluster: `dask scheduler` and `dask worker` processes ---------------------------------

@dataclass
class Cluster:
    address: str
    logs: Path
    scheduler: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def client(self) -> Any:
        """A Client of this cluster's scheduler (use it in a with block)."""
        import distributed  # the test modules skip themselves when it is absent

        return distributed.Client(self.address, timeout=30)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (the process writes it)
        try:
            # A session of its own: teardown can reach a nanny's worker by the group id.
            return subprocess.Popen([str(DASK), *argv], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.logs,
                                    start_new_session=True)
        finally:
            log.close()

    def start_scheduler(self) -> None:
        # --no-dashboard still serves HTTP (health, metrics): on a free loopback port, not
        # on 0.0.0.0:8787.
        self.scheduler = self._spawn("scheduler", [
            "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
            "--no-dashboard", "--dashboard-address", "127.0.0.1:0"])

    def add_worker(self, name: str, nanny: bool = True) -> None:
        self.workers[name] = self._spawn(name, [
            "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
            "--nworkers", "1", "--name", name, "--no-dashboard",
            "--dashboard-address", "127.0.0.1:0", "--local-directory", str(self.logs / name),
            "--death-timeout", "60", *([] if nanny else ["--no-nanny"])])

    def wait_for_workers(self, n: int, timeout: float = CLUSTER_TIMEOUT_S) -> None:
        for name, proc in [("scheduler", self.scheduler), *self.workers.items()]:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited ({proc.returncode}): "
                            f"{(self.logs / f'{name}.log').read_text()[-2000:]}")
        with self.client() as client:
            client.wait_for_workers(n, timeout=timeout)

    def worker_addresses(self) -> dict[str, str]:
        """The scheduler's workers: {name: address}."""
        with self.client() as client:
            return {w["name"]: a
                    for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}

    def stop(self) -> None:
        """Workers first, while the scheduler is there to take their goodbyes (a worker whose
        scheduler has gone may hang on SIGTERM); then the scheduler. Killed after 10 s."""
        for group in (list(self.workers.values()), [self.scheduler]):
            for proc in group:
                if proc is not None and proc.poll() is None:
                    proc.terminate()
            for proc in group:
                if proc is None:
                    continue
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                # A nanny's worker, should it outlive its nanny, is in the nanny's group.
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def running_cluster(logs: Path, workers: dict[str, bool], address: str | None = None
                    ) -> Iterator[Cluster]:
    """A scheduler (at `address`, else on a free port) and the given workers ({name: with a
    nanny}), all up; stopped after."""
    logs.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(address or f"tcp://127.0.0.1:{free_port()}", logs)
    try:
        cluster.start_scheduler()
        for name, nanny in workers.items():
            cluster.add_worker(name, nanny)
        cluster.wait_for_workers(len(workers))
        yield cluster
    finally:
        cluster.stop()
