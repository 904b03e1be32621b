"""Record the asv suite for a commit and a base, compare them, publish the dashboard.

    python benchmarks/perf.py                     # HEAD against HEAD~1
    python benchmarks/perf.py --base main~5 --factor 1.3 --quick
    python -m asv preview                         # then browse the dashboard

Each commit is measured from its own source, checked out in a git worktree under
.asv/worktrees and put first on the benchmarks' path (ASV_PYTHONPATH), by this checkout's
suite (benchmarks/), in this interpreter (asv's "existing" environment, --python=same).
`asv compare` exits 0 whatever it finds, so this script reads its table and exits 1 when
any benchmark slowed by more than --factor (asv marks those '+') or broke ('!').
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASV = [sys.executable, "-m", "asv", "--config", str(ROOT / "asv.conf.json")]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def source_of(sha: str) -> Path:
    """The src/ folder holding `sha`'s code: this checkout if clean at sha, else a worktree."""
    if git("rev-parse", "HEAD") == sha and not git("status", "--porcelain", "--", "src"):
        return ROOT / "src"
    tree = ROOT / ".asv" / "worktrees" / sha[:12]
    if not tree.exists():
        git("worktree", "add", "--detach", "--force", str(tree), sha)
    return tree / "src"


def record(sha: str, machine: str, quick: bool, bench: str | None) -> int:
    env = dict(os.environ, ASV_PYTHONPATH=str(source_of(sha)))
    cmd = [*ASV, "run", "--python=same", "--set-commit-hash", sha, "--machine", machine,
           "--show-stderr"]
    cmd += ["--quick"] if quick else []
    cmd += ["--bench", bench] if bench else []
    print(f"perf: recording {sha[:12]} from {env['ASV_PYTHONPATH']}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def compare(base: str, head: str, machine: str, factor: float) -> list[str]:
    """asv compare's rows that got worse by more than `factor` or broke."""
    out = subprocess.run([*ASV, "compare", base, head, "--machine", machine,
                          "--factor", str(factor), "--split"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    print(out, flush=True)
    # Rows look like "| +  | 1.9ms | 6.0ms | 3.14 | name |" (or, in older asv, without the
    # bars); the first cell is the change mark: '+' slower, '!' broken.
    return [line for line in out.splitlines() if change_mark(line) in ("+", "!")]


def change_mark(row: str) -> str:
    first = row.strip().strip("|").split("|")[0].split()
    return first[0] if first else ""


def forget_unrecorded(results: Path) -> None:
    """Drop from asv's list of benchmarks those that no results file holds.

    `asv run --bench` records a selection but lists every benchmark it discovered, and the
    published dashboard then asks for a graph of each: a 404 and an empty plot for every
    benchmark outside the selection. A benchmark recorded for any commit is kept.
    """
    listing = results / "benchmarks.json"
    benchmarks = json.loads(listing.read_text())
    recorded: set[str] = set()
    for path in results.glob("*/*.json"):
        if path.name != "machine.json":
            recorded |= set(json.loads(path.read_text()).get("results", {}))
    kept = {k: v for k, v in benchmarks.items() if k == "version" or k in recorded}
    if len(kept) < len(benchmarks):
        listing.write_text(json.dumps(kept, indent=4, sort_keys=True))


def require_asv() -> None:
    """asv is in the `dev` extra, not in `all`: say so in one line instead of a traceback."""
    try:
        import asv  # noqa: F401
    except ImportError:
        print("perf: asv is not installed: pip install -c constraints.txt -e '.[dev]' "
              "(or pip install asv)", file=sys.stderr)
        sys.exit(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD~1", help="commit to compare with")
    parser.add_argument("--head", default="HEAD", help="commit to measure")
    parser.add_argument("--factor", type=float, default=1.5,
                        help="fail when a benchmark is slower by more than this factor")
    parser.add_argument("--machine", default="optbench-ci", help="asv machine name")
    parser.add_argument("--quick", action="store_true", help="one sample per benchmark")
    parser.add_argument("--bench", default=None, help="only benchmarks matching this regex")
    parser.add_argument("--no-publish", action="store_true", help="skip asv publish")
    args = parser.parse_args()
    if args.factor <= 1:
        parser.error(f"--factor {args.factor} is not accepted: expected a number > 1")
    require_asv()
    try:
        base, head = git("rev-parse", args.base), git("rev-parse", args.head)
    except subprocess.CalledProcessError:
        parser.error(f"--base {args.base} / --head {args.head}: not commits of this repo")

    subprocess.run([*ASV, "machine", "--yes", "--machine", args.machine], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    failures = 0
    for sha in dict.fromkeys([base, head]):  # once each, base first
        failures += record(sha, args.machine, args.quick, args.bench) != 0
    worse = compare(base, head, args.machine, args.factor)
    if not args.no_publish:
        if args.bench:
            forget_unrecorded(ROOT / ".asv" / "results")
        subprocess.run([*ASV, "publish"], cwd=ROOT, check=True)
        print(f"perf: dashboard in {ROOT / '.asv' / 'html'} (python -m asv preview)")
    if worse:
        print(f"perf: {len(worse)} benchmark(s) slower than x{args.factor} or broken "
              f"from {base[:12]} to {head[:12]}", file=sys.stderr)
        return 1
    if failures:
        print("perf: some benchmarks failed to run (see above)", file=sys.stderr)
        return 1
    print(f"perf: no benchmark slowed by more than x{args.factor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
