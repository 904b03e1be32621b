"""The plugin's own tests: optbench's conformance kit, one test per check."""

import optbench_torchfunc

from optbench.plugins import Registry
from optbench.testing import BackendConformance


class TestTorchFunc(BackendConformance):
    # An instance tests the code even before `pip install -e .`; once installed, the
    # registered name "torchfunc" works as well.
    backend = optbench_torchfunc.TorchFuncBackend()


def test_the_hook_registers_the_backend():
    registry = Registry.load(extra=[("torchfunc", optbench_torchfunc)],
                             entry_points_too=False)
    (plugin,) = [p for p in registry.plugins if p.name == "torchfunc"]
    assert plugin.error is None and plugin.registers == ["backend:torchfunc"]
