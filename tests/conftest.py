"""Shared fixtures. Keep this file small: each fixture here is used by several test files."""

from __future__ import annotations

import pytest

from optbench.plugins import Registry, get_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The process-wide plugin registry (built-ins plus installed entry points)."""
    return get_registry()
