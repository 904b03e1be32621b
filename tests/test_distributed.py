"""Campaigns on Dask distributed (issue 5): a real `dask scheduler` and `dask worker`s.

Acceptance: a 48-run campaign through `--scheduler` gives the same records as in-process
(keys, and final x to 1e-12); a worker SIGKILLed in the middle loses and duplicates nothing;
an unreachable scheduler is one line, exit 1, nothing appended (in under 10 s: the product's
budget; the test's limit is a hang detector). Also --workers, the option checks, --resume
after SIGINT through the scheduler, and Dask absent. What goes wrong with the cluster itself
(issue 12) is in test_dask_faults.py; the cluster helpers are in daskcluster.py.

The cluster of most tests starts once (module fixture, ~5 s); the SIGKILL test has its own,
since it leaves one worker dead.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from clitools import run_main
from optbench.bench.campaign import Campaign, expand
from records import count_lines, read_records, wait_for_lines

try:
    import distributed
except ImportError:
    pytest.skip("Dask distributed is not installed (pip install 'optbench[distributed]')",
                allow_module_level=True)

from daskcluster import (
    CAMPAIGN_TIMEOUT_S,
    GRID,
    N_RUNS,
    Cluster,
    assert_connect_fails,
    assert_lost_line,
    assert_one_line_error,
    assert_same_runs,
    bench_cli,
    bench_popen,
    by_key,
    finish,
    free_port,
    in_process_records,
    running_cluster,
)

# Dask clusters: one worker of pytest-xdist runs test_distributed and test_dask_faults
# in turn, so that two clusters never compete for the two cores.
pytestmark = pytest.mark.xdist_group("dask")


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> dict[str, dict]:
    """The campaign run in-process (the default), by run key: the reference."""
    return in_process_records(tmp_path_factory)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """Two ordinary workers (each in a nanny), one thread each, as the README starts them."""
    with running_cluster(tmp_path_factory.mktemp("cluster"),
                         {"w1": True, "w2": True}) as c:
        yield c


def test_the_grid_has_48_distinct_runs(in_process, registry):
    specs, skipped = expand(Campaign(problems=["regression", "puzzle"],
                                     backends=["torch", "autograd", "fd"],
                                     optimizers=["nadam", "lbfgs"], seeds=[0, 1, 2, 3],
                                     steps=300), registry)
    assert skipped == []
    assert {s.key for s in specs} == set(in_process)
    assert len(specs) == N_RUNS


# -- acceptance 1: through --scheduler, the same records as in-process ---------------------------

@pytest.mark.slow  # a real two-worker cluster runs the 48-run campaign (~15 s)
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


@pytest.mark.slow  # starts a local cluster of two worker processes (~25 s)
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
    must take over the victim's runs, the one it was running included. A run whose workers
    all died (KilledWorker) is not recorded (issue 12, item 2): --resume runs it."""
    with running_cluster(tmp_path / "cluster", {"survivor": True, "victim": False}) as c:
        victim = c.worker_addresses()["victim"]
        proc_victim = c.workers["victim"]
        with c.client() as client:  # the process that runs the tasks is the one to be killed
            assert client.run(os.getpid, workers=[victim]) == {victim: proc_victim.pid}
        path = tmp_path / "results.jsonl"
        proc = bench_popen(*GRID, "-o", str(path), "--scheduler", c.address)
        try:
            wait_for_lines(proc, path, N_RUNS // 4, timeout=CAMPAIGN_TIMEOUT_S)
            with c.client() as client:  # kill while the victim holds a run (runs take <1 s)
                deadline = time.monotonic() + 60
                while not client.processing(workers=[victim])[victim]:
                    assert time.monotonic() < deadline, "the victim never got a run"
                    assert proc.poll() is None, "the campaign ended before the kill"
                    time.sleep(0.002)
                os.kill(proc_victim.pid, signal.SIGKILL)
            at_kill = count_lines(path)
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        out, err = finish(proc)
        assert proc_victim.wait(timeout=30) == -signal.SIGKILL
        assert at_kill < N_RUNS, "the kill came after the campaign's end"
        assert list(c.worker_addresses()) == ["survivor"]  # the victim stayed dead
        records = read_records(path)  # every line parses
        keyed = by_key(records)  # each key at most once
        assert [r for r in records if r["status"] == "error"] == []
        lost = N_RUNS - len(records)
        if lost:
            assert_lost_line(proc.returncode, out, err, path, len(records), lost)
            resumed = bench_cli(*GRID, "-o", str(path), "--resume", "--scheduler", c.address)
            assert resumed.returncode == 0, resumed.stderr
            records = read_records(path)
        else:
            assert proc.returncode == 0, err
            assert out == "" and err.splitlines() == [f"optbench: {N_RUNS} runs written to {path}"]
    assert set(keyed) <= set(in_process)
    # Every run once, the victim's reruns elsewhere among them, as in-process.
    assert_same_runs(records, in_process)


# -- acceptance 3: an unreachable scheduler ------------------------------------------------------

@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line_exit_1_nothing_appended(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    # Dask retries a refused connect until its timeout: the last error may be either.
    walls = assert_connect_fails(tmp_path, address, ["cannot reach the Dask scheduler"])
    print(f"unreachable scheduler: exit after {max(walls):.1f} s")  # the product: < 10 s


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
        wait_for_lines(proc, path, 3, timeout=CAMPAIGN_TIMEOUT_S)
        os.kill(proc.pid, signal.SIGINT)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    out, err = finish(proc)
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
    result() waits for the rerun (as distributed's Future does) — here, past the executor's
    wait the first time, then it is there."""

    def __init__(self, record: dict) -> None:
        self.record = record
        self.status = "lost"
        self.calls = 0

    def done(self) -> bool:
        return True  # not "pending": distributed's wait() returns it

    def result(self, timeout: float | None = None) -> dict:
        self.calls += 1
        if self.calls == 1:
            raise TimeoutError  # as distributed's Future.result(timeout) does
        self.status = "finished"
        return self.record


class _Client:
    status = "running"

    def __init__(self, future_type) -> None:
        self.future_type = future_type
        self.submitted: list = []

    def submit(self, fn, spec, *args, **kwargs):
        self.submitted.append(self.future_type({"seed": spec.seed, "status": "converged"}))
        return self.submitted[-1]

    def cancel(self, futures) -> None:
        pass

    def scheduler_info(self) -> dict:
        return {"workers": {"tcp://127.0.0.1:1": {"name": 0}}}


def test_a_finished_run_lost_with_its_worker_is_waited_for_not_an_error(monkeypatch,
                                                                        registry):
    from optbench.bench import executors

    c = Campaign(problems=["rosenbrock"], backends=["fd"], optimizers=["nadam"], seeds=[0, 1],
                 steps=3)
    specs, _ = expand(c, registry)
    monkeypatch.setattr(distributed, "wait", lambda *args, **kwargs: None)
    dask = executors.Dask.__new__(executors.Dask)
    dask.client, dask.cluster, dask.workers = _Client(_LostFuture), None, None
    got = list(dask.results(specs, c, "c"))
    assert sorted((s.seed, r["seed"], r["status"]) for s, r in got) == [
        (0, 0, "converged"), (1, 1, "converged")]
    assert [f.calls for f in dask.client.submitted] == [2, 2]  # waited for, once each


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

    slept: list = []

    class Dropped:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)  # the KeyboardInterrupt is raised here, and cannot leave __del__
            slept.append(True)  # not reached

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
    outcome = execute.run_campaign(specs, c, store, resume=False, executor=Executor())
    assert slept == []  # the sleep was interrupted
    assert outcome.interrupted and outcome.written == 1
    assert [r["seed"] for r in read_records(tmp_path / "r.jsonl")] == [0]
    assert reported == []  # nothing for Python to print
    assert sys.unraisablehook == reported.append  # restored
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
