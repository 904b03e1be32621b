"""Probe problems: small objectives, each built to make one failure visible (float32
rounding, overflow, NaN, a constant gradient), and a numpy objective that depends on no
backend. They are written with numpy alone and registered nowhere: a check hands them to the
backend under test directly, or through a registry of its own (see `_common.run_registry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from optbench.core import Instance, Objective, Problem


class _Probe(Problem):
    """A fixed task: no parameters, no randomness."""

    variables_: tuple[str, ...] = ()

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return self.variables_

    def data(self) -> dict[str, np.ndarray]:
        return {}

    def start(self) -> np.ndarray:
        return np.zeros(len(self.variables_))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        return Instance(data=self.data(), x0=self.start(), variables=self.variables_)


class PrecisionProbe(_Probe):
    """f(x) = Σ x·((c + 10⁸) − 10⁸) with c = (1, 2, 3), at x = (1, 1, 1).

    In float64, (c + 10⁸) − 10⁸ = c exactly: f = 6 and ∇f = c. In float32 the spacing of
    numbers near 10⁸ is 8, so c + 10⁸ rounds to 10⁸ and (c + 10⁸) − 10⁸ = 0: f = 0, ∇f = 0.
    The result does not depend on the order of operations (no sum of many terms whose order
    a library may choose): elementwise float32 arithmetic gives 0, and anything else means
    the work was done in a wider type. A backend that computes in float64 and casts the
    result back to float32 passes every dtype test of its arrays but returns 6 here.
    """

    name = "probe-precision"
    description = "cancellation that float32 rounding makes visible"
    variables_ = ("a", "b", "c")
    BIG = 1e8
    C = (1.0, 2.0, 3.0)
    EXPECTED: ClassVar[dict[str, tuple[float, tuple[float, ...]]]] = {
        "float64": (6.0, C), "float32": (0.0, (0.0, 0.0, 0.0))}

    def data(self) -> dict[str, np.ndarray]:
        return {"c": np.array(self.C), "big": np.full(3, self.BIG)}

    def start(self) -> np.ndarray:
        return np.ones(3)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(x * ((data["c"] + data["big"]) - data["big"]))


class SmallQuadratic(_Probe):
    """f(x) = Σ w·(x − c)², w = (1, 2, 3), c = (1, −2, 0.5): a tiny task with data on the
    device, for the device and availability checks, with its exact gradient for the kit's own
    numpy objective."""

    name = "probe-quadratic"
    description = "a tiny weighted quadratic"
    variables_ = ("a", "b", "c")

    def data(self) -> dict[str, np.ndarray]:
        return {"w": np.array([1.0, 2.0, 3.0]), "c": np.array([1.0, -2.0, 0.5])}

    def start(self) -> np.ndarray:
        return np.array([0.5, 0.25, -1.0])

    has_residuals = True

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(data["w"] * xp.square(x - data["c"]))

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sqrt(data["w"]) * (x - data["c"])


class Overflow(_Probe):
    """f(x) = Σ (0·(eᵡ − eᵡ) − x): linear, unbounded below, until eᵡ overflows (x > 709 in
    float64, > 88 in float32) and 0·(∞ − ∞) makes f NaN. With SGD at lr 100 from 0 that
    happens after 8 steps in float64 and 1 in float32. Analytic everywhere, so backends that
    evaluate in complex arithmetic (complex step) reach the NaN too."""

    name = "probe-overflow"
    description = "f becomes NaN once exp(x) overflows"
    variables_ = ("a", "b")

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(0.0 * (xp.exp(x) - xp.exp(x)) - x)


class NaNAtStart(_Probe):
    """f = Σ x² + NaN: f is NaN at the start while the gradient, 2x, is finite."""

    name = "probe-nan-start"
    description = "f is NaN everywhere"
    variables_ = ("a", "b")

    def data(self) -> dict[str, np.ndarray]:
        return {"nan": np.array([np.nan])}

    def start(self) -> np.ndarray:
        return np.array([1.0, -1.0])

    has_residuals = True

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(x)) + xp.sum(data["nan"])

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.concatenate([x, data["nan"]])  # its square is NaN: f is NaN, J finite


class Barrier(_Probe):
    """f(x) = Σ(x − 1)² + 0·√(10⁻³ − x₁) from x = 0: the minimum at (1, 1) lies beyond a
    barrier where f is NaN (x₁ > 10⁻³), so every optimizer that makes progress reaches it
    within a few steps — first-order methods by their first steps, Newton-like ones by their
    first jump. The barrier is farther than a finite-difference step (~6e-6), so the gradient
    at the start is finite on every backend. (√ of a negative number is NaN for numpy and
    torch; not analytic, so used only on the built-in backends.)"""

    name = "probe-barrier"
    description = "f becomes NaN on the way to the minimum"
    variables_ = ("a", "b")
    EDGE = 1e-3

    has_residuals = True

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(x - 1.0)) + 0.0 * xp.sqrt(self.EDGE - x[0])

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        # 0·sqrt(.) squared is 0 before the barrier and NaN beyond it, as in f.
        return xp.concatenate([x - 1.0, 0.0 * xp.sqrt(self.EDGE - x[:1])])


class Linear(_Probe):
    """f(x) = c·x + 1.5 with c = (2, −3, 0.5): a constant gradient, c, everywhere.

    Backends that differentiate by building a graph, or that choose a step from curvature,
    meet a degenerate case here: the gradient does not depend on x (no graph from x to g;
    a zero second derivative). The points span signs and scales, 0 included."""

    name = "probe-linear"
    description = "a linear objective: its gradient is constant"
    variables_ = ("a", "b", "c")
    C = (2.0, -3.0, 0.5)
    POINTS = ((0.0, 0.0, 0.0), (1.5, -0.25, 3.0), (-40.0, 7.0, 1e3))

    def data(self) -> dict[str, np.ndarray]:
        return {"c": np.array(self.C)}

    def start(self) -> np.ndarray:
        return np.array(self.POINTS[1])

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(data["c"] * x) + 1.5


PROBES = (PrecisionProbe(), SmallQuadratic(), Overflow(), NaNAtStart(), Barrier(),
          Linear())


class NumpyQuadraticObjective(Objective):
    """SmallQuadratic's exact value and gradient (and residuals and their Jacobian) on
    numpy: an objective that depends on no backend, for checking optimizers on their own."""

    def __init__(self) -> None:
        super().__init__()
        self.xp = np
        self.dtype = "float64"
        data = SmallQuadratic().data()
        self.w, self.c = data["w"], data["c"]

    def value_and_grad(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        self.n_fevals += 1
        d = x - self.c
        return np.sum(self.w * d * d), 2.0 * self.w * d

    def residuals(self, x: Any) -> Any:
        self.n_fevals += 1
        return np.sqrt(self.w) * (x - self.c)

    def residuals_and_jacobian(self, x: Any) -> tuple[Any, Any]:
        self.n_evals += 1
        self.n_fevals += 1
        return np.sqrt(self.w) * (x - self.c), np.diag(np.sqrt(self.w))

    def from_numpy(self, array: Any) -> Any:
        return np.array(array, dtype=np.float64)


class DecayFit(_Probe):
    """A model fitted to points: r_j = y_j − a·exp(−b·t_j), declared pointwise (reverse-mode
    backends may take its Jacobian in one backward pass), with its exact Jacobian."""

    name = "probe-decay"
    description = "an exponential decay fitted to five points (pointwise residuals)"
    variables_ = ("a", "b")
    has_residuals = True
    pointwise_residuals = True
    T = (0.0, 0.5, 1.0, 2.0, 4.0)
    Y = (2.0, 1.3, 0.9, 0.35, 0.1)

    def data(self) -> dict[str, np.ndarray]:
        return {"t": np.array(self.T), "y": np.array(self.Y)}

    def start(self) -> np.ndarray:
        return np.array([1.5, 0.7])

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return data["y"] - x[0] * xp.exp(-x[1] * data["t"])

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(self.residuals(x, data, xp)))

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        t = np.array(self.T)
        e = np.exp(-x[1] * t)
        return np.stack([-e, x[0] * t * e], axis=1)


class CoupledSquares(_Probe):
    """r = (10·(b − a²), 1 − a, a·b − 2): residuals that mix the unknowns (not pointwise),
    with the exact Jacobian."""

    name = "probe-coupled"
    description = "residuals that mix the unknowns"
    variables_ = ("a", "b")
    has_residuals = True

    def start(self) -> np.ndarray:
        return np.array([-1.2, 1.0])

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0], x[0] * x[1] - 2.0])

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(self.residuals(x, data, xp)))

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        return np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0], [x[1], x[0]]])
