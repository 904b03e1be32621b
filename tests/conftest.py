"""Shared fixtures. Keep this file small: each fixture here is used by several test files."""

from __future__ import annotations

import os
import signal

import pytest

from optbench.plugins import Registry, get_registry


def pytest_configure(config: pytest.Config) -> None:
    # The suite starts hundreds of Python processes (the command line, Dask workers, asv).
    # Where the environment forbids bytecode caches (PYTHONDONTWRITEBYTECODE, as this kind
    # of machine sets it), each of them would compile torch's sources again, and the test
    # command installs without compiling every installed file (pip --no-compile: most are
    # never imported). So processes under the tests cache what they import, once, in the
    # venv and in the checkout's __pycache__ (ignored by git).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # pytest-xdist's workers ignore SIGINT (the controller handles Ctrl-C), and an ignored
    # signal is inherited through exec: the Ctrl-C tests' subprocesses never saw theirs, and
    # the in-process ones skipped. A worker takes Python's own handler back, as a plain
    # pytest process has it.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The process-wide plugin registry (built-ins plus installed entry points)."""
    return get_registry()


@pytest.fixture
def fresh_registry(monkeypatch):
    """No plugins disabled by the caller's environment, no registry cached across tests."""
    monkeypatch.delenv("OPTBENCH_DISABLE_PLUGINS", raising=False)
    get_registry.cache_clear()
    yield
    get_registry.cache_clear()


@pytest.fixture
def use_registry(monkeypatch):
    """Make a given registry the process-wide one, for the command line run in-process."""

    def install(registry: Registry) -> None:
        monkeypatch.setattr(Registry, "load", classmethod(lambda cls, *a, **k: registry))
        get_registry.cache_clear()

    yield install
    get_registry.cache_clear()
