"""A Python callable `fun(x, xp)` as a Problem: what `optbench.minimize` and `optbench.grad`
run, through the same plan and backends as every registered problem.

`fun` is written against the array namespace `xp` that the backend hands in (numpy,
torch, autograd.numpy, jax.numpy...), as a problem's `objective` is, so one function runs on
every backend:

    def rosen(x, xp):
        return xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

It is the user's own code, called only because the user handed it in; it is not registered
(the process-wide registry never sees it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from optbench.core import Instance, Problem
from optbench.errors import UsageError


def starting_point(x0: Any) -> np.ndarray:
    """x0 as a float64 vector, or UsageError: a non-empty 1-D sequence of finite numbers
    (a list, a tuple, a numpy array; bools and strings are refused, not converted)."""
    expected = "expected a non-empty 1-D sequence of finite numbers, e.g. [-1.2, 1.0]"
    try:
        raw = np.asarray(x0)
    except Exception:  # a ragged list, an object numpy cannot read
        raise UsageError(f"x0={x0!r:.80} is not accepted: {expected}") from None
    if raw.dtype.kind not in "iuf":  # strings would convert ("1" -> 1.0), bools too
        raise UsageError(f"x0={x0!r:.80} is not accepted: {expected}")
    start = raw.astype(np.float64)
    if start.ndim != 1 or start.size == 0:
        raise UsageError(f"x0 has shape {start.shape}: {expected}")
    bad = np.flatnonzero(~np.isfinite(start))
    if bad.size:
        raise UsageError(f"x0[{bad[0]}] = {start[bad[0]]} is not finite: {expected}")
    return start


def function_name(fun: Callable[..., Any]) -> str:
    """The name records carry: the function's own, or "function" for a lambda."""
    name = getattr(fun, "__name__", None)
    return name if isinstance(name, str) and name.isidentifier() else "function"


class FunctionProblem(Problem):
    """fun(x, xp) from a given start x0. Variables are named x[0]..x[n-1], as `fun` indexes
    them; there is no parameter, no data, and no known reference."""

    description = "a Python function fun(x, xp), from optbench.minimize"

    def __init__(self, fun: Callable[[Any, Any], Any], x0: Sequence[float],
                 name: str | None = None) -> None:
        if not callable(fun):
            raise UsageError(f"fun={fun!r:.80} is not accepted: expected a function "
                             "fun(x, xp) returning a scalar, e.g. lambda x, xp: xp.sum(x**2)")
        self.fun = fun
        self.x0 = starting_point(x0)
        self.x0.setflags(write=False)  # make() hands out copies; nobody changes the start
        self.name = name or function_name(fun)

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f"x[{i}]" for i in range(self.x0.size))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        return Instance(data={}, x0=self.x0.copy(), variables=self.variables(params))

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return self.fun(x, xp)


def check_value(problem: FunctionProblem, objective: Any, x0: Any) -> None:
    """Evaluate fun at x0 on a prepared backend objective: it must return a scalar (a 0-d
    array of the backend) that is finite, and the backend must differentiate it there.
    Anything else is the caller's input, and stops here with one line, before the
    optimizer mistakes it for a value or the run ends in an "error" record."""
    where = "fun(x0, xp)"
    try:
        value = problem.fun(objective.from_numpy(x0), objective.xp)
    except Exception as exc:
        raise UsageError(f"{where} raised {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}; expected fun(x, xp) to "
                         "return a scalar, computed with xp's functions") from None
    shape = getattr(value, "shape", None)
    if shape is None or tuple(shape) != ():
        what = (f"an array of shape {tuple(shape)}" if shape is not None
                else f"a {type(value).__name__}")
        raise UsageError(f"{where} returned {what}: expected a scalar (a 0-d array, e.g. "
                         "xp.sum(...)) that the backend can differentiate")
    number = float(np.asarray(objective.to_numpy(value), dtype=np.float64))
    if not np.isfinite(number):
        raise UsageError(f"{where} returned {number}: expected a finite value at the start")
    try:  # a value is not yet a derivative: torch fails on a numpy constant only here
        objective.value_and_grad(objective.from_numpy(x0))
    except Exception as exc:
        raise UsageError(f"{where} could not be differentiated: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}; compute with xp's functions, "
                         "constants as numbers or xp.asarray(...)") from None
