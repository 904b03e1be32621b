"""What a line of a results file may hold: a run record, parsed and checked.

A results file comes from anywhere (a hand edit, another tool, a hostile user), and what is
read from it reaches the report, pandas and `--resume`. So a line is a run record only when
it is short enough (MAX_LINE), strict JSON with nothing a consumer chokes on (nesting deeper
than Python's recursion limit, NaN or Infinity, numbers beyond the range of floats, integers
beyond 64 bits, text that is not Unicode), and an object whose fields have the contract's
types (`check_record`). Everything else is refused with a short reason, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from optbench.userfiles import human_size

MAX_LINE = 64 << 20
"""A longer line is not a run record (a record of 10^6 variables is about 40 MB)."""
MAX_DEPTH = 32
"""Deepest nesting accepted in the parameters, host and reference of a record (a matrix
parameter is 2 deep): code that walks them recursively stays far from Python's limit."""

_TEXT, _INT, _NUMBER, _BOOL, _OBJECT = "text", "an integer", "a number", "true or false", \
    "an object"
_REQUIRED = {"problem": _TEXT, "backend": _TEXT, "seed": _INT, "status": _TEXT}
_OPTIONAL = {
    "device": _TEXT, "dtype": _TEXT, "optimizer": _TEXT, "message": _TEXT, "campaign": _TEXT,
    "problem_params": _OBJECT, "optimizer_params": _OBJECT, "host": _OBJECT, "code": _OBJECT,
    "reference": _OBJECT, "steps": _INT, "n_evals": _INT, "n_fevals": _INT, "max_steps": _INT,
    "f": _NUMBER, "grad_norm": _NUMBER, "time_s": _NUMBER, "setup_s": _NUMBER,
    "relative_error": _NUMBER, "tol": _NUMBER, "max_time": _NUMBER, "compile": _BOOL,
    "x": "a list of numbers", "x0": "a list of numbers", "variables": "a list of names",
    "trace": "a list of [step, time_s, f] points",
}
"""Fields the key, the report and `results.load` rely on, null allowed. Other fields (the
extensions of `solve` and `fit`, say) pass as they are."""
_NESTED = ("problem_params", "optimizer_params", "host", "reference", "code")


def _kind(value: Any) -> str:
    """A value's JSON type, in words (a message never quotes a hostile value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "text", list: "a list", dict: "an object"}.get(type(value), "a value")


def _fits(value: Any, expected: str) -> bool:
    if expected == _TEXT:
        return isinstance(value, str)
    if expected == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == _NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == _BOOL:
        return isinstance(value, bool)
    if expected == _OBJECT:
        return isinstance(value, dict)
    if not isinstance(value, list):
        return False
    if expected == "a list of names":
        return all(isinstance(v, str) for v in value)
    if expected == "a list of numbers":  # null where a value was not finite
        return all(v is None or _fits(v, _NUMBER) for v in value)
    return all(isinstance(point, list) for point in value)  # trace


def check_record(value: Any) -> str | None:
    """Why a parsed JSON value is not a run record (one phrase), or None when it is one.

    Required: problem, backend, status (text) and seed (an integer); the contract's other
    fields, where present and not null, must have their types. Numbers are already finite
    and integers within 64 bits (the parser sees to that)."""
    if not isinstance(value, dict):
        return f"is {_kind(value)}, not a JSON object"
    for name, expected in _REQUIRED.items():
        if name not in value:
            return f"has no {name!r}"
        if not _fits(value[name], expected):
            return f"has {name} {_kind(value[name])}, expected {expected}"
    for name, expected in _OPTIONAL.items():
        item = value.get(name)
        if item is not None and not _fits(item, expected):
            return f"has {name} {_kind(item)}, expected {expected}"
    for name in _NESTED:
        if _depth(value.get(name)) > MAX_DEPTH:
            return f"has {name} nested more than {MAX_DEPTH} deep"
    return None


def _depth(value: Any) -> int:
    """Nesting depth of lists and objects, without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
            stack.extend((v, depth) for v in item)
    return deepest


class _Refused(ValueError):
    """A value strict JSON cannot hold, or no code downstream should meet."""


def _no_constant(name: str) -> Any:
    raise _Refused(f"holds {name}, which strict JSON has not")


def _int(text: str) -> int:
    if len(text) > 20 or not -(2**63) <= int(text) < 2**64:
        raise _Refused("holds an integer beyond 64 bits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused("holds a number beyond the range of floats")
    return value


# Only a line holding a long digit run or a 3-digit exponent can hold a number beyond int64 or
# float range, and only an escaped surrogate can make text that is not Unicode: the other
# lines take json's fast path.
_BIG_NUMBER = re.compile(rb"\d{19}|[eE][-+]?\d{3}")
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _parse(line: bytes) -> tuple[Any, str | None]:
    """(value, None), or (None, why the line is not JSON that a record may hold)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    try:
        if _BIG_NUMBER.search(line):
            value = json.loads(text, parse_constant=_no_constant, parse_int=_int,
                               parse_float=_float)
        else:
            value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        return None, "is nested too deeply"
    except _Refused as exc:
        return None, str(exc)
    except ValueError:  # JSONDecodeError, or an integer of more than 4300 digits
        return None, "is not JSON"
    if _SURROGATE.search(line) and not _unicode(value):
        return None, "holds text that is not Unicode (a lone surrogate)"
    return value, None


def _unicode(value: Any) -> bool:
    """Every string and key encodes as UTF-8 (json lets lone surrogates through)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def parse_record(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a line that is a run record, else (None, why not)."""
    if len(line) > MAX_LINE:
        return None, f"is longer than {human_size(MAX_LINE)}"
    value, reason = _parse(line)
    if reason is None:
        reason = check_record(value)
    return (value, None) if reason is None else (None, reason)


def looks_cut_short(line: bytes) -> bool:
    """What a writer killed mid-line leaves: the start of a JSON object, cut short (maybe in
    the middle of a UTF-8 sequence, where a record was written by hand)."""
    return line.startswith(b'{"') and _parse(line)[1] in ("is not JSON", "is not UTF-8 text")


def iter_lines(handle: BinaryIO, start: int, end: int, number: int = 0
           ) -> Iterator[tuple[int, int, bytes, bool]]:
    """The lines in bytes [start, end): (line number, offset, bytes without the newline, whether
    a newline ended it). A line longer than MAX_LINE is skipped a chunk at a time and given as
    MAX_LINE + 1 bytes of it, so memory stays bounded."""
    handle.seek(start)
    offset = start
    while offset < end:
        line = handle.readline(min(MAX_LINE + 1, end - offset))
        if not line:
            return  # the file shrank while it was read
        number += 1
        begin, offset = offset, offset + len(line)
        complete = line.endswith(b"\n")
        if complete:
            line = line[:-1]
        elif len(line) > MAX_LINE:  # too long: skip the rest of it, keep MAX_LINE + 1 bytes
            while offset < end:
                rest = handle.readline(min(1 << 20, end - offset))
                offset += len(rest)
                if not rest or rest.endswith(b"\n"):
                    complete = rest.endswith(b"\n")
                    break
        yield number, begin, line, complete
