"""Plugin folders (issue 14, item 2): `--plugins DIR`, a campaign's `plugins`, and
OPTBENCH_PLUGINS_PATH load each *.py file as a plugin, with an installed plugin's isolation.

Each test writes its own folder under tmp_path (so its modules are its own); the command line
runs in-process. The example folder of examples/ is tested in test_example_benchmark.py.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from clitools import assert_usage_error, run_main
from optbench import plugindirs
from optbench.plugins import Registry, get_registry

GOOD_PROBLEM = textwrap.dedent("""
    import numpy as np
    import optbench
    from optbench.core import Instance, Problem

    class {cls}(Problem):
        name = "{name}"
        description = "sum of squares of x - {target}"

        def variables(self, params):
            return ("a", "b")

        def make(self, params, seed):
            return Instance(data={{}}, x0=np.zeros(2), variables=("a", "b"))

        def objective(self, x, data, xp):
            return xp.sum(xp.square(x - {target}))

    @optbench.hookimpl
    def register_problems(register):
        register({cls}())
""")


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def problem_file(folder: Path, name: str, problem: str, target: float = 1.0,
                 cls: str = "Mine") -> Path:
    return write(folder, name, GOOD_PROBLEM.format(cls=cls, name=problem, target=target))


@pytest.fixture(autouse=True)
def no_folders(monkeypatch):
    """No folder named by an earlier test or by the caller's environment; and none left
    named for the tests after this one (the command line names them process-wide)."""
    monkeypatch.delenv(plugindirs.ENV, raising=False)
    monkeypatch.delenv("OPTBENCH_DISABLE_PLUGINS", raising=False)
    monkeypatch.setattr(plugindirs, "_configured", [])
    get_registry.cache_clear()
    yield
    get_registry.cache_clear()


def plugin_records(capsys, *argv: str) -> dict[str, dict]:
    code, out, err = run_main(capsys, *argv, "plugins", "--format", "json")
    assert code == 0, err
    return {r["name"]: r for r in json.loads(out)}


def listed(capsys, *argv: str) -> dict[tuple[str, str], dict]:
    code, out, err = run_main(capsys, *argv, "list", "--format", "json")
    assert code == 0, err
    return {(r["kind"], r["name"]): r for r in json.loads(out)}


def test_list_shows_the_folders_problems_with_the_file_as_plugin(capsys, tmp_path,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    problem_file(tmp_path / "bench", "problems.py", "shifted")
    rows = listed(capsys, "--plugins", "bench")
    assert rows[("problem", "shifted")]["plugin"] == os.path.join("bench", "problems.py")
    assert ("problem", "rosenbrock") in rows  # the built-ins stay
    code, out, _ = run_main(capsys, "--plugins", "bench", "list", "problems")
    assert code == 0 and "shifted" in out and "sum of squares of x - 1.0" in out


def test_a_folder_outside_the_working_directory_is_named_by_its_absolute_path(capsys,
                                                                              tmp_path):
    problem_file(tmp_path, "problems.py", "shifted")
    records = plugin_records(capsys, "--plugins", str(tmp_path))
    assert records[str(tmp_path / "problems.py")]["registers"] == ["problem:shifted"]


def test_the_folders_problem_runs_with_plugins_after_the_command(capsys, tmp_path):
    """--plugins after the command name is loaded before --problem's name is checked, even
    when given after it."""
    problem_file(tmp_path, "problems.py", "shifted", target=2.5)
    code, out, err = run_main(capsys, "run", "--problem", "shifted", "--backend", "autograd",
                              "--optimizer", "lbfgs", "--steps", "50", "--format", "json",
                              "--plugins", str(tmp_path))
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["status"] == "converged"
    assert record["x"] == pytest.approx([2.5, 2.5], abs=1e-8)


def test_repeated_plugins_load_every_folder_once(capsys, tmp_path):
    problem_file(tmp_path / "one", "problems.py", "first")
    problem_file(tmp_path / "two", "problems.py", "second", target=2.0)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    rows = listed(capsys, "--plugins", one, "--plugins", two, "--plugins", one + "/")
    assert {("problem", "first"), ("problem", "second")} <= set(rows)
    # Both folders hold a problems.py: each its own module, no clash; the folder named
    # twice is loaded once (no "already registered" error for its second time).
    records = plugin_records(capsys, "--plugins", one, "--plugins", two, "--plugins", one)
    files = {n: r for n, r in records.items() if n.endswith("problems.py")}
    assert len(files) == 2 and all(r["error"] is None for r in files.values()), files


def test_group_and_command_options_add_up(capsys, tmp_path):
    problem_file(tmp_path / "one", "problems.py", "first")
    problem_file(tmp_path / "two", "problems.py", "second")
    code, out, err = run_main(capsys, "--plugins", str(tmp_path / "one"), "list",
                              "--plugins", str(tmp_path / "two"), "--format", "json")
    assert code == 0, err
    assert {"first", "second"} <= {r["name"] for r in json.loads(out)}


def test_each_command_starts_from_its_own_folders(capsys, tmp_path):
    """In one process (the API, tests), a command's --plugins does not leak into the next."""
    problem_file(tmp_path, "problems.py", "shifted")
    assert ("problem", "shifted") in listed(capsys, "--plugins", str(tmp_path))
    assert ("problem", "shifted") not in listed(capsys)


