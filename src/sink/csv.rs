//! The end-of-run CSV tables: `failures.csv`, `sources.csv`, `latency.csv`,
//! and a fleet's `hosts.csv`.
//! Each row is a struct handed to `csv::Writer::serialize`; its field names
//! are the header, units in the names.
//!
//! Every CSV ceiling writes is ASCII ([`ascii`]): a spreadsheet that guesses
//! another character set (LibreOffice's default import does) would show
//! `â†’` for `→`.

use std::io;

use serde::Serialize;

use super::hgrm::{self, TICKS_PER_HALF_DISTANCE};
use super::{Exporter, Metric, RunResults};
use crate::model::{FailureGroup, FleetHost, SourceSummary};

/// Serializes `rows` as CSV, the header from the row's field names. With no
/// rows the header is `empty_header`, so the file still says what it holds
/// (a test checks the two agree).
fn table<R: Serialize>(
    empty_header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> io::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut empty = true;
    for row in rows {
        out.serialize(row)?;
        empty = false;
    }
    if empty {
        out.write_record(empty_header)?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(ascii(&String::from_utf8_lossy(&bytes)).into_bytes())
}

/// `text` in ASCII: the signs ceiling's messages use spelled out (`→` as
/// `->`, `×` as `x`, `≈` as `~`, ...), any other non-ASCII character as
/// `?`. None of the spellings has a comma or a quote, so CSV quoting done
/// before stays right.
pub fn ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        out.push_str(match c {
            '→' => "->",
            '←' => "<-",
            '×' => "x",
            '≈' => "~",
            '±' => "+/-",
            '…' => "...",
            '—' => "--",
            '–' | '−' | '‐' => "-",
            'µ' | 'μ' => "u",
            '≥' => ">=",
            '≤' => "<=",
            '·' => ".",
            '²' => "^2",
            '√' => "sqrt",
            '‘' | '’' => "'",
            '“' | '”' => "''",
            '\u{a0}' | '\u{202f}' => " ",
            _ => "?",
        });
    }
    out
}

/// One row of `failures.csv`: a failure group.
#[derive(Serialize)]
struct FailureRow<'a> {
    kind: &'static str,
    syscall: &'static str,
    errno: Option<i32>,
    errno_name: Option<&'a str>,
    count: u64,
    first_attempt: u64,
    first_elapsed_s: f64,
    last_elapsed_s: f64,
    source: &'a str,
    target: &'a str,
}

const FAILURE_HEADER: [&str; 10] = [
    "kind",
    "syscall",
    "errno",
    "errno_name",
    "count",
    "first_attempt",
    "first_elapsed_s",
    "last_elapsed_s",
    "source",
    "target",
];

impl<'a> From<&'a FailureGroup> for FailureRow<'a> {
    fn from(g: &'a FailureGroup) -> FailureRow<'a> {
        FailureRow {
            kind: g.kind.as_str(),
            syscall: g.syscall.as_str(),
            errno: g.errno,
            errno_name: g.errno_name.as_deref(),
            count: g.count,
            first_attempt: g.first_attempt,
            first_elapsed_s: millis(g.first_elapsed_s),
            last_elapsed_s: millis(g.last_elapsed_s),
            source: &g.source,
            target: &g.target,
        }
    }
}

/// Writes `failures.csv`: one row per failure group, as in the summary.
pub struct FailuresCsv;

impl Exporter for FailuresCsv {
    fn serialize(&self, run: &RunResults<'_>) -> io::Result<Vec<u8>> {
        table(
            &FAILURE_HEADER,
            run.summary.failures.iter().map(FailureRow::from),
        )
    }
}

/// One row of `sources.csv`.
#[derive(Serialize)]
struct SourceRow<'a> {
    source: &'a str,
    attempted: u64,
    established: u64,
    failed: u64,
    peak_ports_in_use: u64,
}

const SOURCE_HEADER: [&str; 5] = [
    "source",
    "attempted",
    "established",
    "failed",
    "peak_ports_in_use",
];

impl<'a> From<&'a SourceSummary> for SourceRow<'a> {
    fn from(s: &'a SourceSummary) -> SourceRow<'a> {
        SourceRow {
            source: &s.source,
            attempted: s.attempted,
            established: s.established,
            failed: s.failed,
            peak_ports_in_use: s.peak_ports_in_use,
        }
    }
}

/// Writes `sources.csv`: one row per source IP.
pub struct SourcesCsv;

impl Exporter for SourcesCsv {
    fn serialize(&self, run: &RunResults<'_>) -> io::Result<Vec<u8>> {
        table(
            &SOURCE_HEADER,
            run.summary.sources.iter().map(SourceRow::from),
        )
    }
}

