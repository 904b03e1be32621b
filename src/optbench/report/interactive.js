// optbench report: builds the page's interactive figures from its JSON data with plotly.js.
// The numbers come computed from Python (optbench.report.interactive); this script filters
// them by the selectors and lays them out. Names are data: shown with textContent in the
// controls, and escaped for plotly (which reads a few HTML tags in its labels).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("optbench-data").textContent);
  const CONFIG = {displaylogo: false, responsive: true, typesetMath: false,
                  toImageButtonOptions: {format: "svg"}};
  const FONT = {family: "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif",
                size: 12};
  const GAP = "(f − f*) / max(1, |f*|)";

  // Plotly reads <br>, <b>, <a href> ... and entities in text: escape, so a name is shown
  // as it is.
  function t(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function rgba(hex, alpha) {  // "#rrggbb" -> "rgba(r,g,b,alpha)"
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  // ---- controls ----------------------------------------------------------------------------
  const problemSelect = document.getElementById("select-problem");
  data.problems.forEach(function (name, i) {
    problemSelect.appendChild(el("option", {value: String(i), textContent: name}));
  });
  const filters = {};
  for (const key of data.filters) {
    const values = Array.from(new Set(data.solvers.map(function (s) { return s[key]; })));
    values.sort();
    const box = document.getElementById("select-" + key);
    filters[key] = values.map(function (value) {
      const input = el("input", {type: "checkbox", checked: true, value: value});
      box.appendChild(el("label", {}, [input, document.createTextNode(" " + value)]));
      return input;
    });
  }
  const axis = {
    x: document.getElementById("select-x"),
    xscale: document.getElementById("select-xscale"),
    yscale: document.getElementById("select-yscale"),
  };

  function selectedSolvers() {
    const keep = new Set();
    data.solvers.forEach(function (s, i) {
      const ok = data.filters.every(function (key) {
        return filters[key].some(function (input) {
          return input.checked && input.value === String(s[key]);
        });
      });
      if (ok) keep.add(i);
    });
    return keep;
  }

  function layout(extra) {
    return Object.assign({
      font: FONT, margin: {l: 70, r: 20, t: 30, b: 60}, height: 430,
      hovermode: "closest", legend: {font: {size: 11}},
      paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    }, extra);
  }

  function axisStyle(extra) {
    return Object.assign({gridcolor: "#e6e6e6", zeroline: false, automargin: true,
                          exponentformat: "power"}, extra);
  }

  function message(text) {
    return [{text: t(text), xref: "paper", yref: "paper", x: 0.5, y: 0.5,
             showarrow: false, font: {color: "#555", size: 14}}];
  }

  // ---- figures -----------------------------------------------------------------------------
  function convergence(keep, problem) {
    const key = axis.x.value;
    const traces = [];
    for (const entry of data.convergence) {
      if (entry.problem !== problem || !keep.has(entry.solver) || !entry[key]) continue;
      const s = data.solvers[entry.solver];
      const c = entry[key];
      const group = "s" + entry.solver;
      if (c.low) {  // the 25–75% band: its lower edge, then the upper edge filled down to it
        traces.push({x: c.x, y: c.low, mode: "lines", line: {width: 0, color: s.color},
                     legendgroup: group, showlegend: false, hoverinfo: "skip",
                     type: "scatter"});
        traces.push({x: c.x, y: c.high, mode: "lines", line: {width: 0, color: s.color},
                     fill: "tonexty", fillcolor: rgba(s.color, 0.18), legendgroup: group,
                     showlegend: false, hoverinfo: "skip", type: "scatter"});
      }
      traces.push({x: c.x, y: c.mid, mode: "lines", name: t(s.label), legendgroup: group,
                   line: {color: s.color, dash: s.dash, width: 2}, type: "scatter",
                   hovertemplate: (key === "steps" ? "step %{x}" : "%{x:.3g} s") +
                     "<br>" + GAP + " %{y:.3g}<br>median of " + entry.runs + " run(s)"});
    }
    const target = {type: "line", xref: "paper", x0: 0, x1: 1, y0: data.target,
                    y1: data.target, line: {color: "#444", width: 1, dash: "dash"}};
    return {traces: traces, layout: layout({
      title: {text: t(data.problems[problem] || "") + ": convergence", font: {size: 14}},
      xaxis: axisStyle({title: {text: key === "steps" ? "steps" : "loop time (s)"},
                        type: axis.xscale.value}),
      yaxis: axisStyle({title: {text: GAP}, type: axis.yscale.value}),
      shapes: [target],
      annotations: traces.length ? [] : message(
        data.convergence.some(function (e) { return e.problem === problem; })
          ? "no solver selected" : "no f* known for this problem"),
    })};
  }

  function bars(keep, problem, success) {
    const rows = data.bars.filter(function (b) {
      return b.problem === problem && keep.has(b.solver);
    });
    const optimizers = Array.from(new Set(rows.map(function (b) {
      return data.solvers[b.solver].optimizer;
    }))).sort();
    const traces = optimizers.map(function (opt) {
      const mine = rows.filter(function (b) { return data.solvers[b.solver].optimizer === opt; });
      const s = data.solvers[mine[0].solver];
      return {
        type: "bar", name: t(opt), marker: {color: s.color},
        x: mine.map(function (b) { return t(data.solvers[b.solver].group); }),
        y: mine.map(function (b) { return success ? b.reached / b.runs : b.time; }),
        text: mine.map(function (b) { return b.reached + "/" + b.runs; }),
        textposition: "outside", cliponaxis: false,
        customdata: mine.map(function (b) {
          return [b.reached, b.runs, b.time === null ? "-" : b.time.toPrecision(3) + " s",
                  b.error === null ? "-" : b.error.toExponential(2)];
        }),
        hovertemplate: "%{x}<br>reached %{customdata[0]}/%{customdata[1]}" +
          "<br>median time to target %{customdata[2]}<br>median f − f* %{customdata[3]}",
      };
    });
    return {traces: traces, layout: layout({
      barmode: "group", height: 380,
      title: {text: t(data.problems[problem] || "") + (success ? ": success" :
        ": time to target (T = " + data.target + ")"), font: {size: 14}},
      xaxis: axisStyle({type: "category"}),
      yaxis: axisStyle(success ? {title: {text: "share of runs that reached the target"},
                                  range: [0, 1.12]}
                               : {title: {text: "median time to target (s)"}, type: "log"}),
      annotations: traces.length ? [] : message("no solver selected"),
    })};
  }

  // A step function through sorted breakpoints xs (the last one extended to `right`).
  function steps(xs, ys, right) {
    return {x: xs.concat([right]), y: ys.concat([ys[ys.length - 1]])};
  }

  // Performance ratios over the selected solvers (rows: solvers, columns: tasks): the best
  // is 1 (also 0/0), a task not solved is Infinity.
  function ratios(rows) {
    const n = rows.length ? rows[0].length : 0;
    const best = [];
    for (let j = 0; j < n; j++) {
      let b = Infinity;
      for (const row of rows) if (row[j] !== null && row[j] < b) b = row[j];
      best.push(b);
    }
    return rows.map(function (row) {
      return row.map(function (v, j) {
        if (v === null) return Infinity;
        if (v <= best[j]) return 1;
        return best[j] > 0 ? v / best[j] : Infinity;
      });
    });
  }

  function share(values, limit) {
    let k = 0;
    for (const v of values) if (v <= limit) k++;
    return values.length ? k / values.length : 0;
  }

  function uniqueSorted(values) {
    return Array.from(new Set(values)).sort(function (a, b) { return a - b; });
  }

  function ratioProfile(keep, solvers, rows, xtitle, title) {
    const chosen = [], chosenRows = [];
    solvers.forEach(function (si, i) {
      if (keep.has(si)) { chosen.push(si); chosenRows.push(rows[i]); }
    });
    const r = ratios(chosenRows);
    const finite = [];
    for (const row of r) for (const v of row) if (isFinite(v)) finite.push(v);
    const points = uniqueSorted([1].concat(finite));
    const right = Math.max(1, Math.log2(points[points.length - 1]) * 1.1);
    const traces = chosen.map(function (si, i) {
      const s = data.solvers[si];
      const line = steps(points.map(Math.log2), points.map(function (p) {
        return share(r[i], p);
      }), right);
      return {type: "scatter", mode: "lines", name: t(s.label), x: line.x, y: line.y,
              line: {shape: "hv", color: s.color, dash: s.dash, width: 2},
              hovertemplate: "log2 ratio %{x:.3g}<br>share %{y:.3f}"};
    });
    return {traces: traces, layout: layout({
      title: {text: title, font: {size: 14}},
      xaxis: axisStyle({title: {text: xtitle}, range: [0, right]}),
      yaxis: axisStyle({title: {text: "share of tasks"}, range: [-0.02, 1.02]}),
      annotations: traces.length ? [] : message("no solver selected"),
    })};
  }

  function dataProfile(keep) {
    const mw = data.more_wild;
    const perDim = [];
    mw.costs.forEach(function (row, p) {
      for (const c of row) if (c !== null) perDim.push(c / (mw.dims[p] + 1));
    });
    const alphas = uniqueSorted([1].concat(perDim));
    const right = Math.max(alphas[alphas.length - 1] * 1.5, 10);
    const traces = [];
    mw.solvers.forEach(function (si, i) {
      if (!keep.has(si)) return;
      const s = data.solvers[si];
      const ys = alphas.map(function (a) {
        let k = 0;
        mw.costs.forEach(function (row, p) {
          if (row[i] !== null && row[i] <= a * (mw.dims[p] + 1)) k++;
        });
        return mw.costs.length ? k / mw.costs.length : 0;
      });
      const line = steps(alphas, ys, right);
      traces.push({type: "scatter", mode: "lines", name: t(s.label), x: line.x, y: line.y,
                   line: {shape: "hv", color: s.color, dash: s.dash, width: 2},
                   hovertemplate: "α %{x:.3g}<br>share %{y:.3f}"});
    });
    return {traces: traces, layout: layout({
      title: {text: "Data profile, τ = " + mw.tau + ", " + mw.costs.length + " task(s)",
              font: {size: 14}},
      xaxis: axisStyle({title: {text: "α: gradient evaluations / (n + 1)"}, type: "log"}),
      yaxis: axisStyle({title: {text: "share of tasks solved"}, range: [-0.02, 1.02]}),
      annotations: traces.length ? [] : message("no solver selected"),
    })};
  }

  function transpose(rows) {  // tasks × solvers -> solvers × tasks
    return rows.length ? rows[0].map(function (_, i) {
      return rows.map(function (row) { return row[i]; });
    }) : [];
  }

  const builders = {
    "convergence": function (keep, problem) { return convergence(keep, problem); },
    "time-to-target": function (keep, problem) { return bars(keep, problem, false); },
    "success": function (keep, problem) { return bars(keep, problem, true); },
    "performance-profile": function (keep) {
      const dm = data.dolan_more;
      return ratioProfile(keep, dm.solvers, dm.times,
        "log2 τ (time to target / best time on the task)",
        "Performance profile: time to target T = " + data.target + ", " +
        (dm.times.length ? dm.times[0].length : 0) + " task(s)");
    },
    "data-profile": function (keep) { return dataProfile(keep); },
    "more-wild-performance": function (keep) {
      const mw = data.more_wild;
      return ratioProfile(keep, mw.solvers, transpose(mw.costs),
        "log2 r (gradient evaluations / fewest on the task)",
        "Performance profile (gradient evaluations), " + mw.costs.length + " task(s)");
    },
  };

  function draw() {
    const keep = selectedSolvers();
    const problem = Number(problemSelect.value);
    const pending = [];
    for (const div of document.querySelectorAll("div.plot[data-figure]")) {
      const fig = builders[div.dataset.figure](keep, problem);
      pending.push(Plotly.react(div, fig.traces, fig.layout, CONFIG));
    }
    return Promise.all(pending);
  }

  // The x scale follows the x axis by default: steps linear, time log (as in the PNGs).
  axis.x.addEventListener("change", function () {
    axis.xscale.value = axis.x.value === "time" ? "log" : "linear";
  });
  for (const input of document.querySelectorAll("#controls select, #controls input")) {
    input.addEventListener("change", function () { window.optbench.ready = draw(); });
  }
  // For tests and the curious: the data, and a promise settled when the figures are drawn.
  window.optbench = {data: data, ready: draw()};
})();
