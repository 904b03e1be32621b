"""The results store: one run record per line, appended whole or not at all.

Writing. `append` writes a record as one line on a descriptor opened with O_APPEND, under an
exclusive `flock` of the results file, then `fsync`s it. A write or fsync that fails (a full
disk, `ulimit -f`, a quota) is rolled back: the file is truncated to its size before, so
it never keeps a partial line that we could remove. Only a crash, SIGKILL or power loss in
the middle of a write leaves a partial *last* line, and nothing can break a line between
whole ones.

A campaign holds the file for its whole duration (`writing`), and before anything runs:
- the path must be a regular file we can open for writing: a FIFO, /dev/null, a directory,
  an immutable or read-only file is refused (UsageError);
- its lock is taken without waiting: a second campaign on the same file is refused, in one
  line naming the process that holds it;
- every complete line must be a run record (see `optbench.results.lines`), else the file
  is not a results file and is refused, byte for byte unchanged. The one thing that may be
  cut is what a killed writer leaves: a partial record as the last line, after whole
  records; a warning says so, and it is cut just before the next record is appended.

Reading (`records`: for `optbench report`, `results.load`) is lenient: lines that are not
run records are skipped and counted in one warning; a partial last line is ignored with a
warning. Hostile lines never reach the caller (`lines.parse_record`), and reading is bounded
by line. Records are strict JSON: nothing is pickled.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from optbench.errors import UsageError
from optbench.results.code import code_key
from optbench.results.lines import iter_lines, looks_cut_short, parse_record
from optbench.userfiles import LIMITS, human_size, open_bounded

try:  # advisory lock: serializes optbench appenders (absent on Windows, where we do without)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

KEY_FIELDS = ("problem", "problem_params", "backend", "device", "dtype", "optimizer",
              "optimizer_params", "seed", "max_steps", "tol", "max_time", "compile")
"""A run's full settings; `--resume` skips a run whose key is already stored. `max_steps` is
the step budget (`steps` in a record counts the steps taken). The key also holds the code's
version (`code_key` of the record's `code`; "unknown" for a record without), unless
asked for without it (`--resume-any-version`)."""
_KEY_DEFAULTS = {"compile": False}
"""What a record without the field (or with null) ran with: older records have no
`compile`, and campaigns do not compile."""

_TRUNCATED = "{}: ignoring a truncated last line (from an interrupted run)"
_CUT = ("{name}: a truncated last line ({size} bytes, no newline: a record cut short by an "
        "interrupted run) follows {records} whole records; it is cut off before the next "
        "record is appended")


class ResultsWarning(UserWarning):
    """Something in a results file was skipped or repaired; the message is one line."""


class ResultsError(RuntimeError):
    """Appending failed while a campaign ran (a full disk, say); the record was rolled back.
    The message is one line."""


def run_key(record: Mapping[str, Any], any_version: bool = False) -> str:
    """The canonical key of a run: the same for a record read back from JSON and its source.

    It holds the version of the code that ran (`record["code"]`), so that `--resume` runs
    again what other code ran; `any_version`: the settings alone."""
    key = {}
    for name in KEY_FIELDS:
        value = record.get(name)
        key[name] = _canonical(_KEY_DEFAULTS.get(name) if value is None else value)
    if not any_version:
        key["code"] = code_key(record.get("code"))
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # JSON gives lists where Python code has tuples
        return [_canonical(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _canonical(value.tolist())
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # lr=1 and lr=1.0 are the same run
    return value


def _plain(value: Any) -> Any:
    """json.dumps fallback: numpy scalars and arrays become numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _Scan:
    """What validating a file (or its new part) found."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.count = 0            # whole records
        self.lines = 0
        self.bad = 0
        self.first_bad: tuple[int, str] | None = None
        self.tail: tuple[int, int] | None = None   # (offset, size) of a partial last record
        self.newline = False      # the last line is a record without its newline


class ResultsStore:
    """A JSON Lines file of run records.

    Warnings (a truncated last line, lines skipped) go to `on_warning(message)`, one line
    each, at most once per message for this object; by default to `warnings.warn` with
    `ResultsWarning`. The command line passes a function that prints
    "optbench: warning: <message>".
    """

    def __init__(self, path: str | os.PathLike[str],
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)  # as the user wrote it, for messages
        self._on_warning = on_warning
        self._warned: set[str] = set()
        self._fd: int | None = None  # held by `writing`
        self._keys: set[str] | None = None  # of the held file
        self._settings: set[str] | None = None  # the same, without the code's version
        # (dev, inode, end, scan): bytes [0, end) of that file were checked, with the repairs
        # the scan found to make. An append checks only what other writers added since.
        self._state: tuple[int, int, int, _Scan] | None = None
        self.appended = 0
        # Checked here so that a campaign stops on a bad --output before its first run.
        parent = self.path.parent
        if not parent.is_dir():
            raise UsageError(f"cannot write results to {self.name}: "
                             f"directory {os.fspath(parent)} does not exist")
        if self.path.is_dir():
            raise UsageError(f"{self.name} is a directory, not a results file")

    def _warn(self, message: str) -> None:
        if message in self._warned:
            return
        self._warned.add(message)
        if self._on_warning is not None:
            self._on_warning(message)
        else:
            warnings.warn(message, ResultsWarning, stacklevel=3)

    # ---- reading ---------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """Every run record, in file order; [] when the file does not exist yet. Lines that
        are not run records are skipped, counted in one warning."""
        if not os.path.lexists(self.path):
            return []
        handle, size = open_bounded(self.path, "results", what=self.name)
        out: list[dict[str, Any]] = []
        skipped: list[tuple[int, str]] = []
        with handle:
            for number, _, line, complete in iter_lines(handle, 0, size):
                if not line.strip():
                    continue
                record, reason = parse_record(line)
                if record is not None:
                    out.append(record)  # a whole record, its newline missing or not
                elif complete:
                    skipped.append((number, reason or ""))
                else:
                    self._warn(_TRUNCATED.format(self.name))
        if skipped:
            (number, reason), n = skipped[0], len(skipped)
            what = ("1 line that is not a run record (" if n == 1
                    else f"{n} lines that are not run records (first: ")
            self._warn(f"{self.name}: skipped {what}line {number} {reason})")
        return out

    def keys(self, any_version: bool = False) -> set[str]:
        """The `run_key`s of the stored records, for `--resume`; `any_version`: without the
        code's version (`--resume-any-version`)."""
        held = self._settings if any_version else self._keys
        if held is not None:  # the file is held: what it held, and what we added
            return set(held)
        return {run_key(r, any_version) for r in self.records()}

    # ---- holding the file for a campaign ---------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[list[dict[str, Any]]]:
        """Hold the file for a campaign: yields the records it holds.

        Refused (UsageError) before anything runs: a path that is not a regular file we can
        write, a file another campaign holds, a file that is not a results file. A file
        created here and left empty is removed again at the end."""
        fd, created = self._open_locked(wait=False)
        try:
            scan = self._validate(fd, collect=True)
            self._fd, self._keys = fd, {run_key(r) for r in scan.records}
            self._settings = {run_key(r, any_version=True) for r in scan.records}
            try:
                yield scan.records
            finally:
                self._fd, self._keys, self._settings, self._state = None, None, None, None
        finally:
            try:
                if created and os.fstat(fd).st_size == 0 and _same_file(fd, self.path):
                    os.unlink(self.path)  # still locked: nobody else can have started on it
            except OSError:
                pass
            os.close(fd)  # releases the lock

    def inspect(self) -> list[dict[str, Any]]:
        """What `writing` would find, without creating, locking or changing the file (for
        `bench --dry-run`): the records it holds ([] when it does not exist yet); what
        `writing` would refuse is refused the same way (UsageError)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if os.path.islink(self.path):
                raise UsageError(f"cannot write results to {self.name}: it is a dangling "
                                 "symbolic link") from None
            if not os.access(self.path.parent, os.W_OK | os.X_OK):
                raise UsageError(f"cannot write results to {self.name}: Permission "
                                 "denied") from None
            return []
        except OSError as exc:
            raise UsageError(f"cannot write results to {self.name}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):  # refused without opening it, as _open does
            raise self._not_regular(info.st_mode)
        if not os.access(self.path, os.W_OK):
            raise UsageError(f"cannot write results to {self.name}: Permission denied")
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
                         | getattr(os, "O_NOCTTY", 0))
        except OSError as exc:
            raise UsageError(f"cannot read {self.name}: {exc.strerror}") from None
        try:
            if fcntl is not None:  # a shared lock, given back at once: is a campaign on it?
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise UsageError(f"{self.name} is being written by another campaign "
                                     f"({_holder(fd)}); wait until it ends, or write to "
                                     "another file") from None
            return self._validate(fd, collect=True).records
        finally:
            self._state = None
            os.close(fd)

    def _open(self) -> tuple[int, bool]:
        """A descriptor for appending, and whether the file was created by this call."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise UsageError(f"cannot write results to {self.name}: {exc.strerror}") from None
        # Refused without opening it: opening a device may have effects of its own.
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise self._not_regular(info.st_mode)
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK | getattr(
            os, "O_NOCTTY", 0)
        try:
            try:
                fd, created = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                fd, created = os.open(self.path, flags), False
        except FileNotFoundError:
            where = (f"directory {os.fspath(self.path.parent)} does not exist"
                     if not self.path.parent.is_dir() else "it is a dangling symbolic link")
            raise UsageError(f"cannot write results to {self.name}: {where}") from None
        except IsADirectoryError:
            raise UsageError(f"{self.name} is a directory, not a results file") from None
        except OSError as exc:  # read-only, immutable, permissions, a full directory...
            raise UsageError(f"cannot write results to {self.name}: {exc.strerror}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between stat and open
            os.close(fd)
            raise self._not_regular(info.st_mode)
        os.set_blocking(fd, True)
        return fd, created

    def _not_regular(self, mode: int) -> UsageError:
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
                if stat.S_ISSOCK(mode) else "not a regular file")
        return UsageError(f"{self.name} is {kind}; results are appended to a regular file")

    def _open_locked(self, wait: bool) -> tuple[int, bool]:
        """Open and lock the file the path names (retrying when it was replaced meanwhile)."""
        for _ in range(100):
            fd, created = self._open()
            try:
                self._lock(fd, wait)
                if _same_file(fd, self.path):
                    return fd, created
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # removed or replaced while we waited: lock the file there now
        raise UsageError(f"{self.name} keeps being replaced; cannot hold it")

    def _lock(self, fd: int, wait: bool) -> None:
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise UsageError(f"{self.name} is being written by another campaign "
                             f"({_holder(fd)}); wait until it ends, or write to another "
                             "file") from None
        except OSError as exc:
            raise UsageError(f"cannot lock {self.name}: {exc.strerror}") from None

    # ---- validating ------------------------------------------------------------------------

    def _validate(self, fd: int, collect: bool = False) -> _Scan:
        """Check the locked file: every complete line a run record, else UsageError (and the
        file untouched). Only what was added since the last check, unless `collect`."""
        info = os.fstat(fd)
        limit = LIMITS["results"]
        if info.st_size > limit:
            raise UsageError(f"{self.name} is {info.st_size} bytes; the limit for results "
                             f"files is {human_size(limit)}")
        start, before = 0, _Scan()
        if not collect and self._state is not None:
            dev, ino, end, known = self._state
            if (dev, ino) == (info.st_dev, info.st_ino):
                if end == info.st_size:
                    return known  # nothing new: what we checked, with its repairs to make
                # Whole lines added by other writers since: check those only. (Writers cut
                # or roll back only beyond the last whole line, so `end` still starts one.)
                if 0 < end < info.st_size and not (known.tail or known.newline) \
                        and os.pread(fd, 1, end - 1) == b"\n":
                    start, before = end, known
        scan = _Scan()
        scan.lines, scan.count = before.lines, before.count
        with os.fdopen(os.dup(fd), "rb") as handle:  # its own offset matters not: O_APPEND
            for number, offset, line, complete in iter_lines(handle, start, info.st_size,
                                                         before.lines):
                scan.lines = number
                if not line.strip():
                    scan.newline = not complete and bool(line)
                    continue
                record, reason = parse_record(line)
                if record is not None:
                    scan.count += 1
                    scan.newline = not complete
                    if collect:
                        scan.records.append(record)
                elif not complete and scan.count and not scan.bad and looks_cut_short(line):
                    scan.tail = (offset, len(line))
                else:
                    scan.bad += 1
                    if scan.first_bad is None:
                        scan.first_bad = (number, (reason or "")
                                          + ("" if complete else " (and has no newline)"))
        if scan.bad:
            number, reason = scan.first_bad or (0, "")
            more = (f", and {scan.bad - 1} more of its {scan.lines} lines are not run records"
                    if scan.bad > 1 else "")
            raise UsageError(f"{self.name} is not a results file: line {number} {reason}"
                             f"{more}; it is left as it is: write to a new file, or to a "
                             "results file of optbench bench")
        if scan.tail is not None:
            self._warn(_CUT.format(name=self.name, size=scan.tail[1], records=scan.count))
        self._state = (info.st_dev, info.st_ino, info.st_size, scan)
        return scan

    # ---- appending -------------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record as one whole line, durably (fsync) and safely beside other
        writers; a failed write leaves the file as it was (ResultsError)."""
        # Serialize and check first: a record that is not strict JSON, or not a run record,
        # fails here, before the file is touched.
        # ASCII (non-ASCII escaped): no raw U+2028 or U+0085, which some line splitters split on.
        line = json.dumps(record, allow_nan=False, default=_plain).encode("ascii")
        _, reason = parse_record(line)
        if reason is not None:
            raise ValueError(f"not a run record: it {reason}")
        if self._fd is not None:
            try:
                self._append(self._fd, line)
            except UsageError as exc:  # another program wrote to the file behind the lock
                raise ResultsError(f"{exc}") from None
        else:
            fd, _ = self._open_locked(wait=True)
            try:
                self._append(fd, line)
            finally:
                os.close(fd)  # releases the lock
        if self._keys is not None and self._settings is not None:
            self._keys.add(run_key(record))
            self._settings.add(run_key(record, any_version=True))
        self.appended += 1

    def _append(self, fd: int, line: bytes) -> None:
        scan = self._validate(fd)
        size = os.fstat(fd).st_size
        if scan.tail is not None:  # a partial record a killed writer left: said, now cut
            size = scan.tail[0]
            os.ftruncate(fd, size)
        data = (b"\n" if scan.newline else b"") + line + b"\n"
        try:
            view = memoryview(data)
            while view:  # a regular file takes it in one write; loop in case it does not
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            self._roll_back(fd, size, exc)
        done = _Scan()
        done.lines = scan.lines - (scan.tail is not None) + 1
        done.count = scan.count + 1
        info = os.fstat(fd)
        self._state = (info.st_dev, info.st_ino, info.st_size, done)

    def _roll_back(self, fd: int, size: int, exc: OSError) -> None:
        """A write or fsync failed: remove what it may have left, and say so in one line."""
        self._state = None  # check again next time, whatever happens here
        try:
            os.ftruncate(fd, size)
        except OSError as again:
            left = (f"its partial line could not be removed ({again.strerror}); the next "
                    "append removes it")
        else:
            left = "the record was not written, and every line in the file is whole"
            with contextlib.suppress(OSError):
                os.fsync(fd)
        raise ResultsError(f"cannot append to {self.name}: {exc.strerror or exc}; "
                           f"{left}") from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _holder(fd: int) -> str:
    """Who holds the flock of this file: 'pid N: its command line', from /proc/locks."""
    inode = os.fstat(fd).st_ino
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            table = handle.read(1 << 20)
    except OSError:
        return "another process"
    for row in table.splitlines():
        fields = row.split()
        if "->" in fields or "FLOCK" not in fields:  # "->": a waiter, not the holder
            continue
        i = fields.index("FLOCK")
        try:
            pid, where = int(fields[i + 3]), fields[i + 4]
            if int(where.rsplit(":", 1)[1]) != inode:
                continue
        except (IndexError, ValueError):
            continue
        if pid == os.getpid():
            return f"pid {pid}, this process"
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                words = handle.read(4096).split(b"\0")
            command = " ".join(w.decode("utf-8", "replace") for w in words if w)
        except OSError:
            return f"pid {pid}"
        command = " ".join(command.split())  # one line, whatever the arguments held
        return f"pid {pid}: {command[:120]}{'...' * (len(command) > 120)}"
    return "another process"


def load(path: str | os.PathLike[str]) -> Any:
    """The records of a results file: a pandas DataFrame when pandas is installed, one row per
    run, its parameters, host and code flattened into columns (`problem.n_samples`,
    `optimizer.lr`, `host.cpu`, `code.revision`: see optbench.results.frame), lists such as
    trace and x kept as lists; else the list of record dicts."""
    if not os.path.lexists(path):  # checked before ResultsStore, whose message is about writing
        raise UsageError(f"{os.fspath(path)}: no such results file")
    records = ResultsStore(path).records()
    try:
        import pandas  # noqa: F401  (lazy: optional, and slow to import)
    except ImportError:
        return records
    from optbench.results.frame import frame

    return frame(records)
