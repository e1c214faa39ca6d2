//! What serving costs this process: threads and RSS from
//! /proc/self/status, context switches and CPU time from getrusage(2) —
//! the figures that put numbers on C10K.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The process's figures now; a field the system does not report is
/// `None` (no /proc) or zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFigures {
    /// `Threads:` in /proc/self/status.
    pub threads: Option<u64>,
    /// `VmRSS:` in /proc/self/status, in KiB.
    pub rss_kib: Option<u64>,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub user_cpu: Duration,
    pub system_cpu: Duration,
}

impl ProcessFigures {
    /// Reads /proc/self/status and getrusage(RUSAGE_SELF).
    pub fn now() -> ProcessFigures {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let mut figures = ProcessFigures {
            threads: status_field(&status, "Threads:"),
            rss_kib: status_field(&status, "VmRSS:"),
            ..ProcessFigures::default()
        };
        // SAFETY: getrusage writes one rusage into the zeroed struct we own.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            figures.voluntary_switches = u64::try_from(usage.ru_nvcsw).unwrap_or(0);
            figures.involuntary_switches = u64::try_from(usage.ru_nivcsw).unwrap_or(0);
            figures.user_cpu = timeval(usage.ru_utime);
            figures.system_cpu = timeval(usage.ru_stime);
        }
        figures
    }
}

/// The number after `name` in /proc/PID/status (`VmRSS:   1234 kB`).
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs).saturating_add(Duration::from_micros(u64::from(micros)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_found_by_name() {
        let status = "Name:\tceiling\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(status_field(status, "Threads:"), Some(3));
        assert_eq!(status_field(status, "VmRSS:"), Some(5120));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_threads_and_memory() {
        let figures = ProcessFigures::now();
        assert!(figures.threads.is_some_and(|n| n >= 1), "{figures:?}");
        assert!(figures.rss_kib.is_some_and(|kib| kib > 0), "{figures:?}");
    }
}
