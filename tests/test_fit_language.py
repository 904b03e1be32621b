"""The functions models use (issue 15): atan (arctan), asin, acos, log10, log1p, expm1 —
values against numpy and math, derivatives against their closed forms on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optbench.expr import ParseError, compile_expression
from optbench.problems.expression import ExpressionProblem

# name: (numpy function, closed-form derivative, points inside the domain)
CLOSED_FORMS = {
    "atan": (np.arctan, lambda x: 1 / (1 + x * x), (-2.2, -0.25, 0.0, 0.8, 7.5)),
    "arctan": (np.arctan, lambda x: 1 / (1 + x * x), (-2.2, 0.35, 3.0)),
    "asin": (np.arcsin, lambda x: 1 / np.sqrt(1 - x * x), (-0.9, -0.25, 0.0, 0.35, 0.8)),
    "acos": (np.arccos, lambda x: -1 / np.sqrt(1 - x * x), (-0.9, -0.25, 0.0, 0.35, 0.8)),
    "log10": (np.log10, lambda x: 1 / (x * np.log(10)), (0.05, 0.35, 1.0, 2.5, 1e4)),
    "log1p": (np.log1p, lambda x: 1 / (1 + x), (-0.9, -1e-9, 1e-9, 0.35, 2.5)),
    "expm1": (np.expm1, np.exp, (-2.2, -1e-9, 1e-9, 0.8, 3.0)),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_values_match_numpy(name):
    numpy_fn, _, points = CLOSED_FORMS[name]
    x = np.asarray(points)
    expr = compile_expression(f"{name}(x)")
    np.testing.assert_array_equal(expr([x], np), numpy_fn(x))


def test_constant_parts_fold_with_math():
    assert compile_expression("atan(1) + 0*x")([0.0], np) == math.pi / 4
    assert compile_expression("arctan(1) + 0*x")([0.0], np) == math.pi / 4
    assert compile_expression("x*log10(1000)")([1.0], np) == 3.0
    assert compile_expression("x + expm1(1e-20)")([0.0], np) == 1e-20  # not 0: expm1's point
    assert compile_expression("x + log1p(1e-20)")([0.0], np) == 1e-20
    assert compile_expression("x + asin(1) - acos(0)")([0.0], np) == 0.0


@pytest.mark.parametrize("text", ["x + asin(2)", "x*acos(-1.5)", "x + log10(0)",
                                  "x + log1p(-1)", "x + expm1(1000)"])
def test_constant_outside_the_domain_is_refused(text):
    with pytest.raises(ParseError, match="constant part"):
        compile_expression(text)


def test_unknown_spellings_name_the_accepted_ones():
    with pytest.raises(ParseError, match="atan, arctan, asin, acos, log10, log1p, expm1"):
        compile_expression("arcsin(x)")


@pytest.fixture(scope="module")
def backends(registry):
    """Every backend that runs float64 on the CPU here (torch, autograd, fd, and jax,
    complexstep where their plugins are installed)."""
    names = [n for n in registry.names("backend")
             if registry.get("backend", n).available("cpu") is None
             and "float64" in registry.get("backend", n).dtypes]
    assert {"torch", "autograd", "fd"} <= set(names)
    return {n: registry.get("backend", n) for n in names}


def _tolerance(backend) -> float:
    # Automatic differentiation and complex step are exact to rounding; central finite
    # differences are not (about eps^(2/3) relative).
    return 1e-12 if backend.differentiation == "exact" else 1e-6


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_derivatives_match_closed_forms_on_every_backend(backends, name):
    numpy_fn, derivative, points = CLOSED_FORMS[name]
    # The chain rule through an inner function too: d/dx f(2x − y) = 2 f′, d/dy = −f′.
    problem = ExpressionProblem()
    for text, inner, scale in ((f"{name}(x)", lambda x, y: x, (1.0, 0.0)),
                               (f"{name}(2*x - y)", lambda x, y: 2 * x - y, (2.0, -1.0))):
        expression = compile_expression(text, ["x", "y"])
        data = {"_expression": expression}
        for point in points:
            # x, y chosen so that the inner argument is the point of the domain.
            x, y = (point, 0.0) if inner(1.0, 0.0) == 1.0 else (point, point)
            assert inner(x, y) == point
            f_ref = numpy_fn(point)
            g_ref = np.array([scale[0], scale[1]]) * derivative(point)
            for bname, backend in backends.items():
                objective = backend.prepare(problem, data, dtype="float64", device="cpu")
                f, g = objective.value_and_grad(objective.from_numpy(np.array([x, y])))
                f = float(objective.to_numpy(f))
                g = np.asarray(objective.to_numpy(g), dtype=np.float64)
                tol = _tolerance(backend)
                where = (bname, text, point)
                assert f == pytest.approx(f_ref, rel=1e-14, abs=1e-30), where
                np.testing.assert_allclose(g, g_ref, rtol=tol, atol=tol * abs(g_ref).max()
                                           * 1e-3, err_msg=str(where))
