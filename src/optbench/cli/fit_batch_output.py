"""`optbench fit --group`: the per-fit rows written to --output (JSON Lines or Parquet,
atomically: a temporary file in the same folder, renamed once complete, with the mode a
plain open() would give), and the summary table printed for the table format."""

from __future__ import annotations

import io
import json
import os
from typing import Any

from optbench.errors import UsageError
from optbench.userfiles import check_output_file, write_atomic

OUTPUT_SUFFIXES = (".jsonl", ".parquet")


def check_output(path: str | None) -> None:
    """Refuse an output that could not be written, before anything runs."""
    if path is None:
        return
    check_output_file(path, "--output", OUTPUT_SUFFIXES)
    if path.lower().endswith(".parquet"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError(f"--output {path}: writing Parquet needs pyarrow (pip install "
                             "'optbench[parquet]'); or write .jsonl") from None


def write_rows(path: str, rows: list[dict[str, Any]]) -> None:
    """The rows as JSON Lines or Parquet, written atomically (userfiles.write_atomic)."""
    if path.lower().endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        content = buffer.getvalue()
    else:
        content = "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
    write_atomic(path, content)


def summary_table(result: Any, source: str) -> str:
    from optbench.cli.output import table

    s = result.summary()
    lines = [f"fit    {result.equation}",
             f"data   {os.path.basename(source.partition('=')[2] or source)}: {s['fits']} "
             f"groups of up to {int(result.counts.max())} points",
             f"with   lm (batched), {s['backend']} on {s['device']}, {s['dtype']}, "
             f"{s['chunks']} chunk(s), {s['iterations']} iterations",
             ""]
    rows = [[status, str(n)] for status, n in sorted(s["statuses"].items())]
    lines.append(table(["status", "fits"], rows))
    if s["reasons"]:
        lines += ["", table(["why not converged", "fits"],
                            [[why, str(n)] for why, n in sorted(s["reasons"].items())])]
    if s["rank_deficient"]:
        lines.append(f"\n{s['rank_deficient']} fits have parameters that are not "
                     "identifiable at the solution (see their messages)")
    per_fit = s["time_per_fit_s"]
    lines.append(f"\ntime {s['time_s']:.3g} s ({per_fit * 1e6:.3g} µs per fit, "
                 f"{1 / per_fit if per_fit > 0 else float('inf'):.3g} fits/s); set-up "
                 f"{s['setup_s']:.3g} s")
    return "\n".join(lines)
