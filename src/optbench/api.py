"""The Python API and the one path every command takes: validate everything, then run.

`plan(...)` resolves names, parameters and the task (data, x0, reference) and raises
`UsageError` on any bad input before a single step runs. `execute(plan, backend)` runs the
identical task on one backend and returns its `RunRecord`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.core import Backend, Instance, Method, Optimizer, Problem, Reference, RunRecord
from optbench.core.backend import DTYPES
from optbench.core.params import resolve
from optbench.errors import UsageError
from optbench.optimizers import schedules
from optbench.plugins import Registry, available, get_registry
from optbench.runner import stopping
from optbench.runner.loop import drive, optimize, run_compiled


@dataclass
class Plan:
    """A validated task: the same data and start for every backend it runs on."""

    problem: Problem
    problem_params: dict[str, Any]
    instance: Instance
    reference: Reference | None
    optimizer: Optimizer
    optimizer_params: dict[str, Any]
    method: Method
    backends: list[Backend]
    unavailable: list[tuple[str, str]]  # (backend name, reason) skipped under "all"
    steps: int
    seed: int
    dtype: str
    device: str
    tol: float | None
    max_time: float | None
    compile: bool = False
    f_target: float | None = None
    """What f should reach where no closed form gives f*: a system of equations is solved
    when its sum of squares is 0, whether or not it is linear."""

    @property
    def f_star(self) -> float | None:
        return self.reference.f if self.reference is not None else self.f_target

    @property
    def stop_tol(self) -> float | None:
        """The tolerance the loop stops at: `tol` as given (None: the default where f* is
        known; 0: none). Only a given tol judges an optimizer's own stop (`stalled`)."""
        return default_tol(self.tol, self.f_star)


DEFAULT_GAP = 1e-12
"""Where f* is known and no --tol is given, a run stops once f − f* ≤ DEFAULT_GAP·max(1, |f*|):
the tutorial's puzzle reached f = 3.6e-29 and still ran all its steps. --tol 0 runs every
step."""


def default_tol(tol: float | None, f_star: float | None) -> float | None:
    """The tolerance a run stops at: the user's, none for 0, else DEFAULT_GAP where f* is
    known."""
    if tol == 0:
        return None
    if tol is None and f_star is not None and math.isfinite(f_star):
        return DEFAULT_GAP * max(1.0, abs(f_star))
    return tol


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)


def plan(problem: str | Problem = "regression",
         backend: str | Backend | Sequence[str | Backend] = "torch",
         optimizer: str | Optimizer = "nadam", *, problem_params: Mapping[str, Any] | None = None,
         optimizer_params: Mapping[str, Any] | None = None, lr: float | None = None,
         steps: int = 1000, seed: int = 0, dtype: str = "float64", device: str = "cpu",
         x0: Sequence[float] | None = None, tol: float | None = None,
         max_time: float | None = None, compile: bool = False,
         registry: Registry | None = None) -> Plan:
    registry = registry or get_registry()
    prob: Problem = lookup(registry, "problem", problem)
    opt: Optimizer = lookup(registry, "optimizer", optimizer)

    _check(isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0,
           f"steps={steps} is not accepted: expected an integer >= 0")
    _check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
           f"seed={seed} is not accepted: expected an integer >= 0")
    _check(dtype in DTYPES, f"dtype={dtype} is not accepted: expected one of {', '.join(DTYPES)}")
    _check(tol is None or (isinstance(tol, (int, float)) and not isinstance(tol, bool)
                           and math.isfinite(tol) and tol >= 0),
           f"tol={tol} is not accepted: expected a number >= 0 (0: run every step)")
    _check(max_time is None or (isinstance(max_time, (int, float))
                                and not isinstance(max_time, bool)
                                and math.isfinite(max_time) and max_time > 0),
           f"max_time={max_time} is not accepted: expected a number > 0")

    if getattr(opt, "needs_residuals", False) and not getattr(prob, "has_residuals", False):
        raise UsageError(residuals_needed(registry, opt, prob))
    p_params = resolve(prob.params, dict(problem_params or {}), prob.name)
    hp = optimizer_hyperparams(opt, optimizer_params, lr)
    method = opt.method(**hp)

    if compile:
        scheduled = hp.get("schedule") is not None
        _check(method.done is None and method.run is None and not scheduled,
               f"optimizer {opt.name} with schedule={hp.get('schedule')} cannot run as a "
               "compiled loop (its lr is computed on the host between steps); compile works "
               "with a constant lr" if scheduled else
               f"optimizer {opt.name} cannot run as a compiled loop (it needs values on the "
               "host between steps); compile works with the first-order optimizers")
    backends, unavailable = select_backends(registry, backend, dtype, device, compile)

    instance = prob.make(p_params, seed)
    if x0 is not None:
        n = len(instance.variables)
        expected = (f"{prob.name} has {n} variables ({', '.join(instance.variables)}): "
                    f"expected {n} finite numbers")
        try:
            start = np.asarray(list(x0), dtype=np.float64)
        except (TypeError, ValueError):
            raise UsageError(f"x0={x0!r} is not accepted: {expected}") from None
        _check(start.ndim == 1 and start.size == n and bool(np.all(np.isfinite(start))),
               f"x0 has {start.size} values; {expected}")
        instance = dataclasses.replace(instance, x0=instance.from_user(start))
        warn_order = getattr(prob, "warn_list_order", None)  # expr: the order of a list
        if warn_order is not None:
            warn_order(p_params)
    reference = prob.reference(instance)
    return Plan(prob, p_params, instance, reference, opt, hp, method,
                backends, unavailable, steps, seed, dtype, device, tol, max_time, compile)


