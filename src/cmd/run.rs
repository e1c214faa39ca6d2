//! `ceiling run`: scenario + flags → validated scenario → host preparation
//! (fd limit, source checks, embedded target) → engine → a tick loop that
//! aggregates, feeds the live output and appends the time series → summary
//! and results files.

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::UsageError;
use crate::classify::capacity::Room;
use crate::classify::{self, RunFacts, host};
use crate::cli::{RunArgs, UiMode};
use crate::engine::hold::Echo;
use crate::engine::plan::{Plan, Segment};
use crate::engine::procs::Launcher;
use crate::engine::{Engine, Launch, Settings, StopReason};
use crate::model::{
    FailureEvent, FailureGroup, FirstLimit, HostReport, LimitKind, SCHEMA_VERSION, Safety, Summary,
    WorkersReport, errno_name, thousands,
};
use crate::runner::target::{self, TargetServer};
use crate::scenario::Pace;
use crate::scenario::lab::LabServer;
use crate::scenario::units::{DriverMode, HoldMode, PortPick, Processes};
use crate::scenario::{self, Scenario, ScenarioSpec};
use crate::sink::{self, ResultsDir};
use crate::stats::{Aggregator, Phase, Snapshot, percentiles};
use crate::ui::tui::{self, Action, Controls, HostPanel, RunContext};
use crate::ui::{Live, LiveView, Output};

/// How often workers' deltas are merged and the live output refreshed.
const TICK: Duration = Duration::from_millis(100);

/// How often the dashboard's host panel is re-read.
const HOST_PANEL_EVERY: Duration = Duration::from_secs(1);

/// Rate change of one `+` / `-` key in the dashboard.
const RATE_STEP_UP: f64 = 1.1;
const RATE_STEP_DOWN: f64 = 0.9;

/// Exit status of a run stopped by Ctrl-C or SIGTERM.
const EXIT_INTERRUPTED: u8 = 130;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let ui_mode = args.ui;
    let out = args.out.clone();
    let file = args.scenario.clone();
    let scenario = build_scenario(args, false)?;
    if scenario.lab.is_some() {
        let file = file.map_or_else(|| "the scenario".into(), |f| f.display().to_string());
        return Err(UsageError(format!(
            "{file} has a [lab] section, which only `ceiling lab` applies (in a network \
             namespace of its own, as root): run `sudo ceiling lab {file}`, or remove [lab] to \
             run against the host as it is"
        ))
        .into());
    }
    execute(scenario, ui_mode, out, None)
}

