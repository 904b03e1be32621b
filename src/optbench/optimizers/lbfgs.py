"""L-BFGS with a strong-Wolfe line search, ported from torch.optim.LBFGS.

One `step` is one iteration of torch's inner loop (one quasi-Newton direction, one line
search), not torch's max_iter=20 of them, so that the runner sees and records every iterate.
torch.optim.LBFGS(lr, max_iter=1, max_eval=1 + max_ls, history_size, line_search_fn=
"strong_wolfe") with one .step(closure) per step follows the same iterates. The line search
ends at a point where f and g are known: they are kept in the state, keyed to the returned x,
so the next step does not evaluate there again (torch's inner loop does the same).

Line-search logic runs on Python floats: float() reads 0-d torch tensors and numpy arrays
alike, so one code path serves every backend.

Where torch's iteration breaks down, this one goes on (`on_stall="rescale"`, the default):
- torch's strong-Wolfe search stops zooming once the bracket is 1e-9 wide in x, whatever
  tolerance_change says; on parameters of very different scales (NIST Misra1a: b1 ~ 500,
  b2 ~ 1e-4) the step that decreases f is narrower than that, the search returns t = 0, and
  torch repeats the same direction and the same search on every call: it never moves again;
- torch keeps a pair (s, y) only where y·s > 1e-10, an absolute number: on a fit whose f is
  small (NIST MGH09, f* = 3e-4; Lanczos, 1e-25) it drops every pair and creeps along
  steepest descent (the restart comes after DROPS_BEFORE_RESTART drops in a row: a run near
  its end drops a few, and goes on with the pairs it kept);
- a direction that is not one of descent (g·d >= 0) stops torch for good.
At the first of these, lbfgs restarts in scaled variables z = x / D, D = |x| where x is
nonzero (1 where it is zero): the history is cleared, the next direction is steepest descent
in z (-D²·g in x), the initial inverse Hessian is γ·D² instead of γ·I, the line search
measures its bracket in z against the user's tolerance_change, and a pair is kept when its
curvature is positive relative to |s_z|·|y_z|. Every iteration before that is torch's own,
so trajectories match torch.optim.LBFGS wherever torch works. A search that finds no
decrease right after a restart is final: `stalled`. `on_stall="stop"` keeps torch's
behaviour and stops (stalled) where torch would stay for good. `scale="x"` works in the
scaled variables from the first step (D = |x0|): not torch's iterates.
On NIST's 15 nonlinear fits here, from both starts, all tolerances zero
(plugins/optbench-scipy/benchmarks/nist_nonlinear.py, LRE >= 4): torch's iteration alone
solved 17 of 30 (and called 6 of the others converged); with the restarts, 28; scale=x, 27
(scipy's BFGS through optbench: 28, with diagonal scaling 29).
In the scaled variables, a NaN trial point also fails the Armijo test (torch compares NaN
false to everything, extrapolates from it and may return it: its iterate is NaN, and the run
diverged); torch's own iterations keep torch's comparisons.

What ends a run (done() returns (status, message)):
    converged   max|g| <= tolerance_grad: a stationarity test, the one real convergence test
    stalled     the line search found no decrease (after a restart, or with on_stall=stop);
                no descent direction (g·d > -tolerance_change); a step max|t·d| or a change
                of f below tolerance_change: the method stopped itself, the gradient test was
                not met
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from optbench.core import Method, Optimizer, Param
from optbench.errors import UsageError
from optbench.hookspecs import hookimpl
from optbench.optimizers import common

LINE_SEARCHES = ("strong_wolfe", "none")
ON_STALL = ("rescale", "stop")
SCALES = ("none", "x")
EPS = 2.220446049250313e-16  # float64's: the relative curvature test of the scaled mode
GRADIENT_MET = "gradient below tolerance_grad"
# torch dropping this many pairs of positive curvature in a row has stopped learning the
# curvature for good (f is small in its units); a run near its end drops only a few.
DROPS_BEFORE_RESTART = 10


class LBFGSState(NamedTuple):
    n_iter: int  # iterations taken (torch's state["n_iter"]); the first is steepest descent
    d: Any  # last direction; the last step was t·d
    t: float
    s: tuple  # accepted steps s_i = t·d, oldest first (torch's old_stps)
    y: tuple  # their gradient changes y_i (torch's old_dirs)
    rho: tuple  # 1 / (y_i·s_i)
    h_diag: float  # scale of the initial inverse Hessian, (y·s)/(y·y) of the newest pair
    prev_f: float | None  # f and g where the last step started (prev_loss, prev_flat_grad)
    prev_g: Any
    cache: tuple | None  # (x, f, g) at the x last returned, when already evaluated there
    done: str | None  # why the x last returned is final (GRADIENT_MET: converged; else stalled)
    scale: Any = None  # D² of the scaled mode (backend array), None while it is torch's
    dropped: int = 0  # pairs of positive curvature torch dropped in a row (y·s <= 1e-10)


class _Trial(NamedTuple):
    """One evaluation of the line search, at x + t·d."""

    t: float
    f: float
    gtd: float  # directional derivative g·d
    g: Any
    f_raw: Any  # f as the backend returned it


def _dot(xp, a, b) -> float:
    return float(xp.sum(a * b))


def _max_abs(xp, a) -> float:
    return float(xp.max(xp.abs(a)))


def _div(a: float, b: float) -> float:
    """a / b as torch's float64 tensors divide: ±inf or NaN where b is 0 (Python raises)."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """Minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to bounds."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    # Divisions by zero give inf as in torch (an infinite min_pos is clamped to a bound);
    # where torch's min_pos is NaN, and it would return a NaN step, bisect instead.
    d1 = g1 + g2 - _div(3 * (f1 - f2), x1 - x2)
    d2_square = d1 * d1 - g1 * g2  # d1 * d1: d1**2 raises OverflowError on floats
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * _div(g2 + d2 - d1, g2 - g1 + 2 * d2)
        else:
            min_pos = x1 - (x1 - x2) * _div(g1 + d2 - d1, g1 - g2 + 2 * d2)
        if not math.isnan(min_pos):
            return min(max(min_pos, lo), hi)
    return (lo + hi) / 2.0


