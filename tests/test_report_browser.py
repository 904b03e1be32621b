"""The interactive HTML report in headless chromium (Debian's /usr/bin/chromium), offline.

The page is opened from a file with the network off (tests/browser.py: offline, and every
http/ws request failed and recorded); then: no console error or warning, no exception, no
request; every figure drawn (plotly's SVG holds the traces' paths); a hover label shows on
a mouse move over a curve; unticking a backend, choosing another problem and switching the
axes change what is drawn; the profiles drawn in the browser match optbench's own numbers;
names from the records (with <, &, quotes, $ and an <img onerror>) are shown literally.
A full-page screenshot is kept: $OPTBENCH_ARTIFACTS/report-interactive.png, else
tests/artifacts/report-interactive.png (git-ignored).
"""

from __future__ import annotations

import base64
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

from browser import CHROMIUM, DevTools, evaluate, offline_page, reported_problems
from optbench import report
from optbench.report import interactive

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report-browser")]

HOSTILE = {
    "problem": '<img src=x onerror="window.pwned=1">$x$ & </script>',
    "backend": "b\"'<b>bold</b>",
    "optimizer": "o&amp;<br>$1$",
}
PROBLEMS = [HOSTILE["problem"], "rosen"]
BACKENDS = [HOSTILE["backend"], "b2"]
OPTIMIZERS = ["adam", HOSTILE["optimizer"]]
DTYPES = ["float32", "float64"]

DRAWN_JS = """Array.from(document.querySelectorAll('div.plot[data-figure]')).map(div => ({
  figure: div.dataset.figure,
  svgs: div.querySelectorAll('svg.main-svg').length,
  paths: Array.from(div.querySelectorAll(
      '.scatterlayer .trace path.js-line, .barlayer .trace path'))
    .filter(p => (p.getAttribute('d') || '').length > 4).length,
  legend: Array.from(div.querySelectorAll('.legendtext')).map(n => n.textContent),
  title: (div.querySelector('.gtitle') || {}).textContent || '',
  xticks: Array.from(div.querySelectorAll('.xtick text')).map(n => n.textContent),
  yticks: Array.from(div.querySelectorAll('.ytick text')).map(n => n.textContent),
  xtype: div._fullLayout.xaxis.type, ytype: div._fullLayout.yaxis.type,
  traces: div.data.map(d => ({name: d.name, x: d.x, y: d.y, showlegend: d.showlegend})),
}))"""


def synthetic_records() -> list[dict[str, Any]]:
    """2 problems × 2 backends × 2 optimizers × 2 dtypes × 3 seeds = 48 runs whose gaps
    decay geometrically at rates that differ by solver and seed; "rosen" has no reference
    (f* is the best run's), the other f* = 0."""
    records = []
    for pi, problem in enumerate(PROBLEMS):
        for bi, backend in enumerate(BACKENDS):
            for oi, optimizer in enumerate(OPTIMIZERS):
                for di, dtype in enumerate(DTYPES):
                    for seed in range(3):
                        rate = 0.55 + 0.1 * oi + 0.05 * bi + 0.03 * seed + 0.02 * di + 0.05 * pi
                        steps = [*range(13), 20, 30, 50, 80, 100]
                        dt = 1e-4 * (1 + bi + 2 * di)
                        trace = [[k, k * dt, 10.0 * rate ** k] for k in steps]
                        records.append({
                            "problem": problem, "problem_params": {}, "backend": backend,
                            "device": "cpu", "dtype": dtype, "optimizer": optimizer,
                            "optimizer_params": {}, "seed": seed, "status": "max_steps",
                            "message": "", "steps": 100, "n_evals": 100 * (1 + oi),
                            "variables": ["a", "b"], "x0": [0.0, 0.0], "x": [1.0, 1.0],
                            "f": trace[-1][2], "grad_norm": 0.0,
                            "reference": {"x": [1.0, 1.0], "f": 0.0} if pi == 0 else None,
                            "time_s": 100 * dt, "setup_s": 0.0, "trace": trace,
                            "campaign": "browser-test", "tol": None, "max_steps": 100,
                            "host": {"hostname": "h", "cpu": "c", "cores": 2,
                                     "device": "cpu"}})
    return records


def artifacts_dir() -> Path:
    folder = os.environ.get("OPTBENCH_ARTIFACTS")
    path = Path(folder) if folder else Path(__file__).parent / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return synthetic_records()


