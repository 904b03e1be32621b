"""The `nist` problem and suite (issue 17): every NIST StRD dataset of ../shared/data with its
certified optimum. The entries are checked against the data folders' own listing, f* against
the certified RSS recomputed here from the certified parameters (numpy, not the problem's
code), the gradients across backends against central differences of that numpy RSS, and lm
against the certified RSS. Where the data is not beside the checkout the suite is reported
unavailable in one line (tested with the folders pointed elsewhere)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

import optbench
from clitools import assert_usage_error, run_main
from optbench.plugins import get_registry
from optbench.problems.nist import Nist, dataset_files, folders

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not folders(), reason="../shared/data/nist* is not beside "
                                "this checkout")
PROBLEM = Nist()

# lm on torch, 1000 steps, from each NIST start: every certified f* is reached (measured;
# MGH17 from start 1 needs 576 steps). A dataset it misses would be named here, with why.
LM_MISSES: dict[tuple[str, int], str] = {}


def expected_entries() -> list[tuple[str, int]]:
    """(dataset, start) from the folders' files: linear once, nonlinear from both starts."""
    out = []
    for folder, starts in ((DATA / "nist", (1,)), (DATA / "nist-nonlinear", (1, 2))):
        for meta in sorted(folder.glob("*.json")):
            out += [(meta.stem, s) for s in starts]
    return out


def entries(registry) -> list[tuple[str, int]]:
    suite = registry.get("suite", "nist")
    assert {e.problem for e in suite.entries} == {"nist"}
    return [(dict(e.params)["dataset"], dict(e.params)["start"]) for e in suite.entries]


def numpy_rss(name: str, x: np.ndarray) -> tuple[float, float]:
    """The residual sum of squares at x, by numpy from the CSV and NIST's model line (the
    linear ones as a design matrix; the nonlinear ones through the dataset's JSON model,
    evaluated here only for the few used below), and Σy² (the scale of its rounding)."""
    meta_path = next(p for p in (DATA / "nist" / f"{name}.json",
                                 DATA / "nist-nonlinear" / f"{name}.json") if p.is_file())
    meta = json.loads(meta_path.read_text())
    with open(meta_path.with_suffix(".csv")) as f:
        rows = list(csv.reader(f))
    cols = {h: np.array([float(r[i]) for r in rows[1:]]) for i, h in enumerate(rows[0])}
    y = cols["y"]
    if name == "Longley":
        design = np.column_stack([np.ones_like(y)] + [cols[f"x{i}"] for i in range(1, 7)])
    elif name in ("NoInt1", "NoInt2"):
        design = cols["x"][:, None]
    elif "degree" in meta:
        design = np.vander(cols["x"], meta["degree"] + 1, increasing=True)
    elif name == "Misra1a":
        r = y - x[0] * (1 - np.exp(-x[1] * cols["x"]))
        return float(r @ r), float(y @ y)
    else:
        raise KeyError(name)
    r = y - design @ x
    return float(r @ r), float(y @ y)


@needs_data
def test_the_suite_holds_every_dataset_from_its_starts(registry):
    assert entries(registry) == expected_entries()
    assert len(entries(registry)) == 11 + 2 * 15


@needs_data
@pytest.mark.parametrize("name", ["Norris", "Longley", "NoInt1", "Wampler1", "Misra1a"])
def test_reference_is_certified_and_the_objective_is_the_rss(name):
    inst = PROBLEM.make({"dataset": name, "start": 1}, seed=0)
    ref = PROBLEM.reference(inst)
    rss, yy = numpy_rss(name, ref.x)
    # NIST's RSS against numpy's at NIST's certified parameters
    assert abs(ref.f - rss) <= 1e-9 * rss + 1e-14 * yy, (ref.f, rss)
    assert float(PROBLEM.objective(ref.x, inst.data, np)) == pytest.approx(rss, rel=1e-9,
                                                                              abs=1e-14 * yy)
    if name == "Misra1a":
        assert inst.x0.tolist() == [500.0, 1e-4]
        assert PROBLEM.make({"dataset": name, "start": 2}, 0).x0.tolist() == [250.0, 5e-4]
    else:
        assert not inst.x0.any()  # linear: NIST gives no start


def reached(name: str, start: int, f: float) -> bool:
    """f − f* within 1e-6 of f* or, for an exact fit (f* ≈ 0), 1e-12 of Σy²: what float64
    can resolve of a sum of squares."""
    inst = PROBLEM.make({"dataset": name, "start": start}, 0)
    fstar = PROBLEM.reference(inst).f
    y = next(v for k, v in inst.data.items() if k.endswith(":y"))
    return f - fstar <= 1e-6 * fstar + 1e-12 * float(y @ y)


@needs_data
def test_lm_reaches_misra1a_certified_rss_from_start_1():
    record = optbench.solve("nist", "torch", "lm",
                            problem_params={"dataset": "Misra1a", "start": 1})
    assert record.status == "converged"
    assert reached("Misra1a", 1, record.f)
    assert np.allclose(record.x, [238.94212918, 0.00055015643181], rtol=1e-8)


@pytest.mark.slow  # 41 fits (~10 s)
@needs_data
def test_lm_reaches_every_certified_rss_or_the_miss_is_known(registry):
    missed = {}
    for name, start in entries(registry):
        record = optbench.solve("nist", "torch", "lm", steps=1000,
                                problem_params={"dataset": name, "start": start})
        if not reached(name, start, record.f):
            missed[(name, start)] = f"{record.status} f={record.f:.6g}"
    assert set(missed) == set(LM_MISSES), missed


