"""`optbench fit` and `optbench.fit` (issue 15): the statistics against independent
references (NIST's certified standard deviations, the closed form of ordinary least
squares), the record, the options, and every bad input refused with one line."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import optbench
from clitools import assert_usage_error, run_main
from optbench.fitting.run import plan_fit, statistics

NIST = Path(os.environ.get("OPTBENCH_NIST_NONLINEAR_DIR",
                           Path(__file__).resolve().parents[2] / "shared" / "data"
                           / "nist-nonlinear"))
needs_nist = pytest.mark.skipif(not NIST.is_dir(),
                                reason=f"{NIST} (NIST StRD nonlinear) is not beside this checkout")
DATASETS = sorted(p.stem for p in NIST.glob("*.json")) if NIST.is_dir() else []

MiB = 1 << 20
HANG_S = 120


def digits(a: float, b: float) -> float:
    """Digits of agreement (NIST's LRE), capped at 15."""
    return 15.0 if a == b else -np.log10(abs(a - b) / abs(b))


def write(tmp_path, text, name="points.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------------------------------
# Statistics against independent references
# ---------------------------------------------------------------------------------------


@needs_nist
@pytest.mark.parametrize("name", DATASETS)
def test_standard_errors_and_rss_match_nist_at_the_certified_parameters(name):
    meta = json.loads((NIST / f"{name}.json").read_text())
    if meta["certified_rss"] < 1e-20:
        # Lanczos1 is generated without noise: its RSS, 1.4e-25, is below what the
        # 11 certified digits of the parameters can reproduce (about 1e-21).
        pytest.skip(f"{name}: certified RSS {meta['certified_rss']:g} is below what the "
                    "certified digits of the parameters reproduce")
    fp = plan_fit(meta["equation"], str(NIST / f"{name}.csv"), meta["start2"],
                  parameters=meta["parameters"], backend="fd", method="lbfgs")
    stats = statistics(fp, meta["certified"])
    assert stats.parameters == meta["parameters"]
    assert digits(stats.rss, meta["certified_rss"]) >= 8, (stats.rss, meta["certified_rss"])
    for se, certified in zip(stats.stderr, meta["certified_sd"], strict=True):
        assert digits(se, certified) >= 3, (name, stats.stderr, meta["certified_sd"])
    assert stats.dof == meta["n_points"] - len(meta["parameters"])
    assert not stats.not_identifiable


def test_a_straight_line_has_the_closed_form_standard_errors_of_ordinary_least_squares(
        tmp_path):
    rng = np.random.default_rng(3)
    x = np.linspace(0, 10, 25)
    y = 1.5 + 0.8 * x + rng.normal(0, 0.3, x.size)
    path = write(tmp_path, "x,y\n" + "".join(f"{float(a)!r},{float(b)!r}\n"
                                             for a, b in zip(x, y, strict=True)))
    # Ordinary least squares in closed form: β = (XᵀX)⁻¹Xᵀy, cov = s²(XᵀX)⁻¹.
    X = np.column_stack([np.ones_like(x), x])
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    resid = y - X @ beta
    s2 = resid @ resid / (x.size - 2)
    se = np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X)))
    r2 = 1 - resid @ resid / np.sum((y - y.mean()) ** 2)

    fp = plan_fit("y = b1 + b2*x", path, backend="torch")
    stats = statistics(fp, beta)
    np.testing.assert_allclose(stats.stderr, se, rtol=1e-10)
    assert stats.rss == pytest.approx(resid @ resid, rel=1e-12)
    assert stats.r2 == pytest.approx(r2, rel=1e-12)
    assert stats.residual_sd == pytest.approx(np.sqrt(s2), rel=1e-12)

    code, out, _ = run_main_json("fit", "y = b1 + b2*x", "--data", path, "--format", "json")
    (record,) = out
    assert code == 0
    np.testing.assert_allclose(record["fit"]["estimates"], beta, rtol=1e-6)
    np.testing.assert_allclose(record["fit"]["stderr"], se, rtol=1e-6)


def run_main_json(*argv):
    """`optbench ARGV` in-process, for JSON: (status, parsed stdout, stderr)."""
    import io

    from optbench.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    return code, json.loads(out.getvalue()) if out.getvalue() else None, err.getvalue()


