"""Dolan–Moré performance profiles (Math. Programming 91, 2002) over time to target.

For solver s and task p, the performance ratio is r(p, s) = t(p, s) / min over solvers of
t(p, ·); a solver that did not reach the target on p has r = inf. The profile of s is
ρ_s(τ) = |{p : r(p, s) <= τ}| / (number of tasks): ρ_s(1) is the share of tasks on which s was
fastest, ρ_s(τ → ∞) the share it solved at all. Tasks that no solver solved stay in the count.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optbench.report.data import DEFAULT_TARGET, Run, analyze, extra_keys
from optbench.report.summary import _median


@dataclass(frozen=True)
class Profile:
    solvers: list[str]
    tasks: list[Hashable]
    times: list[list[float | None]]
    """times[i][j]: time to target of solver i on task j (None: not reached, or not run)."""
    ratios: list[list[float]]
    """ratios[i][j]: the performance ratio, inf where not reached."""

    def rho(self, tau: float) -> dict[str, float]:
        """Each solver's fraction of tasks with ratio <= tau."""
        n = len(self.tasks)
        return {s: (sum(r <= tau for r in row) / n if n else 0.0)
                for s, row in zip(self.solvers, self.ratios, strict=True)}

    def breakpoints(self) -> list[float]:
        """The distinct finite ratios, ascending, starting at 1: where some ρ_s steps up."""
        return sorted({1.0} | {r for row in self.ratios for r in row if math.isfinite(r)})


def profile_from_times(times: Mapping[str, Mapping[Hashable, float | None]]) -> Profile:
    """A profile from times to target: {solver: {task: seconds or None}}. A task missing for
    a solver counts as not solved by it."""
    solvers = list(times)
    tasks = list(dict.fromkeys(t for per_task in times.values() for t in per_task))
    table = [[times[s].get(t) for t in tasks] for s in solvers]
    best = []
    for j in range(len(tasks)):
        done = [row[j] for row in table if row[j] is not None]
        best.append(min(done) if done else None)
    ratios = [[_ratio(row[j], best[j]) for j in range(len(tasks))] for row in table]
    return Profile(solvers, tasks, table, ratios)


def _ratio(t: float | None, best: float | None) -> float:
    if t is None or best is None:
        return math.inf
    if t <= best:  # the fastest; also when the start already met the target (0 / 0)
        return 1.0
    return t / best if best > 0 else math.inf


def performance_profile(records: Sequence[Mapping[str, Any]],
                        target: float = DEFAULT_TARGET, *,
                        by: str | Sequence[str] | None = None) -> Profile:
    """The profile of every solver (backend/optimizer, plus dtype and device where they vary)
    over every task (problem, parameters, seed) in `records`. Several runs of one solver on
    one task (repeats, hosts) give the median time of those that reached the target."""
    runs = analyze(records, target)
    return _profile(runs, extra_keys(runs, by))


def _profile(runs: Sequence[Run], extra: Sequence[str]) -> Profile:
    tasks = sorted({(r.problem, r.task) for r in runs})
    per: dict[str, dict[Hashable, list[float]]] = {}
    for r in runs:
        cell = per.setdefault(r.solver(extra), {}).setdefault((r.problem, r.task), [])
        if r.time_to_target is not None:
            cell.append(r.time_to_target)
    times: dict[str, dict[Hashable, float | None]] = {
        s: {t: _median(per[s].get(t, [])) for t in tasks} for s in sorted(per)}
    return profile_from_times(times)
