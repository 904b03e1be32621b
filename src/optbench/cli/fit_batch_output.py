"""`optbench fit --group`: the per-fit rows written to --output (JSON Lines or Parquet,
atomically: a temporary file in the same folder, renamed once complete), and the summary
table printed for the table format."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from optbench.errors import UsageError
from optbench.userfiles import check_output_file

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
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".optbench-", suffix=".part", dir=folder)
    try:
        if path.lower().endswith(".parquet"):
            os.close(fd)
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), tmp)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
