"""The report's figures, drawn with matplotlib's Agg renderer into PNG bytes.

matplotlib is imported only when a figure is drawn, and pyplot never: each figure is a
`matplotlib.figure.Figure` on its own Agg canvas, so no global backend is switched and a
caller's interactive session is left alone. PNGs carry no timestamp or version metadata, so
the same records give the same bytes.

Figures:
- convergence-<problem>.png: (f − f*) / max(1, |f*|) against steps and against loop time,
  log scale, the median over a solver's runs (seeds) with the 25–75% band, one line per
  backend/optimizer. Quantiles are by nearest rank, so that a diverged run (an infinite gap)
  is never averaged with a finite one; a gap of 0 is drawn at a floor.
- time-to-target-<problem>.png: median time to target per backend, one bar per optimizer,
  labelled with the runs that reached it (k/n); no bar where none did.
- performance-profile.png: Dolan–Moré profile of time to target over all tasks.
- more-wild-profiles.png (records of several problems): Moré–Wild data profile and performance
  profile over gradient evaluations (optbench.report.profiles).

Names (of problems, backends, optimizers, hosts) are text, never markup: every artist that
shows one is drawn with mathtext and TeX off (`_literal`), so `$` in a name is a dollar sign.
Escaping instead cannot work: matplotlib reads a backslash-dollar as an escape only in a
string that has a pair of unescaped dollars, and shows it as it is elsewhere.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optbench.report.data import DEFAULT_TARGET, Run, analyze, extra_keys, slug
from optbench.report.profile import Profile, _profile
from optbench.report.profiles import DEFAULT_TAU, Profiles, applies, profiles
from optbench.report.summary import _median
from optbench.userfiles import write_atomic

DPI = 100
FLOOR = 1e-16
"""Gaps below this (and exact zeros: the run that set f*) are drawn at it."""
GRID_POINTS = 200


FORMATS = ("png", "svg", "pdf")
"""The file formats `plots` writes (`optbench report --figure-format`)."""


@dataclass(frozen=True)
class Figure:
    name: str      # file name, e.g. "convergence-regression.png"
    title: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class _Drawn:
    stem: str      # file name without its extension, unique within a report
    title: str
    caption: str
    figure: Any    # a matplotlib Figure on an Agg canvas

    @property
    def png(self) -> bytes:
        return _encode(_laid_out(self.figure), "png")


def check_formats(formats: str | Sequence[str]) -> list[str]:
    """The formats of a comma list ("png,svg") or a sequence, in order, each once; a
    ValueError that names the bad one and lists those accepted."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in items:
        fmt = str(item).strip().lower()
        if not fmt:  # "png," or "png,,svg"
            continue
        if fmt not in FORMATS:
            raise ValueError(f"figure format {str(item)!r} is not accepted: expected a comma "
                             f"list of {', '.join(FORMATS)}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise ValueError(f"no figure format given: expected a comma list of "
                         f"{', '.join(FORMATS)}")
    return out


def _draw(records: Sequence[Mapping[str, Any]], target: float,
          by: str | Sequence[str] | None, tau: float) -> Iterator[_Drawn]:
    """Each figure of a report as it is drawn (one at a time: a suite's hundreds of figures
    are never all held at once)."""
    runs = analyze(records, target)
    if not runs:
        return
    extra = extra_keys(runs, by)
    stems: set[str] = set()

    def unique(stem: str) -> str:
        name, k = stem, 2
        while name in stems:
            name, k = f"{stem}-{k}", k + 1
        stems.add(name)
        return name

    for problem in sorted({r.problem for r in runs}):
        mine = [r for r in runs if r.problem == problem]
        if any(r.fstar is not None for r in mine):
            yield _convergence(mine, problem, extra, target,
                               unique(f"convergence-{slug(problem)}"))
        yield _bars(mine, problem, extra, target, unique(f"time-to-target-{slug(problem)}"))
    yield _profile_figure(_profile(runs, extra), _styles(runs, extra), target,
                          unique("performance-profile"))
    if applies(records):
        yield _more_wild_figure(profiles(records, tau, by=by), _styles(runs, extra),
                                unique("more-wild-profiles"))


def figures(records: Sequence[Mapping[str, Any]], target: float = DEFAULT_TARGET, *,
            by: str | Sequence[str] | None = None, tau: float = DEFAULT_TAU) -> list[Figure]:
    """All figures of a report as PNGs, in order: per problem its convergence curves and its
    time-to-target bars, then the performance profile, then (several problems) the Moré–Wild
    profiles at tolerance `tau`."""
    return [Figure(f"{d.stem}.png", d.title, d.caption, _encode(_laid_out(d.figure), "png"))
            for d in _draw(records, target, by, tau)]


