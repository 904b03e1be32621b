"""`optbench solve`: the tutorial's puzzle, several starts, an inconsistent system, puzzle files.

References are computed by hand: the tutorial's system A+B=9, C−D=1, A+C=8, B−D=2 has rank 3,
minimum-norm solution (6, 3, 2, 1) and nullspace (−1, 1, 1, 1) (A = 7−D, B = 2+D, C = 1+D:
|x|² = (7−D)² + (2+D)² + (1+D)² + D² is least at D = 1). x·y = 6, x + y = 5 are solved by
(2, 3) and (3, 2). A + B = 1, A + B = 2 has least-squares solutions A + B = 3/2, the
minimum-norm one (3/4, 3/4).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from clitools import assert_usage_error, run_main
from optbench.errors import UsageError
from optbench.expr import ParseError
from optbench.solving import solve_equations

TUTORIAL = ["A + B = 9", "C - D = 1", "A + C = 8", "B - D = 2"]
CPU_BACKENDS = {"torch", "autograd", "fd"}


def solve_json(capsys, *argv: str) -> list[dict]:
    code, out, err = run_main(capsys, "solve", *argv, "--format", "json")
    assert code == 0, (code, err)
    return json.loads(out)


def collinear(u, v) -> float:
    """|cos| of the angle between u and v."""
    u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
    return abs(float(u @ v)) / (np.linalg.norm(u) * np.linalg.norm(v))


def residuals_by_hand(equations_x):
    a, b, c, d = equations_x
    return np.array([a + b - 9, c - d - 1, a + c - 8, b - d - 2])


# -- acceptance 1: the tutorial's puzzle --------------------------------------------------------

def test_tutorial_puzzle_every_cpu_backend(capsys):
    records = solve_json(capsys, *TUTORIAL, "--backend", "all")
    by = {r["backend"]: r for r in records}
    assert set(by) >= CPU_BACKENDS
    for name, r in by.items():
        assert r["status"] != "error", (name, r["message"])
        assert r["equations"] == TUTORIAL
        assert r["variables"] == ["A", "B", "C", "D"]
        assert max(abs(v) for v in r["residuals"]) <= 1e-6, (name, r["residuals"])
        # The reported residuals are those of the reported x.
        np.testing.assert_allclose(r["residuals"], residuals_by_hand(r["x"]), atol=1e-12)
        a = r["analysis"]
        assert a["rank"] == 3 and a["consistent"] is True
        np.testing.assert_allclose(a["min_norm"], [6, 3, 2, 1], rtol=0, atol=1e-10)
        assert len(a["nullspace"]) == 1
        assert collinear(a["nullspace"][0], [-1, 1, 1, 1]) == pytest.approx(1, abs=1e-12)
        assert np.linalg.norm(a["nullspace"][0]) == pytest.approx(1, abs=1e-12)
        assert a["general"] == "A = 7 - D, B = 2 + D, C = 1 + D, D free"
        # The point found is one of the family: min_norm + t·(−1, 1, 1, 1).
        t = r["x"][3] - 1
        np.testing.assert_allclose(r["x"], np.array([6, 3, 2, 1]) + t * np.array([-1, 1, 1, 1]),
                                   atol=1e-6)
        assert "solutions" not in r  # only with --starts > 1


def test_tutorial_puzzle_table(capsys):
    code, out, err = run_main(capsys, "solve", *TUTORIAL)
    assert code == 0, err
    assert "A = 7 - D, B = 2 + D, C = 1 + D, D free" in out
    assert "rank 3 of 4" in out and "consistent" in out
    assert "A = 6, B = 3, C = 2, D = 1" in out
    assert "family" in out and "one member" in out
    for equation in TUTORIAL:
        assert equation in out


def test_the_python_api_returns_the_same(capsys):
    (cli,) = solve_json(capsys, *TUTORIAL, "--backend", "torch")
    (api,) = solve_equations(TUTORIAL, backend="torch", steps=10_000, tol=1e-20)
    out = api.to_json()
    for key in ("variables", "x0", "x", "f", "equations", "residuals", "analysis", "steps",
                "status"):
        assert out[key] == cli[key], key
    assert set(out) == set(cli)
    json.dumps(out)  # plain data


def test_default_is_the_tutorial_optimizer(capsys):
    (r,) = solve_json(capsys, *TUTORIAL, "--steps", "3")
    assert r["optimizer"] == "nadam" and r["optimizer_params"]["lr"] == 0.01
    assert r["backend"] == "torch" and r["steps"] == 3


def test_declared_variable_order(capsys):
    (r,) = solve_json(capsys, *TUTORIAL, "--variables", "D,C,B,A", "--optimizer", "lbfgs")
    assert r["variables"] == ["D", "C", "B", "A"]
    np.testing.assert_allclose(r["analysis"]["min_norm"], [1, 2, 3, 6], atol=1e-10)
    assert r["analysis"]["general"] == "D = 7 - A, C = 8 - A, B = 9 - A, A free"
    assert max(abs(v) for v in r["residuals"]) <= 1e-6


def test_unique_solution_has_no_family(capsys):
    (r,) = solve_json(capsys, "x + y = 3", "x - y = 1", "--optimizer", "lbfgs")
    a = r["analysis"]
    assert a["rank"] == 2 and a["nullspace"] == [] and a["family"] is False
    assert a["general"] == "x = 2, y = 1"
    np.testing.assert_allclose(r["x"], [2, 1], atol=1e-8)


# -- acceptance 2: several starts find both solutions ------------------------------------------

def test_starts_find_both_solutions(capsys):
    (r,) = solve_json(capsys, "x*y = 6", "x + y = 5", "--starts", "20")
    assert "analysis" not in r  # nonlinear
    solutions = r["solutions"]
    assert r["starts"] == 20
    assert len(solutions) == 2, solutions
    np.testing.assert_allclose(sorted(solutions), [[2, 3], [3, 2]], atol=1e-6)
    assert max(abs(v) for v in r["residuals"]) <= 1e-6
    assert r["x"] in solutions  # x is the best start


def test_starts_table_lists_the_solutions(capsys):
    code, out, err = run_main(capsys, "solve", "x*y = 6", "x + y = 5", "--starts", "8",
                              "--optimizer", "lbfgs", "--steps", "200")
    assert code == 0, err
    _, _, listed = out.partition("distinct solution(s) among 8 starts")
    assert listed, out
    found = [[float(v) for v in re.findall(r"[xy] = ([-0-9.e+]+)", line)]
             for line in listed.splitlines()[1:3]]
    np.testing.assert_allclose(found, [[2, 3], [3, 2]], atol=1e-6)


def test_starts_on_autograd(capsys):
    records = solve_equations(["x*y = 6", "x + y = 5"], backend="autograd", starts=20,
                              optimizer="lbfgs", steps=200)
    np.testing.assert_allclose(records[0].solutions, [[2, 3], [3, 2]], atol=1e-6)


def test_starts_and_x0_exclude_each_other():
    with pytest.raises(UsageError, match="exclude"):
        solve_equations(["x = 1"], starts=2, x0=[0.0])
    with pytest.raises(UsageError, match="starts=0"):
        solve_equations(["x = 1"], starts=0)


# -- acceptance 3: an inconsistent system ------------------------------------------------------

def test_inconsistent_system(capsys):
    (r,) = solve_json(capsys, "A + B = 1", "A + B = 2")
    a = r["analysis"]
    assert a["consistent"] is False and a["rank"] == 1
    np.testing.assert_allclose(a["min_norm"], [0.75, 0.75], atol=1e-12)
    assert a["residual_norm"] == pytest.approx(np.sqrt(0.5), rel=1e-12)
    assert collinear(a["nullspace"][0], [1, -1]) == pytest.approx(1, abs=1e-12)
    # The optimizer reaches a least-squares solution: A + B = 3/2, residuals ±1/2.
    assert sum(r["x"]) == pytest.approx(1.5, abs=1e-6)
    np.testing.assert_allclose(r["residuals"], [-0.5, 0.5] if r["residuals"][0] < 0
                               else [0.5, -0.5], atol=1e-6)
    assert r["f"] == pytest.approx(0.5, abs=1e-9)


def test_inconsistent_system_table_exit_0(capsys):
    code, out, err = run_main(capsys, "solve", "A + B = 1", "A + B = 2")
    assert code == 0, err
    assert "INCONSISTENT" in out
    assert "least-squares" in out and "A = 0.75, B = 0.75" in out
    assert "A = 1.5 - B, B free" in out


# -- --file puzzle.toml -------------------------------------------------------------------------

def test_puzzle_file(capsys, tmp_path):
    path = tmp_path / "puzzle.toml"
    path.write_text('equations = ["x + y = 3", "x - y == 1"]\n'
                    'variables = ["y", "x"]\n'
                    'x0 = [0.5, -0.25]\n')
    (r,) = solve_json(capsys, "--file", str(path), "--optimizer", "lbfgs")
    assert r["variables"] == ["y", "x"]
    assert r["x0"] == [0.5, -0.25]
    assert r["equations"] == ["x + y = 3", "x - y == 1"]
    np.testing.assert_allclose(r["x"], [1, 2], atol=1e-8)
    np.testing.assert_allclose(r["analysis"]["min_norm"], [1, 2], atol=1e-12)
    assert r["analysis"]["general"] == "y = 1, x = 2"
    (api,) = solve_equations(file=str(path), optimizer="lbfgs")
    assert api.variables == ["y", "x"] and api.x0 == [0.5, -0.25]


def test_puzzle_file_without_optional_keys(capsys, tmp_path):
    path = tmp_path / "puzzle.toml"
    path.write_text('equations = ["2*u = 4"]\n')
    (r,) = solve_json(capsys, "--file", str(path), "--optimizer", "lbfgs")
    assert r["variables"] == ["u"]
    assert r["x"] == pytest.approx([2.0], abs=1e-8)


@pytest.mark.parametrize("content, fragments", [
    ("equations = [", ["not valid TOML"]),
    ('variables = ["x"]\n', ["needs equations"]),
    ("equations = []\n", ["needs equations"]),
    ('equations = "x = 1"\n', ["needs equations"]),
    ('equations = ["x = 1"]\nunknown = 3\n', ["unknown key 'unknown'", "equations"]),
    ('equations = ["x = 1"]\nx0 = [1, 2]\n', ["x0"]),
    ('equations = ["x = 1"]\nx0 = ["a"]\n', ["x0"]),
    ('equations = ["x = 1"]\nvariables = [1]\n', ["variables"]),
    ('equations = ["x.y = 1"]\n', ["attribute access", ">>"]),
    ('equations = ["x = 1"]\nvariables = ["y"]\n', ["'x' is not among the declared"]),
])
def test_bad_puzzle_files(content, fragments, capsys, tmp_path):
    path = tmp_path / "puzzle.toml"
    path.write_text(content)
    assert_usage_error(*run_main(capsys, "solve", "--file", str(path)), *fragments)


def test_puzzle_file_errors_name_the_file(capsys, tmp_path):
    path = tmp_path / "puzzle.toml"
    path.write_text("equations = [")
    assert_usage_error(*run_main(capsys, "solve", "--file", str(path)), str(path))
    assert_usage_error(*run_main(capsys, "solve", "--file", str(tmp_path / "missing.toml")),
                       "missing.toml", "no such file")


@pytest.mark.parametrize("argv, fragments", [
    ([], ["no equation"]),
    (["x = 1", "--file", "puzzle.toml"], ["not both"]),
    (["x = 1", "--starts", "0"], ["starts=0"]),
    (["x = 1", "--starts", "2", "--x0", "1"], ["exclude"]),
    (["x = 1", "--x0", "1,2"], ["x0"]),
    (["x = 1", "--backend", "nope"], ["'nope'"]),
    (["x = 1", "--variables", "x,x"], ["declared twice"]),
    (["x = 1", "y"], ["needs '='"]),
])
def test_bad_solve_input(argv, fragments, capsys):
    assert_usage_error(*run_main(capsys, "solve", *argv), *fragments)


def test_parse_errors_from_the_api():
    with pytest.raises(ParseError, match="two '='"):
        solve_equations(["x = 1 = 2"])


# -- JSON records -------------------------------------------------------------------------------

def test_json_record_keys(capsys):
    (linear,) = solve_json(capsys, "x = 1", "--steps", "5")
    (nonlinear,) = solve_json(capsys, "x^2 = 1", "--steps", "5")
    for r in (linear, nonlinear):
        for key in ("problem", "backend", "optimizer", "status", "variables", "x0", "x", "f",
                    "equations", "residuals", "time_s", "setup_s", "trace"):
            assert key in r, key
        assert r["problem"] == "puzzle"
        assert "solutions" not in r
    assert "analysis" in linear and "analysis" not in nonlinear
    assert set(linear["analysis"]) >= {"rank", "consistent", "min_norm", "nullspace"}


def test_multistart_batches_agree_across_backends_including_fd():
    # fd differentiates the (starts, n) batch coordinate by coordinate; same iterates.
    from optbench.solving import solve_equations

    records = {b: solve_equations(["x*y = 6", "x + y = 5"], backend=b, starts=5, steps=300)[0]
               for b in ("torch", "fd")}
    assert records["fd"].status != "error"
    np.testing.assert_allclose(records["fd"].x, records["torch"].x, rtol=1e-7, atol=1e-9)


def test_a_multi_start_record_says_how_many_starts_solved_the_equations(capsys):
    (r,) = solve_json(capsys, *TUTORIAL, "--starts", "50", "--steps", "3")
    assert r["message"].endswith("0 of 50 starts solved the equations (every residual <= 1e-06)")
    (r,) = solve_json(capsys, *TUTORIAL, "--starts", "50", "--optimizer", "lbfgs")
    assert r["status"] == "stalled"  # lbfgs stops itself (tolerance_grad) short of --tol 1e-20
    assert r["message"].endswith("; 50 of 50 starts solved the equations (every residual <= 1e-06)")