def residuals_needed(registry: Registry, opt: Optimizer, prob: Problem) -> str:
    """Why a least-squares optimizer cannot run a problem, and what would."""
    fits = []
    for name in registry.names("problem"):
        try:
            if getattr(registry.get("problem", name), "has_residuals", False):
                fits.append(name)
        except Exception:
            continue
    return (f"optimizer {opt.name} needs a problem with residuals (a sum of squares); "
            f"problem {prob.name} declares none: accepted problems: "
            f"{', '.join(fits) or 'none registered'}, or another optimizer")


CONTRACTS = {"problem": Problem, "backend": Backend, "optimizer": Optimizer}


def lookup(registry: Registry, kind: str, item: Any) -> Any:
    """A name looked up in the registry, or an instance of the kind's contract as it is
    (`optbench.solve(problem=MyProblem())`): an instance is used, never registered."""
    contract = CONTRACTS[kind]
    if isinstance(item, contract):
        name = getattr(item, "name", None)
        _check(isinstance(name, str) and bool(name) and name != "all",
               f"{kind} {item!r} has no valid name: set its class attribute name "
               "(a non-empty string other than 'all')")
        return item
    _check(isinstance(item, str),
           f"{kind}={item!r:.80} is not accepted: expected a name (optbench list {kind}s) "
           f"or an instance of optbench.core.{contract.__name__}")
    return registry.get(kind, item)


def with_instances(registry: Registry, items: Sequence[tuple[str, Any]]) -> Registry:
    """A copy of `registry` that also holds the given (kind, instance) pairs, each under its
    name (shadowing a registered one of that name), so that name-driven machinery (a
    campaign's grid, its runs) can run them. The process-wide registry is left as it was.
    """
    copy = Registry()
    copy.pm, copy.plugins = registry.pm, registry.plugins
    copy.items = {kind: dict(by_name) for kind, by_name in registry.items.items()}
    copy.owner = dict(registry.owner)
    given: dict[tuple[str, str], Any] = {}
    for kind, item in items:
        item = lookup(copy, kind, item)
        key = (kind, item.name)
        _check(given.setdefault(key, item) is item,
               f"two different {kind}s are named {item.name!r}: give each its own name")
        copy.items[kind][item.name] = item
        copy.owner[key] = "the Python API"
    return copy


