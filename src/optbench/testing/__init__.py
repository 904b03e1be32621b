"""optbench.testing: the conformance kit for plugin authors.

    from optbench.testing import check_backend, check_optimizer

    report = check_backend("mybackend")        # or a Backend instance / subclass
    print(report)                              # a table: check, pass/FAIL/skip, details
    assert report.ok, report

The same checks run from the command line (`optbench check --backend NAME`) and as pytest
test classes (`BackendConformance`, `OptimizerConformance`) that a plugin subclasses in its own
suite. docs/plugins.md is the guide.

Backend checks: declared, available, gradient[float64], gradient[float32], dtype, device,
deterministic, diverged. Optimizer checks: declared, runs, pure, decreases, agreement,
diverged. Each returns a `CheckResult` (name, passed, message); a `Report` gathers them.
"""

from optbench.testing.backend import BACKEND_CHECKS, TOLERANCE, check_backend
from optbench.testing.conformance import BackendConformance, OptimizerConformance
from optbench.testing.optimizer import OPTIMIZER_CHECKS, check_optimizer
from optbench.testing.reference import array_device, central_gradient, compare_gradient
from optbench.testing.report import CheckResult, Report

__all__ = [
    "BACKEND_CHECKS",
    "OPTIMIZER_CHECKS",
    "TOLERANCE",
    "BackendConformance",
    "CheckResult",
    "OptimizerConformance",
    "Report",
    "array_device",
    "central_gradient",
    "check_backend",
    "check_optimizer",
    "compare_gradient",
]
