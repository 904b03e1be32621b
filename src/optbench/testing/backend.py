"""Conformance checks of a backend.

Each check is a small function of a `BackendSubject` returning a `CheckResult` whose message
says precisely what is wrong. `check_backend` runs them all (or some) and returns a `Report`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench import api
from optbench.core import Backend
from optbench.core.backend import DTYPES
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.plugins import Registry
from optbench.testing._common import (
    Skip,
    builtin_cases,
    default_registry,
    describe,
    host,
    owner_of,
    quiet,
    resolve_object,
    run_check,
    run_registry,
    verdict,
)
from optbench.testing.reference import (
    Overflow,
    PrecisionProbe,
    SmallQuadratic,
    array_device,
    central_gradient,
    compare_gradient,
    device_type,
    numpy_objective,
)
from optbench.testing.report import CheckResult, Report

# Tolerances of value and gradient, relative (see `relative_error`: to the gradient's largest
# component), against the float64 finite-difference reference evaluated on the same
# (rounded) data and point. A wrong gradient (sign, factor, missing term) errs by O(1), so
# both tolerances leave a wide gap to it.
TOLERANCE = {
    # float64: the reference is good to ~1e-12 (see central_gradient), automatic
    # differentiation to ~1e-14; 1e-6 also admits backends that approximate, as optbench's
    # `fd` does (about eps^(2/3)·|f|/|∇f| ≈ 1e-10 here). f: libraries sum in different orders,
    # an error of about n·eps ≈ 1e-14; 1e-10 is generous and still tells float32 apart.
    "float64": {"grad": 1e-6, "f": 1e-10},
    # float32: eps is 1.2e-7 (rounding 6e-8). Rounding the residuals and sums of the built-in
    # problems (regression: terms up to ~1e2 over 20 samples, cancelling in y − V·w) costs up
    # to ~1e-5 relative, and a float32 finite-difference backend adds about
    # eps32^(2/3)·|f|/|∇f| plus its O(h²) truncation with h ≈ 5e-3 (up to ~1e-3 on rosenbrock
    # and beale). 1e-2 keeps a tenfold margin above those and far below O(1) mistakes.
    "float32": {"grad": 1e-2, "f": 1e-4},
}

DETERMINISM_STEPS = 25
DIVERGE_STEPS = 1000


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

    def need_device(self) -> str:
        if self.device is None:
            raise Skip(f"backend {self.name} is not available here: {self.unusable}")
        return self.device

    def need_dtype(self, dtype: str) -> None:
        declared = tuple(getattr(self.backend, "dtypes", ()))
        if dtype not in declared:
            raise Skip(f"backend {self.name} declares dtypes {', '.join(declared)}; "
                       f"not {dtype}")


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
    return verdict("declared", wrong, f"name {name!r}, devices {', '.join(devices or ())}, "
                   f"dtypes {', '.join(dtypes or ())}")


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


def check_gradient(s: BackendSubject, dtype: str) -> CheckResult:
    """Value and gradient on every built-in problem, at the seed's start and at a nearby
    point, against numpy and central finite differences in float64."""
    name = f"gradient[{dtype}]"
    s.need_dtype(dtype)
    device = s.need_device()
    tol = TOLERANCE[dtype]
    wrong: list[str] = []
    worst_g = worst_f = 0.0
    evaluations = 0
    cases = builtin_cases(s.registry)
    for case in cases:
        where = f"{case.label} ({dtype})"
        try:
            objective = s.backend.prepare(case.problem, case.instance.data, dtype=dtype,
                                          device=device)
        except Exception as exc:
            wrong.append(f"{where}: prepare raised {describe(exc)}")
            continue
        reference = numpy_objective(case.problem, case.instance.data, dtype)
        before = len(wrong)
        for label, point in _points(case.instance.x0):
            x = np.asarray(point, dtype=dtype).astype(np.float64)  # representable in dtype
            with quiet():
                f_ref = float(reference(x))
                g_ref = central_gradient(reference, x)
            if not (math.isfinite(f_ref) and np.all(np.isfinite(g_ref))):
                continue  # not a point to judge at
            try:
                f, g = objective.value_and_grad(objective.from_numpy(x))
                f, g = float(host(objective, f)), host(objective, g)
            except Exception as exc:
                wrong.append(f"{where} at {label}: value_and_grad raised {describe(exc)}")
                continue
            evaluations += 1
            err_f = abs(f - f_ref) / (abs(f_ref) or 1.0)
            worst_f = max(worst_f, err_f) if math.isfinite(err_f) else math.inf
            if not err_f <= tol["f"]:
                wrong.append(f"value of {where} at {label} differs from numpy's: got "
                             f"{f:.10g}, expected {f_ref:.10g} (rel. error {err_f:.3g} > "
                             f"tol {tol['f']:g})")
            err_g, problem = compare_gradient(g, g_ref, tol["grad"], case.instance.variables)
            worst_g = max(worst_g, err_g)
            if problem:
                wrong.append(f"gradient of {where} at {label} differs from central finite "
                             f"differences: {problem}")
        more = len(wrong) - before - 1
        if more > 0:  # one line per case: its first finding, and how many more
            wrong[before:] = [f"{wrong[before]} (+{more} more on {case.label})"]
    labels = ", ".join(c.label for c in cases)
    return verdict(name, wrong,
                   f"{len(cases)} cases ({labels}), 2 points each: max rel. error of "
                   f"the gradient {worst_g:.2g} (tol {tol['grad']:g}), of f {worst_f:.2g} "
                   f"(tol {tol['f']:g})",
                   heading=f"{len(wrong)} wrong of {evaluations} evaluations on {device}:")


def _points(x0: Any) -> list[tuple[str, np.ndarray]]:
    """The seed's start, and a nearby point drawn from a fixed seed (no special structure)."""
    x0 = np.asarray(x0, dtype=np.float64)
    rng = np.random.default_rng(20240607)
    nearby = x0 + 0.5 * np.maximum(1.0, np.abs(x0)) * rng.standard_normal(x0.shape)
    return [("x0 (seed 0)", x0), ("x0 + noise", nearby)]


