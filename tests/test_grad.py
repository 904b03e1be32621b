"""`optbench grad`: value and gradient of an expression at a point, on each backend.

References by hand: d(x·x)/dx = 2x, so 12.96 and 7.2 at x = 3.6; x·y + x² at (1, 2) is 3 with
gradient (y + 2x, x) = (4, 1); exp(x)·sin(y) has gradient (exp(x)·sin(y), exp(x)·cos(y)).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from clitools import assert_usage_error, run_main
from optbench.errors import UsageError
from optbench.expr import ParseError
from optbench.gradient import gradient, parse_point

CPU_BACKENDS = ["autograd", "fd", "torch"]
TOL = {"torch": 1e-12, "autograd": 1e-12, "fd": 1e-6}


def grad_json(capsys, *argv: str) -> dict:
    code, out, err = run_main(capsys, "grad", *argv, "--format", "json")
    assert code == 0, (code, err)
    return json.loads(out)


def test_x_times_x_at_3_6(capsys):
    result = grad_json(capsys, "x*x", "--at", "x=3.6", "--backend", "all")
    assert set(result) == {"expression", "at", "results"}
    assert result["expression"] == "x*x"
    assert result["at"] == {"x": 3.6}
    by = {r["backend"]: r for r in result["results"]}
    assert set(CPU_BACKENDS) <= set(by)  # every available backend
    for name, r in by.items():
        assert set(r) == {"backend", "value", "grad"}
        assert r["value"] == pytest.approx(12.96, rel=1e-15)
        assert set(r["grad"]) == {"x"}
        assert r["grad"]["x"] == pytest.approx(7.2, rel=TOL.get(name, 1e-12), abs=0), name
    assert abs(by["fd"]["grad"]["x"] - 7.2) <= 1e-6


def test_x_times_x_table(capsys):
    code, out, err = run_main(capsys, "grad", "x*x", "--at", "x=3.6", "--backend", "all")
    assert code == 0, err
    assert "d/dx" in out and "x*x at x=3.6" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[4:] if line}
    for name in CPU_BACKENDS:
        value, derivative = map(float, rows[name])
        assert value == pytest.approx(12.96, rel=1e-12)
        assert derivative == pytest.approx(7.2, abs=TOL[name])


@pytest.mark.parametrize("at", [["x=1,y=2"], ["x=1", "y=2"], ["y=2,x=1"], [" x = 1 ,y=2"]])
def test_several_variables(at, capsys):
    argv = [a for item in at for a in ("--at", item)]
    result = grad_json(capsys, "x*y + x^2", *argv, "--backend", "all")
    assert list(result["at"]) == ["x", "y"]  # order of the expression's variables
    assert result["at"] == {"x": 1.0, "y": 2.0}
    for r in result["results"]:
        assert r["value"] == pytest.approx(3.0, rel=1e-14)
        assert list(r["grad"]) == ["x", "y"]
        tol = TOL.get(r["backend"], 1e-12)
        assert r["grad"]["x"] == pytest.approx(4.0, abs=tol)
        assert r["grad"]["y"] == pytest.approx(1.0, abs=tol)


def test_one_backend_and_table_columns(capsys):
    result = grad_json(capsys, "exp(x)*sin(y)", "--at", "x=0.5,y=-1.25", "--backend", "autograd")
    (r,) = result["results"]
    assert r["backend"] == "autograd"
    assert r["value"] == pytest.approx(math.exp(0.5) * math.sin(-1.25), rel=1e-15)
    assert r["grad"]["x"] == pytest.approx(math.exp(0.5) * math.sin(-1.25), rel=1e-14)
    assert r["grad"]["y"] == pytest.approx(math.exp(0.5) * math.cos(-1.25), rel=1e-14)
    code, out, _ = run_main(capsys, "grad", "exp(x)*sin(y)", "--at", "x=0.5,y=-1.25",
                            "--backend", "fd")
    assert code == 0 and "d/dx" in out and "d/dy" in out and "fd" in out


def test_python_api():
    result = gradient("x*x", {"x": 3.6}, backend=["torch", "fd"])
    assert [r["backend"] for r in result["results"]] == ["torch", "fd"]
    assert result["skipped"] == []
    assert result["results"][0]["grad"]["x"] == 7.2
    assert parse_point(["x=1,y=2", "z=-3e-1"]) == {"x": 1.0, "y": 2.0, "z": -0.3}


@pytest.mark.parametrize("argv, fragments", [
    (["x*y", "--at", "x=1"], ["no value for y", "--at y="]),
    (["x", "--at", "x=1,y=2"], ["y is not a variable", "variables: x"]),
    (["x", "--at", "x=1", "--at", "z=0"], ["z is not a variable"]),
    (["x", "--at", "x"], ["'x'", "name=number"]),
    (["x", "--at", "x=abc"], ["'x=abc'", "name=number"]),
    (["x", "--at", "=1"], ["'=1'"]),
    (["x", "--at", "x=1,"], ["name=number"]),
    (["x", "--at", "1=1"], ["'1=1'"]),
    (["x", "--at", "x=nan"], ["'x=nan'"]),
    (["x", "--at", "x=inf"], ["'x=inf'"]),
    (["x", "--at", "x=1", "--at", "x=2"], ["x twice"]),
    (["x"], ["--at"]),  # required
    (["2 + 3", "--at", "x=1"], ["no variable"]),
    (["x", "--at", "x=1", "--backend", "nope"], ["'nope'"]),
    (["x.y", "--at", "x=1"], ["attribute access", ">>x.y<<"]),
])
def test_bad_grad_input(argv, fragments, capsys):
    assert_usage_error(*run_main(capsys, "grad", *argv), *fragments)


def test_bad_input_from_the_api():
    with pytest.raises(UsageError, match="no value for y"):
        gradient("x + y", {"x": 1.0})
    with pytest.raises(ParseError):
        gradient("x +", {"x": 1.0})
    with pytest.raises(UsageError, match="dtype"):
        gradient("x", {"x": 1.0}, dtype="float16")


def test_the_default_answer_needs_neither_torch_nor_jax():
    """`grad "x*x" --at x=3.6` took ~10 s: every backend, jax included, was imported and
    compiled. By default it now asks autograd and fd (two independent methods), so nothing
    heavier than autograd is imported; `--backend all` keeps the full comparison."""
    code = ("import json, sys\n"
            "from optbench.cli.main import main\n"
            "try:\n"
            "    main(['grad', 'x*x', '--at', 'x=3.6', '--format', 'json'])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "heavy = sorted(m for m in ('torch', 'jax', 'jaxlib', 'scipy') if m in sys.modules)\n"
            "print(json.dumps(heavy), file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["backend"] for r in result["results"]] == ["autograd", "fd"]
    assert [r["grad"]["x"] for r in result["results"]] == pytest.approx([7.2, 7.2], rel=1e-9)
    assert json.loads(out.stderr.strip().splitlines()[-1]) == []


def test_backend_lists_and_all_still_compare(capsys):
    code, out, err = run_main(capsys, "grad", "x*x", "--at", "x=3.6", "--backend",
                              "fd,autograd", "--format", "json")
    assert code == 0, err
    assert [r["backend"] for r in json.loads(out)["results"]] == ["fd", "autograd"]
