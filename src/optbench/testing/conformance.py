"""The checks as pytest test classes, for a plugin's own test suite.

    from optbench.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = "mybackend"          # a registered name, a Backend instance or class

Every check is its own test method, so a failure names the check and says what is wrong;
a check that cannot run here (backend unavailable, no float32 declared) is skipped. pytest
is imported only when a test runs: importing optbench.testing does not need it. The class
names do not start with "Test", so importing them collects nothing by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from optbench.testing.backend import run_backend_check
from optbench.testing.optimizer import run_optimizer_check
from optbench.testing.problem import run_problem_check
from optbench.testing.report import CheckResult


def _outcome(result: CheckResult) -> None:
    __tracebackhide__ = True
    import pytest

    if result.skipped:
        pytest.skip(result.message)
    if not result.passed:
        pytest.fail(f"{result.name}: {result.message}", pytrace=False)


class BackendConformance:
    """Subclass it and set `backend`; optionally `device` and `registry`."""

    backend: ClassVar[Any] = None
    device: ClassVar[str | None] = None  # default: cpu when usable, else the first usable
    registry: ClassVar[Any] = None  # default: the process-wide registry

    def _check(self, name: str) -> None:
        __tracebackhide__ = True
        if self.backend is None:
            import pytest

            pytest.fail(f"{type(self).__name__}: set `backend = \"name\"` (or a Backend "
                        f"instance) in the class", pytrace=False)
        _outcome(run_backend_check(self.backend, name, registry=self.registry,
                                   device=self.device))

    def test_declared(self) -> None:
        self._check("declared")

    def test_available(self) -> None:
        self._check("available")

    def test_available_imports_nothing_heavy(self) -> None:
        self._check("lazy")

    def test_gradient_float64(self) -> None:
        self._check("gradient[float64]")

    def test_gradient_float32(self) -> None:
        self._check("gradient[float32]")

    def test_derivative_of_every_function_of_the_language(self) -> None:
        self._check("derivatives")

    def test_constant_gradient(self) -> None:
        self._check("linear")

    def test_results_are_fresh_arrays(self) -> None:
        self._check("fresh")

    def test_evaluations_are_counted(self) -> None:
        self._check("counters")

    def test_dtype_kept(self) -> None:
        self._check("dtype")

    def test_device_kept(self) -> None:
        self._check("device")

    def test_deterministic(self) -> None:
        self._check("deterministic")

    def test_non_finite_ends_as_diverged(self) -> None:
        self._check("diverged")

    def test_compiled_loop(self) -> None:
        self._check("compiled")


class OptimizerConformance:
    """Subclass it and set `optimizer`; optionally `hyperparams`, `agreement_tol` and
    `registry`."""

    optimizer: ClassVar[Any] = None
    hyperparams: ClassVar[Mapping[str, Any] | None] = None
    agreement_tol: ClassVar[float | None] = None  # default 1e-10
    registry: ClassVar[Any] = None

    def _check(self, name: str) -> None:
        __tracebackhide__ = True
        if self.optimizer is None:
            import pytest

            pytest.fail(f"{type(self).__name__}: set `optimizer = \"name\"` (or an "
                        f"Optimizer instance) in the class", pytrace=False)
        _outcome(run_optimizer_check(self.optimizer, name, registry=self.registry,
                                     hyperparams=self.hyperparams,
                                     agreement_tol=self.agreement_tol))

    def test_declared(self) -> None:
        self._check("declared")

    def test_runs_on_every_backend(self) -> None:
        self._check("runs")

    def test_step_is_pure(self) -> None:
        self._check("pure")

    def test_decreases_a_convex_quadratic(self) -> None:
        self._check("decreases")

    def test_same_trajectory_on_two_backends(self) -> None:
        self._check("agreement")

    def test_non_finite_ends_as_diverged(self) -> None:
        self._check("diverged")


class ProblemConformance:
    """Subclass it and set `problem`; optionally `params` (a parameter set, or a list of
    them, to check it with) and `registry`."""

    problem: ClassVar[Any] = None
    params: ClassVar[Any] = None  # default: the problem's conformance["params"], else defaults
    registry: ClassVar[Any] = None

    def _check(self, name: str) -> None:
        __tracebackhide__ = True
        if self.problem is None:
            import pytest

            pytest.fail(f"{type(self).__name__}: set `problem = \"name\"` (or a Problem "
                        f"instance) in the class", pytrace=False)
        _outcome(run_problem_check(self.problem, name, registry=self.registry,
                                   params=self.params))

    def test_declared(self) -> None:
        self._check("declared")

    def test_same_task_for_a_seed_on_every_backend(self) -> None:
        self._check("seeded")

    def test_finite_at_the_start(self) -> None:
        self._check("finite")

    def test_gradients_agree_across_backends(self) -> None:
        self._check("gradients")

    def test_reference_is_a_minimum(self) -> None:
        self._check("reference")

    def test_declared_parameters_are_validated(self) -> None:
        self._check("params")