def check_gradient_float64(s: BackendSubject) -> CheckResult:
    return check_gradient(s, "float64")


def check_gradient_float32(s: BackendSubject) -> CheckResult:
    return check_gradient(s, "float32")


def check_dtype(s: BackendSubject) -> CheckResult:
    """Arrays in the requested dtype, and the arithmetic done in it.

    For each declared dtype: `objective.dtype`, and the numpy dtype of from_numpy's array, of
    f and of g, as `to_numpy` gives them, on the precision probe and on regression. Then the
    precision itself: the probe's result is 6 in float64 arithmetic and 0 in float32 (see
    `PrecisionProbe`), which catches a backend that computes in float64 and casts back.
    """
    device = s.need_device()
    wrong, notes = [], []
    regression = _builtin_problem(s, "regression")
    for dtype in tuple(s.backend.dtypes):
        probe = PrecisionProbe()
        for problem in (probe, regression):
            if problem is None:
                continue
            instance = problem.make(resolve(problem.params, {}, problem.name), 0)
            objective = s.backend.prepare(problem, instance.data, dtype=dtype, device=device)
            where = f"{dtype} ({problem.name})"
            declared = getattr(objective, "dtype", None)
            if declared != dtype:
                wrong.append(f"{where}: objective.dtype is {declared!r}, expected {dtype!r}")
            x = objective.from_numpy(instance.x0)
            f, g = objective.value_and_grad(x)
            for label, array in (("from_numpy(x0)", x), ("f", f), ("g", g)):
                got = np.asarray(objective.to_numpy(array)).dtype
                if got != np.dtype(dtype):
                    wrong.append(f"{where}: {label} is {got}, expected {dtype}"
                                 + (" (computed in float64 and not cast back?)"
                                    if got == np.float64 else ""))
            if problem is probe:
                f_expected, g_expected = probe.EXPECTED[dtype]
                other = "float32" if dtype == "float64" else "float64"
                f_other, g_other = probe.EXPECTED[other]
                f_got, g_got = float(host(objective, f)), host(objective, g)
                shown = f"f={f_got:g}, g=({', '.join(f'{v:g}' for v in g_got.ravel())})"
                # Close, not equal: a finite-difference backend's g is 1, 2, 3 to ~1e-10.
                if _near(f_got, g_got, f_other, g_other):
                    wrong.append(
                        f"{dtype} requested, but computed in {other} precision: "
                        f"Σx·((c + 1e8) − 1e8) at x=(1,1,1), c=(1,2,3) gave {shown}, "
                        f"{other}'s result; {dtype} arithmetic gives f={f_expected:g} "
                        f"(near 1e8 float32 numbers are 8 apart, so c + 1e8 rounds to 1e8)")
                elif not _near(f_got, g_got, f_expected, g_expected):
                    expected = (f"f={f_expected:g}, "
                                f"g=({', '.join(f'{v:g}' for v in g_expected)})")
                    hint = (" (f is right, g is not: a gradient error, see "
                            f"gradient[{dtype}])" if abs(f_got - f_expected) <= 1e-3 else "")
                    wrong.append(f"{dtype}: the precision probe Σx·((c + 1e8) − 1e8) gave "
                                 f"{shown}; {dtype} arithmetic gives {expected}{hint}")
        notes.append(dtype)
    return verdict("dtype", wrong, f"arrays and arithmetic in {' and '.join(notes)} as "
                   f"requested (dtype of from_numpy, f, g; precision probe)")


