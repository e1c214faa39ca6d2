//! Rate profiles: when each attempt is meant to start, and the pacer that
//! waits for those times. Latency is measured from the intended start, so a
//! generator that falls behind shows up as latency, not as a lower rate
//! (no coordinated omission).

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::clock;
use crate::engine::plan::Segment;
use crate::scenario::Pace;

/// Offset from the run's start at which global attempt `index` (0-based) is
/// meant to start; `None` for an unlimited pace (start at once).
pub fn start_offset(pace: Pace, index: u64) -> Option<Duration> {
    let i = index as f64;
    let seconds = match pace {
        Pace::Unlimited => return None,
        Pace::Constant { per_s } => i / per_s,
        Pace::Steps(steps) => steps.seconds_to(i),
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
    Some(clock::secs(seconds))
}

/// The connect rate asked for at `elapsed` (0 for unlimited).
pub fn rate_at(pace: Pace, elapsed: Duration) -> f64 {
    match pace {
        Pace::Unlimited => 0.0,
        Pace::Constant { per_s } => per_s,
        Pace::Steps(steps) => steps.rate_at(elapsed.as_secs_f64()),
        Pace::Ramp(ramp) => {
            let progress = (elapsed.as_secs_f64() / ramp.over.as_secs_f64()).min(1.0);
            ramp.from + (ramp.to - ramp.from) * progress
        }
    }
}

/// Maps the rate profile's time ("schedule time") to real time, so the
/// profile can be paused and sped up or slowed down live: schedule time runs
/// at `factor` × real time, and stands still while paused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Real instant at which schedule time was `anchor_offset`.
    anchor: Instant,
    anchor_offset: Duration,
    factor: f64,
    paused: bool,
}

impl Schedule {
    /// Schedule time 0 at `start`, real speed, running.
    pub fn starting_at(start: Instant) -> Schedule {
        Schedule {
            anchor: start,
            anchor_offset: Duration::ZERO,
            factor: 1.0,
            paused: false,
        }
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Schedule time at the real instant `now`.
    pub fn offset_at(&self, now: Instant) -> Duration {
        if self.paused {
            return self.anchor_offset;
        }
        self.anchor_offset.saturating_add(clock::scale(
            now.saturating_duration_since(self.anchor),
            self.factor,
        ))
    }

    /// The real instant at which schedule time reaches `offset`; `None`
    /// while paused. An unlimited pace (`offset` None) is due now.
    pub fn instant_of(&self, offset: Option<Duration>, now: Instant) -> Option<Instant> {
        if self.paused {
            return None;
        }
        let Some(offset) = offset else {
            return Some(now);
        };
        let ahead = offset.saturating_sub(self.anchor_offset);
        let behind = self.anchor_offset.saturating_sub(offset);
        Some(if behind.is_zero() {
            clock::after(self.anchor, clock::scale(ahead, self.factor.recip()))
        } else {
            self.anchor
                .checked_sub(clock::scale(behind, self.factor.recip()))
                .unwrap_or(self.anchor)
        })
    }

    /// The schedule relative to `start`, for another process whose own
    /// start stands for the same moment.
    pub fn to_wire(&self, start: Instant) -> WireSchedule {
        WireSchedule {
            anchor_after_start: self.anchor.saturating_duration_since(start),
            anchor_offset: self.anchor_offset,
            factor: self.factor,
            paused: self.paused,
        }
    }

    /// A schedule received from another process, anchored on our `start`.
    pub fn from_wire(start: Instant, wire: WireSchedule) -> Schedule {
        Schedule {
            anchor: clock::after(start, wire.anchor_after_start),
            anchor_offset: wire.anchor_offset,
            factor: wire.factor,
            paused: wire.paused,
        }
    }

    /// The same schedule re-anchored at `now` with a new speed or pause
    /// state: schedule time continues from where it is.
    pub fn rebased(&self, now: Instant, factor: f64, paused: bool) -> Schedule {
        Schedule {
            anchor: now,
            anchor_offset: self.offset_at(now),
            factor,
            paused,
        }
    }
}

/// A [`Schedule`] as one process tells it to another: instants become
/// durations after the run's start.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WireSchedule {
    pub anchor_after_start: Duration,
    pub anchor_offset: Duration,
    pub factor: f64,
    pub paused: bool,
}

/// Hands out a segment's attempts in order, with their schedule offsets.
pub struct Pacer {
    pace: Pace,
    segment: Segment,
    total: u64,
    next: u64,
}

