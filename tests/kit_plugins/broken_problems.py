"""A plugin of deliberately broken problems: each has one defect that `optbench check
--problem` must catch, with a message that names the cause."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench import hookimpl
from optbench.core import Instance, Param, Problem, Reference


class _Line(Problem):
    """Fit y = a·x + b to points drawn from the seed: mean of squared residuals."""

    description = "a straight line through noisy points"

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return ("a", "b")

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2.0, 3.0, 30)
        y = 1.5 * x - 0.5 + 0.1 * rng.standard_normal(30)
        return Instance(data={"x": x, "y": y}, x0=rng.standard_normal(2),
                        variables=("a", "b"))

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.mean(xp.square(data["y"] - (x[0] * data["x"] + x[1])))

    def reference(self, instance: Instance) -> Reference:
        design = np.stack([instance.data["x"], np.ones_like(instance.data["x"])], axis=1)
        w, *_ = np.linalg.lstsq(design, instance.data["y"], rcond=None)
        return Reference(x=w, f=float(self.objective(w, instance.data, np)))


class GlobalGenerator(_Line):
    """Draws its points from numpy's global generator: each call — each backend a bench
    grid plans — gets other data for the same seed."""

    name = "globalrng"

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        x = np.random.uniform(-2.0, 3.0, 30)
        y = 1.5 * x - 0.5 + 0.1 * np.random.standard_normal(30)
        x0 = np.random.default_rng(seed).standard_normal(2)
        return Instance(data={"x": x, "y": y}, x0=x0, variables=("a", "b"))


class LibraryConstants(_Line):
    """Makes its weights inside the objective with xp.asarray of Python floats: numpy and
    autograd make float64, torch its default dtype, float32 — another function on torch."""

    name = "libconst"

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        weights = xp.asarray([0.1, 0.7, 1.3])
        residual = data["y"][:3] - (x[0] * data["x"][:3] + x[1])
        return xp.sum(weights * xp.square(residual)) + xp.mean(
            xp.square(data["y"] - (x[0] * data["x"] + x[1])))

    def reference(self, instance: Instance) -> None:
        return None


class LogStart(_Line):
    """Minimizes Σ(log(x) − c)², with x0 drawn from a standard normal: half the starts lie
    where log is NaN."""

    name = "logstart"

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return ("p", "q", "r", "s")

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        rng = np.random.default_rng(seed)
        return Instance(data={"c": np.array([0.5, -1.0, 2.0, 0.0])},
                        x0=rng.standard_normal(4), variables=("p", "q", "r", "s"))

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(xp.log(x) - data["c"]))

    def reference(self, instance: Instance) -> Reference:
        return Reference(x=np.exp(instance.data["c"]), f=0.0)


class NoIntercept(_Line):
    """Its reference solves least squares without the column of ones: a line through the
    origin, not the minimum of its own objective."""

    name = "nointercept"

    def reference(self, instance: Instance) -> Reference:
        x, y = instance.data["x"], instance.data["y"]
        a = float(x @ y / (x @ x))
        w = np.array([a, 0.0])
        return Reference(x=w, f=float(self.objective(w, instance.data, np)))


class Saddle(Problem):
    """f = (x² − 1)² + y²: minima at (±1, 0), and a saddle at the origin — which its
    reference declares, a stationary point that is no minimum."""

    name = "saddleref"
    description = "a double well whose reference is its saddle"

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return ("x", "y")

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        return Instance(data={}, x0=np.random.default_rng(seed).standard_normal(2),
                        variables=("x", "y"))

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.square(x[0] ** 2 - 1.0) + xp.square(x[1])

    def reference(self, instance: Instance) -> Reference:
        return Reference(x=np.zeros(2), f=1.0)


class Unvalidated(_Line):
    """Declares its noise level as any number and hands it to numpy as a scale: a negative
    one, which the declaration accepts, makes numpy raise ValueError."""

    name = "unvalidated"
    params = (Param("noise", "float", 0.1, "standard deviation of the noise"),)

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2.0, 3.0, 30)
        y = 1.5 * x - 0.5 + rng.normal(0.0, params["noise"], 30)
        return Instance(data={"x": x, "y": y}, x0=rng.standard_normal(2),
                        variables=("a", "b"))


class Fine(_Line):
    """The same line fit, done right: the kit passes it (so the others fail for their
    defect, not for the fixture)."""

    name = "fineline"


@hookimpl
def register_problems(register):
    for problem in (GlobalGenerator(), LibraryConstants(), LogStart(), NoIntercept(), Saddle(),
                    Unvalidated(), Fine()):
        register(problem)
