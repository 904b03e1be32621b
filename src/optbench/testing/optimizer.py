"""Conformance checks of an optimizer.

An optimizer is a pair of pure functions over the namespace `xp` (optbench.core.optimizer):
the checks run it on every available built-in backend, look for mutated inputs and hidden
state, for descent on a convex quadratic, for the same trajectory on two exact backends, and
for non-finite values ending a run as "diverged".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optbench import api
from optbench.core import Backend, Method, Objective, Optimizer, Param
from optbench.core.params import resolve
from optbench.plugins import Registry
from optbench.testing._common import (
    Skip,
    builtin_names,
    default_registry,
    describe,
    hints_problem,
    host,
    owner_of,
    quiet,
    resolve_object,
    run_check,
    run_registry,
    select,
    verdict,
)
from optbench.testing.backend_subject import available_on
from optbench.testing.optimizer_spies import (
    SpyBackend,
    SpyObjective,
    changed,
    drives_itself,
    show_value,
    snapshot,
    trajectory,
)
from optbench.testing.probes import (
    Barrier,
    NaNAtStart,
    NumpyQuadraticObjective,
    SmallQuadratic,
)
from optbench.testing.report import CheckResult, Report

RUN_PROBLEMS = ("regression", "puzzle")
RUN_STEPS = 50
DESCENT_STEPS = 200
AGREEMENT_STEPS = 100
# torch and autograd compute the same float64 operations, rounded alike but summed in
# different orders (about 1e-16 apart per step); along 100 steps of a stable optimizer those
# differences stay near 1e-13, so 1e-10 separates rounding from a different algorithm.
AGREEMENT_TOL = 1e-10
AGREEMENT_BACKENDS = ("torch", "autograd")


HINTS = ("hyperparams", "agreement_tol")
"""What an optimizer may declare in its optional `conformance` mapping: hyperparameters the
checks run with (over its run defaults), and the agreement tolerance where rounding
differences are amplified by design (finite-difference Hessian products, say)."""


@dataclass
class OptimizerSubject:
    optimizer: Optimizer
    registry: Registry
    hyperparams: Mapping[str, Any]  # over the run defaults: the kit's hint, then the user's
    backends: list[Backend] = field(default_factory=list)  # available, float64, on cpu
    unavailable: list[str] = field(default_factory=list)
    agreement_tol: float = AGREEMENT_TOL

    @property
    def name(self) -> str:
        return str(getattr(self.optimizer, "name", type(self.optimizer).__name__))

    def bound(self) -> tuple[dict[str, Any], Method]:
        hp = api.optimizer_hyperparams(self.optimizer, self.hyperparams)
        return hp, self.optimizer.method(**hp)

    def need_backends(self) -> list[Backend]:
        if not self.backends:
            raise Skip("no built-in backend is available here: " + "; ".join(self.unavailable))
        return self.backends

    def plan(self, backend: Backend, problem: Any, *, steps: int, dtype: str = "float64",
             **options: Any) -> api.Plan:
        """A plan through optbench.api, in a registry of exactly these objects."""
        name = problem if isinstance(problem, str) else problem.name
        prob = self.registry.get("problem", problem) if isinstance(problem, str) else problem
        registry = run_registry([backend], [prob], [self.optimizer])
        return api.plan(name, backend.name, self.optimizer.name, steps=steps, dtype=dtype,
                        optimizer_params=dict(self.hyperparams), registry=registry,
                        **options)


def subject_for(optimizer: Any, registry: Registry | None = None,
                hyperparams: Mapping[str, Any] | None = None,
                backends: Iterable[Any] | None = None, agreement_tol: float | None = None
                ) -> OptimizerSubject:
    registry = default_registry(registry)
    obj = resolve_object("optimizer", optimizer, registry)
    hints = getattr(obj, "conformance", None)
    hints = hints if isinstance(hints, Mapping) else {}
    given = {**dict(hints.get("hyperparams") or {}), **dict(hyperparams or {})}
    subject = OptimizerSubject(obj, registry, given)
    tol = agreement_tol if agreement_tol is not None else hints.get("agreement_tol")
    if tol is not None:
        subject.agreement_tol = float(tol)
    chosen = ([resolve_object("backend", b, registry) for b in backends]
              if backends is not None
              else [registry.get("backend", n) for n in builtin_names(registry, "backend")])
    for backend in chosen:
        reason = (available_on(backend, "cpu") if "cpu" in backend.devices
                  else "it has no cpu device")
        if reason is None and "float64" not in backend.dtypes:
            reason = "it has no float64"
        if reason is None:
            subject.backends.append(backend)
        else:
            subject.unavailable.append(f"{backend.name}: {reason}")
    return subject


# ---------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------


def check_declared(s: OptimizerSubject) -> CheckResult:
    """An Optimizer instance with a name and declared hyperparameters whose defaults (and
    run defaults) are accepted, and whose `method` binds them into init and step."""
    o, wrong = s.optimizer, []
    if not isinstance(o, Optimizer):
        wrong.append(f"{o!r} is not an instance of optbench.core.Optimizer")
    name = getattr(o, "name", None)
    if not isinstance(name, str) or not name or name == "all":
        wrong.append(f"name is {name!r}: expected a non-empty string other than 'all'")
    declared = tuple(getattr(o, "hyperparams", ()))
    names = [getattr(p, "name", None) for p in declared]
    for p in declared:
        if not isinstance(p, Param):
            wrong.append(f"hyperparams holds {p!r}, not an optbench.core.Param")
        elif p.default is not None:
            try:
                p.parse(p.default)
            except Exception as exc:
                wrong.append(f"the default of {p.name} is not accepted by its own "
                             f"declaration: {exc}")
    if len(set(names)) != len(names):
        wrong.append(f"hyperparams declares a name twice: {names}")
    problem = hints_problem(getattr(o, "conformance", None), HINTS)
    if problem:
        wrong.append(problem)
    run_defaults = dict(getattr(o, "run_defaults", {}) or {})
    undeclared = [k for k in run_defaults if k not in names]
    if undeclared:
        wrong.append(f"run_defaults sets {undeclared[0]!r}, which is not declared")
    if not wrong:
        try:
            resolve(declared, run_defaults, name)
            hp, method = s.bound()
        except Exception as exc:
            wrong.append(f"binding the defaults failed: {describe(exc)}")
        else:
            if not (isinstance(method, Method) and callable(method.init)
                    and callable(method.step)):
                wrong.append(f"method(...) returned {method!r}, not an optbench.core.Method "
                             f"with init and step")
            return verdict("declared", wrong, f"name {name!r}, hyperparameters "
                           f"{', '.join(f'{k}={v}' for k, v in hp.items()) or 'none'}")
    return verdict("declared", wrong, "")


def check_runs(s: OptimizerSubject) -> CheckResult:
    """Runs on every available built-in backend and a couple of problems without an error
    (float64, through optbench.api), and keeps float32 arrays float32 along its steps."""
    backends = s.need_backends()
    wrong, done = [], []
    for backend in backends:
        for problem in RUN_PROBLEMS:
            if problem not in s.registry.items["problem"]:
                continue
            with quiet():
                plan = s.plan(backend, problem, steps=RUN_STEPS)
                record = api.execute(plan, plan.backends[0])
            where = f"{problem} on {backend.name}"
            if record.status == "error":
                wrong.append(f"{where}: the run failed: {record.message}")
            elif record.status != "diverged" and not (
                    record.f is not None and math.isfinite(record.f)
                    and all(math.isfinite(v) for v in record.x)):
                wrong.append(f"{where}: status {record.status!r} with a non-finite f or x "
                             f"(f={record.f}, x={record.x})")
            else:
                done.append(f"{where}: {record.status} after {record.steps}")
        if "float32" in backend.dtypes and "regression" in s.registry.items["problem"]:
            # Through optbench.api (steps or a whole-run driver alike), every x the
            # optimizer hands the objective must still be float32.
            spy = SpyBackend(backend)
            with quiet():
                plan = s.plan(spy, "regression", steps=20, dtype="float32")
                record = api.execute(plan, plan.backends[0])
            seen = spy.last.seen if spy.last is not None else set()
            if record.status == "error":
                wrong.append(f"regression (float32) on {backend.name}: the run failed: "
                             f"{record.message}")
            elif seen - {"float32"}:
                wrong.append(f"regression (float32) on {backend.name}: the optimizer handed "
                             f"the objective x in {', '.join(sorted(seen))}; it must keep x's "
                             f"dtype (make arrays with xp.zeros_like(x), not xp.zeros(n))")
    return verdict("runs", wrong, "; ".join(done) + "; float32 kept")


def _quadratic_objectives(s: OptimizerSubject) -> tuple[Any, list[tuple[str, Objective]]]:
    """The small quadratic's instance, and its objective on numpy and on each backend."""
    objectives: list[tuple[str, Objective]] = [("numpy", NumpyQuadraticObjective())]
    problem = SmallQuadratic()
    instance = problem.make({}, 0)
    for backend in s.backends:
        objectives.append((backend.name, backend.prepare(problem, instance.data,
                                                         dtype="float64", device="cpu")))
    return instance, objectives


