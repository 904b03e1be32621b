"""`optbench solve`: equations in, solution, residuals and (for linear systems) analysis out.

The equations become the `puzzle` problem; the run is the ordinary runner's. With several
starts, all of them run as one batch on the backend — x has shape (starts, n) and the
objective is the sum of each start's — so a thousand starts cost one loop, not a thousand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from optbench import api, memory
from optbench.core import Instance, Problem, Reference, RunRecord
from optbench.errors import UsageError
from optbench.expr import parse_system
from optbench.expr.linear import analyse
from optbench.problems.expression import names_list, numbers_list, read_toml

# Distinct solutions: final points closer than this (relative) are the same solution, and
# a start counts as a solution only where its residuals are this small.
SAME_SOLUTION = 1e-4
SOLVED = 1e-6

# Bytes held per start, per unknown and per node of the equations' trees (or per equation of
# a linear system, evaluated as one product with its matrix). Measured peaks on torch and
# autograd: 16-17 float64 per start and unknown (x, the optimizer's moments, the gradient,
# the record's copies), a few per intermediate result kept for the backward pass.
PER_UNKNOWN = 20 * 8
PER_NODE = 4 * 8


def starts_memory(starts: int, system: Any) -> int:
    """An upper estimate of the bytes that `starts` starts of `system` hold at once."""
    per_start = (len(system.variables) * PER_UNKNOWN
                 + (len(system.equations) if system.linear else system.size) * PER_NODE)
    return starts * per_start


class MultiStart(Problem):
    """A problem whose objective accepts leading batch dimensions, run on a batch of starts."""

    def __init__(self, inner: Problem) -> None:
        self.inner = inner
        self.name = inner.name
        self.params = inner.params

    def variables(self, params):
        return self.inner.variables(params)

    def make(self, params, seed):
        return self.inner.make(params, seed)

    def objective(self, x, data, xp):
        # Each start's gradient is its own: the starts do not interact through the sum.
        return xp.sum(self.inner.objective(x, data, xp))


def read_puzzle_file(path: str) -> dict[str, Any]:
    """puzzle.toml: equations = [...], variables = [...] (optional), x0 = [...] (optional)."""
    content = read_toml(path, ("equations", "variables", "x0"))
    equations = content.get("equations")
    if not (isinstance(equations, list) and equations
            and all(isinstance(e, str) for e in equations)):
        raise UsageError(f"{path}: needs equations = [\"...\", ...], a list of equations")
    return content


def solve_equations(equations: Sequence[str] = (), *, file: str | None = None,
                    variables: Sequence[str] | None = None, backend: str = "torch",
                    optimizer: str = "nadam", starts: int = 1, start_scale: float = 5.0,
                    steps: int = 10_000, tol: float | None = 1e-20,
                    x0: Sequence[float] | None = None, **options: Any) -> list[RunRecord]:
    """Solve the equations on one backend (or "all"); one record per backend.

    The defaults are `optbench solve`'s: NAdam, lr 0.01, until f - f* <= 1e-20 (linear
    systems) or 10,000 steps.
    """
    if file is not None:
        if equations:
            raise UsageError("give equations or --file, not both")
        content = read_puzzle_file(file)
        equations = content["equations"]
        variables = names_list(content.get("variables"), file) or variables
        if x0 is None and content.get("x0") is not None:
            x0 = content["x0"]
    if not equations:
        raise UsageError("no equation given: write them as arguments, e.g. \"A + B = 9\", "
                         "or give --file puzzle.toml")
    if not (isinstance(starts, int) and 1 <= starts <= 1_000_000):
        raise UsageError(f"starts={starts} is not accepted: expected an integer from 1 to "
                         "1000000")
    if starts > 1 and x0 is not None:
        raise UsageError("x0 and starts > 1 exclude each other: each start is drawn")
    system = parse_system(list(equations), variables)  # ParseError points at bad text
    if starts > 1:  # refused before anything is allocated for the batch
        memory.require(starts_memory(starts, system),
                       f"--starts {starts} with {len(system.variables)} unknowns")
    params = {"equations": "; ".join(equations)}
    if variables is not None:
        params["variables"] = ",".join(variables)
    if x0 is not None:
        x0 = list(numbers_list(list(x0), len(system.variables), "x0"))
    plan = api.plan("puzzle", backend, optimizer, problem_params=params, steps=steps,
                    x0=x0, tol=tol, **options)
    if not system.linear:
        # No closed form, but solved means every residual is 0: stop at f <= tol, not at a
        # gradient norm <= tol that the rounding of a solved system never reaches.
        plan = dataclasses.replace(plan, f_target=0.0)
    if starts > 1:
        rng = np.random.default_rng(plan.seed)
        batch = start_scale * rng.standard_normal((starts, len(system.variables)))
        instance = Instance(plan.instance.data, batch, plan.instance.variables)
        # The batch's objective is the sum over starts: its optimum is starts·f*, and no
        # single x* describes it (each start finds its own point).
        reference = None if plan.reference is None else Reference(
            x=plan.reference.x, f=starts * plan.reference.f, unique=False,
            details=plan.reference.details)
        # The tolerance stays per start: the sum meets starts·tol when the starts do on average.
        plan = dataclasses.replace(plan, problem=MultiStart(plan.problem), instance=instance,
                                   reference=reference,
                                   tol=None if plan.tol is None else plan.tol * starts)
    analysis = analyse(system.matrix, system.rhs, system.variables) if system.linear else None
    return [_describe(api.execute(plan, b), system, analysis, starts) for b in plan.backends]


def _describe(record: RunRecord, system: Any, analysis: Mapping[str, Any] | None,
              starts: int) -> RunRecord:
    """Add equations, residuals, analysis (and solutions) to a run record."""
    x = np.atleast_2d(np.asarray(record.x, dtype=np.float64))
    x0 = np.atleast_2d(np.asarray(record.x0, dtype=np.float64))
    with np.errstate(all="ignore"):
        residuals = np.stack([np.broadcast_to(np.asarray(r, dtype=np.float64), x.shape[:1])
                              for r in system.residuals([x[:, i] for i in range(x.shape[1])],
                                                        np)], axis=1)
    per_start = np.sum(residuals**2, axis=1)
    best = int(np.nanargmin(per_start)) if np.any(np.isfinite(per_start)) else 0
    extra: dict[str, Any] = {
        "equations": [e.text for e in system.equations],
        "residuals": residuals[best].tolist(),
    }
    if analysis is not None:
        extra["analysis"] = dict(analysis)
    if starts > 1:
        extra["starts"] = starts
        worst = np.max(np.abs(residuals), axis=1)
        extra["solutions"] = distinct_solutions(x, worst)
        # The batch's status speaks for the sum; say how many starts each got there, so
        # that a few stalled starts (NAdam's constant-lr cycles) are not hidden by the rest.
        solved = int(np.sum(np.isfinite(worst) & (worst <= SOLVED)))
        note = f"{solved} of {starts} starts solved the equations (every residual <= {SOLVED:g})"
        record.message = f"{record.message}; {note}" if record.message else note
        record.x, record.x0 = x[best].tolist(), x0[best].tolist()
        record.f = float(per_start[best])
    return _with_extras(record, extra)


def distinct_solutions(points: np.ndarray, worst_residual: np.ndarray) -> list[list[float]]:
    """The distinct points whose residuals are all below SOLVED, sorted."""
    found: list[np.ndarray] = []
    for p, r in zip(points, worst_residual, strict=True):
        if not (np.isfinite(r) and r <= SOLVED):
            continue
        scale = max(1.0, float(np.linalg.norm(p)))
        if all(np.linalg.norm(p - q) > SAME_SOLUTION * scale for q in found):
            found.append(p)
    return sorted(q.tolist() for q in found)


@dataclasses.dataclass
class SolveRecord(RunRecord):
    """A run record with what `optbench solve` adds (DESIGN.md: equations, residuals,
    analysis, solutions)."""

    equations: list[str] = dataclasses.field(default_factory=list)
    residuals: list[float] = dataclasses.field(default_factory=list)
    analysis: dict[str, Any] | None = None
    starts: int = 1
    solutions: list[list[float]] | None = None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        for key in ("analysis", "solutions"):  # present only where they apply
            if out[key] is None:
                del out[key]
        return out


def _with_extras(record: RunRecord, extra: dict[str, Any]) -> SolveRecord:
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(RunRecord)}
    return SolveRecord(**fields, **extra)
