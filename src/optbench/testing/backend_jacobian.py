"""Backend check of least squares: Objective.residuals_and_jacobian on problems with
residuals — pointwise (a model fitted to points), mixed, and linear — against their exact
Jacobians, in the backend's dtype, with 2·Jᵀr equal to its own gradient."""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.testing._common import Skip, describe, host, quiet, verdict
from optbench.testing.backend_subject import BackendSubject, differentiation
from optbench.testing.probes import CoupledSquares, DecayFit, SmallQuadratic
from optbench.testing.report import CheckResult
from optbench.testing.residuals_reference import JACOBIAN_TOL, relative_gap

# float32: the Jacobian of these small probes rounds to about 1e-7; finite differences in
# float32 err by ~1e-3 (see TOLERANCES of the gradient checks).
FLOAT32_TOL = {"exact": 1e-4, "approximate": 1e-2}
NOT_RECORDED = "does not record its problem"


def _exact(probe: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(probe, SmallQuadratic):
        return np.diag(np.sqrt(probe.data()["w"]))
    return probe.jacobian(x)


def check_jacobian(s: BackendSubject) -> CheckResult:
    """residuals_and_jacobian(x) -> (r, J): r as the problem computes it, J (m, n) equal to
    the exact Jacobian (to 1e-7 relative for exact backends, 1e-5 for approximate ones in
    float64), both in the run's dtype, 2·Jᵀr equal to value_and_grad's gradient, and one
    evaluation counted in n_evals. Skipped for a backend whose objectives implement neither
    it nor `problem` (the generic version's need)."""
    wrong, seen = [], []
    kind = differentiation(s.backend)
    for dtype in [d for d in ("float64", "float32") if d in s.backend.dtypes]:
        tol = JACOBIAN_TOL[kind] if dtype == "float64" else FLOAT32_TOL[kind]
        for probe in (DecayFit(), CoupledSquares(), SmallQuadratic()):
            instance = probe.make({}, 0)
            x = np.asarray(instance.x0, dtype=np.float64)
            where = f"{probe.name} ({dtype})"
            try:
                objective = s.backend.prepare(probe, instance.data, dtype=dtype,
                                              device=s.device)
                before = objective.n_evals
                with quiet():
                    r, jac = objective.residuals_and_jacobian(objective.from_numpy(x))
                    counted = objective.n_evals - before
                    _, g = objective.value_and_grad(objective.from_numpy(x))
            except TypeError as exc:
                if NOT_RECORDED in str(exc):
                    raise Skip(f"{s.name}'s objectives neither implement "
                               f"residuals_and_jacobian nor set Objective.problem (least "
                               f"squares is optional): {exc}") from None
                wrong.append(f"{where}: {describe(exc)}")
                continue
            except Exception as exc:
                wrong.append(f"{where}: {describe(exc)}")
                continue
            dtypes = {str(np.asarray(objective.to_numpy(a)).dtype) for a in (r, jac)}
            r_h, j_h, g_h = (host(objective, a) for a in (r, jac, g))
            r_ref = np.asarray(probe.residuals(x.astype(dtype).astype(np.float64),
                                               instance.data, np))
            j_ref = _exact(probe, x)
            if dtypes != {dtype}:
                wrong.append(f"{where}: r and J came back in {', '.join(sorted(dtypes))}")
            elif j_h.shape != j_ref.shape:
                wrong.append(f"{where}: J has shape {j_h.shape}; expected {j_ref.shape}")
            elif relative_gap(r_h, r_ref) > tol:
                wrong.append(f"{where}: r differs from the problem's by "
                             f"{relative_gap(r_h, r_ref):.2g} (rel.)")
            elif relative_gap(j_h, j_ref) > tol:
                wrong.append(f"{where}: J differs from the exact Jacobian by "
                             f"{relative_gap(j_h, j_ref):.2g} (rel.) > {tol:g}")
            elif relative_gap(2.0 * j_h.T @ r_h, g_h) > tol:
                wrong.append(f"{where}: 2·Jᵀr differs from the gradient by "
                             f"{relative_gap(2.0 * j_h.T @ r_h, g_h):.2g} (rel.) > {tol:g}")
            elif counted != 1:
                wrong.append(f"{where}: one residuals_and_jacobian call added {counted} to "
                             f"n_evals; expected 1 (one Jacobian is one evaluation)")
            else:
                seen.append(where)
    return verdict("jacobian", wrong, f"exact Jacobians ({kind} tolerance) on "
                   + ", ".join(seen))
