"""The conformance kit, optbench.testing, and `optbench check`.

1. Every built-in backend and optimizer passes, and so does the installed complexstep plugin.
2. Deliberately wrong plugins fail, each with a message that names the problem: a gradient
   with the wrong sign, a float32 backend computing in float64, a result left on the wrong
   device (a fake array type carrying `.device`), a backend not deterministic for a seed, and
   more (available(), exceptions on NaN, optimizers that mutate, ascend or promote).
3. The pytest classes, the command line's exit statuses, and the reference itself.
4. docs/template: the plugin template passes the kit, imported by path (nothing installed),
   and docs/plugins.md shows its files verbatim.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tomllib

import optbench
from clitools import run_main
from distributions import installed
from optbench.backends.finite_diff import FiniteDifferenceBackend, FiniteDifferenceObjective
from optbench.core import Method, Optimizer
from optbench.errors import UsageError
from optbench.optimizers import common
from optbench.plugins import Registry, get_registry
from optbench.testing import (
    BACKEND_CHECKS,
    OPTIMIZER_CHECKS,
    PROBLEM_CHECKS,
    BackendConformance,
    CheckResult,
    OptimizerConformance,
    Report,
    array_device,
    central_gradient,
    check_backend,
    check_optimizer,
    compare_gradient,
)
from optbench.testing.probes import PrecisionProbe

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "docs" / "template"
GUIDE = ROOT / "docs" / "plugins.md"


def ran(report: Report, *skippable: str) -> None:
    """Every check passed, and none was skipped but those named."""
    assert report.ok, str(report)
    skipped = {r.name for r in report.results if r.skipped}
    assert skipped <= set(skippable), str(report)


# ---------------------------------------------------------------------------------------
# 1. What must pass
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["torch", "autograd", "fd"])
def test_every_builtin_backend_passes(name):
    report = check_backend(name)
    assert [r.name for r in report.results] == list(BACKEND_CHECKS)
    ran(report, "compiled")
    assert report.plugin.startswith("optbench.backends.")
    assert "max rel. error of the gradient" in report["gradient[float64]"].message


def test_the_cases_leave_out_problems_unavailable_here_and_the_largest(monkeypatch):
    """A user without scikit-learn or ../shared/data checks a backend all the same; the
    problems with thousands of unknowns (ml-tanh-net) stay out of the checks' cases."""
    from optbench.problems import ml_data, nist
    from optbench.testing._common import CASE_MAX_UNKNOWNS, builtin_cases

    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now fails
    ml_data.load.cache_clear()
    monkeypatch.setattr(nist, "missing_reason", lambda: "no data here (test)")
    monkeypatch.setenv("OPTBENCH_NIST_DIR", "/nonexistent")
    monkeypatch.setenv("OPTBENCH_NIST_NONLINEAR_DIR", "/nonexistent")
    try:
        labels = {c.label for c in builtin_cases(get_registry())}
    finally:
        ml_data.load.cache_clear()
    assert not {x for x in labels if x.startswith(("ml-", "nist"))}, labels
    assert {"regression", "puzzle", "mgh", "model(Misra1a)"} <= labels
    assert all(len(c.problem.variables(c.params)) <= CASE_MAX_UNKNOWNS
               for c in builtin_cases(get_registry()))


@pytest.mark.skipif(not installed("optbench-complexstep"),
                    reason="pip install -e plugins/optbench-complexstep")
def test_the_installed_complexstep_plugin_passes():
    report = check_backend("complexstep")
    ran(report, "compiled")
    assert report.plugin == "complexstep"


@pytest.mark.parametrize("name", ["adam", "adamw", "nadam", "sgd", "lbfgs", "adagrad",
                                  "adadelta", "adamax", "asgd", "radam", "rmsprop", "rprop"])
def test_every_builtin_optimizer_passes(name):
    report = check_optimizer(name)
    assert [r.name for r in report.results] == list(OPTIMIZER_CHECKS)
    ran(report)


# ---------------------------------------------------------------------------------------
# 2. What must fail: deliberately wrong backends
# ---------------------------------------------------------------------------------------


class WrongSignObjective(FiniteDifferenceObjective):
    def value_and_grad(self, x):
        f, g = super().value_and_grad(x)
        return f, -g