class _TorchOrder:
    """torch's comparisons of f: NaN compares false to everything, so a NaN trial point
    looks like a decrease (the search extrapolates from it and may return it)."""

    @staticmethod
    def above(a: float, b: float) -> bool:  # a > b
        return a > b

    @staticmethod
    def not_below(a: float, b: float) -> bool:  # a >= b
        return a >= b

    @staticmethod
    def at_most(a: float, b: float) -> bool:  # a <= b
        return a <= b


class _NaNHighest(_TorchOrder):
    """The same for numbers, with NaN above every number: a NaN trial point is too far,
    never a decrease nor the low end of a bracket."""

    @staticmethod
    def above(a: float, b: float) -> bool:
        return not a <= b

    @staticmethod
    def not_below(a: float, b: float) -> bool:
        return not a < b

    @staticmethod
    def at_most(a: float, b: float) -> bool:
        return a <= b or math.isnan(b)


def _strong_wolfe(evaluate, t, d_norm, start, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25, order=_TorchOrder) -> _Trial:
    """torch's _strong_wolfe from the trial `start` at t=0; returns the accepted trial.
    `order` compares f values (_NaNHighest: NaN trial points are too far)."""
    f, gtd = start.f, start.gtd
    prev, new = start, evaluate(t)
    done = False
    ls_iter = 0
    # Bracket an interval that holds a point satisfying the strong Wolfe conditions.
    while ls_iter < max_ls:
        if (order.above(new.f, f + c1 * new.t * gtd)
                or (ls_iter > 1 and order.not_below(new.f, prev.f))):
            bracket = [prev, new]
            break
        if abs(new.gtd) <= -c2 * gtd:
            bracket, done = [new], True
            break
        if new.gtd >= 0:
            bracket = [prev, new]
            break
        # Still descending: extrapolate, at least 1% and at most 10x beyond t.
        min_step = new.t + 0.01 * (new.t - prev.t)
        max_step = new.t * 10
        t = _cubic_interpolate(prev.t, prev.f, prev.gtd, new.t, new.f, new.gtd,
                               bounds=(min_step, max_step))
        prev, new = new, evaluate(t)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [start, new]

    # Zoom: shrink the bracket until a point satisfies the conditions.
    insuf_progress = False
    # A one-point bracket (Wolfe met at once, or f not comparable) has no high end.
    low, high = ((0, 1) if len(bracket) == 1 or order.at_most(bracket[0].f, bracket[-1].f)
                 else (1, 0))
    while not done and ls_iter < max_ls:
        a, b = bracket
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        # A trial next to an end of the bracket makes little progress: twice in a row (or
        # outside it), move it to 10% of the bracket's length away from that end.
        t_max, t_min = max(a.t, b.t), min(a.t, b.t)
        eps = 0.1 * (t_max - t_min)
        if min(t_max - t, t - t_min) < eps:
            if insuf_progress or t >= t_max or t <= t_min:
                t = t_max - eps if abs(t - t_max) < abs(t - t_min) else t_min + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        new = evaluate(t)
        ls_iter += 1
        if order.above(new.f, f + c1 * t * gtd) or order.not_below(new.f, bracket[low].f):
            bracket[high] = new  # Armijo fails or no lower than the low end
            low, high = (0, 1) if order.at_most(bracket[0].f, bracket[1].f) else (1, 0)
        else:
            if abs(new.gtd) <= -c2 * gtd:
                done = True
            elif new.gtd * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]  # the old low becomes the high end
            bracket[low] = new
    return bracket[low]


