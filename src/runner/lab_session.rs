//! `ceiling lab`'s session: the disposable network namespace, the memory
//! cgroup and the built-in server, set up for one run and undone when it
//! ends.
//!
//! Order matters: [`LabSession::start`] runs before any thread or runtime
//! exists (a namespace is per thread; the whole process moves), writes the
//! `[lab]` sysctls there, creates the memory cgroup if asked and starts the
//! built-in server as a child `ceiling serve` in the namespace. Guards undo
//! everything on every way out: the child is killed by PID (and by the
//! kernel, PR_SET_PDEATHSIG, if ceiling dies first), the cgroup is removed
//! (its worker processes killed first), and the anonymous namespace
//! disappears with the last process in it. A second Ctrl-C, which skips
//! destructors, calls [`cleanup_before_exit`]; a SIGKILLed lab's cgroup is
//! removed by the next lab ([`remove_stale_cgroups`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use super::target::{self, TargetServer};
use crate::UsageError;
use crate::classify::procfs::TaskFigures;
use crate::classify::{ServerPids, host};
use crate::engine::procs::WorkerCgroup;
use crate::lab::cgroup::{self, MemoryCgroup, ServerCgroups};
use crate::lab::{NetNamespace, SysctlWrite};
use crate::model::{LabCgroupReport, LabReport, LabServerFigures, LabServerReport, thousands};
use crate::scenario::Scenario;
use crate::scenario::lab::Lab;

/// The cgroups to remove if ceiling exits without unwinding (a second
/// Ctrl-C calls `exit`).
static CGROUPS_ON_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// How often the server's threads, memory and CPU are read (each of its
/// threads' status file, for the context switches: thousands at C10K).
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Removes the lab's cgroups now, their processes killed first: for exits
/// that skip destructors (a second Ctrl-C).
pub fn cleanup_before_exit() {
    if let Ok(mut paths) = CGROUPS_ON_EXIT.lock() {
        for path in paths.drain(..) {
            if let Err(e) = cgroup::remove(&path) {
                eprintln!("ceiling: {e}");
            }
        }
    }
}

/// Removes the cgroups that SIGKILLed `ceiling lab`s left behind, and says
/// so in one line.
pub fn remove_stale_cgroups() {
    let done = cgroup::remove_stale(None);
    let removed: Vec<String> = done
        .iter()
        .filter_map(|s| match s {
            cgroup::Stale::Removed(path) => Some(path.display().to_string()),
            cgroup::Stale::Kept(..) => None,
        })
        .collect();
    if !removed.is_empty() {
        eprintln!(
            "ceiling: removed {} lab cgroup(s) left by ceiling processes that are gone: {}",
            removed.len(),
            removed.join(", ")
        );
    }
    for stale in &done {
        if let cgroup::Stale::Kept(_, why) = stale {
            eprintln!("ceiling: {why}");
        }
    }
}

fn describe_sysctls(applied: &[(String, String)]) -> String {
    if applied.is_empty() {
        return String::new();
    }
    let list: Vec<String> = applied.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" with {}", list.join(", "))
}

/// Everything a lab run holds; dropping it undoes the lab (the sampler
/// stops, the server is killed, then its cgroups and the workers' are
/// removed).
pub struct LabSession {
    sampler: Sampler,
    namespace: NetNamespace,
    lab: Lab,
    server: TargetServer,
    cgroup: Option<Arc<MemoryCgroup>>,
    /// The server's pids and cpu cgroups (after `server`: it leaves them
    /// before they are removed).
    server_cgroups: Option<ServerCgroups>,
}

