"""The results file against hostile files and conditions (issue 12, items 1, 3-7).

1. `bench -o` on a file that is not a results file: refused, the file unchanged.
3. `--resume` keys on a run's full settings (steps, tol, max_time ...), not on its task.
4. A full disk (`ulimit -f`): the record is rolled back, exit 1 with one line.
5. Two campaigns on one file: the second is refused, naming the first.
6. An unwritable or non-regular `-o`, a FIFO campaign file: refused before any run.
7. Hostile lines (deep nesting, wrong types, numbers beyond range): skipped by `report`
   with a count in one warning, refused by `--resume`.

Campaigns are tiny (fd backend, a few steps) and run in-process where they can. Anything that
could hang (a FIFO) or eat memory (hostile lines) runs in a subprocess under a timeout and an
address-space limit, so that a regression fails the test instead of the machine.
"""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clitools import assert_usage_error, run_main
from optbench import report
from optbench.bench import runone
from optbench.bench.campaign import Campaign, expand
from optbench.errors import UsageError
from optbench.results import ResultsError, ResultsStore, ResultsWarning, load, run_key
from records import read_records, wait_for_lines

FAST = ("--backend", "fd", "--optimizer", "nadam", "-q")
MEMORY = 1 << 30  # address space for a subprocess fed hostile input (numpy maps a lot)


def bench(capsys, path: Path, *argv: str) -> tuple[int, str, str]:
    """`optbench bench` in-process on the regression problem with the fd backend."""
    steps = () if "--steps" in argv else ("--steps", "3")
    return run_main(capsys, "bench", *FAST, *steps, *argv, "-o", str(path))


def _bounded(limit_fsize: int | None = None):
    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
        if limit_fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))
    return preexec


