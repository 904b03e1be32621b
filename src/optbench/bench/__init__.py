"""Benchmark campaigns: grids of runs, executed into a results store.

The package is also callable, as `optbench.bench(...)`:

    records = optbench.bench(problems=["rosenbrock", MyProblem()], backends="all",
                             optimizers=["lbfgs", "adam"], seeds=3)

runs the grid problems x backends x optimizers x seeds in this process and returns the list
of `RunRecord`s, in the grid's order. Each of problems, backends, optimizers: a name, an
instance, or a list of them ("all" for every available backend; the unavailable ones are
skipped with a warning). Instances are run as they are, never registered; records carry
their `.name`. seeds: a count N (seeds 0..N-1) or a list. Options as `optbench bench`'s:
lr (a number or a list), dtype, device, problem_params and optimizer_params ({key: value
or [alternatives]}; in optimizer_params also {optimizer: {key: ...}}, scoped to that
optimizer, e.g. {"nadam": {"lr": [0.1, 0.01]}}), steps, tol, max_time; output: a results
file (JSON Lines) to write, with resume=True to complete one (the records returned are
then the whole grid's). The whole grid is validated before any run (`UsageError`). See
optbench.bench.grid.

(Callable because Python binds a subpackage on its parent package: a function
`optbench.bench` would be replaced by this package as soon as anything imported it.)
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from optbench.bench.grid import bench

        return bench(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
