//! A memory cgroup of the lab's own: created with a limit, processes added
//! by PID, OOM kills read back, removed on drop. cgroup v1 under
//! /sys/fs/cgroup/memory, v2 when /sys/fs/cgroup/cgroup.controllers exists.
//!
//! Only the lab's worker processes belong in it, never the whole ceiling
//! process (the coordinator must survive an OOM kill to report it).
//!
//! Removal kills what is still in it first (its members are this run's
//! worker processes, and a cgroup with processes cannot be removed), on
//! every exit path that runs code: the guard's drop, and a second Ctrl-C
//! ([`remove`]). A ceiling that was SIGKILLed runs nothing: the next `ceiling
//! lab` removes such leftovers ([`remove_stale`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use std::time::Instant;

use crate::engine::procs::WorkerCgroup;

const V2_ROOT: &str = "/sys/fs/cgroup";
const V1_ROOT: &str = "/sys/fs/cgroup/memory";
const V1_PIDS_ROOT: &str = "/sys/fs/cgroup/pids";
const V1_CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
/// The CPU quota's period: the kernel's default, 100 ms.
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A memory cgroup this process created; `rmdir`ed on drop.
#[derive(Debug)]
pub struct MemoryCgroup {
    path: PathBuf,
    version: Version,
    limit_bytes: u64,
    /// PIDs put in it, for the summary.
    members: Mutex<Vec<u32>>,
}

impl MemoryCgroup {
    /// Creates `ceiling-lab-<pid>[-n]` with the memory limit `limit_bytes`
    /// (the kernel rounds it down to pages: [`Self::limit_bytes`] is the
    /// value read back).
    pub fn create(limit_bytes: u64) -> io::Result<MemoryCgroup> {
        let (root, version) = if Path::new(V2_ROOT).join("cgroup.controllers").exists() {
            let enabled =
                std::fs::read_to_string(Path::new(V2_ROOT).join("cgroup.subtree_control"))
                    .unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == "memory") {
                return Err(io::Error::other(format!(
                    "the memory controller is not enabled for children of {V2_ROOT} \
                     (cgroup.subtree_control: '{}'); ceiling does not change host-wide cgroup \
                     settings: enable it, or drop memory_limit",
                    enabled.trim()
                )));
            }
            (PathBuf::from(V2_ROOT), Version::V2)
        } else if Path::new(V1_ROOT).join("memory.limit_in_bytes").exists() {
            (PathBuf::from(V1_ROOT), Version::V1)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no memory cgroup controller at {V2_ROOT} (v2) or {V1_ROOT} (v1)"),
            ));
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = match n {
            0 => format!("ceiling-lab-{}", std::process::id()),
            n => format!("ceiling-lab-{}-{n}", std::process::id()),
        };
        let path = root.join(name);
        std::fs::create_dir(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", path.display())))?;
        // From here on, drop removes it.
        let mut cgroup = MemoryCgroup {
            path,
            version,
            limit_bytes,
            members: Mutex::new(Vec::new()),
        };
        let file = match version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        cgroup.write(file, &limit_bytes.to_string())?;
        if version == Version::V2 {
            // No swap either, so the limit is the limit.
            let _ = cgroup.write("memory.swap.max", "0");
        }
        cgroup.limit_bytes = cgroup
            .read(file)?
            .trim()
            .parse()
            .map_err(|e| io::Error::other(format!("{file}: {e}")))?;
        Ok(cgroup)
    }

    /// Moves the process `pid` into the cgroup.
    pub fn add(&self, pid: u32) -> io::Result<()> {
        self.write("cgroup.procs", &pid.to_string())?;
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pid);
        Ok(())
    }

    /// The PIDs put in it so far.
    pub fn members(&self) -> Vec<u32> {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Processes the cgroup's members have had OOM-killed: `oom_kill N` of
    /// memory.oom_control (v1) or memory.events (v2); None when this kernel
    /// does not count them.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        parse_oom_kill(&self.read(file).ok()?)
    }

    /// The limit as the kernel holds it (bytes).
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> Version {
        self.version
    }

    fn write(&self, file: &str, value: &str) -> io::Result<()> {
        let path = self.path.join(file);
        std::fs::write(&path, value)
            .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", path.display())))
    }

    fn read(&self, file: &str) -> io::Result<String> {
        std::fs::read_to_string(self.path.join(file))
    }
}

impl WorkerCgroup for MemoryCgroup {
    fn adopt(&self, pid: u32) -> io::Result<()> {
        self.add(pid)
    }

    fn oom_kills(&self) -> Option<u64> {
        MemoryCgroup::oom_kills(self)
    }

    fn limit_bytes(&self) -> Option<u64> {
        Some(self.limit_bytes)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        if let Err(e) = remove(&self.path) {
            eprintln!("ceiling: {e}");
        }
    }
}

