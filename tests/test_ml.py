"""The `ml` problems and suite (issue 17): logistic, softmax and ridge regression and a tanh
network on scikit-learn's bundled data.

Independent references: scikit-learn's own solvers for the three convex problems (the same
objective through C = 1/(n·λ) and alpha = n·λ/2), the data against sklearn's loaders
standardized here, and for the gradients the closed-form gradients of ml_solve (written out
by hand, not differentiated from the problems' code), the ridge gradient written here, and
central differences of the numpy objective along random directions for the tanh network.
Without scikit-learn the suite is unavailable in one line (tested with its import blocked).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import optbench
from clitools import assert_usage_error, run_main
from optbench.plugins import get_registry
from optbench.problems import ml, ml_data, ml_solve

# One worker runs them all: it imports scikit-learn and solves the references once.
pytestmark = pytest.mark.xdist_group("ml")
needs_sklearn = pytest.mark.skipif(ml_data.missing_reason() is not None,
                                   reason="scikit-learn is not installed (the ml extra)")
PROBLEMS = {p.name: p for p in ml.PROBLEMS}
CONVEX = ["ml-logistic", "ml-softmax", "ml-ridge"]

# The problems whose f* no optimizer can be asked to reach, and why (the exception).
NO_REFERENCE = {"ml-tanh-net": "no unique optimum: hidden units permute and flip sign, and "
                               "a nonconvex f has many local minima"}


def instance(name: str):
    return PROBLEMS[name].make({}, 0)


@needs_sklearn
def test_the_suite_and_the_data_are_sklearns_standardized(registry):
    from sklearn import datasets

    suite = registry.get("suite", "ml")
    assert suite.unavailable is None
    assert [e.problem for e in suite.entries] == list(PROBLEMS) == [*CONVEX, "ml-tanh-net"]
    loaders = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits,
               "diabetes": datasets.load_diabetes}
    for name, problem in PROBLEMS.items():
        raw = loaders[problem.dataset]()
        inst = instance(name)
        X = inst.data["X"]
        assert X.shape == raw.data.shape == ml.SHAPES[problem.dataset][:2]
        std = raw.data.std(axis=0)
        expected = (raw.data - raw.data.mean(axis=0)) / np.where(std > 0, std, 1.0)
        assert np.allclose(X, expected, rtol=0, atol=1e-12), name
        assert len(inst.variables) == inst.x0.size == len(set(inst.variables))
    # the targets: labels one-hot, breast cancer's 0/1, diabetes' standardized
    assert np.array_equal(instance("ml-softmax").data["Y"].argmax(axis=1),
                          datasets.load_digits().target)
    assert np.array_equal(instance("ml-logistic").data["y"],
                          datasets.load_breast_cancer().target)
    y = instance("ml-ridge").data["y"]
    assert abs(y.mean()) < 1e-12 and y.std() == pytest.approx(1.0, rel=1e-12)
    assert instance("ml-softmax").x0.size == 64 * 10 + 9  # the last intercept is fixed at 0


def _autograd_gradient(registry, name: str, x: np.ndarray) -> tuple[float, np.ndarray]:
    backend = registry.get("backend", "autograd")
    obj = backend.prepare(PROBLEMS[name], instance(name).data, dtype="float64", device="cpu")
    f, g = obj.value_and_grad(obj.from_numpy(x))
    return float(f), np.asarray(obj.to_numpy(g), dtype=np.float64)


@needs_sklearn
@pytest.mark.parametrize("name", CONVEX)
def test_reference_is_stationary_and_sklearns_solver_finds_it(name, registry):
    """‖∇f(x*)‖ ≤ 1e-10 in float64 (autograd's gradient of the problem's own objective),
    f* = f(x*), and scikit-learn's solver at a tight tolerance lands on x* to 1e-6."""
    from sklearn.linear_model import LogisticRegression, Ridge

    problem, inst = PROBLEMS[name], instance(name)
    ref = problem.reference(inst)
    f, g = _autograd_gradient(registry, name, ref.x)
    assert np.linalg.norm(g) <= 1e-10, np.linalg.norm(g)
    assert f == pytest.approx(ref.f, rel=1e-14) and ref.unique
    X = inst.data["X"]
    n = X.shape[0]
    if name == "ml-ridge":
        fit = Ridge(alpha=n * problem.lam / 2, solver="svd").fit(X, inst.data["y"])
        theirs = np.append(fit.coef_, fit.intercept_)
    else:
        # newton-cg stops on the gradient; lbfgs's ftol (64 eps) stops it 1e-6..1e-5 short
        target = (inst.data["y"] if name == "ml-logistic"
                  else inst.data["Y"].argmax(axis=1))
        fit = LogisticRegression(C=1 / (n * problem.lam), solver="newton-cg", tol=1e-12,
                                 max_iter=1000).fit(X, target)
        if name == "ml-logistic":
            theirs = np.append(fit.coef_[0], fit.intercept_)
        else:  # W is coef_ᵀ; the intercepts as differences from the last class's
            b = fit.intercept_ - fit.intercept_[-1]
            theirs = np.append(fit.coef_.T.ravel(), b[:-1])
    assert np.max(np.abs(theirs - ref.x)) <= 1e-6, np.max(np.abs(theirs - ref.x))
    # the record names the estimator and the constant used here
    setting = (f"alpha={fit.alpha!r}" if name == "ml-ridge" else f"C={fit.C!r}")
    assert ref.details["sklearn"].startswith(f"{type(fit).__name__}({setting})")


