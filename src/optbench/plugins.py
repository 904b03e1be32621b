"""Loading plugins: the built-in ones first, then the entry-point group "optbench".

Each plugin is loaded on its own. One whose import raises, whose hook raises, that
implements a hook that does not exist (a misspelling) or that registers something invalid is
recorded with its error and skipped — it never stops the tool. `optbench plugins` shows them.
`OPTBENCH_DISABLE_PLUGINS=name,...` skips plugins by name.

Plugin folders (`--plugins DIR`, a campaign's `plugins`, OPTBENCH_PLUGINS_PATH) load last:
each `*.py` file in them is one plugin, named by its path (optbench.plugindirs).

"Raises" means any exception a plugin's own code can end with, BaseExceptions included
(pytest.importorskip's Skipped, SystemExit): only Ctrl-C (KeyboardInterrupt) goes through,
because that is the user's, not the plugin's. The same holds for a backend's available(),
which every command asks through `available()` here, once per backend and device.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from optbench import hookspecs, plugindirs
from optbench.errors import PluginError, UsageError

ENTRY_POINT_GROUP = "optbench"

# The built-in features are plugins like any other (as pytest does with its own).
BUILTIN_PLUGINS = (
    "optbench.backends.pytorch",
    "optbench.backends.hips_autograd",
    "optbench.backends.finite_diff",
    "optbench.problems.regression",
    "optbench.problems.puzzle",
    "optbench.problems.classic",
    "optbench.problems.expression",
    "optbench.problems.model",
    "optbench.problems.mgh",
    "optbench.problems.nist",
    "optbench.problems.ml",
    "optbench.optimizers.adam",
    "optbench.optimizers.nadam",
    "optbench.optimizers.sgd",
    "optbench.optimizers.adagrad",
    "optbench.optimizers.adadelta",
    "optbench.optimizers.adamax",
    "optbench.optimizers.asgd",
    "optbench.optimizers.radam",
    "optbench.optimizers.rmsprop",
    "optbench.optimizers.rprop",
    "optbench.optimizers.lbfgs",
    "optbench.optimizers.lm",
    "optbench.optimizers.gn",
)

KINDS = ("backend", "problem", "optimizer", "suite")
_HOOK = {"backend": "register_backends", "problem": "register_problems",
         "optimizer": "register_optimizers", "suite": "register_suites"}

# What a plugin's code may raise that is not its failure: the user's Ctrl-C (and a generator
# being closed). Everything else it raises, BaseExceptions included, is its error.
_NOT_THE_PLUGINS = (KeyboardInterrupt, GeneratorExit)


@dataclass
class PluginInfo:
    name: str
    version: str | None = None
    distribution: str | None = None
    registers: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "distribution": self.distribution,
                "registers": list(self.registers), "error": self.error}


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get("OPTBENCH_DISABLE_PLUGINS", "").split(",")
            if n.strip()}


class Registry:
    """What the loaded plugins registered, by kind and name, and which plugin owns each."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("optbench")
        self.pm.add_hookspecs(hookspecs)
        self.items: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.owner: dict[tuple[str, str], str] = {}
        self.plugins: list[PluginInfo] = []

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, extra: Iterable[tuple[str, Any]] = (), entry_points_too: bool = True,
             plugin_dirs: Iterable[str] = ()) -> Registry:
        """Built-ins, then `extra` (name, plugin) pairs, then installed entry points, then
        the files of `plugin_dirs` (so a file never shadows an installed plugin: a name
        taken is that file's error)."""
        registry = cls()
        skip = disabled_plugins()
        for module_name in BUILTIN_PLUGINS:
            if module_name not in skip:
                registry.add(module_name, lambda m=module_name: importlib.import_module(m))
        for name, plugin in extra:
            if name not in skip:
                registry.add(name, lambda p=plugin: p)
        if entry_points_too:
            for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                if ep.name in skip:
                    continue
                dist = getattr(ep, "dist", None)
                registry.add(ep.name, ep.load,
                             version=dist.version if dist else None,
                             distribution=dist.name if dist else None)
        for folder in plugin_dirs:
            registry.add_folder(folder, skip)
        return registry

    def add_folder(self, folder: str, skip: Collection[str] = ()) -> None:
        """Each plugin file of `folder`, as a plugin named by its path. A folder that is
        gone or too big is recorded as one failed plugin (the command line refuses it
        before: this is for the Python API and Dask workers)."""
        try:
            files = plugindirs.plugin_files(folder)
        except UsageError as exc:
            self.plugins.append(PluginInfo(plugindirs.display(folder), error=str(exc)))
            return
        for path in files:
            name = plugindirs.display(path)
            if name not in skip:
                self.add(name, lambda p=path: plugindirs.load_file(p))

    def add(self, name: str, load: Any, version: str | None = None,
            distribution: str | None = None) -> PluginInfo:
        """Load one plugin; on any failure record the error and leave no trace of it."""
        info = PluginInfo(name, version, distribution)
        self.plugins.append(info)
        plugin = None
        try:
            plugin = load()
            if version is None and info.distribution is None:
                info.version = _builtin_version(name)
            self.pm.register(plugin, name=name)
            self._check_hook_names(plugin)
            found = self._collect(plugin)
        except _NOT_THE_PLUGINS:
            raise
        except BaseException as exc:  # a plugin's own bug: report it, never crash
            info.error = describe(exc)
            # Only if registered under this name: the same object may already be registered
            # under another (one module behind two entry points), and that one must stay.
            if plugin is not None and self.pm.get_plugin(name) is plugin:
                self.pm.unregister(plugin)
            return info
        for kind, obj in found:
            self.items[kind][obj.name] = obj
            self.owner[(kind, obj.name)] = name
            info.registers.append(f"{kind}:{obj.name}")
        return info

    def _check_hook_names(self, plugin: Any) -> None:
        # pluggy's check_pending, for this plugin alone: a hook implementation without a
        # spec is a misspelling (register_backend for register_backends) that would
        # otherwise be silently ignored.
        for caller in self.pm.get_hookcallers(plugin) or ():
            if not caller.has_spec():
                hooks = ", ".join(_HOOK.values())
                raise PluginError(f"unknown hook {caller.name!r}; the hooks are: {hooks}")

    def _collect(self, plugin: Any) -> list[tuple[str, Any]]:
        from optbench.core import Backend, Optimizer, Problem
        from optbench.suites import Suite

        expected = {"backend": Backend, "problem": Problem, "optimizer": Optimizer,
                    "suite": Suite}
        found: list[tuple[str, Any]] = []
        for kind in KINDS:
            def register(obj: Any, kind: str = kind) -> None:
                if not isinstance(obj, expected[kind]):
                    raise PluginError(f"register_{kind}s got {obj!r}, "
                                      f"not an instance of {expected[kind].__name__}")
                name = getattr(obj, "name", None)
                if not isinstance(name, str) or not name or name == "all":
                    raise PluginError(f"{kind} {obj!r} has no valid name")
                if name in self.items[kind] or any(k == kind and o.name == name
                                                   for k, o in found):
                    owner = self.owner.get((kind, name), "this plugin")
                    raise PluginError(f"{kind} {name!r} is already registered by {owner}")
                found.append((kind, obj))

            for impl in getattr(self.pm.hook, _HOOK[kind]).get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(**{arg: register for arg in impl.argnames})
        return found

    def plugin_records(self) -> list[dict[str, Any]]:
        """`optbench plugins --format json`: one record per plugin. A plugin that loaded
        but whose backend's available() raises (or answers neither None nor a reason) has
        that as its error, beside what it registers."""
        records = []
        for info in self.plugins:
            record = info.to_json()
            faults = []
            for kind, name in (r.split(":", 1) for r in info.registers):
                if kind == "backend":
                    backend = self.items[kind][name]
                    faults += [f"backend {name} on {device}: {fault}"
                               for device in backend.devices
                               if (fault := _availability(backend, device)[1])]
            record["error"] = record["error"] or "; ".join(faults) or None
            records.append(record)
        return records

    # -- lookup -------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        return sorted(self.items[kind])

    def get(self, kind: str, name: str) -> Any:
        try:
            return self.items[kind][name]
        except KeyError:
            valid = ", ".join(self.names(kind)) or "none"
            raise UsageError(f"unknown {kind} {name!r}; available: {valid}") from None


