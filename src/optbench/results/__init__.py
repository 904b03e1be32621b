"""Campaign results: the JSON Lines store, its run keys, and the host a run ran on.

    >>> import optbench.results
    >>> df = optbench.results.load("results.jsonl")   # pandas DataFrame (list of dicts without)
"""

from optbench.results.host import host_info
from optbench.results.store import KEY_FIELDS, ResultsStore, ResultsWarning, load, run_key

__all__ = ["KEY_FIELDS", "ResultsStore", "ResultsWarning", "host_info", "load", "run_key"]
