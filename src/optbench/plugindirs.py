"""Plugin folders: plain `*.py` files loaded as plugin modules, no packaging needed.

A folder is named by `--plugins DIR` (any command, repeatable), by `plugins = [...]` in a
campaign TOML, or by `OPTBENCH_PLUGINS_PATH` (folders separated by os.pathsep). Each `*.py`
file directly in it whose name does not start with "_", in sorted order, is loaded as one
plugin — through the same hooks and with the same isolation as an installed package
(optbench.plugins.Registry.add): a file whose import raises or that registers badly is
reported by `optbench plugins` and skipped.

These files are the user's own code: they run only because the user named their folder, as
`python file.py` would. Data files and expressions are still never executed.

How a folder is loaded:
- Each folder is a package of its own, named after a hash of its real path
  (`_optbench_plugins_<hash>`), and each file a module in it: two folders that both hold a
  `problems.py` never clash, and the files of one folder may import each other relatively
  (`from . import _shared`, `from .problems import Rosenbrock`). The folder is not put on
  sys.path, so `import problems` does not work.
- Files starting with "_" are not loaded as plugins (helpers for relative imports).
- Bounded: a folder holding more than MAX_FILES `*.py` files is refused (a wrong folder,
  such as a home directory), and each file is size-checked before it is read
  (optbench.userfiles, kind "plugin").
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import types
from collections.abc import Iterable

from optbench import userfiles
from optbench.errors import UsageError

ENV = "OPTBENCH_PLUGINS_PATH"

MAX_FILES = 100
"""The most `*.py` files a plugin folder may hold: a benchmark folder holds a few."""

# The folders named in this process (absolute, normalized), in order: by --plugins and by a
# campaign's `plugins`. OPTBENCH_PLUGINS_PATH is read afresh each time (plugin_dirs()).
_configured: list[str] = []


def _normalize(path: str, base: str | None = None) -> str:
    path = os.path.expanduser(path)
    if base is not None and not os.path.isabs(path):
        path = os.path.join(base, path)
    return os.path.normpath(os.path.abspath(path))


def display(path: str) -> str:
    """A folder's or file's name as shown: relative to the working directory when inside it
    (`examples/own-benchmark/problems.py`), else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel == ".." or rel.startswith(".." + os.sep) else rel


def plugin_files(folder: str, what: str = "plugin folder") -> list[str]:
    """The files of `folder` loaded as plugins, sorted; UsageError when the folder does not
    exist, is not a directory, or holds more than MAX_FILES `*.py` files."""
    if not os.path.exists(folder):
        raise UsageError(f"{what} {display(folder)}: no such directory")
    if not os.path.isdir(folder):
        raise UsageError(f"{what} {display(folder)} is not a directory; expected a folder "
                         "of *.py plugin files")
    try:
        # os.scandir is lazy: a huge folder is not listed whole before the bound applies.
        names = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    names.append(entry.name)
                    if len(names) > MAX_FILES:
                        raise UsageError(
                            f"{what} {display(folder)} holds more than {MAX_FILES} *.py "
                            "files; a plugin folder holds a few (is it the right folder?)")
    except OSError as exc:
        raise UsageError(f"{what} {display(folder)}: cannot read it ({exc.strerror})"
                         ) from None
    return [os.path.join(folder, n) for n in sorted(names) if not n.startswith("_")]


def check_dirs(dirs: Iterable[str], what: str, base: str | None = None) -> list[str]:
    """`dirs` as absolute paths (relative ones taken from `base`, else the working
    directory); UsageError, naming `what`, for one that is no plugin folder."""
    out = []
    for d in dirs:
        if not isinstance(d, str) or not d.strip():
            raise UsageError(f"{what} {d!r} is not accepted: expected a folder's path")
        path = _normalize(d, base)
        plugin_files(path, what)
        out.append(path)
    return out


def configure(dirs: Iterable[str], what: str = "--plugins") -> None:
    """Make `dirs` the folders named in this process (the command line's start: each
    command starts afresh). UsageError, naming `what`, for one that is no folder."""
    _configured[:] = _dedupe(check_dirs(dirs, what))


def add(dirs: Iterable[str], what: str = "--plugins", base: str | None = None) -> None:
    """Add folders (relative paths taken from `base`, e.g. a campaign file's folder)."""
    _configured[:] = _dedupe([*_configured, *check_dirs(dirs, what, base)])


def env_dirs() -> list[str]:
    """The folders of OPTBENCH_PLUGINS_PATH (empty entries ignored), normalized."""
    text = os.environ.get(ENV, "")
    return [_normalize(p) for p in text.split(os.pathsep) if p.strip()]


def check_env() -> None:
    """UsageError naming OPTBENCH_PLUGINS_PATH when one of its folders is no folder."""
    check_dirs(env_dirs(), ENV)


def plugin_dirs() -> tuple[str, ...]:
    """Every plugin folder of this process, in order: those named (command line, campaign),
    then OPTBENCH_PLUGINS_PATH's; each once."""
    return tuple(_dedupe([*_configured, *env_dirs()]))


def _dedupe(paths: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for p in paths:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


# -- loading ------------------------------------------------------------------------------

def package_name(folder: str) -> str:
    digest = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:12]
    return f"_optbench_plugins_{digest}"


def _package(folder: str) -> str:
    """The folder's package in sys.modules (made once): what relative imports resolve in."""
    name = package_name(folder)
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [os.path.realpath(folder)]
        module = importlib.util.module_from_spec(spec)
        module.__file__ = None
        sys.modules[name] = module
    return name


def load_file(path: str) -> types.ModuleType:
    """Import one plugin file as `<folder's package>.<stem>`; the module (loaded once per
    process: a registry built again reuses it). Its size is checked before it is read."""
    folder, filename = os.path.split(path)
    stem = re.sub(r"\W", "_", filename[:-3])
    package = _package(folder)
    name = f"{package}.{stem}"
    module = sys.modules.get(name)
    if module is not None:  # loaded before, or imported by a sibling (from .problems ...)
        return module
    source = userfiles.read_bytes(path, "plugin", what=display(path))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError(f"cannot make a module of {display(path)}")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs, as an import does: dataclasses and pickling look there.
    sys.modules[name] = module
    try:
        code = compile(source, path, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # the user's own plugin file, named by the user
    except BaseException:
        sys.modules.pop(name, None)
        raise
    setattr(sys.modules[package], stem, module)
    return module
