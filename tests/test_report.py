"""Reports: targets, the summary, the performance profile, the plots and the HTML page.

The numbers are checked against hand computations on small synthetic records; the plots and
the page on a real campaign of 81 runs made with the API. The slow test opens the static
page (PNG figures) in headless chromium (Debian's /usr/bin/chromium) over the DevTools
protocol on a pipe, and keeps a screenshot: in pytest's tmp_path, and copied to
$OPTBENCH_ARTIFACTS when it is set. The interactive page's browser test is
tests/test_report_browser.py.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from browser import CHROMIUM, DevTools, reported_problems
from optbench import report
from optbench.report import page as page_module
from optbench.report.data import task_of

# Under pytest-xdist the module's tests stay on one worker, which builds its campaign
# fixtures once.
pytestmark = pytest.mark.xdist_group("report")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGES_JS = ("JSON.stringify(Array.from(document.images).map(i => ({complete: i.complete, "
             "width: i.naturalWidth, height: i.naturalHeight, "
             "shown: i.getBoundingClientRect().width})))")


# ---- synthetic records ---------------------------------------------------------------------

def rec(**fields: Any) -> dict[str, Any]:
    """A run record with the contract's fields; `fields` override the defaults."""
    base: dict[str, Any] = {
        "problem": "quad", "problem_params": {"n": 2}, "backend": "b1", "device": "cpu",
        "dtype": "float64", "optimizer": "o1", "optimizer_params": {"lr": 0.1}, "seed": 0,
        "status": "max_steps", "message": "", "steps": 10, "n_evals": 10,
        "variables": ["x1", "x2"], "x0": [0.0, 0.0], "x": [1.0, 1.0], "f": 1.0,
        "grad_norm": 0.0, "reference": {"x": [1.0, 1.0], "f": 0.0}, "time_s": 1.0,
        "setup_s": 0.0, "trace": [[0, 0.0, 5.0]], "relative_error": None, "n_fevals": 10,
        "campaign": "c-test", "tol": None, "max_steps": 100,
        "host": {"hostname": "h1", "cpu": "cpu one", "cores": 4, "device": "cpu",
                 "device_name": "cpu one", "versions": {"python": "3.11"}}}
    base.update(fields)
    return base


def hand_records() -> list[dict[str, Any]]:
    """Problem "quad" (f* = 0 known), seeds 0..2, solvers b1/o1 and b2/o1.

    b1/o1: seed 0 reaches 1e-8 at t = 0.2 (trace), seed 1 at t = 0.4, seed 2 diverges
           -> 2/3 reached, 1 failed, median time 0.3, errors [1e-10, 1e-12, inf] -> 1e-10,
           steps [10, 20, 5] -> 10, evals [11, 25, 6] -> 11.
    b2/o1: never reaches (max_steps, f = 1e-3, 1e-4, 1e-5) -> 0/3, 0 failed,
           median error 1e-4, steps 100, evals 100.
    """
    return [
        rec(seed=0, f=1e-10, steps=10, n_evals=11, time_s=0.5, status="converged",
            trace=[[0, 0.0, 5.0], [1, 0.1, 1e-3], [2, 0.2, 5e-9], [10, 0.5, 1e-10]]),
        rec(seed=1, f=1e-12, steps=20, n_evals=25, time_s=0.6,
            trace=[[0, 0.0, 5.0], [3, 0.4, 1e-8], [20, 0.6, 1e-12]]),
        rec(seed=2, f=None, steps=5, n_evals=6, time_s=0.05, status="diverged",
            trace=[[0, 0.0, 5.0], [4, 0.04, 1e5]]),
        *[rec(backend="b2", seed=s, f=f, steps=100, n_evals=100, time_s=2.0,
              trace=[[0, 0.0, 5.0], [100, 2.0, f]])
          for s, f in ((0, 1e-3), (1, 1e-4), (2, 1e-5))],
    ]


# ---- targets -------------------------------------------------------------------------------

