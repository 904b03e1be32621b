"""CUDA checks: they run where a CUDA device is present and skip, saying why, elsewhere.

benchmarks/gpu_check.sh runs them on a lent GPU machine in one call.
"""

import numpy as np
import pytest

import optbench

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_matches_cpu(dtype):
    options = dict(problem="regression", backend="torch", optimizer="nadam", steps=300,
                   seed=3, dtype=dtype)
    cpu = optbench.solve(device="cpu", **options)
    gpu = optbench.solve(device="cuda", **options)
    assert gpu.device == "cuda" and gpu.status == cpu.status
    tol = 1e-10 if dtype == "float64" else 1e-3
    np.testing.assert_allclose(gpu.x, cpu.x, rtol=tol, atol=tol)


def test_cuda_keeps_data_on_device():
    from optbench.backends.pytorch import TorchBackend
    from optbench.plugins import get_registry

    problem = get_registry().get("problem", "puzzle")
    from optbench.core.params import resolve

    inst = problem.make(resolve(problem.params, {}, "puzzle"), 0)
    objective = TorchBackend().prepare(problem, inst.data, dtype="float32", device="cuda")
    x = objective.from_numpy(inst.x0)
    f, g = objective.value_and_grad(x)
    assert x.device.type == g.device.type == f.device.type == "cuda"
    assert g.dtype == torch.float32


def _has_triton():
    from optbench.backends.torch_streaming import fused_available

    return fused_available(torch)


@pytest.mark.parametrize("mode", ["eager", "inductor"])
def test_cuda_graphs_follow_the_step_by_step_loop(mode, monkeypatch):
    if mode == "inductor" and not _has_triton():
        pytest.skip("torch.compile on CUDA needs triton, which is not installed")
    monkeypatch.setenv("OPTBENCH_CUDA_GRAPHS", mode)
    options = dict(problem="regression", backend="torch", optimizer="nadam", steps=200,
                   seed=5, dtype="float32", device="cuda")
    eager = optbench.solve(**options)
    graphed = optbench.solve(compile=True, **options)
    assert graphed.steps == eager.steps == 200
    np.testing.assert_allclose(graphed.x, eager.x, rtol=1e-4, atol=1e-4)
    # the trace's f values come from the replays, step for step
    np.testing.assert_allclose([f for _, _, f in graphed.trace[:5]],
                               [f for _, _, f in eager.trace[:5]], rtol=1e-4)


@pytest.mark.parametrize("kernel", ["blocks", "fused", "triton"])
def test_cuda_streaming_least_squares_matches_autograd(kernel):
    if kernel != "blocks" and not _has_triton():
        pytest.skip("the fused kernel on CUDA needs triton, which is not installed")
    from optbench.backends.pytorch import TorchObjective
    from optbench.core.params import resolve
    from optbench.plugins import get_registry

    problem = get_registry().get("problem", "regression")
    inst = problem.make(resolve(problem.params, {"n_samples": 300_007, "noise": 1.0},
                                "regression"), 0)
    reference = TorchObjective(problem, inst.data, "float64", "cuda", stream="off")
    streamed = TorchObjective(problem, inst.data, "float64", "cuda", stream=kernel)
    assert streamed.stream.kernel == kernel and streamed.stream.fallback is None
    x = reference.from_numpy(np.array([0.3, -1.0, 2.0]))
    (f0, g0), (f1, g1) = reference.value_and_grad(x), streamed.value_and_grad(x)
    assert g1.device.type == "cuda"
    assert abs(float(f1) - float(f0)) <= 1e-12 * abs(float(f0))
    assert float((g1 - g0).norm()) <= 1e-12 * float(g0.norm())
