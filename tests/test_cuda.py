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
