"""stdout carries a command's result and nothing else.

While a command runs under `results_only()`, anything else that writes to stdout — a plugin's
print at import or in value_and_grad, a C extension's printf, a child process — goes to
stderr instead: sys.stdout is stderr, and so is file descriptor 1, since C code and child
processes write to the descriptor, not to the Python object. The command's result goes to the
real stdout through `emit()`, the one way there. So `--format json` prints only JSON,
whatever a plugin prints.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import click

# While results_only() is in force: the real sys.stdout, and (a copy of the real fd 1,
# stderr's fd) or None when fd 1 could not be moved aside.
_real: tuple[TextIO | None, tuple[int, int] | None] | None = None


@contextlib.contextmanager
def results_only() -> Iterator[None]:
    """Send whatever is written to stdout to stderr until the end, except `emit()`."""
    global _real
    if _real is not None or sys.stderr is None:  # already in force, or nowhere to divert to
        yield
        return
    real = sys.stdout
    _flush(real)
    saved = _divert_fd()
    _real = (real, saved)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        _flush_everything()
        if saved is not None:
            os.dup2(saved[0], 1)
            os.close(saved[0])
        sys.stdout = real
        _real = None


def emit(text: str) -> None:
    """Write a command's result (a line is added) to the real stdout."""
    if _real is None:
        click.echo(text)
        return
    real, saved = _real
    if real is None:  # started without a stdout (fd 1 closed): nowhere for a result to go
        return
    _flush_everything()  # what plugins wrote so far lands on stderr, before the result
    if saved is not None:
        os.dup2(saved[0], 1)
    try:
        click.echo(text, file=real)
        _flush(real)
    finally:
        if saved is not None:
            os.dup2(saved[1], 1)


def _divert_fd() -> tuple[int, int] | None:
    """Point fd 1 at stderr's descriptor; return (a copy of the old fd 1, stderr's fd), or
    None where either cannot be had (fd 1 closed, a stderr without a descriptor)."""
    try:
        err = sys.stderr.fileno()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # closed, or a stream without a descriptor
        return None
    try:
        os.dup2(err, 1)
    except OSError:
        os.close(saved)
        return None
    return saved, err


def _flush_everything() -> None:
    _flush(sys.stdout)
    _flush(sys.stderr)
    _flush_c_stdio()


def _flush(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.flush()


def _flush_c_stdio() -> None:
    # The C library buffers its own stdout (printf from an extension): flushed now, while
    # fd 1 is still stderr, it lands there rather than on the real stdout at exit.
    if _real is None or _real[1] is None:
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)
