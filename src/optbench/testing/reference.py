"""What the checks compare against, written here with numpy alone, in float64.

- `central_gradient`: a finite-difference gradient that trusts nothing of the backend under
  test: it evaluates the problem's objective with `xp = numpy` on float64 copies.
- `reference_gradient`: that gradient extrapolated from two steps, with how far it can be
  trusted at the point (its spread).
- `compare_gradient`: the error of a gradient against it, and a diagnosis in words.
- `float32_numbers`: which float64 values are exactly float32 numbers (a float64 result
  rounded through float32 is made only of them).
- `array_device`: the device an array reports, for numpy, torch, jax and cupy arrays alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from optbench.core import Problem

EPS64 = float(np.finfo(np.float64).eps)

# ---------------------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------------------


def central_gradient(fun: Callable[[np.ndarray], Any], x: Any, step: float = 1.0
                     ) -> np.ndarray:
    """∇fun(x) by the fourth-order central stencil, in float64.

        g_i = (−f(x+2h) + 8 f(x+h) − 8 f(x−h) + f(x−2h)) / (12 h)

    Its truncation error is h⁴·f⁽⁵⁾/30 and its rounding error about 1.5·eps·|f|/h, balanced by
    h = eps^(1/5)·max(1, |x_i|) ≈ 7e-4·max(1, |x_i|): the result is good to about
    eps^(4/5) ≈ 3e-13 relative to |f|/|x| on smooth objectives (measured ≤ 5e-12 relative to
    the gradient over the built-in problems), far below the tolerances the checks ask of a
    backend, so the reference's own error does not decide a verdict (`reference_gradient`
    verifies that premise at each point). The step actually taken is made exactly
    representable, ((x+h)−x), so rounding of x ± h does not bias the quotient. `step`
    multiplies h.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    scale = step * EPS64 ** 0.2

    def at(i: int, delta: float) -> float:
        shifted = x.copy()
        shifted.reshape(-1)[i] = flat_x[i] + delta
        return float(fun(shifted))

    for i in range(flat_x.size):
        h = scale * max(1.0, abs(float(flat_x[i])))
        h = float((flat_x[i] + h) - flat_x[i])
        flat_g[i] = (-at(i, 2 * h) + 8 * at(i, h) - 8 * at(i, -h) + at(i, -2 * h)) / (12 * h)
    return grad


def reference_gradient(fun: Callable[[np.ndarray], Any], x: Any) -> tuple[np.ndarray, float]:
    """The reference gradient at x, and how far it can be trusted there: (g, spread).

    g is Richardson's extrapolation of the central stencil at h and 2h, g_h + (g_h − g_2h)/15,
    which cancels the h⁴ term of the truncation error: measured ≤ 5e-13 relative on every
    function of the expression language at the kit's points, where the stencil alone errs by
    up to 1.6e-10 (tan near its poles). The spread, the relative difference of g_h and g_2h,
    is about 15 times the error of g_h where truncation dominates and about the rounding
    error where rounding does: either way no less than the error of g. A check widens its
    tolerance to 2 × spread (`judged_tolerance`), so that near a singularity or on a badly
    scaled objective the reference says how much it knows instead of blaming the backend
    for its own error.
    """
    fine = central_gradient(fun, x)
    coarse = central_gradient(fun, x, step=2.0)
    return fine + (fine - coarse) / 15.0, relative_error(coarse, fine)


def judged_tolerance(tol: float, spread: float) -> float:
    """The tolerance a comparison can honestly use: `tol`, or 2 × the reference's spread."""
    return max(tol, 2.0 * spread) if np.isfinite(spread) else np.inf


def float32_numbers(values: Any) -> np.ndarray:
    """Which float64 values are exactly float32 numbers (finite, within float32's range).

    A float64 computation gives such a value with probability about 2^-29 (its 29 extra bits
    of mantissa all zero), unless the value is simple (an integer, a short binary fraction):
    callers look only at values whose reference is not near one (`near_float32`).
    """
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        f32 = v.astype(np.float32).astype(np.float64)
    return np.isfinite(v) & np.isfinite(f32) & (f32 == v)


def near_float32(values: Any, rel: float = 1e-10) -> np.ndarray:
    """Which values lie within `rel` (relative) of a float32 number: the exact value may be
    that float32 number (an integer gradient, say) and the reference merely off by its own
    error. Other values are 1e-8 from the nearest float32 number in the typical case."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        f32 = v.astype(np.float32).astype(np.float64)
        return ~np.isfinite(f32) | (np.abs(v - f32) <= rel * np.abs(v))


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
            # Verified: every component is off by the same factor.
            shown = (f"1 {'+' if factor > 1 else '-'} {abs(factor - 1):.3g}"
                     if abs(factor - 1) < 1e-2 else f"{factor:.6g}")
            hint = f" (it is {shown} times the reference in every component: a factor?)"
    return err, (f"max rel. error {err:.3g}{hint} > tol {tol:g}; largest at {name}: "
                 f"got {got.ravel()[i]:.10g}, expected {expected.ravel()[i]:.10g}; "
                 f"got {_show(got)}, expected {_show(expected)}")


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
