"""NIST StRD nonlinear least squares: how many fits each optimizer solves.

    python plugins/optbench-scipy/benchmarks/nist_nonlinear.py [--optimizer lbfgs,...]
        [--steps 10000] [--format table|json] [--datasets Misra1a,...]

Each dataset of ../shared/data/nist-nonlinear (or $OPTBENCH_NIST_NONLINEAR_DIR) from each of
NIST's two starts, on the torch backend in float64, minimizing the sum of squared residuals
with every stopping tolerance of the method set to zero (TIGHT): each run goes until the
method stops itself or reaches --steps. A fit is *solved* when LRE >= 4 (NIST's log relative
error, minimum over the parameters, capped at 11).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

OPTIMIZERS = ("lbfgs", "lbfgs-torch", "lbfgs-x", "scipy-bfgs", "scipy-bfgs-diagonal")
# name: (optimizer, hyperparameters); every tolerance zero: the method runs until it stops
# itself. lbfgs-torch stops where torch.optim.LBFGS would stay for good (the line search finds
# no decrease): the built-in lbfgs before it learned to restart in scaled variables; lbfgs-x
# works in variables scaled by |x0| from the first step.
TIGHT: dict[str, tuple[str, dict[str, Any]]] = {
    "lbfgs": ("lbfgs", {"tolerance_grad": 0, "tolerance_change": 0}),
    "lbfgs-torch": ("lbfgs", {"tolerance_grad": 0, "tolerance_change": 0,
                              "on_stall": "stop"}),
    "lbfgs-x": ("lbfgs", {"tolerance_grad": 0, "tolerance_change": 0, "scale": "x"}),
    "scipy-lbfgsb": ("scipy-lbfgsb", {"ftol": 0, "gtol": 0, "maxfun": 10**6}),
    "scipy-bfgs": ("scipy-bfgs", {"gtol": 0}),
    "scipy-bfgs-diagonal": ("scipy-bfgs", {"gtol": 0, "scale": "diagonal"}),
    "scipy-newton-cg": ("scipy-newton-cg", {"xtol": 0}),
    "scipy-trust-krylov": ("scipy-trust-krylov", {"gtol": 0}),
}
SOLVED = 4.0
STEPS = 10_000


def nist_dir() -> Path | None:
    explicit = os.environ.get("OPTBENCH_NIST_NONLINEAR_DIR")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(__file__).resolve().parents[4] / "shared" / "data" / "nist-nonlinear")
    return next((p for p in candidates if (p / "Misra1a.json").is_file()), None)


def datasets(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json"))


def lre(estimates: Any, certified: Any) -> float:
    """NIST's LRE, minimum over the parameters, capped at 11."""
    out = 11.0
    for e, c in zip(estimates, certified, strict=True):
        err = abs(e - c) / abs(c) if c else abs(e)
        out = min(out, 11.0 if err == 0 else max(0.0, min(11.0, -math.log10(err))))
    return 0.0 if not all(map(math.isfinite, estimates)) else out


def nist_problem(folder: Path) -> Any:
    """The problem `nist`, -P dataset=NAME -P start=1|2: sum of squared residuals."""
    from optbench.core import Instance, Param, Problem
    from optbench.expr import compile_expression

    class NistProblem(Problem):
        name = "nist"
        description = "a NIST StRD nonlinear least-squares fit"
        params = (Param("dataset", "str", "Misra1a", "dataset name"),
                  Param("start", "int", 1, "NIST's start 1 or 2", low=1, high=2))

        def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
            meta = json.loads((folder / f"{params['dataset']}.json").read_text())
            return tuple(meta["parameters"])

        def make(self, params: Mapping[str, Any], seed: int) -> Any:
            meta = json.loads((folder / f"{params['dataset']}.json").read_text())
            columns = [c for c in meta.get("columns", ["x", "y"]) if c != "y"]  # predictors
            table = np.loadtxt(folder / f"{params['dataset']}.csv", delimiter=",",
                               skiprows=1, ndmin=2)
            header = (folder / f"{params['dataset']}.csv").read_text().splitlines()[0]
            names = [h.strip() for h in header.split(",")]
            y = table[:, names.index("y")]
            if meta.get("response", "y") == "log(y)":
                y = np.log(y)
            model = compile_expression(meta["model"], [*meta["parameters"], *columns])
            data = {"y": y, "_model": model, "_k": len(meta["parameters"])}
            for c in columns:
                data[c] = table[:, names.index(c)]
            data["_columns"] = tuple(columns)
            x0 = np.asarray(meta[f"start{params['start']}"], dtype=np.float64)
            return Instance(data=data, x0=x0, variables=tuple(meta["parameters"]))

        def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
            k = data["_k"]
            args = [x[..., i] for i in range(k)] + [data[c] for c in data["_columns"]]
            return xp.sum(xp.square(data["y"] - data["_model"](args, xp)))

    return NistProblem()


def registry(folder: Path) -> Any:
    from optbench import hookimpl
    from optbench.plugins import Registry

    problem = nist_problem(folder)

    class Plugin:
        @hookimpl
        def register_problems(self, register: Any) -> None:
            register(problem)

    return Registry.load(extra=[("nist-nonlinear", Plugin())])


def run(reg: Any, folder: Path, name: str, start: int, optimizer: str, steps: int
        ) -> dict[str, Any]:
    from optbench import api

    meta = json.loads((folder / f"{name}.json").read_text())
    opt, hp = TIGHT[optimizer]
    p = api.plan("nist", "torch", opt, problem_params={"dataset": name, "start": start},
                 optimizer_params=hp, steps=steps, dtype="float64", registry=reg)
    record = api.execute(p, p.backends[0])
    return {"dataset": name, "start": start, "optimizer": optimizer,
            "lre": lre(record.x, meta["certified"]), "status": record.status,
            "message": record.message, "steps": record.steps, "f": record.f,
            "certified_rss": meta["certified_rss"], "grad_norm": record.grad_norm}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default=",".join(OPTIMIZERS),
                        help=f"comma-separated, of: {', '.join(TIGHT)}")
    parser.add_argument("--datasets", default=None)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    folder = nist_dir()
    if folder is None:
        print("nist_nonlinear: ../shared/data/nist-nonlinear is not beside this checkout",
              file=sys.stderr)
        return 2
    optimizers = [o.strip() for o in args.optimizer.split(",") if o.strip()]
    unknown = [o for o in optimizers if o not in TIGHT]
    if unknown:
        parser.error(f"--optimizer {unknown[0]} is not accepted: expected {', '.join(TIGHT)}")
    names = args.datasets.split(",") if args.datasets else datasets(folder)
    reg = registry(folder)
    rows = [run(reg, folder, n, s, o, args.steps) for o in optimizers for n in names
            for s in (1, 2)]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    for o in optimizers:
        mine = [r for r in rows if r["optimizer"] == o]
        solved = sum(r["lre"] >= SOLVED for r in mine)
        print(f"[{o}] solved {solved} of {len(mine)} (LRE >= {SOLVED:g})")
        for r in mine:
            print(f"  {r['dataset']:<9} start{r['start']}  LRE {r['lre']:5.1f}  "
                  f"{r['status']:<9} steps {r['steps']:>5}  f {r['f']:.6g} "
                  f"(certified {r['certified_rss']:.6g})  {r['message'][:70]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
