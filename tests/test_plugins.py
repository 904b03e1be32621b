"""Plugins: the installed example distributions end to end, and plugin objects loaded directly.

Part 1 needs the two distributions under plugins/ installed (CI does it):

    pip install -e plugins/optbench-complexstep -e plugins/optbench-broken

Part 2 registers plugin objects through `Registry.load(extra=..., entry_points_too=False)`
and needs nothing installed.

Part 3 makes misbehaving plugins as real distributions in a temporary directory
(tests/distributions.py), puts it on PYTHONPATH and runs every command in a fresh interpreter:
available() that raises, a BaseException at import, prints on stdout, Ctrl-C while loading.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version

import numpy as np
import pytest
from click.testing import CliRunner

import optbench
from clitools import assert_usage_error, run_main
from distributions import installed, make_distribution, on_path
from optbench import api, plugins
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


# ---------------------------------------------------------------------------------------
# 3. Misbehaving plugins as real distributions on the path, every command end to end
# ---------------------------------------------------------------------------------------

# torch and jax take seconds to import, and the plugins under test need neither: they are
# disabled in these subprocesses, so that each command costs about a second.
LIGHT = {"OPTBENCH_DISABLE_PLUGINS": "optbench.backends.pytorch,jax"}

MOODY = '''
    import optbench
    from optbench.backends.finite_diff import FiniteDifferenceBackend


    class MoodyBackend(FiniteDifferenceBackend):
        name = "moody"
        description = "finite differences whose available() raises (a test plugin)"

        def available(self, device="cpu"):
            raise ValueError("cannot tell today")


    @optbench.hookimpl
    def register_backends(register):
        register(MoodyBackend())
'''

SKIPPING = '''
    import pytest

    pytest.importorskip("optbench_no_such_module")  # raises Skipped, a BaseException
'''

# Prints at import and in every value_and_grad, through Python, file descriptor 1, the C
# library's buffered stdout and a child process: each must reach stderr, never stdout.
CHATTY = '''
    import ctypes
    import os
    import subprocess
    import sys

    import optbench
    from optbench.backends.finite_diff import (FiniteDifferenceBackend,
                                               FiniteDifferenceObjective)

    print("chatty: print at import")
    os.write(1, b"chatty: fd 1 at import\\n")
    subprocess.run([sys.executable, "-c", "print('chatty: a child process')"], check=True)
    try:
        ctypes.CDLL(None).printf(b"chatty: C printf at import\\n")  # buffered by the C library
    except (OSError, AttributeError):  # no C library to call on this platform
        print("chatty: C printf at import")


    class ChattyObjective(FiniteDifferenceObjective):
        def value_and_grad(self, x):
            print("chatty: value_and_grad")
            os.write(1, b"chatty: fd 1 in value_and_grad\\n")
            return super().value_and_grad(x)


    class ChattyBackend(FiniteDifferenceBackend):
        name = "chatty"
        description = "finite differences that print (a test plugin)"

        def prepare(self, problem, data, *, dtype, device):
            return ChattyObjective(problem, data, dtype)


    @optbench.hookimpl
    def register_backends(register):
        register(ChattyBackend())
'''


def with_plugin(tmp_path, name: str, source: str):
    """Runs `optbench ARGS` in a fresh interpreter that finds distribution `name` installed."""
    root = make_distribution(tmp_path / "site", name, source)

    def cli_(*args: str) -> subprocess.CompletedProcess:
        return optbench_cli(*args, env={**on_path(root), **LIGHT})

    return cli_


def every_command(cli_, tmp_path) -> dict[str, subprocess.CompletedProcess]:
    """list, run --backend all, grad, bench and plugins --format json: each exits 0 with no
    traceback, whatever the plugin does."""
    results = tmp_path / "results.jsonl"
    procs = {
        "list": cli_("list", "--format", "json"),
        "run": cli_("run", "--backend", "all", "--steps", "5", "--format", "json"),
        "grad": cli_("grad", "x*x + 3*x", "--at", "x=2", "--backend", "all", "--format",
                     "json"),
        "bench": cli_("bench", "--backend", "all", "--steps", "3", "-q", "-o", str(results)),
        "plugins": cli_("plugins", "--format", "json"),
    }
    for command, proc in procs.items():
        assert proc.returncode == 0, (command, proc.stderr)
        assert "Traceback" not in proc.stderr, (command, proc.stderr)
    assert procs["bench"].stdout == ""
    procs["bench"].records = [json.loads(line) for line in results.read_text().splitlines()]
    return procs


def test_a_backend_whose_available_raises_is_unavailable_with_its_error(tmp_path):
    procs = every_command(with_plugin(tmp_path, "optbench-moody", MOODY), tmp_path)
    reason = "available() raised ValueError: cannot tell today"

    row = by_name(json.loads(procs["list"].stdout))["moody"]
    assert row["available"] is False and row["reason"] == reason
    assert row["devices"] == {"cpu": reason} and row["plugin"] == "optbench-moody"
    plugin = by_name(json.loads(procs["plugins"].stdout))["optbench-moody"]
    assert plugin == {"name": "optbench-moody", "version": "0.1.0",
                      "distribution": "optbench-moody", "registers": ["backend:moody"],
                      "error": f"backend moody on cpu: {reason}"}

    skipped = f"optbench: skipping backend moody: {reason}"
    ran = {r["backend"] for r in json.loads(procs["run"].stdout)}
    assert "fd" in ran and "moody" not in ran
    assert skipped in procs["run"].stderr.splitlines()
    graded = {r["backend"]: r for r in json.loads(procs["grad"].stdout)["results"]}
    assert "moody" not in graded and graded["fd"]["grad"]["x"] == pytest.approx(7.0)
    assert skipped in procs["grad"].stderr.splitlines()
    benched = {r["backend"] for r in procs["bench"].records}
    assert "fd" in benched and "moody" not in benched
    assert skipped in procs["bench"].stderr.splitlines()


def test_a_plugin_raising_a_base_exception_at_import_is_that_plugins_error(tmp_path):
    procs = every_command(with_plugin(tmp_path, "optbench-skipping", SKIPPING), tmp_path)
    plugin = by_name(json.loads(procs["plugins"].stdout))["optbench-skipping"]
    assert plugin["registers"] == [] and plugin["version"] == "0.1.0"
    assert plugin["error"] == ("Skipped: could not import 'optbench_no_such_module': "
                               "No module named 'optbench_no_such_module'")
    for command, proc in procs.items():  # said by `plugins` alone, never by the others
        assert "optbench_no_such_module" not in proc.stderr, (command, proc.stderr)
    assert {"fd", "autograd"} <= {r["backend"] for r in json.loads(procs["run"].stdout)}


def test_json_on_stdout_stays_pure_whatever_a_plugin_prints(tmp_path):
    cli_ = with_plugin(tmp_path, "optbench-chatty", CHATTY)
    procs = every_command(cli_, tmp_path)
    procs["solve"] = cli_("solve", "x + y = 3", "x - y = 1", "--backend", "chatty",
                          "--optimizer", "lbfgs",
                          "--steps", "50", "--format", "json")
    at_import = ["chatty: print at import", "chatty: fd 1 at import",
                 "chatty: a child process", "chatty: C printf at import"]
    for command, proc in procs.items():
        assert proc.returncode == 0, (command, proc.stderr)
        if command != "bench":
            json.loads(proc.stdout)  # the whole of stdout is one JSON document
        assert "chatty:" not in proc.stdout, command
        for line in at_import:  # what the plugin printed went to stderr, not lost
            assert line in proc.stderr.splitlines(), (command, line, proc.stderr)
    for command in ("run", "grad", "bench", "solve"):
        lines = procs[command].stderr.splitlines()
        assert "chatty: value_and_grad" in lines and "chatty: fd 1 in value_and_grad" in lines
    assert "chatty" in {r["backend"] for r in json.loads(procs["run"].stdout)}
    assert "chatty" in {r["backend"] for r in json.loads(procs["grad"].stdout)["results"]}
    assert "chatty" in {r["backend"] for r in procs["bench"].records}
    (solved,) = json.loads(procs["solve"].stdout)
    assert solved["x"] == pytest.approx([2.0, 1.0], abs=1e-3)
    # Tables are results too: the plugin's prints stay out of them.
    table = cli_("list", "backends")
    assert table.returncode == 0 and "chatty" in table.stdout
    assert not [line for line in table.stdout.splitlines() if line.startswith("chatty:")]


SLEEPY = '''
    import os
    import time

    open(os.environ["OPTBENCH_TEST_MARKER"], "w").close()  # the test presses Ctrl-C now
    time.sleep(120)
'''


def test_ctrl_c_while_a_plugin_loads_is_one_line_and_exit_130(tmp_path):
    root = make_distribution(tmp_path / "site", "optbench-sleepy", SLEEPY)
    marker = tmp_path / "importing"
    env = {**on_path(root), **LIGHT, "OPTBENCH_TEST_MARKER": str(marker)}
    proc = subprocess.Popen([sys.executable, "-m", "optbench", "list", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120  # a hang detector, not a timing
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the plugin was never imported"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert out == "" and err.splitlines() == ["optbench: interrupted"]


# Ctrl-C landing while the command line itself is still being imported, made exact: the
# import of click (the first heavy one) raises KeyboardInterrupt.
INTERRUPTED_START = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
from optbench.cli.main import main
main(["list"])
"""


