"""A long compile must not look like a hang (issue 13, item 12): `--compile` on the CPU says
before compiling how long it takes and why; quick compilers say nothing."""

from __future__ import annotations

from optbench.backends.pytorch import TorchBackend
from optbench.core import Backend
from optbench.plugins import get_registry


def test_torch_on_the_cpu_warns_with_the_measured_figure():
    note = TorchBackend().compile_note("cpu")
    assert note is not None
    assert "torch.compile" in note and "61.7 s" in note and "cache" in note


def test_backends_that_compile_quickly_say_nothing():
    registry = get_registry()
    for name in registry.names("backend"):
        backend = registry.get("backend", name)
        if name != "torch":
            assert backend.compile_note("cpu") is None, name
    assert TorchBackend().compile_note("cuda") is None  # a CUDA graph is captured in ~0.1 s


def test_the_note_is_printed_before_the_run_starts(monkeypatch, capsys):
    """The command prints the backend's note before its first step; checked with a stand-in
    backend whose prepare fails at once, so nothing is compiled here."""
    from clitools import run_main

    printed = []

    def prepare(self, *args, **kwargs):
        printed.append(capsys.readouterr().err)
        raise RuntimeError("stop here")

    monkeypatch.setattr(TorchBackend, "prepare", prepare)
    code, _, _ = run_main(capsys, "run", "--compile", "--steps", "1", "--format", "json")
    assert code == 1
    assert "optbench: note: torch: --compile on the CPU compiles" in printed[0]
    assert issubclass(TorchBackend, Backend)
