"""NIST StRD accuracy of the scipy optimizers, beside numpy.polyfit's.

    python plugins/optbench-scipy/benchmarks/nist_accuracy.py [--steps 10000]
        [--config plain,native-hvp,diagonal] [--backend torch] [--format table|json]

Digits are NIST's log relative error, LRE = -log10(|estimate - certified| / |certified|),
capped at 15, minimum over the coefficients (as benchmarks/bench_accuracy.py computes it), for
the polynomial datasets of ../shared/data/nist (or $OPTBENCH_NIST_DIR). Each scipy run is

    optbench run --problem regression -P data=<Name>.csv -P degree=<from the json>
                 --optimizer scipy-... -O <TIGHT tolerances> --tol 0 --steps 10000 --backend torch

from optbench's seeded x0, in float64. The tolerances are set to zero (TIGHT): each method
runs until scipy itself can make no more progress (a line search that finds no decrease,
"precision loss"; a trust region that cannot predict one), since scipy's defaults (gtol
1e-5 on the gradient of a *mean* squared error) stop far from the certified values.

Configurations:
  plain       the plugin as it ships, on a backend without a native hvp (torch today):
              Newton-CG and trust-krylov take Hessian-vector products by finite differences
              of the gradient.
  native-hvp  the same with an exact hvp attached to the torch objective (double backward:
              what optbench's torch backend would give by implementing Objective.hvp).
  diagonal    native-hvp plus -O scale=diagonal (Jacobi scaling from n hvps at x0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = ("Norris", "Pontius", "Filip", "Wampler1", "Wampler2", "Wampler3", "Wampler4",
            "Wampler5")
OPTIMIZERS = ("scipy-lbfgsb", "scipy-bfgs", "scipy-cg", "scipy-newton-cg",
              "scipy-trust-krylov")
TIGHT: dict[str, dict[str, Any]] = {
    "scipy-lbfgsb": {"ftol": 0, "gtol": 0, "maxfun": 10**6},
    "scipy-bfgs": {"gtol": 0},
    "scipy-cg": {"gtol": 0},
    "scipy-newton-cg": {"xtol": 0},
    "scipy-trust-krylov": {"gtol": 0},
}
# name: (extra hyperparameters, attach a native hvp to torch objectives)
CONFIGS: dict[str, tuple[dict[str, Any], bool]] = {
    "plain": ({}, False),
    "native-hvp": ({}, True),
    "diagonal": ({"scale": "diagonal"}, True),
}
STEPS = 10_000


def nist_dir() -> Path | None:
    """../shared/data/nist beside the checkout (or $OPTBENCH_NIST_DIR), if present."""
    explicit = os.environ.get("OPTBENCH_NIST_DIR")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(__file__).resolve().parents[4] / "shared" / "data" / "nist")
    return next((p for p in candidates if (p / "Norris.csv").is_file()), None)


def lre(estimate: float, certified: Decimal) -> float:
    if certified == 0:
        return min(15.0, -math.log10(abs(estimate))) if estimate else 15.0
    error = abs(Decimal(repr(float(estimate))) - certified) / abs(certified)
    return 15.0 if error == 0 else max(0.0, min(15.0, -float(error.log10())))


def digits(highest_first: list[float], certified: list[Decimal]) -> float:
    """LRE, minimum over the coefficients; estimates highest power first (optbench's and
    polyfit's order), certified B0 (the constant) first (NIST's)."""
    return min(lre(e, c) for e, c in zip(reversed(highest_first), certified, strict=True))


def dataset(name: str, folder: Path) -> tuple[Path, int, list[Decimal]]:
    meta = json.loads((folder / f"{name}.json").read_text())
    return (folder / f"{name}.csv", int(meta["degree"]),
            [Decimal(c["estimate"]) for c in meta["certified"]])


def polyfit_digits(name: str, folder: Path) -> float:
    csv, degree, certified = dataset(name, folder)
    points = np.loadtxt(csv, delimiter=",", skiprows=1)
    return digits(list(np.polyfit(points[:, 0], points[:, 1], degree)), certified)


def torch_hvp(problem: Any, objective: Any) -> Any:
    """H(x)·v by double backward through the problem's objective (torch arrays)."""
    import torch

    def hvp(x: Any, v: Any) -> Any:
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            f = problem.objective(leaf, objective.data, torch)
            (g,) = torch.autograd.grad(f, leaf, create_graph=True)
            (hv,) = torch.autograd.grad(g, leaf, grad_outputs=v)
        return hv.detach()

    return hvp


