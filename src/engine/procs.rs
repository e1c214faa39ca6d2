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
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use super::plan::Segment;
use super::rate::WireSchedule;
use super::{Settings, Shared, StopReason};
use crate::classify::{self, AttemptContext};
use crate::model::{FailureEvent, Syscall, WorkerDeath, signal_name};
use crate::scenario::units::PortRange;
use crate::stats::Delta;
use crate::stats::wire::WireDelta;

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
    /// How long ago the run started, when the spec was written: the worker
    /// sets its own start that far back.
    pub started_ago: Duration,
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

/// Runs worker process `k` of `n` to its end, relaying its reports into
/// `recorder` and the coordinator's controls to it.
pub fn relay(
    shared: Arc<Shared>,
    k: usize,
    n: usize,
    launcher: &Launcher,
    recorder: Arc<Mutex<Delta>>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let mut relay = Relay::new(&shared, k, n, launcher, recorder);
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(relay.run()),
        Err(e) => Outcome::NotStarted(format!("cannot start its relay: {e}")),
    };
    relay.finish(outcome);
}

/// How a worker process ended, as far as the relay knows.
enum Outcome {
    NotStarted(String),
    Exited {
        pid: Option<u32>,
        status: io::Result<ExitStatus>,
        finished: bool,
        stderr_tail: String,
        /// A report the relay could not read (the child is then killed).
        garbled: Option<String>,
    },
}

struct Relay<'a> {
    shared: &'a Arc<Shared>,
    k: usize,
    n: usize,
    launcher: &'a Launcher,
    recorder: Arc<Mutex<Delta>>,
    /// The counters the child reported, summed: what it held and had under
    /// way when it died.
    reported: Delta,
    /// The report being merged (emptied and reused for each).
    scratch: Delta,
    active: u64,
    opening_done: bool,
    oom_kills_at_start: Option<u64>,
}

