"""Issue 18, items 2 and 3: per-optimizer grids, unions of grids, and `bench --dry-run`.

Before: `--lr 0.1,0.01` gave every optimizer both rates (lbfgs too) and `-O nadam:lr=...`
was refused; a campaign file had one grid; `bench` could only run. Each grid form is
checked through `--dry-run --format json`, which lists the plan's runs (every one when at
most dryrun.SHOWN are planned; 40 here): the command line and the campaign file must plan the same
runs, in the same order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clitools import assert_usage_error, run_main
from optbench.bench import dryrun, runone
from optbench.bench.campaign import Campaign, expand, expand_all
from optbench.results import run_key
from records import read_records


@pytest.fixture(autouse=True)
def list_whole_plans(monkeypatch):
    monkeypatch.setattr(dryrun, "SHOWN", 40)  # the plans compared here are listed whole


def plan(capsys, *argv: str) -> dict:
    """The --dry-run JSON plan of `optbench bench ARGV`."""
    code, out, err = run_main(capsys, "bench", *argv, "--dry-run", "--format", "json")
    assert code == 0, err
    return json.loads(out)


def keys(p: dict) -> list[str]:
    assert p["to_run"] <= dryrun.SHOWN, "a test plan must be listed whole"
    return [run_key(r) for r in p["runs"]]


def settings_of(p: dict) -> list[tuple]:
    return [(r["optimizer"], r["optimizer_params"].get("lr"),
             r["optimizer_params"].get("history_size"), r["seed"]) for r in p["runs"]]


def toml(tmp_path: Path, text: str, name: str = "c.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


BASE = ["--problem", "rosenbrock", "--backend", "fd", "--steps", "3"]


# ---- per-optimizer grids -------------------------------------------------------------------

def test_a_scoped_grid_applies_to_its_optimizer_only(capsys):
    p = plan(capsys, *BASE, "--optimizer", "nadam,lbfgs", "--lr", "0.5",
             "-O", "nadam:lr=0.1,0.01", "-O", "lbfgs:history_size=10,50")
    # nadam: its own two rates, not --lr's; lbfgs: --lr, crossed with its own grid.
    assert settings_of(p) == [("nadam", 0.1, None, 0), ("nadam", 0.01, None, 0),
                              ("lbfgs", 0.5, 10, 0), ("lbfgs", 0.5, 50, 0)]
    assert p["notes"] == ["nadam:lr replaces the unscoped lr (--lr, -O lr) for nadam; the "
                          "other optimizers keep it"]


def test_a_scoped_grid_replaces_the_unscoped_key_for_its_optimizer(capsys):
    p = plan(capsys, *BASE, "--optimizer", "nadam,adam", "-O", "betas=0.9,0.999",
             "-O", "adam:betas=0.8,0.9;0.7,0.9")
    betas = [(r["optimizer"], r["optimizer_params"]["betas"]) for r in p["runs"]]
    assert betas == [("nadam", [0.9, 0.999]), ("adam", [0.8, 0.9]), ("adam", [0.7, 0.9])]


def test_the_campaign_file_gives_the_same_plan_as_scoped_options(capsys, tmp_path):
    cli = plan(capsys, *BASE, "--optimizer", "nadam,lbfgs", "--lr", "0.5", "--seeds", "2",
               "-O", "betas=0.8,0.9", "-O", "nadam:lr=0.1,0.01",
               "-O", "lbfgs:history_size=10,50")
    path = toml(tmp_path, 'problems = "rosenbrock"\nbackends = "fd"\nsteps = 3\nseeds = 2\n'
                'optimizers = ["nadam", "lbfgs"]\nlr = 0.5\n[optimizer_params]\n'
                "betas = [0.8, 0.9]\n[optimizer_params.nadam]\nlr = [0.1, 0.01]\n"
                "[optimizer_params.lbfgs]\nhistory_size = [10, 50]\n")
    file = plan(capsys, path)
    assert keys(file) == keys(cli) and len(keys(cli)) == 8
    assert file["notes"] == cli["notes"]


def test_the_python_api_takes_scoped_grids(registry):
    from optbench.bench.grid import _alternatives, _scoped

    given = {"betas": [0.8, 0.9], "nadam": {"lr": [0.1, 0.01]}}
    c = Campaign(problems=["rosenbrock"], backends=["fd"], optimizers=["nadam", "lbfgs"],
                 seeds=[0], steps=3, optimizer_params=_alternatives(given, "o"),
                 per_optimizer=_scoped(given))
    specs, _ = expand(c, registry)
    assert [(s.optimizer, dict(s.optimizer_params)["lr"]) for s in specs] == [
        ("nadam", 0.1), ("nadam", 0.01), ("lbfgs", 1.0)]


BAD_SCOPES = {
    "scope not an optimizer of the campaign": (["-O", "adam:lr=0.1"],
                                               ["adam:lr", "not an optimizer", "nadam, lbfgs"]),
    "key the optimizer lacks": (["-O", "lbfgs:betas=0.9,0.99"],
                                ["lbfgs:betas", "no hyperparameter betas", "history_size"]),
    "empty scope": (["-O", ":lr=0.1"], ["':lr=0.1'", "optimizer:key=value"]),
    "bad value in a scope": (["-O", "nadam:lr=0"], ["lr=0", "> 0"]),
}


@pytest.mark.parametrize("case", BAD_SCOPES)
def test_a_bad_scope_is_refused_in_one_line(case, capsys, tmp_path):
    argv, fragments = BAD_SCOPES[case]
    out = tmp_path / "r.jsonl"
    code, stdout, stderr = run_main(capsys, "bench", *BASE, "--optimizer", "nadam,lbfgs",
                                    *argv, "-o", str(out))
    assert_usage_error(code, stdout, stderr, *fragments)
    assert not out.exists()


def test_a_bad_scope_in_a_campaign_file_is_refused(capsys, tmp_path):
    path = toml(tmp_path, 'problems = "rosenbrock"\nbackends = "fd"\noptimizers = "nadam"\n'
                "[optimizer_params.adam]\nlr = 0.1\n")
    code, out, err = run_main(capsys, "bench", path, "--dry-run")
    assert_usage_error(code, out, err, "adam:lr", "not an optimizer", "nadam")


# ---- unions of grids -------------------------------------------------------------------------

UNION = """\
problems = "rosenbrock"
backends = "fd"
steps = 3
seeds = 2