@pytest.fixture
def page(records, tmp_path) -> Path:
    if not CHROMIUM.exists():
        pytest.skip("headless chromium is not installed (/usr/bin/chromium; apt-get install "
                    "chromium)")
    if not interactive.available():
        pytest.skip("plotly is not installed (pip install 'optbench[report]')")
    return report.html(records, tmp_path / "report.html", interactive=True)


def problems(page: Path, browser: DevTools, refused: list[str]) -> list[str]:
    """Console errors and warnings, exceptions, failed loads, refused requests and requests
    for anything but the page's own file."""
    found = [f"refused request for {url[:100]}" for url in refused]
    for e in browser.events:
        if (reported := reported_problems(e)) is not None:
            found.append(reported)
        if e["method"] == "Network.requestWillBeSent":
            url = e["params"]["request"]["url"]
            if url != page.resolve().as_uri() and not url.startswith("data:"):
                found.append(f"request for {url[:100]}")
    return found


def change(browser: DevTools, js_find_input: str, set_value: str) -> None:
    """Set a control found by `js_find_input` (an expression), fire its change event, and
    wait until the page has drawn again."""
    evaluate(browser, f"""(() => {{ const input = {js_find_input};
        {set_value}; input.dispatchEvent(new Event('change'));
        return window.optbench.ready.then(() => true); }})()""")


def checkbox(key: str, value: str) -> str:
    return (f"Array.from(document.querySelectorAll('#select-{key} input'))"
            f".find(i => i.value === {_js(value)})")


def _js(text: str) -> str:
    import json

    return json.dumps(text)


def by_figure(drawn: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["figure"]: d for d in drawn}


def hover_label(browser: DevTools) -> list[str]:
    """Move the mouse (DevTools input events, as a user would) onto the middle point of the
    convergence figure's first curve; the hover labels plotly then shows."""
    point = evaluate(browser, """(() => {
      const gd = document.getElementById('plot-convergence');
      gd.scrollIntoView({block: 'center'});
      const d = gd._fullData.find(t => t.showlegend !== false);
      const i = Math.floor(d.x.length / 2);
      const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
      const r = gd.getBoundingClientRect();
      return {x: r.left + xa._offset + xa.c2p(d.x[i]), y: r.top + ya._offset + ya.c2p(d.y[i])};
    })()""")
    for dx in (-3, 0):
        browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": point["x"] + dx,
                                                  "y": point["y"]})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        labels = evaluate(browser, "Array.from(document.querySelectorAll("
                                   "'#plot-convergence .hoverlayer .hovertext'))"
                                   ".map(n => n.textContent)")
        if labels:
            return labels
        time.sleep(0.2)
    return []


def step_value(xs: list[float], ys: list[float], at: float) -> float:
    """A step function's value (drawn "hv": each y holds until the next x) at x = at."""
    value = ys[0]
    for x, y in zip(xs, ys, strict=True):
        if x <= at + 1e-12:
            value = y
    return value