/// How long removal waits for the kernel to let the directory go once
/// its processes are killed (they exit within milliseconds; the bound is
/// for a process stuck in the kernel).
const REMOVE_BOUND: Duration = Duration::from_secs(3);

/// Removes the cgroup at `path`: kills (SIGKILL, by PID) every process
/// still in it, waits for them to leave, then `rmdir`s it. Gone already is
/// fine.
pub fn remove(path: &Path) -> io::Result<()> {
    empty_and_rmdir(path, true)
}

/// Waits for the cgroup at `path` to have no processes (killing them if
/// `kill`), then `rmdir`s it, within [`REMOVE_BOUND`].
fn empty_and_rmdir(path: &Path, kill: bool) -> io::Result<()> {
    let deadline = Instant::now() + REMOVE_BOUND;
    loop {
        let members = read_members(path);
        if kill {
            for &pid in &members {
                // SAFETY: kill(2) has no memory preconditions; the PIDs are
                // the members of a cgroup this process created.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        if members.is_empty() {
            match std::fs::remove_dir(path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                // The kernel may take a moment after the last process.
                Err(_) => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "could not remove the cgroup {} within {REMOVE_BOUND:?} ({}): rmdir it once \
                 its processes have exited",
                path.display(),
                if members.is_empty() {
                    "no process left in it".to_string()
                } else {
                    format!("processes still in it: {members:?}")
                }
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// PIDs in the cgroup at `path` (none when it or its `cgroup.procs` is
/// gone).
fn read_members(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// What [`remove_stale`] did with one leftover cgroup.
#[derive(Debug, PartialEq, Eq)]
pub enum Stale {
    Removed(PathBuf),
    /// Its owner is gone but it could not be removed (processes in it).
    Kept(PathBuf, String),
}

/// Removes the `ceiling-lab-<pid>[-n]` cgroups under the memory controller
/// whose ceiling process is gone (a SIGKILLed `ceiling lab` runs no
/// cleanup). `root`: where to look; None: this host's memory controller.
/// A cgroup that still has processes is kept, and said so.
pub fn remove_stale(root: Option<&Path>) -> Vec<Stale> {
    let roots: Vec<PathBuf> = match root {
        Some(root) => vec![root.to_path_buf()],
        None => vec![
            PathBuf::from(V1_ROOT),
            PathBuf::from(V1_PIDS_ROOT),
            PathBuf::from(V1_CPU_ROOT),
            PathBuf::from(V2_ROOT),
        ],
    };
    let mut done = Vec::new();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name.to_str().and_then(owner_pid) else {
                continue;
            };
            if owner == std::process::id() || process_is_ceiling(owner) {
                continue;
            }
            let path = entry.path();
            match empty_and_rmdir(&path, false) {
                Ok(()) => done.push(Stale::Removed(path)),
                Err(e) => done.push(Stale::Kept(path, e.to_string())),
            }
        }
    }
    done
}

/// The PID in a `ceiling-lab-<pid>` or `ceiling-lab-<pid>-<n>` name.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("ceiling-lab-")?;
    let pid = rest.split('-').next()?;
    pid.parse().ok()
}

/// Whether `pid` is a live process named ceiling (a reused PID of another
/// program does not keep a leftover alive).
fn process_is_ceiling(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "ceiling")
}

/// The lab server's own cgroups: a pids limit (its threads) and a CPU
/// quota, as asked. On cgroup v1 one directory per controller, on v2 one
/// directory with both; named `ceiling-lab-<pid>-server`. The server joins
/// them as it starts, before it can fork or spawn ([`Self::procs_files`]);
/// removed on drop, its processes killed first.
#[derive(Debug)]
pub struct ServerCgroups {
    /// The pids cgroup's directory (v2: the one directory).
    pids: Option<PathBuf>,
    /// The cpu cgroup's directory (v2: the same one as `pids`).
    cpu: Option<PathBuf>,
    threads_max: Option<u64>,
    cpu_millis: Option<u64>,
}

impl ServerCgroups {
    /// Creates the cgroups for `threads_max` (pids.max) and `cpu_millis`
    /// (thousandths of a core); None when neither is asked.
    pub fn create(threads_max: Option<u64>, cpu_millis: Option<u64>) -> io::Result<Option<Self>> {
        if threads_max.is_none() && cpu_millis.is_none() {
            return Ok(None);
        }
        let name = format!("ceiling-lab-{}-server", std::process::id());
        let v2 = Path::new(V2_ROOT).join("cgroup.controllers").exists();
        let mut made = ServerCgroups {
            pids: None,
            cpu: None,
            threads_max,
            cpu_millis,
        };
        if v2 {
            let wanted: Vec<&str> = [threads_max.map(|_| "pids"), cpu_millis.map(|_| "cpu")]
                .into_iter()
                .flatten()
                .collect();
            let enabled =
                std::fs::read_to_string(Path::new(V2_ROOT).join("cgroup.subtree_control"))
                    .unwrap_or_default();
            if let Some(missing) = wanted
                .iter()
                .find(|c| !enabled.split_whitespace().any(|e| e == **c))
            {
                return Err(io::Error::other(format!(
                    "the {missing} controller is not enabled for children of {V2_ROOT}; \
                     ceiling does not change host-wide cgroup settings: enable it, or drop \
                     the [lab] setting that needs it"
                )));
            }
            let dir = mkdir(&Path::new(V2_ROOT).join(&name))?;
            made.pids = threads_max.map(|_| dir.clone());
            made.cpu = cpu_millis.map(|_| dir);
        } else {
            if threads_max.is_some() {
                made.pids = Some(mkdir(&Path::new(V1_PIDS_ROOT).join(&name))?);
            }
            if cpu_millis.is_some() {
                made.cpu = Some(mkdir(&Path::new(V1_CPU_ROOT).join(&name))?);
            }
        }
        // From here on, drop removes what was made.
        if let (Some(dir), Some(max)) = (&made.pids, threads_max) {
            write_file(&dir.join("pids.max"), &max.to_string())?;
        }
        if let (Some(dir), Some(millis)) = (&made.cpu, cpu_millis) {
            let quota = (millis * CPU_PERIOD_US / 1000).max(1000);
            if v2 {
                write_file(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
            } else {
                write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        Ok(Some(made))
    }

    /// The `cgroup.procs` files the server writes "0" to as it starts, to
    /// join every cgroup here (one on v2).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<&PathBuf> = self.pids.iter().chain(self.cpu.iter()).collect();
        dirs.dedup();
        dirs.into_iter().map(|d| d.join("cgroup.procs")).collect()
    }

    pub fn threads_max(&self) -> Option<u64> {
        self.threads_max
    }

    pub fn cpu_millis(&self) -> Option<u64> {
        self.cpu_millis
    }

    /// The directories, for the summary.
    pub fn paths(&self) -> Vec<String> {
        let mut dirs: Vec<&PathBuf> = self.pids.iter().chain(self.cpu.iter()).collect();
        dirs.dedup();
        dirs.into_iter().map(|d| d.display().to_string()).collect()
    }

    /// Forks or thread starts the pids limit refused: `max N` of
    /// pids.events (None: no pids cgroup, or not counted here).
    pub fn pids_refused(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.pids.as_ref()?.join("pids.events")).ok()?;
        text.lines().find_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next()? == "max")
                .then(|| parts.next()?.parse().ok())
                .flatten()
        })
    }

    /// The quota's throttling: (periods throttled, seconds throttled), from
    /// cpu.stat (None: no cpu cgroup).
    pub fn throttled(&self) -> Option<(u64, f64)> {
        let text = std::fs::read_to_string(self.cpu.as_ref()?.join("cpu.stat")).ok()?;
        crate::classify::procfs::parse_cpu_throttled(&text)
    }
}

