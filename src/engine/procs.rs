//! Worker processes: how a run goes past the per-process fd limit.
//!
//! The coordinator starts one child process of its own binary (`ceiling
//! worker`, hidden) per segment of the plan, each with its own fd table.
//! A relay thread in the coordinator stands for each child where a worker
//! thread would stand: it hands the child its [`WorkerSpec`] as the first
//! line on its stdin, forwards the coordinator's controls (stop, pause,
//! rate factor) as further lines, and merges the [`WorkerReport`]s the child
//! writes to its stdout (one JSON line per tick, a stats delta each) into
//! its recorder. The rest of the coordinator cannot tell the difference.
//!
//! A child that dies is recorded, not fatal: its held connections count as
//! lost with the worker (the kernel closed them), its attempts under way as
//! connect failures, its unstarted ones as never attempted, and the death
//! itself as a [`WorkerDeath`]. A SIGKILL while the
//! workers' memory cgroup counted an OOM kill is `kernel_memory`: with a
//! memory cgroup, that is how the kernel's memory limit shows (no ENOMEM is
//! returned to a socket call).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, Lines,
};
use tokio::process::Command;

use super::plan::Segment;
use super::rate::Schedule;
use super::rate::WireSchedule;
use super::{Engine, Settings, Shared, StopReason, clock};
use crate::classify::{self, AttemptContext};
use crate::model::{FailureEvent, Syscall, WorkerDeath, signal_name};
use crate::scenario::units::PortRange;
use crate::stats::wire::WireDelta;
use crate::stats::{Delta, OwnLatency};

/// Bytes of a dead worker's stderr kept for its death record.
const STDERR_TAIL: usize = 2048;

/// Everything a worker process needs: the first line on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub worker: usize,
    pub workers: usize,
    pub sources: Vec<IpAddr>,
    pub targets: Vec<SocketAddr>,
    pub source_ports: Option<PortRange>,
    pub connections: u64,
    pub segment: Segment,
    pub settings: Settings,
    pub threads: usize,
    pub target_local: Vec<bool>,
    pub listen_drops_at_start: Option<u64>,
    /// When the run started, on the host's monotonic clock
    /// ([`clock::monotonic_ns`]): a worker process on this host starts its
    /// engine at the same instant, to the µs, however long it took to
    /// start (agents on other hosts start at the time they are sent).
    pub start_monotonic_ns: u64,
    pub schedule: WireSchedule,
    pub stop: Option<StopReason>,
}

/// The coordinator's word to a worker process, after the spec.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ControlLine {
    pub stop: Option<StopReason>,
    pub schedule: WireSchedule,
}

/// A worker process's tick: what it recorded since the last one and where
/// it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerReport {
    pub delta: WireDelta,
    /// Connections it holds now.
    pub active: u64,
    /// Still starting attempts.
    pub opening: bool,
    /// The last report: every one of its workers has finished.
    pub finished: bool,
}

/// The workers' memory cgroup, as far as the relays need it.
pub trait WorkerCgroup: Send + Sync {
    /// Moves a worker process into the cgroup.
    fn adopt(&self, pid: u32) -> io::Result<()>;
    /// OOM kills the cgroup has counted so far.
    fn oom_kills(&self) -> Option<u64>;
    fn limit_bytes(&self) -> Option<u64>;
}

/// How the relays start worker processes, and what they leave behind.
pub struct Launcher {
    /// The ceiling binary.
    pub exe: PathBuf,
    pub threads_per_process: usize,
    pub memory: Option<Arc<dyn WorkerCgroup>>,
    /// Deaths recorded so far.
    pub deaths: Mutex<Vec<WorkerDeath>>,
}

impl Launcher {
    pub fn new(threads_per_process: usize) -> io::Result<Launcher> {
        Ok(Launcher {
            exe: std::env::current_exe()?,
            threads_per_process: threads_per_process.max(1),
            memory: None,
            deaths: Mutex::new(Vec::new()),
        })
    }

