"""A campaign: the cartesian product of axes, validated in full before a single run starts.

Axes come from the command line (`--problem regression,puzzle --lr 0.1,0.01 -P
n_samples=20,1000 --seeds 5`) or from a TOML file holding the same. A problem parameter
applies to the problems that declare it (n_samples to regression, not to puzzle), and an
optimizer hyperparameter to the optimizers that declare it; one that no problem (optimizer)
of the campaign declares is refused.

Alternatives of a parameter are separated by ',' — except for list-valued parameters
(betas, coefficients), whose alternatives are separated by ';' — and a repeated
`-P key=...` adds alternatives too (the only way for text and path parameters).

A grid is bounded before it is expanded: its planned runs, the product of its axes, are
counted first and more than MAX_PLANNED_RUNS are refused. The runs themselves are made on
demand (`Grid`), so that a large campaign starts its first run at once, and `--seeds N` is
a range, never a list of N numbers.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tomllib

from optbench import api, plugindirs, userfiles
from optbench.core import Param
from optbench.core.backend import DTYPES
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.plugins import Registry, get_registry
from optbench.results import run_key

MAX_PLANNED_RUNS = 1_000_000
"""The most runs a campaign may plan (before repeats are dropped). A run takes a few
milliseconds at the very least, so this is hours of work; a bigger grid is almost surely a
typo (`--seeds 1000000000`), and it would hold the progress count, the store's keys for
--resume and (on Dask) one future per run in memory."""


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
    seeds: Sequence[int]  # a list, or range(N) for `--seeds N`
    lrs: list[float | None] = field(default_factory=lambda: [None])
    dtypes: list[str] = field(default_factory=lambda: ["float64"])
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    problem_params: dict[str, list[Any]] = field(default_factory=dict)
    optimizer_params: dict[str, list[Any]] = field(default_factory=dict)
    steps: int = 1000
    tol: float | None = None
    max_time: float | None = None
    # Plugin folders (absolute paths) whose problems and optimizers the runs may name: every
    # process that runs them (a Dask worker) loads these first (bench/runone.py).
    plugin_dirs: tuple[str, ...] = ()
    # A registered suite (optbench.suites) whose entries are the problem instances, in
    # place of `problems`; problem_params then override an entry's own values (-P start=1
    # on `mgh`: each problem once, from its standard start).
    suite: str | None = None


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
    if not texts:  # TOML `n_samples = []`: the grid would silently lose that problem
        raise UsageError(f"{param.name} = [] has no alternative: expected "
                         f"{param.accepted()}, or a list of such values")
    values: list[Any] = []
    if param.kind == "floats" and all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in texts):
        texts = [texts]  # TOML `betas = [0.9, 0.999]`: one list value, not two alternatives
    for text in texts:
        if isinstance(text, bool) and param.kind != "bool":
            # TOML's true/false: a bool is an int to Python, but only a bool parameter
            # takes one (`coefficients = true` reached the list parser and crashed it).
            raise UsageError(f"{param.name}={text} is not accepted: expected "
                             f"{param.accepted()}")
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
    # Types are checked key by key (_check_scalars, _alternatives); TOML's true and false
    # are Python bools, which are ints, so every number check refuses bools explicitly.
    allowed = {"problems", "backends", "optimizers", "seeds", "lr", "dtype", "device",
               "problem_params", "optimizer_params", "steps", "tol", "max_time", "plugins",
               "suite"}
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

    # Plugin folders, relative to the campaign file's own folder (not the working directory),
    # checked now: a missing one is bad input, like a missing data file.
    plugins = c.get("plugins", [])
    if isinstance(plugins, str):
        plugins = [plugins]
    if not (isinstance(plugins, list) and all(isinstance(p, str) for p in plugins)):
        raise UsageError(f"{path}: plugins must be a folder or a list of folders, "
                         "e.g. plugins = [\".\"]")
    plugin_dirs = plugindirs.check_dirs(plugins, f"{path}: plugins",
                                        base=os.path.dirname(os.path.abspath(path)))
    seeds = c.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        seeds = range(seeds)  # a count: never a list (the grid's bound is checked later)
    lrs = c.get("lr", [None])
    suite = c.get("suite")
    if suite is not None and not (isinstance(suite, str) and suite):
        raise UsageError(f"{path}: suite must be a suite's name, e.g. suite = \"mgh\"")
    return Campaign(
        problems=names("problems") if suite is None or "problems" in c else [], suite=suite,
        backends=names("backends", ["all"]),
        optimizers=names("optimizers", ["nadam"]), seeds=seeds,
        lrs=lrs if isinstance(lrs, list) else [lrs], dtypes=names("dtype", ["float64"]),
        devices=names("device", ["cpu"]), problem_params=params("problem_params"),
        optimizer_params=params("optimizer_params"), steps=c.get("steps", 1000),
        tol=c.get("tol"), max_time=c.get("max_time"), plugin_dirs=tuple(plugin_dirs))


def _axes(declared: Sequence[Param], grid: Mapping[str, list[Any]], owner: str
          ) -> list[list[tuple[str, Any]]]:
    """The validated alternatives of each parameter `owner` declares, as (key, value) axes."""
    by_name = {p.name: p for p in declared}
    axes = []
    for key, texts in grid.items():
        if key in by_name:
            try:
                axes.append([(key, v) for v in _alternatives(by_name[key], texts)])
            except UsageError as exc:
                raise UsageError(f"{owner}: {exc}") from None
    return axes


def _combinations(axes: list[list[tuple[str, Any]]]) -> int:
    return math.prod(len(axis) for axis in axes)


@dataclass(frozen=True)
class _Head:
    """A run less its backend and seed: a problem instance and an optimizer setting."""

    problem: str
    problem_params: tuple[tuple[str, Any], ...]
    optimizer: str
    optimizer_params: tuple[tuple[str, Any], ...]
    max_steps: int | None = None  # the campaign's stop rules, part of every run's key
    tol: float | None = None
    max_time: float | None = None


class Grid(Sequence[RunSpec]):
    """A campaign's runs, in the order of the nested loops over its axes (problem instance,
    optimizer setting, backend/dtype/device, seed), each made when it is asked for.

    Heads, backends and seeds are each free of repeats, and every field of a run key is
    canonicalized on its own, so no two runs of the product share a key: nothing needs to
    be keyed, or held, to drop repeats. A million runs cost three short lists and a range.
    """

    def __init__(self, heads: Sequence[_Head], backends: Sequence[tuple[str, str, str]],
                 seeds: Sequence[int]) -> None:
        self._heads, self._backends, self._seeds = heads, backends, seeds
        self._per_head = len(backends) * len(seeds)

    def __len__(self) -> int:
        return len(self._heads) * self._per_head

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"run {index} of a grid of {n}")
        head, rest = divmod(i, self._per_head)
        backend, seed = divmod(rest, len(self._seeds))
        return _spec(self._heads[head], self._backends[backend], self._seeds[seed])

    def __iter__(self) -> Iterator[RunSpec]:
        for head in self._heads:
            for target, seed in itertools.product(self._backends, self._seeds):
                yield _spec(head, target, seed)

    def __repr__(self) -> str:
        return (f"Grid({len(self._heads)} heads x {len(self._backends)} backends x "
                f"{len(self._seeds)} seeds)")


def _spec(head: _Head, target: tuple[str, str, str], seed: int) -> RunSpec:
    backend, dtype, device = target
    return RunSpec(head.problem, head.problem_params, backend, device, dtype, head.optimizer,
                   head.optimizer_params, seed, head.max_steps, head.tol, head.max_time)


def expand(c: Campaign, registry: Registry | None = None
           ) -> tuple[Grid, list[tuple[str, str]]]:
    """The validated runs of a campaign (a Grid: a sequence made on demand), and the
    backends skipped with their reasons.

    Every name and value is checked, the planned runs are counted and bounded, and every
    distinct problem instance is made once, so that a bad value (or a malformed data file)
    stops the campaign before it starts.
    """
    registry = registry or get_registry()
    _check_scalars(c)
    entries = _entries(c, registry)
    problems = [prob for prob, _ in entries]
    optimizers = [registry.get("optimizer", o) for o in c.optimizers]
    for key in c.problem_params:
        if not any(key in {p.name for p in prob.params} for prob in problems):
            named = f"suite {c.suite}" if c.suite else ", ".join(c.problems)
            raise UsageError(f"-P {key}: no problem of the campaign has it ({named})")
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

    p_axes = [_axes(prob.params, c.problem_params, prob.name) for prob in problems]
    o_axes = [_axes(opt.hyperparams, c.optimizer_params, opt.name) for opt in optimizers]
    _check_bound(sum(map(_combinations, p_axes)), sum(map(_combinations, o_axes)),
                 len(c.lrs), len(backends), len(c.seeds))

    heads: dict[str, _Head] = {}  # by the run key of (head, first backend, first seed)
    for (prob, fixed), axes in zip(entries, p_axes, strict=True):
        for combo in itertools.product(*axes):
            p_params = resolve(prob.params, {**fixed, **dict(combo)}, prob.name)
            prob.make(p_params, 0)  # reads and checks data files now, not mid-campaign
            frozen_p = tuple(p_params.items())
            for opt, opt_axes in zip(optimizers, o_axes, strict=True):
                for o_combo in itertools.product(*opt_axes):
                    for lr in c.lrs:
                        hp = api.optimizer_hyperparams(opt, dict(o_combo), lr)
                        opt.method(**hp)  # combinations the optimizer refuses (nesterov...)
                        head = _Head(prob.name, frozen_p, opt.name, tuple(hp.items()),
                                     c.steps, c.tol, c.max_time)
                        # One run per key (what --resume and the store go by): `--lr
                        # 0.1,0.10`, a repeated name or alternative would otherwise run,
                        # and store, the same run twice.
                        heads.setdefault(_spec(head, backends[0], c.seeds[0]).key, head)
    seeds = c.seeds if isinstance(c.seeds, range) else list(dict.fromkeys(c.seeds))
    return Grid(list(heads.values()), list(dict.fromkeys(backends)), seeds), sorted(skipped)


def _entries(c: Campaign, registry: Registry) -> list[tuple[Any, dict[str, Any]]]:
    """The campaign's problems, each with the parameters its entry fixes: a suite's
    entries, or each named problem with none (the grid's -P alternatives come on top)."""
    if c.suite is None:
        return [(registry.get("problem", p), {}) for p in c.problems]
    if c.problems:
        raise UsageError(f"suite {c.suite} and problems {', '.join(c.problems)} exclude each "
                         "other: a suite names its own problems")
    suite = registry.get("suite", c.suite)
    if suite.unavailable:  # e.g. its data is not on this machine
        raise UsageError(f"suite {suite.name} is unavailable: {suite.unavailable}")
    entries = []
    for entry in suite.entries:
        try:
            prob = registry.get("problem", entry.problem)
        except UsageError as exc:  # the suite's plugin names a problem nobody registered
            raise UsageError(f"suite {suite.name}: {exc}") from None
        entries.append((prob, dict(entry.params)))
    return entries


def _check_bound(instances: int, settings: int, lrs: int, backends: int, seeds: int) -> None:
    planned = instances * settings * lrs * backends * seeds
    if planned > MAX_PLANNED_RUNS:
        raise UsageError(
            f"the campaign plans {planned:,} runs ({instances} problem instance(s) x "
            f"{settings} optimizer setting(s) x {lrs} learning rate(s) x {backends} "
            f"backend/dtype/device x {seeds} seed(s)); at most {MAX_PLANNED_RUNS:,} are "
            "accepted: fewer seeds or alternatives")


def _check_scalars(c: Campaign) -> None:
    def bad(name: str, value: Any, expected: str) -> UsageError:
        shown = repr(value) if isinstance(value, str) else value  # steps="5" is not 5
        return UsageError(f"{name}={shown} is not accepted: expected {expected}")

    def number(value: Any) -> bool:  # TOML's true is an int to Python: not a number here
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    seeds = c.seeds
    if isinstance(seeds, range):
        valid = len(seeds) >= 1 and seeds.start >= 0 and seeds.step > 0  # no need to look
    else:
        valid = isinstance(seeds, list) and bool(seeds) and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    if not valid:
        raise bad("seeds", seeds, "a count >= 1 or a list of integers >= 0")
    if not isinstance(c.steps, int) or isinstance(c.steps, bool) or c.steps < 0:
        raise bad("steps", c.steps, "an integer >= 0")
    # tol 0 runs every step, as `run --tol 0` does (no default stop where f* is known).
    if c.tol is not None and not (number(c.tol) and math.isfinite(c.tol) and c.tol >= 0):
        raise bad("tol", c.tol, "a number >= 0 (0: run every step)")
    if c.max_time is not None and not (number(c.max_time) and math.isfinite(c.max_time)
                                       and c.max_time > 0):
        raise bad("max_time", c.max_time, "a number > 0")
    if not (isinstance(c.lrs, list) and c.lrs):
        raise bad("lr", c.lrs, "a number > 0, or a list of numbers > 0")
    for lr in c.lrs:
        if lr is not None and not (number(lr) and math.isfinite(lr) and lr > 0):
            raise bad("lr", lr, "a number > 0")
