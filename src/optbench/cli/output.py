"""Plain-text tables for the command line (JSON output needs none of this)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optbench.core import RunRecord
from optbench.core.params import applying
from optbench.plugins import available


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def seconds(value: float) -> str:
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def _params(params: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        return ",".join(f"{x:g}" for x in v) if isinstance(v, (list, tuple)) else str(v)

    return ", ".join(f"{k}={show(v)}" for k, v in params.items() if v is not None)


def run_table(plans: list[Any], records: list[RunRecord]) -> str:
    """The header (problem, optimizers, settings), one row per run, and the final points."""
    first, plan = records[0], plans[0]
    ref = plan.reference
    several = len(plans) > 1
    shown = applying(plan.problem.params, first.problem_params)
    out = [f"problem    {first.problem} ({_params(shown)})"]
    out += [f"optimizer  {p.optimizer.name} ({_params(p.optimizer_params)})" for p in plans]
    out += [f"seed {first.seed}, {first.dtype} on {first.device}, at most {plan.steps} steps",
            ""]
    label = [f"{r.optimizer} on {r.backend}" if several else r.backend for r in records]
    out.append(table(
        ["run" if several else "backend", "status", "steps", "evals", "f", "rel.err",
         "per step", "loop time", "setup"],
        [[name, r.status, r.steps, r.n_evals, num(r.f), num(r.relative_error, 3),
          per_step(r), seconds(r.time_s), seconds(r.setup_s)]
         for name, r in zip(label, records, strict=True)]))
    header = ["variable", "x0"] + (["x*"] if ref is not None else []) + label
    rows = []
    for i, name in enumerate(first.variables):
        row = [name, num(first.x0[i], 6)]
        if ref is not None:
            row.append(num(float(ref.x[i]), 10))
        rows.append(row + [num(r.x[i], 10) for r in records])
    out += ["", table(header, rows)]
    if ref is not None and not ref.unique:
        out.append(f"\nx* is the minimum-norm point of a family of minimizers "
                   f"(rank {ref.details.get('rank')} of {len(first.variables)}): "
                   f"any point of that family is optimal, so no relative error is given.")
    notes = [f"{name}: {r.message}" for name, r in zip(label, records, strict=True)
             if r.message]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def per_step(r: RunRecord) -> str:
    """Loop time per step: what compares optimizers that stopped after different counts."""
    if not r.steps:
        return "-"
    t = r.time_s / r.steps
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else seconds(t)


def list_rows(registry: Any, kinds: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for kind in kinds or ["backend", "problem", "optimizer", "suite"]:
        for name in registry.names(kind):
            obj = registry.get(kind, name)
            row = {"kind": kind, "name": name, "description": obj.description,
                   "plugin": registry.owner[(kind, name)], "available": True, "reason": None}
            if kind == "backend":
                devices = {d: available(obj, d) for d in obj.devices}
                row["available"] = devices[obj.devices[0]] is None
                row["reason"] = devices[obj.devices[0]]
                row["devices"] = devices
                row["dtypes"] = list(obj.dtypes)
            elif kind == "suite":
                row["entries"] = [e.to_json() for e in obj.entries]
                if getattr(obj, "unavailable", None):
                    row["available"], row["reason"] = False, obj.unavailable
            else:
                declared = obj.params if kind == "problem" else obj.hyperparams
                row["params"] = {p.name: {"type": p.kind, "default": _default(p.default),
                                          "accepts": p.accepted(), "help": p.help}
                                 for p in declared}
            rows.append(row)
    return rows


def _default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def list_table(rows: list[dict[str, Any]]) -> str:
    def status(row: dict[str, Any]) -> str:
        if row["kind"] != "backend":
            return "yes" if row["available"] else f"no ({row['reason']})"
        parts = [d if why is None else f"{d}: no ({why})" for d, why in row["devices"].items()]
        return "; ".join(parts)

    def description(row: dict[str, Any]) -> str:
        if row["kind"] != "suite":
            return row["description"]
        problems = ", ".join(dict.fromkeys(e["problem"] for e in row["entries"]))
        return f"{row['description']} [{len(row['entries'])} entries of {problems}]"

    return table(["kind", "name", "available", "plugin", "description"],
                 [[r["kind"], r["name"], status(r), r["plugin"], description(r)]
                  for r in rows])


def params_table(rows: list[dict[str, Any]]) -> str:
    """Each problem's (or optimizer's) declared parameters: name, type, default, meaning and
    what is accepted — what `-P`/`-O KEY=VALUE` takes."""
    out = []
    for row in rows:
        if "params" not in row:
            continue
        flag = "-P" if row["kind"] == "problem" else "-O"
        out += ["", f"{row['kind']} {row['name']}: {flag} KEY=VALUE"]
        if not row["params"]:
            out.append("  (no parameters)")
            continue
        lines = table(["name", "type", "default", "meaning (accepts)"],
                      [[name, p["type"], _shown_default(p["default"]),
                        f"{p['help']} ({p['accepts']})" if p["help"] else p["accepts"]]
                       for name, p in row["params"].items()])
        out += ["  " + line for line in lines.splitlines()]
    return "\n".join(out)


def _shown_default(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def plugins_table(infos: list[dict[str, Any]]) -> str:
    return table(["plugin", "version", "registers", "error"],
                 [[p["name"], p["version"] or "-", ", ".join(p["registers"]) or "-",
                   p["error"] or ""] for p in infos])


def solve_report(records: list[Any]) -> str:
    first = records[0]
    out = [f"equations  {'; '.join(first.equations)}",
           f"optimizer  {first.optimizer} ({_params(first.optimizer_params)}), "
           f"{first.dtype} on {first.device}"
           + (f", {first.starts} starts in one batch" if first.starts > 1 else ""), ""]
    out.append(table(["backend", "status", "steps", "evals", "sum of squares", "loop time"],
                     [[r.backend, r.status, r.steps, r.n_evals, num(r.f), seconds(r.time_s)]
                      for r in records]))
    label = "best start" if first.starts > 1 else "solution"
    out += ["", table(["variable", *[f"{label} ({r.backend})" for r in records]],
                      [[v, *[num(r.x[i], 12) for r in records]]
                       for i, v in enumerate(first.variables)])]
    out += ["", table(["equation", *[f"residual ({r.backend})" for r in records]],
                      [[e, *[num(r.residuals[j], 3) for r in records]]
                       for j, e in enumerate(first.equations)])]
    if first.solutions is not None:
        found = first.solutions
        out += ["", f"{len(found)} distinct solution(s) among {first.starts} starts "
                    f"({first.backend}):"]
        out += ["  " + ", ".join(f"{v} = {num(x, 10)}" for v, x in zip(first.variables, s,
                                                                        strict=True))
                for s in found]
    a = first.analysis
    if a is None and first.starts == 1:  # one root of a nonlinear system, maybe one of many
        out += ["", "The system is nonlinear: other solutions may exist. To look for them, "
                    "run several starts in one batch: --starts 20 lists the distinct "
                    "solutions found."]
    if a is not None:
        n = len(first.variables)
        out += ["", f"linear system: rank {a['rank']} of {n} unknowns, "
                    + ("consistent" if a["consistent"] else
                       f"INCONSISTENT (no exact solution; least-squares residual norm "
                       f"{a['residual_norm']:.6g})")]
        kind = "minimum-norm solution" if a["consistent"] else "minimum-norm least-squares"
        out.append(f"  {kind}: " + ", ".join(
            f"{v} = {num(x, 10)}" for v, x in zip(first.variables, a["min_norm"], strict=True)))
        for basis in a["nullspace"]:
            out.append("  nullspace direction: (" + ", ".join(num(b, 6) for b in basis) + ")")
        general = "general solution" if a["consistent"] else "all least-squares solutions"
        out.append(f"  {general}: {a['general'] or a.get('note')}")
        if a["family"]:
            out.append("  The solutions form a family: the point found is one member of it, "
                       "reached from this start.")
    notes = [f"{r.backend}: {r.message}" for r in records if r.message]
    return "\n".join(out + (["", *notes] if notes else []))


def grad_table(result: dict[str, Any]) -> str:
    names = list(result["at"])
    point = ", ".join(f"{n}={v:g}" for n, v in result["at"].items())
    rows = [[r["backend"], num(r["value"], 15), *[num(r["grad"][n], 15) for n in names]]
            for r in result["results"]]
    return (f"{result['expression']} at {point}\n\n"
            + table(["backend", "value", *[f"d/d{n}" for n in names]], rows))
