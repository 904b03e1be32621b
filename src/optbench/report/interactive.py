"""The HTML report's interactive figures: plotly.js and the report's data, inside the page.

The page stays one file that works offline: plotly.js (the copy that ships inside the PyPI
`plotly` package, read from its files without importing plotly) and the page's own script
(`interactive.js`, package data) are inline <script> elements, and the numbers are one JSON
blob in a <script type="application/json"> element, which the browser never runs. The
page's Content-Security-Policy allows exactly these two scripts by their SHA-256 hashes, so
that nothing else can run even if a name from user data were to slip out of its escaping.

The numbers are computed here, by the functions that draw the PNG figures (the convergence
medians and quartile bands, the summary rows, the profiles' time and cost matrices); the
script only filters them by the selectors and lays them out. The Dolan–Moré and Moré–Wild
ratios are taken in the browser over the solvers selected, as the profiles define them.

Names (problems, backends, optimizers, hosts) are data: the JSON escapes `<`, `>` and `&`
so that no name can end the element, the script shows them with textContent, and it escapes
them for plotly, which reads a few HTML tags in its labels (and TeX between `$`, turned off).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from optbench.report.data import DEFAULT_TARGET, Run, analyze, extra_keys
from optbench.report.plots import FLOOR, convergence_curves
from optbench.report.profile import _profile
from optbench.report.profiles import DEFAULT_TAU, applies, profiles
from optbench.report.summary import _rows

DIGITS = 5
"""Significant digits kept in the page's numbers (plenty for a figure; keeps the page small)."""
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
"""matplotlib's tab10, so that an optimizer has the colour of its PNG figures."""
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
"""Line styles per backend, as in the PNG figures."""
FILTERS = ("backend", "optimizer", "dtype", "device")
"""The solver's attributes the page has selectors for (besides the problem)."""


def available() -> bool:
    """Whether plotly.js can be embedded (the `plotly` package is installed)."""
    return _plotly_dir() is not None


def _plotly_dir() -> Path | None:
    spec = importlib.util.find_spec("plotly")  # finds it without importing it (~1 s)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data"
    return path if (path / "plotly.min.js").is_file() else None


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The minified plotly.js bundled in the plotly package."""
    folder = _plotly_dir()
    if folder is None:
        raise ModuleNotFoundError("plotly is not installed: pip install 'optbench[report]'")
    return _inline_safe((folder / "plotly.min.js").read_text(encoding="utf-8"), "plotly.js")


@lru_cache(maxsize=1)
def page_js() -> str:
    """The page's own script (interactive.js beside this module)."""
    text = resources.files("optbench.report").joinpath("interactive.js").read_text("utf-8")
    return _inline_safe(text, "interactive.js")


def _inline_safe(code: str, name: str) -> str:
    """Code may go inside <script>…</script> only if nothing in it would end the element or
    change how the HTML parser reads it; a plotly release that broke this is refused here,
    never embedded broken."""
    lowered = code.lower()
    for bad in ("</script", "<!--", "<script"):
        if bad in lowered:
            raise RuntimeError(f"{name} holds {bad!r}: it cannot be embedded in the page")
    return code


