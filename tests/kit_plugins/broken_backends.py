"""A plugin of deliberately broken backends: each has one defect that the conformance kit
must catch, with a message that names the cause. All of them passed the kit before it had
the checks `fresh`, `counters`, `lazy`, `derivatives` and `linear`, the tolerance of exact
differentiation and the float32-number test of float64 results.

Importing this module imports no array library (torch is imported in prepare, as a real
backend must): the `lazy` check imports it afresh in another process.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optbench import hookimpl
from optbench.backends.finite_diff import FiniteDifferenceBackend, FiniteDifferenceObjective
from optbench.backends.pytorch import TorchBackend, TorchObjective
from optbench.core import Objective

# ---------------------------------------------------------------------------------------
# Arrays: a reused buffer, a float64 gradient rounded through float32, no counting
# ---------------------------------------------------------------------------------------


class ReusedBufferObjective(FiniteDifferenceObjective):
    """Writes f and g into buffers allocated once and returns those buffers: the next call
    overwrites what the caller kept (L-BFGS keeps its past gradients)."""

    def __init__(self, problem: Any, data: Any, dtype: str) -> None:
        super().__init__(problem, data, dtype)
        self._f_out = np.empty((), dtype=dtype)
        self._g_out: np.ndarray | None = None

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        f, g = super().value_and_grad(x)
        if self._g_out is None or self._g_out.shape != g.shape:
            self._g_out = np.empty_like(g)
        self._f_out[...] = f
        self._g_out[...] = g
        return self._f_out, self._g_out


class ReusedBufferBackend(FiniteDifferenceBackend):
    name = "reusebuf"
    description = "returns views of output buffers it reuses on the next call"

    def prepare(self, problem, data, *, dtype, device):
        return ReusedBufferObjective(problem, data, dtype)


class Float32ScratchObjective(FiniteDifferenceObjective):
    """Collects the differences in a float32 scratch array: in a float64 run every gradient
    component is a float32 number, off by up to 6e-8 relative — inside the 1e-6 that
    finite differences are allowed."""

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        f, g = super().value_and_grad(x)
        scratch = np.empty(g.shape, dtype=np.float32)
        scratch[...] = g
        return f, scratch.astype(g.dtype)


class Float32ScratchBackend(FiniteDifferenceBackend):
    name = "rounded32"
    description = "rounds its float64 gradient through a float32 scratch array"

    def prepare(self, problem, data, *, dtype, device):
        return Float32ScratchObjective(problem, data, dtype)


class UncountedObjective(Objective):
    """Central differences written from scratch, forgetting n_evals and n_fevals."""

    def __init__(self, problem: Any, data: Any, dtype: str) -> None:
        super().__init__()
        self.xp, self.dtype = np, dtype
        self._dtype = np.dtype(dtype)
        self._fn = problem.objective
        self.data = self.convert_data(data)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        x = np.asarray(x, dtype=self._dtype)
        f = np.asarray(self._fn(x, self.data, np), dtype=self._dtype)
        grad = np.empty_like(x)
        for i in range(x.size):
            h = np.finfo(self._dtype).eps ** (1 / 3) * max(1.0, abs(float(x.flat[i])))
            up, down = x.copy(), x.copy()
            up.flat[i] += h
            down.flat[i] -= h
            grad.flat[i] = (self._fn(up, self.data, np) - self._fn(down, self.data, np)) / (
                up.flat[i] - down.flat[i])
        return f, grad

    def from_numpy(self, array: Any) -> Any:
        return np.array(array, dtype=self._dtype)


class UncountedBackend(FiniteDifferenceBackend):
    name = "uncounted"
    description = "never counts its evaluations"

    def prepare(self, problem, data, *, dtype, device):
        return UncountedObjective(problem, data, dtype)


# ---------------------------------------------------------------------------------------
# Imports: available() that imports torch
# ---------------------------------------------------------------------------------------


class HeavyAvailableBackend(TorchBackend):
    """Asks torch itself whether it is there: `optbench list` then imports torch."""

    name = "heavyavailable"
    description = "imports torch to answer available()"
    compiles = False

    def available(self, device: str = "cpu") -> str | None:
        try:
            import torch
        except ImportError:
            return "torch is not installed"
        if device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device"
        return None


# ---------------------------------------------------------------------------------------
# Derivatives: exact backends (torch) with one rule wrong
# ---------------------------------------------------------------------------------------


class SlightlyOffObjective(TorchObjective):
    """Exact differentiation with a constant rounded to seven digits somewhere: every
    gradient is 5e-7 too large, inside the 1e-6 allowed to finite differences."""

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        f, g = super().value_and_grad(x)
        return f, g * (1 + 5e-7)


class SlightlyOffBackend(TorchBackend):
    name = "slightlyoff"
    description = "torch, its gradients 5e-7 too large"
    devices = ("cpu",)
    compiles = False

    def prepare(self, problem, data, *, dtype, device):
        return SlightlyOffObjective(problem, data, dtype, device)


class _Namespace:
    """torch, with some of its functions replaced."""

    def __init__(self, torch: Any, replaced: dict[str, Any]) -> None:
        self._torch, self._replaced = torch, replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced.get(name) or getattr(self._torch, name)


def wrong_tan(torch: Any) -> Any:
    def tan(u: Any) -> Any:  # the value of tan, the derivative 1/cos: the square forgotten
        return torch.tan(u).detach() + (u - u.detach()) / torch.cos(u.detach())

    return tan


def wrong_abs(torch: Any) -> Any:
    def abs(u: Any) -> Any:  # the value of |u|, the derivative 1: the sign forgotten
        return torch.abs(u).detach() + (u - u.detach())

    return abs


def off_by_half(name: str) -> Any:
    """Any function of torch, its derivative 0.5 too large (its value unchanged)."""

    def make(torch: Any) -> Any:
        fn = getattr(torch, name)

        def wrong(u: Any) -> Any:
            return fn(u) + 0.5 * (u - u.detach())

        return wrong

    return make


# The operators by the names torch hands a function mode (Tensor.__add__ arrives as "add",
# a float minus a tensor as "__rsub__"), keyed by the names of the backends that break them.
OPERATOR_METHODS = {"add": ("add", "__add__", "__radd__"), "sub": ("sub", "__sub__", "__rsub__"),
                    "mul": ("mul", "__mul__", "__rmul__"),
                    "div": ("div", "__truediv__", "__rtruediv__"),
                    "pow": ("pow", "__pow__", "__rpow__"), "neg": ("neg", "__neg__")}


def _operator_mode(torch: Any, methods: tuple[str, ...]) -> Any:
    """A torch function mode that adds 0.5 to the derivative of these operators with
    respect to their first operand (their values unchanged)."""
    from torch.overrides import TorchFunctionMode

    class OffByHalf(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            first = args[0] if args else None
            if (getattr(func, "__name__", None) in methods and torch.is_tensor(first)
                    and first.requires_grad):
                out = out + 0.5 * (first - first.detach())
            return out

    return OffByHalf()


class WrongDerivativeObjective(TorchObjective):
    """torch's reverse mode over a namespace whose functions (or operators) are replaced."""

    def __init__(self, problem: Any, data: Any, dtype: str, device: str,
                 functions: dict[str, Any], operators: tuple[str, ...]) -> None:
        super().__init__(problem, data, dtype, device)
        torch = self._torch
        self._namespace = _Namespace(torch, {n: make(torch) for n, make in functions.items()})
        self._operators = operators

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        self.n_fevals += 1
        torch = self._torch
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            if self._operators:
                with _operator_mode(torch, self._operators):
                    f = self._fn(leaf, self.data, self._namespace)
            else:
                f = self._fn(leaf, self.data, self._namespace)
            (g,) = torch.autograd.grad(f, leaf)
        return f.detach(), g