@contextlib.contextmanager
def native_torch_hvp(enabled: bool = True) -> Iterator[None]:
    """While open, torch objectives carry an `hvp` (the plugin then uses it)."""
    if not enabled:
        yield
        return
    from optbench.backends.pytorch import TorchBackend

    original = TorchBackend.prepare

    def prepare(self, problem, data, *, dtype, device):
        objective = original(self, problem, data, dtype=dtype, device=device)
        objective.hvp = torch_hvp(problem, objective)
        return objective

    TorchBackend.prepare = prepare
    try:
        yield
    finally:
        TorchBackend.prepare = original


@contextlib.contextmanager
def reordered(csv: Path, order: int) -> Iterator[Path]:
    """The data file with its rows in another order (order > 0: a seeded permutation; 0:
    as it is). The fit is the same; every sum over the rows rounds differently, as it does
    on another CPU, whose BLAS and vector width sum in another order."""
    if order == 0:
        yield csv
        return
    import tempfile

    header, *rows = csv.read_text().splitlines()
    rows = [rows[i] for i in np.random.default_rng(order).permutation(len(rows))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / csv.name
        path.write_text("\n".join([header, *rows]) + "\n")
        yield path


def scipy_run(name: str, folder: Path, optimizer: str, config: str = "plain",
              steps: int = STEPS, backend: str = "torch", order: int = 0
              ) -> tuple[float, Any]:
    """(digits, run record) of one scipy optimizer on one dataset (its rows in `order`)."""
    import optbench

    csv, degree, certified = dataset(name, folder)
    extra, native = CONFIGS[config]
    with native_torch_hvp(native and backend == "torch"), reordered(csv, order) as data:
        record = optbench.solve(problem="regression", backend=backend, optimizer=optimizer,
                                dtype="float64", steps=steps, tol=0,  # to its own stop
                                problem_params={"data": str(data), "degree": degree},
                                optimizer_params={**TIGHT[optimizer], **extra})
    return digits(record.x, certified), record


def table(folder: Path, configs: list[str], steps: int, backend: str, orders: int = 1
          ) -> list[dict[str, Any]]:
    """Digits of each method on each dataset: the least over `orders` orders of the rows
    (order 0 is the file's), with the spread."""
    rows = []
    for name in DATASETS:
        row: dict[str, Any] = {"dataset": name, "polyfit": polyfit_digits(name, folder)}
        for config in configs:
            for opt in OPTIMIZERS:
                runs = [scipy_run(name, folder, opt, config, steps, backend, order)
                        for order in range(orders)]
                d, record = runs[0]
                got = [r[0] for r in runs]
                row[f"{config}/{opt}"] = {"digits": min(got), "max": max(got),
                                          "in_file_order": d, "status": record.status,
                                          "steps": record.steps, "n_evals": record.n_evals}
        rows.append(row)
    return rows


def show(rows: list[dict[str, Any]], configs: list[str], steps: int, backend: str) -> str:
    short = [o.removeprefix("scipy-") for o in OPTIMIZERS]
    lines = [f"LRE digits (min over coefficients); backend {backend}, float64, at most "
             f"{steps} iterations; tolerances: " +
             "; ".join(f"{o.removeprefix('scipy-')} " +
                       ",".join(f"{k}={v}" for k, v in TIGHT[o].items()) for o in OPTIMIZERS)]
    for config in configs:
        lines += ["", f"[{config}]",
                  f"{'dataset':<10}{'polyfit':>8}" + "".join(f"{s:>14}" for s in short)]
        for row in rows:
            cells = [_cell(row[f"{config}/{o}"]) for o in OPTIMIZERS]
            lines.append(f"{row['dataset']:<10}{row['polyfit']:>8.1f}" + "".join(cells))
    return "\n".join(lines)


def _cell(result: dict[str, Any]) -> str:
    if result["max"] == result["digits"]:
        return f"{result['digits']:>14.1f}"
    return f"{result['digits']:.1f}-{result['max']:.1f}".rjust(14)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--config", default=",".join(CONFIGS),
                        help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--orders", type=int, default=1,
                        help="run each fit with its rows in this many orders (the file's and "
                             "seeded permutations) and report the least digits (and the most)")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.config.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"--config {unknown[0]} is not accepted: expected {', '.join(CONFIGS)}")
    folder = nist_dir()
    if folder is None:
        print("nist_accuracy: ../shared/data/nist is not beside this checkout (set "
              "OPTBENCH_NIST_DIR)", file=sys.stderr)
        return 2
    rows = table(folder, configs, args.steps, args.backend, max(1, args.orders))
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(show(rows, configs, args.steps, args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