/// Runs a validated scenario: `ceiling run`, and `ceiling lab` once its
/// namespace and server are up (`lab` then adds its report to the summary).
pub fn execute(
    mut scenario: Scenario,
    ui_mode: UiMode,
    out: Option<PathBuf>,
    lab: Option<&crate::cmd::lab::Session>,
) -> anyhow::Result<ExitCode> {
    let (fd_soft, fd_hard) = apply_fd_limit(scenario.fd_limit)?;
    for ip in &scenario.sources {
        host::check_local_address(*ip).map_err(|e| {
            UsageError(format!(
                "source {ip} is not an address of this host ({e}): use addresses shown by `ip addr` \
                 (on Linux every 127.0.0.0/8 address is local)"
            ))
        })?;
    }
    // Everything that can refuse the run is checked before anything is
    // created: no results directory, no server, for a run that never starts.
    let embedded_target = scenario.uses_embedded_target() && lab.is_none();
    let target_local: Vec<bool> = if embedded_target {
        vec![true]
    } else {
        scenario
            .targets
            .iter()
            .map(|t| host::is_local_target(*t))
            .collect()
    };
    let layout = WorkerLayout::choose(&scenario, fd_hard)?;
    let plan_note = check_host_room(&scenario, &target_local, lab.is_some() || embedded_target)?;
    let out = out.unwrap_or_else(|| default_results_dir(&scenario.name));

    let embedded = embedded_target
        .then(|| start_embedded_target(peak_connections_estimate(&scenario)))
        .transpose()?;
    if let Some(target) = &embedded {
        scenario.targets = target.listen().to_vec();
        eprintln!(
            "ceiling: no target given: running against the built-in server on {} (a child \
             `ceiling serve`, pid {}{})",
            target.listen_text(),
            target.pid(),
            match target.processes() {
                1 => String::new(),
                n => format!(", {n} server processes"),
            }
        );
    }
    let mut results = ResultsDir::create(&out)
        .map_err(|e| UsageError(format!("cannot write results to '{}': {e}", out.display())))?;

    let host_start = host::probe();
    let listen_drops_at_start = host::listen_drop_count();
    let plan = Plan::new(
        scenario.sources.clone(),
        scenario.targets.clone(),
        scenario.source_ports,
        scenario.connections,
    );
    if layout.processes > 0 {
        eprintln!("ceiling: {}", layout.reason);
    }
    // The tick loop's runtime and signal handlers take fds: made before
    // the workers start filling the fd table (an --fd-limit run reaches
    // it within milliseconds).
    let ticker = Ticker::new().context("cannot start the coordinator's runtime")?;
    let started_at = SystemTime::now();
    let launch = Launch {
        start: tokio::time::Instant::now(),
        target_local,
        listen_drops_at_start,
    };
    let launcher = match layout.processes {
        0 => None,
        _ => {
            let mut launcher =
                Launcher::new(layout.threads).context("cannot find ceiling's own binary")?;
            launcher.memory = lab.and_then(crate::cmd::lab::Session::worker_cgroup);
            Some(Arc::new(launcher))
        }
    };
    let engine = match &launcher {
        None => Engine::start(
            plan,
            settings(&scenario),
            Segment::WHOLE,
            layout.threads,
            launch,
        )
        .context("cannot start worker threads")?,
        Some(launcher) => Engine::start_processes(
            plan,
            settings(&scenario),
            layout.processes,
            Arc::clone(launcher),
            launch,
        )
        .context("cannot start worker processes")?,
    };

    let output = choose_output(ui_mode);
    let context = RunContext {
        name: scenario.name.clone(),
        targets: scenario.targets.iter().map(ToString::to_string).collect(),
        source_names: scenario.sources.iter().map(ToString::to_string).collect(),
        duration: scenario.duration,
        planned_connections: scenario.connections,
        echo: scenario.mode == DriverMode::Echo,
    };
    let mut live = Live::new(output, context).context("cannot start the dashboard")?;
    let mut agg = Aggregator::new(scenario.sources.len(), scenario.connections);
    let run = RunInfo {
        scenario: &scenario,
        host_start: &host_start,
        embedded_target,
        fd_limits: (fd_soft, fd_hard),
        listen_drops_at_start,
        launcher: launcher.as_deref(),
    };
    let driven = drive(ticker, &engine, &run, &mut agg, &mut live, &mut results);
    // The terminal comes back before anything else is printed, error or not.
    let restored = live.finish();
    let Driven {
        last,
        host_at_limit,
        host_room_stop,
    } = driven?;
    restored.context("cannot restore the terminal")?;
    let interrupted = engine.stop_reason() == Some(StopReason::Interrupted);
    let panics = engine.join();
    for panic in &panics {
        eprintln!("ceiling: {panic}");
    }
    // The built-in target goes once the driver has closed its side.
    drop(embedded);

    let host_end = host::probe();
    let facts = run.facts(&last, host_at_limit.as_ref());
    let hosts = Hosts {
        start: &host_start,
        at_limit: host_at_limit.as_ref().map_or(&host_end, |at| &at.state),
        end: &host_end,
    };
    let workers = WorkersReport {
        processes: layout.processes as u64,
        threads_per_process: layout.threads as u64,
        reason: layout.reason,
        deaths: facts.worker_deaths.clone(),
    };
    let mut summary = summarize(
        &scenario,
        &facts,
        &last,
        hosts,
        started_at,
        interrupted,
        (fd_soft, fd_hard),
    );
    summary.workers = workers;
    summary.safety = Safety {
        plan: plan_note,
        stopped: host_room_stop,
    };
    summary.aborted |= summary.safety.stopped.is_some() || !panics.is_empty();
    summary.lab = lab.map(|session| session.report());
    results
        .finish(&summary, &last)
        .with_context(|| format!("cannot write results to '{}'", results.path().display()))?;
    print!("{}", sink::text::render(&summary, results.path()));
    crate::cmd::report::write_beside(results.path());
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if !panics.is_empty() {
        // A bug in ceiling, not a finding about the target.
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The live output for `--ui`: `auto` shows the dashboard when stdin and
/// stderr are terminals (it draws on stderr, so stdout can be redirected),
/// a progress bar when only stderr is, and plain lines otherwise.
fn choose_output(mode: UiMode) -> Output {
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

/// What the tick loop and the summary need to know about the run.
struct RunInfo<'a> {
    scenario: &'a Scenario,
    host_start: &'a host::HostState,
    embedded_target: bool,
    fd_limits: (u64, u64),
    /// ListenOverflows + ListenDrops when the run started.
    listen_drops_at_start: Option<u64>,
    /// Worker processes' launcher (None: worker threads in this process).
    launcher: Option<&'a Launcher>,
}

impl RunInfo<'_> {
    /// The facts the classifier's explanation uses, as of `snapshot`.
    fn facts(&self, snapshot: &Snapshot, at_limit: Option<&HostAtLimit>) -> RunFacts {
        let scenario = self.scenario;
        RunFacts {
            source_count: scenario.sources.len(),
            target_count: scenario.targets.len(),
            explicit_source_ports: scenario.source_ports.map(|r| (r.lo, r.hi)),
            embedded_target: self.embedded_target,
            connections_requested: scenario.connections,
            established: snapshot.total.established,
            peak_active: snapshot.peak_active,
            connect_timeout_ms: scenario.connect_timeout.as_millis() as u64,
            target_local: at_limit.is_some_and(|at| at.target_local),
            target_listener: at_limit.and_then(|at| at.listener),
            close_pattern: snapshot.total.close_pattern(),
            worker_deaths: self.launcher.map(Launcher::deaths).unwrap_or_default(),
        }
    }
}

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
    mut file: ScenarioSpec,
    args: RunArgs,
    lab: bool,
) -> anyhow::Result<Scenario> {
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
        hold: args.hold,
        duration: args.duration,
        connect_timeout: args.connect_timeout,
        mode: args.mode,
        message: args.message,
        interval: args.interval,
        close: args.close,
        fd_limit: args.fd_limit,
        stop_at_first_limit: args.stop_at_first_limit.then_some(true),
        threads: args.threads,
        processes: args.processes,
        pick_port_at: args.pick_port_at,
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
    Ok(Scenario::validate(merged)?)
}

