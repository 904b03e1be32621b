"""A results file as Parquet or CSV: `optbench results export`.

Both hold the table of `optbench.results.load` (one row per run, columns as
optbench.results.frame names them). Parquet keeps the column types and lists (x, trace,
betas) as lists, so that `pandas.read_parquet` gives back load()'s table; a column Parquet
cannot hold as it is (values of mixed kinds: a parameter that is text on one row and a number
on another, integers beyond 64 bits) is written as JSON text, every value of it. CSV holds
scalars only: a list or object is written as JSON text, a missing value as an empty field.

The file is written whole or not at all (a temporary file beside it, renamed over it).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from optbench.errors import UsageError
from optbench.results.frame import frame
from optbench.userfiles import write_atomic

FORMATS = ("parquet", "csv")


def to_bytes(records: Sequence[Mapping[str, Any]], fmt: str) -> bytes:
    """The records as a Parquet or CSV file's bytes."""
    if fmt not in FORMATS:
        raise UsageError(f"--to {fmt} is not accepted: expected one of {', '.join(FORMATS)}")
    _require(fmt)
    table = frame(records)
    buffer = io.BytesIO()
    if fmt == "parquet":
        _parquet_ready(table).to_parquet(buffer, engine="pyarrow", index=False)
        return buffer.getvalue()
    for name in table.columns:
        if table[name].dtype == object:
            table[name] = table[name].map(_json_text)
    return table.to_csv(index=False, lineterminator="\n").encode("utf-8")


def export(records: Sequence[Mapping[str, Any]], fmt: str, path: str | os.PathLike[str]
           ) -> None:
    """Write the records to `path` as `fmt`, atomically."""
    write_atomic(path, to_bytes(records, fmt))


def _require(fmt: str) -> None:
    import importlib.util

    if importlib.util.find_spec("pandas") is None:
        raise UsageError("export needs pandas: pip install 'optbench[data]'")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise UsageError("--to parquet needs pyarrow: pip install 'optbench[parquet]'")


def _parquet_ready(table: Any) -> Any:
    """Object columns that Arrow cannot type (mixed kinds) become JSON text."""
    import pyarrow as pa

    for name in table.columns:
        if table[name].dtype != object:
            continue
        try:
            pa.array(table[name].tolist(), from_pandas=True)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            table[name] = table[name].map(
                lambda v: None if v is None else json.dumps(v, separators=(",", ":")))
    return table


def _json_text(value: Any) -> Any:
    """A list or object as JSON text; scalars (and missing values) as they are."""
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    return value
