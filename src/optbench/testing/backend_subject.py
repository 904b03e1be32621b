"""The backend under test, what it declares to the kit, and the tolerances that follow.

A backend may declare, as class attributes the kit reads with `getattr` (so that a backend
written before them still works, with the defaults):

    differentiation = "exact"          # or "approximate" (the default): see TOLERANCES
    heavy_modules = ("torch",)         # what it imports when used, never before (see lazy)
    conformance = {"waive": {"derivatives:abs": "complex step needs analytic functions"}}

A waiver names a check ("linear") or one item of a check ("derivatives:abs",
"gradient[float64]:expr"), always with its reason; the report shows the reason where the
check or the item would have run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optbench.core import Backend
from optbench.errors import UsageError
from optbench.plugins import Registry
from optbench.testing._common import (
    Skip,
    default_registry,
    describe,
    hints_problem,
    resolve_object,
)

DIFFERENTIATION = ("exact", "approximate")
"""exact: automatic differentiation or complex step, right to rounding; approximate: finite
differences and anything else with a truncation error."""
DEFAULT_DIFFERENTIATION = "approximate"  # the loose class: no backend fails by omission

BACKEND_HINTS = ("waive",)
"""The keys a backend's `conformance` mapping may hold."""

# Tolerances of value and gradient, relative (see reference.relative_error: to the
# gradient's largest component), against the float64 reference evaluated on the same
# (rounded) data and point, by how the backend differentiates. A wrong gradient (sign,
# factor, missing term) errs by O(1): every tolerance leaves a wide gap to it.
TOLERANCES: dict[str, dict[str, dict[str, float]]] = {
    "approximate": {
        # float64: the reference is good to ~5e-12 here (reference.central_gradient);
        # optbench's `fd`, second order, errs by about eps^(2/3)·|f|/|∇f| (measured 2.7e-9
        # over the built-in cases). 1e-6 admits such backends with a margin of 300.
        # f: libraries sum in different orders, an error of about n·eps ≈ 1e-14; 1e-10 is
        # generous and still tells float32 apart.
        "float64": {"grad": 1e-6, "f": 1e-10},
        # float32: eps is 1.2e-7 (rounding 6e-8). Rounding the residuals and sums of the
        # built-in problems costs up to ~1e-5 relative, and a float32 finite-difference
        # backend adds about eps32^(2/3)·|f|/|∇f| plus its O(h²) truncation with h ≈ 5e-3
        # (measured 1e-3 for `fd`, on rosenbrock and beale). 1e-2 keeps a tenfold margin
        # above those and far below O(1) mistakes.
        "float32": {"grad": 1e-2, "f": 1e-4},
    },
    "exact": {
        # float64: torch, autograd, jax and complexstep all measure 5.2e-12 over the built-in
        # cases — the reference's own error, not theirs. 1e-9 leaves a margin of 200 over it,
        # and sits 50 times below float32 rounding (~6e-8: a float64 gradient rounded
        # through float32) and 500 times below a gradient off by 5e-7, both of which the
        # approximate class cannot see.
        "float64": {"grad": 1e-9, "f": 1e-10},
        # float32: exact backends measure ≤ 1.4e-7 (float32 rounding of the arithmetic);
        # 1e-4 leaves a margin of 700 and still fails a float32 finite-difference gradient
        # (1e-3) that claims to be exact.
        "float32": {"grad": 1e-4, "f": 1e-4},
    },
}
TOLERANCE = TOLERANCES[DEFAULT_DIFFERENTIATION]
"""The tolerances of a backend that declares nothing (approximate differentiation)."""


def differentiation(backend: Any) -> str:
    """How the backend says it differentiates; an unknown word counts as the default (the
    declared check reports it)."""
    declared = getattr(backend, "differentiation", DEFAULT_DIFFERENTIATION)
    return declared if declared in DIFFERENTIATION else DEFAULT_DIFFERENTIATION


def tolerance_for(backend: Any, dtype: str) -> dict[str, float]:
    return TOLERANCES[differentiation(backend)][dtype]


def heavy_modules(backend: Any) -> tuple[str, ...]:
    declared = getattr(backend, "heavy_modules", ())
    if isinstance(declared, str):
        return (declared,)
    return tuple(m for m in declared if isinstance(m, str)) if declared else ()


