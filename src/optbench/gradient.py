"""`optbench grad`: the value and gradient of an expression at a point, on each backend.

At a pole (1/x at x = 0) a backend's value or derivative is not finite. The result stays
plain JSON: such a number is None (null) and the result's `message` says what it was, and
numpy's RuntimeWarnings ("divide by zero encountered") go into that message instead of
onto stderr.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from optbench.core.backend import DTYPES
from optbench.core.params import parse_numbers
from optbench.errors import UsageError
from optbench.expr import compile_expression
from optbench.plugins import Registry, get_registry
from optbench.problems.expression import ExpressionProblem


def parse_point(items: Sequence[str]) -> dict[str, float]:
    """["x=1,y=2", "z=3"] -> {"x": 1.0, "y": 2.0, "z": 3.0}."""
    return parse_numbers(items, "--at", "--at x=3.6 or --at x=1,y=2")


QUICK = (("autograd", "torch"), "fd")
"""The default backends: one automatic differentiation (autograd, whose import takes ~0.4 s;
torch where autograd is missing: ~1.5 s) and the independent finite differences beside it.
A user asked for a derivative: importing and compiling every backend (jax included) took
~10 s. `--backend all` gives the full comparison."""


def quick_backends(registry: Registry, device: str = "cpu") -> list[str]:
    from optbench.plugins import available

    exact, check = QUICK
    names = registry.names("backend")
    first = next((n for n in exact if n in names
                  and available(registry.get("backend", n), device) is None), None)
    return [n for n in (first, check) if n is not None]


def gradient(expression: str, at: Mapping[str, float],
             backend: str | Sequence[str] | None = None, dtype: str = "float64",
             device: str = "cpu", registry: Registry | None = None) -> dict[str, Any]:
    """{"expression", "at", "results": [{"backend", "value", "grad": {name: d}}], "skipped"}.

    `backend`: a name, a list, "all", or None for `quick_backends`."""
    registry = registry or get_registry()
    if backend is None:
        backend = quick_backends(registry, device)
    if dtype not in DTYPES:
        raise UsageError(f"dtype={dtype} is not accepted: expected one of {', '.join(DTYPES)}")
    compiled = compile_expression(expression)
    names = compiled.variables
    if not names:
        raise UsageError(f"{expression!r} has no variable to differentiate with respect to")
    missing = [n for n in names if n not in at]
    if missing:
        raise UsageError(f"no value for {missing[0]}: give --at {missing[0]}=NUMBER "
                         f"(variables: {', '.join(names)})")
    extra = [n for n in at if n not in names]
    if extra:
        raise UsageError(f"--at {extra[0]}: {extra[0]} is not a variable of the expression "
                         f"(variables: {', '.join(names)})")
    from optbench.api import select_backends

    chosen, skipped = select_backends(registry, backend, dtype, device)
    problem = ExpressionProblem()
    point = np.array([at[n] for n in names], dtype=np.float64)
    results = []
    for b in chosen:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            objective = b.prepare(problem, {"_expression": compiled}, dtype=dtype,
                                  device=device)
            f, g = objective.value_and_grad(objective.from_numpy(point))
            g = np.asarray(objective.to_numpy(g), dtype=np.float64).reshape(-1)
        _pass_on([w for w in caught if not issubclass(w.category, RuntimeWarning)])
        numeric = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        results.append(_result(b.name, float(f), dict(zip(names, map(float, g), strict=True)),
                               numeric))
    return {"expression": expression, "at": {n: at[n] for n in names}, "results": results,
            "skipped": [{"backend": n, "reason": r} for n, r in skipped]}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _result(backend: str, value: float, grad: dict[str, float], numeric: list[str]
            ) -> dict[str, Any]:
    """One backend's result: non-finite numbers become None, and the message says what
    they were and which floating-point warnings were raised."""
    problems = [] if math.isfinite(value) else [f"value is not finite ({value})"]
    problems += [f"d/d{n} is not finite ({d})" for n, d in grad.items() if not math.isfinite(d)]
    problems += [f"numpy: {m}" for m in dict.fromkeys(numeric)]
    out: dict[str, Any] = {"backend": backend, "value": _finite(value),
                           "grad": {n: _finite(d) for n, d in grad.items()}}
    if problems:
        out["message"] = "; ".join(problems)
    return out


def _pass_on(caught: list[warnings.WarningMessage]) -> None:
    """Show the warnings that are not about floating point as they would have been."""
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
