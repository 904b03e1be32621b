"""The Jacobian of residuals by central differences, for backends without automatic
differentiation (fd) and as the generic fallback of Objective.residuals_and_jacobian.

Steps are relative to each parameter, h_j = eps^(1/3)·|x_j| (eps^(1/3) where x_j is 0):
model parameters have any scale (NIST Misra1a's b2 is 5e-4), and a step of eps^(1/3)·1
there would be 1% of the parameter, biasing the Jacobian by ~1e-4 and with it the point
where Jᵀr = 0. The step actually taken is made exactly representable, and the quotient
divides by the true distance between the two points.

Pointwise residuals (Problem.pointwise_residuals: r_j from data point j alone, the data
broadcast against x[i]) take every perturbed point in one call: x of shape (n, 2n, 1), x[i]
a column of the 2n points' values, gives r of shape (2n, m), one row per point. That is one
evaluation's worth of Python and array-library calls instead of 2n (NIST Thurber, n=7:
~15 vectorized numpy calls instead of ~200). Where the residuals do not come back in that
shape, the points are evaluated one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def central_jacobian(residuals: Callable[[Any], Any], x: Any, objective: Any
                     ) -> tuple[Any, Any]:
    """(r(x), J) for `residuals` written against the objective's arrays: points are made
    on the host (numpy, the run's dtype) and handed over with objective.from_numpy;
    objective.n_fevals grows by 2n + 1."""
    dtype = np.dtype(objective.dtype)
    x_host = np.asarray(objective.to_numpy(x), dtype=dtype).reshape(-1)
    cbrt_eps = float(np.finfo(dtype).eps) ** (1.0 / 3.0)
    r = residuals(x)
    objective.n_fevals += 1 + 2 * x_host.size
    r_host = np.asarray(objective.to_numpy(r), dtype=np.float64).reshape(-1)
    n = x_host.size
    steps = (cbrt_eps * np.where(x_host == 0, 1.0, np.abs(x_host.astype(np.float64)))
             ).astype(dtype)
    up = x_host + steps  # rounded to the run's dtype: the step taken is (x+h) − x
    down = x_host - (up - x_host)
    if n and getattr(getattr(objective, "problem", None), "pointwise_residuals", False):
        # Column k of `points` is point k: the n "up" points, then the n "down" points.
        points = np.tile(x_host[:, None], (1, 2 * n))
        idx = np.arange(n)
        points[idx, idx] = up
        points[idx, n + idx] = down
        batch = np.asarray(objective.to_numpy(residuals(objective.from_numpy(
            points[:, :, None]))), dtype=np.float64)
        if batch.shape == (2 * n, r_host.size):
            distance = (up.astype(np.float64) - down.astype(np.float64))
            return r, objective.from_numpy(((batch[:n] - batch[n:]) / distance[:, None]).T)
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
