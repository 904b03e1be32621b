"""Conformance checks of a problem.

A problem is a family of tasks written once for every backend (optbench.core.problem): its
data and start depend only on its parameters and the seed, its objective is written against
the namespace `xp`, and its optional reference is the known optimum. The checks:

- here: declared (parameters and their defaults), seeded (the same task for a seed, on every
  backend), params (every value a declaration accepts is handled: a task, or a UsageError);
- problem_values: finite (f at x0), gradients (torch, autograd and fd agree with numpy),
  reference (a stationary point with f* ≤ f nearby).

A problem may carry hints for the kit: `conformance = {"params": [{...}, ...]}`, the parameter
sets to check it with (a problem whose defaults make no task, as `expr` needs an objective,
must give one). optbench's own problems are checked with the sets in `_common.CASE_PARAMS`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from optbench import api
from optbench.core import Instance, Param, Problem
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.plugins import Registry
from optbench.testing._common import (
    describe,
    hints_problem,
    owner_of,
    quiet,
    run_check,
    run_registry,
    select,
    verdict,
)
from optbench.testing.problem_residuals import check_residuals
from optbench.testing.problem_subject import PROBLEM_HINTS, ProblemSubject, subject_for
from optbench.testing.problem_values import check_finite, check_gradients, check_reference
from optbench.testing.report import CheckResult, Report

# ---------------------------------------------------------------------------------------
# declared
# ---------------------------------------------------------------------------------------


def check_declared(s: ProblemSubject) -> CheckResult:
    """A Problem instance with a name, declared parameters whose defaults are accepted by
    their own declarations, valid hints, and for each parameter set the variables' names."""
    p, wrong = s.problem, []
    if not isinstance(p, Problem):
        wrong.append(f"{p!r} is not an instance of optbench.core.Problem")
    name = getattr(p, "name", None)
    if not isinstance(name, str) or not name or name == "all":
        wrong.append(f"name is {name!r}: expected a non-empty string other than 'all'")
    if not isinstance(getattr(p, "description", ""), str):
        wrong.append("description is not a string")
    declared = getattr(p, "params", ())
    if not isinstance(declared, tuple):
        wrong.append(f"params is {declared!r}: expected a tuple of optbench.core.Param")
        declared = ()
    names = [getattr(q, "name", None) for q in declared]
    for q in declared:
        if not isinstance(q, Param):
            wrong.append(f"params holds {q!r}, not an optbench.core.Param")
            continue
        try:
            q.parse(q.default)
        except Exception as exc:
            wrong.append(f"the default of {q.name} ({q.default!r}) is not accepted by its own "
                         f"declaration: {exc}")
    if len(set(names)) != len(names):
        wrong.append(f"params declares a name twice: {names}")
    problem = hints_problem(getattr(p, "conformance", None), PROBLEM_HINTS)
    if problem:
        wrong.append(problem)
    if wrong:
        return verdict("declared", wrong, "")
    shown = []
    for label, given in s.param_sets:
        try:
            params = resolve(declared, given, name)
            variables = p.variables(params)
        except Exception as exc:
            wrong.append(f"{label}: {describe(exc)}")
            continue
        if not (isinstance(variables, tuple) and variables
                and all(isinstance(v, str) and v for v in variables)
                and len(set(variables)) == len(variables)):
            wrong.append(f"{label}: variables(params) is {variables!r}: expected a tuple of "
                         f"distinct non-empty names")
        shown.append(f"{label}: {len(variables)} variables")
    return verdict("declared", wrong, f"name {name!r}, parameters "
                   f"{', '.join(n for n in names if n) or 'none'}; {'; '.join(shown)}")


# ---------------------------------------------------------------------------------------
# seeded: the same task for a seed, on every backend
# ---------------------------------------------------------------------------------------

SEEDS = (0, 1)


def check_seeded(s: ProblemSubject) -> CheckResult:
    """The same data and x0 for a seed: two makes with the same seed agree bitwise, and so do
    the tasks that optbench.api plans on each built-in backend (a bench grid plans each
    backend on its own); x0 is a finite float64 vector, one value per variable."""
    wrong, notes = [], []
    for label, given in s.param_sets:
        params = s.resolve(label, given)
        for seed in SEEDS:
            first = s.make(params, seed, label)
            problem_x0 = _x0_problems(first, s.problem.variables(params))
            if problem_x0:
                wrong.append(f"{label}, seed {seed}: {problem_x0}")
            again = s.make(params, seed, label)
            diff = _difference(first, again)
            if diff:
                wrong.append(f"{label}: two makes with seed {seed} gave different {diff}; "
                             + _why_different(s, params, seed))
                break
            if seed != SEEDS[0]:
                continue
            for backend in s.backends:
                plan = api.plan(s.problem.name, backend.name, "sgd", problem_params=given,
                                seed=seed, steps=1, registry=run_registry(
                                    [backend], [s.problem], [s.registry.get("optimizer",
                                                                            "sgd")]))
                diff = _difference(first, plan.instance)
                if diff:
                    wrong.append(f"{label}: the task planned on {backend.name} (seed {seed}) "
                                 f"has a different {diff}; " + _why_different(s, params, seed))
                    break
        notes.append(label)
    on = ", ".join(b.name for b in s.backends) or "no backend (none available here)"
    return verdict("seeded", wrong, f"{', '.join(notes)}: the same data and x0 for seeds "
                   f"{', '.join(map(str, SEEDS))}, and the same task planned on {on}")


