//! Whether the target's CPU held it back: from per-second readings of the
//! server's processes (CPU time used, its cgroup's throttling), the seconds
//! in which it was at its CPU quota or at every core it may use, and the
//! words the first limit's evidence and remedy use for it.
//!
//! Pure: the runner reads /proc and cpu.stat once a second (the thread that
//! already reads host counters) and hands the figures here.

use serde::Serialize;

/// A server at this share of the cores it may use is busy (as the
/// generator's own watch judges ceiling's CPU).
const BUSY: f64 = 0.85;

/// What a server process may use: its cgroup's CPU quota, if any, and the
/// CPUs it may run on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuAllowance {
    /// The cgroup's quota in cores (`cpu.max`, `cpu.cfs_quota_us`).
    pub quota_cores: Option<f64>,
    /// CPUs in its affinity mask.
    pub cpus: f64,
}

impl CpuAllowance {
    /// The cores it can use at most.
    pub fn cores(&self) -> f64 {
        self.quota_cores.map_or(self.cpus, |q| q.min(self.cpus))
    }
}

/// One second of a server's CPU: cores used, and how its cgroup's
/// throttling moved.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuSecond {
    pub cores_used: f64,
    pub throttled_periods: u64,
    pub throttled_s: f64,
}

/// The seconds a server was held by its CPU, over a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerCpuSeconds {
    allowance: CpuAllowance,
    seconds: u64,
    cores: f64,
    throttled_s: f64,
    throttle_read: bool,
}

impl ServerCpuSeconds {
    pub fn new(allowance: CpuAllowance) -> ServerCpuSeconds {
        ServerCpuSeconds {
            allowance,
            seconds: 0,
            cores: 0.0,
            throttled_s: 0.0,
            throttle_read: false,
        }
    }

    /// Counts `second` if the server was at its quota (its cgroup throttled
    /// it) or used nearly every core it may use.
    pub fn add(&mut self, second: CpuSecond, throttle_read: bool) {
        self.throttle_read |= throttle_read;
        self.throttled_s += second.throttled_s;
        let throttled = self.allowance.quota_cores.is_some() && second.throttled_periods > 0;
        if throttled || second.cores_used >= BUSY * self.allowance.cores() {
            self.seconds += 1;
            self.cores += second.cores_used;
        }
    }

    /// The verdict so far: None when the server never was at its CPU.
    pub fn verdict(&self) -> Option<ServerCpu> {
        (self.seconds > 0).then(|| ServerCpu {
            seconds: self.seconds,
            cores_used: self.cores / self.seconds as f64,
            quota_cores: self.allowance.quota_cores,
            cpus: self.allowance.cpus,
            throttled_s: self.throttle_read.then_some(self.throttled_s),
        })
    }
}

/// The target's processes were held by their CPU for `seconds` of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServerCpu {
    /// Seconds at the quota (throttled) or at nearly every core.
    pub seconds: u64,
    /// Cores used, on average over those seconds.
    pub cores_used: f64,
    pub quota_cores: Option<f64>,
    pub cpus: f64,
    /// Seconds its cgroup throttled it over the run (None: unreadable).
    pub throttled_s: Option<f64>,
}

impl ServerCpu {
    /// "the server process was at its CPU quota of 0.2 cores for 14 s
    /// (throttled 9.5 s)" or "... at 100% of the 2 cores it may use for
    /// 3 s (1.93 cores)".
    pub fn describe(&self) -> String {
        match self.quota_cores.filter(|&q| q < self.cpus) {
            Some(quota) => {
                let mut s = format!(
                    "the server process was at its CPU quota of {} cores for {} s",
                    cores(quota),
                    self.seconds
                );
                if let Some(t) = self.throttled_s.filter(|&t| t > 0.0) {
                    s.push_str(&format!(" (throttled {t:.1} s)"));
                }
                s
            }
            None => format!(
                "the server process was at 100% of the {} cores it may use for {} s ({:.2} \
                 cores)",
                cores(self.cpus),
                self.seconds,
                self.cores_used
            ),
        }
    }