class WrongSignBackend(FiniteDifferenceBackend):
    name = "wrongsign"

    def prepare(self, problem, data, *, dtype, device):
        return WrongSignObjective(problem, data, dtype)


class HalfGradientObjective(FiniteDifferenceObjective):
    def value_and_grad(self, x):
        f, g = super().value_and_grad(x)
        return f, g / 2  # a forgotten factor 2 of a square


class HalfGradientBackend(FiniteDifferenceBackend):
    name = "halfgrad"

    def prepare(self, problem, data, *, dtype, device):
        return HalfGradientObjective(problem, data, dtype)


class SecretlyFloat64Objective(FiniteDifferenceObjective):
    """Says float32 and returns float32 arrays, but computes in float64 and casts back."""

    def __init__(self, problem, data, dtype):
        self._claimed = np.dtype("float64")  # the data and the arithmetic: float64
        super().__init__(problem, data, "float64")
        self.dtype = dtype  # what it claims, and what its arrays say
        self._claimed = np.dtype(dtype)

    def value_and_grad(self, x):
        f, g = super().value_and_grad(np.asarray(x, dtype=np.float64))
        return np.asarray(f, dtype=self._claimed), g.astype(self._claimed)

    def from_numpy(self, array):
        return np.array(array, dtype=self._claimed)


class SecretlyFloat64Backend(FiniteDifferenceBackend):
    name = "secret64"

    def prepare(self, problem, data, *, dtype, device):
        return SecretlyFloat64Objective(problem, data, dtype)


class PromotingObjective(FiniteDifferenceObjective):
    """Says float32 but hands back float64 arrays: the cruder form of the same mistake."""

    def __init__(self, problem, data, dtype):
        super().__init__(problem, data, "float64")
        self.dtype = dtype


class PromotingBackend(FiniteDifferenceBackend):
    name = "promoting"

    def prepare(self, problem, data, *, dtype, device):
        return PromotingObjective(problem, data, dtype)


class FakeDevice:
    """A device as torch describes one: `.type` and `.index`."""

    def __init__(self, type_: str, index: int = 0) -> None:
        self.type, self.index = type_, index

    def __repr__(self) -> str:
        return f"device(type={self.type!r}, index={self.index})"


class OnCuda(np.ndarray):
    """A numpy array that says it lives on a CUDA device: a simulated accelerator array."""

    @property
    def device(self):
        return FakeDevice("cuda")


class LeftOnDeviceObjective(FiniteDifferenceObjective):
    """Asked for the CPU, it leaves its gradient on the (simulated) accelerator."""

    def value_and_grad(self, x):
        f, g = super().value_and_grad(x)
        return f, g.view(OnCuda)


class LeftOnDeviceBackend(FiniteDifferenceBackend):
    name = "leftondevice"

    def prepare(self, problem, data, *, dtype, device):
        return LeftOnDeviceObjective(problem, data, dtype)


class FakeCudaObjective(FiniteDifferenceObjective):
    """On "cuda" (simulated): x and f are device arrays, but g comes back on the host."""

    device = "cuda"

    def value_and_grad(self, x):
        f, g = super().value_and_grad(x)
        return np.asarray(f).view(OnCuda), np.asarray(g)

    def from_numpy(self, array):
        return super().from_numpy(array).view(OnCuda)


class FakeCudaBackend(FiniteDifferenceBackend):
    name = "fakecuda"
    devices = ("cpu", "cuda")

    def prepare(self, problem, data, *, dtype, device):
        if device == "cuda":
            return FakeCudaObjective(problem, data, dtype)
        return FiniteDifferenceObjective(problem, data, dtype)


class JitteryObjective(FiniteDifferenceObjective):
    """Adds noise from an unseeded generator, as an unordered parallel reduction might."""

    def value_and_grad(self, x):
        f, g = super().value_and_grad(x)
        noise = np.random.default_rng().standard_normal(g.shape)
        return f, g * (1 + 1e-9 * noise).astype(g.dtype)


class JitteryBackend(FiniteDifferenceBackend):
    name = "jittery"

    def prepare(self, problem, data, *, dtype, device):
        return JitteryObjective(problem, data, dtype)


