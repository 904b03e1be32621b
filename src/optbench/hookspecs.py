"""The hooks a plugin implements. Built-in backends, problems, optimizers and suites use
them too.

A plugin is a module (or object) with functions marked `@optbench.hookimpl`:

    @hookimpl
    def register_backends(register):
        register(MyBackend())
"""

import pluggy

hookspec = pluggy.HookspecMarker("optbench")
hookimpl = pluggy.HookimplMarker("optbench")


@hookspec
def register_backends(register):
    """Call `register(backend)` for each `optbench.core.Backend` instance the plugin adds."""


@hookspec
def register_problems(register):
    """Call `register(problem)` for each `optbench.core.Problem` instance the plugin adds."""


@hookspec
def register_optimizers(register):
    """Call `register(optimizer)` for each `optbench.core.Optimizer` instance the plugin adds."""


@hookspec
def register_suites(register):
    """Call `register(suite)` for each `optbench.suites.Suite` the plugin adds: a named set
    of (problem, parameters) entries that `optbench bench --suite NAME` runs."""
