//! A memory cgroup of the lab's own: created with a limit, processes added
//! by PID, OOM kills read back, removed on drop. cgroup v1 under
//! /sys/fs/cgroup/memory, v2 when /sys/fs/cgroup/cgroup.controllers exists.
//!
//! Only the lab's worker processes belong in it, never the whole ceiling
//! process (the coordinator must survive an OOM kill to report it).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::engine::procs::WorkerCgroup;

const V2_ROOT: &str = "/sys/fs/cgroup";
const V1_ROOT: &str = "/sys/fs/cgroup/memory";

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
    /// rmdir; its processes must have exited (the kernel may take a moment
    /// after the last one to let the directory go).
    fn drop(&mut self) {
        for _ in 0..100 {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        eprintln!(
            "ceiling: could not remove the cgroup {} (a process is still in it?): \
             rmdir it once its processes have exited",
            self.path.display()
        );
    }
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
    fn oom_kill_lines_of_v1_and_v2() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_oom_kill(v1), Some(3));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v2), Some(2));
        assert_eq!(parse_oom_kill("under_oom 0\n"), None);
    }
}
