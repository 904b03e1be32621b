"""The streaming least-squares path of the torch backend (backends/torch_streaming.py)
against independent references: numpy's r = V·x − y, f = r·r/n, g = (2/n)·Vᵀr in float64,
autograd of the objective as written, and numpy.linalg.lstsq for the streamed reference.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optbench
from optbench.core.params import resolve
from optbench.plugins import get_registry
from optbench.problems.regression import streamed_reference, vandermonde

torch = pytest.importorskip("torch")
from optbench.backends import torch_streaming as ts  # noqa: E402
from optbench.backends.pytorch import TorchObjective  # noqa: E402


def numpy_sums(design, target, x):
    r = design @ x - target
    return float(r @ r) / len(target), 2.0 / len(target) * (design.T @ r)


def close(got, want, scale):
    return np.max(np.abs(np.asarray(got) - want)) <= 1e-12 * scale


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2000), p=st.integers(1, 5), block=st.integers(1, 300),
       workers=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_blocks_match_numpy(n, p, block, workers, seed):
    rng = np.random.default_rng(seed)
    design = np.asfortranarray(rng.standard_normal((n, p)))
    target, x = rng.standard_normal(n), rng.standard_normal(p)
    stream = ts.StreamingLeastSquares(torch, torch.from_numpy(design),
                                      torch.from_numpy(target), kernel="blocks",
                                      workers=workers, block_rows=block)
    f, g = stream.value_and_grad(torch.from_numpy(x))
    f_ref, g_ref = numpy_sums(design, target, x)
    scale = (np.abs(design) @ np.abs(x) + np.abs(target)).max() ** 2 * (1 + p)
    assert close(float(f), f_ref, scale)
    assert close(g.numpy(), g_ref, scale)
    # every row is in exactly one worker's segment
    assert sum(hi - lo for lo, hi in stream._segments) == n


def test_row_major_design_is_read_column_major():
    rng = np.random.default_rng(1)
    design = rng.standard_normal((1000, 3))  # C order
    stream = ts.StreamingLeastSquares(torch, torch.from_numpy(design),
                                      torch.from_numpy(rng.standard_normal(1000)),
                                      block_rows=64)
    assert stream.design.stride(0) == 1


def test_fused_kernel_matches_autograd():
    problem = get_registry().get("problem", "regression")
    inst = problem.make(resolve(problem.params, {"n_samples": 200_003, "noise": 1.0,
                                                 "degree": 3}, "regression"), 0)
    autograd = TorchObjective(problem, inst.data, "float64", "cpu", stream="off")
    fused = TorchObjective(problem, inst.data, "float64", "cpu", stream="fused")
    assert autograd.stream is None
    assert fused.stream.kernel == "fused", fused.stream.fallback
    x = autograd.from_numpy(np.array([0.1, 0.3, -1.0, 2.0]))
    (f0, g0), (f1, g1) = autograd.value_and_grad(x), fused.value_and_grad(x)
    assert abs(float(f1) - float(f0)) <= 1e-12 * abs(float(f0))
    assert float((g1 - g0).norm()) <= 1e-12 * float(g0.norm())


def test_a_kernel_that_cannot_compile_falls_back_to_blocks(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    rng = np.random.default_rng(2)
    design, target = np.asfortranarray(rng.standard_normal((500, 2))), rng.standard_normal(500)
    stream = ts.StreamingLeastSquares(torch, torch.from_numpy(design),
                                      torch.from_numpy(target), kernel="fused")
    assert stream.kernel == "blocks"
    assert stream.fallback == "RuntimeError: no C++ compiler"
    f, g = stream.value_and_grad(torch.tensor([1.0, -1.0], dtype=torch.float64))
    f_ref, g_ref = numpy_sums(design, target, np.array([1.0, -1.0]))
    assert abs(float(f) - f_ref) <= 1e-12 * f_ref
    np.testing.assert_allclose(g.numpy(), g_ref, rtol=1e-12)


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="accepted: blocks, fused, triton"):
        ts.StreamingLeastSquares(torch, torch.zeros(4, 2), torch.zeros(4), kernel="gpu")


@pytest.mark.parametrize(("device", "n", "triton", "expected"), [
    ("cpu", 20, False, "off"),
    ("cpu", ts.MIN_SAMPLES - 1, False, "off"),
    ("cpu", ts.MIN_SAMPLES, False, "blocks"),
    ("cpu", ts.FUSED_MIN_SAMPLES, False, "fused"),
    ("cuda", ts.MIN_SAMPLES, True, "triton"),
    ("cuda", 10**8, False, "off"),
])
def test_default_kernel(monkeypatch, device, n, triton, expected):
    monkeypatch.setattr(ts, "fused_available", lambda torch: triton)
    assert ts.default_kernel(torch, device, n) == expected


def test_the_tutorial_keeps_autograd_and_large_samples_stream():
    problem = get_registry().get("problem", "regression")
    small = problem.make(resolve(problem.params, {}, "regression"), 0)
    assert TorchObjective(problem, small.data, "float64", "cpu").stream is None
    large = problem.make(resolve(problem.params, {"n_samples": ts.MIN_SAMPLES}, "regression"),
                         0)
    objective = TorchObjective(problem, large.data, "float64", "cpu")
    assert objective.stream is not None and objective.stream.kernel == "blocks"
    # the float64 design matrix is used in place: no copy of the data
    assert np.shares_memory(objective.stream.design.numpy(), large.data["V"])


def test_a_streamed_run_follows_the_autograd_run(monkeypatch):
    options = dict(problem="regression", backend="torch", optimizer="lbfgs", steps=60, tol=0,
                   dtype="float64", problem_params={"n_samples": 150_000, "noise": 0.5})
    streamed = optbench.solve(**options)
    monkeypatch.setattr(ts, "default_kernel", lambda *args: "off")
    plain = optbench.solve(**options)
    assert streamed.status == plain.status == "converged"
    np.testing.assert_allclose(streamed.x, plain.x, rtol=1e-9)
    np.testing.assert_allclose(streamed.x, streamed.reference["x"], rtol=1e-8)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(5, 3000), degree=st.integers(0, 4), rows=st.integers(5, 400),
       seed=st.integers(0, 2**32 - 1))
def test_streamed_reference_matches_lstsq(n, degree, rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, n)
    y = np.polyval(rng.standard_normal(degree + 1), x) + rng.standard_normal(n)
    design = np.vander(x, degree + 1)
    scale = np.sqrt(np.sum(design * design, axis=0))
    w, *_ = np.linalg.lstsq(design / scale, y, rcond=None)
    w = w / scale
    ref = streamed_reference(vandermonde(x, degree), y, rows=rows)
    cond = np.linalg.cond(design / scale)
    assert np.allclose(ref.x, w, rtol=1e-13 * cond, atol=1e-13 * cond * np.abs(w).max())
    assert ref.f == pytest.approx(float(np.mean((y - design @ w) ** 2)), rel=1e-10)


def test_column_major_design_stays_column_major_in_torch():
    problem = get_registry().get("problem", "regression")
    design = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    for dtype in ("float32", "float64"):
        tensor = TorchObjective(problem, {"V": design, "y": np.ones(4)}, dtype, "cpu").data["V"]
        assert tensor.stride() == (1, 4)
        assert np.array_equal(tensor.double().numpy(), design)


def test_a_row_major_design_is_held_once_column_major():
    problem = get_registry().get("problem", "regression")
    rng = np.random.default_rng(3)
    data = {"V": np.ascontiguousarray(rng.standard_normal((ts.MIN_SAMPLES, 3))),
            "y": rng.standard_normal(ts.MIN_SAMPLES)}
    objective = TorchObjective(problem, data, "float64", "cpu")
    assert objective.data["V"] is objective.stream.design
    assert objective.data["V"].stride(0) == 1
    # autograd's paths read the same tensor and agree with the kernel
    x = objective.from_numpy(np.array([0.5, -1.0, 2.0]))
    v = objective.from_numpy(np.array([1.0, 0.0, 0.0]))
    hv = objective.hvp(x, v).numpy()
    np.testing.assert_allclose(hv, 2.0 / len(data["y"]) * data["V"].T @ data["V"][:, 0],
                               rtol=1e-12)