class WrongDerivativeBackend(TorchBackend):
    devices = ("cpu",)
    compiles = False  # its compiled loop would differentiate torch's own functions

    def __init__(self, name: str, functions: dict[str, Any] | None = None,
                 operators: tuple[str, ...] = ()) -> None:
        self.name = name
        self.description = f"torch with a wrong derivative ({name})"
        self.functions, self.operators = dict(functions or {}), operators

    def prepare(self, problem, data, *, dtype, device):
        return WrongDerivativeObjective(problem, data, dtype, device, self.functions,
                                        self.operators)


def wrong_derivative_backends() -> list[WrongDerivativeBackend]:
    """wrongtan, wrongabs; then `wrong-d-NAME` for every function of the expression language
    (read from its table, so a function added there gets its broken twin), and
    `wrong-op-NAME` for every operator."""
    from optbench.testing.backend_gradients import language_functions

    out = [WrongDerivativeBackend("wrongtan", {"tan": wrong_tan}),
           WrongDerivativeBackend("wrongabs", {"abs": wrong_abs})]
    out += [WrongDerivativeBackend(f"wrong-d-{fn}", {fn: off_by_half(fn)})
            for fn in language_functions()]
    out += [WrongDerivativeBackend(f"wrong-op-{op}", operators=methods)
            for op, methods in OPERATOR_METHODS.items()]
    return out


# ---------------------------------------------------------------------------------------
# A constant gradient: double backward on a gradient without a graph
# ---------------------------------------------------------------------------------------


class CurvatureObjective(TorchObjective):
    """Keeps the curvature along the gradient, gᵀHg/gᵀg, for a step-size estimate: a
    double backward, which raises for a linear objective (its gradient has no graph)."""

    curvature = math.nan

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        self.n_fevals += 1
        torch = self._torch
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            f = self._fn(leaf, self.data, torch)
            (g,) = torch.autograd.grad(f, leaf, create_graph=True)
            (hg,) = torch.autograd.grad(g, leaf, grad_outputs=g.detach())
        g = g.detach()
        self.curvature = float((g * hg).sum() / (g * g).sum())
        return f.detach(), g


class CurvatureBackend(TorchBackend):
    name = "curvature"
    description = "torch, and the curvature along the gradient at every call"
    devices = ("cpu",)
    compiles = False

    def prepare(self, problem, data, *, dtype, device):
        return CurvatureObjective(problem, data, dtype, device)


@hookimpl
def register_backends(register):
    for backend in (ReusedBufferBackend(), Float32ScratchBackend(), UncountedBackend(),
                    HeavyAvailableBackend(), SlightlyOffBackend(), CurvatureBackend(),
                    *wrong_derivative_backends()):
        register(backend)
