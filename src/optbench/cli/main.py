"""`optbench` command line.

Every command validates its input before it runs anything. Bad input — from click or from
optbench itself — ends as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys

import click

from optbench import __version__
from optbench.cli import campaigns, check, equations
from optbench.cli.options import FORMATS, RegistryName, parse_numbers
from optbench.errors import UsageError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="optbench")
def cli() -> None:
    """Solve and benchmark optimization problems on interchangeable autodiff backends."""


@cli.command()
@click.option("--problem", type=RegistryName("problem"), default="regression", show_default=True)
@click.option("--backend", type=RegistryName("backend", allow_all=True), default="torch",
              show_default=True, help="a backend name, or 'all' for every available one")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda")
@click.option("--optimizer", type=RegistryName("optimizer"), default="nadam", show_default=True)
@click.option("--lr", type=float, default=None,
              help="learning rate [default: 0.01, the tutorial's; lbfgs: 1.0, torch's]")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True)
@click.option("-P", "problem_params", multiple=True, metavar="KEY=VALUE",
              help="problem parameter, e.g. -P degree=3 -P data=points.csv")
@click.option("-O", "optimizer_params", multiple=True, metavar="KEY=VALUE",
              help="optimizer hyperparameter, e.g. -O betas=0.9,0.999")
@click.option("--x0", default=None, metavar="V1,V2,...", help="starting point [default: drawn "
              "from the seed]")
@click.option("--tol", type=float, default=None,
              help="stop when f - f* <= TOL (f* known), else when the gradient norm <= TOL")
@click.option("--max-time", type=float, default=None, help="stop after this many seconds")
@click.option("--compile", "compile_", is_flag=True,
              help="compile the whole loop, on backends that can (compile time goes to setup)")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def run(problem, backend, device, optimizer, lr, steps, seed, dtype, problem_params,
        optimizer_params, x0, tol, max_time, compile_, fmt):
    """Minimize a problem with an optimizer on one backend or on all of them.

    The defaults reproduce the tutorial: fit x²+2x+3 to 20 points with NAdam, lr 0.01,
    1000 steps.
    """
    from optbench import api
    from optbench.cli import output
    from optbench.core.params import parse_assignments

    plan = api.plan(problem, backend, optimizer,
                    problem_params=parse_assignments(problem_params, "-P"),
                    optimizer_params=parse_assignments(optimizer_params, "-O"),
                    lr=lr, steps=steps, seed=seed, dtype=dtype, device=device,
                    x0=parse_numbers("--x0", x0), tol=tol, max_time=max_time,
                    compile=compile_)
    for name, reason in plan.unavailable:
        click.echo(f"optbench: skipping backend {name}: {reason}", err=True)
    records = []
    for b in plan.backends:
        if fmt == "table":
            click.echo(f"optbench: running {b.name} ...", err=True)
        records.append(api.execute(plan, b))
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in records], indent=1))
    else:
        click.echo(output.run_table(plan, records))
    failed = [r for r in records if r.status == "error"]
    for r in failed:
        click.echo(f"optbench: {r.backend} failed: {r.message}", err=True)
    if failed:
        sys.exit(1)


@cli.command("list")
@click.argument("kind", required=False,
                type=click.Choice(["backends", "problems", "optimizers"]))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def list_(kind, fmt):
    """List the backends, problems and optimizers that plugins registered."""
    from optbench.cli import output
    from optbench.plugins import get_registry

    rows = output.list_rows(get_registry(), [kind[:-1]] if kind else None)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    else:
        click.echo(output.list_table(rows))


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def plugins(fmt):
    """Show the loaded plugins, what each registered, and the errors of broken ones."""
    from optbench.cli import output
    from optbench.plugins import get_registry

    infos = [p.to_json() for p in get_registry().plugins]
    if fmt == "json":
        click.echo(json.dumps(infos, indent=1))
    else:
        click.echo(output.plugins_table(infos))


cli.add_command(equations.solve)
cli.add_command(campaigns.bench)
cli.add_command(campaigns.report)
cli.add_command(equations.grad)
cli.add_command(check.check)


def main(argv: list[str] | None = None) -> None:
    """Entry point: click in non-standalone mode, so every error ends as one line."""
    try:
        code = cli.main(args=argv, prog_name="optbench", standalone_mode=False)
    except click.exceptions.UsageError as exc:  # click's own: bad option, bad choice...
        fail(2, _one_line(exc.format_message()))
    except UsageError as exc:  # ParseError marks the offending place inline
        fail(2, exc.one_line() if hasattr(exc, "one_line") else _one_line(str(exc)))
    except click.exceptions.Abort:
        fail(130, "interrupted")
    except click.ClickException as exc:
        fail(exc.exit_code, _one_line(exc.format_message()))
    except Exception as exc:
        if os.environ.get("OPTBENCH_DEBUG"):
            raise
        fail(1, f"{type(exc).__name__}: {_one_line(str(exc))} (OPTBENCH_DEBUG=1 shows where)")
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def fail(code: int, message: str) -> None:
    click.echo(f"optbench: error: {message}", err=True)
    sys.exit(code)
