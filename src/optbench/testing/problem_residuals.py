"""Problem check of declared residuals (Problem.has_residuals): their squares sum to the
objective, and every built-in backend agrees on them and on their Jacobian."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optbench.testing._common import Skip, describe, host, quiet, verdict
from optbench.testing.backend_gradients import nearby_points
from optbench.testing.backend_subject import differentiation
from optbench.testing.problem_subject import ProblemSubject
from optbench.testing.report import CheckResult
from optbench.testing.residuals_reference import (
    JACOBIAN_TOL,
    SUM_TOL,
    central_jacobian,
    numpy_residuals,
    relative_gap,
)


def _backend_pair(backend: Any, problem: Any, data: Any, x: np.ndarray
                  ) -> tuple[Any, Any, Any, str | None]:
    """(r, J, g) on `backend` (float64, cpu) as float64 host arrays, or the error."""
    try:
        objective = backend.prepare(problem, data, dtype="float64", device="cpu")
        with quiet():
            r, jac = objective.residuals_and_jacobian(objective.from_numpy(x))
            _, g = objective.value_and_grad(objective.from_numpy(x))
            return host(objective, r), host(objective, jac), host(objective, g), None
    except Exception as exc:
        return None, None, None, f"on {backend.name}: {describe(exc)}"


def check_residuals(s: ProblemSubject) -> CheckResult:
    """Where the problem declares residuals: at x0 and a nearby point, r is 1-D and
    sum(r²) equals the objective (numpy, 1e-10 relative); on each built-in backend,
    residuals_and_jacobian gives the same r, a Jacobian of shape (m, n) that matches
    central differences of numpy's residuals, and 2·Jᵀr equals the backend's gradient."""
    if not getattr(s.problem, "has_residuals", False):
        raise Skip(f"{s.name} declares no residuals (has_residuals is False)")
    wrong, notes = [], []
    for label, _params, instance in s.cases():
        x0 = np.asarray(instance.x0, dtype=np.float64)
        for _where, x in nearby_points(x0):
            try:
                with quiet():
                    r = numpy_residuals(s.problem, instance.data, x)
                    f = float(s.problem.objective(x, instance.data, np))
            except Exception as exc:
                wrong.append(f"{label}: residuals or objective raised {describe(exc)} on "
                             f"numpy")
                break
            if r.ndim != 1:
                wrong.append(f"{label}: residuals have shape {r.shape}: expected one "
                             f"dimension (m,)")
                break
            total = float(np.sum(r * r))
            if not (math.isfinite(f) and abs(total - f) <= SUM_TOL * max(abs(f), 1e-300)):
                wrong.append(f"{label}: sum(r²) = {total!r} but the objective is {f!r} at "
                             f"x = {x.tolist()}: residuals must square-sum to the objective "
                             f"(a mean of squares scales them by 1/sqrt(n))")
                break
            reference = central_jacobian(s.problem, instance.data, x)
            for backend in s.backends:
                r_b, j_b, g_b, error = _backend_pair(backend, s.problem, instance.data, x)
                if error:
                    wrong.append(f"{label}: {error}")
                    continue
                tol = JACOBIAN_TOL[differentiation(backend)]
                if r_b.shape != r.shape or relative_gap(r_b, r) > SUM_TOL:
                    wrong.append(f"{label}: on {backend.name}, r differs from numpy's "
                                 f"({r_b.shape} vs {r.shape})")
                elif j_b.shape != (r.size, x.size):
                    wrong.append(f"{label}: on {backend.name}, J has shape {j_b.shape}: "
                                 f"expected {(r.size, x.size)}")
                elif relative_gap(j_b, reference) > tol:
                    wrong.append(f"{label}: on {backend.name}, J differs from central "
                                 f"differences by {relative_gap(j_b, reference):.2g} (rel.) "
                                 f"> {tol:g}")
                elif relative_gap(2.0 * j_b.T @ r_b, g_b) > tol:
                    wrong.append(f"{label}: on {backend.name}, 2·Jᵀr differs from the "
                                 f"gradient by {relative_gap(2.0 * j_b.T @ r_b, g_b):.2g} "
                                 f"(rel.) > {tol:g}")
        notes.append(f"{label}: m = {r.size if r.ndim else '?'}")
    on = ", ".join(b.name for b in s.backends) or "numpy alone"
    return verdict("residuals", wrong, f"sum(r²) is f; r, J and 2·Jᵀr = ∇f agree on {on}: "
                   + "; ".join(notes))
