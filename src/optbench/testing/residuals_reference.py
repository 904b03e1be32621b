"""Reference residuals and Jacobians in numpy, for the kit's least-squares checks: the
problem's own residuals evaluated with xp = numpy, and their Jacobian by central
differences (steps relative to each coordinate, as optbench.core.jacobian takes them),
good to about eps^(2/3) ≈ 4e-11 relative on smooth residuals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# The Jacobian's tolerance, relative to its largest entry, by how the backend
# differentiates: exact backends differ from the central-difference reference only by that
# reference's own error (~1e-10 measured on the built-in problems and probes); approximate
# ones (central differences themselves) by about twice it, 1e-6 as for their gradients.
JACOBIAN_TOL = {"exact": 1e-7, "approximate": 1e-5}
# sum(r²) against f: both are sums of the same squares in another order (a mean scaled by
# 1/n against squares scaled by 1/sqrt(n)²), a few eps apart.
SUM_TOL = 1e-10


def numpy_residuals(problem: Any, data: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    return np.asarray(problem.residuals(np.asarray(x, dtype=np.float64), data, np),
                      dtype=np.float64)


def central_jacobian(problem: Any, data: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    h_base = np.finfo(np.float64).eps ** (1.0 / 3.0)
    columns = []
    for j in range(x.size):
        h = h_base * (abs(float(x[j])) or 1.0)
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        columns.append((numpy_residuals(problem, data, up)
                        - numpy_residuals(problem, data, down)) / (up[j] - down[j]))
    return np.stack(columns, axis=1) if columns else np.zeros((0, 0))


def relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    """max|a − b| relative to max|b| (1 where b is all zero)."""
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) / (scale or 1.0) if a.size else 0.0
