"""The `ml` references: each convex problem's unique minimizer, computed in float64 numpy
by its own method — never by optbench's optimizers, so that reaching it is a test of them.

  ridge      the closed form: least squares of the stacked residuals (numpy lstsq, an
             orthogonal factorization: no normal equations, whose rounding is squared)
  logistic,  Newton's method with the exact gradient and Hessian written out here (not
  softmax    differentiated from the problems' objectives), a backtracking line search from
             0, to ‖∇f‖ ≤ 1e-12; each Newton step solves H·d = −g by Cholesky

The objectives, with A = [X, 1] (an unpenalized intercept) and λ the weights' penalty:
  logistic  mean_i softplus(z_i) − y_i z_i  + λ/2 ‖w‖²,  z = A·[w; b], y in {0, 1}
  softmax   mean_i logsumexp(Z_i) − Y_i·Z_i + λ/2 ‖W‖²,  Z = A·[W; b], Y one-hot,
            with b's last entry fixed at 0 (see ml.py: it removes a flat direction)
  ridge     mean_i (y_i − z_i)² + λ/2 ‖w‖²
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

GRAD_TOL = 1e-12


def with_ones(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _penalty_mask(d: int, per_row: int) -> np.ndarray:
    """1 on the weights, 0 on the intercept row (the last of d + 1 rows of per_row)."""
    mask = np.ones((d + 1, per_row))
    mask[d] = 0.0
    return mask.ravel()


def logistic_fgh(X: np.ndarray, y: np.ndarray, lam: float
                 ) -> Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray | None]]:
    A, n = with_ones(X), X.shape[0]
    mask = _penalty_mask(X.shape[1], 1)

    def fgh(theta: np.ndarray, hessian: bool = True):
        z = A @ theta
        f = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * np.sum(mask * theta ** 2)
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
        g = A.T @ (p - y) / n + lam * mask * theta
        if not hessian:
            return f, g, None
        H = (A.T * (p * (1.0 - p))) @ A / n + lam * np.diag(mask)
        return f, g, H

    return fgh


def softmax_fgh(X: np.ndarray, Y: np.ndarray, lam: float
                ) -> Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray | None]]:
    """θ is vec(B) row-major, B = [W; b] of shape (d + 1, K), without its last entry
    (b_{K-1} = 0): so θ's layout is the problem's, W row by row then b_0..b_{K-2}."""
    A, n, K = with_ones(X), X.shape[0], Y.shape[1]
    mask = _penalty_mask(X.shape[1], K)[:-1]

    def fgh(theta: np.ndarray, hessian: bool = True):
        B = np.append(theta, 0.0).reshape(-1, K)
        Z = A @ B
        m = Z.max(axis=1, keepdims=True)
        E = np.exp(Z - m)
        s = E.sum(axis=1, keepdims=True)
        P = E / s
        f = (np.mean(m[:, 0] + np.log(s[:, 0]) - np.sum(Y * Z, axis=1))
             + 0.5 * lam * np.sum(mask * theta ** 2))
        g = (A.T @ (P - Y) / n).ravel()[:-1] + lam * mask * theta
        if not hessian:
            return f, g, None
        # ∂²f/∂B[i,k]∂B[j,l] = mean_n A_ni A_nj P_nk (δ_kl − P_nl): the δ part is K blocks
        # on the diagonal, the rest −GᵀG with G[n, (i,k)] = A_ni P_nk (one large product,
        # several times faster than K² small ones)
        p = A.shape[1]
        G = (A[:, :, None] * P[:, None, :]).reshape(n, p * K)
        H = (-(G.T @ G)).reshape(p, K, p, K)
        for k in range(K):
            H[:, k, :, k] += (A.T * P[:, k]) @ A
        H = H.reshape(p * K, p * K)[:-1, :-1] / n + lam * np.diag(mask)
        return f, g, H

    return fgh


def newton(fgh: Callable, size: int, what: str, max_iter: int = 100) -> np.ndarray:
    """The minimizer of a smooth strictly convex f from 0: damped Newton steps until
    ‖∇f‖ ≤ GRAD_TOL (quadratic convergence near the optimum: a handful of steps)."""
    theta = np.zeros(size)
    f, g, H = fgh(theta)
    for _ in range(max_iter):
        if np.linalg.norm(g) <= GRAD_TOL:
            return theta
        L = np.linalg.cholesky(H)
        d = -np.linalg.solve(L.T, np.linalg.solve(L, g))
        t, slope = 1.0, float(g @ d)
        # f's own rounding, which the last steps' decrease (about ‖g‖²) falls below
        noise = 8 * np.finfo(float).eps * abs(f)
        while True:  # Armijo backtracking; near the optimum t = 1 is taken
            trial = theta + t * d
            f_new = fgh(trial, hessian=False)[0]
            if f_new <= f + 1e-4 * t * slope + noise or t < 1e-10:
                break
            t *= 0.5
        theta = trial
        f, g, H = fgh(theta)
    if np.linalg.norm(g) <= GRAD_TOL:
        return theta
    raise RuntimeError(f"{what}: Newton's method did not reach ‖∇f‖ <= {GRAD_TOL:g} in "
                       f"{max_iter} steps (‖∇f‖ = {np.linalg.norm(g):.3g})")


def ridge(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """[w; b] minimizing mean((y − Xw − b)²) + λ/2 ‖w‖²: the least-squares solution of
    [A/√n; √(λ/2)·[I 0]] θ ≈ [y/√n; 0]."""
    n, d = X.shape
    stacked = np.vstack([with_ones(X) / np.sqrt(n),
                         np.sqrt(lam / 2) * np.eye(d, d + 1)])
    rhs = np.concatenate([y / np.sqrt(n), np.zeros(d)])
    return np.linalg.lstsq(stacked, rhs, rcond=None)[0]
