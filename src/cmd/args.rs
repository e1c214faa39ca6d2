//! Flags → validated values, shared by the subcommands that take a run's
//! flags (`run`, `lab`, `explore`): the scenario (file + flags) and the live
//! output for `--ui`.

use std::io::IsTerminal;
use std::path::Path;

use crate::cli::{RunArgs, UiMode};
use crate::scenario::{self, Scenario, ScenarioSpec};
use crate::ui::Output;
use crate::ui::tui;

/// Merges the scenario file (if any) and the flags, then validates. `lab`:
/// for `ceiling lab`, which gives a scenario without `[lab]` an empty one.
pub fn build_scenario(args: RunArgs, lab: bool) -> anyhow::Result<Scenario> {
    let file = match &args.scenario {
        Some(path) => scenario::load_file(path)?,
        None => ScenarioSpec::default(),
    };
    build_scenario_from(file, args, lab)
}

/// [`build_scenario`] with the file already read (`ceiling explore` looks
/// at it first, and has a built-in one).
pub fn build_scenario_from(
    file: ScenarioSpec,
    args: RunArgs,
    lab: bool,
) -> anyhow::Result<Scenario> {
    Ok(Scenario::validate(merge_spec(file, args, lab))?)
}

/// The file's spec with the flags laid over it, not yet validated (`ceiling
/// sweep` changes the pool of each step first).
pub fn merge_spec(mut file: ScenarioSpec, args: RunArgs, lab: bool) -> ScenarioSpec {
    if lab && file.lab.is_none() {
        file.lab = Some(scenario::lab::LabSpec::default());
    }
    let flags = ScenarioSpec {
        name: args.name,
        targets: args.targets,
        sources: args.sources,
        source_ports: args.source_ports,
        connections: args.connections,
        rate: args.rate,
        ramp: args.ramp,
        steps: args.steps,
        hold: args.hold,
        duration: args.duration,
        connect_timeout: args.connect_timeout,
        mode: args.mode,
        message: args.message,
        interval: args.interval,
        close: args.close,
        fd_limit: args.fd_limit,
        fd_limit_from: scenario::Origin::Flag,
        stop_at_first_limit: args.stop_at_first_limit.then_some(true),
        threads: args.threads,
        max_in_flight: args.max_in_flight,
        processes: args.processes,
        pick_port_at: args.pick_port_at,
        pool: args.pool,
        protocol: args.protocol,
        when_pool_busy: args.when_pool_busy,
        queue_timeout: args.queue_timeout,
        method: args.method,
        path: args.path,
        header: args.header,
        body: args.body,
        command: args.command,
        lab: None,
    };
    let mut merged = file.overridden_by(flags);
    if merged.name.is_none() {
        merged.name = args
            .scenario
            .as_deref()
            .and_then(Path::file_stem)
            .map(|stem| stem.to_string_lossy().into_owned());
    }
    merged
}

/// The live output for `--ui`: `auto` shows the dashboard when stdin and
/// stderr are terminals (it draws on stderr, so stdout can be redirected),
/// a progress bar when only stderr is, and plain lines otherwise.
pub fn choose_output(mode: UiMode) -> Output {
    let dashboard = tui::available();
    match mode {
        UiMode::Auto if dashboard => Output::Tui,
        UiMode::Auto if std::io::stderr().is_terminal() => Output::Progress,
        UiMode::Tui if !dashboard => {
            eprintln!(
                "ceiling: --ui tui needs a terminal (stdin and stderr): showing plain lines instead"
            );
            Output::Plain
        }
        UiMode::Tui => Output::Tui,
        UiMode::Progress => Output::Progress,
        UiMode::Auto | UiMode::Plain => Output::Plain,
        UiMode::None => Output::Silent,
    }
}
