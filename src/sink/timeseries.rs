//! `timeseries.csv`: one row per second of the run, appended and flushed as
//! the run goes.
//!
//! The failure columns follow [`LimitKind::ALL`], so the header and rows are
//! built as records rather than serialized from a struct; [`COLUMNS_BEFORE`]
//! and [`COLUMNS_AFTER`] name the fixed columns around them.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::model::LimitKind;
use crate::stats::SecondRow;

/// Columns before the per-kind failure columns.
pub const COLUMNS_BEFORE: [&str; 9] = [
    "elapsed_s",
    "utc",
    "attempted",
    "established",
    "failed",
    "active",
    "target_rate_per_s",
    "attempt_rate_per_s",
    "establish_rate_per_s",
];

/// Columns after the per-kind failure columns.
pub const COLUMNS_AFTER: [&str; 7] = [
    "syn_retransmit_handshakes",
    "port_search_slow",
    "connect_p50_us",
    "connect_p90_us",
    "connect_p99_us",
    "connect_max_us",
    "driver_cpu_cores",
];

/// Request mode's columns, after all the others.
pub const REQUEST_COLUMNS: [&str; 7] = [
    "requests_sent_per_s",
    "responses_per_s",
    "request_errors_per_s",
    "rejects_per_s",
    "queue_depth",
    "busy_connections",
    "total_p99_us",
];

/// The header: fixed columns, then `failed_<kind>` for every kind (and
/// request mode's columns in a request run).
pub fn header(requests: bool) -> Vec<String> {
    let kinds = LimitKind::ALL
        .iter()
        .map(|kind| format!("failed_{}", kind.as_str()));
    let request_columns: &[&str] = if requests { &REQUEST_COLUMNS } else { &[] };
    COLUMNS_BEFORE
        .iter()
        .map(|c| c.to_string())
        .chain(kinds)
        .chain(COLUMNS_AFTER.iter().map(|c| c.to_string()))
        .chain(request_columns.iter().map(|c| c.to_string()))
        .collect()
}

/// One row's fields, in [`header`] order.
pub fn record(row: &SecondRow) -> Vec<String> {
    let mut fields = vec![
        row.elapsed_s.to_string(),
        spreadsheet_time(&row.utc),
        row.attempted.to_string(),
        row.established.to_string(),
        row.failed.to_string(),
        row.active.to_string(),
        one_decimal(row.target_rate_per_s),
        one_decimal(row.attempt_rate_per_s),
        one_decimal(row.establish_rate_per_s),
    ];
    fields.extend(row.failures_by_kind.iter().map(u64::to_string));
    fields.extend(
        [
            row.syn_retransmit_handshakes,
            row.port_search_slow,
            row.connect.p50,
            row.connect.p90,
            row.connect.p99,
            row.connect.max,
        ]
        .map(|n| n.to_string()),
    );
    // Cores of CPU ceiling's own processes used in the second; empty when
    // not read.
    fields.push(
        row.driver_cpu_cores
            .map_or(String::new(), |c| format!("{c:.2}")),
    );
    if let Some(r) = &row.requests {
        fields.extend(
            [
                r.sent_per_s,
                r.responses_per_s,
                r.errors_per_s,
                r.rejects_per_s,
            ]
            .map(one_decimal),
        );
        fields.extend([r.queue_depth, r.busy, r.total.p99].map(|n| n.to_string()));
    }
    fields
}

/// An RFC 3339 UTC time (`2026-12-06T01:02:03.456Z`) as spreadsheets read
/// a date-time on CSV import: `2026-12-06 01:02:03.456` (LibreOffice keeps
/// the `T`/`Z` form as text). Still UTC: the column's name says so.
fn spreadsheet_time(rfc3339: &str) -> String {
    rfc3339
        .strip_suffix('Z')
        .unwrap_or(rfc3339)
        .replacen('T', " ", 1)
}

/// A rate with at most one decimal: `20`, `12.5`.
fn one_decimal(x: f64) -> String {
    // Rounding to tenths gives the float nearest k/10, whose shortest
    // representation is k/10 itself.
    let rounded = (x * 10.0).round() / 10.0;
    if rounded == 0.0 {
        // Also turns -0 into 0.
        return "0".into();
    }
    rounded.to_string()
}

