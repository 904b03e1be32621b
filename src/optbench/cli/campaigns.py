"""`optbench bench` and `optbench report`: campaigns over grids, and what they found."""

from __future__ import annotations

import signal
import sys

import click
from click.core import ParameterSource

AXES = ("problem", "suite", "backend", "optimizer", "lr", "problem_params",
        "optimizer_params", "seeds", "dtype", "device", "steps", "tol", "max_time")


@click.command()
@click.argument("campaign_file", required=False, type=click.Path(dir_okay=False))
@click.option("--problem", default="regression", show_default=True,
              help="comma-separated problems")
@click.option("--suite", default=None, metavar="NAME",
              help="run the problem instances of a suite instead (`optbench list suites`); "
                   "-P then overrides an entry's value, e.g. -P start=1")
@click.option("--backend", default="all", show_default=True, help="comma-separated, or all")
@click.option("--optimizer", default="nadam", show_default=True,
              help="comma-separated optimizers")
@click.option("--lr", default=None, help="comma-separated learning rates")
@click.option("-P", "problem_params", multiple=True, metavar="KEY=V1,V2",
              help="problem parameter alternatives, e.g. -P n_samples=20,1000")
@click.option("-O", "optimizer_params", multiple=True, metavar="[OPTIMIZER:]KEY=V1,V2",
              help="hyperparameter alternatives, for every optimizer that has KEY, or for "
                   "OPTIMIZER only (-O nadam:lr=0.1,0.01 replaces --lr for nadam); ';' "
                   "between list values: betas=0.9,0.99;0.8,0.9")
@click.option("--seeds", type=int, default=1, show_default=True, help="seeds 0..N-1")
@click.option("--dtype", default="float64", show_default=True, help="comma-separated")
@click.option("--device", default="cpu", show_default=True, help="comma-separated")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--tol", type=float, default=None)
@click.option("--max-time", type=float, default=None)
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False),
              help="results file (JSON Lines), appended to; required, except with --dry-run")
@click.option("--resume", is_flag=True,
              help="skip runs whose records are already there, run by the same code "
                   "(optbench's version and git revision)")
@click.option("--resume-any-version", "any_version", is_flag=True,
              help="as --resume, whatever code ran the recorded runs")
@click.option("--dry-run", is_flag=True,
              help="validate the campaign and print its plan (how many runs, the first "
                   "few; with --resume how many are done); run nothing, write nothing")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="the --dry-run plan as text or as one JSON object")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--workers", type=int, default=None,
              help="run on N local worker processes (Dask), one run at a time each")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="submit the runs to a running Dask scheduler")
