//! Helpers shared by the integration tests: the binary, a `serve` child
//! that is killed on drop, results directories, root/namespace checks.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn ceiling() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ceiling"))
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ceiling")
}

/// A `ceiling serve` child process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addrs: Vec<SocketAddr>,
}

impl Server {
    /// Starts `ceiling serve ARGS` and waits (5 s at most) for its
    /// `listening on` lines: one per `--listen` value expanded, at least one.
    pub fn start(args: &[&str]) -> Server {
        let mut child = ceiling()
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ceiling serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addrs = Vec::new();
        while let Ok(line) = rx.recv_timeout(if addrs.is_empty() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(300)
        }) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                addrs.push(addr.trim().parse().expect("listening line has an address"));
            }
        }
        assert!(
            !addrs.is_empty(),
            "ceiling serve did not print 'listening on' within 5 s"
        );
        Server { child, addrs }
    }

    pub fn addr(&self) -> String {
        self.addrs[0].to_string()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh temp dir and the results path inside it (not yet created).
pub fn out_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    (dir, out)
}

pub fn summary(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("summary.json"))
        .unwrap_or_else(|e| panic!("no summary.json in {}: {e}", out.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every file a finished (or stopped) run must leave.
pub fn assert_results_complete(out: &Path) {
    for file in [
        "summary.json",
        "timeseries.csv",
        "failures.csv",
        "sources.csv",
        "latency.csv",
        "connect.hgrm",
        "report.html",
    ] {
        assert!(
            out.join(file).is_file(),
            "{file} missing in {}",
            out.display()
        );
    }
}

/// Runs a command with a time bound; panics with its output if it does not
/// end in time.
pub fn run_bounded(mut cmd: Command, bound: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    let deadline = std::time::Instant::now() + bound;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "command did not finish within {bound:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether this process may create network namespaces. Outside root the
/// caller skips with a reason; under CI=true a skip is a failure.
pub fn require_netns(test: &str) -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Command::new("unshare")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success())
        && Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        let reason = format!(
            "{test}: skipped: needs root, unshare and ip (iproute2) to create a network namespace"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}; under CI=true a skip is a failure");
        }
        eprintln!("{reason}");
    }
    ok
}

/// Runs `script` with sh inside a fresh network namespace (lo up first).
/// `$CEILING` is the binary; the namespace dies with the shell.
pub fn in_netns(script: &str, bound: Duration) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-euc"])
        .arg(format!("ip link set lo up\n{script}"))
        .env("CEILING", bin());
    run_bounded(cmd, bound)
}

/// A pids cgroup (v1) of our own, removed on drop.
pub struct PidsCgroup {
    dir: std::path::PathBuf,
}

impl PidsCgroup {
    pub fn create(max: u32) -> std::io::Result<PidsCgroup> {
        // One per test: several may run at once in this process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::path::PathBuf::from(format!(
            "/sys/fs/cgroup/pids/ceiling-test-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir(&dir)?;
        let cgroup = PidsCgroup { dir };
        std::fs::write(cgroup.dir.join("pids.max"), max.to_string())?;
        Ok(cgroup)
    }

    pub fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("move into cgroup");
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Its processes have exited (the server is dropped first); the
        // kernel may take a moment to let the directory go.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}
