"""`optbench` entry point: how every command ends.

Bad input ends as one line on stderr and exit status 2; a failure while running as one line
and exit 1; Ctrl-C as one line, "optbench: interrupted", and exit 130 — wherever it lands,
start-up included. So this module imports nothing heavy at its top: the commands (click,
the plugins, numpy...) are imported inside main(), where Ctrl-C is already handled.

The commands themselves are in optbench.cli.commands; `cli` is importable from here too.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run the command line (argv: default sys.argv[1:]) and exit with its status."""
    try:
        _main(argv)
    except KeyboardInterrupt:
        _interrupted()


def _main(argv: list[str] | None) -> None:
    import contextlib
    import warnings

    import click

    from optbench.cli.commands import Interrupted, cli
    from optbench.cli.streams import results_only
    from optbench.errors import UsageError

    # Click's shell completion (its variable named after prog_name) answers on stdout
    # itself: left alone.
    completing = "_OPTBENCH_COMPLETE" in os.environ
    try:
        with contextlib.nullcontext() if completing else results_only(), \
                warnings.catch_warnings():
            # A warning is one line, as every message of the command line ("optbench:
            # warning: ..."), not Python's two with the source line.
            warnings.showwarning = _show_warning
            code = cli.main(args=argv, prog_name="optbench", standalone_mode=False)
    except (Interrupted, click.exceptions.Abort):
        _interrupted()
    except click.exceptions.UsageError as exc:  # click's own: bad option, bad choice...
        fail(2, _one_line(exc.format_message()))
    except UsageError as exc:  # ParseError marks the offending place inline
        fail(2, exc.one_line() if hasattr(exc, "one_line") else _one_line(str(exc)))
    except click.ClickException as exc:
        fail(exc.exit_code, _one_line(exc.format_message()))
    except Exception as exc:
        if os.environ.get("OPTBENCH_DEBUG"):
            raise
        fail(1, f"{type(exc).__name__}: {_one_line(str(exc))} (OPTBENCH_DEBUG=1 shows where)")
    sys.exit(code if isinstance(code, int) else 0)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    _say(f"optbench: warning: {_one_line(str(message))}")


def _interrupted() -> None:
    # One line: no traceback, and no blank line before it either.
    _say("optbench: interrupted")
    sys.exit(130)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def fail(code: int, message: str) -> None:
    _say(f"optbench: error: {message}")
    sys.exit(code)


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # no stderr to write to: the status says it
        pass


def __getattr__(name: str) -> object:
    # `from optbench.cli.main import cli`, without importing the commands at start-up.
    if name == "cli":
        from optbench.cli.commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
