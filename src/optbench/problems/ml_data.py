"""The data of the `ml` problems: scikit-learn's bundled datasets, standardized.

The three datasets ship inside the scikit-learn wheel (no download): breast cancer (569
samples, 30 features, 2 classes), digits (1797 samples of 8×8 pixels, 10 classes) and
diabetes (442 samples, 10 features, a real target). scikit-learn is imported here, when a
problem is made, never when optbench starts (it pulls in scipy: about a second).

Standardization, so that the problems are well conditioned: each feature column becomes
(x − mean) / std over the whole dataset, std the population one (ddof 0, as sklearn's
StandardScaler); a constant column (digits has several always-zero pixels) is divided by 1
and so becomes 0. The ridge target is standardized the same way.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache

import numpy as np

from optbench.errors import UsageError

INSTALL = "pip install -c constraints.txt -e '.[ml]'"


def missing_reason() -> str | None:
    """Why the ml problems cannot run here (scikit-learn absent), or None. Looks the
    package up without importing it, so that `optbench list` stays fast."""
    if "sklearn" in sys.modules:  # None there: its import is blocked (as tests do)
        found = sys.modules["sklearn"] is not None
    else:
        try:
            found = importlib.util.find_spec("sklearn") is not None
        except (ImportError, ValueError):
            found = False
    return None if found else f"scikit-learn is not installed ({INSTALL})"


def standardize(a: np.ndarray) -> np.ndarray:
    """(a − mean) / std per column (population std; 1 where a column is constant)."""
    a = np.asarray(a, dtype=np.float64)
    std = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(std > 0, std, 1.0)


@cache
def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(X standardized, target) of a bundled dataset: breast_cancer or digits (target the
    class labels 0..K-1, ints) or diabetes (target standardized, floats). Read once per
    process; the arrays are read-only so that no caller changes the cached copy."""
    reason = missing_reason()
    if reason is not None:
        raise UsageError(f"the ml problems need scikit-learn's datasets: {reason}")
    try:
        from sklearn import datasets
    except ImportError as exc:  # present but broken (a missing dependency of its own)
        raise UsageError(f"the ml problems need scikit-learn's datasets: importing "
                         f"scikit-learn failed ({exc}); reinstall it ({INSTALL})") from None
    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits,
              "diabetes": datasets.load_diabetes}[name]
    bunch = loader()
    X = standardize(bunch.data)
    y = (standardize(bunch.target[:, None])[:, 0] if name == "diabetes"
         else np.asarray(bunch.target, dtype=np.int64))
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((labels.size, classes))
    out[np.arange(labels.size), labels] = 1.0
    return out
