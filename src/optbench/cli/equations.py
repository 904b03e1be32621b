"""`optbench solve` and `optbench grad`: the tutorial's first and third tasks, for any text."""

from __future__ import annotations

import json

import click

from optbench.cli.options import FORMATS, RegistryName, parse_numbers
from optbench.cli.streams import emit


@click.command()
@click.argument("equations", nargs=-1)
@click.option("--file", "file", type=click.Path(dir_okay=False), default=None,
              help="a TOML file: equations = [...], variables = [...], x0 = [...]")
@click.option("--variables", default=None, metavar="A,B,...",
              help="the order of the unknowns [default: order of appearance]")
@click.option("--backend", type=RegistryName("backend", allow_all=True), default="torch",
              show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--optimizer", type=RegistryName("optimizer"), default="nadam", show_default=True)
@click.option("--lr", type=float, default=None,
              help="learning rate [default: 0.01, the tutorial's; lbfgs: 1.0]")
@click.option("--steps", type=int, default=10_000, show_default=True,
              help="step limit (runs stop earlier once --tol is met)")
@click.option("--tol", type=float, default=1e-20, show_default=True,
              help="stop when f - f* <= TOL (linear systems), else when |gradient| <= TOL")
@click.option("--max-time", type=float, default=None, help="stop after this many seconds")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True)
@click.option("-O", "optimizer_params", multiple=True, metavar="KEY=VALUE")
@click.option("--x0", default=None, metavar="V1,V2,...")
@click.option("--starts", type=int, default=1, show_default=True,
              help="random starts, run as one batch; reports the distinct solutions")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def solve(equations, file, variables, backend, device, optimizer, lr, steps, tol, max_time,
          seed, dtype, optimizer_params, x0, starts, fmt):
    """Solve equations by minimizing the sum of squared residuals.

    \b
      optbench solve "A + B = 9" "C - D = 1" "A + C = 8" "B - D = 2"
      optbench solve "x*y = 6" "x + y = 5" --starts 20
    """
    import sys

    from optbench.cli import output
    from optbench.core.params import parse_assignments
    from optbench.solving import solve_equations

    records = solve_equations(
        list(equations), file=file,
        variables=[v.strip() for v in variables.split(",")] if variables else None,
        backend=backend, optimizer=optimizer, starts=starts, steps=steps,
        x0=parse_numbers("--x0", x0), lr=lr, tol=tol, max_time=max_time, seed=seed,
        dtype=dtype, device=device,
        optimizer_params=parse_assignments(optimizer_params, "-O"))
    if fmt == "json":
        emit(json.dumps([r.to_json() for r in records], indent=1, allow_nan=False))
    else:
        emit(output.solve_report(records))
    if any(r.status == "error" for r in records):
        sys.exit(1)


@click.command()
@click.argument("expression")
@click.option("--at", "at", multiple=True, required=True, metavar="NAME=VALUE[,...]",
              help="the point, e.g. --at x=3.6 or --at x=1,y=2")
@click.option("--backend", type=RegistryName("backend", allow_all=True, many=True),
              default=None, help="a backend, a comma-separated list, or 'all' for every "
              "available one  [default: autograd (else torch) and fd, the quick answer]")
@click.option("--device", default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def grad(expression, at, backend, device, dtype, fmt):
    """Value and gradient of EXPRESSION at a point, on each backend.

    \b
      optbench grad "x*x" --at x=3.6
    """
    from optbench.cli import output
    from optbench.gradient import gradient, parse_point

    result = gradient(expression, parse_point(at), backend, dtype=dtype, device=device)
    for s in result.pop("skipped"):
        click.echo(f"optbench: skipping backend {s['backend']}: {s['reason']}", err=True)
    if fmt == "json":  # strict JSON: gradient() made non-finite numbers null
        emit(json.dumps(result, indent=1, allow_nan=False))
    else:
        emit(output.grad_table(result))
        for r in result["results"]:
            if r.get("message"):
                click.echo(f"optbench: note: {r['backend']}: {r['message']}", err=True)
