"""Least squares (issue 15): residuals on problems, residuals_and_jacobian on every backend,
the optimizers lm and gn — against closed forms (the regression's lstsq, numpy's lstsq of
random systems) and across backends, with statuses that tell the truth."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import optbench
from clitools import assert_usage_error, run_main
from optbench import api
from optbench.core import Instance, Problem
from optbench.errors import UsageError
from optbench.plugins import available, get_registry
from optbench.testing.optimizer_spies import trajectory
from optbench.testing.probes import CoupledSquares, DecayFit, NaNAtStart

EXACT = ("torch", "autograd", "jax", "complexstep")


def cpu_backends() -> list[str]:
    registry = get_registry()
    return [n for n in registry.names("backend")
            if "cpu" in registry.get("backend", n).devices
            and "float64" in registry.get("backend", n).dtypes
            and available(registry.get("backend", n)) is None]


CPU = cpu_backends()


class LinearSystem(Problem):
    """min ||A x − b||², A and b given: numpy's lstsq is the reference."""

    name = "linear-ls"
    has_residuals = True

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self.a, self.b = a, b

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f"x{i}" for i in range(self.a.shape[1]))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        return Instance(data={"A": self.a, "b": self.b}, x0=np.zeros(self.a.shape[1]),
                        variables=self.variables(params))

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return data["A"] @ x - data["b"]

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(self.residuals(x, data, xp)))


class StuckParameter(Problem):
    """r = (a − 1, 0·b): the residuals never depend on b, which nothing determines."""

    name = "stuck"
    has_residuals = True

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return ("a", "b")

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        return Instance(data={}, x0=np.array([3.0, 2.0]), variables=("a", "b"))

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.stack([x[0] - 1.0, 0.0 * x[1]])

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(self.residuals(x, data, xp)))


@pytest.mark.parametrize("backend", CPU)
def test_lm_on_the_tutorial_regression_converges_in_a_few_steps(backend):
    record = optbench.solve("regression", backend, "lm")
    assert record.status == "converged", record.message
    assert record.steps <= 3
    reference = np.asarray(record.reference["x"])  # numpy.polyfit's least squares
    assert np.max(np.abs(np.asarray(record.x) - reference)) <= 1e-8 * np.max(np.abs(reference))


def test_run_optimizer_lm_on_every_backend_from_the_command_line(capsys):
    code, out, err = run_main(capsys, "run", "--optimizer", "lm", "--backend", "all",
                              "--format", "json")
    assert code == 0, err
    records = json.loads(out)
    assert {r["backend"] for r in records} >= set(CPU)
    for r in records:
        assert r["status"] == "converged", r
        assert r["steps"] <= 3
        assert np.allclose(r["x"], r["reference"]["x"], rtol=1e-8, atol=0)


@pytest.mark.parametrize("method", ["lm", "gn"])
def test_least_squares_optimizers_are_refused_on_problems_without_residuals(capsys, method):
    with pytest.raises(UsageError, match="declares none"):
        api.plan("quadratic", "autograd", method)
    code, out, err = run_main(capsys, "run", "--problem", "quadratic", "--optimizer", method)
    line = assert_usage_error(code, out, err, f"optimizer {method} needs a problem with "
                              "residuals", "quadratic")
    assert "regression" in line  # names what would be accepted


def test_optimizer_all_runs_least_squares_only_where_there_are_residuals():
    on_quadratic = [p.optimizer.name for p in api.plan_many("quadratic", "autograd", "all",
                                                            steps=1)]
    on_regression = [p.optimizer.name for p in api.plan_many("regression", "autograd", "all",
                                                             steps=1)]
    assert "lm" not in on_quadratic and "gn" not in on_quadratic
    assert {"lm", "gn"} <= set(on_regression)


