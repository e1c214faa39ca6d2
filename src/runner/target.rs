//! The built-in target server as a child `ceiling serve` process: what
//! `ceiling run` starts when no target is given, and what `ceiling lab`
//! starts in its namespace.
//!
//! Why a child process and not a thread of ceiling: the two ends of every
//! connection would otherwise share one fd table (20,000 fds at most here,
//! so ~10,000 connections), an fd-limit run could not tell whose EMFILE it
//! sees, and a memory cgroup for the driver would include the server. As a
//! child it has its own fd table, raised to the hard limit whatever the
//! driver's `--fd-limit`, and runs as `serve --processes M` when the
//! connections need more than one process's fds.
//!
//! The child dies with ceiling: it is killed by PID on drop, and by the
//! kernel (PR_SET_PDEATHSIG) if ceiling dies first.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::classify::host;
use crate::scenario::lab::LabServer;
use crate::scenario::units::ServerModel;

/// How long the child server may take to print its `listening on` lines
/// (`serve --processes M` starts M processes first).
const SERVER_START: Duration = Duration::from_secs(10);

/// fds a server process keeps for itself (stdio, runtime, listeners,
/// /proc reads) beside its connections.
const FDS_KEPT_PER_PROCESS: u64 = 64;

/// Server processes needed to accept `connections` under SO_REUSEPORT:
/// the kernel spreads connections by hash, not evenly, so each process is
/// planned at 85% of its hard fd limit (a few standard deviations of room
/// at tens of thousands each).
pub fn processes_to_hold(connections: u64) -> anyhow::Result<u64> {
    let (_, hard) = host::nofile_limits().context("cannot read RLIMIT_NOFILE")?;
    let per_process = hard.saturating_sub(FDS_KEPT_PER_PROCESS).max(1) * 85 / 100;
    Ok(connections.div_ceil(per_process.max(1)).max(1))
}

/// `ceiling serve` as a child process; killed on drop.
pub struct TargetServer {
    child: Child,
    listen: Vec<SocketAddr>,
    processes: u64,
}

impl TargetServer {
    /// Starts `ceiling serve` on `listen` (port 0: a free port, one for all
    /// its processes) and waits for its `listening on` lines. With more
    /// than one process (`processes` or the config's own count, whichever
    /// is larger) it runs as `serve --processes`, so the server side too can
    /// hold more than one process's fd limit.
    ///
    /// `join`: `cgroup.procs` files of cgroups the server joins as it
    /// starts (the lab's pids and cpu cgroups), before it can spawn a thread
    /// or a process: what it starts inherits them.
    pub fn start(
        listen: &[SocketAddr],
        config: &LabServer,
        processes: u64,
        cgroups: &[PathBuf],
    ) -> anyhow::Result<TargetServer> {
        TargetServer::start_with(listen, config, processes, cgroups, &[])
    }

    /// [`TargetServer::start`] with more `serve` flags (`extra`).
    fn start_with(
        listen: &[SocketAddr],
        config: &LabServer,
        processes: u64,
        cgroups: &[PathBuf],
        extra: &[&str],
    ) -> anyhow::Result<TargetServer> {
        let exe = std::env::current_exe().context("cannot find ceiling's own executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve");
        for addr in listen {
            cmd.arg("--listen").arg(addr.to_string());
        }
        cmd.args(["--backlog", &config.backlog.to_string()]);
        // A request run's server answers its protocol instead.
        if !extra.contains(&"--mode") {
            cmd.args(["--mode", config.mode.as_str()]);
        }
        if !config.accept {
            cmd.arg("--no-accept");
        }
        if config.model != ServerModel::Async {
            cmd.args(["--model", config.model.as_str()]);
        }
        cmd.args(extra);
        // Opened here: between fork and exec only write(2) is left to do.
        let joins: Vec<std::fs::File> = cgroups
            .iter()
            .map(|path| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        let join_fds: Vec<i32> = joins.iter().map(AsRawFd::as_raw_fd).collect();
        let processes = processes.max(config.processes as u64).max(1);
        if processes > 1 {
            cmd.args(["--processes", &processes.to_string()]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe calls: write,
        // prctl, getrlimit, setrlimit.
        unsafe {
            cmd.pre_exec(move || {
                // "0": this process joins the cgroup.
                for &fd in &join_fds {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
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
        drop(joins);
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("serve-out".into())
            .spawn(move || {
                // Reads until the child exits, so its pipe never fills.
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            })?;
        let errors = std::thread::Builder::new()
            .name("serve-err".into())
            .spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })?;
        let mut server = TargetServer {
            child,
            listen: Vec::new(),
            processes,
        };
        let deadline = Instant::now() + SERVER_START;
        while server.listen.len() < listen.len() {
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
                        join(listen),
                        SERVER_START,
                        said.trim()
                    );
                }
            }
        }
        Ok(server)
    }

    /// The built-in target for a run without one: on a free loopback
    /// port, with as many server processes as `connections` held at once
    /// need.
    pub fn embedded(connections: u64) -> anyhow::Result<TargetServer> {
        let processes = processes_to_hold(connections)?;
        TargetServer::start(
            &[SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            &LabServer::default(),
            processes,
            &[],
        )
        .context("cannot start the built-in target server on 127.0.0.1")
    }

    /// The built-in target of a request run: answers `mode` (`serve
    /// --mode`) after `service_time` each.
    pub fn embedded_answering(
        connections: u64,
        mode: &str,
        service_time: &str,
    ) -> anyhow::Result<TargetServer> {
        let processes = processes_to_hold(connections)?;
        let mut extra = vec!["--mode", mode];
        if mode != "echo" {
            extra.extend(["--service-time", service_time]);
        }
        TargetServer::start_with(
            &[SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            &LabServer::default(),
            processes,
            &[],
            &extra,
        )
        .context("cannot start the built-in target server on 127.0.0.1")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The addresses it listens on, ports resolved.
    pub fn listen(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// Server processes (1: the child itself serves).
    pub fn processes(&self) -> u64 {
        self.processes
    }

    pub fn listen_text(&self) -> String {
        join(&self.listen)
    }

    fn kill(&mut self) {
        // By PID: our own child, still unreaped, so the PID is still its.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TargetServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
