"""NIST StRD nonlinear regression: optbench's least-squares solvers beside scipy's.

    python benchmarks/nist_nonlinear.py [--backends torch,autograd,jax,fd] [--methods lm,gn]
        [--datasets Misra1a,...] [--repeat 3] [--format table|json]

Each dataset of ../shared/data/nist-nonlinear (or $OPTBENCH_NIST_NONLINEAR_DIR) is fitted
from both of NIST's starts, in float64 with default options, by optbench's `lm` and `gn` on
each backend, and in the same run by scipy.optimize.least_squares: lm with its own
finite-difference Jacobian (MINPACK lmdif), lm with the exact Jacobian (lmder) and trf with
the exact Jacobian. scipy's exact Jacobian is taken by complex step in numpy (exact to
rounding, at numpy speed: n complex evaluations of the residuals).

LRE = NIST's log relative error of the parameters (digits of agreement with the certified
values, minimum over the parameters, capped at 11). The table counts fits with LRE >= 6
and >= 8, and the median time per fit in three columns, printed under the table too (TIMES):
"solve" is optbench's timed loop (record.time_s: every step, its Jacobians, residuals and
stopping tests, from x0 on the backend to the final x) and scipy's whole least_squares call
(its checks of the input, the solve, the result object); "set-up" is optbench's preparing
(record.setup_s: the backend's conversion of the data, jax's compilation, the method's
warm-up steps; 0 for scipy, whose set-up is the two numpy closures made before the clock);
"total" is the median of their sum per fit.

The problem here (`NistFit`) is a small adapter that builds the residuals lhs − rhs from the
dataset's equation in optbench's expression language, as the problem `model` does.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from optbench.core import Instance, Param, Problem
from optbench.expr import compile_expression

BACKENDS = ("torch", "autograd", "jax", "fd")
METHODS = ("lm", "gn")
SCIPY = ("scipy lm, finite-difference Jacobian", "scipy lm, exact Jacobian",
         "scipy trf, exact Jacobian")


def nist_dir() -> Path | None:
    """../shared/data/nist-nonlinear beside the checkout, or $OPTBENCH_NIST_NONLINEAR_DIR."""
    explicit = os.environ.get("OPTBENCH_NIST_NONLINEAR_DIR")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" /
                      "nist-nonlinear")
    return next((p for p in candidates if (p / "Misra1a.json").is_file()), None)


def datasets(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json"))


def load(folder: Path, name: str) -> dict[str, Any]:
    """The dataset's metadata, its columns (numpy) and its residual expression."""
    meta = json.loads((folder / f"{name}.json").read_text())
    path = folder / f"{name}.csv"
    header = [h.strip() for h in path.read_text().splitlines()[0].split(",")]
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    lhs, rhs = meta["equation"].split("=")
    residual = compile_expression(f"({lhs}) - ({rhs})", [*meta["parameters"], *header])
    columns = {h: np.ascontiguousarray(table[:, i]) for i, h in enumerate(header)}
    return {"meta": meta, "columns": columns, "residual": residual}


def lre(estimates: Any, certified: Any) -> float:
    """NIST's LRE, minimum over the values, capped at 11 (0 where not finite)."""
    out = 11.0
    for e, c in zip(estimates, certified, strict=True):
        if not math.isfinite(e):
            return 0.0
        err = abs(e - c) / abs(c) if c else abs(e)
        out = min(out, 11.0 if err == 0 else max(0.0, min(11.0, -math.log10(err))))
    return out