def test_interactive_report_in_headless_chromium_offline(page, records, tmp_path):
    with offline_page(page, tmp_path, window_size="1280,1000") as (browser, refused):
        evaluate(browser, "window.optbench.ready.then(() => true)")
        drawn = by_figure(evaluate(browser, DRAWN_JS))
        # The page as it opens (the screenshot kept as the test's artifact).
        shot = base64.b64decode(browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True})["data"])

        # Every figure is drawn: an SVG with the traces' paths.
        assert sorted(drawn) == sorted(["convergence", "time-to-target", "success",
                                        "performance-profile", "data-profile",
                                        "more-wild-performance"])
        for name, fig in drawn.items():
            assert fig["svgs"] >= 1 and fig["paths"] >= 4, (name, fig["paths"])
        conv = drawn["convergence"]
        solvers = {f"{b}/{o} [{d}]" for b in BACKENDS for o in OPTIMIZERS for d in DTYPES}
        assert set(conv["legend"]) == solvers            # names exactly as in the records
        assert conv["ytype"] == "log" and conv["xtype"] == "linear"
        assert conv["title"] == f"{PROBLEMS[0]}: convergence"  # the first problem, sorted

        # Hover: a label with the values under the mouse.
        labels = hover_label(browser)
        assert labels and any("step" in label for label in labels), labels

        # Untick a backend: its curves, bars and profile lines go.
        change(browser, checkbox("backend", BACKENDS[0]), "input.checked = false")
        after = by_figure(evaluate(browser, DRAWN_JS))
        kept = {s for s in solvers if s.startswith("b2/")}
        assert set(after["convergence"]["legend"]) == kept
        assert set(after["performance-profile"]["legend"]) == kept
        assert after["time-to-target"]["xticks"] == ["b2 float32", "b2 float64"]
        assert drawn["time-to-target"]["xticks"] == [f"{BACKENDS[0]} float32",
                                                      f"{BACKENDS[0]} float64",
                                                      "b2 float32", "b2 float64"]
        assert after["convergence"]["paths"] < conv["paths"]
        # ... and a dtype too; then both back.
        change(browser, checkbox("dtype", "float32"), "input.checked = false")
        after = by_figure(evaluate(browser, DRAWN_JS))
        assert set(after["convergence"]["legend"]) == {s for s in kept if "float64" in s}
        change(browser, checkbox("backend", BACKENDS[0]), "input.checked = true")
        change(browser, checkbox("dtype", "float32"), "input.checked = true")
        assert set(by_figure(evaluate(browser, DRAWN_JS))["convergence"]["legend"]) == solvers

        # Another problem: other curves.
        change(browser, "document.getElementById('select-problem')", "input.value = '1'")
        other = by_figure(evaluate(browser, DRAWN_JS))["convergence"]
        assert other["title"] == "rosen: convergence"
        assert [t["y"] for t in other["traces"]] != [t["y"] for t in conv["traces"]]

        # Log/linear, steps/time.
        change(browser, "document.getElementById('select-yscale')", "input.value = 'linear'")
        linear = by_figure(evaluate(browser, DRAWN_JS))["convergence"]
        assert linear["ytype"] == "linear" and linear["yticks"] != other["yticks"]
        change(browser, "document.getElementById('select-x')", "input.value = 'time'")
        timed = by_figure(evaluate(browser, DRAWN_JS))["convergence"]
        assert timed["xtype"] == "log" and timed["xticks"] != linear["xticks"]
        assert max(max(t["x"]) for t in timed["traces"]) < 1.0  # seconds, not steps

        # Names are text: the options show them as they are, and nothing was injected.
        options = evaluate(browser, "Array.from(document.querySelectorAll("
                                    "'#select-problem option')).map(o => o.textContent)")
        assert options == sorted(PROBLEMS)
        labels = evaluate(browser, "Array.from(document.querySelectorAll("
                                   "'#controls label')).map(l => l.textContent.trim())")
        assert {HOSTILE["backend"], HOSTILE["optimizer"]} <= set(labels)
        assert evaluate(browser, "[document.images.length, window.pwned === undefined, "
                                 "document.querySelectorAll('.plot b').length]") == [0, True, 0]

        assert problems(page, browser, refused) == []

    screenshot = artifacts_dir() / "report-interactive.png"
    screenshot.write_bytes(shot)
    from PIL import Image  # comes with matplotlib

    with Image.open(screenshot) as im:
        assert im.width >= 1000 and im.height > 2500  # the whole page, figures included
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 100  # not blank: text, lines, colours

    # The profiles drawn in the browser are optbench's own (all solvers selected).
    dm = report.performance_profile(records)
    mw = report.profiles(records)
    assert mw.solvers == dm.solvers
    for fig, values in ((drawn["performance-profile"], lambda s, r: dm.rho(r)[s]),
                        (drawn["more-wild-performance"], lambda s, r: float(
                            mw.performance([r])[mw.solvers.index(s)][0]))):
        lines = {t["name"]: t for t in fig["traces"]}
        for solver in dm.solvers:
            line = lines[interactive_name(solver)]
            for ratio in (1.0, 1.5, 2.0, 4.0):
                assert step_value(line["x"], line["y"], math.log2(ratio)) == pytest.approx(
                    values(solver, ratio)), (fig["figure"], solver, ratio)


def interactive_name(label: str) -> str:
    """A name as the page hands it to plotly (escaped: plotly reads a few HTML tags)."""
    return label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_the_offline_check_catches_a_request_and_a_script_error(tmp_path):
    """The control: a page that fetches a URL and throws is reported, twice over."""
    if not CHROMIUM.exists():
        pytest.skip("headless chromium is not installed (/usr/bin/chromium)")
    path = tmp_path / "broken.html"
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    "<script>fetch('https://example.invalid/x.js'); null.boom;</script>"
                    "</body></html>", encoding="utf-8")
    with offline_page(path, tmp_path) as (browser, refused):
        time.sleep(1)
        evaluate(browser, "1")
        found = problems(path, browser, refused)
    assert any("example.invalid" in p for p in found), found
    assert any("exceptionThrown" in p for p in found), found
