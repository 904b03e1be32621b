"""The Backend contract: turn a problem's objective into `value_and_grad` in some array library.

A backend does its heavy imports (torch, autograd, jax) inside `prepare`, never at module
import, so that `optbench --help` and `optbench list` stay fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

DTYPES = ("float64", "float32")


class Objective(ABC):
    """A prepared objective: data already converted, ready to be evaluated many times.

    Attributes every implementation sets:
      xp      the array namespace optimizers compute with (numpy, torch, autograd.numpy...)
      dtype   "float64" or "float32"
      device  "cpu", "cuda", ...
      asynchronous  True when results arrive later than the call returns (CUDA): the runner
                    then reads values back to the host only at sampled steps.
    `n_evals` counts calls of `value_and_grad` and of `residuals_and_jacobian` (one Jacobian
    is one evaluation, as one gradient is); `n_fevals` counts evaluations of the objective or
    of the residuals themselves (equal to n_evals for automatic differentiation, 2n+1 per
    gradient or Jacobian for central differences; `residuals(x)` adds one to n_fevals only).

    Least squares (problems with `has_residuals`): `residuals(x)` and
    `residuals_and_jacobian(x)`. The generic versions here need `problem` and `data` (the
    converted data, as every built-in objective keeps it) and take the Jacobian by central
    differences on the host; backends with automatic differentiation override them.
    """

    xp: Any
    dtype: str
    device: str = "cpu"
    asynchronous: bool = False
    problem: Any = None
    """The problem this objective evaluates (set by the built-in backends; the generic
    least-squares methods below need it, and `data`)."""

    def __init__(self) -> None:
        self.n_evals = 0
        self.n_fevals = 0

    @abstractmethod
    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        """f(x) and its gradient, both in the backend's arrays (f a 0-d array)."""

    @abstractmethod
    def from_numpy(self, array: Any) -> Any:
        """A numpy array as this backend's array, in its dtype and on its device."""

    def convert_data(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The problem's data in this backend's arrays, converted once when preparing.

        Only numpy arrays are converted; anything else a problem keeps in its data (a
        compiled expression, say) is handed to its objective as it is.
        """
        import numpy as np

        return {k: self.from_numpy(v) if isinstance(v, np.ndarray) else v
                for k, v in data.items()}

    def to_numpy(self, array: Any) -> Any:
        """This backend's array as a numpy array (host copy)."""
        import numpy as np

        return np.asarray(array)

    def residual_problem(self) -> Any:
        """The problem, checked to declare residuals: else a TypeError that says so."""
        problem = self.problem
        if problem is None or not getattr(problem, "has_residuals", False):
            name = getattr(problem, "name", None)
            raise TypeError(
                f"problem {name} declares no residuals (has_residuals is False): least "
                "squares needs a problem whose objective is a sum of squares" if name else
                f"{type(self).__name__} does not record its problem (Objective.problem): "
                "set it in prepare, or implement residuals_and_jacobian")
        return problem

    def residuals(self, x: Any) -> Any:
        """The residuals r(x), 1-D, in this backend's arrays: sum(r²) is the objective.
        Counted in n_fevals (not n_evals: no derivative is taken)."""
        problem = self.residual_problem()
        self.n_fevals += 1
        return problem.residuals(x, self.data, self.xp)

    def residuals_and_jacobian(self, x: Any) -> tuple[Any, Any]:
        """(r, J): r(x) of shape (m,) and J = dr/dx of shape (m, n), in this backend's
        arrays, dtype and device. One call is one evaluation (n_evals).

        Generic version: central differences of `residuals` at points made on the host
        (optbench.core.jacobian), 2n + 1 residual evaluations; exact backends override it.
        """
        from optbench.core.jacobian import central_jacobian

        problem = self.residual_problem()
        self.n_evals += 1
        return central_jacobian(lambda z: problem.residuals(z, self.data, self.xp), x, self)

    # Batched fits (issue 16; layout in optbench.core.batch): X (F, p) in this backend's
    # arrays, `data` the fits' data with one row per fit (default: self.data).
    def batch_problem(self, data: Mapping[str, Any] | None) -> tuple[Any, Mapping[str, Any]]:
        """(problem, data) for a batched evaluation: the problem checked to declare
        pointwise residuals (TypeError otherwise), `data` or else this objective's."""
        from optbench.core import batch

        problem = self.residual_problem()
        batch.check_batched(problem)
        return problem, self.data if data is None else data

    def batched_residuals(self, X: Any, data: Mapping[str, Any] | None = None) -> Any:
        """r of shape (F, m): the residuals of F fits at once (one n_fevals)."""
        from optbench.core import batch

        problem, data = self.batch_problem(data)
        self.n_fevals += 1
        return problem.residuals(batch.values(X), data, self.xp)

    def batched_residuals_and_jacobian(self, X: Any, data: Mapping[str, Any] | None = None
                                       ) -> tuple[Any, Any]:
        """(r, J) of shape (F, m) and (F, m, p), on the backend's device. Generic version:
        central differences over the whole batch (2p + 1 batch evaluations, in xp);
        backends with automatic differentiation override it."""
        from optbench.core import batch

        problem, data = self.batch_problem(data)
        self.n_evals += 1
        self.n_fevals += 1 + 2 * int(X.shape[1])
        return batch.central_batch_jacobian(
            lambda cols: problem.residuals(cols, data, self.xp), X, self.xp,
            batch.eps_of(self.dtype))

    # Optional: hvp(x, v) -> H(x)·v in the backend's arrays, for second-order optimizers
    # (torch and autograd have it; optimizers look for it with getattr).

    def warm_up(self, method: Any, x0: Any) -> None:
        """Optional: for backends that compile each operation on first use (JAX), run a few
        steps of `method` from `x0` untimed and uncounted, so that cost lands in setup_s."""
        return None

    def compiled_loop(self, method: Any, steps: int, x0: Any) -> Any:
        """Optional, for backends with `compiles = True`: compile the whole loop of
        `steps` steps of `method` from `x0` now (this is set-up time) and return a callable
        `loop(n)` that runs about n more steps (at least one, never past `steps`), from where
        its previous call stopped, and returns (x reached, f at each point it stepped from).
        The runner calls it in chunks, checking --max-time between them. A callable that
        takes no argument runs every step at once, returning all their f values."""
        raise NotImplementedError(f"{type(self).__name__} has no compiled loop")

    def synchronize(self) -> None:
        """Wait for queued device work, so that a timer read next is true.

        Synchronous backends (numpy, torch on the CPU) have nothing to wait for.
        """
        return None


class Backend(ABC):
    """A way to evaluate and differentiate any problem's objective."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    dtypes: ClassVar[tuple[str, ...]] = DTYPES
    compiles: ClassVar[bool] = False
    """True when its objectives implement `compiled_loop` (`optbench run --compile`)."""
    differentiation: ClassVar[str] = "approximate"
    """"exact" (automatic differentiation: the conformance kit holds its gradients to 1e-9
    in float64) or "approximate" (finite differences and the like: 1e-6)."""
    heavy_modules: ClassVar[tuple[str, ...]] = ()
    """The packages it imports when used (e.g. ("torch",)): `available()` must not import
    them, and the kit checks that in a fresh process."""
    conformance: ClassVar[Mapping[str, Any]] = {}
    """Declared waivers of the kit's checks: {"waive": {"check" or "check:item": reason}};
    the report shows each reason."""

    def compile_note(self, device: str = "cpu") -> str | None:
        """What a user should hear before a `--compile` run starts on `device`: how long
        compiling takes and why, where that is long enough to look like a hang. None when
        compiling is quick."""
        return None

    def available(self, device: str = "cpu") -> str | None:
        """None when usable on `device`, else the reason it is not (in words).

        Must be cheap and must not import the heavy package: it runs for `optbench list`.
        """
        return None

    @abstractmethod
    def prepare(
        self, problem: Any, data: Mapping[str, Any], *, dtype: str, device: str
    ) -> Objective:
        """Convert `data` once and return the objective for `problem` on this backend."""
