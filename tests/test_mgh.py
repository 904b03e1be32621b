"""The `mgh` problem: the 35 Moré-Garbow-Hillstrom functions against the paper and across
backends, and lbfgs reaching the paper's minima from the standard start.

Independent references: the paper's printed f* (six digits; each full-precision f* of the
module must round to it, and the objective at the module's x* must be that f*), and a
numpy central-difference Jacobian of the residuals for the gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

import optbench
from optbench.problems.mgh import MGH, SPECS

PROBLEM = MGH()
NUMBERS = [s.number for s in SPECS]

# lbfgs from the standard start, with default options: the problems where it ends at
# another of the function's minima, not the paper's f* (measured; a change is a finding).
LBFGS_MISSES = {
    2: "Freudenstein-Roth: lbfgs stops at the other local minimum the paper notes, 48.9842",
    18: "Biggs EXP6: lbfgs stops at the local minimum 5.65565e-3 the paper notes (m=13)",
    26: "Trigonometric: lbfgs stops at the local minimum 2.79506e-5 near x0",
}
# fd's gradient 2Jᵀr, J by central differences of the residuals, loses about
# eps^(2/3)·|r_i| per unit of x_j; near Penalty II's minimum that outweighs the gradient, and
# lbfgs's line search finds no decrease short of f* (4.3e-5 relative above it). Differencing
# f instead of r also missed Powell badly scaled (3), Meyer (10) and Osborne 1 (17).
FD_MISSES = {24: "Penalty II"}
# The complex step differentiates analytic functions only: helical valley's sign(x1) and
# Gulf's |y - x2| are not (numpy's sign and abs of a complex number are x/|x| and |x|, so the
# step's imaginary part is lost), and lbfgs stalls with a wrong gradient.
COMPLEXSTEP_MISSES = {7: "Helical valley", 11: "Gulf research and development"}
KNOWN_MISSES = {"fd": FD_MISSES, "complexstep": COMPLEXSTEP_MISSES}


def instance(number: int, start: float = 1.0):
    return PROBLEM.make({"number": number, "start": start}, 0)


def target(f_star: float) -> float:
    """The acceptance's bound on f - f*: relative 1e-6, or absolute 1e-10 where f* = 0."""
    return 1e-6 * f_star if f_star else 1e-10


def test_thirty_five_problems_at_the_papers_sizes():
    assert list(range(1, 36)) == NUMBERS
    for s in SPECS:
        inst = instance(s.number)
        r = PROBLEM.residuals(inst.x0, inst.data, np)
        assert r.shape == (s.m,), s.number
        assert inst.x0.shape == (s.n,) == (len(s.x),), s.number
        assert inst.variables == tuple(f"x{i}" for i in range(1, s.n + 1))
    assert SPECS[19].n == 6 and SPECS[34].n == SPECS[34].m == 8  # Watson, Chebyquad


@pytest.mark.parametrize("number", NUMBERS)
def test_f_star_is_the_papers_and_reached_at_x_star(number):
    s = SPECS[number - 1]
    # the full-precision f* rounds to the paper's six printed digits
    assert abs(s.f - s.paper_f) <= 5e-6 * abs(s.paper_f), (s.f, s.paper_f)
    inst = instance(number)
    f_at_x = float(PROBLEM.objective(np.asarray(s.x), inst.data, np))
    # the rounded x* of the module: within its 12 digits of f* (or 1e-18 where f* = 0)
    assert abs(f_at_x - s.f) <= max(1e-9 * s.f, 1e-18), (f_at_x, s.f)
    ref = PROBLEM.reference(inst)
    assert ref.f == s.f and ref.details["paper_f"] == s.paper_f


def test_start_scales_the_papers_x0():
    for number in (1, 8, 35):
        assert np.array_equal(instance(number, 100.0).x0, 100.0 * instance(number).x0)
    # the paper's x0 of some: Rosenbrock, Meyer, Osborne 2's first, Penalty I
    assert instance(1).x0.tolist() == [-1.2, 1.0]
    assert instance(10).x0.tolist() == [0.02, 4000.0, 250.0]
    assert instance(23).x0.tolist() == list(range(1, 11))


def _numeric_gradient(number: int, x: np.ndarray) -> np.ndarray:
    """2 Jᵀr with J from fourth-order central differences of the numpy residuals: a
    reference that no backend computes. (A wide step: residuals such as x1 - 1e6 lose
    eps·1e6/h to cancellation, and the truncation error is O(h⁴).)"""
    inst = instance(number)

    def r(point: np.ndarray) -> np.ndarray:
        return PROBLEM.residuals(point, inst.data, np)

    jac = np.empty((r(x).size, x.size))
    for j in range(x.size):
        h = 1e-3 * max(abs(x[j]), 1e-2)  # Osborne 1: exp(-320 x4) at x4 = 0.01
        e = np.zeros_like(x)
        e[j] = h
        jac[:, j] = (8 * (r(x + e) - r(x - e)) - (r(x + 2 * e) - r(x - 2 * e))) / (12 * h)
    return 2.0 * jac.T @ r(x)