@click.pass_context
def bench(ctx, campaign_file, problem, suite, backend, optimizer, lr, problem_params,
          optimizer_params, seeds, dtype, device, steps, tol, max_time, output, resume,
          any_version, dry_run, fmt, quiet, workers, scheduler):
    """Run the cartesian product of a grid (or a TOML campaign file) into a results file.

    \b
      optbench bench --problem regression,puzzle,rosenbrock --backend all \\
          --optimizer nadam,adam,lbfgs --seeds 3 --output results.jsonl
      optbench bench --optimizer nadam,lbfgs -O nadam:lr=0.1,0.01 \\
          -O lbfgs:history_size=10,50 --dry-run
      optbench bench --suite mgh -P start=1 --backend torch \\
          --optimizer lbfgs,nadam,lm --output mgh.jsonl
    """
    from optbench import plugindirs
    from optbench.bench import campaign as cmp
    from optbench.bench import executors
    from optbench.bench.execute import progress_bar, run_campaign
    from optbench.errors import UsageError
    from optbench.results import ResultsError, ResultsStore

    resume = resume or any_version
    if workers is not None and scheduler is not None:
        raise UsageError("--workers and --scheduler exclude each other: the scheduler's "
                         "workers run the campaign")
    if workers is not None and not 1 <= workers <= 1024:
        raise UsageError(f"--workers {workers} is not accepted: expected 1 to 1024")
    if output is None and not dry_run:
        raise UsageError("--output is required: the results file (JSON Lines) to append "
                         "to; or --dry-run, to see the plan only")
    if fmt == "json" and not dry_run:
        raise UsageError("--format json is accepted with --dry-run only: a campaign writes "
                         "its records to --output")
    if resume and output is None:
        raise UsageError("--resume needs --output: the results file to complete")
    given = [a for a in AXES if ctx.get_parameter_source(a) is not ParameterSource.DEFAULT]
    if campaign_file is not None:
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')}: give the axes in "
                             f"{campaign_file} or on the command line, not both")
        campaigns = cmp.read_campaigns(campaign_file)
    else:
        if seeds < 1:
            raise UsageError(f"--seeds {seeds} is not accepted: expected an integer >= 1")
        if suite is not None and "problem" in given:
            raise UsageError("--suite and --problem exclude each other: a suite names its "
                             "own problems")
        flat, scoped = cmp.optimizer_assignments(optimizer_params, "-O")
        campaigns = [cmp.Campaign(
            problems=cmp.split_names(problem, "--problem") if suite is None else [],
            suite=suite,
            backends=cmp.split_names(backend, "--backend"),
            optimizers=cmp.split_names(optimizer, "--optimizer"),
            seeds=range(seeds),  # never a list: the grid bounds its size first
            lrs=cmp.split_numbers(lr, "--lr") if lr is not None else [None],
            dtypes=cmp.split_names(dtype, "--dtype"),
            devices=cmp.split_names(device, "--device"),
            problem_params=cmp.grid_assignments(problem_params, "-P"),
            optimizer_params=flat, per_optimizer=scoped,
            steps=steps, tol=tol, max_time=max_time)]
    # The campaign's folders join those of --plugins; the runs carry them all, so that
    # Dask workers load what this process loaded.
    plugindirs.add(campaigns[0].plugin_dirs)
    for c in campaigns:
        c.plugin_dirs = plugindirs.plugin_dirs()
    specs, skipped = cmp.expand_all(campaigns)
    notes = list(dict.fromkeys(n for c in campaigns for n in cmp.notes(c)))
    if dry_run:
        _dry_run(specs, skipped, notes, output, resume, fmt, workers, scheduler, any_version)
        return
    if getattr(signal, "SIGXFSZ", None) and signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL:
        # A file-size limit (ulimit -f) must fail the write, which the store rolls back, not
        # kill the campaign mid-line. (CPython ignores SIGXFSZ already; an embedder may not.)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    store = ResultsStore(output, on_warning=_warn)
    # Held until the campaign ends: refused before any run when the file is not a regular
    # file we can write, not a results file, or held by another campaign.
    with store.writing() as present:
        _check_present(present, output, resume)
        for note in notes:
            click.echo(f"optbench: note: {note}", err=True)
        for name, reason in skipped:
            click.echo(f"optbench: skipping backend {name}: {reason}", err=True)
        executor = None
        if workers is not None or scheduler is not None:
            executors.require_dask()
            try:
                executor = executors.Dask(scheduler=scheduler, workers=workers)
            except ConnectionError as exc:
                click.echo(f"optbench: error: {exc}", err=True)
                sys.exit(1)
        try:
            # The grids of a union share their plugin folders, all the runs need of it.
            outcome = run_campaign(specs, campaigns[0], store, resume=resume,
                                   any_version=any_version,
                                   progress=progress_bar(quiet), executor=executor)
        except ResultsError as exc:  # a full disk, say: that record was rolled back
            click.echo(f"optbench: error: {exc} ({store.appended} runs written before it)",
                       err=True)
            sys.exit(1)
    summary = (f"{outcome.written} runs written to {output}"
               + (f", {outcome.already} already there" if outcome.already else "")
               + (f", {outcome.errors} failed (status error)" if outcome.errors else "")
               + (f", {outcome.other_code} run again because other code ran their records "
                  "(--resume-any-version keeps such records)" if outcome.other_code else ""))
    if outcome.interrupted:
        click.echo(f"optbench: interrupted: {summary}; every record in it is whole; rerun "
                   "with --resume to finish", err=True)
        sys.exit(130)
    if outcome.lost:  # lost to the infrastructure: not recorded, so --resume runs them
        click.echo(f"optbench: error: {summary}; {outcome.lost} runs were not run (lost to "
                   f"the infrastructure: {'; '.join(outcome.lost_reasons)}): rerun with "
                   "--resume to complete them", err=True)
        sys.exit(1)
    click.echo(f"optbench: {summary}", err=True)
    if outcome.errors:
        sys.exit(1)


def _warn(message: str) -> None:
    click.echo(f"optbench: warning: {message}", err=True)


def _check_present(present: list, output: str, resume: bool) -> None:
    from optbench.errors import UsageError

    if present and not resume:
        raise UsageError(f"--output {output} already holds {len(present)} records: add "
                         "--resume to complete that campaign, or choose another file")


