"""Built-in backends, each a plugin module registered through `register_backends`.

None of them imports its array library at module level: that happens in `prepare`.
"""

import importlib.util


def missing_package(module: str, extra: str) -> str | None:
    """The reason a backend is unavailable when `module` is not installed, without importing it."""
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'optbench[{extra}]')"
    return None
