"""The example benchmark folder, examples/own-benchmark (issue 14, item 2): a benchmark is a
folder — problems.py, optimizers.py, campaign.toml — run with `optbench bench` and
`optbench report`, on Dask workers too, and its plugins pass `optbench check`.

The records are checked against references computed here independently: the ridge optimum
by numpy's least squares (not the problem's normal equations), Dixon-Price's by its formula.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clitools import run_main
from optbench import plugindirs
from optbench.plugins import get_registry
from records import read_records

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own-benchmark"
CAMPAIGN = EXAMPLE / "campaign.toml"
TIMEOUT_S = 600  # hang detector: the campaign takes ~12 s idle, a minute on a loaded machine


def optbench_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "optbench", *argv], capture_output=True,
                          text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, cwd=cwd)


@pytest.fixture(autouse=True)
def no_folders(monkeypatch):
    monkeypatch.delenv(plugindirs.ENV, raising=False)
    monkeypatch.setattr(plugindirs, "_configured", [])
    get_registry.cache_clear()
    yield
    get_registry.cache_clear()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The example's campaign, run as its header says, from another working directory (its
    `plugins = ["."]` is relative to the file)."""
    tmp = tmp_path_factory.mktemp("own-benchmark")
    results = tmp / "results.jsonl"
    proc = optbench_cli("bench", str(CAMPAIGN), "--output", str(results), "-q", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return results, read_records(results)


def ridge_optimum(seed: int, m: int = 50, n: int = 5, lam: float = 0.1) -> np.ndarray:
    """The ridge minimizer by least squares on the stacked system [A/√m; √lam·I] w ≈ [y/√m; 0],
    the data drawn as the problem documents it."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, n))
    y = a @ rng.standard_normal(n) + 0.1 * rng.standard_normal(m)
    stacked = np.vstack([a / np.sqrt(m), np.sqrt(lam) * np.eye(n)])
    rhs = np.concatenate([y / np.sqrt(m), np.zeros(n)])
    return np.linalg.lstsq(stacked, rhs, rcond=None)[0]


def dixon_price_optimum(n: int = 4) -> np.ndarray:
    i = np.arange(1, n + 1)
    return 2.0 ** (-(2.0**i - 2.0) / 2.0**i)


def test_the_campaign_runs_every_run_of_its_grid(campaign):
    _, records = campaign
    grid = {(r["problem"], r["optimizer"], r["backend"], r["seed"]) for r in records}
    assert len(records) == len(grid) == 3 * 3 * 2 * 2
    statuses = {(r["problem"], r["optimizer"], r["status"]) for r in records}
    # Everything converges to the known optimum, except NAdam at lr 0.01 on the
    # ill-conditioned quadratic in 2000 steps.
    assert statuses == {(p, o, "converged") for p in ("ridge", "dixon-price", "quadratic")
                        for o in ("heavyball", "lbfgs", "nadam")
                        if (p, o) != ("quadratic", "nadam")} | {
        ("quadratic", "nadam", "max_steps")}


def test_the_custom_optimizer_reaches_the_independent_optimum(campaign):
    _, records = campaign
    ours = [r for r in records if r["optimizer"] == "heavyball"]
    assert {r["optimizer_params"]["momentum"] for r in ours} == {0.9}
    for r in ours:
        if r["problem"] == "ridge":
            expected = ridge_optimum(r["seed"])
            # The problem's own reference (normal equations) agrees with least squares.
            assert np.allclose(r["reference"]["x"], expected, rtol=0, atol=1e-12)
            assert np.allclose(r["x"], expected, rtol=0, atol=1e-5), (r["x"], expected)
        elif r["problem"] == "dixon-price":
            expected = dixon_price_optimum()
            assert np.allclose(np.abs(r["x"]), expected, rtol=0, atol=1e-5), r["x"]
            assert r["f"] < 1e-11
        assert r["f"] - r["reference"]["f"] <= 1e-12 * max(1.0, abs(r["reference"]["f"]))


def test_report_summarizes_the_example(campaign):
    results, _ = campaign
    proc = optbench_cli("report", str(results), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {(r["problem"], r["backend"], r["optimizer"]): r for r in json.loads(proc.stdout)}
    assert len(rows) == 3 * 2 * 3
    for backend in ("torch", "autograd"):
        for problem in ("ridge", "dixon-price", "quadratic"):
            row = rows[(problem, backend, "heavyball")]
            assert (row["runs"], row["reached"], row["failed"]) == (2, 2, 0), row
            assert row["fstar_source"] == "reference"
        assert rows[("quadratic", backend, "nadam")]["reached"] == 0


@pytest.mark.slow  # a real two-worker cluster (~6 s)
def test_the_folder_on_the_command_line_runs_on_two_dask_workers(tmp_path):
    """--plugins names the folder to this process only: the workers load it from the
    campaign they are sent (a worker without it would record "unknown problem")."""
    pytest.importorskip("distributed", reason="Dask distributed is not installed")
    results = tmp_path / "results.jsonl"
    proc = optbench_cli("--plugins", str(EXAMPLE), "bench", "--problem", "ridge,booth",
                        "--optimizer", "heavyball,lbfgs", "--backend", "autograd,fd",
                        "--seeds", "2", "--steps", "2000", "--workers", "2", "-q",
                        "--output", str(results))
    assert proc.returncode == 0, proc.stderr
    records = read_records(results)
    assert len(records) == 2 * 2 * 2 * 2
    assert {r["status"] for r in records} == {"converged"}, [
        (r["problem"], r["optimizer"], r["message"]) for r in records]
    for r in records:
        if r["problem"] == "ridge":
            assert np.allclose(r["x"], ridge_optimum(r["seed"]), rtol=0, atol=1e-5)


def test_the_example_plugins_pass_the_conformance_kit(capsys):
    code, out, _ = run_main(capsys, "--plugins", str(EXAMPLE), "check",
                              "--problem", "ridge", "--problem", "dixon-price",
                              "--optimizer", "heavyball", "--format", "json")
    reports = json.loads(out)
    assert code == 0, [(r["name"], c) for r in reports for c in r["checks"]
                       if not c["passed"]]
    assert {(r["kind"], r["name"]) for r in reports} == {
        ("problem", "ridge"), ("problem", "dixon-price"), ("optimizer", "heavyball")}
