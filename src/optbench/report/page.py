"""The HTML report: one self-contained page, viewable offline.

With plotly installed (the `report` extra) every figure is interactive: plotly.js, the
page's script and its data are inline (optbench.report.interactive), and the page's
Content-Security-Policy lets those two scripts run by their hashes and nothing else. Without
plotly the figures are PNG data URIs and there is no script at all. Either way there is no
external URL: the policy (`default-src 'none'`) makes the browser refuse anything else, so a
page that displays correctly is known to need nothing outside itself.
The page is built whole in memory, then written to a temporary file beside `path` and
renamed over it: an error leaves the previous file, or none, never half a page.
"""

from __future__ import annotations

import base64
import html as _html
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from optbench.cli.output import num, seconds
from optbench.report.data import (
    DEFAULT_TARGET,
    FAILED,
    TARGET_RULE,
    analyze,
    extra_keys,
    host_label,
)
from optbench.report.interactive import available as plotly_available
from optbench.report.interactive import section as interactive_section
from optbench.report.plots import figures
from optbench.report.profiles import DEFAULT_TAU, applies, profiles_text
from optbench.report.summary import _count, _error, _rows
from optbench.userfiles import write_atomic

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1d1d1f; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem;
     margin-top: 2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: 13px; }
th, td { border: 1px solid #d6d6d6; padding: .25rem .55rem; text-align: left;
         vertical-align: top; }
