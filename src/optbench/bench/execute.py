"""Running a campaign's runs and appending each record, whole, as it finishes.

The top of the bench layers: `run_campaign` takes the runs an executor (bench/executors.py)
hands back, and only it appends to the results file. A run the executor reports as lost to
the infrastructure (`executors.Lost`) is not appended, so `--resume` runs it again.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from optbench.bench.campaign import Campaign, RunSpec
from optbench.bench.executors import InProcess, Lost
from optbench.results import ResultsStore


def new_campaign_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass
class Outcome:
    written: int
    already: int
    errors: int
    interrupted: bool
    lost: int = 0
    """Runs lost to the infrastructure: not appended, so `--resume` runs them."""
    lost_reasons: list[str] = field(default_factory=list)
    """Why they were lost: each reason once, in the order met."""
    other_code: int = 0
    """Runs to do again because other code ran them (their settings are recorded)."""


def run_campaign(specs: list[RunSpec], campaign: Campaign, store: ResultsStore, *,
                 resume: bool, progress: Callable[[Iterable[Any], int], Any] | None = None,
                 executor: Any = None, any_version: bool = False) -> Outcome:
    """Run every spec not yet in the store (by the same code, unless `any_version`); append
    each record as its run finishes."""
    executor = executor or InProcess()
    done = (store.keys(any_version=True) if any_version else store.keys()) if resume else set()
    # With nothing to skip, the grid (a sequence made on demand) streams: the first run
    # starts at once, however many are planned, and no run is keyed ahead of it.
    if not done:
        todo = specs
    elif any_version:
        todo = [s for s in specs if s.settings_key not in done]
    else:
        todo = [s for s in specs if s.key not in done]
    outcome = Outcome(0, len(specs) - len(todo), 0, False)
    if done and todo and not any_version:  # say why recorded settings run again
        settings = store.keys(any_version=True)
        outcome.other_code = sum(s.settings_key in settings for s in todo)
    finished = executor.results(todo, campaign, new_campaign_id())
    items = progress(finished, len(todo)) if progress else finished
    try:
        with _Sigint() as sigint:
            for _spec, record in items:
                if sigint.seen:  # swallowed where it landed: this run's record may be bogus
                    raise KeyboardInterrupt
                if isinstance(record, Lost):
                    outcome.lost += 1
                    if record.reason not in outcome.lost_reasons:
                        outcome.lost_reasons.append(record.reason)
                    continue
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
