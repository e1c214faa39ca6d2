// ceiling report.html: draws each <div class="chart" data-chart=...> with
// uPlot from the JSON blocks (class ceiling-run, ceiling-ladder,
// ceiling-sweep), then sets
// the body's data-drawn to their count. Nothing is fetched.
(function () {
  "use strict";
  var body = document.body;
  function blocks(cls) {
    return Array.prototype.map.call(document.querySelectorAll("script." + cls), function (s) {
      return JSON.parse(s.textContent);
    });
  }
  var runs = blocks("ceiling-run");
  var ladders = blocks("ceiling-ladder");
  var sweeps = blocks("ceiling-sweep");
  var several = runs.length > 1;
  var RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  var METRIC_COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#17becf", "#8c564b"];
  var KIND_COLORS = {
    port_exhaustion: "#d62728", source_address_invalid: "#7f7f7f", fd_limit_process: "#9467bd",
    fd_limit_system: "#8c564b", kernel_memory: "#e377c2", backlog_overflow: "#ff7f0e",
    server_closed: "#17becf", conntrack_full: "#bcbd22", connect_timeout: "#1f77b4",
    port_search_slow: "#aec7e8", refused: "#ff9896", reset: "#c5b0d5", unreachable: "#c49c94", other: "#555555"
  };
  var DASHES = [[], [6, 3], [2, 3], [10, 3, 2, 3], [1, 2]];

  function kindColor(kind, i) { return KIND_COLORS[kind] || METRIC_COLORS[i % METRIC_COLORS.length]; }

  function thousands(v) {
    if (v == null) return "–";
    var neg = v < 0, s = String(Math.round(Math.abs(v)));
    var out = "";
    for (var i = 0; i < s.length; i++) {
      if (i > 0 && (s.length - i) % 3 === 0) out += ",";
      out += s[i];
    }
    return (neg ? "-" : "") + out;
  }
  function count(v) {
    if (v == null) return "–";
    var a = Math.abs(v);
    if (a >= 1e6) return +(v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return +(v / 1e3).toFixed(1) + "k";
    return a < 10 && v !== Math.round(v) ? v.toFixed(1) : thousands(v);
  }
  function micros(v) {
    if (v == null) return "–";
    if (v < 1000) return +v.toFixed(1) + " µs";
    if (v < 1e6) return +(v / 1000).toPrecision(3) + " ms";
    return +(v / 1e6).toPrecision(3) + " s";
  }
  function secs(v) { return v == null ? "–" : +v.toFixed(2) + " s"; }
  // An elapsed-time tick: seconds, minutes past 10 min, hours past 2 h.
  function tick(v, span) {
    if (span >= 7200) return +(v / 3600).toFixed(2) + " h";
    if (span >= 600) return +(v / 60).toFixed(1) + " min";
    return v + " s";
  }
  var TIME_INCRS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

  var charts = document.querySelectorAll("div.chart");
  var drawn = 0;
  var plots = [];
  function width(el) { return Math.max(260, Math.floor(el.getBoundingClientRect().width || 900)); }
  function height(el) { return width(el) < 600 ? 220 : 300; }

  function finished(el) {
    if (el.getAttribute("data-drawn")) return;
    el.setAttribute("data-drawn", "1");
    drawn++;
    if (drawn === charts.length) body.setAttribute("data-drawn", String(drawn));
  }

  function make(el, opts, data) {
    opts.width = width(el);
    opts.height = height(el);
    opts.hooks = opts.hooks || {};
    (opts.hooks.draw = opts.hooks.draw || []).push(function () { finished(el); });
    opts.cursor = opts.cursor || { drag: { x: true, y: false } };
    var plot = new uPlot(opts, data, el);
    plots.push([plot, el]);
    return plot;
  }

  // Vertical lines at the first limit and each kind's first failure.
  function marksPlugin() {
    var marks = [];
    runs.forEach(function (run, r) {
      run.marks.forEach(function (m) {
        marks.push({ t: m.t, label: m.label, first: m.first_limit, color: several ? RUN_COLORS[r % RUN_COLORS.length] : m.first_limit ? "#d62728" : kindColor(m.kind, 0) });
      });
    });
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, dpr = window.devicePixelRatio || 1;
          var top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
          ctx.save();
          ctx.font = Math.round(11 * dpr) + "px sans-serif";
          ctx.textAlign = "left";
          ctx.textBaseline = "alphabetic";
          marks.forEach(function (m, i) {
            var x = Math.round(u.valToPos(m.t, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            ctx.strokeStyle = m.color;
            ctx.fillStyle = m.color;
            ctx.lineWidth = (m.first ? 2 : 1) * dpr;
            ctx.setLineDash(m.first ? [] : [4 * dpr, 3 * dpr]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, bottom);
            ctx.stroke();
            ctx.fillText(m.label, x + 4 * dpr, top + (12 + 13 * (i % 4)) * dpr);
          });
          ctx.restore();
        }]
      }
    };
  }

  // Several runs' series on one x: uPlot.join aligns their x values.
  function joined(tables) {
    if (tables.length === 1) return tables[0];
    return uPlot.join(tables);
  }

  // A chart over elapsed time: picks = [{col, label}], one line per
  // (run, pick) that has the column.
  // With origin, every line starts at 0 connections at 0 s (the rows
  // are the ends of each second).
  function timeChart(el, picks, yLabel, fmt, log, origin) {
    var series = [{ label: "elapsed", value: function (u, v) { return secs(v); } }];
    var tables = [];
    runs.forEach(function (run, r) {
      var zero = origin && run.t.length && run.t[0] > 0;
      var table = [zero ? [0].concat(run.t) : run.t];
      picks.forEach(function (p, i) {
        var col = run.series[p.col];
        if (!col) return;
        if (log) col = col.map(function (v) { return v > 0 ? v : null; });
        if (zero) col = [0].concat(col);
        table.push(col);
        series.push({
          label: several ? run.name + " " + p.label : p.label,
          stroke: several ? RUN_COLORS[r % RUN_COLORS.length] : (p.color || METRIC_COLORS[i % METRIC_COLORS.length]),
          dash: several ? DASHES[i % DASHES.length] : (p.dash || []),
          width: 1.5,
          spanGaps: several || log,
          value: function (u, v) { return fmt(v); }
        });
      });
      if (table.length > 1) tables.push(table);
    });
    if (!tables.length) tables.push([[]]);
    var data = joined(tables);
    make(el, {
      scales: { x: { time: false, range: function (u, min, max) { return [Math.min(0, min), max > 0 ? max : 1]; } }, y: log ? { distr: 3 } : { range: function (u, min, max) { return [Math.min(0, min), max > 0 ? max * 1.05 : 1]; } } },
      axes: [
        {
          label: "elapsed",
          incrs: TIME_INCRS,
          values: function (u, vals) {
            var span = u.scales.x.max - u.scales.x.min;
            return vals.map(function (v) { return tick(v, span); });
          }
        },
        { label: yLabel, size: 70, values: function (u, vals) { return vals.map(fmt); } }
      ],
      series: series,
      plugins: [marksPlugin()]
    }, data);
  }

  function percentileLabel(x) {
    // x = 1/(1-q)
    if (x <= 1) return "0%";
    var p = 100 * (1 - 1 / x);
    var digits = Math.max(0, Math.round(Math.log10(x)) - 2);
    return p.toFixed(digits) + "%";
  }

  function hdrChart(el) {
    var series = [{ label: "percentile", value: function (u, v) { return v == null ? "–" : percentileLabel(v); } }];
    var tables = [];
    var xMax = 1e5;
    runs.forEach(function (run, r) {
      run.hdr.forEach(function (h, i) {
        if (!h.x.length) return;
        h.x.forEach(function (x) { if (x > xMax) xMax = x; });
        tables.push([h.x, h.y]);
        series.push({
          label: several ? run.name + " " + h.metric : h.metric,
          stroke: several ? RUN_COLORS[r % RUN_COLORS.length] : METRIC_COLORS[i % METRIC_COLORS.length],
          dash: several ? DASHES[i % DASHES.length] : [],
          width: 1.5,
          spanGaps: true,
          value: function (u, v) { return micros(v); }
        });
      });
    });
    var data = tables.length ? joined(tables) : [[1], []];
    var splits = [];
    for (var s = 1; s <= xMax * 1.0001; s *= 10) splits.push(s);
    make(el, {
      padding: [12, 36, 0, 0],
      scales: { x: { time: false, distr: 3, range: function () { return [1, xMax]; } }, y: { distr: 3 } },
      axes: [
        { label: "percentile", splits: function () { return splits; }, values: function (u, vals) { return vals.map(percentileLabel); } },
        { label: "latency", size: 70, values: function (u, vals) { return vals.map(micros); } }
      ],
      series: series
    }, data);
  }

  // A sweep: x = the step (labelled with its pool), y = latency (log).
  function sweepChart(el, sweep) {
    var x = sweep.pool.map(function (p, i) { return i + 1; });
    var positive = function (col) { return col.map(function (v) { return v > 0 ? v : null; }); };
    var met = function (u, seriesIdx, idx) { return sweep.meets_goal[idx]; };
    function line(label, color, dash) {
      return {
        label: label, stroke: color, dash: dash || [], width: 1.5, spanGaps: true,
        points: { show: true, size: 8, fill: function (u, s) { return u.series[s].stroke(); } },
        value: function (u, v) { return micros(v); }
      };
    }
    make(el, {
      scales: { x: { time: false, range: function () { return [0.5, x.length + 0.5]; } }, y: { distr: 3 } },
      axes: [
        { label: "pool size", splits: function () { return x; }, values: function (u, vals) { return vals.map(function (v) { return "pool " + thousands(sweep.pool[v - 1]); }); } },
        { label: "latency", size: 70, values: function (u, vals) { return vals.map(micros); } }
      ],
      series: [
        { label: "pool", value: function (u, v) { return v == null ? "–" : thousands(sweep.pool[v - 1]) + (sweep.meets_goal[v - 1] ? " (meets the goal)" : ""); } },
        line("queue wait p99", "#ff7f0e", [6, 3]),
        line("total p50", "#2ca02c"),
        line("total p99", "#d62728")
      ],
      hooks: {
        draw: [function (u) {
          // Hollow out the dots of pools that missed the goal.
          var ctx = u.ctx, dpr = window.devicePixelRatio || 1;
          ctx.save();
          ctx.fillStyle = "#fff";
          for (var s = 1; s < u.series.length; s++) {
            u.data[s].forEach(function (v, i) {
              if (v == null || met(u, s, i)) return;
              ctx.beginPath();
              ctx.arc(u.valToPos(u.data[0][i], "x", true), u.valToPos(v, "y", true), 2.5 * dpr, 0, 2 * Math.PI);
              ctx.fill();
            });
          }
          ctx.restore();
        }]
      }
    }, [x, positive(sweep.queue_p99_us), positive(sweep.total_p50_us), positive(sweep.total_p99_us)]);
  }

  function ladderChart(el, ladder) {
    var steps = ladder.steps;
    var x = steps.map(function (s, i) { return s.step != null ? s.step : i + 1; });
    var y = steps.map(function (s) { return s.ceiling; });
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 80] }) : null;
    make(el, {
      scales: { x: { time: false, range: function () { return [0.5, steps.length + 0.5]; } }, y: { range: function (u, min, max) { return [0, (max || 1) * 1.15]; } } },
      axes: [
        { label: "step", splits: function () { return x; }, values: function (u, vals) { return vals.map(function (v) { return "step " + v; }); } },
        { label: "held at most", size: 70, values: function (u, vals) { return vals.map(count); } }
      ],
      series: [
        { label: "step" },
        { label: "held at most", stroke: "#1f77b4", fill: "rgba(31,119,180,0.35)", paths: bars, points: { show: false }, value: function (u, v) { return thousands(v); } }
      ],
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, dpr = window.devicePixelRatio || 1;
          ctx.save();
          ctx.fillStyle = "#222";
          ctx.textAlign = "center";
          ctx.font = Math.round(11 * dpr) + "px sans-serif";
          steps.forEach(function (s, i) {
            var px = u.valToPos(x[i], "x", true), py = u.valToPos(y[i] || 0, "y", true);
            ctx.fillText(thousands(s.ceiling) + " · " + (s.limit || "?"), px, py - 6 * dpr);
          });
          ctx.restore();
        }]
      }
    }, [x, y]);
  }

  var LATENCY_ORDER = ["p50", "p90", "p99", "p999", "max"];

  function draw(el) {
    var kind = el.getAttribute("data-chart");
    if (kind === "connections") {
      timeChart(el, [
        { col: "active", label: "active" },
        { col: "established", label: "established" },
        { col: "failed", label: "failed", color: "#d62728" }
      ], "connections", count, false, true);
    } else if (kind === "rate") {
      timeChart(el, [
        { col: "target_rate_per_s", label: "target", color: "#7f7f7f", dash: [6, 3] },
        { col: "attempt_rate_per_s", label: "attempts", color: "#1f77b4" },
        { col: "establish_rate_per_s", label: "established", color: "#2ca02c" }
      ], "per second", count, false);
    } else if (kind === "requests") {
      timeChart(el, [
        { col: "request_target_per_s", label: "target", color: "#7f7f7f", dash: [6, 3] },
        { col: "requests_sent_per_s", label: "sent", color: "#1f77b4" },
        { col: "responses_per_s", label: "responses", color: "#2ca02c" },
        { col: "request_errors_per_s", label: "errors", color: "#d62728" },
        { col: "rejects_per_s", label: "rejects", color: "#ff7f0e" }
      ], "requests per s", count, false);
    } else if (kind === "pool") {
      // The pool's size as a flat line (a series of its own per run).
      runs.forEach(function (run) {
        if (run.pool != null && run.series.busy_connections) {
          run.series.pool_size = run.t.map(function () { return run.pool; });
        }
      });
      timeChart(el, [
        { col: "pool_size", label: "pool", color: "#7f7f7f", dash: [6, 3] },
        { col: "busy_connections", label: "busy", color: "#1f77b4" },
        { col: "queue_depth", label: "queued", color: "#d62728" }
      ], "connections / requests", count, false);
    } else if (kind === "latency") {
      var metric = el.getAttribute("data-metric");
      var stats = [];
      runs.forEach(function (run) {
        Object.keys(run.series).forEach(function (c) {
          var m = c.match(/^(.+)_(p[0-9]+|max)_us$/);
          if (m && m[1] === metric && stats.indexOf(m[2]) < 0) stats.push(m[2]);
        });
      });
      stats.sort(function (a, b) {
        var ia = LATENCY_ORDER.indexOf(a), ib = LATENCY_ORDER.indexOf(b);
        return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
      });
      timeChart(el, stats.map(function (s) {
        return { col: metric + "_" + s + "_us", label: s === "max" ? "max" : s.replace(/^p(\d\d)(\d+)$/, "p$1.$2") };
      }), metric + " latency", micros, true);
    } else if (kind === "failures") {
      var kinds = [];
      runs.forEach(function (run) {
        run.failure_kinds.forEach(function (k) { if (kinds.indexOf(k) < 0) kinds.push(k); });
      });
      timeChart(el, kinds.map(function (k, i) {
        return { col: "failed_" + k, label: k, color: kindColor(k, i) };
      }), "failures per s", count, false);
    } else if (kind === "hdr") {
      hdrChart(el);
    } else if (kind === "sweep") {
      sweepChart(el, sweeps[+el.getAttribute("data-sweep")]);
    } else if (kind === "ladder") {
      ladderChart(el, ladders[+el.getAttribute("data-ladder")]);
    } else {
      throw new Error("unknown chart " + kind);
    }
  }

  Array.prototype.forEach.call(charts, function (el) {
    try {
      draw(el);
    } catch (e) {
      var prev = body.getAttribute("data-errors");
      body.setAttribute("data-errors", (prev ? prev + " | " : "") + el.getAttribute("data-chart") + ": " + e.message);
      el.textContent = "This chart could not be drawn: " + e.message;
    }
  });
  if (charts.length === 0) body.setAttribute("data-drawn", "0");

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      plots.forEach(function (p) { p[0].setSize({ width: width(p[1]), height: height(p[1]) }); });
    }, 100);
  });
  window.addEventListener("beforeprint", function () {
    plots.forEach(function (p) { p[0].setSize({ width: 700, height: 260 }); });
  });
})();