def _near(f: float, g: np.ndarray, f_expected: float, g_expected: Any) -> bool:
    """Within 1e-3 of the probe's answer: the two answers are 1 or more apart."""
    return bool(abs(f - f_expected) <= 1e-3
                and np.allclose(g, np.asarray(g_expected), rtol=0, atol=1e-3))


def _builtin_problem(s: BackendSubject, name: str) -> Any:
    try:
        return s.registry.get("problem", name)
    except UsageError:
        return None


def check_device(s: BackendSubject) -> CheckResult:
    """Arrays stay on the requested device, for every declared device that is available.

    from_numpy(x0), f and g must convert with to_numpy (x0 unchanged by the round trip),
    and — for arrays that report a device (torch's `.device.type`, jax's `.platform`,
    numpy ≥ 2's "cpu") — be on the device asked for: a result left on another device fails.
    """
    b, wrong, checked, notes = s.backend, [], [], []
    problem = SmallQuadratic()
    instance = problem.make({}, 0)
    data = instance.data
    expected = instance.x0.astype(b.dtypes[0]).astype(np.float64)
    for device in tuple(b.devices):
        reason = available_on(b, device)
        if reason is not None:
            notes.append(f"{device} not available here ({reason})")
            continue
        want = device_type(device)
        objective = b.prepare(problem, data, dtype=b.dtypes[0], device=device)
        said = getattr(objective, "device", None)
        if device_type(said) != want:
            wrong.append(f"device={device}: objective.device is {said!r}")
        x = objective.from_numpy(instance.x0)
        f, g = objective.value_and_grad(x)
        objective.synchronize()
        silent = []
        for label, array in (("from_numpy(x0)", x), ("f", f), ("g", g)):
            on = array_device(array)
            if on is None:
                silent.append(label)
                if want != "cpu":
                    wrong.append(f"device={device}: {label} ({type(array).__name__}) reports "
                                 f"no device; arrays on {device} must say so (.device)")
            elif on != want:
                wrong.append(f"device={device} requested, but {label} is on {on} "
                             f"({type(array).__name__}): the result was left on the wrong "
                             f"device")
            try:
                np.asarray(objective.to_numpy(array))
            except Exception as exc:
                wrong.append(f"device={device}: to_numpy({label}) raised {describe(exc)}")
        try:  # the round trip keeps the values (the gradient's are gradient[...]'s business)
            back = host(objective, x)
            if not np.array_equal(back, expected):
                wrong.append(f"device={device}: to_numpy(from_numpy(x0)) gave {back}, "
                             f"expected {expected} (values lost in the transfer?)")
        except Exception:
            pass  # reported above
        checked.append(device + (f" (arrays report no device: {', '.join(silent)})"
                                 if silent else ""))
    if not checked and not wrong:
        raise Skip("no declared device is available here: " + "; ".join(notes))
    return verdict("device", wrong, "arrays stay on " + ", ".join(checked)
                   + ("; " + "; ".join(notes) if notes else ""))


