//! `ceiling report`: report.html for existing results directories; and the
//! page every run and explore writes into its own directory.

use std::path::Path;
use std::process::ExitCode;

use crate::UsageError;
use crate::cli::ReportArgs;
use crate::report::{self, ReportError};

pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let out = match (&args.out, args.dirs.as_slice()) {
        (Some(out), _) => out.clone(),
        (None, [dir]) => dir.join(report::FILE_NAME),
        (None, _) => {
            return Err(UsageError(format!(
                "{} directories overlay on one page: say where it goes with --out FILE (e.g. \
                 --out compare.html)",
                args.dirs.len()
            ))
            .into());
        }
    };
    report::write(&args.dirs, &out).map_err(|e| match e {
        ReportError::NotResults(_) => anyhow::Error::new(UsageError(e.to_string())),
        other => anyhow::Error::new(other).context("cannot write the report"),
    })?;
    println!("report: {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes `dir/report.html` after a run or an explore; a failure only
/// warns: the results are written already.
pub fn write_beside(dir: &Path) {
    if let Err(e) = report::write(&[dir.to_path_buf()], &dir.join(report::FILE_NAME)) {
        eprintln!("ceiling: no report.html: {e}");
    }
}
