"""A campaign: the cartesian product of axes, validated in full before a single run starts.

Axes come from the command line (`--problem regression,puzzle --lr 0.1,0.01 -P
n_samples=20,1000 --seeds 5`) or from a TOML file holding the same. A problem parameter
applies to the problems that declare it (n_samples to regression, not to puzzle), and an
optimizer hyperparameter to the optimizers that declare it; one that no problem (optimizer)
of the campaign declares is refused.

Alternatives of a parameter are separated by ',' — except for list-valued parameters
(betas, coefficients), whose alternatives are separated by ';' — and a repeated
`-P key=...` adds alternatives too (the only way for text and path parameters).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tomllib

from optbench import api, userfiles
from optbench.core import Param
from optbench.core.backend import DTYPES
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.plugins import Registry, get_registry
from optbench.results import run_key


@dataclass(frozen=True)
class RunSpec:
    """One run of a campaign: everything `api.plan` needs, hashable for --resume."""

    problem: str
    problem_params: tuple[tuple[str, Any], ...]
    backend: str
    device: str
    dtype: str
    optimizer: str
    optimizer_params: tuple[tuple[str, Any], ...]
    seed: int
    # The campaign's stop rules: part of the run's key, so that `--steps 50 --resume` after a
    # 5000-step campaign runs its own runs.
    max_steps: int | None = None
    tol: float | None = None
    max_time: float | None = None
    compile: bool = False

    @property
    def key(self) -> str:
        """The results store's key of this run (see optbench.results.run_key)."""
        return run_key({"problem": self.problem,
                        "problem_params": api.jsonable(dict(self.problem_params)),
                        "backend": self.backend, "device": self.device, "dtype": self.dtype,
                        "optimizer": self.optimizer,
                        "optimizer_params": api.jsonable(dict(self.optimizer_params)),
                        "seed": self.seed, "max_steps": self.max_steps, "tol": self.tol,
                        "max_time": self.max_time, "compile": self.compile})

    @property
    def warmup_group(self) -> tuple[Any, ...]:
        """Runs of one group share compilation and caches: the first of each warms up."""
        return (self.problem, self.problem_params, self.backend, self.device, self.dtype)


@dataclass
class Campaign:
    problems: list[str]
    backends: list[str]
    optimizers: list[str]
    seeds: list[int]
    lrs: list[float | None] = field(default_factory=lambda: [None])
    dtypes: list[str] = field(default_factory=lambda: ["float64"])
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    problem_params: dict[str, list[Any]] = field(default_factory=dict)
    optimizer_params: dict[str, list[Any]] = field(default_factory=dict)
    steps: int = 1000
    tol: float | None = None
    max_time: float | None = None


def split_names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise UsageError(f"{option} {text!r} is not accepted: expected comma-separated names")
    return names


def split_numbers(text: str, option: str, kind: type = float) -> list[Any]:
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{option} {text!r} is not accepted: expected comma-separated "
                         f"{'integers' if kind is int else 'numbers'}") from None
    return values


def grid_assignments(items: Iterable[str], option: str) -> dict[str, list[str]]:
    """-P/-O items to {key: [alternative texts]}; splitting waits for the declarations."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"{option} {item!r} is not accepted: expected key=value")
        out.setdefault(key, []).append(value.strip())
    return out


def _alternatives(param: Param, texts: list[Any]) -> list[Any]:
    """Split each text into alternatives by the parameter's kind, then validate each."""
    values: list[Any] = []
    if param.kind == "floats" and texts and all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in texts):
        texts = [texts]  # TOML `betas = [0.9, 0.999]`: one list value, not two alternatives
    for text in texts:
        if not isinstance(text, str):
            values.append(text)  # from TOML: already typed
        elif param.kind == "floats":
            values += [t for t in text.split(";") if t.strip()]
        elif param.kind in ("int", "float", "bool"):
            values += text.split(",")
        else:
            values.append(text)
    return [param.parse(v) for v in values]


def read_campaign(path: str) -> Campaign:
    """A TOML campaign file: the same axes as the command line, as TOML values."""
    if not os.path.lexists(path):
        raise UsageError(f"{path}: cannot read it (no such file)")
    text = userfiles.read_text(path, "campaign")  # a FIFO or /dev/zero is refused, not read
    try:
        c = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    allowed = {"problems", "backends", "optimizers", "seeds", "lr", "dtype", "device",
               "problem_params", "optimizer_params", "steps", "tol", "max_time"}
    unknown = sorted(set(c) - allowed)
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r}; accepted: "
                         f"{', '.join(sorted(allowed))}")

    def names(key: str, default: list[str] | None = None) -> list[str]:
        value = c.get(key, default)
        if isinstance(value, str):
            value = [value]
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise UsageError(f"{path}: {key} must be a name or a list of names")
        return value

    def params(key: str) -> dict[str, list[Any]]:
        table = c.get(key, {})
        if not isinstance(table, dict):
            raise UsageError(f"{path}: {key} must be a table, e.g. [{key}]")
        return {k: v if isinstance(v, list) else [v] for k, v in table.items()}

    seeds = c.get("seeds", 1)
    seeds = list(range(seeds)) if isinstance(seeds, int) and not isinstance(seeds, bool) \
        else seeds
    lrs = c.get("lr", [None])
    return Campaign(
        problems=names("problems"), backends=names("backends", ["all"]),
        optimizers=names("optimizers", ["nadam"]), seeds=seeds,
        lrs=lrs if isinstance(lrs, list) else [lrs], dtypes=names("dtype", ["float64"]),
        devices=names("device", ["cpu"]), problem_params=params("problem_params"),
        optimizer_params=params("optimizer_params"), steps=c.get("steps", 1000),
        tol=c.get("tol"), max_time=c.get("max_time"))