def test_a_rank_deficient_jacobian_names_the_parameters_not_identifiable(tmp_path, capsys):
    # b1 and b2 enter only as their product: any b1·b2 = c fits the same.
    path = write(tmp_path, "x,y\n1,2.1\n2,3.9\n3,6.2\n4,7.9\n5,10.1\n")
    code, out, err = run_main(capsys, "fit", "y = b1*b2*x + b3", "--data", path,
                              "--format", "json", "--backend", "autograd")
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["fit"]["not_identifiable"] == ["b1", "b2"]
    assert record["fit"]["rank"] == 2
    assert record["fit"]["stderr"][0] is None and record["fit"]["stderr"][1] is None
    assert record["fit"]["stderr"][2] is not None  # b3 is identifiable
    assert "not identifiable at the solution: b1, b2" in record["message"]


# ---------------------------------------------------------------------------------------
# The record, the table, the options
# ---------------------------------------------------------------------------------------

MISRA = "x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(
    [77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8, 593.1,
     689.1, 760.0],
    [10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01, 66.40,
     75.47, 81.78], strict=True))
CERTIFIED = [238.94212918, 0.00055015643181]


def test_the_json_record_is_a_run_record_with_fit(tmp_path, capsys):
    path = write(tmp_path, MISRA)
    code, out, err = run_main(capsys, "fit", "y = b1*(1-exp(-b2*x))", "--data", path,
                              "--x0", "b1=500,b2=1e-4", "--backend", "torch,autograd",
                              "--format", "json")
    assert code == 0, err
    records = json.loads(out)
    assert [r["backend"] for r in records] == ["torch", "autograd"]
    for record in records:
        assert record["problem"] == "model" and record["variables"] == ["b1", "b2"]
        assert record["x0"] == [500.0, 1e-4]
        fit = record["fit"]
        assert set(fit) >= {"parameters", "estimates", "stderr", "covariance", "rss", "dof",
                            "r2", "rel_stderr", "correlation", "residual_sd"}
        assert fit["parameters"] == ["b1", "b2"] and fit["dof"] == 12
        assert fit["estimates"] == record["x"]
        assert fit["rss"] == pytest.approx(0.12455138894, rel=1e-3)
        cov, corr = np.array(fit["covariance"]), np.array(fit["correlation"])
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), fit["stderr"], rtol=1e-12)
        np.testing.assert_allclose(np.diag(corr), 1.0, rtol=1e-12)
        assert fit["rel_stderr"][0] == pytest.approx(fit["stderr"][0] / fit["estimates"][0])
        assert 0.999 < fit["r2"] <= 1


def test_the_table_shows_status_estimates_and_standard_errors(tmp_path, capsys):
    path = write(tmp_path, MISRA)
    code, out, err = run_main(capsys, "fit", "y = b1*(1-exp(-b2*x))", "--data", path,
                              "--x0", "b1=238.94212918,b2=0.00055015643181")
    assert code == 0, err
    assert "fit    y = b1*(1-exp(-b2*x))" in out
    assert "points.csv: 14 points" in out
    assert "parameter  estimate" in out and "std. error" in out and "rel. s.e." in out
    assert "torch: " in out
    b1 = next(line for line in out.splitlines() if line.startswith("b1 "))
    assert "2.707" in b1 and "1.13%" in b1  # NIST: sd 2.7070075241
    assert "dof 12" in out and "R² 0.99998" in out


def test_options_from_a_file_with_the_same_keys(tmp_path, capsys):
    write(tmp_path, MISRA, "misra.csv")
    (tmp_path / "fit.toml").write_text(
        'equation = "y = b1*(1-exp(-b2*x))"\ndata = "misra.csv"\n'
        'x0 = {b1 = 240, b2 = 5.5e-4}\nbackend = ["autograd", "fd"]\nformat = "json"\n'
        'parameters = ["b2", "b1"]\nsteps = 50\n')
    code, out, err = run_main(capsys, "fit", "--file", str(tmp_path / "fit.toml"))
    assert code == 0, err
    records = json.loads(out)
    assert [r["backend"] for r in records] == ["autograd", "fd"]
    assert records[0]["variables"] == ["b2", "b1"] and records[0]["x0"] == [5.5e-4, 240.0]
    # The command line wins over the file.
    code, out, err = run_main(capsys, "fit", "--file", str(tmp_path / "fit.toml"),
                              "--backend", "torch")
    assert code == 0, err
    assert [r["backend"] for r in json.loads(out)] == ["torch"]