def _x0_problems(instance: Instance, variables: tuple[str, ...]) -> str | None:
    x0 = instance.x0
    if not isinstance(x0, np.ndarray) or x0.dtype != np.float64:
        return (f"x0 is {type(x0).__name__} of {getattr(x0, 'dtype', '?')}: expected a numpy "
                f"float64 array")
    if x0.shape != (len(variables),):
        return (f"x0 has shape {x0.shape}, expected ({len(variables)},): one value per "
                f"variable ({', '.join(variables)})")
    if not np.all(np.isfinite(x0)):
        return f"x0 = {x0} is not finite"
    if tuple(instance.variables) != tuple(variables):
        return (f"the instance's variables {tuple(instance.variables)} differ from "
                f"variables(params) {tuple(variables)}")
    return None


def _difference(a: Instance, b: Instance) -> str | None:
    """What differs between two tasks ('x0', "data['y'] (max |Δ| = ...)"), else None."""
    if set(a.data) != set(b.data):
        return f"set of data keys ({sorted(a.data)} vs {sorted(b.data)})"
    for key in sorted(a.data):
        u, v = a.data[key], b.data[key]
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
            u, v = np.asarray(u), np.asarray(v)
            if u.shape != v.shape or u.dtype != v.dtype:
                return f"data[{key!r}] (shape {u.shape} {u.dtype} vs {v.shape} {v.dtype})"
            if u.tobytes() != v.tobytes():
                return f"data[{key!r}] ({_delta(u, v)})"
        elif isinstance(u, (int, float, str, bool, tuple)) and u != v:
            return f"data[{key!r}] ({u!r} vs {v!r})"
    for name, u, v in (("x0", a.x0, b.x0), ("basis", a.basis, b.basis)):
        if u is None and v is None:
            continue
        u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
        if u.shape != v.shape or u.tobytes() != v.tobytes():
            return f"{name} ({_delta(u, v)})"
    return None


def _delta(u: np.ndarray, v: np.ndarray) -> str:
    if u.shape != v.shape:
        return f"shape {u.shape} vs {v.shape}"
    try:
        with quiet():
            return f"max |Δ| = {float(np.max(np.abs(u.astype(float) - v.astype(float)))):.3g}"
    except (TypeError, ValueError):
        return "different values"


def _why_different(s: ProblemSubject, params: Mapping[str, Any], seed: int) -> str:
    """Whether numpy's global generator is the cause, found by fixing its state: a verified
    diagnosis, or the rule without one."""
    saved = np.random.get_state()
    try:
        np.random.seed(20240607)
        a = s.problem.make(params, seed)
        np.random.seed(20240607)
        b = s.problem.make(params, seed)
    except Exception:
        a = b = None
    finally:
        np.random.set_state(saved)
    if a is not None and _difference(a, b) is None:
        return ("with numpy's global generator fixed the two agree: make draws from it "
                "(np.random.*); draw from numpy.random.default_rng(seed) alone, so that every "
                "backend gets the same task")
    return ("data and x0 must depend only on the parameters and the seed "
            "(numpy.random.default_rng(seed)), never on state kept between calls")


# ---------------------------------------------------------------------------------------
# params: every value a declaration accepts is handled
# ---------------------------------------------------------------------------------------


def check_params(s: ProblemSubject) -> CheckResult:
    """Each declared parameter, at the values its declaration accepts near its edges (its
    bounds, 0, ±1, each choice, an empty and a garbled file...), over the first parameter
    set: make gives a task with a finite x0, or refuses the value with a UsageError — never
    another exception, which would reach the user as a traceback."""
    label, base = s.param_sets[0]
    wrong, tried = [], 0
    with _probe_files() as files:
        for param in s.problem.params:
            for value in probe_values(param, files):
                given = {**base, param.name: value}
                tried += 1
                problem = _handled(s.problem, given)
                if problem:
                    wrong.append(f"{param.name}={_shown(value)} is accepted by its declaration "
                                 f"({param.accepted()}), but {problem}: declare the range "
                                 f"(low=, high=) or choices, or raise "
                                 f"optbench.errors.UsageError naming the value")
                    break
    names = ", ".join(p.name for p in s.problem.params)
    if not s.problem.params:
        return CheckResult("params", True, "no parameters declared")
    return verdict("params", wrong, f"{tried} values of {names} over {label}: each made a task "
                   f"or was refused with a UsageError")


