"""Backend checks of the arrays it hands out: their dtype and arithmetic, their device, that
they are fresh (not a buffer the next call overwrites), and the evaluation counters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.core.params import resolve
from optbench.testing._common import (
    Skip,
    builtin_cases,
    builtin_problem,
    describe,
    host,
    quiet,
    verdict,
)
from optbench.testing.backend_subject import BackendSubject, available_on
from optbench.testing.probes import PrecisionProbe, SmallQuadratic
from optbench.testing.reference import array_device, device_type
from optbench.testing.report import CheckResult


def check_dtype(s: BackendSubject) -> CheckResult:
    """Arrays in the requested dtype, and the arithmetic done in it.

    For each declared dtype: `objective.dtype`, and the numpy dtype of from_numpy's array, of
    f and of g, as `to_numpy` gives them, on the precision probe and on regression. Then the
    precision itself: the probe's result is 6 in float64 arithmetic and 0 in float32 (see
    `PrecisionProbe`), which catches a backend that computes in float64 and casts back.
    """
    device = s.need_device()
    wrong, notes = [], []
    regression = builtin_problem(s.registry, "regression")
    for dtype in tuple(s.backend.dtypes):
        probe = PrecisionProbe()
        arithmetic = None  # the precision the probe shows, once measured
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
            if problem is probe:
                arithmetic = _probe_precision(probe, objective, f, g, dtype, wrong)
            for label, array in (("from_numpy(x0)", x), ("f", f), ("g", g)):
                got = np.asarray(objective.to_numpy(array)).dtype
                if got != np.dtype(dtype):
                    wrong.append(f"{where}: {label} is {got}, expected {dtype}"
                                 + _arithmetic_note(arithmetic, dtype, got))
        notes.append(dtype)
    return verdict("dtype", wrong, f"arrays and arithmetic in {' and '.join(notes)} as "
                   f"requested (dtype of from_numpy, f, g; precision probe)")


def _probe_precision(probe: PrecisionProbe, objective: Any, f: Any, g: Any, dtype: str,
                     wrong: list[str]) -> str | None:
    """The precision the probe's result shows ("float64", "float32", or None when it is
    neither answer); a result other than the requested dtype's is reported in `wrong`."""
    f_expected, g_expected = probe.EXPECTED[dtype]
    other = "float32" if dtype == "float64" else "float64"
    f_other, g_other = probe.EXPECTED[other]
    f_got, g_got = float(host(objective, f)), host(objective, g)
    shown = f"f={f_got:g}, g=({', '.join(f'{v:g}' for v in g_got.ravel())})"
    # Close, not equal: a finite-difference backend's g is 1, 2, 3 to ~1e-10.
    if _near(f_got, g_got, f_expected, g_expected):
        return dtype
    if _near(f_got, g_got, f_other, g_other):
        wrong.append(
            f"{dtype} requested, but computed in {other} precision: "
            f"Σx·((c + 1e8) − 1e8) at x=(1,1,1), c=(1,2,3) gave {shown}, "
            f"{other}'s result; {dtype} arithmetic gives f={f_expected:g} "
            f"(near 1e8 float32 numbers are 8 apart, so c + 1e8 rounds to 1e8)")
        return other
    expected = f"f={f_expected:g}, g=({', '.join(f'{v:g}' for v in g_expected)})"
    hint = (f" (f is right, g is not: a gradient error, see gradient[{dtype}])"
            if abs(f_got - f_expected) <= 1e-3 else "")
    wrong.append(f"{dtype}: the precision probe Σx·((c + 1e8) − 1e8) gave "
                 f"{shown}; {dtype} arithmetic gives {expected}{hint}")
    return None


def _arithmetic_note(arithmetic: str | None, dtype: str, got: np.dtype) -> str:
    """What the precision probe says about an array of the wrong dtype — only what it
    measured: the arithmetic, not a guess."""
    if arithmetic is None or got not in (np.float32, np.float64):
        return ""
    if arithmetic != dtype:
        return f" (and the precision probe shows {arithmetic} arithmetic)"
    return f" (though the precision probe shows {dtype} arithmetic: only the array type is off)"


def _near(f: float, g: np.ndarray, f_expected: float, g_expected: Any) -> bool:
    """Within 1e-3 of the probe's answer: the two answers are 1 or more apart."""
    return bool(abs(f - f_expected) <= 1e-3
                and np.allclose(g, np.asarray(g_expected), rtol=0, atol=1e-3))


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


def check_fresh(s: BackendSubject) -> CheckResult:
    """value_and_grad hands out arrays the caller owns: a second call, at another point,
    leaves the f and g of the first as they were, and no call writes into its x.

    Optimizers keep earlier results: L-BFGS keeps the gradients of past steps, line searches
    the value at the start. A backend that returns views of a buffer it reuses on the next
    call corrupts them silently.
    """
    device = s.need_device()
    dtype = s.first_dtype()
    probe = SmallQuadratic()
    cases = [(probe.name, probe, probe.make({}, 0))]
    cases += [(c.label, c.problem, c.instance) for c in builtin_cases(s.registry)
              if c.label in ("regression", "rosenbrock(n=4)", "expr")]
    wrong = []
    for label, problem, instance in cases:
        try:
            objective = s.backend.prepare(problem, instance.data, dtype=dtype, device=device)
            x0 = np.asarray(instance.x0, dtype=np.float64)
            x1, x2 = objective.from_numpy(x0), objective.from_numpy(x0 + 0.5 + 0.25 * x0)
            x1_before = host(objective, x1)
            with quiet():
                f1, g1 = objective.value_and_grad(x1)
                first = {"f": host(objective, f1), "g": host(objective, g1)}
                f2, g2 = objective.value_and_grad(x2)
                second = {"f": host(objective, f2), "g": host(objective, g2)}
                later = {"f": host(objective, f1), "g": host(objective, g1)}
            x1_after = host(objective, x1)
        except Exception as exc:
            wrong.append(f"{label}: {describe(exc)}")
            continue
        for name in ("f", "g"):
            if np.array_equal(later[name], first[name], equal_nan=True):
                continue
            now = ("it now holds the second call's " + name + ": the backend returns a view "
                   "of a buffer that it reuses on the next call"
                   if np.array_equal(later[name], second[name], equal_nan=True)
                   else f"it changed from {_show(first[name])} to {_show(later[name])}")
            wrong.append(f"{label} ({dtype}): the {name} returned by value_and_grad at x₁ was "
                         f"overwritten by the next call (at x₂): {now}. Return a fresh "
                         f"array: optimizers keep earlier results (L-BFGS its past "
                         f"gradients)")
        if not np.array_equal(x1_after, x1_before, equal_nan=True):
            wrong.append(f"{label} ({dtype}): value_and_grad wrote into its input x: "
                         f"{_show(x1_before)} became {_show(x1_after)}")
    return verdict("fresh", wrong, f"on {', '.join(c[0] for c in cases)} ({dtype}): f and g "
                   f"of a call survive the next call; x is never written")


def _show(values: Any) -> str:
    return np.array2string(np.ravel(values), precision=10, threshold=8)