def test_reaches_is_relative_to_max_one_abs_fstar():
    assert report.reaches(1e-8, 0.0, 1e-8)
    assert not report.reaches(1.1e-8, 0.0, 1e-8)
    assert report.reaches(100 + 9e-7, 100.0, 1e-8)          # 1e-8 · 100
    assert not report.reaches(100 + 2e-6, 100.0, 1e-8)
    assert not report.reaches(None, 0.0, 1e-8)
    assert not report.reaches(math.nan, 0.0, 1e-8)
    assert not report.reaches(0.0, None, 1e-8)


def test_time_to_target_is_the_first_trace_point_reaching_it():
    r = rec(trace=[[0, 0.0, 10.0], [1, 0.1, 1.0], [2, 0.25, 1e-9], [3, 0.3, 0.0]], f=0.0)
    assert report.time_to_target(r, 0.0, 1e-8) == (0.25, 2)
    assert report.time_to_target(r, 0.0, 1.0) == (0.1, 1)    # 1.0 <= 1 · max(1, 0)
    assert report.time_to_target(r, 0.0, 1e-20) == (0.3, 3)
    # Only the final f (evaluated after the loop) reaches it: the whole loop time.
    r = rec(trace=[[0, 0.0, 10.0], [7, 0.7, 1e-3]], f=1e-12, time_s=0.75, steps=8)
    assert report.time_to_target(r, 0.0, 1e-8) == (0.75, 8)
    # Never: None; null f in a trace (non-finite written as null) is skipped.
    r = rec(trace=[[0, 0.0, 10.0], [1, 0.1, None]], f=None)
    assert report.time_to_target(r, 0.0, 1e-8) == (None, None)


def test_fstar_is_the_reference_else_the_best_f_reached_on_the_task():
    records = [
        rec(problem="p", seed=0, reference=None, f=3.0, trace=[[0, 0, 9.0], [5, 1, 2.5]]),
        rec(problem="p", seed=0, reference=None, backend="b2", f=2.75),
        rec(problem="p", seed=1, reference=None, f=7.0, trace=[]),
        rec(problem="p", seed=2, reference=None, f=None, trace=[[0, 0, None]]),
        rec(problem="q", seed=0, f=1.0, reference={"x": [0, 0], "f": 0.5}),
    ]
    stars = report.fstars(records)
    assert [stars[task_of(r)] for r in records] == [
        (2.5, "best run"), (2.5, "best run"),  # a trace point beat both final f
        (7.0, "best run"), (None, "none"), (0.5, "reference")]
    # Different problem parameters are different tasks.
    other = rec(problem="p", seed=0, reference=None, f=0.0, problem_params={"n": 3})
    stars = report.fstars([*records, other])
    assert stars[task_of(records[0])] == (2.5, "best run")
    assert stars[task_of(other)] == (0.0, "best run")


# ---- the summary ---------------------------------------------------------------------------

def test_summary_numbers_match_hand_computation():
    rows = report.summary(hand_records())
    assert [(r["problem"], r["backend"], r["optimizer"]) for r in rows] == [
        ("quad", "b1", "o1"), ("quad", "b2", "o1")]
    b1, b2 = rows
    assert (b1["runs"], b1["reached"], b1["failed"]) == (3, 2, 1)
    assert b1["success_rate"] == pytest.approx(2 / 3)
    assert b1["median_time_to_target"] == pytest.approx(0.3)
    assert b1["median_error"] == pytest.approx(1e-10)
    assert (b1["median_steps"], b1["median_evals"]) == (10, 11)
    assert b1["fstar_source"] == "reference"
    assert (b2["runs"], b2["reached"], b2["failed"], b2["success_rate"]) == (3, 0, 0, 0.0)
    assert b2["median_time_to_target"] is None
    assert b2["median_error"] == pytest.approx(1e-4)
    assert (b2["median_steps"], b2["median_evals"]) == (100, 100)


def test_summary_target_option_and_even_count_median():
    records = hand_records()
    # With T = 1e-2, b2's seeds 0..2 (f = 1e-3, 1e-4, 1e-5) all reach it at their last point.
    b1, b2 = report.summary(records, target=1e-2)
    assert b2["reached"] == 3 and b2["median_time_to_target"] == pytest.approx(2.0)
    # b1: seed 0 now reaches at t = 0.1 (f = 1e-3), seed 1 still at 0.4: median 0.25.
    assert b1["reached"] == 2 and b1["median_time_to_target"] == pytest.approx(0.25)
    # Two runs: the median is the mean of both.
    (row,) = report.summary(records[:2], target=1e-8)
    assert row["median_time_to_target"] == pytest.approx(0.3)
    assert row["median_error"] == pytest.approx((1e-10 + 1e-12) / 2)
    with pytest.raises(ValueError, match="target"):
        report.summary(records, target=0)