def _direction(xp, g, s_hist, y_hist, rho, h_diag):
    """-H·g by the two-loop recursion, H the L-BFGS inverse Hessian of the history."""
    q = -g
    al = [0.0] * len(s_hist)
    for i in reversed(range(len(s_hist))):
        al[i] = _dot(xp, s_hist[i], q) * rho[i]
        q = q - al[i] * y_hist[i]
    r = q * h_diag
    for i in range(len(s_hist)):
        be_i = _dot(xp, y_hist[i], r) * rho[i]
        r = r + (al[i] - be_i) * s_hist[i]
    return r


def _scale_of(xp, x):
    """D² for the scaled mode: D = |x|, 1 where x is zero (or not finite)."""
    a = xp.abs(x)
    ok = (a > 0) & (a < float("inf"))
    return xp.where(ok, a * a, xp.ones_like(a))


def _stalled(xp, x, x_new, best, f) -> bool:
    """The search found no decrease and x did not move: torch would stay here for good."""
    if best.f < f:
        return False
    return best.t == 0 or not bool(xp.any(x_new != x))


def lbfgs(lr=1.0, history_size=100, tolerance_grad=1e-7, tolerance_change=1e-9,
          line_search="strong_wolfe", max_ls=25, on_stall="rescale", scale="none") -> Method:
    if line_search not in LINE_SEARCHES:
        raise UsageError(f"line_search={line_search} is not accepted: expected one of "
                         f"{', '.join(LINE_SEARCHES)}")
    if on_stall not in ON_STALL:
        raise UsageError(f"on_stall={on_stall} is not accepted: expected one of "
                         f"{', '.join(ON_STALL)}")
    if scale not in SCALES:
        raise UsageError(f"scale={scale} is not accepted: expected one of {', '.join(SCALES)}")

    def init(x, xp):
        return LBFGSState(0, None, 0.0, (), (), (), 1.0, None, None, None, None,
                          _scale_of(xp, x) if scale == "x" else None)

    def step(objective, x, state):
        xp = objective.xp
        if state.cache is not None and state.cache[0] is x:
            _, f_raw, g = state.cache
        else:
            f_raw, g = objective.value_and_grad(x)
        f = float(f_raw)

        def stop(state, reason):  # x is final: return it unchanged
            return x, state._replace(cache=(x, f_raw, g), done=reason), f_raw, g

        # torch tests these after moving; without a line search f and g at the new point are
        # only known now, one step later (with it, the previous step already tested them).
        if _max_abs(xp, g) <= tolerance_grad:
            return stop(state, GRADIENT_MET)
        if state.prev_f is not None and abs(f - state.prev_f) < tolerance_change:
            return stop(state, "change of f below tolerance_change")

        def restart():
            """Start afresh in variables scaled by |x| (the state of a first step)."""
            fresh = LBFGSState(0, None, 0.0, (), (), (), 1.0, None, None, None, None,
                               _scale_of(xp, x))
            return x, fresh._replace(cache=(x, f_raw, g)), f_raw, g

        n_iter = state.n_iter + 1
        s_hist, y_hist, rho, h_diag = state.s, state.y, state.rho, state.h_diag
        d2 = state.scale  # D², or None: torch's own iteration
        dropped = 0
        if n_iter == 1:
            d = -g if d2 is None else -d2 * g
        else:
            y, s = g - state.prev_g, state.d * state.t
            ys = _dot(xp, y, s)
            if d2 is None:
                # Only pairs of positive curvature keep H positive definite (and ys finite
                # and nonzero keeps rho and h_diag free of NaN).
                keep, yy = ys > 1e-10, None
                if (not keep and on_stall == "rescale" and ys > 0
                        and ys > EPS * math.sqrt(_dot(xp, s, s) * _dot(xp, y, y))):
                    # torch drops a pair of positive curvature because f is small in its
                    # units (1e-10 is absolute); again and again, it learns no curvature.
                    dropped = state.dropped + 1
                    if dropped >= DROPS_BEFORE_RESTART:
                        return restart()
            else:  # the same test in z = x/D, relative: s_z = s/D, y_z = D·y
                yy = _dot(xp, y * y, d2)
                keep = ys > 0 and ys > EPS * math.sqrt(_dot(xp, s * s, 1 / d2) * yy)
            if keep:
                s_hist = (*s_hist, s)[-history_size:]
                y_hist = (*y_hist, y)[-history_size:]
                rho = (*rho, 1.0 / ys)[-history_size:]
                h_diag = ys / (_dot(xp, y, y) if yy is None else yy)
            d = _direction(xp, g, s_hist, y_hist, rho, h_diag if d2 is None else h_diag * d2)
        # The first step, along -g, has no curvature to scale it: torch caps its length.
        if n_iter == 1:
            g1 = xp.abs(g) if d2 is None else xp.abs(g) * xp.sqrt(d2)  # |g_z| = D·|g|
            t = min(1.0, 1.0 / float(xp.sum(g1))) * lr
        else:
            t = lr
        state = LBFGSState(n_iter, d, t, s_hist, y_hist, rho, h_diag, f, g, None, None, d2,
                           dropped)

        def restart_or_stall(why):
            """torch would stay here for good: restart once in scaled variables, or stop."""
            if on_stall == "stop" or (d2 is not None and n_iter == 1):
                return stop(state, why)
            return restart()

        gtd = _dot(xp, g, d)
        if gtd > -tolerance_change:
            # No descent along d: torch stops without moving, and would again on every call.
            if gtd >= 0 and line_search != "none":  # not a descent direction at all
                return restart_or_stall("no descent direction (g·d >= 0)")
            return stop(state, "no descent direction (g·d > -tolerance_change)")
        if line_search == "none":
            small = _max_abs(xp, d * t) <= tolerance_change
            reason = "step below tolerance_change" if small else None
            return x + t * d, state._replace(done=reason), f_raw, g

        def evaluate(t):
            f_t, g_t = objective.value_and_grad(x + t * d)
            return _Trial(t, float(f_t), _dot(xp, g_t, d), g_t, f_t)

        start = _Trial(0.0, f, gtd, g, f_raw)
        if d2 is None:
            # torch passes neither its tolerance_change nor c1, c2 to the line search.
            best = _strong_wolfe(evaluate, t, _max_abs(xp, d), start, max_ls=max_ls)
        else:  # the bracket's width measured in z = x/D, against the user's tolerance
            best = _strong_wolfe(evaluate, t, _max_abs(xp, d / xp.sqrt(d2)), start,
                                 tolerance_change=tolerance_change, max_ls=max_ls,
                                 order=_NaNHighest)
        x_new = x + best.t * d
        if _stalled(xp, x, x_new, best, f):
            along = "steepest-descent" if n_iter == 1 else "L-BFGS"
            return restart_or_stall(
                f"the line search found no decrease of f along the "
                f"{'scaled ' if d2 is not None else ''}{along} direction (f = {f:.6g}, "
                f"max|g| = {_max_abs(xp, g):.3g})")
        reason = None
        if _max_abs(xp, best.g) <= tolerance_grad:
            reason = GRADIENT_MET
        elif _max_abs(xp, d * best.t) <= tolerance_change:
            reason = "step below tolerance_change"
        elif abs(best.f - f) < tolerance_change:
            reason = "change of f below tolerance_change"
        state = state._replace(t=best.t, cache=(x_new, best.f_raw, best.g), done=reason)
        return x_new, state, f_raw, g

    def done(state):
        if state.done is None:
            return None
        return ("converged" if state.done == GRADIENT_MET else "stalled"), state.done

    return Method(init, step, done)


