"""Backend checks of values and derivatives against the numpy reference.

- gradient[float64], gradient[float32]: every built-in problem, at two points each.
- derivatives: every function and operator of optbench's expression language, alone.
- linear: a constant gradient (a linear objective), and its Hessian product, zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from optbench.testing._common import builtin_cases, describe, host, quiet, verdict
from optbench.testing.backend_subject import BackendSubject
from optbench.testing.probes import Linear
from optbench.testing.reference import (
    compare_gradient,
    float32_numbers,
    judged_tolerance,
    near_float32,
    numpy_objective,
    reference_gradient,
)
from optbench.testing.report import CheckResult


def check_gradient(s: BackendSubject, dtype: str) -> CheckResult:
    """Value and gradient on every built-in problem, at the seed's start and at a nearby
    point, against numpy and central finite differences in float64; in float64, also
    whether the results are float32 numbers (a float64 result rounded through float32)."""
    name = f"gradient[{dtype}]"
    s.need_dtype(dtype)
    device = s.need_device()
    tol = s.tolerance(dtype)
    wrong: list[str] = []
    rounded: list[str] = []
    waived: list[str] = []
    worst_g = worst_f = 0.0
    evaluations = 0
    cases = builtin_cases(s.registry)
    for case in cases:
        where = f"{case.label} ({dtype})"
        reason = s.waived(name, case.label)
        if reason:
            waived.append(f"{case.label} ({reason})")
            continue
        try:
            objective = s.backend.prepare(case.problem, case.instance.data, dtype=dtype,
                                          device=device)
        except Exception as exc:
            wrong.append(f"{where}: prepare raised {describe(exc)}")
            continue
        reference = numpy_objective(case.problem, case.instance.data, dtype)
        before = len(wrong)
        values = Float32Numbers()
        for label, point in nearby_points(case.instance.x0):
            x = np.asarray(point, dtype=dtype).astype(np.float64)  # representable in dtype
            with quiet():
                f_ref = float(reference(x))
                g_ref, spread = reference_gradient(reference, x)
            if not (math.isfinite(f_ref) and np.all(np.isfinite(g_ref))):
                continue  # not a point to judge at
            try:
                f, g = objective.value_and_grad(objective.from_numpy(x))
                f, g = float(host(objective, f)), host(objective, g)
            except Exception as exc:
                wrong.append(f"{where} at {label}: value_and_grad raised {describe(exc)}")
                continue
            evaluations += 1
            values.add(f, f_ref, g, g_ref)
            err_f = abs(f - f_ref) / (abs(f_ref) or 1.0)
            worst_f = max(worst_f, err_f) if math.isfinite(err_f) else math.inf
            if not err_f <= tol["f"]:
                wrong.append(f"value of {where} at {label} differs from numpy's: got "
                             f"{f:.10g}, expected {f_ref:.10g} (rel. error {err_f:.3g} > "
                             f"tol {tol['f']:g})")
            err_g, problem = compare_gradient(g, g_ref, judged_tolerance(tol["grad"], spread),
                                              case.instance.variables)
            worst_g = max(worst_g, err_g)
            if problem:
                wrong.append(f"gradient of {where} at {label} differs from central finite "
                             f"differences: {problem}")
        more = len(wrong) - before - 1
        if more > 0:  # one line per case: its first finding, and how many more
            wrong[before:] = [f"{wrong[before]} (+{more} more on {case.label})"]
        if dtype == "float64":
            found = values.verdict()
            if found:
                rounded.append(f"{case.label}: {found}")
    if rounded:
        wrong.append("float64 results that are float32 numbers — a float64 computation gives "
                     "one with probability 2^-29 per value, so these were rounded through "
                     "float32 (a float32 array or temporary on the way): "
                     + "; ".join(rounded))
    labels = ", ".join(c.label for c in cases)
    note = f"; waived: {', '.join(waived)}" if waived else ""
    kind = "exact" if s.exact else "approximate"
    return verdict(name, wrong,
                   f"{len(cases)} cases ({labels}), 2 points each: max rel. error of "
                   f"the gradient {worst_g:.2g} (tol {tol['grad']:g}, {kind} "
                   f"differentiation), of f {worst_f:.2g} (tol {tol['f']:g}){note}",
                   heading=f"{len(wrong)} wrong of {evaluations} evaluations on {device}:")


class Float32Numbers:
    """Collects one case's float64 results, to tell whether they are all float32 numbers.

    Only values whose reference is not near a float32 number count (an integer gradient is
    a float32 number however it was computed). At least 3 gradient components, or both
    values of f, must be such values before anything is concluded: a float64 computation
    gives all of them as float32 numbers with probability below 2^-58.
    """

    def __init__(self) -> None:
        self.f: list[tuple[float, float]] = []
        self.g: list[tuple[float, float]] = []

    def add(self, f: float, f_ref: float, g: np.ndarray, g_ref: np.ndarray) -> None:
        self.f.append((f, f_ref))
        self.g.extend(zip(np.ravel(g).tolist(), np.ravel(g_ref).tolist(), strict=False))

    @staticmethod
    def _all_float32(pairs: list[tuple[float, float]], least: int) -> str | None:
        if not pairs:
            return None
        got, ref = (np.array(v, dtype=np.float64) for v in zip(*pairs, strict=True))
        telling = ~near_float32(ref)
        if telling.sum() < least or not float32_numbers(got[telling]).all():
            return None
        i = int(np.argmax(np.abs(got[telling] - ref[telling]) / np.abs(ref[telling])))
        return (f"all {int(telling.sum())} are float32 numbers (e.g. {float(got[telling][i])!r},"
                f" the float32 number nearest to {float(ref[telling][i])!r})")

    def verdict(self) -> str | None:
        found = [f"{what} {text}" for what, text in
                 (("values of f:", self._all_float32(self.f, 2)),
                  ("gradient components:", self._all_float32(self.g, 3))) if text]
        return ", ".join(found) or None


def nearby_points(x0: Any) -> list[tuple[str, np.ndarray]]:
    """The seed's start, and a nearby point drawn from a fixed seed (no special structure)."""
    x0 = np.asarray(x0, dtype=np.float64)
    rng = np.random.default_rng(20240607)
    nearby = x0 + 0.5 * np.maximum(1.0, np.abs(x0)) * rng.standard_normal(x0.shape)
    return [("x0 (seed 0)", x0), ("x0 + noise", nearby)]


