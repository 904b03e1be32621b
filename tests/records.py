"""Reading a results file in tests: every line must be a whole, strict-JSON record."""

from __future__ import annotations

import json
from pathlib import Path


def strict_json(line: bytes) -> dict:
    def no_constant(name: str):
        raise ValueError(f"{name} is not strict JSON")

    value = json.loads(line, parse_constant=no_constant)
    assert isinstance(value, dict)
    return value


def read_records(path: Path) -> list[dict]:
    """Every line of the file, each of which must be a whole strict-JSON record."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), data[-200:]
    return [strict_json(line) for line in data.split(b"\n")[:-1]]
