"""`mgh`: the 35 problems of Moré, Garbow & Hillstrom (1981), one problem with a `number`.

One registered problem with the parameters `number` (1-35) and `start` (the factor on the
paper's x0: the paper's runs use 1, 10 and 100) rather than 35 problems: every MGH problem
has the same shape (residuals, a fixed x0, a reported f*), so one name keeps `optbench
list` readable, and a suite entry is just (mgh, number=k, start=s).

Dimensions: the paper's fixed m and n where it fixes them. Where it leaves them free, the
values below (the paper reports f* for Watson at n = 6, 9, 12, penalty I and II at n = 4
and 10, Chebyquad at n = m = 1..10: one of those is taken):
  6 Jennrich-Sampson m=10; 11 Gulf m=99; 12 Box 3-D m=10; 16 Brown-Dennis m=20;
  18 Biggs EXP6 m=13; 20 Watson n=6; 21 extended Rosenbrock n=10; 22 extended Powell
  n=12; 23 penalty I n=10; 24 penalty II n=10; 25-31 n=10; 32-34 n=10, m=20;
  35 Chebyquad n=m=8.

The reference f is the paper's minimum to full double precision: the paper prints six
digits, so a solver that reaches the true minimum can be 5e-6 (relative) away from the
printed value. The full values were computed here (scipy's least_squares at xtol=ftol=
gtol=1e-15 from the paper's minimizer or x0, then refined) and each one agrees with the
paper's to its printed digits (tests/test_mgh.py checks both). The printed value and the
other local minima the paper notes are in the reference's details (`paper_f`, `others`).
Formulas, data and sources: optbench.problems.mgh_functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from optbench.core import Instance, Param, Problem, Reference
from optbench.hookspecs import hookimpl
from optbench.problems import mgh_functions as fn
from optbench.problems.mgh_functions import Spec


def _specs() -> tuple[Spec, ...]:
    n = 10
    tj = np.arange(1, n + 1) / (n + 1)
    m1 = 2 * n  # problems 32-34: m = 2n
    return (
        Spec(1, "Rosenbrock", 2, 2, (-1.2, 1.0), 0.0, 0.0, (1.0, 1.0)),
        Spec(2, "Freudenstein and Roth", 2, 2, (0.5, -2.0), 0.0, 0.0, (5.0, 4.0),
             others=(48.9842,), note="other local minimum f=48.9842 at (11.41, -0.8968)"),
        Spec(3, "Powell badly scaled", 2, 2, (0.0, 1.0), 0.0, 0.0,
             (1.098159329699759e-05, 9.106146739867318)),
        Spec(4, "Brown badly scaled", 2, 3, (1.0, 1.0), 0.0, 0.0, (1e6, 2e-6)),
        Spec(5, "Beale", 2, 3, (1.0, 1.0), 0.0, 0.0, (3.0, 0.5)),
        Spec(6, "Jennrich and Sampson", 2, 10, (0.3, 0.4), 124.362, 124.36218235561485,
             (0.257825212194, 0.257825214907)),
        Spec(7, "Helical valley", 3, 3, (-1.0, 0.0, 0.0), 0.0, 0.0, (1.0, 0.0, 0.0)),
        Spec(8, "Bard", 3, 15, (1.0, 1.0, 1.0), 8.21487e-3, 8.21487730657897e-3,
             (0.0824105599191, 1.13303609753, 2.34369517338), others=(17.4286,),
             note="other minimum f=17.4286 at (0.8406, -inf, -inf)"),
        Spec(9, "Gaussian", 3, 15, (0.4, 1.0, 0.0), 1.12793e-8, 1.127932769618663e-08,
             (0.398956137839, 1.00001908449, 0.0)),
        Spec(10, "Meyer", 3, 16, (0.02, 4000.0, 250.0), 87.9458, 87.94585517050757,
             (0.00560963632453, 6181.34636799, 345.223635352)),
        Spec(11, "Gulf research and development", 3, 99, (5.0, 2.5, 0.15), 0.0, 0.0,
             (50.0, 25.0, 1.5)),
        Spec(12, "Box three-dimensional", 3, 10, (0.0, 10.0, 20.0), 0.0, 0.0,
             (1.0, 10.0, 1.0), unique=False,
             note="f=0 also at (10, 1, -1) and wherever x1 = x2, x3 = 0"),
        Spec(13, "Powell singular", 4, 4, (3.0, -1.0, 0.0, 1.0), 0.0, 0.0, (0.0,) * 4),
        Spec(14, "Wood", 4, 6, (-3.0, -1.0, -3.0, -1.0), 0.0, 0.0, (1.0,) * 4),
        Spec(15, "Kowalik and Osborne", 4, 11, (0.25, 0.39, 0.415, 0.39), 3.07505e-4,
             3.0750560384923745e-04,
             (0.192806934242, 0.191282335519, 0.123056507701, 0.136062333947),
             others=(1.02734e-3,),
             note="other minimum f=1.02734e-3 at (+inf, -14.07, -inf, -inf)"),
        Spec(16, "Brown and Dennis", 4, 20, (25.0, 5.0, -5.0, -1.0), 85822.2,
             85822.20162635957, (-11.59443836, 13.2036294803, -0.403439463129,
                                 0.236778572484)),
        Spec(17, "Osborne 1", 5, 33, (0.5, 1.5, -1.0, 0.01, 0.02), 5.46489e-5,
             5.4648946974823667e-05, (0.375410051985, 1.93584689816, -1.46468712198,
                                      0.0128675346109, 0.0221226997215),
             unique=False, note="the two exponentials can swap"),
        Spec(18, "Biggs EXP6", 6, 13, (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), 0.0, 0.0,
             (1.0, 10.0, 1.0, 5.0, 4.0, 3.0), unique=False, others=(5.65565e-3,),
             note="other local minimum f=5.65565e-3 (m=13); the exponentials can swap"),
        Spec(19, "Osborne 2", 11, 65,
             (1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5), 4.01377e-2,
             0.04013773629354772,
             (1.30997715384, 0.43155379314, 0.633661698377, 0.599430533989,
              0.754183222041, 0.904288592804, 1.36581183103, 4.82369881414, 2.39868486685,
              4.56887459679, 5.6753414705)),
        Spec(20, "Watson", 6, 31, (0.0,) * 6, 2.28767e-3, 2.2876700535524336e-03,
             (-0.0157250887002, 1.01243487235, -0.232991643826, 1.26043011144,
              -1.51372893198, 0.992996427656)),
        Spec(21, "Extended Rosenbrock", n, n, (-1.2, 1.0) * (n // 2), 0.0, 0.0,
             (1.0,) * n),
        Spec(22, "Extended Powell singular", 12, 12, (3.0, -1.0, 0.0, 1.0) * 3, 0.0, 0.0,
             (0.0,) * 12),
        Spec(23, "Penalty I", n, n + 1, tuple(float(j) for j in range(1, n + 1)),
             7.08765e-5, 7.087651467090379e-05, (0.158122297,) * n),
        Spec(24, "Penalty II", n, 2 * n, (0.5,) * n, 2.93660e-4, 2.9366053745674594e-04,
             (0.199983605197, 0.0103506458052, 0.0196049261428, 0.0320890581152,
              0.0499326661035, 0.0765139759599, 0.118624075713, 0.192144880165,
              0.347320582682, 0.369164405111)),
        Spec(25, "Variably dimensioned", n, n + 2,
             tuple(1.0 - j / n for j in range(1, n + 1)), 0.0, 0.0, (1.0,) * n),
        Spec(26, "Trigonometric", n, n, (1.0 / n,) * n, 0.0, 0.0,
             (0.0392686966011, 0.0401067784522, 0.0410231939655, 0.0420331094138,
              0.0431565895643, 0.0444209981499, 0.0458651042925, 0.201163365227,
              0.0495574384481, 0.147278644536), unique=False, others=(2.79506e-5,),
             note="a local minimum f=2.79506e-5 near x0 (known, not in the paper)"),
        Spec(27, "Brown almost-linear", n, n, (0.5,) * n, 0.0, 0.0, (1.0,) * n,
             unique=False, others=(1.0,),
             note="f=0 at (a,...,a,a^(1-n)) for each root a of n a^n-(n+1)a^(n-1)+1; "
                  "f=1 at (0,...,0,n+1)"),
        Spec(28, "Discrete boundary value", n, n, tuple(tj * (tj - 1.0)), 0.0, 0.0,
             _BOUNDARY_X),
        Spec(29, "Discrete integral equation", n, n, tuple(tj * (tj - 1.0)), 0.0, 0.0,
             _BOUNDARY_X),
        Spec(30, "Broyden tridiagonal", n, n, (-1.0,) * n, 0.0, 0.0,
             (-0.570722132011, -0.681806949984, -0.702210076018, -0.705510629895,
              -0.704906155729, -0.70149660703, -0.691889322355, -0.665796514406,
              -0.596035109026, -0.416412257529)),
        Spec(31, "Broyden banded", n, n, (-1.0,) * n, 0.0, 0.0,
             (-0.428302863587, -0.476596424356, -0.519652463647, -0.558099324832,
              -0.592506156829, -0.624503682199, -0.623239471441, -0.621393841797,
              -0.620453596659, -0.58646927072)),
        Spec(32, "Linear function - full rank", n, m1, (1.0,) * n, float(m1 - n),
             float(m1 - n), (-1.0,) * n),
        # 33, 34: the minimizers are a hyperplane; x is its point nearest the origin
        Spec(33, "Linear function - rank 1", n, m1, (1.0,) * n,
             m1 * (m1 - 1) / (2 * (2 * m1 + 1)), m1 * (m1 - 1) / (2 * (2 * m1 + 1)),
             tuple(3.0 / (2 * m1 + 1) * j / (n * (n + 1) * (2 * n + 1) / 6)
                   for j in range(1, n + 1)),
             unique=False, note="any x with sum j x_j = 3/(2m+1)"),
        Spec(34, "Linear function - rank 1 with zero columns and rows", n, m1,
             (1.0,) * n, (m1 ** 2 + 3 * m1 - 6) / (2 * (2 * m1 - 3)),
             (m1 ** 2 + 3 * m1 - 6) / (2 * (2 * m1 - 3)),
             tuple(3.0 / (2 * m1 - 3) * (j if 2 <= j <= n - 1 else 0)
                   / sum(k * k for k in range(2, n)) for j in range(1, n + 1)),
             unique=False, note="any x with sum_{j=2}^{n-1} j x_j = 3/(2m-3)"),
        Spec(35, "Chebyquad", 8, 8, tuple(j / 9.0 for j in range(1, 9)), 3.51687e-3,
             3.5168737256784147e-03,
             (0.0431527668564, 0.19309084844, 0.266328711416, 0.5, 0.5, 0.733671297652,
              0.806909167448, 0.956847246266),
             unique=False, note="any permutation of a minimizer is one"),
    )


# 28 and 29 share their minimizer to the digits shown (computed, lm at 1e-15)
_BOUNDARY_X = (-0.0431649825188, -0.0815771565354, -0.114485714381, -0.140973576863,
               -0.159908696182, -0.169877202313, -0.169089983781, -0.155249535222,
               -0.125355891679, -0.0754165336859)


SPECS: tuple[Spec, ...] = _specs()
NUMBERS = tuple(s.number for s in SPECS)


class MGH(Problem):
    name = "mgh"
    description = ("Moré-Garbow-Hillstrom (1981) problem NUMBER (1-35) from START times the "
                   "paper's x0; f* as the paper reports it")
    params = (
        Param("number", "int", 1, "the problem's number in the paper (1 Rosenbrock ... "
              "35 Chebyquad)", low=1, high=35),
        Param("start", "float", 1.0, "factor on the paper's x0 (the paper runs 1, 10, 100)",
              low=0.0, low_open=True, high=1e6),
    )
    has_residuals = True

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f"x{i + 1}" for i in range(SPECS[params["number"] - 1].n))

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        spec = SPECS[params["number"] - 1]
        # The number is not an array (backends pass such data through untouched, and jax by
        # closure): which function to trace is fixed before any tracing.
        data = {"_number": spec.number, **fn.constants(spec)}
        x0 = params["start"] * np.asarray(spec.x0, dtype=np.float64)
        return Instance(data=data, x0=x0, variables=self.variables(params))

    def _function(self, data: Mapping[str, Any]) -> Any:
        return fn.FUNCTIONS[data["_number"] - 1]

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return self._function(data)(x, data, xp)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        r = self.residuals(x, data, xp)
        return xp.sum(r * r)

    def reference(self, instance: Instance) -> Reference:
        spec = SPECS[instance.data["_number"] - 1]
        return Reference(x=np.asarray(spec.x, dtype=np.float64), f=spec.f,
                         unique=spec.unique,
                         details={"paper_f": spec.paper_f, "others": list(spec.others),
                                  "name": spec.name, "note": spec.note})


STARTS = (1.0, 10.0, 100.0)
"""The paper's starting points: x0, 10·x0 and 100·x0."""


@hookimpl
def register_problems(register):
    register(MGH())


@hookimpl
def register_suites(register):
    from optbench.suites import Entry, Suite

    register(Suite("mgh", "Moré-Garbow-Hillstrom (1981): the 35 problems from x0, 10·x0 and "
                   "100·x0 (-P start=1 keeps the standard start)",
                   [Entry.of("mgh", number=k, start=s) for k in NUMBERS for s in STARTS]))