def plan_many(problem: str = "regression", backend: str | Sequence[str] = "torch",
              optimizer: str | Sequence[str] = "nadam", *,
              optimizer_params: Mapping[str, Any] | None = None, lr: float | None = None,
              registry: Registry | None = None, **options: Any) -> list[Plan]:
    """One plan per optimizer (a name, a list, or ["all"]), each validated before any runs.

    With several optimizers, `lr` and each `optimizer_params` key go to the optimizers that
    declare them; one that none declares is refused.
    """
    registry = registry or get_registry()
    names = [optimizer] if isinstance(optimizer, str) else list(optimizer)
    if names == ["all"]:
        names = registry.names("optimizer")
        # "all" means all that can run it: least-squares methods need residuals.
        prob = lookup(registry, "problem", problem)
        if not getattr(prob, "has_residuals", False):
            names = [n for n in names
                     if not getattr(registry.get("optimizer", n), "needs_residuals", False)]
    if len(names) == 1:
        return [plan(problem, backend, names[0], optimizer_params=optimizer_params, lr=lr,
                     registry=registry, **options)]
    given = dict(optimizer_params or {})
    declared = {n: {h.name for h in registry.get("optimizer", n).hyperparams} for n in names}
    for key in [*given, *(["lr"] if lr is not None else [])]:
        _check(any(key in d for d in declared.values()),
               f"{key} is not a hyperparameter of any of {', '.join(names)}")
    return [plan(problem, backend, n, registry=registry,
                 optimizer_params={k: v for k, v in given.items() if k in declared[n]},
                 lr=lr if "lr" in declared[n] else None, **options)
            for n in names]


def optimizer_hyperparams(opt: Optimizer, given: Mapping[str, Any] | None = None,
                          lr: float | None = None) -> dict[str, Any]:
    """All hyperparameters of a run: the user's over run_defaults over declared defaults."""
    given_hp = dict(given or {})
    if lr is not None:
        _check(any(h.name == "lr" for h in opt.hyperparams),
               f"optimizer {opt.name} has no learning rate; drop lr")
        given_hp["lr"] = lr
    hp = resolve(opt.hyperparams, {**opt.run_defaults, **given_hp}, opt.name)
    # Every first-order optimizer declares the learning-rate schedule's parameters; those left
    # unset stay out of the run, its record and its key (runs without a schedule are recorded,
    # and found again by --resume, as before schedules existed).
    return {k: v for k, v in hp.items() if v is not None or k not in schedules.NAMES}


def select_backends(registry: Registry, backend: str | Sequence[str], dtype: str,
                    device: str, compile: bool = False
                    ) -> tuple[list[Backend], list[tuple[str, str]]]:
    names = [backend] if isinstance(backend, (str, Backend)) else list(backend)
    if names == ["all"]:
        chosen, skipped = [], []
        for name in registry.names("backend"):
            b = registry.get("backend", name)
            reason = _unusable(b, dtype, device, compile)
            (skipped.append((name, reason)) if reason else chosen.append(b))
        _check(bool(chosen), f"no backend can run on device={device} dtype={dtype}: " +
               "; ".join(f"{n}: {r}" for n, r in skipped))
        return chosen, skipped
    chosen = []
    for name in names:
        b = lookup(registry, "backend", name)
        reason = _unusable(b, dtype, device, compile)
        _check(reason is None, f"backend {b.name} cannot run here: {reason}")
        chosen.append(b)
    return chosen, []


def _unusable(backend: Backend, dtype: str, device: str, compile: bool = False) -> str | None:
    if compile and not backend.compiles:
        return "it has no compiled mode (--compile)"
    if device not in backend.devices:
        return f"device={device} is not supported; accepted: {', '.join(backend.devices)}"
    if dtype not in backend.dtypes:
        return f"dtype={dtype} is not supported; accepted: {', '.join(backend.dtypes)}"
    reason = available(backend, device)  # never raises: a plugin's bug is its reason
    usable = [d for d in backend.devices if d != device and available(backend, d) is None]
    if reason is not None and usable:  # name the bad device and the ones that would work
        return f"device={device} is not available ({reason}); accepted: {', '.join(usable)}"
    return reason


