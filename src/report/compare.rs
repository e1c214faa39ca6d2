//! `ceiling compare`: runs side by side, the way a tuning workflow needs
//! them (baseline → change one knob → re-measure): what differed in the
//! settings and host, whether the first limit moved, a table of figures
//! with the change against the first side, and — with several runs a side —
//! a Mann-Whitney U test per figure at 5% (benchstat's `~` when not
//! significant). `--fail-if` conditions gate CI on the figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::page::{flatten, micros};
use super::rank;
use super::read::{Run, latency_column, lookup};
use crate::model::thousands;

/// Significance level of the rank test.
pub const ALPHA: f64 = 0.05;

/// The unit a figure is in, for display and for `--fail-if` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Count,
    PerSecond,
    Seconds,
    Micros,
}

/// One side of the comparison: one run or several runs of the same setup.
#[derive(Debug, Clone)]
pub struct Side {
    /// `A`, `B`, ...
    pub label: String,
    pub runs: Vec<Run>,
}

/// A figure of one run, by name (the names `--fail-if` accepts).
pub fn figures(run: &Run) -> Vec<(String, Unit, f64)> {
    let mut out = Vec::new();
    let mut push = |name: &str, unit, v: Option<f64>| {
        if let Some(v) = v {
            out.push((name.to_string(), unit, v));
        }
    };
    push(
        "established",
        Unit::Count,
        run.num(&["totals", "established"]),
    );
    push(
        "peak_active",
        Unit::Count,
        run.num(&["totals", "peak_active"]),
    );
    push("attempted", Unit::Count, run.num(&["totals", "attempted"]));
    push("failed", Unit::Count, run.num(&["totals", "failed"]));
    push(
        "time_to_first_limit",
        Unit::Seconds,
        run.first_limit()
            .and_then(|f| f.get("at_elapsed_s"))
            .and_then(Value::as_f64),
    );
    push(
        "held_at_first_limit",
        Unit::Count,
        run.first_limit()
            .and_then(|f| f.get("active_at"))
            .and_then(Value::as_f64),
    );
    push("connect_rate", Unit::PerSecond, connect_rate(run));
    // Any other number in totals (closed_by_server, held_at_end, ...).
    if let Some(totals) = lookup(&run.summary, &["totals"]).and_then(Value::as_object) {
        for (name, v) in totals {
            let listed = ["attempted", "established", "failed", "peak_active"];
            if listed.contains(&name.as_str()) {
                continue;
            }
            let unit = if name.ends_with("_s") {
                Unit::Seconds
            } else {
                Unit::Count
            };
            push(name, unit, v.as_f64());
        }
    }
    if let Some(by_kind) = lookup(&run.summary, &["failures_by_kind"]).and_then(Value::as_object) {
        for (kind, n) in by_kind {
            push(&format!("failed_{kind}"), Unit::Count, n.as_f64());
        }
    }
    // A request run's `requests` object: counts, errors by kind, status
    // classes, and the answered rate over the run.
    if let Some(requests) = lookup(&run.summary, &["requests"]).filter(|r| r.is_object()) {
        let n = |k: &str| requests.get(k).and_then(Value::as_f64);
        push("requests_sent", Unit::Count, n("sent"));
        push("responses", Unit::Count, n("responses"));
        let errors = requests.get("errors").and_then(Value::as_object);
        push(
            "request_errors",
            Unit::Count,
            errors.map(|e| e.values().filter_map(Value::as_f64).sum()),
        );
        push("rejects", Unit::Count, n("rejects"));
        push("reconnects", Unit::Count, n("reconnects"));
        push(
            "request_rate",
            Unit::PerSecond,
            n("responses")
                .zip(run.num(&["duration_s"]))
                .filter(|(_, d)| *d > 0.0)
                .map(|(r, d)| r / d),
        );
        for (kind, v) in errors.into_iter().flatten() {
            push(&format!("request_errors_{kind}"), Unit::Count, v.as_f64());
        }
        for (class, v) in requests
            .get("status")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            push(&format!("status_{class}"), Unit::Count, v.as_f64());
        }
    }
    if let Some(latency) = lookup(&run.summary, &["latency"]).and_then(Value::as_object) {
        for (metric, p) in latency {
            let metric = metric.trim_end_matches("_us");
            for stat in ["p50", "p90", "p99", "p999", "max"] {
                push(
                    &format!("{metric}_{stat}"),
                    Unit::Micros,
                    p.get(stat).and_then(Value::as_f64),
                );
            }
        }
    }
    out
}

