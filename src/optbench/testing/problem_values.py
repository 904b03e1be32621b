"""Problem checks of the objective's values: finite at the start, the same value and gradient
on every backend as numpy's, and the declared reference a minimum."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optbench.testing._common import Skip, describe, host, quiet, verdict
from optbench.testing.backend_gradients import nearby_points
from optbench.testing.backend_subject import tolerance_for
from optbench.testing.problem_subject import ProblemSubject
from optbench.testing.reference import (
    central_gradient,
    compare_gradient,
    judged_tolerance,
    numpy_objective,
    reference_gradient,
)
from optbench.testing.report import CheckResult


def _show(values: Any) -> str:
    return np.array2string(np.ravel(np.asarray(values, dtype=np.float64)), precision=6,
                           threshold=8)


def _numpy_f(fun: Any, x: np.ndarray) -> tuple[float | None, str | None]:
    try:
        with quiet():
            return float(fun(x)), None
    except Exception as exc:
        return None, f"the objective raised {describe(exc)} on numpy (xp = numpy)"


def _on(backend: Any, problem: Any, data: Any, x: np.ndarray) -> tuple[Any, Any, str | None]:
    """(f, g) as float64 host values on `backend` (float64, cpu), or the error in words."""
    try:
        objective = backend.prepare(problem, data, dtype="float64", device="cpu")
        with quiet():
            f, g = objective.value_and_grad(objective.from_numpy(x))
            return float(host(objective, f)), host(objective, g), None
    except Exception as exc:
        return None, None, f"on {backend.name}: {describe(exc)}"


def check_finite(s: ProblemSubject) -> CheckResult:
    """For each parameter set, f at the seed's x0 is finite on numpy (float64), and f and g
    are finite on every built-in backend available here."""
    wrong, notes = [], []
    for label, _params, instance in s.cases():
        x0 = np.asarray(instance.x0, dtype=np.float64)
        fun = numpy_objective(s.problem, instance.data)
        f, error = _numpy_f(fun, x0)
        if error:
            wrong.append(f"{label}: at x0, {error}")
            continue
        if not math.isfinite(f):
            wrong.append(f"{label}: f at x0 is {f} (numpy, float64) at x0 = {_show(x0)}: the "
                         f"start drawn from the seed must lie where the objective is finite "
                         f"(draw it inside the domain, or map the variables onto it)")
            continue
        for backend in s.backends:
            f_b, g_b, error = _on(backend, s.problem, instance.data, x0)
            if error:
                wrong.append(f"{label}: at x0, {error}")
            elif not (math.isfinite(f_b) and np.all(np.isfinite(g_b))):
                wrong.append(f"{label}: on {backend.name}, f at x0 is {f_b} and its gradient "
                             f"{_show(g_b)}, where numpy's f is {f:.10g}")
        notes.append(f"{label}: f(x0) = {f:.6g}")
    on = ", ".join(b.name for b in s.backends) or "numpy alone (no backend available)"
    return verdict("finite", wrong, f"finite at x0 on numpy and {on}: {'; '.join(notes)}")


def check_gradients(s: ProblemSubject) -> CheckResult:
    """For each parameter set, at x0 and a nearby point: f and ∇f on torch, autograd and fd
    (those available) agree with numpy's f and its central-difference gradient, each to its
    backend's tolerance. A disagreement names the backends that do agree: the objective then
    computes something else on one backend (a constant made with that library's default
    dtype, an operation outside `xp`...)."""
    if not s.backends:
        raise Skip("no built-in backend is available here: " + "; ".join(s.unavailable))
    wrong, judged, skipped = [], 0, []
    for label, _params, instance in s.cases():
        fun = numpy_objective(s.problem, instance.data)
        for where, x in nearby_points(instance.x0):
            f_ref, error = _numpy_f(fun, x)
            if error or not math.isfinite(f_ref):
                skipped.append(f"{label} at {where}")
                continue
            with quiet():
                g_ref, spread = reference_gradient(fun, x)
            if not np.all(np.isfinite(g_ref)):
                skipped.append(f"{label} at {where}")
                continue
            judged += 1
            found, agree = [], []
            for backend in s.backends:
                tol = tolerance_for(backend, "float64")
                f, g, error = _on(backend, s.problem, instance.data, x)
                if error:
                    found.append(error)
                    continue
                _, problem = compare_gradient(g, g_ref, judged_tolerance(tol["grad"], spread),
                                              instance.variables)
                err_f = abs(f - f_ref) / (abs(f_ref) or 1.0)
                if problem:
                    found.append(f"{backend.name}'s gradient differs from numpy's central "
                                 f"differences: {problem}")
                elif not err_f <= tol["f"]:
                    found.append(f"{backend.name}'s f is {f!r}, numpy's {f_ref!r} (rel. "
                                 f"difference {err_f:.3g} > {tol['f']:g})")
                else:
                    agree.append(backend.name)
            for one in found:
                wrong.append(f"{label} at {where}: {one}"
                             + (f" ({' and '.join(agree)} agree with numpy)" if agree else ""))
    if not judged:
        raise Skip(f"no point to judge: f is not finite at {', '.join(skipped)} (see finite)")
    note = f"; not judged where f is not finite: {', '.join(skipped)}" if skipped else ""
    return verdict("gradients", wrong, f"{', '.join(b.name for b in s.backends)} agree with "
                   f"numpy at {judged} points (x0 and a nearby point per parameter set){note}")


# The reference: f there to 1e-9 of the objective's scale (the same formula, summed perhaps
# in another order), a gradient there below 1e-6 of the gradient at x0 (least squares solved
# by lstsq is stationary to ~cond·eps), and no lower f within these distances (relative to
# max(1, |x*|)) along the axes and a few fixed random directions.
REFERENCE_F_TOL = 1e-9
REFERENCE_STATIONARY = 1e-6
NEARBY_RADII = (1e-4, 1e-2)
RANDOM_DIRECTIONS = 4


def check_reference(s: ProblemSubject) -> CheckResult:
    """Where the problem declares its optimum (reference()), for each parameter set: f at x*
    is the declared f*, x* is a stationary point (∇f(x*) ≈ 0, by central differences), and
    f* ≤ f nearby, along every axis and a few random directions."""
    wrong, notes, none = [], [], []
    for label, _params, instance in s.cases():
        try:
            ref = s.problem.reference(instance)
        except Exception as exc:
            wrong.append(f"{label}: reference() raised {describe(exc)}")
            continue
        if ref is None:
            none.append(label)
            continue
        found = _reference_problems(s, instance, ref)
        wrong += [f"{label}: {one}" for one in found]
        if not found:
            notes.append(f"{label}: f* = {float(ref.f):.6g}")
    if not notes and not wrong:
        raise Skip(f"problem {s.name} declares no reference (reference() returns None) for "
                   f"{', '.join(none)}")
    note = f"; no reference for {', '.join(none)}" if none else ""
    return verdict("reference", wrong, "stationary, f* matches f(x*), f ≥ f* nearby: "
                   + "; ".join(notes) + note)


def _reference_problems(s: ProblemSubject, instance: Any, ref: Any) -> list[str]:
    n = len(instance.variables)
    x_star = np.asarray(ref.x, dtype=np.float64)
    f_star = float(ref.f)
    if x_star.shape != (n,) or not np.all(np.isfinite(x_star)) or not math.isfinite(f_star):
        return [f"the reference x* = {x_star} (shape {x_star.shape}) and f* = {f_star} must be "
                f"{n} finite numbers and a finite number"]
    fun = numpy_objective(s.problem, instance.data)
    z = np.asarray(instance.from_user(x_star), dtype=np.float64)
    x0 = np.asarray(instance.x0, dtype=np.float64)
    with quiet():
        f_at, f0 = float(fun(z)), float(fun(x0))
        g_star = central_gradient(fun, z)
        spread = float(np.max(np.abs(central_gradient(fun, z, step=2.0) - g_star)))
        g0 = central_gradient(fun, x0)
    scale = max(abs(f_star), abs(f0) if math.isfinite(f0) else 0.0, np.finfo(float).tiny)
    wrong = []
    if not abs(f_at - f_star) <= REFERENCE_F_TOL * scale:
        wrong.append(f"f at the reference x* = {_show(x_star)} is {f_at!r}, but the declared f* "
                     f"is {f_star!r}")
    g_scale = float(np.max(np.abs(g0))) if np.all(np.isfinite(g0)) else 0.0
    bound = REFERENCE_STATIONARY * g_scale + 2.0 * spread
    stationary = float(np.max(np.abs(g_star))) <= bound
    if not stationary:
        i = int(np.argmax(np.abs(g_star)))
        wrong.append(f"x* = {_show(x_star)} is not a stationary point: the gradient there is "
                     f"{_show(g_star)} (largest along {instance.variables[i]}), "
                     f"{float(np.max(np.abs(g_star))) / (g_scale or 1.0):.3g} of the gradient "
                     f"at x0; a minimum has ∇f = 0")
    lower = _lower_nearby(fun, z, f_star, REFERENCE_F_TOL * scale, instance.variables)
    if lower:
        wrong.append(f"f is lower near the reference: {lower}: x* is not a minimum"
                     + (" — stationary, but a saddle or a maximum" if stationary else ""))
    return wrong


def _lower_nearby(fun: Any, z: np.ndarray, f_star: float, tol: float, variables: Any
                  ) -> str | None:
    n = z.size
    rng = np.random.default_rng(20240607)
    directions = [(f"+{v}", e) for v, e in zip(variables, np.eye(n), strict=True)]
    directions += [(f"-{v}", -e) for v, e in zip(variables, np.eye(n), strict=True)]
    for k in range(RANDOM_DIRECTIONS):
        d = rng.standard_normal(n)
        directions.append((f"random direction {k + 1}", d / np.linalg.norm(d)))
    reach = max(1.0, float(np.max(np.abs(z))))
    for radius in NEARBY_RADII:
        for name, d in directions:
            with quiet():
                f = float(fun(z + radius * reach * d))
            if f < f_star - tol:
                return (f"f = {f:.10g} < f* = {f_star:.10g} at distance {radius * reach:g} "
                        f"along {name}")
    return None