def check_pure(s: OptimizerSubject) -> CheckResult:
    """step never mutates x or the state it is given, keeps no hidden state (the same
    (x, state) twice gives bitwise the same result), and returns f and g at the given x."""
    _, method = s.bound()
    if drives_itself(method):
        return _check_run_protocol(s, method)
    instance, objectives = _quadratic_objectives(s)
    wrong, steps_taken = [], 0
    for label, objective in objectives:
        x = objective.from_numpy(instance.x0)
        state = method.init(x, objective.xp)
        for k in range(4):
            before = snapshot((x, state), objective, "inputs")
            x_after, state_after, f, g = method.step(objective, x, state)
            after = snapshot((x, state), objective, "inputs")
            mutated = changed(before, after)
            if mutated:
                path = mutated[0].replace("inputs[0]", "x").replace("inputs[1]", "state")
                wrong.append(f"on {label}, step {k + 1} mutated its input {path} in place: "
                             f"{show_value(before.get(mutated[0]))} became "
                             f"{show_value(after.get(mutated[0]))}; build new arrays "
                             f"instead")
                break
            again = method.step(objective, x, state)
            first = snapshot((x_after, state_after), objective, "out")
            second = snapshot(again[:2], objective, "out")
            if changed(first, second):
                path = changed(first, second)[0].replace("out[0]", "x").replace("out[1]",
                                                                                "state")
                wrong.append(f"on {label}, step {k + 1} called twice with the same x and "
                             f"state returned different {path}: it keeps hidden state "
                             f"outside its state")
                break
            f_at, g_at = (host(objective, v) for v in objective.value_and_grad(x))
            if not (np.isclose(float(host(objective, f)), float(f_at), rtol=1e-12, atol=0)
                    and np.allclose(host(objective, g), g_at, rtol=1e-12, atol=0)):
                wrong.append(f"on {label}, step {k + 1} returned f={float(host(objective, f))}"
                             f", but f at the x it was given is {float(f_at)}: step returns "
                             f"f and g at its input x")
                break
            x, state = x_after, state_after
            steps_taken += 1
    names = ", ".join(n for n, _ in objectives)
    return verdict("pure", wrong, f"{steps_taken} steps in all on {names}"
                   f": inputs unchanged, no hidden state, f and g at the given x")


