"""The results store: whole lines only, after crashes, kills and concurrent writers."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optbench.results
from optbench.errors import UsageError
from optbench.results import ResultsStore, ResultsWarning, host_info, load, run_key


def record(seed: int = 0, **extra) -> dict:
    return {"problem": "regression", "problem_params": {"degree": 2, "n_samples": 20},
            "backend": "torch", "device": "cpu", "dtype": "float64", "optimizer": "nadam",
            "optimizer_params": {"lr": 0.01, "betas": [0.9, 0.999]}, "seed": seed,
            "status": "max_steps", "x": [1.0, 2.0, 3.0], "f": 0.5,
            "trace": [[0, 0.0, 4.0], [10, 0.001, 0.5]], "host": {"cpu": "x", "cores": 2},
            **extra}


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def test_append_and_read_round_trip(tmp_path):
    path = tmp_path / "results.jsonl"
    store = ResultsStore(path)
    assert store.records() == [] and store.keys() == set()  # no file yet
    recs = [record(seed) for seed in range(3)]
    for r in recs:
        store.append(r)
    assert ResultsStore(path).records() == recs
    assert [json.loads(line) for line in lines_of(path)] == recs


def test_run_key_is_canonical():
    r = record()
    from_python = {**r, "optimizer_params": {"betas": (0.9, 0.999), "lr": 0.01}}
    assert run_key(from_python) == run_key(json.loads(json.dumps(r))) == run_key(r)
    assert run_key({**r, "status": "error", "x": [], "host": {}}) == run_key(r)  # outcome
    assert run_key({**r, "optimizer_params": {"lr": 1, "betas": [0.9, 0.999]}}) == run_key(
        {**r, "optimizer_params": {"lr": 1.0, "betas": [0.9, 0.999]}})
    for field, other in [("seed", 1), ("backend", "autograd"), ("dtype", "float32"),
                         ("problem_params", {"degree": 3, "n_samples": 20}),
                         ("optimizer_params", {"lr": 0.1, "betas": [0.9, 0.999]})]:
        assert run_key({**r, field: other}) != run_key(r), field


def test_keys_for_resume(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    for seed in (0, 1):
        store.append(record(seed))
    done = ResultsStore(tmp_path / "r.jsonl").keys()
    todo = [record(seed) for seed in range(4) if run_key(record(seed)) not in done]
    assert [r["seed"] for r in todo] == [2, 3]


def test_truncated_last_line_is_ignored_then_cut_before_the_next_append(tmp_path):
    path = tmp_path / "results.jsonl"
    whole = [json.dumps(record(0)), json.dumps(record(1))]
    path.write_text("\n".join(whole) + "\n" + json.dumps(record(2))[:40], encoding="utf-8")
    store = ResultsStore(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.records() == [record(0), record(1)]
        assert len(store.keys()) == 2
        store.append(record(3))  # cuts it, saying so once
        store.append(record(4))
    assert [str(w.message) for w in caught] == [
        f"{path}: ignoring a truncated last line (from an interrupted run)",
        f"{path}: a truncated last line (40 bytes, no newline: a record cut short by an "
        "interrupted run) follows 2 whole records; it is cut off before the next record is "
        "appended"]
    assert {w.category for w in caught} == {ResultsWarning}
    assert [json.loads(line) for line in lines_of(path)] == [record(i) for i in (0, 1, 3, 4)]


def test_first_append_cuts_a_partial_record_with_one_warning(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(json.dumps(record(0)).encode() + b"\n" + b'{"problem": "regr\xc3')
    said: list[str] = []
    ResultsStore(path, on_warning=said.append).append(record(1))
    assert len(said) == 1 and "(18 bytes, no newline" in said[0] and "1 whole" in said[0]
    assert [json.loads(line) for line in lines_of(path)] == [record(0), record(1)]


def test_only_a_truncated_line_is_not_cut(tmp_path):
    """Only a partial record *behind whole records* is what a killed writer leaves."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": [1, 2')
    with pytest.raises(UsageError, match=r"line 1 is not JSON \(and has no newline\)"):
        ResultsStore(path).append(record(0))
    assert path.read_bytes() == b'{"a": [1, 2'


def test_whole_record_missing_its_newline_is_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record(0)), encoding="utf-8")  # hand-edited, say
    store = ResultsStore(path, on_warning=pytest.fail)
    assert store.records() == [record(0)]
    store.append(record(1))
    assert [json.loads(line) for line in lines_of(path)] == [record(0), record(1)]


def test_corrupt_middle_line_is_skipped_with_its_line_number(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record(0)) + "\n{not json\n\n[1, 2]\n" + json.dumps(record(1))
                    + "\n", encoding="utf-8")
    said: list[str] = []
    store = ResultsStore(path, on_warning=said.append)
    assert store.records() == [record(0), record(1)]
    store.records()
    assert said == [f"{path}: skipped 2 lines that are not run records (first: line 2 is not "
                    "JSON)"]


