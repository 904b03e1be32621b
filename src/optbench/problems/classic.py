"""Classic test functions with known optima: rosenbrock, beale, booth, himmelblau, and a
quadratic of chosen condition number.

Their starting points are the customary ones (fixed), except the quadratic's, drawn from the
seed like its data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench.core import Instance, Param, Problem, Reference
from optbench.hookspecs import hookimpl


class Rosenbrock(Problem):
    name = "rosenbrock"
    description = "n-dimensional Rosenbrock valley, start (-1.2, 1, -1.2, 1, ...), min at 1"
    params = (Param("n", "int", 2, "dimension", low=2, high=100_000),)

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f"x{i + 1}" for i in range(params["n"]))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        n = params["n"]
        x0 = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)
        return Instance(data={}, x0=x0, variables=self.variables(params))

    has_residuals = True

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(100.0 * xp.square(x[1:] - x[:-1] ** 2) + xp.square(1.0 - x[:-1]))

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])

    def reference(self, instance: Instance) -> Reference:
        return Reference(x=np.ones(len(instance.variables)), f=0.0)


class _TwoVariables(Problem):
    """A 2-D function of (x, y) with a fixed customary start."""

    start: tuple[float, float] = (0.0, 0.0)
    minimum: tuple[float, float] = (0.0, 0.0)
    unique = True

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return ("x", "y")

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        return Instance(data={}, x0=np.array(self.start, dtype=np.float64),
                        variables=("x", "y"))

    def reference(self, instance: Instance) -> Reference:
        return Reference(x=np.array(self.minimum), f=0.0, unique=self.unique)


class Beale(_TwoVariables):
    name = "beale"
    description = "Beale's function, start (1, 1), min 0 at (3, 0.5)"
    start, minimum = (1.0, 1.0), (3.0, 0.5)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        a, b = x[0], x[1]
        return ((1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2
                + (2.625 - a + a * b**3) ** 2)

    has_residuals = True

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        a, b = x[0], x[1]
        return xp.stack([1.5 - a + a * b, 2.25 - a + a * b**2, 2.625 - a + a * b**3])


class Booth(_TwoVariables):
    name = "booth"
    description = "Booth's function, start (0, 0), min 0 at (1, 3)"
    start, minimum = (0.0, 0.0), (1.0, 3.0)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        a, b = x[0], x[1]
        return (a + 2 * b - 7) ** 2 + (2 * a + b - 5) ** 2

    has_residuals = True

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        a, b = x[0], x[1]
        return xp.stack([a + 2 * b - 7, 2 * a + b - 5])


class Himmelblau(_TwoVariables):
    name = "himmelblau"
    description = "Himmelblau's function, start (0, 0), four minima of value 0 (one is (3, 2))"
    start, minimum, unique = (0.0, 0.0), (3.0, 2.0), False

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        a, b = x[0], x[1]
        return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2

    has_residuals = True

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        a, b = x[0], x[1]
        return xp.stack([a**2 + b - 11, a + b**2 - 7])


class Quadratic(Problem):
    name = "quadratic"
    description = "½(x−x*)ᵀA(x−x*), A with eigenvalues 1..kappa in a random basis"
    params = (
        Param("n", "int", 10, "dimension", low=1, high=2000),
        Param("kappa", "float", 100.0, "condition number of A", low=1),
    )

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f"x{i + 1}" for i in range(params["n"]))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        n, kappa = params["n"], params["kappa"]
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        eigenvalues = np.logspace(0.0, np.log10(kappa), n)
        a = (q * eigenvalues) @ q.T
        a = (a + a.T) / 2  # exactly symmetric
        x_star = rng.standard_normal(n)
        x0 = rng.standard_normal(n)
        return Instance(data={"A": a, "x_star": x_star}, x0=x0,
                        variables=self.variables(params))

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        d = x - data["x_star"]
        return 0.5 * xp.sum(d * (data["A"] @ d))

    def reference(self, instance: Instance) -> Reference:
        return Reference(x=np.asarray(instance.data["x_star"]), f=0.0)


@hookimpl
def register_problems(register):
    for problem in (Rosenbrock(), Beale(), Booth(), Himmelblau(), Quadratic()):
        register(problem)
