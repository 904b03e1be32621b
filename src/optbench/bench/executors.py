"""Where a campaign's runs execute: in this process, or on Dask distributed.

Whatever runs them, only the campaign loop (bench/execute.py) appends to the results file,
one whole record at a time as runs finish. Runs are independent: every worker plans its own
run from the RunSpec (bench/runone.py) and records its own host.

An executor hands back, for each run, its record — or `Lost`: the run was lost to the
infrastructure and has no record, so that `--resume` runs it again. What is lost:

- the connection to the scheduler (the scheduler died): every run not yet fetched;
- runs cancelled on the cluster (by another client, or a scheduler restart);
- KilledWorker: the run was on `allowed-failures` workers (Dask's setting, 3 by default)
  that all died while it ran. It may be the run's own fault (a plugin that crashes the
  interpreter) or the infrastructure's (workers killed under it: OOM killer, operator).
  Dask cannot tell; neither can we. It is counted as lost, not recorded as an error: a
  wrong "error" record would make every later `--resume` skip the run for good, while a
  wrong "lost" costs one retry, reported each time — and in-process, a run that crashes
  the interpreter leaves no record either;
- every worker gone for NO_WORKER_TIMEOUT_S: the runs still to do. Local workers that die
  are restarted by their nanny, and replaced when it gives up (see _Watch).

A run that raised on its worker, outside the optimization loop (a plugin missing there),
is recorded with status "error" and the exception: retrying it would not help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from optbench.bench import runone
from optbench.bench.campaign import Campaign, RunSpec
from optbench.errors import UsageError

# A scheduler that cannot be reached, or does not answer as one, must be reported within
# 10 s of the command's start. The interpreter, imports (distributed's alone: 2.5 s) and the
# grid take 1.5 s on an idle machine, 4.5 s on a loaded one, and the exit after the message
# 0.5 s; so the probe and the client share what is left of COMMAND_DEADLINE_S, at most
# CONNECT_TIMEOUT_S, at least MIN_CONNECT_S. See connect_budget().
COMMAND_DEADLINE_S = 8.0
CONNECT_TIMEOUT_S = 5.0
MIN_CONNECT_S = 2.0
# How often the campaign looks at the cluster while it waits for runs to finish.
POLL_S = 1.0
# A local worker missing from the scheduler this long is replaced: its nanny did not restart
# it (a restart takes 3-10 s on a loaded machine; Dask's own lost-worker-timeout is 15 s).
REPLACE_AFTER_S = 30.0
# With no worker for this long (the local ones could not be replaced, or a scheduler's
# workers went away), the campaign stops: the runs still to do are lost, --resume does them.
NO_WORKER_TIMEOUT_S = 120.0
# How long closing the client and the local cluster may take before we leave them.
CLOSE_TIMEOUT_S = 20


@dataclass(frozen=True)
class Lost:
    """A run lost to the infrastructure: no record is written for it."""

    reason: str


class InProcess:
    """One run at a time in this process: timings least disturbed (the default).

    `registry`: where the runs' names are looked up (None: the process-wide one)."""

    def __init__(self, registry: Any = None) -> None:
        self.registry = registry

    def results(self, todo: list[RunSpec], campaign: Campaign, campaign_id: str
                ) -> Iterator[tuple[RunSpec, dict[str, Any] | Lost]]:
        for spec in todo:
            yield spec, runone.run_one(spec, campaign, campaign_id, self.registry)

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


def _first_line(exc: BaseException, limit: int = 120) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."


def connect_budget() -> float:
    """Seconds to connect to a scheduler: what is left of COMMAND_DEADLINE_S since this
    process started, within [MIN_CONNECT_S, CONNECT_TIMEOUT_S]. A process older than the
    deadline (the Python API, a test session) is no command starting: it gets
    CONNECT_TIMEOUT_S."""
    try:
        import psutil  # a dependency of distributed

        age = time.time() - psutil.Process().create_time()
    except Exception:
        return CONNECT_TIMEOUT_S
    if age >= COMMAND_DEADLINE_S:
        return CONNECT_TIMEOUT_S
    return min(CONNECT_TIMEOUT_S, max(MIN_CONNECT_S, COMMAND_DEADLINE_S - age))


