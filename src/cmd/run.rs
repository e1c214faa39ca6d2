//! `ceiling run`: flags and scenario file → validated scenario →
//! [`runner::execute`] (or [`runner::execute_fleet`] with `--fleet`) → the
//! text summary on stdout.

use std::process::ExitCode;

use super::args;
use crate::UsageError;
use crate::cli::{CoordinatorArgs, RunCommand};
use crate::fleet::coordinator::FleetSettings;
use crate::runner;

pub fn run(command: RunCommand) -> anyhow::Result<ExitCode> {
    let RunCommand { run: args, fleet } = command;
    let fleet = fleet_settings(fleet)?;
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
    let output = args::choose_output(ui_mode);
    let finished = match &fleet {
        None => runner::execute(scenario, output, out, None)?,
        Some(fleet) => runner::execute_fleet(scenario, output, out, fleet)?,
    };
    super::print_finished(finished)
}

/// The fleet flags, the token from CEILING_FLEET_TOKEN when not given.
fn fleet_settings(fleet: CoordinatorArgs) -> Result<Option<FleetSettings>, UsageError> {
    let token = fleet
        .fleet_token
        .or_else(|| std::env::var("CEILING_FLEET_TOKEN").ok());
    FleetSettings::resolve(
        fleet.fleet,
        fleet.fleet_listen,
        token,
        fleet.fleet_join_timeout,
    )
    .map_err(UsageError)
}