def test_summary_groups_by_dtype_when_it_varies_and_by_host_on_request():
    records = hand_records()[:3] + [dict(r, dtype="float32") for r in hand_records()[:3]]
    rows = report.summary(records)
    assert [(r["backend"], r["dtype"]) for r in rows] == [("b1", "float32"), ("b1", "float64")]
    assert "device" not in rows[0]
    other = [dict(r, host=dict(r["host"], hostname="h2")) for r in hand_records()[:3]]
    rows = report.summary(hand_records()[:3] + other, by="host")
    assert [(r["host"], r["runs"], r["reached"]) for r in rows] == [("h1", 3, 2), ("h2", 3, 2)]
    with pytest.raises(ValueError, match="by="):
        report.summary(records, by="colour")


def test_labels_show_the_parameters_that_vary():
    records = [rec(optimizer_params={"lr": lr, "b": 1}, problem_params={"n": 2, "k": k})
               for lr in (0.1, 0.01) for k in (1, 2)]
    rows = report.summary(records)
    assert sorted({r["optimizer"] for r in rows}) == ["o1(lr=0.01)", "o1(lr=0.1)"]
    assert sorted({r["problem"] for r in rows}) == ["quad(k=1)", "quad(k=2)"]


def test_summary_text_is_a_table_per_problem():
    text = report.summary_text([*hand_records(), rec(problem="other", f=0.0)])
    assert "T = 1e-08" in text
    assert "quad: 3 task(s), f* from reference" in text
    assert "other: 1 task(s)" in text
    b1 = next(line for line in text.splitlines() if line.startswith("b1 ") and "2/3" in line)
    assert b1.split()[:6] == ["b1", "o1", "3", "2/3", "(67%)", "1"]
    assert "300.0 ms" in b1 and "1e-10" in b1
    assert report.summary_text([]) == "no records"


# ---- the performance profile ---------------------------------------------------------------

def test_performance_profile_by_hand():
    # Three tasks, two solvers. A: 1 s, 2 s, never. B: 2 s, 1 s, 4 s.
    # Ratios A: 1, 2, inf; B: 2, 1, 1.
    prof = report.profile_from_times({"A": {"t1": 1.0, "t2": 2.0, "t3": None},
                                      "B": {"t1": 2.0, "t2": 1.0, "t3": 4.0}})
    assert prof.ratios == [[1.0, 2.0, math.inf], [2.0, 1.0, 1.0]]
    assert prof.rho(1.0) == {"A": pytest.approx(1 / 3), "B": pytest.approx(2 / 3)}
    assert prof.rho(1.9) == {"A": pytest.approx(1 / 3), "B": pytest.approx(2 / 3)}
    assert prof.rho(2.0) == {"A": pytest.approx(2 / 3), "B": pytest.approx(1.0)}
    assert prof.rho(1e9) == {"A": pytest.approx(2 / 3), "B": pytest.approx(1.0)}
    assert prof.breakpoints() == [1.0, 2.0]
    # A task nobody solved stays in the count; a task already solved at t = 0 gives ratio 1.
    prof = report.profile_from_times({"A": {"t1": 0.0, "t2": None}, "B": {"t1": 0.0}})
    assert prof.ratios == [[1.0, math.inf], [1.0, math.inf]]
    assert prof.rho(100.0) == {"A": 0.5, "B": 0.5}


