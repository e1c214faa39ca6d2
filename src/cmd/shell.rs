//! `ceiling completions SHELL` and `ceiling manpage`: generated from the
//! clap definitions in `cli`, so they always match the flags.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Command, CommandFactory};

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut full = Cli::command();
    full.build();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut visible(&full), "ceiling", &mut out);
    print(&out)
}

/// `cmd` without its hidden subcommands and arguments (the internal
/// `worker`, `serve --as-process`): clap_complete's scripts offer
/// everything they are given. `cmd` must be built, so that its help and
/// version flags are among its arguments.
fn visible(cmd: &Command) -> Command {
    let mut pruned = Command::new(cmd.get_name().to_string())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .map(visible),
        );
    if let Some(about) = cmd.get_about() {
        pruned = pruned.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        pruned = pruned.version(version.to_string());
    }
    pruned
}

/// ceiling.1 on stdout, or every page written into `dir`.
pub fn manpage(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut out)
            .context("cannot render the man page")?;
        return print(&out);
    };
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the man pages into '{}'", dir.display()))?;
    println!("man pages written to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn print(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `ceiling manpage | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}