def probe_scheduler(address: str, timeout: float) -> None:
    """Check, within `timeout` seconds in all, that a Dask scheduler answers at `address`;
    ConnectionError (one line) if not.

    Dask's own connect cannot be trusted with a stranger: its handshake waits for an answer
    without a time limit (a server that accepts and never answers — or waits for a request
    of its own, as an HTTP server does — hangs the client forever), and it allocates
    whatever size the first 8 bytes announce (text such as "HTTP/1.0" announces exabytes:
    MemoryError, or numpy's "Maximum allowed dimension exceeded"). So the handshake and an
    `identity` call run here, in an event loop of their own under one hard deadline,
    before the Client is made; whatever goes wrong ends as one line.
    """
    from distributed.core import rpc

    # The connect gives up (OSError) a little before the deadline: a timeout of the whole
    # probe then means a connection was made that did not answer.
    connect_s = max(0.5, timeout - 0.5)

    async def identity() -> dict[str, Any]:
        async with rpc(address, timeout=connect_s) as scheduler:
            return await scheduler.identity()

    try:
        info = asyncio.run(asyncio.wait_for(identity(), timeout))
    except (TimeoutError, asyncio.TimeoutError):
        raise ConnectionError(f"no Dask scheduler at {address}: the server there accepted "
                              f"the connection but did not answer within {timeout:.1f} s"
                              ) from None
    except OSError as exc:  # refused, unreachable, closed during the handshake
        # Dask's "Timed out trying to connect" says less than the error it gave up on,
        # which it words "in <TCPConnector object at 0x...>: ConnectionRefusedError: ...".
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        detail = re.sub(r"^in <[^>]*>: ", "", str(cause).strip()) or type(cause).__name__
        raise ConnectionError(f"cannot reach the Dask scheduler at {address} within "
                              f"{timeout:.1f} s ({detail.splitlines()[0][:120]})") from None
    except Exception as exc:  # garbage where a Dask message was expected
        raise ConnectionError(f"no Dask scheduler at {address}: the server there does not "
                              f"speak Dask's protocol ({_first_line(exc)})") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind != "Scheduler":
        raise ConnectionError(f"no Dask scheduler at {address}: what answers there is "
                              f"{'a Dask ' + kind if isinstance(kind, str) else 'not one'}")


