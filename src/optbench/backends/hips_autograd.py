"""HIPS autograd: reverse mode over `autograd.numpy`, on the CPU."""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.backends import missing_package
from optbench.core import Backend, Objective
from optbench.hookspecs import hookimpl


class AutogradObjective(Objective):
    def __init__(self, problem, data, dtype: str) -> None:
        super().__init__()
        import autograd
        import autograd.numpy as anp

        self.xp = anp
        self.dtype = dtype
        self._np_dtype = np.dtype(dtype)
        self.problem = problem
        self.data = self.convert_data(data)
        self._m: int | None = None  # the number of residuals, once known
        self._vg = autograd.value_and_grad(lambda x: problem.objective(x, self.data, anp))
        self._hvp = autograd.hessian_vector_product(
            lambda x: problem.objective(x, self.data, anp))

    def hvp(self, x: Any, v: Any) -> Any:
        """Hessian-vector product H(x)·v (forward over reverse), for second-order methods."""
        return np.asarray(self._hvp(x, v), dtype=self._np_dtype)

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        self.n_fevals += 1
        f, g = self._vg(x)
        # Cast g too: autograd's vjp of mean divides by an int64 count, which promotes a
        # float32 gradient to float64 (and would turn float32 runs into float64 ones).
        return np.asarray(f, dtype=self._np_dtype), np.asarray(g, dtype=self._np_dtype)

    def residuals(self, x: Any) -> Any:
        problem = self.residual_problem()
        self.n_fevals += 1
        return np.asarray(problem.residuals(x, self.data, self.xp), dtype=self._np_dtype)

    def residuals_and_jacobian(self, x: Any) -> tuple[Any, Any]:
        """(r, J): pointwise residuals (Problem.pointwise_residuals) by one reverse pass of
        sum(r) with x broadcast to (n, m), which gives Jᵀ; others by autograd's jacobian
        (reverse mode, one pass per residual)."""
        import autograd

        problem = self.residual_problem()
        self.n_evals += 1
        self.n_fevals += 1
        anp, data = self.xp, self.data
        x = np.asarray(x, dtype=self._np_dtype)
        if problem.pointwise_residuals:
            if self._m is None:
                self._m = int(np.shape(problem.residuals(x, data, anp))[0])
            wide = np.repeat(x[:, None], self._m, axis=1)
            box: dict[str, Any] = {}

            def total(z: Any) -> Any:
                r = problem.residuals(z, data, anp)
                box["r"] = r
                return anp.sum(r)

            jac_t = autograd.grad(total)(wide)
            r = getattr(box["r"], "_value", box["r"])
            return (np.asarray(r, dtype=self._np_dtype),
                    np.ascontiguousarray(np.asarray(jac_t, dtype=self._np_dtype).T))
        r = problem.residuals(x, data, anp)
        jac = autograd.jacobian(lambda z: problem.residuals(z, data, anp))(x)
        return np.asarray(r, dtype=self._np_dtype), np.asarray(jac, dtype=self._np_dtype)

    def batched_residuals_and_jacobian(self, X: Any, data: Any = None) -> tuple[Any, Any]:
        """(r, J) of F fits at once (optbench.core.batch): X broadcast to (p, F, m), one
        reverse pass of sum(r), as residuals_and_jacobian does for one fit."""
        import autograd

        from optbench.core import batch

        problem, data = self.batch_problem(data)
        self.n_evals += 1
        self.n_fevals += 1
        anp = self.xp
        X = np.asarray(X, dtype=self._np_dtype)
        r = np.asarray(problem.residuals(batch.values(X), data, anp), dtype=self._np_dtype)
        wide = np.ascontiguousarray(np.broadcast_to(X.T[:, :, None], (X.shape[1], *r.shape)))
        jac_t = autograd.grad(lambda z: anp.sum(problem.residuals(z, data, anp)))(wide)
        return r, np.moveaxis(np.asarray(jac_t, dtype=self._np_dtype), 0, -1)

    def from_numpy(self, array: Any) -> Any:
        return np.array(array, dtype=self._np_dtype)


class AutogradBackend(Backend):
    name = "autograd"
    description = "HIPS autograd (autograd.numpy, reverse mode) on the CPU"
    differentiation = "exact"  # reverse mode: right to rounding (the kit's tight tolerance)
    heavy_modules = ("autograd",)

    def available(self, device: str = "cpu") -> str | None:
        return missing_package("autograd", "autograd")

    def prepare(self, problem, data, *, dtype, device):
        return AutogradObjective(problem, data, dtype)


@hookimpl
def register_backends(register):
    register(AutogradBackend())
