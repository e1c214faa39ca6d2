//! `ceiling lab`: `ceiling run` inside a disposable network namespace
//! ([`LabSession`]): root check, flags and scenario → validated scenario
//! (bad input exits 2 before anything changes) → the lab → the run → the
//! text summary.

use std::process::ExitCode;

use super::args;
use crate::UsageError;
use crate::cli::RunArgs;
use crate::runner::{self, lab_session::LabSession};

pub fn lab(args: RunArgs) -> anyhow::Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(UsageError(
            "ceiling lab needs root: it creates a network namespace and writes sysctls inside \
             it (never the host's); run it with sudo, or use `ceiling run` without [lab]"
                .into(),
        )
        .into());
    }
    runner::lab_session::remove_stale_cgroups();
    let ui = args.ui;
    let out = args.out.clone();
    let scenario = args::build_scenario(args, true)?;
    let session = LabSession::start(&scenario)?;
    let finished = runner::execute(scenario, args::choose_output(ui), out, Some(&session));
    drop(session);
    super::print_finished(finished?)
}
