"""What the README's install commands bring: the extras a newcomer gets with '.[all]'."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def extras() -> dict[str, list[str]]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]


def expand(name: str, table: dict[str, list[str]]) -> set[str]:
    """The requirement names an extra installs, following optbench[...] self-references."""
    out: set[str] = set()
    for req in table[name]:
        if req.startswith("optbench["):
            for sub in req[len("optbench["):req.index("]")].split(","):
                out |= expand(sub.strip(), table)
        else:
            out.add(req.split(">")[0].split("=")[0].split("[")[0].strip().lower())
    return out


def test_all_extra_brings_pandas_so_results_load_gives_a_dataframe():
    """The README promises a DataFrame from optbench.results.load; pandas came only with
    '.[dev]', so the main command's '.[all]' install returned a list."""
    assert {"pandas", "matplotlib", "torch", "autograd"} <= expand("all", extras())


def test_every_extra_is_pinned_in_the_constraints_file():
    pinned = {line.split("==")[0].strip().lower()
              for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    table = extras()
    for name in table:
        assert expand(name, table) <= pinned, name
