"""Deliberately broken plugins, each a real plugin module registered through optbench's hooks,
for the conformance kit's tests to catch (tests/test_testing_backend.py and
tests/test_testing_problem.py). Each defect is one that an earlier kit let pass.

`registry(module)` loads optbench's built-in plugins and the given module, as a third-party
plugin would be loaded, and nothing installed beside them.
"""

from __future__ import annotations

from types import ModuleType

from optbench.plugins import Registry


def registry(module: ModuleType) -> Registry:
    loaded = Registry.load(extra=[(module.__name__, module)], entry_points_too=False)
    errors = [p.error for p in loaded.plugins if p.error]
    assert not errors, errors
    return loaded


def failed(report, name: str) -> str:
    """The message of a check that must have failed (not passed, not skipped)."""
    result = report[name]
    assert not result.passed and not result.skipped, str(report)
    assert not report.ok
    return result.message