class RaisingOnNaNObjective(FiniteDifferenceObjective):
    def value_and_grad(self, x):
        f, g = super().value_and_grad(x)
        if not np.isfinite(f):
            raise FloatingPointError("f is not finite")
        return f, g


class RaisingOnNaNBackend(FiniteDifferenceBackend):
    name = "raisesonnan"

    def prepare(self, problem, data, *, dtype, device):
        return RaisingOnNaNObjective(problem, data, dtype)


class EmptyReasonBackend(FiniteDifferenceBackend):
    name = "emptyreason"
    devices = ("cpu", "cuda")

    def available(self, device="cpu"):
        return None if device == "cpu" else ""


class OverpromisingBackend(FiniteDifferenceBackend):
    """Says CUDA is available, then cannot prepare there."""

    name = "overpromising"
    devices = ("cpu", "cuda")

    def prepare(self, problem, data, *, dtype, device):
        if device != "cpu":
            raise RuntimeError("CUDA driver not found")
        return super().prepare(problem, data, dtype=dtype, device=device)


class WrongPlugin:
    """One plugin registering every wrong backend, as a third-party package would."""

    @optbench.hookimpl
    def register_backends(self, register):
        for backend in (WrongSignBackend(), SecretlyFloat64Backend(), LeftOnDeviceBackend(),
                        JitteryBackend()):
            register(backend)


@pytest.fixture(scope="module")
def wrong_registry() -> Registry:
    registry = Registry.load(extra=[("wrong-plugin", WrongPlugin())], entry_points_too=False)
    assert {"wrongsign", "secret64", "leftondevice", "jittery"} <= set(
        registry.names("backend"))
    return registry


def failed(report: Report, name: str) -> str:
    """The message of a check that must have failed."""
    result = report[name]
    assert not result.passed and not result.skipped, str(report)
    assert not report.ok
    return result.message


def test_a_gradient_with_the_wrong_sign_fails(wrong_registry):
    report = check_backend("wrongsign", registry=wrong_registry,
                           checks=["gradient[float64]", "gradient[float32]", "dtype", "device"])
    message = failed(report, "gradient[float64]")
    assert ("gradient of regression (float64) at x0 (seed 0) differs from central finite "
            "differences: max rel. error 2 (sign flipped?)") in message
    # every built-in problem is named, each with the component and the two values
    for problem in ("beale", "booth", "expr", "himmelblau", "puzzle", "quadratic",
                    "regression", "rosenbrock"):
        assert f"gradient of {problem}" in message
    assert re.search(r"largest at \S+: got -?[\d.e+-]+, expected -?[\d.e+-]+", message)
    assert "(sign flipped?)" in failed(report, "gradient[float32]")
    # The precision probe's gradient is wrong too: g=(-1, -2, -3), not (1, 2, 3).
    assert ("gave f=6, g=(-1, -2, -3); float64 arithmetic gives f=6, g=(1, 2, 3) (f is "
            "right, g is not: a gradient error, see gradient[float64])") in failed(report,
                                                                                  "dtype")


def test_a_gradient_off_by_a_factor_is_named_as_such():
    report = check_backend(HalfGradientBackend(), checks=["gradient[float64]"])
    assert "it is 0.5 times the reference" in failed(report, "gradient[float64]")


def test_a_float32_backend_computing_in_float64_fails(wrong_registry):
    report = check_backend("secret64", registry=wrong_registry,
                           checks=["dtype", "gradient[float32]"])
    message = failed(report, "dtype")
    assert message.startswith("float32 requested, but computed in float64 precision")
    assert "gave f=6, g=(1, 2, 3), float64's result; float32 arithmetic gives f=0" in message
    assert report["gradient[float32]"].passed  # its arrays and values look right otherwise


def test_a_float32_backend_returning_float64_arrays_fails():
    message = failed(check_backend(PromotingBackend(), checks=["dtype"]), "dtype")
    assert "float32 (probe-precision): objective.dtype" not in message
    assert "float32 (probe-precision): from_numpy(x0) is float64, expected float32" in message
    assert ("g is float64, expected float32 (and the precision probe shows float64 "
            "arithmetic)") in message


