"""A campaign: the cartesian product of axes, validated in full before a single run starts.

Axes come from the command line (`--problem regression,puzzle --lr 0.1,0.01 -P
n_samples=20,1000 --seeds 5`) or from a TOML file holding the same. A problem parameter
applies to the problems that declare it (n_samples to regression, not to puzzle), and an
optimizer hyperparameter to the optimizers that declare it; one that no problem (optimizer)
of the campaign declares is refused.

A hyperparameter grid may be scoped to one optimizer (`-O nadam:lr=0.1,0.01`, a table
`[optimizer_params.nadam]`): it applies to that optimizer only, and for it replaces the
unscoped alternatives of that key (`-O lr=...`, and `--lr` for `lr`). A scope must name an
optimizer of the campaign, and a key that optimizer declares.

A campaign file may hold several `[[grid]]` tables, each a full grid whose missing keys are
the file's top-level ones: the plan is their union, in order, each run once (`expand_all`).

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
from optbench.results.code import optbench_code

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
        """The results store's key of this run, run by this process's code (see
        optbench.results.run_key): --resume runs again what other code ran."""
        return run_key(self._fields(optbench_code()))

    @property
    def settings_key(self) -> str:
        """The key without the code's version (--resume-any-version)."""
        return run_key(self._fields(None), any_version=True)

    def _fields(self, code: dict[str, Any] | None) -> dict[str, Any]:
        return {"problem": self.problem,
                "problem_params": api.jsonable(dict(self.problem_params)),
                "backend": self.backend, "device": self.device, "dtype": self.dtype,
                "optimizer": self.optimizer,
                "optimizer_params": api.jsonable(dict(self.optimizer_params)),
                "seed": self.seed, "max_steps": self.max_steps, "tol": self.tol,
                "max_time": self.max_time, "compile": self.compile, "code": code}

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
    # Alternatives scoped to one optimizer, {optimizer: {key: [texts or values]}}: for that
    # optimizer they replace the unscoped ones of the same key (and `lrs` for "lr").
    per_optimizer: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
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
    # Where the campaign comes from when that is one of several (a campaign file's [[grid]]
    # table, "c.toml: grid 2"): its errors start with it.
    label: str | None = None


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


def optimizer_assignments(items: Iterable[str], option: str = "-O"
                          ) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """-O items to ({key: [texts]}, {optimizer: {key: [texts]}}): `KEY=V1,V2` applies to every
    optimizer that declares KEY, `NAME:KEY=V1,V2` to optimizer NAME only."""
    flat: dict[str, list[str]] = {}
    scoped: dict[str, dict[str, list[str]]] = {}
    for item in items:
        left, sep, value = item.partition("=")
        scope, colon, key = left.rpartition(":")
        scope, key = scope.strip(), key.strip()
        if not sep or not key.isidentifier() or (colon and not scope):
            raise UsageError(f"{option} {item!r} is not accepted: expected key=value or "
                             "optimizer:key=value")
        target = scoped.setdefault(scope, {}) if colon else flat
        target.setdefault(key, []).append(value.strip())
    return flat, scoped


_GRID_KEYS = {"problems", "backends", "optimizers", "seeds", "lr", "dtype", "device",
              "problem_params", "optimizer_params", "steps", "tol", "max_time", "suite"}
"""What a campaign file's top level and each of its [[grid]] tables may set."""


