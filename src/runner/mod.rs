//! The life of one run: a validated scenario → its target names resolved
//! → host preparation (fd limit, source checks, layout, host room, the
//! built-in target) → engine
//! → the tick loop that aggregates, feeds the live output and appends the
//! time series → summary and results files. `ceiling run` and `ceiling lab`
//! call [`execute`]; `explore`'s climbs are such runs in child processes.
//!
//! Like `cmd/`, this is orchestration, so its errors are `anyhow` with
//! context; it takes validated values only (a [`Scenario`], an
//! [`Output`]), never a clap type.

mod drive;
pub mod lab_session;
pub mod layout;
mod resolve;
mod summary;
pub mod target;

pub use resolve::resolve_targets;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::UsageError;
use crate::classify::{RunFacts, host};
use crate::engine::hold::Echo;
use crate::engine::plan::{Plan, Segment};
use crate::engine::procs::Launcher;
use crate::engine::request::RequestSettings;
use crate::engine::{Engine, Launch, Settings, StopReason};
use crate::fleet::coordinator::{self, Coordinator, FleetSettings};
use crate::fleet::wire::NamedTarget;
use crate::model::{Safety, Summary, WorkerDeath, WorkersReport};
use crate::scenario::units::{DriverMode, PortPick};
use crate::scenario::{Pace, Scenario};
use crate::sink::{ResultsDir, ResultsUnwritten};
use crate::stats::{Aggregator, Snapshot};
use crate::ui::tui::RunContext;
use crate::ui::{Live, Output};
use drive::{CpuWatches, Driven, GeneratorWatch, HostAtLimit, ServerCpuWatch, Ticker};
use lab_session::LabSession;
use layout::{WorkerLayout, apply_fd_limit, check_host_room, peak_connections_estimate};
use summary::{Hosts, explain_first_limit, summarize};
use target::TargetServer;

/// Exit status of a run stopped by Ctrl-C or SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Exit status of a run in which nothing connected (every attempt refused,
/// timed out or failed): no limit was found because no target answered.
pub const EXIT_NOTHING_CONNECTED: u8 = 3;

/// Runs a validated scenario to its end: `ceiling run`, and `ceiling lab`
/// once its namespace and server are up (`lab` then adds its report to the
/// summary). `out`: the results directory (default
/// `results/<UTC time>-<name>`).
pub fn execute(
    scenario: Scenario,
    output: Output,
    out: Option<PathBuf>,
    lab: Option<&LabSession>,
) -> anyhow::Result<Finished> {
    execute_with(scenario, output, out, lab, None)
}

/// Runs a validated scenario on a fleet of agents (`ceiling run --fleet
/// N`): this process coordinates, the agents hold the connections; the
/// results directory adds `hosts.csv` and the summary its `fleet`.
pub fn execute_fleet(
    scenario: Scenario,
    output: Output,
    out: Option<PathBuf>,
    fleet: &FleetSettings,
) -> anyhow::Result<Finished> {
    execute_with(scenario, output, out, None, Some(fleet))
}

