"""optbench: solve and benchmark optimization problems on interchangeable autodiff backends.

    >>> import optbench
    >>> record = optbench.solve(problem="regression", backend="torch", optimizer="nadam")
    >>> record.status, record.x
    >>> def rosen(x, xp):  # written once against the backend's namespace xp
    ...     return xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    >>> optbench.minimize(rosen, [-1.2, 1.0], backend="autograd").x

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
    elif name == "bench":
        # The package optbench.bench, which is callable: optbench.bench(...) runs a grid.
        # A function here would be replaced by the package as soon as anything imported
        # it (Python binds a subpackage on its parent), so the package is the function.
        import optbench.bench as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def solve(problem="regression", backend="torch", optimizer="nadam", **options):
    """Run one problem on one backend with one optimizer and return its `RunRecord`.

    problem, backend and optimizer are each a registered name or an instance of
    `optbench.core.Problem`, `Backend` or `Optimizer` (used as it is, never registered;
    the record carries its `.name`).
    Options are those of `optbench run`: steps, lr, seed, dtype, device, x0, tol, max_time,
    problem_params (dict), optimizer_params (dict). Bad input raises `UsageError`.
    The record has the JSON fields as attributes (`.x`, `.f`, `.status`, `.message`...)
    and `.success` (status == "converged").
    """
    from optbench.api import solve as _solve

    return _solve(problem=problem, backend=backend, optimizer=optimizer, **options)


def minimize(fun, x0, *, backend="torch", optimizer="lbfgs", **options):
    """Minimize `fun(x, xp)` from `x0` and return the `RunRecord` (`.x`, `.f`, `.success`).

    `fun` computes a scalar from the vector `x` with the functions of `xp`, the backend's
    array namespace (numpy, torch, autograd.numpy, jax.numpy: `xp.sum`, `xp.exp`, `@`...),
    so one function runs on every backend; variables are named x[0]..x[n-1].
    x0: a non-empty 1-D sequence of finite numbers. backend and optimizer: a name or an
    instance. Options as `solve`'s (dtype, device, seed, lr, tol, max_time,
    optimizer_params), and steps: by default 15000 with lbfgs (scipy's L-BFGS-B maxiter;
    lbfgs ends the run itself, "converged" when max|g| <= tolerance_grad, 1e-7; here its
    tolerance_change is 0 unless given), 1000 otherwise. fun is evaluated once at x0
    first: a value that is not a finite scalar, or that the backend cannot differentiate
    (torch: a numpy constant; use numbers or xp.asarray(c)), raises `UsageError`.
    """
    from optbench.functions import minimize as _minimize

    return _minimize(fun, x0, backend=backend, optimizer=optimizer, **options)


def grad(fun, at, *, backend=None, dtype="float64", device="cpu"):
    """The gradient of `fun` at `at`, on one backend (None: autograd, else torch).

    fun(x, xp) a function as `minimize` takes, at a sequence of numbers: returns the
    gradient as a float64 numpy array. fun an expression of the language ("x^2*y"), at a
    dict {"x": 1, "y": 2}: returns the dict of `optbench grad --format json`
    (None backend: autograd or torch, and fd beside it; a name, a list or "all").
    """
    from optbench.functions import grad as _grad

    return _grad(fun, at, backend=backend, dtype=dtype, device=device)


def fit(equation, data, x0=None, **options):
    """Fit a model to data and return its record (`.x`, `.status`, `.fit`...).

    equation: "y = b1*(1-exp(-b2*x))", relating columns of the data and parameters (every
    name that is not a column), ordered by `parameters` or else naturally (b1, b2, ..., b10).
    data: a path to a CSV file with a header, a dict of 1-D arrays, or a pandas DataFrame.
    x0: {name: value} (names left out are drawn from the seed), or a list in parameter
    order. Options as `optbench fit`'s: parameters, sigma (a column of standard
    deviations), method, backend (a name: one record; a list or "all": a list of them),
    dtype, device, tol, steps, seed, method_params (dict). `.fit` holds parameters,
    estimates, stderr, covariance, rss, dof, r2 and more (see `optbench fit --format json`).
    Bad input raises `UsageError`.
    """
    from optbench.fitting.run import fit as _fit

    return _fit(equation, data, x0, **options)


__all__ = ["__version__", "bench", "fit", "grad", "hookimpl", "minimize", "solve"]