/// Connections established per second while the run was opening them:
/// the mean of `establish_rate_per_s` over the seconds with attempts;
/// from the totals when there is no time series.
fn connect_rate(run: &Run) -> Option<f64> {
    let ts = &run.timeseries;
    if let (Some(established), Some(attempts)) = (
        ts.column("establish_rate_per_s"),
        ts.column("attempt_rate_per_s"),
    ) {
        let opening: Vec<f64> = established
            .iter()
            .zip(attempts)
            .filter(|(_, a)| a.is_some_and(|a| a > 0.0))
            .filter_map(|(e, _)| *e)
            .collect();
        if !opening.is_empty() {
            return Some(opening.iter().sum::<f64>() / opening.len() as f64);
        }
    }
    let established = run.num(&["totals", "established"])?;
    let took = run.num(&["totals", "last_established_s"])?;
    (took > 0.0).then(|| established / took)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// A side's value of one figure: the median over its runs, and the runs'
/// values.
fn side_values(side: &Side, name: &str) -> Vec<f64> {
    side.runs
        .iter()
        .filter_map(|r| {
            figures(r)
                .into_iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, _, v)| v)
        })
        .collect()
}

/// One figure across the sides.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub figure: String,
    pub unit: Unit,
    /// Median per side (the value itself for one run).
    pub values: Vec<Option<f64>>,
    /// Change of each side against the first, in percent (None for the
    /// first and where either is missing or the first is 0).
    pub delta_pct: Vec<Option<f64>>,
    /// Rank-test p-value of each side against the first, with several runs
    /// on both.
    pub p: Vec<Option<f64>>,
    /// Whether the difference is significant at 5% (None: not tested).
    pub significant: Vec<Option<bool>>,
}

/// A setting or host value that differs between the sides.
#[derive(Debug, Clone, Serialize)]
pub struct SettingDiff {
    pub key: String,
    pub values: Vec<String>,
    /// Follows from another knob (e.g. the port count from the port range).
    pub derived: bool,
}

/// A side's first limit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LimitAt {
    /// The limit kind, or `none`.
    pub kind: String,
    /// Connections held when it was hit (median over the runs with it).
    pub held: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SideInfo {
    pub label: String,
    pub runs: Vec<String>,
}

/// Everything `compare` says.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub sides: Vec<SideInfo>,
    pub settings: Vec<SettingDiff>,
    pub knobs_changed: usize,
    pub warning: Option<String>,
    pub limits: Vec<LimitAt>,
    pub limit_moved: bool,
    pub limit_text: String,
    pub rows: Vec<Row>,
    pub significance: String,
}

/// Host values that are state, not settings: never compared.
const STATE: [&str; 2] = ["host.file_nr_allocated", "host.nf_conntrack_count"];
/// Values that follow from another one: shown, not counted as a knob.
const DERIVED: [&str; 2] = ["host.ip_local_port_count", "workers.threads_per_process"];

/// The settings of a run that can differ between runs: the scenario, host
/// values, the worker layout, a lab's sysctls and server; flattened.
fn settings_of(run: &Run) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (prefix, path) in [
        ("scenario", &["scenario"][..]),
        ("host", &["host", "values"][..]),
        ("workers.processes", &["workers", "processes"][..]),
        (
            "workers.threads_per_process",
            &["workers", "threads_per_process"][..],
        ),
        ("lab.sysctls", &["lab", "sysctls"][..]),
        ("lab.server.backlog", &["lab", "server", "backlog"][..]),
        ("lab.server.accept", &["lab", "server", "accept"][..]),
        ("lab.server.mode", &["lab", "server", "mode"][..]),
        ("lab.memory_limit", &["lab", "memory_cgroup", "limit"][..]),
    ] {
        if let Some(v) = lookup(&run.summary, path) {
            flatten(prefix, v, &mut out);
        }
    }
    out.remove("scenario.name");
    for key in STATE {
        out.remove(key);
    }
    // The built-in target listens on a fresh port each run.
    if out.get("scenario.embedded_target").map(String::as_str) == Some("true") {
        out.remove("scenario.targets");
    }
    out
}

