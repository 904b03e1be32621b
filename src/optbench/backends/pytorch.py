"""PyTorch autograd, on the CPU or a CUDA device, in float32 or float64."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from optbench.backends import missing_package
from optbench.core import Backend, Objective
from optbench.errors import UsageError
from optbench.hookspecs import hookimpl


def _no_nvidia_driver() -> str | None:
    # A cheap look before importing torch: without the driver, CUDA cannot work.
    if not os.path.exists("/proc/driver/nvidia/version") and not os.path.exists("/dev/nvidia0"):
        return "no NVIDIA driver or CUDA device on this machine"
    return None


class TorchObjective(Objective):
    """stream: None picks the streaming least-squares kernel for large samples of a problem
    that declares `least_squares`; "off", "blocks", "fused" or "triton" force a choice
    (benchmarks and tests compare them)."""

    def __init__(self, problem: Any, data: Mapping[str, Any], dtype: str, device: str,
                 stream: str | None = None) -> None:
        super().__init__()
        import torch

        self.xp = torch
        self.dtype = dtype
        self.device = device
        self.asynchronous = device != "cpu"
        self._torch = torch
        self._tdtype = getattr(torch, dtype)
        self._tdevice = torch.device(device)
        self._fn = problem.objective
        self.problem = problem
        self.data = self.convert_data(data)
        self._m: int | None = None  # the number of residuals, once known
        # (x, leaf, r) of the last residuals(x) of pointwise residuals: its graph, kept so
        # that residuals_and_jacobian(x) at that same point (an accepted trial point of lm
        # or gn) is one backward pass, with no second forward pass.
        self._graph: tuple[Any, Any, Any] | None = None
        self.stream = self._streaming(problem, stream)
        if self.stream is not None:
            # The kernel may have made the design matrix column-major (a copy); autograd's
            # paths (hvp, --compile) use that same tensor, so the data is held once.
            self.data[problem.least_squares.design] = self.stream.design

    def _streaming(self, problem: Any, kernel: str | None) -> Any:
        """The streaming least-squares kernel, for a problem that declares that structure
        and has enough samples for autograd's full-length temporaries to cost more than the
        data (see torch_streaming)."""
        from optbench.backends import torch_streaming as ts

        declared = getattr(problem, "least_squares", None)
        if declared is None or kernel == "off":
            return None
        design, target = self.data.get(declared.design), self.data.get(declared.target)
        if getattr(design, "ndim", 0) != 2 or getattr(target, "ndim", 0) != 1:
            return None
        if kernel is None:
            kernel = ts.default_kernel(self._torch, self._tdevice.type, design.shape[0])
            if kernel == "off":
                return None
        # Worker threads feed the CPU's cores; on a GPU one thread queues every block.
        workers = self._torch.get_num_threads() if self._tdevice.type == "cpu" else 1
        return ts.StreamingLeastSquares(self._torch, design, target, kernel=kernel,
                                        workers=workers)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        self.n_fevals += 1
        if self.stream is not None:
            return self.stream.value_and_grad(x)
        torch = self._torch
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            f = self._fn(leaf, self.data, torch)
            (g,) = torch.autograd.grad(f, leaf)
        return f.detach(), g

    def warm_up(self, method: Any, x0: Any) -> None:
        """Take the method's first step from `x0` now, untimed and uncounted.

        Some first uses in a process cost seconds, and they are set-up, not the loop that
        time_s measures: the Jacobian of residuals that are not pointwise is
        torch.func.jacfwd, whose first import brings torch._dynamo (lm on MGH Rosenbrock:
        time_s 4.1 s on the first run of a process, 0.09 s on the next; measured on the 2-core
        machine). A campaign's first lm run after lbfgs's warm-up paid it the same way.
        """
        if getattr(method, "run", None) is not None:
            return
        counts = (self.n_evals, self.n_fevals)
        try:
            method.step(self, x0, method.init(x0, self.xp))
        except Exception:  # the timed run meets it again and reports it
            pass
        finally:
            self.n_evals, self.n_fevals = counts
            self._graph = None

    def residuals(self, x: Any) -> Any:
        problem = self.residual_problem()
        self.n_fevals += 1
        self._graph = None
        if problem.pointwise_residuals and self._m is not None and x.dim() == 1 \
                and not x.requires_grad:
            leaf, r_wide = self._wide_forward(problem, x)
            self._graph = (x, leaf, r_wide)
            return r_wide.detach()
        with self._torch.no_grad():
            return problem.residuals(x, self.data, self._torch)

    def _wide_forward(self, problem: Any, x: Any) -> tuple[Any, Any]:
        """r at x, computed from x broadcast to (n, m) with autograd on: the gradient of
        sum(r) with respect to that leaf is Jᵀ (pointwise residuals)."""
        torch = self._torch
        with torch.enable_grad():
            leaf = x[:, None].expand(x.shape[0], self._m).clone().requires_grad_(True)
            return leaf, problem.residuals(leaf, self.data, torch)

    def residuals_and_jacobian(self, x: Any) -> tuple[Any, Any]:
        """(r, J) by automatic differentiation, on x's device and in its dtype.

        Pointwise residuals (Problem.pointwise_residuals, a model fitted to points): one
        backward pass of sum(r) with respect to x broadcast to (n, m) gives Jᵀ. Otherwise
        torch.func.jacfwd (forward mode, n tangents in one vmapped pass). Measured on NIST
        Thurber (m=37, n=7) and Gauss1 (m=250, n=8) on a 2-core EPYC, per Jacobian:
        pointwise 0.9 / 1.3 ms, jacrev 1.0-2.5 / 7.5 ms, jacfwd 7.1 / 5.4-7.1 ms, a loop of
        n forward-mode passes (torch.autograd.forward_ad) 30 ms, against 0.17 / 0.25 ms
        for r alone: vmap's overhead per operation dominates these small programs.
        """
        problem = self.residual_problem()
        self.n_evals += 1
        self.n_fevals += 1
        torch = self._torch
        graph, self._graph = self._graph, None
        if graph is not None and graph[0] is not x:
            graph = None
        x = x.detach()
        if problem.pointwise_residuals:
            if self._m is None:
                with torch.no_grad():
                    self._m = int(problem.residuals(x, self.data, torch).shape[0])
            if graph is not None:
                _, leaf, r_wide = graph
            else:
                leaf, r_wide = self._wide_forward(problem, x)
            with torch.enable_grad():
                (jac_t,) = torch.autograd.grad(r_wide.sum(), leaf, allow_unused=True)
            jac = torch.zeros_like(leaf).T if jac_t is None else jac_t.T
            return r_wide.detach(), jac.contiguous()

        def with_aux(z: Any) -> tuple[Any, Any]:
            r = problem.residuals(z, self.data, torch)
            return r, r

        from torch.func import jacfwd

        jac, r = jacfwd(with_aux, has_aux=True)(x)
        # jacfwd's tangents of a stack of 0-d entries come back in the default dtype
        # (float64) for a float32 x: the run's dtype is x's.
        return r.detach(), jac.detach().to(x.dtype)

    def batched_residuals_and_jacobian(self, X: Any, data: Any = None) -> tuple[Any, Any]:
        """(r, J) of F fits at once (optbench.core.batch), shapes (F, m) and (F, m, p): the
        pointwise trick with one more leading dimension, each parameter broadcast to (F, m)
        and one backward pass of sum(r)."""
        from optbench.core import batch

        problem, data = self.batch_problem(data)
        self.n_evals += 1
        self.n_fevals += 1
        torch = self._torch
        X = X.detach()
        n_fits, p = X.shape
        m = getattr(self, "_batch_m", None)
        if m is None:  # the points per fit: once per objective (compaction keeps it)
            with torch.no_grad():
                m = self._batch_m = int(problem.residuals(batch.values(X[:1]),
                                                          batch.take(data, slice(0, 1),
                                                                     n_fits),
                                                          torch).shape[-1])
        with torch.enable_grad():
            # One leaf per parameter, not one (p, F, m) leaf indexed p times: each index's
            # backward would add a zero-filled (p, F, m) tensor (5x slower measured).
            leaves = [X[:, i:i + 1].expand(n_fits, m).clone().requires_grad_(True)
                      for i in range(p)]
            r = problem.residuals(leaves, data, torch)
            grads = torch.autograd.grad(r.sum(), leaves, allow_unused=True)
        # Stacked as (F, p, m), each gradient one contiguous block (4x cheaper than
        # interleaving them), handed out as its (F, m, p) view.
        return r.detach(), torch.stack([torch.zeros_like(leaf) if g is None else g
                                        for leaf, g in zip(leaves, grads, strict=True)],
                                       dim=1).transpose(1, 2)

    def compiled_loop(self, method: Any, steps: int, x0: Any) -> Any:
        from optbench.backends.torch_compiled import compiled_loop

        return compiled_loop(self, method, steps, x0)

    def hvp(self, x: Any, v: Any) -> Any:
        """Hessian-vector product H(x)·v by double backward (second-order optimizers)."""
        torch = self._torch
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self._fn(leaf, self.data, torch), leaf,
                                       create_graph=True)
            if not g.requires_grad:  # a linear objective: g is constant, H·v is 0
                return torch.zeros_like(leaf).detach()
            (hv,) = torch.autograd.grad(g, leaf, grad_outputs=v)
        return hv.detach()

    def from_numpy(self, array: Any) -> Any:
        if getattr(array, "ndim", 0) == 2 and array.flags.f_contiguous \
                and not array.flags.c_contiguous:
            # A converting copy (another dtype or device) would come back row-major; the
            # transpose keeps a column-major design matrix column-major, which the
            # streaming kernels read as contiguous columns.
            return self.from_numpy(array.T).T
        return self._torch.as_tensor(array, dtype=self._tdtype, device=self._tdevice)

    def to_numpy(self, array: Any) -> Any:
        return array.detach().cpu().numpy()

    def synchronize(self) -> None:
        if self._tdevice.type == "cuda":
            self._torch.cuda.synchronize(self._tdevice)


class TorchBackend(Backend):
    name = "torch"
    description = "PyTorch autograd (CPU and CUDA); --compile: torch.compile of the steps"
    devices = ("cpu", "cuda")
    compiles = True
    differentiation = "exact"  # reverse mode: right to rounding (the kit's tight tolerance)
    heavy_modules = ("torch",)

    def available(self, device: str = "cpu") -> str | None:
        reason = missing_package("torch", "torch")
        if reason is None and device == "cuda":
            reason = _no_nvidia_driver()
        return reason

    def compile_note(self, device: str = "cpu") -> str | None:
        # Measured on the 2-core development machine (README, "Backends").
        if device == "cpu":
            return ("--compile on the CPU compiles the steps with torch.compile (inductor "
                    "generates and builds C++): the first time takes about a minute "
                    "(61.7 s for a new user; 128 s on two busy cores), 5-22 s once its cache "
                    "(TORCHINDUCTOR_CACHE_DIR) is warm; the loop then runs about 2x faster. "
                    "Set-up time is reported apart from the loop's.")
        if os.environ.get("OPTBENCH_CUDA_GRAPHS") == "inductor":
            return ("--compile with OPTBENCH_CUDA_GRAPHS=inductor compiles fused kernels "
                    "with torch.compile first: about 15-20 s on an H100.")
        return None

    def prepare(self, problem, data, *, dtype, device):
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise UsageError("--device cuda: torch.cuda.is_available() is False on this "
                                 "machine; accepted: cpu")
        return TorchObjective(problem, data, dtype, device)


@hookimpl
def register_backends(register):
    register(TorchBackend())
