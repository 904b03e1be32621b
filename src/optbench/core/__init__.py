"""The contracts every plugin implements: Problem, Backend, Optimizer, and the run record."""

from optbench.core.backend import Backend, Objective
from optbench.core.optimizer import Method, Optimizer
from optbench.core.params import Param
from optbench.core.problem import Instance, LeastSquares, Problem, Reference
from optbench.core.record import RunRecord

__all__ = [
    "Backend",
    "Instance",
    "LeastSquares",
    "Method",
    "Objective",
    "Optimizer",
    "Param",
    "Problem",
    "Reference",
    "RunRecord",
]
