"""The record names its code (issue 18, item 5): optbench's version and git revision, the
plugins' versions; `--resume` runs again what other code ran, unless
`--resume-any-version`. Records without `code` (older files) count as an unknown version."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clitools import run_main
from optbench.results import code as code_module
from optbench.results import run_key
from optbench.results.code import code_version, optbench_code

ROOT = Path(__file__).resolve().parents[1]
GIT = shutil.which("git")
GRID = ["--problem", "rosenbrock", "--backend", "fd", "--optimizer", "nadam,adam", "--seeds",
        "2", "--steps", "10", "-q"]
N_RUNS = 4


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---- what the record says --------------------------------------------------------------------

@pytest.mark.skipif(GIT is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_revision_and_dirty_flag_are_git_s(monkeypatch):
    """Against git itself: HEAD's commit, and whether tracked files under src/ differ."""
    code = optbench_code()
    assert code["revision"] == git("rev-parse", "HEAD", cwd=ROOT)
    assert code["src_tree"] == git("rev-parse", "HEAD:src", cwd=ROOT)
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "src", cwd=ROOT)
    assert code["dirty"] is bool(changed)
    assert (code["diff"] is not None) is bool(changed)


@pytest.mark.skipif(GIT is None, reason="no git")
@pytest.mark.parametrize("layout", ["loose", "packed", "worktree", "detached"])
def test_revision_is_read_from_the_files_of_git(layout, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "f").write_text("1")
    git("add", "f", cwd=repo)
    git(*env, "commit", "-q", "-m", "one", cwd=repo)
    (repo / "f").write_text("2")
    git(*env, "commit", "-q", "-am", "two", cwd=repo)
    where = repo
    if layout == "packed":
        git("pack-refs", "--all", cwd=repo)
        assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    elif layout == "worktree":
        git("worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"), "HEAD~1", cwd=repo)
        where = tmp_path / "wt"
        assert (where / ".git").is_file()
    elif layout == "detached":
        git("checkout", "-q", "--detach", "HEAD~1", cwd=repo)
    assert code_module._revision(where / ".git") == git("rev-parse", "HEAD", cwd=where)


def test_campaign_records_name_their_code(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    code, _, err = run_main(capsys, "bench", *GRID, "-o", str(path))
    assert code == 0, err
    from optbench import __version__
    from optbench.plugins import get_registry

    installed = {p.name: p.version for p in get_registry().plugins
                 if p.error is None and not p.name.startswith("optbench.")}
    for r in lines_of(path):
        assert r["code"]["optbench"] == __version__
        assert r["code"]["revision"] == optbench_code()["revision"]
        assert r["code"]["plugins"] == installed
    from importlib.metadata import version  # the distribution's own metadata

    assert installed["scipy"] == version("optbench-scipy")  # an installed plugin


def test_help_and_list_do_not_look_for_the_code():
    script = ("import sys\nfrom optbench.cli.main import main\n"
              "for argv in (['--help'], ['list']):\n"
              "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
              "m = sys.modules.get('optbench.results.code')\n"
              "print(m is not None and m.optbench_code.cache_info().currsize, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.stderr.strip().splitlines()[-1] in ("False", "0"), done.stderr


# ---- the key ---------------------------------------------------------------------------------

def test_run_key_holds_the_code_version():
    base = {"problem": "p", "backend": "b", "seed": 0, "status": "converged"}
    one = {**base, "code": {"optbench": "0.1.0", "revision": "a" * 40, "src_tree": "c" * 40,
                            "dirty": False}}
    dirty = {**base, "code": {**one["code"], "dirty": True, "diff": "1" * 12}}
    edited = {**base, "code": {**one["code"], "dirty": True, "diff": "2" * 12}}
    other = {**base, "code": {**one["code"], "revision": "b" * 40, "src_tree": "d" * 40}}
    docs = {**base, "code": {**one["code"], "revision": "b" * 40}}  # src/ untouched
    plugin = {**base, "code": {**one["code"], "plugins": {"jax": "9"}}}
    keys = {run_key(r) for r in (base, one, dirty, edited, other)}
    assert len(keys) == 5  # unknown, and four codes
    assert run_key(docs) == run_key(one)  # a commit of tests or docs runs nothing again
    assert run_key(plugin) == run_key(one)  # plugin versions are recorded, not compared
    assert len({run_key(r, any_version=True) for r in (base, one, dirty, other)}) == 1
    # What reports show: the revision, as people name commits.
    assert code_version(None) == code_version({"revision": "a" * 40}) == "unknown"
    assert code_version(one["code"]) == "0.1.0+gaaaaaaaaaa"
    assert code_version(docs["code"]) == "0.1.0+gbbbbbbbbbb"
    assert code_version(dirty["code"]) == "0.1.0+gaaaaaaaaaa.dirty-11111111"


@pytest.fixture
def edited(tmp_path, capsys) -> tuple[Path, bytes]:
    """A complete campaign whose first record names other code and whose second has no
    code (written before records named it); the rest are this code's."""
    path = tmp_path / "r.jsonl"
    code, _, err = run_main(capsys, "bench", *GRID, "-o", str(path))
    assert code == 0, err
    records = lines_of(path)
    assert len(records) == N_RUNS
    records[0]["code"] = {**records[0]["code"], "revision": "f" * 40, "src_tree": "e" * 40}
    del records[1]["code"]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(data)
    return path, data


def test_resume_runs_again_what_other_code_ran(edited, capsys):
    path, data = edited
    code, out, err = run_main(capsys, "bench", *GRID, "-o", str(path), "--resume")
    assert (code, out) == (0, ""), err
    assert err.splitlines() == [
        f"optbench: 2 runs written to {path}, 2 already there, 2 run again because other "
        "code ran their records (--resume-any-version keeps such records)"]
    records = lines_of(path)
    assert path.read_bytes().startswith(data) and len(records) == N_RUNS + 2
    current = records[2]["code"]
    rerun = records[N_RUNS:]
    assert [run_key(r, any_version=True) for r in rerun] == [
        run_key(r, any_version=True) for r in records[:2]]  # the same settings, again
    assert all(r["code"] == current for r in rerun)
    # Now complete for this code: nothing more.
    code, _, err = run_main(capsys, "bench", *GRID, "-o", str(path), "--resume")
    assert code == 0 and err.splitlines() == [
        f"optbench: 0 runs written to {path}, {N_RUNS} already there"], err


def test_resume_any_version_keeps_what_any_code_ran(edited, capsys):
    path, data = edited
    code, out, err = run_main(capsys, "bench", *GRID, "-o", str(path),
                              "--resume-any-version")
    assert (code, out) == (0, ""), err
    assert err.splitlines() == [f"optbench: 0 runs written to {path}, {N_RUNS} already there"]
    assert path.read_bytes() == data


def test_dry_run_counts_as_resume_would(edited, capsys):
    path, data = edited
    for flag, already in (("--resume", N_RUNS - 2), ("--resume-any-version", N_RUNS)):
        code, out, err = run_main(capsys, "bench", *GRID, "-o", str(path), flag, "--dry-run",
                                  "--format", "json")
        assert code == 0, err
        plan = json.loads(out)
        assert (plan["already"], plan["to_run"]) == (already, N_RUNS - already), flag
    assert path.read_bytes() == data
