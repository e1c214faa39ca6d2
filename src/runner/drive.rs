//! The tick loop of a run: every [`TICK`] it merges the workers' deltas,
//! integrates the rate asked (connects, or a request run's requests),
//! appends the finished seconds to the time series, reads the host when
//! the first limit appears (the evidence, with the run's sockets by
//! state), reads ceiling's own CPU and its target's once a second,
//! refreshes the live output and its host panel, applies the dashboard's
//! keys, and stops the engine on a signal or when the host runs out of
//! room.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::RunInfo;
use super::lab_session;
use super::summary::explain_first_limit;
use crate::classify::capacity::Room;
use crate::classify::cpu::{CpuAllowance, CpuSecond, CpuShortfall, ServerCpu, ServerCpuSeconds};
use crate::classify::explain::Handshakes;
use crate::classify::host;
use crate::engine::clock;
use crate::engine::rate::{Schedule, rate_at};
use crate::engine::{Engine, StopReason};
use crate::fleet::coordinator;
use crate::model::{FailureEvent, FirstLimit, GeneratorBottleneck, LimitKind, Syscall, thousands};
use crate::scenario::{Pace, Scenario};
use crate::sink::ResultsDir;
use crate::stats::{Aggregator, Phase, SecondRow, Snapshot};
use crate::ui::tui::{self, Action, Controls, HostPanel};
use crate::ui::{Live, LiveView};

/// How often workers' deltas are merged and the live output refreshed.
pub const TICK: Duration = Duration::from_millis(100);

/// How long after each point of the run's TICK grid the tick loop runs:
/// time for the reports that worker processes cut on the grid to arrive
/// through a pipe (a fleet adds its longest round trip).
const TICK_GRACE: Duration = Duration::from_millis(20);

/// The most a fleet's far hosts may hold the tick loop back by: the
/// dashboard lags its data by as much.
const TICK_GRACE_MAX: Duration = Duration::from_secs(1);

/// How often the dashboard's host panel is re-read.
const HOST_PANEL_EVERY: Duration = Duration::from_secs(1);

/// Rate change of one `+` / `-` key in the dashboard.
const RATE_STEP_UP: f64 = 1.1;
const RATE_STEP_DOWN: f64 = 0.9;

/// Attempts (requests sent, in request mode) below this share of the
/// target rate are behind.
const BEHIND: f64 = 0.9;
/// ceiling's processes at this share of the cores they may use are busy.
const BUSY: f64 = 0.85;
/// Seconds behind and busy that make a verdict (one can be a hiccup).
const BOTTLENECK_MIN_SECONDS: u64 = 2;
/// Seconds of slow or short connects that make the target's CPU a first
/// limit (one can be a hiccup).
const SHORT_SECONDS: u64 = 2;

/// Whether ceiling itself holds the rate down: reads its own processes'
/// CPU (the coordinator and its worker processes, not its built-in
/// server) once a second, and judges each second's row of the time series.
pub struct GeneratorWatch {
    /// The built-in server's PID: its subtree is not the generator's.
    exclude: Vec<u32>,
    /// Cores ceiling's processes may use: CPUs, its cgroup's quota, its
    /// worker threads.
    available: f64,
    hz: f64,
    last: Option<(std::time::Instant, u64)>,
    seconds: u64,
    cores: f64,
    /// Summed over the seconds behind: attempts (or requests sent) per
    /// second, and the target rate.
    achieved: f64,
    target: f64,
    /// The seconds behind were of requests, not connects.
    requests: bool,
}

/// The shortest span a CPU reading is taken over: /proc counts CPU time
/// in clock ticks (10 ms at 100 Hz), so one tick over the few ms between
/// the baseline and the first tick read as 3.3 cores on a 2-core machine.
const CPU_READ_MIN: Duration = Duration::from_millis(500);

impl GeneratorWatch {
    pub fn new(exclude: Vec<u32>, worker_threads: usize) -> GeneratorWatch {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let quota = host::own_cpu_quota().unwrap_or(cpus);
        let mut watch = GeneratorWatch {
            exclude,
            available: cpus.min(quota).min(worker_threads.max(1) as f64),
            hz: host::clock_ticks_per_s() as f64,
            last: None,
            seconds: 0,
            cores: 0.0,
            achieved: 0.0,
            target: 0.0,
            requests: false,
        };
        // The baseline the first second is measured from.
        watch.read();
        watch
    }