def _independent_gradient(name: str, x: np.ndarray) -> np.ndarray:
    data, lam = instance(name).data, PROBLEMS[name].lam
    if name == "ml-logistic":
        return ml_solve.logistic_fgh(data["X"], data["y"], lam)(x, hessian=False)[1]
    if name == "ml-softmax":
        return ml_solve.softmax_fgh(data["X"], data["Y"], lam)(x, hessian=False)[1]
    # ridge: f = mean(e²) + λ/2‖w‖², e = y − Aθ, so ∇f = −2Aᵀe/n + λ[w; 0]
    A = ml_solve.with_ones(data["X"])
    e = data["y"] - A @ x
    return -2 * A.T @ e / e.size + lam * np.append(x[:-1], 0.0)


def _directional(name: str, x: np.ndarray, v: np.ndarray) -> float:
    """∇f·v by fourth-order central differences of the numpy objective along v."""
    problem, data = PROBLEMS[name], instance(name).data
    h = 1e-3 / np.linalg.norm(v)

    def f(t: float) -> float:
        return float(problem.objective(x + t * v, data, np))

    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)


def _cases():
    for backend in ("torch", "autograd", "fd", "complexstep", "jax"):
        for name in PROBLEMS:
            # jax compiles each problem (2-8 s each at load 6 on 2 cores); fd differences
            # the tanh network's 2410 unknowns (4821 evaluations: about 15 s of CPU, 72 s
            # at load 6), complexstep evaluates it 2410 times (18 s): with the slow tests
            slow = backend == "jax" or (backend in ("fd", "complexstep")
                                        and name == "ml-tanh-net")
            yield pytest.param(backend, name, id=f"{backend}-{name}",
                               marks=[pytest.mark.slow] if slow else [])


