//! `ceiling merge`: results directories of runs made apart (hosts that
//! could not reach one coordinator) → one results directory, exactly.
//!
//! - Counters add: totals, failures by kind, failure groups (by kind,
//!   syscall and errno; the earliest first), sources (by name), warnings.
//! - Histograms add, from each run's `<metric>.hlog` (never from the
//!   percentiles, which do not add): the whole run's is the sum of every
//!   interval of every input, the latency figures are read from it.
//! - The time series aligns on UTC seconds: the rows (and intervals) of
//!   every input that end in the same UTC second make one row. Cumulative
//!   counts (attempted, established, failed, active) add each input's
//!   latest row as of that second (0 before it started, its last row after
//!   it ended); per-second counts and rates add over the inputs with a row
//!   in the second (two rows of one input in one second, a late last cut,
//!   are averaged over their spans first); the connect percentiles are the
//!   second's merged histogram's; `driver_cpu_cores` adds; `utc` is the
//!   latest of the second's rows and `elapsed_s` counts from the earliest
//!   input's start.
//! - Request runs (`--mode request`) merge with request runs: their
//!   `requests` objects add (counts, errors and status classes by key,
//!   error texts kept once), their queue, service and total histograms add
//!   from their `.hlog` files as connect's do, and their request columns
//!   add by UTC second (rates as rates; queue depth and busy connections
//!   as each input's last row of the second has them; total p99 from the
//!   second's merged histogram). The pool is the pools' sum.
//! - Figures that do not add: `peak_active` is the sum of the inputs'
//!   peaks (at least what all held at once), each source's peak ports in
//!   use likewise; the first limit is the earliest by UTC, its times
//!   counted from the merged start, and `merge.first_limit_from` names its
//!   directory; `host.values` keeps the values every input had alike and
//!   `host.counter_deltas` add.
//!
//! Inputs are refused, before anything is written, when they are not a
//! run's results directory, lack the `.hlog` files (an older ceiling),
//! recorded histograms with other settings than this ceiling adds, or mix
//! request runs with connection runs.
//! The merged directory is written by [`crate::sink::ResultsDir`] as a run's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::classify;
use crate::model::{
    FailureGroup, HostReport, LimitKind, MergeReport, MergedRun, Percentiles, RequestsSummary,
    Safety, SourceSummary, Summary, Totals, Warnings, WorkersReport,
};
use crate::sink::hlog::{self, ReadInterval, ReadLog};
use crate::sink::{Metric, ResultsDir, ResultsUnwritten};
use crate::stats::requests::RequestDelta;
use crate::stats::{
    Delta, IntervalHistograms, Phase, RequestIntervals, RequestRow, SecondRow, Snapshot,
    new_histogram, percentiles,
};

/// Why the merge was refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Bad input: the message names the directory and what to do.
    #[error("{0}")]
    Input(String),
    #[error("cannot write the merged results to '{dir}': {message}")]
    Create { dir: PathBuf, message: String },
}

/// A merged results directory, written as far as the disk let it.
pub struct Merged {
    pub summary: Summary,
    pub dir: PathBuf,
    /// Err: the files that could not be written, named (the summary is
    /// whole all the same).
    pub written: Result<(), ResultsUnwritten>,
}

/// One input, read and checked.
struct Input {
    dir: PathBuf,
    summary: Summary,
    /// To the millisecond: its `.hlog` StartTime.
    start: SystemTime,
    rows: Vec<InputRow>,
    logs: Vec<(Metric, ReadLog)>,
}

struct InputRow {
    utc: SystemTime,
    /// Seconds since the row before (or since the start).
    span_s: f64,
    row: SecondRow,
}