def test_sigma_weights_the_fit(tmp_path, capsys):
    path = write(tmp_path, "x,y,s\n1,2.1,0.1\n2,3.9,0.2\n3,6.2,0.1\n4,7.9,0.4\n5,10.1,0.2\n")
    code, out, err = run_main(capsys, "fit", "y = b1*x + b2", "--data", path, "--sigma", "s",
                              "--format", "json", "--backend", "autograd")
    assert code == 0, err
    (record,) = json.loads(out)
    # Weighted least squares in closed form.
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    w = 1 / data[:, 2]
    X = np.column_stack([data[:, 0], np.ones(5)]) * w[:, None]
    beta, *_ = np.linalg.lstsq(X, data[:, 1] * w, rcond=None)
    np.testing.assert_allclose(record["fit"]["estimates"], beta, rtol=1e-6)


@pytest.mark.parametrize("equation, csv", [
    ("y = b1*(1-exp(-b2*x))", MISRA),
    ("log(y) = b1 - b2*x1*exp(-b3*x2)", "x1,x2,y\n1,180,15\n1,180,17\n2,225,13\n4,250,8\n"
                                        "8,275,5\n16,300,3\n"),
])
def test_plot_is_written(tmp_path, capsys, equation, csv):
    pytest.importorskip("matplotlib")
    path = write(tmp_path, csv)
    png = tmp_path / "fit.png"
    code, _, err = run_main(capsys, "fit", equation, "--data", path, "--plot", str(png),
                            "--backend", "autograd", "--steps", "20")
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_python_api_takes_a_path_a_dict_or_a_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    path = write(tmp_path, MISRA)
    columns = {"x": np.loadtxt(path, delimiter=",", skiprows=1)[:, 0],
               "y": np.loadtxt(path, delimiter=",", skiprows=1)[:, 1]}
    records = [optbench.fit("y = b1*(1-exp(-b2*x))", data, dict(zip(["b1", "b2"], CERTIFIED,
                                                                 strict=True)),
                            backend="autograd", steps=50)
               for data in (path, columns, pd.DataFrame(columns))]
    for record in records:
        assert record.fit["estimates"] == pytest.approx(records[0].fit["estimates"], rel=1e-12)
        assert record.fit["stderr"][0] == pytest.approx(2.7070075241, rel=1e-3)
    several = optbench.fit("y = b1*(1-exp(-b2*x))", columns, [240, 5.5e-4],
                           backend=["autograd", "fd"], steps=5)
    assert [r.backend for r in several] == ["autograd", "fd"]


