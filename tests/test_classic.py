"""The classic test functions and the `expr` problem: known optima, reached by L-BFGS.

References by hand: the functions' values at their customary starts (Rosenbrock at
(−1.2, 1): 100·(1 − 1.44)² + 2.2² = 24.2; Booth at (0, 0): 49 + 25 = 74; Himmelblau at
(0, 0): 121 + 49 = 170; Beale at (1, 1): 1.5² + 2.25² + 2.625² = 14.203125) and their known
minima (f* = 0 at (1, …, 1), (1, 3), (3, 0.5), and Himmelblau's four points).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import optbench
from clitools import assert_usage_error, run_main
from optbench.core.params import resolve

CPU_BACKENDS = ["torch", "autograd", "fd"]
HIMMELBLAU_MINIMA = np.array([[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186],
                              [3.584428, -1.848126]])


def lbfgs(problem: str, backend: str, **params):
    return optbench.solve(problem=problem, optimizer="lbfgs", backend=backend,
                          problem_params=params, steps=1000)


# -- acceptance 7: Rosenbrock --------------------------------------------------------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_rosenbrock_lbfgs_every_cpu_backend(backend):
    r = lbfgs("rosenbrock", backend)
    assert r.x0 == [-1.2, 1.0]
    assert r.status != "error", r.message
    assert r.f <= 1e-10, (r.f, r.status)
    np.testing.assert_allclose(r.x, [1, 1], atol=1e-4)
    assert r.reference["x"] == [1.0, 1.0] and r.reference["f"] == 0.0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_rosenbrock_10_dimensions(backend):
    r = lbfgs("rosenbrock", backend, n=10)
    assert r.x0 == [-1.2, 1.0] * 5
    assert r.f <= 1e-10, (r.f, r.status)
    np.testing.assert_allclose(r.x, np.ones(10), atol=1e-4)
    assert r.variables == [f"x{i}" for i in range(1, 11)]


# -- the other classic functions ---------------------------------------------------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("problem, x_star", [("beale", [3, 0.5]), ("booth", [1, 3])])
def test_unique_minima(problem, x_star, backend):
    r = lbfgs(problem, backend)
    assert r.f <= 1e-10, (r.f, r.status)
    np.testing.assert_allclose(r.x, x_star, atol=1e-5)
    np.testing.assert_allclose(r.reference["x"], x_star)
    assert r.reference["f"] == 0.0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_himmelblau_reaches_one_of_its_four_minima(backend):
    r = lbfgs("himmelblau", backend)
    assert r.f <= 1e-10, (r.f, r.status)
    distance = np.min(np.linalg.norm(HIMMELBLAU_MINIMA - np.asarray(r.x), axis=1))
    assert distance <= 1e-5, r.x
    assert r.reference["f"] == 0.0 and r.reference.get("unique") is False
    assert r.relative_error is None  # no single x* to measure against


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_quadratic_kappa_1e3(backend, registry):
    r = lbfgs("quadratic", backend, kappa=1e3)
    problem = registry.get("problem", "quadratic")
    data = problem.make(resolve(problem.params, {"kappa": 1e3}, "quadratic"), 0).data
    assert r.f <= 1e-10, (r.f, r.status)
    np.testing.assert_allclose(r.x, data["x_star"], atol=1e-5)
    np.testing.assert_allclose(r.reference["x"], data["x_star"])


@pytest.mark.parametrize("n, kappa", [(10, 1e3), (2, 7.5), (50, 1e6), (1, 1.0)])
def test_quadratic_condition_number(n, kappa, registry):
    problem = registry.get("problem", "quadratic")
    params = resolve(problem.params, {"n": n, "kappa": kappa}, "quadratic")
    data = problem.make(params, 3).data
    a = data["A"]
    np.testing.assert_array_equal(a, a.T)
    eigenvalues = np.linalg.eigvalsh(a)
    assert eigenvalues.min() == pytest.approx(1.0, rel=1e-8)
    assert eigenvalues.max() == pytest.approx(kappa, rel=1e-8)
    assert np.linalg.cond(a) == pytest.approx(kappa, rel=1e-8)
    # The same seed gives the same task; another seed another one.
    np.testing.assert_array_equal(problem.make(params, 3).data["A"], a)
    if n > 1:
        assert not np.array_equal(problem.make(params, 4).data["A"], a)


@pytest.mark.parametrize("problem, x, f", [
    ("rosenbrock", [-1.2, 1.0], 24.2),
    ("rosenbrock", [1.0, 1.0, 1.0], 0.0),
    ("rosenbrock", [0.0, 0.0, 0.0], 2.0),
    ("booth", [0.0, 0.0], 74.0),
    ("booth", [1.0, 3.0], 0.0),
    ("himmelblau", [0.0, 0.0], 170.0),
    ("himmelblau", [3.0, 2.0], 0.0),
    ("beale", [1.0, 1.0], 14.203125),
    ("beale", [3.0, 0.5], 0.0),
])
def test_values_by_hand(problem, x, f, registry):
    prob = registry.get("problem", problem)
    n = {"n": len(x)} if problem == "rosenbrock" else {}
    inst = prob.make(resolve(prob.params, n, problem), 0)
    backend = registry.get("backend", "autograd")
    obj = backend.prepare(prob, inst.data, dtype="float64", device="cpu")
    value, _ = obj.value_and_grad(obj.from_numpy(np.array(x)))
    assert float(value) == pytest.approx(f, rel=1e-14, abs=1e-14)


def test_customary_starts(registry):
    for name, start in (("beale", [1, 1]), ("booth", [0, 0]), ("himmelblau", [0, 0])):
        prob = registry.get("problem", name)
        np.testing.assert_array_equal(prob.make({}, 0).x0, start)
    prob = registry.get("problem", "rosenbrock")
    np.testing.assert_array_equal(prob.make({"n": 5}, 0).x0, [-1.2, 1, -1.2, 1, -1.2])


def test_rosenbrock_through_the_command_line(capsys):
    code, out, err = run_main(capsys, "run", "--problem", "rosenbrock", "--optimizer",
                              "lbfgs", "--backend", "all", "--format", "json")
    assert code == 0, err
    for r in json.loads(out):
        assert r["f"] <= 1e-10, (r["backend"], r["f"])


# -- the expr problem --------------------------------------------------------------------------

ROSENBROCK_TEXT = "(1-x)^2 + 100*(y-x^2)^2"


def test_expr_rosenbrock_converges(capsys):
    code, out, err = run_main(capsys, "run", "--problem", "expr", "-P",
                              f"objective={ROSENBROCK_TEXT}", "--optimizer", "lbfgs",
                              "--x0", "-1.2,1", "--format", "json")
    assert code == 0, err
    (r,) = json.loads(out)
    assert r["problem"] == "expr" and r["variables"] == ["x", "y"]
    assert r["x0"] == [-1.2, 1.0]
    np.testing.assert_allclose(r["x"], [1, 1], atol=1e-6)
    assert r["f"] <= 1e-10
    assert r["reference"] is None


@pytest.mark.parametrize("backend", ["autograd", "fd"])
def test_expr_on_other_backends_matches_the_named_problem(backend):
    r = optbench.solve(problem="expr", backend=backend, optimizer="lbfgs",
                       problem_params={"objective": ROSENBROCK_TEXT}, x0=[-1.2, 1.0],
                       steps=1000)
    named = lbfgs("rosenbrock", backend)
    np.testing.assert_allclose(r.x, [1, 1], atol=1e-6)
    assert r.steps == pytest.approx(named.steps, abs=2)


def test_expr_from_a_file(capsys, tmp_path):
    path = tmp_path / "problem.toml"
    path.write_text(f'objective = "{ROSENBROCK_TEXT}"\nvariables = ["y", "x"]\n'
                    "x0 = [1.0, -1.2]\n")
    code, out, err = run_main(capsys, "run", "--problem", "expr", "-P", f"file={path}",
                              "--optimizer", "lbfgs", "--format", "json")
    assert code == 0, err
    (r,) = json.loads(out)
    assert r["variables"] == ["y", "x"]
    assert r["x0"] == [1.0, -1.2]
    np.testing.assert_allclose(r["x"], [1, 1], atol=1e-6)


def test_expr_declared_variables_and_seeded_start(capsys):
    code, out, err = run_main(capsys, "run", "--problem", "expr", "-P", "objective=(a-3)^2",
                              "-P", "variables=b,a", "--optimizer", "lbfgs", "--format",
                              "json")
    assert code == 0, err
    (r,) = json.loads(out)
    assert r["variables"] == ["b", "a"]
    assert r["x"][1] == pytest.approx(3.0, abs=1e-8)
    assert r["x0"] == np.random.default_rng(0).standard_normal(2).tolist()


@pytest.mark.parametrize("params, fragments", [
    (["objective=3"], ["no variable"]),
    (["objective=2 + pi"], ["no variable"]),
    ([], ["exactly one of", "objective", "file"]),
    (["objective=x", "file={file}"], ["exactly one of"]),
    (["objective=x.y"], ["attribute access", ">>x.y<<"]),
    (["objective=x^", "variables=x"], ["not an expression"]),
    (["objective=x+y", "variables=x"], ["'y' is not among the declared"]),
    (["file=missing.toml"], ["missing.toml"]),
])
def test_expr_bad_input(params, fragments, capsys, tmp_path):
    file = tmp_path / "problem.toml"
    file.write_text('objective = "x^2"\n')
    params = [p.format(file=file) for p in params]
    argv = ["run", "--problem", "expr"] + [a for p in params for a in ("-P", p)]
    assert_usage_error(*run_main(capsys, *argv), *fragments)


@pytest.mark.parametrize("content, fragments", [
    ('objective = "x^2"\nunknown = 1\n', ["unknown key 'unknown'"]),
    ('variables = ["x"]\n', ["needs objective"]),
    ('objective = "x^2"\nx0 = [1, 2]\n', ["x0"]),
    ("objective = ", ["not valid TOML"]),
])
def test_expr_bad_file(content, fragments, capsys, tmp_path):
    path = tmp_path / "problem.toml"
    path.write_text(content)
    assert_usage_error(*run_main(capsys, "run", "--problem", "expr", "-P", f"file={path}"),
                       str(path), *fragments)
