"""Backend checks through whole runs (plan and execute, as `optbench run` does): the same
seed gives the same run, non-finite values end a run as "diverged", the compiled loop
follows the step-by-step one, and the evaluation counters count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench import api
from optbench.core.params import resolve
from optbench.testing._common import (
    Skip,
    builtin_problem,
    describe,
    host,
    quiet,
    run_registry,
    verdict,
)
from optbench.testing.backend_subject import BackendSubject
from optbench.testing.probes import Overflow, SmallQuadratic
from optbench.testing.report import CheckResult

DETERMINISM_STEPS = 25
DIVERGE_STEPS = 1000
COUNTER_CALLS = 3
COUNTER_STEPS = 5


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
            if builtin_problem(s.registry, problem) is None:
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
    with sgd at lr 1 (x overflows), and a probe whose f turns NaN when exp(x) overflows.

    A run that does not diverge is diagnosed from what numpy computes at its final x in the
    same dtype: f finite where IEEE arithmetic gives inf or NaN, or a run that never got
    there."""
    s.need_device()
    wrong, seen = [], []
    cases = [("regression", {"lr": 1.0}, (), DIVERGE_STEPS),
             (Overflow.name, {"lr": 100.0}, (Overflow(),), 100)]
    for dtype in tuple(s.backend.dtypes):
        for problem, options, extra, steps in cases:
            if not extra and builtin_problem(s.registry, problem) is None:
                continue
            record = _run(s, problem, "sgd", dtype, steps, problems=extra,
                          optimizer_params=options)
            where = f"{problem} ({dtype}, sgd lr={options['lr']:g})"
            if record.status == "error":
                wrong.append(f"{where}: the run raised instead of ending as 'diverged': "
                             f"{record.message}")
            elif record.status != "diverged":
                subject = extra[0] if extra else builtin_problem(s.registry, problem)
                wrong.append(f"{where}: status {record.status!r} after {record.steps} steps "
                             f"(f={record.f}), expected 'diverged': "
                             + _why_finite(subject, record, dtype))
            else:
                seen.append(f"{problem}/{dtype} at step {record.steps}")
    return verdict("diverged", wrong, "diverged without an exception: " + ", ".join(seen))


def _why_finite(problem: Any, record: Any, dtype: str) -> str:
    """What numpy computes, in `dtype`, at the run's final x: the premise of a diagnosis."""
    instance = problem.make(resolve(problem.params, {}, problem.name), 0)
    data = {k: np.asarray(v, dtype=dtype) if isinstance(v, np.ndarray) else v
            for k, v in instance.data.items()}
    x = np.asarray(instance.from_user(record.x), dtype=dtype)
    with quiet():
        try:
            f_ieee = float(problem.objective(x, data, np))
        except Exception as exc:
            return f"numpy cannot evaluate f at the final x ({describe(exc)})"
    shown = np.array2string(np.asarray(record.x), precision=6, threshold=6)
    if not np.isfinite(f_ieee):
        return (f"f stayed finite at x={shown}, where IEEE {dtype} arithmetic (numpy) gives "
                f"f={f_ieee}: the backend computes there in another precision, or catches "
                f"the overflow; the non-finite value must reach the optimizer")
    return (f"the run never reached a non-finite value: numpy's {dtype} f at its final "
            f"x={shown} is finite too ({f_ieee:.6g})")


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


def check_counters(s: BackendSubject) -> CheckResult:
    """`n_evals` counts calls of value_and_grad and `n_fevals` evaluations of the objective
    (at least one per call): a new objective starts at 0, three calls make n_evals 3; a run
    of sgd (one evaluation a step) for 5 steps through optbench.api records n_evals 5, so
    that warm-up evaluations stay uncounted."""
    device = s.need_device()
    dtype = s.first_dtype()
    wrong = []
    probe = SmallQuadratic()
    instance = probe.make({}, 0)
    objective = s.backend.prepare(probe, instance.data, dtype=dtype, device=device)
    start = (getattr(objective, "n_evals", None), getattr(objective, "n_fevals", None))
    if start != (0, 0):
        wrong.append(f"a new objective has (n_evals, n_fevals) = {start}, expected (0, 0): "
                     f"call Objective.__init__ (super().__init__()) in the objective's "
                     f"__init__")
    else:
        x = objective.from_numpy(instance.x0)
        for _ in range(COUNTER_CALLS):
            f, _g = objective.value_and_grad(x)
        host(objective, f)
        n_evals, n_fevals = objective.n_evals, objective.n_fevals
        if n_evals != COUNTER_CALLS:
            wrong.append(f"after {COUNTER_CALLS} calls of value_and_grad, n_evals is "
                         f"{n_evals}, expected {COUNTER_CALLS}: count each call "
                         f"(self.n_evals += 1)" + (" — it is never counted" if n_evals == 0
                                                   else ""))
        if not (isinstance(n_fevals, int) and n_fevals >= COUNTER_CALLS):
            wrong.append(f"after {COUNTER_CALLS} calls of value_and_grad, n_fevals is "
                         f"{n_fevals}, expected at least {COUNTER_CALLS}: count each "
                         f"evaluation of the objective (self.n_fevals += 1 per evaluation)"
                         + (" — it is never counted" if n_fevals == 0 else ""))
    if builtin_problem(s.registry, "regression") is not None:
        record = _run(s, "regression", "sgd", dtype, COUNTER_STEPS)
        if record.status == "error":
            wrong.append(f"regression, sgd, {COUNTER_STEPS} steps: the run failed: "
                         f"{record.message}")
        elif record.n_evals != record.steps:
            wrong.append(f"regression, sgd, {record.steps} steps (one evaluation each): the "
                         f"run recorded n_evals = {record.n_evals}, expected {record.steps}"
                         + (" (warm-up evaluations must be uncounted: reset the counters "
                            "after warm_up)" if record.n_evals > record.steps else ""))
    return verdict("counters", wrong, f"n_evals counts each call ({COUNTER_CALLS} calls, and a "
                   f"{COUNTER_STEPS}-step run), n_fevals at least as many")