def _gradient(backend, name: str, start: int) -> tuple[np.ndarray, np.ndarray, float]:
    inst = PROBLEM.make({"dataset": name, "start": start}, 0)
    x = inst.x0 if inst.x0.any() else np.full(inst.x0.size, 0.5)
    obj = backend.prepare(PROBLEM, inst.data, dtype="float64", device="cpu")
    _, g = obj.value_and_grad(obj.from_numpy(x))
    return x, np.asarray(obj.to_numpy(g), dtype=np.float64), inst


def _central(inst, x: np.ndarray) -> np.ndarray:
    """∇f by central differences of the numpy objective, a step relative to each x_j."""
    g = np.zeros_like(x)
    for j in range(x.size):
        h = 1e-6 * max(abs(x[j]), 1e-3)
        e = np.zeros_like(x)
        e[j] = h
        g[j] = (PROBLEM.objective(x + e, inst.data, np)
                - PROBLEM.objective(x - e, inst.data, np)) / (2 * h)
    return g


@needs_data
@pytest.mark.parametrize("name", ["torch", "autograd", pytest.param("jax", marks=pytest.mark.slow)])
def test_gradients_agree_across_backends_at_the_starts(name, registry):
    """At every entry's start (0.5 for the linear ones' 0): ∇f on the backend against
    autograd's to 1e-9 relative, and autograd's against central differences of numpy's
    RSS in each coordinate to 1e-4 of that coordinate's scale."""
    backend = registry.get("backend", name)
    if backend.available("cpu") is not None:
        pytest.skip(f"backend {name} is not available here")
    autograd = registry.get("backend", "autograd")
    for dataset, start in entries(registry):
        x, g, inst = _gradient(backend, dataset, start)
        _, g_ref, _ = _gradient(autograd, dataset, start)
        scale = max(float(np.linalg.norm(g_ref)), 1e-300)
        assert np.linalg.norm(g - g_ref) <= 1e-9 * scale, (dataset, start, g, g_ref)
        if name == "autograd":
            numeric = _central(inst, x)
            # each coordinate: its difference quotient's rounding is ~eps·f/h
            f = float(PROBLEM.objective(x, inst.data, np))
            tol = 1e-4 * np.abs(g_ref) + 1e-6 * f / (1e-6 * np.maximum(np.abs(x), 1e-3))
            assert np.all(np.abs(numeric - g_ref) <= tol), (dataset, start, numeric, g_ref)


def test_without_the_data_the_suite_is_unavailable_in_one_line(monkeypatch, capsys,
                                                               tmp_path, fresh_registry):
    monkeypatch.setenv("OPTBENCH_NIST_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("OPTBENCH_NIST_NONLINEAR_DIR", str(tmp_path / "absent-too"))
    get_registry.cache_clear()  # the suite is built as the registry loads
    assert dataset_files() == {}
    code, out, err = run_main(capsys, "bench", "--suite", "nist", "--backend", "torch",
                              "--optimizer", "lm", "-o", str(tmp_path / "r.jsonl"))
    assert_usage_error(code, out, err, "suite nist is unavailable", "OPTBENCH_NIST_DIR")
    assert not (tmp_path / "r.jsonl").exists()
    code, out, err = run_main(capsys, "run", "--problem", "nist", "--backend", "torch",
                              "--optimizer", "lm")
    assert_usage_error(code, out, err, "no NIST data")
    code, out, _ = run_main(capsys, "list", "suites")
    assert code == 0
    assert next(line for line in out.splitlines() if " nist " in line).split()[2] == "no"


@needs_data
def test_an_unknown_dataset_is_refused_naming_those_there(capsys):
    code, out, err = run_main(capsys, "run", "--problem", "nist", "-P", "dataset=Nope",
                              "--backend", "torch", "--optimizer", "lm")
    assert_usage_error(code, out, err, "dataset='Nope'", "Misra1a", "Norris")


def test_a_broken_or_hostile_dataset_file_is_refused_in_one_line(monkeypatch, capsys,
                                                                 tmp_path, fresh_registry):
    """The folders come from the environment: their files are read through userfiles (a
    FIFO is refused, not waited on) and parsed, never run."""
    folder = tmp_path / "nist-nonlinear"
    folder.mkdir()
    (folder / "Bad.json").write_text('{"name": "Bad", "certified_rss": 1.0')  # cut short
    (folder / "Bad.csv").write_text("x,y\n1,2\n")
    (folder / "Pipe.csv").write_text("x,y\n1,2\n")
    os.mkfifo(folder / "Pipe.json")
    (folder / "Code.json").write_text(json.dumps({
        "name": "Code", "equation": "y = __import__('os').system('false')", "model": "",
        "parameters": ["b1"], "start1": [1], "start2": [1], "certified": [1],
        "certified_rss": 1.0}))
    (folder / "Code.csv").write_text("x,y\n1,2\n")
    monkeypatch.setenv("OPTBENCH_NIST_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("OPTBENCH_NIST_NONLINEAR_DIR", str(folder))
    get_registry.cache_clear()
    for name, fragment in (("Bad", "not a NIST dataset file"), ("Pipe", "Pipe.json"),
                           ("Code", "dataset Code")):
        code, out, err = run_main(capsys, "run", "--problem", "nist", "-P",
                                  f"dataset={name}", "--backend", "torch", "--optimizer", "lm")
        assert_usage_error(code, out, err, fragment)
