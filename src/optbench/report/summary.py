"""The summary table: one row per problem × backend × optimizer (× dtype, device, host...)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from optbench.cli.output import num, seconds, table
from optbench.report.data import DEFAULT_TARGET, TARGET_RULE, Run, analyze, extra_keys


def _median(values: Sequence[float]) -> float | None:
    """The median (mean of the middle two for an even count); None for no values. Infinite
    values (diverged runs) count as larger than any other."""
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)
    lo, hi = ordered[(n - 1) // 2], ordered[n // 2]
    return lo if lo == hi else statistics.fmean((lo, hi))


def summary(records: Sequence[Mapping[str, Any]], target: float = DEFAULT_TARGET, *,
            by: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row (a dict) per problem × backend × optimizer, also split by dtype and device
    where they vary and by the `by` keys ("host", "campaign", "dtype", "device").

    Keys: problem, backend, optimizer, the extra keys, runs, reached (runs that reached the
    target), success_rate (reached / runs), failed (diverged/error/timeout short of the
    target), median_time_to_target (seconds, over the runs that reached it; None when none
    did), median_error (final f − f*; a run without a finite f counts as +inf, so the median
    may be inf; None when f* is unknown), median_steps, median_evals, fstar_source.
    Rows come sorted by problem, backend, optimizer and the extra keys.
    """
    runs = analyze(records, target)
    return _rows(runs, extra_keys(runs, by))


def _rows(runs: Sequence[Run], extra: Sequence[str]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        key = (run.problem, run.backend, run.optimizer, *(getattr(run, k) for k in extra))
        groups.setdefault(key, []).append(run)
    rows = []
    for key in sorted(groups):
        members = groups[key]
        reached = [r for r in members if r.reached]
        known = [r for r in members if r.fstar is not None]
        sources = sorted({r.fstar_source for r in members})
        row: dict[str, Any] = dict(zip(("problem", "backend", "optimizer", *extra), key,
                                       strict=True))
        row.update(
            runs=len(members), reached=len(reached),
            success_rate=len(reached) / len(members),
            failed=sum(r.failed for r in members),
            median_time_to_target=_median([r.time_to_target for r in reached]),
            median_error=_median([r.final_gap for r in known]),
            median_steps=_median([float(r.record.get("steps") or 0) for r in members]),
            median_evals=_median([float(r.record.get("n_evals") or 0) for r in members]),
            fstar_source="/".join(sources))
        rows.append(row)
    return rows


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _error(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else num(value, 3)


def summary_text(records: Sequence[Mapping[str, Any]], target: float = DEFAULT_TARGET, *,
                 by: str | Sequence[str] | None = None) -> str:
    """The summary as plain text: the target rule, then one table per problem."""
    runs = analyze(records, target)
    if not runs:
        return "no records"
    extra = extra_keys(runs, by)
    rows = _rows(runs, extra)
    out = [f"target: {TARGET_RULE}; T = {target:g}", ""]
    header = ["backend", "optimizer", *extra, "runs", "reached", "failed", "time to target",
              "f - f*", "steps", "evals"]
    for problem in dict.fromkeys(r["problem"] for r in rows):
        mine = [r for r in rows if r["problem"] == problem]
        tasks = {run.task for run in runs if run.problem == problem}
        sources = "/".join(sorted({r["fstar_source"] for r in mine}))
        out.append(f"{problem}: {len(tasks)} task(s), f* from {sources}")
        out.append(table(header, [[
            r["backend"], r["optimizer"], *(r[k] for k in extra), r["runs"],
            f"{r['reached']}/{r['runs']} ({r['success_rate']:.0%})", r["failed"],
            "-" if r["median_time_to_target"] is None else seconds(r["median_time_to_target"]),
            _error(r["median_error"]), _count(r["median_steps"]), _count(r["median_evals"])]
            for r in mine]))
        out.append("")
    out.append("time to target: median over the runs that reached it; f - f*, steps, evals: "
               "median over all runs")
    return "\n".join(out)