/// `timeseries.csv` on disk. Each row is built in memory and written whole;
/// a write that fails (disk full, quota, I/O error) is cut back to the last
/// whole row with `set_len`, so the file never ends in half a row. From then
/// on rows are kept in memory only (the run goes on), and
/// [`TimeseriesFile::finish`] tries once more to write them.
pub struct TimeseriesFile {
    /// Opened for appending: after a cut, the next write lands at the new end.
    file: File,
    /// Bytes of the header and the whole rows in the file.
    len: u64,
    /// Rows not in the file yet, oldest first: their `elapsed_s` and bytes.
    unwritten: VecDeque<(u64, Vec<u8>)>,
    /// A write has failed: rows are only kept until [`Self::finish`].
    stopped: bool,
}

/// What [`TimeseriesFile::finish`] could not write.
#[derive(Debug)]
pub struct RowsUnwritten {
    /// The rows left out: how many, the `elapsed_s` of the first and the
    /// last (none when only the final sync failed).
    pub rows: Option<(usize, u64, u64)>,
    pub error: io::Error,
}

impl TimeseriesFile {
    /// Creates the file (it must not exist) and writes the header (with
    /// request mode's columns if `requests`). If the header cannot be
    /// written whole, the file is removed.
    pub fn create(path: &Path, requests: bool) -> io::Result<TimeseriesFile> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        let mut timeseries = TimeseriesFile {
            file,
            len: 0,
            unwritten: VecDeque::from([(0, encode(&header(requests)))]),
            stopped: false,
        };
        if let Err(e) = timeseries.write_unwritten() {
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(timeseries)
    }

    /// Appends `rows`, each whole. Once a write has failed, only keeps them
    /// (trying again every second would only fill the disk by fits).
    pub fn append(&mut self, rows: &[SecondRow]) {
        self.unwritten
            .extend(rows.iter().map(|row| (row.elapsed_s, encode(&record(row)))));
        if !self.stopped && self.write_unwritten().is_err() {
            self.stopped = true;
        }
    }

    /// Writes what is still in memory (a last try after a failure), then
    /// syncs. Returns what could not be written.
    pub fn finish(&mut self) -> Result<(), RowsUnwritten> {
        let error = match self.write_unwritten().and_then(|()| self.file.sync_data()) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let rows = self
            .unwritten
            .front()
            .zip(self.unwritten.back())
            .map(|(first, last)| (self.unwritten.len(), first.0, last.0));
        Err(RowsUnwritten { rows, error })
    }

    /// Writes the unwritten rows in order, each whole. On a failure the file
    /// is cut back to its last whole row and the rest stays in memory.
    fn write_unwritten(&mut self) -> io::Result<()> {
        while let Some((_, bytes)) = self.unwritten.front() {
            if let Err(e) = self.file.write_all(bytes) {
                // A short write leaves part of the row: cut it off.
                let _ = self.file.set_len(self.len);
                return Err(e);
            }
            self.len += bytes.len() as u64;
            self.unwritten.pop_front();
        }
        Ok(())
    }
}

/// One CSV record, newline included. The fields are numbers, the header's
/// names and a time: none needs quoting.
fn encode<S: AsRef<str>>(fields: &[S]) -> Vec<u8> {
    let mut line = fields
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join(",");
    line.push('\n');
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_is_written_as_spreadsheets_read_a_date_time() {
        assert_eq!(
            spreadsheet_time("2026-12-06T01:02:03.456Z"),
            "2026-12-06 01:02:03.456"
        );
    }

    #[test]
    fn rates_have_at_most_one_decimal() {
        assert_eq!(one_decimal(20.0), "20");
        assert_eq!(one_decimal(12.46), "12.5");
        assert_eq!(one_decimal(0.3333), "0.3");
        assert_eq!(one_decimal(-0.01), "0");
        assert_eq!(one_decimal(1999.96), "2000");
    }

    #[test]
    fn header_has_one_column_per_kind_between_the_fixed_ones() {
        let header = header(false);
        assert_eq!(
            header.len(),
            COLUMNS_BEFORE.len() + LimitKind::ALL.len() + COLUMNS_AFTER.len()
        );
        assert_eq!(header[COLUMNS_BEFORE.len()], "failed_port_exhaustion");
        assert_eq!(header[COLUMNS_BEFORE.len() + 13], "failed_other");
    }
}
