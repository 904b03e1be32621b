"""`optbench.bench(...)`: a campaign from Python, run in this process.

A thin layer over what `optbench bench` drives (campaign.expand, execute.run_campaign): the
same validation of the whole grid before any run, the same warm-up, the same records and,
with `output`, the same results file (and `resume`). Problems, backends and optimizers may
be names or instances; instances are run from a copy of the registry (api.with_instances),
never registered in the process-wide one.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from optbench import api
from optbench.bench.campaign import Campaign, expand
from optbench.bench.execute import run_campaign
from optbench.bench.executors import InProcess
from optbench.core import RunRecord
from optbench.errors import UsageError
from optbench.plugins import get_registry


class _Memory:
    """The store of a campaign without a results file: the records, in a list."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def keys(self, any_version: bool = False) -> set[str]:
        return set()

    def append(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))


class _Collecting:
    """A results store that also keeps, by run key, what this campaign appends to it."""

    def __init__(self, store: Any) -> None:
        self.store, self.new = store, {}

    def keys(self, any_version: bool = False) -> set[str]:
        return self.store.keys(any_version=any_version)

    def append(self, record: Mapping[str, Any]) -> None:
        from optbench.results import run_key

        self.store.append(record)
        self.new[run_key(record)] = dict(record)


def _items(value: Any) -> list[Any]:
    """One name or instance, or a list (tuple) of them, as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _alternatives(params: Mapping[str, Any] | None, option: str) -> dict[str, list[Any]]:
    """{key: value or [alternatives]} as the campaign takes them (TOML's shape: a list of
    numbers for a list-valued parameter is one value)."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise UsageError(f"{option}={params!r:.80} is not accepted: expected a dict of "
                         "parameter names to a value or a list of alternatives")
    return {k: [*v] if isinstance(v, (list, tuple)) else [v] for k, v in params.items()
            if not isinstance(v, Mapping)}


def _scoped(params: Mapping[str, Any] | None) -> dict[str, dict[str, list[Any]]]:
    """{optimizer: {key: value or [alternatives]}} entries of optimizer_params: a grid
    scoped to that optimizer, as a campaign file's [optimizer_params.NAME] table."""
    if not isinstance(params, Mapping):
        return {}
    return {name: _alternatives(grid, f"optimizer_params[{name!r}]")
            for name, grid in params.items() if isinstance(grid, Mapping)}


def bench(problems: Any = "regression", backends: Any = "all", optimizers: Any = "nadam",
          seeds: int | Sequence[int] = 1, *, lr: float | Sequence[float] | None = None,
          dtype: str | Sequence[str] = "float64", device: str | Sequence[str] = "cpu",
          problem_params: Mapping[str, Any] | None = None,
          optimizer_params: Mapping[str, Any] | None = None, steps: int = 1000,
          tol: float | None = None, max_time: float | None = None,
          output: str | None = None, resume: bool = False,
          suite: str | None = None) -> list[RunRecord]:
    """Run a grid in this process; see `optbench.bench`. With `suite` (a registered suite's
    name), its entries are the problem instances and `problems` must be left out.
    optimizer_params may hold {optimizer: {key: alternatives}} entries, a grid scoped to
    that optimizer (which replaces the unscoped key, and `lr`, for it)."""
    if suite is not None:
        if problems != "regression":
            raise UsageError(f"suite={suite!r} and problems={problems!r} exclude each other: "
                             "a suite names its own problems")
        problems = []
    given = {"problem": _items(problems), "backend": _items(backends),
             "optimizer": _items(optimizers)}
    instances = [(kind, item) for kind, items in given.items() for item in items
                 if not isinstance(item, str)]
    registry = api.with_instances(get_registry(), instances) if instances else get_registry()
    names = {kind: [api.lookup(registry, kind, item).name if not isinstance(item, str)
                    else item for item in items] for kind, items in given.items()}
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise UsageError(f"seeds={seeds} is not accepted: expected a count >= 1 or a "
                             "list of integers >= 0")
        seeds = range(seeds)
    campaign = Campaign(
        problems=names["problem"], backends=names["backend"], optimizers=names["optimizer"],
        seeds=seeds if isinstance(seeds, range) else list(seeds),
        lrs=[None] if lr is None else _items(lr), dtypes=_items(dtype),
        devices=_items(device), problem_params=_alternatives(problem_params, "problem_params"),
        optimizer_params=_alternatives(optimizer_params, "optimizer_params"),
        per_optimizer=_scoped(optimizer_params), steps=steps, tol=tol, max_time=max_time,
        suite=suite)
    specs, skipped = expand(campaign, registry)
    for name, reason in skipped:
        warnings.warn(f"optbench.bench: skipping backend {name}: {reason}", stacklevel=2)
    executor = InProcess(registry)
    if output is None:
        if resume:
            raise UsageError("resume=True needs output: the results file to complete")
        memory = _Memory()
        _run(specs, campaign, memory, executor, resume=False)
        return [RunRecord.from_json(r) for r in memory.records]

    from optbench.results import ResultsStore

    store = ResultsStore(output)  # warnings about the file go to warnings.warn
    with store.writing() as present:
        if present and not resume:
            raise UsageError(f"output={output} already holds {len(present)} records: pass "
                             "resume=True to complete that campaign, or choose another file")
        collecting = _Collecting(store)
        _run(specs, campaign, collecting, executor, resume=resume)
    from optbench.results import run_key

    stored = {run_key(r): r for r in present}
    found = (collecting.new.get(s.key) or stored.get(s.key) for s in specs)
    return [RunRecord.from_json(r) for r in found if r is not None]


def _run(specs: Any, campaign: Campaign, store: Any, executor: InProcess, *,
         resume: bool) -> None:
    outcome = run_campaign(specs, campaign, store, resume=resume, executor=executor)
    if outcome.interrupted:  # run_campaign keeps every whole record; the caller gets Ctrl-C
        raise KeyboardInterrupt