def cli(*argv: str, timeout: float = 120, fsize: int | None = None, code: str | None = None
        ) -> subprocess.CompletedProcess:
    """`optbench ARGV` in a subprocess, bounded in time and memory."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    prefix = ["-c", code] if code else ["-m", "optbench"]
    return subprocess.run([sys.executable, *prefix, *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env,
                          preexec_fn=_bounded(fsize))


def one_error_line(done: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("optbench: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def no_run(monkeypatch):
    """Fails the test if a campaign gets as far as running anything."""
    def run_one(*args, **kwargs):
        raise AssertionError("a run started")
    monkeypatch.setattr(runone, "run_one", run_one)


@pytest.fixture(scope="module")
def two_records(tmp_path_factory) -> bytes:
    """The bytes of a real results file: regression on fd, seeds 0 and 1, 3 steps."""
    path = tmp_path_factory.mktemp("two") / "r.jsonl"
    done = cli("bench", *FAST, "--steps", "3", "--seeds", "2", "-o", str(path))
    assert done.returncode == 0, done.stderr
    return path.read_bytes()


def a_record(two_records: bytes, **fields) -> dict:
    return {**json.loads(two_records.split(b"\n")[0]), **fields}


# ---- 1. a file that is not a results file ------------------------------------------------------

def not_results_files(records: bytes) -> dict[str, bytes]:
    first = records.split(b"\n")[0]
    return {
        "text without a final newline": b"first note\nsecond note\nlast note",
        "one line of text": b"just one line",
        "text then a record": b"a note\n" + records,
        "records then text": records + b"a note\n",
        "records then a text tail": records + b"a note",
        "JSON objects, not run records": b'{"a": 1}\n{"b": [2]}\n',
        "a record missing its seed": json.dumps({**json.loads(first), "seed": None}).encode()
        + b"\n",
        "a partial record with nothing before it": first[:60],
        "a JSON array": b"[1, 2, 3]\n",
    }


@pytest.mark.parametrize("case", list(not_results_files(b"{}\n")))
@pytest.mark.parametrize("resume", [False, True])
def test_bench_refuses_a_file_that_is_not_a_results_file(case, resume, capsys, tmp_path,
                                                         two_records, no_run):
    content = not_results_files(two_records)[case]
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    code, out, err = bench(capsys, path, *(["--resume"] if resume else []))
    assert_usage_error(code, out, err, str(path), "is not a results file", "line ")
    assert path.read_bytes() == content


def test_append_refuses_a_file_that_is_not_a_results_file(tmp_path, two_records):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"first note\nlast note")
    with pytest.raises(UsageError, match=r"notes\.txt is not a results file: line 1 is not "
                                         r"JSON, and 1 more of its 2 lines are not run "
                                         r"records; it is left as it is"):
        ResultsStore(path).append(a_record(two_records))
    assert path.read_bytes() == b"first note\nlast note"
    with pytest.raises(ValueError, match="not a run record: it has no 'seed'"):
        ResultsStore(tmp_path / "new.jsonl").append({"problem": "p", "backend": "b",
                                                    "status": "converged"})
    assert not (tmp_path / "new.jsonl").exists()


def test_a_partial_record_behind_records_is_cut_and_said_exactly(capsys, tmp_path,
                                                                  two_records):
    path = tmp_path / "r.jsonl"
    partial = two_records.split(b"\n")[0][:57]
    path.write_bytes(two_records + partial)
    code, out, err = bench(capsys, path, "--seeds", "3", "--resume")
    assert (code, out) == (0, ""), err
    assert err.splitlines() == [
        f"optbench: warning: {path}: a truncated last line (57 bytes, no newline: a record "
        "cut short by an interrupted run) follows 2 whole records; it is cut off before the "
        "next record is appended",
        f"optbench: 1 runs written to {path}, 2 already there"]
    data = path.read_bytes()
    assert data.startswith(two_records)
    assert [r["seed"] for r in read_records(path)] == [0, 1, 2]


def test_nothing_to_run_leaves_a_partial_last_line_in_place(capsys, tmp_path, two_records):
    path = tmp_path / "r.jsonl"
    path.write_bytes(two_records + b'{"problem": "regr')
    code, _, err = bench(capsys, path, "--seeds", "2", "--resume")
    assert code == 0, err
    assert "truncated last line" in err and "0 runs written" in err
    assert path.read_bytes() == two_records + b'{"problem": "regr'


def test_a_whole_record_without_its_newline_is_kept(capsys, tmp_path, two_records):
    path = tmp_path / "r.jsonl"
    path.write_bytes(two_records[:-1])  # hand-edited, say
    code, _, err = bench(capsys, path, "--seeds", "3", "--resume")
    assert code == 0 and "warning" not in err, err
    assert [r["seed"] for r in read_records(path)] == [0, 1, 2]


# ---- 3. the key of a run is its full settings --------------------------------------------------

def test_resume_with_other_stop_rules_runs_those_runs(capsys, tmp_path):
    path = tmp_path / "r.jsonl"

    def summary(*argv: str) -> str:
        code, out, err = bench(capsys, path, *argv)
        assert (code, out) == (0, ""), err
        return err.splitlines()[-1]

    assert summary("--steps", "5") == f"optbench: 1 runs written to {path}"
    for argv in (["--steps", "7"], ["--steps", "7", "--tol", "1e-3"],
                 ["--steps", "7", "--tol", "1e-3", "--max-time", "100"]):
        assert summary(*argv, "--resume") == f"optbench: 1 runs written to {path}", argv
        assert summary(*argv, "--resume") == (f"optbench: 0 runs written to {path}, "
                                              "1 already there"), argv
    records = read_records(path)
    assert [(r["max_steps"], r["tol"], r["max_time"]) for r in records] == [
        (5, None, None), (7, None, None), (7, 1e-3, None), (7, 1e-3, 100)]
    assert len({run_key(r) for r in records}) == 4


def test_the_key_holds_every_setting_and_reads_old_records(registry):
    base = {"problem": "regression", "problem_params": {"degree": 2}, "backend": "fd",
            "device": "cpu", "dtype": "float64", "optimizer": "nadam",
            "optimizer_params": {"lr": 0.01}, "seed": 0, "max_steps": 100, "tol": None,
            "max_time": None}
    for field, other in [("max_steps", 50), ("tol", 1e-6), ("max_time", 10.0),
                         ("compile", True), ("seed", 1), ("device", "cuda")]:
        assert run_key({**base, field: other}) != run_key(base), field
    # Records written before max_time and compile were stored ran without them.
    old = {k: v for k, v in base.items() if k != "max_time"}
    assert run_key(old) == run_key(base) == run_key({**base, "compile": False})
    # A spec's key is its record's key, stop rules included.
    c = Campaign(problems=["regression"], backends=["fd"], optimizers=["nadam"], seeds=[0],
                 steps=4, tol=1e-3, max_time=50.0)
    specs, _ = expand(c, registry)
    record = runone.run_one(specs[0], c, "c-test")
    assert (record["max_steps"], record["tol"], record["max_time"]) == (4, 1e-3, 50.0)
    assert run_key(json.loads(json.dumps(record))) == specs[0].key


# ---- 4. a full disk ------------------------------------------------------------------------------

# SIGXFSZ: a write past `ulimit -f` raises SIGXFSZ, whose default action kills the process
# mid-line. CPython ignores it at start-up (the write then fails with EFBIG, which the store
# rolls back); `optbench bench` ignores it too where an embedder restored the default. Here the
# default is restored before main() runs, so the test holds the command to that.
DEFAULT_SIGXFSZ = ("import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); "
                   "from optbench.cli.main import main; sys.argv[0] = 'optbench'; main()")


def test_a_full_disk_rolls_the_record_back_exit_1(tmp_path, two_records):
    path = tmp_path / "r.jsonl"
    path.write_bytes(two_records)
    done = cli("bench", *FAST, "--steps", "3", "--seeds", "4", "--resume", "-o", str(path),
               fsize=len(two_records) + 100, code=DEFAULT_SIGXFSZ)
    assert done.returncode != -signal.SIGXFSZ, "killed by SIGXFSZ mid-line"
    one_error_line(done, 1, f"cannot append to {path}: File too large",
                   "the record was not written", "every line in the file is whole",
                   "0 runs written before it")
    assert path.read_bytes() == two_records


def test_a_failed_write_or_fsync_leaves_the_file_as_it_was(tmp_path, two_records,
                                                           monkeypatch):
    path = tmp_path / "r.jsonl"
    path.write_bytes(two_records)
    store = ResultsStore(path)
    real_write, real_fsync = os.write, os.fsync

    def half_then_full(fd, data):
        if len(data) > 100:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(ResultsError, match="No space left on device; the record was not "
                                           "written"):
        store.append(a_record(two_records, seed=7))
    assert path.read_bytes() == two_records
    monkeypatch.setattr(os, "write", real_write)

    def failing_fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(ResultsError, match="Input/output error"):
        store.append(a_record(two_records, seed=8))
    assert path.read_bytes() == two_records
    monkeypatch.setattr(os, "fsync", real_fsync)
    store.append(a_record(two_records, seed=9))  # and then on, as if nothing happened
    assert [r["seed"] for r in read_records(path)] == [0, 1, 9]


# ---- 5. two campaigns on one file --------------------------------------------------------------

def test_a_second_campaign_on_the_same_file_is_refused_naming_the_first(tmp_path):
    path = tmp_path / "r.jsonl"
    argv = ["bench", *FAST, "--steps", "20", "--seeds", "20000", "-o", str(path)]
    first = subprocess.Popen([sys.executable, "-m", "optbench", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for_lines(first, path, 1)
        second = cli(*argv, "--resume", timeout=60)
        one_error_line(second, 2, str(path), "being written by another campaign",
                       f"pid {first.pid}", "optbench bench")
        assert first.poll() is None, "the first campaign ended before the second started"
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    records = read_records(path)
    assert len({run_key(r) for r in records}) == len(records), "a run ran twice"
    # Once the first has ended, the file is free again.
    third = cli("bench", *FAST, "--steps", "20", "--seeds", str(len(records) + 1),
                "--resume", "-o", str(path))
    assert third.returncode == 0, third.stderr
    assert third.stderr.splitlines() == [
        f"optbench: 1 runs written to {path}, {len(records)} already there"]


def test_the_holder_is_named_in_process(tmp_path, two_records):
    path = tmp_path / "r.jsonl"
    path.write_bytes(two_records)
    with ResultsStore(path).writing() as held:
        assert len(held) == 2
        with pytest.raises(UsageError, match=rf"pid {os.getpid()}, this process"), \
                ResultsStore(path).writing():
            pass
    with ResultsStore(path).writing():  # released
        pass


def test_a_new_file_left_empty_is_removed(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultsStore(path).writing() as held:
        assert held == [] and path.exists()
    assert not path.exists()


# ---- 6. an output that cannot be written, a FIFO -----------------------------------------------

def test_dev_null_as_output_is_refused_before_any_run(capsys, no_run):
    code, out, err = bench(capsys, Path("/dev/null"))
    assert_usage_error(code, out, err, "/dev/null is a device", "regular file")


@pytest.fixture
def immutable(tmp_path, two_records):
    path = tmp_path / "r.jsonl"
    path.write_bytes(two_records)
    made = shutil.which("chattr") and subprocess.run(
        ["chattr", "+i", str(path)], capture_output=True).returncode == 0
    if not made:
        if os.geteuid() == 0:
            pytest.skip("cannot make a file immutable here (chattr), and root writes any file")
        path.chmod(0o444)
    try:
        yield path
    finally:
        if made:
            subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unwritable_output_is_refused_before_any_run(capsys, immutable, two_records,
                                                       no_run):
    code, out, err = bench(capsys, immutable, "--seeds", "3", "--resume")
    line = assert_usage_error(code, out, err, f"cannot write results to {immutable}")
    assert line.endswith(("Operation not permitted", "Permission denied")), line
    assert immutable.read_bytes() == two_records


@pytest.mark.parametrize("role", ["output", "resume", "campaign file", "report"])
def test_a_fifo_is_refused_not_waited_on(role, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    campaign = tmp_path / "c.toml"
    campaign.write_text('problems = ["regression"]\nbackends = ["fd"]\nsteps = 3\n')
    argv = {"output": ["bench", *FAST, "-o", str(fifo)],
            "resume": ["bench", *FAST, "-o", str(fifo), "--resume"],
            "campaign file": ["bench", str(fifo), "-o", str(tmp_path / "r.jsonl")],
            "report": ["report", str(fifo)]}[role]
    done = cli(*argv, timeout=60)  # the hang detector: 60 s for what takes 1
    one_error_line(done, 2, str(fifo), "FIFO")
    assert not (tmp_path / "r.jsonl").exists()


# ---- 7. hostile lines ------------------------------------------------------------------------

def hostile_lines(record: dict) -> dict[str, bytes]:
    def line(**fields) -> bytes:
        return json.dumps({**record, **fields}).encode()

    deep = 200_000
    return {
        "an array 200,000 deep": b"[" * deep + b"]" * deep,
        "an object 200,000 deep": b'{"a":' * deep + b"1" + b"}" * deep,
        "params 200,000 deep": line(problem_params="X").replace(
            b'"X"', b'{"a":' * deep + b"1" + b"}" * deep),
        "params 500 deep": line(problem_params="X").replace(
            b'"X"', b"[" * 500 + b"]" * 500),
        "seed as text": line(seed="abc"),
        "seed 10^400": line(seed=10**400),
        "params as a list": line(problem_params=[1, 2]),
        "optimizer params as text": line(optimizer_params="lr=1"),
        "f of 1e400": line(f="X").replace(b'"X"', b"1e400"),
        "time_s of 10^400": line(time_s=10**400),
        "a trace point of 10^400": line(trace=[[0, 0.0, 10**400]]),
        "NaN": line(f="X").replace(b'"X"', b"NaN"),
        "steps as text": line(steps="many"),
        "n_evals as a list": line(n_evals=[1]),
        "trace as text": line(trace="abc"),
        "problem as a number": line(problem=3),
        "a lone surrogate": line(problem="X").replace(b'"X"', b'"\\ud800"'),
        "not UTF-8": line(message="X").replace(b'"X"', b'"\xff\xfe"'),
        "5000 digits": line(seed="X").replace(b'"X"', b"9" * 5000),
        "null": b"null",
        "text": b"hello",
    }


@pytest.fixture
def hostile_file(tmp_path, two_records) -> tuple[Path, int]:
    """Two whole records with every hostile line between and around them."""
    good = two_records.split(b"\n")[:2]
    bad = list(hostile_lines(json.loads(good[0])).values())
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join([bad[0], good[0], *bad[1:], good[1]]) + b"\n")
    return path, len(bad)


def test_report_skips_hostile_lines_with_one_warning(hostile_file):
    path, n_bad = hostile_file
    done = cli("report", str(path), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"optbench: warning: {path}: skipped {n_bad} lines that are not run records "
        "(first: line 1 is nested too deeply)"]
    rows = json.loads(done.stdout)
    assert [(r["problem"], r["backend"], r["runs"]) for r in rows] == [("regression", "fd", 2)]


def test_resume_refuses_a_file_with_hostile_lines_in_one_line(hostile_file):
    path, n_bad = hostile_file
    before = path.read_bytes()
    done = cli("bench", *FAST, "--steps", "3", "--seeds", "3", "--resume", "-o", str(path))
    one_error_line(done, 2, f"{path} is not a results file: line 1 is nested too deeply",
                   f"and {n_bad - 1} more of its {n_bad + 2} lines are not run records")
    assert path.read_bytes() == before


@pytest.mark.parametrize("case", list(hostile_lines({"seed": 0})))
def test_each_hostile_line_is_skipped_by_every_reader(case, tmp_path, two_records):
    good = two_records.split(b"\n")[:2]
    bad = hostile_lines(json.loads(good[0]))[case]
    path = tmp_path / "r.jsonl"
    path.write_bytes(good[0] + b"\n" + bad + b"\n" + good[1] + b"\n")
    expected = [json.loads(g) for g in good]
    said: list[str] = []
    assert ResultsStore(path, on_warning=said.append).records() == expected
    assert len(said) == 1 and said[0].startswith(f"{path}: skipped 1 line that is not a "
                                                 "run record (line 2 "), said
    with pytest.warns(ResultsWarning, match="skipped 1 line"):
        assert report.read_records(path) == expected
    with pytest.warns(ResultsWarning, match="skipped 1 line"):
        assert len(load(path)) == 2
    with pytest.raises(UsageError, match="line 2 "), ResultsStore(path).writing():
        pass


def test_a_line_over_the_limit_is_skipped_in_bounded_memory(tmp_path, two_records,
                                                             monkeypatch):
    import tracemalloc

    import optbench.results.lines

    monkeypatch.setattr(optbench.results.lines, "MAX_LINE", 4000)
    good = two_records.split(b"\n")[0]
    assert len(good) < 4000
    path = tmp_path / "r.jsonl"
    huge = 20 << 20  # a 20 MB line is read a chunk at a time, never whole
    with open(path, "wb") as handle:
        handle.write(b"[" + b"1," * (huge // 2) + b"1]\n" + good + b"\n" + b"x" * 9000)
    said: list[str] = []
    tracemalloc.start()
    try:
        assert ResultsStore(path, on_warning=said.append).records() == [json.loads(good)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < huge // 4, peak
    assert said == [f"{path}: ignoring a truncated last line (from an interrupted run)",
                    f"{path}: skipped 1 line that is not a run record (line 1 is longer than "
                    "4000 bytes)"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=8)
FIELDS = ["problem", "problem_params", "backend", "device", "dtype", "optimizer",
          "optimizer_params", "seed", "status", "message", "steps", "n_evals", "x0", "x", "f",
          "grad_norm", "reference", "time_s", "setup_s", "trace", "host", "campaign", "tol",
          "max_steps", "max_time", "variables"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=1, max_size=4),
       st.sets(st.sampled_from(FIELDS), max_size=2))
def test_whatever_a_reader_keeps_the_report_can_summarize(changes, removed):
    base = {"problem": "quad", "problem_params": {"n": 2}, "backend": "b1", "device": "cpu",
            "dtype": "float64", "optimizer": "o1", "optimizer_params": {"lr": 0.1},
            "seed": 0, "status": "max_steps", "message": "", "steps": 10, "n_evals": 10,
            "variables": ["x1", "x2"], "x0": [0.0, 0.0], "x": [1.0, 1.0], "f": 1.0,
            "grad_norm": 0.0, "reference": {"x": [1.0, 1.0], "f": 0.0}, "time_s": 1.0,
            "setup_s": 0.0, "trace": [[0, 0.0, 5.0]], "campaign": "c", "tol": None,
            "max_steps": 100, "host": {"hostname": "h1"}}
    record = {k: v for k, v in {**base, **changes}.items() if k not in removed}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.jsonl"
        path.write_text(json.dumps(record) + "\n" + json.dumps(base) + "\n")
        kept = ResultsStore(path, on_warning=lambda m: None).records()
    assert kept[-1] == base and len(kept) in (1, 2)
    for target in (1e-8, 1.0):
        report.summary_text(kept, target)
        report.summary(kept, target, by="host")
    for r in kept:
        run_key(r)
    if len(kept) == 2:
        assert all(math.isfinite(v) for v in _numbers(kept[0]))


def _numbers(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield float(value)
