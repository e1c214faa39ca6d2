//! Results directories → one offline HTML page (`report.html`), and the
//! comparison of runs behind `ceiling compare`.
//!
//! Reads results files only (the files a user has), never a running engine,
//! so the page for a run that just ended, for an old directory, for an
//! explore ladder, for a sweep and for several runs overlaid is drawn by the same code.
//! The page is one file: the data as JSON blocks, the chart library
//! (uPlot, vendored under `vendor/`) and the page's own script and style
//! inline, behind a Content-Security-Policy that lets it fetch nothing.
//! It is written as the results files are ([`crate::sink::write_atomically`]):
//! whole or not at all.

pub mod compare;
mod downsample;
mod page;
pub mod rank;
pub mod read;

use std::path::{Path, PathBuf};

pub use read::{Ladder, Loaded, Run, Sweep};

/// Reading results or writing the page failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read '{path}': {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "'{0}' is not a results directory: it has no summary.json or timeseries.csv (a run's), \
         no explore.json or ladder.csv (an explore's) and no sweep.csv (a sweep's)"
    )]
    NotResults(PathBuf),
    #[error("cannot write '{path}': {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The file name every results directory gets.
pub const FILE_NAME: &str = "report.html";

/// Reads each directory, naming each by its directory's name (with its
/// parent's when two are the same).
pub fn load_all(dirs: &[PathBuf]) -> Result<Vec<Loaded>, ReportError> {
    let mut loaded: Vec<Loaded> = dirs
        .iter()
        .map(|d| read::load(d))
        .collect::<Result<_, _>>()?;
    let names: Vec<String> = loaded.iter().map(|l| name_of(l).to_string()).collect();
    for (i, item) in loaded.iter_mut().enumerate() {
        let clash = names.iter().filter(|n| **n == names[i]).count() > 1;
        if clash {
            let dir = match item {
                Loaded::Run(r) => &r.dir,
                Loaded::Ladder(l) => &l.dir,
                Loaded::Sweep(s) => &s.dir,
            };
            let parent = std::path::absolute(dir)
                .ok()
                .and_then(|d| d.parent().and_then(|p| p.file_name()).map(|n| n.to_owned()))
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = format!("{parent}/{} ({})", names[i], i + 1);
            match item {
                Loaded::Run(r) => r.name = name,
                Loaded::Ladder(l) => l.name = name,
                Loaded::Sweep(s) => s.name = name,
            }
        }
    }
    Ok(loaded)
}

fn name_of(loaded: &Loaded) -> &str {
    match loaded {
        Loaded::Run(r) => &r.name,
        Loaded::Ladder(l) => &l.name,
        Loaded::Sweep(s) => &s.name,
    }
}

/// The page for `dirs`: one run, one explore ladder, or several overlaid.
pub fn render(dirs: &[PathBuf]) -> Result<String, ReportError> {
    Ok(page::render(&load_all(dirs)?))
}

/// Writes the page for `dirs` to `out`.
pub fn write(dirs: &[PathBuf], out: &Path) -> Result<(), ReportError> {
    let html = render(dirs)?;
    // Whole or not at all: a full disk leaves no half page behind.
    crate::sink::write_atomically(out, html.as_bytes()).map_err(|source| ReportError::Write {
        path: out.to_path_buf(),
        source,
    })
}