def check_gradient_float64(s: BackendSubject) -> CheckResult:
    return check_gradient(s, "float64")


def check_gradient_float32(s: BackendSubject) -> CheckResult:
    return check_gradient(s, "float32")


# ---------------------------------------------------------------------------------------
# derivatives: each function and operator of the expression language
# ---------------------------------------------------------------------------------------

# One-variable points for the functions, chosen to put two or more inside every domain the
# language has or may get (log, sqrt: x > 0; acosh: x ≥ 1; asin, acos, atanh: |x| < 1),
# both signs (abs), and away from the singularities of tan (±π/2) and of 1/x. A point where
# numpy's value is not finite is outside the function's domain and is skipped; a point where
# the reference cannot be trusted to the tolerance widens it (reference_gradient).
FUNCTION_POINTS = (-2.2, -0.6, -0.25, 0.35, 0.8, 1.1, 2.5)
# The operators (both arguments variables), with points that keep x > 0 for x ** y.
OPERATORS = ("+", "-", "*", "/", "**")
OPERATOR_POINTS = ((0.7, -1.3), (1.9, 0.6), (0.35, 2.2))
# Other spellings and forms the language compiles on their own paths, with their points.
FORMS = (("^", "x ^ y", OPERATOR_POINTS), ("x^3", "x ^ 3", tuple((p,) for p in FUNCTION_POINTS)),
         ("-x", "-x * y", OPERATOR_POINTS))


def language_functions() -> tuple[str, ...]:
    """The functions of optbench's expression language, from the language's own table
    (expr.compile's when it has one, else expr.parse's): a function added there is checked
    here without any change to the kit."""
    from optbench.expr import compile as compiled
    from optbench.expr import parse

    table = getattr(compiled, "FUNCTIONS", None) or parse.FUNCTIONS
    return tuple(table)


def derivative_cases() -> list[tuple[str, str, tuple[tuple[float, ...], ...]]]:
    """(item, expression, points): every function, every operator, the other forms."""
    one = tuple((p,) for p in FUNCTION_POINTS)
    cases = [(fn, f"{fn}(x)", one) for fn in language_functions()]
    cases += [(op, f"x {op} y", OPERATOR_POINTS) for op in OPERATORS]
    cases += list(FORMS)
    return cases


def check_derivatives(s: BackendSubject) -> CheckResult:
    """Every function of the expression language (read from its table) and every operator,
    each alone — f(x), x op y — at points across its domain, against central differences of
    numpy's own function; a derivative rule that is wrong anywhere is named."""
    from optbench.expr import compile_expression
    from optbench.problems.expression import ExpressionProblem

    device = s.need_device()
    dtype = s.first_dtype()
    tol = s.tolerance(dtype)
    problem = ExpressionProblem()
    wrong, waived, unjudged, judged = [], [], [], []
    worst, points = 0.0, 0
    for item, text, cases in derivative_cases():
        reason = s.waived("derivatives", item)
        if reason:
            waived.append(f"{item} ({reason})")
            continue
        expression = compile_expression(text)
        data = {"_expression": expression}
        try:
            objective = s.backend.prepare(problem, data, dtype=dtype, device=device)
        except Exception as exc:
            wrong.append(f"{item}: prepare of {text!r} raised {describe(exc)}")
            continue
        seen = 0
        for point in cases:
            x = np.asarray(point, dtype=dtype).astype(np.float64)
            found, err = _judge_point(objective, lambda z, e=expression: problem.objective(
                z, {"_expression": e}, np), x, tol, expression.variables)
            if found is None:
                continue  # outside the domain
            seen += 1
            worst = max(worst, err)
            if found:
                at = ", ".join(f"{v}={c:g}" for v, c in zip(expression.variables, x,
                                                              strict=True))
                wrong.append(f"{item}: the derivative of {text} at {at} is wrong: {found}")
                break
        (judged if seen else unjudged).append(item)
        points += seen
    note = f"; waived: {', '.join(waived)}" if waived else ""
    note += (f"; not judged (no point of their domain among {FUNCTION_POINTS}): "
             f"{', '.join(unjudged)}") if unjudged else ""
    return verdict("derivatives", wrong,
                   f"{len(judged)} functions and operators ({', '.join(judged)}) at {points} "
                   f"points in {dtype}: max rel. error {worst:.2g} (tol {tol['grad']:g})"
                   f"{note}")


