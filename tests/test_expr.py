"""The expression language: what it accepts, what it refuses, and that it never runs text.

References are independent of the parser: the same formulas written by hand in numpy, the
exact matrices of the tutorial's system, and, for gradients, the three CPU backends against
each other (torch and autograd differentiate the compiled closures; fd only evaluates them).

Refusals: one test each, asserting a ParseError (a UsageError) whose offset points at the
offending place, whose text shows a caret under it, and that a payload written to create a
sentinel file never ran. The same refusals go through `optbench grad` and `optbench solve`:
exit 2, exactly one line on stderr, no traceback.

The fuzz test (slow-marked, run by CI) feeds 10,000 texts — arbitrary unicode and strings built
from the language's own tokens — to the parser, and asserts that it raises only ParseError and
answers each within a time bound.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clitools import assert_usage_error, run_main
from optbench.errors import UsageError
from optbench.expr import ParseError, compile_expression, parse_equation, parse_system
from optbench.expr.parse import MAX_LENGTH
from optbench.gradient import gradient

TOL_AUTODIFF = 1e-12  # tests/test_gradients.py
TOL_FD = 1e-7
# A hang detector per text, not a speed target: 0.5 s failed at load 3.5 on two cores
# (0.54 s). That parsing work grows linearly with the text is checked deterministically,
# by counting calls (tests/test_bounds.py::test_parsing_work_grows_with_the_text...).
TIME_BOUND_S = 5.0


def evaluate(text, values, variables=None):
    expr = compile_expression(text, variables)
    return expr([np.asarray(v, dtype=np.float64) for v in values], np)


POINTS = np.array([-2.5, -1.0, -0.3, 0.0, 0.7, 1.0, 3.25])
POSITIVE = np.array([0.1, 0.5, 1.0, 2.0, 3.5])


# -- accepted grammar: the same numbers as numpy by hand ----------------------------------------

@pytest.mark.parametrize("text, by_hand", [
    ("x^2 + 2*x + 3", lambda x: x**2 + 2 * x + 3),
    ("x**2 + 2*x + 3", lambda x: x**2 + 2 * x + 3),
    ("-x^2", lambda x: -(x**2)),  # Python's grammar: power binds tighter than unary minus
    ("-x**2", lambda x: -(x**2)),
    ("(-x)^2", lambda x: x**2),
    ("- - x", lambda x: x),
    ("+x - -x", lambda x: 2 * x),
    ("2^x^2", lambda x: 2.0 ** (x**2)),  # right-associative
    ("x^-2 * 0 + 1", lambda x: np.ones_like(x)),
    ("1 - x - 2", lambda x: -1 - x),  # left-associative
    ("12 / x / 4", lambda x: 3.0 / x),
    ("3*x/2", lambda x: 1.5 * x),
    ("2^-1 * x", lambda x: 0.5 * x),
    ("(1 + x) * (1 - x)", lambda x: 1 - x**2),
    ("pi * x + e", lambda x: np.pi * x + np.e),
    ("1e-3*x + 2.5E2 + 0x10", lambda x: 1e-3 * x + 250 + 16),
    ("  x  *  x  ", lambda x: x * x),
])
def test_expressions_evaluate_like_numpy(text, by_hand):
    x = POINTS[POINTS != 0]
    np.testing.assert_allclose(evaluate(text, [x]), by_hand(x), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name, numpy_fn, points", [
    ("sin", np.sin, POINTS), ("cos", np.cos, POINTS), ("tan", np.tan, POINTS),
    ("exp", np.exp, POINTS), ("log", np.log, POSITIVE), ("sqrt", np.sqrt, POSITIVE),
    ("abs", np.abs, POINTS), ("tanh", np.tanh, POINTS), ("sinh", np.sinh, POINTS),
    ("cosh", np.cosh, POINTS),
])
def test_functions(name, numpy_fn, points):
    np.testing.assert_allclose(evaluate(f"2*{name}(x) - 1", [points]),
                               2 * numpy_fn(points) - 1, rtol=1e-15, atol=0)


def test_constants_and_folding():
    assert evaluate("pi", []) == math.pi
    assert evaluate("e", []) == math.e
    assert evaluate("2*pi*x", [1.0]) == pytest.approx(2 * math.pi, rel=1e-15)
    assert evaluate("x + cos(pi)", [1.0]) == 0.0
    assert evaluate("x * 9^9^0.5", [2.0]) == pytest.approx(2 * 9.0**3, rel=1e-15)


def test_several_variables():
    x, y, z = POINTS, POINTS[::-1] + 5, POSITIVE.mean() + POINTS**2
    np.testing.assert_allclose(evaluate("x*y - z/y + sin(x)^2*exp(-z)", [x, y, z]),
                               x * y - z / y + np.sin(x) ** 2 * np.exp(-z), rtol=1e-14)


def test_variables_in_order_of_first_appearance_or_declared():
    assert compile_expression("b + a*c + a - b").variables == ("b", "a", "c")
    assert compile_expression("x_1 + _y + x2").variables == ("x_1", "_y", "x2")
    expr = compile_expression("b + a", ["a", "b", "c"])
    assert expr.variables == ("a", "b", "c")
    assert expr([1.0, 10.0, 100.0], np) == 11.0  # values follow the declared order
    assert compile_expression("2 + 3").variables == ()
    with pytest.raises(ParseError, match="not among the declared"):
        compile_expression("a + b", ["a"])
    with pytest.raises(ParseError, match="declared twice"):
        compile_expression("a", ["a", "a"])
    system = parse_system(["y + x = 1", "z = 2*y"])
    assert system.variables == ("y", "x", "z")
    assert parse_system(["y + x = 1", "z = 2*y"], ["x", "y", "z"]).variables == ("x", "y", "z")


def test_equations_with_one_or_two_equals_signs():
    x = POINTS
    for text in ("x^2 + 1 = 3*x", "x^2 + 1 == 3*x", "x^2+1=3*x"):
        equation = parse_equation(text)
        system = parse_system([text])
        assert equation.text == text
        (residual,) = system.residuals([x], np)
        np.testing.assert_allclose(residual, x**2 + 1 - 3 * x, rtol=1e-15)
    assert parse_system(["x = 2"]).objective([np.float64(5.0)], np) == 9.0


def test_tutorial_system_is_linear_with_the_exact_matrix():
    system = parse_system(["A + B = 9", "C - D = 1", "A + C = 8", "B - D = 2"])
    assert system.linear
    assert system.variables == ("A", "B", "C", "D")
    np.testing.assert_array_equal(system.matrix, [[1, 1, 0, 0], [0, 0, 1, -1],
                                                  [1, 0, 1, 0], [0, 1, 0, -1]])
    np.testing.assert_array_equal(system.rhs, [9, 1, 8, 2])


@pytest.mark.parametrize("equations, matrix, rhs", [
    (["2*x + y/4 - 3 = x - 1"], [[1, 0.25]], [2]),
    (["-(x - 2*y) = 3*(y + 1)"], [[-1, -1]], [3]),
    (["x^1 + (y)*2 = 1", "pi*x = 0"], [[1, 2], [math.pi, 0]], [1, 0]),
    (["x/2 + 0*y = sin(0) + 2^3"], [[0.5, 0]], [8]),
    (["+x == -y"], [[1, 1]], [0]),
])
def test_linear_extraction(equations, matrix, rhs):
    system = parse_system(equations)
    assert system.linear
    np.testing.assert_allclose(system.matrix, matrix, rtol=1e-15)
    np.testing.assert_allclose(system.rhs, rhs, rtol=1e-15)


@pytest.mark.parametrize("equations", [
    ["x*y = 6", "x + y = 5"], ["x^2 = 1"], ["sin(x) = 0"], ["1/x = 2"], ["x = 1", "y*y = 4"],
    ["2^x = 4"], ["abs(x) = 1"],
])
def test_nonlinear_systems_have_no_matrix(equations):
    system = parse_system(equations)
    assert not system.linear
    assert system.matrix is None and system.rhs is None


# -- refusals: a ParseError pointing at the place; nothing executed ------------------------------

def payload(path) -> str:
    """A Python expression that would create `path` if anything evaluated it."""
    return f"__import__('os').system('touch {path}')"


# name -> (text with {p} for the payload, what the offset points at, message fragment)
REFUSED = {
    "attribute access": ("1 + x.real", "x.real", "attribute access"),
    "attribute call": ("{p}", "__import__('os').system", "only the built-in functions"),
    "call of an unknown name": ("x + foo(x)", "foo", "unknown function 'foo'"),
    "__import__": ("__import__('os')", "__import__", "unknown function '__import__'"),
    "lambda": ("x + (lambda: {p})()", "lambda", "built-in functions"),
    "lambda alone": ("(lambda: {p})", "lambda", "lambda"),
    "list comprehension": ("1 + [{p} for _ in (1,)]", "[", "comprehensions"),
    "generator": ("x * (y for y in (1,))", "(y for", "comprehensions"),
    "string": ('x + "{p}"', '"', "str constants"),
    "subscript": ("1 + x[0]", "x[0]", "subscripts"),
    "keyword argument": ("sin(x=1)", "1)", "keyword arguments"),
    "9**9**9": ("9**9**9", "9**9", "exponent larger"),
    "9^9^9": ("x + 9^9^9", "9^9", "exponent larger"),
    "unbalanced: '(' without ')'": ("(x + 1) * (x - 1", "(x - 1", "unbalanced"),
    "unbalanced: ')' without '('": ("x + 1) * 2", ") * 2", "unbalanced"),
}


def check_refusal(err: ParseError, text: str, at: str, fragment: str) -> None:
    assert isinstance(err, UsageError)
    assert fragment in err.reason, err.reason
    assert text[err.offset:].startswith(at), (err.offset, text[err.offset:])
    lines = str(err).splitlines()
    assert len(lines) == 3, str(err)
    excerpt, caret = lines[1], lines[2]
    assert caret.strip() and set(caret.strip()) == {"^"}, caret
    column = caret.index("^")
    assert excerpt[column:].startswith(at[: len(excerpt) - column]), (excerpt, caret)
    one = err.one_line()
    assert "\n" not in one and f">>{at[0]}" in one, one


@pytest.mark.parametrize("name", REFUSED)
def test_refused(name, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    template, at, fragment = REFUSED[name]
    text = template.format(p=payload(sentinel))
    with pytest.raises(ParseError) as exc:
        compile_expression(text)
    check_refusal(exc.value, text, at, fragment)
    # The same text as one side of an equation: the offset is in the equation's text.
    equation = f"y = {text}"
    if "=" in text:  # sin(x=1): in an equation, its '=' is the second one, and refused so
        at, fragment = text[text.index("="):], "two '='"
    with pytest.raises(ParseError) as exc:
        parse_equation(equation)
    check_refusal(exc.value, equation, at, fragment)
    assert not sentinel.exists()


def test_refused_9_9_9_is_quick():
    start = time.perf_counter()
    for text in ("9**9**9", "9^9^9^9", "(9**9)**(9**9)", "2**2**2**2**2**2", "10**400*x"):
        with pytest.raises(ParseError):
            compile_expression(text)
    assert time.perf_counter() - start < TIME_BOUND_S


def test_refused_one_megabyte():
    text = "x + " * 250_000 + "x"
    assert len(text) > 1_000_000
    start = time.perf_counter()
    with pytest.raises(ParseError) as exc:
        compile_expression(text)
    assert time.perf_counter() - start < TIME_BOUND_S
    err = exc.value
    assert "longer than the limit" in err.reason and err.offset == MAX_LENGTH
    assert len(str(err)) < 300 and len(err.one_line()) < 300  # an excerpt, not the megabyte
    assert set(str(err).splitlines()[2].strip()) == {"^"}
    with pytest.raises(ParseError, match="longer than the limit"):
        parse_equation(text + " = 1")


def test_refused_equation_without_variable():
    for text in ("1 + 2 = 3", "pi = 3.14159", "sin(0) == 0"):
        with pytest.raises(ParseError) as exc:
            parse_equation(text)
        assert "no variable" in exc.value.reason
        assert exc.value.offset == 0 and exc.value.length == len(text)
        assert str(exc.value).splitlines()[2].strip() == "^" * len(text)


def test_refused_two_equals_signs():
    text = "x + y = 1 = z"
    with pytest.raises(ParseError) as exc:
        parse_equation(text)
    check_refusal(exc.value, text, "= z", "two '='")
    with pytest.raises(ParseError) as exc:
        parse_equation("x == y == 1")
    assert exc.value.offset == 7
    with pytest.raises(ParseError, match="needs '='"):
        parse_equation("x + y")


@pytest.mark.parametrize("text, fragment", [
    ("x/0", "division by zero"), ("x / (1 - 1)", "division by zero"),
    ("1/0 + x", "division by zero"), ("x/(0/0)", "division by zero"),
    ("exp(1000) * x", "cannot be computed"),
    ("log(0) + x", "cannot be computed"), ("(-8)^(1/3) + x", "cannot be computed"),
    ("1e200 * x", "constant larger"), ("1" + "0" * 400 + " * x", "constant larger"),
    ("1" * 5000, ("not an expression", "constant larger")), ("x^1001", "exponent larger"),
    ("", "empty"), ("   ", "empty"), ("x # comment", "not part of the language"),
    ("x \\\n + 1", "not part of the language"), ("x\n+1", "not part of the language"),
    ("x + \u00e9", "not part of the language"), ("sin", "needs an argument"),
    ("sin(x, y)", "exactly one argument"), ("sin(*x)", "exactly one argument"),
    ("__x + 1", "not accepted"), ("True * x", "bool constants"), ("1j * x", "complex"),
    ("x if x else 1", "conditional"), ("x < 1", "comparisons"), ("x % 2", "Mod"),
    ("(x := 1)", "assignment"), ("x @ x", "MatMult"), ("f'{x}'", "strings"),
    ("1if x else 2", "conditional"), ("(" * 70 + "x" + ")" * 70, "nest deeper"),
    ("-" * 500 + "x", "deeper"), ("+".join(["x"] * 450), "deeper"),
    ("x = 1", "not an expression"),
])
def test_more_refusals(text, fragment):
    with pytest.raises(ParseError) as exc:
        compile_expression(text)
    fragments = fragment if isinstance(fragment, tuple) else (fragment,)
    assert any(f in exc.value.reason for f in fragments), exc.value.reason
    assert 0 <= exc.value.offset <= len(text)


def test_division_by_zero_is_refused_in_equations_too():
    # The linear analysis divided by the constant: a ZeroDivisionError escaped parse_system.
    for text in ("x/0 = 1", "x/(2-2) = y", "0 = A/(0/0)"):
        with pytest.raises(ParseError, match="division by zero"):
            parse_system([text])


def test_many_carets_parse_quickly():
    # A long text with many '^' (offsets map back through every caret).
    def tree(depth):
        return "x^y" if depth == 0 else f"({tree(depth - 1)}+{tree(depth - 1)})"

    text = tree(10)
    assert 5000 < len(text) <= MAX_LENGTH
    start = time.perf_counter()
    compile_expression(text)
    with pytest.raises(ParseError):
        compile_expression(text + ")")
    assert time.perf_counter() - start < TIME_BOUND_S


def test_non_text_is_refused():
    for value in (None, 3, b"x"):
        with pytest.raises(ParseError):
            compile_expression(value)
        with pytest.raises(ParseError):
            parse_equation(value)


# -- the same refusals through the command line -------------------------------------------------

CLI_REFUSED = {name: (template, at) for name, (template, at, _) in REFUSED.items()}
CLI_REFUSED["one megabyte"] = ("x + " * 250_000 + "x", None)


@pytest.mark.parametrize("name", CLI_REFUSED)
def test_refused_by_grad(name, capsys, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    template, at = CLI_REFUSED[name]
    text = template.format(p=payload(sentinel)) if at else template
    line = assert_usage_error(*run_main(capsys, "grad", text, "--at", "x=1"))
    assert "column" in line and ">>" in line and "<<" in line
    if at is not None and len(text) < 60:
        assert f">>{at[0]}" in line, line
    assert not sentinel.exists()


@pytest.mark.parametrize("name", CLI_REFUSED)
def test_refused_by_solve(name, capsys, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    template, at = CLI_REFUSED[name]
    text = template.format(p=payload(sentinel)) if at else template
    line = assert_usage_error(*run_main(capsys, "solve", "x + y = 1", f"y = {text}"))
    assert "column" in line and ">>" in line and "<<" in line
    if at is not None and "=" in text:
        assert ">>=<<" in line and "two '='" in line, line
    elif at is not None and len(text) < 60:
        assert f">>{at[0]}" in line, line
    assert not sentinel.exists()


@pytest.mark.parametrize("equation, at", [
    ("1 + 2 = 3", ">>1 + 2 = 3<<"), ("x = 1 = 2", "x = 1 >>=<< 2"),
    ("x/0 = 1", "x/>>0<<"), ("(x = 1", ">>(<<x"), ("x) = 1", "x>>)<<"),
])
def test_refused_equations_by_solve(equation, at, capsys):
    line = assert_usage_error(*run_main(capsys, "solve", equation))
    assert at in line, line


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "optbench", *argv], capture_output=True,
                          text=True, timeout=120, cwd=os.getcwd())


@pytest.mark.parametrize("argv", [
    ("grad", "PAYLOAD", "--at", "x=1"),
    ("solve", "x = PAYLOAD"),
    ("solve", "x = 1 = 2"),
    ("grad", "1if x else 2", "--at", "x=1"),  # the tokenizer's SyntaxWarning stays silent
])
def test_refused_in_a_subprocess(argv, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    argv = [a.replace("PAYLOAD", payload(sentinel)) for a in argv]
    proc = run_cli(*argv)
    assert_usage_error(proc.returncode, proc.stdout, proc.stderr)
    assert not sentinel.exists()


# -- hypothesis: gradients of random expressions agree across backends --------------------------

LEAVES = st.sampled_from(["x", "y", "x", "y", "1", "2", "3", "0.5", "1.5", "pi", "e"])


def _extend(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(
        lambda t: f"({t[0]}) {t[1]} ({t[2]})")
    # Division by something bounded away from zero; exp of bounded arguments; log and sqrt
    # of positive ones. Unbounded growth is left to assume() in the test.
    division = st.tuples(children, children).map(lambda t: f"({t[0]}) / (1 + ({t[1]})^2)")
    power = st.tuples(children, st.integers(1, 4), st.sampled_from(["^", "**"])).map(
        lambda t: f"({t[0]}){t[2]}{t[1]}")
    minus = children.map(lambda a: f"-{a}" if a.isidentifier() else f"-({a})")
    function = st.tuples(st.sampled_from([
        "sin({})", "cos({})", "tanh({})", "exp(sin({}))", "exp(tanh({}))",
        "sqrt(1 + ({})^2)", "log(2 + sin({}))", "tan(0.5*tanh({}))", "sinh(tanh({}))",
        "cosh(tanh({}))"]), children).map(lambda t: t[0].format(t[1]))
    return st.one_of(binary, binary, division, power, minus, function, function)


def _with_a_variable(text: str) -> str:
    return text if re.search(r"\b[xy]\b", text) else f"x * ({text})"


EXPRESSIONS = st.recursive(LEAVES, _extend, max_leaves=16).map(_with_a_variable)
COORDINATES = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)
BACKENDS = ["torch", "autograd", "fd"]


def fd_error_bound(text: str, names, point: np.ndarray, f: float) -> float:
    """An estimate of central differences' own error, per coordinate (their largest):
    truncation h²/6·|∂³f/∂x_i³| (the third derivative from torch) plus rounding eps·|f|/h."""
    import torch

    expr = compile_expression(text)
    eps = np.finfo(np.float64).eps
    worst = 0.0
    for i in range(len(names)):
        x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
        d = expr([x[j] for j in range(len(names))], torch)
        for _ in range(3):
            if not (torch.is_tensor(d) and d.requires_grad):
                d = 0.0  # a polynomial of low degree: its next derivative is 0
                break
            (grad,) = torch.autograd.grad(d, x, create_graph=True)
            d = grad[i]
        h = eps ** (1 / 3) * max(1.0, abs(point[i]))
        third = abs(float(d.detach())) if torch.is_tensor(d) else abs(d)
        worst = max(worst, h * h / 6 * third + eps * max(1.0, abs(f)) / h)
    return worst


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS, COORDINATES, COORDINATES)
def test_gradients_of_random_expressions_agree(text, x, y):
    expr = compile_expression(text)
    at = {n: v for n, v in (("x", x), ("y", y)) if n in expr.variables}
    names = list(expr.variables)
    point = np.array([at[n] for n in names])
    with np.errstate(all="ignore"):
        f_numpy = float(expr(list(point), np))
    assume(math.isfinite(f_numpy) and abs(f_numpy) <= 1e4)
    result = gradient(text, at, backend=BACKENDS)
    assert [r["backend"] for r in result["results"]] == BACKENDS
    by = {r["backend"]: r for r in result["results"]}
    g_torch = np.array([by["torch"]["grad"][n] for n in names])
    assume(np.all(np.isfinite(g_torch)) and np.max(np.abs(g_torch)) <= 1e6)
    scale = max(1.0, float(np.max(np.abs(g_torch))))
    for name in BACKENDS:
        assert by[name]["value"] == pytest.approx(f_numpy, rel=1e-10, abs=1e-10), name
    g_autograd = np.array([by["autograd"]["grad"][n] for n in names])
    assert np.max(np.abs(g_autograd - g_torch)) <= TOL_AUTODIFF * scale, (g_autograd, g_torch)
    # fd meets 1e-7 wherever its own truncation and rounding allow it (not at a point where
    # sin((3x)^4) oscillates faster than any step h resolves): skip the others.
    assume(fd_error_bound(text, names, point, f_numpy) <= 1e-8 * scale)
    g_fd = np.array([by["fd"]["grad"][n] for n in names])
    assert np.max(np.abs(g_fd - g_torch)) <= TOL_FD * scale, (g_fd, g_torch)


# -- fuzz: the parser raises only ParseError, quickly -------------------------------------------

TOKENS = [
    "x", "y", "A", "_b", "__x", "1", "0", "2.5", "1e3", "9", "1e999", "1j", "0x1F", "10" * 30,
    "9" * 320,
    "+", "-", "*", "/", "^", "**", "//", "%", "@", "~", "(", ")", "(", ")", "[", "]", "{", "}",
    ",", ".", ":", ";", "=", "==", "<", "!", " ", "  ", "'", '"', "\\", "#", "\n", "\t",
    "sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sinh", "cosh", "pi", "e",
    "sin(", "exp(", "log(", "lambda", "for", "in", "if", "else", "not", "and", "None", "True",
    "__import__", "os", "system", "yield", "await", "f'", "b'", ":=", "...", "*x", "**x",
]
LANGUAGE_TEXT = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
# Well-formed expressions of any values (0, huge, negative under log and sqrt), then
# equations of two of them: reaches folding, the linear analysis and the evaluation limits.
ANY_EXPRESSION = st.recursive(
    st.sampled_from(["x", "y", "0", "1", "-1", "2", "0.5", "1e308", "1e-308", "pi", "e"]),
    lambda c: st.one_of(
        st.tuples(c, st.sampled_from(["+", "-", "*", "/", "^", "**"]), c).map("".join),
        st.tuples(c, st.sampled_from(["+", "-", "*", "/", "^"]), c).map(
            lambda t: f"({t[0]}){t[1]}({t[2]})"),
        st.tuples(st.sampled_from(["sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh",
                                   "sinh", "cosh", "-", "+", ""]), c).map(
            lambda t: f"{t[0]}({t[1]})")),
    max_leaves=8)
EQUATIONS = st.tuples(ANY_EXPRESSION, st.sampled_from(["=", "==", " = "]), ANY_EXPRESSION).map(
    "".join)
TEXTS = st.one_of(st.text(max_size=80), LANGUAGE_TEXT,
                  st.text(alphabet="xy12.e+-*/^()= ", max_size=40), ANY_EXPRESSION, EQUATIONS)


# 2,000 texts in the test command (about 8 s on two cores); OPTBENCH_FUZZ_EXAMPLES=10000 for
# a deeper search (about 40 s), as before a parser change.
FUZZ_EXAMPLES = int(os.environ.get("OPTBENCH_FUZZ_EXAMPLES", "2000"))


@pytest.mark.slow
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_parser_raises_only_parse_error(text):
    for parse in (compile_expression, parse_equation, lambda t: parse_system([t])):
        seconds = _parse_checked(parse, text)
        if seconds >= TIME_BOUND_S:
            # A pathological text is slow every time; a pause of the machine (a collection,
            # a stolen virtual CPU) is not: only a second slow parse of the same text fails.
            seconds = _parse_checked(parse, text)
        assert seconds < TIME_BOUND_S, text


def _parse_checked(parse, text) -> float:
    """Parse `text`, check that only ParseError escapes, and return the seconds it took."""
    start = time.perf_counter()
    # No warning either: printed, it would be a second line on the command line's stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            parse(text)
        except ParseError as err:
            assert 0 <= err.offset <= len(text)
            str(err), err.one_line()  # the messages themselves never fail
    return time.perf_counter() - start