/// Reads every input, refusing the first that cannot be merged, then
/// writes the merged directory to `out` (which must not exist, or be
/// empty).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    let inputs: Vec<Input> = dirs
        .iter()
        .map(|dir| read_input(dir))
        .collect::<Result<_, _>>()?;
    let Some(start) = inputs.iter().map(|i| i.start).min() else {
        return Err(MergeError::Input(
            "nothing to merge: give one results directory or more".into(),
        ));
    };
    let requests = inputs.iter().any(|i| i.summary.requests.is_some());
    if let Some(other) = inputs
        .iter()
        .find(|i| i.summary.requests.is_some() != requests)
    {
        return Err(refuse(
            &other.dir,
            "it is a connection-mode run and others are request-mode runs (--mode request), or \
             the other way round: their time series have other columns; merge request runs \
             with request runs only",
        ));
    }
    // Every refusal is behind: from here on the merge only writes.
    let mut results = ResultsDir::create_for(out, requests).map_err(|e| MergeError::Create {
        dir: out.to_path_buf(),
        message: e.to_string(),
    })?;
    results.set_start(start);
    let mut whole: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
    merge_seconds(&inputs, start, |second| {
        let request_hists = second.interval.requests.as_deref().map(|r| {
            [
                (Metric::Queue, &r.queue_us),
                (Metric::Service, &r.service_us),
                (Metric::Total, &r.total_us),
            ]
        });
        for (metric, hist) in [
            (Metric::Connect, &second.interval.connect_us),
            (Metric::Rtt, &second.interval.rtt_us),
        ]
        .into_iter()
        .chain(request_hists.into_iter().flatten())
        {
            whole
                .entry(metric.as_str())
                .or_insert_with(new_histogram)
                .add(hist)
                .expect("checked histogram settings");
        }
        results.append_rows(std::slice::from_ref(&second.row));
        results.append_intervals(vec![second.interval]);
    })?;
    let summary = merged_summary(&inputs, start, &whole);
    let mut total = Delta::new(0);
    total.connect_us = whole.remove("connect").unwrap_or_else(new_histogram);
    total.rtt_us = whole.remove("rtt").unwrap_or_else(new_histogram);
    if requests {
        let mut r = RequestDelta::default();
        for (metric, hist) in [
            ("queue", &mut r.queue_us),
            ("service", &mut r.service_us),
            ("total", &mut r.total_us),
        ] {
            if let Some(h) = whole.remove(metric) {
                *hist = h;
            }
        }
        total.requests = Some(Box::new(r));
    }
    let last = Snapshot {
        elapsed: Duration::from_secs_f64(summary.duration_s),
        phase: Phase::Done,
        target_rate_per_s: 0.0,
        planned_connections: summary.totals.attempted + summary.totals.never_attempted,
        total,
        peak_active: summary.totals.peak_active,
        peak_ports_in_use: Vec::new(),
        last_row: None,
    };
    let written = results.finish(&summary, &last);
    Ok(Merged {
        summary,
        dir: out.to_path_buf(),
        written,
    })
}

fn refuse(dir: &Path, why: impl std::fmt::Display) -> MergeError {
    MergeError::Input(format!("cannot merge '{}': {why}", dir.display()))
}

fn read_input(dir: &Path) -> Result<Input, MergeError> {
    let summary_path = dir.join("summary.json");
    if !dir.is_dir() || !summary_path.is_file() || !dir.join("timeseries.csv").is_file() {
        let why = if dir.join("explore.json").is_file() || dir.join("ladder.csv").is_file() {
            "it is an explore's directory; merge its steps' run directories instead"
        } else {
            "it is not a run's results directory (no summary.json and timeseries.csv there); \
             give directories that `ceiling run` or `ceiling lab` wrote"
        };
        return Err(refuse(dir, why));
    }
    let text = std::fs::read_to_string(&summary_path)
        .map_err(|e| refuse(dir, format!("cannot read summary.json: {e}")))?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| {
        refuse(
            dir,
            format!(
                "its summary.json is not one this ceiling reads ({e}); merge runs of one version"
            ),
        )
    })?;
    let mut metrics = vec![Metric::Connect];
    if summary.latency.get("rtt_us").is_some_and(|p| p.count > 0) {
        metrics.push(Metric::Rtt);
    }
    // A request run wrote its three request histograms when it had a
    // response.
    if summary.requests.is_some() && summary.latency.get("total_us").is_some_and(|p| p.count > 0) {
        metrics.extend([Metric::Queue, Metric::Service, Metric::Total]);
    }
    let mut logs = Vec::new();
    for metric in metrics {
        let name = format!("{}.hlog", metric.as_str());
        let path = dir.join(&name);
        if !path.is_file() {
            return Err(refuse(
                dir,
                format!(
                    "it has no {name}: it was made by an older ceiling, one that did not write \
                     its histograms per second yet (or its files are incomplete); a merge adds \
                     those histograms, so rerun it with this ceiling"
                ),
            ));
        }
        let bytes =
            std::fs::read(&path).map_err(|e| refuse(dir, format!("cannot read {name}: {e}")))?;
        let log = hlog::read(&bytes).map_err(|e| refuse(dir, format!("{name}: {e}")))?;
        check_settings(dir, &name, &log)?;
        logs.push((metric, log));
    }
    let start = logs
        .first()
        .and_then(|(_, log)| log.start_time)
        .or_else(|| humantime::parse_rfc3339(&summary.started_at).ok())
        .ok_or_else(|| refuse(dir, "its start time cannot be read"))?;
    let rows = read_rows(dir, start, summary.requests.is_some())?;
    Ok(Input {
        dir: dir.to_path_buf(),
        summary,
        start,
        rows,
        logs,
    })
}

