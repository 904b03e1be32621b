"""The Jacobian of residuals by central differences, for backends without automatic
differentiation (fd) and as the generic fallback of Objective.residuals_and_jacobian.

Steps are relative to each parameter, h_j = eps^(1/3)·|x_j| (eps^(1/3) where x_j is 0):
model parameters have any scale (NIST Misra1a's b2 is 5e-4), and a step of eps^(1/3)·1
there would be 1% of the parameter, biasing the Jacobian by ~1e-4 and with it the point
where Jᵀr = 0. The step actually taken is made exactly representable, and the quotient
divides by the true distance between the two points.

Pointwise residuals (Problem.pointwise_residuals: r_j from data point j alone, the data
broadcast against x[i]) take x and every perturbed point in one call: x of shape
(n, 2n + 1, 1), x[i] a column of the points' values, gives r of shape (2n + 1, m), one row
per point. That is one evaluation's worth of Python and array-library calls instead of
2n + 1 (NIST Thurber, n=7: ~15 vectorized numpy calls instead of ~200). Where the residuals
do not come back in that shape, the points are evaluated one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def central_jacobian(residuals: Callable[[Any], Any], x: Any, objective: Any,
                     typical: float = 0.0) -> tuple[Any, Any]:
    """(r(x), J) for `residuals` written against the objective's arrays: points are made
    on the host (numpy, the run's dtype) and handed over with objective.from_numpy;
    objective.n_fevals grows by 2n + 1.

    `typical` floors the scale of the steps, h_j = eps^(1/3)·max(|x_j|, typical) (Dennis &
    Schnabel's typical size of x_j): 0, the default, makes them relative, as a model's
    parameters of any scale need; fd's gradient gives 1, the step rule of its docstring,
    which keeps the perturbation of a tiny x_j (1e-89) visible in r."""
    dtype = np.dtype(objective.dtype)
    x_host = np.asarray(objective.to_numpy(x), dtype=dtype).reshape(-1)
    n = x_host.size
    objective.n_fevals += 1 + 2 * n
    up, down = _steps(x_host, dtype, typical)
    if n and getattr(getattr(objective, "problem", None), "pointwise_residuals", False):
        # Row k of `points` is point k: x, the n "up" points, then the n "down" points; it
        # goes in as x of shape (n, 2n + 1, 1), the parameters' columns.
        points = np.empty((2 * n + 1, n), dtype=dtype)
        points[:] = x_host
        flat = points.reshape(-1)  # entry (1 + k, k) is flat n + k(n + 1), (1 + n + k, k)
        flat[n:n * (n + 1):n + 1] = up  # is n(n + 1) + k(n + 1): strided slices, no
        flat[n * (n + 1)::n + 1] = down  # fancy indexing
        batch = np.asarray(objective.to_numpy(residuals(objective.from_numpy(
            points.T[:, :, None]))), dtype=np.float64)
        if batch.ndim == 2 and batch.shape[0] == 2 * n + 1:
            distance = up.astype(np.float64) - down
            jac = (batch[1:n + 1] - batch[n + 1:]) / distance[:, None]
            return objective.from_numpy(batch[0]), objective.from_numpy(jac.T)
    r = residuals(x)
    r_host = np.asarray(objective.to_numpy(r), dtype=np.float64).reshape(-1)
    columns = np.empty((r_host.size, n))
    for j in range(n):
        point_up, point_down = x_host.copy(), x_host.copy()
        point_up[j], point_down[j] = up[j], down[j]
        r_up = np.asarray(objective.to_numpy(residuals(objective.from_numpy(point_up))),
                          dtype=np.float64).reshape(-1)
        r_down = np.asarray(objective.to_numpy(residuals(objective.from_numpy(point_down))),
                            dtype=np.float64).reshape(-1)
        columns[:, j] = (r_up - r_down) / (float(up[j]) - float(down[j]))
    return r, objective.from_numpy(columns)


_CBRT_EPS = {np.dtype(t): float(np.finfo(t).eps) ** (1.0 / 3.0)
             for t in (np.float64, np.float32)}


def _steps(x: np.ndarray, dtype: np.dtype, typical: float = 0.0
           ) -> tuple[np.ndarray, np.ndarray]:
    """The points x ± h (in the run's dtype), h_j = eps^(1/3)·max(|x_j|, typical)
    (eps^(1/3) where that is 0), the step taken made exactly representable: up − x and
    x − down are the same."""
    cbrt_eps = _CBRT_EPS.get(dtype) or float(np.finfo(dtype).eps) ** (1.0 / 3.0)
    scale = np.abs(x) if x.dtype == np.float64 else np.abs(x).astype(np.float64)
    if typical:
        scale = np.maximum(scale, typical)
    elif np.count_nonzero(scale) < scale.size:
        scale[scale == 0] = 1.0
    up = x + (cbrt_eps * scale).astype(dtype, copy=False)  # rounded to the run's dtype
    return up, x - (up - x)
