"""Two problems of our own, registered from a plain file (no packaging).

`optbench --plugins examples/own-benchmark list problems` shows them; `campaign.toml`
runs them beside built-in ones. Each problem makes its data with numpy from the seed, and
writes its objective once against `xp`, the namespace the backend hands in.
"""

from __future__ import annotations

import numpy as np

import optbench
from optbench.core import Instance, Param, Problem, Reference


class Ridge(Problem):
    """Linear least squares with an L2 penalty: a closed-form optimum to compare with."""

    name = "ridge"
    description = "mean((A·w − y)²) + lam·|w|², A and y drawn from the seed; min in closed form"
    params = (
        Param("n_samples", "int", 50, "rows of A", low=1, high=100_000),
        Param("n_features", "int", 5, "columns of A (unknowns)", low=1, high=1_000),
        Param("lam", "float", 0.1, "L2 penalty", low=0),
    )

    def variables(self, params):
        return tuple(f"w{i + 1}" for i in range(params["n_features"]))

    def make(self, params, seed):
        rng = np.random.default_rng(seed)  # never numpy's global generator
        m, n = params["n_samples"], params["n_features"]
        a = rng.standard_normal((m, n))
        y = a @ rng.standard_normal(n) + 0.1 * rng.standard_normal(m)
        # lam as a 0-d array: the backend converts it with the rest, to the run's dtype.
        return Instance(data={"A": a, "y": y, "lam": np.asarray(params["lam"], np.float64)},
                        x0=np.zeros(n), variables=self.variables(params))

    def objective(self, x, data, xp):
        residuals = data["A"] @ x - data["y"]
        return xp.mean(xp.square(residuals)) + data["lam"] * xp.sum(xp.square(x))

    def reference(self, instance):
        # The normal equations of the mean: (AᵀA/m + lam·I) w = Aᵀy/m.
        a, y, lam = (np.asarray(instance.data[k]) for k in ("A", "y", "lam"))
        m, n = a.shape
        w = np.linalg.solve(a.T @ a / m + lam * np.eye(n), a.T @ y / m)
        f = float(np.mean(np.square(a @ w - y)) + lam * np.sum(np.square(w)))
        return Reference(x=w, f=f)


class DixonPrice(Problem):
    """Dixon and Price's function, n-D, with a known minimum of 0."""

    name = "dixon-price"
    description = "(x1−1)² + Σ i·(2x_i² − x_{i−1})², start at 1, min 0 at x_i = 2^-(1−2^(1−i))"
    params = (Param("n", "int", 4, "dimension", low=2, high=30),)

    def variables(self, params):
        return tuple(f"x{i + 1}" for i in range(params["n"]))

    def make(self, params, seed):
        # The customary start (fixed, as rosenbrock's): every seed gives the same task.
        return Instance(data={"i": np.arange(2.0, params["n"] + 1)},
                        x0=np.ones(params["n"]), variables=self.variables(params))

    def objective(self, x, data, xp):
        return (x[0] - 1.0) ** 2 + xp.sum(data["i"] * xp.square(2.0 * x[1:] ** 2 - x[:-1]))

    def reference(self, instance):
        i = np.arange(1, len(instance.variables) + 1)
        x = 2.0 ** (-(2.0**i - 2.0) / 2.0**i)
        # Minimizers: x and x with its last component negated (it appears only squared).
        return Reference(x=x, f=0.0, unique=False)


@optbench.hookimpl
def register_problems(register):
    register(Ridge())
    register(DixonPrice())
