//! `ceiling merge`: results directories → one merged results directory,
//! its text summary on stdout and its report.html.

use std::process::ExitCode;

use crate::UsageError;
use crate::cli::MergeArgs;
use crate::merge;
use crate::sink;

pub fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    // Every refusal is the user's to fix: other inputs or another --out.
    let merged = merge::merge(&args.dirs, &args.out).map_err(|e| UsageError(e.to_string()))?;
    print!("{}", sink::text::render(&merged.summary, &merged.dir));
    if let Some(report) = &merged.summary.merge {
        println!(
            "merged {} runs{}",
            report.inputs.len(),
            report
                .first_limit_from
                .as_ref()
                .map_or(String::new(), |dir| format!("; first limit from {dir}"))
        );
    }
    super::report::write_beside(&merged.dir);
    merged.written?;
    Ok(ExitCode::SUCCESS)
}
