"""The `optbench` commands (the entry point, `main`, is in optbench.cli.main).

Every command validates its input before it runs anything. Bad input — from click or from
optbench itself — ends as one line on stderr and exit status 2, never a traceback. A command's
result, its help and its version are written by `emit` (optbench.cli.streams), the one way to
stdout while a command runs.
"""

from __future__ import annotations

import json
import sys

import click

from optbench import __version__
from optbench.cli import campaigns, check, equations
from optbench.cli import fit as fitting
from optbench.cli import results as results_cli
from optbench.cli.options import FORMATS, RegistryName, parse_numbers
from optbench.cli.streams import emit


class Interrupted(Exception):
    """Ctrl-C, carried past click (which would print a blank line for it) to main()."""


def _show_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        emit(ctx.get_help())
        ctx.exit()


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        emit(f"optbench, version {__version__}")
        ctx.exit()


def _start_plugins(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
                   ) -> None:
    # The group's --plugins: every command starts afresh from these folders (and checks
    # OPTBENCH_PLUGINS_PATH's), before any name is looked up.
    from optbench import plugindirs

    plugindirs.configure(value)
    plugindirs.check_env()


def _more_plugins(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
                  ) -> None:
    # --plugins after the command name: eager, so loaded before its other options (the
    # names in --problem ...) are checked.
    if value:
        from optbench import plugindirs

        plugindirs.add(value)


PLUGINS_HELP = ("load every *.py file in DIR as a plugin module (repeatable); also "
                "OPTBENCH_PLUGINS_PATH")


def _with_help(command: click.Command) -> click.Command:
    # Our own -h/--help, written by emit: click's own writes to sys.stdout, which is stderr
    # while a command runs. Click drops its help option where a parameter takes the names.
    command.params.append(click.Option(
        ["-h", "--help"], is_flag=True, is_eager=True, expose_value=False,
        callback=_show_help, help="Show this message and exit."))
    if not isinstance(command, click.Group):
        command.params.append(click.Option(
            ["--plugins"], multiple=True, is_eager=True, expose_value=False,
            metavar="DIR", callback=_more_plugins, help=PLUGINS_HELP))
    return command


