"""The data of many fits as one block: columns of shape (fits, points) (issue 16).

Sources: a long table (CSV, Parquet, a dict of arrays, a DataFrame) with a group column
(or an array of group labels, one per row), or a NumPy `.npz` of equally sized arrays of
shape (fits, points). Group keys are numbers (the table readers accept numbers only; a
non-numeric cell is refused where it is read). Groups of unequal size are padded to the
largest with copies of their own first point, at weight 0: a padded point adds nothing to
the sum of squares nor to the Jacobian, and the statistics count each group's own points.
Nothing from a file is unpickled or evaluated (npz: allow_pickle=False, headers checked
before any array is read).
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench import memory
from optbench.errors import UsageError
from optbench.problems.datatable import Table, read_table, table_from_columns
from optbench.userfiles import read_bytes

MAX_FITS = 10_000_000
MAX_POINTS = 100_000  # per fit
MAX_ROWS = 100_000_000  # rows of a long table of many fits (memory is checked as it is read)


@dataclass(frozen=True)
class Grouped:
    """Columns (F, m), float64, padded; counts (F,) the points of each group."""

    keys: np.ndarray
    columns: dict[str, np.ndarray]
    counts: np.ndarray
    source: str
    names: tuple[str, ...]  # every column name, as a header (for the model)

    @property
    def n_fits(self) -> int:
        return int(self.keys.size)

    @property
    def n_points(self) -> int:
        return int(next(iter(self.columns.values())).shape[1])

    def mask(self) -> np.ndarray:
        return np.arange(self.n_points)[None, :] < self.counts[:, None]


def _bound(n_fits: int, n_points: int, n_columns: int, source: str) -> None:
    if n_fits > MAX_FITS:
        raise UsageError(f"{source}: {n_fits} groups; the limit is {MAX_FITS}")
    if n_points > MAX_POINTS:
        raise UsageError(f"{source}: a group of {n_points} points; the limit is "
                         f"{MAX_POINTS} points per group")
    # The padded block, its mask and weights, on the host, float64.
    memory.require(8 * n_fits * n_points * (n_columns + 2),
                   f"{source}: {n_fits} groups of up to {n_points} points")


def group_table(table: Table, group: Any) -> Grouped:
    """A long table split by `group`: a column name, or one label per row (numbers)."""
    if isinstance(group, str):
        if group not in table.names:
            raise UsageError(f"--group {group!r} is not a column of {table.source}; its "
                             f"columns: {', '.join(table.names)}")
        labels = np.asarray(table.columns[group], dtype=np.float64)
    else:
        labels = np.asarray(group)
        if labels.ndim != 1 or labels.size != table.n_rows or labels.dtype.kind not in "iuf":
            raise UsageError(f"groups: expected a column name or one numeric label per row "
                             f"({table.n_rows} rows), got {labels.dtype} of shape "
                             f"{labels.shape}")
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
            raise UsageError("groups: the labels must be finite numbers")
    keys, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    names = tuple(n for n in table.names if n != group or not isinstance(group, str))
    _bound(keys.size, int(counts.max()), len(names), table.source)
    order = np.argsort(inverse, kind="stable")  # rows by group, file order within
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    which = inverse[order]
    position = np.arange(order.size) - starts[which]
    columns = {}
    for name in names:
        values = np.asarray(table.columns[name], dtype=np.float64)[order]
        block = np.repeat(values[starts][:, None], int(counts.max()), axis=1)
        block[which, position] = values
        columns[name] = block
    if keys.dtype.kind == "f" and np.all(keys == np.round(keys)):
        keys = keys.astype(np.int64)
    return Grouped(keys, columns, counts.astype(np.int64), table.source, names)


def read_npz(path: str, group: str | None = None) -> Grouped:
    """Arrays of shape (fits, points), one per column, all the same shape; `group` may name
    a 1-D array of one key per fit (else the keys are 0, 1, ...)."""
    source = f"data={path}"
    content = read_bytes(path, "data")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        members = [n for n in archive.namelist() if n.endswith(".npy")]
        shapes = {}
        for member in members:  # headers first: shapes and types before any array
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(handle)
            shapes[member[:-4]] = (tuple(shape), dtype)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UsageError(f"{source}: not a NumPy .npz archive ({exc}); expected arrays "
                         "saved with numpy.savez") from None
    if not shapes:
        raise UsageError(f"{source}: no arrays; expected arrays of shape (fits, points)")
    for name, (_shape, dtype) in shapes.items():
        if dtype.kind not in "iuf":
            raise UsageError(f"{source}: array {name!r} holds {dtype}; expected numbers")
    blocks = {n: s for n, (s, _) in shapes.items() if n != group}
    if not blocks:
        raise UsageError(f"{source}: no arrays besides --group {group!r}")
    first = next(iter(blocks))
    for name, shape in blocks.items():
        if len(shape) != 2:
            raise UsageError(f"{source}: array {name!r} has shape {shape}; expected "
                             "(fits, points)")
        if shape != blocks[first]:
            raise UsageError(f"{source}: array {name!r} has shape {shape} and {first!r} "
                             f"{blocks[first]}; expected arrays of one shape (fits, points)")
    n_fits, n_points = blocks[first]
    if n_fits == 0 or n_points == 0:
        raise UsageError(f"{source}: arrays of shape {blocks[first]}: no data")
    if group is not None and group not in shapes:
        raise UsageError(f"--group {group!r} is not an array of {source}; its arrays: "
                         f"{', '.join(shapes)}")
    if group is not None and shapes[group][0] != (n_fits,):
        raise UsageError(f"{source}: --group {group!r} has shape {shapes[group][0]}; "
                         f"expected ({n_fits},), one key per fit")
    _bound(n_fits, n_points, len(blocks), source)
    with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
        columns = {n: np.asarray(arrays[n]) for n in blocks}
        keys = np.asarray(arrays[group]) if group is not None else None
    return grouped_blocks(columns, keys, source, f"--group {group!r}")


def grouped_blocks(columns: dict[str, np.ndarray], keys: Any, source: str, what: str
                   ) -> Grouped:
    """Arrays already of one shape (fits, points), bounded (_bound), as a Grouped: their
    names and values held to a CSV's rules (numbers, finite), `keys` one per fit and each
    once (None: 0, 1, ...)."""
    n_fits, n_points = next(iter(columns.values())).shape
    table_from_columns({n: c.reshape(-1) for n, c in columns.items()}, source, MAX_ROWS)
    keys = np.arange(n_fits, dtype=np.int64) if keys is None else np.asarray(keys)
    if keys.shape != (n_fits,):
        raise UsageError(f"{source}: {what} has shape {keys.shape}; expected ({n_fits},), "
                         "one key per fit")
    if np.unique(keys).size != keys.size:
        raise UsageError(f"{source}: {what} repeats a key; expected one key per fit")
    return Grouped(keys, {n: c.astype(np.float64) for n, c in columns.items()},
                   np.full(n_fits, n_points, dtype=np.int64), source, tuple(columns))


def read_parquet(path: str) -> Table:
    """A Parquet file of numeric columns as a Table (pyarrow, the `parquet` extra)."""
    source = f"data={path}"
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(f"{source}: reading Parquet needs pyarrow "
                         "(pip install 'optbench[parquet]')") from None
    content = read_bytes(path, "data")
    try:
        handle = pq.ParquetFile(pa.BufferReader(content))
        rows, cols = handle.metadata.num_rows, handle.metadata.num_columns
        memory.require(16 * rows * max(cols, 1), f"{source}: {rows} rows")
        table = handle.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UsageError(f"{source}: not a readable Parquet file ({str(exc)[:120]})") from None
    data = {}
    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise UsageError(f"{source}: column {name!r} holds {column.type}; expected "
                             "numbers")
        data[name] = column.to_numpy()
    return table_from_columns(data, source, MAX_ROWS)


def load(data: Any, group: Any) -> Grouped:
    """Any accepted data, grouped: a path (.csv, .parquet, .npz), a dict of arrays or a
    DataFrame (long, with `group` a column or labels; or a dict of (fits, points) arrays)."""
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        suffix = os.path.splitext(path)[1].lower()
        if suffix == ".npz":
            return read_npz(path, group if isinstance(group, str) else None)
        table = read_parquet(path) if suffix in (".parquet", ".pq") else \
            read_table(path, f"data={path}", MAX_ROWS)
        return group_table(table, group)
    if isinstance(data, dict) and data and all(np.ndim(v) == 2 for v in data.values()):
        columns = {str(k): np.asarray(v) for k, v in data.items()}
        first = next(iter(columns))
        for name, value in columns.items():
            if value.shape != columns[first].shape:
                raise UsageError(f"data: array {name!r} has shape {value.shape} and "
                                 f"{first!r} {columns[first].shape}; expected arrays of "
                                 "one shape (fits, points)")
        _bound(*columns[first].shape, len(columns), "data")
        keys = None if group is None or group is True else group
        return grouped_blocks(columns, keys, "data", "groups")
    return group_table(table_from_columns(data, limit=MAX_ROWS), group)