@needs_sklearn
@pytest.mark.parametrize("backend,name", list(_cases()))
def test_gradients_agree_across_backends_at_a_random_point(backend, name, registry):
    """At x0 plus a random step: ∇f on the backend against the hand-written gradient (the
    convex problems) or against central differences along three random directions (the
    tanh network), and automatic differentiation against autograd's to 1e-10."""
    be = registry.get("backend", backend)
    if be.available("cpu") is not None:
        pytest.skip(f"backend {backend} is not available here")
    rng = np.random.default_rng(7)
    inst = instance(name)
    x = inst.x0 + 0.3 * rng.standard_normal(inst.x0.size)
    obj = be.prepare(PROBLEMS[name], inst.data, dtype="float64", device="cpu")
    f, g = obj.value_and_grad(obj.from_numpy(x))
    g = np.asarray(obj.to_numpy(g), dtype=np.float64)
    assert float(f) == pytest.approx(float(PROBLEMS[name].objective(x, inst.data, np)),
                                     rel=1e-13)
    # fd's central differences lose about eps^(2/3) of f's scale to rounding
    rel = 1e-6 if backend == "fd" else 1e-10
    if name in CONVEX:
        want = _independent_gradient(name, x)
        assert np.linalg.norm(g - want) <= rel * np.linalg.norm(want), (g, want)
    else:
        for v in rng.standard_normal((3, x.size)):
            along = _directional(name, x, v)
            scale = np.linalg.norm(g) * np.linalg.norm(v)
            assert abs(g @ v - along) <= max(rel, 1e-8) * scale, (g @ v, along)
    if backend not in ("autograd", "fd"):
        _, g_ref = _autograd_gradient(registry, name, x)
        assert np.linalg.norm(g - g_ref) <= 1e-10 * np.linalg.norm(g_ref)


@needs_sklearn
@pytest.mark.parametrize("name,optimizer", [("ml-logistic", "lbfgs"),
                                            ("ml-softmax", "lbfgs"), ("ml-ridge", "lm")])
def test_f_star_is_reached(name, optimizer):
    """A built-in optimizer on torch, default options, to f − f* ≤ 1e-6·f* (measured: lbfgs
    26 and 70 steps, lm 1 step on the linear residuals)."""
    fstar = PROBLEMS[name].reference(instance(name)).f
    record = optbench.solve(name, "torch", optimizer, steps=1000, tol=0.5e-6 * fstar)
    assert record.status == "converged", record.message
    assert record.f - fstar <= 1e-6 * fstar
    assert record.reference["f"] == fstar


@needs_sklearn
def test_the_tanh_network_has_no_reference_and_lbfgs_trains_it():
    """The recorded exception: no f* to reach (NO_REFERENCE); lbfgs still trains it (from
    the cross-entropy of a random network, about log 10, to a tenth of it)."""
    assert set(PROBLEMS) - set(CONVEX) == set(NO_REFERENCE)
    inst = instance("ml-tanh-net")
    assert PROBLEMS["ml-tanh-net"].reference(inst) is None
    record = optbench.solve("ml-tanh-net", "torch", "lbfgs", steps=60)
    assert record.reference is None
    f0 = float(PROBLEMS["ml-tanh-net"].objective(inst.x0, inst.data, np))
    assert f0 > 1.5 and record.f < 0.1 * f0, (f0, record.f)


def test_without_sklearn_the_suite_is_unavailable_in_one_line(monkeypatch, capsys, tmp_path,
                                                              fresh_registry):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now fails
    ml_data.load.cache_clear()  # the data may be cached from earlier tests
    try:
        assert "scikit-learn is not installed" in ml_data.missing_reason()
        out = tmp_path / "r.jsonl"
        code, stdout, err = run_main(capsys, "bench", "--suite", "ml", "--backend", "torch",
                                     "--optimizer", "lbfgs", "-o", str(out))
        assert_usage_error(code, stdout, err, "suite ml is unavailable",
                           "scikit-learn is not installed", "'.[ml]'")
        assert not out.exists()
        code, stdout, err = run_main(capsys, "run", "--problem", "ml-softmax", "--backend",
                                     "torch", "--optimizer", "lbfgs")
        assert_usage_error(code, stdout, err, "scikit-learn is not installed")
        code, stdout, _ = run_main(capsys, "list", "suites")
        assert code == 0
        row = next(line for line in stdout.splitlines() if " ml " in line)
        assert row.split()[2] == "no"
    finally:
        ml_data.load.cache_clear()
        get_registry.cache_clear()


def test_listing_imports_no_sklearn():
    """The ml plugin loads with every command: only make() imports scikit-learn (and scipy
    with it, about a second)."""
    code = ("import sys\nfrom optbench.cli.main import main\n"
            "for argv in (['list'], ['list', 'suites', '--format', 'json']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
