"""Accuracy: digits of agreement with NIST's certified regression coefficients.

LRE = -log10(|estimate - certified| / |certified|), capped at 15, minimum over the
coefficients (the NIST StRD measure; see ../shared/data/nist/README.md), for
`optbench run --problem regression -P data=... --optimizer lbfgs --dtype float64`.
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
    error = abs(Decimal(repr(estimate)) - certified) / abs(certified)
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
                                            "degree": meta["degree"]})
    estimates = list(reversed(record.x))  # optbench: highest power first
    return min(lre(e, c) for e, c in zip(estimates, certified, strict=True))


class NistAccuracy:
    params = DATASETS
    param_names = ["dataset"]

    def track_lre_digits(self, dataset):
        return nist_lre(dataset)

    track_lre_digits.unit = "digits"