def _product(declared: Sequence[Param], grid: Mapping[str, list[Any]], owner: str
             ) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of the alternatives of the parameters `owner` declares."""
    by_name = {p.name: p for p in declared}
    axes = []
    for key, texts in grid.items():
        if key in by_name:
            try:
                axes.append([(key, v) for v in _alternatives(by_name[key], texts)])
            except UsageError as exc:
                raise UsageError(f"{owner}: {exc}") from None
    return [tuple(combo) for combo in itertools.product(*axes)]


def expand(c: Campaign, registry: Registry | None = None
           ) -> tuple[list[RunSpec], list[tuple[str, str]]]:
    """The validated runs of a campaign, and the backends skipped with their reasons.

    Every name and value is checked, and every distinct problem instance is made once, so
    that a bad value (or a malformed data file) stops the campaign before it starts.
    """
    registry = registry or get_registry()
    _check_scalars(c)
    problems = [registry.get("problem", p) for p in c.problems]
    optimizers = [registry.get("optimizer", o) for o in c.optimizers]
    for key in c.problem_params:
        if not any(key in {p.name for p in prob.params} for prob in problems):
            raise UsageError(f"-P {key}: no problem of the campaign has it "
                             f"({', '.join(c.problems)})")
    for key in c.optimizer_params:
        if not any(key in {h.name for h in opt.hyperparams} for opt in optimizers):
            raise UsageError(f"-O {key}: no optimizer of the campaign has it "
                             f"({', '.join(c.optimizers)})")

    backends: list[tuple[str, str, str]] = []  # (backend, dtype, device)
    skipped: dict[tuple[str, str], None] = {}  # (backend, reason): each said once
    known_devices = {d for n in registry.names("backend")
                     for d in registry.get("backend", n).devices}
    wanted = c.backends if c.backends != ["all"] else "all"
    for dtype, device in itertools.product(c.dtypes, c.devices):
        if dtype not in DTYPES:
            raise UsageError(f"dtype={dtype} is not accepted: expected one of "
                             f"{', '.join(DTYPES)}")
        if device not in known_devices:
            raise UsageError(f"device={device} is not accepted: expected one of "
                             f"{', '.join(sorted(known_devices))}")
        try:
            chosen, unusable = api.select_backends(registry, wanted, dtype, device)
        except UsageError:
            if wanted != "all":
                raise
            # No backend runs this (dtype, device), e.g. cuda on a machine without one: with
            # `all`, its runs are skipped like any unavailable backend's, and the others go on.
            chosen = []
            unusable = [(n, api._unusable(registry.get("backend", n), dtype, device))
                        for n in registry.names("backend")]
        backends += [(b.name, dtype, device) for b in chosen]
        skipped.update(dict.fromkeys((n, r) for n, r in unusable if r))
    if not backends:
        raise UsageError("no backend can run this campaign: "
                         + "; ".join(f"{n}: {r}" for n, r in sorted(skipped)))

    specs: list[RunSpec] = []
    for prob in problems:
        for combo in _product(prob.params, c.problem_params, prob.name):
            p_params = resolve(prob.params, dict(combo), prob.name)
            prob.make(p_params, 0)  # reads and checks data files now, not mid-campaign
            frozen_p = tuple(p_params.items())
            for opt in optimizers:
                for o_combo in _product(opt.hyperparams, c.optimizer_params, opt.name):
                    for lr in c.lrs:
                        hp = api.optimizer_hyperparams(opt, dict(o_combo), lr)
                        opt.method(**hp)  # combinations the optimizer refuses (nesterov...)
                        for (backend, dtype, device), seed in itertools.product(backends,
                                                                                c.seeds):
                            specs.append(RunSpec(prob.name, frozen_p, backend, device, dtype,
                                                 opt.name, tuple(hp.items()), seed,
                                                 c.steps, c.tol, c.max_time))
    # One run per key (what --resume and the store go by): `--lr 0.1,0.10`, a repeated name
    # or alternative would otherwise run, and store, the same run twice.
    unique: dict[str, RunSpec] = {}
    for spec in specs:
        unique.setdefault(spec.key, spec)
    return list(unique.values()), sorted(skipped)


def _check_scalars(c: Campaign) -> None:
    def bad(name: str, value: Any, expected: str) -> UsageError:
        shown = repr(value) if isinstance(value, str) else value  # steps="5" is not 5
        return UsageError(f"{name}={shown} is not accepted: expected {expected}")

    if not isinstance(c.seeds, list) or not c.seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in c.seeds):
        raise bad("seeds", c.seeds, "a count >= 1 or a list of integers >= 0")
    if not isinstance(c.steps, int) or isinstance(c.steps, bool) or c.steps < 0:
        raise bad("steps", c.steps, "an integer >= 0")
    for name, value in (("tol", c.tol), ("max_time", c.max_time)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                      and value > 0):
            raise bad(name, value, "a number > 0")
    for lr in c.lrs:
        if lr is not None and not (isinstance(lr, (int, float)) and not isinstance(lr, bool)
                                   and math.isfinite(lr) and lr > 0):
            raise bad("lr", lr, "a number > 0")
