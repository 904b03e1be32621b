"""Plugins: the installed example distributions end to end, and plugin objects loaded directly.

Part 1 needs the two distributions under plugins/ installed (CI does it):

    pip install -e plugins/optbench-complexstep -e plugins/optbench-broken

Part 2 registers plugin objects through `Registry.load(extra=..., entry_points_too=False)`
and needs nothing installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version

import numpy as np
import pytest
from click.testing import CliRunner

import optbench
from distributions import installed
from optbench import api
from optbench.backends.finite_diff import FiniteDifferenceBackend
from optbench.cli.main import cli
from optbench.core import Problem
from optbench.core.params import resolve
from optbench.plugins import Registry

PLUGIN_KEYS = {"name", "version", "distribution", "registers", "error"}


pytestmark = pytest.mark.usefixtures("fresh_registry")

needs_example_plugins = pytest.mark.skipif(
    not (installed("optbench-complexstep") and installed("optbench-broken")),
    reason="the example plugin distributions are not installed; run: pip install "
           "-e plugins/optbench-complexstep -e plugins/optbench-broken",
)


def optbench_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`optbench ARGS` in a fresh interpreter, so the real entry points load from scratch."""
    full_env = {k: v for k, v in os.environ.items() if k != "OPTBENCH_DISABLE_PLUGINS"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "optbench", *args], capture_output=True,
                          text=True, env=full_env, timeout=120)


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output
    return result


def by_name(records: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in records}


# ---------------------------------------------------------------------------------------
# 1. The installed distributions: plugins/optbench-complexstep and plugins/optbench-broken
# ---------------------------------------------------------------------------------------


