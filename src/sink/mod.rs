//! Writes a run's results directory (DESIGN.md, "Results contract").
//!
//! `timeseries.csv` is appended every second while the run goes, a whole
//! row at a time, so an aborted run loses nothing. The other files are
//! written once at the end, each by one [`Exporter`] (one format per module,
//! as hyperfine's exporters): each file is written whole to a temporary name
//! and renamed, so a reader never sees half a file.
//!
//! A full disk (or any failed write) never stops the run nor leaves half a
//! row: the time series is cut back to its last whole row and kept in
//! memory, and at the end every file that can be written is; the others
//! are named, with the OS error, in one [`ResultsUnwritten`].
//!
//! - [`timeseries`]: `timeseries.csv`, one row per second.
//! - [`json`]: `summary.json` and its JSON Schema.
//! - [`csv`]: `failures.csv`, `sources.csv`, `latency.csv`; `hosts.csv`
//!   for a fleet run.
//! - [`hgrm`]: `connect.hgrm`, `rtt.hgrm` (HdrHistogram percentile text).
//! - [`hlog`]: `connect.hlog`, `rtt.hlog` (HdrHistogram interval logs, one
//!   histogram per second: what `ceiling merge` adds).
//! - [`text`]: the short summary printed at the end of a run.

pub mod csv;
pub mod hgrm;
pub mod hlog;
pub mod json;
pub mod text;
pub mod timeseries;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hdrhistogram::Histogram;

use crate::model::Summary;
use crate::stats::{IntervalHistograms, SecondRow, Snapshot};

pub use json::SUMMARY_SCHEMA;

/// What the end-of-run files are made from.
pub struct RunResults<'a> {
    pub summary: &'a Summary,
    /// The final snapshot: its histograms hold the whole run's latencies.
    pub last: &'a Snapshot,
    /// The same latencies, second by second.
    pub intervals: &'a hlog::IntervalLogs,
}

/// One results file written whole at the end of a run.
pub trait Exporter {
    /// The file's complete content.
    fn serialize(&self, run: &RunResults<'_>) -> io::Result<Vec<u8>>;
}

/// A latency metric with a histogram in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Intended start of the attempt to established, µs.
    Connect,
    /// Echo request to reply, µs (echo mode only).
    Rtt,
    /// Request mode: a free connection − the intended time, µs.
    Queue,
    /// Request mode: response − send, µs.
    Service,
    /// Request mode: response − the intended time, µs.
    Total,
}

impl Metric {
    /// The name used in `latency.csv` and in the `.hgrm` and `.hlog` file
    /// names.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Connect => "connect",
            Metric::Rtt => "rtt",
            Metric::Queue => "queue",
            Metric::Service => "service",
            Metric::Total => "total",
        }
    }

    pub fn histogram(self, last: &Snapshot) -> &Histogram<u64> {
        match self {
            Metric::Connect => &last.total.connect_us,
            Metric::Rtt => &last.total.rtt_us,
            Metric::Queue | Metric::Service | Metric::Total => {
                let Some(r) = last.total.requests.as_deref() else {
                    return &last.total.rtt_us;
                };
                match self {
                    Metric::Queue => &r.queue_us,
                    Metric::Service => &r.service_us,
                    _ => &r.total_us,
                }
            }
        }
    }

    /// The metrics the run measured: connect always, rtt when it has
    /// samples, and request mode's three when it has responses.
    pub fn measured(last: &Snapshot) -> Vec<Metric> {
        let mut metrics = vec![Metric::Connect];
        if !last.total.rtt_us.is_empty() {
            metrics.push(Metric::Rtt);
        }
        if last
            .total
            .requests
            .as_ref()
            .is_some_and(|r| !r.total_us.is_empty())
        {
            metrics.extend([Metric::Queue, Metric::Service, Metric::Total]);
        }
        metrics
    }
}

/// The files written at the end of a run, by name.
/// summary.json comes last: once it exists, every other file is complete
/// (scripts and tests wait for it).
fn end_of_run_files(summary: &Summary, last: &Snapshot) -> Vec<(String, Box<dyn Exporter>)> {
    let mut files: Vec<(String, Box<dyn Exporter>)> = vec![
        ("failures.csv".into(), Box::new(csv::FailuresCsv)),
        ("sources.csv".into(), Box::new(csv::SourcesCsv)),
        ("latency.csv".into(), Box::new(csv::LatencyCsv)),
    ];
    if summary.fleet.is_some() {
        files.push(("hosts.csv".into(), Box::new(csv::HostsCsv)));
    }
    for metric in Metric::measured(last) {
        files.push((
            format!("{}.hgrm", metric.as_str()),
            Box::new(hgrm::Hgrm(metric)),
        ));
        files.push((
            format!("{}.hlog", metric.as_str()),
            Box::new(hlog::Hlog(metric)),
        ));
    }
    files.push(("summary.json".into(), Box::new(json::SummaryJson)));
    files
}

/// An open results directory: `timeseries.csv` is written as the run goes,
/// the other files at the end.
pub struct ResultsDir {
    path: PathBuf,
    timeseries: timeseries::TimeseriesFile,
    intervals: hlog::IntervalLogs,
}

