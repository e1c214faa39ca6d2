//! The host's room for more connections: kernel memory (MemAvailable) and
//! the system-wide file table (fs.file-nr against fs.file-max).
//!
//! A run that holds hundreds of thousands of connections on this host can
//! take the whole machine down with it: each held connection pair costs
//! ~9.7 KB of kernel slab (OBSERVED-LIMITS.md) that no cgroup here limits,
//! and every socket is a file of the host-wide table. So a run is refused
//! when its estimate does not fit, and stopped when the room runs out anyway
//! (the estimate can be wrong: other processes, buffers with data).

use super::procfs;
use crate::model::thousands;

/// Kernel memory per held connection *socket* (half of the ~9.7 KB
/// measured per connection pair on this machine: TCP sock, inode, dentry,
/// file, epoll item).
pub const KERNEL_BYTES_PER_SOCKET: u64 = 4_850;

/// Share of MemAvailable / of the free file table a run may plan to use.
const PLAN_SHARE_PERCENT: u64 = 90;

/// A run is stopped when MemAvailable falls below this...
const MIN_AVAILABLE_BYTES: u64 = 512 << 20;
/// ...or below this share of MemTotal, whichever is larger.
const MIN_AVAILABLE_PERCENT: u64 = 3;
/// ...or when fewer than this share of fs.file-max is free.
const MIN_FREE_FILES_PERCENT: u64 = 1;

/// The host's memory and file table, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub mem_total: u64,
    pub mem_available: u64,
    pub files_allocated: u64,
    pub file_max: u64,
}

impl Room {
    /// Reads /proc/meminfo and /proc/sys/fs/file-nr; None when either is
    /// unreadable (then nothing is checked).
    pub fn read() -> Option<Room> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let (mem_total, mem_available) = procfs::parse_meminfo(&meminfo)?;
        let file_nr = std::fs::read_to_string("/proc/sys/fs/file-nr").ok()?;
        let (files_allocated, _, file_max) = procfs::parse_file_nr(&file_nr)?;
        Some(Room {
            mem_total,
            mem_available,
            files_allocated,
            file_max,
        })
    }

    fn free_files(&self) -> u64 {
        self.file_max.saturating_sub(self.files_allocated)
    }

    /// Checks that `sockets` more held sockets fit; the note says what was
    /// checked, the error why they do not fit and what to do.
    pub fn check_plan(&self, sockets: u64) -> Result<String, String> {
        let memory = sockets * KERNEL_BYTES_PER_SOCKET;
        let note = format!(
            "host room: {} sockets need ~{} of kernel memory (MemAvailable {}) and {} files \
             (fs.file-max {}, {} in use)",
            thousands(sockets),
            gib(memory),
            gib(self.mem_available),
            thousands(sockets),
            thousands(self.file_max),
            thousands(self.files_allocated)
        );
        if memory > self.mem_available / 100 * PLAN_SHARE_PERCENT {
            return Err(format!(
                "{note}: more than {PLAN_SHARE_PERCENT}% of MemAvailable, and the kernel's \
                 socket memory is not limited by any cgroup here: hold fewer connections \
                 (--connections), or free memory first"
            ));
        }
        if sockets > self.free_files() / 100 * PLAN_SHARE_PERCENT {
            return Err(format!(
                "{note}: more than {PLAN_SHARE_PERCENT}% of the free host-wide file table \
                 (fs.file-max is global, ceiling never raises it): hold fewer connections"
            ));
        }
        Ok(note)
    }

    /// Why a run must stop now to leave the host usable, if it must.
    pub fn exhausted(&self) -> Option<String> {
        let floor = MIN_AVAILABLE_BYTES.max(self.mem_total / 100 * MIN_AVAILABLE_PERCENT);
        if self.mem_available < floor {
            return Some(format!(
                "MemAvailable fell to {} (floor {}): stopped before the host runs out of memory",
                gib(self.mem_available),
                gib(floor)
            ));
        }
        let files_floor = self.file_max / 100 * MIN_FREE_FILES_PERCENT;
        if self.free_files() < files_floor {
            return Some(format!(
                "the host-wide file table is nearly full ({} of fs.file-max {}): stopped before \
                 the host runs out of files",
                thousands(self.files_allocated),
                thousands(self.file_max)
            ));
        }
        None
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(available_gib: u64, allocated: u64) -> Room {
        Room {
            mem_total: 24 << 30,
            mem_available: available_gib << 30,
            files_allocated: allocated,
            file_max: 2_466_177,
        }
    }

    #[test]
    fn a_million_pairs_fit_this_box_and_ten_million_do_not() {
        let note = room(22, 1_000).check_plan(2_000_000).unwrap();
        assert!(note.contains("9.0 GiB"), "{note}");
        let err = room(22, 1_000).check_plan(20_000_000).unwrap_err();
        assert!(
            err.contains("MemAvailable") && err.contains("--connections"),
            "{err}"
        );
    }

    #[test]
    fn the_file_table_binds_when_memory_does_not() {
        let err = room(200, 1_000_000).check_plan(1_500_000).unwrap_err();
        assert!(err.contains("file table"), "{err}");
    }

    #[test]
    fn a_run_stops_near_the_floor_not_before() {
        assert_eq!(room(22, 1_000).exhausted(), None);
        let low = Room {
            mem_available: 300 << 20,
            ..room(0, 1_000)
        };
        assert!(low.exhausted().unwrap().contains("MemAvailable"));
        let full = room(22, 2_460_000);
        assert!(full.exhausted().unwrap().contains("file table"));
    }
}
