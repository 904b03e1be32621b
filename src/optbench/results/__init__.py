"""Campaign results: the JSON Lines store, its run keys, the host and code a run ran on.

    >>> import optbench.results
    >>> df = optbench.results.load("results.jsonl")   # pandas DataFrame (list of dicts without)
    >>> df.groupby(["problem", "optimizer.lr"])["f"].median()

Columns: see optbench.results.frame; `optbench results export` writes the same table as
Parquet or CSV (optbench.results.export).
"""

from optbench.results.code import code_info, code_key, code_version
from optbench.results.host import host_info
from optbench.results.lines import check_record, parse_record
from optbench.results.store import (
    KEY_FIELDS,
    ResultsError,
    ResultsStore,
    ResultsWarning,
    load,
    run_key,
)

__all__ = ["KEY_FIELDS", "ResultsError", "ResultsStore", "ResultsWarning", "check_record",
           "code_info", "code_key", "code_version", "host_info", "load", "parse_record", "run_key"]