def test_residuals_and_jacobian_refuses_a_problem_without_residuals():
    registry = get_registry()
    problem = registry.get("problem", "quadratic")
    instance = problem.make({"n": 3, "kappa": 10.0}, 0)
    for name in ("torch", "autograd", "fd"):
        objective = registry.get("backend", name).prepare(problem, instance.data,
                                                          dtype="float64", device="cpu")
        with pytest.raises(TypeError, match="quadratic declares no residuals"):
            objective.residuals_and_jacobian(objective.from_numpy(instance.x0))


def _trajectories(method_name: str, problem: Problem, params: dict, backends, steps: int):
    registry = get_registry()
    instance = problem.make(params, 0)
    method = registry.get("optimizer", method_name).method(
        **api.optimizer_hyperparams(registry.get("optimizer", method_name)))
    out = {}
    for name in backends:
        objective = registry.get("backend", name).prepare(problem, instance.data,
                                                          dtype="float64", device="cpu")
        xs, _, _ = trajectory(method, objective, instance.x0, steps)
        out[name] = np.asarray(xs)
    return out


CASES = [("regression", {}), ("rosenbrock", {}), ("decay", {}), ("coupled", {}),
         ("puzzle", {"equations": "x^2 + y^2 = 4; x*y = 1; x - y = 0.5"})]


def _problem(name: str) -> Problem:
    if name == "decay":
        return DecayFit()
    if name == "coupled":
        return CoupledSquares()
    return get_registry().get("problem", name)


