"""The code a run ran: optbench's version, its git revision, and each plugin's version.

A campaign record carries it as `code`:

    {"optbench": "0.1.0", "revision": "<40 hex>" | null, "dirty": true | false | null,
     "diff": "<12 hex>" | null, "plugins": {"optbench-jax": "0.1.0", ...}}

`revision` is known when optbench is imported from a git checkout (`<root>/src/optbench`
beside `<root>/.git`; an installed copy in site-packages has none), read from the files of
.git without running git. `dirty` says whether tracked files under `src/` differ from that
revision, and `diff` is a digest of that difference, so that two different edits of the same
revision are two different codes; both come from one `git diff` (a few milliseconds, with a
timeout), null when git cannot tell. All of it is computed once per process, when a campaign
first asks: never by `optbench --help` or `list`. A Dask worker computes its own, since it
may run other code than the client.

`code_version` turns it into the version that `--resume` compares (optbench's version, its
revision and diff; plugin versions are recorded, not compared: see `code_version`).
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

    code: dict[str, Any] = {"optbench": __version__, "revision": None, "dirty": None,
                            "diff": None}
    root = _checkout()
    if root is not None:
        code["revision"] = _revision(root / ".git")
        if code["revision"] is not None:
            code["dirty"], code["diff"] = _diff(root)
    return code


def code_version(code: Any, short: bool = False) -> str:
    """The code's version as one text: "0.1.0", "0.1.0+g<revision>", "...+g<revision>.dirty-
    <diff>"; "unknown" for a record without (valid) code. `short`: a 10-digit revision, for
    reports.

    This is what `--resume` compares. Plugin versions are left out on purpose: every
    installed plugin would count, including those the run never touched (an upgraded jax
    plugin would re-run every torch run), and the client that checks the key and the Dask
    worker that runs may see different plugin sets. They stay in the record, for reports."""
    if not isinstance(code, Mapping) or not isinstance(code.get("optbench"), str):
        return UNKNOWN
    text = code["optbench"]
    revision, diff = code.get("revision"), code.get("diff")
    if isinstance(revision, str) and revision:
        text += "+g" + (revision[:10] if short else revision)
        if code.get("dirty") is True:
            text += ".dirty" + (f"-{diff[:8] if short else diff}" if isinstance(diff, str)
                                else "")
    return text


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


def _diff(root: Path) -> tuple[bool | None, str | None]:
    """(dirty, digest of the diff) of the tracked files under src/ against HEAD; (None,
    None) when git is missing or does not answer in time."""
    git = shutil.which("git")
    if git is None:
        return None, None
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run([git, "-C", str(root), "diff", "--no-ext-diff", "--no-textconv",
                               "--no-color", "HEAD", "--", "src"],
                              capture_output=True, timeout=_GIT_TIMEOUT, env=env,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if done.returncode != 0:
        return None, None
    if not done.stdout:
        return False, None
    return True, hashlib.sha256(done.stdout).hexdigest()[:12]
