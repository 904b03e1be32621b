"""The problem under test: its parameter sets, the backends it is checked on, its tasks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from optbench.core import Backend, Instance, Problem
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.plugins import Registry
from optbench.testing._common import (
    CASE_PARAMS,
    Failure,
    builtin_names,
    default_registry,
    describe,
    resolve_object,
)
from optbench.testing.backend_subject import available_on

PROBLEM_HINTS = ("params",)
"""What a problem may declare in its optional `conformance` mapping: the parameter set (a
mapping) or sets (a list of mappings) the kit checks it with."""

AGREEMENT_BACKENDS = ("torch", "autograd", "fd")
"""The backends a problem's tasks and gradients are compared on (those available here)."""


@dataclass
class ProblemSubject:
    problem: Problem
    registry: Registry
    param_sets: list[tuple[str, dict[str, Any]]]  # (label, given values)
    backends: list[Backend] = field(default_factory=list)  # available, float64, on cpu
    unavailable: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(getattr(self.problem, "name", type(self.problem).__name__))

    def make(self, params: Mapping[str, Any], seed: int, label: str) -> Instance:
        """problem.make, with a failure that says which parameter set and seed."""
        try:
            instance = self.problem.make(params, seed)
        except Exception as exc:
            raise Failure(f"{label}: make(params, seed={seed}) raised {describe(exc)}"
                          ) from None
        if not isinstance(instance, Instance):
            raise Failure(f"{label}: make returned {instance!r}, not an optbench.core.Instance")
        return instance

    def resolve(self, label: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """The parameter set with defaults filled in, or a failure saying it is refused."""
        try:
            return resolve(self.problem.params, given, self.name)
        except UsageError as exc:
            raise Failure(f"{label}: the parameters are refused: {exc}") from None

    def cases(self, seed: int = 0) -> list[tuple[str, dict[str, Any], Instance]]:
        """(label, resolved params, task) for each parameter set, made with `seed`."""
        return [(label, params, self.make(params, seed, label))
                for label, given in self.param_sets
                for params in (self.resolve(label, given),)]


def param_sets(problem: Any, given: Any = None) -> list[tuple[str, dict[str, Any]]]:
    """The parameter sets to check with: given, else the problem's hint, else optbench's own
    for its built-in problems, else the defaults."""
    if given is None:
        hints = getattr(problem, "conformance", None)
        given = hints.get("params") if isinstance(hints, Mapping) else None
    name = str(getattr(problem, "name", type(problem).__name__))
    if given is None:
        if type(problem).__module__.startswith("optbench.problems."):
            return [(label, dict(values)) for label, values in CASE_PARAMS.get(name, [(name,
                                                                                       {})])]
        return [(name, {})]
    sets = [given] if isinstance(given, Mapping) else list(given)
    if not sets or not all(isinstance(one, Mapping) for one in sets):
        raise UsageError(f"params for problem {name}: expected a mapping of parameter values "
                         f"or a list of them; got {given!r}")
    return [(f"{name}({', '.join(f'{k}={v!r}' for k, v in one.items())})" if one else name,
             dict(one)) for one in sets]


def subject_for(problem: Any, registry: Registry | None = None, given: Any = None,
                backends: Iterable[Any] | None = None) -> ProblemSubject:
    registry = default_registry(registry)
    obj = resolve_object("problem", problem, registry)
    subject = ProblemSubject(obj, registry, param_sets(obj, given))
    chosen = ([resolve_object("backend", b, registry) for b in backends]
              if backends is not None else
              [registry.get("backend", n) for n in AGREEMENT_BACKENDS
               if n in builtin_names(registry, "backend")])
    for backend in chosen:
        reason = (available_on(backend, "cpu") if "cpu" in backend.devices
                  else "it has no cpu device")
        if reason is None and "float64" not in backend.dtypes:
            reason = "it has no float64"
        (subject.unavailable.append(f"{backend.name}: {reason}") if reason
         else subject.backends.append(backend))
    return subject