def test_performance_profile_from_records_matches_hand_computation():
    def run(backend: str, seed: int, t: float | None) -> dict[str, Any]:
        trace = [[0, 0.0, 5.0]] + ([[3, t, 0.0]] if t is not None else [[3, 1.0, 1.0]])
        return rec(backend=backend, seed=seed, trace=trace, f=0.0 if t is not None else 1.0,
                   status="max_steps" if t is not None else "diverged")

    records = [run("A", 0, 1.0), run("A", 1, 2.0), run("A", 2, None),
               run("B", 0, 2.0), run("B", 1, 1.0), run("B", 2, 4.0)]
    prof = report.performance_profile(records)
    assert prof.solvers == ["A/o1", "B/o1"]
    assert prof.ratios == [[1.0, 2.0, math.inf], [2.0, 1.0, 1.0]]
    assert prof.rho(2.0) == {"A/o1": pytest.approx(2 / 3), "B/o1": pytest.approx(1.0)}


# ---- reading ---------------------------------------------------------------------------------

def test_read_records_skips_a_truncated_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    lines = [json.dumps(r) for r in hand_records()[:2]]
    path.write_text("\n".join(lines) + "\n" + lines[0][:40], encoding="utf-8")
    with pytest.warns(UserWarning, match="truncated"):
        assert report.read_records(path) == hand_records()[:2]
    # Through the results store's reader: a broken line elsewhere is skipped, and counted.
    path.write_text(lines[0][:40] + "\n" + lines[1] + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"skipped 1 line that is not a run record \(line 1 "):
        assert report.read_records(path) == hand_records()[1:2]


def test_importing_the_report_does_not_import_matplotlib():
    code = "import sys, optbench.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ---- plots and the page, on a real campaign --------------------------------------------------

@pytest.fixture(scope="module")
def campaign() -> list[dict[str, Any]]:
    """3 problems × 3 backends × 3 optimizers × 3 seeds = 81 runs of 200 steps at most."""
    pytest.importorskip("torch")
    pytest.importorskip("autograd")
    from optbench.api import execute, plan

    host = {"hostname": "test-host", "cpu": "test cpu", "cores": 4, "device": "cpu",
            "device_name": "test cpu", "versions": {"python": "3", "optbench": "0.1.0"}}
    records = []
    for problem in ("regression", "puzzle", "rosenbrock"):
        for optimizer in ("nadam", "adam", "lbfgs"):
            for seed in range(3):
                p = plan(problem, ["torch", "autograd", "fd"], optimizer, steps=200, seed=seed,
                         lr=None if optimizer == "lbfgs" else 0.1)
                for backend in p.backends:
                    r = execute(p, backend).to_json()
                    r.update(campaign="test-campaign", host=host, tol=None, max_steps=200)
                    records.append(json.loads(json.dumps(r)))  # as read back from a file
    return records


def test_campaign_summary(campaign):
    assert len(campaign) == 81
    rows = report.summary(campaign)
    assert len(rows) == 27 and all(r["runs"] == 3 for r in rows)
    # L-BFGS reaches 1e-8 on all three problems, on every backend.
    assert all(r["success_rate"] == 1.0 for r in rows if r["optimizer"] == "lbfgs")
    assert all(r["fstar_source"] == "reference" for r in rows)


@pytest.fixture(scope="module")
def plot_paths(campaign, tmp_path_factory) -> list[Path]:
    return report.plots(campaign, tmp_path_factory.mktemp("plots"))


def test_plots_are_written_as_png(plot_paths):
    names = [p.name for p in plot_paths]
    assert names == ["convergence-puzzle.png", "time-to-target-puzzle.png",
                     "convergence-regression.png", "time-to-target-regression.png",
                     "convergence-rosenbrock.png", "time-to-target-rosenbrock.png",
                     "performance-profile.png", "more-wild-profiles.png"]
    for path in plot_paths:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, path
    assert not [p for p in plot_paths[0].parent.iterdir() if p not in plot_paths]  # no temp


def test_figures_are_deterministic():
    records = hand_records()
    first, second = report.figures(records), report.figures(records)
    assert [f.name for f in first] == ["convergence-quad.png", "time-to-target-quad.png",
                                       "performance-profile.png"]
    assert [f.png for f in first] == [f.png for f in second]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.imgs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "data", "poster", "srcset") and value:
                self.urls.append(value)
        if tag == "img":
            self.imgs.append(dict(attrs).get("src") or "")


@pytest.fixture(scope="module")
def page(campaign, tmp_path_factory) -> Path:
    """The page with PNG figures (as without plotly)."""
    return report.html(campaign, tmp_path_factory.mktemp("html") / "report.html",
                       interactive=False)