def test_missing_directory_is_a_usage_error(tmp_path):
    path = tmp_path / "nowhere" / "results.jsonl"
    with pytest.raises(UsageError, match=r"results\.jsonl.*nowhere.* does not exist"):
        ResultsStore(path)
    with pytest.raises(UsageError, match="is a directory"):
        ResultsStore(tmp_path)
    with pytest.raises(UsageError, match="no such results file"):
        load(tmp_path / "absent.jsonl")
    with pytest.raises(UsageError, match="no such results file"):
        load(path)
    assert not (tmp_path / "nowhere").exists()


def test_record_that_is_not_strict_json_leaves_the_file_alone(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultsStore(path)
    store.append(record(0))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        store.append(record(1, f=math.nan))
    with pytest.raises(TypeError):
        store.append(record(1, f=object()))
    assert path.read_bytes() == before


def test_load_gives_a_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "r.jsonl"
    store = ResultsStore(path)
    for seed in range(5):
        store.append(record(seed))
    df = optbench.results.load(path)
    assert isinstance(df, pd.DataFrame) and len(df) == 5
    assert df["seed"].tolist() == list(range(5))
    # Objects are flattened into columns (optbench.results.frame); lists stay lists.
    assert df["host.cpu"][0] == "x" and df["host.cores"][0] == 2
    assert df["problem.n_samples"].tolist() == [20] * 5 and df["optimizer.lr"][0] == 0.01
    assert df["trace"][1] == [[0, 0.0, 4.0], [10, 0.001, 0.5]]


def test_load_without_pandas_gives_dicts(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    ResultsStore(path).append(record(0))
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    assert load(path) == [record(0)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.text().map(lambda k: "_" + k), json_values, max_size=6),
                min_size=1, max_size=4))
def test_random_records_survive_append_and_read(extras):
    recs = [{**record(seed), **extra} for seed, extra in enumerate(extras)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.jsonl"
        store = ResultsStore(path, on_warning=pytest.fail)
        for r in recs:
            store.append(r)
        assert ResultsStore(path, on_warning=pytest.fail).records() == recs
        text = path.read_bytes().decode("ascii")  # unicode is escaped, so is U+2028
        assert len(text.splitlines()) == len(recs)


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, text=True)


APPENDER = """
    import os, sys, time
    from optbench.results import ResultsStore
    path, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = ResultsStore(path)
    big = {"problem": "p", "backend": "b", "status": "max_steps",
           "trace": [[i, i * 1e-3, 1.0 / (i + 1)] for i in range(1500)], "s": "é\\n\\u2028"}
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    i = 0
    while count < 0 or i < count:
        store.append({"tag": tag, "i": i, "seed": i, **big})
        i += 1
"""


def test_sigkill_leaves_only_whole_lines_and_a_repairable_tail(tmp_path):
    path, go = tmp_path / "r.jsonl", tmp_path / "go"
    proc = _start(APPENDER, str(path), "a", "-1", str(go))
    try:
        assert proc.stdout.readline() == "ready\n"
        go.touch()
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    *whole, tail = path.read_bytes().split(b"\n")
    assert len(whole) > 0
    assert [json.loads(line)["i"] for line in whole] == list(range(len(whole)))
    if tail:  # killed mid-line: only the last line may be partial
        with pytest.raises(ValueError):
            json.loads(tail)
    said: list[str] = []
    store = ResultsStore(path, on_warning=said.append)
    assert len(store.records()) == len(whole)
    store.append(record(0, tag="after"))
    assert len(said) == (2 if tail else 0)  # ignored when read, cut when appended to
    parsed = [json.loads(line) for line in lines_of(path)]
    assert len(parsed) == len(whole) + 1 and parsed[-1] == record(0, tag="after")


@pytest.mark.slow  # two real processes append concurrently (~8 s)
def test_two_processes_appending_the_same_file(tmp_path):
    path, go, count = tmp_path / "r.jsonl", tmp_path / "go", 150
    procs = [_start(APPENDER, str(path), tag, str(count), str(go)) for tag in "ab"]
    for p in procs:
        assert p.stdout.readline() == "ready\n"
    go.touch()
    for p in procs:
        assert p.wait(timeout=30) == 0
        p.stdout.close()
    parsed = [json.loads(line) for line in lines_of(path)]
    for tag in "ab":
        assert [r["i"] for r in parsed if r["tag"] == tag] == list(range(count))
    assert len(parsed) == 2 * count


def test_host_info_imports_neither_torch_nor_autograd():
    code = """
        import json, sys
        from optbench.results import host_info
        info = host_info("cuda")
        assert "torch" not in sys.modules and "autograd" not in sys.modules
        print(json.dumps(info))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True).stdout
    info = json.loads(out)
    assert info["device"] == "cuda" and info["device_name"] is None  # torch not loaded
    assert set(info["versions"]) == {"python", "numpy", "torch", "autograd", "optbench"}
    cpu = host_info()
    assert cpu["device_name"] == cpu["cpu"] and cpu["cores"] == os.cpu_count()
    cpu["versions"]["numpy"] = "edited"
    assert host_info()["versions"]["numpy"] != "edited"  # the cache is not shared
