"""The problem `model` (issue 15): an equation over data columns and parameters, its
residuals lhs − rhs (weighted by 1/σ), and the CSV tables it reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

import optbench
from optbench import userfiles
from optbench.errors import UsageError
from optbench.problems.datatable import read_table, table_from_columns
from optbench.problems.model import ModelProblem, natural_order

MISRA1A_X = [77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8,
             593.1, 689.1, 760.0]
MISRA1A_Y = [10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01,
             66.40, 75.47, 81.78]


def write(tmp_path, text, name="points.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def misra_csv(tmp_path, sigma=False):
    rows = ["x,y,s" if sigma else "x,y"]
    rows += [f"{x},{y}" + (f",{0.5 + i / 10}" if sigma else "")
             for i, (x, y) in enumerate(zip(MISRA1A_X, MISRA1A_Y, strict=True))]
    return write(tmp_path, "\n".join(rows) + "\n")


def test_natural_order_is_by_number_not_by_text_or_appearance():
    assert natural_order(["b10", "b2", "b1", "a", "b4", "b3"]) == (
        "a", "b1", "b2", "b3", "b4", "b10")
    assert natural_order(["x1y", "x1", "x10", "x2"]) == ("x1", "x1y", "x2", "x10")


def test_mgh17_parameters_in_natural_order_not_appearance(tmp_path):
    # NIST's MGH17 mentions b4 before b3: a list-valued start must land on b1..b5 in order.
    path = write(tmp_path, "x,y\n0,0.844\n10,0.908\n20,0.932\n30,0.936\n40,0.925\n")
    problem = ModelProblem()
    params = {"equation": "y = b1 + b2*exp(-x*b4) + b3*exp(-x*b5)", "data": path,
              "sigma": None, "parameters": None}
    assert problem.variables(params) == ("b1", "b2", "b3", "b4", "b5")
    params["parameters"] = "b5,b4,b3,b2,b1"
    assert problem.variables(params) == ("b5", "b4", "b3", "b2", "b1")


def test_names_that_are_not_columns_are_parameters(tmp_path):
    params = {"equation": "y = b1*exp(-b2*t)", "data": misra_csv(tmp_path), "sigma": None,
              "parameters": None}
    assert ModelProblem().variables(params) == ("b1", "b2", "t")  # t: no column


def test_residuals_are_lhs_minus_rhs_and_objective_their_sum_of_squares(tmp_path):
    problem = ModelProblem()
    params = {"equation": "y = b1*(1-exp(-b2*x))", "data": misra_csv(tmp_path),
              "sigma": None, "parameters": None}
    inst = problem.make(params, seed=0)
    assert inst.variables == ("b1", "b2")
    b = np.array([240.0, 5.5e-4])
    x, y = np.array(MISRA1A_X), np.array(MISRA1A_Y)
    expected = y - b[0] * (1 - np.exp(-b[1] * x))
    r = problem.residuals(b, inst.data, np)
    np.testing.assert_allclose(r, expected, rtol=1e-14)
    assert problem.objective(b, inst.data, np) == pytest.approx(np.sum(expected**2),
                                                                rel=1e-14)
    assert ModelProblem.has_residuals is True


def test_sigma_weights_each_residual_by_one_over_sigma(tmp_path):
    problem = ModelProblem()
    params = {"equation": "y = b1*(1-exp(-b2*x))", "data": misra_csv(tmp_path, sigma=True),
              "sigma": "s", "parameters": None}
    inst = problem.make(params, seed=0)
    b = np.array([240.0, 5.5e-4])
    x, y = np.array(MISRA1A_X), np.array(MISRA1A_Y)
    s = 0.5 + np.arange(len(x)) / 10
    np.testing.assert_allclose(problem.residuals(b, inst.data, np),
                               (y - b[0] * (1 - np.exp(-b[1] * x))) / s, rtol=1e-14)


def test_an_implicit_response_and_several_predictors(tmp_path):
    # Nelson's form: log(y) on the left, two predictors.
    path = write(tmp_path, "x1,x2,y\n1,180,15\n1,180,17\n2,225,13\n4,250,8\n")
    problem = ModelProblem()
    params = {"equation": "log(y) = b1 - b2*x1 * exp(-b3*x2)", "data": path,
              "sigma": None, "parameters": None}
    inst = problem.make(params, seed=0)
    b = np.array([2.5, 5e-9, -0.05])
    t = read_table(path)
    expected = np.log(t.columns["y"]) - (b[0] - b[1] * t.columns["x1"]
                                         * np.exp(-b[2] * t.columns["x2"]))
    np.testing.assert_allclose(problem.residuals(b, inst.data, np), expected, rtol=1e-13)


def test_every_backend_runs_it_from_a_table_in_memory(registry):
    table = table_from_columns({"x": MISRA1A_X, "y": MISRA1A_Y})
    problem = ModelProblem(table)
    start = [500.0, 1e-4]
    records = [optbench.solve(problem=problem, backend=name, optimizer="lbfgs", x0=start,
                              steps=500, problem_params={"equation": "y = b1*(1-exp(-b2*x))"})
               for name in ("torch", "autograd", "fd")]
    for record in records:
        # NIST's certified RSS 0.12455138894: L-BFGS gets near it, the fit's solvers to it.
        assert record.f == pytest.approx(0.12455138894, rel=1e-2), record.backend


@pytest.mark.parametrize("params, fragment", [
    ({"equation": "z = b1*exp(-b2*t)"}, "names no data column; the columns of"),
    ({"equation": "y = 2*x"}, "has no parameter to fit"),
    ({"equation": "y = b1*x", "parameters": "b1,b2"}, "'b2' is not in the equation"),
    ({"equation": "y = b1*x + b2", "parameters": "b1"}, "'b2' is in the equation but not"),
    ({"equation": "y = b1*x + b2", "parameters": "b1,x"}, "'x' is a column of"),
    ({"equation": "y = b1*x + b2", "parameters": "b1,b2,b1"}, "listed twice"),
    ({"equation": "y = b1*x", "sigma": "s"}, "sigma='s' is not a column"),
    ({"equation": "y = b1*x + b2*x^2 + b3*x^3 + b4 + b5"}, "fewer than the 5 parameters"),
])
def test_bad_models_are_refused_with_one_line(tmp_path, params, fragment):
    path = write(tmp_path, "x,y\n1,2\n2,4\n3,6.5\n4,8\n")
    problem = ModelProblem()
    full = {"data": path, "sigma": None, "parameters": None, **params}
    with pytest.raises(UsageError) as exc:
        problem.make(full, seed=0)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("text, fragment", [
    ("1,2\n3,4\n", "line 1 holds numbers, not column names: the file has no header"),
    ("x,y\n1,2\n3,abc\n", "line 3, column y: 'abc' is not a finite number"),
    ("x,y\n1,2\n\n3,nan\n", "line 4, column y: 'nan' is not a finite number"),
    ("x,y\n1,2\n3\n", "line 3 has 1 cells; expected 2"),
    ("x,y,x\n1,2,3\n", "column 'x' appears twice"),
    ("x,time (s)\n1,2\n", "column name 'time (s)' is not a name"),
    ("x,e\n1,2\n", "column name 'e' is a function or constant"),
    ("", "the file is empty"),
    ("x,y\n", "no rows of numbers below the header"),
])
def test_bad_csv_is_refused_naming_the_line(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as exc:
        read_table(path)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_csv_with_a_byte_order_mark_and_spaces_reads(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx, y\r\n1, 2\r\n\r\n3 ,4\r\n".encode())
    table = read_table(str(path))
    assert table.names == ("x", "y")
    np.testing.assert_array_equal(table.columns["y"], [2.0, 4.0])
    assert table.lines == (2, 4)
    assert table.where(1) == f"line 4 of {path}"


def test_tables_in_memory_follow_the_same_rules():
    pd = pytest.importorskip("pandas")
    table = table_from_columns(pd.DataFrame({"x": [1, 2], "y": [3.0, 4.0]}))
    assert table.names == ("x", "y")
    with pytest.raises(UsageError, match="equal length"):
        table_from_columns({"x": [1, 2], "y": [3.0]})
    with pytest.raises(UsageError, match="not a finite number"):
        table_from_columns({"x": [1, np.nan]})
    with pytest.raises(UsageError, match="1-D array of numbers"):
        table_from_columns({"x": ["a", "b"]})


# ---------------------------------------------------------------------------------------
# expr: a start given as a list, variables in an order that is not their natural one
# ---------------------------------------------------------------------------------------


def test_expr_warns_when_a_list_x0_meets_names_out_of_natural_order(capsys, tmp_path):
    from clitools import run_main

    # Before: --x0 1,2 silently set b2=1, b1=2 (order of appearance). Now a warning says so.
    code, out, err = run_main(capsys, "run", "--problem", "expr", "-P",
                              "objective=(b2-1)^2 + (b1-2)^2", "--x0", "1,2", "--optimizer",
                              "lbfgs", "--format", "json")
    assert code == 0
    assert json.loads(out)[0]["variables"] == ["b2", "b1"]
    warning = [line for line in err.splitlines() if "warning" in line]
    assert warning == ["optbench: warning: --x0 is a list, matched to the variables in order "
                       "of appearance (b2, b1), not in natural order (b1, b2); declare the "
                       "order to be sure: -P variables=b1,b2"]
    toml = tmp_path / "p.toml"
    toml.write_text('objective = "(b2-1)^2 + (b1-2)^2"\nx0 = [0, 1]\n')
    code, out, err = run_main(capsys, "run", "--problem", "expr", "-P", f"file={toml}",
                              "--optimizer", "lbfgs", "--format", "json")
    assert code == 0
    assert 'declare the order to be sure: variables = ["b1", "b2"]' in err


@pytest.mark.parametrize("argv", [
    ["-P", "objective=(b1-1)^2 + (b2-2)^2", "--x0", "1,2"],  # natural order already
    ["-P", "objective=(b2-1)^2 + (b1-2)^2", "-P", "variables=b2,b1", "--x0", "1,2"],
    ["-P", "objective=(b2-1)^2 + (b1-2)^2"],  # drawn from the seed: no list given
])
def test_expr_does_not_warn_otherwise(capsys, argv):
    from clitools import run_main

    code, _, err = run_main(capsys, "run", "--problem", "expr", *argv, "--optimizer", "lbfgs",
                            "--format", "json")
    assert code == 0 and "warning" not in err


def test_too_many_columns_and_an_overlong_line_are_refused(tmp_path):
    from optbench.problems import datatable

    names = ",".join(f"c{i}" for i in range(datatable.MAX_COLUMNS + 1))
    with pytest.raises(UsageError, match=f"the limit is {datatable.MAX_COLUMNS}"):
        read_table(write(tmp_path, names + "\n"))
    with pytest.raises(UsageError, match="line 2 is longer than"):
        read_table(write(tmp_path, "x,y\n1," + "1" * (userfiles.MAX_LINE + 1) + "\n"))


def test_rows_beyond_the_memory_available_are_refused_as_they_are_read(tmp_path,
                                                                        monkeypatch):
    from optbench import memory
    from optbench.problems import datatable

    monkeypatch.setattr(memory, "available", lambda: 10 * datatable.bytes_per_row(2))
    path = write(tmp_path, "x,y\n" + "1,2\n" * 11)
    with pytest.raises(UsageError, match="more than 10 rows, which would need more than"):
        read_table(path)
    path = write(tmp_path, "x,y\n" + "1,2\n" * 10)
    assert read_table(path).n_rows == 10
