//! Time arithmetic that cannot panic. `Instant + Duration` panics past the
//! clock's range and `Duration::from_secs_f64` on a NaN, an infinity or a
//! value past `Duration::MAX`; the engine computes deadlines from user
//! settings and rates, so it goes through these instead: a deadline too
//! far to represent is [`NEVER`] away, which no run reaches.

use std::time::Duration;

use tokio::time::Instant;

/// Far enough ahead to mean "never" for a timer, near enough not to
/// overflow: a year, past the longest run a scenario accepts (30 days).
pub const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// `at + d`, with `d` capped at [`NEVER`].
pub fn after(at: Instant, d: Duration) -> Instant {
    // A year past any instant of a clock that counts from boot is far
    // inside its range; `at` itself is the last resort, never reached.
    at.checked_add(d.min(NEVER)).unwrap_or(at)
}

/// Times kept small: µs or ms after a fixed instant (a holder's or a
/// pool's start), in the 8 or 4 bytes a connection's entry can spare.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(pub Instant);

impl Epoch {
    /// µs after the epoch.
    pub fn us(self, at: Instant) -> u64 {
        at.saturating_duration_since(self.0).as_micros() as u64
    }

    /// ns after the epoch (584 years fit).
    pub fn ns(self, at: Instant) -> u64 {
        at.saturating_duration_since(self.0).as_nanos() as u64
    }

    /// ms after the epoch, in 4 bytes (saturating after 49 days).
    pub fn ms(self, at: Instant) -> u32 {
        at.saturating_duration_since(self.0)
            .as_millis()
            .min(u128::from(u32::MAX)) as u32
    }

    /// The instant `ms` after the epoch.
    pub fn at_ms(self, ms: u32) -> Instant {
        after(self.0, Duration::from_millis(u64::from(ms)))
    }

    /// How long ago `us` after the epoch was.
    pub fn since_us(self, us: u64) -> Duration {
        Instant::now().saturating_duration_since(after(self.0, Duration::from_micros(us)))
    }
}

/// The host's monotonic clock (CLOCK_MONOTONIC, the clock of [`Instant`]
/// on Linux), in ns: one clock for every process on the host, so an
/// instant can cross a process boundary as this number.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC exists on
    // every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// `at` as [`monotonic_ns`] (this process's instants, read now).
pub fn instant_to_monotonic_ns(at: Instant) -> u64 {
    let ago = at.elapsed().as_nanos() as u64;
    monotonic_ns().saturating_sub(ago)
}

/// The instant that [`monotonic_ns`] read `ns` at (in the past: now, if
/// it is ahead).
pub fn instant_of_monotonic_ns(ns: u64) -> Instant {
    let ago = Duration::from_nanos(monotonic_ns().saturating_sub(ns));
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

/// `seconds` as a duration: negative or NaN is 0, too large for a
/// duration is `Duration::MAX`.
pub fn secs(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// `d × factor`, saturating as [`secs`] does.
pub fn scale(d: Duration, factor: f64) -> Duration {
    secs(d.as_secs_f64() * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instant crosses to another process as a monotonic-clock
    /// reading, and comes back as the same instant (to the µs).
    #[test]
    fn an_instant_survives_the_monotonic_clock() {
        let then = Instant::now() - Duration::from_millis(250);
        let back = instant_of_monotonic_ns(instant_to_monotonic_ns(then));
        let diff = if back > then {
            back - then
        } else {
            then - back
        };
        assert!(diff < Duration::from_millis(1), "{diff:?}");
    }

    #[test]
    fn extreme_values_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), now + NEVER);
        assert_eq!(
            after(now, Duration::from_secs(2)),
            now + Duration::from_secs(2)
        );
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(f64::INFINITY), Duration::MAX);
        assert_eq!(secs(1e300), Duration::MAX);
        assert_eq!(secs(1.5), Duration::from_millis(1500));
        assert_eq!(scale(Duration::MAX, 1e10), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(10), 1.0 / 1e-300), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(10), 0.5), Duration::from_secs(5));
    }
}