def blank_record(p: Plan, backend: Backend, message: str = "") -> RunRecord:
    """The record of a run that has not run (yet): status "error", x at the start."""
    inst = p.instance
    start = inst.to_user(inst.x0).tolist()
    return RunRecord(
        problem=p.problem.name, problem_params=jsonable(p.problem_params),
        backend=backend.name, device=p.device, dtype=p.dtype, optimizer=p.optimizer.name,
        optimizer_params=jsonable(p.optimizer_params), seed=p.seed, status="error",
        message=message, steps=0, n_evals=0, variables=list(inst.variables), x0=start,
        x=start, f=None, grad_norm=None,
        reference=p.reference.to_json() if p.reference else None, time_s=0.0, setup_s=0.0)


def execute(p: Plan, backend: Backend) -> RunRecord:
    """Run the plan's task on one backend. Failures while running become status "error"."""
    inst = p.instance
    record = blank_record(p, backend)
    t0 = time.perf_counter()
    try:
        objective = backend.prepare(p.problem, inst.data, dtype=p.dtype, device=p.device)
        x0 = objective.from_numpy(inst.x0)
        if not p.compile and p.method.run is None:
            objective.warm_up(p.method, x0)
        objective.synchronize()
        record.setup_s = time.perf_counter() - t0
        criteria = stopping.criteria(p.stop_tol, p.f_star, p.max_time)
        requested = stopping.criteria(p.tol or None, p.f_star, p.max_time)
        # Overflow on the way to divergence is reported by the status, not by numpy warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            if p.method.run is not None:
                result = drive(objective, p.method, x0, steps=p.steps, criteria=criteria)
            elif p.compile:
                result, compile_s = run_compiled(
                    objective, p.method, x0, steps=p.steps, tol=p.stop_tol,
                    max_time=p.max_time,
                    f_star=p.f_star)
                record.setup_s += compile_s
            else:
                result = optimize(objective, p.method, x0, steps=p.steps, criteria=criteria)
            record.n_evals, record.n_fevals = objective.n_evals, objective.n_fevals
            # Reported f and gradient are those of the final point, evaluated outside the loop.
            x, note = inst.finalize(inst.to_user(objective.to_numpy(result.x)), p.dtype)
            f, g = objective.value_and_grad(result.x)
            f = float(f)
            g = objective.to_numpy(g).astype(np.float64)
            grad_norm = float(np.linalg.norm(g))
    except UsageError:  # bad input found only now (--device cuda without CUDA in torch)
        raise
    except Exception as exc:  # a failure of this run, reported in its record
        record.message = f"{type(exc).__name__}: {exc}"
        record.setup_s = record.setup_s or time.perf_counter() - t0
        return record
    record.status, record.message = result.status, result.message
    if result.by_method:  # converged or stalled: judged at the final point against --tol
        final = stopping.Progress(result.steps, f, g, result.time_s,
                                  lambda v: float(np.linalg.norm(v)))
        record.status, record.message = stopping.settle(result.status, result.message,
                                                        requested, final)
    record.message = "; ".join(m for m in (record.message, note) if m)
    if result.status not in ("diverged",) and not (math.isfinite(f) and np.all(np.isfinite(x))):
        record.status = "diverged"
        record.message = f"non-finite f or x after step {result.steps}"
    record.steps, record.time_s = result.steps, result.time_s
    record.x, record.f = x.tolist(), f
    record.grad_norm = grad_norm
    record.trace = result.trace
    if not record.trace or record.trace[-1][0] != result.steps:
        record.trace.append([result.steps, result.time_s, f])
    if p.reference is not None and p.reference.unique:
        ref = np.asarray(p.reference.x, dtype=np.float64)
        scale = float(np.linalg.norm(ref)) or 1.0
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged x may be huge
            record.relative_error = float(np.linalg.norm(x - ref)) / scale
    return record


def jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def solve(problem: str | Problem = "regression", backend: str | Backend = "torch",
          optimizer: str | Optimizer = "nadam", **options: Any) -> RunRecord:
    """One run; see `optbench.solve`. Each of problem, backend and optimizer is a name or
    an instance of its contract (used as it is, not registered)."""
    _check(isinstance(backend, Backend) or (isinstance(backend, str) and backend != "all"),
           f"backend={backend!r} is not accepted by solve(): expected one backend name or "
           "a Backend instance")
    p = plan(problem, backend, optimizer, **options)
    return execute(p, p.backends[0])