def test_a_result_left_on_the_wrong_device_fails(wrong_registry):
    assert array_device(np.zeros(2).view(OnCuda)) == "cuda"
    report = check_backend("leftondevice", registry=wrong_registry, checks=["device"])
    message = failed(report, "device")
    assert ("device=cpu requested, but g is on cuda (OnCuda): the result was left on the "
            "wrong device") in message
    assert "from_numpy(x0) is on" not in message and "but f is on" not in message


def test_a_device_result_left_on_the_host_fails():
    message = failed(check_backend(FakeCudaBackend(), checks=["device"]), "device")
    assert "device=cuda requested, but g is on cpu" in message
    assert "objective.device" not in message  # it said cuda, as it should


def test_a_backend_not_deterministic_for_a_seed_fails(wrong_registry):
    report = check_backend("jittery", registry=wrong_registry,
                           checks=["deterministic", "gradient[float64]"])
    message = failed(report, "deterministic")
    assert re.search(r"two runs of regression \(float64, seed 0, nadam, 25 steps\) gave "
                     r"different x: max \|Δx\| = \S+ at \S+ .*not deterministic for a seed",
                     message)
    assert report["gradient[float64]"].passed  # 1e-9 of noise is no gradient error


def test_an_exception_on_non_finite_values_fails_the_divergence_check():
    message = failed(check_backend(RaisingOnNaNBackend(), checks=["diverged"]), "diverged")
    assert "the run raised instead of ending as 'diverged': FloatingPointError" in message


def test_available_must_give_a_reason_or_really_work():
    message = failed(check_backend(EmptyReasonBackend(), checks=["available"]), "available")
    assert "available('cuda') returned '': expected None (usable) or a non-empty string" in (
        message)
    message = failed(check_backend(OverpromisingBackend, checks=["available"]), "available")
    assert "available('cuda') is None, yet on cuda RuntimeError: CUDA driver not found" in (
        message)


def test_an_unavailable_backend_skips_what_cannot_run():
    class Missing(FiniteDifferenceBackend):
        name = "missing"

        def available(self, device="cpu"):
            return "missinglib is not installed (pip install missinglib)"

    report = check_backend(Missing())
    assert report.ok
    assert report["available"].passed and "not available (missinglib" in (
        report["available"].message)
    assert report["gradient[float64]"].skipped
    assert "backend missing is not available here: cpu: missinglib is not installed" in (
        report["gradient[float64]"].message)


def test_a_check_that_raises_is_a_failure_saying_where():
    class Broken(FiniteDifferenceBackend):
        name = "broken"

        def prepare(self, problem, data, *, dtype, device):
            raise ZeroDivisionError("oops")

    report = check_backend(Broken(), checks=["gradient[float64]", "deterministic"])
    assert "regression (float64): prepare raised ZeroDivisionError: oops (at " in failed(
        report, "gradient[float64]")
    assert "the run failed: ZeroDivisionError: oops" in failed(report, "deterministic")


def test_names_and_checks_are_validated():
    with pytest.raises(UsageError, match="unknown backend 'nope'; available"):
        check_backend("nope")
    with pytest.raises(UsageError, match="unknown backend check 'grad'; "
                       "the checks: declared, available"):
        check_backend("fd", checks=["grad"])
    with pytest.raises(UsageError, match="expected a backend name"):
        check_backend(42)
    with pytest.raises(UsageError, match="device=cuda is not accepted"):
        check_backend("fd", device="cuda")


# ---------------------------------------------------------------------------------------
# 2b. What must fail: deliberately wrong optimizers
# ---------------------------------------------------------------------------------------


class _Simple(Optimizer):
    hyperparams = (common.lr(0.01),)

    def method(self, lr):
        return Method(lambda x, xp: 0, lambda objective, x, state: self.update(objective, x,
                                                                                state, lr))


class InPlace(_Simple):
    name = "inplace"

    def update(self, objective, x, state, lr):
        f, g = objective.value_and_grad(x)
        x -= lr * g  # mutates the caller's x
        return x, state + 1, f, g