@pytest.fixture(scope="module")
def interactive_page(campaign, tmp_path_factory) -> Path:
    pytest.importorskip("plotly")
    return report.html(campaign, tmp_path_factory.mktemp("html") / "report.html",
                       interactive=True)


def test_static_html_is_self_contained_and_embeds_every_figure(campaign, page, plot_paths):
    text = page.read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(text)
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert all(u.startswith("data:image/png;base64,") for u in parsed.urls)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    # Every figure, byte for byte as plots() wrote it, and nothing else.
    embedded = [base64.b64decode(src.split(",", 1)[1]) for src in parsed.imgs]
    assert embedded == [p.read_bytes() for p in plot_paths]
    _assert_static_content(text, parsed)


def _assert_static_content(text: str, parsed: _Page) -> None:
    """The summary table, the campaign, the hosts and the target rule."""
    assert parsed.tags.count("table") >= 3 + 1 + 1
    for needle in ("median time to target", "test-campaign", "test-host", "T = 1e-08",
                   "<h3>regression</h3>", "closed-form optimum", "<figcaption>"):
        assert needle in text, needle


class _Scripts(HTMLParser):
    """The page's <script> elements: (attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self.csp = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))
        if tag == "meta" and dict(attrs).get("http-equiv") == "Content-Security-Policy":
            self.csp = dict(attrs).get("content") or ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None


def test_interactive_html_is_self_contained(campaign, interactive_page):
    """No URL in any element outside the scripts; three inline scripts (the data, plotly.js,
    the page's), none with src; the policy runs exactly the two with code, by their hashes;
    the data's numbers are the summary's and the traces' own."""
    import hashlib

    text = interactive_page.read_text(encoding="utf-8")
    scripts = _Scripts()
    scripts.feed(text)
    kinds = [attrs.get("type") for attrs, _ in scripts.scripts]
    assert kinds == ["application/json", None, None]
    assert all("src" not in attrs for attrs, _ in scripts.scripts)
    outside = text
    for _, code in scripts.scripts:
        outside = outside.replace(code, "")
    parsed = _Page()
    parsed.feed(outside)
    assert parsed.urls == [] and parsed.imgs == [] and "link" not in parsed.tags
    assert "http://" not in outside and "https://" not in outside
    _assert_static_content(outside, parsed)

    policy = dict(part.strip().split(" ", 1) for part in scripts.csp.split(";"))
    assert policy["default-src"] == "'none'"
    hashes = ["'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
              + "'" for _, code in scripts.scripts[1:]]
    assert policy["script-src"].split() == hashes  # no 'unsafe-inline', no 'unsafe-eval'
    assert "plotly.js v" in scripts.scripts[1][1][:200]

    data = json.loads(scripts.scripts[0][1])
    assert len(data["solvers"]) == 9 and data["problems"] == ["puzzle", "regression",
                                                              "rosenbrock"]
    rows = report.summary(campaign)
    assert [(b["runs"], b["reached"]) for b in data["bars"]] == [
        (r["runs"], r["reached"]) for r in rows]
    # The median gap at step 0 of one solver, by hand: the middle of its three runs'.
    mine = [r for r in campaign if (r["problem"], r["backend"], r["optimizer"])
            == ("regression", "torch", "adam")]
    gaps = sorted((r["trace"][0][2] - r["reference"]["f"]) / max(1.0, abs(r["reference"]["f"]))
                  for r in mine)
    solver = next(i for i, s in enumerate(data["solvers"]) if s["label"] == "torch/adam")
    problem = data["problems"].index("regression")
    entry = next(e for e in data["convergence"]
                 if (e["problem"], e["solver"]) == (problem, solver))
    assert entry["steps"]["x"][0] == 0 and entry["runs"] == 3
    assert entry["steps"]["mid"][0] == pytest.approx(gaps[1], rel=1e-4)
    assert entry["steps"]["low"][0] == pytest.approx(gaps[0], rel=1e-4)
    assert data["more_wild"] is not None and len(data["more_wild"]["costs"]) == 9


def test_names_cannot_end_the_data_element():
    """The JSON blob holds names verbatim, yet no `<`, `>` or `&` reaches the HTML: a name
    cannot close the <script> element, open a comment, or be read as an entity."""
    from optbench.report.interactive import json_for_html

    names = ["</script><script>alert(1)</script>", "<!-- x", "a & b &amp; c", "$x$ ' \"",
             "line\u2028sep"]
    text = json_for_html({"names": names, "n": 1.5})
    assert not set("<>&") & set(text)
    assert json.loads(text) == {"names": names, "n": 1.5}
    with pytest.raises(ValueError):
        json_for_html({"bad": math.inf})  # JSON.parse would refuse the page's data


def test_interactive_page_escapes_names_and_embeds_safe_code(tmp_path):
    pytest.importorskip("plotly")
    from optbench.report import interactive

    records = [dict(r, problem="p</script><!--", backend='b"<b>' if r["backend"] == "b1"
                    else r["backend"]) for r in hand_records()]
    text = report.render(records, interactive=True)
    scripts = _Scripts()
    scripts.feed(text)
    assert len(scripts.scripts) == 3  # the name did not end an element early
    data = json.loads(scripts.scripts[0][1])
    assert data["problems"] == ["p</script><!--"]
    assert {s["backend"] for s in data["solvers"]} == {'b"<b>', "b2"}
    assert 'b"<b>' not in text.replace(interactive.plotly_js(), "")
    with pytest.raises(RuntimeError, match="cannot be embedded"):
        interactive._inline_safe("var a = '</script>';", "x.js")


def test_html_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("previous", encoding="utf-8")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(page_module, "figures", broken)
    monkeypatch.setattr(page_module, "interactive_section", broken)
    for interactive in (False, True):
        with pytest.raises(RuntimeError, match="drawing failed"):
            report.html(hand_records(), path, interactive=interactive)
        assert path.read_text(encoding="utf-8") == "previous"
        assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    monkeypatch.undo()
    report.html(hand_records(), path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


# ---- static figures for papers: --figure-format ----------------------------------------------

SIGNATURES = {"png": PNG_SIGNATURE, "svg": b"<?xml", "pdf": b"%PDF-"}


def test_plots_in_every_format_are_deterministic(tmp_path):
    first = report.plots(hand_records(), tmp_path / "a", formats="png,svg,pdf")
    second = report.plots(hand_records(), tmp_path / "b", formats=["pdf", "svg", "png"])
    assert [p.name for p in first] == [f"{stem}.{fmt}" for stem in (
        "convergence-quad", "time-to-target-quad", "performance-profile")
        for fmt in ("png", "svg", "pdf")]
    assert sorted(p.name for p in second) == sorted(p.name for p in first)
    for path in first:
        data = path.read_bytes()
        assert data.startswith(SIGNATURES[path.suffix[1:]]), path
        assert data == (tmp_path / "b" / path.name).read_bytes(), path
    svg = (tmp_path / "a" / "convergence-quad.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "<path" in svg


def test_report_cli_figure_formats(tmp_path, capsys):
    from clitools import run_main

    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in hand_records()),
                       encoding="utf-8")
    code, _, err = run_main(capsys, "report", str(results), "--plot", str(tmp_path / "fig"),
                            "--figure-format", "svg, PDF")
    assert code == 0, err
    assert sorted(p.suffix for p in (tmp_path / "fig").iterdir()) == [".pdf"] * 3 + [".svg"] * 3


@pytest.mark.parametrize("value, needle", [("png,jpeg", "'jpeg'"), ("", "no figure format"),
                                           ("svg,,x", "'x'")])
def test_report_cli_refuses_a_bad_figure_format_and_writes_nothing(tmp_path, capsys, value,
                                                                  needle):
    from clitools import assert_usage_error, run_main

    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in hand_records()),
                       encoding="utf-8")
    assert_usage_error(*run_main(capsys, "report", str(results), "--plot",
                                 str(tmp_path / "fig"), "--html", str(tmp_path / "r.html"),
                                 "--figure-format", value),
                       "--figure-format", needle, "png, svg, pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
    assert_usage_error(*run_main(capsys, "report", str(results), "--figure-format", "svg"),
                       "--figure-format", "--plot")


# ---- the page in a real browser --------------------------------------------------------------

def browse(page: Path, workdir: Path) -> tuple[list[dict[str, Any]], list[dict], bytes]:
    """Open `page` in headless chromium: (protocol events, one dict per <img>, screenshot)."""
    if not CHROMIUM.exists():
        pytest.skip("headless chromium is not installed (/usr/bin/chromium; apt-get install "
                    "chromium)")
    browser = DevTools(workdir / "profile", workdir / "chromium.log")
    try:
        browser.open_tab()
        browser.send("Page.navigate", {"url": page.resolve().as_uri()})
        browser.wait(lambda m: m.get("method") == "Page.loadEventFired", timeout=60)
        images = json.loads(browser.send("Runtime.evaluate", {
            "expression": IMAGES_JS, "returnByValue": True})["result"]["value"])
        shot = base64.b64decode(browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True})["data"])
    finally:
        browser.close()
    return browser.events, images, shot