def read_campaigns(path: str) -> list[Campaign]:
    """A TOML campaign file: the same axes as the command line, as TOML values; one campaign,
    or one per [[grid]] table (each table's missing keys taken from the top level)."""
    if not os.path.lexists(path):
        raise UsageError(f"{path}: cannot read it (no such file)")
    text = userfiles.read_text(path, "campaign")  # a FIFO or /dev/zero is refused, not read
    try:
        c = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    _check_keys(c, _GRID_KEYS | {"plugins", "grid"}, path)
    # Plugin folders, relative to the campaign file's own folder (not the working directory),
    # checked now: a missing one is bad input, like a missing data file.
    plugins = c.get("plugins", [])
    if isinstance(plugins, str):
        plugins = [plugins]
    if not (isinstance(plugins, list) and all(isinstance(p, str) for p in plugins)):
        raise UsageError(f"{path}: plugins must be a folder or a list of folders, "
                         "e.g. plugins = [\".\"]")
    plugin_dirs = tuple(plugindirs.check_dirs(plugins, f"{path}: plugins",
                                              base=os.path.dirname(os.path.abspath(path))))
    top = {k: v for k, v in c.items() if k in _GRID_KEYS}
    if "grid" not in c:
        return [_campaign(top, path, plugin_dirs)]
    grids = c["grid"]
    if not (isinstance(grids, list) and grids and all(isinstance(g, dict) for g in grids)):
        raise UsageError(f"{path}: grid must be one or more [[grid]] tables")
    campaigns = []
    for number, table in enumerate(grids, 1):
        where = f"{path}: grid {number}"
        _check_keys(table, _GRID_KEYS, where)
        inherited = dict(top)
        if "suite" in table or "problems" in table:  # they exclude each other: one given
            inherited.pop("suite", None)             # here replaces the other's default
            inherited.pop("problems", None)
        # A key given here replaces the top level's, whole (a table included).
        campaigns.append(_campaign({**inherited, **table}, where, plugin_dirs, where))
    return campaigns


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; accepted: "
                         f"{', '.join(sorted(allowed))}")


def _campaign(c: Mapping[str, Any], where: str, plugin_dirs: tuple[str, ...],
              label: str | None = None) -> Campaign:
    """One grid's TOML keys as a Campaign. Types are checked key by key here, in
    _check_scalars and in _alternatives; TOML's true and false are Python bools, which are
    ints, so every number check refuses bools explicitly."""

    def names(key: str, default: list[str] | None = None) -> list[str]:
        value = c.get(key, default)
        if isinstance(value, str):
            value = [value]
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise UsageError(f"{where}: {key} must be a name or a list of names")
        return value

    def table(key: str) -> dict[str, Any]:
        value = c.get(key, {})
        if not isinstance(value, dict):
            raise UsageError(f"{where}: {key} must be a table, e.g. [{key}]")
        return value

    def alternatives(values: Mapping[str, Any]) -> dict[str, list[Any]]:
        return {k: v if isinstance(v, list) else [v] for k, v in values.items()}

    # [optimizer_params]: a parameter's alternatives, or a table [optimizer_params.NAME] of
    # alternatives scoped to optimizer NAME (no hyperparameter's value is a table).
    o_params = table("optimizer_params")
    scoped = {k: alternatives(v) for k, v in o_params.items() if isinstance(v, dict)}
    seeds = c.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        seeds = range(seeds)  # a count: never a list (the grid's bound is checked later)
    lrs = c.get("lr", [None])
    suite = c.get("suite")
    if suite is not None and not (isinstance(suite, str) and suite):
        raise UsageError(f"{where}: suite must be a suite's name, e.g. suite = \"mgh\"")
    return Campaign(
        problems=names("problems") if suite is None or "problems" in c else [], suite=suite,
        backends=names("backends", ["all"]),
        optimizers=names("optimizers", ["nadam"]), seeds=seeds,
        lrs=lrs if isinstance(lrs, list) else [lrs], dtypes=names("dtype", ["float64"]),
        devices=names("device", ["cpu"]),
        problem_params=alternatives(table("problem_params")),
        optimizer_params=alternatives({k: v for k, v in o_params.items()
                                       if not isinstance(v, dict)}),
        per_optimizer=scoped, steps=c.get("steps", 1000), tol=c.get("tol"),
        max_time=c.get("max_time"), plugin_dirs=plugin_dirs, label=label)


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
        i = _position(index, len(self), "grid")
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


def _position(index: int, n: int, what: str) -> int:
    """A Sequence's index (negative from the end) as a position in 0..n-1, else IndexError."""
    i = index + n if index < 0 else index
    if not 0 <= i < n:
        raise IndexError(f"run {index} of a {what} of {n}")
    return i


def _spec(head: _Head, target: tuple[str, str, str], seed: int) -> RunSpec:
    backend, dtype, device = target
    return RunSpec(head.problem, head.problem_params, backend, device, dtype, head.optimizer,
                   head.optimizer_params, seed, head.max_steps, head.tol, head.max_time)


