"""Small problems that tests register or hand over as instances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench.core import Instance, Param, Problem


class Bowl(Problem):
    """sum((x − c)²), c drawn from the seed, with no closed-form reference: the runner must
    fall back on ‖g‖. Its minimum is c, f* = 0 (a subclass may declare it)."""

    name = "bowl"
    description = "a test problem without a reference"
    params = (Param("n", "int", 3, "dimension", low=1),)

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f"x{i}" for i in range(params["n"]))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        rng = np.random.default_rng(seed)
        n = params["n"]
        return Instance({"c": rng.standard_normal(n)}, rng.standard_normal(n),
                        self.variables(params))

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(x - data["c"]))