/// Sets the soft fd limit as asked, or raises it to the hard limit.
fn apply_fd_limit(wanted: Option<u64>) -> anyhow::Result<(u64, u64)> {
    let (soft, hard) = host::nofile_limits().context("cannot read RLIMIT_NOFILE")?;
    let target = match wanted {
        Some(n) if n > hard => {
            return Err(UsageError(format!(
                "--fd-limit {n} is above the hard limit {hard}: use at most {hard} (only root can raise the hard limit)"
            ))
            .into());
        }
        Some(n) => n,
        None => hard,
    };
    if target != soft {
        host::set_nofile_soft(target)
            .with_context(|| format!("cannot set the soft fd limit to {target}"))?;
    }
    Ok((target, hard))
}

/// `results/<UTC time>-<name>`, with a numeric suffix if that exists.
pub fn default_results_dir(name: &str) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let base = PathBuf::from("results").join(format!("{stamp}-{name}"));
    let mut candidate = base.clone();
    let mut n = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

/// fds a worker process keeps for itself (stdio, pipes, epoll, /proc
/// reads) beside its connections.
const FDS_KEPT_PER_PROCESS: u64 = 64;

/// Refuses a run whose held sockets would not fit in the host's memory or
/// file table; returns what was checked, for the summary.
fn check_host_room(
    scenario: &Scenario,
    target_local: &[bool],
    own_server: bool,
) -> anyhow::Result<String> {
    let connections = peak_connections_estimate(scenario);
    // A target on this host (ceiling's own server included) holds the
    // other end of each connection.
    let server_here = own_server || (!target_local.is_empty() && target_local.iter().all(|&l| l));
    let sockets = connections * if server_here { 2 } else { 1 };
    let Some(room) = Room::read() else {
        return Ok("host room: /proc/meminfo or fs.file-nr unreadable: not checked".into());
    };
    let note = room.check_plan(sockets).map_err(UsageError)?;
    if sockets >= 100_000 {
        eprintln!("ceiling: {note}");
    }
    Ok(note)
}

/// The most connections a run can hold at once: all of them, unless a paced
/// run closes each after a fixed hold (then about rate × hold).
fn peak_connections_estimate(scenario: &Scenario) -> u64 {
    let max_rate = match scenario.pace {
        Pace::Unlimited => return scenario.connections,
        Pace::Constant { per_s } => per_s,
        Pace::Ramp(ramp) => ramp.from.max(ramp.to),
    };
    match scenario.hold {
        HoldMode::For(hold) => {
            let held_at_once = max_rate * (hold + scenario.connect_timeout).as_secs_f64();
            scenario.connections.min(held_at_once.ceil() as u64)
        }
        HoldMode::UntilEnd => scenario.connections,
    }
}

