"""The Python API on callables: `optbench.minimize(fun, x0)` and `optbench.grad(fun, at)`.

Both wrap `fun(x, xp)` in a `FunctionProblem` and go the way every run goes (api.plan,
then api.execute, or the backend's prepared objective), so a function is validated, run,
timed and recorded exactly as a registered problem is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from optbench import api
from optbench.core import Backend, Optimizer, RunRecord
from optbench.errors import UsageError
from optbench.problems.function import FunctionProblem, check_value

LBFGS_STEPS = 15000
"""minimize's default steps with lbfgs: scipy's L-BFGS-B default maxiter. A step of lbfgs
is one iteration (one direction, one line search), and lbfgs ends the run itself at its
gradient test, so the bound only matters where that never holds. Other optimizers take
solve's default (1000 steps)."""

LBFGS_DEFAULTS = {"tolerance_change": 0.0}
"""minimize's lbfgs hyperparameters where the user gives none: no stop on a tiny change
(tolerance_change; optbench's run default is 1e-15). The gradient test decides, as gtol does
in scipy. With 1e-15, Rosenbrock from (-1.2, 1) stopped "stalled" after 37 steps on "no
descent direction (g·d > -tolerance_change)" with max|g| 3.3e-7 and x 5.8e-9 from the
minimum, on torch, autograd, jax and complexstep alike; with 0 the same 37 steps end
"converged", max|g| 1.0e-8, x 1.8e-10 from it. A line search that finds no decrease still
ends a run that can go no further ("stalled")."""


def minimize(fun: Callable[[Any, Any], Any], x0: Sequence[float], *,
             backend: str | Backend = "torch", optimizer: str | Optimizer = "lbfgs",
             steps: int | None = None, **options: Any) -> RunRecord:
    """Minimize `fun(x, xp)` from `x0` on one backend; see `optbench.minimize`."""
    problem = FunctionProblem(fun, x0)
    _refuse(options, "problem_params", "fun takes no problem parameters")
    _refuse(options, "x0", "x0 is the second argument")
    _refuse(options, "compile", "minimize runs step by step; use optbench.solve for compile")
    given = options.get("optimizer_params") or {}
    if not isinstance(given, Mapping):
        raise UsageError(f"optimizer_params={given!r:.80} is not accepted: expected a dict "
                         "of hyperparameters, e.g. {'history_size': 10}")
    if optimizer == "lbfgs":  # the built-in one (an instance keeps its own defaults)
        options["optimizer_params"] = {**LBFGS_DEFAULTS, **given}
    if steps is None:
        steps = LBFGS_STEPS if optimizer == "lbfgs" else 1000
    if not (isinstance(backend, Backend) or (isinstance(backend, str) and backend != "all")):
        raise UsageError(f"backend={backend!r} is not accepted by minimize(): expected one "
                         "backend name or a Backend instance")
    plan = api.plan(problem, backend, optimizer, steps=steps, **options)
    chosen = plan.backends[0]
    objective = chosen.prepare(problem, plan.instance.data, dtype=plan.dtype,
                               device=plan.device)
    check_value(problem, objective, plan.instance.x0)
    return api.execute(plan, chosen)


def grad(fun: Callable[[Any, Any], Any] | str, at: Any, *,
         backend: str | Backend | None = None, dtype: str = "float64",
         device: str = "cpu") -> Any:
    """The gradient of `fun` at a point; see `optbench.grad`."""
    if isinstance(fun, str):  # an expression of the language, as `optbench grad` takes
        from optbench.gradient import gradient

        if not isinstance(at, Mapping):
            raise UsageError(f"at={at!r:.80} is not accepted with an expression: expected a "
                             "mapping of its variables to numbers, e.g. {'x': 1.0}")
        if isinstance(backend, Backend):
            raise UsageError("grad of an expression takes backend names (or None, or "
                             "'all'), not instances")
        return gradient(fun, dict(at), backend=backend, dtype=dtype, device=device)
    problem = FunctionProblem(fun, at)
    if backend is None:
        from optbench.gradient import quick_backends
        from optbench.plugins import get_registry

        backend = quick_backends(get_registry(), device)[0]
    if not (isinstance(backend, Backend) or (isinstance(backend, str) and backend != "all")):
        raise UsageError(f"backend={backend!r} is not accepted by grad() of a function: "
                         "expected one backend name or a Backend instance")
    plan = api.plan(problem, backend, "lbfgs", steps=0, dtype=dtype, device=device)
    chosen = plan.backends[0]
    objective = chosen.prepare(problem, plan.instance.data, dtype=dtype, device=device)
    check_value(problem, objective, plan.instance.x0)
    _, g = objective.value_and_grad(objective.from_numpy(plan.instance.x0))
    return np.asarray(objective.to_numpy(g), dtype=np.float64).reshape(-1)


def _refuse(options: Mapping[str, Any], key: str, why: str) -> None:
    if key in options:
        raise UsageError(f"{key} is not accepted here: {why}")
