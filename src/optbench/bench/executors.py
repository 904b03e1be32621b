"""Where a campaign's runs execute: in this process, or on Dask distributed.

Whatever runs them, only the campaign loop (bench/execute.py) appends to the results file,
one whole record at a time as runs finish. Runs are independent: every worker plans its own
run from the RunSpec (bench/runone.py) and records its own host.

Lost runs: when a Dask worker dies, the scheduler resubmits its runs elsewhere; a run that
was on `allowed-failures` dying workers (Dask's setting, 3 by default) comes back as
KilledWorker and is recorded with status "error" and that reason — never dropped.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from optbench.bench import runone
from optbench.bench.campaign import Campaign, RunSpec
from optbench.errors import UsageError

# An unreachable scheduler must be reported within 10 s of the command's start: the
# interpreter, imports and the grid take 0.5 s on an idle machine, 2 s on a loaded one.
CONNECT_TIMEOUT_S = 5


class InProcess:
    """One run at a time in this process: timings least disturbed (the default)."""

    def results(self, todo: list[RunSpec], campaign: Campaign, campaign_id: str
                ) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        for spec in todo:
            yield spec, runone.run_one(spec, campaign, campaign_id)

    def close(self) -> None:
        pass


def require_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError("--workers and --scheduler need Dask distributed: "
                         "pip install 'optbench[distributed]'") from None
    return distributed


_ADDRESS = re.compile(r"(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def check_address(address: str) -> None:
    """tcp://HOST:PORT (or tls://), checked here: Dask's own parsing of a malformed
    address fails in ways that depend on its state (ValueError, or a bare AssertionError)."""
    match = _ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise UsageError(f"--scheduler {address!r} is not accepted: expected tcp://HOST:PORT")


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    # Dask logs connection retries and worker deaths at WARNING/ERROR; the campaign reports
    # what matters itself (one line), so its loggers stay quiet meanwhile.
    # Their children with levels of their own too (Dask sets distributed.client to WARNING:
    # "Couldn't gather 1 keys, rescheduling" when a worker dies).
    roots = ("distributed", "tornado", "asyncio")
    names = [*roots, *(n for n, lg in list(logging.root.manager.loggerDict.items())
                       if isinstance(lg, logging.Logger) and lg.level
                       and n.split(".")[0] in roots and n not in roots)]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class Dask:
    """Runs submitted to a Dask cluster: a running scheduler, or N local worker processes.

    Local workers run one run at a time each (one thread), so timings stay meaningful.
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        distributed = require_dask()
        if scheduler is not None:
            check_address(scheduler)
        self._quiet = _quiet_dask()
        self._quiet.__enter__()
        self.cluster = None
        try:
            if scheduler is not None:
                self.client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
            else:
                # No dashboard; the scheduler's HTTP server (always started) on a free
                # loopback port: by default it tries 8787 and warns on stderr when taken.
                self.cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.CRITICAL,
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
                self.client = distributed.Client(self.cluster)
        except ValueError as exc:  # a malformed address: no port, unknown scheme...
            self._quiet.__exit__(None, None, None)
            if scheduler is None:
                raise
            raise UsageError(f"--scheduler {scheduler!r} is not accepted: {exc} "
                             "(expected tcp://HOST:PORT)") from None
        except (OSError, TimeoutError) as exc:
            self._quiet.__exit__(None, None, None)
            where = scheduler or "a local cluster"
            raise ConnectionError(f"cannot reach the Dask scheduler at {where} within "
                                  f"{CONNECT_TIMEOUT_S} s ({type(exc).__name__})") from None

    def results(self, todo: list[RunSpec], campaign: Campaign, campaign_id: str
                ) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        from distributed import as_completed

        futures = {self.client.submit(runone.run_one, spec, campaign, campaign_id, pure=False): spec
                   for spec in todo}
        try:
            for future in as_completed(futures):
                spec = futures.pop(future)
                # Not future.status: a run that finished on a worker that died before its
                # result was fetched is "lost" again, and result() waits for its rerun.
                try:
                    record = future.result()
                except Exception as exc:  # KilledWorker after repeated worker deaths...
                    record = runone.error_record(spec, campaign, campaign_id,
                                          f"{type(exc).__name__}: {exc}")
                yield spec, record
        finally:
            self.client.cancel(list(futures))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        self._quiet.__exit__(None, None, None)
