"""optbench: solve and benchmark optimization problems on interchangeable autodiff backends.

    >>> import optbench
    >>> record = optbench.solve(problem="regression", backend="torch", optimizer="nadam")
    >>> record.status, record.x

Importing optbench is light: torch, autograd and the rest load when a backend is used.
"""


def __getattr__(name: str) -> object:
    # __version__ and hookimpl are looked up when first used, not at import: the console
    # script imports this package before main() can handle Ctrl-C, so it must be quick.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("optbench")
        except PackageNotFoundError:  # running from a source tree that is not installed
            value = "0+unknown"
    elif name == "hookimpl":
        from optbench.hookspecs import hookimpl as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def solve(problem="regression", backend="torch", optimizer="nadam", **options):
    """Run one problem on one backend with one optimizer and return its `RunRecord`.

    Options are those of `optbench run`: steps, lr, seed, dtype, device, x0, tol, max_time,
    problem_params (dict), optimizer_params (dict). Bad input raises `UsageError`.
    """
    from optbench.api import solve as _solve

    return _solve(problem=problem, backend=backend, optimizer=optimizer, **options)


__all__ = ["__version__", "hookimpl", "solve"]
