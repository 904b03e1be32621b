"""Files a user hands in, read with bounds.

Every path that comes from the user (an equations file, a campaign, data, a results file)
is opened here: it must be a regular file (a FIFO, /dev/zero or a directory would block or
never end), and its size is checked against a limit for its kind *before* anything is read,
so `--file /dev/zero` or an 8 GB sparse file is refused at once with a message that states
the limit. Reads stop at the limit even if the file grows meanwhile.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
from collections.abc import Iterator
from typing import IO, BinaryIO

from optbench.errors import UsageError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# Per kind of file: enough for any real use, small enough to read into memory at once.
LIMITS = {
    "equations": 1 * MiB,    # solve --file, -P file= (TOML of equations or an objective)
    "campaign": 1 * MiB,     # bench campaign.toml
    "data": 512 * MiB,       # -P data= CSV, fit --data
    "results": 2 * GiB,      # results.jsonl for report / --resume
    "plugin": 1 * MiB,       # a *.py file of a plugin folder (--plugins DIR)
}


def human_size(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def limit_for(kind: str) -> int:
    return LIMITS[kind]


def open_bounded(path: str | os.PathLike[str], kind: str, *, what: str | None = None
                 ) -> tuple[BinaryIO, int]:
    """Open a user's file for reading: (binary handle, size). Refuses, as UsageError, a path
    that does not exist, is not a regular file, or is larger than the limit for `kind`.

    Opened with O_NONBLOCK so that a FIFO with no writer does not block the open itself;
    the descriptor is checked with fstat (no race between the check and the read).
    """
    name = what or os.fspath(path)
    limit = LIMITS[kind]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{name} is a directory; expected a regular file") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read it ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{name} is a directory; expected a regular file")
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{name} is not a regular file (a FIFO, device or socket); "
                             f"expected a regular file")
        if info.st_size > limit:
            raise UsageError(f"{name} is {info.st_size} bytes; the limit for {kind} files "
                             f"is {human_size(limit)}")
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return handle, info.st_size


def read_bytes(path: str | os.PathLike[str], kind: str, *, what: str | None = None) -> bytes:
    """The whole content of a user's file, bounded as `open_bounded` says."""
    handle, _ = open_bounded(path, kind, what=what)
    limit = LIMITS[kind]
    with handle:
        data = handle.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        name = what or os.fspath(path)
        raise UsageError(f"{name} grew beyond the limit for {kind} files "
                         f"({human_size(limit)}) while it was read")
    return data


def read_text(path: str | os.PathLike[str], kind: str, *, what: str | None = None,
              encoding: str = "utf-8") -> str:
    """A user's text file, bounded; undecodable bytes are a UsageError naming the file."""
    data = read_bytes(path, kind, what=what)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        name = what or os.fspath(path)
        raise UsageError(f"{name}: not {encoding} text (byte {exc.start}); "
                         f"expected a text file") from None


def open_text(path: str | os.PathLike[str], kind: str, *, what: str | None = None,
              encoding: str = "utf-8", newline: str | None = None) -> io.TextIOWrapper:
    """A user's text file as a stream (for CSV readers), bounded as `open_bounded` says."""
    handle, _ = open_bounded(path, kind, what=what)
    return io.TextIOWrapper(handle, encoding=encoding, newline=newline)


MAX_LINE = 1 << 20
"""Characters in one line of a text file a user hands in: a longer line is refused as it is
read, never held whole (a file of one 100 MB line would otherwise be one string)."""


def bounded_lines(handle: IO[str], what: str, expected: str) -> Iterator[str]:
    """The lines of an open text file, each refused once longer than MAX_LINE, with a message
    that names the file, the line and what was `expected` (e.g. "a CSV file of x,y points")."""
    lineno = 0
    while True:
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE:
            raise UsageError(f"{what}: line {lineno} is longer than {MAX_LINE} characters; "
                             f"expected {expected}")
        yield line


def csv_rows(path: str | os.PathLike[str], what: str, expected: str,
             unreadable: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each CSV row of a data file that is not blank, the file
    opened through open_text (kind "data") and read a bounded line at a time. A CSV error
    (a field over csv's limit of 131,072 characters, ...) or a failed read is one UsageError
    naming the file and what was `expected` (`unreadable`, if given, for a failed read)."""
    import csv

    # utf-8-sig: a byte-order mark (spreadsheet exports) must not hide the first cell.
    handle = open_text(path, "data", what=what, encoding="utf-8-sig", newline="")
    reader = csv.reader(bounded_lines(handle, what, expected))
    try:
        with handle:
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    yield reader.line_num, row
    except csv.Error as exc:
        raise UsageError(f"{what}: line {reader.line_num}: {exc}; expected {expected}"
                         ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what}: cannot read it ({exc.__class__.__name__}); expected "
                         f"{unreadable or expected}") from None


def check_output_file(path: str, option: str, suffixes: tuple[str, ...]) -> None:
    """Refuse, before anything runs, an output file that could not be written: another
    suffix than `suffixes`, a folder that does not exist, a directory's name."""
    if not path.lower().endswith(suffixes):
        raise UsageError(f"{option} {path}: expected a file name ending in "
                         f"{' or '.join(suffixes)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path} is a directory; expected a file name")


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    The temporary file is created with mode 0o666, less the umask, as open() would create
    `path` (mkstemp's 0o600 would make a report unreadable to the group that shares it).
    """
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _create_beside(path: str | os.PathLike[str]) -> tuple[int, str]:
    folder, name = os.path.split(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                           0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")
