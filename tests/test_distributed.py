"""Campaigns on Dask distributed (issue 5): a real `dask scheduler` and `dask worker`s.

Acceptance: a 48-run campaign through `--scheduler` gives the same records as in-process
(keys, and final x to 1e-12); a worker SIGKILLed in the middle loses and duplicates nothing;
an unreachable scheduler is one line, exit 1, within 10 s, nothing appended. Also --workers,
the option checks, --resume after SIGINT through the scheduler, and Dask absent.

Everything listens on 127.0.0.1 only, on free ports; every wait is bounded. Cluster logs go
to files under the tests' tmp directories. The cluster of most tests starts once (module
fixture, ~5 s); the SIGKILL test has its own, since it leaves one worker dead.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clitools import run_main
from optbench.bench.campaign import Campaign, expand
from optbench.results import run_key
from records import count_lines, read_records, wait_for_lines

try:
    import distributed
except ImportError:
    pytest.skip("Dask distributed is not installed (pip install 'optbench[distributed]')",
                allow_module_level=True)

DASK = Path(sys.executable).with_name("dask")
GRID = ["--problem", "regression,puzzle", "--backend", "torch,autograd,fd",
        "--optimizer", "nadam,lbfgs", "--seeds", "4", "--steps", "300"]
N_RUNS = 48
TOL = 1e-12


# -- helpers --------------------------------------------------------------------------------------

def free_port() -> int:
    """A port nothing listens on now (bound to 0 on the loopback, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # not inherited as ignored (background jobs)


def bench_cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m optbench bench ARGV` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "optbench", "bench", "-q", *argv],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def bench_popen(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optbench", "bench", "-q", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=_default_sigint)


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


# -- a real cluster: `dask scheduler` and `dask worker` processes ---------------------------------

@dataclass
class Cluster:
    address: str
    logs: Path
    scheduler: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def client(self) -> distributed.Client:
        return distributed.Client(self.address, timeout=10)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (the process writes it)
        try:
            # A session of its own: teardown can reach a nanny's worker by the group id.
            return subprocess.Popen([str(DASK), *argv], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.logs,
                                    start_new_session=True)
        finally:
            log.close()

    def add_worker(self, name: str, nanny: bool = True) -> None:
        self.workers[name] = self._spawn(name, [
            "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
            "--nworkers", "1", "--name", name, "--no-dashboard",
            "--dashboard-address", "127.0.0.1:0", "--local-directory", str(self.logs / name),
            "--death-timeout", "60", *([] if nanny else ["--no-nanny"])])

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
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
def running_cluster(logs: Path, workers: dict[str, bool]) -> Iterator[Cluster]:
    """A scheduler and the given workers ({name: with a nanny}), all up; stopped after."""
    logs.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(f"tcp://127.0.0.1:{free_port()}", logs)
    try:
        # --no-dashboard still serves HTTP (health, metrics): on a free loopback port, not
        # on 0.0.0.0:8787.
        cluster.scheduler = cluster._spawn("scheduler", [
            "scheduler", "--host", "127.0.0.1", "--port", cluster.address.rsplit(":", 1)[1],
            "--no-dashboard", "--dashboard-address", "127.0.0.1:0"])
        for name, nanny in workers.items():
            cluster.add_worker(name, nanny)
        cluster.wait_for_workers(len(workers))
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """Two ordinary workers (each in a nanny), one thread each, as the README starts them."""
    with running_cluster(tmp_path_factory.mktemp("cluster"),
                         {"w1": True, "w2": True}) as c:
        yield c


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> dict[str, dict]:
    """The campaign run in-process (the default), by run key."""
    path = tmp_path_factory.mktemp("inprocess") / "results.jsonl"
    done = bench_cli(*GRID, "-o", str(path))
    assert done.returncode == 0, done.stderr
    records = by_key(read_records(path))
    assert len(records) == N_RUNS
    return records


def test_the_grid_has_48_distinct_runs(in_process, registry):
    specs, skipped = expand(Campaign(problems=["regression", "puzzle"],
                                     backends=["torch", "autograd", "fd"],
                                     optimizers=["nadam", "lbfgs"], seeds=[0, 1, 2, 3],
                                     steps=300), registry)
    assert skipped == []
    assert {s.key for s in specs} == set(in_process)
    assert len(specs) == N_RUNS


# -- acceptance 1: through --scheduler, the same records as in-process ---------------------------

def test_campaign_through_the_scheduler_gives_the_in_process_records(cluster, in_process,
                                                                      tmp_path):
    path = tmp_path / "results.jsonl"
    done = bench_cli(*GRID, "-o", str(path), "--scheduler", cluster.address)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"optbench: {N_RUNS} runs written to {path}"]
    records = read_records(path)
    assert len(records) == N_RUNS
    assert_same_runs(records, in_process)
    assert len({r["campaign"] for r in records}) == 1
    # Both workers ran runs (each warmed up groups of its own), the client none.
    with cluster.client() as client:
        # A lambda, pickled by value: this test module is not importable on the workers.
        warmed = client.run(
            lambda: len(importlib.import_module("optbench.bench.runone")._WARMED))
    assert len(warmed) == 2 and all(n > 0 for n in warmed.values()), warmed


def test_workers_2_gives_the_in_process_records(in_process, tmp_path):
    path = tmp_path / "results.jsonl"
    done = bench_cli(*GRID, "-o", str(path), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"optbench: {N_RUNS} runs written to {path}"]
    assert_same_runs(read_records(path), in_process)


# -- acceptance 2: a worker SIGKILLed in the middle ----------------------------------------------

@pytest.mark.slow
def test_a_worker_killed_mid_campaign_loses_and_duplicates_nothing(in_process, tmp_path):
    """The victim runs without a nanny, so its process is the one that runs the tasks and
    SIGKILL is a real loss: a nanny would start a fresh worker in its place (and killing the
    nanny instead would leave its worker running). The other worker, in a nanny as usual,
    must take over the victim's runs, the one it was running included."""
    with running_cluster(tmp_path / "cluster", {"survivor": True, "victim": False}) as c:
        victim = c.worker_addresses()["victim"]
        proc_victim = c.workers["victim"]
        with c.client() as client:  # the process that runs the tasks is the one to be killed
            assert client.run(os.getpid, workers=[victim]) == {victim: proc_victim.pid}
        path = tmp_path / "results.jsonl"
        proc = bench_popen(*GRID, "-o", str(path), "--scheduler", c.address)
        try:
            wait_for_lines(proc, path, N_RUNS // 4)
            with c.client() as client:  # kill while the victim holds a run
                deadline = time.monotonic() + 20
                while not client.processing(workers=[victim])[victim]:
                    assert time.monotonic() < deadline, "the victim never got a run"
                    assert proc.poll() is None, "the campaign ended before the kill"
                    time.sleep(0.002)
                os.kill(proc_victim.pid, signal.SIGKILL)
            at_kill = count_lines(path)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc_victim.wait(timeout=10) == -signal.SIGKILL
        assert at_kill < N_RUNS, "the kill came after the campaign's end"
        assert list(c.worker_addresses()) == ["survivor"]  # the victim stayed dead
    assert out == "" and "Traceback" not in err
    records = read_records(path)  # every line parses
    assert len(records) == N_RUNS
    keyed = by_key(records)  # each key exactly once
    assert set(keyed) == set(in_process)
    errors = {k: r for k, r in keyed.items() if r["status"] == "error"}
    if errors:  # only runs whose workers all died (KilledWorker), each with its reason
        assert proc.returncode == 1, err
        assert all("KilledWorker" in r["message"] for r in errors.values()), errors
        assert err.splitlines() == [f"optbench: {N_RUNS} runs written to {path}, "
                                    f"{len(errors)} failed (status error)"]
    else:
        assert proc.returncode == 0, err
        assert err.splitlines() == [f"optbench: {N_RUNS} runs written to {path}"]
    # The runs that finished, the victim's rerun elsewhere among them, agree with in-process.
    assert_same_runs([r for k, r in keyed.items() if k not in errors],
                     {k: in_process[k] for k in keyed if k not in errors})


# -- acceptance 3: an unreachable scheduler ------------------------------------------------------

@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line_exit_1_within_10_s(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    new = tmp_path / "new.jsonl"
    existing = tmp_path / "existing.jsonl"
    existing.write_text(json.dumps({"problem": "booth", "backend": "fd", "seed": 9,
                                    "status": "converged"}) + "\n", encoding="utf-8")
    before = existing.read_bytes()
    # Both at once (each spends its connect timeout waiting): to a new file, and with
    # --resume to an existing one, which would be appended to.
    start = time.monotonic()
    procs = [bench_popen(*GRID, "-o", str(new), "--scheduler", address),
             bench_popen(*GRID, "-o", str(existing), "--resume", "--scheduler", address)]
    walls: dict[int, float] = {}
    while len(walls) < len(procs) and time.monotonic() - start < 30:
        for i, proc in enumerate(procs):
            if i not in walls and proc.poll() is not None:
                walls[i] = time.monotonic() - start
        time.sleep(0.01)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    results = [(proc.returncode, *proc.communicate(timeout=10), walls.get(i, math.inf))
               for i, proc in enumerate(procs)]
    for code, out, err, wall in results:
        assert wall <= 10, f"{wall:.1f} s"
        assert_one_line_error(code, out, err, 1, ["cannot reach", address])
    assert not new.exists()
    assert existing.read_bytes() == before


@pytest.mark.parametrize("address", ["bogus", "127.0.0.1", "foo://127.0.0.1:1",
                                     "tcp://127.0.0.1:abc"])
def test_a_malformed_scheduler_address_is_a_usage_error(address, capsys, tmp_path):
    path = tmp_path / "r.jsonl"
    code, out, err = run_main(capsys, "bench", "--backend", "fd", "--steps", "2", "-q",
                              "-o", str(path), "--scheduler", address)
    assert_one_line_error(code, out, err, 2, ["--scheduler", repr(address)])
    assert not path.exists()


# -- option checks, --resume, Dask absent --------------------------------------------------------

@pytest.mark.parametrize("argv, fragments", [
    (["--workers", "0"], ["--workers 0", "1 to 1024"]),
    (["--workers", "-3"], ["--workers -3", "1 to 1024"]),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], ["--workers", "--scheduler"]),
])
def test_bad_workers_options_are_usage_errors(argv, fragments, capsys, tmp_path):
    path = tmp_path / "r.jsonl"
    code, out, err = run_main(capsys, "bench", "--backend", "fd", "--steps", "2", "-q",
                              "-o", str(path), *argv)
    assert_one_line_error(code, out, err, 2, fragments)
    assert not path.exists()


@pytest.mark.slow
def test_resume_through_the_scheduler_after_sigint_completes_exactly(cluster, in_process,
                                                                     tmp_path):
    path = tmp_path / "results.jsonl"
    proc = bench_popen(*GRID, "-o", str(path), "--scheduler", cluster.address)
    try:
        wait_for_lines(proc, path, 3)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("optbench: interrupted"), err
    records = read_records(path)  # every line whole
    n = len(records)
    assert 3 <= n < N_RUNS, "the campaign was not stopped in its middle"
    assert f"{n} runs written" in lines[0]
    resumed = bench_cli(*GRID, "-o", str(path), "--resume", "--scheduler", cluster.address)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.splitlines() == [
        f"optbench: {N_RUNS - n} runs written to {path}, {n} already there"]
    data = read_records(path)
    assert data[:n] == records  # what was there is kept, only appended to
    assert_same_runs(data, in_process)


NO_DASK = ("import sys; sys.modules['distributed'] = None; "
           "from optbench.cli.main import main; main()")


@pytest.mark.parametrize("option", [["--scheduler", "tcp://127.0.0.1:1"], ["--workers", "2"]])
def test_without_dask_the_error_names_the_extra(option, tmp_path):
    path = tmp_path / "r.jsonl"
    done = subprocess.run([sys.executable, "-c", NO_DASK, "bench", "--backend", "fd",
                           "--steps", "2", "-q", "-o", str(path), *option],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert_one_line_error(done.returncode, done.stdout, done.stderr, 2,
                          ["optbench[distributed]", option[0]])
    assert not path.exists()


# -- a run lost after it finished ----------------------------------------------------------------

class _LostFuture:
    """A run that finished, then lost its result with its worker: status "lost", and
    result() waits for the rerun (as distributed's Future does)."""

    status = "lost"

    def __init__(self, record: dict) -> None:
        self.record = record

    def result(self) -> dict:
        return self.record

    def exception(self) -> None:
        return None


def test_a_finished_run_lost_with_its_worker_is_waited_for_not_an_error(monkeypatch,
                                                                        registry):
    from optbench.bench import executors

    specs, _ = expand(Campaign(problems=["rosenbrock"], backends=["fd"], optimizers=["nadam"],
                               seeds=[0, 1], steps=3), registry)

    class Client:
        def submit(self, fn, spec, *args, **kwargs):
            return _LostFuture({"seed": spec.seed, "status": "converged"})

        def cancel(self, futures):
            pass

    monkeypatch.setattr(distributed, "as_completed", list)
    dask = executors.Dask.__new__(executors.Dask)
    dask.client = Client()
    got = list(dask.results(specs, Campaign(["rosenbrock"], ["fd"], ["nadam"], [0, 1]), "c"))
    assert [(s.seed, r) for s, r in got] == [(0, {"seed": 0, "status": "converged"}),
                                             (1, {"seed": 1, "status": "converged"})]


def test_dask_loggers_with_levels_of_their_own_are_quiet_too():
    """A worker's death makes distributed.client warn ("Couldn't gather 1 keys,
    rescheduling"): that logger has its own level, so quieting "distributed" is not enough."""
    import logging

    from optbench.bench import executors

    client_logger = logging.getLogger("distributed.client")
    before = client_logger.level
    with executors._quiet_dask():
        assert client_logger.getEffectiveLevel() >= logging.CRITICAL
        assert logging.getLogger("distributed").getEffectiveLevel() >= logging.CRITICAL
    assert client_logger.level == before


def test_an_interrupt_landing_in_a_destructor_stops_the_campaign_without_a_traceback(
        monkeypatch, tmp_path, registry):
    """Ctrl-C may land in Dask's Future.__del__, where Python swallows it and prints
    "Exception ignored in ..." with a traceback: the campaign stops after that run, with its
    one line only."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler in this process")
    from optbench.bench import execute, runone
    from optbench.results import ResultsStore

    c = Campaign(problems=["rosenbrock"], backends=["fd"], optimizers=["nadam"],
                 seeds=[0, 1, 2, 3], steps=3)
    specs, _ = expand(c, registry)

    class Dropped:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)  # the KeyboardInterrupt is raised here, and cannot leave __del__

    class Executor:
        def results(self, todo, campaign, campaign_id):
            for i, spec in enumerate(todo):
                if i == 1:
                    Dropped()
                yield spec, runone.run_one(spec, campaign, campaign_id)

        def close(self) -> None:
            pass

    reported: list = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    store = ResultsStore(tmp_path / "r.jsonl")
    start = time.monotonic()
    outcome = execute.run_campaign(specs, c, store, resume=False, executor=Executor())
    assert time.monotonic() - start < 2  # the sleep was interrupted
    assert outcome.interrupted and outcome.written == 1
    assert [r["seed"] for r in read_records(tmp_path / "r.jsonl")] == [0]
    assert reported == []  # nothing for Python to print
    assert sys.unraisablehook == reported.append  # restored
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
