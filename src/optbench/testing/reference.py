"""What the checks compare against, written here with numpy alone, in float64.

- `central_gradient`: a finite-difference gradient that trusts nothing of the backend under
  test: it evaluates the problem's objective with `xp = numpy` on float64 copies.
- `compare_gradient`: the error of a gradient against it, and a diagnosis in words.
- the probe problems: small objectives built to make one failure visible (float32 rounding,
  overflow, NaN).
- `array_device`: the device an array reports, for numpy, torch, jax and cupy arrays alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from optbench.core import Instance, Objective, Problem

EPS64 = float(np.finfo(np.float64).eps)

# ---------------------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------------------


def central_gradient(fun: Callable[[np.ndarray], Any], x: Any) -> np.ndarray:
    """∇fun(x) by the fourth-order central stencil, in float64.

        g_i = (−f(x+2h) + 8 f(x+h) − 8 f(x−h) + f(x−2h)) / (12 h)

    Its truncation error is h⁴·f⁽⁵⁾/30 and its rounding error about 1.5·eps·|f|/h, balanced by
    h = eps^(1/5)·max(1, |x_i|) ≈ 7e-4·max(1, |x_i|): the result is good to about
    eps^(4/5) ≈ 3e-13 relative to |f|/|x| on smooth objectives, four orders of magnitude
    better than the 1e-6 tolerance the float64 check asks of the backend, so the
    reference's own error never decides a verdict. (optbench's `fd` backend, second order,
    is about eps^(2/3) ≈ 4e-11: still far inside that tolerance.) The step actually taken is
    made exactly representable, ((x+h)−x), so rounding of x ± h does not bias the quotient.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    scale = EPS64 ** 0.2

    def at(i: int, delta: float) -> float:
        shifted = x.copy()
        shifted.reshape(-1)[i] = flat_x[i] + delta
        return float(fun(shifted))

    for i in range(flat_x.size):
        h = scale * max(1.0, abs(float(flat_x[i])))
        h = float((flat_x[i] + h) - flat_x[i])
        flat_g[i] = (-at(i, 2 * h) + 8 * at(i, h) - 8 * at(i, -h) + at(i, -2 * h)) / (12 * h)
    return grad


def numpy_objective(problem: Problem, data: Mapping[str, Any], dtype: str = "float64"
                    ) -> Callable[[np.ndarray], Any]:
    """The problem's objective on numpy float64, its data rounded to `dtype` first.

    Rounding the data to float32 (and back) makes the reference the same function a float32
    backend evaluates: the two then differ only by float32 arithmetic, which the float32
    tolerance is about.
    """
    rounded = {k: np.asarray(v, dtype=dtype).astype(np.float64) if isinstance(v, np.ndarray)
               else v for k, v in data.items()}
    return lambda x: problem.objective(x, rounded, np)


# ---------------------------------------------------------------------------------------
# Comparison, with a diagnosis
# ---------------------------------------------------------------------------------------


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """max|got − expected| / max|expected|: the error relative to the gradient's size.

    Relative to the largest component, not componentwise: a component that is nearly zero
    at the point carries the rounding error of the others and must not demand more than the
    arithmetic can give.
    """
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    scale = scale if scale > 0 else 1.0
    with np.errstate(all="ignore"):
        return float(np.max(np.abs(got - expected))) / scale if got.size else 0.0


def _show(values: Any) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in np.asarray(values, dtype=float).ravel()) + ")"