def _run(s: BackendSubject, problem: str, optimizer: str, dtype: str, steps: int,
         seed: int = 0, problems=(), **options: Any) -> Any:
    """One full run through optbench.api, in a registry of just what it needs."""
    base = s.registry
    needed = [base.get("problem", problem)] if problem in base.items["problem"] else []
    registry = run_registry([s.backend], [*needed, *problems], [base.get("optimizer",
                                                                          optimizer)])
    plan = api.plan(problem, s.backend.name, optimizer, steps=steps, seed=seed, dtype=dtype,
                    device=s.device, registry=registry, **options)
    with quiet():
        return api.execute(plan, plan.backends[0])


def check_deterministic(s: BackendSubject) -> CheckResult:
    """The same seed gives the same run: two full runs (plan and execute, nadam, 25 steps)
    per declared dtype on regression and quadratic give bitwise-equal x and trace."""
    s.need_device()
    wrong, runs = [], 0
    for dtype in tuple(s.backend.dtypes):
        for problem in ("regression", "quadratic"):
            if _builtin_problem(s, problem) is None:
                continue
            a, b = (_run(s, problem, "nadam", dtype, DETERMINISM_STEPS) for _ in range(2))
            runs += 1
            where = f"{problem} ({dtype}, seed 0, nadam, {DETERMINISM_STEPS} steps)"
            if a.status == "error" or b.status == "error":
                wrong.append(f"{where}: the run failed: {a.message or b.message}")
                continue
            xa, xb = np.asarray(a.x), np.asarray(b.x)
            if xa.tobytes() != xb.tobytes():
                diff = np.abs(xa - xb)
                i = int(np.argmax(diff))
                wrong.append(f"two runs of {where} gave different x: max |Δx| = "
                             f"{diff[i]:.3g} at {a.variables[i]} ({xa[i]!r} vs {xb[i]!r}); "
                             f"the backend is not deterministic for a seed")
            elif [t[2] for t in a.trace] != [t[2] for t in b.trace]:
                wrong.append(f"two runs of {where} reached the same x along different f")
    return verdict("deterministic", wrong,
                   f"{runs} pairs of runs with the same seed: bitwise-equal x and trace")


def check_diverged(s: BackendSubject) -> CheckResult:
    """Non-finite values end a run with status "diverged", never an exception: regression
    with sgd at lr 1 (x overflows), and a probe whose f turns NaN when exp(x) overflows."""
    s.need_device()
    wrong, seen = [], []
    cases = [("regression", {"lr": 1.0}, (), DIVERGE_STEPS),
             (Overflow.name, {"lr": 100.0}, (Overflow(),), 100)]
    for dtype in tuple(s.backend.dtypes):
        for problem, options, extra, steps in cases:
            if not extra and _builtin_problem(s, problem) is None:
                continue
            record = _run(s, problem, "sgd", dtype, steps, problems=extra,
                          optimizer_params=options)
            where = f"{problem} ({dtype}, sgd lr={options['lr']:g})"
            if record.status == "error":
                wrong.append(f"{where}: the run raised instead of ending as 'diverged': "
                             f"{record.message}")
            elif record.status != "diverged":
                wrong.append(f"{where}: status {record.status!r} after {record.steps} steps "
                             f"(f={record.f}), expected 'diverged'")
            else:
                seen.append(f"{problem}/{dtype} at step {record.steps}")
    return verdict("diverged", wrong, "diverged without an exception: " + ", ".join(seen))