/// Refuses a log whose histograms this ceiling does not add exactly.
fn check_settings(dir: &Path, name: &str, log: &ReadLog) -> Result<(), MergeError> {
    let ours = new_histogram();
    let settings = |h: &Histogram<u64>| (h.low(), h.high(), h.sigfig());
    for interval in &log.intervals {
        let theirs = interval.settings;
        if theirs != settings(&ours) {
            return Err(refuse(
                dir,
                format!(
                    "its {name} holds histograms of {} significant figures from {} to {} µs; \
                     this ceiling adds histograms of {} significant figures from {} to {} µs: \
                     merge only runs made with the same histogram settings",
                    theirs.2,
                    theirs.0,
                    theirs.1,
                    ours.sigfig(),
                    ours.low(),
                    ours.high()
                ),
            ));
        }
    }
    Ok(())
}

/// `timeseries.csv` by column name, into rows (connect and total
/// percentiles aside: they come from the histograms); a request run's
/// (`requests`) request columns too.
fn read_rows(dir: &Path, start: SystemTime, requests: bool) -> Result<Vec<InputRow>, MergeError> {
    let path = dir.join("timeseries.csv");
    let bad = |why: String| refuse(dir, format!("timeseries.csv: {why}"));
    let mut reader = csv::Reader::from_path(&path).map_err(|e| bad(e.to_string()))?;
    let header = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
    let column = |name: &str| header.iter().position(|h| h == name);
    let required = |name: &str| column(name).ok_or_else(|| bad(format!("no {name} column")));
    let [elapsed, utc, attempted, established, failed, active] = [
        "elapsed_s",
        "utc",
        "attempted",
        "established",
        "failed",
        "active",
    ];
    let (elapsed, utc, attempted, established, failed, active) = (
        required(elapsed)?,
        required(utc)?,
        required(attempted)?,
        required(established)?,
        required(failed)?,
        required(active)?,
    );
    let optional = |name: &str| column(name);
    let rates = [
        "target_rate_per_s",
        "attempt_rate_per_s",
        "establish_rate_per_s",
    ]
    .map(optional);
    let kinds: Vec<Option<usize>> = LimitKind::ALL
        .iter()
        .map(|k| optional(&format!("failed_{}", k.as_str())))
        .collect();
    let syn = optional("syn_retransmit_handshakes");
    let slow = optional("port_search_slow");
    let cpu = optional("driver_cpu_cores");
    let request_columns = if requests {
        let [sent, responses, errors, rejects, depth, busy] = [
            "requests_sent_per_s",
            "responses_per_s",
            "request_errors_per_s",
            "rejects_per_s",
            "queue_depth",
            "busy_connections",
        ];
        Some([
            required(sent)?,
            required(responses)?,
            required(errors)?,
            required(rejects)?,
            required(depth)?,
            required(busy)?,
        ])
    } else {
        None
    };

    let mut rows = Vec::new();
    let mut previous = start;
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(format!("row {}: {e}", i + 1)))?;
        let field = |c: usize| record.get(c).unwrap_or("");
        let count = |c: Option<usize>| -> Result<u64, MergeError> {
            match c.map(field).filter(|f| !f.is_empty()) {
                None => Ok(0),
                Some(f) => f
                    .parse()
                    .map_err(|_| bad(format!("row {}: {f:?} is not a count", i + 1))),
            }
        };
        let number = |c: Option<usize>| -> Result<Option<f64>, MergeError> {
            match c.map(field).filter(|f| !f.is_empty()) {
                None => Ok(None),
                Some(f) => f
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(format!("row {}: {f:?} is not a number", i + 1))),
            }
        };
        let utc_text = field(utc);
        let at = parse_utc(utc_text)
            .ok_or_else(|| bad(format!("row {}: utc {utc_text:?} is not a time", i + 1)))?;
        let mut failures_by_kind = [0; LimitKind::ALL.len()];
        for (slot, c) in failures_by_kind.iter_mut().zip(&kinds) {
            *slot = count(*c)?;
        }
        let [target, attempt_rate, establish_rate] = rates;
        let row = SecondRow {
            elapsed_s: count(Some(elapsed))?,
            utc: humantime::format_rfc3339_millis(at).to_string(),
            attempted: count(Some(attempted))?,
            established: count(Some(established))?,
            failed: count(Some(failed))?,
            active: count(Some(active))?,
            target_rate_per_s: number(target)?.unwrap_or(0.0),
            attempt_rate_per_s: number(attempt_rate)?.unwrap_or(0.0),
            establish_rate_per_s: number(establish_rate)?.unwrap_or(0.0),
            failures_by_kind,
            syn_retransmit_handshakes: count(syn)?,
            port_search_slow: count(slow)?,
            connect: Percentiles::default(),
            driver_cpu_cores: number(cpu)?,
            requests: match request_columns {
                None => None,
                Some([sent, responses, errors, rejects, depth, busy]) => Some(RequestRow {
                    sent_per_s: number(Some(sent))?.unwrap_or(0.0),
                    responses_per_s: number(Some(responses))?.unwrap_or(0.0),
                    errors_per_s: number(Some(errors))?.unwrap_or(0.0),
                    rejects_per_s: number(Some(rejects))?.unwrap_or(0.0),
                    queue_depth: count(Some(depth))?,
                    busy: count(Some(busy))?,
                    total: Percentiles::default(),
                }),
            },
        };
        let span_s = seconds_between(previous, at).max(1e-3);
        previous = previous.max(at);
        rows.push(InputRow {
            utc: at,
            span_s,
            row,
        });
    }
    Ok(rows)
}