class LBFGS(Optimizer):
    name = "lbfgs"
    description = ("L-BFGS with a strong-Wolfe line search (torch.optim.LBFGS); one step is "
                   "one direction and one line search")
    hyperparams = (
        common.lr(1.0),
        Param("history_size", "int", 100, "number of (s, y) pairs kept", low=1),
        Param("tolerance_grad", "float", 1e-7, "stop when max|g| is at most this", low=0),
        Param("tolerance_change", "float", 1e-9,
              "stop when a step's max|t·d| or the change of f is below this", low=0),
        Param("line_search", "str", "strong_wolfe", "line search along each direction",
              choices=LINE_SEARCHES),
        Param("max_ls", "int", 25, "most evaluations of one line search after the first",
              low=0),
        Param("on_stall", "str", "rescale", "where torch's line search finds no decrease and "
              "torch would stay for good: rescale (restart once in variables scaled by |x|) "
              "or stop (stalled)", choices=ON_STALL),
        Param("scale", "str", "none", "none (torch's iterates) or x: work in variables "
              "scaled by |x0| from the first step, for fits whose parameters differ by "
              "orders of magnitude", choices=SCALES),
    )
    # `optbench run` keeps torch's lr 1.0, not the first-order methods' 0.01. It tightens
    # tolerance_change: torch's 1e-9 is absolute, and on the tutorial's regression g·d falls
    # below it while the coefficients are still only ~1e-6 right (torch.optim.LBFGS stalls
    # there too). 1e-15 stops only where f no longer changes in float64.
    run_defaults: ClassVar[Mapping[str, Any]] = {"tolerance_change": 1e-15}

    def method(self, **hp):
        return lbfgs(**hp)


@hookimpl
def register_optimizers(register):
    register(LBFGS())