    /// Reads the generator's CPU: the cores it used since the last read;
    /// None (and the last read kept) when that was under
    /// [`CPU_READ_MIN`] ago.
    pub fn read(&mut self) -> Option<f64> {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|(at, _)| now.duration_since(at) < CPU_READ_MIN)
        {
            return None;
        }
        let ticks = host::tree_cpu_ticks(std::process::id(), &self.exclude)?;
        let used = self.last.map(|(at, before)| {
            let wall = now.duration_since(at).as_secs_f64().max(1e-3);
            ticks.saturating_sub(before) as f64 / self.hz / wall
        });
        self.last = Some((now, ticks));
        used
    }

    /// Counts `row` if attempts were behind the target while the generator
    /// was busy. In request mode, requests sent: stamping a request's
    /// intended time is cheap and keeps pace (under a 0.1-core quota, 98%
    /// of 20,000/s), while writing and reading them is where a busy
    /// generator falls behind (15%: its pool seems busy, its queue grows).
    pub fn judge(&mut self, row: &SecondRow) {
        let Some(cores) = row.driver_cpu_cores else {
            return;
        };
        let achieved = row
            .requests
            .as_ref()
            .map_or(row.attempt_rate_per_s, |r| r.sent_per_s);
        if row.target_rate_per_s > 0.0
            && achieved < BEHIND * row.target_rate_per_s
            && cores >= BUSY * self.available
        {
            self.seconds += 1;
            self.cores += cores;
            self.achieved += achieved;
            self.target += row.target_rate_per_s;
            self.requests = row.requests.is_some();
        }
    }

    /// The verdict over the run so far.
    pub fn verdict(&self) -> Option<GeneratorBottleneck> {
        if self.seconds < BOTTLENECK_MIN_SECONDS {
            return None;
        }
        let seconds = self.seconds as f64;
        let cores_used = self.cores / seconds;
        let achieved_ratio = self.achieved / self.target.max(1e-9);
        let behind = if self.requests {
            format!(
                "it sent {} requests/s of the {}/s asked ({:.0}%)",
                thousands((self.achieved / seconds).round() as u64),
                thousands((self.target / seconds).round() as u64),
                achieved_ratio * 100.0
            )
        } else {
            format!(
                "attempts ran at {:.0}% of the target rate",
                achieved_ratio * 100.0
            )
        };
        Some(GeneratorBottleneck {
            seconds: self.seconds,
            cores_used,
            cores_available: self.available,
            achieved_ratio,
            message: format!(
                "the generator was the bottleneck for {} s: ceiling's own processes used {:.2} \
                 of the {:.2} cores they may use while {behind}; add worker threads or \
                 processes (--threads, --processes), more CPU, or hosts, and read those \
                 seconds' latencies as including ceiling's own delay",
                self.seconds, cores_used, self.available,
            ),
        })
    }
}

/// The CPU watches read once a second: ceiling's own, and the target's
/// when its process is known.
pub struct CpuWatches {
    pub generator: GeneratorWatch,
    pub server: Option<ServerCpuWatch>,
    /// A local target whose listener's owner becomes `server` once the run
    /// is a second old (finding it scans /proc: not on the start-up path).
    pub owner_of: Option<SocketAddr>,
}

/// Whether the target held itself back by its CPU: reads the server's
/// processes' CPU time and its cgroup's throttling once a second (the
/// built-in server's, in `ceiling lab` or without --target; else the owner
/// of a local target's listener), judged by [`ServerCpuSeconds`].
pub struct ServerCpuWatch {
    pid: u32,
    hz: f64,
    last: Option<ServerCpuReading>,
    seconds: ServerCpuSeconds,
    /// The time series' seconds in which connects slowed or fell short.
    shortfall: CpuShortfall,
    /// The first of them, as of its end: (elapsed s, attempted, active).
    first_short: Option<(f64, u64, u64)>,
}

/// One reading: when, CPU ticks, and the cgroup's (periods, seconds)
/// throttled.
struct ServerCpuReading {
    at: std::time::Instant,
    ticks: u64,
    throttled: Option<(u64, f64)>,
}

