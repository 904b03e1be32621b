"""Fit a model to data: the problem `model`, planned and run as every problem is, on one or
more backends, each record completed with the fit's statistics.

Everything is validated before anything runs: the data, the equation, the parameters, the
start (named values; unknown names refused), the options, and that the model is finite at
the start (else the first point where it is not is named).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.core import RunRecord
from optbench.errors import UsageError
from optbench.fitting import DEFAULT_METHOD, DEFAULT_STEPS
from optbench.problems.datatable import Table, read_table, table_from_columns
from optbench.problems.model import Model, ModelProblem, column_key


@dataclass
class FitRecord(RunRecord):
    """A run record plus `fit`: the statistics of the fit at the solution (None when the
    run ended without a finite solution)."""

    fit: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> FitRecord:
        base = RunRecord.from_json(record)
        return cls(**{**base.__dict__, "fit": record.get("fit")})


@dataclass
class FitPlan:
    """A validated fit: the plan every backend runs, and what the statistics need."""

    plan: Any  # optbench.api.Plan
    problem: ModelProblem
    model: Model
    table: Table


def as_table(data: Any) -> Table:
    """A path (str or os.PathLike), a dict of arrays or a DataFrame, as a Table."""
    import os

    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        return read_table(path, f"data={path}")
    return table_from_columns(data)


def start_values(x0: Any, parameters: Sequence[str], drawn: np.ndarray) -> np.ndarray:
    """x0 as {name: value} (missing names keep the value drawn from the seed) or a list in
    the order of `parameters`; UsageError for a name that is not a parameter."""
    if x0 is None:
        return drawn
    if isinstance(x0, Mapping):
        start = drawn.copy()
        for name, value in x0.items():
            if name not in parameters:
                raise UsageError(f"--x0 names {name!r}, which is not a parameter of the "
                                 f"model; its parameters: {', '.join(parameters)}")
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value)):
                raise UsageError(f"--x0 {name}={value!r} is not accepted: expected a finite "
                                 "number")
            start[parameters.index(name)] = float(value)
        return start
    from optbench.problems.function import starting_point

    start = starting_point(x0)
    if start.size != len(parameters):
        raise UsageError(f"x0 has {start.size} values; the model has {len(parameters)} "
                         f"parameters ({', '.join(parameters)}): give {len(parameters)} "
                         "numbers in that order, or name them (b1=...,b2=...)")
    return start


def parse_x0(text: str | None) -> dict[str, float] | None:
    """"b1=500,b2=1e-4" as {"b1": 500.0, "b2": 1e-4}."""
    from optbench.core.params import parse_numbers

    return None if text is None else parse_numbers([text], "--x0", "b1=500,b2=1e-4")


def check_start(fp: FitPlan) -> None:
    """The model must be finite at every point at the start: else name the first one."""
    x0 = np.asarray(fp.plan.instance.x0, dtype=np.float64)
    with np.errstate(all="ignore"):
        r = np.asarray(fp.problem.residuals(x0, fp.plan.instance.data, np), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        i = int(bad[0])
        start = ", ".join(f"{n}={v:.6g}" for n, v in zip(fp.model.parameters, x0, strict=True))
        shown = tuple(c for c in fp.table.names if c in fp.model.columns)  # header order
        raise UsageError(f"the model is not finite at the start ({start}): at "
                         f"{fp.table.where(i)} ({fp.table.row_text(i, shown)}) "
                         f"lhs - rhs = {r[i]}; give a start where it is, with --x0 "
                         f"({bad.size} of {r.size} points are not finite)")


def plan_fit(equation: str, data: Any, x0: Any = None, *,
             parameters: Sequence[str] | str | None = None, sigma: str | None = None,
             method: str = DEFAULT_METHOD, backend: str | Sequence[str] = "torch",
             dtype: str = "float64", device: str = "cpu", tol: float | None = None,
             steps: int | None = None, seed: int = 0,
             method_params: Mapping[str, Any] | None = None, registry: Any = None
             ) -> FitPlan:
    from optbench import api

    table = data if isinstance(data, Table) else as_table(data)
    problem = ModelProblem(table)
    names = ",".join(parameters) if isinstance(parameters, (list, tuple)) else parameters
    params = {"equation": equation, "parameters": names, "sigma": sigma}
    resolved = {"data": None, **params}
    model = problem.model(resolved)
    # The drawn start, then the given values over it: a plan with the start complete.
    drawn = np.asarray(problem.make(resolved, seed).x0, dtype=np.float64)
    start = start_values(x0, model.parameters, drawn)
    plan = api.plan(problem, backend, method, problem_params=params,
                    optimizer_params=method_params, steps=steps or DEFAULT_STEPS, seed=seed,
                    dtype=dtype, device=device, x0=start.tolist(), tol=tol,
                    registry=registry)
    fp = FitPlan(plan, problem, model, table)
    check_start(fp)
    return fp


def response_of(fp: FitPlan) -> np.ndarray | None:
    """The left side at the data, where it holds no parameter (for R²)."""
    if fp.model.response is None:
        return None
    columns = [fp.table.columns[c] for c in fp.model.columns]
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(fp.model.response(columns, np), dtype=np.float64),
                                 (fp.table.n_rows,))
    return values if np.all(np.isfinite(values)) else None


def statistics(fp: FitPlan, x: Sequence[float], backend: Any = None) -> Any:
    """The fit's statistics at x (None where x is not finite)."""
    from optbench.fitting.jacobian import jacobian_at
    from optbench.fitting.statistics import fit_statistics

    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return None
    data = fp.plan.instance.data
    objective = None
    # The backend's own Jacobian where it has one and it is exact (automatic
    # differentiation, complex step): finite differences' truncation error would go into
    # the standard errors, where numpy's complex step (jacobian_at's own) has none.
    if getattr(backend, "differentiation", None) == "exact":
        try:
            objective = backend.prepare(fp.problem, data, dtype="float64", device=fp.plan.device)
        except Exception:
            objective = None
    r, J = jacobian_at(fp.problem, data, x, objective, analytic=fp.model.analytic)
    return fit_statistics(r, J, fp.model.parameters, x, response_of(fp),
                          data.get("_weights"))


def run_fit(fp: FitPlan, backend: Any) -> FitRecord:
    from optbench import api

    record = api.execute(fp.plan, backend)
    out = FitRecord(**record.__dict__)
    stats = statistics(fp, record.x, backend) if record.status != "error" else None
    if stats is not None:
        out.fit = stats.to_json()
        note = stats.note()
        if note:
            out.message = f"{out.message}; {note}" if out.message else note
    return out


def fit(equation: str, data: Any, x0: Any = None, **options: Any) -> FitRecord | list[FitRecord]:
    """Fit `equation` to `data` (a CSV path, a dict of arrays, a DataFrame); see
    optbench.fit. One record for one backend, a list for several; with `groups` (a column
    name, or one label per row), one fit per group run as one batch (fitting/batch.py)."""
    if options.get("groups") is not None:
        from optbench.fitting.batch import fit_batch

        return fit_batch(equation, data, options.pop("groups"), x0, **options)
    options.pop("groups", None)
    fp = plan_fit(equation, data, x0, **options)
    records = [run_fit(fp, b) for b in fp.plan.backends]
    backend = options.get("backend", "torch")
    return records[0] if isinstance(backend, str) and backend != "all" else records


def column_of(fp: FitPlan, name: str) -> np.ndarray:
    return np.asarray(fp.plan.instance.data[column_key(name)], dtype=np.float64)
