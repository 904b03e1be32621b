"""Many fits at once (issue 16): `optbench.fit(..., groups=...)`, `optbench fit --group`.

References: each fit run alone (the same batched solver with one fit: a batch must not
couple its fits), scipy.optimize.least_squares(method="lm") on each fit, and the single
fit's statistics (fitting/statistics.py) at the batch's solution.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tests.clitools import assert_usage_error, run_main

import optbench
from optbench.errors import UsageError
from optbench.fitting.statistics import fit_statistics

EQUATION = "y = a*exp(-k*t) + c"
PARAMS = ("a", "c", "k")  # natural order


def decays(n_fits=5, m=12, seed=0, noise=0.02):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 8, m)
    true = np.stack([3 + rng.random(n_fits), 0.5 + rng.random(n_fits),
                     0.3 + 0.3 * rng.random(n_fits)], axis=1)
    y = (true[:, :1] * np.exp(-true[:, 2:] * t) + true[:, 1:2]
         + noise * rng.standard_normal((n_fits, m)))
    return np.tile(t, (n_fits, 1)), y, true


def long_table(t, y):
    n_fits, m = y.shape
    return {"cell": np.repeat(np.arange(n_fits) + 10, m), "t": t.reshape(-1),
            "y": y.reshape(-1)}


@pytest.mark.parametrize("backend", ["torch", "autograd", "fd", "complexstep",
                                     pytest.param("jax", marks=pytest.mark.slow)])  # 12 s: jit
def test_a_batch_equals_the_same_fits_run_one_by_one(backend, registry):
    from optbench.plugins import available

    if backend not in registry.names("backend"):
        pytest.skip(f"the {backend} plugin is not installed")
    reason = available(registry.get("backend", backend), "cpu")
    if reason is not None:
        pytest.skip(reason)
    t, y, _true = decays()
    x0 = {"a": 4.0, "k": 0.5, "c": 1.0}
    batch = optbench.fit(EQUATION, long_table(t, y), x0, groups="cell", backend=backend)
    assert list(batch.keys) == [10, 11, 12, 13, 14]
    assert list(batch.status) == ["converged"] * 5
    for i in range(len(batch)):
        alone = optbench.fit(EQUATION, {"t": t[i:i + 1], "y": y[i:i + 1]}, x0, groups=True,
                             backend=backend)
        np.testing.assert_allclose(batch.x[i], alone.x[0], rtol=1e-10, atol=0)
        np.testing.assert_allclose(batch.stderr[i], alone.stderr[0], rtol=1e-8)
        assert batch.steps[i] == alone.steps[0]


def test_estimates_and_statistics_match_scipy_and_the_single_fit():
    from scipy.optimize import least_squares

    t, y, _ = decays(n_fits=4, noise=0.05, seed=3)
    batch = optbench.fit(EQUATION, {"t": t, "y": y}, {"a": 4.0, "k": 0.5, "c": 1.0},
                         groups=True)
    for i in range(len(batch)):
        def residuals(x, i=i):
            a, c, k = x
            return y[i] - (a * np.exp(-k * t[i]) + c)

        ref = least_squares(residuals, [4.0, 1.0, 0.5], method="lm", ftol=1e-14, xtol=1e-14,
                            gtol=1e-15)
        np.testing.assert_allclose(batch.x[i], ref.x, rtol=1e-7)
        a, _c, k = batch.x[i]
        e = np.exp(-k * t[i])
        J = -np.stack([e, np.ones_like(e), -a * t[i] * e], axis=1)  # dr/d(a, c, k)
        stats = fit_statistics(residuals(batch.x[i]), J, PARAMS, batch.x[i])
        np.testing.assert_allclose(batch.stderr[i], stats.stderr, rtol=1e-7)
        assert batch.rss[i] == pytest.approx(stats.rss, rel=1e-10)


def test_a_batch_reports_each_fit_easy_hard_and_failing_on_its_own():
    t, y, true = decays(n_fits=4, noise=0.0)
    y[1] += 0.02 * np.random.default_rng(1).standard_normal(y.shape[1])
    # Fit 2 starts where exp(-k*t) overflows: not finite at the start, for it alone.
    x0 = {"a": 4.0, "c": 1.0, "k": np.array([0.5, 0.5, -500.0, 0.5])}
    batch = optbench.fit(EQUATION, {"t": t, "y": y}, x0, groups=True)
    assert list(batch.status) == ["converged", "converged", "diverged", "converged"]
    assert "not finite at the start" in batch.message(2)
    assert "point 2 of the group lhs - rhs = -inf" in batch.message(2)  # exp(727)
    np.testing.assert_allclose(batch.x[0], true[0, [0, 1, 2]], rtol=1e-9)  # exact data
    summary = batch.summary()
    assert summary["statuses"] == {"converged": 3, "diverged": 1}
    assert summary["reasons"] == {"the residuals are not finite at the start": 1}
    # A hard start stopped by the step limit, next to one that finishes in it.
    hard = optbench.fit(EQUATION, {"t": t[:2], "y": y[:2]},
                        {"a": np.array([3.5, 1e3]), "c": 1.0, "k": np.array([0.4, 30.0])},
                        groups=True, steps=8)
    assert list(hard.status) == ["converged", "max_steps"]
    assert "8 steps without meeting" in hard.message(1)


def test_a_rank_deficient_fit_is_reported_not_hidden():
    t, y, _ = decays(n_fits=2)
    batch = optbench.fit("y = a*b*exp(-k*t) + c", {"t": t, "y": y},
                         {"a": 2.0, "b": 2.0, "k": 0.5, "c": 1.0}, groups=True)
    assert all(batch.rank == 3)
    assert "not identifiable at the solution: a, b" in batch.message(0)
    assert np.isnan(batch.stderr[0, :2]).all() and np.isfinite(batch.stderr[0, 2:]).all()
    assert batch.summary()["rank_deficient"] == 2


def test_chunks_give_the_same_fits():
    t, y, _ = decays(n_fits=7)
    x0 = {"a": 4.0, "k": 0.5, "c": 1.0}
    whole = optbench.fit(EQUATION, {"t": t, "y": y}, x0, groups=True, backend="fd")
    chunked = optbench.fit(EQUATION, {"t": t, "y": y}, x0, groups=True, backend="fd", chunk=3)
    assert chunked.chunks == 3
    np.testing.assert_allclose(chunked.x, whole.x, rtol=1e-12)


def test_unequal_groups_and_sigma_count_their_own_points():
    t, y, _ = decays(n_fits=2, m=10)
    table = long_table(t, y)
    keep = ~((table["cell"] == 11) & (np.arange(20) % 10 >= 6))  # group 11: 6 points
    table = {k: v[keep] for k, v in table.items()}
    table["s"] = np.full(keep.sum(), 0.5)
    batch = optbench.fit(EQUATION, table, {"a": 4.0, "k": 0.5, "c": 1.0}, groups="cell",
                         sigma="s")
    alone = optbench.fit(EQUATION, {"t": t[1, :6], "y": y[1, :6], "s": np.full(6, 0.5)},
                         {"a": 4.0, "k": 0.5, "c": 1.0}, sigma="s", method="lm")
    assert list(batch.counts) == [10, 6] and list(batch.dof) == [7, 3]
    np.testing.assert_allclose(batch.x[1], alone.x, rtol=1e-7)
    np.testing.assert_allclose(batch.stderr[1], alone.fit["stderr"], rtol=1e-6)


def write_long_csv(path, t, y, bad_cell=None):
    lines = ["cell,t,y"]
    for i in range(y.shape[0]):
        for tj, yj in zip(t[i], y[i], strict=True):
            lines.append(f"{bad_cell if bad_cell and i == 1 else i},{float(tj)!r},{float(yj)!r}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_cli_writes_one_row_per_group_and_prints_records(tmp_path, capsys):
    t, y, _ = decays(n_fits=3)
    data = write_long_csv(tmp_path / "cells.csv", t, y)
    out = tmp_path / "fits.jsonl"
    code, stdout, _ = run_main(capsys, "fit", EQUATION, "--data", data, "--group", "cell",
                               "--x0", "a=4,k=0.5", "--output", str(out), "--format", "json")
    assert code == 0
    records = json.loads(stdout)
    assert [r["group"] for r in records] == [0, 1, 2]
    assert all(r["status"] == "converged" and r["fit"]["parameters"] == list(PARAMS)
               for r in records)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["group"] for r in rows] == [0, 1, 2]
    assert rows[1]["k"] == records[1]["x"][2] and rows[1]["k_stderr"] > 0
    code, stdout, _ = run_main(capsys, "fit", EQUATION, "--data", data, "--group", "cell",
                               "--x0", "a=4,k=0.5")
    assert code == 0 and "converged  3" in stdout and "fits/s" in stdout


def test_cli_reads_npz_and_writes_parquet(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    t, y, _ = decays(n_fits=3)
    np.savez(tmp_path / "d.npz", t=t, y=y, id=np.array([7, 8, 9]))
    out = tmp_path / "fits.parquet"
    code, _, _ = run_main(capsys, "fit", EQUATION, "--data", str(tmp_path / "d.npz"),
                          "--group", "id", "--x0", "a=4,k=0.5", "--output", str(out))
    assert code == 0
    table = pq.read_table(out).to_pylist()
    assert [r["group"] for r in table] == [7, 8, 9]
    assert {r["status"] for r in table} == {"converged"}


def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    t, y, _ = decays(n_fits=3, m=12)
    good = write_long_csv(tmp_path / "cells.csv", t, y)
    few = write_long_csv(tmp_path / "few.csv", t[:, :2], y[:, :2])
    names = write_long_csv(tmp_path / "names.csv", t, y, bad_cell="x1")
    np.savez(tmp_path / "ragged.npz", t=t, y=y[:, :5])
    out = tmp_path / "fits.jsonl"
    cases = [
        (["--data", few, "--group", "cell"], ["group 0 has 2 points", "3 parameters"]),
        (["--data", good, "--group", "well"], ["--group 'well'", "cell, t, y"]),
        (["--data", names, "--group", "cell"], ["'x1'", "not a finite number"]),
        (["--data", str(tmp_path / "ragged.npz")], ["shape (3, 5)", "(fits, points)"]),
        (["--data", good, "--group", "cell", "--backend", "torch,fd"], ["one backend"]),
        (["--data", good, "--group", "cell", "--method", "nadam"], ["lm"]),
        (["--data", good, "--group", "cell", "--output", str(tmp_path / "f.txt")],
         [".jsonl or .parquet"]),
    ]
    for args, fragments in cases:
        if "--output" not in args:
            args = [*args, "--output", str(out)]
        code, stdout, err = run_main(capsys, "fit", EQUATION, *args)
        assert_usage_error(code, stdout, err, *fragments)
        assert not out.exists()
        assert not [f for f in os.listdir(tmp_path) if f.startswith(".optbench-")]


def groups_load(data, group):
    from optbench.fitting import groups

    return groups.load(data, group)


def test_many_fits_are_not_held_to_a_single_fits_row_limit(tmp_path):
    """A single fit's table stops at datatable.MAX_ROWS (its Jacobian holds rows x
    parameters numbers); 20,000 fits of 64 points (1.28 million values per column) are
    bounded by the batch's own counts and memory instead, as arrays and as a long table."""
    from optbench.fitting import groups
    from optbench.problems.datatable import MAX_ROWS

    n_fits, n_points = 20_000, 64
    assert n_fits * n_points > MAX_ROWS
    t = np.tile(np.linspace(0, 1, n_points), (n_fits, 1))
    grouped = groups.load({"t": t, "y": 2 * t}, None)
    assert (grouped.n_fits, grouped.n_points) == (n_fits, n_points)
    long = {"g": np.repeat(np.arange(n_fits), n_points), "t": t.reshape(-1),
            "y": 2 * t.reshape(-1)}
    assert groups.load(long, "g").n_fits == n_fits
    np.savez(tmp_path / "many.npz", t=t, y=2 * t)
    assert groups.load(str(tmp_path / "many.npz"), None).n_fits == n_fits