COMPILED_STEPS = 50
COMPILED_TOL = 1e-10  # the same float64 operations, possibly fused or reordered by a compiler


def check_compiled(s: BackendSubject) -> CheckResult:
    """For a backend with `compiles = True`: the compiled whole loop (`--compile`) follows the
    step-by-step run — nadam and sgd with momentum, 50 steps on regression in float64, x and
    the traced f agree to 1e-10 — and a run that overflows still ends as "diverged"."""
    if not getattr(s.backend, "compiles", False):
        raise Skip(f"backend {s.name} has no compiled loop (compiles = False)")
    s.need_device()
    s.need_dtype("float64")
    wrong, worst = [], 0.0
    for optimizer, params in (("nadam", {}), ("sgd", {"momentum": 0.9})):
        plain, compiled = (_run(s, "regression", optimizer, "float64", COMPILED_STEPS,
                                optimizer_params=params, compile=flag)
                           for flag in (False, True))
        where = f"regression, {optimizer}{' (momentum 0.9)' if params else ''}"
        if compiled.status == "error" or plain.status == "error":
            wrong.append(f"{where}: the run failed: {compiled.message or plain.message}")
            continue
        xa, xb = np.asarray(plain.x), np.asarray(compiled.x)
        err = float(np.max(np.abs(xa - xb))) / max(1.0, float(np.max(np.abs(xa))))
        worst = max(worst, err)
        if not err <= COMPILED_TOL:
            wrong.append(f"{where}: the compiled loop ends at x={compiled.x}, the step-by-step "
                         f"run at x={plain.x} (rel. difference {err:.3g} > {COMPILED_TOL:g})")
        f_plain = {int(k): f for k, _, f in plain.trace}
        for k, _, f in compiled.trace:
            ref = f_plain.get(int(k))
            if ref is not None and not abs(f - ref) <= COMPILED_TOL * max(1.0, abs(ref)):
                wrong.append(f"{where}: f at step {int(k)} is {f!r} compiled, {ref!r} step "
                             f"by step")
                break
    record = _run(s, "regression", "sgd", "float64", 100, optimizer_params={"lr": 1.0},
                  compile=True)  # overflows by step 45 (see check_diverged)
    if record.status != "diverged":
        wrong.append(f"regression, sgd lr=1, compiled: status {record.status!r} "
                     f"({record.message}), expected 'diverged'")
    return verdict("compiled", wrong, f"compiled loops follow the step-by-step runs (max rel. "
                   f"difference {worst:.2g}, tol {COMPILED_TOL:g}) and end as 'diverged' on "
                   f"overflow")


BACKEND_CHECKS: dict[str, Callable[[BackendSubject], CheckResult]] = {
    "declared": check_declared,
    "available": check_available,
    "gradient[float64]": check_gradient_float64,
    "gradient[float32]": check_gradient_float32,
    "dtype": check_dtype,
    "device": check_device,
    "deterministic": check_deterministic,
    "diverged": check_diverged,
    "compiled": check_compiled,
}


def select(checks: Iterable[str] | None, known: dict[str, Any], kind: str) -> list[str]:
    if checks is None:
        return list(known)
    chosen = [checks] if isinstance(checks, str) else list(checks)
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise UsageError(f"unknown {kind} check {unknown[0]!r}; the checks: "
                         f"{', '.join(known)}")
    return chosen


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
        report.results.append(run_check(name, BACKEND_CHECKS[name], subject))
    return report


def run_backend_check(backend: Any, name: str, *, registry: Registry | None = None,
                      device: str | None = None) -> CheckResult:
    """One backend check by name (what the pytest class runs per test)."""
    (result,) = check_backend(backend, registry=registry, device=device,
                              checks=[name]).results
    return result