def _check_run_protocol(s: OptimizerSubject, method: Method) -> CheckResult:
    """For a whole-run driver: run(objective, x0, steps, on_iteration) leaves x0 unchanged,
    calls on_iteration with increasing k and f at the x it reports, and stops at once when
    on_iteration returns a verdict."""
    instance, objectives = _quadratic_objectives(s)
    wrong, stop_at = [], 2
    for label, objective in objectives:
        x0 = objective.from_numpy(instance.x0)
        before = snapshot(x0, objective, "x0")
        calls: list[tuple[int, np.ndarray, float]] = []

        def on_iteration(k, x, f, g, calls=calls, objective=objective):
            calls.append((k, host(objective, x), float(host(objective, f))))
            return ("converged", "stopped by the conformance kit") if len(calls) == stop_at \
                else None

        with quiet():
            method.run(objective, x0, 50, on_iteration)
        if changed(before, snapshot(x0, objective, "x0")):
            wrong.append(f"on {label}, run mutated x0 in place; build new arrays instead")
        if len(calls) > stop_at:
            wrong.append(f"on {label}, run went on after on_iteration returned a verdict "
                         f"(call {stop_at}): it called on_iteration {len(calls)} times; the "
                         f"driver must stop there")
        ks = [k for k, _, _ in calls]
        if any(b <= a for a, b in itertools.pairwise(ks)):
            wrong.append(f"on {label}, on_iteration got k = {ks}: expected increasing")
        for k, x, f in calls:
            f_at = float(NumpyQuadraticObjective().value_and_grad(x)[0])
            if not np.isclose(f, f_at, rtol=1e-12):
                wrong.append(f"on {label}, on_iteration({k}, x, f, g) got f={f!r}, but f at "
                             f"that x is {f_at!r}")
                break
    return verdict("pure", wrong, f"a whole-run driver: on {', '.join(n for n, _ in objectives)}"
                   f" run leaves x0 unchanged, reports f at its x with increasing k and stops "
                   f"at on_iteration's verdict")


