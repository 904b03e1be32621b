"""`optbench bench`: grids and campaign files run into a results file, whole after any stop.

Issue 4's acceptance items for the command (reports are tested in test_report.py):
the 81-run campaign completes with 81 valid records, one per run key; SIGKILL then
`--resume` ends with exactly the full set; SIGINT exits 130 with one line and a valid file;
a bad campaign file or grid value is one line on stderr, exit 2, and nothing appended.

The 81-run campaign runs once in a subprocess (module fixture, ~3 s); the signal tests
run it again each (~3-5 s). Bad input and small grids run in-process (`main(argv)`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from clitools import assert_usage_error, run_main
from optbench.bench import execute, runone
from optbench.bench.campaign import Campaign, expand
from optbench.core.record import STATUSES, RunRecord
from optbench.results import ResultsStore, run_key
from records import read_records, strict_json, wait_for_lines

# Under pytest-xdist the module's tests stay on one worker, which runs its 81-run
# campaign fixture once.
pytestmark = pytest.mark.xdist_group("bench")

GRID = ["--problem", "regression,puzzle,rosenbrock", "--backend", "torch,autograd,fd",
        "--optimizer", "nadam,adam,lbfgs", "--seeds", "3"]
STEPS = ["--steps", "200"]
N_RUNS = 81
RECORD_FIELDS = {f.name for f in dataclasses.fields(RunRecord)} | {
    "campaign", "host", "tol", "max_steps"}
HOST_VERSIONS = {"python", "numpy", "torch", "autograd", "optbench"}


def bench_cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m optbench bench ARGV` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "optbench", "bench", *argv],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # not inherited as ignored (background jobs)


def bench_popen(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optbench", "bench", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=_default_sigint)


def expected_keys(registry) -> set[str]:
    specs, skipped = expand(Campaign(problems=["regression", "puzzle", "rosenbrock"],
                                     backends=["torch", "autograd", "fd"],
                                     optimizers=["nadam", "adam", "lbfgs"],
                                     seeds=[0, 1, 2], steps=200), registry)
    assert skipped == []
    keys = {s.key for s in specs}
    assert len(specs) == len(keys) == N_RUNS
    return keys


def assert_exact_campaign(path: Path, keys: set[str]) -> list[dict]:
    records = read_records(path)
    assert len(records) == N_RUNS
    assert len({run_key(r) for r in records}) == N_RUNS, "duplicate run key"
    assert {run_key(r) for r in records} == keys
    return records


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, float]:
    """The acceptance campaign, run once: (results file, finished process, seconds)."""
    path = tmp_path_factory.mktemp("bench") / "results.jsonl"
    start = time.perf_counter()
    done = bench_cli(*GRID, *STEPS, "--output", str(path))
    return path, done, time.perf_counter() - start


# -- 1. the 81-run campaign ---------------------------------------------------------------------

def test_campaign_of_81_runs_completes_with_81_valid_records(campaign, registry):
    path, done, _ = campaign
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # the summary goes to stderr; nothing ever on stdout
    assert done.stderr.splitlines() == [f"optbench: {N_RUNS} runs written to {path}"]
    records = assert_exact_campaign(path, expected_keys(registry))
    campaign_ids = {r["campaign"] for r in records}
    assert len(campaign_ids) == 1 and all(isinstance(c, str) and c for c in campaign_ids)
    for r in records:
        assert set(r) >= RECORD_FIELDS, RECORD_FIELDS - set(r)
        assert r["status"] in STATUSES and r["status"] != "error", (r["status"], r["message"])
        assert r["max_steps"] == 200 and r["tol"] is None
        assert r["device"] == "cpu" and r["dtype"] == "float64"
        assert 0 < r["steps"] <= 200
        assert isinstance(r["trace"], list) and r["trace"]
        assert r["time_s"] >= 0 and r["setup_s"] >= 0
        host = r["host"]
        assert {"cpu", "cores", "device_name"} <= set(host)
        assert isinstance(host["cores"], int) and host["cores"] >= 1
        assert set(host["versions"]) >= HOST_VERSIONS
        assert host["versions"]["python"] and host["versions"]["optbench"]
    cells = {(r["problem"], r["backend"], r["optimizer"]) for r in records}
    assert len(cells) == 27
    # Every key field is what the grid said; -P/-O defaults are stored in full.
    assert all("n_samples" in r["problem_params"] for r in records
               if r["problem"] == "regression")
    assert all("lr" in r["optimizer_params"] for r in records)


def test_resume_on_a_complete_file_writes_nothing(campaign, tmp_path, capsys):
    path, done, _ = campaign
    assert done.returncode == 0, done.stderr
    copy = tmp_path / "results.jsonl"
    shutil.copyfile(path, copy)
    before = copy.read_bytes()
    code, out, err = run_main(capsys, "bench", *GRID, *STEPS, "-o", str(copy), "--resume")
    assert (code, out) == (0, ""), err
    assert err.splitlines() == [
        f"optbench: 0 runs written to {copy}, {N_RUNS} already there"]
    assert copy.read_bytes() == before


def test_truncated_last_line_is_repaired_on_resume(campaign, tmp_path, registry):
    """A last line cut off by a killed process: a warning, then cut off and rewritten whole."""
    path, done, _ = campaign
    assert done.returncode == 0, done.stderr
    lines = path.read_bytes().split(b"\n")[:-1]
    broken = tmp_path / "results.jsonl"
    broken.write_bytes(b"\n".join(lines[:-3]) + b"\n" + lines[-3][: len(lines[-3]) // 2])
    resumed = bench_cli(*GRID, *STEPS, "-o", str(broken), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == ""
    err = resumed.stderr.splitlines()
    assert err[-1] == f"optbench: 3 runs written to {broken}, {N_RUNS - 3} already there"
    warnings = [line for line in err if line.startswith("optbench: warning: ")]
    assert len(warnings) == 1 and "truncated last line" in warnings[0], err
    assert len(err) == 2 and "Traceback" not in resumed.stderr
    assert_exact_campaign(broken, expected_keys(registry))


# -- 2. SIGKILL and SIGINT in the middle of a campaign ------------------------------------------

@pytest.mark.slow
def test_sigkill_mid_campaign_then_resume_gives_exactly_the_full_set(tmp_path, registry):
    path = tmp_path / "results.jsonl"
    proc = bench_popen(*GRID, *STEPS, "-o", str(path))
    wait_for_lines(proc, path, 5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    n_before = whole.count(b"\n")
    assert 5 <= n_before < N_RUNS, "the campaign was not stopped in its middle"
    for line in whole.split(b"\n")[:-1]:  # a kill leaves no broken line between whole ones
        strict_json(line)
    # Worst case of a kill: half a record after the last whole line.
    with open(path, "ab") as handle:
        handle.write(b'{"problem": "regression", "problem_params": {"degree": 2, "n_sam')
    resumed = bench_cli(*GRID, *STEPS, "-o", str(path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == "" and "Traceback" not in resumed.stderr
    summary = resumed.stderr.splitlines()[-1]
    assert summary == (f"optbench: {N_RUNS - n_before} runs written to {path}, "
                       f"{n_before} already there")
    assert_exact_campaign(path, expected_keys(registry))
    assert path.read_bytes().startswith(whole)  # what was there is kept, only appended to


@pytest.mark.slow
def test_sigint_exits_130_with_one_line_and_a_valid_file(tmp_path, registry):
    path = tmp_path / "results.jsonl"
    proc = bench_popen(*GRID, *STEPS, "-o", str(path))
    wait_for_lines(proc, path, 3)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optbench: interrupted"), err
    assert "--resume" in lines[0]
    records = read_records(path)  # every line whole, the file ends with a newline
    assert 3 <= len(records) < N_RUNS
    assert f"{len(records)} runs written" in lines[0]
    resumed = bench_cli(*GRID, *STEPS, "-o", str(path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.splitlines() == [
        f"optbench: {N_RUNS - len(records)} runs written to {path}, "
        f"{len(records)} already there"]
    assert_exact_campaign(path, expected_keys(registry))


def small_campaign(registry) -> tuple[list, Campaign]:
    c = Campaign(problems=["rosenbrock"], backends=["fd"], optimizers=["nadam"],
                 seeds=[0, 1, 2, 3], steps=3)
    specs, _ = expand(c, registry)
    return specs, c


@pytest.fixture
def default_sigint():
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler in this process")
    yield
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_an_interrupt_swallowed_inside_a_run_still_stops_the_campaign(
        tmp_path, monkeypatch, registry, default_sigint):
    """Code that catches BaseException (autograd's import does) must not lose a Ctrl-C: the
    campaign stops after that run, whose record is dropped."""
    specs, c = small_campaign(registry)
    real, calls = runone.run_one, []

    def run_one(spec, *args, **kwargs):
        calls.append(spec)
        if len(calls) == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(2)  # the KeyboardInterrupt is raised here...
            except BaseException:  # ...and swallowed, as autograd's import does
                pass
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(runone, "run_one", run_one)
    store = ResultsStore(tmp_path / "r.jsonl")
    outcome = execute.run_campaign(specs, c, store, resume=False)
    assert outcome.interrupted and outcome.written == 1 and len(calls) == 2
    assert [r["seed"] for r in store.records()] == [0]


def test_an_interrupt_during_an_append_is_counted_then_stops(tmp_path, registry,
                                                              default_sigint):
    """A SIGINT while a record is being written: the record is whole and counted in the
    summary, and the campaign stops right after it."""
    specs, c = small_campaign(registry)

    class Store(ResultsStore):
        def append(self, record):
            super().append(record)
            if record["seed"] == 1:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)

    store = Store(tmp_path / "r.jsonl")
    outcome = execute.run_campaign(specs, c, store, resume=False)
    assert outcome.interrupted and outcome.written == 2
    assert [r["seed"] for r in read_records(tmp_path / "r.jsonl")] == [0, 1]


# -- 3. bad campaign files and grid values: one line, exit 2, nothing appended ------------------

BAD_GRID = {
    "unknown problem": (["--problem", "regression,nope"], ["'nope'", "regression", "puzzle"]),
    "unknown backend": (["--backend", "fd,nope"], ["'nope'", "autograd", "torch"]),
    "unknown optimizer": (["--optimizer", "nadam,nope"], ["'nope'", "adam", "lbfgs"]),
    "empty name": (["--problem", "regression,"], ["--problem", "comma-separated"]),
    "lr not positive": (["--lr", "0,-1"], ["lr=0", "> 0"]),
    "lr negative": (["--lr", "0.1,-1"], ["lr=-1", "> 0"]),
    "lr not a number": (["--lr", "abc"], ["--lr", "'abc'", "numbers"]),
    "-P key no problem has": (["-P", "zzz=1"], ["-P zzz", "no problem"]),
    "-P key the problems lack": (["--problem", "puzzle", "-P", "n_samples=3"],
                                 ["n_samples", "puzzle"]),
    "-P n_samples=0": (["-P", "n_samples=0"], ["n_samples=0", ">= 1"]),
    "-P not key=value": (["-P", "n_samples"], ["-P", "key=value"]),
    "-O betas out of range": (["-O", "betas=2,3"], ["betas=2,3", "< 1"]),
    "-O key no optimizer has": (["-O", "zzz=1"], ["-O zzz", "no optimizer"]),
    "seeds 0": (["--seeds", "0"], ["--seeds 0", ">= 1"]),
    "seeds not a number": (["--seeds", "x"], ["'x'"]),
    "steps negative": (["--steps", "-1"], ["steps=-1", ">= 0"]),
    "tol negative": (["--tol", "-1"], ["tol=-1", ">= 0"]),
    "max-time negative": (["--max-time", "-1"], ["max_time=-1", "> 0"]),
    "unknown dtype": (["--dtype", "float64,float16"], ["float16", "float32"]),
    "unknown device": (["--device", "cpu,cdua"], ["device=cdua", "cpu"]),
}

# name: (TOML text, extra command-line arguments, fragments of the message)
BAD_FILE = {
    "syntax error": ('problems = ["regression"\n', [], ["not valid TOML"]),
    "unknown key": ('problems = ["regression"]\nproblem = "puzzle"\n', [],
                    ["unknown key 'problem'", "problems"]),
    "lr wrong type": ('problems = ["regression"]\nlr = "abc"\n', [], ["lr='abc'", "> 0"]),
    "lr boolean": ('problems = ["regression"]\nlr = [0.1, true]\n', [], ["lr=True"]),
    "steps wrong type": ('problems = ["regression"]\nsteps = "5"\n', [], ["steps='5'"]),
    "seeds boolean": ('problems = ["regression"]\nseeds = true\n', [], ["seeds=True"]),
    "seeds zero": ('problems = ["regression"]\nseeds = 0\n', [], ["seeds="]),
    "problems not names": ("problems = 3\n", [], ["problems must be"]),
    "problem_params not a table": ('problems = ["regression"]\nproblem_params = 3\n', [],
                                   ["problem_params must be a table"]),
    "problem parameter value": ('problems = ["regression"]\n[problem_params]\n'
                                'n_samples = [20, 0]\n', [], ["n_samples=0"]),
    "unknown problem": ('problems = ["regression", "nope"]\n', [], ["'nope'"]),
    "with grid options": ('problems = ["regression"]\n', ["--problem", "puzzle"],
                          ["--problem", "not both"]),
    "with -P": ('problems = ["regression"]\n', ["-P", "n_samples=5"], ["not both"]),
    "with --seeds": ('problems = ["regression"]\n', ["--seeds", "2"], ["--seeds", "not both"]),
}


@pytest.fixture
def existing(tmp_path) -> Path:
    """A results file already holding one whole record (of another run than the bad grids')."""
    path = tmp_path / "existing.jsonl"
    path.write_text(json.dumps({"problem": "booth", "backend": "fd", "seed": 9,
                                "status": "converged"}) + "\n", encoding="utf-8")
    return path


def check_nothing_written(capsys, tmp_path, existing, argv, fragments) -> None:
    # To a new file: an error, and no file.
    new = tmp_path / "new.jsonl"
    code, out, err = run_main(capsys, "bench", "--backend", "fd", "--steps", "2", *argv,
                              "-o", str(new))
    assert_usage_error(code, out, err, *fragments)
    assert not new.exists()
    # To an existing file with --resume (which would append): the same error, not a byte more.
    before = existing.read_bytes()
    code, out, err = run_main(capsys, "bench", "--backend", "fd", "--steps", "2", *argv,
                              "-o", str(existing), "--resume")
    assert_usage_error(code, out, err, *fragments)
    assert existing.read_bytes() == before


@pytest.mark.parametrize("case", BAD_GRID)
def test_bad_grid_value(case, capsys, tmp_path, existing):
    argv, fragments = BAD_GRID[case]
    check_nothing_written(capsys, tmp_path, existing, argv, fragments)


@pytest.mark.parametrize("case", BAD_FILE)
def test_bad_campaign_file(case, capsys, tmp_path, existing):
    text, argv, fragments = BAD_FILE[case]
    toml = tmp_path / "campaign.toml"
    toml.write_text(text, encoding="utf-8")
    # The campaign file is not the default --backend/--steps: give only the file and extras.
    for output, resume in ((tmp_path / "new.jsonl", []), (existing, ["--resume"])):
        before = output.read_bytes() if output.exists() else None
        code, out, err = run_main(capsys, "bench", str(toml), *argv, "-o", str(output),
                                  *resume)
        assert_usage_error(code, out, err, *fragments)
        assert (output.read_bytes() if output.exists() else None) == before


def test_missing_campaign_file(capsys, tmp_path):
    code, out, err = run_main(capsys, "bench", str(tmp_path / "nope.toml"),
                              "-o", str(tmp_path / "r.jsonl"))
    assert_usage_error(code, out, err, "nope.toml", "cannot read")
    assert not (tmp_path / "r.jsonl").exists()


def test_existing_output_without_resume_is_refused_untouched(capsys, existing):
    before = existing.read_bytes()
    code, out, err = run_main(capsys, "bench", "--backend", "fd", "--steps", "2",
                              "-o", str(existing))
    assert_usage_error(code, out, err, str(existing), "1 records", "--resume")
    assert existing.read_bytes() == before


def test_output_in_a_missing_directory(capsys, tmp_path):
    target = tmp_path / "missing" / "r.jsonl"
    code, out, err = run_main(capsys, "bench", "--backend", "fd", "--steps", "2",
                              "-o", str(target))
    assert_usage_error(code, out, err, "does not exist", str(tmp_path / "missing"))
    assert not target.parent.exists()


def test_bad_input_end_to_end_in_a_subprocess(tmp_path, existing):
    """The same contract through the real executable: exit 2, one stderr line, no append."""
    before = existing.read_bytes()
    done = bench_cli("--lr", "0.1,abc", "-o", str(existing), "--resume")
    assert_usage_error(done.returncode, done.stdout, done.stderr, "'0.1,abc'")
    done = bench_cli("--backend", "fd", "-o", str(existing))  # no --resume
    assert_usage_error(done.returncode, done.stdout, done.stderr, "--resume")
    assert existing.read_bytes() == before


# -- 4. campaign files, -P, -O and their alternatives -------------------------------------------

SMALL = ["--problem", "regression,puzzle", "--backend", "fd,autograd",
         "--optimizer", "nadam,lbfgs", "--lr", "0.1,0.01", "--seeds", "2", "--steps", "5"]
SMALL_TOML = """\
problems = ["regression", "puzzle"]
backends = ["fd", "autograd"]
optimizers = ["nadam", "lbfgs"]
lr = [0.1, 0.01]
seeds = 2
steps = 5

[problem_params]
n_samples = [20, 50]

[optimizer_params]
betas = [[0.9, 0.999], [0.8, 0.9]]
"""


def bench_keys(capsys, *argv: str) -> tuple[list[dict], str]:
    code, out, err = run_main(capsys, "bench", "-q", *argv)
    assert (code, out) == (0, ""), err
    output = Path(argv[argv.index("-o") + 1])
    return read_records(output), err


def test_campaign_file_gives_the_same_runs_as_the_command_line(capsys, tmp_path):
    toml = tmp_path / "campaign.toml"
    toml.write_text(SMALL_TOML, encoding="utf-8")
    from_file, _ = bench_keys(capsys, str(toml), "-o", str(tmp_path / "file.jsonl"))
    from_cli, _ = bench_keys(capsys, *SMALL, "-P", "n_samples=20,50",
                             "-O", "betas=0.9,0.999;0.8,0.9", "-o", str(tmp_path / "cli.jsonl"))
    keys = {run_key(r) for r in from_cli}
    assert len(keys) == len(from_cli) == len(from_file)
    assert {run_key(r) for r in from_file} == keys
    # regression: 2 n_samples x (nadam: 2 betas x 2 lr + lbfgs: 2 lr) x 2 backends x 2 seeds;
    # puzzle: no n_samples, so (4 + 2) x 2 x 2.
    assert len(keys) == 48 + 24


def test_problem_parameters_apply_to_the_problems_that_declare_them(capsys, tmp_path):
    records, _ = bench_keys(capsys, *SMALL, "-P", "n_samples=20,50",
                            "-o", str(tmp_path / "r.jsonl"))
    regression = [r for r in records if r["problem"] == "regression"]
    puzzle = [r for r in records if r["problem"] == "puzzle"]
    assert sorted({r["problem_params"]["n_samples"] for r in regression}) == [20, 50]
    assert all("n_samples" not in r["problem_params"] for r in puzzle)
    assert len(regression) == 2 * len(puzzle) == 2 * 16  # puzzle is not multiplied by them
    assert len({run_key(r) for r in records}) == len(records)


def test_semicolon_separates_list_valued_alternatives(capsys, tmp_path):
    records, _ = bench_keys(capsys, "--problem", "regression", "--backend", "fd",
                            "--optimizer", "nadam,adam,lbfgs", "--steps", "5",
                            "-O", "betas=0.9,0.999;0.8,0.9", "-o", str(tmp_path / "r.jsonl"))
    by_optimizer: dict[str, list] = {}
    for r in records:
        by_optimizer.setdefault(r["optimizer"], []).append(r["optimizer_params"].get("betas"))
    # Two runs per cell of the optimizers that have betas; lbfgs, which has none, runs once.
    assert sorted(by_optimizer["nadam"]) == sorted(by_optimizer["adam"]) == [
        [0.8, 0.9], [0.9, 0.999]]
    assert by_optimizer["lbfgs"] == [None]


def test_repeated_P_adds_alternatives(capsys, tmp_path):
    repeated, _ = bench_keys(capsys, "--problem", "regression", "--backend", "fd",
                             "--steps", "5", "-P", "n_samples=20", "-P", "n_samples=50,80",
                             "-P", "degree=1", "-o", str(tmp_path / "a.jsonl"))
    listed, _ = bench_keys(capsys, "--problem", "regression", "--backend", "fd",
                           "--steps", "5", "-P", "n_samples=20,50,80", "-P", "degree=1",
                           "-o", str(tmp_path / "b.jsonl"))
    assert sorted(r["problem_params"]["n_samples"] for r in repeated) == [20, 50, 80]
    assert {run_key(r) for r in repeated} == {run_key(r) for r in listed}
    assert all(r["problem_params"]["degree"] == 1 for r in repeated)


def test_the_same_run_named_twice_runs_once(capsys, tmp_path):
    """`--lr 0.1,0.10`, a repeated name or alternative: one run per key, never a duplicate."""
    records, err = bench_keys(capsys, "--problem", "regression,regression", "--backend",
                              "fd,fd", "--steps", "5", "--lr", "0.1,0.10", "-P",
                              "n_samples=20", "-P", "n_samples=20,30",
                              "-o", str(tmp_path / "r.jsonl"))
    assert err.splitlines() == [f"optbench: 2 runs written to {tmp_path / 'r.jsonl'}"]
    assert sorted(r["problem_params"]["n_samples"] for r in records) == [20, 30]


def test_toml_list_value_is_one_alternative(capsys, tmp_path):
    """`betas = [0.9, 0.999]` in a campaign file is one value, as -O betas=0.9,0.999 is."""
    toml = tmp_path / "c.toml"
    toml.write_text('problems = "regression"\nbackends = "fd"\nsteps = 5\n'
                    "[optimizer_params]\nbetas = [0.8, 0.9]\n", encoding="utf-8")
    records, _ = bench_keys(capsys, str(toml), "-o", str(tmp_path / "r.jsonl"))
    assert [r["optimizer_params"]["betas"] for r in records] == [[0.8, 0.9]]


# -- 5. unavailable backends ---------------------------------------------------------------------

def test_unavailable_backends_are_skipped_with_the_reason_said_once(capsys, tmp_path, registry):
    """`--backend all` over cpu and cuda (and two dtypes): what cannot run is skipped, each
    (backend, reason) said once however many grid cells it would have had; the rest runs."""
    path = tmp_path / "r.jsonl"
    code, out, err = run_main(capsys, "bench", "--problem", "rosenbrock", "--backend", "all",
                              "--device", "cpu,cuda", "--dtype", "float64,float32",
                              "--steps", "3", "-q", "-o", str(path))
    assert (code, out) == (0, ""), err
    lines = err.splitlines()
    skips = [line for line in lines if line.startswith("optbench: skipping backend ")]
    assert lines == [*skips, lines[-1]] and lines[-1].startswith("optbench: ")
    assert len(skips) == len(set(skips))
    ran = {(r["backend"], r["device"], r["dtype"]) for r in read_records(path)}
    for name in registry.names("backend"):
        backend = registry.get("backend", name)
        for device in ("cpu", "cuda"):
            for dtype in ("float64", "float32"):
                if (name, device, dtype) in ran:
                    continue
                said = [s for s in skips if s.startswith(f"optbench: skipping backend {name}:")]
                assert said, (name, device, dtype, err)
                assert device not in backend.devices or dtype not in backend.dtypes or \
                    backend.available(device) is not None, (name, device, dtype)
    # Every CPU backend ran on the CPU.
    assert {(b, d) for b, d, _ in ran} >= {
        (n, "cpu") for n in registry.names("backend")
        if registry.get("backend", n).available("cpu") is None}
    assert f"{len(ran)} runs written" in lines[-1]


def test_no_backend_at_all_is_an_error(capsys, tmp_path, registry):
    if any(registry.get("backend", n).available("cuda") is None
           for n in registry.names("backend") if "cuda" in registry.get("backend", n).devices):
        pytest.skip("a backend can run on CUDA here")
    path = tmp_path / "r.jsonl"
    code, out, err = run_main(capsys, "bench", "--backend", "all", "--device", "cuda",
                              "-o", str(path))
    assert_usage_error(code, out, err, "no backend can run", "cuda")
    assert not path.exists()


# -- 6. progress: never on stdout; --quiet leaves the summary only -----------------------------

def run_with_tty_stderr(*argv: str) -> tuple[int, bytes, bytes]:
    """Run bench with stderr on a pseudo-terminal (100 columns): (rc, stdout, terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "optbench", "bench", *argv],
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO once the child side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=120)
        reader.join(10)
    finally:
        os.close(master)
    return proc.returncode, out, b"".join(chunks)


@pytest.mark.slow
def test_progress_bar_on_a_terminal_stderr_never_on_stdout(tmp_path):
    path = tmp_path / "r.jsonl"
    argv = ["--problem", "regression", "--backend", "fd", "--seeds", "4", "--steps", "5"]
    code, out, tty = run_with_tty_stderr(*argv, "-o", str(path))
    assert code == 0, tty
    assert out == b""
    assert b"4/4" in tty and b"run" in tty  # the bar: runs done / total
    assert tty.rstrip().splitlines()[-1].decode().endswith(f"4 runs written to {path}")
    path.unlink()
    code, out, tty = run_with_tty_stderr(*argv, "--quiet", "-o", str(path))
    assert code == 0, tty
    assert out == b""
    assert tty.decode() == f"optbench: 4 runs written to {path}\r\n"


def test_quiet_leaves_only_the_summary(campaign, capsys, tmp_path):
    _, done, _ = campaign
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1  # stderr not a terminal
    path = tmp_path / "r.jsonl"
    code, out, err = run_main(capsys, "bench", "--problem", "puzzle", "--backend", "fd",
                              "--steps", "5", "--quiet", "-o", str(path))
    assert (code, out) == (0, "")
    assert err == f"optbench: 1 runs written to {path}\n"


def test_tol_0_runs_every_step_as_run_does(capsys, tmp_path):
    """bench --tol 0, like run --tol 0, turns off the default stop at f - f* <= 1e-12 (it
    was refused: 'a number > 0'). NAdam at lr 0.05 reaches it on the puzzle after a few
    hundred steps: by default the run stops there, with --tol 0 it runs all 1000."""
    records = {}
    for tol in ([], ["--tol", "0"]):
        out = tmp_path / f"r{len(tol)}.jsonl"
        code, _, err = run_main(capsys, "bench", "--problem", "puzzle", "--backend", "fd",
                                "--optimizer", "nadam", "-O", "lr=0.05", "--steps", "1000",
                                *tol, "-o", str(out))
        assert code == 0, err
        (records[bool(tol)],) = read_records(out)
    assert records[False]["steps"] < 1000
    assert records[False]["message"] == "f - f* <= 1e-12"
    assert records[True]["steps"] == 1000 and records[True]["status"] == "max_steps"