/// `2026-12-06 01:02:03.456` (as timeseries.csv writes it) or RFC 3339.
fn parse_utc(text: &str) -> Option<SystemTime> {
    let rfc3339 = if text.ends_with('Z') {
        text.to_string()
    } else {
        format!("{}Z", text.replacen(' ', "T", 1))
    };
    humantime::parse_rfc3339(&rfc3339).ok()
}

fn unix_second(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).map_or(0.0, |d| d.as_secs_f64())
}

/// One merged second: its row and its histograms.
struct MergedSecond {
    row: SecondRow,
    interval: IntervalHistograms,
}

/// The merged time series and intervals, one per UTC second in which any
/// input ended a row or an interval, oldest first, each handed to `each`
/// as it is made: one second's histograms are in memory at a time.
fn merge_seconds(
    inputs: &[Input],
    start: SystemTime,
    mut each: impl FnMut(MergedSecond),
) -> Result<(), MergeError> {
    let mut ends: BTreeMap<u64, SystemTime> = BTreeMap::new();
    let mut note = |at: SystemTime| {
        let end = ends.entry(unix_second(at)).or_insert(at);
        *end = (*end).max(at);
    };
    let mut intervals: BTreeMap<u64, Vec<(Metric, &Input, &ReadInterval)>> = BTreeMap::new();
    for input in inputs {
        for row in &input.rows {
            note(row.utc);
        }
        for (metric, log) in &input.logs {
            for interval in &log.intervals {
                note(interval.end);
                intervals
                    .entry(unix_second(interval.end))
                    .or_default()
                    .push((*metric, input, interval));
            }
        }
    }
    let start_second = unix_second(start);
    let requests = inputs.iter().any(|i| i.summary.requests.is_some());
    let rows: Vec<RowsBySecond<'_>> = inputs.iter().map(|i| rows_by_second(&i.rows)).collect();
    for (s, end) in ends {
        let mut row = merged_row(&rows, s, requests);
        row.elapsed_s = s.saturating_sub(start_second);
        row.utc = humantime::format_rfc3339_millis(end).to_string();
        let (mut connect_us, mut rtt_us) = (new_histogram(), new_histogram());
        let mut request_hists = requests.then(|| RequestIntervals {
            queue_us: new_histogram(),
            service_us: new_histogram(),
            total_us: new_histogram(),
        });
        for (metric, input, interval) in intervals.remove(&s).unwrap_or_default() {
            let hist = interval
                .histogram()
                .map_err(|e| refuse(&input.dir, format!("{}.hlog: {e}", metric.as_str())))?;
            let into = match (metric, request_hists.as_mut()) {
                (Metric::Connect, _) => &mut connect_us,
                (Metric::Rtt, _) => &mut rtt_us,
                (Metric::Queue, Some(r)) => &mut r.queue_us,
                (Metric::Service, Some(r)) => &mut r.service_us,
                (Metric::Total, Some(r)) => &mut r.total_us,
                // Request inputs only with request inputs (merge).
                (_, None) => continue,
            };
            into.add(hist).expect("checked histogram settings");
        }
        row.connect = percentiles(&connect_us);
        if let (Some(request_row), Some(r)) = (row.requests.as_mut(), &request_hists) {
            request_row.total = percentiles(&r.total_us);
        }
        each(MergedSecond {
            interval: IntervalHistograms {
                utc: row.utc.clone(),
                connect_us,
                rtt_us,
                requests: request_hists.map(Box::new),
            },
            row,
        });
    }
    Ok(())
}