def _gradients(backend, numbers=NUMBERS):
    """{number: (x, f, ∇f)} of one backend at each problem's x0 (0.1 for Watson's x0 = 0,
    where much of its gradient vanishes)."""
    out = {}
    for number in numbers:
        inst = instance(number)
        x0 = inst.x0 if np.any(inst.x0) else np.full(inst.x0.size, 0.1)
        obj = backend.prepare(PROBLEM, inst.data, dtype="float64", device="cpu")
        f, g = obj.value_and_grad(obj.from_numpy(x0))
        out[number] = (x0, float(f), np.asarray(obj.to_numpy(g), dtype=np.float64))
    return out


@pytest.fixture(scope="module")
def autograd_gradients(registry):
    return _gradients(registry.get("backend", "autograd"))


# jax compiles each of the 35 functions (10 s in all): with the slow tests.
@pytest.mark.parametrize("name", ["torch", "autograd", "fd",
                                  pytest.param("jax", marks=pytest.mark.slow)])
def test_gradients_agree_across_backends_at_x0(name, registry, autograd_gradients):
    """Every problem on a CPU backend: f and ∇f at x0 against numpy's f and the
    central-difference reference (1e-6 of the gradient's scale), and, for automatic
    differentiation, against autograd's to 1e-10."""
    backend = registry.get("backend", name)
    if backend.available("cpu") is not None:
        pytest.skip(f"backend {name} is not available here")
    for number, (x0, f, g) in _gradients(backend).items():
        inst = instance(number)
        f_ref = float(PROBLEM.objective(x0, inst.data, np))
        g_ref = _numeric_gradient(number, x0)
        scale = max(1.0, float(np.linalg.norm(g_ref)))
        assert abs(f - f_ref) <= 1e-12 * max(1.0, abs(f_ref)), (number, f, f_ref)
        # fd's own differences lose about eps^(2/3)·|f| to rounding (Brown badly scaled:
        # f = 1e12 at x0, 9 units of a 2e6 gradient)
        tol = 1e-6 * scale + (1e-10 * abs(f_ref) if name == "fd" else 0.0)
        assert np.linalg.norm(g - g_ref) <= tol, (number, g, g_ref)
        if name != "fd":
            assert np.linalg.norm(g - autograd_gradients[number][2]) <= 1e-10 * scale, number


def test_objective_is_the_sum_of_squared_residuals():
    rng = np.random.default_rng(0)
    for s in SPECS:
        inst = instance(s.number)
        x = inst.x0 + 0.01 * rng.standard_normal(s.n)
        r = PROBLEM.residuals(x, inst.data, np)
        assert PROBLEM.objective(x, inst.data, np) == pytest.approx(float(r @ r), rel=1e-14)


def _lbfgs_reaches(backend: str) -> dict[int, tuple[bool, float]]:
    out = {}
    for s in SPECS:
        tol = target(s.f)
        record = optbench.solve("mgh", backend, "lbfgs", problem_params={"number": s.number},
                                steps=1000, tol=tol / 2)
        out[s.number] = (record.f - s.f <= tol, record.f)
    return out


def _check_lbfgs(backend: str) -> None:
    reached = _lbfgs_reaches(backend)
    missed = {k for k, (ok, _) in reached.items() if not ok}
    known = set(LBFGS_MISSES) | set(KNOWN_MISSES.get(backend, ()))
    # no miss beyond the known exceptions (one fewer, on another CPU's rounding, is fine)
    assert missed <= known, {k: reached[k][1] for k in missed - known}
    assert len(SPECS) - len(missed) >= 30
    assert reached[2][1] == pytest.approx(48.9842, rel=1e-5)  # the paper's other minimum
    assert reached[18][1] == pytest.approx(5.65565e-3, rel=1e-5)
    assert reached[26][1] == pytest.approx(2.79506e-5, rel=1e-5)


def test_lbfgs_reaches_the_papers_f_star_on_torch():
    _check_lbfgs("torch")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["autograd", "fd", "jax", "complexstep"])
def test_lbfgs_reaches_the_papers_f_star_on_other_cpu_backends(backend, registry):
    if registry.get("backend", backend).available("cpu") is not None:
        pytest.skip(f"backend {backend} is not available here")
    _check_lbfgs(backend)
