"""Every backend's value and gradient against the closed forms, at random points (hypothesis).

    regression  f = mean((y − V·w)²)    ∇f = −2/n · Vᵀ(y − V·w)
    puzzle      f = ‖M·x − b‖²          ∇f = 2·Mᵀ(M·x − b)

Tolerances, in float64: 1e-12 for automatic differentiation (torch, autograd, and any other
backend registered), 1e-7 for central finite differences (fd), each relative to the scale of
what is computed rather than to ‖∇f‖ alone. The scale of the gradient is
‖2/n·|V|ᵀ(|y| + |V|·|w|)‖ (puzzle: ‖2·|M|ᵀ(|b| + |M|·|x|)‖), floored at 1: the standard
forward-error bound of a residual followed by a matrix-vector product. At a generic point it is
within a small factor of ‖∇f‖; near a minimizer the residual cancels (its rounding error, which
every implementation makes differently, is then all that remains of ∇f) and ‖∇f‖ alone would
demand more than float64 can give. Hypothesis draws the true coefficients and the point from the
same values, so it does reach such points. fd adds its own rounding error, about eps·|r|²/h
with h = eps^(1/3)·max(1, |w_i|) (both problems declare residuals: fd's gradient is 2Jᵀr,
J by central differences of r); relative to the same scale that stays below ~1e-9.

Regression data: x_scale in [0.5, 3] and degree up to 6, so |x|^6 stays below ~1e6 (x within
about 3σ). The tutorial's x_scale 5 with degree 6 gives values near 1e8 and f near 1e16; the
tolerances above would still hold (they are relative), but nothing is learnt there that smaller
values do not show.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optbench.core.params import resolve

TOL_FD = 1e-7
TOL_AUTODIFF = 1e-12
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def tolerance(backend: str) -> float:
    return TOL_FD if backend == "fd" else TOL_AUTODIFF


@pytest.fixture(scope="module")
def backends(registry):
    """The backends that can run float64 on the CPU here (at least torch, autograd and fd)."""
    names = [n for n in registry.names("backend")
             if registry.get("backend", n).available("cpu") is None
             and "float64" in registry.get("backend", n).dtypes]
    assert {"fd"} <= set(names)
    return {n: registry.get("backend", n) for n in names}


def check_backends(backends, problem, inst, point, f_ref, g_ref, f_scale, g_scale):
    for name, backend in backends.items():
        obj = backend.prepare(problem, inst.data, dtype="float64", device="cpu")
        f, g = obj.value_and_grad(obj.from_numpy(point))
        f, g = float(f), np.asarray(obj.to_numpy(g), dtype=np.float64)
        tol = tolerance(name)
        assert g.shape == g_ref.shape, name
        # f: every backend evaluates the objective itself, so 1e-12 for all of them.
        assert abs(f - f_ref) <= TOL_AUTODIFF * f_scale, (name, f, f_ref)
        err = float(np.linalg.norm(g - g_ref))
        assert err <= tol * g_scale, (
            f"{name}: |g - g_ref| = {err:.3g} > {tol:g}·{g_scale:.3g}; g={g}, ref={g_ref}")


def floats(low: float, high: float):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def regression_cases(draw):
    degree = draw(st.integers(1, 6))
    n = degree + 1
    given_params = {
        "degree": str(degree),  # as text, the way -P degree=3 arrives
        "n_samples": draw(st.integers(1, 40)),
        "x_scale": draw(floats(0.5, 3.0)),
        "noise": draw(st.sampled_from([0.0, 0.1, 1.0])),
        "coefficients": draw(st.lists(floats(-3, 3), min_size=n, max_size=n)),
    }
    seed = draw(st.integers(0, 2**32 - 1))
    w = np.array(draw(st.lists(floats(-3, 3), min_size=n, max_size=n)))
    return given_params, seed, w


@SETTINGS
@given(case=regression_cases())
def test_regression_gradient(registry, backends, case):
    given_params, seed, w = case
    problem = registry.get("problem", "regression")
    inst = problem.make(resolve(problem.params, given_params, "regression"), seed)
    v, y = inst.data["V"], inst.data["y"]
    n = len(y)
    r = y - v @ w
    f_ref = float(np.mean(r * r))
    g_ref = -2.0 / n * (v.T @ r)
    bound = np.abs(y) + np.abs(v) @ np.abs(w)  # bounds |y − V·w| and the rounding of it
    f_scale = max(1.0, float(np.mean(bound * bound)))
    g_scale = max(1.0, float(np.linalg.norm(2.0 / n * (np.abs(v).T @ bound))))
    check_backends(backends, problem, inst, w, f_ref, g_ref, f_scale, g_scale)


def matrix_text(rows: list[list[float]]) -> str:
    """The -P matrix=... form: entries by ',', rows by ';' (repr round-trips exactly)."""
    return ";".join(",".join(repr(v) for v in row) for row in rows)


@st.composite
def puzzle_cases(draw):
    m, n = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rows = draw(st.lists(st.lists(floats(-10, 10), min_size=n, max_size=n),
                         min_size=m, max_size=m))
    rhs = draw(st.lists(floats(-10, 10), min_size=m, max_size=m))
    x = np.array(draw(st.lists(floats(-10, 10), min_size=n, max_size=n)))
    given_params = {"matrix": matrix_text(rows), "rhs": ",".join(repr(v) for v in rhs)}
    return given_params, draw(st.integers(0, 2**32 - 1)), x


@SETTINGS
@given(case=puzzle_cases())
def test_puzzle_gradient(registry, backends, case):
    given_params, seed, x = case
    problem = registry.get("problem", "puzzle")
    inst = problem.make(resolve(problem.params, given_params, "puzzle"), seed)
    m, b = inst.data["M"], inst.data["b"]
    r = m @ x - b
    f_ref = float(r @ r)
    g_ref = 2.0 * (m.T @ r)
    bound = np.abs(b) + np.abs(m) @ np.abs(x)
    f_scale = max(1.0, float(bound @ bound))
    g_scale = max(1.0, float(np.linalg.norm(2.0 * (np.abs(m).T @ bound))))
    check_backends(backends, problem, inst, x, f_ref, g_ref, f_scale, g_scale)


def test_tutorial_puzzle_gradient(registry, backends):
    """The tutorial's puzzle at a fixed point, with exact integer arithmetic: all agree."""
    problem = registry.get("problem", "puzzle")
    inst = problem.make(resolve(problem.params, {}, "puzzle"), 0)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    m, b = inst.data["M"], inst.data["b"]
    g_ref = 2.0 * m.T @ (m @ x - b)
    check_backends(backends, problem, inst, x, float(np.sum((m @ x - b) ** 2)), g_ref,
                   1.0, 1.0)


@pytest.mark.parametrize("backend", ["torch", "autograd"])
def test_hessian_vector_products_match_the_closed_form(backend):
    # Rosenbrock's Hessian in closed form at a point, against the backend's hvp.
    from optbench.plugins import get_registry

    registry = get_registry()
    problem = registry.get("problem", "rosenbrock")
    inst = problem.make({"n": 2}, 0)
    objective = registry.get("backend", backend).prepare(problem, inst.data, dtype="float64",
                                                         device="cpu")
    a, b = 0.7, -0.3
    hessian = np.array([[1200 * a**2 - 400 * b + 2, -400 * a], [-400 * a, 200.0]])
    v = np.array([0.25, -1.5])
    hv = objective.to_numpy(objective.hvp(objective.from_numpy(np.array([a, b])),
                                          objective.from_numpy(v)))
    np.testing.assert_allclose(hv, hessian @ v, rtol=1e-12)
