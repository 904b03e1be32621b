"""optbench optimizers from `scipy.optimize.minimize`, over any backend's value_and_grad.

    scipy-lbfgsb        L-BFGS-B (no bounds)             maxcor, ftol, gtol, maxls, maxfun
    scipy-bfgs          BFGS                             gtol, xrtol, c1, c2
    scipy-cg            nonlinear conjugate gradient     gtol, c1, c2
    scipy-newton-cg     line-search Newton-CG            xtol, c1, c2
    scipy-trust-krylov  trust region, Krylov subproblem  gtol, initial_trust_radius,
                                                         max_trust_radius, eta, inexact
    all five: hvp (auto | fd) and scale (none | diagonal), optbench's own

Defaults are scipy's (and scale=none: scipy's own iterates). scipy drives its own loop, so
each optimizer returns a `Method` whose `run` is the whole run (optbench.runner.loop.drive
calls it); its `step` raises NotImplementedError, and `--compile` is refused.

How a run goes. scipy works on float64 numpy vectors; the backend on its own arrays. `fun(x)`
converts x with `objective.from_numpy`, calls `objective.value_and_grad` and converts f and g
back with `objective.to_numpy` — these host transfers are part of the run and are inside the
loop's time (the issue asks for it: a GPU backend pays for them, and the timing says so).
`minimize(fun, x0, jac=True, method=..., options={"maxiter": steps, ...})` then runs, and
scipy's `callback(intermediate_result)` hands each iterate to the runner's `on_iteration(k, x,
f, g)`, which samples the trace and asks optbench's stop rules (`--tol`, `--max-time`,
divergence). f and g at the iterate come from a small cache of the last evaluations keyed by
x, so the callback costs no evaluation when scipy evaluated there (it nearly always did). A
verdict from `on_iteration` raises `StopIteration` in the callback, which scipy (>= 1.11)
turns into a clean stop (status 99, "`callback` raised `StopIteration`."). The start x0 is
evaluated first and reported as iteration 0 (scipy's first evaluation then hits the cache).

Status, scipy's message always in the record's:
    converged   scipy reports success (its own test: gtol, xtol, ftol...); the runner then
                holds it to --tol where one was asked (optbench.runner.stopping.settle):
                met at the final point, converged, else stalled
    max_steps   the iteration limit (maxiter = --steps)
    stalled     scipy stopped itself short of success: a line search that finds no more
                decrease (scipy's "precision loss"), a trust region that cannot predict one,
                a trial point scipy keeps proposing and rejecting; and L-BFGS-B's "success"
                with ftol=0, which says only that f did not decrease at all
    diverged    f is not finite at an iterate (optbench's rule, through the callback) or at
                the final point, or scipy met f = -inf (unbounded below) or NaN (out of f's
                domain) at a trial point
A trial point where f is +inf that scipy rejected (an exp that overflows far from the
optimum: NIST BoxBOD) is not divergence: the run goes on, and its end says what it reached;
the message names the trial point. A trust region rejects a non-finite trial point without
shrinking and would propose it again until maxiter: the callback notices and ends the run
(stalled where f is +inf there or scipy's own step is NaN; else diverged).

Hessian-vector products (Newton-CG, trust-krylov). A backend may give them natively: an
optional Objective method

    hvp(x, v) -> H(x)·v        x, v and the result in the backend's arrays

is used when present (`getattr(objective, "hvp", None)`; counting its cost is the backend's
business). Otherwise, or with `-O hvp=fd`, the product is a forward difference of the gradient,

    H·v ≈ (g(x + ε·v) − g(x)) / ε,    ε = sqrt(eps)·(1 + |x|) / |v|

(eps of the objective's dtype), which costs one `value_and_grad` per product, counted in
n_evals; g(x) comes from the cache.

Variable scaling (`-O scale=diagonal`, off by default). scipy then minimizes over z = x / d,
d_i = 1/sqrt|H_ii(x0)| rounded to a power of two (exact), H_ii from n Hessian-vector products
at the start: Jacobi scaling, for problems whose variables live on very different scales (a
polynomial fit's coefficients: for least squares it is numpy.polyfit's column scaling). The
tolerances (gtol...) then apply to the gradient in z, d·g.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np

from optbench import hookimpl
from optbench.core import Method, Optimizer, Param
from optbench.errors import UsageError

__version__ = "0.1.0"

HVP_MODES = ("auto", "fd")
SCALES = ("none", "diagonal")
CACHE_SIZE = 8  # evaluations kept: a line search's trials, so the callback finds its iterate


class Point(NamedTuple):
    """One evaluation: x, f, g in the backend's arrays, and f, g as scipy wants them."""

    x: Any
    f: Any
    g: Any
    f_host: float
    g_host: np.ndarray
    x_finite: bool  # False: scipy itself proposed a NaN/inf point (a breakdown, not divergence)