class HiddenState(_Simple):
    name = "hidden"

    def method(self, lr):
        calls = []

        def step(objective, x, state):
            calls.append(1)
            f, g = objective.value_and_grad(x)
            return x - lr * len(calls) * g, state, f, g  # a step count outside the state

        return Method(lambda x, xp: 0, step)


class Ascent(_Simple):
    name = "ascent"

    def update(self, objective, x, state, lr):
        f, g = objective.value_and_grad(x)
        return x + lr * g, state, f, g


class Promotes(Optimizer):
    name = "promotes"
    hyperparams = (common.lr(0.01),)

    def method(self, lr):
        def init(x, xp):
            return xp.zeros(tuple(x.shape), dtype=xp.float64)  # not zeros_like(x)

        def step(objective, x, m):
            f, g = objective.value_and_grad(x)
            m = 0.9 * m + g
            return x - lr * m, m, f, g

        return Method(init, step)


class RaisesOnNaN(_Simple):
    name = "raisesonnan"

    def update(self, objective, x, state, lr):
        f, g = objective.value_and_grad(x)
        if not float(f) == float(f):
            raise ValueError("NaN")
        return x - lr * g, state, f, g


def test_an_optimizer_that_mutates_its_input_fails():
    message = failed(check_optimizer(InPlace(), checks=["pure"]), "pure")
    assert "on numpy, step 1 mutated its input x in place" in message
    assert "build new arrays instead" in message


def test_an_optimizer_with_hidden_state_fails():
    message = failed(check_optimizer(HiddenState(), checks=["pure"]), "pure")
    assert "called twice with the same x and state returned different x" in message


def test_an_optimizer_that_ascends_fails():
    message = failed(check_optimizer(Ascent(), checks=["decreases"]), "decreases")
    assert message.startswith("f did not decrease on a convex quadratic: f from ")


def test_an_optimizer_that_promotes_float32_fails():
    message = failed(check_optimizer(Promotes(), checks=["runs"]), "runs")
    assert "regression (float32) on fd: the optimizer handed the objective x in float32, " \
           "float64" in message


def test_an_optimizer_raising_on_nan_fails():
    message = failed(check_optimizer(RaisesOnNaN(), checks=["diverged"]), "diverged")
    assert "probe-nan-start on fd: the run raised instead of ending as 'diverged': " \
           "ValueError: NaN" in message


def test_an_optimizer_that_differs_between_backends_fails():
    class BackendDependent(_Simple):
        name = "backenddependent"

        def update(self, objective, x, state, lr):
            f, g = objective.value_and_grad(x)
            # a constant that depends on the library
            scale = 1.0 + 1e-6 if objective.xp.__name__ == "torch" else 1.0
            return x - lr * scale * g, state, f, g

    if {"torch", "autograd"} - set(get_registry().names("backend")):
        pytest.skip("needs torch and autograd")
    message = failed(check_optimizer(BackendDependent(), checks=["agreement"]), "agreement")
    assert re.search(r"regression: x after step \d+ differs between autograd and torch", message)
    report = check_optimizer(BackendDependent(), checks=["agreement"], agreement_tol=1e-3)
    assert report.ok, str(report)


# ---------------------------------------------------------------------------------------
# 3. The pytest classes, the command line, the reference
# ---------------------------------------------------------------------------------------


class TestTorchConforms(BackendConformance):
    backend = "torch"


class TestNAdamConforms(OptimizerConformance):
    optimizer = "nadam"


class WrongSignSuite(BackendConformance):
    backend = WrongSignBackend()


def test_the_class_fails_per_check_with_the_message():
    suite = WrongSignSuite()
    with pytest.raises(pytest.fail.Exception, match=r"(?s)gradient\[float64\]: .*sign flipped"):
        suite.test_gradient_float64()
    suite.test_available()  # the checks that do not look at its gradient pass
    suite.test_device_kept()
    suite.test_deterministic()
    with pytest.raises(pytest.skip.Exception, match="no compiled loop"):
        suite.test_compiled_loop()
    with pytest.raises(pytest.fail.Exception, match="set `backend"):
        BackendConformance().test_declared()
    # The base classes are not collected: their names do not start with "Test".
    assert not BackendConformance.__name__.startswith("Test")


