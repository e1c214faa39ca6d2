//! One module per subcommand: turns flags into validated values, calls the
//! module that does the work, prints the outcome.

pub mod agent;
pub mod args;
pub mod compare;
pub mod explore;
pub mod fleet;
pub mod lab;
pub mod merge;
pub mod report;
pub mod run;
pub mod serve;
pub mod shell;
pub mod sweep;
pub mod worker;

use std::process::ExitCode;

use crate::runner::Finished;
use crate::sink;

/// A run's text summary on stdout, whatever happened to its files; then
/// the files that could not be written, as the error (exit 1).
fn print_finished(finished: Finished) -> anyhow::Result<ExitCode> {
    print!("{}", sink::text::render(&finished.summary, &finished.dir));
    report::write_beside(&finished.dir);
    let code = finished.exit_code();
    finished.written?;
    Ok(code)
}