def compare_gradient(got: Any, expected: np.ndarray, tol: float,
                     variables: Sequence[str]) -> tuple[float, str | None]:
    """(error, None) when `got` is within `tol` of `expected`, else (error, what is wrong)."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != expected.shape:
        return float("inf"), f"has shape {got.shape}, expected {expected.shape} (that of x)"
    bad = ~np.isfinite(got)
    if bad.any():
        names = [variables[i] if i < len(variables) else str(i) for i in np.flatnonzero(bad)]
        return float("inf"), f"has non-finite entries {_show(got)} (at {', '.join(names)})"
    err = relative_error(got, expected)
    if err <= tol:
        return err, None
    i = int(np.argmax(np.abs(got - expected)))
    name = variables[i] if i < len(variables) else f"component {i}"
    hint = ""
    denominator = float(np.dot(expected.ravel(), expected.ravel()))
    if relative_error(got, -expected) <= tol:
        hint = " (sign flipped?)"
    elif denominator > 0:
        factor = float(np.dot(got.ravel(), expected.ravel())) / denominator
        if abs(factor) > 1e-12 and relative_error(got, factor * expected) <= tol:
            hint = f" (it is {factor:.6g} times the reference: a missing or extra factor?)"
    return err, (f"max rel. error {err:.3g}{hint} > tol {tol:g}; largest at {name}: "
                 f"got {got.ravel()[i]:.10g}, expected {expected.ravel()[i]:.10g}; "
                 f"got {_show(got)}, expected {_show(expected)}")


# ---------------------------------------------------------------------------------------
# Probe problems: each makes one failure visible
# ---------------------------------------------------------------------------------------


class _Probe(Problem):
    """A fixed task: no parameters, no randomness."""

    variables_: tuple[str, ...] = ()

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return self.variables_

    def data(self) -> dict[str, np.ndarray]:
        return {}

    def start(self) -> np.ndarray:
        return np.zeros(len(self.variables_))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        return Instance(data=self.data(), x0=self.start(), variables=self.variables_)


class PrecisionProbe(_Probe):
    """f(x) = Σ x·((c + 10⁸) − 10⁸) with c = (1, 2, 3), at x = (1, 1, 1).

    In float64, (c + 10⁸) − 10⁸ = c exactly: f = 6 and ∇f = c. In float32 the spacing of
    numbers near 10⁸ is 8, so c + 10⁸ rounds to 10⁸ and (c + 10⁸) − 10⁸ = 0: f = 0, ∇f = 0.
    The result does not depend on the order of operations (no sum of many terms whose order
    a library may choose): elementwise float32 arithmetic gives 0, and anything else means
    the work was done in a wider type. A backend that computes in float64 and casts the
    result back to float32 passes every dtype test of its arrays but returns 6 here.
    """

    name = "probe-precision"
    description = "cancellation that float32 rounding makes visible"
    variables_ = ("a", "b", "c")
    BIG = 1e8
    C = (1.0, 2.0, 3.0)
    EXPECTED: ClassVar[dict[str, tuple[float, tuple[float, ...]]]] = {
        "float64": (6.0, C), "float32": (0.0, (0.0, 0.0, 0.0))}

    def data(self) -> dict[str, np.ndarray]:
        return {"c": np.array(self.C), "big": np.full(3, self.BIG)}

    def start(self) -> np.ndarray:
        return np.ones(3)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(x * ((data["c"] + data["big"]) - data["big"]))


class SmallQuadratic(_Probe):
    """f(x) = Σ w·(x − c)², w = (1, 2, 3), c = (1, −2, 0.5): a tiny task with data on the
    device, for the device and availability checks, with its exact gradient for the kit's own
    numpy objective."""

    name = "probe-quadratic"
    description = "a tiny weighted quadratic"
    variables_ = ("a", "b", "c")

    def data(self) -> dict[str, np.ndarray]:
        return {"w": np.array([1.0, 2.0, 3.0]), "c": np.array([1.0, -2.0, 0.5])}

    def start(self) -> np.ndarray:
        return np.array([0.5, 0.25, -1.0])

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(data["w"] * xp.square(x - data["c"]))


class Overflow(_Probe):
    """f(x) = Σ (0·(eᵡ − eᵡ) − x): linear, unbounded below, until eᵡ overflows (x > 709 in
    float64, > 88 in float32) and 0·(∞ − ∞) makes f NaN. With SGD at lr 100 from 0 that
    happens after 8 steps in float64 and 1 in float32. Analytic everywhere, so backends that
    evaluate in complex arithmetic (complex step) reach the NaN too."""

    name = "probe-overflow"
    description = "f becomes NaN once exp(x) overflows"
    variables_ = ("a", "b")

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(0.0 * (xp.exp(x) - xp.exp(x)) - x)


class NaNAtStart(_Probe):
    """f = Σ x² + NaN: f is NaN at the start while the gradient, 2x, is finite."""

    name = "probe-nan-start"
    description = "f is NaN everywhere"
    variables_ = ("a", "b")

    def data(self) -> dict[str, np.ndarray]:
        return {"nan": np.array([np.nan])}

    def start(self) -> np.ndarray:
        return np.array([1.0, -1.0])

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(x)) + xp.sum(data["nan"])


class Barrier(_Probe):
    """f(x) = Σ(x − 1)² + 0·√(10⁻³ − x₁) from x = 0: the minimum at (1, 1) lies beyond a
    barrier where f is NaN (x₁ > 10⁻³), so every optimizer that makes progress reaches it
    within a few steps — first-order methods by their first steps, Newton-like ones by their
    first jump. The barrier is farther than a finite-difference step (~6e-6), so the gradient
    at the start is finite on every backend. (√ of a negative number is NaN for numpy and
    torch; not analytic, so used only on the built-in backends.)"""

    name = "probe-barrier"
    description = "f becomes NaN on the way to the minimum"
    variables_ = ("a", "b")
    EDGE = 1e-3

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(x - 1.0)) + 0.0 * xp.sqrt(self.EDGE - x[0])


PROBES = (PrecisionProbe(), SmallQuadratic(), Overflow(), NaNAtStart(), Barrier())


class NumpyQuadraticObjective(Objective):
    """SmallQuadratic's exact value and gradient on numpy: an objective that depends on no
    backend, for checking optimizers on their own."""

    def __init__(self) -> None:
        super().__init__()
        self.xp = np
        self.dtype = "float64"
        data = SmallQuadratic().data()
        self.w, self.c = data["w"], data["c"]

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        self.n_fevals += 1
        d = x - self.c
        return np.sum(self.w * d * d), 2.0 * self.w * d

    def from_numpy(self, array: Any) -> Any:
        return np.array(array, dtype=np.float64)


# ---------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------


def device_type(device: Any) -> str | None:
    """"cpu", "cuda", ... for a device as numpy, torch, jax or cupy report it (None: unknown).

    torch.device has `.type`, a jax Device `.platform` ("gpu" is CUDA's), numpy ≥ 2 says
    "cpu", cupy's Device prints as "<CUDA Device 0>".
    """
    if device is None:
        return None
    kind = getattr(device, "type", None) or getattr(device, "platform", None) or device
    text = str(kind).lower()
    if "cuda" in text or "gpu" in text:
        return "cuda"
    if "cpu" in text:
        return "cpu"
    return text.split(":")[0]


def array_device(array: Any) -> str | None:
    """The device type an array says it lives on; None when it says nothing."""
    device = getattr(array, "device", None)
    if callable(device) and not isinstance(device, str):  # older jax: a method
        try:
            device = device()
        except Exception:
            device = None
    if device is None:
        devices = getattr(array, "devices", None)  # jax: a set of devices
        if callable(devices):
            try:
                found = list(devices())
            except Exception:
                found = []
            device = found[0] if found else None
    if device is None and isinstance(array, (np.ndarray, np.generic)):
        return "cpu"  # numpy < 2 has no .device; its arrays are host arrays
    return device_type(device)