def describe(exc: BaseException) -> str:
    """A plugin's exception as one bounded line: its messages can span lines (pluggy's list
    every plugin)."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def available(backend: Any, device: str = "cpu") -> str | None:
    """`backend.available(device)` that never raises: None when the backend is usable on
    `device`, else the reason in words. An available() that raises, or answers neither None
    nor a reason, is the plugin's bug: the backend is unavailable and that is the reason.

    Every command asks here, so that one broken backend is skipped like a missing package
    rather than ending the command; and the answer is kept, so that it is asked once."""
    return _availability(backend, device)[0]


# (id(backend), device) -> (backend, reason, fault). The backend is held so that its id is
# not reused by another object while its answer is kept.
_answers: dict[tuple[int, str], tuple[Any, str | None, str | None]] = {}


def _availability(backend: Any, device: str) -> tuple[str | None, str | None]:
    """(reason, fault): the reason it is unavailable (None: usable), and the fault of its
    available() when it raised or answered out of contract (None: it kept the contract)."""
    key = (id(backend), device)
    if key not in _answers:
        answer = fault = None
        try:
            answer = backend.available(device)
        except _NOT_THE_PLUGINS:
            raise
        except BaseException as exc:
            fault = f"available() raised {describe(exc)}"
        else:
            if answer is not None and not (isinstance(answer, str) and answer.strip()):
                fault = f"available() returned {answer!r:.100}: expected None or a reason"
        _answers[key] = (backend, fault or answer, fault)
    _, reason, fault = _answers[key]
    return reason, fault


def _builtin_version(name: str) -> str | None:
    if name.startswith("optbench."):
        from optbench import __version__

        return __version__
    return None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use: built-ins, installed plugins, and the
    plugin folders of this process (plugindirs.plugin_dirs()). Naming another folder later
    (a campaign's `plugins`) makes the next call load a registry with it."""
    return _registry_for(plugindirs.plugin_dirs())


@functools.lru_cache(maxsize=1)
def _registry_for(plugin_dirs: tuple[str, ...]) -> Registry:
    return Registry.load(plugin_dirs=plugin_dirs)


get_registry.cache_clear = _registry_for.cache_clear  # type: ignore[attr-defined]
