"""The fit as text: what was fitted, then per backend its status, each parameter's estimate
and standard error, and the fit's summary numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from optbench.cli.output import table


def _num(value: Any, digits: int = 10) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.3g}%"


def fit_table(fp: Any, records: Sequence[Any]) -> str:
    plan = fp.plan
    source = fp.table.source.partition("=")[2] or fp.table.source
    weighted = f", weighted by 1/{fp.model.sigma}" if fp.model.sigma else ""
    out = [f"fit    {fp.model.equation}",
           f"data   {os.path.basename(source)}: {fp.table.n_rows} points{weighted}",
           f"with   {plan.optimizer.name}, {plan.dtype}, at most {plan.steps} steps, "
           f"seed {plan.seed}"]
    for r in records:
        status = f"{r.status}: {r.message}" if r.message else r.status
        out += ["", f"{r.backend}: {status}"]
        stats = r.fit
        if stats is None:
            continue
        rows = [[name, _num(est), _num(se, 6), _percent(rel)]
                for name, est, se, rel in zip(stats["parameters"], stats["estimates"],
                                              stats["stderr"], stats["rel_stderr"],
                                              strict=True)]
        out.append(table(["parameter", "estimate", "std. error", "rel. s.e."], rows))
        r2 = "" if stats["r2"] is None else f"   R² {stats['r2']:.10g}"
        out.append(f"RSS {_num(stats['rss'])}   residual s.d. {_num(stats['residual_sd'], 6)}"
                   f"   dof {stats['dof']}{r2}")
    return "\n".join(out)