/// One row of `hosts.csv`: a fleet's host, its totals and first limit.
#[derive(Serialize)]
struct HostRow<'a> {
    index: u64,
    name: &'a str,
    address: &'a str,
    segment: &'a str,
    attempted: u64,
    established: u64,
    connect_failed: u64,
    unfinished: u64,
    never_attempted: u64,
    peak_active: u64,
    closed_by_driver: u64,
    closed_by_server: u64,
    lost_with_worker: u64,
    held_at_end: u64,
    /// "port_exhaustion EADDRNOTAVAIL at 61204 held", empty when none.
    first_limit: String,
    start_offset_ms: Option<f64>,
    /// Its own latencies (empty when it measured none).
    connect_p50_us: Option<u64>,
    connect_p99_us: Option<u64>,
    total_p50_us: Option<u64>,
    total_p99_us: Option<u64>,
}

const HOST_HEADER: [&str; 20] = [
    "index",
    "name",
    "address",
    "segment",
    "attempted",
    "established",
    "connect_failed",
    "unfinished",
    "never_attempted",
    "peak_active",
    "closed_by_driver",
    "closed_by_server",
    "lost_with_worker",
    "held_at_end",
    "first_limit",
    "start_offset_ms",
    "connect_p50_us",
    "connect_p99_us",
    "total_p50_us",
    "total_p99_us",
];

impl<'a> From<&'a FleetHost> for HostRow<'a> {
    fn from(h: &'a FleetHost) -> Self {
        let t = &h.totals;
        HostRow {
            index: h.index,
            name: &h.name,
            address: &h.address,
            segment: &h.segment,
            attempted: t.attempted,
            established: t.established,
            connect_failed: t.connect_failed,
            unfinished: t.unfinished,
            never_attempted: t.never_attempted,
            peak_active: t.peak_active,
            closed_by_driver: t.closed_by_driver,
            closed_by_server: t.closed_by_server,
            lost_with_worker: t.lost_with_worker,
            held_at_end: t.held_at_end,
            // Plain digits: a spreadsheet reads "61,204" as two cells' worth.
            first_limit: h
                .first_limit
                .as_ref()
                .map_or_else(String::new, |l| l.describe().replace(',', "")),
            start_offset_ms: h.start_offset_ms.map(|ms| round_to(ms, 1e3)),
            connect_p50_us: h.latency.get("connect_us").map(|p| p.p50),
            connect_p99_us: h.latency.get("connect_us").map(|p| p.p99),
            total_p50_us: h.latency.get("total_us").map(|p| p.p50),
            total_p99_us: h.latency.get("total_us").map(|p| p.p99),
        }
    }
}

/// Writes `hosts.csv` (a fleet run only): one row per host.
pub struct HostsCsv;

impl Exporter for HostsCsv {
    fn serialize(&self, run: &RunResults<'_>) -> io::Result<Vec<u8>> {
        let hosts = run.summary.fleet.iter().flat_map(|f| &f.hosts);
        table(&HOST_HEADER, hosts.map(HostRow::from))
    }
}

/// One row of `latency.csv`: a step of a metric's percentile distribution
/// (the same steps as the `.hgrm` files).
#[derive(Serialize)]
struct LatencyRow {
    metric: &'static str,
    /// 0 to 100.
    percentile: f64,
    /// Highest value of the histogram bucket the percentile falls in.
    value_us: u64,
    /// Samples at or below `value_us` (cumulative).
    count: u64,
}

const LATENCY_HEADER: [&str; 4] = ["metric", "percentile", "value_us", "count"];

/// Writes `latency.csv`: the percentile distribution of connect latency,
/// and of RTT when the run measured it.
pub struct LatencyCsv;

impl Exporter for LatencyCsv {
    fn serialize(&self, run: &RunResults<'_>) -> io::Result<Vec<u8>> {
        let rows = Metric::measured(run.last).into_iter().flat_map(|metric| {
            hgrm::steps(metric.histogram(run.last), TICKS_PER_HALF_DISTANCE)
                .into_iter()
                .map(move |step| LatencyRow {
                    metric: metric.as_str(),
                    percentile: round_to(step.percentile, 1e6),
                    value_us: step.value,
                    count: step.total_count,
                })
        });
        table(&LATENCY_HEADER, rows)
    }
}

/// Seconds rounded to the millisecond: enough for a spreadsheet.
fn millis(s: f64) -> f64 {
    round_to(s, 1e3)
}

fn round_to(x: f64, per_unit: f64) -> f64 {
    (x * per_unit).round() / per_unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_spells_out_the_signs_ceiling_uses() {
        assert_eq!(
            ascii("widen 32768-60999 → 1024-65535 (3 × 64,512 ports), ≈ 193k ± 1 µs…"),
            "widen 32768-60999 -> 1024-65535 (3 x 64,512 ports), ~ 193k +/- 1 us..."
        );
        assert_eq!(ascii("日本"), "??");
        assert!(ascii("“a” — b").is_ascii());
    }
}
