"""Whether a plugin distribution is installed, for tests that need one (skipped otherwise)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution


def installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True