impl LabSession {
    /// Sets up the lab for `scenario` (validated, with `[lab]`): must be
    /// called before any thread exists.
    pub fn start(scenario: &Scenario) -> anyhow::Result<LabSession> {
        let lab = scenario.lab.clone().unwrap_or_default();
        if lab.memory_limit.is_some() && scenario.processes.is_none() {
            return Err(UsageError(
                "[lab] memory_limit limits ceiling's worker processes, and this scenario has none: \
                 add `processes = 2` (or any count) to the scenario, or --processes N"
                    .into(),
            )
            .into());
        }
        let writes: Vec<SysctlWrite> = lab
            .sysctls
            .iter()
            .map(|s| SysctlWrite {
                name: s.name.to_string(),
                value: s.value.clone(),
            })
            .collect();
        // No thread exists yet: the whole process moves.
        let namespace = NetNamespace::enter(&writes, lab.ehash_entries).map_err(|e| match e {
            crate::lab::LabError::Unshare(_) => anyhow::Error::new(UsageError(e.to_string())),
            e => anyhow::Error::new(e),
        })?;
        let cgroup = lab
            .memory_limit
            .map(|limit| {
                MemoryCgroup::create(limit).with_context(|| {
                    format!("cannot create a memory cgroup for memory_limit {limit}")
                })
            })
            .transpose()?;
        if let Some(cgroup) = &cgroup {
            on_exit(cgroup.path().to_path_buf());
            eprintln!(
                "ceiling: memory cgroup {} (limit {} bytes) for the worker processes; ceiling's own \
                 process stays outside it to report what happens inside",
                cgroup.path().display(),
                cgroup.limit_bytes()
            );
        }
        let server_cgroups = ServerCgroups::create(lab.server.threads_max, lab.server.cpu_millis)
            .context(
            "cannot create the lab server's cgroups (server_threads_max, server_cpus)",
        )?;
        let joins = server_cgroups
            .as_ref()
            .map(ServerCgroups::procs_files)
            .unwrap_or_default();
        for path in server_cgroups.iter().flat_map(ServerCgroups::paths) {
            on_exit(path.into());
        }
        let server_processes = target::processes_to_hold(scenario.connections)?;
        let server = TargetServer::start(&scenario.targets, &lab.server, server_processes, &joins)
            .context("cannot start the lab's built-in server")?;
        eprintln!(
            "ceiling: lab: new network namespace{}; built-in server (pid {}, {}{}) on {}",
            describe_sysctls(namespace.applied()),
            server.pid(),
            lab.server.model.as_str(),
            server_cgroups
                .as_ref()
                .map(describe_server_cgroups)
                .unwrap_or_default(),
            server.listen_text()
        );
        let sampler = Sampler::start(server.pid());
        Ok(LabSession {
            sampler,
            namespace,
            lab,
            server,
            cgroup: cgroup.map(Arc::new),
            server_cgroups,
        })
    }

    /// The memory cgroup worker processes go into, if the lab has one.
    pub fn worker_cgroup(&self) -> Option<Arc<dyn WorkerCgroup>> {
        self.cgroup
            .as_ref()
            .map(|c| Arc::clone(c) as Arc<dyn WorkerCgroup>)
    }

    /// The built-in server's PID (its processes are below it).
    pub fn server_pid(&self) -> u32 {
        self.server.pid()
    }

    /// The server's pids cgroup: its limit and the thread starts refused
    /// so far (the classifier names it).
    pub fn server_pids(&self) -> Option<ServerPids> {
        let cgroups = self.server_cgroups.as_ref()?;
        Some(ServerPids {
            max: cgroups.threads_max()?,
            refused: cgroups.pids_refused().unwrap_or(0),
        })
    }

