"""A newcomer's first commands (issue 13, items 5 and 9): a run stops once a known optimum is
reached, and a nonlinear system's single answer says that others may exist."""

from __future__ import annotations

import json

from clitools import run_main


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run_main(capsys, *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)[0]


def test_the_puzzle_stops_at_the_default_tolerance_instead_of_running_every_step(capsys):
    """`--problem puzzle --lr 0.05 --steps 3000` reached f = 3.6e-29 and still ended
    max_steps after all 3000 steps; f* = 0 is known, so it stops at f - f* <= 1e-12."""
    r = run_json(capsys, "run", "--problem", "puzzle", "--backend", "fd", "--lr", "0.05",
                 "--steps", "3000")
    assert r["status"] == "converged" and r["message"] == "f - f* <= 1e-12"
    assert r["steps"] < 3000 and r["f"] - r["reference"]["f"] <= 1e-12
    # The step before did not meet it: the stop is the first point that does.
    assert r["trace"][-2][2] - r["reference"]["f"] > 1e-12 or r["trace"][-2][0] < r["steps"] - 1


def test_tol_zero_runs_every_step(capsys):
    r = run_json(capsys, "run", "--problem", "puzzle", "--backend", "fd", "--lr", "0.05",
                 "--steps", "3000", "--tol", "0")
    assert r["status"] == "max_steps" and r["steps"] == 3000


def test_the_default_is_relative_to_a_large_optimum(capsys, tmp_path):
    """f* = 1e6 (noisy points far from any quadratic): the gap is 1e-12 * |f*|, not 1e-12."""
    points = tmp_path / "p.csv"
    points.write_text("".join(f"{x},{(-1) ** x * 1000}\n" for x in range(40)))
    r = run_json(capsys, "run", "--backend", "fd", "--optimizer", "lbfgs", "-P",
                 f"data={points}", "--steps", "200")
    f_star = r["reference"]["f"]
    assert f_star > 1e5
    assert r["status"] == "converged" and r["f"] - f_star <= 1e-12 * f_star


def test_a_nonlinear_answer_says_other_solutions_may_exist(capsys):
    code, out, err = run_main(capsys, "solve", "x*y = 6", "x + y = 5", "--backend", "fd",
                              "--optimizer", "lbfgs")
    assert code == 0, err
    assert "The system is nonlinear: other solutions may exist" in out
    assert "--starts 20 lists the distinct solutions found" in out
    # A linear system has its analysis instead, and several starts list what they found.
    code, out, _ = run_main(capsys, "solve", "A + B = 9", "A - B = 1", "--backend", "fd")
    assert code == 0 and "other solutions may exist" not in out
    code, out, _ = run_main(capsys, "solve", "x*y = 6", "x + y = 5", "--backend", "fd",
                            "--optimizer", "lbfgs", "--starts", "8")
    assert code == 0 and "other solutions may exist" not in out
    assert "distinct solution(s) among 8 starts" in out


def test_a_nonlinear_system_stops_once_solved_not_on_a_gradient_it_never_reaches(capsys):
    """The old default stop was a gradient norm <= 1e-20, which a solved system's rounding
    never gives: every start ran its 10,000 steps."""
    code, out, err = run_main(capsys, "solve", "x*y = 6", "x + y = 5", "--backend", "fd",
                              "--format", "json")
    assert code == 0, err
    (r,) = json.loads(out)
    assert r["status"] == "converged" and r["message"] == "f - f* <= 1e-20"
    assert r["steps"] < 10_000 and r["f"] <= 1e-20
