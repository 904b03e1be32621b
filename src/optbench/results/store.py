"""The results store: one JSON record per line, appended whole, readable after any crash.

A line is written by a single `os.write` on a descriptor opened with O_APPEND, under an
exclusive `flock`, then `fsync`ed. So a crash, SIGKILL or Ctrl-C can leave at most a partial
*last* line, never a broken line between whole ones. Readers ignore such a tail (one warning);
the next append cuts it off before writing. Records are strict JSON: nothing is pickled.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from optbench.errors import UsageError

try:  # advisory lock: serializes optbench appenders (absent on Windows, where we do without)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

KEY_FIELDS = ("problem", "problem_params", "backend", "device", "dtype", "optimizer",
              "optimizer_params", "seed")
"""The fields that identify a run; `--resume` skips a run whose key is already stored."""
_TRUNCATED = ("{}: ignoring a truncated last line (from an interrupted run); "
              "it is removed on the next append")


class ResultsWarning(UserWarning):
    """Something in a results file was skipped or repaired; the message is one line."""


def run_key(record: Mapping[str, Any]) -> str:
    """The canonical key of a run: the same for a record read back from JSON and its source."""
    key = {name: _canonical(record.get(name)) for name in KEY_FIELDS}
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


class ResultsStore:
    """A JSON Lines file of run records.

    Warnings (a truncated last line, a corrupt line) go to `on_warning(message)`, one line
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

    def records(self) -> list[dict[str, Any]]:
        """Every valid record, in file order; [] when the file does not exist yet."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise UsageError(f"cannot read {self.name}: {exc.strerror}") from None
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: b"" for a file of whole lines
        out = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = _parse(line)
            if record is None:
                self._warn(f"{self.name}:{number}: skipping a line that is not a JSON record")
            else:
                out.append(record)
        if tail.strip():
            record = _parse(tail)
            if record is not None:  # whole record, only its newline missing: keep it
                out.append(record)
            else:
                self._warn(_TRUNCATED.format(self.name))
        return out

    def keys(self) -> set[str]:
        """The `run_key`s of the stored records, for `--resume`."""
        return {run_key(r) for r in self.records()}

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record as one whole line, durably (fsync) and safely beside other writers."""
        # Serialize first: a record that is not strict JSON fails here, before the file is touched.
        # ASCII (non-ASCII escaped): no raw U+2028 or U+0085, which some line splitters split on.
        line = json.dumps(record, allow_nan=False, default=_plain)
        data = (line + "\n").encode("utf-8")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise UsageError(f"cannot write results to {self.name}: "
                             f"directory {os.fspath(self.path.parent)} does not exist") from None
        except OSError as exc:
            raise UsageError(f"cannot write results to {self.name}: {exc.strerror}") from None
        try:
            if fcntl is not None:  # another appender is never seen mid-line, so never "repaired"
                fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            # Checked at every append (one byte), not only the first: another process sharing
            # the file may have been killed mid-line since.
            if size and os.pread(fd, 1, size - 1) != b"\n":
                self._repair(fd, size)
            view = memoryview(data)
            while view:  # a regular file takes it in one write; loop in case it does not
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock

    def _repair(self, fd: int, size: int) -> None:
        """Deal with a last line that has no newline: keep it if whole, else cut it off."""
        start, tail = size, b""
        while start > 0:  # read backwards, a chunk at a time, to the last newline
            step = min(1 << 16, start)
            start -= step
            chunk = os.pread(fd, step, start)
            cut = chunk.rfind(b"\n")
            tail = chunk[cut + 1:] + tail
            if cut >= 0:
                start += cut + 1
                break
        if _parse(tail) is not None:
            os.write(fd, b"\n")  # a whole record that only lacks its newline
            return
        os.ftruncate(fd, start)
        if _TRUNCATED.format(self.name) not in self._warned:  # one warning for one line, not two
            self._warn(f"{self.name}: removed a truncated last line (from an interrupted run)")


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:  # includes bad UTF-8
        return None
    return value if isinstance(value, dict) else None


def load(path: str | os.PathLike[str]) -> Any:
    """The records of a results file: a pandas DataFrame when pandas is installed, one row per
    run (nested fields such as trace and host stay Python objects), else a list of dicts."""
    if not Path(path).is_file():  # checked before ResultsStore, whose message is about writing
        raise UsageError(f"{os.fspath(path)}: no such results file")
    records = ResultsStore(path).records()
    try:
        import pandas  # lazy: optional, and slow to import
    except ImportError:
        return records
    return pandas.DataFrame(records)