th { background: #f2f2f4; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fff1f0; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure h3 { margin-bottom: .2rem; }
div.plot { width: 100%; min-height: 380px; border: 1px solid #eee; }
.controls { position: sticky; top: 0; z-index: 10; background: #fafafc; display: flex;
            flex-wrap: wrap; gap: .4rem 1rem; align-items: center; padding: .5rem .7rem;
            border: 1px solid #ddd; border-radius: 4px; font-size: 13px; }
.controls fieldset { border: 0; margin: 0; padding: 0; display: inline-flex; gap: .5rem;
                     flex-wrap: wrap; align-items: center; }
.controls legend { float: left; font-weight: 600; margin-right: .3rem; }
.controls label { white-space: nowrap; }
figcaption { color: #555; font-size: 13px; max-width: 900px; }
.meta { color: #555; }
code { background: #f4f4f6; padding: 0 .2rem; }
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The static page's policy; the interactive page adds `script-src` with its scripts'
hashes (plotly draws with inline styles and data: images, for its PNG download)."""
MAX_FAILURES = 200


def _e(value: Any) -> str:
    return _html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (),
           classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f'<td class="n">{_e(c)}</td>' if j in numeric else f"<td>{_e(c)}</td>"
                        for j, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + \
        "\n</tbody>\n</table>"


def _png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def render(records: Sequence[Mapping[str, Any]], target: float = DEFAULT_TARGET, *,
           by: str | Sequence[str] | None = None, title: str = "optbench report",
           tau: float = DEFAULT_TAU, interactive: bool | None = None) -> str:
    """The page as a string (what `html` writes). `interactive`: plotly figures (True),
    PNG figures (False), or plotly where it is installed (None)."""
    records = list(records)
    runs = analyze(records, target)
    extra = extra_keys(runs, by) if runs else []
    rows = _rows(runs, extra)
    if interactive is None:
        interactive = plotly_available()
    figs, scripts, csp = [], "", CSP
    if runs and interactive:
        scripts, hashes = interactive_section(records, target, by=by, tau=tau)
        csp = f"{CSP}; script-src {' '.join(hashes)}"
    elif runs:
        figs = figures(records, target, by=by, tau=tau)

    campaigns = sorted({str(r.get("campaign")) for r in records if r.get("campaign")})
    tasks = {run.task for run in runs}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">campaign{"s" if len(campaigns) != 1 else ""}: '
        f'{_e(", ".join(campaigns) or "-")} · {len(records)} run(s) · {len(tasks)} task(s) · '
        f'problems: {_e(", ".join(sorted({r.problem for r in runs})) or "-")} · '
        f'backends: {_e(", ".join(sorted({r.backend for r in runs})) or "-")} · '
        f'optimizers: {_e(", ".join(sorted({r.optimizer for r in runs})) or "-")}</p>',
        '<h2 id="targets">Targets</h2>',
        f"<p>A run reaches the target when {_e(TARGET_RULE)}, with <b>T = {target:g}</b>. "
        "Its time to target is the loop time of the first sampled trace point that reaches "
        "it (or its whole loop time when only its final point does). A run that never reached "
        f"it and ended {_e(', '.join(FAILED))} is counted as failed.</p>",
    ]
    if runs:
        sources = {}
        for run in runs:
            sources.setdefault(run.problem, set()).add(run.fstar_source)
        parts.append(_table(["problem", "f* from", "tasks"], [
            [p, ", ".join(sorted(s)), len({r.task for r in runs if r.problem == p})]
            for p, s in sorted(sources.items())], numeric=[2]))

    parts.append('<h2 id="summary">Summary</h2>')
    header = ["backend", "optimizer", *extra, "runs", "reached", "failed",
              "median time to target", "median f − f*", "median steps", "median evals"]
    for problem in dict.fromkeys(r["problem"] for r in rows):
        mine = [r for r in rows if r["problem"] == problem]
        parts.append(f"<h3>{_e(problem)}</h3>")
        start = 2 + len(extra)
        parts.append(_table(header, [[
            r["backend"], r["optimizer"], *(r[k] for k in extra), r["runs"],
            f"{r['reached']}/{r['runs']} ({r['success_rate']:.0%})", r["failed"],
            "-" if r["median_time_to_target"] is None else seconds(r["median_time_to_target"]),
            _error(r["median_error"]), _count(r["median_steps"]), _count(r["median_evals"])]
            for r in mine], numeric=range(start, start + 7),
            classes=["fail" if r["reached"] == 0 else "" for r in mine]))
    if not rows:
        parts.append("<p>No records.</p>")
    parts.append('<p class="meta">Time to target: median over the runs that reached it. '
                 "f − f*, steps and evaluations: median over all runs (a run without a finite "
                 "f counts as an infinite error).</p>")

    if runs and applies(records):
        parts.append('<h2 id="profiles">Moré–Wild profiles</h2>')
        parts.append(f"<pre>{_e(profiles_text(records, tau, by=by))}</pre>")
    if figs or scripts:
        parts.append('<h2 id="figures">Figures</h2>')
    if scripts:
        parts.append(scripts)
    for fig in figs:
        w, h = _png_size(fig.png)
        data = base64.b64encode(fig.png).decode("ascii")
        parts.append(f'<figure id="{_e(fig.name)}">'
                     f'<img src="data:image/png;base64,{data}" alt="{_e(fig.title)}" '
                     f'width="{w}" height="{h}">'
                     f"<figcaption>{_e(fig.caption)}</figcaption></figure>")

    parts.append('<h2 id="hosts">Hosts</h2>')
    parts.append(_hosts(records))

    failures = [run for run in runs if run.status in FAILED]
    if failures:
        parts.append('<h2 id="failures">Runs that ended diverged, error or timeout</h2>')
        shown = failures[:MAX_FAILURES]
        parts.append(_table(["problem", "backend", "optimizer", "seed", "status", "steps",
                             "final f", "message"],
                            [[r.problem, r.backend, r.optimizer, r.task[2], r.status,
                              r.record.get("steps"), _f(r.record.get("f")),
                              r.record.get("message") or ""] for r in shown], numeric=[3, 5]))
        if len(failures) > len(shown):
            parts.append(f"<p>… and {len(failures) - len(shown)} more.</p>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _f(value: Any) -> str:
    return num(value) if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _hosts(records: Sequence[Mapping[str, Any]]) -> str:
    hosts: dict[str, tuple[Mapping[str, Any], int]] = {}
    for r in records:
        host = r.get("host") if isinstance(r.get("host"), Mapping) else {}
        key = repr(sorted((k, repr(v)) for k, v in host.items()))
        seen = hosts.get(key)
        hosts[key] = (host, (seen[1] if seen else 0) + 1)
    if not hosts:
        return "<p>No records.</p>"
    rows = []
    for host, count in hosts.values():
        versions = host.get("versions") if isinstance(host.get("versions"), Mapping) else {}
        rows.append([host_label(host) if host else "unknown", host.get("cpu", "-"),
                     host.get("cores", "-"), host.get("platform", "-"),
                     host.get("device_name") or host.get("device") or "-",
                     ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "-", count])
    return _table(["host", "cpu", "cores", "platform", "device", "versions", "runs"], rows,
                  numeric=[2, 6])


def html(records: Sequence[Mapping[str, Any]], path: str | Path,
         target: float = DEFAULT_TARGET, *, by: str | Sequence[str] | None = None,
         title: str = "optbench report", tau: float = DEFAULT_TAU,
         interactive: bool | None = None) -> Path:
    """Write the self-contained HTML report to `path` (atomically); return the path.
    `interactive` as for `render`."""
    path = Path(path)
    page = render(records, target, by=by, title=title, tau=tau, interactive=interactive)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, page.encode("utf-8"))
    return path
