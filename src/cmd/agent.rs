//! `ceiling agent`: flags and environment → [`fleet::agent::run`] → the
//! final totals line.

use std::process::ExitCode;

use crate::UsageError;
use crate::cli::AgentArgs;
use crate::fleet::agent::{self, AgentFlags, AgentSettings};

pub fn agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let flags = AgentFlags {
        join: args.join,
        token: args.token,
        index: args.index,
        hosts: args.hosts,
        name: args.name,
    };
    let settings =
        AgentSettings::resolve(flags, |name| std::env::var(name).ok()).map_err(UsageError)?;
    let end = agent::run(&settings)?;
    for panic in &end.panics {
        eprintln!("ceiling agent: {panic}");
    }
    println!("ceiling agent: {}", end.line());
    Ok(if end.coordinator_lost || !end.panics.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
