//! The ladder's results: one [`Row`] per climb, written as `ladder.csv`
//! (a spreadsheet opens it: ASCII only), `explore.json` (the same rows, for scripts)
//! and printed as a table.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::thousands;
use crate::sink;

/// One climb: the columns of `ladder.csv`, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub step: u32,
    /// The change this climb made to the one before (the first: its start).
    pub change: String,
    /// Most connections held at once ([`super::ceiling_of`]).
    pub ceiling: u64,
    /// `first_limit.kind`, or `none`.
    pub limit: String,
    /// `first_limit.at_attempt`; empty when no limit was hit.
    pub at_attempt: Option<u64>,
    /// `first_limit.evidence.message`, on one line; on the ladder's CPU
    /// rung, then how long the server's CPU quota throttled it.
    pub evidence: String,
    /// `first_limit.remedy`: ceiling's advice for that limit.
    pub remedy: String,
    /// The climb's own results directory (summary.json, timeseries.csv...).
    pub results_dir: String,
}

/// `explore.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Connections each climb opened at most.
    pub bound: u64,
    /// Whether the climbs after the first changed settings (`--ladder`).
    pub ladder: bool,
    pub steps: Vec<Row>,
    /// The highest ceiling of all climbs.
    pub ceiling: u64,
    /// Why the ladder ended: a key (`reached_bound`, `off_the_ladder`, ...)
    /// and a sentence.
    pub end: String,
    pub end_text: String,
}

/// Writes `ladder.csv`: a header and one row per climb, in ASCII (a
/// spreadsheet's import shows `→` as mojibake; see [`sink::csv::ascii`]).
/// Written whole and renamed: a failed write leaves the previous version.
pub fn write_csv(path: &Path, rows: &[Row]) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    let text = sink::csv::ascii(&String::from_utf8_lossy(&bytes));
    sink::write_atomically(path, text.as_bytes())
}

/// Writes `explore.json`, whole and renamed as `ladder.csv`.
pub fn write_json(path: &Path, report: &Report) -> io::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    sink::write_atomically(path, (text + "\n").as_bytes())
}

/// The table printed at the end: one line per climb, then each climb's
/// evidence and remedy, then why the ladder ended.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let limit_width = report
        .steps
        .iter()
        .map(|r| r.limit.len())
        .chain(["limit".len()])
        .max()
        .unwrap_or(5);
    out.push_str(&format!(
        "{:>4}  {:>9}  {:<limit_width$}  {:>10}  change\n",
        "step", "ceiling", "limit", "at attempt"
    ));
    for row in &report.steps {
        out.push_str(&format!(
            "{:>4}  {:>9}  {:<limit_width$}  {:>10}  {}\n",
            row.step,
            thousands(row.ceiling),
            row.limit,
            row.at_attempt.map_or_else(|| "-".into(), thousands),
            row.change
        ));
    }
    out.push('\n');
    for row in &report.steps {
        if row.limit == "none" && row.evidence.is_empty() {
            continue;
        }
        out.push_str(&format!("step {}: {}\n", row.step, row.limit));
        out.push_str(&format!("  evidence: {}\n", row.evidence));
        if !row.remedy.is_empty() {
            out.push_str(&format!("  remedy:   {}\n", row.remedy));
        }
    }
    out.push_str(&format!(
        "\n{}: {}\n",
        if report.ladder { "ladder" } else { "climb" },
        report.end_text
    ));
    out.push_str(&format!(
        "ceiling: {} connections held at most\n",
        thousands(report.ceiling)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u32, limit: &str) -> Row {
        Row {
            step,
            change: format!("change, with a comma and \"quotes\" {step}"),
            ceiling: 1000 * u64::from(step),
            limit: limit.into(),
            at_attempt: (limit != "none").then_some(1001),
            evidence: if limit == "none" {
                String::new()
            } else {
                "connect() failed with EADDRNOTAVAIL".into()
            },
            remedy: if limit == "none" {
                String::new()
            } else {
                "add source IPs".into()
            },
            results_dir: format!("out/step-{step}"),
        }
    }

    #[test]
    fn ladder_csv_reads_back_with_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ladder.csv");
        let rows = vec![row(1, "port_exhaustion"), row(2, "none")];
        write_csv(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("step,change,ceiling,limit,at_attempt,evidence,remedy,results_dir\n"),
            "{text}"
        );
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let back: Vec<Row> = reader.deserialize().map(Result::unwrap).collect();
        assert_eq!(back, rows);
    }

    #[test]
    fn ladder_csv_is_ascii() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ladder.csv");
        let mut signs = row(1, "port_exhaustion");
        signs.change = "widen ip_local_port_range 32768-60999 → 1024-65535".into();
        signs.evidence = "65,535 ports per source IP: ≈ 65,535 connections × 1 target".into();
        write_csv(&path, &[signs]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.is_ascii(), "{}", String::from_utf8_lossy(&bytes));
        let back: Vec<Row> = csv::Reader::from_path(&path)
            .unwrap()
            .deserialize()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            back[0].change,
            "widen ip_local_port_range 32768-60999 -> 1024-65535"
        );
        assert_eq!(
            back[0].evidence,
            "65,535 ports per source IP: ~ 65,535 connections x 1 target"
        );
    }

    #[test]
    fn the_table_has_a_line_per_step_and_the_end() {
        let report = Report {
            bound: 2000,
            ladder: true,
            steps: vec![row(1, "port_exhaustion"), row(2, "none")],
            ceiling: 2000,
            end: "reached_bound".into(),
            end_text: "reached the bound".into(),
        };
        let text = render(&report);
        assert!(
            text.contains("   1      1,000  port_exhaustion       1,001  change"),
            "{text}"
        );
        assert!(
            text.contains("   2      2,000  none                      -  change"),
            "{text}"
        );
        assert!(text.contains("ladder: reached the bound"), "{text}");
        assert!(text.contains("ceiling: 2,000"), "{text}");
        assert!(!text.contains("step 2:"), "{text}");
    }

    /// The CPU rung holds every connection, yet its row has evidence: the
    /// server's throttling. It is printed, without a remedy line.
    #[test]
    fn a_row_without_a_limit_but_with_evidence_prints_it() {
        let cpu = Row {
            evidence: "the server's CPU quota of 0.05 cores throttled it for 4.3 s".into(),
            ..row(2, "none")
        };
        let report = Report {
            bound: 2000,
            ladder: true,
            steps: vec![row(1, "port_exhaustion"), cpu],
            ceiling: 2000,
            end: "server_cpu".into(),
            end_text: "stopped at the server's CPU".into(),
        };
        let text = render(&report);
        assert!(
            text.contains(
                "step 2: none\n  evidence: the server's CPU quota of 0.05 cores throttled it for \
                 4.3 s\n\nladder: stopped at the server's CPU"
            ),
            "{text}"
        );
    }
}
