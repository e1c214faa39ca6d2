//! `ceiling serve`: the built-in target server as a command. STUB.

use std::process::ExitCode;

use crate::cli::ServeArgs;

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    unimplemented!()
}
