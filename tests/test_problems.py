"""The built-in problems (regression, puzzle) and the declared-parameter parser."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import optbench
from optbench.core import Param
from optbench.core.params import parse_assignments, resolve
from optbench.errors import UsageError
from optbench.expr.linear import analyse
from optbench.problems.puzzle import Puzzle, parse_matrix
from optbench.problems.regression import Regression, read_points, term_names

NIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "nist"


def regression(seed: int = 0, **given_params):
    problem = Regression()
    params = resolve(problem.params, given_params, problem.name)
    instance = problem.make(params, seed)
    return problem, instance, problem.reference(instance)


def puzzle(**given_params):
    problem = Puzzle()
    params = resolve(problem.params, given_params, problem.name)
    instance = problem.make(params, 0)
    return problem, instance, problem.reference(instance)


# -- regression ------------------------------------------------------------------------------

@pytest.mark.parametrize("degree, noise, coefficients", [
    (2, 0.0, "1,2,3"), (2, 0.5, "1,2,3"), (3, 1.0, "0.1,1,2,3"), (0, 0.3, "3"),
])
def test_regression_reference_is_polyfit(degree, noise, coefficients):
    _, inst, ref = regression(seed=7, degree=degree, noise=noise, coefficients=coefficients)
    x = inst.data["V"][:, -2] if degree >= 1 else None
    if x is None:  # degree 0: the fit is the mean
        np.testing.assert_allclose(ref.x, [np.mean(inst.data["y"])], rtol=1e-12)
    else:
        np.testing.assert_allclose(ref.x, np.polyfit(x, inst.data["y"], degree), rtol=1e-8,
                                   atol=1e-10)
    assert ref.unique
    residual = inst.data["y"] - inst.data["V"] @ ref.x
    assert ref.f == pytest.approx(np.mean(residual**2), abs=1e-12)


def test_regression_tutorial_defaults():
    problem, inst, ref = regression()
    assert inst.variables == ("x^2", "x", "1")
    assert inst.data["V"].shape == (20, 3)
    np.testing.assert_allclose(ref.x, [1.0, 2.0, 3.0], rtol=1e-10)
    assert ref.f == pytest.approx(0.0, abs=1e-20)
    # The tutorial's objective: the mean of squared residuals.
    x = np.zeros(3)
    assert problem.objective(x, inst.data, np) == pytest.approx(np.mean(inst.data["y"] ** 2))


def test_regression_depends_only_on_the_seed():
    _, a, _ = regression(seed=11, noise=0.1)
    _, b, _ = regression(seed=11, noise=0.1)
    _, c, _ = regression(seed=12, noise=0.1)
    np.testing.assert_array_equal(a.x0, b.x0)
    np.testing.assert_array_equal(a.data["V"], b.data["V"])
    np.testing.assert_array_equal(a.data["y"], b.data["y"])
    assert not np.array_equal(a.x0, c.x0)
    assert not np.array_equal(a.data["y"], c.data["y"])


def test_term_names():
    assert term_names(2) == ("x^2", "x", "1")
    assert term_names(0) == ("1",)
    assert term_names(3) == ("x^3", "x^2", "x", "1")
    problem = Regression()
    assert problem.variables({"degree": 2}) == ("x^2", "x", "1")


def test_lower_degree_model_is_a_best_fit():
    # A line fitted to the quadratic's points: the reference is polyfit's line, f* > 0.
    _, inst, ref = regression(degree=1, coefficients="1,2,3")
    x, y = inst.data["V"][:, 0], inst.data["y"]
    np.testing.assert_allclose(ref.x, np.polyfit(x, y, 1), rtol=1e-10)
    assert ref.f > 1.0


def test_fewer_coefficients_are_padded_with_leading_zeros():
    _, _, ref = regression(degree=3, coefficients="2,3")
    np.testing.assert_allclose(ref.x, [0.0, 0.0, 2.0, 3.0], atol=1e-9)


@pytest.mark.parametrize("value", ["-1", "21", "2.5", "abc", ""])
def test_regression_degree_out_of_range(value):
    with pytest.raises(UsageError, match=rf"degree={value} is not accepted"):
        regression(degree=value)


# -- CSV data --------------------------------------------------------------------------------

def write(tmp_path: Path, text: str, name: str = "points.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_with_header(tmp_path):
    x, y = read_points(write(tmp_path, "x,y\n1,2\n3,4\n"))
    np.testing.assert_array_equal(x, [1, 3])
    np.testing.assert_array_equal(y, [2, 4])


def test_csv_without_header(tmp_path):
    x, _ = read_points(write(tmp_path, "1,2\n3,4\n5,6\n"))
    np.testing.assert_array_equal(x, [1, 3, 5])


def test_csv_blank_lines_skipped(tmp_path):
    x, y = read_points(write(tmp_path, "\nx,y\n1,2\n\n   \n3,4\n\n"))
    np.testing.assert_array_equal(x, [1, 3])
    np.testing.assert_array_equal(y, [2, 4])


def test_csv_crlf_and_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf1,2\r\n3,4\r\n5,6\r\n")
    x, _ = read_points(str(path))
    np.testing.assert_array_equal(x, [1, 3, 5])  # the first point is not taken for a header


@pytest.mark.parametrize("text, line", [
    ("x,y\n1,2\n3,abc\n", 3),
    ("1,2\n3,4\n5\n", 3),
    ("1,2\n3,4,5\n", 2),
    ("x,y\n1,2\n\n3,nan\n", 4),
    ("x,y\nX,Y\n1,2\n", 2),  # a second header is not a header
])
def test_csv_bad_line_named(tmp_path, text, line):
    path = write(tmp_path, text)
    with pytest.raises(UsageError, match=rf"line {line} is .*expected two finite numbers"):
        read_points(path)


def test_csv_too_few_points(tmp_path):
    with pytest.raises(UsageError, match="holds 1 points"):
        read_points(write(tmp_path, "x,y\n1,2\n"))


def test_csv_not_text(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(UsageError, match="cannot read it"):
        read_points(str(path))


def test_csv_data_replaces_the_drawn_sample(tmp_path):
    xs = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    ys = 0.5 * xs**2 - xs + 4
    rows = "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(xs, ys, strict=True))
    path = write(tmp_path, "x,y\n" + rows)
    _, inst, ref = regression(data=path)
    np.testing.assert_array_equal(inst.data["y"], ys)
    np.testing.assert_allclose(ref.x, [0.5, -1.0, 4.0], rtol=1e-12)


def test_missing_data_file_refused():
    with pytest.raises(UsageError, match=r"data=no/such\.csv is not accepted"):
        regression(data="no/such.csv")


def lre(estimate: float, certified: Decimal) -> float:
    """NIST's log relative error: the number of digits that agree."""
    error = abs(Decimal(repr(estimate)) - certified)
    return 15.0 if error == 0 else min(15.0, float(-(error / abs(certified)).log10()))


