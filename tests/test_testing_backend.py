"""The conformance kit catches the broken backends of tests/kit_plugins/broken_backends.py.

Each broken backend is a real plugin (a module with a `register_backends` hook), loaded into a
registry of its own as a third-party plugin would be; each passed the kit before the check
that now fails it, and each failure names the cause. Also here: the declarations the kit reads
(differentiation, heavy_modules, waivers), the derivative check following the expression
language's own table, and diagnoses that state what was measured.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

import numpy as np
import pytest

from clitools import run_main
from distributions import installed
from kit_plugins import broken_backends, failed, registry
from optbench import api
from optbench.backends.finite_diff import FiniteDifferenceBackend, FiniteDifferenceObjective
from optbench.core import Method, Optimizer
from optbench.expr import parse
from optbench.optimizers import common
from optbench.testing import BackendConformance, check_backend, check_optimizer
from optbench.testing.backend_gradients import OPERATORS, derivative_cases, language_functions

BROKEN = registry(broken_backends)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------------------------------
# Each broken variant of the issue, caught with its cause named
# ---------------------------------------------------------------------------------------


def test_views_of_a_reused_buffer_fail_fresh():
    report = check_backend("reusebuf", registry=BROKEN, checks=["fresh", "gradient[float64]"])
    message = failed(report, "fresh")
    assert ("regression (float64): the g returned by value_and_grad at x₁ was overwritten by "
            "the next call (at x₂): it now holds the second call's g: the backend returns a "
            "view of a buffer that it reuses on the next call") in message
    assert "(L-BFGS its past gradients)" in message
    assert report["gradient[float64]"].passed  # what the kit saw before: right values
    # The defect is real: L-BFGS stalls on it where the same differences converge.
    runs = {}
    for name in ("fd", "reusebuf"):
        plan = api.plan("rosenbrock", name, "lbfgs", steps=200, registry=BROKEN)
        runs[name] = api.execute(plan, plan.backends[0])
    assert runs["fd"].f < 1e-8 < runs["reusebuf"].f


def test_a_gradient_off_by_5e_7_fails_a_backend_of_exact_differentiation(torch):
    report = check_backend("slightlyoff", registry=BROKEN,
                           checks=["declared", "gradient[float64]", "derivatives"])
    assert "exact differentiation" in report["declared"].message
    message = failed(report, "gradient[float64]")
    assert re.search(r"gradient of regression \(float64\) at x0 \(seed 0\) differs from central "
                     r"finite differences: max rel\. error 5e-07 \(it is 1 \+ 5e-07 times the "
                     r"reference in every component: a factor\?\) > tol 1e-09", message)
    assert "sin: the derivative of sin(x)" in failed(report, "derivatives")

    class Approximate(broken_backends.SlightlyOffBackend):
        differentiation = "approximate"

    # The same error from a backend that approximates is within its tolerance (1e-6).
    assert check_backend(Approximate(), checks=["gradient[float64]"]).ok


def test_a_float64_gradient_rounded_through_float32_fails():
    report = check_backend("rounded32", registry=BROKEN, checks=["gradient[float64]"])
    message = failed(report, "gradient[float64]")
    assert ("float64 results that are float32 numbers — a float64 computation gives one with "
            "probability 2^-29 per value, so these were rounded through float32") in message
    assert re.search(r"regression: gradient components: all 6 are float32 numbers \(e\.g\. "
                     r"\S+, the float32 number nearest to \S+\)", message)
    assert "differs from central" not in message  # within the tolerance of approximation


def test_evaluations_never_counted_fail_counters():
    message = failed(check_backend("uncounted", registry=BROKEN, checks=["counters"]),
                     "counters")
    assert ("after 3 calls of value_and_grad, n_evals is 0, expected 3: count each call "
            "(self.n_evals += 1) — it is never counted") in message
    assert "n_fevals is 0, expected at least 3" in message
    assert "regression, sgd, 5 steps (one evaluation each): the run recorded n_evals = 0, " \
           "expected 5" in message


def test_available_importing_torch_fails_lazy(torch):
    message = failed(check_backend("heavyavailable", registry=BROKEN, checks=["lazy"]), "lazy")
    assert message.startswith("calling available() for cpu, cuda imported torch: heavy "
                              "packages must wait for prepare")
    assert "importlib.util.find_spec" in message
    assert "importing the plugin module" not in message  # the module itself is light


@pytest.mark.parametrize(("name", "cause"), [
    ("wrongtan", r"tan: the derivative of tan\(x\) at x=-2\.2 is wrong: .*it is -?[\d.]+ times "
                 r"the reference"),
    ("wrongabs", r"abs: the derivative of abs\(x\) at x=-2\.2 is wrong: max rel\. error 2 "
                 r"\(sign flipped\?\)"),
])
def test_a_wrong_derivative_of_tan_or_abs_fails(torch, name, cause):
    report = check_backend(name, registry=BROKEN, checks=["derivatives", "gradient[float64]"])
    assert re.search(cause, failed(report, "derivatives"))
    assert report["gradient[float64]"].passed  # the built-in problems call neither


@pytest.mark.parametrize("function", language_functions())
def test_a_wrong_derivative_of_every_function_of_the_language_fails(torch, function):
    message = failed(check_backend(f"wrong-d-{function}", registry=BROKEN,
                                   checks=["derivatives"]), "derivatives")
    assert message.startswith(f"{function}: the derivative of {function}(x) at x=")
    assert len(message.splitlines()) == 1  # only that function


@pytest.mark.parametrize(("operator", "items"), [
    ("add", ["+"]), ("sub", ["-"]), ("mul", ["*", "-x"]), ("div", ["/"]),
    ("pow", ["**", "^", "x^3"]), ("neg", ["-x"])])
def test_a_wrong_derivative_of_every_operator_fails(torch, operator, items):
    message = failed(check_backend(f"wrong-op-{operator}", registry=BROKEN,
                                   checks=["derivatives"]), "derivatives")
    assert [line.split(":")[0] for line in message.splitlines()] == items


def test_a_constant_gradient_crashing_the_backend_fails_linear(torch):
    message = failed(check_backend("curvature", registry=BROKEN, checks=["linear"]), "linear")
    assert message.startswith("c·x + 1.5 (probe-linear) at x=(0, 0, 0): value_and_grad raised "
                              "RuntimeError: element 0 of tensors does not require grad")
    assert "on a linear objective, whose gradient (2, -3, 0.5) is constant" in message


def test_torch_hessian_products_of_a_linear_objective_are_zero(torch):
    # torch's own hvp raised on a linear objective (its gradient has no graph) until fixed.
    report = check_backend("torch", checks=["linear"])
    assert report.ok, str(report)
    assert "hvp gives 0 (6 products)" in report["linear"].message


# ---------------------------------------------------------------------------------------
# Through the command line and the pytest classes
# ---------------------------------------------------------------------------------------


def test_cli_fails_a_broken_backend_naming_the_cause(capsys, use_registry):
    use_registry(BROKEN)
    code, out, err = run_main(capsys, "check", "--backend", "reusebuf", "--only", "fresh")
    assert code == 1
    assert "backend reusebuf (plugin kit_plugins.broken_backends) does NOT conform" in out
    assert re.search(r"fresh +FAIL .*overwritten by the next call", out)
    assert err.strip().endswith("optbench: check failed: backend reusebuf")
    code, out, _ = run_main(capsys, "check", "--backend", "uncounted", "--only", "counters",
                            "--format", "json")
    assert code == 1
    (report,) = json.loads(out)
    assert "it is never counted" in report["checks"][0]["message"]


class ReusedBufferSuite(BackendConformance):
    backend = "reusebuf"
    registry = BROKEN


def test_the_pytest_class_fails_the_broken_backend():
    with pytest.raises(pytest.fail.Exception, match=r"(?s)fresh: .*reuses on the next call"):
        ReusedBufferSuite().test_results_are_fresh_arrays()
    ReusedBufferSuite().test_evaluations_are_counted()  # its other checks pass


# ---------------------------------------------------------------------------------------
# Declarations: differentiation, heavy modules, waivers
# ---------------------------------------------------------------------------------------


class Waiving(FiniteDifferenceBackend):
    name = "waiving"
    conformance: ClassVar = {"waive": {"linear": "constant gradients are out of scope here",
                             "derivatives:tan": "tan is not supported by this backend"}}


def test_a_waiver_skips_with_its_reason_in_the_report():
    report = check_backend(Waiving(), checks=["declared", "linear", "derivatives"])
    assert report.ok
    linear = report["linear"]
    assert linear.skipped
    assert linear.message == ("waived by backend waiving: constant gradients are out of scope "
                              "here")
    assert "waived: tan (tan is not supported by this backend)" in report["derivatives"].message
    judged = report["derivatives"].message.split(";")[0]
    assert "tan" not in re.findall(r"[a-z0-9]+", judged)  # not judged (atan still is)
    assert "atan" in re.findall(r"[a-z0-9]+", judged)
    assert "waivers: linear (constant gradients" in report["declared"].message
    assert re.search(r"^linear +skip .*waived by backend waiving", str(report), re.M)


@pytest.mark.skipif(not installed("optbench-complexstep"),
                    reason="pip install -e plugins/optbench-complexstep")
def test_complexstep_waives_abs_and_says_why():
    report = check_backend("complexstep", checks=["derivatives"])
    assert report.ok, str(report)
    assert "waived: abs (abs is not analytic" in report["derivatives"].message


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"differentiation": "exactish"}, "differentiation is 'exactish': expected one of "
                                      "'exact', 'approximate'"),
    ({"heavy_modules": "torch"}, "heavy_modules is 'torch': expected a tuple of module names"),
    ({"conformance": {"waive": {"linear": ""}}}, "conformance waives 'linear' without a "
                                                 "reason"),
    ({"conformance": {"waive": {"gradient:expr": "x"}}}, "conformance waives 'gradient:expr', "
                                                         "but there is no check 'gradient'"),
    ({"conformance": {"skip": {}}}, "expected a mapping with keys among waive"),
])
def test_declarations_are_checked(attributes, expected):
    backend = type("Declaring", (FiniteDifferenceBackend,), {"name": "declaring", **attributes})
    assert expected in failed(check_backend(backend(), checks=["declared"]), "declared")


def test_builtin_backends_declare_how_they_differentiate():
    for name, kind in (("torch", "exact"), ("autograd", "exact"), ("fd", "approximate")):
        message = check_backend(name, checks=["declared"])["declared"].message
        assert f"{kind} differentiation" in message


# ---------------------------------------------------------------------------------------
# The derivative check follows the language
# ---------------------------------------------------------------------------------------


def test_every_function_and_operator_of_the_language_is_judged(torch):
    assert set(OPERATORS) == set(parse._BINARY.values())  # a new operator needs a case here
    message = check_backend("torch", checks=["derivatives"])["derivatives"].message
    judged = message.split("(", 1)[1].split(")", 1)[0].split(", ")
    assert judged == [item for item, _, _ in derivative_cases()]
    assert set(language_functions()) <= set(judged)
    assert "not judged" not in message


def test_a_function_added_to_the_language_is_checked_without_changing_the_kit(monkeypatch,
                                                                               torch):
    # numpy and torch both have arcsinh: stand-in for a function another change adds.
    monkeypatch.setattr(parse, "FUNCTIONS", (*parse.FUNCTIONS, "arcsinh"))
    assert "arcsinh" in language_functions()
    report = check_backend("torch", checks=["derivatives"])
    assert report.ok and "expm1, arcsinh, +" in report["derivatives"].message
    backend = broken_backends.WrongDerivativeBackend(
        "wrong-arcsinh", {"arcsinh": broken_backends.off_by_half("arcsinh")})
    message = failed(check_backend(backend, checks=["derivatives"]), "derivatives")
    assert message.startswith("arcsinh: the derivative of arcsinh(x) at x=")


# ---------------------------------------------------------------------------------------
# Diagnoses state what was measured
# ---------------------------------------------------------------------------------------


class GuardedObjective(FiniteDifferenceObjective):
    """Replaces non-finite values by finite ones, hiding divergence from the runner."""

    def value_and_grad(self, x):
        f, g = super().value_and_grad(x)
        return np.nan_to_num(f), np.nan_to_num(g)


class GuardedBackend(FiniteDifferenceBackend):
    name = "guarded"
    dtypes = ("float64",)

    def prepare(self, problem, data, *, dtype, device):
        return GuardedObjective(problem, data, dtype)


def test_a_finite_f_where_ieee_gives_nan_is_said_so():
    message = failed(check_backend(GuardedBackend(), checks=["diverged"]), "diverged")
    assert re.search(r"probe-overflow \(float64, sgd lr=100\): status 'max_steps' after 100 "
                     r"steps \(f=\S+\), expected 'diverged': f stayed finite at x=.*, where "
                     r"IEEE float64 arithmetic \(numpy\) gives f=nan", message)
    assert "precision" not in message.split("where IEEE")[0]  # no guess before the fact


class _Still(Optimizer):
    hyperparams = (common.lr(1e-9),)

    def method(self, lr):
        def step(objective, x, state):
            f, g = objective.value_and_grad(x)
            return x - lr * g, state, f, g

        return Method(lambda x, xp: 0, step)


class BarelyMoves(_Still):
    name = "barelymoves"


class RejectsNaN(Optimizer):
    """Gradient descent that, where f is not finite, steps back to its last good point, stays
    there and reports a finite f: the runner never sees the NaN (numpy only)."""

    name = "rejectsnan"
    hyperparams = (common.lr(0.5),)

    def method(self, lr):
        def init(x, xp):
            return (x, lr)

        def step(objective, x, state):
            good, rate = state
            f, g = objective.value_and_grad(x)
            if not np.isfinite(f):
                return good, (good, 0.0), np.zeros_like(f), np.zeros_like(g)
            return x - rate * g, (x, rate), f, g

        return Method(init, step)


def test_an_optimizer_not_diverging_is_diagnosed_from_what_the_objective_saw():
    message = failed(check_optimizer(BarelyMoves(), checks=["diverged"], backends=["fd"]),
                     "diverged")
    assert ("probe-barrier on fd: status 'max_steps' after 100 steps, expected 'diverged': f "
            "was never evaluated beyond the barrier (x₁ > 0.001; the largest x₁ asked about "
            "was ") in message
    message = failed(check_optimizer(RejectsNaN(), checks=["diverged"], backends=["fd"]),
                     "diverged")
    assert re.search(r"probe-barrier on fd: status 'max_steps' after 100 steps, expected "
                     r"'diverged': the objective returned a non-finite f at x=\[1\.? 1\.?\], "
                     r"and the optimizer went on: step must return that f", message), message
