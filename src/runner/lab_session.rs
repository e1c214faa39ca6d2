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
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::target::{self, TargetServer};
use crate::UsageError;
use crate::engine::procs::WorkerCgroup;
use crate::lab::cgroup::{self, MemoryCgroup};
use crate::lab::{NetNamespace, SysctlWrite};
use crate::model::{LabCgroupReport, LabReport, LabServerReport};
use crate::scenario::Scenario;
use crate::scenario::lab::Lab;

/// The cgroup to remove if ceiling exits without unwinding (a second
/// Ctrl-C calls `exit`).
static CGROUP_ON_EXIT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Removes the lab's cgroup now, its worker processes killed first: for
/// exits that skip destructors (a second Ctrl-C).
pub fn cleanup_before_exit() {
    if let Ok(mut slot) = CGROUP_ON_EXIT.lock()
        && let Some(path) = slot.take()
        && let Err(e) = cgroup::remove(&path)
    {
        eprintln!("ceiling: {e}");
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

/// Everything a lab run holds; dropping it undoes the lab (the server is
/// killed before the cgroup is removed).
pub struct LabSession {
    namespace: NetNamespace,
    lab: Lab,
    server: TargetServer,
    cgroup: Option<Arc<MemoryCgroup>>,
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
            *CGROUP_ON_EXIT.lock().unwrap() = Some(cgroup.path().to_path_buf());
            eprintln!(
                "ceiling: memory cgroup {} (limit {} bytes) for the worker processes; ceiling's own \
                 process stays outside it to report what happens inside",
                cgroup.path().display(),
                cgroup.limit_bytes()
            );
        }
        let server_processes = target::processes_to_hold(scenario.connections)?;
        let server = TargetServer::start(&scenario.targets, &lab.server, server_processes)
            .context("cannot start the lab's built-in server")?;
        eprintln!(
            "ceiling: lab: new network namespace{}; built-in server (pid {}) on {}",
            describe_sysctls(namespace.applied()),
            server.pid(),
            server.listen_text()
        );
        Ok(LabSession {
            namespace,
            lab,
            server,
            cgroup: cgroup.map(Arc::new),
        })
    }

    /// The memory cgroup worker processes go into, if the lab has one.
    pub fn worker_cgroup(&self) -> Option<Arc<dyn WorkerCgroup>> {
        self.cgroup
            .as_ref()
            .map(|c| Arc::clone(c) as Arc<dyn WorkerCgroup>)
    }

    /// The lab's settings for summary.json.
    pub fn report(&self) -> LabReport {
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
        *CGROUP_ON_EXIT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
