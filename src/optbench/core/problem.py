"""The Problem contract: data and a starting point in numpy, an objective written once for any
array namespace `xp`, and (optionally) the known optimum.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from optbench.core.params import Param


@dataclass(frozen=True)
class Reference:
    """The known optimum in closed form.

    `unique` is False when the minimizers form a family (a puzzle with a nullspace): then `x`
    is one member (the minimum-norm one) and the distance to it says nothing about success.
    `details` holds extra analysis (rank, nullspace, ...) that JSON records carry along.
    """

    x: Any  # numpy array
    f: float
    unique: bool = True
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"x": [float(v) for v in self.x], "f": float(self.f), "unique": self.unique,
                **self.details}


@dataclass(frozen=True)
class Instance:
    """One concrete task: what `Problem.make` returns.

    data: named numpy arrays, converted once by the backend when it prepares.
    x0: the starting point (numpy, float64) drawn from the seed.
    variables: the names of the unknowns, in the order of x.
    """

    data: Mapping[str, Any]
    x0: Any
    variables: tuple[str, ...]
    basis: Any = None
    """Optional change of variables: the optimizer works on z and the user's unknowns are
    x = basis @ z (a better-conditioned basis for the same problem). x0 is in z; records,
    references and --x0 are in the user's x."""

    def to_user(self, z: Any) -> Any:
        import numpy as np

        z = np.asarray(z, dtype=np.float64)
        return z if self.basis is None else z @ np.asarray(self.basis).T

    def from_user(self, x: Any) -> Any:
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        return x if self.basis is None else np.linalg.solve(np.asarray(self.basis), x)

    def finalize(self, x: Any, dtype: str) -> tuple[Any, str]:
        """The user's x at the end of a run of this dtype, and a note for the record's
        message ("" when none). Unchanged here; an instance may refine a converged x in
        arithmetic the backend does not have, and must then say so in the note."""
        return x, ""


@dataclass(frozen=True)
class LeastSquares:
    """A declaration that a problem's objective is mean((data[target] − data[design] @ x)²).

    The objective stays the truth and every backend may differentiate it as written; a
    backend may instead stream the data through a kernel of the same mathematics (torch
    does for large samples, where autograd's full-length temporaries cost more than the
    data itself). The design matrix is best kept column-major (numpy order="F"), so that a
    block of rows is `p` contiguous runs.
    """

    design: str
    target: str


class Problem(ABC):
    """A family of optimization tasks, written once for every backend.

    Subclasses set `name`, `description`, `params` and implement `variables`, `make` and
    `objective`; `reference` is optional, and so are `least_squares` and `residuals`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    least_squares: ClassVar[LeastSquares | None] = None
    """Set when `objective` is a mean of squared residuals of a linear model (see above)."""
    has_residuals: ClassVar[bool] = False
    """True when the problem implements `residuals`: its objective is a sum of squares, and
    the least-squares optimizers (lm, gn) may run on it."""
    pointwise_residuals: ClassVar[bool] = False
    """Optional, with has_residuals: `residuals` also accepts x of shape (n, m), m the
    number of residuals, and then computes residual j from column j alone (x[i] is a row
    of m values, one per point, broadcast against the data as a scalar x[i] would be): true
    of a model fitted to data points, r_j = y_j − model(data_j, x). Reverse-mode backends
    then take the whole Jacobian in one backward pass (the gradient of sum(r) with respect
    to that (n, m) array is Jᵀ) instead of one pass per residual or per unknown."""

    @abstractmethod
    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Names of the unknowns for these parameters (known before any data is made)."""

    @abstractmethod
    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        """Data and starting point from `numpy.random.default_rng(seed)`; no backend involved.

        Raise `optbench.errors.UsageError` for bad parameters (a malformed data file...).
        """

    @abstractmethod
    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        """The scalar to minimize, in the namespace `xp` (numpy, torch, autograd.numpy...).

        No in-place writes and no Python branching on array values, so that every backend
        can differentiate it.
        """

    def reference(self, instance: Instance) -> Reference | None:
        """The known optimum, or None when no closed form is known."""
        return None

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        """The 1-D array r, in the namespace `xp`, with objective(x, data, xp) == sum(r²)
        (a mean of squares scales its residuals by 1/sqrt(n)). Only where `has_residuals`.

        Written under the same rules as `objective` (no in-place writes, no branching on
        values), for a single point x (no batch dimensions): backends differentiate it
        to get the Jacobian (Objective.residuals_and_jacobian).
        """
        raise NotImplementedError(f"problem {getattr(self, 'name', type(self).__name__)} "
                                  "declares no residuals (has_residuals is False)")
