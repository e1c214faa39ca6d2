//! `ceiling fleet kubernetes|slurm`: the run arguments checked as `ceiling
//! run` checks them, then [`crate::fleet::render`]'s text on stdout.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use super::args;
use crate::UsageError;
use crate::cli::{FleetArgs, KubernetesArgs, RunOnly, SlurmArgs};
use crate::fleet::render::{self, Fleet, FleetSpec, kubernetes, slurm};

pub fn kubernetes(args: KubernetesArgs) -> anyhow::Result<ExitCode> {
    let fleet = check(args.fleet)?;
    let Some(image) = args.image else {
        return Err(UsageError(
            "--image IMAGE is required: the container image the pods run, with ceiling on its \
             PATH (see scripts/Dockerfile), e.g. --image registry.example/ceiling:0.1"
                .into(),
        )
        .into());
    };
    let options = kubernetes::Options {
        image,
        namespace: args.namespace,
        token: random_token()?,
    };
    print!("{}", kubernetes::render(&fleet, &options));
    Ok(ExitCode::SUCCESS)
}

pub fn slurm(args: SlurmArgs) -> anyhow::Result<ExitCode> {
    let fleet = check(args.fleet)?;
    print!("{}", slurm::render(&fleet));
    Ok(ExitCode::SUCCESS)
}

/// The run arguments parsed and validated as `ceiling run` would (exit 2
/// on the first bad one), around the fleet's own checks.
fn check(args: FleetArgs) -> anyhow::Result<Fleet> {
    render::refuse_fleet_flags(&args.run)?;
    render::refuse_misplaced(&args.run)?;
    let hosts = args.hosts.ok_or_else(|| {
        UsageError(
            "--hosts N is required: the number of agents, one per host, e.g. --hosts 4".into(),
        )
    })?;
    let run = RunOnly::try_parse_from(&args.run).map_err(|e| {
        let text = e.to_string();
        let first = text.split("\n\n").next().unwrap_or_default();
        UsageError(format!(
            "in the run arguments after the fleet's own flags ({}): {}; they are `ceiling \
             run`'s, the scenario file first (see `ceiling run --help`)",
            args.run.join(" "),
            first.trim_start_matches("error: ").trim()
        ))
    })?;
    let file = run.run.scenario.clone();
    if let Some(path) = &file
        && args.run.first().map(String::as_str) != path.to_str()
    {
        return Err(UsageError(format!(
            "'{}': give the scenario file first among the run arguments, right after the \
             fleet's own flags",
            path.display()
        ))
        .into());
    }
    let scenario = args::build_scenario(run.run, false)?;
    // Read again for its text, once it is known to be a scenario.
    let scenario_text = match &file {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let spec = FleetSpec {
        hosts,
        port: args.port,
        join_timeout: args.join_timeout,
        run_args: args.run,
        scenario_text,
    };
    Ok(Fleet::new(spec, &scenario)?)
}

/// 128 random bits from the kernel, in hex: the fleet's shared token.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the fleet's token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