def waivers(backend: Any) -> dict[str, str]:
    """The backend's waivers: check (or check:item) -> reason."""
    hints = getattr(backend, "conformance", None)
    waive = hints.get("waive") if isinstance(hints, Mapping) else None
    return {str(k): str(v) for k, v in waive.items()} if isinstance(waive, Mapping) else {}


def declaration_problems(backend: Any, checks: Any) -> list[str]:
    """What is wrong with the declarations above (for the declared check)."""
    wrong = []
    declared = getattr(backend, "differentiation", DEFAULT_DIFFERENTIATION)
    if declared not in DIFFERENTIATION:
        wrong.append(f"differentiation is {declared!r}: expected one of "
                     f"{', '.join(map(repr, DIFFERENTIATION))}")
    heavy = getattr(backend, "heavy_modules", ())
    if not (isinstance(heavy, tuple) and all(isinstance(m, str) and m for m in heavy)):
        wrong.append(f"heavy_modules is {heavy!r}: expected a tuple of module names, "
                     f"e.g. ('torch',)")
    hints = getattr(backend, "conformance", None)
    if hints is None:
        return wrong
    problem = hints_problem(hints, BACKEND_HINTS)
    if problem:
        wrong.append(problem)
        return wrong
    waive = hints.get("waive", {})
    if not isinstance(waive, Mapping):
        wrong.append(f"conformance['waive'] is {waive!r}: expected a mapping of check (or "
                     f"check:item) to the reason")
        return wrong
    for key, reason in waive.items():
        check = str(key).split(":", 1)[0]
        if check not in checks:
            wrong.append(f"conformance waives {key!r}, but there is no check {check!r}; "
                         f"the checks: {', '.join(checks)}")
        if not (isinstance(reason, str) and reason.strip()):
            wrong.append(f"conformance waives {key!r} without a reason: give one in words")
    return wrong


@dataclass
class BackendSubject:
    """The backend under test and where its checks run."""

    backend: Backend
    registry: Registry
    device: str | None  # the device the gradient, dtype and run checks use (None: none usable)
    unusable: str | None  # why no device is usable, when device is None

    @property
    def name(self) -> str:
        return str(getattr(self.backend, "name", type(self.backend).__name__))

    @property
    def exact(self) -> bool:
        return differentiation(self.backend) == "exact"

    def tolerance(self, dtype: str) -> dict[str, float]:
        return tolerance_for(self.backend, dtype)

    def waived(self, check: str, item: str | None = None) -> str | None:
        """The backend's reason for waiving this check (or this item of it), else None."""
        return waivers(self.backend).get(check if item is None else f"{check}:{item}")

    def need_device(self) -> str:
        if self.device is None:
            raise Skip(f"backend {self.name} is not available here: {self.unusable}")
        return self.device

    def need_dtype(self, dtype: str) -> None:
        declared = tuple(getattr(self.backend, "dtypes", ()))
        if dtype not in declared:
            raise Skip(f"backend {self.name} declares dtypes {', '.join(declared)}; "
                       f"not {dtype}")

    def first_dtype(self) -> str:
        """float64 when declared (the precise checks), else the first declared dtype."""
        declared = tuple(getattr(self.backend, "dtypes", ()))
        return "float64" if "float64" in declared or not declared else declared[0]


def subject_for(backend: Any, registry: Registry | None = None, device: str | None = None
                ) -> BackendSubject:
    registry = default_registry(registry)
    obj = resolve_object("backend", backend, registry)
    devices = tuple(getattr(obj, "devices", ()) or ())
    if device is not None:
        if device not in devices:
            raise UsageError(f"device={device} is not accepted: backend {obj.name} declares "
                             f"{', '.join(devices) or 'no devices'}")
        reason = available_on(obj, device)
        return BackendSubject(obj, registry, None if reason else device,
                              f"device={device}: {reason}" if reason else None)
    # The CPU when usable, else the first declared device that is.
    ordered = sorted(devices, key=lambda d: d != "cpu")
    reasons = []
    for d in ordered:
        reason = available_on(obj, d)
        if reason is None:
            return BackendSubject(obj, registry, d, None)
        reasons.append(f"{d}: {reason}")
    return BackendSubject(obj, registry, None, "; ".join(reasons) or "it declares no devices")


def available_on(backend: Backend, device: str) -> str | None:
    try:
        reason = backend.available(device)
    except Exception as exc:
        return f"available({device!r}) raised {describe(exc)}"
    return reason if isinstance(reason, str) and reason else None
