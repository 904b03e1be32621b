"""Declared, typed parameters of problems and optimizers.

Problems and optimizers declare their parameters instead of accepting free-form strings, so
that the command line, grids and the Python API validate every value before anything runs,
and so that `optbench list` can show what each one accepts.

A value can arrive typed (from Python) or as text (from `-P key=value`); `Param.parse`
accepts both and raises `UsageError` naming the parameter, the bad value and what is accepted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from optbench.errors import UsageError


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    kind: "int", "float", "bool", "floats" (a comma-separated list), "str" or "path".
    low/high bound numbers (and each number of "floats"); `low_open` makes the lower bound
    exclusive (a learning rate must be > 0), `high_open` the upper one (a beta must be < 1).
    `length` fixes the length of "floats". `unused_with` names the parameters that, when
    set, make this one irrelevant (a drawn sample's size once `data` names a file): what is
    shown of a run leaves it out.
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    length: int | None = None
    choices: tuple[str, ...] | None = None
    unused_with: tuple[str, ...] = ()

    def accepted(self) -> str:
        """What this parameter accepts, in words (used in error messages and listings)."""
        what = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "floats": "comma-separated numbers",
            "str": "text",
            "path": "a path to an existing file",
        }[self.kind]
        if self.kind == "floats" and self.length:
            what = f"{self.length} comma-separated numbers"
        if self.choices:
            what = "one of " + ", ".join(self.choices)
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        if bounds:
            what += " " + " and ".join(bounds)
        return what

    def parse(self, value: Any) -> Any:
        """The typed, validated value; raises UsageError on anything not accepted.

        None is accepted where the default is None: an optional parameter left unset.
        """
        if value is None and self.default is None:
            return None
        try:
            typed = _CONVERT[self.kind](value)
        except (TypeError, ValueError):
            typed = None
        if typed is None or not self._in_range(typed):
            raise UsageError(
                f"{self.name}={_show(value)} is not accepted: expected {self.accepted()}"
            )
        return typed

    def _in_range(self, typed: Any) -> bool:
        if self.choices is not None and typed not in self.choices:
            return False
        if self.kind == "path":
            return os.path.isfile(typed)
        numbers = typed if self.kind == "floats" else (typed,)
        if self.kind == "floats" and self.length is not None and len(numbers) != self.length:
            return False
        if self.kind not in ("int", "float", "floats"):
            return True
        for v in numbers:
            if not math.isfinite(v):
                return False
            if self.low is not None and (v <= self.low if self.low_open else v < self.low):
                return False
            if self.high is not None and (v >= self.high if self.high_open else v > self.high):
                return False
        return True


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    return int(str(value).strip())


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value if isinstance(value, (int, float)) else str(value).strip())


def _to_floats(value: Any) -> tuple[float, ...] | None:
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",")]
        if not parts or any(p == "" for p in parts):
            return None
        return tuple(float(p) for p in parts)
    if isinstance(value, Iterable):
        out = tuple(_to_float(v) for v in value)
        return None if not out or None in out else out  # type: ignore[return-value]
    return (_to_float(value),)  # type: ignore[return-value]


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(
        text
    )


def _to_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _to_path(value: Any) -> str | None:
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else None


_CONVERT = {
    "int": _to_int,
    "float": _to_float,
    "floats": _to_floats,
    "bool": _to_bool,
    "str": _to_str,
    "path": _to_path,
}


def resolve(
    declared: Iterable[Param], given: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Merge user values over declared defaults, validating each one.

    Unknown keys are refused with the list of known ones. `owner` names the problem or
    optimizer in messages ("regression", "nadam").
    """
    by_name = {p.name: p for p in declared}
    unknown = [k for k in given if k not in by_name]
    if unknown:
        known = ", ".join(by_name) or "none"
        raise UsageError(f"{owner} has no parameter {unknown[0]!r}; its parameters: {known}")
    out = {name: p.default for name, p in by_name.items()}
    for key, value in given.items():
        try:
            out[key] = by_name[key].parse(value)
        except UsageError as exc:
            raise UsageError(f"{owner}: {exc}") from None
    return out


def parse_assignments(items: Iterable[str], option: str) -> dict[str, str]:
    """`["degree=3", "data=x.csv"]` -> `{"degree": "3", "data": "x.csv"}`.

    The text stays text: `Param.parse` types it once the owner's declarations are known.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.isidentifier():
            raise UsageError(f"{option} {item!r} is not accepted: expected key=value")
        out[key] = value.strip()
    return out


def parse_numbers(items: Iterable[str], option: str, example: str) -> dict[str, float]:
    """`["x=1,y=2", "z=3"]` -> `{"x": 1.0, "y": 2.0, "z": 3.0}`: named finite numbers, as
    --at and --x0 take them; one line of UsageError naming the bad part or the name given
    twice."""
    out: dict[str, float] = {}
    for item in items:
        for part in item.split(","):
            name, sep, value = part.partition("=")
            name = name.strip()
            try:
                number = float(value) if sep else math.nan
            except ValueError:
                number = math.nan
            if not name.isidentifier() or not math.isfinite(number):
                raise UsageError(f"{option} {part!r} is not accepted: expected name=number "
                                 f"pairs of finite numbers, e.g. {example}")
            if name in out:
                raise UsageError(f"{option} gives {name} twice")
            out[name] = number
    return out


def applying(declared: Iterable[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that apply: unset optional ones and those that a set parameter overrides
    (`Param.unused_with`) are left out."""
    overridden = {p.name for p in declared
                  if any(values.get(other) is not None for other in p.unused_with)}
    return {k: v for k, v in values.items() if v is not None and k not in overridden}