fn execute_with(
    scenario: Scenario,
    output: Output,
    out: Option<PathBuf>,
    lab: Option<&LabSession>,
    fleet: Option<&FleetSettings>,
) -> anyhow::Result<Finished> {
    // Names first: a run that cannot resolve one never starts.
    let names = scenario.target_names.clone();
    let (mut scenario, targets_resolved) = resolve_targets(scenario)?;
    // A fleet's agents resolve the names again, each in its own network.
    let named: Vec<NamedTarget> = names
        .iter()
        .zip(&targets_resolved)
        .map(|(name, resolved)| NamedTarget {
            name: name.text.clone(),
            host: name.host.clone(),
            ports: (name.ports.lo, name.ports.hi),
            addresses: resolved
                .addresses
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
        })
        .collect();
    let (fd_soft, fd_hard) = apply_fd_limit(scenario.fd_limit, scenario.fd_limit_from)?;
    if let Some(fleet) = fleet {
        check_fleet(&scenario, fleet)?;
    }
    // A fleet's sources are its agents' addresses, not this host's.
    for ip in scenario.sources.iter().filter(|_| fleet.is_none()) {
        host::check_local_address(*ip).map_err(|e| {
            UsageError(format!(
                "source {ip} is not an address of this host ({e}): use addresses shown by `ip addr` \
                 (on Linux every 127.0.0.0/8 address is local)"
            ))
        })?;
    }
    // Everything that can refuse the run is checked before anything is
    // created: no results directory, no server, for a run that never starts.
    let embedded_target = scenario.uses_embedded_target() && lab.is_none() && fleet.is_none();
    let target_local: Vec<bool> = if embedded_target {
        vec![true]
    } else {
        scenario
            .targets
            .iter()
            .map(|t| host::is_local_target(*t))
            .collect()
    };
    let (layout, plan_note) = match fleet {
        None => (
            WorkerLayout::choose(&scenario, fd_hard)?,
            check_host_room(&scenario, &target_local, lab.is_some() || embedded_target)?,
        ),
        Some(fleet) => (
            WorkerLayout {
                processes: 0,
                threads: 1,
                reason: format!(
                    "a fleet of {} agents, each running its segment with worker threads or \
                     processes of its own (as --processes auto)",
                    fleet.hosts
                ),
            },
            "host room: not checked here: the agents hold the connections".to_string(),
        ),
    };
    let out = out.unwrap_or_else(|| default_results_dir(&scenario.name));
    // The barrier: every agent joined (or the run refused) before
    // anything is created.
    let coordinator = fleet
        .map(Coordinator::gather)
        .transpose()
        .context("the fleet could not start")?;

    let embedded = embedded_target
        .then(|| match &scenario.requests {
            // Request mode: a server that answers the protocol and takes
            // its time, so the default run shows the pool queueing.
            Some(r) => TargetServer::embedded_answering(
                r.pool,
                r.protocol.serve_mode(),
                crate::scenario::request::BUILT_IN_SERVICE_TIME,
            ),
            None => TargetServer::embedded(peak_connections_estimate(&scenario)),
        })
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
    let mut results = ResultsDir::create_for(&out, scenario.requests.is_some())
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
    // The dashboard's terminal and key reader take fds too: opened before
    // the workers start (see below).
    let context = RunContext {
        name: scenario.name.clone(),
        targets: scenario.targets.iter().map(ToString::to_string).collect(),
        source_names: scenario.sources.iter().map(ToString::to_string).collect(),
        duration: scenario.duration,
        planned_connections: scenario.connections,
        echo: scenario.mode == DriverMode::Echo,
    };
    let mut live = Live::new(output, context).context("cannot start the dashboard")?;
    // The tick loop's runtime and signal handlers take fds: made before
    // the workers start filling the fd table (an --fd-limit run reaches
    // it within milliseconds).
    let ticker = Ticker::new().context("cannot start the coordinator's runtime")?;
    let started_at = SystemTime::now();
    results.set_start(started_at);
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
            launcher.memory = lab.and_then(LabSession::worker_cgroup);
            Some(Arc::new(launcher))
        }
    };
    let (engine, fleet) = match coordinator {
        Some(coordinator) => {
            let threads = scenario.threads.unwrap_or(0) as usize;
            let (engine, fleet) = coordinator
                .start(plan, settings(&scenario), threads, launch, named)
                .context("cannot start the fleet's relays")?;
            (engine, Some(fleet))
        }
        None => (
            local_engine(&scenario, plan, &layout, launcher.as_ref(), launch)?,
            None,
        ),
    };

    let mut agg = Aggregator::new(scenario.sources.len(), scenario.connections);
    let run = RunInfo {
        scenario: &scenario,
        host_start: &host_start,
        embedded_target,
        fd_limits: (fd_soft, fd_hard),
        listen_drops_at_start,
        deaths: match (&fleet, &launcher) {
            (Some(fleet), _) => Some(fleet.deaths()),
            (None, Some(launcher)) => Some(&launcher.deaths),
            (None, None) => None,
        },
        lab,
        hosts: fleet.as_ref().map(|f| f.labels()).unwrap_or_default(),
        report_lag: fleet.as_ref().map(|f| f.report_lag()).unwrap_or_default(),
    };
    // The built-in server's CPU is not the generator's.
    let server_pid = embedded
        .as_ref()
        .map(TargetServer::pid)
        .or_else(|| lab.map(LabSession::server_pid));
    let worker_threads = layout.threads * layout.processes.max(1);
    let mut cpu = CpuWatches {
        generator: GeneratorWatch::new(server_pid.into_iter().collect(), worker_threads),
        server: server_pid.and_then(ServerCpuWatch::new),
        // Another target on this host: the process that owns its listener,
        // looked up a second into the run (off the start-up path).
        owner_of: match (server_pid, scenario.targets.first()) {
            (None, Some(&target)) if host::is_local_target(target) => Some(target),
            _ => None,
        },
    };
    let driven = drive::drive(
        ticker,
        &engine,
        &run,
        &mut agg,
        &mut live,
        &mut results,
        &mut cpu,
    );
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
    let facts = run.facts(&last, host_at_limit.as_ref(), cpu.server.as_ref());
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
    // No connection failed, yet the target's CPU held the run back.
    if summary.first_limit.is_none()
        && !summary.aborted
        && let Some(event) = cpu.server.as_ref().and_then(|server| {
            server.first_limit(
                &scenario
                    .targets
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
        })
    {
        let facts = RunFacts {
            target_local: target_local_of(&event.target),
            ..facts.clone()
        };
        summary.first_limit = Some(explain_first_limit(&event, &host_start, &host_end, &facts));
    }
    summary.workers = workers;
    summary.safety = Safety {
        plan: plan_note,
        stopped: host_room_stop,
    };
    summary.aborted |= summary.safety.stopped.is_some() || !panics.is_empty();
    summary.lab = lab.map(|session| session.report(summary.totals.peak_active));
    summary.targets_resolved = targets_resolved;
    if let Some(fleet) = &fleet {
        summary.fleet = Some(fleet.report(scenario.connections));
        if let Some(first) = &mut summary.first_limit {
            coordinator::name_host(first, &run.hosts);
        }
    }
    summary.warnings.generator_bottleneck = cpu.generator.verdict();
    // The summary is printed whether or not the files could be written;
    // those that could not are then named in one error (exit 1).
    let written = results.finish(&summary, &last);
    Ok(Finished {
        summary,
        dir: results.path().to_path_buf(),
        written,
        interrupted,
        panicked: !panics.is_empty(),
    })
}

