"""asv: the NIST StRD nonlinear fits that optbench's least-squares solvers get right
(issue 15), on autograd in float64 with default options, both starts of every dataset of
../shared/data/nist-nonlinear: fits with LRE >= 6 and >= 8, and the median time per fit.
benchmarks/nist_nonlinear.py prints the full table, beside scipy's, on every backend."""

from __future__ import annotations

import statistics

from .common import skip
from .nist_nonlinear import datasets, nist_dir, run_all

_fits: dict[str, list] = {}


def _rows(method: str) -> list:
    if method not in _fits:
        folder = nist_dir()
        _fits[method] = run_all(folder, datasets(folder), ["autograd"], [method],
                                scipy=False)
    return _fits[method]


class NistNonlinear:
    params = ["lm", "gn"]
    param_names = ["method"]
    timeout = 900

    def setup(self, method):
        # asv shows n/a only for NotImplementedError raised in setup.
        if nist_dir() is None:
            skip("../shared/data/nist-nonlinear is not beside this checkout")

    def track_fits_lre6(self, method):
        return sum(r["lre"] >= 6 for r in _rows(method))

    track_fits_lre6.unit = "fits"

    def track_fits_lre8(self, method):
        return sum(r["lre"] >= 8 for r in _rows(method))

    track_fits_lre8.unit = "fits"

    def track_median_ms_per_fit(self, method):
        return statistics.median(r["time_s"] for r in _rows(method)) * 1e3

    track_median_ms_per_fit.unit = "ms"