def csp_hash(code: str) -> str:
    """The CSP source that allows exactly this inline script."""
    digest = hashlib.sha256(code.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def json_for_html(value: Any) -> str:
    """JSON that can stand inside a <script> element: `<`, `>` and `&` as \\u escapes (so
    `</script>` or `<!--` in a name cannot end or bend the element), no NaN or Infinity
    (JSON.parse refuses them: callers give None)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _r(value: Any) -> float | None:
    """A finite number rounded to DIGITS significant digits; None otherwise (inf, nan)."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return float(f"{value:.{DIGITS}g}") if math.isfinite(value) else None


def _rs(values: Any) -> list[float | None]:
    return [_r(v) for v in values]


def _group(run: Run, extra: Sequence[str]) -> str:
    """The bar charts' category: the backend and the extra keys' values."""
    return run.backend + "".join(f" {getattr(run, k)}" for k in extra)


def figure_data(records: Sequence[Mapping[str, Any]], target: float = DEFAULT_TARGET, *,
                by: str | Sequence[str] | None = None, tau: float = DEFAULT_TAU
                ) -> dict[str, Any]:
    """What the page's script draws, as plain JSON-able data.

    solvers: one entry per backend/optimizer (+ extra keys) with its attributes and style;
    problems: labels; convergence: per problem and solver, the steps and time curves;
    bars: the summary rows (runs, reached, median time to target, median error);
    dolan_more: time to target per solver and task (null: not reached);
    more_wild (records of several problems): gradient evaluations to solve per task and
    solver (null: not solved) and each task's number of variables.
    """
    runs = analyze(records, target)
    extra = extra_keys(runs, by) if runs else []
    first: dict[str, Run] = {}
    for run in runs:
        first.setdefault(run.solver(extra), run)
    labels = sorted(first)
    index = {s: i for i, s in enumerate(labels)}
    optimizers = sorted({r.optimizer for r in runs})
    groups = sorted({_group(r, extra) for r in runs})
    solvers = []
    for label in labels:
        run = first[label]
        solvers.append({
            "label": label, "group": _group(run, extra),
            **{k: getattr(run, k) for k in FILTERS},
            "extra": {k: getattr(run, k) for k in extra},
            "color": PALETTE[optimizers.index(run.optimizer) % len(PALETTE)],
            "dash": DASHES[groups.index(_group(run, extra)) % len(DASHES)]})
    problems = sorted({r.problem for r in runs})
    pindex = {p: i for i, p in enumerate(problems)}

    convergence = []
    for problem in problems:
        mine = [r for r in runs if r.problem == problem]
        if not any(r.fstar is not None for r in mine):
            continue
        for solver, curves in convergence_curves(mine, extra, target).items():
            entry: dict[str, Any] = {"problem": pindex[problem], "solver": index[solver]}
            for key, c in curves.items():
                entry["runs"] = c.runs
                entry[key] = {"x": _rs(c.x), "mid": _rs(c.mid)}
                if c.runs > 1:  # one run: no band
                    entry[key].update(low=_rs(c.low), high=_rs(c.high))
            convergence.append(entry)

    bars = []
    for row in _rows(runs, extra):
        label = f"{row['backend']}/{row['optimizer']}" + (
            f" [{' '.join(str(row[k]) for k in extra)}]" if extra else "")
        bars.append({"problem": pindex[row["problem"]], "solver": index[label],
                     "runs": row["runs"], "reached": row["reached"],
                     "time": _r(row["median_time_to_target"]),
                     "error": _r(row["median_error"])})

    dm = _profile(runs, extra) if runs else None
    dolan_more = None if dm is None else {
        "solvers": [index[s] for s in dm.solvers],
        "tasks": [pindex[problem] for problem, _ in dm.tasks],
        "times": [_rs(float("nan") if t is None else t for t in row) for row in dm.times]}

    more_wild = None
    if runs and applies(records):
        p = profiles(records, tau, by=by)
        more_wild = {"solvers": [index[s] for s in p.solvers], "tau": p.tau,
                     "tasks": list(p.problems), "dims": _rs(p.dims),
                     "costs": [_rs(row) for row in p.costs.tolist()],
                     "f_low_sources": p.f_low_sources, "left_out": p.left_out}

    return {"target": target, "floor": min(FLOOR, target / 100), "filters": list(FILTERS),
            "extra": extra, "problems": problems, "solvers": solvers,
            "convergence": convergence, "bars": bars, "dolan_more": dolan_more,
            "more_wild": more_wild}


# ---- the HTML ------------------------------------------------------------------------------

FIGURES = [
    ("convergence", "Convergence",
     "The gap to f*, relative to max(1, |f*|), of the problem selected: the median over a "
     "solver's runs (seeds), with the 25–75% band where it has several, against steps or "
     "loop time; dashed: the target. Gaps below the floor are drawn at it."),
    ("time-to-target", "Time to target",
     "Median time to target per backend, one bar per optimizer, over the runs that reached "
     "it; k/n: runs that reached the target of all runs. No bar where none did."),
    ("success", "Success",
     "The share of runs that reached the target, per backend and optimizer (k/n above a "
     "bar)."),
    ("performance-profile", "Performance profile (time to target)",
     "Dolan–Moré profile over every task (problem, parameters, seed) of every problem: for "
     "each solver selected, the share of tasks it solved within a factor τ of the fastest "
     "solver selected; a curve's right end is its success rate."),
]
MORE_WILD = [
    ("data-profile", "Moré–Wild data profile",
     "Share of tasks solved within α(n + 1) gradient evaluations, over every task of every "
     "problem (solved: f(x0) − f ≥ (1 − τ)(f(x0) − f_L))."),
    ("more-wild-performance", "Moré–Wild performance profile",
     "Share of tasks solved within a factor r of the fewest gradient evaluations any solver "
     "selected needed."),
]


def section(records: Sequence[Mapping[str, Any]], target: float = DEFAULT_TARGET, *,
            by: str | Sequence[str] | None = None, tau: float = DEFAULT_TAU
            ) -> tuple[str, list[str]]:
    """The figures' HTML (controls, figure containers, data, scripts) and the CSP script
    sources that allow its scripts."""
    import html

    library, script = plotly_js(), page_js()
    data = figure_data(records, target, by=by, tau=tau)
    figs = FIGURES + (MORE_WILD if data["more_wild"] else [])
    parts = [
        '<div class="controls" id="controls">',
        '<label>problem <select id="select-problem"></select></label>',
        *(f'<fieldset class="choices" id="select-{key}"><legend>{key}</legend></fieldset>'
          for key in FILTERS),
        '<label>x axis <select id="select-x"><option value="steps">steps</option>'
        '<option value="time">loop time (s)</option></select></label>',
        '<label>x scale <select id="select-xscale"><option value="linear">linear</option>'
        '<option value="log">log</option></select></label>',
        '<label>y scale <select id="select-yscale"><option value="log">log</option>'
        '<option value="linear">linear</option></select></label>',
        "</div>",
    ]
    for key, title, caption in figs:
        parts.append(f'<figure id="figure-{key}"><h3>{html.escape(title)}</h3>'
                     f'<div class="plot" id="plot-{key}" data-figure="{key}"></div>'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts += [
        f'<script type="application/json" id="optbench-data">{json_for_html(data)}</script>',
        f"<script>{library}</script>",
        f"<script>{script}</script>",
    ]
    return "\n".join(parts), [csp_hash(library), csp_hash(script)]
