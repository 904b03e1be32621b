"""Targets, time to target and the labels every part of a report shares.

A *task* is (problem, problem parameters, seed): the same data and start on every backend.
Its f* is the closed-form optimum's f where the record carries one (`reference.f`), else the
best f that any run reached on the task, final or sampled along a trace (benchopt does the
same). A run *reaches the target* T when f − f* <= T·max(1, |f*|). Its *time to target* is
the loop time (`time_s`) of the first trace point that reaches it — or the run's whole loop
time when only its final point does. A run that never reached the target and ended
"diverged", "error" or "timeout" is a *failure*; one that ended "max_steps" or "converged"
short of the target is only unsuccessful.

Everything here is pure: lists of record dicts in, plain data out. No matplotlib, no pandas.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optbench.errors import UsageError
from optbench.results import ResultsStore
from optbench.results.code import code_version

DEFAULT_TARGET = 1e-8
FAILED = ("diverged", "error", "timeout")
GROUP_KEYS = ("dtype", "device", "host", "campaign", "version", "source")
"""Extra grouping keys accepted by `by=`; dtype and device are added when they vary.
version: the code that ran (optbench's version and git revision, "unknown" for records
without `code`); source: the results file a record came from (`read_many`)."""
SOURCE = "source"
"""The field `read_many` adds to each record: the file it was read from, as given."""

TARGET_RULE = ("f - f* <= T * max(1, |f*|); f* is the closed-form optimum's f where one is "
               "known, else the best f that any run reached on the same task "
               "(problem, its parameters, seed)")

Task = tuple[str, str, int]
"""(problem name, canonical JSON of its parameters, seed)."""


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The run records of a JSON Lines results file, as the results store reads them.

    Lines that are not run records (not JSON, nested too deeply, fields of the wrong types)
    are skipped, counted in one `ResultsWarning`; a last line cut short by a killed writer
    is skipped with a warning; blank lines are ignored. A path that is not there, or not a
    regular file, is a UsageError.
    """
    if not os.path.lexists(path):
        raise UsageError(f"{os.fspath(path)}: no such results file")
    return ResultsStore(path).records()


