"""The residuals and their Jacobian at one point, in float64 numpy, for the statistics.

`jacobian_at` is the one place that computes them: from the backend's own
`residuals_and_jacobian` where its objective has one (the issue-15 Backend contract), else
here in numpy by complex step — exact to rounding for the analytic functions of the
language, p evaluations in complex arithmetic — or, where the model is not analytic (abs),
by central differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def jacobian_at(problem: Any, data: Mapping[str, Any], x: Any, objective: Any = None,
                analytic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(r, J) at x, float64: r the residuals (m,), J = dr/dx (m, p). `analytic`: False
    where the residuals use a function complex step cannot differentiate (abs)."""
    x = np.asarray(x, dtype=np.float64)
    own = getattr(objective, "residuals_and_jacobian", None)
    if own is not None and getattr(objective, "dtype", None) == "float64":
        r, J = own(objective.from_numpy(x))
        return (np.asarray(objective.to_numpy(r), dtype=np.float64),
                np.asarray(objective.to_numpy(J), dtype=np.float64))
    return _numpy_jacobian(problem, data, x, analytic)


def _numpy_jacobian(problem: Any, data: Mapping[str, Any], x: np.ndarray, analytic: bool
                    ) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        r = np.asarray(problem.residuals(x, data, np), dtype=np.float64)
        if not analytic:
            return r, _central(problem, data, x, r)
        J = np.empty((r.size, x.size))
        h = 1e-20  # complex step: Im r(x + ih·e_k)/h = ∂r/∂x_k + O(h²), no cancellation
        for k in range(x.size):
            z = x.astype(np.complex128)
            z[k] += 1j * h
            value = np.asarray(problem.residuals(z, data, np))
            if not np.iscomplexobj(value):  # abs() and the like: not analytic
                return r, _central(problem, data, x, r)
            J[:, k] = value.imag / h
    return r, J


def _central(problem: Any, data: Mapping[str, Any], x: np.ndarray, r: np.ndarray
             ) -> np.ndarray:
    J = np.empty((r.size, x.size))
    for k in range(x.size):
        h = np.finfo(np.float64).eps ** (1 / 3) * max(1.0, abs(x[k]))
        up, down = x.copy(), x.copy()
        up[k] += h
        down[k] -= h
        J[:, k] = (np.asarray(problem.residuals(up, data, np))
                   - np.asarray(problem.residuals(down, data, np))) / (2 * h)
    return J