impl ServerCpuWatch {
    /// None when `pid` cannot be read.
    pub fn new(pid: u32) -> Option<ServerCpuWatch> {
        let cpus = host::cpus_allowed(pid)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1) as f64;
        let allowance = CpuAllowance {
            quota_cores: host::cpu_quota_of(&pid.to_string()),
            cpus,
        };
        let mut watch = ServerCpuWatch {
            pid,
            hz: host::clock_ticks_per_s() as f64,
            last: None,
            seconds: ServerCpuSeconds::new(allowance),
            shortfall: CpuShortfall::default(),
            first_short: None,
        };
        // The baseline the first second is measured from.
        watch.read();
        watch.last.is_some().then_some(watch)
    }

    /// Reads the server's CPU and counts the second since the last read.
    pub fn read(&mut self) {
        let Some(ticks) = host::tree_cpu_ticks(self.pid, &[]) else {
            return;
        };
        let throttled = host::cpu_throttled_of(self.pid);
        let now = std::time::Instant::now();
        if let Some(last) = &self.last {
            let wall = now.duration_since(last.at).as_secs_f64().max(1e-3);
            let (periods, seconds) = match (throttled, last.throttled) {
                (Some((p, s)), Some((p0, s0))) => (p.saturating_sub(p0), (s - s0).max(0.0)),
                _ => (0, 0.0),
            };
            self.seconds.add(
                CpuSecond {
                    cores_used: ticks.saturating_sub(last.ticks) as f64 / self.hz / wall,
                    throttled_periods: periods,
                    throttled_s: seconds,
                },
                throttled.is_some(),
            );
        }
        self.last = Some(ServerCpuReading {
            at: now,
            ticks,
            throttled,
        });
    }

    /// The seconds the server was at its CPU so far (None: none).
    pub fn verdict(&self) -> Option<ServerCpu> {
        self.seconds.verdict()
    }

    /// Counts `row` if its connects slowed or fell short of the rate (a
    /// request run's target is of requests: its connects only slow).
    pub fn judge(&mut self, row: &SecondRow) {
        let before = self.shortfall.seconds;
        let connect_target = match row.requests {
            Some(_) => 0.0,
            None => row.target_rate_per_s,
        };
        self.shortfall
            .add(connect_target, row.establish_rate_per_s, row.connect.p90);
        if before == 0 && self.shortfall.seconds > 0 {
            self.first_short = Some((row.elapsed_s as f64, row.attempted, row.active));
        }
    }

    /// The slow or short seconds so far (None: none).
    pub fn shortfall(&self) -> Option<CpuShortfall> {
        (self.shortfall.seconds > 0).then_some(self.shortfall)
    }

    /// When CPU is the only thing that held the run back: no other first
    /// limit, the server at its CPU, and connects slowed or short for
    /// [`SHORT_SECONDS`] or more: the `server_cpu` first limit's event.
    pub fn first_limit(&self, target: &str) -> Option<FailureEvent> {
        self.verdict()?;
        let (elapsed_s, attempted, active) = self.first_short?;
        (self.shortfall.seconds >= SHORT_SECONDS).then(|| FailureEvent {
            kind: LimitKind::ServerCpu,
            syscall: Syscall::Connect,
            errno: None,
            attempt: attempted.max(1),
            elapsed_s,
            active,
            source: String::new(),
            target: target.to_string(),
            peer_close: None,
            age_ms: None,
            server_bytes: None,
            syn_retransmits: None,
        })
    }
}

/// The request rate a request run asks for, as its workers pace it: the
/// scenario's rate profile from the moment the pool is open (each worker
/// starts its requests once its share of the pool is), scaled and paused
/// with the schedule, until the run's end; 0 in a closed loop (`--rate
/// 0`). The pool's own opening is unpaced: the engine's target is 0.
pub struct RequestTarget {
    pace: Pace,
    /// Elapsed time at the first tick that saw the whole pool open: where
    /// the profile starts (at most a tick after the workers' own start).
    from: Option<Duration>,
}

impl RequestTarget {
    /// None for a run without requests.
    pub fn of(scenario: &Scenario) -> Option<RequestTarget> {
        scenario.requests.as_ref().map(|_| RequestTarget {
            pace: scenario.pace,
            from: None,
        })
    }

    /// The rate asked at `at` (`elapsed` into the run): `phase` as the
    /// tick loop sees it (opening while any connect is unresolved),
    /// `schedule` the pacers'.
    pub fn rate(
        &mut self,
        elapsed: Duration,
        at: tokio::time::Instant,
        phase: Phase,
        schedule: Schedule,
    ) -> f64 {
        match phase {
            // A reconnect in flight later on is not the pool's opening.
            Phase::Opening if self.from.is_none() => return 0.0,
            Phase::Draining | Phase::Done => return 0.0,
            Phase::Opening | Phase::Holding => {}
        }
        let from = *self.from.get_or_insert(elapsed);
        if schedule.is_paused() {
            return 0.0;
        }
        let offset = schedule.offset_at(at).saturating_sub(from);
        rate_at(self.pace, offset) * schedule.factor()
    }
}