def plots(records: Sequence[Mapping[str, Any]], out_dir: str | Path,
          target: float = DEFAULT_TARGET, *,
          by: str | Sequence[str] | None = None, tau: float = DEFAULT_TAU,
          formats: str | Sequence[str] = ("png",)) -> list[Path]:
    """Write the figures into `out_dir` (created if missing), each in every one of `formats`
    (png, svg, pdf: for papers); return their paths. Each file is written whole (temporary
    file, then rename)."""
    formats = check_formats(formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for drawn in _draw(records, target, by, tau):
        _laid_out(drawn.figure)
        for fmt in formats:
            path = out / f"{drawn.stem}.{fmt}"
            write_atomic(path, _encode(drawn.figure, fmt))
            paths.append(path)
    return paths


# ---- drawing ------------------------------------------------------------------------------

def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _laid_out(fig: Any) -> Any:
    """Lay the figure out once, then keep that layout: constrained layout started again from
    its previous result on every save, so a PNG saved after an SVG differed from one saved
    first."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return fig


METADATA = {"png": {"Software": None}, "svg": {"Date": None},
            "pdf": {"CreationDate": None, "ModDate": None}}
"""No timestamps (and no version in PNGs): the same records give the same bytes."""


def _encode(fig: Any, fmt: str) -> bytes:
    from matplotlib import rc_context

    buf = io.BytesIO()
    # SVG element ids are random unless salted.
    with rc_context({"svg.hashsalt": "optbench"}):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=METADATA[fmt])
    return buf.getvalue()


def _literal(*texts: Any) -> None:
    """Show these Text artists as they are: no mathtext (`$...$`), no TeX."""
    for text in texts:
        text.set_parse_math(False)
        text.set_usetex(False)


def _legend(ax: Any, **kwargs: Any) -> None:
    legend = ax.legend(**kwargs)
    _literal(*legend.get_texts(), legend.get_title())


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2))]


def _styles(runs: Sequence[Run], extra: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per solver: the colour of its optimizer and the line style of its backend (with the
    extra keys), so that one optimizer's backends read as one family of lines."""
    optimizers = sorted({r.optimizer for r in runs})
    backends = sorted({r.backend + _suffix(r, extra) for r in runs})
    colors = dict(zip(optimizers, _colors(len(optimizers)), strict=True))
    return {r.solver(extra): {"color": colors[r.optimizer], "ls": LINESTYLES[
        backends.index(r.backend + _suffix(r, extra)) % len(LINESTYLES)]} for r in runs}


def _quantiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """25%, 50%, 75% by nearest rank along axis 0; inf stays inf."""
    q = np.quantile(values, [0.25, 0.5, 0.75], axis=0, method="nearest")
    return q[0], q[1], q[2]


def _sample(points: list[tuple[float, float]], grid: np.ndarray) -> np.ndarray:
    """The value at each grid position: that of the last point at or before it (the first
    point's before it; the last one's after the run ended)."""
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    idx = np.searchsorted(xs, grid, side="right") - 1
    return ys[np.clip(idx, 0, len(ys) - 1)]


@dataclass(frozen=True)
class Curve:
    """One solver's convergence on one problem against steps or loop time: the scaled gap's
    25%, 50% and 75% over its runs at each x (nan where not finite)."""

    x: np.ndarray
    low: np.ndarray
    mid: np.ndarray
    high: np.ndarray
    runs: int


def convergence_curves(runs: Sequence[Run], extra: Sequence[str], target: float
                       ) -> dict[str, dict[str, Curve]]:
    """Per solver (sorted), its curves against "steps" and "time" (the runs of one problem).
    Steps: at every sampled step of any run; time: on a geometric grid over the positive
    loop times (for a log axis). Gaps below min(FLOOR, target/100) are put at it."""
    floor = min(FLOOR, target / 100)
    out: dict[str, dict[str, Curve]] = {}
    for solver in sorted({r.solver(extra) for r in runs}):
        traces = [t for r in runs if r.solver(extra) == solver and (t := r.trace())]
        if not traces:
            continue
        curves = out.setdefault(solver, {})
        for key, column in (("steps", 0), ("time", 1)):
            points = [sorted({p[column]: max(p[2], floor) for p in t}.items()) for t in traces]
            xs = np.array(sorted({x for pts in points for x, _ in pts}), dtype=float)
            if column == 1:  # time on a log axis: a geometric grid over the positive times
                positive = xs[xs > 0]
                if not positive.size:
                    continue
                lo, hi = positive.min(), positive.max()
                xs = np.geomspace(lo, hi, GRID_POINTS) if hi > lo else positive[:1]
            values = np.vstack([_sample(pts, xs) for pts in points])
            low, mid, high = (np.where(np.isfinite(q), q, np.nan) for q in _quantiles(values))
            curves[key] = Curve(xs, low, mid, high, len(traces))
    return out


def _convergence(runs: Sequence[Run], problem: str, extra: Sequence[str], target: float,
                 name: str) -> _Drawn:
    floor = min(FLOOR, target / 100)
    styles = _styles(runs, extra)
    fig = _new_figure(13, 4.2)
    ax_steps, ax_time = fig.subplots(1, 2)
    seeds = len({r.task for r in runs})
    drawn = False
    for solver, curves in convergence_curves(runs, extra, target).items():
        color = styles[solver]["color"]
        for ax, key in ((ax_steps, "steps"), (ax_time, "time")):
            c = curves.get(key)
            if c is None:
                continue
            ax.plot(c.x, c.mid, color=color, ls=styles[solver]["ls"], lw=1.6, label=solver)
            drawn = drawn or bool(np.any(np.isfinite(c.mid)))
            if c.runs > 1:
                ax.fill_between(c.x, c.low, c.high, color=color, alpha=0.18, lw=0)
    for ax, xlabel in ((ax_steps, "steps"), (ax_time, "loop time (s)")):
        ax.set_yscale("log")
        ax.axhline(target, color="0.3", lw=0.8, ls="--", label=f"target T = {target:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("(f − f*) / max(1, |f*|)")
        ax.grid(True, which="major", alpha=0.3)
    if not drawn:  # every run's f was inf or nan (diverged at its start): say so, and give
        # the log axes limits of their own (matplotlib refuses to log-scale no data)
        ax_time.set_xlim(1e-6, 1.0)
        for ax in (ax_steps, ax_time):
            ax.set_ylim(floor, 1.0)
            ax.text(0.5, 0.5, "no finite f in any run", transform=ax.transAxes,
                    ha="center", va="center", color="0.3")
    ax_time.set_xscale("log")
    _legend(ax_time, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    _literal(fig.suptitle(f"{problem}: convergence (median of {seeds} task(s), band 25–75%)"))
    caption = (f"{problem}: the gap to f*, relative to max(1, |f*|), against steps (left) and "
               f"loop time (right); median over runs (seeds) with the 25–75% band; dashed: "
               f"the target {target:g}; gaps below {floor:g} are drawn at {floor:g}.")
    return _Drawn(name, f"{problem}: convergence", caption, fig)


def _bars(runs: Sequence[Run], problem: str, extra: Sequence[str], target: float,
          name: str) -> _Drawn:
    groups = sorted({r.backend + _suffix(r, extra) for r in runs})
    optimizers = sorted({r.optimizer for r in runs})
    colors = _colors(len(optimizers))
    fig = _new_figure(max(5.0, 1.2 + 0.45 * len(groups) * len(optimizers)), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(optimizers)
    medians = [t for r in runs if (t := r.time_to_target) is not None and t > 0]
    bottom = min(medians) / 3 if medians else 1e-4
    for i, opt in enumerate(optimizers):
        for g, group in enumerate(groups):
            cell = [r for r in runs if r.optimizer == opt and r.backend + _suffix(r, extra)
                    == group]
            if not cell:
                continue
            x = g - 0.4 + width * (i + 0.5)
            reached = [r.time_to_target for r in cell if r.time_to_target is not None]
            median = _median(reached)
            height = max(median, bottom) if median is not None else None
            if height is not None:
                ax.bar(x, height, width * 0.9, color=colors[i])
            ax.annotate(f"{len(reached)}/{len(cell)}", (x, height or bottom),
                        xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(bottom=bottom)
    # The tick labels made here are the ones drawn: a fixed locator keeps their number.
    ax.set_xticks(range(len(groups)), groups)
    _literal(*ax.get_xticklabels())
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel("median time to target (s)")
    _literal(ax.set_title(f"{problem}: time to target (T = {target:g})"))
    ax.grid(True, axis="y", which="major", alpha=0.3)
    from matplotlib.patches import Patch

    _legend(ax, handles=[Patch(color=c, label=o)
                         for o, c in zip(optimizers, colors, strict=True)],
            fontsize=7, title="optimizer", title_fontsize=7)
    caption = (f"{problem}: median time to target per backend, one bar per optimizer, over "
               f"the runs that reached it; k/n above a bar: runs that reached the target of "
               f"all runs; no bar where none did.")
    return _Drawn(name, f"{problem}: time to target", caption, fig)


def _suffix(run: Run, extra: Sequence[str]) -> str:
    return "".join(f" {getattr(run, k)}" for k in extra)


def _profile_figure(profile: Profile, styles: Mapping[str, Mapping[str, Any]], target: float,
                    name: str) -> _Drawn:
    fig = _new_figure(9, 4.5)
    ax = fig.subplots()
    taus = profile.breakpoints()
    right = max(1.0, math.log2(taus[-1]) * 1.1) if taus else 1.0
    xs = [math.log2(t) for t in taus] + [right]
    for solver in profile.solvers:
        ys = [profile.rho(t)[solver] for t in taus]
        ys.append(ys[-1])
        ax.step(xs, ys, where="post", lw=1.5, label=solver, **styles.get(solver, {}))
    ax.set_xlim(0, right)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("log2 τ  (time to target / best time on the task)")
    ax.set_ylabel("ρ(τ): share of tasks within τ of the best")
    ax.set_title(f"Performance profile: time to target T = {target:g}, "
                 f"{len(profile.tasks)} task(s)")
    ax.grid(True, alpha=0.3)
    _legend(ax, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    caption = (f"Dolan–Moré performance profile over {len(profile.tasks)} task(s) (problem, "
               f"parameters, seed): for each backend/optimizer, the share of tasks it solved "
               f"within a factor τ of the fastest; a task it did not solve counts as never "
               f"solved, so a curve's right end is its success rate.")
    return _Drawn(name, "Performance profile", caption, fig)


def _more_wild_figure(p: Profiles, styles: Mapping[str, Mapping[str, Any]], name: str
                      ) -> _Drawn:
    """Left: d_s(α) against α (gradient evaluations per n+1, log scale); right: ρ_s(r)
    against log2 r, both as steps at their breakpoints."""
    fig = _new_figure(12, 4.5)
    left, right = fig.subplots(1, 2)
    per_dim = p.costs / (p.dims[:, None] + 1.0)  # the α at which each cell is solved
    alphas = np.unique(np.concatenate([[1.0], per_dim[np.isfinite(per_dim)]]))
    a_max = max(alphas[-1] * 1.5, 10.0)
    a_grid = np.concatenate([alphas, [a_max]])
    d = p.data(a_grid)
    ratios = p.ratios()
    r_points = np.unique(np.concatenate([[1.0], ratios[np.isfinite(ratios)]]))
    r_max = max(r_points[-1] * 1.5, 2.0)
    r_grid = np.concatenate([r_points, [r_max]])
    rho = p.performance(r_grid)
    for i, solver in enumerate(p.solvers):
        style = styles.get(solver, {})
        left.step(a_grid, d[i], where="post", lw=1.5, label=solver, **style)
        right.step(np.log2(r_grid), rho[i], where="post", lw=1.5, label=solver, **style)
    left.set_xscale("log")
    left.set_xlim(a_grid[0], a_max)
    left.set_xlabel("α: gradient evaluations / (n + 1)")
    left.set_ylabel("share of tasks solved")
    left.set_title(f"Data profile, τ = {p.tau:g}, {len(p.problems)} task(s)")
    right.set_xlim(0, math.log2(r_max))
    right.set_xlabel("log2 r  (gradient evaluations / fewest on the task)")
    right.set_title("Performance profile (gradient evaluations)")
    for ax in (left, right):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
    _legend(right, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    sources = ", ".join(f"{k} on {v}" for k, v in sorted(p.f_low_sources.items())) or "-"
    caption = (f"Moré–Wild (2009) profiles over {len(p.problems)} task(s): a solver solves a "
               f"task at the first sampled point with f(x0) − f ≥ (1 − τ)(f(x0) − f_L), "
               f"τ = {p.tau:g}, f_L from {sources}; its cost is the gradient evaluations "
               f"until then (sampled trace: an upper bound, within ~21% past step 12). Left: "
               f"share of tasks solved within α(n + 1) evaluations; right: within a factor r "
               f"of the fewest any solver needed.")
    return _Drawn(name, "Moré–Wild profiles", caption, fig)