def problems(page: Path, events: list[dict[str, Any]], images: list[dict]) -> list[str]:
    """Console errors and warnings, failed loads, uncaught exceptions, requests for anything
    but the page itself and its data: images, and images not decoded or not laid out."""
    found = []
    for e in events:
        method, params = e["method"], e["params"]
        if (reported := reported_problems(e)) is not None:
            found.append(reported)
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url != page.resolve().as_uri() and not url.startswith("data:image/png;base64,"):
                found.append(f"request for {url[:100]}")
    for i, image in enumerate(images):
        if not (image["complete"] and image["width"] > 0 and image["height"] > 0
                and image["shown"] > 0):
            found.append(f"image {i} not displayed: {image}")
    return found


@pytest.mark.slow
def test_html_displays_in_headless_chromium(page, tmp_path):
    """The page loads with no console error or warning, no failed load, no exception and no
    request but its own file:// URL and data: images; each <img> is decoded (complete,
    naturalWidth > 0) and laid out (non-zero box); and the full-page screenshot is not blank.
    The screenshot stays in tmp_path (report.png) and is copied, with the page, to
    $OPTBENCH_ARTIFACTS when that is set."""
    events, images, shot = browse(page, tmp_path)
    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(shot)
    if os.environ.get("OPTBENCH_ARTIFACTS"):
        artifacts = Path(os.environ["OPTBENCH_ARTIFACTS"])
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, artifacts / "report.png")
        shutil.copy(page, artifacts / "report.html")

    assert problems(page, events, images) == []
    assert len(images) == len(_parsed(page).imgs) == 8

    from PIL import Image  # comes with matplotlib

    with Image.open(screenshot) as im:
        assert im.width >= 1000 and im.height > 2000  # the whole page, figures included
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 100  # not blank: text, lines, colours


