"""Campaign results: the JSON Lines store, its run keys, and the host a run ran on.

    >>> import optbench.results
    >>> df = optbench.results.load("results.jsonl")   # pandas DataFrame (list of dicts without)
"""

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
           "host_info", "load", "parse_record", "run_key"]
