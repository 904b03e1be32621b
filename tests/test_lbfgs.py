"""L-BFGS: convergence on every backend, parity with torch.optim.LBFGS, evaluation counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import optbench
from optbench.backends.finite_diff import FiniteDifferenceBackend
from optbench.backends.hips_autograd import AutogradBackend
from optbench.backends.pytorch import TorchBackend
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.optimizers.lbfgs import LBFGS, lbfgs

BACKENDS = {"torch": TorchBackend, "autograd": AutogradBackend, "fd": FiniteDifferenceBackend}


class Rosenbrock:
    def objective(self, x, data, xp):
        return xp.sum(100 * xp.square(x[1:] - x[:-1] ** 2) + xp.square(1 - x[:-1]))


class MeanSquares:
    """The tutorial's regression: mean((y - V·w)²)."""

    def objective(self, x, data, xp):
        return xp.mean(xp.square(data["y"] - data["V"] @ x))


class Linear:
    """sum(x): unbounded below, and every gradient change is zero (no curvature at all)."""

    def objective(self, x, data, xp):
        return xp.sum(x)


def regression_data(seed=0):
    rng = np.random.default_rng(seed)
    x = 5 * rng.standard_normal(20)
    y = x**2 + 2 * x + 3
    return {"V": np.vander(x, 3), "y": y}, rng.standard_normal(3)


def prepare(backend, problem, data=None):
    return BACKENDS[backend]().prepare(problem, data or {}, dtype="float64", device="cpu")


class Counting:
    """Counts value_and_grad calls and remembers where each was made."""

    def __init__(self, inner):
        self.inner, self.xp, self.points = inner, inner.xp, []
        self.to_numpy = inner.to_numpy

    def value_and_grad(self, x):
        self.points.append(np.array(self.inner.to_numpy(x), copy=True))
        return self.inner.value_and_grad(x)


def run(method, objective, x, max_steps):
    """Iterates (numpy) until done() fires; returns them, the last state and the step count."""
    state = method.init(x, objective.xp)
    iterates = []
    n = 0
    while n < max_steps:
        n += 1
        x, state, _, _ = method.step(objective, x, state)
        iterates.append(np.array(objective.to_numpy(x), copy=True))
        if method.done(state):
            break
    return iterates, state, n


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_regression_reaches_least_squares_on_every_backend(backend):
    data, w0 = regression_data()
    reference = np.linalg.lstsq(data["V"], data["y"], rcond=None)[0]
    obj = prepare(backend, MeanSquares(), data)
    # torch's tolerance_change=1e-9 stops at a relative error near 1e-6 (see the next test):
    # its test g·d > -tolerance_change is absolute, and g·d ~ 1e-10 there.
    method = lbfgs(tolerance_change=1e-15)
    iterates, state, steps = run(method, obj, obj.from_numpy(w0), max_steps=50)
    assert state.done == "gradient below tolerance_grad", f"{state.done} after {steps} steps"
    error = np.linalg.norm(iterates[-1] - reference) / np.linalg.norm(reference)
    assert error <= 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defaults_stop_where_torch_lbfgs_stalls(seed):
    """With torch's defaults, done() fires at the point where torch.optim.LBFGS (max_iter=20,
    as a user runs it) stays for good: g·d > -tolerance_change there on every later call."""
    data, w0 = regression_data(seed)
    obj = prepare("torch", MeanSquares(), data)
    iterates, state, _ = run(lbfgs(), obj, obj.from_numpy(w0), max_steps=50)
    assert state.done == "no descent direction (g·d > -tolerance_change)"

    tdata = {k: torch.as_tensor(v) for k, v in data.items()}
    p = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.LBFGS([p], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = MeanSquares().objective(p, tdata, torch)
        loss.backward()
        return loss

    for _ in range(10):
        opt.step(closure)
    np.testing.assert_allclose(iterates[-1], p.detach().numpy(), rtol=1e-10)


def torch_lbfgs_iterates(problem, data, x0, steps, history_size, line_search_fn, max_ls=25,
                         **options):
    """torch.optim.LBFGS doing one inner iteration per .step(closure)."""
    tdata = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in data.items()}
    p = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    # max_eval = 1 + max_ls: torch gives the line search what is left of max_eval after the
    # evaluation at the start (its default max_eval for max_iter=1 would leave none).
    opt = torch.optim.LBFGS([p], lr=1, max_iter=1, max_eval=1 + max_ls,
                            history_size=history_size, line_search_fn=line_search_fn, **options)

    def closure():
        opt.zero_grad()
        loss = problem.objective(p, tdata, torch)
        loss.backward()
        return loss

    out = []
    for _ in range(steps):
        opt.step(closure)
        out.append(p.detach().numpy().copy())
    return out, opt.state[p]["func_evals"]