class Union(Sequence[RunSpec]):
    """The runs of several grids, in order, each run once: a run of a later grid with the
    key of an earlier grid's run is left out (the first one kept).

    Still made on demand: a run's key is that of its head (problem instance and optimizer
    setting, stop rules included), its backend/dtype/device and its seed, so a repeat is
    found by looking the head up among the earlier grids' heads, then testing membership of
    the backend and the seed (a range's is arithmetic). Only the heads are keyed.
    """

    def __init__(self, grids: Sequence[Grid]) -> None:
        self._grids = list(grids)
        self._backends = [frozenset(g._backends) for g in self._grids]
        self._seeds = [g._seeds if isinstance(g._seeds, range) else frozenset(g._seeds)
                       for g in self._grids]
        # For each grid, each of its heads: the earlier grids that hold the same head.
        seen: dict[str, list[int]] = {}
        self._earlier: list[list[list[int]]] = []
        for k, grid in enumerate(self._grids):
            earlier = []
            for head in grid._heads:
                holders = seen.setdefault(_head_key(head), [])
                earlier.append(list(holders))
                holders.append(k)
            self._earlier.append(earlier)
        self._len = sum(self._count(k) for k in range(len(self._grids)))

    def _count(self, k: int) -> int:
        grid, total = self._grids[k], 0
        for earlier in self._earlier[k]:
            if not earlier:
                total += grid._per_head
                continue
            for target in grid._backends:
                covering = [self._seeds[j] for j in earlier if target in self._backends[j]]
                total += _uncovered(grid._seeds, covering)
        return total

    def _repeat(self, k: int, h: int, target: tuple[str, str, str], seed: int) -> bool:
        return any(target in self._backends[j] and seed in self._seeds[j]
                   for j in self._earlier[k][h])

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[RunSpec]:
        for k, grid in enumerate(self._grids):
            for h, head in enumerate(grid._heads):
                repeats = bool(self._earlier[k][h])
                for target, seed in itertools.product(grid._backends, grid._seeds):
                    if not (repeats and self._repeat(k, h, target, seed)):
                        yield _spec(head, target, seed)

    def __getitem__(self, index: Any) -> Any:
        # Walks from the start: a union is iterated (a campaign, a dry run's first runs);
        # indexing is there for the Sequence protocol.
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = _position(index, len(self), "union")
        return next(itertools.islice(iter(self), i, None))

    def __repr__(self) -> str:
        return f"Union({', '.join(map(repr, self._grids))}: {len(self)} runs)"


def _head_key(head: _Head) -> str:
    """A head's identity across grids: its part of the run key (see RunSpec.key)."""
    return run_key({"problem": head.problem,
                    "problem_params": api.jsonable(dict(head.problem_params)),
                    "optimizer": head.optimizer,
                    "optimizer_params": api.jsonable(dict(head.optimizer_params)),
                    "max_steps": head.max_steps, "tol": head.tol, "max_time": head.max_time})


def _uncovered(seeds: Sequence[int], covering: Sequence[Any]) -> int:
    """How many of `seeds` are in none of `covering` (ranges and frozensets), counted
    without listing a range: the seeds of `--seeds N` may be a million."""
    if not covering:
        return len(seeds)
    if not isinstance(seeds, range):
        return sum(1 for s in seeds if not any(s in other for other in covering))
    ranges = [o for o in covering if isinstance(o, range)]
    listed = {s for o in covering if not isinstance(o, range) for s in o if s in seeds}
    if seeds.step != 1 or any(r.step != 1 for r in ranges):  # not made here; counted slowly
        return sum(1 for s in seeds if not any(s in other for other in covering))
    # Step-1 ranges are intervals: merge those within `seeds`, count what they cover.
    spans = sorted((max(r.start, seeds.start), min(r.stop, seeds.stop)) for r in ranges)
    covered, end = 0, seeds.start
    for start, stop in spans:
        start = max(start, end)
        if stop > start:
            covered, end = covered + stop - start, stop
    covered += sum(1 for s in listed if not any(s in r for r in ranges))
    return len(seeds) - covered