def read_many(paths: Sequence[str | os.PathLike[str]],
              on_warning: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The records of several results files, in order, each record with `source`: the path
    it came from, as given (one file: its records as they are, without `source`). Each file
    is read as `read_records` reads one (size-checked, hostile lines skipped); a missing
    file, or the same file given twice, is a UsageError before any is read."""
    seen: dict[tuple[int, int], str] = {}
    for path in paths:
        if not os.path.lexists(path):
            raise UsageError(f"{os.fspath(path)}: no such results file")
        try:
            info = os.stat(path)
        except OSError:
            continue  # a dangling link, say: the store says what is wrong with it
        where = (info.st_dev, info.st_ino)
        if where in seen:
            raise UsageError(f"{os.fspath(path)} is {seen[where]} again: give each results "
                             "file once")
        seen[where] = os.fspath(path)
    out: list[dict[str, Any]] = []
    for path in paths:
        records = ResultsStore(path, on_warning=on_warning).records()
        if len(paths) > 1:
            records = [{**r, SOURCE: os.fspath(path)} for r in records]
        out += records
    return out


def _check_target(target: float) -> float:
    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise ValueError(f"target={target!r} is not accepted: expected a number > 0")
    return float(target)


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON null, NaN, infinities, anything else)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def canonical(params: Any) -> str:
    return json.dumps(params or {}, sort_keys=True, separators=(",", ":"), default=str)


def task_of(record: Mapping[str, Any]) -> Task:
    return (str(record.get("problem")), canonical(record.get("problem_params")),
            int(record.get("seed") or 0))


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(_show(v) for v in value)
    return str(value)


def _varying(records: Sequence[Mapping[str, Any]], name: str, params: str) -> dict[str, list]:
    """For each value of `name` (problem, optimizer): its parameters that differ between runs."""
    seen: dict[str, dict[str, set[str]]] = {}
    for r in records:
        for key, value in (r.get(params) or {}).items():
            seen.setdefault(str(r.get(name)), {}).setdefault(key, set()).add(canonical(value))
    out: dict[str, list] = {}
    for owner, keys in seen.items():
        names = {r_key for r_key, values in keys.items() if len(values) > 1}
        # A key missing from some records of the same owner varies too.
        for r in records:
            if str(r.get(name)) == owner:
                names |= set(keys) - set(r.get(params) or {})
        out[owner] = sorted(names)
    return out


def _label(name: str, params: Mapping[str, Any] | None, keys: list[str]) -> str:
    shown = [f"{k}={_show((params or {}).get(k))}" for k in keys]
    return f"{name}({', '.join(shown)})" if shown else name


def host_label(host: Any) -> str:
    if not isinstance(host, Mapping):
        return "unknown"
    name = host.get("hostname") or host.get("cpu") or "unknown"
    device = host.get("device_name")
    if device and device != host.get("cpu") and host.get("device") not in (None, "cpu"):
        name = f"{name} ({device})"
    return str(name)


@dataclass(frozen=True)
class Run:
    """One record with everything a report derives from it."""

    record: Mapping[str, Any]
    task: Task
    problem: str        # problem label: its name and the parameters that vary between runs
    backend: str
    optimizer: str      # optimizer label: its name and the hyperparameters that vary
    dtype: str
    device: str
    host: str
    campaign: str
    version: str        # the code that ran: optbench's version and revision (code_version)
    source: str         # the results file it came from, with several ("-" otherwise)
    fstar: float | None
    fstar_source: str   # "reference", "best run" or "none"
    scale: float        # max(1, |f*|): the target and the plotted gap are relative to it
    final_gap: float    # f − f* at the end; inf when f is not finite or f* unknown
    reached: bool
    time_to_target: float | None
    step_to_target: int | None
    failed: bool        # ended diverged/error/timeout without reaching the target

    @property
    def status(self) -> str:
        return str(self.record.get("status"))

    def solver(self, extra: Sequence[str] = ()) -> str:
        """backend/optimizer, plus the values of `extra` keys (dtype, device, host)."""
        parts = [getattr(self, k) for k in extra]
        return f"{self.backend}/{self.optimizer}" + (f" [{' '.join(parts)}]" if parts else "")

    def trace(self) -> list[tuple[int, float, float]]:
        """(step, time_s, scaled gap) per sampled point; the gap is inf where f is not finite."""
        out = []
        for point in self.record.get("trace") or []:
            if not isinstance(point, (list, tuple)) or len(point) < 3:
                continue
            step, t, f = _number(point[0]), _number(point[1]), _number(point[2])
            if step is None or t is None:
                continue
            gap = math.inf if f is None or self.fstar is None else (f - self.fstar) / self.scale
            out.append((int(step), t, gap))
        return out


def fstars(records: Iterable[Mapping[str, Any]]) -> dict[Task, tuple[float | None, str]]:
    """f* per task and where it came from ("reference", "best run" or "none")."""
    refs: dict[Task, float] = {}
    best: dict[Task, float] = {}
    for r in records:
        task = task_of(r)
        ref = r.get("reference")
        ref_f = _number(ref.get("f")) if isinstance(ref, Mapping) else None
        if ref_f is not None:
            refs.setdefault(task, ref_f)
        values = [_number(r.get("f"))] + [
            _number(p[2]) for p in r.get("trace") or [] if isinstance(p, (list, tuple))
            and len(p) >= 3]
        for v in values:
            if v is not None and (task not in best or v < best[task]):
                best[task] = v
        best.setdefault(task, math.nan)
    out: dict[Task, tuple[float | None, str]] = {}
    for task, value in best.items():
        if task in refs:
            out[task] = (refs[task], "reference")
        elif math.isfinite(value):
            out[task] = (value, "best run")
        else:
            out[task] = (None, "none")
    return out


def reaches(f: float | None, fstar: float | None, target: float) -> bool:
    """f − f* <= T·max(1, |f*|)."""
    if f is None or fstar is None or not math.isfinite(f):
        return False
    return f - fstar <= target * max(1.0, abs(fstar))


def time_to_target(record: Mapping[str, Any], fstar: float | None,
                   target: float = DEFAULT_TARGET) -> tuple[float | None, int | None]:
    """(time_s, step) of the first trace point that reaches the target, else of the run's end
    when only its final f does, else (None, None)."""
    for point in record.get("trace") or []:
        if isinstance(point, (list, tuple)) and len(point) >= 3 and reaches(
                _number(point[2]), fstar, target):
            t, step = _number(point[1]), _number(point[0])
            return (t if t is not None else 0.0), (int(step) if step is not None else None)
    if reaches(_number(record.get("f")), fstar, target):
        return _number(record.get("time_s")) or 0.0, int(record.get("steps") or 0)
    return None, None


def analyze(records: Sequence[Mapping[str, Any]], target: float = DEFAULT_TARGET) -> list[Run]:
    """Each record with its task, labels, f*, final gap and time to target."""
    target = _check_target(target)
    records = list(records)
    stars = fstars(records)
    vary_p = _varying(records, "problem", "problem_params")
    vary_o = _varying(records, "optimizer", "optimizer_params")
    runs = []
    for r in records:
        task = task_of(r)
        fstar, source = stars[task]
        scale = max(1.0, abs(fstar)) if fstar is not None else 1.0
        f = _number(r.get("f"))
        gap = math.inf if f is None or fstar is None else f - fstar
        t, step = time_to_target(r, fstar, target)
        problem, optimizer = str(r.get("problem")), str(r.get("optimizer"))
        runs.append(Run(
            record=r, task=task,
            problem=_label(problem, r.get("problem_params"), vary_p.get(problem, [])),
            backend=str(r.get("backend")),
            optimizer=_label(optimizer, r.get("optimizer_params"), vary_o.get(optimizer, [])),
            dtype=str(r.get("dtype")), device=str(r.get("device")),
            host=host_label(r.get("host")), campaign=str(r.get("campaign") or "-"),
            version=code_version(r.get("code")),
            source=str(r.get(SOURCE) or "-"),
            fstar=fstar, fstar_source=source, scale=scale, final_gap=gap,
            reached=t is not None, time_to_target=t, step_to_target=step,
            failed=t is None and str(r.get("status")) in FAILED))
    return runs


def extra_keys(runs: Sequence[Run], by: str | Sequence[str] | None = None) -> list[str]:
    """The grouping keys beyond problem, backend and optimizer: dtype and device where they
    vary, plus those asked for with `by` (any of GROUP_KEYS)."""
    asked = [by] if isinstance(by, str) else list(by or [])
    for key in asked:
        if key not in GROUP_KEYS:
            raise ValueError(f"by={key!r} is not accepted: expected one of "
                             f"{', '.join(GROUP_KEYS)}")
    keys = [k for k in ("dtype", "device") if len({getattr(r, k) for r in runs}) > 1]
    return keys + [k for k in asked if k not in keys]


def slug(text: str) -> str:
    """A file-name-safe form: lowercase letters, digits and single dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