def _judge_point(objective: Any, reference: Callable[[np.ndarray], Any], x: np.ndarray,
                 tol: dict[str, float], variables: Any) -> tuple[str | None, float]:
    """('', err) when right, (what is wrong, err) when not, (None, 0) when x is outside the
    function's domain (numpy's value, or its reference gradient, is not finite)."""
    with quiet():
        f_ref = float(reference(x))
        g_ref, spread = reference_gradient(reference, x)
    if not (math.isfinite(f_ref) and np.all(np.isfinite(g_ref)) and math.isfinite(spread)):
        return None, 0.0
    try:
        with quiet():
            f, g = objective.value_and_grad(objective.from_numpy(x))
            f, g = float(host(objective, f)), host(objective, g)
    except Exception as exc:
        return f"value_and_grad raised {describe(exc)}", math.inf
    err, problem = compare_gradient(g, g_ref, judged_tolerance(tol["grad"], spread),
                                    variables)
    if problem:
        return problem, err
    if not abs(f - f_ref) <= tol["f"] * max(1.0, abs(f_ref)):
        return f"its value is {f!r}, numpy's {f_ref!r}", err
    return "", err


# ---------------------------------------------------------------------------------------
# linear: a constant gradient
# ---------------------------------------------------------------------------------------


def check_linear(s: BackendSubject) -> CheckResult:
    """A linear objective, f = c·x + 1.5: value_and_grad gives g = c at points of every sign
    and scale (0 included) without raising, and so does a linear expression; a backend with
    a Hessian-vector product (`hvp`) gives 0."""
    from optbench.expr import compile_expression
    from optbench.problems.expression import ExpressionProblem

    device = s.need_device()
    dtype = s.first_dtype()
    tol = s.tolerance(dtype)
    probe = Linear()
    c = np.array(probe.C)
    expression = compile_expression("2*x - 3*y + 0.5*z + 1.5")
    cases = [("c·x + 1.5 (probe-linear)", probe, probe.data()),
             (f"expr {expression.text!r}", ExpressionProblem(),
              {"_expression": expression})]
    wrong, checked, hvps = [], 0, 0
    for label, problem, data in cases:
        try:
            objective = s.backend.prepare(problem, data, dtype=dtype, device=device)
        except Exception as exc:
            wrong.append(f"{label}: prepare raised {describe(exc)}")
            continue
        for point in probe.POINTS:
            x = np.asarray(point, dtype=dtype).astype(np.float64)
            where = f"{label} at x=({', '.join(f'{v:g}' for v in x)})"
            try:
                with quiet():
                    f, g = objective.value_and_grad(objective.from_numpy(x))
                    f, g = float(host(objective, f)), host(objective, g)
            except Exception as exc:
                wrong.append(f"{where}: value_and_grad raised {describe(exc)} — on a "
                             f"linear objective, whose gradient (2, -3, 0.5) is constant")
                break
            checked += 1
            f_exp = float(c @ x) + 1.5
            _, problem_g = compare_gradient(g, c, tol["grad"], probe.variables_)
            if problem_g:
                wrong.append(f"{where}: the constant gradient is wrong: {problem_g}")
            if not abs(f - f_exp) <= tol["f"] * max(1.0, abs(f_exp)):
                wrong.append(f"{where}: f is {f!r}, expected {f_exp!r}")
            hvp = getattr(objective, "hvp", None)
            if callable(hvp):
                hvps += 1
                try:
                    v = objective.from_numpy(np.array([1.0, -2.0, 0.5]))
                    with quiet():
                        hv = host(objective, hvp(objective.from_numpy(x), v))
                except Exception as exc:
                    wrong.append(f"{where}: hvp(x, v) raised {describe(exc)} — the Hessian "
                                 f"of a linear objective is 0, and H·v must be 0")
                    break
                if hv.shape != x.shape or not np.all(np.abs(hv) <= tol["grad"] * 3.0):
                    wrong.append(f"{where}: hvp(x, v) gave {hv}, expected zeros of shape "
                                 f"{x.shape} (the Hessian of a linear objective)")
    return verdict("linear", wrong, f"g = (2, -3, 0.5) at {checked} evaluations in {dtype}, "
                   f"f to tol {tol['f']:g}" + (f"; hvp gives 0 ({hvps} products)" if hvps
                                               else ""))