/// This process's own workers: threads, or worker processes.
fn local_engine(
    scenario: &Scenario,
    plan: Plan,
    layout: &WorkerLayout,
    launcher: Option<&Arc<Launcher>>,
    launch: Launch,
) -> anyhow::Result<Engine> {
    Ok(match launcher {
        None => Engine::start(
            plan,
            settings(scenario),
            Segment::WHOLE,
            layout.threads,
            launch,
        )
        .context("cannot start worker threads")?,
        Some(launcher) => Engine::start_processes(
            plan,
            settings(scenario),
            Segment::WHOLE,
            layout.processes,
            Arc::clone(launcher),
            launch,
        )
        .context("cannot start worker processes")?,
    })
}

/// Refuses a fleet that cannot run: no target its agents can reach, or
/// more hosts than connections.
fn check_fleet(scenario: &Scenario, fleet: &FleetSettings) -> Result<(), UsageError> {
    if scenario.uses_embedded_target() {
        return Err(UsageError(
            "--fleet needs a target the agents can reach: give --target ADDR:PORT (the \
             built-in server would run on this host only)"
                .into(),
        ));
    }
    if fleet.hosts > scenario.connections {
        return Err(UsageError(format!(
            "--fleet {} is more hosts than --connections {}: every host needs at least one \
             connection; use --fleet {} or fewer, or more connections",
            fleet.hosts, scenario.connections, scenario.connections
        )));
    }
    Ok(())
}