    pub fn deaths(&self) -> Vec<WorkerDeath> {
        self.deaths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Runs worker process `k` of `n` (of `segment`) to its end, relaying its
/// reports into `recorder` and the coordinator's controls to it.
pub fn relay(
    shared: Arc<Shared>,
    k: usize,
    n: usize,
    segment: Segment,
    launcher: &Launcher,
    recorder: Arc<Mutex<Delta>>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let peer = Peer {
        k,
        n,
        segment: segment.split(k as u64, n as u64),
        label: format!("worker process {k}"),
        host: None,
        memory: launcher.memory.as_deref(),
        deaths: &launcher.deaths,
    };
    let mut relay = Relay::new(&shared, peer, recorder);
    let ended = match runtime {
        Ok(runtime) => runtime.block_on(run_child(&mut relay, launcher)),
        Err(e) => Ended::Died(Death::without_pid(format!("cannot start its relay: {e}"))),
    };
    relay.finish(ended);
}

/// Starts the child, converses with it over its pipes, and says how it
/// ended.
async fn run_child(relay: &mut Relay<'_>, launcher: &Launcher) -> Ended {
    let mut command = Command::new(&launcher.exe);
    command
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the terminal reaches the
        // coordinator only, which stops the workers in order.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::Died(Death::without_pid(format!("could not start: {e}"))),
    };
    let pid = child.id();
    if let (Some(memory), Some(pid)) = (&launcher.memory, pid)
        && let Err(e) = memory.adopt(pid)
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Ended::Died(Death::without_pid(format!(
            "could not join the memory cgroup: {e}"
        )));
    }
    let stderr = child.stderr.take().map(|mut stderr| {
        tokio::spawn(async move {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all).await;
            let tail = &all[all.len().saturating_sub(STDERR_TAIL)..];
            String::from_utf8_lossy(tail).trim_end().to_string()
        })
    });
    let conversed = match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => {
            let spec = serde_json::to_string(&relay.spec(launcher.threads_per_process))
                .expect("a spec serializes");
            relay
                .converse(
                    Some(spec),
                    BufReader::new(stdout).lines(),
                    stdin,
                    Link::PIPES,
                )
                .await
        }
        _ => Conversed {
            finished: false,
            broken: Some("its pipes were not set up".into()),
        },
    };
    if conversed.broken.is_some() {
        let _ = child.start_kill();
    }
    let status = child.wait().await;
    let stderr_tail = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    match status {
        Ok(status) if status.success() && conversed.finished && conversed.broken.is_none() => {
            Ended::Clean
        }
        status => {
            let (how, signal, exit_code) = match &status {
                Ok(status) => describe(*status),
                Err(e) => (format!("could not be waited for: {e}"), None, None),
            };
            let how = match conversed.broken {
                Some(broken) => format!("{broken}; {how}"),
                None => how,
            };
            Ended::Died(Death {
                pid,
                how,
                signal,
                exit_code,
                stderr_tail,
            })
        }
    }
}

/// Who stands behind a relay: a worker process, or an agent on another
/// host (`crate::fleet`).
pub struct Peer<'a> {
    /// Its number among the relays, 0-based.
    pub k: usize,
    /// How many relays there are.
    pub n: usize,
    /// Its share of the plan.
    pub segment: Segment,
    /// How failure events name it: "worker process 3", "host 2 (node-7)".
    pub label: String,
    /// The host it ran on, for its death record (agents only).
    pub host: Option<String>,
    /// The memory cgroup it runs in, if any.
    pub memory: Option<&'a dyn WorkerCgroup>,
    /// Where its death is recorded.
    pub deaths: &'a Mutex<Vec<WorkerDeath>>,
}

/// Timing of the link a relay talks over.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Send the current control this often even when it did not change,
    /// so that the other side knows the coordinator is there.
    pub heartbeat: Option<Duration>,
    /// The other side is lost after this long without a line.
    pub silence: Option<Duration>,
}

impl Link {
    /// A child's pipes: their end is the child's end; no heartbeat.
    pub const PIPES: Link = Link {
        heartbeat: None,
        silence: None,
    };
}