CASES = {
    "rosenbrock": (Rosenbrock(), {}, np.array([-1.2, 1.0])),
    "regression": (MeanSquares(), *regression_data()),
}


@pytest.mark.parametrize(("history_size", "max_ls"), [(100, 25), (2, 25), (100, 1)])
@pytest.mark.parametrize("case", list(CASES))
def test_trajectory_matches_torch_lbfgs(case, history_size, max_ls):
    problem, data, x0 = CASES[case]
    obj = prepare("torch", problem, data)
    method = lbfgs(history_size=history_size, max_ls=max_ls)
    ours, _, steps = run(method, obj, obj.from_numpy(x0), 50)  # to done(), or 50 steps
    theirs, _ = torch_lbfgs_iterates(problem, data, x0, steps, history_size, "strong_wolfe",
                                     max_ls)
    assert steps >= 8  # the comparison covers many line searches
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"step {k + 1}")


def test_trajectory_without_line_search_matches_torch():
    problem, data, x0 = CASES["regression"]
    obj = prepare("torch", problem, data)
    ours, _, steps = run(lbfgs(line_search="none", history_size=5), obj, obj.from_numpy(x0), 8)
    theirs, _ = torch_lbfgs_iterates(problem, data, x0, steps, 5, None)
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"step {k + 1}")


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", list(CASES))
def test_every_evaluation_is_counted_and_none_repeated(backend, case):
    problem, data, x0 = CASES[case]
    obj = prepare(backend, problem, data)
    counting = Counting(obj)
    _, _, steps = run(lbfgs(), counting, obj.from_numpy(x0), 20)
    assert obj.n_evals == len(counting.points) > steps
    # The point each step returns was evaluated by its line search: the next step reuses it.
    assert len({p.tobytes() for p in counting.points}) == len(counting.points)
    if backend == "torch":
        # torch evaluates again at the start of each .step: one evaluation more per step.
        _, torch_evals = torch_lbfgs_iterates(problem, data, x0, steps, 100, "strong_wolfe")
        assert obj.n_evals == torch_evals - (steps - 1)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_already_optimal_point_is_returned_unchanged(backend):
    obj = prepare(backend, Rosenbrock())
    x = obj.from_numpy(np.array([1.0, 1.0]))
    method = lbfgs()
    x_new, state, f, g = method.step(obj, x, method.init(x, obj.xp))
    assert x_new is x
    assert method.done(state) == ("converged", "gradient below tolerance_grad")
    assert obj.n_evals == 1
    assert float(f) == 0.0 and np.max(np.abs(obj.to_numpy(g))) <= 1e-7


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_step_is_pure(backend):
    obj = prepare(backend, Rosenbrock())
    method = lbfgs()
    x = obj.from_numpy(np.array([-1.2, 1.0]))
    state = method.init(x, obj.xp)
    for _ in range(4):
        x_before = np.array(obj.to_numpy(x), copy=True)
        arrays = [a for a in (state.d, state.prev_g, *state.s, *state.y) if a is not None]
        before = [np.array(obj.to_numpy(a), copy=True) for a in arrays]
        x_new, state_new, _, _ = method.step(obj, x, state)
        np.testing.assert_array_equal(obj.to_numpy(x), x_before)
        for a, b in zip(arrays, before, strict=True):
            np.testing.assert_array_equal(obj.to_numpy(a), b)
        x, state = x_new, state_new


@pytest.mark.parametrize("line_search", ["strong_wolfe", "none"])
def test_zero_curvature_is_skipped_without_nan(line_search):
    obj = prepare("autograd", Linear())
    method = lbfgs(line_search=line_search, max_ls=3)
    x = obj.from_numpy(np.zeros(3))
    state = method.init(x, obj.xp)
    for _ in range(3):
        x, state, f, _ = method.step(obj, x, state)
        assert np.all(np.isfinite(x)) and np.isfinite(float(f))
    assert state.s == () and state.h_diag == 1.0


def test_declared_hyperparameters():
    opt = LBFGS()
    hp = resolve(opt.hyperparams, {"line_search": "none", "history_size": "7"}, opt.name)
    assert hp == {"lr": 1.0, "history_size": 7, "tolerance_grad": 1e-7,
                  "tolerance_change": 1e-9, "line_search": "none", "max_ls": 25,
                  "on_stall": "rescale", "scale": "none"}
    assert opt.name == "lbfgs" and dict(opt.run_defaults) == {"tolerance_change": 1e-15}
    assert opt.method(**hp).done is not None
    with pytest.raises(UsageError, match="line_search"):
        resolve(opt.hyperparams, {"line_search": "backtracking"}, opt.name)
    with pytest.raises(UsageError, match="line_search"):
        lbfgs(line_search="backtracking")
    with pytest.raises(UsageError, match="on_stall=retry is not accepted"):
        resolve(opt.hyperparams, {"on_stall": "retry"}, opt.name)


