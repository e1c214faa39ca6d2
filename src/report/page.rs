//! The HTML page: the verdict, tables and settings as HTML written here;
//! the charts drawn in the browser by `page.js` with uPlot from one JSON
//! block per run (`<script type="application/json" class="ceiling-run">`)
//! and per ladder (`class="ceiling-ladder"`) and sweep
//! (`class="ceiling-sweep"`), `<`, `>` and `&` escaped so
//! no data can end the block.
//!
//! The chart containers are written here (`<div class="chart"
//! data-chart=...>`, their count in `<body data-charts>`); the script fills
//! each and sets `<body data-drawn>` once all drew, and `data-errors` when
//! a script error happened or the Content-Security-Policy blocked a
//! request: what a test reads back from the DOM.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::downsample::{self, Series};
use super::read::{Distribution, Ladder, Loaded, Run, Sweep, Table, latency_column, lookup};
use crate::model::{LimitKind, thousands};

/// Buckets of the min/max downsampling: past twice as many rows (4,000
/// points), series are downsampled.
pub const BUCKETS: usize = 2000;

const UPLOT_JS: &str = include_str!("vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("vendor/uPlot.min.css");
const PAGE_JS: &str = include_str!("page.js");
const PAGE_CSS: &str = include_str!("page.css");

/// Nothing may be fetched: scripts and styles are inline, images only data:.
pub const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

pub fn render(loaded: &[Loaded]) -> String {
    let runs: Vec<&Run> = loaded
        .iter()
        .flat_map(|l| match l {
            Loaded::Run(r) => vec![r],
            Loaded::Ladder(l) => l.runs.iter().collect(),
            Loaded::Sweep(s) => s.runs.iter().collect(),
        })
        .collect();
    let ladders: Vec<&Ladder> = loaded
        .iter()
        .filter_map(|l| match l {
            Loaded::Ladder(l) => Some(l),
            _ => None,
        })
        .collect();
    let sweeps: Vec<&Sweep> = loaded
        .iter()
        .filter_map(|l| match l {
            Loaded::Sweep(s) => Some(s),
            _ => None,
        })
        .collect();
    let title = loaded
        .iter()
        .map(|l| match l {
            Loaded::Run(r) => r.name.as_str(),
            Loaded::Ladder(l) => l.name.as_str(),
            Loaded::Sweep(s) => s.name.as_str(),
        })
        .collect::<Vec<_>>()
        .join(" vs ");

    let mut body = String::new();
    let _ = writeln!(
        body,
        "<header><h1>ceiling report: {}</h1>{}</header>",
        esc(&title),
        subtitle(&runs, &ladders, &sweeps)
    );
    for ladder in &ladders {
        body.push_str(&ladder_section(ladder));
    }
    for sweep in &sweeps {
        body.push_str(&sweep_section(sweep));
    }
    body.push_str(&verdict_section(
        &runs,
        ladders.is_empty() && sweeps.is_empty(),
    ));
    let (charts_html, chart_count) = charts_section(&runs, &ladders, &sweeps);
    body.push_str(&charts_html);
    body.push_str(&tables_section(&runs));
    body.push_str(&settings_section(&runs));
    let _ = writeln!(
        body,
        "<footer>Written by ceiling {} from {}. Charts: uPlot 1.6.32 (MIT licence, Leon Sorokin), \
         inline; this page fetches nothing. Drag on a chart to zoom, double-click to zoom out; \
         hover for values.</footer>",
        env!("CARGO_PKG_VERSION"),
        loaded
            .iter()
            .map(|l| match l {
                Loaded::Run(r) => format!("<code>{}</code>", esc(&r.dir.display().to_string())),
                Loaded::Ladder(l) => format!("<code>{}</code>", esc(&l.dir.display().to_string())),
                Loaded::Sweep(s) => format!("<code>{}</code>", esc(&s.dir.display().to_string())),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    for run in &runs {
        let _ = writeln!(
            body,
            "<script type=\"application/json\" class=\"ceiling-run\">{}</script>",
            json_block(&run_data(run))
        );
    }
    for ladder in &ladders {
        let _ = writeln!(
            body,
            "<script type=\"application/json\" class=\"ceiling-ladder\">{}</script>",
            json_block(&ladder_data(ladder))
        );
    }
    for sweep in &sweeps {
        let _ = writeln!(
            body,
            "<script type=\"application/json\" class=\"ceiling-sweep\">{}</script>",
            json_block(&sweep_data(sweep))
        );
    }

    let mut html = String::with_capacity(body.len() + UPLOT_JS.len() + 8192);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"ceiling {}\">\n<title>ceiling: {}</title>\n\
         <style>\n{UPLOT_CSS}\n{PAGE_CSS}</style>\n</head>\n<body data-charts=\"{chart_count}\">\n\
         <script>function ceilingError(m){{var b=document.body,e=b.getAttribute('data-errors');\
         b.setAttribute('data-errors',(e?e+' | ':'')+m);}}\
         window.onerror=function(m,s,l){{ceilingError(m+' (line '+l+')');}};\
         document.addEventListener('securitypolicyviolation',function(e){{\
         ceilingError('blocked request: '+e.blockedURI+' ('+e.violatedDirective+')');}});</script>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    html.push_str(&body);
    let _ = write!(
        html,
        "<script>\n{UPLOT_JS}\n</script>\n<script>\n{PAGE_JS}</script>\n</body>\n</html>\n"
    );
    html
}

/// JSON for inside `<script type="application/json">`: `<`, `>`, `&` as
/// `\u003c`, `\u003e`, `\u0026`, so `</script>` can never appear.
pub fn json_block(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

/// HTML text escaping.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as JSON: whole numbers without a `.0`, so a long series stays
/// small.
fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Value::from(x as i64)
    } else {
        Value::from((x * 1000.0).round() / 1000.0)
    }
}

fn nums(values: &[Option<f64>]) -> Value {
    Value::Array(values.iter().map(|v| v.map_or(Value::Null, num)).collect())
}

/// A request-mode run's own columns of timeseries.csv (its `total_p99_us`
/// is a latency column like any other).
const REQUEST_COLUMNS: [&str; 6] = [
    "requests_sent_per_s",
    "responses_per_s",
    "request_errors_per_s",
    "rejects_per_s",
    "queue_depth",
    "busy_connections",
];

/// A request run's `target_rate_per_s` as the page calls it: requests
/// asked per second, drawn on the requests chart.
const REQUEST_TARGET: &str = "request_target_per_s";

/// Whether a run put requests through a pool: summary.json has a
/// `requests` object, or (no summary) timeseries.csv its request columns.
fn is_request_run(run: &Run) -> bool {
    lookup(&run.summary, &["requests"]).is_some_and(Value::is_object)
        || run.timeseries.column("requests_sent_per_s").is_some()
}

/// Columns drawn over time: counts, rates, per-kind failures and latency
/// percentiles (by name; a column the page does not know is not sent).
fn charted(name: &str) -> bool {
    matches!(
        name,
        "established"
            | "failed"
            | "active"
            | "target_rate_per_s"
            | "attempt_rate_per_s"
            | "establish_rate_per_s"
    ) || REQUEST_COLUMNS.contains(&name)
        || name.starts_with("failed_")
        || latency_column(name).is_some()
}

/// The first time each failure kind was seen, from summary.json's groups;
/// the first limit's own kind left out when it was first seen then (its
/// mark is the first limit's).
fn first_seen(run: &Run) -> BTreeMap<String, f64> {
    let mut first: BTreeMap<String, f64> = BTreeMap::new();
    let groups = lookup(&run.summary, &["failures"]).and_then(Value::as_array);
    for group in groups.into_iter().flatten() {
        let (Some(kind), Some(t)) = (
            group.get("kind").and_then(Value::as_str),
            group.get("first_elapsed_s").and_then(Value::as_f64),
        ) else {
            continue;
        };
        let entry = first.entry(kind.to_string()).or_insert(t);
        *entry = entry.min(t);
    }
    if let Some(f) = run.first_limit()
        && let (Some(kind), Some(at)) = (
            f.get("kind").and_then(Value::as_str),
            f.get("at_elapsed_s").and_then(Value::as_f64),
        )
        && first.get(kind).is_some_and(|t| (t - at).abs() < 1e-3)
    {
        first.remove(kind);
    }
    first
}

/// The JSON block of one run: its (downsampled) series by column name, its
/// marks, totals, first limit and percentile distributions.
pub fn run_data(run: &Run) -> Value {
    let ts = &run.timeseries;
    let elapsed = ts.column("elapsed_s").unwrap_or(&[]);
    let keep: Vec<usize> = (0..elapsed.len())
        .filter(|&i| elapsed[i].is_some())
        .collect();
    let names: Vec<&String> = ts
        .names
        .iter()
        .filter(|n| charted(n))
        .filter(|n| {
            // Failure kinds that never happened are not sent.
            !n.starts_with("failed_")
                || ts
                    .column(n)
                    .is_some_and(|c| c.iter().any(|v| v.is_some_and(|v| v != 0.0)))
        })
        .collect();
    let series = downsample::min_max(
        Series {
            x: keep.iter().map(|&i| elapsed[i].unwrap_or(0.0)).collect(),
            columns: names
                .iter()
                .map(|n| {
                    let column = ts.column(n).unwrap_or(&[]);
                    keep.iter()
                        .map(|&i| column.get(i).copied().flatten())
                        .collect()
                })
                .collect(),
        },
        BUCKETS,
    );
    let mut columns = serde_json::Map::new();
    let requests = is_request_run(run);
    for (name, column) in names.iter().zip(&series.columns) {
        // A request run's target is of requests: drawn with them, not
        // with its pool's (unpaced) connects.
        let name = match name.as_str() {
            "target_rate_per_s" if requests => REQUEST_TARGET.to_string(),
            _ => (*name).clone(),
        };
        columns.insert(name, nums(column));
    }
    let first_limit = run.first_limit().map(|f| {
        json!({
            "kind": f.get("kind"),
            "at_elapsed_s": f.get("at_elapsed_s"),
            "at_attempt": f.get("at_attempt"),
            "active_at": f.get("active_at"),
        })
    });
    let mut marks = Vec::new();
    if let Some(f) = run.first_limit()
        && let (Some(kind), Some(t)) = (
            f.get("kind").and_then(Value::as_str),
            f.get("at_elapsed_s").and_then(Value::as_f64),
        )
    {
        marks.push(json!({"t": num(t), "kind": kind, "label": format!("first limit: {kind}"), "first_limit": true}));
    }
    for (kind, t) in first_seen(run) {
        marks.push(json!({"t": num(t), "kind": kind, "label": format!("first {kind}"), "first_limit": false}));
    }
    let mut data = json!({
        "name": run.name,
        "rows": keep.len(),
        "t": nums(&series.x.iter().map(|&x| Some(x)).collect::<Vec<_>>()),
        "series": columns,
        "failure_kinds": names.iter().filter_map(|n| n.strip_prefix("failed_")).collect::<Vec<_>>(),
        "latency_metrics": ts.latency_metrics(),
        "marks": marks,
        "totals": lookup(&run.summary, &["totals"]).cloned().unwrap_or(Value::Null),
        "first_limit": first_limit,
        "hdr": run.latency.iter().map(hdr_data).collect::<Vec<_>>(),
    });
    // A request run's `requests` object and pool size (the pool chart's
    // flat line); a connection run's block has neither.
    if let Some(object) = data.as_object_mut() {
        for (key, path) in [
            ("requests", &["requests"][..]),
            ("pool", &["scenario", "requests", "pool"][..]),
        ] {
            if let Some(v) = lookup(&run.summary, path).filter(|v| !v.is_null()) {
                object.insert(key.into(), v.clone());
            }
        }
    }
    data
}

/// Highest x of the percentile plot: 1/(1-q) at 99.999%.
const HDR_X_MAX: f64 = 1e5;

/// A distribution on the percentile plot's axis: x = 1/(1-q), log scale
/// (90% at 10, 99.999% at 100,000); 100% (the maximum) at the axis' end.
fn hdr_data(d: &Distribution) -> Value {
    let finite_max = d
        .steps
        .iter()
        .filter(|(p, _)| *p < 100.0)
        .map(|(p, _)| 1.0 / (1.0 - p / 100.0))
        .fold(HDR_X_MAX, f64::max);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for &(p, v) in &d.steps {
        x.push(num(if p >= 100.0 {
            finite_max
        } else {
            (1.0 / (1.0 - p / 100.0) * 1000.0).round() / 1000.0
        }));
        y.push(if v > 0.0 { num(v) } else { Value::Null });
    }
    json!({"metric": d.metric, "x": x, "y": y, "percentiles": d.steps.iter().map(|s| num(s.0)).collect::<Vec<_>>()})
}

/// A sweep's steps for its chart: per pool, the latency percentiles and
/// whether it met the goal, as sweep.csv has them.
fn sweep_data(sweep: &Sweep) -> Value {
    let col = |name: &str| sweep.table.header.iter().position(|h| h == name);
    let column = |name: &str| -> Vec<Value> {
        sweep
            .table
            .rows
            .iter()
            .map(|row| {
                col(name)
                    .and_then(|i| row.get(i))
                    .and_then(|v| v.parse::<f64>().ok())
                    .map_or(Value::Null, num)
            })
            .collect()
    };
    json!({
        "name": sweep.name,
        "pool": column("pool"),
        "queue_p99_us": column("queue_p99_us"),
        "total_p50_us": column("total_p50_us"),
        "total_p99_us": column("total_p99_us"),
        "meets_goal": sweep.table.rows.iter().map(|row| {
            col("meets_goal").and_then(|i| row.get(i)).is_some_and(|v| v == "true")
        }).collect::<Vec<_>>(),
    })
}

fn ladder_data(ladder: &Ladder) -> Value {
    json!({
        "name": ladder.name,
        "steps": ladder.steps.iter().map(|s| json!({
            "step": s.get("step"),
            "ceiling": s.get("ceiling"),
            "limit": s.get("limit"),
            "change": s.get("change"),
        })).collect::<Vec<_>>(),
    })
}

fn subtitle(runs: &[&Run], ladders: &[&Ladder], sweeps: &[&Sweep]) -> String {
    if runs.len() == 1 && ladders.is_empty() && sweeps.is_empty() {
        let run = runs[0];
        let started = lookup(&run.summary, &["started_at"])
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| run.timeseries.first_utc.clone())
            .unwrap_or_else(|| "?".into());
        let duration = run
            .num(&["duration_s"])
            .map_or_else(|| "?".into(), |d| format!("{d:.1} s"));
        format!(
            "<p class=\"sub\">started {} · ran {} · scenario <code>{}</code>{}</p>",
            esc(&started),
            duration,
            esc(lookup(&run.summary, &["scenario", "name"])
                .and_then(Value::as_str)
                .unwrap_or("?")),
            if lookup(&run.summary, &["aborted"]).and_then(Value::as_bool) == Some(true) {
                " · <b>stopped before its end</b>"
            } else {
                ""
            }
        )
    } else {
        let n = runs.len();
        let what = match (ladders.is_empty(), n) {
            _ if !sweeps.is_empty() => format!("{n} pool sizes of a sweep"),
            (true, _) => format!("{n} runs"),
            (false, 1) => "1 climb of an explore ladder".to_string(),
            (false, _) => format!("{n} climbs of an explore ladder"),
        };
        format!(
            "<p class=\"sub\">{what}{}</p>",
            if n > 1 {
                ", overlaid: one colour each"
            } else {
                ""
            }
        )
    }
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// A microsecond value with its unit: `148 µs`, `2.96 ms`, `1.20 s`.
pub fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        let ms = format!("{:.3}", us / 1000.0);
        format!("{} ms", ms.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn count(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |n| thousands(n.max(0.0) as u64))
}

fn kind_words(kind: &str) -> String {
    serde_json::from_value::<LimitKind>(Value::from(kind))
        .map(|k| k.describe().to_string())
        .unwrap_or_default()
}

/// The verdict: for one run, the first limit in plain words with its
/// evidence and remedy; for several, a line each.
fn verdict_section(runs: &[&Run], full: bool) -> String {
    let single = runs.len() == 1 && full;
    let mut out = format!(
        "<section id=\"verdict\"><h2>{}</h2>\n",
        if single { "Verdict" } else { "Runs" }
    );
    if single {
        out.push_str(&run_verdict(runs[0]));
    } else {
        out.push_str(
            "<table><thead><tr><th>run</th><th>first limit</th><th>at attempt</th><th>after</th>\
             <th>held then</th><th>established</th><th>peak held</th><th>failed</th>",
        );
        let requests = runs.iter().any(|r| is_request_run(r));
        if requests {
            out.push_str(
                "<th>requests sent</th><th>answered</th><th>rejects</th><th>total p99</th>",
            );
        }
        out.push_str("</tr></thead><tbody>\n");
        for run in runs {
            let first = run.first_limit();
            let field = |k: &str| first.and_then(|f| f.get(k)).and_then(Value::as_f64);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{}</tr>",
                esc(&run.name),
                first
                    .and_then(|f| f.get("kind"))
                    .and_then(Value::as_str)
                    .map_or_else(|| "none".into(), |k| format!("<b>{}</b>", esc(k))),
                count(field("at_attempt")),
                field("at_elapsed_s").map_or_else(|| "–".into(), seconds),
                count(field("active_at")),
                count(run.num(&["totals", "established"])),
                count(run.num(&["totals", "peak_active"])),
                count(failed(run)),
                if requests {
                    format!(
                        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                        count(run.num(&["requests", "sent"])),
                        count(run.num(&["requests", "responses"])),
                        count(run.num(&["requests", "rejects"])),
                        run.num(&["latency", "total_us", "p99"])
                            .map_or_else(|| "–".into(), micros),
                    )
                } else {
                    String::new()
                },
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
    out
}

fn run_verdict(run: &Run) -> String {
    let mut out = String::new();
    let s = &run.summary;
    let extra_verdict = lookup(s, &["verdict"])
        .or_else(|| lookup(s, &["totals", "verdict"]))
        .and_then(Value::as_str);
    if s.is_null() {
        out.push_str(
            "<div class=\"verdict limit\"><p class=\"headline\">No summary.json</p>\n\
             <p>The run ended without writing its summary (killed?): the charts below come from \
             timeseries.csv, as far as it got.</p></div>\n",
        );
        return out;
    }
    match run.first_limit() {
        Some(f) => {
            let kind = f.get("kind").and_then(Value::as_str).unwrap_or("?");
            let field = |k: &str| f.get(k).and_then(Value::as_f64);
            let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("");
            let _ = writeln!(
                out,
                "<div class=\"verdict limit\"><p class=\"headline\">First limit: <b>{}</b>{}</p>\n\
                 <p>at attempt {}, after {}, with {} connections held · {} → {} · {}(){}</p>",
                esc(kind),
                match kind_words(kind) {
                    w if w.is_empty() => String::new(),
                    w => format!(" — {}", esc(&w)),
                },
                count(field("at_attempt")),
                field("at_elapsed_s").map_or_else(|| "?".into(), seconds),
                count(field("active_at")),
                esc(text("source")),
                esc(text("target")),
                esc(text("syscall")),
                match f.get("errno_name").and_then(Value::as_str) {
                    Some(name) => format!(" {}", esc(name)),
                    None => String::new(),
                }
            );
            let evidence = lookup(f, &["evidence", "message"])
                .and_then(Value::as_str)
                .or_else(|| f.get("evidence").and_then(Value::as_str))
                .unwrap_or("");
            let _ = writeln!(
                out,
                "<p class=\"evidence\"><b>Evidence</b> {}</p>\n<p class=\"remedy\"><b>Remedy</b> {}</p></div>",
                esc(evidence),
                esc(text("remedy"))
            );
        }
        None => {
            let _ = writeln!(
                out,
                "<div class=\"verdict ok\"><p class=\"headline\">No limit hit</p>\n\
                 <p>{} of {} attempted connections established; {} held at most.</p></div>",
                count(run.num(&["totals", "established"])),
                count(run.num(&["totals", "attempted"])),
                count(run.num(&["totals", "peak_active"])),
            );
        }
    }
    out.push_str(&requests_verdict(run));
    if let Some(v) = extra_verdict {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(v));
    }
    if lookup(s, &["aborted"]).and_then(Value::as_bool) == Some(true) {
        out.push_str("<p class=\"note\">The run was stopped before its end (Ctrl-C, SIGTERM, a dead worker or the safety stop): its figures cover the time it ran.</p>\n");
    }
    if let Some(stopped) = lookup(s, &["safety", "stopped"]).and_then(Value::as_str) {
        let _ = writeln!(out, "<p class=\"note\">Safety stop: {}</p>", esc(stopped));
    }
    for death in lookup(s, &["workers", "deaths"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "<p class=\"note\">Worker process died: {}</p>",
            esc(&flat_text(death))
        );
    }
    out
}

/// A request run's outcome in one line: requests sent and answered, errors,
/// rejects and reconnects, the total latency's p99.
fn requests_verdict(run: &Run) -> String {
    let Some(r) = lookup(&run.summary, &["requests"]).filter(|r| r.is_object()) else {
        return String::new();
    };
    let n = |k: &str| r.get(k).and_then(Value::as_f64);
    let errors = request_errors(r);
    let pool = run
        .num(&["scenario", "requests", "pool"])
        .map_or_else(String::new, |p| {
            format!(" over a pool of {}", count(Some(p)))
        });
    let p99 = run
        .num(&["latency", "total_us", "p99"])
        .map_or_else(String::new, |p| {
            format!(" · total latency p99 {}", micros(p))
        });
    let queue_p99 = run
        .num(&["latency", "queue_us", "p99"])
        .map_or_else(String::new, |p| format!(" (queue wait p99 {})", micros(p)));
    format!(
        "<div class=\"verdict requests\"><p class=\"headline\">Requests{pool}: {} sent, {} answered</p>\n\
         <p>{} errors · {} rejected (no free connection) · {} reconnects{p99}{queue_p99}</p></div>\n",
        count(n("sent")),
        count(n("responses")),
        count(Some(errors)),
        count(n("rejects")),
        count(n("reconnects")),
    )
}

/// Failure events: `totals.failed` of older summaries, the sum of
/// `failures_by_kind` of schema 2's (which has no `totals.failed`).
fn failed(run: &Run) -> Option<f64> {
    run.num(&["totals", "failed"]).or_else(|| {
        lookup(&run.summary, &["failures_by_kind"])
            .and_then(Value::as_object)
            .map(|m| m.values().filter_map(Value::as_f64).sum())
    })
}

/// The sum of a `requests` object's errors by kind.
fn request_errors(requests: &Value) -> f64 {
    requests
        .get("errors")
        .and_then(Value::as_object)
        .map_or(0.0, |e| e.values().filter_map(Value::as_f64).sum())
}

/// summary.json's `requests` objects as one table, a column per run:
/// counts, errors by kind, status classes.
fn requests_table(runs: &[&Run]) -> String {
    let objects: Vec<Option<&Value>> = runs
        .iter()
        .map(|r| lookup(&r.summary, &["requests"]).filter(|v| v.is_object()))
        .collect();
    if objects.iter().all(Option::is_none) {
        return String::new();
    }
    let mut rows: Vec<(String, Vec<&str>)> = Vec::new();
    let mut add = |label: String, path: Vec<&'static str>| {
        if !rows.iter().any(|(l, _)| *l == label) {
            rows.push((label, path));
        }
    };
    for key in [
        "scheduled",
        "sent",
        "responses",
        "rejects",
        "reconnects",
        "queued_at_end",
        "in_flight_at_end",
    ] {
        add(key.replace('_', " "), vec![key]);
    }
    let mut keyed: Vec<(String, &'static str, String)> = Vec::new();
    for object in objects.iter().flatten() {
        for (group, label) in [("errors", "errors"), ("status", "status")] {
            for k in object
                .get(group)
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.keys())
            {
                let row = (
                    format!("{label}: {}", k.replace('_', " ")),
                    group,
                    k.clone(),
                );
                if !keyed.contains(&row) {
                    keyed.push(row);
                }
            }
        }
    }
    let mut out = String::from("<h3>Requests</h3><table><thead><tr><th></th>");
    for run in runs {
        let _ = write!(out, "<th>{}</th>", esc(&run.name));
    }
    out.push_str("</tr></thead><tbody>\n");
    let mut line = |label: &str, value: &dyn Fn(&Value) -> Option<f64>| {
        let _ = write!(out, "<tr><td>{}</td>", esc(label));
        for object in &objects {
            let _ = write!(
                out,
                "<td class=\"n\">{}</td>",
                count(object.and_then(value))
            );
        }
        out.push_str("</tr>\n");
    };
    for (label, path) in &rows {
        line(label, &|o: &Value| lookup(o, path).and_then(Value::as_f64));
    }
    for (label, group, key) in &keyed {
        line(label, &|o: &Value| {
            lookup(o, &[group, key.as_str()]).and_then(Value::as_f64)
        });
    }
    out.push_str("</tbody></table>\n");
    let texts: Vec<String> = runs
        .iter()
        .zip(&objects)
        .flat_map(|(run, o)| {
            o.and_then(|o| o.get("error_texts"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |t| format!("{}{}", prefix(runs, run), esc(&flat_text(t))))
        })
        .collect();
    if !texts.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"small\">Error replies kept: {}</p>",
            texts.join(" · ")
        );
    }
    out
}

/// A sweep: its verdict (the smallest pool meeting the goal) and
/// sweep.csv as a table, one row per pool.
fn sweep_section(sweep: &Sweep) -> String {
    let mut out = format!(
        "<section class=\"sweep\"><h2>Pool sweep: {}</h2>\n",
        esc(&sweep.name)
    );
    let col = |name: &str| sweep.table.header.iter().position(|h| h == name);
    let cell = |row: &Vec<String>, name: &str| col(name).and_then(|i| row.get(i)).cloned();
    let meeting = sweep
        .table
        .rows
        .iter()
        .filter(|r| cell(r, "meets_goal").as_deref() == Some("true"))
        .filter_map(|r| cell(r, "pool")?.parse::<u64>().ok())
        .min();
    let _ = writeln!(
        out,
        "<div class=\"verdict {}\"><p class=\"headline\">{}</p></div>",
        if meeting.is_some() { "ok" } else { "limit" },
        match meeting {
            Some(pool) => format!("smallest pool meeting the goal: {}", thousands(pool)),
            None => "no pool met the goal".to_string(),
        }
    );
    out.push_str(&table_head(
        "One run per pool size (sweep.csv)",
        &sweep.table.header,
        false,
    ));
    for row in &sweep.table.rows {
        let met = cell(row, "meets_goal").as_deref() == Some("true");
        out.push_str(if met { "<tr class=\"met\">" } else { "<tr>" });
        for value in row {
            let _ = match value.parse::<u64>() {
                Ok(n) => write!(out, "<td class=\"n\">{}</td>", thousands(n)),
                Err(_) if value.parse::<f64>().is_ok() => {
                    write!(out, "<td class=\"n\">{}</td>", esc(value))
                }
                Err(_) => write!(out, "<td>{}</td>", esc(value)),
            };
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out.push_str("</section>\n");
    out
}

fn ladder_section(ladder: &Ladder) -> String {
    let mut out = format!(
        "<section class=\"ladder\"><h2>Explore ladder: {}</h2>\n",
        esc(&ladder.name)
    );
    if let Some(end) = ladder.explore.get("end_text").and_then(Value::as_str) {
        let _ = writeln!(
            out,
            "<div class=\"verdict {}\"><p class=\"headline\">{} connections held at most</p><p>{}</p></div>",
            if ladder.explore.get("end").and_then(Value::as_str) == Some("reached_bound") {
                "ok"
            } else {
                "limit"
            },
            count(ladder.explore.get("ceiling").and_then(Value::as_f64)),
            esc(end)
        );
    }
    out.push_str(
        "<table><thead><tr><th>step</th><th>held at most</th><th>limit</th><th>at attempt</th>\
         <th>change</th><th>evidence</th><th>remedy</th></tr></thead><tbody>\n",
    );
    for step in &ladder.steps {
        let text = |k: &str| match step.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td><b>{}</b></td><td class=\"n\">{}</td>\
             <td>{}</td><td class=\"small\">{}</td><td class=\"small\">{}</td></tr>",
            esc(&text("step")),
            count(step.get("ceiling").and_then(Value::as_f64)),
            esc(&text("limit")),
            count(step.get("at_attempt").and_then(Value::as_f64)),
            esc(&text("change")),
            esc(&text("evidence")),
            esc(&text("remedy")),
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
    out
}

fn chart(out: &mut String, count: &mut usize, kind: &str, attrs: &str, title: &str, note: &str) {
    *count += 1;
    let _ = writeln!(
        out,
        "<figure><figcaption>{}</figcaption><div class=\"chart\" data-chart=\"{kind}\"{attrs}></div>{}</figure>",
        esc(title),
        if note.is_empty() {
            String::new()
        } else {
            format!("<p class=\"small\">{note}</p>")
        }
    );
}

/// The chart containers (filled by page.js) and the number of charts.
fn charts_section(runs: &[&Run], ladders: &[&Ladder], sweeps: &[&Sweep]) -> (String, usize) {
    let mut out = String::from("<section id=\"charts\"><h2>Charts</h2>\n");
    let mut n = 0;
    for (i, ladder) in ladders.iter().enumerate() {
        chart(
            &mut out,
            &mut n,
            "ladder",
            &format!(" data-ladder=\"{i}\""),
            &format!(
                "{}: connections held at most per step, with the limit that stopped it",
                ladder.name
            ),
            "",
        );
    }
    for (i, sweep) in sweeps.iter().enumerate() {
        chart(
            &mut out,
            &mut n,
            "sweep",
            &format!(" data-sweep=\"{i}\""),
            &format!(
                "{}: latency per pool size (queue wait p99, total p50 and p99; log scale)",
                sweep.name
            ),
            "A filled dot: the pool met the goal.",
        );
    }
    let with_rows = runs.iter().any(|r| r.timeseries.rows() > 0);
    if with_rows {
        let mut marks = Vec::new();
        for run in runs {
            if let Some(f) = run.first_limit() {
                marks.push(format!(
                    "{}first limit <b>{}</b> at {}",
                    prefix(runs, run),
                    esc(f.get("kind").and_then(Value::as_str).unwrap_or("?")),
                    f.get("at_elapsed_s")
                        .and_then(Value::as_f64)
                        .map_or_else(|| "?".into(), seconds)
                ));
            }
            for (kind, t) in first_seen(run) {
                marks.push(format!(
                    "{}first {} at {}",
                    prefix(runs, run),
                    esc(&kind),
                    seconds(t)
                ));
            }
        }
        let mut notes = Vec::new();
        if !marks.is_empty() {
            notes.push(format!("Marked: {}.", marks.join("; ")));
        }
        for run in runs {
            let rows = run.timeseries.rows();
            if rows > 2 * BUCKETS {
                notes.push(format!(
                    "{}{} seconds drawn as {} points: each series' minimum and maximum per \
                     {:.0} s, so no spike is lost.",
                    prefix(runs, run),
                    thousands(rows as u64),
                    thousands(2 * BUCKETS as u64),
                    rows as f64 / BUCKETS as f64
                ));
            }
        }
        let note = notes.join(" ");
        chart(
            &mut out,
            &mut n,
            "connections",
            "",
            "Connections: active (held now), established and failed (cumulative)",
            &note,
        );
        chart(
            &mut out,
            &mut n,
            "rate",
            "",
            "Connect rate per second: target vs achieved (attempts, established)",
            "",
        );
        if runs.iter().any(|r| is_request_run(r)) {
            chart(
                &mut out,
                &mut n,
                "requests",
                "",
                "Requests per second: target (asked) vs sent, responses, errors and rejects",
                "",
            );
            chart(
                &mut out,
                &mut n,
                "pool",
                "",
                "The pool each second: connections busy with a request, requests queued for one",
                "The line named pool is the pool's size.",
            );
        }
        let mut metrics: Vec<String> = Vec::new();
        for run in runs {
            for m in run.timeseries.latency_metrics() {
                if !metrics.contains(&m) {
                    metrics.push(m);
                }
            }
        }
        for metric in metrics {
            chart(
                &mut out,
                &mut n,
                "latency",
                &format!(" data-metric=\"{}\"", esc(&metric)),
                &format!("{metric} latency per second: percentiles and max (log scale)"),
                "",
            );
        }
        if runs.iter().any(|r| {
            r.timeseries.failure_kinds().iter().any(|k| {
                r.timeseries
                    .column(&format!("failed_{k}"))
                    .is_some_and(|c| c.iter().any(|v| v.is_some_and(|v| v != 0.0)))
            })
        }) {
            chart(
                &mut out,
                &mut n,
                "failures",
                "",
                "Failures per second, by kind",
                "",
            );
        }
    }
    if runs.iter().any(|r| !r.latency.is_empty()) {
        chart(
            &mut out,
            &mut n,
            "hdr",
            "",
            "Latency distribution: value at each percentile (HdrHistogram percentile plot, log axes)",
            "From latency.csv (or the .hgrm files); 100% (the maximum) is drawn at the right end.",
        );
    }
    if n == 0 {
        out.push_str("<p>No time series in these results: nothing to draw.</p>\n");
    }
    out.push_str("</section>\n");
    (out, n)
}

fn prefix(runs: &[&Run], run: &Run) -> String {
    if runs.len() > 1 {
        format!("{}: ", esc(&run.name))
    } else {
        String::new()
    }
}

/// Totals, failure groups, sources (and a fleet's hosts) as tables.
fn tables_section(runs: &[&Run]) -> String {
    let mut out = String::from("<section id=\"tables\"><h2>Figures</h2>\n");
    // Totals: every number summary.json's totals has, a column per run;
    // the main counts first.
    let mut keys: Vec<String> = [
        "attempted",
        "established",
        "failed",
        "peak_active",
        "closed_by_driver",
        "closed_by_server",
    ]
    .iter()
    .filter(|k| runs.iter().any(|r| r.num(&["totals", k]).is_some()))
    .map(|k| k.to_string())
    .collect();
    for run in runs {
        if let Some(totals) = lookup(&run.summary, &["totals"]).and_then(Value::as_object) {
            for (k, v) in totals {
                if v.is_number() && !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    if !keys.is_empty() {
        out.push_str("<h3>Totals</h3><table><thead><tr><th></th>");
        for run in runs {
            let _ = write!(out, "<th>{}</th>", esc(&run.name));
        }
        out.push_str("</tr></thead><tbody>\n");
        for key in &keys {
            let label = key.strip_suffix("_s").unwrap_or(key).replace('_', " ");
            let _ = write!(out, "<tr><td>{}</td>", esc(&label));
            for run in runs {
                let v = run.num(&["totals", key]);
                let shown = if key.ends_with("_s") {
                    v.map_or_else(|| "–".into(), seconds)
                } else {
                    count(v)
                };
                let _ = write!(out, "<td class=\"n\">{shown}</td>");
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str(&requests_table(runs));
    // Latency percentiles from the summary.
    let mut latency_rows = Vec::new();
    for run in runs {
        if let Some(latency) = lookup(&run.summary, &["latency"]).and_then(Value::as_object) {
            for (metric, p) in latency {
                latency_rows.push((run.name.clone(), metric.trim_end_matches("_us"), p));
            }
        }
    }
    if !latency_rows.is_empty() {
        out.push_str(
            "<h3>Latency</h3><table><thead><tr><th>run</th><th>metric</th><th>p50</th><th>p90</th>\
             <th>p99</th><th>p99.9</th><th>max</th><th>samples</th></tr></thead><tbody>\n",
        );
        for (name, metric, p) in latency_rows {
            let v = |k: &str| {
                p.get(k)
                    .and_then(Value::as_f64)
                    .map_or_else(|| "–".into(), micros)
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&name),
                esc(metric),
                v("p50"),
                v("p90"),
                v("p99"),
                v("p999"),
                v("max"),
                count(p.get("count").and_then(Value::as_f64))
            );
        }
        out.push_str("</tbody></table>\n");
    }
    let failures = "Failures (one row per kind, syscall and errno)";
    if runs.iter().any(|r| r.failures.is_some()) {
        out.push_str(&csv_table(runs, |r| r.failures.as_ref(), failures));
    } else {
        out.push_str(&array_table(runs, "failures", failures));
    }
    if runs.iter().any(|r| r.sources.is_some()) {
        out.push_str(&csv_table(runs, |r| r.sources.as_ref(), "Per source IP"));
    } else {
        out.push_str(&array_table(runs, "sources", "Per source IP"));
    }
    out.push_str(&csv_table(runs, |r| r.hosts.as_ref(), "Per host"));
    out.push_str("</section>\n");
    out
}

/// One CSV file of each run as one table: the union of their columns in
/// file order, a `run` column when there are several runs; nothing when no
/// run has a row.
fn csv_table(runs: &[&Run], table: impl Fn(&Run) -> Option<&Table>, title: &str) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for t in runs.iter().filter_map(|r| table(r)) {
        for h in &t.header {
            if !columns.contains(&h.as_str()) {
                columns.push(h);
            }
        }
    }
    if runs
        .iter()
        .filter_map(|r| table(r))
        .all(|t| t.rows.is_empty())
    {
        return String::new();
    }
    let several = runs.len() > 1;
    let mut out = table_head(title, &columns, several);
    for run in runs {
        let Some(t) = table(run) else { continue };
        for row in &t.rows {
            out.push_str("<tr>");
            if several {
                let _ = write!(out, "<td>{}</td>", esc(&run.name));
            }
            for c in &columns {
                let cell = t
                    .header
                    .iter()
                    .position(|h| h == c)
                    .and_then(|i| row.get(i))
                    .map_or("", String::as_str);
                let _ = match cell.parse::<u64>() {
                    Ok(n) => write!(out, "<td class=\"n\">{}</td>", thousands(n)),
                    Err(_) if cell.parse::<f64>().is_ok() => {
                        write!(out, "<td class=\"n\">{}</td>", esc(cell))
                    }
                    Err(_) => write!(out, "<td>{}</td>", esc(cell)),
                };
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</tbody></table>\n");
    out
}

/// A table's title and header row (a `run` column first when `several`),
/// its body opened.
fn table_head<S: AsRef<str>>(title: &str, columns: &[S], several: bool) -> String {
    let mut out = format!("<h3>{}</h3><table><thead><tr>", esc(title));
    if several {
        out.push_str("<th>run</th>");
    }
    for c in columns {
        let _ = write!(out, "<th>{}</th>", esc(&c.as_ref().replace('_', " ")));
    }
    out.push_str("</tr></thead><tbody>\n");
    out
}

/// An array of objects in summary.json as a table: the union of their keys
/// as columns, a `run` column when there are several runs.
fn array_table(runs: &[&Run], key: &str, title: &str) -> String {
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<(&str, &serde_json::Map<String, Value>)> = Vec::new();
    for run in runs {
        for item in lookup(&run.summary, &[key])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(object) = item.as_object() {
                for k in object.keys() {
                    if !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
                rows.push((&run.name, object));
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let several = runs.len() > 1;
    let mut out = table_head(title, &columns, several);
    for (name, object) in rows {
        out.push_str("<tr>");
        if several {
            let _ = write!(out, "<td>{}</td>", esc(name));
        }
        for c in &columns {
            let cell = match object.get(c) {
                Some(Value::Number(n)) => format!(
                    "<td class=\"n\">{}</td>",
                    match n.as_u64() {
                        Some(u) => thousands(u),
                        None => n.to_string(),
                    }
                ),
                Some(v) => format!("<td>{}</td>", esc(&flat_text(v))),
                None => "<td></td>".into(),
            };
            out.push_str(&cell);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out
}

/// A JSON value on one line for a table cell: strings as they are, null as
/// empty, objects as `key: value` pairs.
fn flat_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(flat_text).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", flat_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// `{"pace": {"kind": "constant"}}` → `pace.kind = constant`.
pub fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), flat_text(other));
        }
    }
}

/// Settings (the scenario), host facts and the worker layout: a column per
/// run; rows that differ between runs marked.
fn settings_section(runs: &[&Run]) -> String {
    let mut out = String::from("<section id=\"settings\"><h2>Settings and host</h2>\n");
    for (title, path) in [
        ("Scenario", &["scenario"][..]),
        ("Host values at start", &["host", "values"][..]),
        ("Workers", &["workers"][..]),
        ("Lab", &["lab"][..]),
    ] {
        let flat: Vec<BTreeMap<String, String>> = runs
            .iter()
            .map(|r| {
                let mut m = BTreeMap::new();
                if let Some(v) = lookup(&r.summary, path) {
                    flatten("", v, &mut m);
                }
                m.remove("deaths");
                m
            })
            .collect();
        let mut keys: Vec<&String> = flat.iter().flat_map(|m| m.keys()).collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<h3>{title}</h3><table class=\"settings\"><thead><tr><th></th>"
        );
        if runs.len() > 1 {
            for run in runs {
                let _ = write!(out, "<th>{}</th>", esc(&run.name));
            }
        } else {
            out.push_str("<th></th>");
        }
        out.push_str("</tr></thead><tbody>\n");
        for key in keys {
            let values: Vec<&str> = flat
                .iter()
                .map(|m| m.get(key).map_or("", String::as_str))
                .collect();
            let differs = values.iter().any(|v| *v != values[0]);
            let _ = write!(
                out,
                "<tr{}><td>{}</td>",
                if differs { " class=\"diff\"" } else { "" },
                esc(key)
            );
            for v in values {
                let _ = write!(out, "<td>{}</td>", esc(v));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_blocks_cannot_end_their_script() {
        let v = json!({"evidence": "</script><script>alert(1)</script> & <!--"});
        let block = json_block(&v);
        assert!(!block.contains('<') && !block.contains('>') && !block.contains('&'));
        let back: Value = serde_json::from_str(&block).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn micros_carry_their_unit() {
        assert_eq!(micros(148.0), "148 µs");
        assert_eq!(micros(2965.0), "2.965 ms");
        assert_eq!(micros(3000.0), "3 ms");
        assert_eq!(micros(31_119_000.0), "31.12 s");
    }

    #[test]
    fn a_day_of_rows_is_sent_as_at_most_4000_points_keeping_a_spike() {
        use crate::report::read::Timeseries;
        let n = 86_400;
        let mut active: Vec<Option<f64>> = (0..n).map(|_| Some(1000.0)).collect();
        active[50_000] = Some(99_999.0);
        let run = Run {
            name: "day".into(),
            dir: "day".into(),
            summary: Value::Null,
            timeseries: Timeseries {
                names: vec!["elapsed_s".into(), "active".into()],
                columns: vec![(1..=n).map(|i| Some(i as f64)).collect(), active],
                first_utc: None,
            },
            latency: Vec::new(),
            failures: None,
            sources: None,
            hosts: None,
        };
        let data = run_data(&run);
        assert_eq!(data["rows"], n);
        let t = data["t"].as_array().unwrap();
        assert_eq!(t.len(), 2 * BUCKETS);
        assert_eq!(t[0], 1);
        assert_eq!(t[t.len() - 1], n);
        let active = data["series"]["active"].as_array().unwrap();
        assert_eq!(active.len(), 2 * BUCKETS);
        assert!(active.contains(&Value::from(99_999)));
    }

    #[test]
    fn whole_numbers_have_no_fraction_in_the_data() {
        assert_eq!(num(4013.0).to_string(), "4013");
        assert_eq!(num(12.5).to_string(), "12.5");
        assert_eq!(nums(&[Some(1.0), None]).to_string(), "[1,null]");
    }
}