class Evaluations:
    """The objective as scipy sees it: float64 numpy in and out, recent evaluations cached.

    `last` is the point of the latest evaluation scipy asked for (for the divergence test).
    """

    def __init__(self, objective: Any) -> None:
        self.objective = objective
        self.cache: OrderedDict[bytes, Point] = OrderedDict()
        self.last: Point | None = None
        self.bad: Point | None = None  # the first non-finite f scipy met at a finite x

    def point(self, x: Any) -> Point:
        x = np.array(x, dtype=np.float64)  # a copy: scipy may reuse its array
        key = x.tobytes()
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.move_to_end(key)
            return hit
        p = self._evaluate(x)
        self.cache[key] = p
        if len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return p

    def _evaluate(self, x: np.ndarray) -> Point:
        obj = self.objective
        xb = obj.from_numpy(x)
        f, g = obj.value_and_grad(xb)
        g_host = np.asarray(obj.to_numpy(g), dtype=np.float64).reshape(x.shape)
        return Point(xb, f, g, float(f), g_host, bool(np.all(np.isfinite(x))))

    def fun(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """scipy's fun with jac=True: (f, g)."""
        p = self.point(x)
        self.last = p
        if self.bad is None and p.x_finite and not math.isfinite(p.f_host):
            self.bad = p
        return p.f_host, p.g_host.copy()

    def hessp(self, mode: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """scipy's hessp(x, v): the backend's native `hvp` when it has one, else finite
        differences of the gradient."""
        obj = self.objective
        native = getattr(obj, "hvp", None) if mode == "auto" else None
        if native is not None:
            def hvp_native(x: np.ndarray, v: np.ndarray) -> np.ndarray:
                x = np.asarray(x, dtype=np.float64)
                v = np.array(v, dtype=np.float64)
                hv = native(obj.from_numpy(np.array(x)), obj.from_numpy(v))
                return np.asarray(obj.to_numpy(hv), dtype=np.float64).reshape(x.shape)

            return hvp_native

        root_eps = math.sqrt(float(np.finfo(np.dtype(getattr(obj, "dtype", "float64"))).eps))

        def hvp_fd(x: np.ndarray, v: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64)
            v = np.asarray(v, dtype=np.float64)
            v_norm = float(np.linalg.norm(v))
            if v_norm == 0.0 or not math.isfinite(v_norm):
                return np.zeros_like(x)
            eps = root_eps * (1.0 + float(np.linalg.norm(x))) / v_norm
            g0 = self.point(x).g_host  # cached: scipy has just evaluated at x
            g1 = self._evaluate(x + eps * v).g_host  # not cached: never an iterate
            return (g1 - g0) / eps

        return hvp_fd


class ScipyMethod:
    """A bound scipy method: the `Method.run` driver and its (unusable) step."""

    def __init__(self, scipy_name: str, options: dict[str, Any], *, takes_hvp: bool,
                 hvp: str = "auto", scale: str = "none") -> None:
        self.scipy_name = scipy_name
        self.options = options
        self.takes_hvp = takes_hvp  # Newton-CG and trust-krylov take hessp
        self.hvp = hvp
        self.scale = scale

    def init(self, x: Any, xp: Any) -> None:
        return None

    def step(self, objective: Any, x: Any, state: Any) -> tuple[Any, Any, Any, Any]:
        raise NotImplementedError(
            f"scipy's {self.scipy_name} drives its own loop and cannot pause between "
            f"steps: run it whole through Method.run (optbench's runner does)")

    def run(self, objective: Any, x0: Any, steps: int,
            on_iteration: Callable[[int, Any, Any, Any], tuple[str, str] | None]
            ) -> tuple[Any, str, str]:
        """minimize over the backend's value_and_grad; see the module's docstring."""
        from scipy.optimize import minimize  # not at module import: `optbench list` stays fast

        evals = Evaluations(objective)
        x0_np = np.array(objective.to_numpy(x0), dtype=np.float64)  # a copy: x0 stays intact
        start = evals.point(x0_np)
        evals.last = start
        verdict = on_iteration(0, start.x, start.f, start.g)
        if verdict:
            return start.x, *verdict
        if not math.isfinite(start.f_host):
            return start.x, "diverged", f"f is {start.f_host} at the start"
        if steps == 0:
            return start.x, "max_steps", "reached the step limit (0)"

        hessp = evals.hessp(self.hvp)
        # scipy works on z = x / d; d is all ones unless scale=diagonal.
        d = diagonal_scale(hessp, x0_np) if self.scale == "diagonal" else None

        def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
            if d is None:
                return evals.fun(z)
            f, g = evals.fun(d * z)
            return f, d * g

        def hessp_z(z: np.ndarray, v: np.ndarray) -> np.ndarray:
            return hessp(z, v) if d is None else d * hessp(d * z, d * v)

        seen = {"k": 0, "point": start, "verdict": None, "last": start}

        def callback(intermediate_result: Any) -> None:
            seen["k"] += 1
            z = np.asarray(intermediate_result.x, dtype=np.float64)
            p = evals.point(z if d is None else d * z)
            seen["point"] = p
            found = on_iteration(seen["k"], p.x, p.f, p.g)
            last = evals.last
            if not found and last is seen["last"] and not math.isfinite(last.f_host):
                # scipy rejected a non-finite trial and proposes it again (trust regions do
                # not shrink on a NaN ratio): it would repeat it until maxiter.
                found = stuck(last, self.scipy_name, seen["k"])
            seen["last"] = last
            if found:
                seen["verdict"] = found
                raise StopIteration  # scipy >= 1.11 ends minimize cleanly on this

        kwargs: dict[str, Any] = {"hessp": hessp_z} if self.takes_hvp else {}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            res = minimize(fun, x0_np if d is None else x0_np / d, jac=True,
                           method=self.scipy_name, callback=callback,
                           options={**self.options, "maxiter": steps}, **kwargs)
        if seen["verdict"]:
            return seen["point"].x, *seen["verdict"]
        final = evals.point(res.x if d is None else d * res.x)
        k = seen["k"]
        where = f"scipy {self.scipy_name} after {k} iterations: {res.message}"
        if not math.isfinite(final.f_host):
            return final.x, "diverged", f"f became {final.f_host}; {where}"
        bad = evals.bad
        if bad is not None:
            if bad.f_host != math.inf:  # -inf: unbounded below; NaN: out of f's domain
                return final.x, "diverged", f"f became {bad.f_host} at a trial point; {where}"
            where += " (scipy rejected a trial point where f is inf)"
        if res.success and not self.stagnated(res):
            return final.x, "converged", where
        if k >= steps:
            return final.x, "max_steps", f"reached the step limit ({steps}); {where}"
        return final.x, "stalled", where


    def stagnated(self, res: Any) -> bool:
        """L-BFGS-B's success "relative reduction of f <= ftol" with ftol=0: f did not
        decrease at all (scipy calls it success even at 0 digits): a stall, not a tolerance
        met."""
        return (self.options.get("ftol") == 0
                and "RELATIVE REDUCTION OF F" in str(res.message).upper())


def stuck(trial: Point, scipy_name: str, k: int) -> tuple[str, str]:
    """The verdict when scipy keeps proposing the same rejected non-finite trial point: it
    would do so until maxiter. f = +inf there (an overflow) is a stall; -inf (unbounded
    below) or NaN (out of f's domain) is divergence."""
    if trial.x_finite and trial.f_host != math.inf:
        return ("diverged", f"f became {trial.f_host} at a trial point and scipy "
                f"{scipy_name} cannot leave it (iteration {k})")
    if trial.x_finite:
        return ("stalled", f"scipy {scipy_name} proposes again and again a trial point where "
                f"f is inf (iteration {k}): stopped at the last iterate")
    return ("stalled", f"scipy {scipy_name} proposes a non-finite trial point again and "
            f"again (its subproblem broke down; iteration {k}): stopped at the last iterate")


def diagonal_scale(hessp: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   x: np.ndarray) -> np.ndarray:
    """d_i = 1/sqrt|H_ii(x)| rounded to a power of two (so x = d·z is exact), 1 where H_ii is
    0 or not finite: Jacobi scaling, which makes the Hessian's diagonal about 1. For linear
    least squares it is the column scaling numpy.polyfit applies to the Vandermonde matrix.
    Costs n Hessian-vector products (H·e_i), once, at the start."""
    n = x.size
    diag = np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        diag[i] = hessp(x, e)[i]
    d = np.ones(n)
    ok = np.isfinite(diag) & (diag != 0)
    d[ok] = np.exp2(np.round(-0.5 * np.log2(np.abs(diag[ok]))))
    return d


class ScipyOptimizer(Optimizer):
    """A scipy.optimize.minimize method; hyperparameters are its options (scipy's defaults)
    plus optbench's hvp and scale."""

    scipy_name: ClassVar[str]
    takes_hvp: ClassVar[bool] = False

    def method(self, **hp: Any) -> Method:
        self.check(hp)
        import scipy.optimize  # noqa: F401  imported now, while planning: not in the loop's time

        options = {k: v for k, v in hp.items() if k not in ("hvp", "scale")}
        bound = ScipyMethod(self.scipy_name, options, takes_hvp=self.takes_hvp,
                            hvp=hp["hvp"], scale=hp["scale"])
        return Method(bound.init, bound.step, None, bound.run)

    def check(self, hp: dict[str, Any]) -> None:
        """Constraints between hyperparameters that scipy would reject only when running."""
        if "c1" in hp and not hp["c1"] < hp["c2"]:
            raise UsageError(f"{self.name}: c1={hp['c1']:g} and c2={hp['c2']:g} are not "
                             f"accepted: expected 0 < c1 < c2 < 1")


def _gtol(default: float) -> Param:
    return Param("gtol", "float", default, "stop when the gradient's largest component "
                 "(its norm for trust-krylov) is at most this", low=0)


def _wolfe(c2: float) -> tuple[Param, Param]:
    return (Param("c1", "float", 1e-4, "Armijo (sufficient decrease) constant of the line "
                  "search", low=0, high=1, low_open=True, high_open=True),
            Param("c2", "float", c2, "curvature constant of the line search (> c1)",
                  low=0, high=1, low_open=True, high_open=True))


COMMON = (
    Param("hvp", "str", "auto", "Hessian-vector products (Newton-CG, trust-krylov, "
          "scale=diagonal): auto (the backend's hvp when it has one, else fd), fd (forward "
          "differences of the gradient)", choices=HVP_MODES),
    Param("scale", "str", "none", "variable scaling: none, or diagonal (Jacobi: scipy works "
          "on x/d, d_i = 1/sqrt|H_ii(x0)|; n Hessian-vector products at the start)",
          choices=SCALES),
)


class LBFGSB(ScipyOptimizer):
    name = "scipy-lbfgsb"
    scipy_name = "L-BFGS-B"
    description = "scipy.optimize L-BFGS-B (unbounded); one step is one iteration"
    hyperparams = (
        Param("maxcor", "int", 10, "number of correction pairs kept", low=1),
        Param("ftol", "float", 2.220446049250313e-09,
              "stop when (f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol", low=0),
        Param("gtol", "float", 1e-5, "stop when the gradient's largest component is at most "
              "this", low=0),
        Param("maxls", "int", 20, "most line-search evaluations per iteration", low=1),
        Param("maxfun", "int", 15000, "most evaluations of f and g", low=1),
        *COMMON,
    )


class BFGS(ScipyOptimizer):
    name = "scipy-bfgs"
    scipy_name = "BFGS"
    description = "scipy.optimize BFGS (dense inverse Hessian, Wolfe line search)"
    hyperparams = (
        _gtol(1e-5),
        Param("xrtol", "float", 0.0, "stop when a step is at most xrtol·|x|", low=0),
        *_wolfe(0.9),
        *COMMON,
    )


# `optbench check` of the methods that take Hessian-vector products: runs on two backends
# agree to 1e-6, not 1e-10, as finite-difference Hessian products amplify their rounding
# differences.
HVP_CONFORMANCE: dict[str, Any] = {"agreement_tol": 1e-6}


class CG(ScipyOptimizer):
    name = "scipy-cg"
    scipy_name = "CG"
    description = "scipy.optimize CG (Polak-Ribiere nonlinear conjugate gradient)"
    hyperparams = (_gtol(1e-5), *_wolfe(0.4), *COMMON)


class NewtonCG(ScipyOptimizer):
    name = "scipy-newton-cg"
    conformance: ClassVar[dict[str, Any]] = HVP_CONFORMANCE
    scipy_name = "Newton-CG"
    takes_hvp = True
    description = ("scipy.optimize Newton-CG (truncated Newton, line search) with "
                   "Hessian-vector products")
    hyperparams = (
        Param("xtol", "float", 1e-5, "stop when the mean |step| is at most this (0: only "
              "when a step is exactly 0)", low=0),
        *_wolfe(0.9),
        *COMMON,
    )


class TrustKrylov(ScipyOptimizer):
    name = "scipy-trust-krylov"
    conformance: ClassVar[dict[str, Any]] = HVP_CONFORMANCE
    scipy_name = "trust-krylov"
    takes_hvp = True
    description = ("scipy.optimize trust-krylov (trust region, GLTR Krylov subproblem) "
                   "with Hessian-vector products")
    hyperparams = (
        _gtol(1e-4),
        Param("initial_trust_radius", "float", 1.0, "first trust radius", low=0,
              low_open=True),
        Param("max_trust_radius", "float", 1000.0, "largest trust radius", low=0,
              low_open=True),
        Param("eta", "float", 0.15, "a step is accepted when actual/predicted reduction "
              "exceeds this", low=0, high=0.25, high_open=True),
        Param("inexact", "bool", True, "solve the subproblem inexactly (fewer iterations, "
              "more Hessian-vector products)"),
        *COMMON,
    )

    def check(self, hp: dict[str, Any]) -> None:
        super().check(hp)
        if hp["initial_trust_radius"] > hp["max_trust_radius"]:
            raise UsageError(f"{self.name}: initial_trust_radius="
                             f"{hp['initial_trust_radius']:g} is not accepted: expected at "
                             f"most max_trust_radius={hp['max_trust_radius']:g}")


OPTIMIZERS = (LBFGSB, BFGS, CG, NewtonCG, TrustKrylov)


@hookimpl
def register_optimizers(register):
    for cls in OPTIMIZERS:
        register(cls())