def check_decreases(s: OptimizerSubject) -> CheckResult:
    """Descent on a convex quadratic (n=5, condition 10): f after 200 steps < f at x0
    (rosenbrock's sum of squares for least-squares methods, which need residuals)."""
    backends = s.need_backends()
    backend = next((b for b in backends if b.name in AGREEMENT_BACKENDS), backends[0])
    # A least-squares method needs residuals, which the quadratic does not declare: it
    # descends rosenbrock's valley instead (a sum of squares, from (-1.2, 1)).
    name, params, what, where = (
        ("rosenbrock", {}, "rosenbrock from its customary start", "rosenbrock")
        if getattr(s.optimizer, "needs_residuals", False) else
        ("quadratic", {"n": 5, "kappa": 10.0}, "quadratic n=5, kappa=10",
         "a convex quadratic"))
    if name not in s.registry.items["problem"]:
        raise Skip(f"the built-in problem {name} is not registered")
    with quiet():
        plan = s.plan(backend, name, steps=DESCENT_STEPS, problem_params=params)
        record = api.execute(plan, plan.backends[0])
    f0 = float(plan.problem.objective(plan.instance.x0, plan.instance.data, np))
    if record.status == "error":
        return CheckResult("decreases", False, f"the run on {backend.name} failed: "
                           f"{record.message}")
    f = record.f
    ok = f is not None and math.isfinite(f) and f < f0
    message = (f"f from {f0:.6g} to {f:.6g} in {record.steps} steps on {backend.name} "
               f"({what}; status {record.status})")
    return CheckResult("decreases", ok, message if ok else
                       f"f did not decrease on {where}: {message}")


