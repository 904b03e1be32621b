"""Bounded inputs (issue 12, items 15, 16, 17, 19): what a user hands in is refused in one
line, exit 2, before it costs the machine memory or time.

Hostile inputs run the command line in a subprocess under RLIMIT_AS (a regression then fails
with a MemoryError instead of eating the machine) and a wide timeout (a hang detector, not a
speed test; the refusals take about 0.6 s of CPU, the interpreter's start included). They
use the fd backend: torch and jax map more address space than the limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import optbench
from clitools import assert_usage_error
from optbench.errors import UsageError
from optbench.expr import ParseError, parse_system
from optbench.expr.equations import MAX_EQUATIONS, MAX_SYSTEM_LENGTH
from optbench.expr.linear import EXACT_BUDGET, analyse

MiB = 1 << 20
ADDRESS_SPACE = 400 * MiB  # python, numpy and optbench on fd need about 200 MiB
HANG_S = 120  # a hang detector: the refusals take well under a second


# The cap is set by the child itself, before it imports anything: a preexec_fn would run
# Python between fork and exec, which a test process with JAX's threads warns against.
CAPPED = ("import resource, runpy, sys\n"
          "limit = int(sys.argv.pop(1))\n"
          "if limit:\n"
          "    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
          "sys.argv[0] = 'optbench'\n"
          "runpy.run_module('optbench', run_name='__main__', alter_sys=True)\n")


def run_capped(argv: list[str], memory: int | None, timeout: float
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CAPPED, str(memory or 0), *argv],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def run_bounded(*argv: str, memory: int | None = ADDRESS_SPACE, timeout: float = HANG_S
                ) -> tuple[int, str, str]:
    """`optbench ARGV` in a subprocess whose address space is capped at `memory`."""
    proc = run_capped(list(argv), memory, timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def sparse_8gb(tmp_path):
    """An 8 GiB file that takes no disk: reading it whole would exhaust memory."""
    path = tmp_path / "huge.toml"
    with open(path, "wb") as handle:
        handle.truncate(8 << 30)
    return str(path)


# -- item 15: every file a user hands in is size-checked before it is read ---------------------

@pytest.mark.parametrize("argv, fragments", [
    (("solve", "--file", "/dev/zero"), ("/dev/zero", "not a regular file")),
    (("run", "--problem", "expr", "-P", "file=/dev/zero"), ("/dev/zero",)),
    (("run", "--problem", "regression", "-P", "data=/dev/zero"), ("/dev/zero",)),
])
def test_device_files_are_refused(argv, fragments):
    assert_usage_error(*run_bounded(*argv, "--backend", "fd"), *fragments)


@pytest.mark.parametrize("argv, kind, limit", [
    (("solve", "--file", "{f}"), "equations", "1 MiB"),
    (("run", "--problem", "expr", "-P", "file={f}"), "equations", "1 MiB"),
    (("run", "--problem", "regression", "-P", "data={f}"), "data", "512 MiB"),
])
def test_an_8gb_sparse_file_is_refused_by_its_size(argv, kind, limit, sparse_8gb):
    argv = [a.format(f=sparse_8gb) for a in argv]
    assert_usage_error(*run_bounded(*argv, "--backend", "fd"), sparse_8gb,
                       str(8 << 30), f"limit for {kind} files is {limit}")


def test_toml_nested_too_deeply_is_refused(tmp_path):
    # tomllib recurses: a RecursionError ended as exit 1.
    path = tmp_path / "nested.toml"
    path.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert_usage_error(*run_bounded("solve", "--file", str(path), "--backend", "fd"),
                       str(path), "nest too deeply")


def test_a_csv_line_longer_than_a_mebibyte_is_refused_as_it_is_read(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("1,2\n3,4\n" + "5" * (3 << 20))  # one 3 MiB line, no line break
    assert_usage_error(*run_bounded("run", "--problem", "regression", "-P", f"data={path}",
                                    "--backend", "fd", memory=300 * MiB),
                       "line 3 is longer than")


# -- item 16: the whole system is bounded, and its analysis too --------------------------------

def deep_equation(k: int, size: int = 9000) -> str:
    """About `size` characters whose every node lies deep in the tree (a unary spine over a
    long sum): parsing cost that grows with size × depth shows here."""
    names = [f"v{k}_{i}" for i in range(20)]
    group = "(" + " + ".join(names) + ")"
    body: list[str] = []
    while 200 + len(" + ".join(body)) + 2 * len(group) < size:
        body.append(group)
    return f"1 = {'-' * 200}({' + '.join(body)})"


def test_ten_equations_of_9kb_are_refused_as_a_whole():
    equations = [deep_equation(k) for k in range(10)]
    assert sum(map(len, equations)) > MAX_SYSTEM_LENGTH
    line = assert_usage_error(*run_bounded("solve", *equations, "--backend", "fd"),
                              f"limit is {MAX_SYSTEM_LENGTH}")
    assert len(line) < 400  # an excerpt, not the text


def count_calls(fn, *args) -> int:
    """Python function calls made by fn(*args): a deterministic measure of work."""
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        calls += event == "call"

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return calls


def test_parsing_work_grows_with_the_text_not_with_its_depth():
    # Before: every node re-walked its subtree (variables_of), so 10 deep 9 KB equations
    # took 36 s. The work per character must not depend on how deep the nodes lie.
    shallow = [f"1 = ({' + '.join(f'v{i}' for i in range(40))})" for _ in range(4)]
    deep = [deep_equation(k, 4500) for k in range(4)]
    per_char = [count_calls(parse_system, eqs) / sum(map(len, eqs)) for eqs in (shallow, deep)]
    assert per_char[1] < 2 * per_char[0], per_char


def write_toml_equations(path, equations) -> str:
    path.write_text("equations = [\n" + ",\n".join(json.dumps(e) for e in equations) + "]\n")
    return str(path)


def test_100000_trivial_equations_are_refused(tmp_path):
    # Before: the SVD made its full 100000×100000 U (74.5 GiB).
    path = write_toml_equations(tmp_path / "many.toml", ["x = 1"] * 100_000)
    assert_usage_error(*run_bounded("solve", "--file", path, "--backend", "fd"),
                       "100000 equations", f"limit is {MAX_EQUATIONS}")


def test_15000_equations_on_the_command_line_are_refused():
    equations = [f"x{i % 200} + y = {i}" for i in range(15_000)]
    assert_usage_error(*run_bounded("solve", *equations, "--backend", "fd"),
                       "15000 equations", f"limit is {MAX_EQUATIONS}")


def test_the_largest_accepted_system_is_analysed_within_bounds():
    # MAX_EQUATIONS equations over 200 unknowns (a tall sparse system): accepted, analysed by
    # the SVD, and the exact general solution skipped with a note (it would cost minutes).
    n = 200
    equations = [f"x{i % n} + 2*x{(i * 7 + 1) % n} = {i % 10}" for i in range(MAX_EQUATIONS)]
    code, out, err = run_bounded("solve", *equations, "--variables",
                                 ",".join(f"x{i}" for i in range(n)), "--backend", "fd",
                                 "--steps", "1", "--format", "json")
    assert code == 0, err
    (record,) = json.loads(out)
    analysis = record["analysis"]
    matrix = np.zeros((MAX_EQUATIONS, n))
    for i in range(MAX_EQUATIONS):
        matrix[i, i % n] += 1
        matrix[i, (i * 7 + 1) % n] += 2
    rhs = np.array([i % 10 for i in range(MAX_EQUATIONS)], dtype=float)
    expected, *_ = np.linalg.lstsq(matrix, rhs, rcond=None)
    np.testing.assert_allclose(analysis["min_norm"], expected, atol=1e-8)
    assert analysis["rank"] == np.linalg.matrix_rank(matrix)
    assert analysis["general"] is None and "not spelled out" in analysis["note"]


def test_exact_elimination_beyond_its_budget_is_skipped_with_a_note():
    rng = np.random.default_rng(0)
    n = 60  # dense 60×60 with short decimals: about 5 s of exact fractions before
    assert n * (n + 1) * n > EXACT_BUDGET
    matrix, rhs = np.round(rng.standard_normal((n, n)), 3), np.round(rng.standard_normal(n), 2)
    a = analyse(matrix, rhs, [f"x{i}" for i in range(n)])
    assert a["general"] is None
    assert f"{n}×{n}" in a["note"] and "min_norm" in a["note"]
    np.testing.assert_allclose(a["min_norm"], np.linalg.solve(matrix, rhs), rtol=1e-8)
    small = analyse(np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([3.0, 1.0]), ["x", "y"])
    assert small["general"] == "x = 2, y = 1" and "note" not in small


def test_the_svd_of_a_tall_system_is_its_thin_one():
    # 20000 copies of x = 1 (under RLIMIT_AS: the full U alone would be 3 GiB).
    code = (
        "import resource\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))\n"
        "import numpy as np\n"
        "from optbench.expr.linear import analyse\n"
        "a = analyse(np.ones((20000, 1)), np.ones(20000), ['x'])\n"
        "assert a['rank'] == 1 and abs(a['min_norm'][0] - 1) < 1e-12, a\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=HANG_S, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr


def test_limits_apply_to_the_python_api():
    with pytest.raises(ParseError, match=f"limit is {MAX_EQUATIONS}"):
        parse_system(["x = 1"] * (MAX_EQUATIONS + 1))


# -- item 17: what would not fit in memory is refused before it is allocated -------------------

def test_starts_that_would_not_fit_are_refused():
    # 256 unknowns × 1,000,000 starts: 2 GB for the starting points alone.
    equation = " + ".join(f"x{i}" for i in range(256)) + " = 1"
    line = assert_usage_error(*run_bounded("solve", equation, "--starts", "1000000",
                                           "--backend", "fd"),
                              "--starts 1000000", "256 unknowns", "memory")
    assert "GiB" in line


def test_n_samples_that_would_not_fit_are_refused():
    line = assert_usage_error(*run_bounded("run", "--problem", "regression", "-P",
                                           "n_samples=1000000000", "--backend", "fd"),
                              "n_samples=1000000000", "memory")
    assert "GiB" in line


def test_what_fits_still_runs():
    code, _, err = run_bounded("run", "--problem", "regression", "-P", "n_samples=200000",
                                 "--backend", "fd", "--steps", "2", "--format", "json")
    assert code == 0, err
    code, _, err = run_bounded("solve", "x*y = 6", "x + y = 5", "--starts", "5000",
                                 "--backend", "fd", "--steps", "2", "--format", "json")
    assert code == 0, err


def test_memory_estimates_are_refused_through_the_api(monkeypatch):
    from optbench import memory
    from optbench.solving import solve_equations

    monkeypatch.setattr(memory, "available", lambda: 10 * MiB)
    with pytest.raises(UsageError, match=r"--starts 100000 .* memory"):
        solve_equations(["x*y = 6", "x + y = 5"], backend="fd", starts=100_000)


def test_data_points_beyond_the_memory_available_are_refused_while_read(tmp_path,
                                                                         monkeypatch):
    from optbench import memory
    from optbench.problems.regression import bytes_per_point

    path = tmp_path / "points.csv"
    path.write_text("".join(f"{i},{2 * i}\n" for i in range(1000)))
    monkeypatch.setattr(memory, "available", lambda: 100 * bytes_per_point(2))
    with pytest.raises(UsageError, match=r"holds more than 100 points.*memory available"):
        optbench.solve(problem="regression", backend="fd", steps=1,
                       problem_params={"data": str(path)})
    monkeypatch.setattr(memory, "available", lambda: 1000 * bytes_per_point(2))
    record = optbench.solve(problem="regression", backend="fd", steps=1,
                            problem_params={"data": str(path)})
    np.testing.assert_allclose(record.reference["x"], [0, 2, 0], atol=1e-9)


def test_a_puzzle_matrix_is_bounded_like_a_system():
    from optbench.problems.puzzle import parse_matrix

    with pytest.raises(UsageError, match=f"limits are {MAX_EQUATIONS} rows"):
        parse_matrix(";".join(["1,2"] * (MAX_EQUATIONS + 1)))


# -- item 19: overflow and non-finite numbers ---------------------------------------------------

def test_a_coefficient_that_overflows_is_refused():
    code, out, err = run_bounded("solve", "x*1e100*1e100*1e100*1e100 = 1", "--backend", "fd")
    assert_usage_error(code, out, err, "overflow the float range")
    for text in ("x*1e100*1e100*1e100*1e100 = 1", "x/1e-300/1e-300 = 1",
                 "x*1e100*1e100*1e100*1e8 + x*1e100*1e100*1e100*1e8 = y",  # the sum's
                 "x*y*1e100*1e100*1e100*1e100 = 1", "exp(x)*1e100*1e100*1e100*1e100 = 1"):
        with pytest.raises(ParseError, match=r"overflows? the float range"):
            parse_system([text])


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_grad_json_is_strict_with_a_message_and_no_warnings():
    # Every backend: torch and jax need more address space than the cap above.
    code, out, err = run_bounded("grad", "1/x", "--at", "x=0", "--format", "json",
                                 "--backend", "all", memory=None)
    assert code == 0, err
    result = strict_json(out)
    assert "Warning" not in err and "warn" not in err.lower(), err
    assert not [line for line in err.splitlines() if not line.startswith("optbench: skipping")]
    by = {r["backend"]: r for r in result["results"]}
    for name in ("torch", "autograd"):
        r = by[name]
        assert r["value"] is None and r["grad"]["x"] is None, r
        assert "not finite" in r["message"] and "inf" in r["message"], r
    for r in result["results"]:  # a message wherever a number is missing
        missing = r["value"] is None or any(v is None for v in r["grad"].values())
        assert missing == bool(r.get("message")), r


def test_grad_table_notes_non_finite_values():
    code, out, err = run_bounded("grad", "1/x", "--at", "x=0", "--backend", "autograd")
    assert code == 0, err
    assert "RuntimeWarning" not in err
    assert "autograd" in out and "not finite" in err


def test_a_csv_field_over_the_csv_limit_is_refused_naming_its_line(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("x,y\n1,2\n3," + "9" * 140_000 + "\n")
    assert_usage_error(*run_bounded("run", "--problem", "regression", "-P", f"data={path}",
                                    "--backend", "fd"),
                       f"data={path}", "line 3", "131072")


def test_a_csv_with_a_nul_byte_is_refused(tmp_path):
    path = tmp_path / "points.csv"
    path.write_bytes(b"1,2\n3,\x004\n")
    assert_usage_error(*run_bounded("run", "--problem", "regression", "-P", f"data={path}",
                                    "--backend", "fd"), "line 2")


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="Linux: reads /proc/meminfo")
def test_available_memory_is_known():
    from optbench import memory

    assert 0 < memory.available() < 1 << 50