/// How a conversation ended.
pub struct Conversed {
    /// The last report said every worker had finished.
    pub finished: bool,
    /// Why the relay gave up on the other side: a report it could not
    /// read, or silence past [`Link::silence`].
    pub broken: Option<String>,
}

/// How the worker behind a relay ended.
pub enum Ended {
    /// It finished its share and said so.
    Clean,
    Died(Death),
}

/// What is known of a worker's death.
pub struct Death {
    pub pid: Option<u32>,
    /// "killed by signal 9 (SIGKILL)", "connection lost: ...".
    pub how: String,
    pub signal: Option<i32>,
    pub exit_code: Option<i32>,
    pub stderr_tail: String,
}

impl Death {
    pub fn without_pid(how: String) -> Death {
        Death {
            pid: None,
            how,
            signal: None,
            exit_code: None,
            stderr_tail: String::new(),
        }
    }
}

/// What a relay saw of its worker, for a per-worker breakdown (the
/// fleet's per-host totals).
pub struct Tally {
    /// Every counter it reported, summed (no histograms).
    pub reported: Delta,
    /// Most connections it held at once itself.
    pub own_peak: u64,
    /// Its first limit, with its own held count.
    pub own_first_limit: Option<FailureEvent>,
    /// Its share of the plan.
    pub segment: Segment,
    /// Its own latencies, when they were kept ([`Relay::keeping_own_latency`]).
    pub latency: Option<OwnLatency>,
}

/// The coordinator's side of one worker's conversation: sends the spec and
/// the controls, merges the reports into the worker's recorder, and
/// settles the books when the worker is gone.
pub struct Relay<'a> {
    shared: &'a Arc<Shared>,
    peer: Peer<'a>,
    recorder: Arc<Mutex<Delta>>,
    /// The counters the worker reported, summed: what it held and had
    /// under way when it died.
    reported: Delta,
    /// The report being merged (emptied and reused for each).
    scratch: Delta,
    active: u64,
    own_peak: u64,
    own_first_limit: Option<FailureEvent>,
    /// Its own latencies, kept for a fleet's host (its own figures); a
    /// local worker process's would go unread.
    latency: Option<OwnLatency>,
    opening_done: bool,
    oom_kills_at_start: Option<u64>,
}