/// The host as it was when the first limit was seen: the evidence for it.
/// Read at the next tick (within [`TICK`]), before the run's own closes
/// change it (TIME_WAIT, queues).
pub struct HostAtLimit {
    pub state: host::HostState,
    pub target_local: bool,
    /// The target's listener queue, when the target is on this host.
    pub listener: Option<host::ListenerQueue>,
    /// The run's sockets by state then (handshaking or established), with
    /// the connections established so far.
    pub sockets: Option<Handshakes>,
}

impl HostAtLimit {
    /// `target`: the first limit's; `targets`: the run's; `established`
    /// and `held`: connections established so far and held now.
    pub fn read(
        target: &str,
        targets: &[SocketAddr],
        (established, held): (u64, u64),
    ) -> HostAtLimit {
        let target: Option<SocketAddr> = target.parse().ok();
        let target_local = target.is_some_and(host::is_local_target);
        HostAtLimit {
            state: host::probe(),
            target_local,
            listener: target
                .filter(|_| target_local)
                .and_then(host::listener_queue),
            sockets: host::socket_states_to(targets, held).map(|states| Handshakes {
                states,
                established,
            }),
        }
    }
}

/// What the tick loop leaves behind.
pub struct Driven {
    pub last: Snapshot,
    pub host_at_limit: Option<HostAtLimit>,
    /// Why the host-room guard stopped the run, if it did.
    pub host_room_stop: Option<String>,
}

/// The coordinator's runtime with its SIGINT and SIGTERM handlers.
pub struct Ticker {
    runtime: tokio::runtime::Runtime,
    interrupt: Signal,
    terminate: Signal,
}

