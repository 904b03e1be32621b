"""The Optimizer contract, in the manner of optax: a pair of pure functions.

    method = optimizer.method(lr=0.01)            # hyperparameters bound once
    state = method.init(x, xp)
    x, state, f, g = method.step(objective, x, state)

`step` evaluates the objective at the x it is given (f and g are the values *there*) and
returns the next point. f and g are the backend's arrays, or, for a method that computes
them on the host (lm, gn: their linear algebra is numpy), a float and a numpy array. It
never mutates x or the state it received; it builds new ones. Written against the
namespace `xp`, one optimizer runs on every backend.

`done(state)` is optional: an optimizer with its own stopping tests (L-BFGS's
tolerance_grad, tolerance_change) says there that the point it just returned is final, and
whether that is convergence or a stall.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

from optbench.core.params import Param


class Method(NamedTuple):
    """An optimizer with its hyperparameters bound."""

    init: Callable[[Any, Any], Any]
    step: Callable[[Any, Any, Any], tuple[Any, Any, Any, Any]]
    done: Callable[[Any], str | tuple[str, str] | None] | None = None
    """Returns None while running, else why the returned point is final: a message (the
    run is "converged"), or a pair ("converged" | "stalled", message) — stalled where the
    optimizer stopped itself short of its stationarity test (a line search that finds no
    decrease). The runner then holds either to --tol (optbench.runner.stopping.settle)."""
    run: Callable[..., tuple[Any, str, str]] | None = None
    """A whole-run driver, for methods that cannot pause between steps (scipy.optimize):
    run(objective, x0, steps, on_iteration) -> (x, status, message). It calls
    on_iteration(k, x, f, g) after each iteration (g may be None); a non-None return is the
    (status, message) that ends the run, and the driver must stop there."""


class Optimizer(ABC):
    """A named, declared optimizer.

    hyperparams: declared with torch.optim's defaults where torch has the algorithm.
    run_defaults: values the runner uses where the user gave none and that differ from the
        declared defaults (the first-order methods take the tutorial's lr 0.01).
    needs_residuals: the optimizer works on the residuals of a sum of squares (below).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    hyperparams: ClassVar[tuple[Param, ...]] = ()
    run_defaults: ClassVar[Mapping[str, Any]] = {}
    needs_residuals: ClassVar[bool] = False
    """True for least-squares methods (lm, gn): they use Objective.residuals_and_jacobian,
    and a problem without residuals (Problem.has_residuals) is refused when planning."""

    @abstractmethod
    def method(self, **hyperparams: Any) -> Method:
        """Bind validated hyperparameters (all of them, defaults filled in)."""
