"""`optbench run` with several optimizers (issue 13, item 7): lists and 'all', as --backend
takes them, in one table with a per-step time column."""

from __future__ import annotations

import json

from clitools import assert_usage_error, run_main
from optbench.plugins import get_registry


def records(capsys, *args: str) -> list[dict]:
    code, out, err = run_main(capsys, "run", "--backend", "autograd", "--format", "json",
                              *args)
    assert code == 0, err
    return json.loads(out)


def test_a_list_of_optimizers_runs_each_and_matches_their_single_runs(capsys):
    both = records(capsys, "--optimizer", "nadam,lbfgs", "--steps", "200")
    assert [r["optimizer"] for r in both] == ["nadam", "lbfgs"]
    for r in both:
        (alone,) = records(capsys, "--optimizer", r["optimizer"], "--steps", "200")
        assert (r["x"], r["steps"], r["status"], r["optimizer_params"]) == (
            alone["x"], alone["steps"], alone["status"], alone["optimizer_params"])
    assert both[1]["optimizer_params"]["lr"] == 1.0  # lbfgs keeps torch's lr


def test_backend_lists_and_optimizer_lists_combine(capsys):
    code, out, err = run_main(capsys, "run", "--backend", "autograd,fd", "--optimizer",
                              "sgd,lbfgs", "--steps", "20", "--format", "json")
    assert code == 0, err
    got = [(r["optimizer"], r["backend"]) for r in json.loads(out)]
    assert got == [("sgd", "autograd"), ("sgd", "fd"), ("lbfgs", "autograd"),
                   ("lbfgs", "fd")]


def test_all_runs_every_registered_optimizer(capsys):
    got = records(capsys, "--optimizer", "all", "--steps", "5")
    assert [r["optimizer"] for r in got] == get_registry().names("optimizer")


def test_hyperparameters_go_to_the_optimizers_that_declare_them(capsys):
    got = records(capsys, "--optimizer", "nadam,lbfgs", "--steps", "5", "-O",
                  "betas=0.8,0.9", "-O", "history_size=7")
    assert got[0]["optimizer_params"]["betas"] == [0.8, 0.9]
    assert "history_size" not in got[0]["optimizer_params"]
    assert got[1]["optimizer_params"]["history_size"] == 7
    code, out, err = run_main(capsys, "run", "--optimizer", "nadam,lbfgs", "-O", "nope=1")
    assert_usage_error(code, out, err, "nope is not a hyperparameter of any of nadam, lbfgs")


def test_bad_lists_are_refused_in_one_line(capsys):
    for value, fragment in (("nadam,bogus", "unknown optimizer 'bogus'"),
                            ("all,nadam", "'all' cannot be combined"),
                            ("nadam,nadam", "names optimizer 'nadam' twice")):
        code, out, err = run_main(capsys, "run", "--optimizer", value)
        assert_usage_error(code, out, err, fragment)


def test_one_table_with_a_per_step_time_column(capsys):
    code, out, err = run_main(capsys, "run", "--backend", "fd", "--optimizer", "nadam,lbfgs",
                              "--steps", "50")
    assert code == 0, err
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("run "))
    assert "per step" in lines[head]
    rows = [line.split() for line in lines[head + 2:head + 4]]
    assert [row[:3] for row in rows] == [["nadam", "on", "fd"], ["lbfgs", "on", "fd"]]
    assert sum(line.startswith("optimizer  ") for line in lines) == 2