impl Pacer {
    pub fn new(pace: Pace, segment: Segment, total: u64) -> Pacer {
        Pacer {
            pace,
            segment,
            total,
            next: 0,
        }
    }

    /// The next attempt's global index and schedule offset (None for an
    /// unlimited pace), without moving on.
    pub fn peek(&self) -> Option<(u64, Option<Duration>)> {
        if self.next >= self.segment.len(self.total) {
            return None;
        }
        let index = self.segment.attempt(self.next);
        Some((index, start_offset(self.pace, index)))
    }

    /// Moves past the attempt [`Pacer::peek`] returned.
    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// Waits until the next attempt is due by `schedule` (which must be
    /// running) and returns it with its intended start.
    pub async fn next(&mut self, schedule: &Schedule) -> Option<(u64, Instant)> {
        let (index, offset) = self.peek()?;
        let intended = schedule
            .instant_of(offset, Instant::now())
            .expect("a running schedule");
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
    fn steps_start_each_rate_in_turn_and_the_last_holds() {
        let steps = crate::scenario::units::parse_steps("10,0,20/1s").unwrap();
        let pace = Pace::Steps(steps);
        let at = |i| start_offset(pace, i).unwrap().as_secs_f64();
        // 10 in the first second, none in the second, then 20/s.
        assert!((at(0) - 0.0).abs() < 1e-9);
        assert!((at(9) - 0.9).abs() < 1e-9);
        assert!((at(10) - 2.0).abs() < 1e-9);
        assert!((at(29) - 2.95).abs() < 1e-9);
        assert!((at(30) - 3.0).abs() < 1e-9);
        assert!((at(50) - 4.0).abs() < 1e-9);
        assert_eq!(rate_at(pace, Duration::from_millis(500)), 10.0);
        assert_eq!(rate_at(pace, Duration::from_millis(1500)), 0.0);
        assert_eq!(rate_at(pace, Duration::from_secs(60)), 20.0);
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
        let mut pacer = Pacer::new(Pace::Constant { per_s: 10.0 }, segment, 7);
        let schedule = Schedule::starting_at(start);
        let mut seen = Vec::new();
        while let Some((index, intended)) = pacer.next(&schedule).await {
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
        let mut pacer = Pacer::new(ramp(0.0, 100.0, 10), Segment::WHOLE, 600);
        let schedule = Schedule::starting_at(start);
        let mut gaps = Vec::new();
        let mut last = start;
        while let Some((_, intended)) = pacer.next(&schedule).await {
            gaps.push(intended - last);
            last = intended;
        }
        assert_eq!(gaps.len(), 600);
        // Early gaps are long, late gaps are the steady 10 ms.
        assert!(gaps[10] > gaps[400]);
        assert!((gaps[599].as_secs_f64() - 0.01).abs() < 1e-6);
        assert!(((Instant::now() - start).as_secs_f64() - 10.99).abs() < 1e-3);
    }

    #[tokio::test(start_paused = true)]
    async fn pausing_and_speeding_up_move_the_schedule_not_the_count() {
        let start = Instant::now();
        let schedule = Schedule::starting_at(start);
        let at =
            |s: &Schedule, ms: u64| s.instant_of(Some(Duration::from_millis(ms)), Instant::now());
        assert_eq!(at(&schedule, 500), Some(start + Duration::from_millis(500)));
        // At 200 ms: pause. Nothing is due while paused.
        tokio::time::advance(Duration::from_millis(200)).await;
        let paused = schedule.rebased(Instant::now(), 1.0, true);
        assert_eq!(at(&paused, 500), None);
        assert_eq!(
            paused.offset_at(Instant::now() + Duration::from_secs(9)),
            Duration::from_millis(200)
        );
        // Resume 1 s later at double speed: offset 500 ms is 150 ms away.
        tokio::time::advance(Duration::from_secs(1)).await;
        let resumed = paused.rebased(Instant::now(), 2.0, false);
        assert_eq!(
            at(&resumed, 500),
            Some(Instant::now() + Duration::from_millis(150))
        );
        // An offset already passed maps into the past, so it is due at once
        // (and its latency counts from when it was due).
        assert!(at(&resumed, 100).unwrap() < Instant::now());
        assert_eq!(
            resumed.instant_of(None, Instant::now()),
            Some(Instant::now())
        );
    }
}
