"""The code a run ran: optbench's version, its git revision, and each plugin's version.

A campaign record carries it as `code`:

    {"optbench": "0.1.0", "revision": "<40 hex>" | null, "src_tree": "<40 hex>" | null,
     "dirty": true | false | null, "diff": "<12 hex>" | null,
     "plugins": {"jax": "0.1.0", ...}}

`revision` is known when optbench is imported from a git checkout (`<root>/src/optbench`
beside `<root>/.git`; an installed copy in site-packages has none), read from the files of
.git without running git. `src_tree` is the git tree of `src/` at that revision (a commit
that touches only tests or docs keeps it), `dirty` says whether tracked files under `src/`
differ from the revision, and `diff` is a digest of that difference, so that two different
edits of the same revision are two different codes. Those three come from two short git
commands (milliseconds, with a timeout), null when git cannot tell. All of it is computed
once per process, when a campaign first asks: never by `optbench --help` or `list`. A Dask
worker computes its own, since it may run other code than the client.

`code_key` is the version that `--resume` compares (optbench's version, the source tree and
the diff; plugin versions are recorded, not compared: see `code_key`); `code_version` is the
version reports show (optbench's version, the revision, the diff).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"
"""The version of a record without `code` (written before records named their code)."""

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1, or SHA-256 repositories
_GIT_TIMEOUT = 5.0


def code_info(plugins: Iterable[Any] = ()) -> dict[str, Any]:
    """This process's code, with the versions of `plugins` (a registry's PluginInfo list):
    those that loaded, less the built-in ones, which are optbench's own code."""
    code = dict(optbench_code())
    code["plugins"] = {p.name: p.version for p in plugins
                       if getattr(p, "error", None) is None
                       and not p.name.startswith("optbench.")}
    return code


@lru_cache(maxsize=1)
def optbench_code() -> dict[str, Any]:
    """optbench's version, revision, dirty flag and diff digest (computed once)."""
    from optbench import __version__

    code: dict[str, Any] = {"optbench": __version__, "revision": None, "src_tree": None,
                            "dirty": None, "diff": None}
    root = _checkout()
    if root is not None:
        code["revision"] = _revision(root / ".git")
        if code["revision"] is not None:
            code["src_tree"] = _src_tree(root, code["revision"])
            code["dirty"], code["diff"] = _diff(root)
    return code


def code_version(code: Any) -> str:
    """The code's version as reports show it: "0.1.0", "0.1.0+g<10 digits of the revision>",
    "...+g<revision>.dirty-<8 digits of the diff>"; "unknown" for a record without (valid)
    code (written before records named their code)."""
    if not isinstance(code, Mapping) or not isinstance(code.get("optbench"), str):
        return UNKNOWN
    text = code["optbench"]
    revision = code.get("revision")
    if isinstance(revision, str) and revision:
        text += "+g" + revision[:10] + _dirty(code, 8)
    return text


def code_key(code: Any) -> str:
    """The code's version as `--resume` compares it: optbench's version, the git tree of
    src/ (else the revision) and the diff: "0.1.0+t<tree>.dirty-<diff>"; "unknown" without
    (valid) code, which only `--resume-any-version` matches.

    The source tree rather than the revision, so that a commit of tests or docs does not
    re-run a campaign. Plugin versions are left out on purpose: every installed plugin would
    count, including those the runs never touched (an upgraded jax plugin would re-run every
    torch run), and the client that checks the key and the Dask worker that runs may see
    different plugin sets. They stay in the record, for reports."""
    if not isinstance(code, Mapping) or not isinstance(code.get("optbench"), str):
        return UNKNOWN
    text = code["optbench"]
    tree, revision = code.get("src_tree"), code.get("revision")
    if isinstance(tree, str) and tree:
        text += "+t" + tree + _dirty(code, None)
    elif isinstance(revision, str) and revision:
        text += "+g" + revision + _dirty(code, None)
    return text


def _dirty(code: Mapping[str, Any], digits: int | None) -> str:
    if code.get("dirty") is not True:
        return ""
    diff = code.get("diff")
    return ".dirty" + (f"-{diff[:digits]}" if isinstance(diff, str) else "")


def _checkout() -> Path | None:
    """The root of the git checkout optbench is imported from, if it is one."""
    package = Path(__file__).resolve().parent.parent  # .../src/optbench
    root = package.parent.parent
    if package.parent.name != "src" or not (root / ".git").exists():
        return None  # installed (site-packages): a .git above it is somebody else's
    return root


def _read(path: Path, limit: int = 4096) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return None


def _revision(dotgit: Path) -> str | None:
    """HEAD's commit, from the files of .git: a worktree's `.git` file names its git dir,
    whose `commondir` holds the refs; a ref is loose or in packed-refs."""
    gitdir = dotgit
    if dotgit.is_file():
        text = _read(dotgit) or ""
        if not text.startswith("gitdir:"):
            return None
        gitdir = (dotgit.parent / text[len("gitdir:"):].strip()).resolve()
    head = (_read(gitdir / "HEAD") or "").strip()
    if _SHA.fullmatch(head):
        return head  # a detached HEAD
    if not head.startswith("ref:"):
        return None
    ref = head[len("ref:"):].strip()
    if not ref.startswith("refs/") or ".." in ref:
        return None
    common = _read(gitdir / "commondir")
    common_dir = (gitdir / common.strip()).resolve() if common else gitdir
    for where in dict.fromkeys((gitdir, common_dir)):
        value = (_read(where / ref) or "").strip()
        if _SHA.fullmatch(value):
            return value
    packed = _read(common_dir / "packed-refs", 1 << 24) or ""
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name.strip() == ref and _SHA.fullmatch(sha):
            return sha
    return None


def _git(root: Path, *args: str) -> bytes | None:
    """A git command's output in the checkout; None when git is missing, fails or does not
    answer within _GIT_TIMEOUT."""
    git = shutil.which("git")
    if git is None:
        return None
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run([git, "-C", str(root), *args], capture_output=True,
                              timeout=_GIT_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _src_tree(root: Path, revision: str) -> str | None:
    out = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}:src")
    tree = out.decode("ascii", "replace").strip() if out else ""
    return tree if _SHA.fullmatch(tree) else None


def _diff(root: Path) -> tuple[bool | None, str | None]:
    """(dirty, digest of the diff) of the tracked files under src/ against HEAD; (None,
    None) when git cannot tell."""
    out = _git(root, "diff", "--no-ext-diff", "--no-textconv", "--no-color", "HEAD", "--",
               "src")
    if out is None:
        return None, None
    if not out:
        return False, None
    return True, hashlib.sha256(out).hexdigest()[:12]
