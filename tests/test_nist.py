"""NIST StRD polynomial datasets: optbench's digits on every BLAS code path (issue 8 item 5,
issue 13 item 1).

`optbench run --problem regression -P data=... -P degree=... -P basis=orthogonal --optimizer
lbfgs -O tolerance_grad=0 -O tolerance_change=0 --dtype float64` must agree with NIST's
certified coefficients (LRE, min over coefficients) to at least numpy.polyfit's digits + 1,
or 13 where polyfit already has 13 — capped at the attainable digits, those of the exact
least-squares solution of the data as float64 reads them (bench_accuracy.bar says which,
and why). Beyond the digits, the run must end on that exact solution, correctly rounded,
bit for bit: then no BLAS and no CPU code path can change a digit. The same holds with
MKL (torch) and OpenBLAS (numpy) forced onto other code paths, each in a subprocess that
first asks the library whether it took the path (skipped, with what it said, where not).

The NIST tests are skipped where ../shared/data/nist is not beside the checkout (or
$OPTBENCH_NIST_DIR); the refinement's own tests below use generated data.
"""

import numpy as np
import pytest
from benchmarks import bench_accuracy
from benchmarks.common import nist_dir

import optbench
from optbench.api import plan
from optbench.problems.polynomial_basis import REFINE_WITHIN, OrthogonalInstance

# Under pytest-xdist the module's tests stay on one worker: its fixture measures every
# forced BLAS path once (subprocesses, ~30 s), and would otherwise run once per worker.
pytestmark = pytest.mark.xdist_group("nist")

needs_nist = pytest.mark.skipif(nist_dir() is None,
                                reason="../shared/data/nist is not beside this checkout")


def check_dataset(name: str, x: list[float], polyfit: float) -> None:
    ours = bench_accuracy.digits(name, x)
    floor, why = bench_accuracy.bar(name, polyfit)
    assert ours >= floor, f"{name}: optbench {ours:.2f} digits < the bar {floor:.2f}: {why}"
    assert x == list(bench_accuracy.exact_solution(name)), (
        f"{name}: x is not the exact least-squares solution, correctly rounded")


@needs_nist
@pytest.mark.parametrize("dataset", [
    pytest.param(d, marks=pytest.mark.slow) if d == "Wampler5" else d  # ~15 s of L-BFGS
    for d in bench_accuracy.DATASETS])
def test_orthogonal_lbfgs_clears_the_bar(dataset):
    record = bench_accuracy.nist_record(dataset)
    check_dataset(dataset, record.x, bench_accuracy.polyfit_lre(dataset))
    assert "x refined with exact residuals" in record.message


@pytest.fixture(scope="module")
def forced_paths():
    """Every forced path measured once, side by side (bench_accuracy.measure_on_paths)."""
    return bench_accuracy.measure_on_paths(timeout=600)


@pytest.mark.slow  # a subprocess per forced BLAS path (~30 s in all)
@needs_nist
@pytest.mark.parametrize("path", bench_accuracy.PATHS, ids=lambda p: p.name)
def test_digits_do_not_depend_on_the_blas_code_path(path, forced_paths):
    got = forced_paths[path.name]
    if "skipped" in got:
        pytest.skip(f"{path.name}: {got['skipped']}")
    for name, result in got["results"].items():
        check_dataset(name, result["x"], result["polyfit"])


# -- the refinement: exact, and only where the run had converged ------------------------

GENERATED = {"basis": "orthogonal", "degree": 3, "coefficients": (0.5, -1.0, 2.0, 3.0),
             "noise": 0.5, "n_samples": 40}


def generated(**options):
    return optbench.solve(problem="regression", backend="torch", problem_params=GENERATED,
                          **{"tol": 0, **options})  # to the optimizer's own stop


def generated_instance() -> OrthogonalInstance:
    return plan("regression", "torch", "lbfgs", problem_params=GENERATED).instance


def test_converged_run_ends_on_the_exact_least_squares_solution():
    inst = generated_instance()
    exact = list(bench_accuracy.exact_least_squares(inst.abscissae, inst.data["y"], 3))
    # The default stop (f - f* <= 1e-12·|f*|) leaves x within the refinement's reach.
    record = generated(optimizer="lbfgs", x0=[0.4, -1.0, 2.0, 3.0], tol=None)  # --x0 kept
    assert record.status == "converged"
    assert "x refined with exact residuals" in record.message
    assert record.x == exact


def test_unconverged_run_is_reported_as_the_optimizer_left_it():
    record = generated(optimizer="nadam", steps=30)
    assert record.status == "max_steps"
    assert "refined" not in record.message
    assert record.relative_error > 0.1  # far from the solution, and said so


def test_float32_run_is_not_refined():
    record = generated(optimizer="lbfgs", dtype="float32")
    assert "refined" not in record.message
    assert record.relative_error > 1e-12  # float32's digits, not float64's


def test_refinement_only_within_half_the_digits():
    """finalize refines x whose fitted values are within √ε·‖y‖ of the least-squares fit,
    and returns any other x untouched: it recomputes rounding, not the optimizer's work."""
    inst = generated_instance()
    y = inst.data["y"]
    exact = np.array(bench_accuracy.exact_least_squares(inst.abscissae, y, 3))
    z = inst.from_user(exact)
    step = np.array([0.6, -0.8, 0.0, 0.0]) * float(np.linalg.norm(y))  # unit length
    for distance in (1e-12, REFINE_WITHIN / 2):
        x, note = inst.finalize(inst.to_user(z + distance * step), "float64")
        assert list(x) == list(exact) and note.startswith("x refined"), distance
    far = inst.to_user(z + 2 * REFINE_WITHIN * step)
    x, note = inst.finalize(far, "float64")
    assert note == "" and np.array_equal(x, far)
    x, note = inst.finalize(inst.to_user(z), "float32")
    assert note == ""
