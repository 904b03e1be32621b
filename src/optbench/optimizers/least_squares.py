"""What the least-squares optimizers (lm, gn) share: the residuals and Jacobian on the host,
MINPACK's scaled gradient test, and the hyperparameters and statuses of its tests.

Where the arithmetic runs: the backend evaluates r(x) and J(x) (its own automatic
differentiation, in its dtype and on its device); r and J then come to the host once per
Jacobian (r alone once per trial point), and the small linear algebra — the SVD of the m×n
Jacobian and the n×n trust-region subproblem — is numpy in float64. Least-squares fits have
few parameters, so that work is microseconds, and it is the same numpy code on every
backend: trajectories differ only by the rounding of r and J.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from optbench.core import Param

FTOL_HELP = ("converged when both the actual and the predicted relative reduction of the "
             "sum of squares are at most this")
XTOL_HELP = "converged when the relative change of the scaled x is at most this"
GTOL_HELP = ("converged when the cosine between the residuals and every column of the "
             "Jacobian is at most this")

# The defaults ask for about ten significant digits of x and of the sum of squares: what a
# fit's reader takes from its table, and what NIST's reference fits are judged on (LRE >= 8
# is "good"). MINPACK's sqrt(eps) ~1.5e-8 stops earlier, at 5-7 digits on ill-conditioned
# fits; the extra iterations cost little, as lm converges fast near the solution.
FTOL = 1e-10
XTOL = 1e-10
GTOL = 0.0


def tolerance_params() -> tuple[Param, ...]:
    return (
        Param("ftol", "float", FTOL, FTOL_HELP, low=0),
        Param("xtol", "float", XTOL, XTOL_HELP, low=0),
        Param("gtol", "float", GTOL, GTOL_HELP, low=0),
    )


class Evaluation(NamedTuple):
    """r and J at a point, on the host in float64, and what the steps need of them."""

    r: np.ndarray  # (m,)
    jac: np.ndarray  # (m, n)
    fnorm: float  # ||r||
    colnorms: np.ndarray  # ||J[:, j]||
    f: Any  # sum r², in the backend's arrays (the step's f)
    g: Any  # 2 Jᵀr, in the backend's arrays (the step's g)


def host(objective: Any, array: Any) -> np.ndarray:
    return np.asarray(objective.to_numpy(array), dtype=np.float64)


def evaluate(objective: Any, x: Any) -> Evaluation:
    r_b, j_b = objective.residuals_and_jacobian(x)
    r = host(objective, r_b).reshape(-1)
    jac = host(objective, j_b).reshape(r.size, -1)
    with np.errstate(over="ignore", invalid="ignore"):
        fnorm = float(np.linalg.norm(r))
        colnorms = np.linalg.norm(jac, axis=0)
        grad = 2.0 * (jac.T @ r)
    f = objective.from_numpy(np.asarray(fnorm * fnorm))
    return Evaluation(r, jac, fnorm, colnorms, f, objective.from_numpy(grad))


def trial_norm(objective: Any, x_trial: Any) -> float:
    """||r|| at a trial point; inf where r is not finite (the step is then too long)."""
    r = host(objective, objective.residuals(x_trial))
    with np.errstate(over="ignore", invalid="ignore"):
        norm = float(np.linalg.norm(r))
    return norm if np.isfinite(norm) else np.inf


def scaled_gradient(e: Evaluation) -> float:
    """MINPACK's gnorm: max_j |J[:, j]·r| / (||J[:, j]||·||r||), over nonzero columns (0
    where r is 0): the cosine of the angle between r and the Jacobian's columns."""
    if e.fnorm == 0:
        return 0.0
    nonzero = e.colnorms > 0
    if not np.any(nonzero):
        return 0.0
    dots = np.abs(e.jac[:, nonzero].T @ e.r)
    return float(np.max(dots / (e.colnorms[nonzero] * e.fnorm)))


def point(objective: Any, x_host: np.ndarray) -> tuple[np.ndarray, Any]:
    """x as the backend holds it (rounded to the run's dtype) and the backend's array."""
    x_b = objective.from_numpy(x_host)
    return np.asarray(x_host.astype(np.dtype(objective.dtype)), dtype=np.float64), x_b


def machine_eps(objective: Any) -> float:
    return float(np.finfo(np.dtype(objective.dtype)).eps)


CONVERGED = "converged"
STALLED = "stalled"