/// Each input's rows by the UTC second they end in.
type RowsBySecond<'a> = BTreeMap<u64, Vec<&'a InputRow>>;

fn rows_by_second(rows: &[InputRow]) -> RowsBySecond<'_> {
    let mut by_second: RowsBySecond<'_> = BTreeMap::new();
    for row in rows {
        by_second.entry(unix_second(row.utc)).or_default().push(row);
    }
    by_second
}

/// The row of UTC second `s`, its figures added over the inputs (see the
/// module's doc); `elapsed_s`, `utc`, `connect` and the total latency are
/// the caller's. `requests`: the inputs are request runs; their request
/// rates add as the other rates, their queue depth and busy connections
/// (as of a row's end) add each input's last row of the second.
fn merged_row(inputs: &[RowsBySecond<'_>], s: u64, requests: bool) -> SecondRow {
    let mut merged = SecondRow {
        elapsed_s: 0,
        utc: String::new(),
        attempted: 0,
        established: 0,
        failed: 0,
        active: 0,
        target_rate_per_s: 0.0,
        attempt_rate_per_s: 0.0,
        establish_rate_per_s: 0.0,
        failures_by_kind: [0; LimitKind::ALL.len()],
        syn_retransmit_handshakes: 0,
        port_search_slow: 0,
        connect: Percentiles::default(),
        driver_cpu_cores: None,
        requests: requests.then(RequestRow::default),
    };
    for rows in inputs {
        // Its latest row as of the end of this second: the cumulative counts.
        if let Some(latest) = rows.range(..=s).next_back().and_then(|(_, r)| r.last()) {
            merged.attempted += latest.row.attempted;
            merged.established += latest.row.established;
            merged.failed += latest.row.failed;
            merged.active += latest.row.active;
        }
        let Some(here) = rows.get(&s) else {
            continue;
        };
        let span: f64 = here.iter().map(|r| r.span_s).sum();
        let mean = |f: fn(&SecondRow) -> f64| {
            here.iter().map(|r| f(&r.row) * r.span_s).sum::<f64>() / span
        };
        merged.target_rate_per_s += mean(|r| r.target_rate_per_s);
        merged.attempt_rate_per_s += mean(|r| r.attempt_rate_per_s);
        merged.establish_rate_per_s += mean(|r| r.establish_rate_per_s);
        for r in here {
            for (sum, n) in merged
                .failures_by_kind
                .iter_mut()
                .zip(r.row.failures_by_kind)
            {
                *sum += n;
            }
            merged.syn_retransmit_handshakes += r.row.syn_retransmit_handshakes;
            merged.port_search_slow += r.row.port_search_slow;
        }
        if let Some(sum) = merged.requests.as_mut() {
            let rate = |f: fn(&RequestRow) -> f64| {
                here.iter()
                    .map(|r| r.row.requests.as_ref().map_or(0.0, f) * r.span_s)
                    .sum::<f64>()
                    / span
            };
            sum.sent_per_s += rate(|r| r.sent_per_s);
            sum.responses_per_s += rate(|r| r.responses_per_s);
            sum.errors_per_s += rate(|r| r.errors_per_s);
            sum.rejects_per_s += rate(|r| r.rejects_per_s);
            if let Some(last) = here.last().and_then(|r| r.row.requests.as_ref()) {
                sum.queue_depth += last.queue_depth;
                sum.busy += last.busy;
            }
        }
        if here.iter().any(|r| r.row.driver_cpu_cores.is_some()) {
            let cores = mean(|r| r.driver_cpu_cores.unwrap_or(0.0));
            merged.driver_cpu_cores = Some(merged.driver_cpu_cores.unwrap_or(0.0) + cores);
        }
    }
    merged
}

/// The merged summary.json.
fn merged_summary(
    inputs: &[Input],
    start: SystemTime,
    whole: &BTreeMap<&str, Histogram<u64>>,
) -> Summary {
    let offset = |input: &Input| seconds_between(start, input.start);
    let end = inputs
        .iter()
        .map(|i| offset(i) + i.summary.duration_s)
        .fold(0.0, f64::max);

    let mut totals = Totals {
        attempted: 0,
        established: 0,
        connect_failed: 0,
        unfinished: 0,
        never_attempted: 0,
        peak_active: 0,
        closed_by_driver: 0,
        closed_by_server: 0,
        lost_with_worker: 0,
        held_at_end: 0,
        last_established_s: 0.0,
    };
    let mut failures_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut groups: Vec<FailureGroup> = Vec::new();
    let mut warnings = Warnings::default();
    let mut sources: Vec<SourceSummary> = Vec::new();
    let mut workers = WorkersReport::default();
    let mut safety = Safety::default();
    let mut first_limit = None;
    let mut first_limit_from = None;
    let mut connections = 0;
    let mut targets: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut runs = Vec::new();
    for input in inputs {
        let s = &input.summary;
        let shift = offset(input);
        let t = &s.totals;
        totals.attempted += t.attempted;
        totals.established += t.established;
        totals.connect_failed += t.connect_failed;
        totals.unfinished += t.unfinished;
        totals.never_attempted += t.never_attempted;
        totals.peak_active += t.peak_active;
        totals.closed_by_driver += t.closed_by_driver;
        totals.closed_by_server += t.closed_by_server;
        totals.lost_with_worker += t.lost_with_worker;
        totals.held_at_end += t.held_at_end;
        if t.established > 0 {
            totals.last_established_s = totals.last_established_s.max(shift + t.last_established_s);
        }
        for (kind, n) in &s.failures_by_kind {
            *failures_by_kind.entry(kind.clone()).or_default() += n;
        }
        for group in &s.failures {
            let mut group = group.clone();
            group.first_elapsed_s += shift;
            group.last_elapsed_s += shift;
            match groups
                .iter_mut()
                .find(|g| (g.kind, g.syscall, g.errno) == (group.kind, group.syscall, group.errno))
            {
                None => groups.push(group),
                Some(mine) => {
                    mine.count += group.count;
                    mine.last_elapsed_s = mine.last_elapsed_s.max(group.last_elapsed_s);
                    if group.first_elapsed_s < mine.first_elapsed_s {
                        mine.first_elapsed_s = group.first_elapsed_s;
                        mine.first_attempt = group.first_attempt;
                        mine.source = group.source;
                        mine.target = group.target;
                    }
                }
            }
        }
        add_warnings(&mut warnings, &s.warnings);
        for source in &s.sources {
            match sources.iter_mut().find(|m| m.source == source.source) {
                None => sources.push(source.clone()),
                Some(mine) => {
                    mine.attempted += source.attempted;
                    mine.established += source.established;
                    mine.failed += source.failed;
                    mine.peak_ports_in_use += source.peak_ports_in_use;
                }
            }
        }
        workers.processes += s.workers.processes;
        workers.threads_per_process = workers
            .threads_per_process
            .max(s.workers.threads_per_process);
        workers
            .deaths
            .extend(s.workers.deaths.iter().cloned().map(|mut d| {
                d.at_elapsed_s += shift;
                d
            }));
        if safety.stopped.is_none() {
            safety.stopped = s
                .safety
                .stopped
                .as_ref()
                .map(|why| format!("{}: {why}", input.dir.display()));
        }
        if let Some(limit) = &s.first_limit {
            let at = shift + limit.at_elapsed_s;
            if first_limit
                .as_ref()
                .is_none_or(|l: &crate::model::FirstLimit| at < l.at_elapsed_s)
            {
                let mut limit = limit.clone();
                limit.at_elapsed_s = at;
                first_limit = Some(limit);
                first_limit_from = Some(input.dir.display().to_string());
            }
        }
        connections += s.scenario["connections"]
            .as_u64()
            .unwrap_or(t.attempted + t.never_attempted);
        for target in s.scenario["targets"].as_array().into_iter().flatten() {
            if let Some(target) = target.as_str().filter(|t| !targets.iter().any(|m| m == t)) {
                targets.push(target.to_string());
            }
        }
        let name = s.scenario["name"].as_str().unwrap_or("run").to_string();
        if !names.contains(&name) {
            names.push(name.clone());
        }
        runs.push(MergedRun {
            dir: input.dir.display().to_string(),
            name,
            started_at: humantime::format_rfc3339_millis(input.start).to_string(),
            start_offset_s: shift,
            duration_s: s.duration_s,
            totals: t.clone(),
            first_limit: s.first_limit.as_ref().map(|l| l.kind),
        });
    }
    groups.sort_by(|a, b| a.first_elapsed_s.total_cmp(&b.first_elapsed_s));
    let mut reasons: Vec<&str> = Vec::new();
    for reason in inputs.iter().map(|i| i.summary.workers.reason.as_str()) {
        if !reason.is_empty() && !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    workers.reason = format!("merged from {} runs: {}", inputs.len(), reasons.join("; "));
    safety.plan = inputs
        .iter()
        .map(|i| format!("{}: {}", i.dir.display(), i.summary.safety.plan))
        .collect::<Vec<_>>()
        .join("; ");
    let latency = inputs
        .iter()
        .flat_map(|i| i.summary.latency.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|key| {
            let metric = key.strip_suffix("_us").unwrap_or(key);
            let figures = whole.get(metric).map(percentiles).unwrap_or_default();
            (key.clone(), figures)
        })
        .collect();
    let mut scenario = serde_json::json!({
        "name": names.join("+"),
        "connections": connections,
        "targets": targets,
        "merged_from": inputs.len(),
    });
    // Request runs: the pools side by side make one of their sum.
    if inputs.iter().any(|i| i.summary.requests.is_some()) {
        let pool: u64 = inputs
            .iter()
            .filter_map(|i| i.summary.scenario["requests"]["pool"].as_u64())
            .sum();
        scenario["mode"] = "request".into();
        scenario["requests"] = serde_json::json!({ "pool": pool });
    }
    Summary {
        schema_version: inputs[0].summary.schema_version,
        ceiling_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario,
        started_at: humantime::format_rfc3339_seconds(start).to_string(),
        duration_s: end,
        aborted: inputs.iter().any(|i| i.summary.aborted),
        nothing_connected: classify::nothing_connected(&totals, &failures_by_kind, &targets),
        totals,
        first_limit,
        failures_by_kind,
        failures: groups,
        warnings,
        latency,
        sources,
        host: merged_host(inputs),
        // Each run resolved its names in its own network: every answer.
        targets_resolved: inputs
            .iter()
            .flat_map(|i| &i.summary.targets_resolved)
            .fold(Vec::new(), |mut all, t| {
                if !all.contains(t) {
                    all.push(t.clone());
                }
                all
            }),
        lab: None,
        workers,
        safety,
        // Each input may be a fleet run; its hosts stay in its own
        // directory (merge.inputs names them).
        fleet: None,
        requests: merged_requests(inputs),
        merge: Some(MergeReport {
            inputs: runs,
            first_limit_from,
        }),
    }
}

/// The inputs' `requests` objects added (None for connection runs): every
/// count, errors and status classes by key; the error texts kept once each.
fn merged_requests(inputs: &[Input]) -> Option<RequestsSummary> {
    let mut merged: Option<RequestsSummary> = None;
    for r in inputs.iter().filter_map(|i| i.summary.requests.as_ref()) {
        let m = merged.get_or_insert_with(RequestsSummary::default);
        m.scheduled += r.scheduled;
        m.sent += r.sent;
        m.responses += r.responses;
        m.rejects += r.rejects;
        m.reconnects += r.reconnects;
        m.queued_at_end += r.queued_at_end;
        m.in_flight_at_end += r.in_flight_at_end;
        for (kind, n) in &r.errors {
            *m.errors.entry(kind.clone()).or_default() += n;
        }
        for (class, n) in &r.status {
            *m.status.entry(class.clone()).or_default() += n;
        }
        for text in &r.error_texts {
            if !m.error_texts.contains(text) {
                m.error_texts.push(text.clone());
            }
        }
    }
    merged
}

fn add_warnings(w: &mut Warnings, o: &Warnings) {
    w.port_search_slow += o.port_search_slow;
    w.port_search_stall_seconds += o.port_search_stall_seconds;
    w.connect_syscall_max_us = w.connect_syscall_max_us.max(o.connect_syscall_max_us);
    w.syn_retransmit_handshakes += o.syn_retransmit_handshakes;
    w.echo_unanswered += o.echo_unanswered;
    w.echo_silent_connections += o.echo_silent_connections;
    w.echo_silent_first_attempt = match (w.echo_silent_first_attempt, o.echo_silent_first_attempt) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // The generator that held its rate down longest.
    if let Some(theirs) = &o.generator_bottleneck
        && w.generator_bottleneck
            .as_ref()
            .is_none_or(|mine| theirs.seconds > mine.seconds)
    {
        w.generator_bottleneck = Some(theirs.clone());
    }
}

/// Host values every input had alike; counter deltas added.
fn merged_host(inputs: &[Input]) -> HostReport {
    let mut host = HostReport::default();
    if let Some((first, rest)) = inputs.split_first() {
        host.values = first
            .summary
            .host
            .values
            .iter()
            .filter(|(key, value)| {
                rest.iter()
                    .all(|i| i.summary.host.values.get(*key) == Some(*value))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    for input in inputs {
        for (key, delta) in &input.summary.host.counter_deltas {
            *host.counter_deltas.entry(key.clone()).or_default() += delta;
        }
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of one input ending at `utc` (seconds since the epoch) after
    /// `span_s`, with cumulative `attempted` and a rate.
    fn row(utc: f64, span_s: f64, attempted: u64, rate: f64, refused: u64) -> InputRow {
        let mut failures_by_kind = [0; LimitKind::ALL.len()];
        failures_by_kind[LimitKind::Refused.index()] = refused;
        InputRow {
            utc: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(utc),
            span_s,
            row: SecondRow {
                elapsed_s: 0,
                utc: String::new(),
                attempted,
                established: attempted,
                failed: 0,
                active: attempted,
                target_rate_per_s: rate,
                attempt_rate_per_s: rate,
                establish_rate_per_s: rate,
                failures_by_kind,
                syn_retransmit_handshakes: 0,
                port_search_slow: 0,
                connect: Percentiles::default(),
                driver_cpu_cores: Some(0.5),
                requests: None,
            },
        }
    }

    #[test]
    fn a_second_adds_each_inputs_latest_counts_and_its_own_rates() {
        // A: rows ending in seconds 100 and 101, and a short last row in
        // 101 too. B: one row, in second 101.
        let a = [
            row(100.4, 1.0, 100, 100.0, 1),
            row(101.4, 1.0, 200, 100.0, 2),
            row(101.9, 0.5, 230, 60.0, 3),
        ];
        let b = [row(101.7, 1.0, 50, 50.0, 4)];
        let inputs = [rows_by_second(&a), rows_by_second(&b)];

        let first = merged_row(&inputs, 100, false);
        // B has not ended a row yet: A's counts alone, A's rate alone.
        assert_eq!((first.attempted, first.active), (100, 100));
        assert_eq!(first.attempt_rate_per_s, 100.0);
        assert_eq!(first.failures_by_kind[LimitKind::Refused.index()], 1);

        let second = merged_row(&inputs, 101, false);
        // Cumulative: A's last row of the second plus B's.
        assert_eq!(second.attempted, 230 + 50);
        // A's two rows are averaged over their spans (100 for 1 s, 60
        // for 0.5 s), then B's rate adds.
        let a_rate = (100.0 * 1.0 + 60.0 * 0.5) / 1.5;
        assert!((second.attempt_rate_per_s - (a_rate + 50.0)).abs() < 1e-9);
        // Per-second counts add, all rows.
        assert_eq!(
            second.failures_by_kind[LimitKind::Refused.index()],
            2 + 3 + 4
        );
        assert_eq!(second.driver_cpu_cores, Some(1.0));

        // After both ended, their last rows carry on; nothing per second.
        let later = merged_row(&inputs, 105, false);
        assert_eq!(later.attempted, 280);
        assert_eq!(later.attempt_rate_per_s, 0.0);
        assert_eq!(later.driver_cpu_cores, None);
    }

    #[test]
    fn request_columns_add_rates_and_each_inputs_last_depth_of_the_second() {
        let with = |mut r: InputRow, sent: f64, depth: u64, busy: u64| {
            r.row.requests = Some(RequestRow {
                sent_per_s: sent,
                responses_per_s: sent,
                errors_per_s: 0.0,
                rejects_per_s: 1.0,
                queue_depth: depth,
                busy,
                total: Percentiles::default(),
            });
            r
        };
        let a = [
            with(row(100.4, 1.0, 10, 0.0, 0), 300.0, 7, 10),
            // A short last row in the same second: the queue as it ended.
            with(row(100.9, 0.5, 10, 0.0, 0), 150.0, 0, 2),
        ];
        let b = [with(row(100.7, 1.0, 5, 0.0, 0), 200.0, 4, 5)];
        let inputs = [rows_by_second(&a), rows_by_second(&b)];
        let merged = merged_row(&inputs, 100, true);
        let r = merged.requests.unwrap();
        let a_rate = (300.0 * 1.0 + 150.0 * 0.5) / 1.5;
        assert!((r.sent_per_s - (a_rate + 200.0)).abs() < 1e-9);
        assert!((r.rejects_per_s - 2.0).abs() < 1e-9);
        assert_eq!((r.queue_depth, r.busy), (4, 2 + 5));
        // A second no input has a row in: nothing queued, nothing busy.
        let later = merged_row(&inputs, 103, true).requests.unwrap();
        assert_eq!(
            (later.queue_depth, later.busy, later.sent_per_s),
            (0, 0, 0.0)
        );
        // Connection runs get no request figures.
        assert!(merged_row(&inputs, 100, false).requests.is_none());
    }

    #[test]
    fn utc_is_read_as_timeseries_csv_writes_it() {
        let t = parse_utc("2026-12-06 01:02:03.456").unwrap();
        assert_eq!(
            t,
            humantime::parse_rfc3339("2026-12-06T01:02:03.456Z").unwrap()
        );
        assert_eq!(
            parse_utc("2026-12-06T01:02:03Z").map(unix_second),
            Some(1796518923)
        );
        assert!(parse_utc("yesterday").is_none());
    }
}
