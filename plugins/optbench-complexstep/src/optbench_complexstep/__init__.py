"""optbench backend `complexstep`: complex-step differentiation on numpy.

For a real-analytic f, f(x + i·h·e_k) = f(x) + i·h·∂f/∂x_k − h²/2·∂²f/∂x_k² + O(h³), so

    ∂f/∂x_k = Im f(x + i·h·e_k) / h + O(h²)        f(x) = Re f(x + i·h·e_1) + O(h²)

(Squire & Trapp 1998). No difference of nearby values is taken, so there is no cancellation:
h can be far below sqrt(eps), the O(h²) terms vanish below rounding, and the gradient is exact
to rounding, unlike finite differences (optbench's `fd`, about eps^(2/3) at best).

The step: h = 1e-20 in float64 (evaluated in complex128) and h = 1e-10 in float32 (complex64).
The relative truncation error, about h²·|f'''|/|f'|, is then 1e-40 and 1e-20 at unit scale,
far below eps (2.2e-16 and 1.2e-7), while the imaginary parts, about h·|∂f|, stay far above
the smallest normal number (2.2e-308 and 1.2e-38) so they do not underflow.

Cost: n evaluations of the objective in complex arithmetic per gradient (n the number of
unknowns); f itself comes from the real part of the first one, so `n_fevals` grows by n per
`value_and_grad` call (by 1 when n is 0).

Limitation: the objective must be written with operations that extend analytically to
complex numbers: + − * /, @, xp.sum, xp.mean, xp.square, xp.exp, xp.log, xp.sin, xp.sqrt (off
the negative axis), integer powers... `xp.abs`, `xp.maximum`, `np.linalg.norm`, comparisons and
anything that conjugates (np.vdot) are not analytic and give wrong derivatives. An objective
whose value comes back real (an abs() at the end, say) is detected and refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from optbench import hookimpl
from optbench.core import Backend, Objective

__version__ = "0.1.0"

# The imaginary step for each real dtype, and the complex dtype the objective is evaluated in.
STEP = {"float64": 1e-20, "float32": 1e-10}
COMPLEX = {"float64": np.complex128, "float32": np.complex64}


class _Namespace:
    """numpy, as the objective sees it under complex step, with the functions whose complex
    form in numpy loses the real part's digits near the real axis done right. The real part
    is f itself here: numpy computes log1p(z) as log(1 + z), so log1p(1e-9 + 1e-20j) has a
    real part 3e-8 off (relative), where log1p of the real number is exact to rounding."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def log1p(z: Any) -> Any:
        if not np.iscomplexobj(z):
            return np.log1p(z)
        # log|1 + z| = ½·log1p(2a + a² + b²) and arg(1 + z) = atan2(b, 1 + a), z = a + ib:
        # no 1 + a is formed before the logarithm, so a small a keeps its digits.
        a, b = z.real, z.imag
        return 0.5 * np.log1p(a * (2 + a) + b * b) + 1j * np.arctan2(b, 1 + a)


XP = _Namespace()
"""The namespace objectives are evaluated in (numpy, with log1p right for complex input)."""