@pytest.mark.slow
def test_the_browser_check_catches_a_broken_page(tmp_path):
    """The control: an external image (refused by the page's policy) and an undecodable one
    are both reported."""
    good = report.render(hand_records(), interactive=False)
    broken = good.replace("<body>", '<body><img src="https://example.invalid/x.png" alt="x">'
                          '<img src="data:image/png;base64,AAAA" alt="y">', 1)
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    events, images, _ = browse(path, tmp_path)
    found = problems(path, events, images)
    assert any("example.invalid" in p and "request" in p for p in found), found
    assert any("Content Security Policy" in p for p in found), found
    assert sum(p.startswith("image ") for p in found) == 2, found
    assert len(images) == 2 + 3


def _parsed(path: Path) -> _Page:
    parsed = _Page()
    parsed.feed(path.read_text(encoding="utf-8"))
    return parsed


# ---- names are text, never markup; files get the usual mode ---------------------------------

# matplotlib reads a pair of unescaped `$` as mathtext: `\undefined` made it raise, and `\alpha`
# would have been drawn as a Greek letter.
DOLLAR_NAMES = {"problem": r"p$\undefined$x", "backend": r"b$\alpha$", "optimizer": "o$1$",
                "hostname": "h$_2$"}


def dollar_records() -> list[dict[str, Any]]:
    names = DOLLAR_NAMES
    out = []
    for r in hand_records():
        r = dict(r, problem=names["problem"], optimizer=names["optimizer"],
                 backend=names["backend"] if r["backend"] == "b1" else r["backend"])
        r["host"] = dict(r["host"], hostname=names["hostname"])
        out.append(r)
    return out