def test_cli_exit_0_when_every_check_passes(capsys):
    code, out, err = run_main(capsys, "check", "--backend", "fd", "--optimizer", "sgd")
    assert code == 0, out + err
    assert "backend fd (plugin optbench.backends.finite_diff) conforms: 15 checks, 1 skipped" in out
    assert "optimizer sgd (plugin optbench.optimizers.sgd) conforms: 6 checks" in out
    assert re.search(r"gradient\[float64\] +pass", out)
    assert "checking backend fd" in err


def test_cli_exit_1_when_a_check_fails_with_json(capsys, use_registry, wrong_registry):
    use_registry(wrong_registry)
    code, out, err = run_main(capsys, "check", "--backend", "wrongsign", "--format", "json",
                              "--only", "gradient[float64]", "--only", "declared")
    assert code == 1
    (report,) = json.loads(out)  # only JSON on stdout
    assert report["kind"] == "backend" and report["name"] == "wrongsign"
    assert report["plugin"] == "wrong-plugin" and report["ok"] is False
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {"declared", "gradient[float64]"}
    assert set(checks["declared"]) == {"name", "passed", "skipped", "message", "time_s"}
    assert checks["declared"]["passed"] and not checks["gradient[float64]"]["passed"]
    assert "sign flipped?" in checks["gradient[float64]"]["message"]
    assert err.strip() == "optbench: check failed: backend wrongsign"


def test_cli_table_shows_the_failure(capsys, use_registry, wrong_registry):
    use_registry(wrong_registry)
    code, out, _ = run_main(capsys, "check", "--backend", "secret64", "--only", "dtype")
    assert code == 1
    assert "backend secret64 (plugin wrong-plugin) does NOT conform: 1 check, 1 failed" in out
    assert re.search(r"dtype +FAIL .*float32 requested, but computed in float64", out), out


@pytest.mark.parametrize(("argv", "fragments"), [
    (["--backend", "nope"], ["unknown backend 'nope'; available: ", "autograd", "fd",
                             "torch"]),
    (["--optimizer", "nope"], ["unknown optimizer 'nope'; available: ", "adam", "sgd"]),
    ([], ["give --backend NAME, --optimizer NAME and/or --problem NAME"]),
    (["--backend", "fd", "--only", "nope"], ["--only 'nope' is not a check; the checks: ",
                                             "gradient[float64]"]),
    (["--backend", "fd", "--device", "cuda"], ["--device cuda is not accepted: backend fd "
                                               "declares cpu"]),
])
def test_cli_exit_2_for_bad_input_in_one_line(capsys, argv, fragments):
    code, out, err = run_main(capsys, "check", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("optbench: error: ")
    for fragment in fragments:
        assert fragment in err


def test_central_gradient_is_accurate_to_far_below_the_tolerance():
    def f(x):
        return np.sum(np.exp(x) * np.sin(x)) / (1 + x[0] ** 2) + x[1] ** 4

    x = np.array([0.3, -1.7, 2.5])
    s, d = np.sum(np.exp(x) * np.sin(x)), 1 + x[0] ** 2
    ds = np.exp(x) * (np.sin(x) + np.cos(x))
    exact = ds / d
    exact[0] -= s * 2 * x[0] / d**2
    exact[1] += 4 * x[1] ** 3
    assert np.max(np.abs(central_gradient(f, x) - exact)) <= 1e-11 * np.max(np.abs(exact))


def test_compare_gradient_diagnoses():
    ref = np.array([3.0, -1.0, 0.5])
    assert compare_gradient(ref * (1 + 1e-9), ref, 1e-6, "abc")[1] is None
    assert "(sign flipped?)" in compare_gradient(-ref, ref, 1e-6, "abc")[1]
    assert "(it is 2 times" in compare_gradient(2 * ref, ref, 1e-6, "abc")[1]
    message = compare_gradient(ref + np.array([0, 0, 1]), ref, 1e-6, "abc")[1]
    assert "largest at c: got 1.5, expected 0.5" in message
    assert "has shape (2,)" in compare_gradient(ref[:2], ref, 1e-6, "abc")[1]
    assert "non-finite entries" in compare_gradient(ref * np.nan, ref, 1e-6, "abc")[1]


def test_the_precision_probe_tells_float32_from_float64_in_any_library():
    probe = PrecisionProbe()
    instance = probe.make({}, 0)
    for dtype, (f, _) in PrecisionProbe.EXPECTED.items():
        data = {k: v.astype(dtype) for k, v in instance.data.items()}
        assert probe.objective(instance.x0.astype(dtype), data, np) == f
    torch = pytest.importorskip("torch")
    data = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in instance.data.items()}
    assert float(probe.objective(torch.ones(3), data, torch)) == 0.0


