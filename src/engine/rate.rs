//! Rate profiles: when each attempt is meant to start, and the pacer that
//! waits for those times. Latency is measured from the intended start, so a
//! generator that falls behind shows up as latency, not as a lower rate
//! (no coordinated omission).

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::plan::Segment;
use crate::scenario::Pace;

/// Offset from the run's start at which global attempt `index` (0-based) is
/// meant to start; `None` for an unlimited pace (start at once).
pub fn start_offset(pace: Pace, index: u64) -> Option<Duration> {
    let i = index as f64;
    let seconds = match pace {
        Pace::Unlimited => return None,
        Pace::Constant { per_s } => i / per_s,
        Pace::Ramp(ramp) => {
            let (a, b, t) = (ramp.from, ramp.to, ramp.over.as_secs_f64());
            // Attempts started by time x during the ramp: a·x + (b−a)·x²/(2t).
            let during_ramp = (a + b) / 2.0 * t;
            if i >= during_ramp {
                t + (i - during_ramp) / b
            } else {
                let k = (b - a) / (2.0 * t);
                if k.abs() < 1e-12 {
                    i / a
                } else {
                    (-a + (a * a + 4.0 * k * i).max(0.0).sqrt()) / (2.0 * k)
                }
            }
        }
    };
    Some(Duration::from_secs_f64(seconds))
}

/// The connect rate asked for at `elapsed` (0 for unlimited).
pub fn rate_at(pace: Pace, elapsed: Duration) -> f64 {
    match pace {
        Pace::Unlimited => 0.0,
        Pace::Constant { per_s } => per_s,
        Pace::Ramp(ramp) => {
            let progress = (elapsed.as_secs_f64() / ramp.over.as_secs_f64()).min(1.0);
            ramp.from + (ramp.to - ramp.from) * progress
        }
    }
}

/// Hands out a segment's attempts at their intended start times.
pub struct Pacer {
    pace: Pace,
    segment: Segment,
    total: u64,
    start: Instant,
    next: u64,
}

impl Pacer {
    pub fn new(pace: Pace, segment: Segment, total: u64, start: Instant) -> Pacer {
        Pacer {
            pace,
            segment,
            total,
            start,
            next: 0,
        }
    }

    /// The next attempt's global index and intended start, without waiting.
    pub fn peek(&self) -> Option<(u64, Instant)> {
        if self.next >= self.segment.len(self.total) {
            return None;
        }
        let index = self.segment.attempt(self.next);
        let intended = match start_offset(self.pace, index) {
            Some(offset) => self.start + offset,
            None => Instant::now(),
        };
        Some((index, intended))
    }

    /// Moves past the attempt [`Pacer::peek`] returned.
    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// Waits until the next attempt is due and returns it.
    pub async fn next(&mut self) -> Option<(u64, Instant)> {
        let (index, intended) = self.peek()?;
        tokio::time::sleep_until(intended).await;
        self.advance();
        Some((index, intended))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::units::RampSpec;

    fn ramp(from: f64, to: f64, secs: u64) -> Pace {
        Pace::Ramp(RampSpec {
            from,
            to,
            over: Duration::from_secs(secs),
        })
    }

    #[test]
    fn constant_rate_spaces_attempts_evenly() {
        let pace = Pace::Constant { per_s: 4.0 };
        assert_eq!(start_offset(pace, 0), Some(Duration::ZERO));
        assert_eq!(start_offset(pace, 6), Some(Duration::from_millis(1500)));
        assert_eq!(start_offset(Pace::Unlimited, 6), None);
    }

    #[test]
    fn a_ramp_starts_the_integral_of_its_rate() {
        // 0..100/10s: 500 attempts during the ramp, then 100/s.
        let pace = ramp(0.0, 100.0, 10);
        let at = |i| start_offset(pace, i).unwrap().as_secs_f64();
        // N(x) = 5x², so attempt 125 starts at x = 5 s.
        assert!((at(125) - 5.0).abs() < 1e-9);
        assert!((at(500) - 10.0).abs() < 1e-9);
        assert!((at(600) - 11.0).abs() < 1e-9);
        // Downward ramp 100..50/10s: N(x) = 100x − 2.5x²; N(2) = 190.
        let down = ramp(100.0, 50.0, 10);
        assert!((start_offset(down, 190).unwrap().as_secs_f64() - 2.0).abs() < 1e-9);
        // Flat "ramp" degenerates to a constant rate.
        assert!((start_offset(ramp(10.0, 10.0, 5), 20).unwrap().as_secs_f64() - 2.0).abs() < 1e-9);
        assert_eq!(rate_at(pace, Duration::from_secs(5)), 50.0);
        assert_eq!(rate_at(pace, Duration::from_secs(50)), 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_waits_for_each_intended_start() {
        let start = Instant::now();
        let segment = Segment::WHOLE.split(1, 2);
        let mut pacer = Pacer::new(Pace::Constant { per_s: 10.0 }, segment, 7, start);
        let mut seen = Vec::new();
        while let Some((index, intended)) = pacer.next().await {
            assert!(Instant::now() >= intended);
            seen.push((index, (intended - start).as_millis()));
        }
        // Segment 1 of 2 takes attempts 1, 3, 5 at 100, 300, 500 ms.
        assert_eq!(seen, vec![(1, 100), (3, 300), (5, 500)]);
        assert_eq!((Instant::now() - start).as_millis(), 500);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ramp_from_zero_accelerates() {
        let start = Instant::now();
        let mut pacer = Pacer::new(ramp(0.0, 100.0, 10), Segment::WHOLE, 600, start);
        let mut gaps = Vec::new();
        let mut last = start;
        while let Some((_, intended)) = pacer.next().await {
            gaps.push(intended - last);
            last = intended;
        }
        assert_eq!(gaps.len(), 600);
        // Early gaps are long, late gaps are the steady 10 ms.
        assert!(gaps[10] > gaps[400]);
        assert!((gaps[599].as_secs_f64() - 0.01).abs() < 1e-6);
        assert!(((Instant::now() - start).as_secs_f64() - 10.99).abs() < 1e-3);
    }
}