    /// The lab's settings, and what its server did, for summary.json.
    /// `peak_active`: the run's peak, which the server held too.
    pub fn report(&self, peak_active: u64) -> LabReport {
        LabReport {
            namespace: "anonymous network namespace of this ceiling process (unshare \
                        CLONE_NEWNET), gone when it exits"
                .into(),
            sysctls: self.namespace.applied().iter().cloned().collect(),
            server: LabServerReport {
                listen: self
                    .server
                    .listen()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                backlog: self.lab.server.backlog,
                accept: self.lab.server.accept,
                mode: self.lab.server.mode.as_str().into(),
                pid: self.server.pid(),
                model: self.lab.server.model.as_str().into(),
                threads_max: self.lab.server.threads_max,
                cpus: self.lab.server.cpu_millis.map(|m| m as f64 / 1000.0),
                cgroups: self
                    .server_cgroups
                    .iter()
                    .flat_map(ServerCgroups::paths)
                    .collect(),
                figures: self
                    .sampler
                    .figures(peak_active, self.server_cgroups.as_ref()),
            },
            memory_cgroup: self.cgroup.as_ref().map(|c| LabCgroupReport {
                path: c.path().display().to_string(),
                limit_bytes: c.limit_bytes(),
                oom_kills: c.oom_kills(),
                members: c.members(),
            }),
        }
    }
}

impl Drop for LabSession {
    fn drop(&mut self) {
        // The guards (fields) undo the lab; nothing is left to remove at exit.
        CGROUPS_ON_EXIT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Remember `path` for [`cleanup_before_exit`].
fn on_exit(path: PathBuf) {
    CGROUPS_ON_EXIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path);
}

fn describe_server_cgroups(cgroups: &ServerCgroups) -> String {
    let mut parts = Vec::new();
    if let Some(max) = cgroups.threads_max() {
        parts.push(format!("pids.max {}", thousands(max)));
    }
    if let Some(millis) = cgroups.cpu_millis() {
        parts.push(format!("CPU quota {:.2} cores", millis as f64 / 1000.0));
    }
    format!(", {}", parts.join(", "))
}

/// What the sampler has seen of the server's process tree.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    first: Option<TaskFigures>,
    last: TaskFigures,
    peak_threads: u64,
    peak_rss_kib: u64,
}

/// Reads the server's threads, memory and CPU every [`SAMPLE_EVERY`] on a
/// thread of its own, keeping the peaks: a thread-per-connection server's
/// threads and memory are gone once the run closes its connections.
struct Sampler {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("lab-server-figures".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(now) = host::process_tree(pid) {
                            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                            seen.first.get_or_insert(now);
                            // Threads that exited take their switches
                            // with them: keep the most seen.
                            let switches = (
                                seen.last.voluntary_switches.max(now.voluntary_switches),
                                seen.last.involuntary_switches.max(now.involuntary_switches),
                            );
                            seen.last = now;
                            (seen.last.voluntary_switches, seen.last.involuntary_switches) =
                                switches;
                            seen.peak_threads = seen.peak_threads.max(now.threads);
                            seen.peak_rss_kib = seen.peak_rss_kib.max(now.rss_kib);
                        }
                        std::thread::sleep(SAMPLE_EVERY);
                    }
                })
                .ok()
        };
        Sampler { seen, stop, thread }
    }

    /// The server's figures over the run (None: never read).
    fn figures(
        &self,
        peak_active: u64,
        cgroups: Option<&ServerCgroups>,
    ) -> Option<LabServerFigures> {
        let seen = *self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let first = seen.first?;
        let hz = host::clock_ticks_per_s() as f64;
        let grown = seen.peak_rss_kib.saturating_sub(first.rss_kib) * 1024;
        let throttled = cgroups.and_then(ServerCgroups::throttled);
        Some(LabServerFigures {
            peak_threads: seen.peak_threads,
            rss_kib_at_start: first.rss_kib,
            peak_rss_kib: seen.peak_rss_kib,
            rss_bytes_per_connection: (peak_active > 0).then(|| grown / peak_active),
            cpu_user_s: seen.last.user_ticks as f64 / hz,
            cpu_system_s: seen.last.system_ticks as f64 / hz,
            voluntary_switches: seen.last.voluntary_switches,
            involuntary_switches: seen.last.involuntary_switches,
            pids_refused: cgroups.and_then(ServerCgroups::pids_refused),
            cpu_throttled_periods: throttled.map(|(periods, _)| periods),
            cpu_throttled_s: throttled.map(|(_, seconds)| seconds),
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