def test_importing_optbench_stays_light():
    code = ("import sys, optbench\nassert callable(optbench.fit)\n"
            "heavy = [m for m in ('torch', 'matplotlib', 'pandas', 'optbench.fitting')"
            " if m in sys.modules]\nassert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written
# ---------------------------------------------------------------------------------------

BAD = [
    ("1,2\n3,4\n5,6\n", ["y = b1*x"], "line 1 holds numbers, not column names"),
    ("x,y\n1,2\n3,four\n5,6\n", ["y = b1*x"], "line 3, column y: 'four' is not a finite"),
    ("x,y\n1,2\n3,4\n5,6\n", ["z = b1*t"], "names no data column; the columns of"),
    ("x,y\n1,2\n3,4\n5,6\n", ["y = 2*x"], "has no parameter to fit"),
    ("x,y\n1,2\n3,4\n", ["y = b1 + b2*x + b3*x^2"], "2 points, fewer than the 3 parameters"),
    ("x,y,s\n1,2,1\n3,4,0\n5,6,1\n", ["y = b1*x", "--sigma", "s"],
     "sigma column 's' is 0 at line 3"),
    ("x,y,s\n1,2,1\n3,4,1\n5,6,-2\n", ["y = b1*x", "--sigma", "s"],
     "sigma column 's' is -2 at line 4"),
    ("x,y\n1,2\n3,4\n5,6\n", ["y = b1*x", "--x0", "b1=1,b9=2"],
     "--x0 names 'b9', which is not a parameter of the model; its parameters: b1"),
    ("x,y\n1,2\n3,4\n5,6\n", ["y = b1*x", "--x0", "b1"], "expected name=number pairs"),
    ("x,y\n1,2\n3,4\n5,6\n", ["y = b1*x", "--sigma", "w"], "sigma='w' is not a column"),
    ("x,y\n1,2\n-3,4\n5,6\n", ["y = b1*log(x)", "--x0", "b1=1"],
     "the model is not finite at the start (b1=1): at line 3 of"),
    ("x,y\n1,2\n3,4\n5,6\n", ["y = b1*x", "--plot", "fit.txt"], "expected a file name ending"),
    ("x,y\n1,2\n3,4\n5,6\n", ["y = b1*x", "--method", "nope"], "unknown optimizer 'nope'"),
    ("x,y\n1,2\n3,4\n5,6\n", ["y = b1*x +"], "not an expression"),
]


@pytest.mark.parametrize("csv, argv, fragment", BAD, ids=[b[2][:30] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, monkeypatch,
                                                          csv, argv, fragment):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, csv)
    equation, *rest = argv
    before = sorted(os.listdir(tmp_path))
    plot = [] if "--plot" in rest else ["--plot", str(tmp_path / "fit.png")]
    code, out, err = run_main(capsys, "fit", equation, "--data", path, *rest, *plot)
    line = assert_usage_error(code, out, err, fragment)
    assert sorted(os.listdir(tmp_path)) == before, line


def test_the_first_bad_point_is_named_with_its_values(tmp_path, capsys):
    path = write(tmp_path, "x,y\n\n1,2\n0,4\n-1,6\n")
    code, out, err = run_main(capsys, "fit", "y = b1/x", "--data", path, "--x0", "b1=2")
    line = assert_usage_error(code, out, err, "at line 4 of", "(x=0, y=4)", "lhs - rhs = -inf",
                              "1 of 3 points")
    assert "--x0" in line


def test_a_missing_file_and_a_missing_equation(tmp_path, capsys):
    assert_usage_error(*run_main(capsys, "fit", "y = b1*x", "--data",
                                 str(tmp_path / "none.csv")), "none.csv: no such file")
    assert_usage_error(*run_main(capsys, "fit", "--data", write(tmp_path, "x,y\n1,2\n")),
                       "fit needs an equation")
    assert_usage_error(*run_main(capsys, "fit", "y = b1*x"), "fit needs --data")


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    # A sparse file over the limit for data files (512 MiB): no disk, and reading it whole
    # would not fit in the capped address space.
    path = tmp_path / "huge.csv"
    with open(path, "wb") as handle:
        handle.write(b"x,y\n")
        handle.truncate(600 * MiB)
    limit = 400 * MiB
    code = ("import resource, runpy, sys\n"
            f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
            "sys.argv[0] = 'optbench'\n"
            "runpy.run_module('optbench', run_name='__main__', alter_sys=True)\n")
    proc = subprocess.run([sys.executable, "-c", code, "fit", "y = b1*x", "--data",
                           str(path)], capture_output=True, text=True, timeout=HANG_S,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"optbench: error: data={path} is {600 * MiB} bytes; the limit for data files is "
        "512 MiB"]


def test_a_fifo_is_refused(tmp_path, capsys):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert_usage_error(*run_main(capsys, "fit", "y = b1*x", "--data", str(fifo)),
                       "not a regular file")


# ---------------------------------------------------------------------------------------
# A user's first fit, from the README as written
# ---------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _readme_fit() -> tuple[list[str], str]:
    """The README's commands of "Fit a model to your data" and the output it shows."""
    section = (ROOT / "README.md").read_text().split("## Fit a model to your data", 1)[1]
    blocks = section.split("```")
    commands = [line for line in blocks[1].strip().splitlines() if line.strip()]
    return commands, blocks[3].strip()


def _numbers(text: str) -> list[float]:
    """The numbers of the parameter rows and of the RSS line."""
    rows = [line for line in text.splitlines()
            if line.split()[:1] and line.split()[0] in ("a", "c", "k", "RSS")]
    out = []
    for row in rows:
        for token in row.replace("%", "").split():
            with contextlib.suppress(ValueError):  # the words between the numbers
                out.append(float(token))
    return out


def test_the_readme_fit_runs_as_written():
    import shlex

    commands, shown = _readme_fit()
    assert commands[0] == "cd examples/fit"
    argv = shlex.split(commands[1])
    assert argv[0] == "optbench"
    proc = subprocess.run([sys.executable, "-m", "optbench", *argv[1:]], cwd=ROOT / "examples"
                          / "fit", capture_output=True, text=True, timeout=HANG_S,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    got, expected = _numbers(proc.stdout), _numbers(shown)
    assert len(expected) == 3 * 3 + 4  # three parameter rows, the summary line
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert "torch: converged" in proc.stdout and "torch: converged" in shown
    # The model's truth: y = 5·exp(−0.4·t) + 1 with noise of sd 0.05.
    estimates = dict(zip("ack", got[0:9:3], strict=True))
    assert abs(estimates["a"] - 5) < 0.2 and abs(estimates["k"] - 0.4) < 0.02
    assert abs(estimates["c"] - 1) < 0.1


# ---------------------------------------------------------------------------------------
# Where J comes from
# ---------------------------------------------------------------------------------------


def test_jacobian_at_takes_the_backends_own_where_it_has_one(tmp_path):
    from optbench.fitting.jacobian import jacobian_at

    fp = plan_fit("y = b1*(1-exp(-b2*x))", write(tmp_path, MISRA), CERTIFIED, backend="fd")
    data, x = fp.plan.instance.data, np.array(CERTIFIED)
    r, J = jacobian_at(fp.problem, data, x)  # numpy: complex step
    xs = np.array(fp.table.columns["x"])
    closed = np.column_stack([-(1 - np.exp(-x[1] * xs)), -x[0] * xs * np.exp(-x[1] * xs)])
    np.testing.assert_allclose(J, closed, rtol=1e-14)

    class Own:  # an objective of the issue-15 Backend contract
        dtype = "float64"

        def from_numpy(self, a):
            return a

        def to_numpy(self, a):
            return a

        def residuals_and_jacobian(self, point):
            return r + 1.0, J * 2.0

    r2, J2 = jacobian_at(fp.problem, data, x, Own())
    np.testing.assert_array_equal(J2, J * 2.0)
    np.testing.assert_array_equal(r2, r + 1.0)


def test_a_model_that_is_not_analytic_falls_back_to_central_differences(tmp_path):
    from optbench.fitting.jacobian import jacobian_at

    fp = plan_fit("y = b1*abs(x - b2)", write(tmp_path, "x,y\n1,2\n2,1\n4,3\n"), [1.0, 2.5],
                  backend="fd")
    assert not fp.model.analytic
    _, J = jacobian_at(fp.problem, fp.plan.instance.data, np.array([1.0, 2.5]),
                       analytic=fp.model.analytic)
    np.testing.assert_allclose(J, [[-1.5, -1.0], [-0.5, -1.0], [-1.5, 1.0]], rtol=1e-8)


@pytest.mark.parametrize("toml, fragment", [
    ('equation = "y = b1*x"\ndata = "p.csv"\ncolour = "red"\n', "unknown key 'colour'"),
    ('equation = "y = b1*x"\ndata = "p.csv"\nsteps = "ten"\n', "steps = 'ten' is not "
                                                               "accepted: expected an integer"),
    ('equation = "y = b1*x"\ndata = "p.csv"\nx0 = [1]\n', "x0 must be a table"),
    ('equation = "y = b1*x"\ndata = "p.csv"\nbackend = "nope"\n', "unknown backend 'nope'"),
    ('equation = "y = b1*x"\ndata = "p.csv"\nmethod = "nope"\n', "unknown optimizer 'nope'"),
    ('equation = "y = b1*x"\ndata = "p.csv"\nformat = "xml"\n', "format='xml' is not"),
    ('equation = "y = b1*x"\ndata = "missing.csv"\n', "missing.csv: no such file"),
    ('equation = "y = b1*x\n', "not valid TOML"),
])
def test_a_bad_fit_file_is_one_line(tmp_path, capsys, toml, fragment):
    write(tmp_path, "x,y\n1,2\n2,4\n", "p.csv")
    (tmp_path / "fit.toml").write_text(toml)
    assert_usage_error(*run_main(capsys, "fit", "--file", str(tmp_path / "fit.toml")),
                       fragment)