class ComplexStepObjective(Objective):
    """value_and_grad by n complex evaluations; optimizers see plain numpy arrays."""

    def __init__(self, problem: Any, data: Mapping[str, Any], dtype: str) -> None:
        super().__init__()
        self.xp = np
        self.dtype = dtype
        self._np_dtype = np.dtype(dtype)
        self._complex = np.dtype(COMPLEX[dtype])
        self._h = STEP[dtype]
        self._fn = problem.objective
        self._problem_name = getattr(problem, "name", type(problem).__name__)
        self.problem = problem
        # Data stays real: real data with a complex x promotes to the complex dtype.
        self.data = self.convert_data(data)

    def _f(self, z: np.ndarray) -> Any:
        self.n_fevals += 1
        value = np.asarray(self._fn(z, self.data, XP))
        if np.iscomplexobj(z) and not np.iscomplexobj(value):
            raise TypeError(
                f"complexstep: the objective of {self._problem_name} returned a real value for "
                f"a complex input: it uses an operation that is not analytic (abs, maximum, a "
                f"comparison, a norm...) and cannot be differentiated by complex step")
        return value

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        x = np.asarray(x, dtype=self._np_dtype)
        if x.size == 0:
            return np.asarray(self._f(x), dtype=self._np_dtype), np.empty_like(x)
        h = self._h
        flat = x.reshape(-1)
        grad = np.empty_like(flat)
        f = None
        for k in range(flat.size):
            z = flat.astype(self._complex)
            z[k] += 1j * h
            value = self._f(z.reshape(x.shape))
            grad[k] = value.imag / h
            if f is None:
                # Re f(x + ih·e_1) = f(x) − h²/2·∂²f/∂x_1² + ...: f(x) to rounding.
                f = np.asarray(value.real, dtype=self._np_dtype)
        grad = grad.reshape(x.shape)
        return f, grad

    def residuals_and_jacobian(self, x: Any) -> tuple[Any, Any]:
        """(r, J): column k of J is Im r(x + i·h·e_k) / h, r the real part of the first
        evaluation (n complex evaluations of the residuals, exact to rounding)."""
        problem = self.residual_problem()
        self.n_evals += 1
        x = np.asarray(x, dtype=self._np_dtype).reshape(-1)
        h = self._h
        if x.size == 0:
            r = np.asarray(problem.residuals(x, self.data, XP), dtype=self._np_dtype)
            self.n_fevals += 1
            return r, np.empty((r.size, 0), dtype=self._np_dtype)
        if problem.pointwise_residuals:
            # Every perturbed point in one call (see optbench.core.jacobian): x[i] a column
            # of the n points' values, broadcast against the data, r of shape (n, m).
            z = np.tile(x.astype(self._complex)[:, None], (1, x.size))
            z[np.arange(x.size), np.arange(x.size)] += 1j * h
            value = np.asarray(problem.residuals(z[:, :, None], self.data, XP))
            if value.ndim == 2 and value.shape[0] == x.size:
                self.n_fevals += x.size
                self._check_complex(value)
                return (np.asarray(value[0].real, dtype=self._np_dtype),
                        np.ascontiguousarray((value.imag / h).T).astype(self._np_dtype))
        columns, r = [], None
        for k in range(x.size):
            z = x.astype(self._complex)
            z[k] += 1j * h
            self.n_fevals += 1
            value = np.asarray(problem.residuals(z, self.data, XP))
            self._check_complex(value)
            columns.append(value.imag / h)
            if r is None:
                r = np.asarray(value.real, dtype=self._np_dtype)
        return r, np.stack(columns, axis=1).astype(self._np_dtype)

    def _check_complex(self, value: np.ndarray) -> None:
        if not np.iscomplexobj(value):
            raise TypeError(
                f"complexstep: the residuals of {self._problem_name} came back real for "
                f"a complex input: they use an operation that is not analytic (abs, "
                f"maximum, a comparison...) and cannot be differentiated by complex step")

    def from_numpy(self, array: Any) -> Any:
        return np.array(array, dtype=self._np_dtype)


class ComplexStepBackend(Backend):
    name = "complexstep"
    description = ("complex-step differentiation on numpy (n complex evaluations per gradient, "
                   "exact to rounding for analytic objectives)")
    devices = ("cpu",)
    dtypes = ("float64", "float32")
    differentiation = "exact"  # no cancellation: right to rounding for analytic objectives
    # optbench's conformance kit: abs is not analytic (see the module's docstring).
    conformance: ClassVar[dict[str, Any]] = {"waive": {
        "derivatives:abs": "abs is not analytic: complex step cannot differentiate it (the "
                           "objective comes back real, and the backend refuses it)"}}

    def available(self, device: str = "cpu") -> str | None:
        return None  # numpy only: always usable on the CPU

    def prepare(self, problem, data, *, dtype, device):
        return ComplexStepObjective(problem, data, dtype)


@hookimpl
def register_backends(register):
    register(ComplexStepBackend())
