//! `ceiling run`: flags and scenario file → validated scenario →
//! [`runner::execute`] → the text summary on stdout.

use std::process::ExitCode;

use super::args;
use crate::UsageError;
use crate::cli::RunArgs;
use crate::runner;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let ui_mode = args.ui;
    let out = args.out.clone();
    let file = args.scenario.clone();
    let scenario = args::build_scenario(args, false)?;
    if scenario.lab.is_some() {
        let file = file.map_or_else(|| "the scenario".into(), |f| f.display().to_string());
        return Err(UsageError(format!(
            "{file} has a [lab] section, which only `ceiling lab` applies (in a network \
             namespace of its own, as root): run `sudo ceiling lab {file}`, or remove [lab] to \
             run against the host as it is"
        ))
        .into());
    }
    let finished = runner::execute(scenario, args::choose_output(ui_mode), out, None)?;
    super::print_finished(finished)
}