def test_ctrl_c_during_start_up_is_one_line_and_exit_130():
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_START], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stdout == "" and proc.stderr.splitlines() == ["optbench: interrupted"]


def test_ctrl_c_in_a_plugins_import_is_not_recorded_as_its_error(good_plugin):
    def interrupted():
        raise KeyboardInterrupt

    class Custom(BaseException):
        pass

    def custom():
        raise Custom("not an Exception")

    registry = Registry()
    assert registry.add("custom", custom).error == "Custom: not an Exception"
    with pytest.raises(KeyboardInterrupt):
        registry.add("interrupted", interrupted)
    assert registry.add("good", lambda: good_plugin).error is None


class MoodyBackend(FiniteDifferenceBackend):
    name = "moody"
    calls = 0

    def available(self, device="cpu"):
        type(self).calls += 1
        raise ValueError("cannot\ntell today")


class OddBackend(FiniteDifferenceBackend):
    name = "odd"

    def available(self, device="cpu"):
        return False  # neither None nor a reason


class MoodyPlugin:
    @optbench.hookimpl
    def register_backends(self, register):
        register(MoodyBackend())
        register(OddBackend())


def test_available_is_asked_once_and_never_raises(use_registry, capsys):
    registry = load(("moody-plugin", MoodyPlugin()))
    use_registry(registry)
    moody = registry.get("backend", "moody")
    MoodyBackend.calls = 0
    reason = "available() raised ValueError: cannot tell today"  # one line
    assert plugins.available(moody) == reason
    assert plugins.available(registry.get("backend", "odd")) == (
        "available() returned False: expected None or a reason")
    code, out, err = run_main(capsys, "list", "backends", "--format", "json")
    assert code == 0 and by_name(json.loads(out))["moody"]["reason"] == reason
    code, out, err = run_main(capsys, "run", "--backend", "all", "--steps", "2", "--format",
                              "json")
    assert code == 0, err
    assert "moody" not in {r["backend"] for r in json.loads(out)}
    assert MoodyBackend.calls == 1  # cached: a plugin's answer does not change mid-command
    # Named alone, it is refused as any unavailable backend is: bad input, one line.
    assert_usage_error(*run_main(capsys, "run", "--backend", "moody"),
                       "backend moody cannot run here", reason)
    code, out, err = run_main(capsys, "plugins", "--format", "json")
    assert by_name(json.loads(out))["moody-plugin"]["error"] == (
        f"backend moody on cpu: {reason}; backend odd on cpu: available() returned False: "
        "expected None or a reason")