def test_array_device_reads_every_library():
    assert array_device(np.zeros(2)) == "cpu"
    assert array_device(SimpleNamespace(device=FakeDevice("cuda"))) == "cuda"
    assert array_device(SimpleNamespace(device=SimpleNamespace(platform="gpu"))) == "cuda"
    assert array_device(SimpleNamespace(device=lambda: "cpu:0")) == "cpu"  # older jax
    assert array_device(object()) is None
    torch = pytest.importorskip("torch")
    assert array_device(torch.zeros(2)) == "cpu"


def test_report_table_and_json():
    report = Report("backend", "toy", [
        CheckResult("a", True, "fine", time_s=0.5),
        CheckResult("b", False, "first line\nsecond line"),
        CheckResult("c", True, "not here", skipped=True)])
    assert not report.ok and [r.name for r in report.failures] == ["b"]
    text = str(report)
    assert text.splitlines()[0] == "backend toy does NOT conform: 3 checks, 1 failed, 1 skipped"
    assert re.search(r"^b +FAIL +0\.00 s  first line$", text, re.M)
    assert re.search(r"^ {20,}second line$", text, re.M)  # under the details column
    assert re.search(r"^c +skip ", text, re.M)
    assert json.loads(json.dumps(report.to_json()))["checks"][1]["passed"] is False


def test_importing_the_kit_imports_no_array_library():
    import subprocess

    code = ("import sys, optbench.testing, optbench.cli.check; "
            "print(sorted(m for m in ('torch', 'autograd', 'jax', 'pytest') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------
# 4. docs/template, imported by path, and the guide that shows it
# ---------------------------------------------------------------------------------------


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the template's own tests import it by this name
    spec.loader.exec_module(module)
    return module


template = _load("optbench_torchfunc", TEMPLATE / "src" / "optbench_torchfunc" / "__init__.py")
template_tests = _load("optbench_torchfunc_tests", TEMPLATE / "tests" / "test_conformance.py")

# The template's own suite, collected here: its conformance class and its hook test.
TestTemplateSuite = template_tests.TestTorchFunc
test_template_hook_registers_the_backend = template_tests.test_the_hook_registers_the_backend


def test_the_template_backend_passes_the_kit():
    pytest.importorskip("torch")
    report = check_backend(template.TorchFuncBackend())
    ran(report, "compiled", "jacobian")  # least squares is optional for a backend
    assert report.name == "torchfunc" and report.plugin is None  # not installed


def test_the_template_declares_its_entry_point():
    project = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["optbench"] == {
        "torchfunc": "optbench_torchfunc"}
    assert "optbench" in project["project"]["dependencies"]


def guide_blocks() -> dict[str, str]:
    """The guide's code blocks that show template files: a marker line
    `<!-- template: PATH -->` right before the fence."""
    text = GUIDE.read_text()
    pattern = re.compile(r"<!-- template: (\S+) -->\n```[a-z]*\n(.*?)```\n", re.S)
    return {path: body for path, body in pattern.findall(text)}


def test_the_guide_shows_every_template_file_verbatim():
    blocks = guide_blocks()
    files = sorted(str(p.relative_to(TEMPLATE)) for p in TEMPLATE.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts
                   and not any(part.endswith(".egg-info") for part in p.parts))
    assert sorted(blocks) == files
    for path, body in blocks.items():
        assert body == (TEMPLATE / path).read_text(), f"docs/plugins.md shows an old {path}"


def test_the_guide_names_every_check():
    text = GUIDE.read_text()
    for name in (*BACKEND_CHECKS, *OPTIMIZER_CHECKS, *PROBLEM_CHECKS):
        assert f"`{name}`" in text, name
