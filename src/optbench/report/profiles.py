"""Moré–Wild data profiles and performance profiles over gradient evaluations.

Moré & Wild, "Benchmarking derivative-free optimization algorithms", SIAM J. Optim. 20
(2009). A problem p is a task (problem, parameters, seed: one start); a solver s is a
backend/optimizer (with the hyperparameters that vary). s *solves* p once it reaches an x
with the convergence test

    f(x0) − f(x) >= (1 − τ)·(f(x0) − f_L)

and its cost t(p, s) is the number of gradient evaluations (`n_evals`) spent until then.
f_L is the task's f* as the rest of the report takes it (optbench.report.data.fstars): the
reference optimum where the records carry one (a suite's certified f*: a solver stuck at
another local minimum has not solved the problem), else the best f any run reached on the
task (Moré–Wild's own choice). τ = 1e-3 by default (`optbench report --profile-tau`).

  data profile         d_s(α) = |{p : t(p, s) <= α·(n_p + 1)}| / |P|
  performance profile  ρ_s(r) = |{p : t(p, s) <= r·min_s' t(p, s')}| / |P|

Where the cost comes from: a record holds a sampled trace [[step, time_s, f], ...]. The point
of step k holds f at x_k, known after k + 1 evaluations for a method that evaluates once a
step, so the cost of the first sampled point meeting the test is (k + 1)·e, e = n_evals /
steps the run's mean evaluations per step (exact for sgd/adam; a mean over line searches for
lbfgs). Every step up to 12 is sampled and about 12 a decade beyond, so past step 12 the
cost is an upper bound, at most ~21% (10^(1/12)) above the first step that met the test;
a run whose final point alone meets it costs its whole n_evals. f(x0) is the trace's step 0,
the same for every solver on a task; a task with no step 0 in any record is left out and
counted.

The arithmetic (`data_profile`, `performance_ratios`, `performance_profile`, `solve_cost`) is
pure numpy on arrays; `profiles` derives the cost matrix from records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.report.data import DEFAULT_TARGET, Run, analyze, canonical, extra_keys
from optbench.report.summary import _median

DEFAULT_TAU = 1e-3
TEXT_ALPHAS = (1.0, 5.0, 10.0, 50.0, 100.0)
"""The budgets (gradient evaluations per n+1) the text summary prints d_s at."""
TEXT_RATIOS = (1.0, 2.0, 4.0, math.inf)
"""The factors the text summary prints ρ_s at."""


def check_tau(tau: float) -> float:
    if not (isinstance(tau, (int, float)) and not isinstance(tau, bool)
            and 0 < tau < 1):
        raise ValueError(f"tau={tau!r} is not accepted: expected a number with 0 < tau < 1")
    return float(tau)


def solve_cost(steps: Sequence[float], fs: Sequence[float], f0: float, f_low: float,
               tau: float, evals_per_step: float, final_f: float | None = None,
               final_evals: float | None = None) -> float:
    """Gradient evaluations until the first sampled point meeting the convergence test
    f0 − f >= (1 − τ)(f0 − f_L): (k + 1)·evals_per_step at its step k; else `final_evals`
    when the final f meets it; else inf. Non-finite f never meets it."""
    need = (1.0 - tau) * (f0 - f_low)
    k = np.asarray(steps, dtype=np.float64)
    f = np.asarray(fs, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(f) & (f0 - f >= need)
    if ok.any():
        return float((k[ok].min() + 1.0) * evals_per_step)
    if final_f is not None and math.isfinite(final_f) and f0 - final_f >= need:
        return float(final_evals if final_evals is not None else math.inf)
    return math.inf


def data_profile(costs: np.ndarray, dims: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """d[s, i] = share of problems p with costs[p, s] <= alphas[i]·(dims[p] + 1).

    costs: (problems, solvers), inf where not solved; dims: (problems,) variables n_p."""
    costs = np.asarray(costs, dtype=np.float64)
    budgets = np.outer(np.asarray(dims, dtype=np.float64) + 1.0, np.asarray(alphas, float))
    if costs.shape[0] == 0:
        return np.zeros((costs.shape[1], len(alphas)))
    # (problems, solvers, alphas) -> mean over problems
    return (costs[:, :, None] <= budgets[:, None, :]).mean(axis=0)


def performance_ratios(costs: np.ndarray) -> np.ndarray:
    """r[p, s] = costs[p, s] / min over solvers of costs[p, ·]; inf where s did not solve p
    (and on a problem no solver solved)."""
    costs = np.asarray(costs, dtype=np.float64)
    best = costs.min(axis=1, keepdims=True) if costs.size else costs[:, :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = costs / best
    r[~np.isfinite(costs)] = np.inf
    r[np.isfinite(costs) & (costs <= best)] = 1.0  # the best (also 0/0)
    return r


def performance_profile(costs: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """rho[s, i] = share of problems p with performance ratio r[p, s] <= ratios[i]; an
    unsolved problem (r = inf) never counts, so rho at ratio inf is the share solved."""
    r = performance_ratios(costs)
    if r.shape[0] == 0:
        return np.zeros((r.shape[1], len(ratios)))
    within = r[:, :, None] <= np.asarray(ratios, float)[None, None, :]
    return (within & np.isfinite(r)[:, :, None]).mean(axis=0)


@dataclass(frozen=True)
class Profiles:
    """The cost matrix of a set of records and what was left out."""

    solvers: list[str]
    problems: list[str]          # a label per task
    dims: np.ndarray             # (problems,) number of variables
    costs: np.ndarray            # (problems, solvers) gradient evaluations, inf: not solved
    tau: float
    f_low_sources: dict[str, int]  # "reference" / "best run": how many tasks each
    left_out: int                # tasks without f(x0) or f_L

    def data(self, alphas: Sequence[float]) -> np.ndarray:
        return data_profile(self.costs, self.dims, alphas)

    def performance(self, ratios: Sequence[float]) -> np.ndarray:
        return performance_profile(self.costs, ratios)

    def ratios(self) -> np.ndarray:
        return performance_ratios(self.costs)


def _f0(runs: Sequence[Run]) -> float | None:
    for run in runs:
        for point in run.record.get("trace") or []:
            if (isinstance(point, (list, tuple)) and len(point) >= 3 and point[0] == 0
                    and isinstance(point[2], (int, float)) and math.isfinite(point[2])):
                return float(point[2])
    return None


def _cost(run: Run, f0: float, f_low: float, tau: float) -> float:
    r = run.record
    steps = [p[0] for p in r.get("trace") or [] if isinstance(p, (list, tuple)) and len(p) >= 3
             and isinstance(p[0], (int, float)) and isinstance(p[2], (int, float))]
    fs = [p[2] for p in r.get("trace") or [] if isinstance(p, (list, tuple)) and len(p) >= 3
          and isinstance(p[0], (int, float)) and isinstance(p[2], (int, float))]
    n_steps, n_evals = r.get("steps"), r.get("n_evals")
    if isinstance(n_steps, int) and isinstance(n_evals, int) and n_steps > 0 and n_evals > 0:
        per_step = n_evals / n_steps
    else:  # no count recorded: one evaluation a step
        per_step = 1.0
    final = r.get("f")
    final_f = float(final) if isinstance(final, (int, float)) else None
    final_evals = float(n_evals) if isinstance(n_evals, int) and n_evals > 0 else (
        float(n_steps) if isinstance(n_steps, int) else math.inf)
    return solve_cost(steps, fs, f0, f_low, tau, per_step, final_f, final_evals)


def _dim(run: Run) -> int:
    for key in ("variables", "x0"):
        value = run.record.get(key)
        if isinstance(value, list) and value:
            return len(value)
    return 1


def profiles(records: Sequence[Mapping[str, Any]], tau: float = DEFAULT_TAU, *,
             by: str | Sequence[str] | None = None) -> Profiles:
    """The Moré–Wild cost of every solver on every task of `records`. Several runs of one
    solver on one task (hosts, repeats) give their median cost (an unsolved run counts as
    inf)."""
    tau = check_tau(tau)
    runs = analyze(records, DEFAULT_TARGET)
    extra = extra_keys(runs, by) if runs else []
    tasks: dict[Any, list[Run]] = {}
    for run in runs:
        tasks.setdefault(run.task, []).append(run)
    solvers = sorted({run.solver(extra) for run in runs})
    labels, dims, rows, left_out = [], [], [], 0
    sources: dict[str, int] = {}
    for task in sorted(tasks):
        mine = tasks[task]
        f0, f_low = _f0(mine), mine[0].fstar
        if f0 is None or f_low is None:
            left_out += 1
            continue
        sources[mine[0].fstar_source] = sources.get(mine[0].fstar_source, 0) + 1
        cells: dict[str, list[float]] = {}
        for run in mine:
            cells.setdefault(run.solver(extra), []).append(_cost(run, f0, f_low, tau))
        row = [_median(cells[s]) if s in cells else None for s in solvers]
        rows.append([math.inf if c is None else c for c in row])
        seed = f" seed {task[2]}" if any(t[:2] == task[:2] and t != task for t in tasks) else ""
        labels.append(f"{mine[0].problem}{seed}")
        dims.append(_dim(mine[0]))
    costs = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(solvers))
    return Profiles(solvers, labels, np.asarray(dims, dtype=np.float64), costs, tau,
                    sources, left_out)


def applies(records: Sequence[Mapping[str, Any]]) -> bool:
    """Profiles are drawn when the records hold several problems (a problem and its
    parameters: a suite's entries); seeds of one problem alone make no profile."""
    seen = set()
    for r in records:
        seen.add((str(r.get("problem")), canonical(r.get("problem_params"))))
        if len(seen) > 1:
            return True
    return False


def _share(value: float) -> str:
    return f"{value:.2f}"


def profiles_text(records: Sequence[Mapping[str, Any]], tau: float = DEFAULT_TAU, *,
                  by: str | Sequence[str] | None = None) -> str:
    """The summary lines: d_s at a few budgets and ρ_s at a few factors, per solver."""
    from optbench.cli.output import table

    p = profiles(records, tau, by=by)
    n = len(p.problems)
    sources = ", ".join(f"{k} on {v}" for k, v in sorted(p.f_low_sources.items())) or "-"
    out = [f"Moré–Wild profiles over {n} task(s), gradient evaluations; solved when "
           f"f(x0) - f >= (1 - tau)(f(x0) - f_L), tau = {p.tau:g}; f_L: {sources}"]
    if p.left_out:
        out.append(f"({p.left_out} task(s) left out: no f(x0) at trace step 0 or no f_L)")
    if not n or not p.solvers:
        return "\n".join(out)
    d = p.data(TEXT_ALPHAS)
    rho = p.performance(TEXT_RATIOS)
    header = ["solver", *(f"d({a:g})" for a in TEXT_ALPHAS),
              *("rho(inf)" if math.isinf(r) else f"rho({r:g})" for r in TEXT_RATIOS)]
    out.append(table(header, [[s, *map(_share, d[i]), *map(_share, rho[i])]
                              for i, s in enumerate(p.solvers)]))
    out.append("d(a): share of tasks solved within a*(n+1) gradient evaluations; rho(r): "
               "share solved within r times the fewest evaluations any solver needed")
    return "\n".join(out)
