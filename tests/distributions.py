"""Plugin distributions for tests: whether one is installed, and real ones made on the fly.

`make_distribution` writes what pip would have installed — a package and its
NAME-VERSION.dist-info with METADATA and an entry_points.txt declaring the group "optbench" —
into a directory. With that directory on PYTHONPATH, a fresh interpreter finds the plugin
through importlib.metadata exactly as it finds an installed one (its version, its
distribution name, its entry point), without installing anything.
"""

from __future__ import annotations

import os
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


def installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def make_distribution(root: Path, name: str, source: str, version: str = "0.1.0",
                      entry_point: str | None = None) -> Path:
    """Write distribution `name` into `root`: package `name` with '-' as '_', whose
    __init__.py is `source` (dedented), declared as entry point `entry_point` (default:
    `name`) in the group "optbench". Returns `root`, the directory to put on the path."""
    module = name.replace("-", "_")
    package = root / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: an optbench test plugin made by tests/distributions.py\n")
    (info / "entry_points.txt").write_text(f"[optbench]\n{entry_point or name} = {module}\n")
    return root


def on_path(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's environment) with `root` first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env