fn limit_of(side: &Side) -> LimitAt {
    let mut kinds: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in &side.runs {
        let (kind, held) = match run.first_limit() {
            Some(f) => (
                f.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                f.get("active_at").and_then(Value::as_f64),
            ),
            None => ("none".to_string(), None),
        };
        let entry = kinds.entry(kind).or_default();
        entry.extend(held);
    }
    // The kind most runs hit (ties: the first in name order).
    let runs_with = |kind: &str| {
        side.runs
            .iter()
            .filter(|r| {
                r.first_limit()
                    .and_then(|f| f.get("kind"))
                    .and_then(Value::as_str)
                    .unwrap_or("none")
                    == kind
            })
            .count()
    };
    let kind = kinds
        .keys()
        .max_by_key(|k| (runs_with(k), std::cmp::Reverse((*k).clone())))
        .cloned()
        .unwrap_or_else(|| "none".into());
    let held = kinds.get_mut(&kind).and_then(|v| median(v));
    LimitAt { kind, held }
}

fn limit_words(limit: &LimitAt) -> String {
    match (&*limit.kind, limit.held) {
        ("none", _) => "no limit".into(),
        (kind, Some(held)) => format!("{kind} at {} held", thousands(held as u64)),
        (kind, None) => kind.to_string(),
    }
}