impl Ticker {
    pub fn new() -> std::io::Result<Ticker> {
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
pub fn drive(
    ticker: Ticker,
    engine: &Engine,
    run: &RunInfo<'_>,
    agg: &mut Aggregator,
    live: &mut Live,
    results: &mut ResultsDir,
    cpu: &mut CpuWatches,
) -> anyhow::Result<Driven> {
    let Ticker {
        runtime,
        mut interrupt,
        mut terminate,
    } = ticker;
    runtime.block_on(async {
        // On the run's grid of TICKs: worker threads here are read at the
        // grid point itself; worker processes (or agents) cut their
        // reports on the grid, and the tick waits TICK_GRACE (and a
        // fleet's round trip) for them to come in. Either way each tick
        // takes what was recorded up to its grid point, wherever it ran.
        let grace = match run.deaths {
            Some(_) => (run.report_lag + TICK_GRACE).min(TICK_GRACE_MAX),
            None => Duration::ZERO,
        };
        let mut tick =
            tokio::time::interval_at(clock::after(engine.start_instant(), TICK + grace), TICK);
        let mut host_at_limit: Option<HostAtLimit> = None;
        let mut first_limit: Option<FirstLimit> = None;
        let mut host_panel = HostPanel::default();
        let mut host_panel_at: Option<tokio::time::Instant> = None;
        let mut host_room_stop: Option<String> = None;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut request_target = RequestTarget::of(run.scenario);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = engine.finished() => {}
                _ = interrupt.recv() => on_signal(engine),
                _ = terminate.recv() => on_signal(engine),
            }
            let finished = engine.is_finished();
            engine.drain_into(agg);
            // As of the grid point this tick is for: the reports cut there
            // are in, the ones cut at the next are not. At the end every
            // report is in: as of now.
            let lag = if finished { Duration::ZERO } else { grace };
            let now = tokio::time::Instant::now();
            let grid_point = now.checked_sub(lag).unwrap_or(now);
            let elapsed = grid_point.saturating_duration_since(engine.start_instant());
            let utc_now = || utc_ago(lag);
            let phase = match engine.phase() {
                _ if finished => Phase::Done,
                // Every attempt started, but handshakes are still pending.
                Phase::Holding if agg.in_flight() > 0 => Phase::Opening,
                phase => phase,
            };
            let target = match request_target.as_mut() {
                Some(requests) => requests.rate(elapsed, grid_point, phase, engine.schedule()),
                None => engine.target_rate(grid_point),
            };
            let snapshot = agg.snapshot(elapsed, phase, target, utc_now, finished);
            // A failed write keeps the rows for the end: the run goes on.
            let rows = agg.take_rows();
            for row in &rows {
                cpu.generator.judge(row);
                if let Some(server) = cpu.server.as_mut() {
                    server.judge(row);
                }
            }
            results.append_rows(&rows);
            results.append_intervals(agg.take_intervals());
            if host_at_limit.is_none()
                && let Some(event) = &snapshot.total.first_limit
            {
                let at = HostAtLimit::read(
                    &event.target,
                    &run.scenario.targets,
                    (snapshot.total.established, snapshot.total.active()),
                );
                let facts = run.facts(&snapshot, Some(&at), cpu.server.as_ref());
                let mut explained = explain_first_limit(event, run.host_start, &at.state, &facts);
                coordinator::name_host(&mut explained, &run.hosts);
                first_limit = Some(explained);
                host_at_limit = Some(at);
            }
            if host_panel_at.is_none_or(|at| at.elapsed() >= HOST_PANEL_EVERY) {
                if let Some(cores) = cpu.generator.read() {
                    agg.set_driver_cpu(cores);
                }
                if let Some(watch) = cpu.server.as_mut() {
                    watch.read();
                } else if elapsed >= HOST_PANEL_EVERY
                    && let Some(target) = cpu.owner_of.take()
                {
                    cpu.server = host::listener_owner(target).and_then(ServerCpuWatch::new);
                }
                host_panel = read_host_panel(run);
                host_panel.generator = cpu.generator.verdict();
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
pub fn on_signal(engine: &Engine) {
    if engine.stop_reason() == Some(StopReason::Interrupted) {
        let _ = tui::restore_terminal();
        lab_session::cleanup_before_exit();
        eprintln!("ceiling: interrupted again: exiting without waiting for connections to close");
        std::process::exit(i32::from(super::EXIT_INTERRUPTED));
    }
    eprintln!(
        "ceiling: stopping: closing connections and writing results (Ctrl-C again to quit at once)"
    );
    engine.stop(StopReason::Interrupted);
}

/// The UTC time `ago` before now.
fn utc_ago(ago: Duration) -> String {
    let at = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or_else(SystemTime::now);
    humantime::format_rfc3339_millis(at).to_string()
}

/// The dashboard's host panel: fds, port range, sockets, listen drops.
pub fn read_host_panel(run: &RunInfo<'_>) -> HostPanel {
    let (fd_soft, fd_hard) = run.fd_limits;
    let now = host::read_panel();
    HostPanel {
        fds_in_use: now.open_fds,
        fd_soft,
        fd_hard,
        port_range: now.port_range,
        tcp_inuse: now.counters.get("sockstat.tcp_inuse").copied(),
        tcp_time_wait: now.counters.get("sockstat.tcp_tw").copied(),
        listen_drops_delta: run
            .listen_drops_at_start
            .zip(host::listen_drops_in(&now.counters))
            .map(|(start, now)| now.saturating_sub(start)),
        unread: now.unread,
        generator: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::units::RampSpec;
    use crate::stats::RequestRow;

    /// A second of the time series: (target, attempts/s) and, in request
    /// mode, requests sent/s; the generator at `cores`.
    fn second(target: f64, attempts: f64, sent: Option<f64>, cores: f64) -> SecondRow {
        SecondRow {
            elapsed_s: 1,
            utc: String::new(),
            attempted: 0,
            established: 0,
            failed: 0,
            active: 0,
            target_rate_per_s: target,
            attempt_rate_per_s: attempts,
            establish_rate_per_s: attempts,
            failures_by_kind: Default::default(),
            syn_retransmit_handshakes: 0,
            port_search_slow: 0,
            connect: Default::default(),
            driver_cpu_cores: Some(cores),
            requests: sent.map(|per_s| RequestRow {
                sent_per_s: per_s,
                ..RequestRow::default()
            }),
        }
    }

    #[test]
    fn a_request_runs_target_starts_with_the_open_pool_and_follows_the_schedule() {
        let now = tokio::time::Instant::now();
        let ramp = Pace::Ramp(RampSpec {
            from: 0.0,
            to: 100.0,
            over: Duration::from_secs(4),
        });
        let mut target = RequestTarget {
            pace: ramp,
            from: None,
        };
        let at = |secs: u64| Schedule::starting_at(now - Duration::from_secs(secs));
        // Nothing asked while the pool opens.
        assert_eq!(target.rate(Duration::ZERO, now, Phase::Opening, at(0)), 0.0);
        // The pool open at 1 s: the ramp starts there, 2 s into it at 3 s.
        let first = target.rate(Duration::from_secs(1), now, Phase::Holding, at(1));
        assert!(first < 0.1, "{first}");
        let later = target.rate(Duration::from_secs(3), now, Phase::Holding, at(3));
        assert!((later - 50.0).abs() < 0.1, "{later}");
        // A reconnect in flight is no new opening.
        let reconnecting = target.rate(Duration::from_secs(3), now, Phase::Opening, at(3));
        assert!((reconnecting - 50.0).abs() < 0.1, "{reconnecting}");
        // The dashboard's keys: twice the rate, paused; none once draining.
        let faster = at(3).rebased(now, 2.0, false);
        let doubled = target.rate(Duration::from_secs(3), now, Phase::Holding, faster);
        assert!((doubled - 100.0).abs() < 0.2, "{doubled}");
        let paused = at(3).rebased(now, 1.0, true);
        assert_eq!(
            target.rate(Duration::from_secs(3), now, Phase::Holding, paused),
            0.0
        );
        assert_eq!(
            target.rate(Duration::from_secs(3), now, Phase::Draining, at(3)),
            0.0
        );
        // A closed loop asks for no rate.
        let mut closed = RequestTarget {
            pace: Pace::Unlimited,
            from: None,
        };
        assert_eq!(
            closed.rate(Duration::from_secs(1), now, Phase::Holding, at(1)),
            0.0
        );
    }

    /// The first tick comes a few ms after the baseline: no reading is
    /// taken over that (one clock tick would be cores' worth), the
    /// baseline stays, and the next span long enough is read.
    #[test]
    fn a_cpu_reading_is_taken_over_half_a_second_at_least() {
        let mut watch = GeneratorWatch::new(Vec::new(), 1);
        let baseline = watch.last.expect("our own process reads");
        assert_eq!(watch.read(), None);
        assert_eq!(watch.last, Some(baseline));
        std::thread::sleep(CPU_READ_MIN);
        assert!(watch.read().is_some());
        assert!(watch.last.is_some_and(|(at, _)| at > baseline.0));
    }

    #[test]
    fn a_busy_generator_behind_the_request_rate_says_so_in_requests() {
        let mut watch = GeneratorWatch::new(Vec::new(), 1);
        let busy = watch.available;
        // Requests sent on time, or a target of none: not behind.
        watch.judge(&second(10_000.0, 0.0, Some(9_500.0), busy));
        watch.judge(&second(0.0, 0.0, Some(100.0), busy));
        // The pool's connects are done (0/s), but the requests keep up:
        // attempts are not what a request run is judged by.
        watch.judge(&second(10_000.0, 0.0, Some(10_000.0), busy));
        assert!(watch.verdict().is_none());
        watch.judge(&second(10_000.0, 0.0, Some(8_000.0), busy));
        watch.judge(&second(10_000.0, 0.0, Some(8_200.0), busy));
        let verdict = watch.verdict().expect("two seconds behind");
        assert_eq!(verdict.seconds, 2);
        assert!((verdict.achieved_ratio - 0.81).abs() < 1e-9);
        assert!(
            verdict
                .message
                .contains("while it sent 8,100 requests/s of the 10,000/s asked (81%); add"),
            "{}",
            verdict.message
        );
        // A connection run's words are as they were.
        let mut watch = GeneratorWatch::new(Vec::new(), 1);
        let busy = watch.available;
        for _ in 0..2 {
            watch.judge(&second(1_000.0, 500.0, None, busy));
        }
        let message = watch.verdict().expect("behind").message;
        assert!(
            message.contains("while attempts ran at 50% of the target rate; add"),
            "{message}"
        );
    }

    #[test]
    fn a_request_runs_target_is_no_connect_shortfall_of_its_server() {
        let mut watch = ServerCpuWatch::new(std::process::id()).expect("our own process");
        // Requests asked, the pool's connects long done: not short.
        watch.judge(&second(500.0, 0.0, Some(500.0), 0.0));
        assert_eq!(watch.shortfall(), None);
        // A connection run establishing under its target is.
        watch.judge(&second(500.0, 100.0, None, 0.0));
        assert_eq!(watch.shortfall().map(|s| s.seconds), Some(1));
    }
}
