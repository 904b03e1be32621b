"""Moré–Wild data and performance profiles (issue 17): the arithmetic against a hand-computed
example (two solvers, three problems), the costs derived from synthetic records, and the
report's text, figure and page on a small results file. No optimization runs here."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clitools import assert_usage_error, run_main
from optbench import report
from optbench.report.plots import _more_wild_figure
from optbench.report.profiles import (
    data_profile,
    performance_profile,
    performance_ratios,
    profiles,
    solve_cost,
)
from test_report import PNG_SIGNATURE, rec

INF = math.inf

# The hand example. Problems p1, p2, p3 with n = 1, 2, 3 variables (budgets α(n+1) = 2α, 3α,
# 4α); gradient evaluations to solve, solver A then B (inf: not solved):
#   p1: A 2, B 4     p2: A inf, B 3     p3: A 8, B 4
COSTS = np.array([[2.0, 4.0], [INF, 3.0], [8.0, 4.0]])
DIMS = np.array([1, 2, 3])


def test_data_profile_by_hand():
    d = data_profile(COSTS, DIMS, [0.5, 1.0, 2.0, 100.0])
    # α=0.5: budgets 1, 1.5, 2: nobody.  α=1: budgets 2, 3, 4: A p1; B p2, p3.
    # α=2: budgets 4, 6, 8: A p1, p3; B all.  α=100: A never solves p2.
    assert d.tolist() == [[0, 1 / 3, 2 / 3, 2 / 3], [0, 2 / 3, 1, 1]]


def test_performance_profile_by_hand():
    # best per problem: 2, 3, 4; ratios A: 1, inf, 2; B: 2, 1, 1
    assert performance_ratios(COSTS).tolist() == [[1, 2], [INF, 1], [2, 1]]
    rho = performance_profile(COSTS, [1.0, 1.5, 2.0, INF])
    assert rho.tolist() == [[1 / 3, 1 / 3, 2 / 3, 2 / 3], [2 / 3, 2 / 3, 1, 1]]


def test_a_problem_no_solver_solved_counts_against_everyone():
    costs = np.array([[1.0, 2.0], [INF, INF]])
    assert performance_profile(costs, [1.0, INF]).tolist() == [[0.5, 0.5], [0.0, 0.5]]
    assert data_profile(costs, [1, 1], [1.0]).tolist() == [[0.5], [0.5]]


def test_solve_cost_is_the_first_sampled_point_meeting_the_test():
    steps, fs = [0, 1, 2, 5, 10], [10.0, 5.0, 2.0, 1.005, 1.0]
    # f0 = 10, f_L = 1: f0 - f = 0, 5, 8, 8.995, 9
    assert solve_cost(steps, fs, 10.0, 1.0, 1e-3, 2.0) == 12.0   # needs 8.991: step 5
    assert solve_cost(steps, fs, 10.0, 1.0, 0.2, 1.0) == 3.0     # needs 7.2: step 2
    assert solve_cost(steps, fs, 10.0, 0.0, 1e-3, 1.0) == INF    # needs 9.99: never
    # only the final point meets it: the run's whole n_evals
    assert solve_cost(steps, fs, 10.0, 0.0, 1e-3, 1.0, final_f=0.001, final_evals=40) == 40
    assert solve_cost([0, 1], [10.0, math.nan], 10.0, 0.0, 0.5, 1.0) == INF


def run(problem: int, backend: str, trace: list[list[float]], *, steps: int, n_evals: int,
        f: float, fstar: float | None = 0.0, n: int = 1) -> dict[str, Any]:
    return rec(problem="p", problem_params={"k": problem}, backend=backend, trace=trace,
               steps=steps, n_evals=n_evals, f=f, variables=[f"x{i}" for i in range(n)],
               reference=None if fstar is None else {"x": [0.0] * n, "f": fstar})


def hand_records() -> list[dict[str, Any]]:
    """The hand example as records: A on backend "a", B on "b"; a cost is (step + 1) × n_evals/steps
    (p3: A spends 2 evaluations a step).
    f0 = 1 and f* = 0 on each problem, so a point solves at f <= 1e-3 (τ = 1e-3)."""
    return [
        run(1, "a", [[0, 0, 1.0], [1, 0, 1e-4]], steps=4, n_evals=4, f=0.0),          # 2
        run(1, "b", [[0, 0, 1.0], [2, 0, 0.5], [3, 0, 1e-4]], steps=9, n_evals=9, f=0.0,
            ),                                                                        # 4
        run(2, "a", [[0, 0, 1.0], [5, 0, 0.1]], steps=9, n_evals=18, f=0.01, n=2),    # inf
        run(2, "b", [[0, 0, 1.0], [2, 0, 1e-3]], steps=5, n_evals=5, f=0.0, n=2),     # 3
        run(3, "a", [[0, 0, 1.0], [3, 0, 1e-5]], steps=10, n_evals=20, f=0.0, n=3),   # 8
        run(3, "b", [[0, 0, 1.0], [1, 0, 0.9]], steps=4, n_evals=4, f=0.0, n=3),      # final: 4
    ]


def test_costs_from_records_match_the_hand_example():
    p = profiles(hand_records())
    assert p.solvers == ["a/o1", "b/o1"]
    assert p.dims.tolist() == [1, 2, 3]
    assert p.costs.tolist() == COSTS.tolist()
    assert p.f_low_sources == {"reference": 3} and p.left_out == 0


def test_f_low_is_the_best_f_reached_where_no_reference_is_known():
    records = [run(1, "a", [[0, 0, 1.0], [1, 0, 0.5]], steps=2, n_evals=2, f=0.5, fstar=None),
               run(1, "b", [[0, 0, 1.0], [4, 0, 0.6]], steps=5, n_evals=5, f=0.6, fstar=None),
               run(2, "a", [[1, 0, 1.0]], steps=2, n_evals=2, f=0.5, fstar=None)]  # no f(x0)
    p = profiles(records)
    # f_L = 0.5 from a; b's 0.6 is 0.4 below f0 = 1, short of 0.999·0.5
    assert p.costs.tolist() == [[2.0, INF]]
    assert p.f_low_sources == {"best run": 1} and p.left_out == 1


def test_tau_out_of_range_is_refused():
    with pytest.raises(ValueError, match="0 < tau < 1"):
        profiles(hand_records(), 1.0)


@pytest.fixture
def results(tmp_path) -> Path:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in hand_records()))
    return path


def test_report_prints_the_profiles(results, capsys):
    code, out, err = run_main(capsys, "report", str(results))
    assert code == 0, err
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("Moré–Wild profiles"))
    assert "3 task(s)" in lines[head] and "tau = 0.001" in lines[head]
    assert "f_L: reference on 3" in lines[head]
    rows = {line.split()[0]: line.split()[1:] for line in lines[head + 3:head + 5]}
    # d(1), d(5), d(10), d(50), d(100), rho(1), rho(2), rho(4), rho(inf)
    assert rows["a/o1"] == ["0.33", "0.67", "0.67", "0.67", "0.67", "0.33", "0.67", "0.67",
                            "0.67"]
    assert rows["b/o1"] == ["0.67", "1.00", "1.00", "1.00", "1.00", "0.67", "1.00", "1.00",
                            "1.00"]


def test_the_profiles_figure_is_a_png():
    fig = _more_wild_figure(profiles(hand_records()), {}, "more-wild-profiles.png")
    assert fig.png.startswith(PNG_SIGNATURE) and "τ = 0.001" in fig.caption


@pytest.mark.slow  # draws every figure of the report twice (~8 s)
def test_report_plot_and_html_hold_the_profiles(results, tmp_path, capsys):
    code, _, err = run_main(capsys, "report", str(results), "--plot", str(tmp_path / "figs"),
                              "--html", str(tmp_path / "page.html"))
    assert code == 0, err
    figure = tmp_path / "figs" / "more-wild-profiles.png"
    assert figure.read_bytes().startswith(PNG_SIGNATURE)
    page = (tmp_path / "page.html").read_text()
    # The page's interactive figures (plotly): the data profile is one of them.
    assert 'id="profiles"' in page and 'id="figure-data-profile"' in page


def test_report_profile_tau_option(results, capsys):
    code, out, err = run_main(capsys, "report", str(results), "--profile-tau", "0.5")
    assert code == 0, err
    assert "tau = 0.5" in out
    assert_usage_error(*run_main(capsys, "report", str(results), "--profile-tau", "0"),
                       "--profile-tau 0.0", "0 < TAU < 1")


def test_one_problem_makes_no_profile(capsys, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in hand_records()[:2]))
    code, out, _ = run_main(capsys, "report", str(path))
    assert code == 0 and "Moré–Wild" not in out
    assert not report.profiles_applies(hand_records()[:2])
    assert report.profiles_applies(hand_records()[:3])