/// Compares the sides; the first is the baseline.
pub fn compare(sides: &[Side]) -> Comparison {
    // Settings: each side's first run.
    let settings: Vec<BTreeMap<String, String>> =
        sides.iter().map(|s| settings_of(&s.runs[0])).collect();
    let mut keys: Vec<&String> = settings.iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut diffs: Vec<SettingDiff> = keys
        .into_iter()
        .filter_map(|key| {
            let values: Vec<String> = settings
                .iter()
                .map(|m| match m.get(key).map(String::as_str) {
                    None | Some("") => "–".to_string(),
                    Some(v) => v.to_string(),
                })
                .collect();
            values.iter().any(|v| *v != values[0]).then(|| SettingDiff {
                key: key.clone(),
                values,
                derived: DERIVED.contains(&key.as_str()),
            })
        })
        .collect();
    // A lab sysctl and the host value read in its namespace are one knob.
    let lab_sysctls: Vec<String> = diffs
        .iter()
        .filter_map(|d| d.key.strip_prefix("lab.sysctls."))
        .filter_map(|k| k.rsplit('.').next())
        .map(str::to_string)
        .collect();
    for d in &mut diffs {
        if let Some(host) = d.key.strip_prefix("host.")
            && lab_sysctls.iter().any(|k| k == host)
        {
            d.derived = true;
        }
    }
    // Knobs each side changed against the first.
    let per_side: Vec<usize> = (1..sides.len())
        .map(|i| {
            diffs
                .iter()
                .filter(|d| !d.derived && d.values[i] != d.values[0])
                .count()
        })
        .collect();
    let knobs_changed = per_side.iter().copied().max().unwrap_or(0);
    let many: Vec<String> = per_side
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 1)
        .map(|(i, n)| {
            format!(
                "{} changes {n} against {}",
                sides[i + 1].label,
                sides[0].label
            )
        })
        .collect();
    let mut warnings = Vec::new();
    if !many.is_empty() {
        warnings.push(format!(
            "more than one knob changed ({}): a change below cannot be put down to one of them \
             (change one knob at a time)",
            many.join(", ")
        ));
    }
    // The runs of one side should be repeats of one setup.
    for side in sides {
        let first = settings_of(&side.runs[0]);
        let mut differ: Vec<String> = Vec::new();
        for run in &side.runs[1..] {
            let other = settings_of(run);
            for key in first.keys().chain(other.keys()) {
                if first.get(key) != other.get(key)
                    && !DERIVED.contains(&key.as_str())
                    && !differ.contains(key)
                {
                    differ.push(key.clone());
                }
            }
        }
        if !differ.is_empty() {
            differ.sort();
            warnings.push(format!(
                "the runs of {} are not repeats of one setup: they differ in {}",
                side.label,
                differ.join(", ")
            ));
        }
    }
    let warning = (!warnings.is_empty()).then(|| warnings.join("; "));

    let limits: Vec<LimitAt> = sides.iter().map(limit_of).collect();
    let limit_moved = limits.iter().any(|l| l.kind != limits[0].kind);
    let chain = limits
        .iter()
        .map(limit_words)
        .collect::<Vec<_>>()
        .join(" → ");
    let limit_text = if limit_moved {
        format!("{chain}: the limit moved")
    } else if limits[0].kind == "none" {
        format!("{chain}: no side hit a limit")
    } else {
        format!("{chain}: the same limit")
    };

    // Figures: every name any run has, in the order of the first run that
    // has it.
    let mut names: Vec<(String, Unit)> = Vec::new();
    for side in sides {
        for run in &side.runs {
            for (name, unit, _) in figures(run) {
                if !names.iter().any(|(n, _)| *n == name) {
                    names.push((name, unit));
                }
            }
        }
    }
    let tested = sides.iter().all(|s| s.runs.len() > 1);
    let rows = names
        .into_iter()
        // Failure kinds no run saw are left out.
        .filter(|(name, _)| {
            !name.starts_with("failed_")
                || sides
                    .iter()
                    .any(|s| side_values(s, name).iter().any(|v| *v != 0.0))
        })
        .map(|(figure, unit)| {
            let per_side: Vec<Vec<f64>> = sides.iter().map(|s| side_values(s, &figure)).collect();
            let values: Vec<Option<f64>> =
                per_side.iter().map(|v| median(&mut v.clone())).collect();
            let base = values[0];
            let delta_pct = values
                .iter()
                .enumerate()
                .map(|(i, v)| match (i, base, v) {
                    (0, _, _) => None,
                    (_, Some(b), Some(v)) if b != 0.0 => Some((v - b) / b * 100.0),
                    _ => None,
                })
                .collect();
            let p: Vec<Option<f64>> = per_side
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (i > 0 && tested)
                        .then(|| rank::mann_whitney(&per_side[0], v).map(|t| t.p))
                        .flatten()
                })
                .collect();
            let significant = p.iter().map(|p| p.map(|p| p < ALPHA)).collect();
            Row {
                figure,
                unit,
                values,
                delta_pct,
                p,
                significant,
            }
        })
        .collect();
    let counts: Vec<usize> = sides.iter().map(|s| s.runs.len()).collect();
    let significance = if counts.iter().all(|&n| n == 1) {
        "one run each: no significance (give several runs a side, A1,A2,A3 B1,B2,B3, for a \
         rank test)"
            .to_string()
    } else if !tested {
        "a side with one run: no significance (give several runs on every side)".to_string()
    } else {
        format!(
            "Mann-Whitney U test against A at {}%: a change is shown where p < {ALPHA}, `~` \
             otherwise{}. Do not re-run until something looks significant: that finds \
             differences that are not there.",
            ALPHA * 100.0,
            if counts.iter().any(|&n| n < 4) {
                " (with 3 runs or fewer a side no difference can reach 5%: use at least 4)"
            } else {
                ""
            }
        )
    };
    Comparison {
        sides: sides
            .iter()
            .map(|s| SideInfo {
                label: s.label.clone(),
                runs: s.runs.iter().map(|r| r.dir.display().to_string()).collect(),
            })
            .collect(),
        settings: diffs,
        knobs_changed,
        warning,
        limits,
        limit_moved,
        limit_text,
        rows,
        significance,
    }
}

/// A figure's value with its unit.
pub fn show(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count => thousands(v.max(0.0).round() as u64),
        Unit::PerSecond => format!("{}/s", thousands(v.max(0.0).round() as u64)),
        Unit::Seconds => micros(v * 1e6),
        Unit::Micros => micros(v),
    }
}