@pytest.mark.parametrize("method", ["lm", "gn"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_trajectories_agree_across_backends(method, case):
    """Every iterate of 30 steps, on each exact backend, agrees with autograd's to 1e-10
    relative (the host arithmetic is the same numpy code; only r and J round differently);
    central differences (fd) to 1e-6."""
    name, given = case
    problem = _problem(name)
    params = api.resolve(problem.params, given, problem.name) if problem.params else {}
    exact = [b for b in EXACT if b in CPU]
    runs = _trajectories(method, problem, params, [*exact, "fd"], 30)
    base = runs["autograd"]
    for backend, xs in runs.items():
        tol = 1e-6 if backend == "fd" else 1e-10
        assert xs.shape == base.shape, (backend, xs.shape, base.shape)
        scale = np.maximum(1.0, np.abs(base))
        assert np.max(np.abs(xs - base) / scale) <= tol, backend


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(2, 12), n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-3, 1.0, 1e4]))
@example(m=3, n=1, seed=128, scale=1e-3)  # gn's first step lands exactly: p is rounding there
def test_lm_reaches_the_least_squares_solution_of_random_linear_systems(m, n, seed, scale):
    n = min(n, m)
    rng = np.random.default_rng(seed)
    # Columns of different scales (as a fit's parameters have), condition at most ~1e3.
    q, _ = np.linalg.qr(rng.standard_normal((m, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * np.logspace(0, -3, n)) @ v.T * np.logspace(0, np.log10(scale), n)
    b = rng.standard_normal(m)
    expected, *_ = np.linalg.lstsq(a, b, rcond=None)
    for method in ("lm", "gn"):
        record = optbench.solve(LinearSystem(a, b), "autograd", method, steps=200)
        assert record.status == "converged", (method, record.message)
        x = np.asarray(record.x)
        assert np.linalg.norm(a @ (x - expected)) <= 1e-9 * max(np.linalg.norm(b), 1e-300)
        assert np.linalg.norm(x - expected) <= 1e-7 * np.linalg.norm(expected) + 1e-12


def test_a_zero_residual_fit_converges_to_it():
    record = optbench.solve("rosenbrock", "autograd", "lm", tol=0)
    assert record.status == "converged", record.message
    assert np.allclose(record.x, [1.0, 1.0], rtol=0, atol=1e-12)


def test_the_step_limit_is_max_steps():
    record = optbench.solve("rosenbrock", "autograd", "lm", steps=2, tol=0)
    assert record.status == "max_steps"


def test_tolerances_below_rounding_end_stalled_with_the_reason():
    record = optbench.solve(DecayFit(), "autograd", "lm", steps=500,
                            optimizer_params={"ftol": 0, "xtol": 0, "gtol": 0, "refine": 0})
    assert record.status == "stalled", record.message
    assert "too small" in record.message


def test_a_nan_at_the_start_is_diverged():
    for method in ("lm", "gn"):
        record = optbench.solve(NaNAtStart(), "autograd", method)
        assert record.status == "diverged", record.message


def test_a_parameter_the_residuals_do_not_depend_on_is_not_called_a_fit():
    for method in ("lm", "gn"):
        record = optbench.solve(StuckParameter(), "autograd", method, tol=0)
        assert record.status == "stalled", record.message
        assert "do not depend on x[1]" in record.message


def test_one_jacobian_per_step_is_one_evaluation():
    record = optbench.solve(DecayFit(), "autograd", "lm", steps=100)
    assert record.status == "converged", record.message
    assert record.n_evals == record.steps


def test_float32_runs_stay_float32():
    for backend in ("torch", "autograd", "fd"):
        record = optbench.solve("regression", backend, "lm", dtype="float32")
        assert record.status in ("converged", "stalled"), record.message
        assert np.allclose(record.x, [1.0, 2.0, 3.0], rtol=1e-3)


class _NotPointwise(DecayFit):
    pointwise_residuals = False


@pytest.mark.parametrize("backend", [b for b in ("fd", "complexstep") if b in CPU])
def test_pointwise_jacobians_take_every_perturbed_point_in_one_call(backend):
    """On fd and complexstep, pointwise residuals are evaluated once for all the perturbed
    points and x itself (x[i] a column of them): the same r and J, to the bit, as one point
    at a time, the same count of evaluations, and 1 call of the residuals instead of 2n + 1
    (fd) or n (complexstep)."""
    registry = get_registry()
    calls = []

    def counted(cls):
        class Counted(cls):
            def residuals(self, x, data, xp):
                calls.append(np.shape(x))
                return super().residuals(x, data, xp)
        return Counted()

    results = {}
    for kind in (DecayFit, _NotPointwise):
        problem = counted(kind)
        instance = problem.make({}, 0)
        objective = registry.get("backend", backend).prepare(problem, instance.data,
                                                             dtype="float64", device="cpu")
        calls.clear()
        r, jac = objective.residuals_and_jacobian(objective.from_numpy(instance.x0))
        results[kind] = (np.asarray(r), np.asarray(jac), len(calls), objective.n_fevals)
    (r1, j1, calls1, fevals1), (r0, j0, calls0, fevals0) = results.values()
    assert np.array_equal(r1, r0) and np.array_equal(j1, j0)
    assert fevals1 == fevals0
    assert calls1 == 1 < calls0
    np.testing.assert_allclose(j1, DecayFit().jacobian(DecayFit().start()), rtol=1e-8)


@pytest.mark.skipif("torch" not in CPU, reason="torch is not installed")
def test_torch_reuses_a_trial_points_graph_only_at_that_point():
    """torch keeps the graph of residuals(x) (pointwise residuals) so that the Jacobian at
    an accepted trial point is one backward pass: the same r and J as a fresh objective's,
    at that point and (no stale graph) at any other."""
    problem = DecayFit()
    instance = problem.make({}, 0)

    def fresh():
        return get_registry().get("backend", "torch").prepare(
            problem, instance.data, dtype="float64", device="cpu")

    objective = fresh()
    x0 = objective.from_numpy(instance.x0)
    x1 = objective.from_numpy(instance.x0 * 1.1)
    objective.residuals_and_jacobian(x0)  # learns the number of residuals
    for trial, asked in ((x1, x1), (x1, x0), (x0, x0)):
        r_trial = objective.residuals(trial)
        r, jac = objective.residuals_and_jacobian(asked)
        r_ref, jac_ref = fresh().residuals_and_jacobian(asked)
        assert r.requires_grad is False and jac.requires_grad is False
        assert r_trial.requires_grad is False
        assert np.array_equal(r.numpy(), r_ref.numpy())
        assert np.array_equal(jac.numpy(), jac_ref.numpy())
