"""What the backend and optimizer checks share: running a check, the cases, the registry."""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench import hookimpl
from optbench.core import Backend, Instance, Optimizer, Problem
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.plugins import Registry, get_registry
from optbench.testing.report import CheckResult

BUILTIN_PREFIX = "optbench."
"""Plugins whose name starts with this are optbench's own (the built-in modules)."""

# The built-in problems' parameters for the checks; a built-in problem not named here is
# checked with its defaults. `expr` needs an objective: this one calls most functions of the
# expression language (all of them analytic, so complex-step backends may pass it too).
EXPR_OBJECTIVE = ("(1 - x)^2 + 100*(y - x^2)^2 + exp(z/4)*sin(x*z) + log(1 + y^2)*cos(z)"
                  " + tanh(x - y)/2 + sqrt(1 + z^2) + sinh(z/3)*cosh(y/5)")


class _ModelData(Mapping[str, Any]):
    """`model` reads its data from a file: NIST's Misra1a (public domain, 14 points), written
    to a temporary CSV when the parameters are first read (removed when the process ends),
    so that importing the kit writes nothing."""

    X = (77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8, 593.1,
         689.1, 760.0)
    Y = (10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01, 66.40,
         75.47, 81.78)

    def __init__(self) -> None:
        self._params: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._params is None:
            import atexit
            import shutil
            import tempfile
            from pathlib import Path

            folder = Path(tempfile.mkdtemp(prefix="optbench-kit-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            path = folder / "misra1a.csv"
            path.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(
                self.X, self.Y, strict=True)))
            self._params = {"equation": "y = b1*(1-exp(-b2*x))", "data": str(path)}
        return self._params

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


MODEL_PARAMS: Mapping[str, Any] = _ModelData()
"""Parameters of `model` for the checks (and for tests that run every built-in problem)."""

CASE_PARAMS: dict[str, list[tuple[str, Mapping[str, Any]]]] = {
    "expr": [("expr", {"objective": EXPR_OBJECTIVE})],
    "model": [("model(Misra1a)", MODEL_PARAMS)],
    # NIST's starts put Misra1a's b2 at 1e-4, below the checks' absolute difference steps
    # (tests/test_nist_suite.py checks every entry with relative steps): well-scaled ones.
    "nist": [("nist(DanWood)", {"dataset": "DanWood", "start": 1}),
             ("nist(Norris)", {"dataset": "Norris"})],
    "rosenbrock": [("rosenbrock(n=4)", {"n": 4})],
    "quadratic": [("quadratic(n=6)", {"n": 6, "kappa": 100.0})],
    # The tutorial's linear system (matrix form) and a nonlinear one (the expression path).
    "puzzle": [("puzzle", {}),
               ("puzzle(nonlinear)", {"equations": "A*B = 6; A + B^2 = 11; A*C - B = 1"})],
    "regression": [("regression", {}),
                   ("regression(degree=4, noisy)", {"degree": 4, "noise": 0.5,
                                                    "x_scale": 2.0}),
                   ("regression(orthogonal basis)", {"basis": "orthogonal"})],
}


CASE_MAX_UNKNOWNS = 64
"""Built-in problems with more unknowns are left out of the cases: the checks' reference
gradient takes 2n + 1 numpy evaluations per point (ml-tanh-net's 2410 unknowns over the
digits data cost minutes per backend). tests/test_ml.py checks those problems' gradients."""


class Skip(Exception):
    """Raised by a check that cannot run here; its message says why."""


class Failure(Exception):
    """Raised by a check (or what it relies on) that found something wrong, with the whole
    message: the check fails with it as it is."""


@dataclass(frozen=True)
class Case:
    """A built-in problem with fixed parameters, made with seed 0."""

    label: str
    problem: Problem
    params: Mapping[str, Any]
    instance: Instance


def builtin_names(registry: Registry, kind: str) -> list[str]:
    return [n for n in registry.names(kind)
            if registry.owner.get((kind, n), "").startswith(BUILTIN_PREFIX)]


def builtin_cases(registry: Registry, seed: int = 0) -> list[Case]:
    """Every problem optbench's own plugins registered, each with its parameter sets, but
    those with more than CASE_MAX_UNKNOWNS unknowns and those unavailable here: a problem
    whose data is not on this machine (nist without ../shared/data, the ml problems without
    scikit-learn) says so with a UsageError from make, and a plugin author's check of a
    backend must not fail on that."""
    cases = []
    for name in builtin_names(registry, "problem"):
        problem = registry.get("problem", name)
        for i, (label, given) in enumerate(CASE_PARAMS.get(name, [(name, {})])):
            try:
                params = resolve(problem.params, given, name)
            except UsageError:
                if i == 0:
                    raise
                continue  # a variant this version of the problem does not have
            try:
                if len(problem.variables(params)) > CASE_MAX_UNKNOWNS:
                    continue
                instance = problem.make(params, seed)
            except UsageError:
                break  # unavailable here: its other variants are too
            cases.append(Case(label, problem, params, instance))
    return cases