BROKEN = {
    "syntax.py": "def broken(:\n",
    "raises.py": "raise RuntimeError('no luck at import')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "badreg.py": """
        import optbench

        @optbench.hookimpl
        def register_problems(register):
            register(object())
    """,
    "misspelled.py": """
        import optbench

        @optbench.hookimpl
        def register_problem(register):
            pass
    """,
    "hookraises.py": """
        import optbench

        @optbench.hookimpl
        def register_optimizers(register):
            raise ValueError("hook failed")
    """,
}


def test_broken_files_are_reported_and_skipped(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, text in BROKEN.items():
        write(tmp_path / "mixed", name, text)
    problem_file(tmp_path / "mixed", "good.py", "shifted")
    write(tmp_path / "mixed", "_helper.py", "raise RuntimeError('never loaded')\n")
    write(tmp_path / "mixed", "notes.txt", "not python\n")
    records = plugin_records(capsys, "--plugins", "mixed")
    mine = {n: r for n, r in records.items() if n.startswith("mixed" + os.sep)}
    assert set(mine) == {os.path.join("mixed", n) for n in [*BROKEN, "good.py"]}
    errors = {os.path.basename(n): r["error"] for n, r in mine.items()}
    assert errors.pop("good.py") is None
    assert "SyntaxError" in errors["syntax.py"]
    assert "RuntimeError: no luck at import" in errors["raises.py"]
    assert "SystemExit" in errors["exits.py"]
    assert "not an instance of Problem" in errors["badreg.py"]
    assert "unknown hook 'register_problem'" in errors["misspelled.py"]
    assert "ValueError: hook failed" in errors["hookraises.py"]
    for name in BROKEN:
        assert mine[os.path.join("mixed", name)]["registers"] == []
    # Every command keeps working, with the good file's problem.
    assert ("problem", "shifted") in listed(capsys, "--plugins", "mixed")
    code, out, _ = run_main(capsys, "--plugins", "mixed", "plugins")
    assert code == 0 and "no luck at import" in out and "shifted" in out


def test_a_name_taken_by_a_builtin_is_that_files_error(capsys, tmp_path):
    """As for an installed package: the file is skipped whole, the built-in stays."""
    write(tmp_path, "clash.py", GOOD_PROBLEM.format(cls="Mine", name="rosenbrock", target=1)
          + "\n\n@optbench.hookimpl\ndef register_optimizers(register):\n"
          "    from optbench.optimizers.sgd import SGD\n"
          "    class Other(SGD):\n        name = 'other-sgd'\n    register(Other())\n")
    records = plugin_records(capsys, "--plugins", str(tmp_path))
    record = records[str(tmp_path / "clash.py")]
    assert "problem 'rosenbrock' is already registered by optbench.problems.classic" in \
        record["error"]
    assert record["registers"] == []
    rows = listed(capsys, "--plugins", str(tmp_path))
    assert rows[("problem", "rosenbrock")]["plugin"] == "optbench.problems.classic"
    assert ("optimizer", "other-sgd") not in rows


def test_files_of_a_folder_import_each_other_relatively(capsys, tmp_path):
    write(tmp_path, "_shared.py", "TARGET = 4.0\n")
    write(tmp_path, "problems.py", GOOD_PROBLEM.format(cls="Mine", name="shared",
                                                       target="TARGET")
          .replace("import optbench\n", "import optbench\nfrom ._shared import TARGET\n"))
    write(tmp_path, "again.py", "from .problems import Mine\nassert Mine.name == 'shared'\n")
    records = plugin_records(capsys, "--plugins", str(tmp_path))
    assert records[str(tmp_path / "problems.py")]["registers"] == ["problem:shared"]
    assert records[str(tmp_path / "again.py")]["error"] is None
    assert str(tmp_path / "_shared.py") not in records


def test_environment_variable_names_folders(capsys, tmp_path, monkeypatch):
    problem_file(tmp_path / "one", "problems.py", "first")
    problem_file(tmp_path / "two", "problems.py", "second")
    monkeypatch.setenv(plugindirs.ENV, os.pathsep.join(
        [str(tmp_path / "one"), "", str(tmp_path / "two")]))  # an empty entry is ignored
    rows = listed(capsys)
    assert {("problem", "first"), ("problem", "second")} <= set(rows)
    # The Python API sees them too (the registry reads the variable).
    assert {"first", "second"} <= set(get_registry().names("problem"))


@pytest.mark.parametrize("where", ["group", "command", "env"])
def test_a_folder_that_does_not_exist_is_bad_input(capsys, tmp_path, monkeypatch, where):
    missing = str(tmp_path / "nope")
    argv = {"group": ["--plugins", missing, "list"], "command": ["list", "--plugins", missing],
            "env": ["list"]}[where]
    if where == "env":
        monkeypatch.setenv(plugindirs.ENV, missing)
    code, out, err = run_main(capsys, *argv)
    named = plugindirs.ENV if where == "env" else "--plugins"
    assert_usage_error(code, out, err, named, missing, "no such directory")


def test_a_file_is_not_a_plugin_folder(capsys, tmp_path):
    path = problem_file(tmp_path, "problems.py", "shifted")
    code, out, err = run_main(capsys, "--plugins", str(path), "list")
    assert_usage_error(code, out, err, str(path), "is not a directory")


def test_a_folder_of_too_many_files_is_refused(capsys, tmp_path):
    for i in range(plugindirs.MAX_FILES + 1):
        (tmp_path / f"m{i:03d}.py").write_text("")
    code, out, err = run_main(capsys, "--plugins", str(tmp_path), "list")
    assert_usage_error(code, out, err, str(tmp_path), f"more than {plugindirs.MAX_FILES}")


def test_a_file_over_the_size_limit_is_not_read(capsys, tmp_path):
    problem_file(tmp_path, "good.py", "shifted")
    with open(tmp_path / "huge.py", "wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB of nothing, refused before a byte is read
    records = plugin_records(capsys, "--plugins", str(tmp_path))
    assert "the limit for plugin files is 1 MiB" in records[str(tmp_path / "huge.py")]["error"]
    assert records[str(tmp_path / "good.py")]["registers"] == ["problem:shifted"]


def test_the_api_records_a_missing_folder_instead_of_raising(tmp_path):
    """Dask workers and the Python API build the registry without the command line's
    checks: a folder gone is one failed plugin, never an exception."""
    registry = Registry.load(plugin_dirs=[str(tmp_path / "gone")], entry_points_too=False)
    (info,) = [p for p in registry.plugins if "gone" in p.name]
    assert "no such directory" in info.error
    assert "rosenbrock" in registry.names("problem")


def test_disable_plugins_skips_a_file_by_its_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    problem_file(tmp_path / "bench", "problems.py", "shifted")
    monkeypatch.setenv("OPTBENCH_DISABLE_PLUGINS", os.path.join("bench", "problems.py"))
    assert ("problem", "shifted") not in listed(capsys, "--plugins", "bench")


def test_campaign_plugins_are_relative_to_the_campaign_file(capsys, tmp_path, monkeypatch):
    problem_file(tmp_path / "study" / "mine", "problems.py", "shifted", target=3.0)
    write(tmp_path / "study", "campaign.toml", """
        plugins = ["mine"]
        problems = ["shifted", "booth"]
        backends = ["autograd"]
        optimizers = ["lbfgs"]
        steps = 100
    """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out_file = tmp_path / "results.jsonl"
    code, _, err = run_main(capsys, "bench", "-q", str(tmp_path / "study" / "campaign.toml"),
                            "--output", str(out_file))
    assert code == 0, err
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert {(r["problem"], r["status"]) for r in records} == {("shifted", "converged"),
                                                             ("booth", "converged")}


@pytest.mark.parametrize("value, fragment", [
    ('plugins = ["gone"]', "no such directory"),
    ("plugins = [1]", "plugins must be a folder or a list of folders"),
])
def test_bad_campaign_plugins_are_bad_input(capsys, tmp_path, value, fragment):
    write(tmp_path, "campaign.toml", f'{value}\nproblems = ["booth"]\nbackends = ["fd"]\n')
    out_file = tmp_path / "results.jsonl"
    code, out, err = run_main(capsys, "bench", str(tmp_path / "campaign.toml"),
                              "--output", str(out_file))
    assert_usage_error(code, out, err, "campaign.toml", fragment)
    assert not out_file.exists()


def test_what_a_file_prints_goes_to_stderr(capsys, tmp_path):
    problem_file(tmp_path, "problems.py", "shifted")
    write(tmp_path, "chatty.py", "print('hello from a plugin file')\n")
    code, out, err = run_main(capsys, "--plugins", str(tmp_path), "list", "--format", "json")
    assert code == 0
    assert "shifted" in {r["name"] for r in json.loads(out)}  # stdout: only the JSON
    assert "hello from a plugin file" in err