def test_nist_norris_certified_values():
    if not (NIST / "Norris.csv").is_file():
        pytest.skip(f"the NIST StRD data is not at {NIST}")
    certified = json.loads((NIST / "Norris.json").read_text())
    _, inst, ref = regression(data=str(NIST / "Norris.csv"), degree=1)
    assert inst.data["y"].size == certified["n_obs"] == 36
    # NIST lists B0 (intercept) first; optbench's order is the highest power first.
    estimates = [Decimal(c["estimate"]) for c in certified["certified"]][::-1]
    digits = [lre(float(v), c) for v, c in zip(ref.x, estimates, strict=True)]
    assert min(digits) >= 12, digits


# -- puzzle ----------------------------------------------------------------------------------

def test_tutorial_puzzle_analysis():
    problem, inst, ref = puzzle()
    assert inst.variables == ("A", "B", "C", "D")
    np.testing.assert_allclose(ref.x, [6.0, 3.0, 2.0, 1.0], atol=1e-12)
    assert ref.f == pytest.approx(0.0, abs=1e-20)
    assert ref.details["rank"] == 3
    assert ref.details["consistent"] is True
    assert ref.unique is False
    (direction,) = np.asarray(ref.details["nullspace"])
    expected = np.array([-1.0, 1.0, 1.0, 1.0]) / 2.0
    assert abs(float(direction @ expected)) == pytest.approx(1.0, abs=1e-12)
    # Every point of the family solves the puzzle: the objective is the sum of squares.
    for t in (-2.0, 0.5, 3.0):
        assert problem.objective(ref.x + t * direction, inst.data, np) == pytest.approx(
            0.0, abs=1e-20)


def test_inconsistent_puzzle():
    _, inst, ref = puzzle(matrix="1,1;1,1", rhs="1,2")
    assert inst.variables == ("A", "B")
    assert ref.details["consistent"] is False
    assert ref.details["rank"] == 1
    np.testing.assert_allclose(ref.x, [0.75, 0.75], atol=1e-12)  # least squares, min norm
    assert ref.f == pytest.approx(0.5)


def test_unique_puzzle():
    _, _, ref = puzzle(matrix="2,0;0,4", rhs="2,8")
    assert ref.unique and ref.details["rank"] == 2 and ref.details["consistent"]
    np.testing.assert_allclose(ref.x, [1.0, 2.0])


@pytest.mark.parametrize("text", ["", ";", "1,a", "1,2;3", "1,,2", "1,inf", "nan"])
def test_bad_matrix_refused(text):
    with pytest.raises(UsageError, match=r"matrix=.* is not accepted"):
        parse_matrix(text)


def test_rhs_length_must_match_rows():
    with pytest.raises(UsageError, match="rhs has 3 numbers"):
        puzzle(matrix="1,1;1,-1", rhs="1,2,3")


def test_parse_matrix():
    np.testing.assert_array_equal(parse_matrix("1, 2; 3,4 ;"), [[1, 2], [3, 4]])


def test_linear_analysis_full_rank():
    a = analyse(np.eye(3), np.array([1.0, 2.0, 3.0]), ("a", "b", "c"))
    assert a["rank"] == 3 and a["consistent"] and a["nullspace"] == []
    assert a["general"] == "a = 1, b = 2, c = 3" and not a["family"]


# -- declared parameters ---------------------------------------------------------------------

