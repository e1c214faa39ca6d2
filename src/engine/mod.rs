//! The load engine: turns a plan into paced connection attempts on worker
//! threads, holds what is established, and closes it.
//!
//! - [`plan`]: (source IP, source port, target) of each attempt; segments.
//! - [`rate`]: when each attempt is meant to start; the pacer.
//! - [`clock`]: deadlines and scaled durations that saturate, never panic;
//!   small times after an epoch; instants across processes.
//! - [`due`]: deadlines of many connections as FIFO queues, no timer each.
//! - [`conn`]: socket(), bind(), connect(), the handshake wait, TCP_INFO.
//! - [`hold`]: idle or echo holding with read interest, in a task.
//! - [`holder`]: idle connections held outside tokio, one epoll set a worker.
//! - [`request`]: request mode: a worker's pool (its own epoll set, as the
//!   holder's), its queue and generator.
//! - [`worker`]: one thread, one runtime, one segment, one stats delta.
//! - [`procs`]: worker *processes* (past the per-process fd limit): a relay
//!   thread per child process stands where a worker thread would, so the
//!   coordinator sees the same deltas, phases and controls either way.
//!
//! The engine never talks to the UI or the sinks: the caller drains the
//! workers' deltas into a [`stats::Aggregator`] every tick.

pub mod clock;
pub mod conn;
pub mod due;
pub mod hold;
pub mod holder;
pub mod plan;
pub mod procs;
pub mod rate;
pub mod request;
pub mod worker;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::scenario::Pace;
use crate::scenario::units::{CloseMode, HoldMode};
use crate::stats::{self, Delta, Phase};
use hold::Echo;
use plan::{Plan, Segment};
use rate::Schedule;

/// What the workers do with a connection, apart from where it goes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub pace: Pace,
    pub hold: HoldMode,
    /// Hard bound of the run, from its start.
    pub duration: Option<Duration>,
    pub connect_timeout: Duration,
    /// Echo traffic; None holds idle.
    pub echo: Option<Echo>,
    pub close: CloseMode,
    pub stop_at_first_limit: bool,
    /// Set IP_BIND_ADDRESS_NO_PORT before bind(source IP, 0), so the port is
    /// picked at connect() per destination; false picks it at bind(), per
    /// source IP only (reproduces bind() EADDRINUSE).
    pub bind_address_no_port: bool,
    /// Most handshakes in flight at once, run-wide (each worker thread
    /// keeps its share); None: no cap on a paced run.
    pub max_in_flight: Option<u64>,
    /// Request mode: the pool's connections serve requests (`pace` then
    /// opens the pool, and `requests.pace` is the request rate).
    #[serde(default)]
    pub requests: Option<request::RequestSettings>,
}

/// Why a run stops before it ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopReason {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// `--stop-at-first-limit` and a limit was hit.
    FirstLimit,
    /// The host ran low on memory or files (see `classify::capacity`).
    HostRoom,
}

/// The coordinator's word to the workers: stop or not, and the schedule
/// (pause, rate factor) the pacers follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Control {
    pub stop: Option<StopReason>,
    pub schedule: Schedule,
}

/// Lowest and highest live rate factor (`+`/`-` in the dashboard).
const RATE_FACTOR_RANGE: (f64, f64) = (0.01, 100.0);

/// State the workers share; read-mostly.
pub struct Shared {
    pub plan: Plan,
    pub settings: Settings,
    pub start: Instant,
    /// Whether each target (indexed like `plan.targets`) is on this host,
    /// so this host's listen counters speak for it.
    pub target_local: Vec<bool>,
    /// ListenOverflows + ListenDrops when the run started.
    pub listen_drops_at_start: Option<u64>,
    control: watch::Sender<Control>,
    /// Connections held right now, all workers together (for evidence).
    active: AtomicU64,
    opening_workers: AtomicUsize,
    running_workers: AtomicUsize,
    /// Signalled by the last worker to finish, so the coordinator ends the
    /// run at once instead of at its next tick.
    finished: tokio::sync::Notify,
}