@needs_example_plugins
def test_plugins_json_lists_the_installed_plugin_and_the_broken_one():
    proc = optbench_cli("plugins", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert all(set(r) == PLUGIN_KEYS for r in records)
    plugins = by_name(records)
    assert plugins["complexstep"] == {
        "name": "complexstep", "version": version("optbench-complexstep"),
        "distribution": "optbench-complexstep", "registers": ["backend:complexstep"],
        "error": None}
    broken = plugins["broken"]
    assert broken["distribution"] == "optbench-broken"
    assert broken["version"] == version("optbench-broken")
    assert broken["registers"] == []
    assert broken["error"].startswith("ImportError: optbench-broken fails to import on purpose")
    # The built-ins loaded regardless.
    assert plugins["optbench.backends.finite_diff"]["error"] is None


@needs_example_plugins
def test_run_all_backends_includes_complexstep_beside_the_broken_plugin():
    result = invoke("run", "--backend", "all", "--steps", "20", "--format", "json")
    assert result.exit_code == 0, result.output
    records = {r["backend"]: r for r in json.loads(result.stdout)}
    assert {"complexstep", "fd"} <= set(records)
    cs = records["complexstep"]
    assert cs["status"] == "max_steps" and cs["steps"] == cs["n_evals"] == 20
    assert cs["n_fevals"] == 20 * len(cs["variables"])  # n per gradient, f from the first
    # The same trajectory as an exact-gradient backend, to rounding.
    exact = records.get("torch") or records.get("autograd")
    if exact is not None:
        np.testing.assert_allclose(cs["x"], exact["x"], rtol=1e-10)
    np.testing.assert_allclose(cs["x"], records["fd"]["x"], rtol=1e-6)


@needs_example_plugins
def test_list_and_run_complexstep_in_process():
    rows = json.loads(invoke("list", "backends", "--format", "json").stdout)
    row = by_name(rows)["complexstep"]
    assert row["plugin"] == "complexstep" and row["available"] and row["reason"] is None
    assert "complexstep" in invoke("list", "backends").stdout

    result = invoke("run", "--backend", "complexstep", "--steps", "50", "--format", "json")
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["backend"] == "complexstep" and record["status"] == "max_steps"
    result = invoke("run", "--backend", "complexstep", "--dtype", "float32", "--steps", "50")
    assert result.exit_code == 0, result.output


@needs_example_plugins
@pytest.mark.parametrize("args", [
    ["--help"], ["--version"], ["list"], ["list", "problems", "--format", "json"],
    ["list", "optimizers"], ["plugins"], ["run", "--backend", "fd", "--steps", "5"],
    ["run", "--problem", "puzzle", "--backend", "complexstep", "--steps", "5"],
])
def test_every_command_works_with_the_broken_plugininstalled(args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.exception is None


@needs_example_plugins
def test_the_console_script_starts_with_the_broken_plugininstalled():
    proc = optbench_cli("list", "backends")
    assert proc.returncode == 0, proc.stderr
    assert "complexstep" in proc.stdout and "Traceback" not in proc.stderr


@needs_example_plugins
def test_entry_point_plugins_are_disabled_by_name():
    env = {"OPTBENCH_DISABLE_PLUGINS": "broken, complexstep"}
    proc = optbench_cli("plugins", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    names = set(by_name(json.loads(proc.stdout)))
    assert not names & {"broken", "complexstep"}
    assert "optbench.backends.torch" not in names and "optbench.backends.pytorch" in names
    proc = optbench_cli("run", "--backend", "complexstep", env=env)
    assert proc.returncode == 2
    assert "unknown backend 'complexstep'" in proc.stderr and "Traceback" not in proc.stderr


def _prepared(registry: Registry, backend: str, problem: str, params: dict, dtype="float64"):
    prob = registry.get("problem", problem)
    instance = prob.make(resolve(prob.params, params, problem), seed=0)
    objective = registry.get("backend", backend).prepare(prob, instance.data, dtype=dtype,
                                                         device="cpu")
    return objective, instance


CASES = [("regression", {}), ("regression", {"degree": 5, "noise": 0.5}), ("puzzle", {})]


@needs_example_plugins
@pytest.mark.parametrize(("problem", "params"), CASES)
@pytest.mark.parametrize("exact", ["torch", "autograd"])
def test_complexstep_gradient_matches_autodiff_to_rounding(problem, params, exact):
    pytest.importorskip(exact)
    registry = Registry.load()
    cs, instance = _prepared(registry, "complexstep", problem, params)
    ad, _ = _prepared(registry, exact, problem, params)
    f_cs, g_cs = cs.value_and_grad(cs.from_numpy(instance.x0))
    f_ad, g_ad = (ad.to_numpy(v) for v in ad.value_and_grad(ad.from_numpy(instance.x0)))
    assert float(f_cs) == pytest.approx(float(f_ad), rel=1e-13)
    assert np.linalg.norm(g_cs - g_ad) <= 1e-12 * np.linalg.norm(g_ad)
    np.testing.assert_allclose(g_cs, g_ad, rtol=1e-12, atol=1e-12 * np.abs(g_ad).max())
    n = instance.x0.size
    assert (cs.n_evals, cs.n_fevals) == (1, n)


@needs_example_plugins
def test_complexstep_float32_and_exactness_beyond_quadratics():
    import optbench_complexstep as cs_mod

    registry = Registry.load()
    cs32, instance = _prepared(registry, "complexstep", "regression", {}, dtype="float32")
    cs64, _ = _prepared(registry, "complexstep", "regression", {})
    f32, g32 = cs32.value_and_grad(cs32.from_numpy(instance.x0))
    _, g64 = cs64.value_and_grad(instance.x0)
    assert f32.dtype == g32.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=1e-4)

    class Transcendental(Problem):
        name = "transcendental"

        def variables(self, params):
            return ("a", "b")

        def make(self, params, seed):
            raise NotImplementedError

        def objective(self, x, data, xp):
            return xp.sum(xp.exp(x) * xp.sin(x)) / (1 + x[0] * x[0])

    x = np.array([0.3, -1.7])
    obj = cs_mod.ComplexStepBackend().prepare(Transcendental(), {}, dtype="float64",
                                              device="cpu")
    f, g = obj.value_and_grad(x)
    s, d = np.sum(np.exp(x) * np.sin(x)), 1 + x[0] ** 2
    ds = np.exp(x) * (np.sin(x) + np.cos(x))
    expected = np.array([ds[0] / d - s * 2 * x[0] / d**2, ds[1] / d])
    assert float(f) == pytest.approx(s / d, rel=1e-15)
    np.testing.assert_allclose(g, expected, rtol=1e-14)


@needs_example_plugins
def test_complexstep_refuses_an_objective_that_drops_the_imaginary_part():
    import optbench_complexstep as cs_mod

    class Absolute(Problem):
        name = "absolute"

        def variables(self, params):
            return ("a",)

        def make(self, params, seed):
            raise NotImplementedError

        def objective(self, x, data, xp):
            return xp.sum(xp.abs(x))

    obj = cs_mod.ComplexStepBackend().prepare(Absolute(), {}, dtype="float64", device="cpu")
    with pytest.raises(TypeError, match="not analytic"):
        obj.value_and_grad(np.array([1.0, -2.0]))


# ---------------------------------------------------------------------------------------
# 2. Plugin objects registered directly: every failure is that plugin's alone
# ---------------------------------------------------------------------------------------


class ToyBackend(FiniteDifferenceBackend):
    name = "toy"
    description = "finite differences under another name (a test plugin)"


class TorchImpostor(FiniteDifferenceBackend):
    name = "torch"


class GoodPlugin:
    @optbench.hookimpl
    def register_backends(self, register):
        register(ToyBackend())


class RaisingPlugin:
    @optbench.hookimpl
    def register_backends(self, register):
        register(ToyBackend())  # registered first, then the hook fails: nothing may remain
        raise RuntimeError("boom")


class MisspelledPlugin:
    @optbench.hookimpl
    def register_backend(self, register):
        register(ToyBackend())


class NotABackendPlugin:
    @optbench.hookimpl
    def register_backends(self, register):
        register(object())


class DuplicatePlugin:
    @optbench.hookimpl
    def register_backends(self, register):
        register(ToyBackend())
        register(TorchImpostor())


@pytest.fixture
def good_plugin():
    return GoodPlugin()


@pytest.fixture
def raising_plugin():
    return RaisingPlugin()


@pytest.fixture
def misspelled_plugin():
    return MisspelledPlugin()


@pytest.fixture
def not_a_backend_plugin():
    return NotABackendPlugin()


@pytest.fixture
def duplicate_plugin():
    return DuplicatePlugin()


def load(*extra) -> Registry:
    return Registry.load(extra=list(extra), entry_points_too=False)


def info(registry: Registry, name: str):
    (found,) = [p for p in registry.plugins if p.name == name]
    return found


def assert_builtins_loaded(registry: Registry) -> None:
    assert {"torch", "autograd", "fd"} <= set(registry.names("backend"))
    assert all(p.error is None for p in registry.plugins if p.name.startswith("optbench."))


def test_a_plugin_object_adds_a_backend_that_runs(good_plugin):
    registry = load(("toy-plugin", good_plugin))
    assert info(registry, "toy-plugin").to_json() == {
        "name": "toy-plugin", "version": None, "distribution": None,
        "registers": ["backend:toy"], "error": None}
    assert registry.owner[("backend", "toy")] == "toy-plugin"
    plan = api.plan("regression", "toy", "nadam", steps=20, registry=registry)
    toy = api.execute(plan, plan.backends[0])
    fd = api.execute(plan, registry.get("backend", "fd"))
    assert toy.status == "max_steps" and toy.backend == "toy"
    assert toy.x == fd.x


def test_a_hook_that_raises_is_recorded_and_registers_nothing(raising_plugin, good_plugin):
    registry = load(("raising", raising_plugin), ("good", good_plugin))
    bad = info(registry, "raising")
    assert bad.error == "RuntimeError: boom" and bad.registers == []
    assert not registry.pm.is_registered(raising_plugin)
    # "toy" did not leak from the failed hook: the next plugin registers it without a clash.
    assert info(registry, "good").error is None
    assert registry.owner[("backend", "toy")] == "good"
    assert_builtins_loaded(registry)


def test_a_misspelled_hook_is_an_error_naming_it(misspelled_plugin, good_plugin):
    registry = load(("misspelled", misspelled_plugin), ("good", good_plugin))
    bad = info(registry, "misspelled")
    assert "unknown hook 'register_backend'" in bad.error
    assert "register_backends" in bad.error  # and says what the hooks are
    assert bad.registers == []
    assert registry.owner[("backend", "toy")] == "good"


def test_registering_a_non_backend_is_that_plugins_error(not_a_backend_plugin, good_plugin):
    registry = load(("not-a-backend", not_a_backend_plugin), ("good", good_plugin))
    bad = info(registry, "not-a-backend")
    assert bad.error.startswith("PluginError: register_backends got <object object")
    assert "not an instance of Backend" in bad.error and bad.registers == []
    assert info(registry, "good").registers == ["backend:toy"]
    assert_builtins_loaded(registry)


def test_a_duplicate_name_is_that_plugins_error(duplicate_plugin, good_plugin):
    registry = load(("duplicate", duplicate_plugin), ("good", good_plugin))
    bad = info(registry, "duplicate")
    assert bad.error == ("PluginError: backend 'torch' is already registered by "
                         "optbench.backends.pytorch")
    assert bad.registers == []  # all or nothing: its "toy" is not kept either
    assert registry.owner[("backend", "torch")] == "optbench.backends.pytorch"
    assert type(registry.get("backend", "torch")).__name__ == "TorchBackend"
    assert registry.owner[("backend", "toy")] == "good"
    # A second plugin claiming a name a third-party plugin took is refused the same way.
    again = load(("good", good_plugin), ("good-again", GoodPlugin()))
    assert info(again, "good-again").error == ("PluginError: backend 'toy' is already "
                                               "registered by good")


def test_a_plugin_that_fails_to_load_is_recorded(good_plugin):
    def import_fails():
        raise ImportError("No module named 'missing_dependency'")

    def exits():
        raise SystemExit(3)  # a plugin calling sys.exit() at import must not end the tool

    registry = Registry()
    assert registry.add("import-fails", import_fails).error == (
        "ImportError: No module named 'missing_dependency'")
    assert registry.add("exits", exits).error == "SystemExit: 3"
    assert registry.add("good", lambda: good_plugin).error is None
    assert registry.names("backend") == ["toy"]


def test_one_module_behind_two_names_keeps_the_first(good_plugin):
    registry = load(("first", good_plugin), ("second", good_plugin))
    assert info(registry, "first").error is None
    assert info(registry, "second").error.startswith("ValueError: Plugin already registered")
    assert registry.pm.get_name(good_plugin) == "first"  # the failed second left it alone


def test_disabling_a_builtin_plugin_by_module_name(monkeypatch, good_plugin):
    monkeypatch.setenv("OPTBENCH_DISABLE_PLUGINS", "optbench.backends.finite_diff,toy-plugin")
    registry = load(("toy-plugin", good_plugin))
    assert "fd" not in registry.names("backend") and "toy" not in registry.names("backend")
    names = {p.name for p in registry.plugins}
    assert "optbench.backends.finite_diff" not in names and "toy-plugin" not in names
    assert {"torch", "autograd"} <= set(registry.names("backend"))
    # The command line sees the same registry: fd is gone, bad input exit status 2.
    result = CliRunner().invoke(cli, ["run", "--backend", "fd"])
    assert result.exit_code == 2 and "unknown backend 'fd'" in result.output


@needs_example_plugins
def test_disabling_an_entry_point_plugin_by_name(monkeypatch):
    assert "complexstep" in Registry.load().names("backend")
    monkeypatch.setenv("OPTBENCH_DISABLE_PLUGINS", "complexstep")
    registry = Registry.load()
    assert "complexstep" not in registry.names("backend")
    assert "complexstep" not in {p.name for p in registry.plugins}


def test_plugins_json_records_have_exactly_the_design_keys(
        use_registry, good_plugin, raising_plugin, misspelled_plugin):
    use_registry(load(("raising", raising_plugin), ("misspelled", misspelled_plugin),
                      ("good", good_plugin)))
    result = invoke("plugins", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    for record in records:
        assert set(record) == PLUGIN_KEYS
        assert isinstance(record["name"], str)
        assert record["version"] is None or isinstance(record["version"], str)
        assert record["distribution"] is None or isinstance(record["distribution"], str)
        assert all(isinstance(r, str) for r in record["registers"])
        assert record["error"] is None or isinstance(record["error"], str)
    plugins = by_name(records)
    assert plugins["good"]["error"] is None and plugins["good"]["registers"] == ["backend:toy"]
    assert plugins["raising"]["error"] == "RuntimeError: boom"
    assert "register_backend" in plugins["misspelled"]["error"]
    assert plugins["optbench.backends.finite_diff"]["version"] == optbench.__version__

    # Every command still works beside the broken ones, and the good plugin's backend runs.
    table = invoke("plugins").stdout
    assert "RuntimeError: boom" in table and "backend:toy" in table
    assert invoke("list", "--format", "json").exit_code == 0
    result = invoke("run", "--backend", "all", "--steps", "5", "--format", "json")
    assert result.exit_code == 0, result.output
    assert "toy" in {r["backend"] for r in json.loads(result.stdout)}
