"""Suites (issue 17): `optbench list suites`, `optbench bench --suite NAME`, and a plugin's
suite registered through the register_suites hook. The command line runs in-process."""

from __future__ import annotations

import json
import types

import pytest

import optbench
from clitools import assert_usage_error, run_main
from optbench.errors import UsageError
from optbench.plugins import Registry
from optbench.suites import Entry, Suite
from records import read_records


def plugin(**hooks) -> types.ModuleType:
    module = types.ModuleType("suite_plugin")
    for name, fn in hooks.items():
        setattr(module, name, optbench.hookimpl(fn))
    return module


def with_suite(*suites: Suite) -> Registry:
    def register_suites(register):
        for s in suites:
            register(s)

    return Registry.load(extra=[("my-suites", plugin(register_suites=register_suites))],
                         entry_points_too=False)


def test_list_suites(capsys):
    code, out, err = run_main(capsys, "list", "suites", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["kind"] for r in rows} == {"suite"}
    (mgh,) = [r for r in rows if r["name"] == "mgh"]
    assert mgh["plugin"] == "optbench.problems.mgh" and mgh["available"] is True
    entries = {(e["problem"], e["params"]["number"], e["params"]["start"])
               for e in mgh["entries"]}
    assert entries == {("mgh", k, s) for k in range(1, 36) for s in (1.0, 10.0, 100.0)}
    code, out, _ = run_main(capsys, "list", "suites")
    assert code == 0 and "mgh" in out and "105 entries" in out
    code, out, _ = run_main(capsys, "list", "--format", "json")  # all kinds: suites too
    assert ("suite", "mgh") in {(r["kind"], r["name"]) for r in json.loads(out)}


def test_bench_suite_runs_its_entries_with_p_overriding(capsys, tmp_path):
    out_file = tmp_path / "mgh.jsonl"
    code, _, err = run_main(capsys, "bench", "--suite", "mgh", "-P", "number=1,5",
                            "-P", "start=1,10", "--backend", "fd", "--optimizer", "lbfgs",
                            "--steps", "3", "-q", "-o", str(out_file))
    assert code == 0, err
    records = read_records(out_file)
    # the 105 entries, their number and start overridden: four instances, each run once
    assert sorted((r["problem_params"]["number"], r["problem_params"]["start"])
                  for r in records) == [(1, 1.0), (1, 10.0), (5, 1.0), (5, 10.0)]
    assert {r["problem"] for r in records} == {"mgh"}
    x0 = {(r["problem_params"]["number"], r["problem_params"]["start"]): r["x0"]
          for r in records}
    assert x0[(1, 10.0)] == [-12.0, 10.0] and x0[(5, 1.0)] == [1.0, 1.0]


def test_bench_unknown_suite_is_one_line(capsys, tmp_path):
    out_file = tmp_path / "r.jsonl"
    code, out, err = run_main(capsys, "bench", "--suite", "nope", "-o", str(out_file))
    assert_usage_error(code, out, err, "unknown suite 'nope'", "mgh")
    assert not out_file.exists()


def test_bench_suite_with_problem_is_refused(capsys, tmp_path):
    code, out, err = run_main(capsys, "bench", "--suite", "mgh", "--problem", "rosenbrock",
                              "-o", str(tmp_path / "r.jsonl"))
    assert_usage_error(code, out, err, "--suite and --problem exclude each other")


def test_a_plugins_suite_runs_through_the_same_grid(capsys, tmp_path, use_registry):
    tiny = Suite("tiny", "two classics", [Entry.of("rosenbrock", n=4), ("beale", {})])
    use_registry(with_suite(tiny))
    out_file = tmp_path / "tiny.jsonl"
    code, _, err = run_main(capsys, "bench", "--suite", "tiny", "--backend", "fd",
                            "--optimizer", "lbfgs,nadam", "--steps", "2", "-q",
                            "-o", str(out_file))
    assert code == 0, err
    runs = {(r["problem"], r["optimizer"], len(r["x0"])) for r in read_records(out_file)}
    assert runs == {("rosenbrock", "lbfgs", 4), ("rosenbrock", "nadam", 4),
                    ("beale", "lbfgs", 2), ("beale", "nadam", 2)}


def test_a_suite_naming_an_unknown_problem_is_refused_before_any_run(capsys, tmp_path,
                                                                      use_registry):
    use_registry(with_suite(Suite("broken", "names a problem nobody has",
                                  [Entry.of("rosenbrock"), Entry.of("nosuch")])))
    out_file = tmp_path / "r.jsonl"
    code, out, err = run_main(capsys, "bench", "--suite", "broken", "-o", str(out_file))
    assert_usage_error(code, out, err, "suite broken", "unknown problem 'nosuch'")
    assert not out_file.exists()


def test_a_suite_that_is_not_a_suite_is_the_plugins_error():
    registry = Registry.load(extra=[("bad", plugin(register_suites=lambda register:
                                                   register("mgh2")))],
                             entry_points_too=False)
    (info,) = [p for p in registry.plugins if p.name == "bad"]
    assert "not an instance of Suite" in info.error
    assert registry.names("suite") == ["mgh", "ml", "nist"]  # the built-ins alone


def test_python_api_bench_takes_a_suite():
    records = optbench.bench(suite="mgh", backends="fd", optimizers="lbfgs", steps=2,
                             problem_params={"number": [32], "start": [1.0]})
    assert [(r.problem, r.problem_params["number"]) for r in records] == [("mgh", 32)]
    with pytest.raises(UsageError, match="exclude each other"):
        optbench.bench(problems="rosenbrock", suite="mgh")


def test_a_campaign_file_names_a_suite(capsys, tmp_path):
    campaign = tmp_path / "mgh.toml"
    campaign.write_text('suite = "mgh"\nbackends = ["fd"]\noptimizers = ["lm"]\nsteps = 2\n'
                        '[problem_params]\nnumber = [32]\nstart = [100.0]\n')
    out_file = tmp_path / "r.jsonl"
    code, _, err = run_main(capsys, "bench", str(campaign), "-q", "-o", str(out_file))
    assert code == 0, err
    (record,) = read_records(out_file)
    assert record["problem_params"] == {"number": 32, "start": 100.0}
    assert record["x0"] == [100.0] * 10


def test_a_bad_override_of_a_suite_is_one_line(capsys, tmp_path):
    code, out, err = run_main(capsys, "bench", "--suite", "mgh", "-P", "number=36",
                              "-o", str(tmp_path / "r.jsonl"))
    assert_usage_error(code, out, err, "number=36", "<= 35")
    assert not (tmp_path / "r.jsonl").exists()