impl Shared {
    /// The instant the run must end by (far away without --duration).
    pub fn run_deadline(&self) -> Instant {
        clock::after(self.start, self.settings.duration.unwrap_or(clock::NEVER))
    }

    /// Asks every worker to stop (first reason wins).
    pub fn stop(&self, reason: StopReason) {
        self.control.send_if_modified(|control| {
            if control.stop.is_none() {
                control.stop = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// After a stop or the run's end: waits, at most [`OPENERS_WAIT`], until
    /// no worker thread of this process is still starting attempts. Each
    /// sees a stop at its next check; one that closed its connections first
    /// would free ports (or fds) for an attempt another still starts, and a
    /// run stopped at a limit would count a connection past that limit.
    pub fn wait_for_openers(&self) {
        let ended = self.control.borrow().stop.is_some() || Instant::now() >= self.run_deadline();
        let give_up = std::time::Instant::now() + OPENERS_WAIT;
        while ended
            && self.opening_workers.load(Ordering::SeqCst) > 0
            && std::time::Instant::now() < give_up
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The longest a stopped worker waits for the others to stop opening
/// before it closes its connections (a worker checks for a stop before
/// each attempt: they take microseconds).
const OPENERS_WAIT: Duration = Duration::from_secs(1);

/// A running engine.
pub struct Engine {
    shared: Arc<Shared>,
    recorders: Vec<Arc<Mutex<Delta>>>,
    threads: Vec<JoinHandle<()>>,
}

/// What an engine runs on besides its plan and settings.
pub struct Launch {
    /// The run's start: schedule time 0 and the `--duration` origin.
    pub start: Instant,
    /// Whether each target (indexed like `plan.targets`) is on this host.
    pub target_local: Vec<bool>,
    /// ListenOverflows + ListenDrops when the run started.
    pub listen_drops_at_start: Option<u64>,
}

/// What one worker thread runs: a worker, or the relay of a worker process
/// (or of an agent).
pub type WorkerBody = Box<dyn FnOnce(Arc<Shared>, Arc<Mutex<Delta>>) + Send>;

/// One worker thread's end: the last one to end tells the coordinator.
struct WorkerFinished(Arc<Shared>);

impl Drop for WorkerFinished {
    fn drop(&mut self) {
        if self.0.running_workers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.finished.notify_one();
        }
    }
}

impl Engine {
    /// Starts `threads` worker threads, each on its own part of `segment`.
    pub fn start(
        plan: Plan,
        settings: Settings,
        segment: Segment,
        threads: usize,
        launch: Launch,
    ) -> std::io::Result<Engine> {
        let threads = threads.max(1) as u64;
        // Every runtime (an epoll fd and an eventfd each) before any worker
        // opens a connection: a worker that starts late would otherwise
        // find the fd table already full (--fd-limit) and could not run.
        let bodies = (0..threads)
            .map(|k| {
                let runtime = worker::runtime()?;
                let part = segment.split(k, threads);
                Ok(
                    Box::new(move |shared, recorder| worker::run(runtime, shared, part, recorder))
                        as WorkerBody,
                )
            })
            .collect::<std::io::Result<_>>()?;
        Engine::launch(plan, settings, bodies, launch)
    }

    /// Starts `processes` worker processes, each on its own part of
    /// `segment`, with a relay thread for each in this process.
    pub fn start_processes(
        plan: Plan,
        settings: Settings,
        segment: Segment,
        processes: usize,
        launcher: Arc<procs::Launcher>,
        launch: Launch,
    ) -> std::io::Result<Engine> {
        let processes = processes.max(1);
        let bodies = (0..processes)
            .map(|k| {
                let launcher = Arc::clone(&launcher);
                Box::new(move |shared, recorder| {
                    procs::relay(shared, k, processes, segment, &launcher, recorder)
                }) as WorkerBody
            })
            .collect();
        Engine::launch(plan, settings, bodies, launch)
    }

    /// Runs each of `bodies` on a thread of its own that counts as a
    /// worker: how a caller supplies workers that live elsewhere (the
    /// fleet's agents, each a [`procs::Relay`] over a connection).
    pub fn launch(
        plan: Plan,
        settings: Settings,
        bodies: Vec<WorkerBody>,
        launch: Launch,
    ) -> std::io::Result<Engine> {
        let n = bodies.len();
        let source_count = plan.sources.len();
        let Launch {
            start,
            target_local,
            listen_drops_at_start,
        } = launch;
        let (control, _) = watch::channel(Control {
            stop: None,
            schedule: Schedule::starting_at(start),
        });
        let shared = Arc::new(Shared {
            plan,
            settings,
            start,
            target_local,
            listen_drops_at_start,
            control,
            active: AtomicU64::new(0),
            opening_workers: AtomicUsize::new(n),
            running_workers: AtomicUsize::new(n),
            finished: tokio::sync::Notify::new(),
        });
        let recorders: Vec<_> = (0..n)
            .map(|_| Arc::new(Mutex::new(Delta::new(source_count))))
            .collect();
        let mut handles = Vec::with_capacity(n);
        for (k, (recorder, body)) in recorders.iter().zip(bodies).enumerate() {
            let (shared, recorder) = (Arc::clone(&shared), Arc::clone(recorder));
            handles.push(
                std::thread::Builder::new()
                    .name(format!("ceiling-worker-{k}"))
                    .spawn(move || {
                        // Counted out even if the body panics: the run
                        // must end, not wait for it forever.
                        let _finished = WorkerFinished(Arc::clone(&shared));
                        body(shared, recorder);
                    })?,
            );
        }
        Ok(Engine {
            shared,
            recorders,
            threads: handles,
        })
    }

    /// When the run started.
    pub fn start_instant(&self) -> Instant {
        self.shared.start
    }

    /// Sources of the plan (the length of a delta's per-source counters).
    pub fn source_count(&self) -> usize {
        self.shared.plan.sources.len()
    }

    /// Moves what every worker recorded since the last call into `agg`.
    pub fn drain_into(&self, agg: &mut stats::Aggregator) {
        self.drain(|delta| agg.absorb(delta));
    }

    /// Hands what every worker recorded since the last call to `take`, one
    /// worker's delta at a time.
    pub fn drain(&self, mut take: impl FnMut(&Delta)) {
        for recorder in &self.recorders {
            // Merged under the worker's lock and emptied in place: a fresh
            // delta each tick would allocate and zero four histograms
            // (~1 MB) per worker, ten times a second.
            let mut delta = recorder.lock().unwrap_or_else(|e| e.into_inner());
            take(&delta);
            delta.reset();
        }
    }

    /// Connections held now, all workers together.
    pub fn active(&self) -> u64 {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Whether some worker is still starting attempts.
    pub fn is_opening(&self) -> bool {
        self.shared.opening_workers.load(Ordering::SeqCst) > 0
    }

    /// Follows a schedule set elsewhere (a worker process follows its
    /// coordinator's).
    pub fn set_schedule(&self, schedule: Schedule) {
        self.shared
            .control
            .send_modify(|control| control.schedule = schedule);
    }

    /// Asks the workers to stop opening and close what they hold.
    pub fn stop(&self, reason: StopReason) {
        self.shared.stop(reason);
    }

    /// Completes when the run has been told to stop (at once if it has).
    pub async fn stopped(&self) {
        let mut control = self.shared.control.subscribe();
        // The sender lives in `self.shared`, so this cannot fail.
        let _ = control.wait_for(|c| c.stop.is_some()).await;
    }

    /// Why the run was stopped, if it was.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.shared.control.borrow().stop
    }

    /// Pauses or resumes opening new connections (held ones stay).
    pub fn set_paused(&self, paused: bool) {
        self.reschedule(|s| (s.factor(), paused));
    }

    /// Multiplies the rate profile by `factor` from now on (clamped to
    /// 0.01..100).
    pub fn set_rate_factor(&self, factor: f64) {
        let factor = factor.clamp(RATE_FACTOR_RANGE.0, RATE_FACTOR_RANGE.1);
        self.reschedule(|s| (factor, s.is_paused()));
    }

    /// The schedule the pacers follow now (pause state, rate factor).
    pub fn schedule(&self) -> Schedule {
        self.shared.control.borrow().schedule
    }

    fn reschedule(&self, change: impl FnOnce(&Schedule) -> (f64, bool)) {
        self.shared.control.send_modify(|control| {
            let (factor, paused) = change(&control.schedule);
            control.schedule = control.schedule.rebased(Instant::now(), factor, paused);
        });
    }

    /// Every worker has finished.
    pub fn is_finished(&self) -> bool {
        self.shared.running_workers.load(Ordering::SeqCst) == 0
    }

    /// Completes when every worker has finished (at once if they have).
    pub async fn finished(&self) {
        while !self.is_finished() {
            self.shared.finished.notified().await;
        }
    }

    pub fn phase(&self) -> Phase {
        if self.is_finished() {
            Phase::Done
        } else if self.stop_reason().is_some() || Instant::now() >= self.shared.run_deadline() {
            Phase::Draining
        } else if self.shared.opening_workers.load(Ordering::SeqCst) > 0 {
            Phase::Opening
        } else {
            Phase::Holding
        }
    }

    /// The connect rate asked for at `at` (0 once every attempt started).
    pub fn target_rate(&self, at: Instant) -> f64 {
        if self.shared.opening_workers.load(Ordering::SeqCst) == 0 {
            return 0.0;
        }
        let schedule = self.schedule();
        if schedule.is_paused() {
            return 0.0;
        }
        let offset = schedule.offset_at(at);
        rate::rate_at(self.shared.settings.pace, offset) * schedule.factor()
    }

    /// Waits for every worker thread to end; returns a line for each that
    /// panicked (its name and message). Its connections were closed as it
    /// unwound, and what it recorded in its last moments may be missing.
    pub fn join(self) -> Vec<String> {
        let mut panics = Vec::new();
        for handle in self.threads {
            let name = handle.thread().name().unwrap_or("worker").to_string();
            if let Err(payload) = handle.join() {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(no message)");
                panics.push(format!(
                    "worker thread {name} panicked: {message}; its connections were closed and \
                     its last results may be missing"
                ));
            }
        }
        panics
    }
}

#[cfg(test)]
impl Settings {
    /// One-second hold and connect timeout, FIN close, no pacing.
    pub(crate) fn for_tests() -> Settings {
        Settings {
            pace: Pace::Unlimited,
            hold: HoldMode::For(Duration::from_secs(1)),
            duration: None,
            connect_timeout: Duration::from_secs(1),
            echo: None,
            close: CloseMode::Fin,
            stop_at_first_limit: false,
            bind_address_no_port: true,
            max_in_flight: None,
            requests: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_names_each_thread_that_panicked_and_its_message() {
        let plan = Plan::new(vec![], vec!["127.0.0.1:9".parse().unwrap()], None, 1);
        let settings = Settings::for_tests();
        let bodies: Vec<WorkerBody> = vec![
            Box::new(|_, _| {}),
            Box::new(|_, _| panic!("a bug in worker 1")),
            Box::new(|_, _| panic!("{} in worker 2", "a formatted bug")),
        ];
        let launch = Launch {
            start: Instant::now(),
            target_local: vec![true],
            listen_drops_at_start: None,
        };
        let engine = Engine::launch(plan, settings, bodies, launch).unwrap();
        let panics = engine.join();
        assert_eq!(panics.len(), 2, "{panics:?}");
        assert!(
            panics[0].starts_with("worker thread ceiling-worker-1 panicked: a bug in worker 1;"),
            "{panics:?}"
        );
        assert!(
            panics[1].starts_with(
                "worker thread ceiling-worker-2 panicked: a formatted bug in worker 2;"
            ),
            "{panics:?}"
        );
    }
}
