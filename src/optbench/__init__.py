"""optbench: solve and benchmark optimization problems on interchangeable autodiff backends.

    >>> import optbench
    >>> record = optbench.solve(problem="regression", backend="torch", optimizer="nadam")
    >>> record.status, record.x

Importing optbench is light: torch, autograd and the rest load when a backend is used.
"""

from importlib.metadata import PackageNotFoundError, version

from optbench.hookspecs import hookimpl

try:
    __version__ = version("optbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"


def solve(problem="regression", backend="torch", optimizer="nadam", **options):
    """Run one problem on one backend with one optimizer and return its `RunRecord`.

    Options are those of `optbench run`: steps, lr, seed, dtype, device, x0, tol, max_time,
    problem_params (dict), optimizer_params (dict). Bad input raises `UsageError`.
    """
    from optbench.api import solve as _solve

    return _solve(problem=problem, backend=backend, optimizer=optimizer, **options)


__all__ = ["__version__", "hookimpl", "solve"]
