"""optbench backend `torchfunc`: gradients by torch.func's functional transforms.

A template for backend plugins: copy the distribution, rename it, and replace what
`TorchFuncObjective.__init__` builds. Nothing heavy is imported here, only in `prepare`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import optbench
from optbench.core import Backend, Objective

__version__ = "0.1.0"


class TorchFuncObjective(Objective):
    """value_and_grad by torch.func.grad_and_value; the data converted once, here."""

    def __init__(self, problem: Any, data: Mapping[str, Any], dtype: str, device: str):
        super().__init__()  # the counters n_evals and n_fevals
        import torch  # the heavy import: when the backend is used, never at start-up
        from torch.func import grad_and_value

        self.xp = torch  # the namespace problems and optimizers compute with
        self.dtype = dtype
        self.device = device
        self.asynchronous = device != "cpu"  # CUDA returns before the work is done
        self._torch = torch
        self._tdtype = getattr(torch, dtype)
        self._tdevice = torch.device(device)
        self.data = self.convert_data(data)  # numpy arrays -> tensors, in dtype, on device
        self._grad_and_value = grad_and_value(
            lambda x: problem.objective(x, self.data, torch))

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1  # calls of value_and_grad
        self.n_fevals += 1  # evaluations of the objective itself
        g, f = self._grad_and_value(x)
        return f, g  # in the backend's arrays: no host transfer in the loop

    def from_numpy(self, array: Any) -> Any:
        return self._torch.as_tensor(array, dtype=self._tdtype, device=self._tdevice)

    def to_numpy(self, array: Any) -> Any:
        return array.detach().cpu().numpy()

    def synchronize(self) -> None:
        if self._tdevice.type == "cuda":
            self._torch.cuda.synchronize(self._tdevice)


class TorchFuncBackend(Backend):
    name = "torchfunc"
    description = "torch.func.grad_and_value (functional autodiff), CPU and CUDA"
    devices = ("cpu", "cuda")
    dtypes = ("float64", "float32")
    differentiation = "exact"  # autodiff: the conformance kit holds it to rounding
    heavy_modules = ("torch",)  # imported in prepare only: the kit checks available() too

    def available(self, device: str = "cpu") -> str | None:
        # Cheap, and without importing torch: `optbench list` calls it for every device.
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install torch)"
        if device == "cuda":
            from importlib.metadata import version

            if version("torch").endswith("+cpu"):
                return "this torch is a CPU-only build"
            if not os.path.exists("/proc/driver/nvidia/version"):
                return "no NVIDIA driver on this machine"
        return None

    def prepare(self, problem, data, *, dtype, device):
        return TorchFuncObjective(problem, data, dtype, device)


@optbench.hookimpl
def register_backends(register):
    register(TorchFuncBackend())