class OptbenchGroup(click.Group):
    """Every command gets a help written to stdout, and Ctrl-C reaches main() untouched."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _with_help(self)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(_with_help(cmd), name)

    def make_context(self, *args, **kwargs) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted from None

    def invoke(self, ctx: click.Context):
        # Subcommands parse their options here too (loading plugins, for names): all of it.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted from None


@click.group(cls=OptbenchGroup)
@click.option("--version", is_flag=True, is_eager=True, expose_value=False,
              callback=_show_version, help="Show the version and exit.")
@click.option("--plugins", multiple=True, is_eager=True, expose_value=False, metavar="DIR",
              callback=_start_plugins, help=PLUGINS_HELP)
def cli() -> None:
    """Solve and benchmark optimization problems on interchangeable autodiff backends."""


@cli.command()
@click.option("--problem", type=RegistryName("problem"), default="regression", show_default=True,
              help="what to minimize: regression, puzzle, expr, rosenbrock, quadratic, ... "
              "(`optbench list problems` lists them all, with their -P parameters)")
@click.option("--backend", type=RegistryName("backend", allow_all=True, many=True),
              default="torch", show_default=True,
              help="a backend, a comma-separated list, or 'all' for every available one")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda")
@click.option("--optimizer", type=RegistryName("optimizer", allow_all=True, many=True),
              default="nadam", show_default=True,
              help="an optimizer, a comma-separated list (nadam,lbfgs), or 'all'")
@click.option("--lr", type=float, default=None,
              help="learning rate [default: 0.01, the tutorial's; lbfgs: 1.0, torch's]")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True)
@click.option("-P", "problem_params", multiple=True, metavar="KEY=VALUE",
              help="problem parameter, e.g. -P degree=3 -P data=points.csv "
              "(`optbench list problems` shows each problem's)")
@click.option("-O", "optimizer_params", multiple=True, metavar="KEY=VALUE",
              help="optimizer hyperparameter, e.g. -O betas=0.9,0.999 "
              "(`optbench list optimizers` shows each optimizer's)")
@click.option("--x0", default=None, metavar="V1,V2,...", help="starting point [default: drawn "
              "from the seed]")
@click.option("--tol", type=float, default=None,
              help="stop when f - f* <= TOL where f* is known [default: "
              "1e-12*max(1,|f*|); 0 runs every step], else when the gradient norm <= TOL")
@click.option("--max-time", type=float, default=None, help="stop after this many seconds")
@click.option("--compile", "compile_", is_flag=True,
              help="compile the whole loop, on backends that can (compile time goes to setup)")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--advice/--no-advice", default=True, show_default=True,
              help="with the table: when a run ends far from a known optimum, try the same "
              "task with more steps, a larger lr and lbfgs, and say what each reached")
def run(problem, backend, device, optimizer, lr, steps, seed, dtype, problem_params,
        optimizer_params, x0, tol, max_time, compile_, fmt, advice):
    """Minimize a problem with an optimizer on one backend or on all of them.

    The defaults reproduce the tutorial: fit x²+2x+3 to 20 points with NAdam, lr 0.01,
    1000 steps.
    """
    from optbench import api
    from optbench.cli import output
    from optbench.core.params import parse_assignments

    plans = api.plan_many(problem, backend, optimizer,
                          problem_params=parse_assignments(problem_params, "-P"),
                          optimizer_params=parse_assignments(optimizer_params, "-O"),
                          lr=lr, steps=steps, seed=seed, dtype=dtype, device=device,
                          x0=parse_numbers("--x0", x0), tol=tol, max_time=max_time,
                          compile=compile_)
    for name, reason in plans[0].unavailable:
        click.echo(f"optbench: skipping backend {name}: {reason}", err=True)
    if compile_:  # a long compile must not look like a hang
        for b in plans[0].backends:
            note = b.compile_note(device)
            if note:
                click.echo(f"optbench: note: {b.name}: {note}", err=True)
    runs = []
    for plan in plans:
        for b in plan.backends:
            if fmt == "table":
                click.echo(f"optbench: running {b.name}, {plan.optimizer.name} ...", err=True)
            runs.append((plan, b, api.execute(plan, b)))
    records = [r for _, _, r in runs]
    if fmt == "json":
        emit(json.dumps([r.to_json() for r in records], indent=1))
    else:
        emit(output.run_table(plans, records))
        if advice and len(plans) == 1:  # with several optimizers, the table compares them
            _advise(runs)
    failed = [r for r in records if r.status == "error"]
    for r in failed:
        click.echo(f"optbench: {r.optimizer} on {r.backend} failed: {r.message}", err=True)
    if failed:
        sys.exit(1)


def _advise(runs) -> None:
    """One measured note, for the first backend whose run ended far from the optimum."""
    from optbench.advice import advise, is_far

    for plan, backend, record in runs:
        if is_far(record, plan):
            click.echo("optbench: measuring what would get there ...", err=True)
            click.echo(f"optbench: note: {advise(plan, record, backend)}", err=True)
            return


@cli.command("list")
@click.argument("kind", required=False,
                type=click.Choice(["backends", "problems", "optimizers", "suites"]))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def list_(kind, fmt):
    """List the backends, problems, optimizers and suites that plugins registered."""
    from optbench.cli import output
    from optbench.plugins import get_registry

    rows = output.list_rows(get_registry(), [kind[:-1]] if kind else None)
    if fmt == "json":
        emit(json.dumps(rows, indent=1))
    elif kind in ("problems", "optimizers"):  # asked for one kind: show what each takes
        emit(output.list_table(rows) + "\n" + output.params_table(rows))
    else:
        emit(output.list_table(rows) + "\n\n`optbench list problems` and `optbench list "
             "optimizers` show each one's parameters (-P, -O).")


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def plugins(fmt):
    """Show the loaded plugins, what each registered, and the errors of broken ones."""
    from optbench.cli import output
    from optbench.plugins import get_registry

    infos = get_registry().plugin_records()
    if fmt == "json":
        emit(json.dumps(infos, indent=1))
    else:
        emit(output.plugins_table(infos))


cli.add_command(equations.solve)
cli.add_command(campaigns.bench)
cli.add_command(campaigns.report)
cli.add_command(equations.grad)
cli.add_command(check.check)
cli.add_command(fitting.fit)
cli.add_command(results_cli.results)
for _sub in results_cli.results.commands.values():  # `optbench results export -h` too
    _with_help(_sub)