impl Drop for ServerCgroups {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = self.pids.iter().chain(self.cpu.iter()).cloned().collect();
        dirs.dedup();
        for dir in dirs {
            if let Err(e) = remove(&dir) {
                eprintln!("ceiling: {e}");
            }
        }
    }
}

fn mkdir(path: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir(path)
        .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", path.display())))?;
    Ok(path.to_path_buf())
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("write {value} to {}: {e}", path.display()),
        )
    })
}

/// The `oom_kill N` line of memory.oom_control or memory.events.
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == "oom_kill")
            .then(|| parts.next()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_of_lab_cgroup_names() {
        assert_eq!(owner_pid("ceiling-lab-123"), Some(123));
        assert_eq!(owner_pid("ceiling-lab-123-2"), Some(123));
        assert_eq!(owner_pid("ceiling-test-123"), None);
        assert_eq!(owner_pid("ceiling-lab-x"), None);
    }

    /// A leftover of a process that is gone is removed; ours, another
    /// program's directory and a non-lab name are left alone.
    #[test]
    fn stale_lab_cgroups_of_gone_processes_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let stale = root.path().join(format!("ceiling-lab-{gone_pid}-3"));
        let ours = root
            .path()
            .join(format!("ceiling-lab-{}", std::process::id()));
        let other = root.path().join("ceiling-test-1");
        for dir in [&stale, &ours, &other] {
            std::fs::create_dir(dir).unwrap();
        }
        let done = remove_stale(Some(root.path()));
        assert_eq!(done, vec![Stale::Removed(stale.clone())]);
        assert!(!stale.exists());
        assert!(ours.exists() && other.exists());
    }

    #[test]
    fn oom_kill_lines_of_v1_and_v2() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_oom_kill(v1), Some(3));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v2), Some(2));
        assert_eq!(parse_oom_kill("under_oom 0\n"), None);
    }
}
