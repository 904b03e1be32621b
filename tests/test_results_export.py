"""Results as data (issue 18, item 4): load() as a flat DataFrame, `optbench results export`
to Parquet and CSV, and `report` over several files at once."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from clitools import assert_usage_error, run_main
from optbench.cli.main import main
from optbench.results import ResultsStore, load

pd = pytest.importorskip("pandas")

CAMPAIGN = ["--problem", "regression,puzzle", "--backend", "fd", "--optimizer", "nadam,lbfgs",
            "--seeds", "2", "--steps", "20", "-q"]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """A real campaign's results file: two problems with different parameters (regression's
    degree, n_samples...; the puzzle's own), two optimizers with different hyperparameters."""
    path = tmp_path_factory.mktemp("export") / "results.jsonl"
    with pytest.raises(SystemExit) as exc:  # in-process (run_main needs capsys, per test)
        main(["bench", *CAMPAIGN, "-o", str(path)])
    assert exc.value.code in (0, None)
    return path


def records_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def plain(value):
    """Parquet gives lists back as numpy arrays: as lists again, recursively."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# ---- load() ----------------------------------------------------------------------------------

def test_load_flattens_parameters_into_typed_columns(campaign):
    records = records_of(campaign)
    df = load(campaign)
    assert len(df) == len(records) == 8
    regression = [r for r in records if r["problem"] == "regression"]
    # Every problem parameter and hyperparameter is a column of its own, named by its owner.
    for r in records:
        for key in r["problem_params"]:
            assert f"problem.{key}" in df.columns
        for key in r["optimizer_params"]:
            assert f"optimizer.{key}" in df.columns
    assert "problem_params" not in df.columns and "host" not in df.columns
    # Numbers stay numbers: n_samples is an integer column, missing (NA) on the puzzle rows.
    n = df["problem.n_samples"]
    assert str(n.dtype) == "Int64"
    assert n[df["problem"] == "regression"].tolist() == [r["problem_params"]["n_samples"]
                                                        for r in regression]
    assert n[df["problem"] == "puzzle"].isna().all()
    assert df["seed"].dtype == "int64" and df["f"].dtype == "float64"
    assert df["optimizer.lr"].dtype == "float64"
    # Host and code: columns too; lists stay lists, one value per run.
    assert df["host.cores"].tolist() == [r["host"]["cores"] for r in records]
    assert df["host.versions.numpy"].tolist() == [r["host"]["versions"]["numpy"]
                                                  for r in records]
    assert df["code.optbench"].tolist() == [r["code"]["optbench"] for r in records]
    assert df["trace"].tolist() == [r["trace"] for r in records]
    assert df["x"].tolist() == [r["x"] for r in records]


# ---- export ----------------------------------------------------------------------------------

def test_parquet_round_trip_equals_load(campaign, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    out = tmp_path / "runs.parquet"
    code, stdout, err = run_main(capsys, "results", "export", str(campaign), "--to", "parquet",
                                 "-o", str(out))
    assert (code, stdout) == (0, ""), err
    assert err.splitlines() == [f"optbench: wrote 8 runs to {out}"]
    expected = load(campaign)
    back = pd.read_parquet(out)
    assert list(back.columns) == list(expected.columns)
    for name in back.columns:  # dtype for dtype: ints, nullable ints, floats, text, bools
        assert back[name].dtype == expected[name].dtype, name
        if back[name].dtype == object:  # lists: numpy arrays from Parquet
            back[name] = back[name].map(plain)
    pd.testing.assert_frame_equal(back, expected)


def test_parquet_writes_a_column_of_mixed_kinds_as_json_text(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    path = tmp_path / "r.jsonl"
    store = ResultsStore(path)
    base = {"problem": "p", "backend": "b", "seed": 0, "status": "converged"}
    store.append({**base, "problem_params": {"data": "points.csv"}})
    store.append({**base, "seed": 1, "problem_params": {"data": [1.5, 2]}})
    code, _, err = run_main(capsys, "results", "export", str(path), "--to", "parquet")
    assert code == 0, err
    back = pd.read_parquet(tmp_path / "r.parquet")  # the default name: the format's suffix
    assert [json.loads(v) for v in back["problem.data"]] == ["points.csv", [1.5, 2]]
    assert back["seed"].tolist() == [0, 1]


def test_csv_export_holds_scalars_and_json_text(campaign, tmp_path, capsys):
    out = tmp_path / "runs.csv"
    out.write_text("an older export, longer than nothing\n" * 1000)  # replaced whole
    code, _, err = run_main(capsys, "results", "export", str(campaign), "--to", "csv", "-o",
                            str(out))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["runs.csv"]  # no temporary file left beside it
    records = records_of(campaign)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records)
    for row, r in zip(rows, records, strict=True):
        assert row["problem"] == r["problem"] and int(row["seed"]) == r["seed"]
        assert float(row["f"]) == r["f"]
        assert json.loads(row["trace"]) == r["trace"]  # nested: JSON text
        assert row["problem.n_samples"] == str(r["problem_params"].get("n_samples", ""))


@pytest.mark.parametrize("case", ["bad format", "missing", "not results", "itself",
                                  "no folder", "a directory"])
def test_bad_export_is_one_line_and_writes_nothing(case, campaign, tmp_path, capsys):
    source = tmp_path / "results.jsonl"
    source.write_bytes(campaign.read_bytes())
    args = [str(source), "--to", "csv"]
    fragment = ""
    if case == "bad format":
        args, fragment = [str(source), "--to", "xlsx"], "xlsx"
    elif case == "missing":
        args, fragment = [str(tmp_path / "absent.jsonl"), "--to", "csv"], "absent.jsonl"
    elif case == "not results":
        (tmp_path / "notes.txt").write_text("hello\nworld\n")
        args, fragment = [str(tmp_path / "notes.txt"), "--to", "csv"], "no run records"
    elif case == "itself":
        args, fragment = [*args, "-o", str(source)], "the results file itself"
    elif case == "no folder":
        args, fragment = [*args, "-o", str(tmp_path / "nope" / "x.csv")], "does not exist"
    else:
        (tmp_path / "out").mkdir()
        args, fragment = [*args, "-o", str(tmp_path / "out")], "out"
    before = sorted(os.listdir(tmp_path))
    code, out, err = run_main(capsys, "results", "export", *args)
    assert_usage_error(code, out, err, fragment)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no temporary left
    assert source.read_bytes() == campaign.read_bytes()


# ---- report over several files --------------------------------------------------------------

def run_record(seed: int, f: float, code: dict | None, **extra) -> dict:
    r = {"problem": "quad", "problem_params": {"n": 2}, "backend": "b1", "device": "cpu",
         "dtype": "float64", "optimizer": "o1", "optimizer_params": {"lr": 0.1},
         "seed": seed, "status": "max_steps", "steps": 10, "n_evals": 10, "f": f,
         "reference": {"x": [0.0, 0.0], "f": 0.0}, "time_s": 1.0,
         "trace": [[0, 0.0, 5.0], [10, 1.0, f]], "campaign": "c1", **extra}
    if code is not None:
        r["code"] = code
    return r


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


OLD = {"optbench": "0.1.0", "revision": "a" * 40, "dirty": False, "diff": None}
NEW = {"optbench": "0.2.0", "revision": "b" * 40, "dirty": False, "diff": None}


def test_report_compares_several_files(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", [run_record(s, 1e-12, OLD) for s in range(3)])
    b = write(tmp_path / "b.jsonl", [run_record(s, 1.0, NEW, campaign="c2") for s in range(2)])
    code, out, err = run_main(capsys, "report", str(a), str(b), "--format", "json")
    assert code == 0, err
    rows = json.loads(out)  # by file, without --by
    assert [(r["source"], r["runs"], r["reached"]) for r in rows] == [(str(a), 3, 3),
                                                                       (str(b), 2, 0)]
    code, out, err = run_main(capsys, "report", str(a), str(b), "--format", "json",
                              "--by", "version")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["version"], r["runs"]) for r in rows] == [("0.1.0+gaaaaaaaaaa", 3),
                                                         ("0.2.0+gbbbbbbbbbb", 2)]
    code, out, err = run_main(capsys, "report", str(a), str(b), "--by", "campaign")
    assert code == 0, err
    assert "c1" in out and "c2" in out


def test_report_by_version_names_records_without_code_unknown(tmp_path, capsys):
    path = write(tmp_path / "r.jsonl", [run_record(0, 1.0, None), run_record(1, 1.0, OLD)])
    code, out, err = run_main(capsys, "report", str(path), "--format", "json", "--by",
                              "version")
    assert code == 0, err
    assert sorted(r["version"] for r in json.loads(out)) == ["0.1.0+gaaaaaaaaaa", "unknown"]


def test_single_file_report_is_unchanged(tmp_path, capsys):
    path = write(tmp_path / "r.jsonl", [run_record(s, 1.0, OLD) for s in range(2)])
    code, out, err = run_main(capsys, "report", str(path), "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert set(row) == {"problem", "backend", "optimizer", "runs", "reached", "success_rate",
                        "failed", "median_time_to_target", "median_error", "median_steps",
                        "median_evals", "fstar_source"}


@pytest.mark.parametrize("case", ["twice", "missing"])
def test_report_of_several_files_refuses_bad_input_in_one_line(case, tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", [run_record(0, 1.0, OLD)])
    other = str(a) if case == "twice" else str(tmp_path / "absent.jsonl")
    code, out, err = run_main(capsys, "report", str(a), other)
    assert_usage_error(code, out, err, "again" if case == "twice" else "absent.jsonl")
