//! ceiling: a connection-limit stress tester and capacity explorer.
//!
//! It opens TCP connections at a controlled rate from chosen source IPs and
//! ports, holds them, names the limit that fails first (from the syscall,
//! the errno and the kernel's counters) and writes results a spreadsheet
//! opens.
//!
//! # Layout
//! - [`cli`]: clap types only; they stop at `cmd`.
//! - [`cmd`]: one module per subcommand: parse → call → print.
//! - [`model`]: plain serde types shared by all (limit kinds, failure events,
//!   the summary).
//! - [`scenario`]: scenario files and flags → a validated [`scenario::Scenario`].
//! - [`engine`]: the plan (sources × targets), pacing, sockets, holding,
//!   worker threads, worker processes (`run --processes`) and shutdown.
//! - [`classify`]: (syscall, errno, context) → limit kind, evidence, remedy;
//!   host probe (rlimits, sysctls, kernel counters).
//! - [`stats`]: mergeable counters and histograms, snapshots, per-second rows.
//! - [`sink`]: the results directory, one file format per module.
//! - [`ui`]: live progress output; reads snapshots only.
//! - [`server`]: the built-in target server.
//! - [`protocol`]: request framing (HTTP/1.1, RESP, a line): where a request
//!   ends in the bytes read, and its answer; no I/O.
//! - [`epoll`]: an epoll set of our own under tokio, where the driver and
//!   the server keep idle sockets without a task each.
//! - [`sweep`]: `ceiling sweep`: pool sizes and a goal → a run per step
//!   (through [`runner`]), the smallest pool that meets it, `sweep.csv`,
//!   Little's law.
//! - [`explore`]: `ceiling explore`'s ladder: from the limit a climb hit,
//!   the change the next climb makes; the ladder's table and files.
//! - [`fleet`]: one test from many hosts: the coordinator (a run whose
//!   workers are agents, over TCP with the worker processes' protocol) and
//!   the agent.
//! - [`runner`]: the life of one run, which `run` and `lab` call: layout
//!   and host checks, the built-in target (a child `ceiling serve`), the
//!   lab's namespace and cgroup session, the tick loop, the summary.
//! - [`report`]: results directories → one offline HTML page
//!   (`report.html`, vendored uPlot) and `ceiling compare`; reads results
//!   files only.
//! - [`fleet`]: one test from many hosts; [`fleet::render`] writes the
//!   Kubernetes manifests and Slurm script that start one.
//! - [`merge`]: `ceiling merge`: results directories of runs made apart →
//!   one results directory (counters and `.hlog` histograms add, the time
//!   series aligns on UTC seconds).
//! - [`lab`]: `ceiling lab`'s disposable network namespace (loopback up,
//!   per-namespace sysctls) and memory cgroup.
//!
//! `run` is synchronous: `ceiling run` drives one single-threaded tokio
//! runtime per worker thread (so each worker's statistics stay its own), and
//! `ceiling serve` builds its own runtime.

pub mod classify;
pub mod cli;
pub mod cmd;
pub mod engine;
pub mod epoll;
pub mod explore;
pub mod fleet;
pub mod lab;
pub mod merge;
pub mod model;
pub mod protocol;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod server;
pub mod sink;
pub mod stats;
pub mod sweep;
pub mod ui;

use std::process::ExitCode;

/// Bad input: printed as is, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Exit status 2 for [`UsageError`] anywhere in the chain, 1 otherwise.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err
        .chain()
        .any(|cause| cause.is::<UsageError>() || cause.is::<scenario::ScenarioError>())
    {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one command to completion and returns the process exit status.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Run(args) => cmd::run::run(*args),
        // Before any runtime or thread: the namespace is per thread.
        cli::Command::Lab(args) => cmd::lab::lab(*args),
        cli::Command::Explore(args) => cmd::explore::explore(*args),
        cli::Command::Sweep(args) => cmd::sweep::sweep(*args),
        cli::Command::Serve(args) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            // One of `serve --processes N`: the processes share the cores,
            // so a runtime thread each (two per process on 59 processes
            // spent the machine switching between them).
            if args.as_process.is_some() {
                runtime.worker_threads(1);
            }
            let runtime = runtime.enable_all().build()?;
            runtime.block_on(cmd::serve::serve(args))
        }
        cli::Command::Fleet(cli::FleetEngine::Kubernetes(args)) => cmd::fleet::kubernetes(args),
        cli::Command::Fleet(cli::FleetEngine::Slurm(args)) => cmd::fleet::slurm(args),
        cli::Command::Report(args) => cmd::report::report(args),
        cli::Command::Compare(args) => cmd::compare::compare(args),
        cli::Command::Merge(args) => cmd::merge::merge(args),
        cli::Command::Completions { shell } => cmd::shell::completions(shell),
        cli::Command::Manpage { dir } => cmd::shell::manpage(dir.as_deref()),
        cli::Command::Agent(args) => cmd::agent::agent(args),
        cli::Command::Worker => cmd::worker::worker(),
    }
}