class Dask:
    """Runs submitted to a Dask cluster: a running scheduler, or N local worker processes.

    Local workers run one run at a time each (one thread), so timings stay meaningful.
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        distributed = require_dask()
        if scheduler is not None:
            check_address(scheduler)
        budget = connect_budget()
        deadline = time.monotonic() + budget
        self.workers = workers
        self.cluster = None
        self._quiet = _quiet_dask()
        self._quiet.__enter__()
        try:
            if scheduler is not None:
                probe_scheduler(scheduler, budget)
                # What is left of the budget; the probe has shown a scheduler answers.
                left = max(1.0, deadline - time.monotonic())
                try:
                    self.client = distributed.Client(scheduler, timeout=left)
                except Exception as exc:
                    raise ConnectionError(f"cannot connect to the Dask scheduler at "
                                          f"{scheduler} ({_first_line(exc)})") from None
            else:
                # No dashboard; the scheduler's HTTP server (always started) on a free
                # loopback port: by default it tries 8787 and warns on stderr when taken.
                try:
                    self.cluster = distributed.LocalCluster(
                        n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.CRITICAL,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
                    self.client = distributed.Client(self.cluster)
                except Exception as exc:  # a worker killed while the cluster starts...
                    raise ConnectionError(f"cannot start {workers} local Dask workers "
                                          f"({_first_line(exc)})") from None
        except BaseException:
            self._quiet.__exit__(None, None, None)
            raise

    def results(self, todo: list[RunSpec], campaign: Campaign, campaign_id: str
                ) -> Iterator[tuple[RunSpec, dict[str, Any] | Lost]]:
        """Each run's record (or Lost) as it finishes, in the order they finish.

        The cluster is watched between finishes: local workers that died and were not
        restarted by their nanny are replaced, and with no worker at all for
        NO_WORKER_TIMEOUT_S the runs still to do are handed back as lost.
        """
        futures = {self.client.submit(runone.run_one, spec, campaign, campaign_id,
                                      pure=False): spec
                   for spec in todo}
        pending = set(futures)
        watch = _Watch(self)
        try:
            while pending:
                for future in self._some_done(pending):
                    outcome = self._outcome(future, futures[future], campaign, campaign_id)
                    if outcome is not None:
                        pending.discard(future)
                        yield futures[future], outcome
                reason = watch.check()
                if reason is not None:
                    for future in list(pending):
                        pending.discard(future)
                        yield futures[future], Lost(reason)
        finally:
            with contextlib.suppress(Exception):
                self.client.cancel(list(pending))

    def _some_done(self, pending: set[Any]) -> list[Any]:
        """The futures that are done, waiting up to POLL_S for one."""
        from distributed import wait

        with contextlib.suppress(Exception):  # nothing done in time; or the client is gone
            wait(list(pending), timeout=POLL_S, return_when="FIRST_COMPLETED")
        return [f for f in pending if f.done()]

    def _outcome(self, future: Any, spec: RunSpec, campaign: Campaign, campaign_id: str
                 ) -> dict[str, Any] | Lost | None:
        """The run's record, Lost, or None: not done after all (it finished on a worker
        that died before its result came back: Dask runs it again)."""
        from distributed import KilledWorker

        try:
            return future.result(timeout=POLL_S)
        except Exception as exc:
            status = future.status
            if status == "error" and isinstance(exc, KilledWorker):
                return Lost("the workers running them died (KilledWorker)")
            if status == "error":  # it raised where it ran
                return runone.error_record(spec, campaign, campaign_id, _first_line(exc, 500))
            if status == "cancelled":
                reason = getattr(exc, "reason", "")
                if reason == "scheduler-connection-lost":
                    return Lost("the connection to the Dask scheduler was lost")
                return Lost(f"cancelled on the Dask cluster ({reason or _first_line(exc)})")
            return None  # pending again, or its result could not be fetched yet

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=CLOSE_TIMEOUT_S)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=CLOSE_TIMEOUT_S)
        self._quiet.__exit__(None, None, None)


class _Watch:
    """Looks at the cluster while a campaign waits on it: replaces local workers that are
    gone, and says why to stop when the campaign cannot go on."""

    def __init__(self, dask: Dask) -> None:
        self.dask = dask
        self.last_worker = time.monotonic()
        self.missing_since: dict[str, float] = {}  # local workers the scheduler lacks

    def check(self) -> str | None:
        """None while the campaign can go on, else why its runs still to do are lost."""
        client = self.dask.client
        if client.status not in ("running", "connecting"):
            return "the connection to the Dask scheduler was lost"
        try:
            workers = client.scheduler_info()["workers"]
        except Exception:  # the scheduler is going: the client cancels the runs itself
            workers = None
        now = time.monotonic()
        if workers:
            self.last_worker = now
        if workers is not None and self.dask.cluster is not None:
            self._replace_lost(self.dask.cluster, {str(w.get("name")) for w in
                                                   workers.values()}, now)
        if now - self.last_worker > NO_WORKER_TIMEOUT_S:
            return f"no Dask worker for {NO_WORKER_TIMEOUT_S:.0f} s"
        return None

    def _replace_lost(self, cluster: Any, up: set[str], now: float) -> None:
        """A nanny restarts its worker when the process dies; one whose restart fails (a
        kill during the restart, a slow start on a loaded machine) gives up for good, and
        the cluster may keep it. A worker missing for REPLACE_AFTER_S is taken out of the
        cluster's spec, so that scale() closes its nanny and starts a new one."""
        spec = cluster.worker_spec  # {name: how to start it}: what LocalCluster maintains
        missing = {str(name): name for name in list(spec) if str(name) not in up}
        self.missing_since = {k: self.missing_since.get(k, now) for k in missing}
        stale = [k for k, since in self.missing_since.items() if now - since > REPLACE_AFTER_S]
        with contextlib.suppress(Exception):
            for key in stale:
                spec.pop(missing[key], None)
                del self.missing_since[key]
            if stale or len(cluster.workers) < len(spec) or len(spec) < self.dask.workers:
                cluster.scale(self.dask.workers)
