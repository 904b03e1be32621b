"""NIST StRD polynomial datasets: optbench's digits against numpy.polyfit's (issue 8, item 5).

`optbench run --problem regression -P data=... -P degree=... -P basis=orthogonal --optimizer
lbfgs -O tolerance_grad=0 -O tolerance_change=0 --dtype float64` must agree with NIST's
certified coefficients to at least as many digits (LRE, min over coefficients) as
numpy.polyfit on the same machine. Skipped where ../shared/data/nist is not beside the
checkout (or $OPTBENCH_NIST_DIR).
"""

import pytest
from benchmarks import bench_accuracy
from benchmarks.common import nist_dir

pytestmark = pytest.mark.skipif(nist_dir() is None,
                                reason="../shared/data/nist is not beside this checkout")


@pytest.mark.parametrize("dataset", bench_accuracy.DATASETS)
def test_orthogonal_lbfgs_reaches_polyfit_digits(dataset):
    ours = bench_accuracy.nist_lre(dataset)
    polyfit = bench_accuracy.polyfit_lre(dataset)
    assert ours >= polyfit, f"{dataset}: optbench {ours:.2f} digits < numpy.polyfit {polyfit:.2f}"
