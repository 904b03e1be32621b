"""Campaign grids: bounded before they are expanded, expanded lazily, and typed strictly.

Issue 12, items 17 and 19: `--seeds 1000000000` ended in MemoryError and `--seeds 1000000`
expanded (and keyed) every run before the first one started; `tol = true` in a campaign file
was accepted and stored as a boolean. The hostile grids run in a subprocess under an address-
space limit, with a generous timeout as hang detector, so that a regression fails instead of
eating the machine.
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clitools import assert_usage_error, run_main
from optbench.bench import execute, runone
from optbench.bench.campaign import MAX_PLANNED_RUNS, Campaign, RunSpec, expand
from optbench.results import ResultsStore, run_key
from records import read_records, wait_for_lines

# Enough for the interpreter, numpy and the fd backend (a normal small campaign needs under
# 300 MB of address space); far too little for a materialized grid of a million runs.
ADDRESS_SPACE = 400 * 2**20
HANG = 300  # seconds: a hang detector, not a performance bound


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def bench_refused(tmp_path: Path, *argv: str) -> str:
    """`optbench bench ARGV -o NEW` under the limits: refused in one line, nothing written;
    that line is returned."""
    out = tmp_path / "refused.jsonl"
    proc = bench_popen(*argv, "-o", str(out))
    stdout, stderr = proc.communicate(timeout=HANG)
    line = assert_usage_error(proc.returncode, stdout, stderr)
    assert "MemoryError" not in line
    assert not out.exists()
    return line


def bench_popen(*argv: str) -> subprocess.Popen:
    # One BLAS thread: each would reserve address space of its own.
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "optbench", "bench", "-q", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=_limited,
                            env={**os.environ, **env})


# ---- item 17: the planned runs are bounded, and the grid streams ------------------------------

def test_the_bound_is_a_million_planned_runs():
    assert MAX_PLANNED_RUNS == 1_000_000


@pytest.mark.parametrize("seeds", ["1000000000", "1000001", str(2**62)])
def test_too_many_seeds_is_refused_at_once_in_bounded_memory(tmp_path, seeds):
    line = bench_refused(tmp_path, "--backend", "fd", "--steps", "1", "--seeds", seeds)
    for fragment in (f"{int(seeds):,} runs", f"{seeds} seed(s)", f"{MAX_PLANNED_RUNS:,}"):
        assert fragment in line, (fragment, line)


def test_the_planned_runs_are_the_product_of_every_axis(tmp_path):
    lrs = ",".join(str(0.001 * (k + 1)) for k in range(1001))
    line = bench_refused(tmp_path, "--problem", "rosenbrock", "--backend", "fd", "--steps",
                         "1", "--lr", lrs, "--seeds", "1000")
    for fragment in ("1,001,000 runs", "1001 learning rate(s)", "1000 seed(s)"):
        assert fragment in line, (fragment, line)
    # Problem instances and optimizer settings are counted per owner, then multiplied:
    # (10 regression + 1 rosenbrock) x (3 nadam + 1 lbfgs) x 100 lr x 1 backend x 400 seeds.
    toml = tmp_path / "c.toml"
    toml.write_text('problems = ["regression", "rosenbrock"]\nbackends = "fd"\nsteps = 1\n'
                    'optimizers = ["nadam", "lbfgs"]\nseeds = 400\n'
                    f"lr = [{', '.join(str(0.001 * (k + 1)) for k in range(100))}]\n"
                    "[problem_params]\nn_samples = [20, 30, 40, 50, 60, 70, 80, 90, 100, 110]\n"
                    "[optimizer_params]\nbetas = [[0.9, 0.99], [0.8, 0.9], [0.7, 0.9]]\n",
                    encoding="utf-8")
    line = bench_refused(tmp_path, str(toml))
    assert "1,760,000 runs (11 problem instance(s) x 4 optimizer setting(s) x 100 learning " \
           "rate(s) x 1 backend/dtype/device x 400 seed(s))" in line, line


def test_toml_seeds_count_is_bounded_too(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('problems = "rosenbrock"\nbackends = "fd"\nseeds = 9000000000000000000\n',
                    encoding="utf-8")
    assert "9,000,000,000,000,000,000 runs" in bench_refused(tmp_path, str(toml))


def test_a_union_of_grids_is_bounded_as_a_whole(tmp_path):
    """Issue 18: [[grid]] tables of 600,000 runs each, refused together before any grid is
    expanded; a grid with a scoped learning rate counts its settings with their rates."""
    toml = tmp_path / "c.toml"
    toml.write_text('problems = "rosenbrock"\nbackends = "fd"\nseeds = 600000\n[[grid]]\n'
                    'optimizers = "nadam"\n[[grid]]\noptimizers = "adam"\n', encoding="utf-8")
    line = bench_refused(tmp_path, str(toml))
    assert "1,200,000 runs (grid 1: 600,000; grid 2: 600,000)" in line, line
    line = bench_refused(tmp_path, "--problem", "rosenbrock", "--backend", "fd", "--optimizer",
                         "nadam,lbfgs", "--lr", "0.1,0.2", "-O", "nadam:lr=0.1,0.2,0.3",
                         "--seeds", "300000")
    assert "1,500,000 runs (1 problem instance(s) x 5 optimizer setting(s), learning rates " \
           "included x 1 backend/dtype/device x 300000 seed(s))" in line, line


def test_a_million_runs_start_at_once_in_bounded_memory(tmp_path):
    """At the bound: the first records are written while the grid is still unexpanded (the
    old code built and keyed all million runs first: MemoryError under this limit)."""
    out = tmp_path / "r.jsonl"
    proc = bench_popen("--problem", "rosenbrock", "--backend", "fd", "--steps", "1",
                       "--seeds", "1000000", "-o", str(out))
    try:
        wait_for_lines(proc, out, 3, timeout=HANG)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    seeds = [r["seed"] for r in read_records(out)]
    assert seeds == list(range(len(seeds))) and len(seeds) >= 3


def test_expanding_keys_no_run_before_it_is_needed(monkeypatch, registry, tmp_path):
    """Deterministically, what the subprocess test shows with a memory limit: expanding a
    large grid and running its first runs computes a handful of run keys, not one per run."""
    calls = []
    real_key = RunSpec.key

    def counting(spec):
        calls.append(spec.seed)
        return real_key.fget(spec)

    monkeypatch.setattr(RunSpec, "key", property(counting))
    c = Campaign(problems=["rosenbrock"], backends=["fd"], optimizers=["nadam"],
                 seeds=range(100_000), steps=1)
    specs, _ = expand(c, registry)
    assert len(specs) == 100_000 and len(calls) <= 2
    assert specs[99_999].seed == 99_999 and specs[-1] == specs[99_999]

    ran = []

    def run_one(spec, *args):
        ran.append(spec.seed)
        if len(ran) == 3:
            raise KeyboardInterrupt
        return {"problem": spec.problem, "backend": spec.backend, "status": "max_steps",
                "seed": spec.seed}

    monkeypatch.setattr(runone, "run_one", run_one)
    outcome = execute.run_campaign(specs, c, ResultsStore(tmp_path / "r.jsonl"), resume=False)
    assert outcome.interrupted and outcome.written == 2 and ran == [0, 1, 2]
    assert len(calls) <= 5, len(calls)


def test_the_lazy_grid_is_the_eager_product_without_repeats(registry):
    """Same runs, same order as the nested loops over every axis with duplicates dropped
    (first occurrence kept), computed here independently."""
    c = Campaign(problems=["regression", "puzzle", "regression"], backends=["fd", "autograd"],
                 optimizers=["nadam", "lbfgs"], seeds=[2, 0, 2], lrs=[0.1, 0.10, 0.01],
                 problem_params={"n_samples": ["20", "20,30"]},
                 optimizer_params={"betas": ["0.9,0.999;0.8,0.9"]}, steps=3)
    specs, _ = expand(c, registry)
    listed = list(specs)
    assert len(listed) == len(specs) and [specs[i] for i in range(len(specs))] == listed
    keys = [s.settings_key for s in listed]  # the settings; the code is one for all
    assert len(set(keys)) == len(keys)

    expected: list[str] = []
    for problem in c.problems:
        for n in (["20", "20", "30"] if problem == "regression" else [None]):
            for optimizer in c.optimizers:
                for betas in ([(0.9, 0.999), (0.8, 0.9)] if optimizer == "nadam" else [None]):
                    for lr in c.lrs:
                        for backend, seed in itertools.product(c.backends, c.seeds):
                            key = run_key_of(registry, problem, n, optimizer, betas, lr,
                                             backend, seed)
                            if key not in expected:
                                expected.append(key)
    assert keys == expected
    # regression: 2 n_samples x (2 betas x 2 lr + 2 lr) x 2 backends x 2 seeds; puzzle: 1 x ...
    assert len(keys) == (2 + 1) * 6 * 2 * 2


def run_key_of(registry, problem, n, optimizer, betas, lr, backend, seed) -> str:
    from optbench import api
    from optbench.core.params import resolve

    prob = registry.get("problem", problem)
    params = resolve(prob.params, {} if n is None else {"n_samples": n}, problem)
    opt = registry.get("optimizer", optimizer)
    hp = api.optimizer_hyperparams(opt, {} if betas is None else {"betas": betas}, lr)
    return run_key({"problem": problem, "problem_params": api.jsonable(params),
                    "backend": backend, "device": "cpu", "dtype": "float64",
                    "optimizer": optimizer, "optimizer_params": api.jsonable(hp),
                    "seed": seed, "max_steps": 3},  # the campaign's steps
                   any_version=True)


# ---- item 19: every campaign-file value has the type its key needs ---------------------------

BAD_TYPES = {
    "tol boolean": ("tol = true", ["tol=True", "a number >= 0"]),
    "max_time boolean": ("max_time = true", ["max_time=True", "a number > 0"]),
    "steps boolean": ("steps = true", ["steps=True", "an integer >= 0"]),
    "steps float": ("steps = 5.0", ["steps=5.0", "an integer >= 0"]),
    "seeds boolean": ("seeds = true", ["seeds=True"]),
    "seeds list with a boolean": ("seeds = [0, true]", ["seeds=", "True"]),
    "seeds float": ("seeds = 2.0", ["seeds=2.0"]),
    "lr boolean": ("lr = true", ["lr=True", "> 0"]),
    "lr list of booleans": ("lr = [true]", ["lr=True", "> 0"]),
    "lr empty": ("lr = []", ["lr=[]", "> 0"]),
    "tol string": ('tol = "1e-8"', ["tol='1e-8'", "a number >= 0"]),
    "tol table": ("tol = {a = 1}", ["tol=", "a number >= 0"]),
    "dtype boolean": ("dtype = true", ["dtype must be a name"]),
    "int parameter boolean": ("[problem_params]\nn_samples = true", ["n_samples=True"]),
    "int parameter booleans": ("[problem_params]\nn_samples = [20, false]", ["n_samples=False"]),
    "floats parameter boolean": ("[problem_params]\ncoefficients = true",
                                 ["coefficients=True", "numbers"]),
    "floats parameter list of booleans": ("[optimizer_params]\nbetas = [true, false]",
                                          ["betas=", "True"]),
    "float parameter boolean": ("[optimizer_params]\nweight_decay = true",
                                ["weight_decay=True", "a number"]),
    "parameter with no alternatives": ("[problem_params]\nn_samples = []",
                                       ["n_samples", "no alternative"]),
}


@pytest.mark.parametrize("case", BAD_TYPES)
def test_campaign_file_values_of_the_wrong_type_are_refused(case, capsys, tmp_path):
    line, fragments = BAD_TYPES[case]
    toml = tmp_path / "c.toml"
    toml.write_text(f'problems = "regression"\nbackends = "fd"\n{line}\n', encoding="utf-8")
    out = tmp_path / "r.jsonl"
    code, stdout, stderr = run_main(capsys, "bench", str(toml), "-o", str(out))
    assert_usage_error(code, stdout, stderr, *fragments)
    assert not out.exists()


def test_a_well_typed_campaign_file_still_runs(capsys, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('problems = "rosenbrock"\nbackends = "fd"\noptimizers = "adam"\n'
                    "seeds = [1, 0]\nsteps = 3\ntol = 1\nmax_time = 60\nlr = [0.001, 1]\n"
                    "[optimizer_params]\namsgrad = true\n", encoding="utf-8")
    out = tmp_path / "r.jsonl"
    code, stdout, stderr = run_main(capsys, "bench", "-q", str(toml), "-o", str(out))
    assert (code, stdout) == (0, ""), stderr
    records = read_records(Path(out))
    assert sorted((r["seed"], r["optimizer_params"]["lr"]) for r in records) == [
        (0, 0.001), (0, 1), (1, 0.001), (1, 1)]
    assert all(r["tol"] == 1 and r["max_steps"] == 3 for r in records)
    assert all(r["optimizer_params"]["amsgrad"] is True for r in records)
