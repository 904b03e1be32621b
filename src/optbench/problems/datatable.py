"""A table of named numeric columns: a user's CSV file (with a header), a dict of arrays or
a pandas DataFrame. What `model` fits and `optbench fit --data` reads.

A CSV is read through userfiles (a regular file within the limit for data files), line by
line, into float64 columns: its first non-blank row is the header (names of the language,
so that an equation can use them), every other cell is a finite number. Anything else is
refused with one line naming the file, the line and the column. Nothing in the file is ever
executed or evaluated: cells go through float() only.
"""

from __future__ import annotations

import keyword
import math
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench import memory
from optbench.errors import UsageError
from optbench.userfiles import csv_rows

MAX_COLUMNS = 64
MAX_ROWS = 1_000_000  # the Jacobian of a fit holds rows × parameters numbers

HEADER_EXAMPLE = "a header of column names first, e.g. x,y"


def bytes_per_row(n_columns: int) -> int:
    """What a fit holds per row: the table, the backends' copies of the columns used, the
    residuals and their temporaries, a row of the Jacobian; generously."""
    return 8 * (4 * n_columns + 32)


@dataclass(frozen=True)
class Table:
    """Columns of equal length, float64. `source` names where they came from ("data=
    points.csv"); `lines[i]` is the file's line of row i (None for arrays from memory)."""

    names: tuple[str, ...]
    columns: Mapping[str, np.ndarray]
    source: str
    lines: tuple[int, ...] | None = None

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def where(self, i: int) -> str:
        """Row i in the user's terms: its line in the file, or its index."""
        if self.lines is not None:
            return f"line {self.lines[i]} of {self.source.partition('=')[2] or self.source}"
        return f"row {i} of {self.source}"

    def row_text(self, i: int, names: tuple[str, ...] | None = None) -> str:
        return ", ".join(f"{n}={self.columns[n][i]:.6g}" for n in (names or self.names))


def _check_name(name: str, source: str, line: int | None) -> None:
    from optbench.expr.parse import CONSTANTS, FUNCTIONS

    at = f"line {line}" if line is not None else "its columns"
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
        raise UsageError(f"{source}: {at}: column name {name!r} is not a name an equation can "
                         f"use; expected {HEADER_EXAMPLE} (letters, digits and _)")
    if name in FUNCTIONS or name in CONSTANTS:
        raise UsageError(f"{source}: {at}: column name {name!r} is a function or constant "
                         f"of the language; rename the column")


def _check_names(names: list[str], source: str, line: int | None) -> None:
    if len(names) > MAX_COLUMNS:
        raise UsageError(f"{source}: {len(names)} columns; the limit is {MAX_COLUMNS}")
    for name in names:
        _check_name(name, source, line)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{source}: column {twice[0]!r} appears twice in the header")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _rows(path: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank row, read through userfiles."""
    for line, row in csv_rows(path, source, f"a CSV file of numbers under {HEADER_EXAMPLE}",
                              unreadable="a CSV text file"):
        yield line, [cell.strip() for cell in row]


def _header(line: int, cells: list[str], source: str) -> list[str]:
    if all(_is_number(c) for c in cells if c):
        raise UsageError(f"{source}: line {line} holds numbers, not column names: the file "
                         f"has no header; expected {HEADER_EXAMPLE}")
    _check_names(cells, source, line)
    return cells


def read_header(path: str, source: str | None = None) -> tuple[str, ...]:
    """The column names of a CSV file (its first non-blank row), checked."""
    source = source or f"data={path}"
    for line, cells in _rows(path, source):
        return tuple(_header(line, cells, source))
    raise UsageError(f"{source}: the file is empty; expected {HEADER_EXAMPLE}, then rows of "
                     "numbers")


def read_table(path: str, source: str | None = None, limit: int = MAX_ROWS) -> Table:
    """The whole CSV file as a Table; one line of error for anything not accepted. `limit`
    bounds the rows (a single fit's; many fits' data are bounded by memory and their own
    counts, fitting/groups.py)."""
    source = source or f"data={path}"
    rows = _rows(path, source)
    names: list[str] | None = None
    columns: list[array] = []
    lines = array("q")
    max_rows = limit
    for line, cells in rows:
        if names is None:
            names = _header(line, cells, source)
            columns = [array("d") for _ in names]
            # Refused as it is read, before the columns outgrow the memory there is.
            max_rows = min(limit, memory.available() // bytes_per_row(len(names)))
            continue
        if len(cells) != len(names):
            raise UsageError(f"{source}: line {line} has {len(cells)} cells; expected "
                             f"{len(names)}, one for each of {', '.join(names)}")
        if len(lines) >= max_rows:
            if max_rows == limit:
                raise UsageError(f"{source}: more than {limit} rows; the limit is {limit}")
            raise UsageError(f"{source}: more than {max_rows} rows, which would need more "
                             f"than the {memory.human(memory.available())} of memory "
                             "available to optbench")
        for name, cell, column in zip(names, cells, columns, strict=True):
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise UsageError(f"{source}: line {line}, column {name}: {cell[:40]!r} is not "
                                 f"a finite number; expected a number in every cell below "
                                 f"the header")
            column.append(value)
        lines.append(line)
    if names is None:
        raise UsageError(f"{source}: the file is empty; expected {HEADER_EXAMPLE}, then rows "
                         "of numbers")
    if not lines:
        raise UsageError(f"{source}: no rows of numbers below the header "
                         f"({', '.join(names)})")
    data = {}
    for name, column in zip(names, columns, strict=True):
        values = np.frombuffer(column, dtype=np.float64).copy()
        values.setflags(write=False)
        data[name] = values
    return Table(tuple(names), data, source, tuple(lines))


def table_from_columns(data: Any, source: str = "data", limit: int = MAX_ROWS) -> Table:
    """A dict of 1-D arrays (or a pandas DataFrame: anything with `.columns` and item
    access) as a Table, held to the same rules as a file."""
    if hasattr(data, "columns") and not isinstance(data, Mapping):  # a DataFrame
        names = [str(c) for c in data.columns]
        items = [(str(c), data[c]) for c in data.columns]
    elif isinstance(data, Mapping):
        names = [str(k) for k in data]
        items = [(str(k), v) for k, v in data.items()]
    else:
        raise UsageError(f"{source}={type(data).__name__} is not accepted: expected a path "
                         "to a CSV file, a dict of arrays or a pandas DataFrame")
    if not names:
        raise UsageError(f"{source}: no columns; expected named columns of numbers")
    _check_names(names, source, None)
    columns: dict[str, np.ndarray] = {}
    length = None
    for name, raw in items:
        try:
            values = np.asarray(raw)
        except Exception:
            values = np.asarray([object()])
        if values.dtype.kind not in "iuf" or values.ndim != 1:
            raise UsageError(f"{source}: column {name!r} is not accepted: expected a 1-D "
                             "array of numbers")
        values = values.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise UsageError(f"{source}: column {name!r}, row {bad[0]}: {values[bad[0]]} is "
                             "not a finite number; expected finite numbers")
        if length is not None and values.size != length:
            raise UsageError(f"{source}: column {name!r} has {values.size} values, "
                             f"{names[0]!r} has {length}; expected columns of equal length")
        length = values.size
        if length > limit:
            raise UsageError(f"{source}: {length} rows; the limit is {limit}")
        values.setflags(write=False)
        columns[name] = values
    if not length:
        raise UsageError(f"{source}: the columns are empty; expected rows of numbers")
    return Table(tuple(names), columns, source)
