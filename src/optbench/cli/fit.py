"""`optbench fit EQUATION --data FILE.csv`: fit a model to data, with its statistics.

Options may come from `--file fit.toml` (the same keys: equation, data, parameters, x0,
sigma, method, backend, dtype, tol, steps, seed, format, plot); options on the command
line win over the file's. A relative `data` or `plot` in the file is relative to the file.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from optbench.cli.options import FORMATS, RegistryName
from optbench.cli.streams import emit
from optbench.errors import UsageError
from optbench.fitting import DEFAULT_METHOD, DEFAULT_STEPS
from optbench.userfiles import check_output_file

FILE_KEYS = ("equation", "data", "parameters", "x0", "sigma", "method", "backend", "dtype",
             "tol", "steps", "seed", "format", "plot")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _from_file(path: str) -> dict[str, Any]:
    from optbench.problems.expression import read_toml

    content = read_toml(path, FILE_KEYS)
    where = os.path.dirname(os.path.abspath(path))
    for key in ("data", "plot"):
        value = content.get(key)
        if isinstance(value, str) and not os.path.isabs(value):
            content[key] = os.path.join(where, value)
    for key in ("parameters", "backend"):  # a list in TOML, a comma-separated text here
        value = content.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            content[key] = ",".join(value)
    x0 = content.get("x0")
    if isinstance(x0, dict):  # x0 = {b1 = 500, b2 = 1e-4}
        content["x0"] = x0
    elif isinstance(x0, str):
        from optbench.fitting.run import parse_x0

        content["x0"] = parse_x0(x0)
    elif x0 is not None:
        raise UsageError(f"{path}: x0 must be a table of parameter values, e.g. "
                         "x0 = {b1 = 500, b2 = 1e-4}, or text \"b1=500,b2=1e-4\"")
    for key in FILE_KEYS:
        value = content.get(key)
        kind, words = _FILE_TYPES.get(key, (str, "text"))
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise UsageError(f"{path}: {key} = {value!r:.60} is not accepted: expected {words}")
    return content


_FILE_TYPES: dict[str, tuple[Any, str]] = {
    "tol": ((int, float), "a number"), "steps": (int, "an integer"),
    "seed": (int, "an integer"), "x0": (dict, "a table of parameter values")}


def _check_plot(path: str | None) -> None:
    """Refuse a plot that could not be written before anything runs."""
    if path is not None:
        check_output_file(path, "--plot", PLOT_SUFFIXES)


def _check_name(kind: str, value: str | None, many: bool = False) -> Any:
    """A name given in the file, checked as the command line checks it."""
    if value is None:
        return None
    try:
        return RegistryName(kind, allow_all=many, many=many).convert(value, None, None)
    except click.exceptions.BadParameter as exc:
        raise UsageError(f"{kind} {exc.message}") from None


@click.command()
@click.argument("equation", required=False)
@click.option("--data", default=None, metavar="FILE.csv",
              help="the data: a CSV file whose first row names its columns")
@click.option("--parameters", default=None, metavar="b1,b2,...",
              help="the order of the parameters [default: natural order, b1, b2, ..., b10]")
@click.option("--x0", default=None, metavar="b1=V,b2=V,...",
              help="the start [default: drawn from the seed, uniform in 0.5..1.5]")
@click.option("--sigma", default=None, metavar="COLUMN",
              help="a column of standard deviations: residuals divided by it (weights 1/σ²)")
@click.option("--method", type=RegistryName("optimizer"), default=None,
              help=f"the optimizer [default: {DEFAULT_METHOD}]")
@click.option("--backend", type=RegistryName("backend", allow_all=True, many=True),
              default=None, help="a backend, a comma-separated list, or 'all' "
              "[default: torch]")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default=None,
              help="[default: float64]")
@click.option("--tol", type=float, default=None, help="the optimizer's stop tolerance on the "
              "gradient norm [default: its own test]")
@click.option("--steps", type=int, default=None,
              help=f"at most this many steps [default: {DEFAULT_STEPS}]")
@click.option("--seed", type=int, default=None, help="draws the start [default: 0]")
@click.option("--format", "fmt", type=FORMATS, default=None, help="table or json "
              "[default: table]")
@click.option("--plot", default=None, metavar="FILE.png",
              help="draw the data, the fitted curve and the residuals (png, pdf, svg)")
@click.option("--group", default=None, metavar="COLUMN",
              help="one fit per value of this column, all run as one batch (lm); with a "
              ".npz of (fits, points) arrays, an array of one key per fit")
@click.option("--output", default=None, metavar="FITS.jsonl",
              help="with --group: one row per fit, as JSON Lines (.jsonl) or Parquet "
              "(.parquet)")
@click.option("--chunk", type=int, default=None, metavar="N",
              help="with --group: at most N fits at once [default: from the memory]")
@click.option("--file", "file_", default=None, metavar="fit.toml",
              help="options from a TOML file, same keys (equation, data, x0 = {b1 = 500})")
def fit(equation, data, parameters, x0, sigma, method, backend, dtype, tol, steps, seed,
        fmt, plot, group, output, chunk, file_):
    """Fit a model to data: EQUATION relates columns of the data and parameters.

    \b
      optbench fit "y = b1*(1-exp(-b2*x))" --data points.csv --x0 b1=500,b2=1e-4

    Names that are columns of the CSV (its header) are data; every other name is a
    parameter. Prints each parameter's estimate and standard error, the residual sum of
    squares, the residual standard deviation and R².
    """
    from optbench.fitting.run import parse_x0, plan_fit, run_fit

    given = {"equation": equation, "data": data, "parameters": parameters,
             "x0": parse_x0(x0), "sigma": sigma, "method": method,
             "backend": ",".join(backend) if backend else None, "dtype": dtype, "tol": tol,
             "steps": steps, "seed": seed, "format": fmt, "plot": plot}
    options = _from_file(file_) if file_ is not None else {}
    options.update({k: v for k, v in given.items() if v is not None})
    if options.get("equation") is None:
        raise UsageError("fit needs an equation, e.g. optbench fit \"y = b1*(1-exp(-b2*x))\" "
                         "--data points.csv")
    if options.get("data") is None:
        raise UsageError("fit needs --data FILE.csv (a CSV file whose first row names its "
                         "columns)")
    fmt = options.get("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"format={fmt!r} is not accepted: expected table or json")
    if options.get("dtype", "float64") not in ("float64", "float32"):
        raise UsageError(f"dtype={options['dtype']!r} is not accepted: expected float64 or "
                         "float32")
    _check_plot(options.get("plot"))
    steps = options.get("steps")
    if steps is not None and steps < 1:
        raise UsageError(f"--steps {steps} is not accepted: expected an integer >= 1")
    # A .npz holds arrays of shape (fits, points): many fits, whether or not it has keys.
    many = str(options["data"]).lower().endswith(".npz")
    if many or group is not None or output is not None or chunk is not None:
        return _fit_groups(options, group, output, chunk, fmt)
    fp = plan_fit(options["equation"], options["data"], options.get("x0"),
                  parameters=options.get("parameters"), sigma=options.get("sigma"),
                  method=_check_name("optimizer", options.get("method")) or DEFAULT_METHOD,
                  backend=_check_name("backend", options.get("backend") or "torch", True),
                  dtype=options.get("dtype", "float64"), tol=options.get("tol"),
                  steps=steps, seed=options.get("seed", 0))
    for name, reason in fp.plan.unavailable:
        click.echo(f"optbench: skipping backend {name}: {reason}", err=True)
    records = []
    for b in fp.plan.backends:
        if fmt == "table":
            click.echo(f"optbench: fitting on {b.name} with {fp.plan.optimizer.name} ...",
                       err=True)
        records.append(run_fit(fp, b))
    if options.get("plot") is not None:
        from optbench.fitting.plot import plot_fit

        drawn = next((r for r in records if r.fit is not None), None)
        if drawn is not None:
            plot_fit(fp, drawn, options["plot"])
            click.echo(f"optbench: wrote {options['plot']}", err=True)
    if fmt == "json":
        emit(json.dumps([r.to_json() for r in records], indent=1))
    else:
        from optbench.cli.fit_output import fit_table

        emit(fit_table(fp, records))
    failed = [r for r in records if r.status == "error"]
    for r in failed:
        click.echo(f"optbench: the fit on {r.backend} failed: {r.message}", err=True)
    if failed:
        sys.exit(1)


def _fit_groups(options: dict[str, Any], group: str | None, output: str | None,
                chunk: int | None, fmt: str) -> None:
    """--group: one fit per group, as one batched solve per chunk (optbench.fitting.batch)."""
    from optbench.cli.fit_batch_output import check_output, summary_table, write_rows
    from optbench.fitting.batch import plan_batch, run_batch

    if group is None and not str(options["data"]).lower().endswith(".npz"):
        raise UsageError("--output and --chunk go with --group COLUMN (one fit per group)")
    if options.get("plot") is not None:
        raise UsageError("--plot draws one fit; it does not go with --group")
    if chunk is not None and chunk < 1:
        raise UsageError(f"--chunk {chunk} is not accepted: expected an integer >= 1")
    check_output(output)
    bp = plan_batch(options["equation"], options["data"], group, options.get("x0"),
                    parameters=options.get("parameters"), sigma=options.get("sigma"),
                    method=_check_name("optimizer", options.get("method")) or DEFAULT_METHOD,
                    backend=options.get("backend") or "torch",
                    dtype=options.get("dtype", "float64"), tol=options.get("tol"),
                    steps=options.get("steps"), seed=options.get("seed", 0), chunk=chunk)
    bar = None
    if fmt == "table" and sys.stderr.isatty():  # as bench's progress: a terminal only
        from tqdm import tqdm

        bar = tqdm(total=bp.grouped.n_fits, file=sys.stderr, unit="fit", dynamic_ncols=True)
    try:
        result = run_batch(bp, bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    if output is not None:
        write_rows(output, result.rows())
    if fmt == "json":
        emit(json.dumps(result.records(), indent=1))
    else:
        emit(summary_table(result, bp.grouped.source))
    if output is not None:
        click.echo(f"optbench: wrote {len(result)} fits to {output}", err=True)