def check_agreement(s: OptimizerSubject) -> CheckResult:
    """The same trajectory on two exact backends (torch and autograd, float64): every
    iterate of 100 steps on regression and rosenbrock agrees to 1e-10 relative."""
    pair = [b for b in s.backends if b.name in AGREEMENT_BACKENDS]
    if len(pair) < 2:
        raise Skip(f"needs both {' and '.join(AGREEMENT_BACKENDS)} available; here: "
                   f"{', '.join(b.name for b in pair) or 'neither'}")
    _, method = s.bound()
    if drives_itself(method):
        return _agreement_of_runs(s, pair)
    wrong, worst = [], 0.0
    for name in ("regression", "rosenbrock"):
        if name not in s.registry.items["problem"]:
            continue
        problem = s.registry.get("problem", name)
        instance = problem.make(resolve(problem.params, {}, problem.name), 0)
        runs = []
        with quiet():
            for backend in pair:
                objective = backend.prepare(problem, instance.data, dtype="float64",
                                            device="cpu")
                runs.append(trajectory(method, objective, instance.x0, AGREEMENT_STEPS))
        (xs_a, _, _), (xs_b, _, _) = runs
        for k, (xa, xb) in enumerate(zip(xs_a, xs_b, strict=False)):
            if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(xb))):
                break  # a diverging run: rounding decides where it ends
            err = float(np.max(np.abs(xa - xb))) / max(1.0, float(np.max(np.abs(xa))))
            worst = max(worst, err)
            if err > s.agreement_tol:
                wrong.append(f"{name}: x after step {k} differs between {pair[0].name} and "
                             f"{pair[1].name} by {err:.3g} (rel.) > {s.agreement_tol:g}: "
                             f"{show_value(xa)} vs {show_value(xb)}")
                break
        if len(xs_a) != len(xs_b) and not wrong:
            wrong.append(f"{name}: {pair[0].name} stopped after {len(xs_a) - 1} steps, "
                         f"{pair[1].name} after {len(xs_b) - 1}")
    _explain_tiny(wrong, worst)
    return verdict("agreement", wrong, f"{pair[0].name} and {pair[1].name} agree along "
                   f"{AGREEMENT_STEPS} steps on regression and rosenbrock: max rel. "
                   f"difference {worst:.2g} (tol {s.agreement_tol:g})")


def _explain_tiny(wrong: list[str], worst: float) -> None:
    if wrong and worst < 1e-5:
        wrong.append("(differences this small are rounding, amplified by the algorithm — "
                     "finite-difference Hessian products, say; where that is by design, "
                     "declare it: conformance = {\"agreement_tol\": ...} on the optimizer "
                     "class, or agreement_tol= to check_optimizer)")


def _agreement_of_runs(s: OptimizerSubject, pair: list[Backend]) -> CheckResult:
    """A whole-run driver has no steps to compare: compare the runs' final x, status, step
    count and traced f."""
    wrong, worst = [], 0.0
    for name in ("regression", "rosenbrock"):
        if name not in s.registry.items["problem"]:
            continue
        with quiet():
            a, b = (api.execute(plan, plan.backends[0]) for plan in
                    (s.plan(backend, name, steps=AGREEMENT_STEPS) for backend in pair))
        if a.status == "error" or b.status == "error":
            wrong.append(f"{name}: a run failed: {a.message or b.message}")
            continue
        xa, xb = np.asarray(a.x), np.asarray(b.x)
        err = float(np.max(np.abs(xa - xb))) / max(1.0, float(np.max(np.abs(xa))))
        worst = max(worst, err)
        if not err <= s.agreement_tol:
            wrong.append(f"{name}: final x differs between {pair[0].name} and {pair[1].name} "
                         f"by {err:.3g} (rel.) > {s.agreement_tol:g}: {show_value(xa)} vs "
                         f"{show_value(xb)}")
        if (a.status, a.steps) != (b.status, b.steps):
            wrong.append(f"{name}: {pair[0].name} ended {a.status} after {a.steps} steps, "
                         f"{pair[1].name} {b.status} after {b.steps}")
        scale = max(1.0, abs(a.trace[0][2])) if a.trace else 1.0
        f_b = {int(k): f for k, _, f in b.trace}
        for k, _, f in a.trace:
            other = f_b.get(int(k))
            if other is not None and not abs(f - other) <= s.agreement_tol * scale:
                wrong.append(f"{name}: f at iteration {int(k)} is {f!r} on {pair[0].name}, "
                             f"{other!r} on {pair[1].name}")
                break
    _explain_tiny(wrong, worst)
    return verdict("agreement", wrong, f"{pair[0].name} and {pair[1].name} runs agree on "
                   f"regression and rosenbrock ({AGREEMENT_STEPS} iterations at most): max "
                   f"rel. difference of x {worst:.2g} (tol {s.agreement_tol:g})")


