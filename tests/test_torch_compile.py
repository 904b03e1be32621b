"""`optbench run --compile` on the torch backend: torch.compile of the optimizer's own steps.

The compiled loop must follow the step-by-step trajectory (float64: to rounding differences
of fused kernels), count its evaluations, and report divergence at its step.
"""

import numpy as np
import pytest

import optbench
from clitools import assert_usage_error, run_main

pytestmark = pytest.mark.slow  # each test compiles a graph (seconds)


@pytest.mark.parametrize("optimizer, options", [
    ("nadam", {}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
])
def test_compiled_loop_follows_the_step_by_step_run(optimizer, options):
    common = dict(problem="regression", backend="torch", optimizer=optimizer,
                  dtype="float64", steps=200, optimizer_params=options,
                  lr=0.01 if optimizer == "nadam" else 1e-4)
    steps = optbench.solve(**common)
    compiled = optbench.solve(compile=True, **common)
    np.testing.assert_allclose(compiled.x, steps.x, rtol=1e-10, atol=1e-12)
    assert compiled.n_evals == 200 and compiled.steps == 200
    # The compiled trace's f values are the step-by-step run's at the same steps.
    by_step = {int(k): f for k, _, f in steps.trace}
    for k, _, f in compiled.trace:
        if int(k) in by_step:
            assert f == pytest.approx(by_step[int(k)], rel=1e-9)


def test_compiled_divergence_is_reported_at_its_step():
    record = optbench.solve(problem="regression", backend="torch", optimizer="sgd", lr=1e3,
                            steps=50, compile=True)
    assert record.status == "diverged"
    assert record.steps < 50


def test_compile_refuses_optimizers_that_need_the_host(capsys):
    code, out, err = run_main(capsys, "run", "--compile", "--optimizer", "lbfgs")
    assert_usage_error(code, out, err, "lbfgs", "compiled")


def test_a_gpu_objective_goes_to_cuda_graphs_in_the_mode_the_environment_names(monkeypatch):
    # The dispatch and the mode check run before any CUDA call, so they are testable here.
    from optbench.backends import torch_compiled

    calls = []
    monkeypatch.setattr(torch_compiled, "graphed_loop",
                        lambda objective, method, steps, x0, mode: calls.append(mode))

    class OnGPU:
        device = "cuda"

    monkeypatch.delenv("OPTBENCH_CUDA_GRAPHS", raising=False)
    torch_compiled.compiled_loop(OnGPU(), None, 10, None)
    monkeypatch.setenv("OPTBENCH_CUDA_GRAPHS", "inductor")
    torch_compiled.compiled_loop(OnGPU(), None, 10, None)
    assert calls == ["eager", "inductor"]


def test_an_unknown_cuda_graph_mode_is_a_usage_error():
    from optbench.backends.torch_compiled import graphed_loop
    from optbench.errors import UsageError

    with pytest.raises(UsageError, match="OPTBENCH_CUDA_GRAPHS='fast'; accepted: eager, inductor"):
        graphed_loop(None, None, 10, None, mode="fast")


@pytest.mark.parametrize("steps", ["2000000", str(10**12)])
def test_compile_honours_max_time_whatever_the_step_count(steps):
    """`--compile` ran every step whatever --max-time said (2,000,000 steps: tens of
    seconds; 10^12: for ever). In a subprocess, with a timeout as hang detector."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "optbench", "run", "--backend", "torch",
                           "--compile", "--steps", steps, "--max-time", "0.5", "--tol", "0",
                           "--format", "json"], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    (r,) = json.loads(done.stdout)
    assert r["status"] == "timeout", r["message"]
    assert 0 < r["steps"] == r["n_evals"] < int(steps) and r["steps"] % 10 == 0
    assert 0.5 <= r["time_s"] < 60  # the upper bound: a hang detector


def test_a_loop_in_chunks_is_the_loop_in_one_go():
    from optbench import api
    from optbench.backends import torch_compiled

    p = api.plan("regression", "torch", "nadam", steps=200, dtype="float64")

    def fresh():
        obj = p.backends[0].prepare(p.problem, p.instance.data, dtype="float64", device="cpu")
        return obj, torch_compiled.compiled_loop(obj, p.method, 200,
                                                 obj.from_numpy(p.instance.x0))

    obj, loop = fresh()
    parts = [loop(n) for n in (1, 45, 500)]  # whole calls of 10 steps, never past the end
    assert [len(fs) for _, fs in parts] == [10, 50, 140] and obj.n_evals == 200
    assert len(loop(10)[1]) == 0
    whole_obj, whole = fresh()
    x, fs = whole()
    assert whole_obj.n_evals == 200
    np.testing.assert_array_equal(parts[-1][0].numpy(), x.numpy())
    np.testing.assert_array_equal(np.concatenate([f.numpy() for _, f in parts]), fs.numpy())