    /// The remedy's first clause.
    pub fn remedy(&self) -> String {
        format!(
            "{}: an async design or more CPU for the server (it could not accept faster)",
            self.describe()
        )
    }
}

/// The seconds of a run in which connects slowed (p90 of 1 s or more: the
/// SYN was retransmitted) or established short of the target rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuShortfall {
    pub seconds: u64,
    /// The highest connect p90 of those seconds, µs.
    pub connect_p90_us: u64,
    /// The lowest established / target rate of those seconds that had a
    /// target rate (None: none had).
    pub rate_ratio: Option<f64>,
}

/// A connect p90 at least this long (µs) means the SYN was retransmitted
/// (the kernel's first retransmit is at 1 s): the handshake waited.
pub const SLOW_CONNECT_US: u64 = 1_000_000;

/// Established below this share of the target rate is short.
const SHORT: f64 = 0.9;

impl CpuShortfall {
    /// Counts a second of the run's time series: (target rate, established
    /// rate, connect p90 in µs).
    pub fn add(&mut self, target_rate: f64, established_rate: f64, connect_p90_us: u64) {
        let short = target_rate > 0.0 && established_rate < SHORT * target_rate;
        if !short && connect_p90_us < SLOW_CONNECT_US {
            return;
        }
        self.seconds += 1;
        self.connect_p90_us = self.connect_p90_us.max(connect_p90_us);
        if target_rate > 0.0 {
            let ratio = established_rate / target_rate;
            self.rate_ratio = Some(self.rate_ratio.map_or(ratio, |r| r.min(ratio)));
        }
    }
}

/// 0.2 → "0.2", 2.0 → "2", 0.05 → "0.05".
fn cores(c: f64) -> String {
    let s = format!("{c:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(cores_used: f64, throttled_periods: u64) -> CpuSecond {
        CpuSecond {
            cores_used,
            throttled_periods,
            throttled_s: throttled_periods as f64 * 0.09,
        }
    }

    #[test]
    fn a_throttled_quota_is_named_with_its_seconds() {
        let mut w = ServerCpuSeconds::new(CpuAllowance {
            quota_cores: Some(0.2),
            cpus: 2.0,
        });
        w.add(second(0.02, 0), true);
        for _ in 0..14 {
            w.add(second(0.2, 10), true);
        }
        let v = w.verdict().unwrap();
        assert_eq!(v.seconds, 14);
        assert_eq!(
            v.describe(),
            "the server process was at its CPU quota of 0.2 cores for 14 s (throttled 12.6 s)"
        );
        assert!(
            v.remedy().ends_with(
                "an async design or more CPU for the server (it could not accept faster)"
            )
        );
    }

    #[test]
    fn every_core_busy_without_a_quota() {
        let mut w = ServerCpuSeconds::new(CpuAllowance {
            quota_cores: None,
            cpus: 2.0,
        });
        w.add(second(1.9, 0), false);
        w.add(second(1.96, 0), false);
        w.add(second(0.4, 0), false);
        let v = w.verdict().unwrap();
        assert_eq!(
            v.describe(),
            "the server process was at 100% of the 2 cores it may use for 2 s (1.93 cores)"
        );
    }

    #[test]
    fn slow_or_short_seconds_count() {
        let mut s = CpuShortfall::default();
        s.add(2000.0, 1950.0, 400);
        assert_eq!(s.seconds, 0, "on rate and fast");
        s.add(1900.0, 1050.0, 11_079);
        s.add(0.0, 468.0, 1_031_167);
        s.add(0.0, 264.0, 2_053_119);
        assert_eq!(s.seconds, 3);
        assert_eq!(s.connect_p90_us, 2_053_119);
        assert!((s.rate_ratio.unwrap() - 1050.0 / 1900.0).abs() < 1e-9);
    }

    #[test]
    fn a_server_within_its_means_is_not_named() {
        let mut w = ServerCpuSeconds::new(CpuAllowance {
            quota_cores: Some(1.0),
            cpus: 2.0,
        });
        for _ in 0..10 {
            w.add(second(0.3, 0), true);
        }
        assert_eq!(w.verdict(), None);
    }
}
