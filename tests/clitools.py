"""Running the command line in tests, and what every refusal must look like."""

from __future__ import annotations

import pytest

from optbench.cli.main import main


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    """`optbench ARGV` in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exc.value.code
    return (0 if code is None else code), out, err


def assert_usage_error(code: int, out: str, err: str, *fragments: str) -> str:
    """Exit 2, nothing on stdout, exactly one line on stderr holding every fragment; that
    line is returned, for further checks."""
    assert code == 2, (code, out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optbench: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
