"""Running one run of a campaign, here: in this process or in a Dask worker's.

The bottom of the bench layers: the executors (bench/executors.py) call `run_one` wherever
they run, and the campaign loop (bench/execute.py) sits above them. A Dask worker imports
this module (by reference, through the pickled function), so it stays light.

Timing discipline: the first run of each (problem instance, backend, dtype, device) is
preceded by a short warm-up run that is thrown away, so first-call costs (imports, kernel
selection, caches) land in no record's loop time. Each run's own set-up is in its setup_s.
"""

from __future__ import annotations

from typing import Any

from optbench import api, plugindirs
from optbench.bench.campaign import Campaign, RunSpec
from optbench.plugins import Registry, get_registry
from optbench.results.code import code_info
from optbench.results.host import host_info

WARMUP_STEPS = 20

# Warm-up groups already run in this process (each worker process keeps its own).
_WARMED: set[tuple[Any, ...]] = set()


# The stop rules (steps, tol, max_time) are the spec's, part of its key: the grids of a
# union (a campaign file's [[grid]] tables) may each have their own.
def _options(spec: RunSpec) -> dict[str, Any]:
    return dict(problem_params=dict(spec.problem_params),
                optimizer_params=dict(spec.optimizer_params), seed=spec.seed,
                dtype=spec.dtype, device=spec.device, tol=spec.tol, max_time=spec.max_time)


def _finish(record: dict[str, Any], spec: RunSpec, campaign_id: str,
            host: dict[str, Any] | None, registry: Registry | None = None) -> dict[str, Any]:
    # The code of this process (a Dask worker's may differ from the client's): --resume
    # compares its version.
    code = code_info((registry or get_registry()).plugins)
    record.update(campaign=campaign_id, host=host, code=code, tol=spec.tol,
                  max_time=spec.max_time, max_steps=spec.max_steps)
    return record


def run_one(spec: RunSpec, campaign: Campaign, campaign_id: str,
            registry: Registry | None = None) -> dict[str, Any]:
    """Plan and execute one run, here; returns its record as a JSON-ready dict.

    The first run of its warm-up group in this process is preceded by a discarded warm-up.
    `registry`: where the spec's names are looked up (None: the process-wide one; the
    Python `optbench.bench` passes a copy holding the instances it was given).
    """
    if campaign.plugin_dirs:
        # The campaign's plugin folders, here too: a Dask worker is another process (on a
        # remote host, the folders must be at the same paths, as data files must).
        plugindirs.configure(campaign.plugin_dirs, what="plugin folder")
    options = _options(spec)
    group = (id(registry), spec.warmup_group)  # another registry: maybe other objects
    if group not in _WARMED:
        warm_plan = api.plan(spec.problem, spec.backend, spec.optimizer,
                             steps=min(spec.max_steps, WARMUP_STEPS), registry=registry,
                             **options)
        api.execute(warm_plan, warm_plan.backends[0])
        _WARMED.add(group)
    plan = api.plan(spec.problem, spec.backend, spec.optimizer, steps=spec.max_steps,
                    registry=registry, **options)
    record = api.execute(plan, plan.backends[0]).to_json()
    return _finish(record, spec, campaign_id, host_info(spec.device), registry)


def error_record(spec: RunSpec, campaign: Campaign, campaign_id: str, message: str
                 ) -> dict[str, Any]:
    """The record of a run that raised where it ran, outside the optimization loop (which
    records its own errors): status "error", with that message."""
    plan = api.plan(spec.problem, spec.backend, spec.optimizer, steps=spec.max_steps,
                    **_options(spec))
    record = api.blank_record(plan, plan.backends[0], message).to_json()
    return _finish(record, spec, campaign_id, None)
