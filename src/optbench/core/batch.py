"""Batched residuals: F independent fits of one pointwise model, evaluated as one program.

The layout (issue 16): the fits' parameters are X of shape (F, p); the data's arrays hold
one row per fit, shape (F, m) (m points each; a column that is the same for every fit may
be (1, m)). Parameter i reaches the problem's `residuals` as the column X[:, i:i+1] (F, 1),
which broadcasts against the (F, m) data, so the residuals come back (F, m): no new language
work, the compiled Model already broadcasts. The Jacobian is (F, m, p).

Here are the generic pieces Objective's batched methods use (core/backend.py):
  values(X)                  the list of p columns the problem's residuals take
  central_batch_jacobian     the fallback for backends without automatic differentiation:
                             central differences of each parameter over the whole batch
                             (2p + 1 batch evaluations), written against `xp`, so the batch
                             stays where the backend keeps it
  take(data, rows)           the data of a subset of the fits (the solver's compaction)
Backends with reverse mode override Objective.batched_residuals_and_jacobian with the
pointwise trick: the parameters broadcast to (p, F, m), one backward pass of sum(r).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def values(X: Any) -> list[Any]:
    """The p parameter columns X[:, i:i+1], each (F, 1)."""
    return [X[:, i:i + 1] for i in range(X.shape[1])]


def is_array(value: Any) -> bool:
    """A backend array (numpy, torch, jax) rather than a compiled expression or a table."""
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, type)


def take(data: Mapping[str, Any], rows: Any, n_fits: int) -> dict[str, Any]:
    """The data of the fits `rows` (an index array of the data's own kind): every array
    with one row per fit (leading dimension n_fits) is indexed; the rest is kept."""
    return {k: v[rows] if is_array(v) and len(v.shape) >= 1 and v.shape[0] == n_fits
            else v for k, v in data.items()}


def central_batch_jacobian(residuals: Callable[[list[Any]], Any], X: Any, xp: Any,
                           eps: float) -> tuple[Any, Any]:
    """(r, J) of shape (F, m) and (F, m, p) by central differences, each parameter of every
    fit stepped at once: h = eps^(1/3)·|x| (eps^(1/3) where x is 0, see core/jacobian.py),
    the step taken made exact ((x + h) − x) and the quotient divided by the true distance."""
    cols = values(X)
    r = residuals(cols)
    cbrt = eps ** (1.0 / 3.0)
    jac = []
    for k, xk in enumerate(cols):
        h = cbrt * xp.where(xk == 0, xp.ones_like(xk), xp.abs(xk))
        up = xk + h
        down = xk - (up - xk)
        r_up = residuals([*cols[:k], up, *cols[k + 1:]])
        r_down = residuals([*cols[:k], down, *cols[k + 1:]])
        jac.append((r_up - r_down) / (up - down))
    return r, xp.swapaxes(xp.stack(jac, axis=1), 1, 2)  # (F, p, m) blocks, (F, m, p) view


def check_batched(problem: Any) -> None:
    """Batched fits need residuals that broadcast point by point (Problem.
    pointwise_residuals, the model problem's); TypeError otherwise."""
    if not getattr(problem, "pointwise_residuals", False):
        name = getattr(problem, "name", type(problem).__name__)
        raise TypeError(f"problem {name} does not declare pointwise residuals: batched "
                        "fits need residuals that broadcast over a leading batch dimension")


def eps_of(dtype: str) -> float:
    return float(np.finfo(np.dtype(dtype)).eps)
