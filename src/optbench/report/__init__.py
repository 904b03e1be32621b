"""Reports over a results file: a summary table, plots and a self-contained HTML page.

Every function takes a list of run records (dicts, as `read_records` or the results store
gives them) and the target T; see `optbench.report.data` for how f*, the target and the
time to target are defined. matplotlib is imported only by the functions that draw.

    >>> from optbench import report
    >>> records = report.read_records("results.jsonl")
    >>> print(report.summary_text(records))
    >>> report.plots(records, "plots/", formats="png,svg,pdf")
    >>> report.html(records, "report.html")
"""

from optbench.report.data import (
    DEFAULT_TARGET,
    TARGET_RULE,
    Run,
    analyze,
    fstars,
    reaches,
    read_records,
    time_to_target,
)
from optbench.report.interactive import available as interactive_available
from optbench.report.page import html, render
from optbench.report.plots import FORMATS, Figure, check_formats, figures, plots
from optbench.report.profile import Profile, performance_profile, profile_from_times
from optbench.report.profiles import (
    DEFAULT_TAU,
    Profiles,
    data_profile,
    profiles,
    profiles_text,
)
from optbench.report.profiles import applies as profiles_applies
from optbench.report.summary import summary, summary_text

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TAU",
    "FORMATS",
    "TARGET_RULE",
    "Figure",
    "Profile",
    "Profiles",
    "Run",
    "analyze",
    "check_formats",
    "data_profile",
    "figures",
    "fstars",
    "html",
    "interactive_available",
    "performance_profile",
    "plots",
    "profile_from_times",
    "profiles",
    "profiles_applies",
    "profiles_text",
    "reaches",
    "read_records",
    "render",
    "summary",
    "summary_text",
    "time_to_target",
]
