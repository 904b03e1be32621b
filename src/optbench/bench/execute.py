"""Running a campaign's runs and appending each record, whole, as it finishes.

Timing discipline: the first run of each (problem instance, backend, dtype, device) is
preceded by a short warm-up run that is thrown away, so first-call costs (imports, kernel
selection, caches) land in no record's loop time. Each run's own set-up is in its setup_s.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from optbench import api
from optbench.bench.campaign import Campaign, RunSpec
from optbench.results import ResultsStore
from optbench.results.host import host_info

WARMUP_STEPS = 20


def new_campaign_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


# Warm-up groups already run in this process (each worker process keeps its own).
_WARMED: set[tuple[Any, ...]] = set()


def _options(spec: RunSpec, campaign: Campaign) -> dict[str, Any]:
    return dict(problem_params=dict(spec.problem_params),
                optimizer_params=dict(spec.optimizer_params), seed=spec.seed,
                dtype=spec.dtype, device=spec.device, tol=campaign.tol,
                max_time=campaign.max_time)


def _finish(record: dict[str, Any], spec: RunSpec, campaign: Campaign, campaign_id: str,
            host: dict[str, Any] | None) -> dict[str, Any]:
    record.update(campaign=campaign_id, host=host, tol=campaign.tol,
                  max_time=campaign.max_time, max_steps=campaign.steps)
    return record


def run_one(spec: RunSpec, campaign: Campaign, campaign_id: str) -> dict[str, Any]:
    """Plan and execute one run, here; returns its record as a JSON-ready dict.

    The first run of its warm-up group in this process is preceded by a discarded warm-up.
    """
    options = _options(spec, campaign)
    if spec.warmup_group not in _WARMED:
        warm_plan = api.plan(spec.problem, spec.backend, spec.optimizer,
                             steps=min(campaign.steps, WARMUP_STEPS), **options)
        api.execute(warm_plan, warm_plan.backends[0])
        _WARMED.add(spec.warmup_group)
    plan = api.plan(spec.problem, spec.backend, spec.optimizer, steps=campaign.steps,
                    **options)
    record = api.execute(plan, plan.backends[0]).to_json()
    return _finish(record, spec, campaign, campaign_id, host_info(spec.device))


def error_record(spec: RunSpec, campaign: Campaign, campaign_id: str, message: str
                 ) -> dict[str, Any]:
    """The record of a run that never finished (its workers died): status "error"."""
    plan = api.plan(spec.problem, spec.backend, spec.optimizer, steps=campaign.steps,
                    **_options(spec, campaign))
    record = api.blank_record(plan, plan.backends[0], message).to_json()
    return _finish(record, spec, campaign, campaign_id, None)


@dataclass
class Outcome:
    written: int
    already: int
    errors: int
    interrupted: bool


def run_campaign(specs: list[RunSpec], campaign: Campaign, store: ResultsStore, *,
                 resume: bool, progress: Callable[[Iterable[Any], int], Any] | None = None,
                 executor: Any = None) -> Outcome:
    """Run every spec not yet in the store; append each record as its run finishes."""
    from optbench.bench.executors import InProcess

    executor = executor or InProcess()
    done = store.keys() if resume else set()
    # With nothing to skip, the grid (a sequence made on demand) streams: the first run
    # starts at once, however many are planned, and no run is keyed ahead of it.
    todo = [s for s in specs if s.key not in done] if done else specs
    outcome = Outcome(0, len(specs) - len(todo), 0, False)
    finished = executor.results(todo, campaign, new_campaign_id())
    items = progress(finished, len(todo)) if progress else finished
    try:
        with _Sigint() as sigint:
            for _spec, record in items:
                if sigint.seen:  # swallowed where it landed: this run's record may be bogus
                    raise KeyboardInterrupt
                with sigint.deferred():  # so that the summary counts what the file holds
                    store.append(record)
                    outcome.written += 1
                    outcome.errors += record["status"] == "error"
                if sigint.seen:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        # The run in flight is dropped; every line written so far is whole.
        outcome.interrupted = True
    finally:
        for it in (items, finished):
            if hasattr(it, "close"):
                it.close()
        executor.close()
    return outcome


class _Sigint:
    """Ctrl-C during a campaign, remembered even where the KeyboardInterrupt is swallowed.

    Third-party code may catch BaseException (autograd's import does, so a SIGINT landing
    there was lost and the campaign ran on); the flag stops the campaign after that run.
    Installed only over Python's default handler, in the main thread: an ignored SIGINT
    (a background job) stays ignored. One landing in a destructor (Dask's Future.__del__)
    is swallowed there too, and Python would print "Exception ignored in ..." with a
    traceback: that report is dropped, the flag has it.
    """

    def __init__(self) -> None:
        self.seen = False
        self._defer = False
        self._previous: Any = None
        self._previous_hook: Any = None

    def __enter__(self) -> _Sigint:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            sys.unraisablehook = self._previous_hook

    def _unraisable(self, info: Any) -> None:
        if not (self.seen and isinstance(info.exc_value, KeyboardInterrupt)):
            self._previous_hook(info)

    def _handle(self, signum: int, frame: Any) -> None:
        self.seen = True
        if not self._defer:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A SIGINT in this block is only remembered (raised by the caller's check after)."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False


def progress_bar(quiet: bool) -> Callable[[Iterable[Any], int], Any] | None:
    """A tqdm bar on stderr: runs done, total, time left. Off when quiet or not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    def wrap(items: Iterable[Any], total: int) -> Any:
        return tqdm(items, total=total, file=sys.stderr, unit="run", dynamic_ncols=True)

    return wrap
