"""`nist`: a NIST StRD regression dataset as a problem with its certified optimum.

    optbench run --problem nist -P dataset=Misra1a -P start=1 --optimizer lm
    optbench bench --suite nist --optimizer lm,lbfgs --backend torch --steps 2000

One problem with the parameters `dataset` (a name such as Misra1a or Norris) and `start`
(NIST's start 1 or 2) rather than one problem per dataset: the datasets live outside the
package (../shared/data beside the checkout, or $OPTBENCH_NIST_DIR and
$OPTBENCH_NIST_NONLINEAR_DIR, as the benchmarks find them) and a machine may not have them.

Each dataset is a `model` problem (optbench.problems.model) built from the dataset's JSON:
its equation (the linear datasets' "y = B0 + B1*x + B2*x^2" and the nonlinear ones'
"y = b1*(1-exp(-b2*x))" are both in optbench's expression language), its parameters in
NIST's order, and its CSV. So the objective is NIST's: the residual sum of squares, and
f* = the certified RSS, x* = the certified parameters. x0 is NIST's start 1 or 2 for the
nonlinear datasets; NIST gives the linear ones no start, so they start at 0 (start=2 is the
same point). The JSON and CSV are read through userfiles (regular files, size-checked);
nothing in them is executed (equations are parsed by optbench.expr, never eval'd).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from optbench.core import Instance, Param, Reference
from optbench.errors import UsageError
from optbench.hookspecs import hookimpl
from optbench.problems.datatable import read_header, read_table
from optbench.problems.model import ModelProblem, build_model, instance_data
from optbench.userfiles import read_text

FOLDERS = (("nist", "OPTBENCH_NIST_DIR"), ("nist-nonlinear", "OPTBENCH_NIST_NONLINEAR_DIR"))
"""The data folders, linear then nonlinear, and the environment variable naming each."""


def shared_data() -> Path:
    """../shared/data beside the checkout (this file is
    <checkout>/src/optbench/problems/nist.py: an editable install's)."""
    return Path(__file__).resolve().parents[4] / "shared" / "data"


def folders() -> list[tuple[Path, bool]]:
    """(folder, nonlinear) for the data folders that exist: each from its environment
    variable, else shared_data()/<name>."""
    beside = shared_data()
    out = []
    for name, variable in FOLDERS:
        explicit = os.environ.get(variable)
        folder = Path(explicit) if explicit else beside / name
        if folder.is_dir():
            out.append((folder, name == "nist-nonlinear"))
    return out


def missing_reason() -> str:
    beside = shared_data()
    return (f"no NIST data: neither {beside}/nist nor {beside}/nist-nonlinear exists (set "
            "OPTBENCH_NIST_DIR / OPTBENCH_NIST_NONLINEAR_DIR to the folders)")


def dataset_files() -> dict[str, tuple[Path, bool]]:
    """Dataset name -> (its JSON file, nonlinear), for every <name>.json with a <name>.csv
    beside it; linear datasets first."""
    out: dict[str, tuple[Path, bool]] = {}
    for folder, nonlinear in folders():
        for meta in sorted(folder.glob("*.json")):
            if meta.with_suffix(".csv").is_file():
                out.setdefault(meta.stem, (meta, nonlinear))
    return out


@dataclass(frozen=True)
class Dataset:
    name: str  # its files' name (the JSON's "name" is NIST's, the same for ours)
    csv: str
    equation: str
    parameters: tuple[str, ...]
    starts: tuple[tuple[float, ...], ...]  # NIST's starts (none for the linear datasets)
    certified: tuple[float, ...]
    rss: float
    linear: bool


@lru_cache(maxsize=64)
def _load(path: str) -> Dataset:
    where = f"dataset {Path(path).stem} ({path})"
    try:
        meta = json.loads(read_text(path, "data", what=path))
        if "certified_rss" in meta:  # nonlinear: numbers, b1..bk, start1/start2
            params = tuple(meta["parameters"])
            starts = (tuple(map(float, meta["start1"])), tuple(map(float, meta["start2"])))
            return Dataset(Path(path).stem, str(Path(path).with_suffix(".csv")),
                           meta["equation"], params, starts,
                           tuple(map(float, meta["certified"])), float(meta["certified_rss"]),
                           linear=False)
        # linear: estimates as NIST prints them (strings), RSS from the ANOVA table
        params = tuple(c["parameter"] for c in meta["certified"])
        return Dataset(Path(path).stem, str(Path(path).with_suffix(".csv")), meta["model"],
                       params, (), tuple(float(c["estimate"]) for c in meta["certified"]),
                       float(meta["certified_anova"]["residual"]["sum_of_squares"]),
                       linear=True)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise UsageError(f"{where} is not a NIST dataset file as expected: {exc}") from None


def dataset(name: Any) -> Dataset:
    files = dataset_files()
    if not files:
        raise UsageError(f"nist: {missing_reason()}")
    if name not in files:
        raise UsageError(f"dataset={name!r} is not accepted: expected one of "
                         f"{', '.join(sorted(files))}")
    return _load(str(files[name][0]))


class Nist(ModelProblem):
    name = "nist"
    description = ("a NIST StRD regression dataset (-P dataset=Misra1a, Norris, ...) from "
                   "NIST's start 1 or 2; f* the certified residual sum of squares")
    params = (
        Param("dataset", "str", "Misra1a", "the dataset's name (its files in "
              "../shared/data/nist or nist-nonlinear)"),
        Param("start", "int", 1, "NIST's starting point 1 (far) or 2 (near); the linear "
              "datasets start at 0", low=1, high=2),
    )

    def model(self, params: Mapping[str, Any]) -> Any:
        d = dataset(params["dataset"])
        try:
            return build_model(d.equation, read_header(d.csv), f"dataset {d.name}",
                               list(d.parameters))
        except UsageError as exc:  # say which file holds the equation
            raise UsageError(f"dataset {d.name} ({d.csv[:-4]}.json): {exc}") from None

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        d = dataset(params["dataset"])
        model = self.model(params)
        table = read_table(d.csv, f"dataset {d.name}")
        x0 = (np.zeros(len(d.parameters)) if d.linear
              else np.asarray(d.starts[params["start"] - 1], dtype=np.float64))
        data = instance_data(model, table)
        data["_nist"] = d.name  # not an array: passed through as it is
        return Instance(data=data, x0=x0, variables=model.parameters)

    def reference(self, instance: Instance) -> Reference:
        d = dataset(instance.data["_nist"])
        return Reference(x=np.asarray(d.certified, dtype=np.float64), f=d.rss,
                         details={"dataset": d.name, "certified": "NIST StRD"})


@hookimpl
def register_problems(register):
    register(Nist())


@hookimpl
def register_suites(register):
    from optbench.suites import Entry, Suite

    files = dataset_files()
    entries = []
    for name, (_, nonlinear) in files.items():
        for start in ((1, 2) if nonlinear else (1,)):
            entries.append(Entry.of("nist", dataset=name, start=start))
    if entries:
        register(Suite("nist", f"NIST StRD regressions: {len(files)} datasets (linear from 0, "
                       "nonlinear from both NIST starts), f* the certified RSS", entries))
    else:
        register(Suite("nist", "NIST StRD regressions (unavailable here)", [],
                       unavailable=missing_reason()))
