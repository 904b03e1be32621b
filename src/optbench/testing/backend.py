"""Conformance checks of a backend.

Each check is a small function of a `BackendSubject` returning a `CheckResult` whose message
says precisely what is wrong; `check_backend` runs them all (or some) and returns a `Report`.
By subject:

- here: declared (name, devices, dtypes and the declarations the kit reads), available;
- backend_imports: lazy (no heavy import before prepare);
- backend_gradients: gradient[float64], gradient[float32], derivatives, linear;
- backend_arrays: fresh, dtype, device;
- backend_runs: counters, deterministic, diverged, compiled.

What a backend declares to the kit (differentiation, heavy_modules, its waivers) and the
tolerances that follow are in backend_subject.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from optbench.core import Backend
from optbench.core.backend import DTYPES
from optbench.plugins import Registry
from optbench.testing._common import describe, host, owner_of, run_check, select, verdict
from optbench.testing.backend_arrays import check_device, check_dtype, check_fresh
from optbench.testing.backend_gradients import (
    check_derivatives,
    check_gradient_float32,
    check_gradient_float64,
    check_linear,
)
from optbench.testing.backend_imports import check_lazy
from optbench.testing.backend_jacobian import check_jacobian
from optbench.testing.backend_runs import (
    check_compiled,
    check_counters,
    check_deterministic,
    check_diverged,
)
from optbench.testing.backend_subject import (
    TOLERANCE,
    TOLERANCES,
    BackendSubject,
    available_on,
    declaration_problems,
    differentiation,
    subject_for,
    waivers,
)
from optbench.testing.probes import SmallQuadratic
from optbench.testing.report import CheckResult, Report

__all__ = ["BACKEND_CHECKS", "TOLERANCE", "TOLERANCES", "available_on", "check_backend",
           "run_backend_check", "select"]


# ---------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------


def check_declared(s: BackendSubject) -> CheckResult:
    """A Backend instance with a name, its devices and its dtypes declared."""
    b, wrong = s.backend, []
    if not isinstance(b, Backend):
        wrong.append(f"{b!r} is not an instance of optbench.core.Backend")
    name = getattr(b, "name", None)
    if not isinstance(name, str) or not name or name == "all":
        wrong.append(f"name is {name!r}: expected a non-empty string other than 'all'")
    devices = getattr(b, "devices", None)
    if (not isinstance(devices, tuple) or not devices
            or not all(isinstance(d, str) and d for d in devices)):
        wrong.append(f"devices is {devices!r}: expected a non-empty tuple of names, "
                     f"e.g. ('cpu',) or ('cpu', 'cuda')")
    dtypes = getattr(b, "dtypes", None)
    if not isinstance(dtypes, tuple) or not dtypes or not set(dtypes) <= set(DTYPES):
        wrong.append(f"dtypes is {dtypes!r}: expected a non-empty tuple of "
                     f"{', '.join(map(repr, DTYPES))}")
    if not isinstance(getattr(b, "description", ""), str):
        wrong.append("description is not a string")
    wrong += declaration_problems(b, BACKEND_CHECKS)
    waived = waivers(b)
    shown = "; waivers: " + "; ".join(f"{k} ({v})" for k, v in waived.items()) if waived else ""
    return verdict("declared", wrong, f"name {name!r}, devices {', '.join(devices or ())}, "
                   f"dtypes {', '.join(dtypes or ())}, {differentiation(b)} differentiation"
                   f"{shown}")


def check_available(s: BackendSubject) -> CheckResult:
    """available(device) is None or a reason in words, for every declared device; where it
    says None, the backend really works there (prepare and value_and_grad succeed)."""
    b, wrong, notes = s.backend, [], []
    for device in tuple(getattr(b, "devices", ()) or ()):
        try:
            reason = b.available(device)
        except Exception as exc:
            wrong.append(f"available({device!r}) raised {describe(exc)}: it must return None "
                         f"or the reason, never raise")
            continue
        if reason is not None and not (isinstance(reason, str) and reason.strip()):
            wrong.append(f"available({device!r}) returned {reason!r}: expected None (usable) "
                         f"or a non-empty string saying why not")
        elif reason is not None:
            notes.append(f"{device}: not available ({reason})")
        else:
            problem = SmallQuadratic()
            instance = problem.make({}, 0)
            try:
                objective = b.prepare(problem, instance.data, dtype=b.dtypes[0],
                                      device=device)
                f, _ = objective.value_and_grad(objective.from_numpy(instance.x0))
                objective.synchronize()
                float(host(objective, f))
            except Exception as exc:
                wrong.append(f"available({device!r}) is None, yet on {device} "
                             f"{describe(exc)}: a device that cannot be used needs a reason")
            else:
                notes.append(f"{device}: available")
    try:
        default = b.available()
    except TypeError:
        wrong.append("available() needs an argument: give `device` the default 'cpu'")
    except Exception as exc:
        wrong.append(f"available() raised {describe(exc)}")
    else:
        if default is not None and not (isinstance(default, str) and default.strip()):
            wrong.append(f"available() returned {default!r}: expected None or a reason")
    return verdict("available", wrong, "; ".join(notes))


BACKEND_CHECKS: dict[str, Callable[[BackendSubject], CheckResult]] = {
    "declared": check_declared,
    "available": check_available,
    "lazy": check_lazy,
    "gradient[float64]": check_gradient_float64,
    "gradient[float32]": check_gradient_float32,
    "derivatives": check_derivatives,
    "linear": check_linear,
    "fresh": check_fresh,
    "counters": check_counters,
    "dtype": check_dtype,
    "device": check_device,
    "deterministic": check_deterministic,
    "diverged": check_diverged,
    "compiled": check_compiled,
    "jacobian": check_jacobian,
}


def check_backend(backend: Any, *, registry: Registry | None = None,
                  device: str | None = None, checks: Iterable[str] | None = None) -> Report:
    """Run the backend checks and return their `Report`.

    backend: a registered name, a `Backend` instance or a `Backend` subclass.
    registry: where names (the backend's, the built-in problems and optimizers) are looked
        up; the process-wide one by default.
    device: where the gradient, dtype and run checks run (default: cpu when usable, else the
        first usable declared device). The device check covers every declared device.
    checks: names from BACKEND_CHECKS to run (default: all).
    """
    subject = subject_for(backend, registry, device)
    names = select(checks, BACKEND_CHECKS, "backend")
    report = Report("backend", subject.name,
                    plugin=owner_of("backend", subject.backend, subject.registry))
    for name in names:
        reason = subject.waived(name)
        if reason:  # declared by the backend, with its reason: shown where the check would be
            report.results.append(CheckResult(name, True, f"waived by backend {subject.name}: "
                                              f"{reason}", skipped=True))
            continue
        report.results.append(run_check(name, BACKEND_CHECKS[name], subject))
    return report


def run_backend_check(backend: Any, name: str, *, registry: Registry | None = None,
                      device: str | None = None) -> CheckResult:
    """One backend check by name (what the pytest class runs per test)."""
    (result,) = check_backend(backend, registry=registry, device=device,
                              checks=[name]).results
    return result