def test_repeated_keys_are_refused_from_arrays_as_from_an_npz(tmp_path):
    """One key per fit: an .npz with a repeated key was refused, the same arrays given to
    optbench.fit with groups=[...] were accepted (two fits both called 1)."""
    t = np.tile(np.linspace(0, 1, 4), (3, 1))
    np.savez(tmp_path / "d.npz", t=t, y=t, id=np.array([1, 1, 2]))
    for data, group in ((str(tmp_path / "d.npz"), "id"), ({"t": t, "y": t}, [1, 1, 2])):
        with pytest.raises(UsageError, match="repeats a key"):
            groups_load(data, group)


def test_an_npz_without_keys_is_many_fits_numbered_from_0(tmp_path, capsys):
    """An .npz is arrays of shape (fits, points): `fit --data x.npz` fits each row, keys
    0, 1, ... (it was read as a CSV: "cannot read it (UnicodeDecodeError)")."""
    t = np.tile(np.linspace(0, 2, 8), (3, 1))
    y = np.array([[1.0], [2.0], [3.0]]) * np.exp(-0.5 * t)
    np.savez(tmp_path / "d.npz", t=t, y=y)
    code, out, _ = run_main(capsys, "fit", "y = a*exp(-k*t)", "--data",
                            str(tmp_path / "d.npz"), "--x0", "a=1,k=1", "--format", "json")
    assert code == 0
    records = json.loads(out)
    assert [r["group"] for r in records] == [0, 1, 2]
    np.testing.assert_allclose([r["x"][0] for r in records], [1.0, 2.0, 3.0], rtol=1e-8)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_output_gets_the_mode_the_umask_gives(tmp_path, capsys, suffix):
    """--output is written as the report's files are (userfiles.write_atomic): 0o666 less
    the umask, as open() would make it (it was mkstemp's 0o600 whatever the umask)."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    t, y, _ = decays(n_fits=2)
    data = write_long_csv(tmp_path / "cells.csv", t, y)
    out = tmp_path / f"fits{suffix}"
    old = os.umask(0o022)
    try:
        code, _, err = run_main(capsys, "fit", EQUATION, "--data", data, "--group", "cell",
                                "--x0", "a=4,k=0.5", "--output", str(out))
    finally:
        os.umask(old)
    assert code == 0, err
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