/// Worker processes and threads for a run.
struct WorkerLayout {
    /// 0: worker threads in ceiling's own process.
    processes: usize,
    /// Per process.
    threads: usize,
    reason: String,
}

impl WorkerLayout {
    fn choose(scenario: &Scenario, fd_hard: u64) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let connections = scenario.connections;
        let per_process = fd_hard.saturating_sub(FDS_KEPT_PER_PROCESS).max(1);
        let needed = connections.div_ceil(per_process);
        let held_at_once = peak_connections_estimate(scenario);
        let (processes, reason) = match scenario.processes {
            // More held at once than one fd table takes, and no --fd-limit
            // asking to meet that limit: worker processes, said out loud.
            None if scenario.fd_limit.is_none() && held_at_once > per_process => {
                let n = held_at_once.div_ceil(per_process);
                (
                    n,
                    format!(
                        "{} connections held at once need more fds than one process has (hard \
                         limit {}): {n} worker processes of up to {} connections each, as \
                         `--processes auto` gives (set --processes N to choose)",
                        thousands(held_at_once),
                        thousands(fd_hard),
                        thousands(per_process)
                    ),
                )
            }
            None => (0, "worker threads in ceiling's own process".to_string()),
            Some(Processes::Auto) if needed <= 1 => (
                0,
                format!(
                    "--processes auto: {} connections fit in one process under the hard fd \
                     limit of {}: worker threads in ceiling's own process",
                    thousands(connections),
                    thousands(fd_hard)
                ),
            ),
            Some(Processes::Auto) => (
                needed,
                format!(
                    "--processes auto: {} connections need {needed} worker processes under the \
                     hard fd limit of {} ({} connections each at most)",
                    thousands(connections),
                    thousands(fd_hard),
                    thousands(per_process)
                ),
            ),
            Some(Processes::Count(n)) => (
                n.min(connections),
                format!("{} worker process(es), as asked", n.min(connections)),
            ),
        };
        let shared_cores = match processes {
            0 => cores,
            n => (cores / n).max(1),
        };
        let per_process_connections = connections.div_ceil(processes.max(1));
        let threads = scenario
            .threads
            .unwrap_or(shared_cores)
            .min(per_process_connections)
            .max(1);
        Ok(WorkerLayout {
            processes: processes as usize,
            threads: threads as usize,
            reason,
        })
    }
}

fn settings(scenario: &Scenario) -> Settings {
    Settings {
        pace: scenario.pace,
        hold: scenario.hold,
        duration: scenario.duration,
        connect_timeout: scenario.connect_timeout,
        echo: (scenario.mode == DriverMode::Echo).then(|| Echo {
            message: scenario.message.as_bytes().into(),
            interval: scenario.interval,
        }),
        close: scenario.close,
        stop_at_first_limit: scenario.stop_at_first_limit,
        bind_address_no_port: scenario.pick_port_at == PortPick::Connect,
    }
}

/// The host as it was when the first limit was seen: the evidence for it.
/// Read at the next tick (within [`TICK`]), before the run's own closes
/// change it (TIME_WAIT, queues).
struct HostAtLimit {
    state: host::HostState,
    target_local: bool,
    /// The target's listener queue, when the target is on this host.
    listener: Option<host::ListenerQueue>,
}

impl HostAtLimit {
    fn read(target: &str) -> HostAtLimit {
        let target: Option<SocketAddr> = target.parse().ok();
        let target_local = target.is_some_and(host::is_local_target);
        HostAtLimit {
            state: host::probe(),
            target_local,
            listener: target
                .filter(|_| target_local)
                .and_then(host::listener_queue),
        }
    }
}

/// What the tick loop leaves behind.
struct Driven {
    last: Snapshot,
    host_at_limit: Option<HostAtLimit>,
    /// Why the host-room guard stopped the run, if it did.
    host_room_stop: Option<String>,
}

/// The coordinator's runtime with its SIGINT and SIGTERM handlers.
struct Ticker {
    runtime: tokio::runtime::Runtime,
    interrupt: Signal,
    terminate: Signal,
}

impl Ticker {
    fn new() -> std::io::Result<Ticker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (interrupt, terminate) = {
            let _entered = runtime.enter();
            (
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            )
        };
        Ok(Ticker {
            runtime,
            interrupt,
            terminate,
        })
    }
}

