"""`optbench bench --dry-run`: the plan of a campaign, validated as a real one is, not run.

What it shows: how many runs are planned, how many of them the results file already holds
(with --resume) and so how many would run, the notes and skipped backends a campaign would
say, and the first few runs still to run. As text, each run shows only the parameters that
differ from their declared defaults; as JSON, every field of the run's key.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from optbench import api
from optbench.bench.campaign import RunSpec
from optbench.plugins import Registry, get_registry
from optbench.results.code import optbench_code

SHOWN = 10
"""How many of the runs to run a dry run lists."""


@dataclass
class Plan:
    planned: int
    already: int                      # of the planned runs, those the results file holds
    output: str | None
    first: list[RunSpec]              # the first runs still to run, at most SHOWN
    skipped: list[tuple[str, str]]    # (backend, reason)
    notes: list[str]

    @property
    def to_run(self) -> int:
        return self.planned - self.already


def plan(specs: Sequence[RunSpec], done: set[str], output: str | None,
         skipped: list[tuple[str, str]], notes: list[str], any_version: bool = False) -> Plan:
    """The plan of `specs`, less the runs whose keys are in `done` (--resume; keys without
    the code's version with `any_version`, --resume-any-version)."""
    def key(s: RunSpec) -> str:
        return s.settings_key if any_version else s.key

    todo: Iterable[RunSpec] = (s for s in specs if key(s) not in done) if done else specs
    # Keys every planned run, as run_campaign does with --resume.
    already = sum(1 for s in specs if key(s) in done) if done else 0
    return Plan(len(specs), already, output, list(itertools.islice(todo, SHOWN)), skipped,
                notes)


def as_json(p: Plan) -> dict[str, Any]:
    return {"planned": p.planned, "already": p.already, "to_run": p.to_run,
            "output": p.output,
            "skipped_backends": [{"backend": b, "reason": r} for b, r in p.skipped],
            "notes": p.notes, "runs": [_run_json(s) for s in p.first]}


def _run_json(s: RunSpec) -> dict[str, Any]:
    return {"problem": s.problem, "problem_params": api.jsonable(dict(s.problem_params)),
            "backend": s.backend, "device": s.device, "dtype": s.dtype,
            "optimizer": s.optimizer,
            "optimizer_params": api.jsonable(dict(s.optimizer_params)), "seed": s.seed,
            "max_steps": s.max_steps, "tol": s.tol, "max_time": s.max_time,
            "code": optbench_code()}  # the code that would run it, part of its key


def as_text(p: Plan, resume: bool, registry: Registry | None = None) -> str:
    registry = registry or get_registry()
    where = f" into {p.output}" if p.output else ""
    lines = [f"{p.planned} runs planned{where}"]
    if resume:
        lines[0] += f": {p.already} already there, {p.to_run} to run"
    lines += [f"note: {n}" for n in p.notes]
    lines += [f"skipping backend {b}: {r}" for b, r in p.skipped]
    if p.first:
        lines.append(f"the first {len(p.first)} to run (parameters that differ from "
                     "their defaults):" if p.to_run > len(p.first) else "the runs:")
        shown = _varied(p.first, registry)
        lines += ["  " + _run_text(s, shown) for s in p.first]
    lines.append("nothing was run (--dry-run)")
    return "\n".join(lines)


def _run_text(s: RunSpec, shown: dict[str, set[str]]) -> str:
    return (f"{_named(s.problem, s.problem_params, shown)} | {s.backend} {s.dtype} "
            f"{s.device} | {_named(s.optimizer, s.optimizer_params, shown)} | seed {s.seed}")


def _varied(runs: Sequence[RunSpec], registry: Registry) -> dict[str, set[str]]:
    """By problem and optimizer name: the parameters worth showing, those that differ from
    their declared defaults in one of `runs` at least (then shown on every such run, so
    that `lr=0.01` is not left out beside `lr=0.1`)."""
    out: dict[str, set[str]] = {}
    for s in runs:
        for kind, name, params in (("problem", s.problem, s.problem_params),
                                   ("optimizer", s.optimizer, s.optimizer_params)):
            declared = registry.get(kind, name)
            # Declared defaults, read rather than resolved: a problem may have no default
            # for a parameter it needs (expr's objective).
            defaults = {p.name: p.default for p in getattr(declared, "params", None)
                        or getattr(declared, "hyperparams", ())}
            defaults.update(getattr(declared, "run_defaults", {}))
            out.setdefault(name, set()).update(
                k for k, v in params if k not in defaults or _plain(defaults[k]) != _plain(v))
    return out


def _named(name: str, params: Iterable[tuple[str, Any]], shown: dict[str, set[str]]) -> str:
    text = " ".join(f"{k}={_value(v)}" for k, v in params if k in shown.get(name, ()))
    return f"{name} {text}" if text else name


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(_value, v))
    return str(v)
