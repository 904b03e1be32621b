"""Suites: named sets of problem instances, run together by `optbench bench --suite NAME`.

A suite is only data: a name, a description and its entries, each a registered problem's
name and the parameters of one instance (for `mgh`: the problem's number and the factor on
its starting point). Plugins add suites through the `register_suites` hook as they add
problems; a suite may name problems of other plugins, so its entries are checked when a
campaign expands it (bench/campaign.py), not when it is registered.

Nothing here imports more than the standard library: `optbench list` loads every suite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One problem instance of a suite: a problem's name and some of its parameters (the
    others keep their defaults)."""

    problem: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, problem: str, **params: Any) -> Entry:
        return cls(problem, tuple(params.items()))

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.problem, "params": dict(self.params)}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    entries: tuple[Entry, ...]
    unavailable: str | None = None
    """Why the suite has no entries on this machine (its data is absent), or None."""

    def __init__(self, name: str, description: str,
                 entries: Iterable[Entry | tuple[str, Mapping[str, Any]]],
                 unavailable: str | None = None) -> None:
        # (problem, {params}) pairs are accepted too: the plain shape a plugin may write
        made = tuple(e if isinstance(e, Entry) else Entry(e[0], tuple(dict(e[1]).items()))
                     for e in entries)
        if not made and not unavailable:
            raise ValueError(f"suite {name!r} has no entries")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "entries", made)
        object.__setattr__(self, "unavailable", unavailable or None)

    def problems(self) -> list[str]:
        """The problems its entries name, each once, in order."""
        return list(dict.fromkeys(e.problem for e in self.entries))
