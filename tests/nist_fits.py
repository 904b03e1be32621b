"""NIST StRD nonlinear fits typed in (public domain), for tests that need no data files:
observations, NIST's starts, the certified values and residual sum of squares."""

from __future__ import annotations

import math

MISRA1A = {
    "model": "b1*(1-exp(-b2*{x}))", "parameters": ["b1", "b2"],
    "x": [77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8, 593.1,
          689.1, 760.0],
    "y": [10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01, 66.40,
          75.47, 81.78],
    "start1": [500.0, 1e-4], "certified": [238.94212918, 0.00055015643181],
    "rss": 0.12455138894,
}
MGH10 = {
    "model": "b1*exp(b2/({x}+b3))", "parameters": ["b1", "b2", "b3"],
    "x": [50.0 + 5 * i for i in range(16)],
    "y": [34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005, 5147, 4427,
          3820, 3307, 2872],
    "start1": [2.0, 400000.0, 25000.0],
    "certified": [5.6096364710e-03, 6.1813463463e+03, 3.4522363462e+02],
    "rss": 87.945855171,
}
BOXBOD = {
    "model": "b1*(1-exp(-b2*{x}))", "parameters": ["b1", "b2"],
    "x": [1, 2, 3, 5, 7, 10], "y": [109, 149, 149, 191, 213, 224],
    "start1": [1.0, 1.0], "start2": [100.0, 0.75],
    "certified": [213.80940889, 0.54723748542], "rss": 1168.0088766,
}


def sum_of_squares(fit: dict) -> str:
    """The fit's objective in optbench's language, typed out: sum of squared residuals."""
    return " + ".join(f"({y!r} - {fit['model'].format(x=repr(float(x)))})^2"
                      for x, y in zip(fit["x"], fit["y"], strict=True))


def lre(x: list[float], certified: list[float]) -> float:
    """NIST's log relative error, minimum over the parameters."""
    return min(-math.log10(abs(a - c) / abs(c)) if a != c else 15.0
               for a, c in zip(x, certified, strict=True))
