//! Writes a run's results directory, one file format per module. STUB.

pub mod text;

use std::io;
use std::path::{Path, PathBuf};

use crate::model::Summary;
use crate::stats::{SecondRow, Snapshot};

/// An open results directory: `timeseries.csv` is written as the run goes,
/// the other files at the end.
pub struct ResultsDir {
    path: PathBuf,
}

impl ResultsDir {
    /// Creates `path` (and parents). Refuses a path that exists and is not an
    /// empty directory, so a run never overwrites another.
    pub fn create(path: &Path) -> io::Result<ResultsDir> {
        let _ = path;
        unimplemented!()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends rows to `timeseries.csv` and flushes.
    pub fn append_rows(&mut self, rows: &[SecondRow]) -> io::Result<()> {
        let _ = rows;
        unimplemented!()
    }

    /// Writes summary.json, failures.csv, sources.csv, latency.csv,
    /// connect.hgrm (and rtt.hgrm when the run measured RTT).
    pub fn finish(&mut self, summary: &Summary, last: &Snapshot) -> io::Result<()> {
        let _ = (summary, last);
        unimplemented!()
    }
}