def expand(c: Campaign, registry: Registry | None = None
           ) -> tuple[Grid, list[tuple[str, str]]]:
    """The validated runs of a campaign (a Grid: a sequence made on demand), and the
    backends skipped with their reasons.

    Every name and value is checked, the planned runs are counted and bounded, and every
    distinct problem instance is made once, so that a bad value (or a malformed data file)
    stops the campaign before it starts.
    """
    specs, skipped = expand_all([c], registry)
    assert isinstance(specs, Grid)
    return specs, skipped


def expand_all(campaigns: Sequence[Campaign], registry: Registry | None = None
               ) -> tuple[Grid | Union, list[tuple[str, str]]]:
    """The validated runs of a union of grids (a campaign file's [[grid]] tables): each
    grid's runs in order, a run already planned by an earlier grid left out. One campaign
    gives its Grid. The total planned is bounded before any grid is expanded."""
    registry = registry or get_registry()

    def each(step: Any, items: Sequence[Any], labels: Sequence[str | None]) -> list[Any]:
        out = []
        for item, label in zip(items, labels, strict=True):
            try:
                out.append(step(item, registry))
            except UsageError as exc:
                if label is None:
                    raise
                raise UsageError(f"{label}: {exc}") from None
        return out

    several = len(campaigns) > 1
    labels = [c.label or (f"grid {n}" if several else None)
              for n, c in enumerate(campaigns, 1)]
    prepared: list[_Prepared] = each(_prepare, campaigns, labels)
    _check_bound(prepared)
    grids: list[Grid] = each(_build, prepared, labels)
    skipped = sorted({s for p in prepared for s in p.skipped})
    return (grids[0] if not several else Union(grids)), skipped


@dataclass
class _Prepared:
    """A campaign validated and counted, nothing of its product made yet."""

    campaign: Campaign
    entries: list[tuple[Any, dict[str, Any]]]   # (problem, the parameters its entry fixes)
    p_axes: list[list[list[tuple[str, Any]]]]   # per entry: its parameters' alternatives
    optimizers: list[Any]
    o_axes: list[list[list[tuple[str, Any]]]]   # per optimizer: its hyperparameters'
    o_lrs: list[list[float | None]]             # per optimizer: --lr, or [None] when scoped
    backends: list[tuple[str, str, str]]        # (backend, dtype, device)
    skipped: list[tuple[str, str]]

    @property
    def instances(self) -> int:
        return sum(map(_combinations, self.p_axes))

    @property
    def settings(self) -> int:
        """Optimizer settings, learning rates included."""
        return sum(_combinations(axes) * len(lrs)
                   for axes, lrs in zip(self.o_axes, self.o_lrs, strict=True))

    @property
    def planned(self) -> int:
        return self.instances * self.settings * len(self.backends) * len(self.campaign.seeds)


def _prepare(c: Campaign, registry: Registry) -> _Prepared:
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
    scoped = _scoped(c, optimizers)

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
    o_axes, o_lrs = [], []
    for opt in optimizers:
        own = scoped.get(opt.name, {})
        # The optimizer's unscoped alternatives, less the keys its scope replaces, then its
        # scoped ones: the same axes, in the same order, from -O and from TOML.
        flat = {k: v for k, v in c.optimizer_params.items() if k not in own}
        o_axes.append(_axes(opt.hyperparams, flat, opt.name)
                      + _axes(opt.hyperparams, own, opt.name))
        o_lrs.append([None] if "lr" in own else c.lrs)
    return _Prepared(c, entries, p_axes, optimizers, o_axes, o_lrs, backends, list(skipped))