/// A run that went to its end (or was stopped): its summary, where its
/// files are, and whether they could all be written.
pub struct Finished {
    pub summary: Summary,
    pub dir: PathBuf,
    /// Err: the files that could not be written, named (the summary is
    /// whole all the same).
    pub written: Result<(), ResultsUnwritten>,
    /// Stopped by Ctrl-C, SIGTERM or the dashboard's `q`.
    pub interrupted: bool,
    /// A worker thread panicked: a bug in ceiling, not a finding.
    pub panicked: bool,
}

impl Finished {
    /// The exit status: 130 interrupted, 1 for a bug in ceiling, 3 when
    /// nothing connected, 0 otherwise. (Files not written: the caller's
    /// error, exit 1.)
    pub fn exit_code(&self) -> ExitCode {
        if self.interrupted {
            ExitCode::from(EXIT_INTERRUPTED)
        } else if self.panicked {
            ExitCode::FAILURE
        } else if self.summary.nothing_connected.is_some() {
            ExitCode::from(EXIT_NOTHING_CONNECTED)
        } else {
            ExitCode::SUCCESS
        }
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
    /// Where worker processes' (or agents') deaths are recorded (None:
    /// worker threads in this process).
    deaths: Option<&'a Mutex<Vec<WorkerDeath>>>,
    /// The lab, when this run is `ceiling lab`'s.
    lab: Option<&'a LabSession>,
    /// A fleet's hosts by index ("host 3 (node-7)"); empty otherwise.
    hosts: Vec<String>,
    /// How late a report may arrive after the grid point it was cut at,
    /// beyond a pipe's moment: a fleet's longest round trip; zero
    /// otherwise.
    report_lag: Duration,
}

impl RunInfo<'_> {
    /// The facts the classifier's explanation uses, as of `snapshot`.
    fn facts(
        &self,
        snapshot: &Snapshot,
        at_limit: Option<&HostAtLimit>,
        server: Option<&ServerCpuWatch>,
    ) -> RunFacts {
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
            handshakes: at_limit.and_then(|at| at.sockets),
            close_pattern: snapshot.total.close_pattern(),
            worker_deaths: self
                .deaths
                .map(|d| d.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .unwrap_or_default(),
            server_pids: self.lab.and_then(LabSession::server_pids),
            server_cpu: server.and_then(ServerCpuWatch::verdict),
            shortfall: server.and_then(ServerCpuWatch::shortfall),
        }
    }
}

/// Whether `target` ("IP:PORT") is on this host: its counters are ours.
fn target_local_of(target: &str) -> bool {
    target.parse().is_ok_and(host::is_local_target)
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

fn settings(scenario: &Scenario) -> Settings {
    Settings {
        // Request mode's rate is the requests'; its pool opens at once.
        pace: if scenario.requests.is_some() {
            Pace::Unlimited
        } else {
            scenario.pace
        },
        hold: scenario.hold,
        duration: scenario.duration,
        connect_timeout: scenario.connect_timeout,
        echo: (scenario.mode == DriverMode::Echo).then(|| Echo {
            message: scenario.payload.as_slice().into(),
            interval: scenario.interval,
        }),
        close: scenario.close,
        stop_at_first_limit: scenario.stop_at_first_limit,
        bind_address_no_port: scenario.pick_port_at == PortPick::Connect,
        max_in_flight: scenario.max_in_flight,
        requests: scenario.requests.clone().map(|requests| RequestSettings {
            requests,
            pace: scenario.pace,
            message: scenario.payload.clone(),
        }),
    }
}
