"""`optbench results export`: a results file as Parquet or CSV, for pandas, Arrow, spreadsheets."""

from __future__ import annotations

import click


@click.group()
def results():
    """Work with results files (JSON Lines of `optbench bench`)."""


@results.command()
@click.argument("results_file", metavar="RESULTS", type=click.Path(dir_okay=False))
@click.option("--to", "fmt", required=True, type=click.Choice(["parquet", "csv"]),
              help="the format to write")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False),
              help="the file to write (default: RESULTS with the format's suffix)")
def export(results_file, fmt, output):
    """Write a results file as a table: one row per run, parameters, host and code as
    columns (`problem.n_samples`, `optimizer.lr`, `host.cpu`, `code.revision`).

    \b
      optbench results export results.jsonl --to parquet     # results.parquet
      optbench results export results.jsonl --to csv -o runs.csv
    """
    import os

    from optbench.errors import UsageError
    from optbench.results import ResultsStore
    from optbench.results.export import export as write

    if not os.path.lexists(results_file):
        raise UsageError(f"{results_file}: no such results file")
    if output is None:
        stem, suffix = os.path.splitext(results_file)
        output = (stem if suffix else results_file) + "." + fmt
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UsageError(f"--output {output}: directory {folder} does not exist")
    if os.path.isdir(output) or (os.path.lexists(output) and not os.path.isfile(output)):
        raise UsageError(f"--output {output} is not a regular file; expected a file to write")
    if os.path.exists(output) and os.path.samefile(output, results_file):
        raise UsageError(f"--output {output} is the results file itself; choose another file")
    warnings: list[str] = []
    records = ResultsStore(results_file, on_warning=warnings.append).records()
    if not records:  # one line: what was wrong with the file, if anything
        why = f" ({warnings[0]})" if warnings else ""
        raise UsageError(f"{results_file} holds no run records{why}")
    for message in warnings:
        click.echo(f"optbench: warning: {message}", err=True)
    write(records, fmt, output)
    click.echo(f"optbench: wrote {len(records)} runs to {output}", err=True)