@pytest.fixture
def drawn_text(monkeypatch) -> list[tuple[str, bool]]:
    """Every string the Agg renderer draws meanwhile, with whether it was drawn as mathtext."""
    from matplotlib.backends.backend_agg import RendererAgg

    drawn: list[tuple[str, bool]] = []
    real = RendererAgg.draw_text

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        drawn.append((s, bool(ismath)))
        return real(self, gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    monkeypatch.setattr(RendererAgg, "draw_text", draw_text)
    return drawn


def test_names_with_dollars_are_drawn_literally_in_every_figure(drawn_text):
    figs = report.figures(dollar_records(), by="host")
    assert [f.name for f in figs] == ["convergence-p-undefined-x.png",
                                      "time-to-target-p-undefined-x.png",
                                      "performance-profile.png"]
    math = [s for s, ismath in drawn_text if ismath]
    plain = [s for s, ismath in drawn_text if not ismath]
    for name in DOLLAR_NAMES.values():
        assert not [s for s in math if name in s], name
        assert [s for s in plain if name in s], (name, plain)
    # Titles (problem), legends (solvers, optimizers), tick labels (backends) in each figure.
    assert sum(DOLLAR_NAMES["problem"] in s for s in plain) >= 2
    assert sum(DOLLAR_NAMES["backend"] in s for s in plain) >= 3
    assert math  # the log axes' own labels are still mathtext (10^k)


def test_report_cli_with_dollar_names(tmp_path, capsys):
    from clitools import run_main

    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in dollar_records()),
                       encoding="utf-8")
    code, out, err = run_main(capsys, "report", str(results), "--plot", str(tmp_path / "fig"),
                              "--html", str(tmp_path / "r.html"), "--by", "host")
    assert code == 0, err
    assert DOLLAR_NAMES["problem"] in out
    assert len(list((tmp_path / "fig").iterdir())) == 3
    assert _html_escape(DOLLAR_NAMES["backend"]) in (tmp_path / "r.html").read_text("utf-8")


def _html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_report_files_get_the_mode_the_umask_gives(tmp_path, umask):
    # What open() would have made: 0o666 less the umask (mkstemp made 0o600 whatever it was).
    old = os.umask(umask)
    try:
        paths = [*report.plots(hand_records(), tmp_path / "fig"),
                 report.html(hand_records(), tmp_path / "r.html")]
    finally:
        os.umask(old)
    for path in paths:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_plots_of_a_problem_where_every_run_diverged_at_its_start(tmp_path, capsys):
    """MGH's Jennrich-Sampson from 100·x0 overflows at x0: every run ends `diverged` at step
    0 with no finite f. `report --plot` failed on it ("Data cannot be log-scaled because all
    values are <= 0"); its convergence figure now says so, and the report completes."""
    from clitools import run_main

    results = tmp_path / "r.jsonl"
    code, _, err = run_main(capsys, "bench", "--problem", "mgh", "-P", "number=6",
                            "-P", "start=100", "--backend", "fd", "--optimizer", "lbfgs",
                            "--steps", "5", "-o", str(results))
    assert code == 0, err
    assert json.loads(results.read_text())["status"] == "diverged"
    code, _, err = run_main(capsys, "report", str(results), "--plot", str(tmp_path / "plots"))
    assert code == 0, err
    assert any(p.name.endswith(".png") for p in (tmp_path / "plots").iterdir())


def test_without_plotly_the_page_keeps_png_figures_and_the_cli_says_so(tmp_path, capsys,
                                                                     monkeypatch):
    from clitools import run_main

    monkeypatch.setattr(page_module, "plotly_available", lambda: False)
    monkeypatch.setattr(report, "interactive_available", lambda: False)
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in hand_records()),
                       encoding="utf-8")
    code, _, err = run_main(capsys, "report", str(results), "--html", str(tmp_path / "r.html"))
    assert code == 0, err
    assert "plotly is not installed" in err and "optbench[report]" in err
    parsed = _parsed(tmp_path / "r.html")
    assert len(parsed.imgs) == 3 and "script" not in parsed.tags
