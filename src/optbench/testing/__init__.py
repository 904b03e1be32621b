"""optbench.testing: the conformance kit for plugin authors.

    from optbench.testing import check_backend, check_optimizer, check_problem

    report = check_backend("mybackend")        # or a Backend instance / subclass
    print(report)                              # a table: check, pass/FAIL/skip, details
    assert report.ok, report

The same checks run from the command line (`optbench check --backend NAME`, `--optimizer`,
`--problem`) and as pytest test classes (`BackendConformance`, `OptimizerConformance`,
`ProblemConformance`) that a plugin subclasses in its own suite. docs/plugins.md is the guide.

The checks are named in BACKEND_CHECKS, OPTIMIZER_CHECKS and PROBLEM_CHECKS. Each returns a
`CheckResult` (name, passed, message); a `Report` gathers them.
"""

from optbench.testing.backend import BACKEND_CHECKS, TOLERANCE, TOLERANCES, check_backend
from optbench.testing.conformance import (
    BackendConformance,
    OptimizerConformance,
    ProblemConformance,
)
from optbench.testing.optimizer import OPTIMIZER_CHECKS, check_optimizer
from optbench.testing.problem import PROBLEM_CHECKS, check_problem
from optbench.testing.reference import (
    array_device,
    central_gradient,
    compare_gradient,
    reference_gradient,
)
from optbench.testing.report import CheckResult, Report

__all__ = [
    "BACKEND_CHECKS",
    "OPTIMIZER_CHECKS",
    "PROBLEM_CHECKS",
    "TOLERANCE",
    "TOLERANCES",
    "BackendConformance",
    "CheckResult",
    "OptimizerConformance",
    "ProblemConformance",
    "Report",
    "array_device",
    "central_gradient",
    "check_backend",
    "check_optimizer",
    "check_problem",
    "compare_gradient",
    "reference_gradient",
]
