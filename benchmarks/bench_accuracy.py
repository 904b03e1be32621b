"""Accuracy: digits of agreement with NIST's certified regression coefficients.

LRE = -log10(|estimate - certified| / |certified|), capped at 15, minimum over the
coefficients (the NIST StRD measure; see ../shared/data/nist/README.md), for the winning
configuration `optbench run --problem regression -P data=... -P degree=... -P basis=orthogonal
--optimizer lbfgs -O tolerance_grad=0 -O tolerance_change=0 --dtype float64` (torch),
beside numpy.polyfit's, tracked side by side (track_lre_digits, track_polyfit_lre_digits)
and as their difference. The orthogonal basis is built so that its map back to monomials
and the fitted values lose no digits to cancellation (see polynomial_basis.orthogonal_instance).
Datasets with an intercept-free or multi-predictor model are not polynomial fits and are
left out (NoInt1, NoInt2, Longley).
"""

import json
import math
from decimal import Decimal

import optbench

from .common import nist_dir, skip

DATASETS = ["Norris", "Pontius", "Filip", "Wampler1", "Wampler2", "Wampler3", "Wampler4",
            "Wampler5"]


def lre(estimate: float, certified: Decimal) -> float:
    if certified == 0:
        return min(15.0, -math.log10(abs(estimate))) if estimate else 15.0
    error = abs(Decimal(repr(float(estimate))) - certified) / abs(certified)
    return 15.0 if error == 0 else max(0.0, min(15.0, -float(error.log10())))


def nist_lre(name: str, optimizer: str = "lbfgs", steps: int = 2000) -> float:
    folder = nist_dir()
    if folder is None:
        skip("../shared/data/nist is not beside this checkout")
    meta = json.loads((folder / f"{name}.json").read_text())
    certified = [Decimal(c["estimate"]) for c in meta["certified"]]  # B0 (constant) first
    record = optbench.solve(problem="regression", backend="torch", optimizer=optimizer,
                            dtype="float64", steps=steps,
                            problem_params={"data": str(folder / f"{name}.csv"),
                                            "degree": meta["degree"], "basis": "orthogonal"},
                            optimizer_params={"tolerance_grad": 0.0, "tolerance_change": 0.0})
    estimates = list(reversed(record.x))  # optbench: highest power first
    return min(lre(e, c) for e, c in zip(estimates, certified, strict=True))


def polyfit_lre(name: str) -> float:
    import numpy as np

    folder = nist_dir()
    if folder is None:
        skip("../shared/data/nist is not beside this checkout")
    meta = json.loads((folder / f"{name}.json").read_text())
    certified = [Decimal(c["estimate"]) for c in meta["certified"]]
    data = np.loadtxt(folder / f"{name}.csv", delimiter=",", skiprows=1)
    estimates = list(reversed(np.polyfit(data[:, 0], data[:, 1], meta["degree"])))
    return min(lre(e, c) for e, c in zip(estimates, certified, strict=True))


class NistAccuracy:
    params = DATASETS
    param_names = ["dataset"]

    def setup(self, dataset):
        # asv shows n/a only for NotImplementedError raised in setup; raised in the
        # benchmark itself it is recorded as a failure.
        if nist_dir() is None:
            skip("../shared/data/nist is not beside this checkout")

    def track_lre_digits(self, dataset):
        return nist_lre(dataset)

    track_lre_digits.unit = "digits"

    def track_polyfit_lre_digits(self, dataset):
        """numpy.polyfit's digits on the same data, the baseline of this machine."""
        return polyfit_lre(dataset)

    track_polyfit_lre_digits.unit = "digits"

    def track_lre_minus_polyfit(self, dataset):
        """optbench's digits minus numpy.polyfit's: >= 0 where it does at least as well."""
        return nist_lre(dataset) - polyfit_lre(dataset)

    track_lre_minus_polyfit.unit = "digits"


if __name__ == "__main__":
    print(f"{'dataset':10} {'optbench':>9} {'polyfit':>8}   (LRE digits, min over coefficients)")
    for name in DATASETS:
        print(f"{name:10} {nist_lre(name):9.1f} {polyfit_lre(name):8.1f}")
