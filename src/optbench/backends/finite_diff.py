"""Central finite differences on numpy, written by hand: the reference without autodiff.

Step h_i = eps^(1/3)·max(1, |x_i|), the choice that balances truncation error (O(h²)) against
rounding error (O(eps/h)) for central differences. The step actually taken is made exactly
representable, ((x+h)−x), and the quotient divides by the true distance between the two
points, so rounding of x±h does not bias the derivative.

Where the problem declares residuals (objective = sum(r²), the Problem contract), the
gradient is 2Jᵀr with J the central-difference Jacobian of r, taken with the same steps
(optbench.core.jacobian with typical=1: 2n + 1 evaluations of r, in one batched call where
the residuals are pointwise). Differencing f itself loses what the residuals know: near a
least-squares minimum f's rounding error gathers that of every r_i while its slope is of
order |r|. On the 35 Moré–Garbow–Hillstrom problems lbfgs reached f* on 28 differencing f
and on 31 through the residuals (exact gradients, torch: 32); Meyer (10), Osborne 1 (17)
and Powell's badly scaled function (3) were the difference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.core import Backend, Objective
from optbench.hookspecs import hookimpl


class FiniteDifferenceObjective(Objective):
    def __init__(self, problem, data, dtype: str) -> None:
        super().__init__()
        self.xp = np
        self.dtype = dtype
        self._np_dtype = np.dtype(dtype)
        self._cbrt_eps = np.finfo(self._np_dtype).eps ** (1.0 / 3.0)
        self._fn = problem.objective
        self.problem = problem
        self.data = self.convert_data(data)

    def _f(self, x: np.ndarray) -> Any:
        self.n_fevals += 1
        return self._fn(x, self.data, np)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        x = np.asarray(x, dtype=self._np_dtype)
        if x.ndim == 1 and getattr(self.problem, "has_residuals", False):
            r, jac = self._central_jacobian(x, typical=1.0)
            r = np.asarray(r, dtype=self._np_dtype)
            return r @ r, 2 * (np.asarray(jac, dtype=self._np_dtype).T @ r)
        f = np.asarray(self._f(x), dtype=self._np_dtype)
        grad = np.empty_like(x)
        flat_x, flat_g = x.reshape(-1), grad.reshape(-1)  # x may be (starts, n)
        for i in range(flat_x.size):
            h = self._np_dtype.type(self._cbrt_eps * max(1.0, abs(float(flat_x[i]))))
            up, down = x.copy(), x.copy()
            flat_up, flat_down = up.reshape(-1), down.reshape(-1)
            flat_up[i] = flat_x[i] + h
            h = flat_up[i] - flat_x[i]  # exactly representable step
            flat_down[i] = flat_x[i] - h
            flat_g[i] = (self._f(up) - self._f(down)) / (flat_up[i] - flat_down[i])
        return f, grad

    def residuals_and_jacobian(self, x: Any) -> tuple[Any, Any]:
        """(r, J) by central differences with steps relative to each parameter
        (optbench.core.jacobian: 2n + 1 evaluations of the residuals)."""
        self.n_evals += 1
        return self._central_jacobian(np.asarray(x, dtype=self._np_dtype), typical=0.0)

    def _central_jacobian(self, x: np.ndarray, typical: float) -> tuple[Any, Any]:
        from optbench.core.jacobian import central_jacobian

        problem = self.residual_problem()
        return central_jacobian(lambda z: problem.residuals(z, self.data, np), x, self,
                                typical=typical)

    def from_numpy(self, array: Any) -> Any:
        return np.array(array, dtype=self._np_dtype)


class FiniteDifferenceBackend(Backend):
    name = "fd"
    description = "central finite differences on numpy (2n+1 evaluations per gradient)"

    def prepare(self, problem, data, *, dtype, device):
        return FiniteDifferenceObjective(problem, data, dtype)


@hookimpl
def register_backends(register):
    register(FiniteDifferenceBackend())
