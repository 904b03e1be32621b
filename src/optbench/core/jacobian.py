"""The Jacobian of residuals by central differences, for backends without automatic
differentiation (fd) and as the generic fallback of Objective.residuals_and_jacobian.

Steps are relative to each parameter, h_j = eps^(1/3)·|x_j| (eps^(1/3) where x_j is 0):
model parameters have any scale (NIST Misra1a's b2 is 5e-4), and a step of eps^(1/3)·1
there would be 1% of the parameter, biasing the Jacobian by ~1e-4 and with it the point
where Jᵀr = 0. The step actually taken is made exactly representable, and the quotient
divides by the true distance between the two points.
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
    columns = np.empty((r_host.size, x_host.size))
    for j in range(x_host.size):
        h = dtype.type(cbrt_eps * (abs(float(x_host[j])) or 1.0))
        up, down = x_host.copy(), x_host.copy()
        up[j] = x_host[j] + h
        down[j] = x_host[j] - (up[j] - x_host[j])
        r_up = np.asarray(objective.to_numpy(residuals(objective.from_numpy(up))),
                          dtype=np.float64).reshape(-1)
        r_down = np.asarray(objective.to_numpy(residuals(objective.from_numpy(down))),
                            dtype=np.float64).reshape(-1)
        columns[:, j] = (r_up - r_down) / (float(up[j]) - float(down[j]))
    return r, objective.from_numpy(columns)