/// The tick loop: aggregate, show, append rows; stop on a signal. Returns
/// the final snapshot once every worker has finished.
fn drive(
    ticker: Ticker,
    engine: &Engine,
    run: &RunInfo<'_>,
    agg: &mut Aggregator,
    live: &mut Live,
    results: &mut ResultsDir,
) -> anyhow::Result<Driven> {
    let Ticker {
        runtime,
        mut interrupt,
        mut terminate,
    } = ticker;
    runtime.block_on(async {
        let mut tick = tokio::time::interval(TICK);
        let mut host_at_limit: Option<HostAtLimit> = None;
        let mut first_limit: Option<FirstLimit> = None;
        let mut host_panel = HostPanel::default();
        let mut host_panel_at: Option<tokio::time::Instant> = None;
        let mut host_room_stop: Option<String> = None;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = engine.finished() => {}
                _ = interrupt.recv() => on_signal(engine),
                _ = terminate.recv() => on_signal(engine),
            }
            let finished = engine.is_finished();
            engine.drain_into(agg);
            let elapsed = engine.start_instant().elapsed();
            let phase = match engine.phase() {
                _ if finished => Phase::Done,
                // Every attempt started, but handshakes are still pending.
                Phase::Holding if agg.in_flight() > 0 => Phase::Opening,
                phase => phase,
            };
            let snapshot = agg.snapshot(elapsed, phase, engine.target_rate(), utc_now, finished);
            results.append_rows(&agg.take_rows()).with_context(|| {
                format!(
                    "cannot append to {}",
                    results.path().join("timeseries.csv").display()
                )
            })?;
            if host_at_limit.is_none()
                && let Some(event) = &snapshot.total.first_limit
            {
                let at = HostAtLimit::read(&event.target);
                let facts = run.facts(&snapshot, Some(&at));
                first_limit = Some(explain_first_limit(
                    event,
                    run.host_start,
                    &at.state,
                    &facts,
                ));
                host_at_limit = Some(at);
            }
            if host_panel_at.is_none_or(|at| at.elapsed() >= HOST_PANEL_EVERY) {
                host_panel = read_host_panel(run);
                host_panel_at = Some(tokio::time::Instant::now());
                if host_room_stop.is_none()
                    && let Some(why) = Room::read().and_then(|room| room.exhausted())
                {
                    eprintln!("ceiling: stopping: {why}");
                    engine.stop(StopReason::HostRoom);
                    host_room_stop = Some(why);
                }
            }
            let schedule = engine.schedule();
            let controls = Controls {
                paused: schedule.is_paused(),
                rate_factor: schedule.factor(),
            };
            let view = LiveView {
                snapshot: &snapshot,
                first_limit: first_limit.as_ref(),
                host: &host_panel,
                controls,
            };
            for action in live.update(&view).context("cannot draw the dashboard")? {
                match action {
                    Action::Stop => {
                        engine.stop(StopReason::Interrupted);
                    }
                    Action::TogglePause => engine.set_paused(!controls.paused),
                    Action::RateUp => engine.set_rate_factor(controls.rate_factor * RATE_STEP_UP),
                    Action::RateDown => {
                        engine.set_rate_factor(controls.rate_factor * RATE_STEP_DOWN)
                    }
                }
            }
            if finished {
                return Ok(Driven {
                    last: snapshot,
                    host_at_limit,
                    host_room_stop,
                });
            }
        }
    })
}

/// First signal: stop gracefully. Second: the user means it.
fn on_signal(engine: &Engine) {
    if engine.stop_reason() == Some(StopReason::Interrupted) {
        let _ = tui::restore_terminal();
        crate::cmd::lab::cleanup_before_exit();
        eprintln!("ceiling: interrupted again: exiting without waiting for connections to close");
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    }
    eprintln!(
        "ceiling: stopping: closing connections and writing results (Ctrl-C again to quit at once)"
    );
    engine.stop(StopReason::Interrupted);
}

