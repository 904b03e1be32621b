"""The two kinds of failure optbench distinguishes.

`UsageError` is bad input: the command line turns it into one line on stderr and exit
status 2. Anything else raised while a run is going on is a failure of that run (exit 1).
"""


class UsageError(ValueError):
    """Bad input from the user: a name, a value or a file that is not accepted."""


class PluginError(RuntimeError):
    """A plugin broke a contract (duplicate name, wrong type registered, ...)."""