def check_diverged(s: OptimizerSubject) -> CheckResult:
    """A non-finite f ends the run as "diverged", without an exception, on every built-in
    backend: f NaN at the start (with a finite gradient), and f NaN after the first step."""
    backends = s.need_backends()
    wrong, seen = [], []
    for backend in backends:
        for probe in (NaNAtStart(), Barrier()):
            spy = SpyBackend(backend)
            with quiet():
                plan = s.plan(spy, probe, steps=100)
                record = api.execute(plan, plan.backends[0])
            where = f"{probe.name} on {backend.name}"
            if record.status == "error":
                wrong.append(f"{where}: the run raised instead of ending as 'diverged': "
                             f"{record.message}")
            elif record.status != "diverged":
                wrong.append(f"{where}: status {record.status!r} after {record.steps} steps, "
                             f"expected 'diverged': {_why_not_diverged(spy.last, probe)}")
            else:
                seen.append(f"{where} at step {record.steps}")
    return verdict("diverged", wrong, "diverged without an exception: " + ", ".join(seen))


def _why_not_diverged(spy: SpyObjective | None, probe: Any) -> str:
    """What the objective saw, not a guess: a non-finite f that the optimizer went past, or a
    run that never asked where f is not finite."""
    if spy is None:
        return "the objective was never prepared"
    if spy.non_finite_at is not None:
        shown = np.array2string(spy.non_finite_at.ravel(), precision=6, threshold=6)
        return (f"the objective returned a non-finite f at x={shown}, and the optimizer went "
                f"on: step must return that f (the runner stops on it), or a whole-run driver "
                f"must report it")
    if probe.name == Barrier.name:
        return (f"f was never evaluated beyond the barrier (x₁ > {Barrier.EDGE:g}; the "
                f"largest x₁ asked about was {spy.max_first:.6g}) on its way to the minimum "
                f"at (1, 1) in 100 steps, so f stayed finite; pass hyperparams that make it "
                f"move")
    return "every f it was handed was finite"


OPTIMIZER_CHECKS: dict[str, Callable[[OptimizerSubject], CheckResult]] = {
    "declared": check_declared,
    "runs": check_runs,
    "pure": check_pure,
    "decreases": check_decreases,
    "agreement": check_agreement,
    "diverged": check_diverged,
}


def check_optimizer(optimizer: Any, *, registry: Registry | None = None,
                    hyperparams: Mapping[str, Any] | None = None,
                    backends: Iterable[Any] | None = None,
                    checks: Iterable[str] | None = None,
                    agreement_tol: float | None = None) -> Report:
    """Run the optimizer checks and return their `Report`.

    optimizer: a registered name, an `Optimizer` instance or an `Optimizer` subclass.
    hyperparams: values over its run defaults (over its declared defaults), e.g. {"lr": 0.1}.
    backends: names or objects to run on (default: every built-in backend available here).
    checks: names from OPTIMIZER_CHECKS to run (default: all).
    agreement_tol: the "agreement" check's tolerance (default 1e-10).

    An optimizer may carry hints for the kit in an optional class attribute, e.g.
    `conformance = {"hyperparams": {"lr": 0.1}, "agreement_tol": 1e-6}`; the arguments here
    take precedence over them.
    """
    subject = subject_for(optimizer, registry, hyperparams, backends, agreement_tol)
    names = select(checks, OPTIMIZER_CHECKS, "optimizer")
    report = Report("optimizer", subject.name,
                    plugin=owner_of("optimizer", subject.optimizer, subject.registry))
    for name in names:
        report.results.append(run_check(name, OPTIMIZER_CHECKS[name], subject))
    return report


def run_optimizer_check(optimizer: Any, name: str, *, registry: Registry | None = None,
                        hyperparams: Mapping[str, Any] | None = None,
                        agreement_tol: float | None = None) -> CheckResult:
    """One optimizer check by name (what the pytest class runs per test)."""
    (result,) = check_optimizer(optimizer, registry=registry, hyperparams=hyperparams,
                                checks=[name], agreement_tol=agreement_tol).results
    return result
