"""The lazy check: loading the backend's plugin module and calling `available()` import no
heavy package.

`optbench list` and `--help` load every plugin and ask every backend whether it is available;
they must stay fast. So, in a fresh Python process (this one has long imported everything),
the check imports optbench, then the module that defines the backend, then calls
`available(device)` for each declared device, and looks at what each step added to
`sys.modules`.

Heavy: the modules the backend declares in `heavy_modules` (what it imports when used), and
the ones optbench knows to be heavy whatever the backend says (HEAVY_MODULES).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from optbench.testing._common import Skip, verdict
from optbench.testing.backend_subject import BackendSubject, heavy_modules
from optbench.testing.report import CheckResult

HEAVY_MODULES = ("torch", "jax", "jaxlib", "autograd", "tensorflow", "cupy", "triton",
                 "matplotlib", "dask")
"""Imported only when used, by any backend (optbench's rule for its own commands)."""

TIMEOUT_S = 300  # a hang detector only: a cold import of the whole plugin takes seconds

# Runs in the fresh process. argv[1]: JSON with the module, its file, the class's qualified
# name, the backend's name, the devices and sys.path. Prints one JSON line.
_PROBE = r"""
import importlib, importlib.util, json, sys
spec = json.loads(sys.argv[1])
sys.path[:] = spec["path"]
import optbench.core, optbench.hookspecs  # optbench's own imports: not the backend's doing
out = {}
before = set(sys.modules)
try:
    module = importlib.import_module(spec["module"])
except ModuleNotFoundError:
    if not spec["file"]:
        raise
    loader_spec = importlib.util.spec_from_file_location(spec["module"], spec["file"])
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[spec["module"]] = module
    loader_spec.loader.exec_module(module)
out["import"] = sorted(set(sys.modules) - before)
cls = module
for part in spec["qualname"].split("."):
    cls = getattr(cls, part)
try:
    backend = cls()
except Exception:
    found = []
    hook = getattr(module, "register_backends", None)
    if hook is not None:
        hook(found.append)
    backend = next(b for b in found if getattr(b, "name", None) == spec["name"])
before = set(sys.modules)
for device in spec["devices"]:
    backend.available(device)
backend.available()
out["available"] = sorted(set(sys.modules) - before)
print(json.dumps(out))
"""


def check_lazy(s: BackendSubject) -> CheckResult:
    """In a fresh process: importing the module that defines the backend, and calling its
    available() for every declared device, import none of its heavy_modules nor of the
    known heavy packages (torch, jax, autograd, ...): those wait for prepare."""
    backend = s.backend
    cls = type(backend)
    module, qualname = cls.__module__, cls.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        raise Skip(f"backend class {qualname} is defined in "
                   f"{'__main__' if module == '__main__' else 'a function'}: the check "
                   f"re-creates it in a fresh process by module and class name, so define "
                   f"it at the top level of a module")
    heavy = tuple(dict.fromkeys(heavy_modules(backend) + HEAVY_MODULES))
    file = getattr(sys.modules.get(module), "__file__", None)
    spec = {"module": module, "file": file, "qualname": qualname, "name": s.name,
            "devices": list(getattr(backend, "devices", ()) or ()),
            "path": [p for p in sys.path if isinstance(p, str)]}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(spec)],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return CheckResult("lazy", False, f"a fresh process importing {module} and calling "
                           f"available() did not finish in {TIMEOUT_S} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return CheckResult("lazy", False, f"a fresh process could not import {module} and "
                           f"call {s.name}'s available(): {last}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = []
    for step, what in (("import", f"importing the plugin module {module}"),
                       ("available", "calling available() for "
                                     f"{', '.join(spec['devices']) or 'its devices'}")):
        loaded = _heavy(found[step], heavy)
        if loaded:
            wrong.append(f"{what} imported {', '.join(loaded)}: heavy packages must wait "
                         f"for prepare (optbench list and --help load every plugin and ask "
                         f"every backend); " + _advice(step))
    return verdict("lazy", wrong, f"importing {module} and calling available() import none "
                   f"of {', '.join(heavy)}")


def _heavy(modules: list[Any], heavy: tuple[str, ...]) -> list[str]:
    """The heavy packages among newly imported modules (by top-level name, each once)."""
    tops = {str(m).split(".")[0] for m in modules}
    return [h for h in heavy if h.split(".")[0] in tops]


def _advice(step: str) -> str:
    if step == "import":
        return "import them inside prepare (or the objective), not at the module's top"
    return ("look for them without importing: importlib.util.find_spec(name) is None when "
            "a package is missing")