/// The table and notes for a person.
pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    for side in &c.sides {
        let _ = writeln!(out, "{}: {}", side.label, side.runs.join(", "));
    }
    out.push('\n');
    if c.settings.is_empty() {
        out.push_str("settings and host: the same\n");
    } else {
        out.push_str("settings and host that differ:\n");
        let width = c.settings.iter().map(|d| d.key.len()).max().unwrap_or(0);
        for d in &c.settings {
            let _ = writeln!(
                out,
                "  {:<width$}  {}{}",
                d.key,
                d.values.join("  →  "),
                if d.derived { "  (follows)" } else { "" }
            );
        }
    }
    if let Some(w) = &c.warning {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "\nfirst limit: {}\n", c.limit_text);

    let mut header = vec!["".to_string()];
    for (i, side) in c.sides.iter().enumerate() {
        header.push(side.label.clone());
        if i > 0 {
            header.push("Δ%".into());
        }
    }
    let mut table = vec![header];
    for row in &c.rows {
        let mut line = vec![row.figure.clone()];
        for (i, v) in row.values.iter().enumerate() {
            line.push(v.map_or_else(|| "–".into(), |v| show(row.unit, v)));
            if i > 0 {
                line.push(delta_text(row, i));
            }
        }
        table.push(line);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|j| {
            table
                .iter()
                .map(|l| l[j].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in &table {
        let mut text = String::new();
        for (j, cell) in line.iter().enumerate() {
            let pad = widths[j] - cell.chars().count();
            if j == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str("  ");
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
    let _ = writeln!(out, "\n{}", c.significance);
    out
}

fn delta_text(row: &Row, i: usize) -> String {
    let delta = row.delta_pct[i].map(|d| format!("{d:+.1}%"));
    match (row.significant[i], row.p[i]) {
        (Some(true), Some(p)) => format!("{} (p={p:.3})", delta.unwrap_or_else(|| "≠".into())),
        (Some(false), Some(p)) => format!("~ (p={p:.3})"),
        _ => delta.unwrap_or_else(|| "–".into()),
    }
}

/// A `--fail-if` condition: `FIGURE OP VALUE`, VALUE a number with a unit
/// or a factor of the first side's value (`0.95*A`, `A`).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub text: String,
    pub figure: String,
    pub op: Op,
    pub rhs: Rhs,
    /// One of the figures every ceiling has (not a field of summary.json's
    /// totals that only some versions write).
    pub known: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rhs {
    /// In the figure's own unit.
    Value(f64),
    /// This factor times the first side's value.
    OfA(f64),
}

/// A condition that cannot be parsed: the message names the text, what is
/// accepted and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--fail-if '{text}': {reason}")]
pub struct ConditionError {
    pub text: String,
    pub reason: String,
}

const FIGURES_HELP: &str = "established, peak_active, attempted, failed, time_to_first_limit \
     (s), held_at_first_limit, connect_rate (/s), failed_<kind>, connect_p50/p90/p99/p999/max \
     and rtt_... (µs); in request mode requests_sent, responses, request_errors, \
     request_errors_<kind>, rejects, reconnects, status_<class>, request_rate (/s), \
     queue_..., service_..., total_... (µs)";

fn unknown_figure(figure: &str) -> String {
    format!(
        "unknown figure '{figure}': use one of {FIGURES_HELP}, or a numeric field of \
         summary.json's totals"
    )
}

/// The unit a figure name has, or None for a name `compare` does not know.
fn unit_of(figure: &str) -> Option<Unit> {
    match figure {
        "established" | "peak_active" | "attempted" | "failed" | "held_at_first_limit" => {
            Some(Unit::Count)
        }
        "requests_sent" | "responses" | "request_errors" | "rejects" | "reconnects" => {
            Some(Unit::Count)
        }
        "time_to_first_limit" => Some(Unit::Seconds),
        "connect_rate" | "request_rate" => Some(Unit::PerSecond),
        f if (f.starts_with("request_errors_") || f.starts_with("status_"))
            && !f.ends_with('_') =>
        {
            Some(Unit::Count)
        }
        f if f.starts_with("failed_") && f.len() > 7 => Some(Unit::Count),
        f => latency_column(&format!("{f}_us")).map(|_| Unit::Micros),
    }
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        let err = |reason: String| ConditionError {
            text: text.to_string(),
            reason,
        };
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let Some((at, token, op)) = ops
            .iter()
            .filter_map(|(t, op)| text.find(t).map(|i| (i, *t, *op)))
            .min_by_key(|(i, t, _)| (*i, std::cmp::Reverse(t.len())))
        else {
            return Err(err(
                "no comparison: write FIGURE OP VALUE with OP one of < <= > >= == !=, e.g. \
                 'peak_active < 0.95*A' or 'connect_p99 > 5ms'"
                    .into(),
            ));
        };
        let figure = text[..at].trim().to_string();
        let value = text[at + token.len()..].trim();
        let known = unit_of(&figure);
        // Any other totals field of summary.json (held_at_end, ...) is a
        // count, or seconds for a name ending in _s; whether a run has it
        // is known once the runs are read (`check`).
        let identifier = !figure.is_empty()
            && figure
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let unit = match known {
            Some(unit) => unit,
            None if identifier && figure.ends_with("_s") => Unit::Seconds,
            None if identifier => Unit::Count,
            None => return Err(err(unknown_figure(&figure))),
        };
        let rhs = parse_rhs(value, unit).map_err(err)?;
        Ok(Condition {
            text: text.to_string(),
            figure,
            op,
            rhs,
            known: known.is_some(),
        })
    }

    fn holds(&self, v: f64, a: Option<f64>) -> Option<(bool, f64)> {
        let limit = match self.rhs {
            Rhs::Value(x) => x,
            Rhs::OfA(f) => f * a?,
        };
        let holds = match self.op {
            Op::Lt => v < limit,
            Op::Le => v <= limit,
            Op::Gt => v > limit,
            Op::Ge => v >= limit,
            Op::Eq => v == limit,
            Op::Ne => v != limit,
        };
        Some((holds, limit))
    }
}

fn parse_rhs(value: &str, unit: Unit) -> Result<Rhs, String> {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    if compact == "A" {
        return Ok(Rhs::OfA(1.0));
    }
    if let Some(f) = compact
        .strip_suffix("*A")
        .or_else(|| compact.strip_prefix("A*"))
    {
        return f
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Rhs::OfA)
            .ok_or_else(|| format!("'{f}' is not a number: write a factor of A as e.g. 0.95*A"));
    }
    let split = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(compact.len());
    let (number, suffix) = compact.split_at(split);
    let Some(x) = number.parse::<f64>().ok().filter(|x| x.is_finite()) else {
        return Err(format!(
            "'{value}' is not a value: write a number with its unit (5ms, 2s, 28k) or a factor \
             of the first side, e.g. 0.95*A"
        ));
    };
    let scale = match (unit, suffix) {
        (_, "") => Some(1.0),
        (Unit::Count | Unit::PerSecond, "k") => Some(1e3),
        (Unit::Count | Unit::PerSecond, "m" | "M") => Some(1e6),
        (Unit::PerSecond, "/s") => Some(1.0),
        (Unit::PerSecond, "k/s") => Some(1e3),
        (Unit::Micros, "us" | "µs") => Some(1.0),
        (Unit::Micros, "ms") => Some(1e3),
        (Unit::Micros, "s") => Some(1e6),
        (Unit::Seconds, "ms") => Some(1e-3),
        (Unit::Seconds, "s") => Some(1.0),
        (Unit::Seconds, "m" | "min") => Some(60.0),
        _ => None,
    };
    let accepted = match unit {
        Unit::Count => "a count: 28231, 28k, 1m",
        Unit::PerSecond => "a rate per second: 5000, 5k, 5k/s",
        Unit::Seconds => "a time: 500ms, 2s, 1min",
        Unit::Micros => "a latency: 800us, 5ms, 1s",
    };
    scale.map(|s| Rhs::Value(x * s)).ok_or_else(|| {
        format!("'{value}': unit '{suffix}' does not fit; this figure takes {accepted}")
    })
}

/// A condition that held, for the output.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub condition: String,
    pub side: String,
    pub value: f64,
    pub limit: f64,
    pub text: String,
}

/// Checks each condition against every side after the first (a side's
/// median); a condition whose figure a side lacks (no rtt measured, no
/// limit hit) does not hold there. A figure that is neither one every
/// ceiling has nor in any run's totals is an error.
pub fn check(c: &Comparison, conditions: &[Condition]) -> Result<Vec<Held>, ConditionError> {
    let mut held = Vec::new();
    for cond in conditions {
        let Some(row) = c.rows.iter().find(|r| r.figure == cond.figure) else {
            if cond.known {
                continue;
            }
            return Err(ConditionError {
                text: cond.text.clone(),
                reason: unknown_figure(&cond.figure),
            });
        };
        for (i, side) in c.sides.iter().enumerate().skip(1) {
            let Some(v) = row.values[i] else { continue };
            if let Some((true, limit)) = cond.holds(v, row.values[0]) {
                held.push(Held {
                    condition: cond.text.clone(),
                    side: side.label.clone(),
                    value: v,
                    limit,
                    text: format!(
                        "fail-if '{}' holds for {}: {} is {} against {}",
                        cond.text,
                        side.label,
                        cond.figure,
                        show(row.unit, v),
                        show(row.unit, limit)
                    ),
                });
            }
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests;
