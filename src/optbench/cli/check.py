"""`optbench check`: the conformance kit (optbench.testing) from the command line, for
backends, optimizers and problems.

Exit status: 0 when every check passed (skipped ones fail nothing), 1 when any failed,
2 for bad input (an unknown name: one line listing the valid ones).
"""

from __future__ import annotations

import json
import sys

import click

from optbench.cli.options import FORMATS, RegistryName
from optbench.cli.streams import emit


@click.command()
@click.option("--backend", "backends", multiple=True, type=RegistryName("backend",
              allow_all=True), help="a backend to check (repeatable; 'all' for every one)")
@click.option("--optimizer", "optimizers", multiple=True, type=RegistryName("optimizer",
              allow_all=True), help="an optimizer to check (repeatable; 'all' for every one)")
@click.option("--problem", "problems", multiple=True, type=RegistryName("problem",
              allow_all=True), help="a problem to check (repeatable; 'all' for every one)")
@click.option("--device", default=None, help="where the backend checks run [default: cpu "
              "when usable]; the device check covers every declared device")
@click.option("--only", "only", multiple=True, metavar="CHECK",
              help="run only this check (repeatable), e.g. --only gradient[float32]")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def check(backends, optimizers, problems, device, only, fmt):
    """Check that a backend, optimizer or problem plugin keeps optbench's contracts.

    Backends: gradients against finite differences on every built-in problem (float64 and
    float32) and for every function of the expression language, a constant gradient, fresh
    result arrays, counted evaluations, no heavy import before use, dtype and device kept,
    the same seed gives the same result, non-finite values end a run as "diverged",
    available() gives a reason. Optimizers: runs on every built-in backend, pure steps,
    descent on a convex quadratic, the same trajectory on torch and autograd, non-finite
    values end as "diverged". Problems: the same task for a seed on every backend, finite
    at the start, the same gradients on torch, autograd and fd as numpy's, the declared
    reference a minimum, every accepted parameter value handled.
    """
    from optbench.plugins import get_registry
    from optbench.testing.backend import BACKEND_CHECKS, check_backend
    from optbench.testing.optimizer import OPTIMIZER_CHECKS, check_optimizer
    from optbench.testing.problem import PROBLEM_CHECKS, check_problem

    if not backends and not optimizers and not problems:
        raise click.UsageError("give --backend NAME, --optimizer NAME and/or --problem NAME")
    registry = get_registry()
    backends = _expand(backends, registry.names("backend"))
    optimizers = _expand(optimizers, registry.names("optimizer"))
    problems = _expand(problems, registry.names("problem"))
    known = set(BACKEND_CHECKS) if backends else set()
    known |= set(OPTIMIZER_CHECKS) if optimizers else set()
    known |= set(PROBLEM_CHECKS) if problems else set()
    unknown = [name for name in only if name not in known]
    if unknown:
        raise click.UsageError(f"--only {unknown[0]!r} is not a check; the checks: "
                               f"{', '.join(sorted(known))}")
    if device is not None:
        for name in backends:
            declared = registry.get("backend", name).devices
            if device not in declared:
                raise click.UsageError(f"--device {device} is not accepted: backend {name} "
                                       f"declares {', '.join(declared)}")

    reports = []
    for name in backends:
        chosen = [c for c in BACKEND_CHECKS if not only or c in only]
        if chosen:
            _progress(fmt, f"checking backend {name} ...")
            reports.append(check_backend(name, registry=registry, device=device,
                                         checks=chosen))
    for name in optimizers:
        chosen = [c for c in OPTIMIZER_CHECKS if not only or c in only]
        if chosen:
            _progress(fmt, f"checking optimizer {name} ...")
            reports.append(check_optimizer(name, registry=registry, checks=chosen))
    for name in problems:
        chosen = [c for c in PROBLEM_CHECKS if not only or c in only]
        if chosen:
            _progress(fmt, f"checking problem {name} ...")
            reports.append(check_problem(name, registry=registry, checks=chosen))

    if fmt == "json":
        emit(json.dumps([r.to_json() for r in reports], indent=1))
    else:
        emit("\n\n".join(str(r) for r in reports))
    if not all(r.ok for r in reports):
        failed = ", ".join(f"{r.kind} {r.name}" for r in reports if not r.ok)
        click.echo(f"optbench: check failed: {failed}", err=True)
        sys.exit(1)


def _expand(names: tuple[str, ...], every: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for one in every if name == "all" else [name]:
            if one not in out:
                out.append(one)
    return out


def _progress(fmt: str, text: str) -> None:
    if fmt == "table":
        click.echo(f"optbench: {text}", err=True)