def _scoped(c: Campaign, optimizers: Sequence[Any]) -> dict[str, dict[str, list[Any]]]:
    """The campaign's per-optimizer alternatives by optimizer name, each scope checked: it
    names an optimizer of the campaign, and keys that optimizer declares."""
    by_name = {}
    for given, opt in zip(c.optimizers, optimizers, strict=True):
        by_name[given] = by_name[opt.name] = opt
    out: dict[str, dict[str, list[Any]]] = {}
    for scope, grid in c.per_optimizer.items():
        opt = by_name.get(scope)
        if opt is None:
            key = next(iter(grid), "")
            raise UsageError(f"{scope}:{key}: {scope} is not an optimizer of this campaign; "
                             f"accepted: {', '.join(dict.fromkeys(c.optimizers))}")
        declared = [h.name for h in opt.hyperparams]
        for key in grid:
            if key not in declared:
                raise UsageError(f"{scope}:{key}: optimizer {opt.name} has no "
                                 f"hyperparameter {key}; accepted: {', '.join(declared)}")
        for key, texts in grid.items():
            out.setdefault(opt.name, {}).setdefault(key, []).extend(texts)
    return out


def notes(c: Campaign) -> list[str]:
    """What the plan should say: a scoped value that replaces an unscoped one."""
    out = []
    for scope, grid in c.per_optimizer.items():
        for key in grid:
            if key in c.optimizer_params or (key == "lr" and c.lrs != [None]):
                out.append(f"{scope}:{key} replaces the unscoped {key} (--lr, -O {key}) "
                           f"for {scope}; the other optimizers keep it" if key == "lr" else
                           f"{scope}:{key} replaces the unscoped {key} for {scope}; the "
                           "other optimizers keep it")
    return out


def _build(p: _Prepared, registry: Registry) -> Grid:
    """The Grid of a prepared campaign: every distinct problem instance made once (its data
    files read and checked now, not mid-campaign), every optimizer setting checked."""
    c = p.campaign
    heads: dict[str, _Head] = {}  # by the run key of (head, first backend, first seed)
    for (prob, fixed), axes in zip(p.entries, p.p_axes, strict=True):
        for combo in itertools.product(*axes):
            p_params = resolve(prob.params, {**fixed, **dict(combo)}, prob.name)
            prob.make(p_params, 0)  # reads and checks data files now, not mid-campaign
            frozen_p = tuple(p_params.items())
            for opt, opt_axes, lrs in zip(p.optimizers, p.o_axes, p.o_lrs, strict=True):
                for o_combo in itertools.product(*opt_axes):
                    for lr in lrs:
                        hp = api.optimizer_hyperparams(opt, dict(o_combo), lr)
                        opt.method(**hp)  # combinations the optimizer refuses (nesterov...)
                        head = _Head(prob.name, frozen_p, opt.name, tuple(hp.items()),
                                     c.steps, c.tol, c.max_time)
                        # One run per key (what --resume and the store go by): `--lr
                        # 0.1,0.10`, a repeated name or alternative would otherwise run,
                        # and store, the same run twice.
                        heads.setdefault(_spec(head, p.backends[0], c.seeds[0]).key, head)
    seeds = c.seeds if isinstance(c.seeds, range) else list(dict.fromkeys(c.seeds))
    return Grid(list(heads.values()), list(dict.fromkeys(p.backends)), seeds)


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


def _check_bound(prepared: Sequence[_Prepared]) -> None:
    """At most MAX_PLANNED_RUNS planned over all grids, counted before any is expanded."""
    planned = sum(p.planned for p in prepared)
    if planned <= MAX_PLANNED_RUNS:
        return
    if len(prepared) == 1:
        p = prepared[0]
        lrs = {len(lrs) for lrs in p.o_lrs}
        if len(lrs) == 1:  # every optimizer crossed with the same learning rates
            n_lrs = lrs.pop()
            settings = f"{p.settings // n_lrs} optimizer setting(s) x {n_lrs} learning rate(s)"
        else:
            settings = f"{p.settings} optimizer setting(s), learning rates included"
        counted = (f"{p.instances} problem instance(s) x {settings} x {len(p.backends)} "
                   f"backend/dtype/device x {len(p.campaign.seeds)} seed(s)")
    else:
        counted = "; ".join(f"grid {n}: {p.planned:,}" for n, p in enumerate(prepared, 1))
    raise UsageError(f"the campaign plans {planned:,} runs ({counted}); at most "
                     f"{MAX_PLANNED_RUNS:,} are accepted: fewer seeds or alternatives")


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