/// A file of the results directory that could not be written, or not all
/// of it, and the OS error.
#[derive(Debug)]
pub struct FileUnwritten {
    pub name: String,
    /// For `timeseries.csv`: the rows left out (count, first and last
    /// `elapsed_s`); the rows before them are in the file.
    pub rows: Option<(usize, u64, u64)>,
    pub error: io::Error,
}

/// The files [`ResultsDir::finish`] could not write; every other file was
/// written whole, and none of these ends in half a row.
#[derive(Debug, thiserror::Error)]
#[error(
    "results in \"{}\" are incomplete: not written: {}. The summary printed on stdout is \
     whole; free some space there and rerun to keep every file",
    dir.display(),
    list(files)
)]
pub struct ResultsUnwritten {
    pub dir: PathBuf,
    pub files: Vec<FileUnwritten>,
}

fn list(files: &[FileUnwritten]) -> String {
    let item = |f: &FileUnwritten| match f.rows {
        Some((count, first, last)) => format!(
            "{}, its last {count} row(s) (elapsed_s {first} to {last}): {}",
            f.name, f.error
        ),
        None => format!("{}: {}", f.name, f.error),
    };
    files.iter().map(item).collect::<Vec<_>>().join("; ")
}

impl ResultsDir {
    /// Creates `path` (and parents). Refuses a path that exists and is not an
    /// empty directory, so a run never overwrites another.
    pub fn create(path: &Path) -> io::Result<ResultsDir> {
        ResultsDir::create_for(path, false)
    }

    /// [`ResultsDir::create`]; `requests`: a request-mode run, whose time
    /// series has request columns.
    pub fn create_for(path: &Path, requests: bool) -> io::Result<ResultsDir> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|e| with_context(e, "creating the parent of results directory", parent))?;
        }
        match fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !is_empty_dir(path)? {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "results directory \"{}\" already exists and is not an empty \
                             directory; choose another --out (a run never overwrites another)",
                            path.display()
                        ),
                    ));
                }
            }
            Err(e) => return Err(with_context(e, "creating results directory", path)),
        }
        let timeseries_path = path.join("timeseries.csv");
        let timeseries = timeseries::TimeseriesFile::create(&timeseries_path, requests)
            .map_err(|e| with_context(e, "creating", &timeseries_path))?;
        Ok(ResultsDir {
            path: path.to_path_buf(),
            timeseries,
            intervals: hlog::IntervalLogs::new(SystemTime::now()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends rows to `timeseries.csv`, each whole. A failed write does not
    /// stop the run: the rows are kept and [`Self::finish`] writes them.
    pub fn append_rows(&mut self, rows: &[SecondRow]) {
        self.timeseries.append(rows);
    }

    /// The run's start: the `.hlog` files' StartTime and BaseTime, and
    /// where their first interval begins. Before the first interval only
    /// (default: when the directory was created).
    pub fn set_start(&mut self, started_at: SystemTime) {
        self.intervals.set_start(started_at);
    }

    /// Adds the seconds' histograms (one per row appended) to the `.hlog`
    /// files, written at the end.
    pub fn append_intervals(&mut self, intervals: Vec<IntervalHistograms>) {
        self.intervals.append(intervals);
    }

    /// Writes the rows still in memory, then summary.json, failures.csv,
    /// sources.csv, latency.csv, connect.hgrm and connect.hlog (and
    /// rtt.hgrm, rtt.hlog when the run measured RTT; hosts.csv for a
    /// fleet). Every file that can be written is; the others are
    /// returned, each with its error.
    pub fn finish(&mut self, summary: &Summary, last: &Snapshot) -> Result<(), ResultsUnwritten> {
        let mut files = Vec::new();
        if let Err(e) = self.timeseries.finish() {
            files.push(FileUnwritten {
                name: "timeseries.csv".into(),
                rows: e.rows,
                error: e.error,
            });
        }
        let run = RunResults {
            summary,
            last,
            intervals: &self.intervals,
        };
        for (name, exporter) in end_of_run_files(summary, last) {
            let written = exporter
                .serialize(&run)
                .and_then(|content| write_atomically(&self.path.join(&name), &content));
            if let Err(error) = written {
                files.push(FileUnwritten {
                    name,
                    rows: None,
                    error,
                });
            }
        }
        if files.is_empty() {
            return Ok(());
        }
        Err(ResultsUnwritten {
            dir: self.path.clone(),
            files,
        })
    }
}

/// Writes `content` to a temporary file next to `path`, then renames it. On
/// a failure the temporary file is removed (its space freed for the next
/// file) and `path` is left as it was.
pub fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(content)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed
}

fn is_empty_dir(path: &Path) -> io::Result<bool> {
    if !path.is_dir() {
        return Ok(false);
    }
    let mut entries =
        fs::read_dir(path).map_err(|e| with_context(e, "reading results directory", path))?;
    Ok(entries.next().is_none())
}

/// The same error, its message naming the operation and the path.
fn with_context(e: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} \"{}\": {e}", path.display()))
}
