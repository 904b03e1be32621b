"""`optbench fit --plot fit.png`: the fit drawn with matplotlib (imported here, when drawn).

One predictor (the right side uses one column, the left side is data alone): the data and
the fitted curve over the predictor, and the residuals under them. Otherwise: the residuals
against the fitted values. The file is written whole or not at all (a temporary file
renamed over it), in the format its suffix names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from optbench.expr import compile_expression
from optbench.expr.equations import sides


def plot_fit(fp: Any, record: Any, path: str) -> None:
    from optbench.report.plots import _literal, _new_figure
    from optbench.userfiles import write_atomic

    model, table = fp.model, fp.table
    x = np.asarray(record.x, dtype=np.float64)
    data = fp.plan.instance.data
    with np.errstate(all="ignore"):
        r = np.asarray(fp.problem.residuals(x, data, np), dtype=np.float64)
    lhs_text, rhs_text = sides(model.equation)
    rhs = compile_expression(rhs_text, [*model.parameters, *model.columns])
    lhs_columns = set(compile_expression(lhs_text).variables)
    rhs_columns = [c for c in compile_expression(rhs_text).variables if c in model.columns]
    columns = [table.columns[c] for c in model.columns]
    one = (model.response is not None and len(rhs_columns) == 1
           and rhs_columns[0] not in lhs_columns)
    weighted = " / σ" if model.sigma else ""
    title = f"{model.equation}   ({record.backend}, RSS {record.fit['rss']:.6g})"
    if one:
        predictor = rhs_columns[0]
        px = table.columns[predictor]
        response = np.asarray(model.response(columns, np), dtype=np.float64)
        grid = np.linspace(px.min(), px.max(), 400)
        at = [grid if c == predictor else np.full_like(grid, np.nan) for c in model.columns]
        with np.errstate(all="ignore"):
            curve = np.broadcast_to(rhs([*x, *at], np), grid.shape)
        fig = _new_figure(7.0, 6.0)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.4))
        top.plot(px, response, "o", ms=4, label="data")
        top.plot(grid, curve, "-", lw=1.5, label="fit")
        top.set_ylabel(lhs_text.strip())
        legend = top.legend()
        _literal(*legend.get_texts())
        bottom.axhline(0.0, color="0.6", lw=0.8)
        bottom.plot(px, r, "o", ms=4)
        bottom.set_xlabel(predictor)
        bottom.set_ylabel("residual" + weighted)
        texts = [top.title, top.yaxis.label, bottom.xaxis.label, bottom.yaxis.label]
        top.set_title(title, fontsize=9)
    else:
        with np.errstate(all="ignore"):
            fitted = np.broadcast_to(rhs([*x, *columns], np), r.shape)
        fig = _new_figure(7.0, 4.5)
        ax = fig.subplots()
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.plot(fitted, r, "o", ms=4)
        ax.set_xlabel(f"fitted value ({rhs_text.strip()})")
        ax.set_ylabel("residual" + weighted)
        ax.set_title(title, fontsize=9)
        texts = [ax.title, ax.xaxis.label, ax.yaxis.label]
    _literal(*texts)
    fmt = Path(path).suffix.lower().lstrip(".")
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, metadata={"Software": None} if fmt == "png" else {})
    write_atomic(Path(path), buf.getvalue())