INT = Param("n", "int", 0, low=-10**6, high=10**6)
FLOAT = Param("x", "float", 0.0)
FLOATS = Param("v", "floats", (0.0,))
LR = Param("lr", "float", 0.01, low=0, low_open=True)
BETAS = Param("betas", "floats", (0.9, 0.999), low=0, high=1, high_open=True, length=2)
finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_int_round_trips(n):
    assert INT.parse(str(n)) == n
    assert INT.parse(f" {n} ") == n
    assert INT.parse(n) == n


@given(finite)
def test_float_round_trips(x):
    assert FLOAT.parse(repr(x)) == x
    assert FLOAT.parse(x) == x


@given(st.lists(finite, min_size=1, max_size=8))
def test_floats_round_trip(values):
    assert FLOATS.parse(",".join(map(repr, values))) == tuple(values)
    assert FLOATS.parse(values) == tuple(values)


@given(st.floats(max_value=0.0))
def test_lr_refuses_non_positive(x):
    with pytest.raises(UsageError, match=r"lr=.* is not accepted: expected a number > 0"):
        LR.parse(repr(x))


@given(st.integers(min_value=10**6 + 1) | st.integers(max_value=-(10**6) - 1))
def test_int_refuses_out_of_range(n):
    with pytest.raises(UsageError, match=rf"n={n} is not accepted"):
        INT.parse(str(n))


@given(finite, finite)
def test_betas_accepted_only_in_range(b1, b2):
    text = f"{b1!r},{b2!r}"
    if 0 <= b1 < 1 and 0 <= b2 < 1:
        assert BETAS.parse(text) == (b1, b2)
    else:
        with pytest.raises(UsageError, match=r"expected 2 comma-separated numbers >= 0 and < 1"):
            BETAS.parse(text)


@pytest.mark.parametrize("param, value", [
    (INT, "2.5"), (INT, True), (INT, "x"), (FLOAT, "nan"), (FLOAT, "inf"), (FLOAT, ""),
    (FLOATS, ""), (FLOATS, "1,,2"), (FLOATS, "1,x"), (BETAS, "0.9"), (BETAS, "0.9,0.99,0.1"),
    (BETAS, "1,0.5"), (LR, "0"),
])
def test_refused_values(param, value):
    with pytest.raises(UsageError, match=f"{param.name}="):
        param.parse(value)


@pytest.mark.parametrize("text, value", [("true", True), ("No", False), ("1", True)])
def test_bool(text, value):
    assert Param("flag", "bool", False).parse(text) is value


def test_resolve_fills_defaults_and_refuses_unknown_keys():
    assert resolve((INT, LR), {"lr": "0.5"}, "owner") == {"n": 0, "lr": 0.5}
    with pytest.raises(UsageError, match="owner has no parameter 'm'; its parameters: n, lr"):
        resolve((INT, LR), {"m": 1}, "owner")


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                       st.text(alphabet="0123456789.,-abc", max_size=10), max_size=5))
def test_parse_assignments_round_trips(pairs):
    assert parse_assignments([f"{k}={v}" for k, v in pairs.items()], "-P") == pairs


@pytest.mark.parametrize("item", ["degree", "=3", "2x=1", " =1"])
def test_parse_assignments_refuses(item):
    with pytest.raises(UsageError, match=r"-P .* is not accepted: expected key=value"):
        parse_assignments([item], "-P")


def test_accepted_in_words():
    assert LR.accepted() == "a number > 0"
    assert BETAS.accepted() == "2 comma-separated numbers >= 0 and < 1"
    assert math.isfinite(Regression.params[0].high)


# -- the orthogonal basis ---------------------------------------------------------------------

def test_orthogonal_basis_is_the_same_least_squares():
    _, mono, ref_m = regression(seed=3, degree=4, noise=0.5)
    _, orth, ref_o = regression(seed=3, degree=4, noise=0.5, basis="orthogonal")
    np.testing.assert_allclose(ref_o.x, ref_m.x, rtol=1e-9)
    assert ref_o.f == pytest.approx(ref_m.f, rel=1e-10)
    q = orth.data["V"]
    np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-12)  # orthonormal columns
    # Same start for the user, whatever basis the optimizer works in.
    np.testing.assert_allclose(orth.to_user(orth.x0), mono.x0, rtol=1e-12)
    z = np.random.default_rng(0).standard_normal(5)
    w = orth.to_user(z)  # the objectives agree point for point
    assert np.mean((orth.data["y"] - q @ z) ** 2) == pytest.approx(
        np.mean((mono.data["y"] - mono.data["V"] @ w) ** 2), rel=1e-10)


def test_orthogonal_basis_run_reports_user_coefficients():
    record = optbench.solve(problem="regression", backend="fd", optimizer="lbfgs",
                            problem_params={"basis": "orthogonal"}, x0=[0.5, -1.0, 2.0])
    assert record.status == "converged"
    assert record.x0 == pytest.approx([0.5, -1.0, 2.0], rel=1e-12)
    np.testing.assert_allclose(record.x, [1.0, 2.0, 3.0], rtol=1e-9)
    assert record.relative_error < 1e-9
