//! `ceiling run`. STUB.

use std::process::ExitCode;

use crate::cli::RunArgs;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    unimplemented!()
}
