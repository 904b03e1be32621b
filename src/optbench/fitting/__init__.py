"""Fitting models to data: `optbench fit` and `optbench.fit` (issue 15).

run.py runs the fit (the problem `model` through the usual plan, on each backend) and
attaches the statistics (statistics.py) computed from the Jacobian at the solution
(jacobian.py); plot.py draws it. Nothing heavy is imported here.
"""

DEFAULT_METHOD = "lm"  # Levenberg–Marquardt, as MINPACK: the reliability users expect of a fit
DEFAULT_STEPS = 1000