impl<'a> Relay<'a> {
    fn new(
        shared: &'a Arc<Shared>,
        k: usize,
        n: usize,
        launcher: &'a Launcher,
        recorder: Arc<Mutex<Delta>>,
    ) -> Relay<'a> {
        Relay {
            shared,
            k,
            n,
            launcher,
            recorder,
            reported: Delta::counters_only(shared.plan.sources.len()),
            scratch: Delta::new(shared.plan.sources.len()),
            active: 0,
            opening_done: false,
            oom_kills_at_start: launcher.memory.as_ref().and_then(|m| m.oom_kills()),
        }
    }

    fn segment(&self) -> Segment {
        self.shared.plan.segment(self.k as u64, self.n as u64)
    }

    fn spec(&self) -> WorkerSpec {
        let shared = self.shared;
        let control = *shared.control.borrow();
        WorkerSpec {
            worker: self.k,
            workers: self.n,
            sources: shared.plan.sources.clone(),
            targets: shared.plan.targets.clone(),
            source_ports: shared.plan.source_ports,
            connections: shared.plan.connections,
            segment: self.segment(),
            settings: shared.settings.clone(),
            threads: self.launcher.threads_per_process,
            target_local: shared.target_local.clone(),
            listen_drops_at_start: shared.listen_drops_at_start,
            started_ago: shared.start.elapsed(),
            schedule: control.schedule.to_wire(shared.start),
            stop: control.stop,
        }
    }

    async fn run(&mut self) -> Outcome {
        let mut command = Command::new(&self.launcher.exe);
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
            Err(e) => return Outcome::NotStarted(format!("could not start: {e}")),
        };
        let pid = child.id();
        if let (Some(memory), Some(pid)) = (&self.launcher.memory, pid)
            && let Err(e) = memory.adopt(pid)
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Outcome::NotStarted(format!("could not join the memory cgroup: {e}"));
        }
        let stderr = child.stderr.take().map(|mut stderr| {
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = stderr.read_to_end(&mut all).await;
                let tail = &all[all.len().saturating_sub(STDERR_TAIL)..];
                String::from_utf8_lossy(tail).trim_end().to_string()
            })
        });
        let (finished, garbled) = self.converse(&mut child).await;
        if garbled.is_some() {
            let _ = child.start_kill();
        }
        let status = child.wait().await;
        let stderr_tail = match stderr {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        Outcome::Exited {
            pid,
            status,
            finished,
            stderr_tail,
            garbled,
        }
    }

    /// Sends the spec and the controls, reads reports until the child's
    /// stdout ends. Returns whether its last report said it finished, and
    /// a report that could not be read.
    async fn converse(&mut self, child: &mut Child) -> (bool, Option<String>) {
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return (false, Some("its pipes were not set up".into()));
        };
        let mut control = self.shared.control.subscribe();
        control.borrow_and_update();
        let spec = serde_json::to_string(&self.spec()).expect("a spec serializes");
        let mut stdin_open = send_line(&mut stdin, &spec).await;
        let mut lines = BufReader::new(stdout).lines();
        let mut finished = false;
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => match self.absorb(&line) {
                        Ok(done) => finished |= done,
                        Err(e) => return (finished, Some(e)),
                    },
                    Ok(None) | Err(_) => return (finished, None),
                },
                changed = control.changed(), if stdin_open => {
                    if changed.is_err() {
                        stdin_open = false;
                        continue;
                    }
                    let now = *control.borrow_and_update();
                    let line = ControlLine {
                        stop: now.stop,
                        schedule: now.schedule.to_wire(self.shared.start),
                    };
                    let line = serde_json::to_string(&line).expect("a control line serializes");
                    stdin_open = send_line(&mut stdin, &line).await;
                }
            }
        }
    }

    /// Merges one report; returns whether it was the last.
    fn absorb(&mut self, line: &str) -> Result<bool, String> {
        let report: WorkerReport = serde_json::from_str(line)
            .map_err(|e| format!("unreadable report from worker {}: {e}", self.k))?;
        let delta = &mut self.scratch;
        delta.reset();
        report.delta.merge_into(delta).map_err(|e| e.to_string())?;
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

    /// Settles the books after the child is gone.
    fn finish(mut self, outcome: Outcome) {
        self.done_opening();
        self.shared.active.fetch_sub(self.active, Ordering::Relaxed);
        let death = match outcome {
            Outcome::Exited {
                status: Ok(status),
                finished: true,
                garbled: None,
                ..
            } if status.success() => return,
            Outcome::NotStarted(how) => self.death(None, how, None, None, String::new()),
            Outcome::Exited {
                pid,
                status,
                stderr_tail,
                garbled,
                ..
            } => {
                let (how, signal, code) = match &status {
                    Ok(status) => describe(*status),
                    Err(e) => (format!("could not be waited for: {e}"), None, None),
                };
                let how = match garbled {
                    Some(garbled) => format!("{garbled}; {how}"),
                    None => how,
                };
                self.death(pid, how, signal, code, stderr_tail)
            }
        };
        self.record_death(death);
    }

    fn death(
        &self,
        pid: Option<u32>,
        how: String,
        signal: Option<i32>,
        exit_code: Option<i32>,
        stderr_tail: String,
    ) -> WorkerDeath {
        let r = &self.reported;
        let share = self.segment().len(self.shared.plan.connections);
        let memory = self.launcher.memory.as_ref();
        let oom_kills = memory.and_then(|m| m.oom_kills());
        WorkerDeath {
            worker: self.k as u64,
            pid,
            how,
            signal,
            exit_code,
            at_elapsed_s: self.shared.start.elapsed().as_secs_f64(),
            held: r.active(),
            in_flight: r.in_flight(),
            not_attempted: share.saturating_sub(r.attempted),
            oom_kills: match (self.oom_kills_at_start, oom_kills) {
                (Some(before), Some(now)) => Some(now.saturating_sub(before)),
                _ => None,
            },
            memory_limit_bytes: memory.and_then(|m| m.limit_bytes()),
            stderr_tail,
        }
    }

    /// Records the death: its held connections as lost with the worker, its
    /// attempts under way as connect failures, each of them a failure event
    /// like the death.
    fn record_death(&self, death: WorkerDeath) {
        let ctx = AttemptContext {
            oom_killed: death.signal == Some(libc::SIGKILL) && death.oom_kills.unwrap_or(0) > 0,
            ..AttemptContext::default()
        };
        let kind = classify::classify(Syscall::WorkerExit, None, &ctx);
        let segment = self.segment();
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
            source: format!("worker process {}", self.k),
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
        self.launcher
            .deaths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(death);
        if kind.is_limit() && self.shared.settings.stop_at_first_limit {
            self.shared.stop(StopReason::FirstLimit);
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

/// Writes one line; false once the pipe is closed.
async fn send_line(stdin: &mut ChildStdin, line: &str) -> bool {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    stdin.write_all(&bytes).await.is_ok() && stdin.flush().await.is_ok()
}