def builtin_problem(registry: Registry, name: str) -> Problem | None:
    """A problem by name, or None where this registry has none of that name."""
    try:
        return registry.get("problem", name)
    except UsageError:
        return None


def resolve_object(kind: str, value: Any, registry: Registry) -> Any:
    """A registered name, an instance, or a class (instantiated) -> the plugin object."""
    expected = {"backend": Backend, "optimizer": Optimizer, "problem": Problem}[kind]
    if isinstance(value, str):
        return registry.get(kind, value)  # UsageError naming the valid ones
    if isinstance(value, type):
        value = value()
    if not isinstance(value, expected):
        raise UsageError(f"expected a {kind} name, or an instance or subclass of "
                         f"optbench.core.{expected.__name__}; got {value!r}")
    return value


def owner_of(kind: str, obj: Any, registry: Registry) -> str | None:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and registry.items[kind].get(name) is obj:
        return registry.owner.get((kind, name))
    return None


class _Objects:
    """A plugin registering given objects: for a registry of exactly what a check runs."""

    def __init__(self, backends=(), problems=(), optimizers=()) -> None:
        self.backends, self.problems, self.optimizers = backends, problems, optimizers

    @hookimpl
    def register_backends(self, register):
        for obj in self.backends:
            register(obj)

    @hookimpl
    def register_problems(self, register):
        for obj in self.problems:
            register(obj)

    @hookimpl
    def register_optimizers(self, register):
        for obj in self.optimizers:
            register(obj)


def run_registry(backends: Iterable[Backend] = (), problems: Iterable[Problem] = (),
                 optimizers: Iterable[Optimizer] = ()) -> Registry:
    """A registry holding only these objects, so that `optbench.api` runs them by name.

    The object under test need not be registered anywhere else (a test passes it in), and no
    name can clash with an installed plugin.
    """
    registry = Registry()
    info = registry.add("optbench.testing",
                        lambda: _Objects(list(backends), list(problems), list(optimizers)))
    if info.error:
        raise UsageError(f"cannot register the objects under test: {info.error}")
    return registry


def select(checks: Iterable[str] | None, known: Mapping[str, Any], kind: str) -> list[str]:
    """The checks to run: all of `known`, or those named (a UsageError for an unknown one)."""
    if checks is None:
        return list(known)
    chosen = [checks] if isinstance(checks, str) else list(checks)
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise UsageError(f"unknown {kind} check {unknown[0]!r}; the checks: "
                         f"{', '.join(known)}")
    return chosen


def default_registry(registry: Registry | None) -> Registry:
    return registry if registry is not None else get_registry()


@contextmanager
def quiet() -> Iterator[None]:
    """Overflow, NaN and degenerate derivatives are what some checks provoke: no warnings
    about them (numpy's, or autograd's "Output seems independent of input")."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run_check(name: str, check: Callable[[Any], CheckResult], subject: Any) -> CheckResult:
    """Run one check; a Skip becomes a skipped result, any other exception a failure."""
    started = time.perf_counter()
    try:
        result = check(subject)
    except Skip as skip:
        result = CheckResult(name, True, str(skip), skipped=True)
    except Failure as failure:
        result = CheckResult(name, False, str(failure))
    except Exception as exc:
        result = CheckResult(name, False, f"the check raised {describe(exc)}")
    result.name = name
    result.time_s = time.perf_counter() - started
    return result


def describe(exc: BaseException) -> str:
    """`Type: message (at file:line)`: the innermost frame, where it went wrong."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        frame = frames[-1]
        text += f" (at {frame.filename}:{frame.lineno})"
    return text


def verdict(name: str, failures: list[str], ok: str, heading: str = "") -> CheckResult:
    """A result from the list of what is wrong (empty: passed, with the `ok` message)."""
    if not failures:
        return CheckResult(name, True, ok)
    lines = ([heading] if heading else []) + failures
    return CheckResult(name, False, "\n".join(lines))


def host(objective: Any, array: Any) -> np.ndarray:
    """A backend array as a float64 numpy copy (a value already on the host, as lm's and
    gn's f and g are, as it is)."""
    if isinstance(array, (float, int, np.ndarray, np.generic)):
        return np.array(array, dtype=np.float64)
    return np.array(objective.to_numpy(array), dtype=np.float64)


def hints_problem(hints: Any, allowed: Iterable[str]) -> str | None:
    """What is wrong with a declared `conformance` (None: nothing): it must be a mapping
    whose keys are among `allowed` — the same rule for backends, optimizers and problems."""
    allowed = tuple(allowed)
    if hints is None or (isinstance(hints, Mapping) and set(hints) <= set(allowed)):
        return None
    return f"conformance is {hints!r}: expected a mapping with keys among {', '.join(allowed)}"
