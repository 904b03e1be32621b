"""The 35 test functions of Moré, Garbow & Hillstrom (1981), as residuals written once for xp.

Each function is r(x, data, xp) -> 1-D array of its m residuals; the objective is sum(r²).
`data` holds the constant arrays a function needs (its t_i, y_i, matrices), made in numpy by
`constants(number)` and converted once by the backend (a numpy constant inside the function
would not mix with torch's or jax's arrays). Loops run only over a small fixed n, never m.

Sources, cross-checked against each other (formulas, data, starting points):
  - J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization software",
    ACM TOMS 7(1):17-41, 1981 (the definitions, x0 and f* quoted in `SPECS`);
  - K. Holmström, TOMLAB's mgh_r.m (residuals of all 35);
  - Á. Bűrmen et al., PyOPUS pyopus/problems/mgh.py (residuals, data, x0 of all 35);
  - GSL's test_osborne.c (Osborne 1's data and f*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Spec:
    """One MGH problem at the dimensions used here.

    paper_f: the minimum the paper reports (6 significant digits; 0 where exact).
    f: the same minimum to full double precision (computed here, see tests), the target.
    x: a minimizer: the paper's where it gives one, else computed here (lm at 1e-15).
    unique: False where the minimizers form a family or come in symmetric copies.
    others: other local minima (f values) the paper notes, e.g. at infinity; and for 26
        (trigonometric) a local minimum that solvers find near x0, which the paper omits.
    """

    number: int
    name: str
    n: int
    m: int
    x0: tuple[float, ...]
    paper_f: float
    f: float
    x: tuple[float, ...] = ()
    unique: bool = True
    others: tuple[float, ...] = ()
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict, compare=False)


def _grid(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float64) / (n + 1)


# ---------------------------------------------------------------------------------------
# Residuals. x is a 1-D array of the backend; d the converted data of `constants`.


def rosenbrock(x, d, xp):  # 1
    return xp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def freudenstein_roth(x, d, xp):  # 2
    a, b = x[0], x[1]
    return xp.stack([-13.0 + a + ((5.0 - b) * b - 2.0) * b,
                     -29.0 + a + ((b + 1.0) * b - 14.0) * b])


def powell_badly_scaled(x, d, xp):  # 3
    return xp.stack([1e4 * x[0] * x[1] - 1.0, xp.exp(-x[0]) + xp.exp(-x[1]) - 1.0001])


def brown_badly_scaled(x, d, xp):  # 4
    return xp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2.0])


def beale(x, d, xp):  # 5
    a, b = x[0], x[1]  # powers written out: a float power of a negative base is NaN in jax
    return xp.stack([1.5 - a * (1.0 - b), 2.25 - a * (1.0 - b * b),
                     2.625 - a * (1.0 - b * b * b)])


def jennrich_sampson(x, d, xp):  # 6
    i = d["i"]
    return 2.0 + 2.0 * i - (xp.exp(i * x[0]) + xp.exp(i * x[1]))


def helical_valley(x, d, xp):  # 7
    # θ = atan(x2/x1)/2π, plus 1/2 where x1 < 0 (a step: its derivative is 0 where defined).
    half = 0.25 * (1.0 - xp.sign(x[0]))
    theta = xp.arctan(x[1] / x[0]) / (2.0 * math.pi) + half
    return xp.stack([10.0 * (x[2] - 10.0 * theta),
                     10.0 * (xp.sqrt(x[0] ** 2 + x[1] ** 2) - 1.0), x[2]])


def bard(x, d, xp):  # 8
    return d["y"] - (x[0] + d["u"] / (d["v"] * x[1] + d["w"] * x[2]))


def gaussian(x, d, xp):  # 9
    return x[0] * xp.exp(-0.5 * x[1] * (d["t"] - x[2]) ** 2) - d["y"]


def meyer(x, d, xp):  # 10
    return x[0] * xp.exp(x[1] / (d["t"] + x[2])) - d["y"]


def gulf(x, d, xp):  # 11
    return xp.exp(-(xp.abs(d["y"] - x[1]) ** x[2]) / x[0]) - d["t"]


def box_3d(x, d, xp):  # 12
    t = d["t"]
    return xp.exp(-t * x[0]) - xp.exp(-t * x[1]) - x[2] * d["c"]


def powell_singular(x, d, xp):  # 13
    return xp.stack([x[0] + 10.0 * x[1], math.sqrt(5.0) * (x[2] - x[3]),
                     (x[1] - 2.0 * x[2]) ** 2, math.sqrt(10.0) * (x[0] - x[3]) ** 2])


def wood(x, d, xp):  # 14
    return xp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0],
                     math.sqrt(90.0) * (x[3] - x[2] ** 2), 1.0 - x[2],
                     math.sqrt(10.0) * (x[1] + x[3] - 2.0), (x[1] - x[3]) / math.sqrt(10.0)])


def kowalik_osborne(x, d, xp):  # 15
    u = d["u"]
    return d["y"] - x[0] * (u * u + u * x[1]) / (u * u + u * x[2] + x[3])


def brown_dennis(x, d, xp):  # 16
    t = d["t"]
    return (x[0] + t * x[1] - d["et"]) ** 2 + (x[2] + x[3] * d["st"] - d["ct"]) ** 2


def osborne_1(x, d, xp):  # 17
    t = d["t"]
    return d["y"] - (x[0] + x[1] * xp.exp(-t * x[3]) + x[2] * xp.exp(-t * x[4]))


def biggs_exp6(x, d, xp):  # 18
    t = d["t"]
    return (x[2] * xp.exp(-t * x[0]) - x[3] * xp.exp(-t * x[1])
            + x[5] * xp.exp(-t * x[4]) - d["y"])


def osborne_2(x, d, xp):  # 19
    t = d["t"]
    return d["y"] - (x[0] * xp.exp(-t * x[4])
                     + x[1] * xp.exp(-((t - x[8]) ** 2) * x[5])
                     + x[2] * xp.exp(-((t - x[9]) ** 2) * x[6])
                     + x[3] * xp.exp(-((t - x[10]) ** 2) * x[7]))


def watson(x, d, xp):  # 20
    # rows i: sum_j (j-1) x_j t^(j-2) - (sum_j x_j t^(j-1))^2 - 1, as two matrix products
    s1 = d["D"] @ x
    s2 = d["T"] @ x
    return xp.concatenate([s1 - s2 ** 2 - 1.0,
                           xp.stack([x[0], x[1] - x[0] ** 2 - 1.0])])


def extended_rosenbrock(x, d, xp):  # 21
    odd, even = x[0::2], x[1::2]
    # interleaved as the paper orders them: r_{2i-1} = 10(x_2i - x_{2i-1}^2), r_2i = 1 - x_{2i-1}
    return xp.reshape(xp.stack([10.0 * (even - odd ** 2), 1.0 - odd]).T, (-1,))


def extended_powell(x, d, xp):  # 22
    a, b, c, e = x[0::4], x[1::4], x[2::4], x[3::4]
    return xp.reshape(xp.stack([a + 10.0 * b, math.sqrt(5.0) * (c - e), (b - 2.0 * c) ** 2,
                                math.sqrt(10.0) * (a - e) ** 2]).T, (-1,))


def penalty_1(x, d, xp):  # 23
    return xp.concatenate([math.sqrt(1e-5) * (x - 1.0),
                           xp.reshape(xp.sum(x * x) - 0.25, (1,))])


def penalty_2(x, d, xp):  # 24
    e = xp.exp(x / 10.0)
    first = xp.reshape(x[0] - 0.2, (1,))
    pairs = math.sqrt(1e-5) * (e[1:] + e[:-1] - d["y"])
    singles = math.sqrt(1e-5) * (e[1:] - math.exp(-0.1))
    last = xp.reshape(xp.sum(d["w"] * x * x) - 1.0, (1,))
    return xp.concatenate([first, pairs, singles, last])


def variably_dimensioned(x, d, xp):  # 25
    s = xp.sum(d["j"] * (x - 1.0))
    return xp.concatenate([x - 1.0, xp.stack([s, s * s])])


def trigonometric(x, d, xp):  # 26
    c = xp.cos(x)
    return x.shape[0] - xp.sum(c) + d["j"] * (1.0 - c) - xp.sin(x)


def brown_almost_linear(x, d, xp):  # 27
    n = x.shape[0]
    # the product of all x: exp(sum log|x|) would lose the sign; a loop over small n is fine
    p = x[0]
    for k in range(1, n):
        p = p * x[k]
    return xp.concatenate([x[:-1] + xp.sum(x) - (n + 1.0), xp.reshape(p - 1.0, (1,))])


def discrete_boundary_value(x, d, xp):  # 28
    h = 1.0 / (x.shape[0] + 1)
    cube = (x + d["t"] + 1.0) ** 3
    # x_0 = x_{n+1} = 0: the shifted copies as products with fixed shift matrices
    return 2.0 * x - d["L"] @ x - d["U"] @ x + h * h * cube / 2.0


def discrete_integral_equation(x, d, xp):  # 29
    cube = (x + d["t"] + 1.0) ** 3
    return x + d["K"] @ cube


def broyden_tridiagonal(x, d, xp):  # 30
    return (3.0 - 2.0 * x) * x - d["L"] @ x - 2.0 * (d["U"] @ x) + 1.0


def broyden_banded(x, d, xp):  # 31
    return x * (2.0 + 5.0 * x * x) + 1.0 - d["B"] @ (x * (1.0 + x))


def linear_full_rank(x, d, xp):  # 32
    return d["A"] @ x - 1.0


def linear_rank_1(x, d, xp):  # 33
    return d["A"] @ x - 1.0


def linear_rank_1_zero(x, d, xp):  # 34
    return d["A"] @ x - 1.0


def chebyquad(x, d, xp):  # 35
    # T_i(2x_j - 1) by the recurrence T_{i+1} = 2yT_i - T_{i-1}, over i = 1..m (m small)
    y = 2.0 * x - 1.0
    t_prev, t_cur = xp.ones_like(y), y
    rows = [xp.mean(t_cur)]
    for _ in range(1, d["c"].shape[0]):
        t_prev, t_cur = t_cur, 2.0 * y * t_cur - t_prev
        rows.append(xp.mean(t_cur))
    return xp.stack(rows) + d["c"]


# ---------------------------------------------------------------------------------------
# The data of each function, in numpy.

_BARD_Y = [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34,
           2.10, 4.39]
_GAUSSIAN_Y = [0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521,
               0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009]
_MEYER_Y = [34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005, 5147,
            4427, 3820, 3307, 2872]
_KOWALIK_Y = [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323,
              0.0235, 0.0246]
_KOWALIK_U = [4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625]
_OSBORNE1_Y = [0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
               0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
               0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406]
_OSBORNE2_Y = [1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746,
               0.679, 0.608, 0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649,
               0.694, 0.644, 0.624, 0.661, 0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395,
               0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429, 0.523, 0.562, 0.607, 0.653,
               0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559, 0.597, 0.625, 0.739,
               0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054]


def constants(spec: Spec) -> dict[str, np.ndarray]:
    """The numpy arrays function `spec.number` reads from its data (float64)."""
    k, n, m = spec.number, spec.n, spec.m
    a = np.asarray
    if k == 6:
        return {"i": np.arange(1.0, m + 1)}
    if k == 8:
        u = np.arange(1.0, m + 1)
        v = 16.0 - u
        return {"y": a(_BARD_Y), "u": u, "v": v, "w": np.minimum(u, v)}
    if k == 9:
        return {"t": (8.0 - np.arange(1.0, m + 1)) / 2.0, "y": a(_GAUSSIAN_Y)}
    if k == 10:
        return {"t": 45.0 + 5.0 * np.arange(1.0, m + 1), "y": a(_MEYER_Y, dtype=np.float64)}
    if k == 11:
        t = np.arange(1.0, m + 1) / 100.0
        return {"t": t, "y": 25.0 + (-50.0 * np.log(t)) ** (2.0 / 3.0)}
    if k == 12:
        t = 0.1 * np.arange(1.0, m + 1)
        return {"t": t, "c": np.exp(-t) - np.exp(-10.0 * t)}
    if k == 15:
        return {"y": a(_KOWALIK_Y), "u": a(_KOWALIK_U)}
    if k == 16:
        t = np.arange(1.0, m + 1) / 5.0
        return {"t": t, "et": np.exp(t), "st": np.sin(t), "ct": np.cos(t)}
    if k == 17:
        return {"t": 10.0 * np.arange(m, dtype=np.float64), "y": a(_OSBORNE1_Y)}
    if k == 18:
        t = 0.1 * np.arange(1.0, m + 1)
        return {"t": t, "y": np.exp(-t) - 5.0 * np.exp(-10.0 * t) + 3.0 * np.exp(-4.0 * t)}
    if k == 19:
        return {"t": np.arange(m, dtype=np.float64) / 10.0, "y": a(_OSBORNE2_Y)}
    if k == 20:
        t = np.arange(1.0, 30.0)[:, None] / 29.0
        j = np.arange(1, n + 1)[None, :]
        return {"T": t ** (j - 1.0),
                "D": np.where(j >= 2, (j - 1.0) * t ** np.maximum(j - 2.0, 0.0), 0.0)}
    if k == 24:
        i = np.arange(2.0, n + 1)
        return {"y": np.exp(i / 10.0) + np.exp((i - 1.0) / 10.0),
                "w": n - np.arange(1.0, n + 1) + 1.0}
    if k in (25, 26):
        return {"j": np.arange(1.0, n + 1)}
    if k == 28:
        return {"t": _grid(n), "L": np.eye(n, k=-1),
                "U": np.eye(n, k=1)}
    if k == 29:
        t = _grid(n)
        h = 1.0 / (n + 1)
        # r_i = x_i + h/2 [ (1-t_i) sum_{j<=i} t_j c_j + t_i sum_{j>i} (1-t_j) c_j ]
        i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        kernel = np.where(j <= i, (1.0 - t[i]) * t[j], t[i] * (1.0 - t[j]))
        return {"t": t, "K": h / 2.0 * kernel}
    if k == 30:
        return {"L": np.eye(n, k=-1), "U": np.eye(n, k=1)}
    if k == 31:
        i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        return {"B": ((j != i) & (j >= i - 5) & (j <= i + 1)).astype(np.float64)}
    if k == 32:
        return {"A": np.eye(m, n) - 2.0 / m}
    if k == 33:
        return {"A": np.outer(np.arange(1.0, m + 1), np.arange(1.0, n + 1))}
    if k == 34:
        rows = np.concatenate([[0.0], np.arange(1.0, m - 1), [0.0]])
        cols = np.concatenate([[0.0], np.arange(2.0, n), [0.0]])
        return {"A": np.outer(rows, cols)}
    if k == 35:
        i = np.arange(1.0, m + 1)
        even = i % 2 == 0  # only even i divide (i = 1 would divide by zero)
        return {"c": np.where(even, 1.0 / np.where(even, i * i - 1.0, 1.0), 0.0)}
    return {}


FUNCTIONS = (rosenbrock, freudenstein_roth, powell_badly_scaled, brown_badly_scaled, beale,
             jennrich_sampson, helical_valley, bard, gaussian, meyer, gulf, box_3d,
             powell_singular, wood, kowalik_osborne, brown_dennis, osborne_1, biggs_exp6,
             osborne_2, watson, extended_rosenbrock, extended_powell, penalty_1, penalty_2,
             variably_dimensioned, trigonometric, brown_almost_linear,
             discrete_boundary_value, discrete_integral_equation, broyden_tridiagonal,
             broyden_banded, linear_full_rank, linear_rank_1, linear_rank_1_zero, chebyquad)
