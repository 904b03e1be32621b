"""Reading a results file in tests: every line must be a whole, strict-JSON record, and
waiting for a running campaign to have written some."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest


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


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for_lines(proc: subprocess.Popen, path: Path, n: int, timeout: float = 60) -> int:
    """Poll until `path` holds at least n newlines; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = count_lines(path)
        if lines >= n:
            return lines
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"campaign ended (rc {proc.returncode}) before {n} lines: {err}")
        time.sleep(0.005)
    proc.kill()
    proc.communicate()
    pytest.fail(f"no {n} lines in {timeout} s")
