//! `ceiling lab`: `ceiling run` inside a disposable network namespace.
//!
//! Order matters: the scenario is read and validated first (bad input exits
//! 2 before anything changes), then this process moves into a new network
//! namespace before any thread or runtime exists, writes the `[lab]`
//! sysctls there, creates the memory cgroup if asked, starts the built-in
//! server as a child `ceiling serve` in the namespace, and hands over to
//! [`run::execute`]. Guards undo everything on every way out: the child is
//! killed by PID (and by the kernel, PR_SET_PDEATHSIG, if ceiling dies
//! first), the cgroup is removed, and the anonymous namespace disappears
//! with the last process in it.
//!
//! Why the server is a child process and not a thread of ceiling: the two
//! ends of every connection would otherwise share one fd table (20,000 fds
//! at most here, so ~10,000 connections), the fd-limit scenario could not
//! tell whose EMFILE it sees, and the driver's memory cgroup would include
//! the server.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::UsageError;
use crate::cli::RunArgs;
use crate::cmd::run;
use crate::engine::procs::WorkerCgroup;
use crate::lab::cgroup::MemoryCgroup;
use crate::lab::{NetNamespace, SysctlWrite};
use crate::model::{LabCgroupReport, LabReport, LabServerReport};
use crate::scenario::lab::{Lab, LabServer};

/// How long the child server may take to print its `listening on` lines.
const SERVER_START: Duration = Duration::from_secs(5);

/// The cgroup to remove if ceiling exits without unwinding (a second
/// Ctrl-C calls `exit`).
static CGROUP_ON_EXIT: Mutex<Option<PathBuf>> = Mutex::new(None);

pub fn lab(args: RunArgs) -> anyhow::Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(UsageError(
            "ceiling lab needs root: it creates a network namespace and writes sysctls inside \
             it (never the host's); run it with sudo, or use `ceiling run` without [lab]"
                .into(),
        )
        .into());
    }
    let ui = args.ui;
    let out = args.out.clone();
    let scenario = run::build_scenario(args, true)?;
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
            MemoryCgroup::create(limit)
                .with_context(|| format!("cannot create a memory cgroup for memory_limit {limit}"))
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
    let server_processes = run::processes_to_hold(scenario.connections)?;
    let server = ChildServer::start(&scenario.targets, &lab.server, server_processes)
        .context("cannot start the lab's built-in server")?;
    eprintln!(
        "ceiling: lab: new network namespace{}; built-in server (pid {}) on {}",
        describe_sysctls(namespace.applied()),
        server.pid(),
        server.listen_text()
    );
    let session = Session {
        namespace,
        lab,
        server,
        cgroup: cgroup.map(Arc::new),
    };
    let code = run::execute(scenario, ui, out, Some(&session));
    drop(session);
    *CGROUP_ON_EXIT.lock().unwrap() = None;
    code
}

/// Removes the lab's cgroup now: for exits that skip destructors.
pub fn cleanup_before_exit() {
    if let Ok(mut slot) = CGROUP_ON_EXIT.lock()
        && let Some(path) = slot.take()
    {
        let _ = std::fs::remove_dir(path);
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
pub struct Session {
    namespace: NetNamespace,
    lab: Lab,
    server: ChildServer,
    cgroup: Option<Arc<MemoryCgroup>>,
}

impl Session {
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
                listen: self.server.listen.iter().map(ToString::to_string).collect(),
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

/// `ceiling serve` as a child process in the namespace; killed on drop.
struct ChildServer {
    child: Child,
    listen: Vec<SocketAddr>,
}

impl ChildServer {
    /// `processes` > 1: `serve --processes`, so the server side too can
    /// hold more than one process's fd limit.
    fn start(
        targets: &[SocketAddr],
        config: &LabServer,
        processes: u64,
    ) -> anyhow::Result<ChildServer> {
        let exe = std::env::current_exe().context("cannot find ceiling's own executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve");
        for target in targets {
            cmd.arg("--listen").arg(target.to_string());
        }
        cmd.args(["--backlog", &config.backlog.to_string()])
            .args(["--mode", config.mode.as_str()]);
        if !config.accept {
            cmd.arg("--no-accept");
        }
        // The scenario's server_processes, or more when the connections
        // need them.
        let processes = processes.max(config.processes as u64);
        if processes > 1 {
            cmd.args(["--processes", &processes.to_string()]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe calls: prctl,
        // getrlimit, setrlimit.
        unsafe {
            cmd.pre_exec(|| {
                // If ceiling dies without killing it, the kernel does.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The server's fds are its own: its soft limit goes to the
                // hard one, whatever the driver's --fd-limit.
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                    libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("cannot spawn `ceiling serve`")?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("lab-serve-out".into())
            .spawn(move || {
                // Reads until the child exits, so its pipe never fills.
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            })?;
        let errors = std::thread::Builder::new()
            .name("lab-serve-err".into())
            .spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })?;
        let mut server = ChildServer {
            child,
            listen: Vec::new(),
        };
        let deadline = Instant::now() + SERVER_START;
        while server.listen.len() < targets.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on ")
                        && let Ok(addr) = addr.trim().parse()
                    {
                        server.listen.push(addr);
                    }
                }
                Err(_) => {
                    server.kill();
                    let said = errors.join().unwrap_or_default();
                    anyhow::bail!(
                        "`ceiling serve` did not listen on {} within {:?}: {}",
                        targets
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        SERVER_START,
                        said.trim()
                    );
                }
            }
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn listen_text(&self) -> String {
        self.listen
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn kill(&mut self) {
        // By PID: our own child, still unreaped, so the PID is still its.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}