def _dry_run(specs, skipped, notes, output, resume, fmt, workers, scheduler,
             any_version=False) -> None:
    """The plan, checked as a real campaign checks it before its first run (the results
    file included, read but not created, locked or changed); nothing is run."""
    import json

    from optbench.bench import dryrun, executors
    from optbench.cli.streams import emit
    from optbench.results import ResultsStore, run_key

    done: set[str] = set()
    if output is not None:
        present = ResultsStore(output, on_warning=_warn).inspect()
        _check_present(present, output, resume)
        done = {run_key(r, any_version) for r in present}
    if workers is not None or scheduler is not None:
        executors.require_dask()  # the scheduler is not contacted: that would start work
        if scheduler is not None:
            executors.check_address(scheduler)
    plan = dryrun.plan(specs, done, output, skipped, notes, any_version)
    if fmt == "json":
        emit(json.dumps(dryrun.as_json(plan), indent=1))
    else:
        emit(dryrun.as_text(plan, resume))


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--target", type=float, default=1e-8, show_default=True,
              help="a run reaches the target when f - f* <= TARGET*max(1,|f*|)")
@click.option("--by", type=click.Choice(["host", "campaign", "version", "source", "dtype",
                                         "device"]), default=None,
              help="group the summary further: by host, campaign, code version, results "
                   "file (source; the default with several files), dtype or device")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), default=None,
              help="write convergence, time-to-target and performance-profile figures here")
@click.option("--figure-format", "figure_format", default="png", show_default=True,
              metavar="png,svg,pdf", help="formats of the --plot figures (comma list)")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="write one self-contained HTML page (tables and interactive figures)")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--profile-tau", "tau", type=float, default=1e-3, show_default=True,
              help="Moré–Wild profiles (results of several problems): a run solves one when "
                   "f(x0) - f >= (1 - TAU)(f(x0) - f*)")
def report(results, target, by, plot_dir, figure_format, html_path, fmt, tau):
    """Summarize results files: success to target, times, errors; plots and HTML.

    Several files are read together and compared, by file unless --by says otherwise:

    \b
      optbench report before.jsonl after.jsonl --by version
    """
    import json
    import math
    import os

    from optbench import report as rep
    from optbench.cli.streams import emit
    from optbench.errors import UsageError
    from optbench.report.data import read_many

    if not (math.isfinite(target) and target > 0):
        raise UsageError(f"--target {target} is not accepted: expected a number > 0")
    if not (0 < tau < 1):
        raise UsageError(f"--profile-tau {tau} is not accepted: expected a number with "
                         "0 < TAU < 1")
    try:
        formats = rep.check_formats(figure_format)
    except ValueError as exc:
        raise UsageError(f"--figure-format: {exc}") from None
    if plot_dir is None and ctx_given("figure_format"):
        raise UsageError("--figure-format applies to the --plot figures: add --plot DIR")
    if plot_dir is not None and not os.path.isdir(os.path.dirname(os.path.abspath(plot_dir))):
        raise UsageError(f"--plot {plot_dir}: its parent directory does not exist")
    if html_path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(html_path))):
        raise UsageError(f"--html {html_path}: its directory does not exist")
    records = read_many(results, on_warning=lambda m: click.echo(f"optbench: warning: {m}",
                                                                  err=True))
    if not records:
        raise UsageError(f"{' and '.join(results)} hold{'s' * (len(results) == 1)} no records")
    if by is None and len(results) > 1:
        by = "source"  # several files: compared, not pooled
    if (plot_dir or html_path) and importlib_missing("matplotlib"):
        raise UsageError("--plot and --html need matplotlib: pip install 'optbench[report]'")
    if fmt == "json":
        rows = rep.summary(records, target, by=by)
        emit(json.dumps([{k: (None if isinstance(v, float) and not math.isfinite(v)
                              else v) for k, v in row.items()} for row in rows], indent=1))
    else:
        emit(rep.summary_text(records, target, by=by))
        if rep.profiles_applies(records):
            emit("\n" + rep.profiles_text(records, tau, by=by))
    if plot_dir is not None:
        os.makedirs(plot_dir, exist_ok=True)
        for path in rep.plots(records, plot_dir, target, by=by, tau=tau, formats=formats):
            click.echo(f"optbench: wrote {path}", err=True)
    if html_path is not None:
        written = rep.html(records, html_path, target, by=by, tau=tau)
        click.echo(f"optbench: wrote {written}", err=True)
        if not rep.interactive_available():
            click.echo("optbench: note: plotly is not installed, so the page's figures are "
                       "static PNGs: pip install 'optbench[report]' for interactive ones",
                       err=True)


def ctx_given(name: str) -> bool:
    """Whether the current command's option `name` was given (not its default)."""
    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) is not ParameterSource.DEFAULT


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None
