"""The command line: bad input ends as one line and exit status 2; output formats; completion.

Most tests call `main(argv)` in-process (capsys captures click's output); a few run the real
executable in a subprocess, where start-up, exit status and stream separation are observable
end to end. Subprocesses that would import torch are kept to a minimum (about 1 s each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clitools import assert_usage_error, run_main
from optbench import __version__


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m optbench ARGV` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "optbench", *argv], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


# -- bad input: one line on stderr, exit 2 -----------------------------------------------------

# Names the bad value and (at least part of) what would be accepted.
BAD_INPUT = {
    "unknown backend": (["--backend", "nope"], ["'nope'", "autograd", "fd", "torch", "all"]),
    "unknown problem": (["--problem", "nope"], ["'nope'", "puzzle", "regression"]),
    "unknown optimizer": (["--optimizer", "nope"], ["'nope'", "adam", "nadam", "sgd"]),
    "lr zero": (["--lr", "0"], ["lr=0", "> 0"]),
    "lr negative": (["--lr", "-1"], ["lr=-1", "> 0"]),
    "steps negative": (["--steps", "-5"], ["steps=-5", ">= 0"]),
    "x0 wrong length": (["--x0", "1,2"], ["x0 has 2 values", "expected 3"]),
    "x0 not numbers": (["--x0", "a,b,c"], ["'a,b,c'", "numbers"]),
    "-P without =": (["-P", "degree"], ["'degree'", "key=value"]),
    "-P unknown key": (["-P", "foo=1"], ["'foo'", "degree", "n_samples", "data"]),
    "-P degree=abc": (["-P", "degree=abc"], ["degree=abc", "an integer"]),
    "-O betas out of range": (["-O", "betas=2,3"], ["betas=2,3", "< 1"]),
    "-O nonsense": (["-O", "nonsense"], ["'nonsense'", "key=value"]),
    "-O unknown key": (["-O", "nonsense=1"], ["'nonsense'", "betas"]),
    "device tpu": (["--backend", "torch", "--device", "tpu"], ["device=tpu", "cpu", "cuda"]),
    "dtype float16": (["--dtype", "float16"], ["float16", "float64", "float32"]),
    "seed negative": (["--seed", "-1"], ["seed=-1", ">= 0"]),
    "tol negative": (["--tol", "-1"], ["tol=-1", ">= 0"]),
    "max-time negative": (["--max-time", "-1"], ["max_time=-1", "> 0"]),
    "puzzle bad matrix": (["--problem", "puzzle", "-P", "matrix=1,a"], ["matrix='1,a'", "rows"]),
}


@pytest.mark.parametrize("argv, fragments", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_and_exit_2(capsys, argv, fragments):
    # fd: should anything get past validation, no torch is needed to notice.
    backend = [] if "--backend" in argv else ["--backend", "fd"]
    assert_usage_error(*run_main(capsys, "run", *backend, *argv), *fragments)


def test_missing_data_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_usage_error(*run_main(capsys, "run", "--backend", "fd", "-P", "data=missing.csv"),
                       "data=missing.csv", "existing file")


def test_malformed_data_file_names_the_line(capsys, tmp_path):
    data = tmp_path / "malformed.csv"
    data.write_text("x,y\n1,2\n2,5\n3,abc\n4,17\n")
    assert_usage_error(*run_main(capsys, "run", "--backend", "fd", "-P", f"data={data}"),
                       "line 4", "3,abc", "two finite numbers")


def test_device_cuda_without_cuda(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_usage_error(*run_main(capsys, "run", "--backend", "torch", "--device", "cuda"),
                       "cuda", "accepted: cpu")


def test_bad_input_in_a_subprocess():
    """The installed entry point end to end: the exit status and stderr of a real process."""
    proc = run_cli("run", "--backend", "fd", "--optimizer", "nope")
    assert_usage_error(proc.returncode, proc.stdout, proc.stderr, "'nope'", "nadam")
    proc = run_cli("run", "--backend", "fd", "-O", "betas=2,3")
    assert_usage_error(proc.returncode, proc.stdout, proc.stderr, "betas=2,3")
    proc = run_cli("run", "--backend", "fd", "--dtype", "float16")
    assert_usage_error(proc.returncode, proc.stdout, proc.stderr, "float16", "float64")


def test_unknown_list_kind(capsys):
    assert_usage_error(*run_main(capsys, "list", "nope"), "'nope'", "backends", "optimizers")


# -- version, help, formats ------------------------------------------------------------------

def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0
    assert __version__ in out and "optbench" in out


def test_help(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for command in ("run", "list", "plugins"):
        assert command in out
    code, out, _ = run_main(capsys, "run", "--help")
    assert code == 0
    assert "--backend" in out and "--x0" in out


def test_version_and_help_in_a_subprocess():
    proc = run_cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout
    proc = run_cli("-h")
    assert proc.returncode == 0 and "Usage:" in proc.stdout and proc.stderr == ""


def test_run_json_is_only_json_on_stdout():
    # A subprocess, so that anything printed by any layer (warnings included) is seen.
    proc = run_cli("run", "--steps", "5", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    records = json.loads(proc.stdout)
    assert isinstance(records, list) and len(records) == 1
    record = records[0]
    assert record["backend"] == "torch" and record["steps"] == 5
    assert record["status"] == "max_steps"
    expected = {"problem", "problem_params", "backend", "device", "dtype", "optimizer",
                "optimizer_params", "seed", "status", "message", "steps", "n_evals",
                "variables", "x0", "x", "f", "grad_norm", "reference", "time_s", "setup_s",
                "trace"}
    assert expected <= set(record)


def test_run_table(capsys):
    code, out, err = run_main(capsys, "run", "--backend", "fd", "--steps", "5")
    assert code == 0
    assert "max_steps" in out and "x^2" in out
    assert "running fd" in err  # progress notes go to stderr


def test_run_backend_all_json(capsys):
    code, out, err = run_main(capsys, "run", "--backend", "all", "--steps", "3",
                              "--format", "json")
    assert code == 0, err
    records = json.loads(out)
    assert {r["backend"] for r in records} >= {"fd"}
    # The same task on every backend.
    assert len({tuple(r["x0"]) for r in records}) == 1


def test_diverged_run_exits_0(capsys):
    code, out, err = run_main(capsys, "run", "--backend", "fd", "--optimizer", "sgd",
                              "--lr", "1e6", "--steps", "1000", "--format", "json")
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["status"] == "diverged"
    assert record["message"]
    assert record["steps"] < 1000
    assert "Warning" not in err


def test_list_json_rows(capsys):
    code, out, _ = run_main(capsys, "list", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert rows
    for row in rows:
        assert {"kind", "name", "description", "plugin", "available", "reason"} <= set(row)
        assert row["kind"] in ("backend", "problem", "optimizer", "suite")
        assert isinstance(row["available"], bool)
        assert row["reason"] is None or isinstance(row["reason"], str)
    names = {(r["kind"], r["name"]) for r in rows}
    assert {("backend", "fd"), ("problem", "regression"), ("optimizer", "nadam")} <= names


@pytest.mark.parametrize("kind", ["backends", "problems", "optimizers"])
def test_list_filters(capsys, kind):
    code, out, _ = run_main(capsys, "list", kind, "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert rows and {r["kind"] for r in rows} == {kind[:-1]}


def test_list_table(capsys):
    code, out, _ = run_main(capsys, "list", "backends")
    assert code == 0
    assert "fd" in out and "regression" not in out


def test_plugins_json(capsys):
    code, out, _ = run_main(capsys, "plugins", "--format", "json")
    assert code == 0
    infos = json.loads(out)
    for info in infos:
        assert {"name", "version", "distribution", "registers", "error"} <= set(info)
    assert any("problem:regression" in info["registers"] for info in infos)


# -- shell completion ------------------------------------------------------------------------

def complete(words: str, cword: int) -> list[str]:
    """Click 8's bash completion protocol: `type,value` lines on stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "optbench"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "_OPTBENCH_COMPLETE": "bash_complete", "COMP_WORDS": words,
             "COMP_CWORD": str(cword)})
    assert proc.returncode == 0, proc.stderr
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("words, offered", [
    ("optbench run --backend to", ["torch"]),
    ("optbench run --problem re", ["regression"]),
    ("optbench run --optimizer na", ["nadam"]),
])
def test_shell_completion_of_names(words, offered):
    assert complete(words, 3) == offered


def test_shell_completion_lists_every_optimizer():
    offered = complete("optbench run --optimizer ", 3)
    assert {"adam", "nadam", "sgd"} <= set(offered)


# -- start-up stays light --------------------------------------------------------------------

def test_help_and_list_import_no_autodiff_library():
    code = (
        "import sys\n"
        "from optbench.cli.main import main\n"
        "for argv in (['--help'], ['list'], ['list', '--format', 'json']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'autograd')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