fn utc_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The built-in target for a run without one: a child `ceiling serve` on a
/// free loopback port, with as many server processes as `connections`
/// held at once need.
fn start_embedded_target(connections: u64) -> anyhow::Result<TargetServer> {
    let processes = target::processes_to_hold(connections)?;
    TargetServer::start(
        &[SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        &LabServer::default(),
        processes,
    )
    .context("cannot start the built-in target server on 127.0.0.1")
}

/// The first limit with its evidence and remedy.
fn explain_first_limit(
    event: &FailureEvent,
    start: &host::HostState,
    at_limit: &host::HostState,
    facts: &RunFacts,
) -> FirstLimit {
    let (evidence, remedy) = classify::explain(event, start, at_limit, facts);
    FirstLimit {
        kind: event.kind,
        errno: event.errno,
        errno_name: event.errno.and_then(errno_name).map(str::to_string),
        syscall: event.syscall,
        at_attempt: event.attempt,
        at_elapsed_s: event.elapsed_s,
        active_at: event.active,
        source: event.source.clone(),
        target: event.target.clone(),
        evidence,
        remedy,
    }
}

/// The dashboard's host panel: fds, port range, sockets, listen drops.
fn read_host_panel(run: &RunInfo<'_>) -> HostPanel {
    let (fd_soft, fd_hard) = run.fd_limits;
    let counters = host::read_counters();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    HostPanel {
        fds_in_use: host::open_fd_count(),
        fd_soft,
        fd_hard,
        port_range: range.and_then(|r| {
            let mut parts = r.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        }),
        tcp_inuse: counters.get("sockstat.tcp_inuse").copied(),
        tcp_time_wait: counters.get("sockstat.tcp_tw").copied(),
        listen_drops_delta: run
            .listen_drops_at_start
            .zip(host::listen_drops_in(&counters))
            .map(|(start, now)| now.saturating_sub(start)),
    }
}

/// Host readings: at the start, when the first limit was seen, at the end.
struct Hosts<'a> {
    start: &'a host::HostState,
    at_limit: &'a host::HostState,
    end: &'a host::HostState,
}

fn summarize(
    scenario: &Scenario,
    facts: &RunFacts,
    last: &Snapshot,
    hosts: Hosts<'_>,
    started_at: SystemTime,
    aborted: bool,
    (fd_soft, fd_hard): (u64, u64),
) -> Summary {
    let total = &last.total;
    let first_limit = total
        .first_limit
        .as_ref()
        .map(|event| explain_first_limit(event, hosts.start, hosts.at_limit, facts));
    let mut failures: Vec<FailureGroup> = total
        .groups
        .iter()
        .map(|(&(kind, syscall, errno), group)| FailureGroup {
            kind,
            syscall,
            errno,
            errno_name: errno.and_then(errno_name).map(str::to_string),
            count: group.count,
            first_attempt: group.first.attempt,
            first_elapsed_s: group.first.elapsed_s,
            last_elapsed_s: group.last_elapsed_s,
            source: group.first.source.clone(),
            target: group.first.target.clone(),
        })
        .collect();
    failures.sort_by(|a, b| a.first_elapsed_s.total_cmp(&b.first_elapsed_s));
    let mut latency = std::collections::BTreeMap::new();
    latency.insert("connect_us".to_string(), percentiles(&total.connect_us));
    if scenario.mode == DriverMode::Echo {
        latency.insert("rtt_us".to_string(), percentiles(&total.rtt_us));
    }
    let mut scenario_json = serde_json::to_value(scenario).unwrap_or_default();
    scenario_json["embedded_target"] = facts.embedded_target.into();
    let mut values = hosts.start.values.clone();
    values.insert("rlimit_nofile_soft".into(), fd_soft.into());
    values.insert("rlimit_nofile_hard".into(), fd_hard.into());
    let source_names: Vec<String> = scenario.sources.iter().map(ToString::to_string).collect();
    Summary {
        schema_version: SCHEMA_VERSION,
        ceiling_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: scenario_json,
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        duration_s: last.elapsed.as_secs_f64(),
        aborted,
        totals: crate::model::Totals {
            attempted: total.attempted,
            established: total.established,
            failed: total.failed,
            peak_active: last.peak_active,
            closed_by_driver: total.closed_by_driver,
            closed_by_server: total.closed_by_server,
            last_established_s: total.last_established_s,
        },
        first_limit,
        failures_by_kind: LimitKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), total.failures_by_kind[k.index()]))
            .collect(),
        failures,
        warnings: total.warnings.clone(),
        latency,
        sources: if source_names.is_empty() {
            // No --source: the kernel chose, and every connection counts
            // against the one (kernel-chosen) source.
            vec![crate::model::SourceSummary {
                source: "(kernel-chosen)".into(),
                attempted: total.attempted,
                established: total.established,
                failed: total.failed,
                peak_ports_in_use: last.peak_active,
            }]
        } else {
            last.source_summaries(&source_names)
        },
        host: HostReport {
            values,
            counter_deltas: host::counter_deltas(hosts.start, hosts.end),
        },
        // Filled in by the caller, which knows the layout and the guard.
        workers: WorkersReport::default(),
        safety: Safety::default(),
        lab: None,
    }
}
