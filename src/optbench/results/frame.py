"""Run records as a table: one row per run, nested objects flattened into columns.

Column names. A record's own fields keep their names; the objects in it are flattened with
dots, recursively: problem parameters become `problem.<name>` and optimizer
hyperparameters `optimizer.<name>` (beside the `problem` and `optimizer` columns, which
hold the names), and every other object `<field>.<key>`: `host.cpu`, `host.versions.numpy`,
`code.revision`, `code.plugins.optbench-jax`, `reference.f`, `reference.x`. Host and code
are flattened too, rather than kept as objects, because they are what a table of runs is
grouped by (a `groupby("host.hostname")` or `"code.revision"`), and because a column of
dicts is neither a Parquet nor a CSV column. Lists (x, x0, variables, trace, reference.x,
list-valued parameters such as betas) stay lists: one value of the run, not columns.

Column types follow the values, not the first row: integers stay int64 (Int64, pandas'
nullable integers, where some runs lack the column: regression's `problem.n_samples` on a
puzzle's row), true/false bool (boolean where missing), numbers of both kinds float64,
text pandas' text dtype; anything else (lists, mixed kinds) is an object column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

PREFIXES = {"problem_params": "problem", "optimizer_params": "optimizer"}
"""Objects whose columns take another prefix than their field's name."""

_INT64 = (-(2**63), 2**63 - 1)


def flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record as {column: value}: objects flattened with dots, in the record's order.
    A flattened name that a field of the record already has (a hand-made `"host.cpu"`
    field) does not replace it."""
    out: dict[str, Any] = {}
    for column, _, value in _cells(record):
        out.setdefault(column, value)
    return out


def _cells(record: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(column, the record's field it comes from, value), in the record's order."""
    for name, value in record.items():
        if not isinstance(value, Mapping):
            yield name, name, value
            continue
        # Breadth-first, without recursion (lines.MAX_DEPTH bounds the depth anyway).
        todo: list[tuple[str, Mapping[str, Any]]] = [(PREFIXES.get(name, name), value)]
        while todo:
            prefix, obj = todo.pop(0)
            for key, item in obj.items():
                column = f"{prefix}.{key}"
                if isinstance(item, Mapping):
                    todo.append((column, item))
                elif column not in record:
                    yield column, name, item


def frame(records: Sequence[Mapping[str, Any]]) -> Any:
    """The records as a pandas DataFrame (see the module's docstring for its columns).
    Columns come in the order of the fields they come from (all of `problem.*` where
    problem_params is, whichever problem declared them), each field's in the order met."""
    import pandas as pd  # lazy: optional, and slow to import

    rows: list[dict[str, Any]] = []
    fields: dict[str, int] = {}
    columns: dict[str, tuple[int, int]] = {}  # column -> (its field's rank, its own rank)
    for record in records:
        row: dict[str, Any] = {}
        for column, name, value in _cells(record):
            if column in row:
                continue
            row[column] = value
            if column not in columns:
                columns[column] = (fields.setdefault(name, len(fields)), len(columns))
        rows.append(row)
    order = sorted(columns, key=columns.__getitem__)
    data = {name: _series(pd, [row.get(name) for row in rows]) for name in order}
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def _series(pd: Any, values: list[Any]) -> Any:
    """A column whose type follows its values (None: missing)."""
    present = [v for v in values if v is not None]
    missing = len(present) < len(values)
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean" if missing else bool)
    numbers = [v for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if present and len(numbers) == len(present):
        if all(isinstance(v, int) and _INT64[0] <= v <= _INT64[1] for v in numbers):
            return pd.Series(values, dtype="Int64" if missing else "int64")
        if all(isinstance(v, float) or abs(v) < 2**53 for v in numbers):  # exact as floats
            return pd.Series([float("nan") if v is None else float(v) for v in values],
                             dtype="float64")
    if present and all(isinstance(v, str) for v in present):
        return pd.Series(values)  # pandas' text dtype (str in pandas 3), missing as NaN
    return pd.Series(values, dtype=object)
