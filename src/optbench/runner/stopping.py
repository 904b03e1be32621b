"""Stopping criteria as small objects, in the manner of benchopt's.

Each criterion looks at what the loop knows at a check point and either says nothing (None)
or returns the status and message that end the run. The loop asks them in order; the first
to answer wins.
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


@dataclass
class Diverged(Criterion):
    """A non-finite f ends the run, at that step, without an exception."""

    def check(self, p: Progress) -> tuple[str, str] | None:
        if not math.isfinite(p.f):
            return "diverged", f"f became {p.f} at step {p.step}"
        return None


@dataclass
class GapBelow(Criterion):
    """f − f* ≤ tol, where the optimum f* is known."""

    tol: float
    f_star: float

    def check(self, p: Progress) -> tuple[str, str] | None:
        if p.f - self.f_star <= self.tol:
            return "converged", f"f - f* <= {self.tol:g}"
        return None


@dataclass
class GradientBelow(Criterion):
    """‖g‖ ≤ tol, where f* is not known."""

    tol: float

    def check(self, p: Progress) -> tuple[str, str] | None:
        if p.grad_norm_of(p.grad) <= self.tol:
            return "converged", f"gradient norm <= {self.tol:g}"
        return None


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