impl<'a> Relay<'a> {
    pub fn new(shared: &'a Arc<Shared>, peer: Peer<'a>, recorder: Arc<Mutex<Delta>>) -> Relay<'a> {
        let oom_kills_at_start = peer.memory.and_then(|m| m.oom_kills());
        Relay {
            shared,
            peer,
            recorder,
            reported: Delta::counters_only(shared.plan.sources.len()),
            scratch: Delta::new(shared.plan.sources.len()),
            active: 0,
            own_peak: 0,
            own_first_limit: None,
            latency: None,
            opening_done: false,
            oom_kills_at_start,
        }
    }

    /// Keeps the worker's own latencies apart too (a fleet's host).
    pub fn keeping_own_latency(mut self) -> Relay<'a> {
        self.latency = Some(OwnLatency::default());
        self
    }

    /// The spec of this relay's worker: its segment, the run's plan and
    /// settings, where the run is now. `threads`: worker threads it runs.
    pub fn spec(&self, threads: usize) -> WorkerSpec {
        let shared = self.shared;
        let control = *shared.control.borrow();
        WorkerSpec {
            worker: self.peer.k,
            workers: self.peer.n,
            sources: shared.plan.sources.clone(),
            targets: shared.plan.targets.clone(),
            source_ports: shared.plan.source_ports,
            connections: shared.plan.connections,
            segment: self.peer.segment,
            settings: shared.settings.clone(),
            threads,
            target_local: shared.target_local.clone(),
            listen_drops_at_start: shared.listen_drops_at_start,
            start_monotonic_ns: clock::instant_to_monotonic_ns(shared.start),
            schedule: control.schedule.to_wire(shared.start),
            stop: control.stop,
        }
    }

    /// Sends `first` (the spec, when the other side still needs it) and
    /// the controls, reads reports from `lines` until the other side's
    /// stream ends.
    pub async fn converse<R, W>(
        &mut self,
        first: Option<String>,
        mut lines: Lines<R>,
        mut writer: W,
        link: Link,
    ) -> Conversed
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut control = self.shared.control.subscribe();
        control.borrow_and_update();
        let mut open = match first {
            Some(first) => send_line(&mut writer, &first).await,
            None => true,
        };
        let mut finished = false;
        let mut heartbeat = link.heartbeat.map(|every| {
            let first = clock::after(tokio::time::Instant::now(), every);
            let mut heartbeat = tokio::time::interval_at(first, every);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            heartbeat
        });
        let silence = link.silence.unwrap_or(clock::NEVER);
        let mut heard = tokio::time::Instant::now();
        loop {
            let send = tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => {
                        heard = tokio::time::Instant::now();
                        match self.absorb(&line) {
                            Ok(done) => finished |= done,
                            Err(e) => return Conversed { finished, broken: Some(e) },
                        }
                        false
                    }
                    Ok(None) | Err(_) => return Conversed { finished, broken: None },
                },
                () = tokio::time::sleep_until(clock::after(heard, silence)), if !finished => {
                    return Conversed {
                        finished,
                        broken: Some(format!(
                            "nothing heard for {} s (the link or the host is down)",
                            silence.as_secs()
                        )),
                    };
                }
                changed = control.changed(), if open => {
                    if changed.is_err() {
                        open = false;
                        continue;
                    }
                    true
                }
                () = beat(&mut heartbeat), if open => true,
            };
            if send {
                let now = *control.borrow_and_update();
                let line = ControlLine {
                    stop: now.stop,
                    schedule: now.schedule.to_wire(self.shared.start),
                };
                let line = serde_json::to_string(&line).expect("a control line serializes");
                open = match link.silence {
                    // A link that went down can block a write: it counts as
                    // closed past the silence.
                    Some(silence) => tokio::time::timeout(silence, send_line(&mut writer, &line))
                        .await
                        .unwrap_or(false),
                    None => send_line(&mut writer, &line).await,
                };
            }
        }
    }

    /// Merges one report; returns whether it was the last.
    fn absorb(&mut self, line: &str) -> Result<bool, String> {
        let report: WorkerReport = serde_json::from_str(line)
            .map_err(|e| format!("unreadable report from {}: {e}", self.peer.label))?;
        let delta = &mut self.scratch;
        delta.reset();
        report.delta.merge_into(delta).map_err(|e| e.to_string())?;
        self.own_peak = self.own_peak.max(delta.peak_active).max(report.active);
        if let Some(latency) = &mut self.latency {
            latency.add(delta);
        }
        if let Some(event) = &delta.first_limit
            && self
                .own_first_limit
                .as_ref()
                .is_none_or(|first| event.elapsed_s < first.elapsed_s)
        {
            self.own_first_limit = Some(event.clone());
        }
        // A worker knows only its own active count; the run's at that
        // moment is its count plus what the others hold now.
        let others = self
            .shared
            .active
            .load(Ordering::Relaxed)
            .saturating_sub(self.active);
        if let Some(event) = &mut delta.first_limit {
            event.active += others;
        }
        for group in delta.groups.values_mut() {
            group.first.active += others;
        }
        // Its own peak (or what it holds now) plus what the others hold:
        // the run-wide figure its events were given.
        delta.peak_active = delta.peak_active.max(report.active) + others;
        self.reported.merge_counters(delta);
        self.recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(delta);
        if report.active >= self.active {
            self.shared
                .active
                .fetch_add(report.active - self.active, Ordering::Relaxed);
        } else {
            self.shared
                .active
                .fetch_sub(self.active - report.active, Ordering::Relaxed);
        }
        self.active = report.active;
        // A limit one worker hit stops them all, as it does threads.
        if self.shared.settings.stop_at_first_limit && delta.first_limit.is_some() {
            self.shared.stop(StopReason::FirstLimit);
        }
        if !report.opening {
            self.done_opening();
        }
        Ok(report.finished)
    }

    fn done_opening(&mut self) {
        if !self.opening_done {
            self.opening_done = true;
            self.shared.opening_workers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Settles the books after the worker is gone: a death is recorded
    /// (see [`Relay::record_death`]). Returns what it reported.
    pub fn finish(mut self, ended: Ended) -> Tally {
        self.done_opening();
        self.shared.active.fetch_sub(self.active, Ordering::Relaxed);
        if let Ended::Died(death) = ended {
            let death = self.death(death);
            self.record_death(death);
        }
        Tally {
            reported: self.reported,
            own_peak: self.own_peak,
            own_first_limit: self.own_first_limit,
            segment: self.peer.segment,
            latency: self.latency,
        }
    }

    fn death(&self, death: Death) -> WorkerDeath {
        let r = &self.reported;
        let share = self.peer.segment.len(self.shared.plan.connections);
        let memory = self.peer.memory;
        let oom_kills = memory.and_then(|m| m.oom_kills());
        WorkerDeath {
            worker: self.peer.k as u64,
            host: self.peer.host.clone(),
            pid: death.pid,
            how: death.how,
            signal: death.signal,
            exit_code: death.exit_code,
            at_elapsed_s: self.shared.start.elapsed().as_secs_f64(),
            held: r.active(),
            in_flight: r.in_flight(),
            not_attempted: share.saturating_sub(r.attempted),
            oom_kills: match (self.oom_kills_at_start, oom_kills) {
                (Some(before), Some(now)) => Some(now.saturating_sub(before)),
                _ => None,
            },
            memory_limit_bytes: memory.and_then(|m| m.limit_bytes()),
            stderr_tail: death.stderr_tail,
        }
    }

    /// Records the death: its held connections as lost with the worker, its
    /// attempts under way as connect failures, each of them a failure event
    /// like the death.
    fn record_death(&mut self, death: WorkerDeath) {
        let ctx = AttemptContext {
            oom_killed: death.signal == Some(libc::SIGKILL) && death.oom_kills.unwrap_or(0) > 0,
            ..AttemptContext::default()
        };
        let kind = classify::classify(Syscall::WorkerExit, None, &ctx);
        let segment = self.peer.segment;
        // The attempt it would have started next (1-based).
        let next = segment.attempt(
            self.reported
                .attempted
                .min(segment.len(self.shared.plan.connections).saturating_sub(1)),
        ) + 1;
        let event = FailureEvent {
            kind,
            syscall: Syscall::WorkerExit,
            errno: None,
            attempt: next,
            elapsed_s: death.at_elapsed_s,
            active: self.shared.active.load(Ordering::Relaxed) + death.held,
            source: self.peer.label.clone(),
            target: match death.pid {
                Some(pid) => format!("pid {pid}: {}", death.how),
                None => death.how.clone(),
            },
            peer_close: None,
            age_ms: None,
            server_bytes: None,
            syn_retransmits: None,
        };
        {
            let mut d = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
            // Its held connections: lost (the kernel closed them), not
            // closed by ceiling.
            for (counters, reported) in d.sources.iter_mut().zip(&self.reported.sources) {
                counters.closed += reported.in_use();
            }
            d.record_worker_loss(&event, death.held, death.in_flight);
            d.note_active(event.active);
            d.record_limit_seen(&event);
        }
        // Its own books agree with the run's: what it held is lost, what
        // it had under way failed.
        self.reported.lost_with_worker += death.held;
        self.reported.failed += death.in_flight;
        self.peer
            .deaths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(death);
        if kind.is_limit() && self.shared.settings.stop_at_first_limit {
            self.shared.stop(StopReason::FirstLimit);
        }
    }
}

/// How a worker's side of the conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// The coordinator went away (its stream ended, or nothing came past
    /// the silence): the run was stopped here.
    pub coordinator_lost: bool,
}

