"""Stopping criteria as small objects, in the manner of benchopt's.

Each criterion looks at what the loop knows at a check point and either says nothing (None)
or returns the status and message that end the run. The loop asks them in order; the first
to answer wins.

An optimizer may also stop itself (L-BFGS's done(), scipy's own tests). What its stop is
called (`settle`, at the final point):
    converged   the requested tolerance (--tol) is met there; with no --tol, the optimizer's
                own stop is a stationarity test (L-BFGS's tolerance_grad, scipy's success)
    stalled     the optimizer stopped itself and the tolerance is not met: --tol was asked
                and is not met, or the optimizer says so itself (a line search that finds
                no decrease, a step or a change of f below its tolerance)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    """What a criterion may look at: f and g at the point reached after `step` steps."""

    step: int
    f: float
    grad: Any  # backend array, turned into a norm only by the criteria that need it
    elapsed: float
    grad_norm_of: Any  # callable: array -> float


class Criterion:
    def check(self, p: Progress) -> tuple[str, str] | None:
        raise NotImplementedError


class Tolerance(Criterion):
    """A criterion that says the requested accuracy is reached (--tol)."""

    def shortfall(self, p: Progress) -> str:
        """Why p does not meet the tolerance, in a few words."""
        raise NotImplementedError


@dataclass
class Diverged(Criterion):
    """A non-finite f ends the run, at that step, without an exception."""

    def check(self, p: Progress) -> tuple[str, str] | None:
        if not math.isfinite(p.f):
            return "diverged", f"f became {p.f} at step {p.step}"
        return None


@dataclass
class GapBelow(Tolerance):
    """f − f* ≤ tol, where the optimum f* is known."""

    tol: float
    f_star: float

    def check(self, p: Progress) -> tuple[str, str] | None:
        if p.f - self.f_star <= self.tol:
            return "converged", f"f - f* <= {self.tol:g}"
        return None

    def shortfall(self, p: Progress) -> str:
        return f"f - f* = {p.f - self.f_star:.3g} > --tol {self.tol:g}"


@dataclass
class GradientBelow(Tolerance):
    """‖g‖ ≤ tol, where f* is not known."""

    tol: float

    def check(self, p: Progress) -> tuple[str, str] | None:
        if p.grad_norm_of(p.grad) <= self.tol:
            return "converged", f"gradient norm <= {self.tol:g}"
        return None

    def shortfall(self, p: Progress) -> str:
        return f"gradient norm {p.grad_norm_of(p.grad):.3g} > --tol {self.tol:g}"


@dataclass
class TimeLimit(Criterion):
    max_time: float

    def check(self, p: Progress) -> tuple[str, str] | None:
        if p.elapsed >= self.max_time:
            return "timeout", f"stopped after {p.elapsed:.3g} s (--max-time {self.max_time:g})"
        return None


def criteria(tol: float | None, f_star: float | None, max_time: float | None
             ) -> list[Criterion]:
    """The criteria for a run's options: divergence always; tolerance and time when asked."""
    out: list[Criterion] = [Diverged()]
    if tol is not None:
        out.append(GapBelow(tol, f_star) if f_star is not None else GradientBelow(tol))
    if max_time is not None:
        out.append(TimeLimit(max_time))
    return out


def self_stop(reason: str | tuple[str, str]) -> tuple[str, str]:
    """(status, message) of an optimizer's done(): a message alone means "converged"
    (the Method contract's first form); a pair names "converged" or "stalled" itself."""
    if isinstance(reason, str):
        return "converged", reason
    status, message = reason
    if status not in ("converged", "stalled"):
        raise ValueError(f"done() returned status {status!r}: expected converged or stalled")
    return status, message


def settle(status: str, message: str, criteria: list[Criterion], final: Progress
           ) -> tuple[str, str]:
    """The status of a run that the optimizer ended itself, decided at its final point:
    where a tolerance was requested, "converged" exactly when it is met there, else
    "stalled"; without one, the optimizer's own verdict."""
    tolerance = next((c for c in criteria if isinstance(c, Tolerance)), None)
    if tolerance is None or status not in ("converged", "stalled"):
        return status, message
    met = tolerance.check(final)
    if met is not None:
        return "converged", f"{met[1]} ({message})"
    return "stalled", f"{message}; {tolerance.shortfall(final)}"