[[grid]]
optimizers = ["nadam", "adam"]
lr = [0.1, 0.01]

[[grid]]
optimizers = ["nadam", "lbfgs"]
lr = 0.1
seeds = [1, 2]
steps = 4
"""


def test_a_union_plans_each_grid_in_turn_each_run_once(capsys, tmp_path):
    first = plan(capsys, *BASE, "--seeds", "2", "--optimizer", "nadam,adam", "--lr", "0.1,0.01")
    second = plan(capsys, "--problem", "rosenbrock", "--backend", "fd", "--seeds", "3",
                  "--optimizer", "nadam,lbfgs", "--lr", "0.1", "--steps", "4")
    union = plan(capsys, toml(tmp_path, UNION.replace("seeds = [1, 2]", "seeds = 3")))
    assert keys(union) == list(dict.fromkeys(keys(first) + keys(second)))
    # Grids with the same stop rules share runs: nadam at lr 0.1, seed 1, runs once.
    same_steps = plan(capsys, toml(tmp_path, UNION.replace("steps = 4\n", ""), "d.toml"))
    assert same_steps["planned"] == 8 + 2 * 2 - 1


def test_a_union_runs_each_grid_with_its_own_stop_rules_and_resumes(capsys, tmp_path):
    """Before, every run took the first campaign's steps: a grid's `steps = 4` ran 3 steps
    and was recorded (and keyed) as 3, so --resume ran it again."""
    path, out = toml(tmp_path, UNION), tmp_path / "r.jsonl"
    code, _, err = run_main(capsys, "bench", "-q", path, "-o", str(out))
    assert code == 0, err
    records = read_records(out)
    planned = plan(capsys, path)
    assert [run_key(r) for r in records] == keys(planned) and len(records) == 8 + 4
    assert {(r["optimizer"], r["max_steps"]) for r in records} == {
        ("nadam", 3), ("adam", 3), ("nadam", 4), ("lbfgs", 4)}
    assert all(r["steps"] <= r["max_steps"] for r in records)
    resumed = plan(capsys, path, "-o", str(out), "--resume")
    assert (resumed["already"], resumed["to_run"], resumed["runs"]) == (12, 0, [])


def test_a_grid_table_replaces_top_level_keys_and_may_name_a_suite(capsys, tmp_path):
    text = ('problems = "rosenbrock"\nbackends = "fd"\nsteps = 3\n[optimizer_params]\n'
            "betas = [0.8, 0.9]\n[[grid]]\noptimizers = \"adam\"\n[[grid]]\n"
            'optimizers = "adam"\nproblems = "booth"\n[grid.optimizer_params]\namsgrad = true\n')
    p = plan(capsys, toml(tmp_path, text))
    runs = [(r["problem"], r["optimizer_params"]["betas"], r["optimizer_params"]["amsgrad"])
            for r in p["runs"]]
    assert runs == [("rosenbrock", [0.8, 0.9], False), ("booth", [0.9, 0.999], True)]


@pytest.mark.parametrize("text, fragments", [
    ("grid = 3\n", ["grid must be one or more [[grid]] tables"]),
    ('[[grid]]\nproblems = "rosenbrock"\nplugins = "."\n', ["grid 1", "unknown key 'plugins'"]),
    ('[[grid]]\nproblems = "rosenbrock"\n[[grid]]\nproblems = "nope"\n', ["grid 2", "'nope'"]),
    ('[[grid]]\nproblems = "rosenbrock"\nsteps = -1\n', ["grid 1", "steps=-1"]),
])
def test_a_bad_grid_table_is_named(capsys, tmp_path, text, fragments):
    code, out, err = run_main(capsys, "bench", toml(tmp_path, 'backends = "fd"\n' + text),
                              "--dry-run")
    assert_usage_error(code, out, err, *fragments)


def brute_force(campaigns, registry) -> list[str]:
    """The union's keys, independently: each grid expanded alone, concatenated, repeats
    dropped (the first kept)."""
    out: dict[str, None] = {}
    for c in campaigns:
        for spec in expand(c, registry)[0]:
            out.setdefault(spec.key)
    return list(out)


SEEDS = st.one_of(st.integers(1, 4).map(range),
                  st.lists(st.integers(0, 5), min_size=1, max_size=4))
GRIDS = st.lists(st.fixed_dictionaries({
    "optimizers": st.lists(st.sampled_from(["nadam", "lbfgs"]), min_size=1, max_size=2,
                           unique=True),
    "backends": st.lists(st.sampled_from(["fd", "autograd"]), min_size=1, max_size=2,
                         unique=True),
    "lrs": st.lists(st.sampled_from([0.1, 0.01]), min_size=1, max_size=2, unique=True),
    "seeds": SEEDS, "steps": st.sampled_from([3, 4])}), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(GRIDS)
def test_a_union_is_the_concatenation_without_repeats(registry, grids):
    campaigns = [Campaign(problems=["rosenbrock"], **g) for g in grids]
    union, _ = expand_all(campaigns, registry)
    listed = [s.key for s in union]
    assert listed == brute_force(campaigns, registry)
    assert len(union) == len(listed)  # counted without listing, by interval arithmetic
    if listed:
        assert union[-1].key == listed[-1] and union[0].key == listed[0]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lrs=st.lists(st.sampled_from(["0.1", "0.01", "0.5"]), max_size=2, unique=True),
       nadam_lrs=st.lists(st.sampled_from(["0.2", "0.01"]), max_size=2, unique=True),
       history=st.lists(st.sampled_from(["5", "10"]), max_size=2, unique=True),
       betas=st.booleans())
def test_the_command_line_and_the_campaign_file_plan_alike(capsys, tmp_path, lrs, nadam_lrs,
                                                           history, betas):
    """Small random grids of each form: -O KEY, -O NAME:KEY, --lr, against the TOML."""
    argv = [*BASE, "--optimizer", "nadam,lbfgs"]
    text = 'problems = "rosenbrock"\nbackends = "fd"\nsteps = 3\noptimizers = ["nadam", "lbfgs"]\n'
    if lrs:
        argv += ["--lr", ",".join(lrs)]
        text += f"lr = [{', '.join(lrs)}]\n"
    text += "[optimizer_params]\n"
    if betas:
        argv += ["-O", "betas=0.8,0.9"]
        text += "betas = [0.8, 0.9]\n"
    if nadam_lrs:
        argv += ["-O", f"nadam:lr={','.join(nadam_lrs)}"]
        text += f"[optimizer_params.nadam]\nlr = [{', '.join(nadam_lrs)}]\n"
    if history:
        argv += ["-O", f"lbfgs:history_size={history[0]}"] + [
            f"-Olbfgs:history_size={h}" for h in history[1:]]  # repeated: more alternatives
        text += f"[optimizer_params.lbfgs]\nhistory_size = [{', '.join(history)}]\n"
    path = tmp_path / "h.toml"
    path.write_text(text, encoding="utf-8")
    assert keys(plan(capsys, str(path))) == keys(plan(capsys, *argv))


# ---- --dry-run --------------------------------------------------------------------------------

@pytest.fixture
def no_runs(monkeypatch):
    def run_one(*args, **kwargs):
        raise AssertionError("a dry run ran a run")

    monkeypatch.setattr(runone, "run_one", run_one)


def test_dry_run_prints_the_plan_and_writes_nothing(capsys, tmp_path, no_runs, monkeypatch):
    monkeypatch.setattr(dryrun, "SHOWN", 10)
    out = tmp_path / "r.jsonl"
    code, stdout, err = run_main(capsys, "bench", *BASE, "--optimizer", "nadam,lbfgs",
                                 "--seeds", "7", "-O", "lbfgs:history_size=10,50",
                                 "-o", str(out), "--dry-run")
    assert (code, err) == (0, "")
    lines = stdout.splitlines()
    assert lines[0] == f"21 runs planned into {out}"
    assert lines[1].startswith("the first 10 to run")
    assert lines[2] == "  rosenbrock | fd float64 cpu | nadam | seed 0"
    assert lines[8] == "  rosenbrock | fd float64 cpu | nadam | seed 6"
    assert lines[11] == "  rosenbrock | fd float64 cpu | lbfgs history_size=10 | seed 2"
    assert lines[-1] == "nothing was run (--dry-run)" and len(lines) == 13
    assert not out.exists() and os.listdir(tmp_path) == []


def test_dry_run_with_resume_counts_what_is_done_and_changes_nothing(capsys, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "r.jsonl"
    code, _, err = run_main(capsys, "bench", "-q", *BASE, "--seeds", "2", "-o", str(out))
    assert code == 0, err
    before = (out.read_bytes(), os.stat(out).st_mtime_ns)
    monkeypatch.setattr(runone, "run_one", None)  # any run would fail
    p = plan(capsys, *BASE, "--seeds", "5", "-o", str(out), "--resume")
    assert (p["planned"], p["already"], p["to_run"]) == (5, 2, 3)
    assert [r["seed"] for r in p["runs"]] == [2, 3, 4]
    code, stdout, _ = run_main(capsys, "bench", *BASE, "--seeds", "5", "-o", str(out),
                               "--resume", "--dry-run")
    assert stdout.splitlines()[0] == f"5 runs planned into {out}: 2 already there, 3 to run"
    assert (out.read_bytes(), os.stat(out).st_mtime_ns) == before


@pytest.mark.parametrize("argv, fragments", [
    (["--lr", "0.1,x"], ["'0.1,x'"]),                                  # the grid, as always
    (["--seeds", "2000000"], ["2,000,000 runs"]),                      # the bound
    (["--format", "json"], ["--format json", "--dry-run"]),            # only with --dry-run
])
def test_dry_run_refuses_what_a_campaign_refuses(capsys, tmp_path, argv, fragments, no_runs):
    dry = ["--dry-run"] if "--format" not in argv else []
    code, out, err = run_main(capsys, "bench", *BASE, *argv, *dry, "-o", str(tmp_path / "r"))
    assert_usage_error(code, out, err, *fragments)
    assert os.listdir(tmp_path) == []


def test_dry_run_checks_the_output_file_as_a_campaign_does(capsys, tmp_path, no_runs):
    held = tmp_path / "held.jsonl"
    held.write_text(json.dumps({"problem": "booth", "backend": "fd", "seed": 9,
                                "status": "converged"}) + "\n", encoding="utf-8")
    code, out, err = run_main(capsys, "bench", *BASE, "-o", str(held), "--dry-run")
    assert_usage_error(code, out, err, "already holds 1 records", "--resume")
    other = tmp_path / "notes.txt"
    other.write_text("not a results file\n", encoding="utf-8")
    code, out, err = run_main(capsys, "bench", *BASE, "-o", str(other), "--dry-run",
                              "--resume")
    assert_usage_error(code, out, err, "is not a results file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, out, err = run_main(capsys, "bench", *BASE, "-o", str(fifo), "--dry-run")
    assert_usage_error(code, out, err, "is a FIFO")
    assert sorted(os.listdir(tmp_path)) == ["fifo", "held.jsonl", "notes.txt"]


def test_output_is_required_except_for_a_dry_run(capsys, no_runs):
    code, out, err = run_main(capsys, "bench", *BASE)
    assert_usage_error(code, out, err, "--output is required", "--dry-run")
    assert plan(capsys, *BASE)["output"] is None


def test_the_readme_example_plans_as_it_says(capsys, tmp_path):
    """README, "Per-optimizer grids, unions of grids, dry runs": the file works as written."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Per-optimizer grids"):]
    text = section[section.index("```toml\n") + 8:]
    p = plan(capsys, toml(tmp_path, text[:text.index("```")], "grids.toml"))
    assert p["planned"] == 24 and "says 24 runs" in section
    steps = {(r["optimizer"], r["max_steps"]) for r in p["runs"]}
    assert steps == {("nadam", 200), ("adam", 200), ("lbfgs", 50)}