/// A control line the worker could not read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable control line from the coordinator: {0}")]
pub struct ControlUnreadable(#[from] serde_json::Error);

/// The worker's side of the conversation (a worker process on its stdio,
/// an agent on its connection): every `every` a [`WorkerReport`] of what
/// `engine` recorded since the last one, and the coordinator's controls
/// followed, until every worker thread has finished; `seen` is shown each
/// report's delta and held count. The coordinator gone
/// (its stream ended, or silent past `silence`) stops the run here.
pub async fn serve<R, W>(
    engine: &Engine,
    controls: &mut Lines<R>,
    writer: &mut W,
    every: Duration,
    silence: Option<Duration>,
    mut seen: impl FnMut(&Delta, u64),
) -> Result<Served, ControlUnreadable>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let start = engine.start_instant();
    let mut controls_open = true;
    let mut stop_reported = false;
    let mut coordinator_lost = false;
    // Reports are cut at whole multiples of `every` after the run's start,
    // the grid the coordinator's ticks follow a moment later: each report
    // lands in the interval it was recorded in, not the next one. A late
    // tick is skipped, not shifted, to stay on the grid.
    let mut tick = tokio::time::interval_at(clock::after(start, every), every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let silence = silence.unwrap_or(clock::NEVER);
    let mut heard = tokio::time::Instant::now();
    // What the workers recorded since the last report; emptied after each.
    let mut delta = Delta::new(engine.source_count());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = engine.finished() => {}
            _ = engine.stopped(), if !stop_reported => stop_reported = true,
            () = tokio::time::sleep_until(clock::after(heard, silence)), if controls_open => {
                controls_open = false;
                coordinator_lost = true;
                engine.stop(StopReason::Interrupted);
                continue;
            }
            line = controls.next_line(), if controls_open => {
                heard = tokio::time::Instant::now();
                match line {
                    Ok(Some(line)) => {
                        let control: ControlLine = serde_json::from_str(&line)?;
                        engine.set_schedule(Schedule::from_wire(start, control.schedule));
                        if let Some(reason) = control.stop {
                            engine.stop(reason);
                        }
                    }
                    // The coordinator is gone: close what we hold and end.
                    Ok(None) | Err(_) => {
                        controls_open = false;
                        coordinator_lost = true;
                        engine.stop(StopReason::Interrupted);
                    }
                }
                continue;
            }
        }
        let finished = engine.is_finished();
        engine.drain(|d| delta.merge(d));
        let report = WorkerReport {
            delta: WireDelta::from(&delta),
            active: engine.active(),
            opening: engine.is_opening(),
            finished,
        };
        seen(&delta, report.active);
        let line = serde_json::to_string(&report).expect("a report serializes");
        let sent = tokio::time::timeout(silence, send_line(writer, &line))
            .await
            .unwrap_or(false);
        if !sent {
            // Nobody is listening any more.
            coordinator_lost |= !finished;
            engine.stop(StopReason::Interrupted);
        }
        delta.reset();
        if finished {
            return Ok(Served { coordinator_lost });
        }
    }
}

/// "killed by signal 9 (SIGKILL)" or "exit status 1", with the numbers.
fn describe(status: ExitStatus) -> (String, Option<i32>, Option<i32>) {
    match (status.signal(), status.code()) {
        (Some(signal), _) => (
            format!(
                "killed by signal {signal} ({})",
                signal_name(signal).unwrap_or("?")
            ),
            Some(signal),
            None,
        ),
        (None, Some(0)) => (
            "exited (status 0) before its last report".into(),
            None,
            Some(0),
        ),
        (None, code) => (format!("exit status {}", code.unwrap_or(-1)), None, code),
    }
}

/// The next heartbeat; never without one.
async fn beat(heartbeat: &mut Option<tokio::time::Interval>) {
    match heartbeat {
        Some(heartbeat) => {
            heartbeat.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Writes one line; false once the pipe (or stream) is closed.
pub async fn send_line<W: AsyncWrite + Unpin>(writer: &mut W, line: &str) -> bool {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    writer.write_all(&bytes).await.is_ok() && writer.flush().await.is_ok()
}
