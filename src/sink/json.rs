//! `summary.json`: the [`Summary`](crate::model::Summary), pretty-printed,
//! and the JSON Schema that describes it.

use std::io;

use super::{Exporter, RunResults};

/// JSON Schema (draft 2020-12) of `summary.json`; keep in step with
/// `model::Summary` and `model::SCHEMA_VERSION`.
pub const SUMMARY_SCHEMA: &str = include_str!("summary.schema.json");

/// Writes `summary.json`.
pub struct SummaryJson;

impl Exporter for SummaryJson {
    fn serialize(&self, run: &RunResults<'_>) -> io::Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(run.summary)?;
        out.push(b'\n');
        Ok(out)
    }
}