class NistFit(Problem):
    """-P dataset=NAME -P start=1|2: the sum of squared residuals lhs − rhs of the
    dataset's equation."""

    name = "nist-fit"
    description = "a NIST StRD nonlinear regression, residuals from its equation"
    has_residuals = True
    pointwise_residuals = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.params = (Param("dataset", "str", "Misra1a", "dataset name"),
                       Param("start", "int", 1, "NIST's start 1 or 2", low=1, high=2))
        self._loaded: dict[str, dict[str, Any]] = {}

    def fit(self, name: str) -> dict[str, Any]:
        if name not in self._loaded:
            self._loaded[name] = load(self.folder, name)
        return self._loaded[name]

    def variables(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(self.fit(params["dataset"])["meta"]["parameters"])

    def make(self, params: Mapping[str, Any], seed: int) -> Instance:
        fit = self.fit(params["dataset"])
        meta = fit["meta"]
        data: dict[str, Any] = dict(fit["columns"])
        data["_residual"] = fit["residual"]
        data["_k"] = len(meta["parameters"])
        data["_columns"] = tuple(fit["columns"])
        x0 = np.asarray(meta[f"start{params['start']}"], dtype=np.float64)
        return Instance(data=data, x0=x0, variables=tuple(meta["parameters"]))

    def residuals(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        values = [x[i] for i in range(data["_k"])] + [data[c] for c in data["_columns"]]
        return data["_residual"](values, xp)

    def objective(self, x: Any, data: Mapping[str, Any], xp: Any) -> Any:
        return xp.sum(xp.square(self.residuals(x, data, xp)))


def fit_optbench(problem: NistFit, name: str, start: int, backend: str, method: str,
                 **options: Any) -> dict[str, Any]:
    from optbench import api

    meta = problem.fit(name)["meta"]
    p = api.plan(problem, backend, method, problem_params={"dataset": name, "start": start},
                 dtype="float64", **options)
    record = api.execute(p, p.backends[0])
    return {"dataset": name, "start": start, "solver": f"optbench {method} on {backend}",
            "lre": lre(record.x, meta["certified"]),
            "rss_lre": lre([record.f if record.f is not None else math.nan],
                           [meta["certified_rss"]]),
            "status": record.status, "message": record.message, "steps": record.steps,
            "n_evals": record.n_evals, "time_s": record.time_s, "setup_s": record.setup_s,
            "total_s": record.time_s + record.setup_s, "x": record.x}


def _numpy_functions(fit: dict[str, Any]) -> tuple[Any, Any]:
    """r(b) and its Jacobian by complex step, in numpy."""
    residual, columns = fit["residual"], list(fit["columns"].values())
    k = len(fit["meta"]["parameters"])

    def fun(b: np.ndarray) -> np.ndarray:
        return np.asarray(residual([*b, *columns], np), dtype=np.float64)

    def jac(b: np.ndarray) -> np.ndarray:
        out = np.empty((columns[0].size, k))
        for j in range(k):
            z = b.astype(np.complex128)
            z[j] += 1e-20j
            out[:, j] = np.asarray(residual([*z, *columns], np)).imag / 1e-20
        return out

    return fun, jac


def fit_scipy(problem: NistFit, name: str, start: int, which: str) -> dict[str, Any]:
    from scipy.optimize import least_squares

    fit = problem.fit(name)
    meta = fit["meta"]
    fun, jac = _numpy_functions(fit)
    x0 = np.asarray(meta[f"start{start}"], dtype=np.float64)
    method = "trf" if "trf" in which else "lm"
    kwargs: dict[str, Any] = {"method": method}
    if "exact" in which:
        kwargs["jac"] = jac
    began = time.perf_counter()
    with np.errstate(all="ignore"):
        try:
            result = least_squares(fun, x0, **kwargs)
            x, ok, message, nfev = result.x, result.success, result.message, result.nfev
        except Exception as exc:  # a start where the model is not finite, ...
            x, ok, message, nfev = np.full_like(x0, np.nan), False, str(exc), 0
    spent = time.perf_counter() - began
    rss = float(np.sum(np.square(fun(x)))) if np.all(np.isfinite(x)) else math.nan
    return {"dataset": name, "start": start, "solver": which,
            "lre": lre(list(x), meta["certified"]), "rss_lre": lre([rss],
                                                                  [meta["certified_rss"]]),
            "status": "converged" if ok else "failed", "message": message, "steps": nfev,
            "n_evals": nfev, "time_s": spent, "setup_s": 0.0, "total_s": spent,
            "x": list(map(float, x))}


def fastest(run: Any, repeat: int) -> dict[str, Any]:
    """The fit run `repeat` times in a row, the row of its fastest run (timeit's rule: the
    minimum is the run least disturbed by the rest of the machine). Each solver gets the
    same treatment, so the first call's cold caches fall on none of them."""
    rows = [run() for _ in range(max(1, repeat))]
    return min(rows, key=lambda r: r["total_s"])


def run_all(folder: Path, names: list[str], backends: list[str], methods: list[str],
            scipy: bool = True, repeat: int = 1) -> list[dict[str, Any]]:
    problem = NistFit(folder)
    rows = []
    for name in names:
        for start in (1, 2):
            for backend in backends:
                for method in methods:
                    rows.append(fastest(functools.partial(
                        fit_optbench, problem, name, start, backend, method), repeat))
            if scipy:
                for which in SCIPY:
                    rows.append(fastest(functools.partial(
                        fit_scipy, problem, name, start, which), repeat))
    return rows


TIMES = ("Median over the fits of each fit's fastest of --repeat runs. solve: "
         "optbench's timed loop (record.time_s, x0 on the backend to the final x) / "
         "scipy's whole least_squares call. set-up: optbench's record.setup_s (data "
         "conversion, jax's compilation, warm-up steps); scipy has none. total: set-up + "
         "solve.")


def table(rows: list[dict[str, Any]]) -> str:
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    lines = ["| method | fits | LRE >= 6 | LRE >= 8 | RSS >= 8 digits | solve | set-up | "
             "total |", "|---|---|---|---|---|---|---|---|"]
    for solver in solvers:
        mine = [r for r in rows if r["solver"] == solver]

        def median_ms(key: str, mine: list[dict[str, Any]] = mine) -> str:
            return f"{statistics.median(r[key] for r in mine) * 1e3:.1f} ms"

        lines.append(f"| {solver} | {len(mine)} | {sum(r['lre'] >= 6 for r in mine)} | "
                     f"{sum(r['lre'] >= 8 for r in mine)} | "
                     f"{sum(r['rss_lre'] >= 8 for r in mine)} | {median_ms('time_s')} | "
                     f"{median_ms('setup_s')} | {median_ms('total_s')} |")
    return "\n".join(lines) + "\n\n" + TIMES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--datasets", default=None)
    parser.add_argument("--no-scipy", action="store_true")
    parser.add_argument("--details", action="store_true", help="one line per fit too")
    parser.add_argument("--repeat", type=int, default=3,
                        help="run each fit this many times and time the fastest run")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    folder = nist_dir()
    if folder is None:
        print("nist_nonlinear: ../shared/data/nist-nonlinear is not beside this checkout",
              file=sys.stderr)
        return 2
    names = args.datasets.split(",") if args.datasets else datasets(folder)
    rows = run_all(folder, names, args.backends.split(","), args.methods.split(","),
                   scipy=not args.no_scipy, repeat=args.repeat)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    print(table(rows))
    if args.details:
        for r in rows:
            print(f"{r['solver']:<40} {r['dataset']:<9} start{r['start']} LRE {r['lre']:5.1f}"
                  f" RSS {r['rss_lre']:5.1f} {r['status']:<9} steps {r['steps']:>4} "
                  f"{r['time_s'] * 1e3:7.1f} ms  {r['message'][:60]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