def _handled(problem: Problem, given: Mapping[str, Any]) -> str | None:
    try:
        params = resolve(problem.params, given, problem.name)
    except UsageError:
        return None  # refused by another declaration (a combination)
    try:
        with quiet():
            variables = problem.variables(params)
            instance = problem.make(params, 0)
    except UsageError:
        return None
    except Exception as exc:
        return f"make raised {describe(exc)}"
    x0 = np.asarray(instance.x0)
    if x0.shape != (len(variables),) or not np.all(np.isfinite(x0)):
        return f"make gave x0 = {x0} for {len(variables)} variables"
    return None


def probe_values(param: Param, files: Mapping[str, str]) -> list[Any]:
    """Values the declaration accepts, near its edges; large ones only where the declared
    bound is near the default (a bound of 10^9 samples is a sizing, not an edge to probe)."""
    kind, low, high = param.kind, param.low, param.high
    candidates: list[Any] = []
    if kind == "int":
        if low is None:
            candidates = [-1, 0, 1]
        else:
            candidates = [low + 1, low + 2] if param.low_open else [low, low + 1]
        if high is not None and high <= max(64, 4 * abs(param.default or 0)):
            candidates.append(high - 1 if param.high_open else high)
        candidates = [int(c) for c in candidates]
    elif kind == "float":
        if low is not None:
            candidates = [low + 1e-9 * max(1.0, abs(low)) if param.low_open else low, low + 1]
        else:
            candidates = [-1.0, 0.0, 1.0]
        if high is not None:
            candidates.append(high - 1e-9 * max(1.0, abs(high)) if param.high_open else high)
        candidates = [float(c) for c in candidates]
    elif kind == "bool":
        candidates = [True, False]
    elif kind == "str":
        candidates = list(param.choices) if param.choices else ["", "x", "?"]
    elif kind == "floats":
        n = param.length
        candidates = ([(0.0,) * n, (1.0,) * n] if n else [(0.0,), (1.0, -2.0)])
    elif kind == "path":
        candidates = [files["empty"], files["garbled"]]
    return [c for c in dict.fromkeys(candidates) if _accepted(param, c)]


def _accepted(param: Param, value: Any) -> bool:
    try:
        param.parse(value)
    except UsageError:
        return False
    return True


@contextmanager
def _probe_files() -> Iterator[dict[str, str]]:
    """An empty file and a garbled one (binary bytes, half a CSV, half a TOML table)."""
    with tempfile.TemporaryDirectory(prefix="optbench-check-") as folder:
        files = {"empty": os.path.join(folder, "empty.txt"),
                 "garbled": os.path.join(folder, "garbled.txt")}
        with open(files["empty"], "wb"):
            pass
        with open(files["garbled"], "wb") as handle:
            handle.write(b"x,y\n1,\x00\xff\n[[table\nobjective = \n2;3;;\n")
        yield files


def _shown(value: Any) -> str:
    if isinstance(value, str) and value.startswith(tempfile.gettempdir()):
        return f"<{os.path.basename(value).split('.')[0]} file>"
    return repr(value)


# ---------------------------------------------------------------------------------------
# The table and the entry points
# ---------------------------------------------------------------------------------------

PROBLEM_CHECKS: dict[str, Callable[[ProblemSubject], CheckResult]] = {
    "declared": check_declared,
    "seeded": check_seeded,
    "finite": check_finite,
    "gradients": check_gradients,
    "reference": check_reference,
    "params": check_params,
    "residuals": check_residuals,
}


def check_problem(problem: Any, *, registry: Registry | None = None,
                  params: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None = None,
                  checks: Iterable[str] | None = None) -> Report:
    """Run the problem checks and return their `Report`.

    problem: a registered name, a `Problem` instance or a `Problem` subclass.
    params: the parameter set (a mapping) or sets (a list of mappings) to check it with;
        default: the problem's `conformance["params"]`, optbench's own sets for its built-in
        problems, else its defaults.
    checks: names from PROBLEM_CHECKS to run (default: all).
    """
    subject = subject_for(problem, registry, params)
    names = select(checks, PROBLEM_CHECKS, "problem")
    report = Report("problem", subject.name,
                    plugin=owner_of("problem", subject.problem, subject.registry))
    for name in names:
        report.results.append(run_check(name, PROBLEM_CHECKS[name], subject))
    return report


def run_problem_check(problem: Any, name: str, *, registry: Registry | None = None,
                      params: Any = None) -> CheckResult:
    """One problem check by name (what the pytest class runs per test)."""
    (result,) = check_problem(problem, registry=registry, params=params,
                              checks=[name]).results
    return result