@pytest.mark.parametrize("backend", ["torch", "autograd", "fd"])
def test_run_lbfgs_defaults_solve_the_tutorial_regression(backend):
    # The acceptance item as a user types it: `optbench run --optimizer lbfgs --dtype float64`
    # (run_defaults included) reaches 1e-8 relative coefficient error in at most 50 steps.
    # --tol 0: to lbfgs's own stop; the default stop (f - f* <= 1e-12) comes a step earlier.
    record = optbench.solve(problem="regression", backend=backend, optimizer="lbfgs",
                            dtype="float64", tol=0)
    default = optbench.solve(problem="regression", backend=backend, optimizer="lbfgs",
                             dtype="float64")
    assert default.status == "converged" and default.message == "f - f* <= 1e-12"
    assert default.steps <= record.steps and default.relative_error <= 1e-7
    assert record.status == "converged"
    assert record.steps <= 50
    assert record.relative_error <= 1e-8
    np.testing.assert_allclose(record.x, [1.0, 2.0, 3.0], rtol=1e-8)  # noise-free truth


def test_a_nan_trial_point_is_too_far_in_scaled_variables_and_torchs_own_otherwise():
    """f = x² - 20x + sqrt(10.5 - x) is NaN past its minimum at the edge x = 10.5. torch's
    line search extrapolates from a NaN trial (NaN compares false to everything) and its
    iterates become NaN: lbfgs's own iterations do the same (the run diverged). In scaled
    variables (scale=x, or after a restart) a NaN trial fails the Armijo test, the search
    shrinks back, and the run ends at the edge."""
    from optbench.expr import compile_expression

    text = "x^2 - 20*x + sqrt(10.5-x)"
    expression = compile_expression(text, ["x"])
    p = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([p], lr=1, max_iter=1, max_eval=26, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = expression([p[0]], torch)
        loss.backward()
        return loss

    theirs = []
    for _ in range(4):
        opt.step(closure)
        theirs.append(p.detach().numpy().copy())
    assert np.isnan(theirs[-1]).all()

    class Edge:
        def objective(self, x, data, xp):
            return expression([x[0]], xp)

    obj = prepare("torch", Edge())
    ours, _, _ = run(lbfgs(), obj, obj.from_numpy(np.array([0.0])), 4)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)  # NaN where torch's are NaN

    method = lbfgs(scale="x")
    ours, state, steps = run(method, obj, obj.from_numpy(np.array([0.0])), 50)
    assert np.all(np.isfinite(ours)) and ours[-1][0] == pytest.approx(10.5, abs=1e-6)
    assert method.done(state)[0] == "stalled" and steps < 50


class TinyRosenbrock:
    """Rosenbrock times 1e-12: the same minimizer, every curvature pair y·s below 1e-10."""

    def objective(self, x, data, xp):
        return 1e-12 * Rosenbrock().objective(x, data, xp)


def test_a_pair_that_torch_drops_for_its_size_restarts_in_scaled_variables():
    """torch keeps a pair (s, y) only where y·s > 1e-10, an absolute number: on an objective
    whose f is small in its units it keeps none, and creeps along steepest descent. Where it
    drops a pair of positive curvature, lbfgs restarts in scaled variables and keeps pairs by
    a relative test; with on_stall=stop it creeps as torch does. (Their iterates part after
    a few steps: in this flat a region the cubic's discriminant takes its sign from the last
    bits of f, which torch's own evaluation and the backend's round differently.)"""
    x0 = np.array([-1.2, 1.0])
    tight = {"tolerance_grad": 0, "tolerance_change": 0}
    theirs, _ = torch_lbfgs_iterates(TinyRosenbrock(), {}, x0, 300, 100, "strong_wolfe",
                                     **tight)
    assert np.max(np.abs(theirs[-1] - 1)) > 1e-3  # torch.optim.LBFGS: still creeping

    obj = prepare("torch", TinyRosenbrock())
    ours, _, steps = run(lbfgs(**tight, on_stall="stop"), obj, obj.from_numpy(x0), 300)
    assert steps == 300 and np.max(np.abs(ours[-1] - 1)) > 1e-3

    method = lbfgs(**tight)
    ours, state, steps = run(method, obj, obj.from_numpy(x0), 300)
    assert steps < 100 and method.done(state)[0] in ("converged", "stalled")
    np.testing.assert_allclose(ours[-1], [1.0, 1.0], rtol=1e-10)
