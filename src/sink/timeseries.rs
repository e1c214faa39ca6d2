//! `timeseries.csv`: one row per second of the run, appended and flushed as
//! the run goes.
//!
//! The failure columns follow [`LimitKind::ALL`], so the header and rows are
//! built as records rather than serialized from a struct; [`COLUMNS_BEFORE`]
//! and [`COLUMNS_AFTER`] name the fixed columns around them.

use std::io::{self, Write};

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
pub const COLUMNS_AFTER: [&str; 6] = [
    "syn_retransmit_handshakes",
    "port_search_slow",
    "connect_p50_us",
    "connect_p90_us",
    "connect_p99_us",
    "connect_max_us",
];

/// The header: fixed columns, then `failed_<kind>` for every kind.
pub fn header() -> Vec<String> {
    let kinds = LimitKind::ALL
        .iter()
        .map(|kind| format!("failed_{}", kind.as_str()));
    COLUMNS_BEFORE
        .iter()
        .map(|c| c.to_string())
        .chain(kinds)
        .chain(COLUMNS_AFTER.iter().map(|c| c.to_string()))
        .collect()
}

/// One row's fields, in [`header`] order.
pub fn record(row: &SecondRow) -> Vec<String> {
    let mut fields = vec![
        row.elapsed_s.to_string(),
        row.utc.clone(),
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
    fields
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

/// Writes `timeseries.csv` rows to `W`, flushing after every append.
pub struct TimeseriesWriter<W: Write> {
    csv: csv::Writer<W>,
}

impl<W: Write> TimeseriesWriter<W> {
    /// Writes the header and flushes it.
    pub fn new(out: W) -> io::Result<TimeseriesWriter<W>> {
        let mut csv = csv::Writer::from_writer(out);
        csv.write_record(header())?;
        csv.flush()?;
        Ok(TimeseriesWriter { csv })
    }

    /// Appends `rows` and flushes, so the file is whole after every call.
    pub fn append(&mut self, rows: &[SecondRow]) -> io::Result<()> {
        for row in rows {
            self.csv.write_record(record(row))?;
        }
        self.csv.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let header = header();
        assert_eq!(
            header.len(),
            COLUMNS_BEFORE.len() + LimitKind::ALL.len() + COLUMNS_AFTER.len()
        );
        assert_eq!(header[COLUMNS_BEFORE.len()], "failed_port_exhaustion");
        assert_eq!(header[COLUMNS_BEFORE.len() + 13], "failed_other");
    }
}
