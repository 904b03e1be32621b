"""The acceptance run: `optbench run --backend all --dtype float64 --steps 300 --seed 7
--format json`, in a subprocess so that stdout is exactly what a user's shell would get.

Final points: torch and autograd agree to 1e-12 relative (exact gradients, same arithmetic);
fd to 1e-8 relative (its gradient carries rounding error ~eps·|f|/h, relative ~1e-11 here).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from optbench import api
from optbench.core.params import resolve

# Under pytest-xdist the module's tests stay on one worker, which runs its fixtures once.
pytestmark = pytest.mark.xdist_group("agreement")

ARGS = ["run", "--backend", "all", "--dtype", "float64", "--steps", "300", "--seed", "7",
        "--format", "json"]
FIELDS = ("problem", "problem_params", "backend", "device", "dtype", "optimizer",
          "optimizer_params", "seed", "status", "message", "steps", "n_evals", "variables",
          "x0", "x", "f", "grad_norm", "reference", "time_s", "setup_s", "trace")
REQUIRED = ("torch", "autograd", "fd")
TOL = {"torch": 1e-12, "autograd": 1e-12, "fd": 1e-8}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(stdout, stderr) of the acceptance command, run once for this module."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPTBENCH_DISABLE_PLUGINS",)}
    done = subprocess.run([sys.executable, "-m", "optbench", *ARGS], capture_output=True,
                          text=True, timeout=120, env=env,
                          cwd=tmp_path_factory.mktemp("agreement"))
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.fixture(scope="module")
def records(run):
    stdout, _ = run
    # json.loads refuses anything before or after the document: stdout holds only JSON.
    data = json.loads(stdout)
    assert isinstance(data, list)
    return {r["backend"]: r for r in data}


@pytest.fixture(scope="module")
def instance(registry):
    problem = registry.get("problem", "regression")
    return problem.make(resolve(problem.params, {}, "regression"), 7)


def test_stdout_is_one_json_array_one_record_per_backend(run, registry):
    stdout, _ = run
    data = json.loads(stdout)
    names = [r["backend"] for r in data]
    available = [n for n in registry.names("backend")
                 if registry.get("backend", n).available("cpu") is None]
    assert len(names) == len(set(names)), names
    assert set(REQUIRED) <= set(names)
    assert sorted(names) == sorted(available)
    assert stdout.lstrip().startswith("[") and stdout.rstrip().endswith("]")


def test_every_field_present(records):
    for name, r in records.items():
        missing = [f for f in FIELDS if f not in r]
        assert not missing, f"{name} lacks {missing}"
        assert r["problem"] == "regression" and r["optimizer"] == "nadam"
        assert r["device"] == "cpu" and r["dtype"] == "float64" and r["seed"] == 7
        assert r["status"] == "max_steps" and r["steps"] == 300, (name, r["message"])
        assert r["n_evals"] >= 300
        assert r["variables"] == ["x^2", "x", "1"]
        assert isinstance(r["message"], str)
        assert r["optimizer_params"]["lr"] == 0.01
        assert len(r["x0"]) == len(r["x"]) == 3
        assert math.isfinite(r["f"]) and math.isfinite(r["grad_norm"])
        assert r["time_s"] >= 0 and r["setup_s"] >= 0
        assert set(r["reference"]) >= {"x", "f"}


def test_final_points_agree(records):
    x_torch = np.array(records["torch"]["x"])
    scale = np.linalg.norm(x_torch)
    for name in REQUIRED:
        rel = np.linalg.norm(np.array(records[name]["x"]) - x_torch) / scale
        assert rel <= TOL[name], f"{name}: relative distance {rel:.3g} from torch's x"
        assert abs(records[name]["f"] - records["torch"]["f"]) <= 1e-8 * records["torch"]["f"]
    # The run gets somewhere: close to the least-squares fit (the tutorial's 1, 2, 3).
    ref = np.array(records["torch"]["reference"]["x"])
    np.testing.assert_allclose(ref, [1.0, 2.0, 3.0], atol=1e-9)
    assert np.linalg.norm(x_torch - np.array(records["torch"]["x0"])) > 1.0


def test_same_seed_same_task_on_every_backend(records, instance, registry):
    # Every record starts from the x0 that the seed draws in this process too (JSON floats
    # round-trip exactly), with the same problem parameters and reference.
    for r in records.values():
        assert r["x0"] == [float(v) for v in instance.x0]
        assert r["problem_params"] == records["torch"]["problem_params"]
        assert r["reference"] == records["torch"]["reference"]
    # Planned separately for each backend, the seed gives identical data and start.
    problem = registry.get("problem", "regression")
    f_ref = float(np.mean((instance.data["y"] - instance.data["V"] @ instance.x0) ** 2))
    for name in records:
        p = api.plan("regression", name, seed=7)
        np.testing.assert_array_equal(p.instance.x0, instance.x0)
        assert set(p.instance.data) == set(instance.data)
        for key, value in instance.data.items():
            np.testing.assert_array_equal(p.instance.data[key], value)
        # ... and each backend holds that same data once prepared: same f at x0.
        obj = p.backends[0].prepare(problem, p.instance.data, dtype="float64", device="cpu")
        f, _ = obj.value_and_grad(obj.from_numpy(instance.x0))
        assert abs(float(f) - f_ref) <= 1e-12 * f_ref, name
        # The trace's first entry is f at x0.
        assert abs(records[name]["trace"][0][2] - f_ref) <= 1e-12 * f_ref, name


def test_trace(records):
    for name, r in records.items():
        trace = r["trace"]
        assert trace and all(isinstance(e, list) and len(e) == 3 for e in trace), name
        steps = [e[0] for e in trace]
        times = [e[1] for e in trace]
        assert all(isinstance(s, int) for s in steps), name
        assert steps[0] == 0 and steps[-1] == r["steps"] == 300, name
        assert all(a < b for a, b in itertools.pairwise(steps)), name
        assert times[0] >= 0 and all(a <= b for a, b in itertools.pairwise(times)), name
        assert times[-1] <= r["time_s"] + 1e-9, name
        assert all(math.isfinite(e[2]) for e in trace), name
        assert trace[-1][2] == pytest.approx(r["f"], rel=1e-12), name
        assert trace[-1][2] < trace[0][2], name
