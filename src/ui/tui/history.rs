//! A bounded history of completed seconds for the charts. The snapshot
//! carries only its newest [`SecondRow`]; the dashboard keeps the last few
//! hundred here, a few dozen bytes each, so a long run never grows it.

use std::collections::VecDeque;

use crate::stats::SecondRow;

/// What the charts need from one second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub elapsed_s: u64,
    pub active: u64,
    pub establish_rate_per_s: f64,
    pub target_rate_per_s: f64,
    /// Failures during the second.
    pub failed: u64,
    /// Request mode: requests sent per second.
    pub request_rate_per_s: Option<f64>,
}

impl Point {
    pub fn from_row(row: &SecondRow) -> Point {
        Point {
            elapsed_s: row.elapsed_s,
            active: row.active,
            establish_rate_per_s: row.establish_rate_per_s,
            target_rate_per_s: row.target_rate_per_s,
            failed: row.failures_by_kind.iter().sum(),
            request_rate_per_s: row.requests.as_ref().map(|r| r.sent_per_s),
        }
    }
}

/// The newest `capacity` seconds, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    points: VecDeque<Point>,
    capacity: usize,
}

impl History {
    /// Five minutes: wider than any terminal's chart at one second a column.
    pub const DEFAULT_CAPACITY: usize = 300;

    pub fn new(capacity: usize) -> History {
        let capacity = capacity.max(1);
        History {
            points: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds the row unless it is not newer than the last one kept (the same
    /// snapshot row is seen on every update until the next second closes).
    /// Returns whether it was added.
    pub fn push(&mut self, row: &SecondRow) -> bool {
        if self
            .points
            .back()
            .is_some_and(|last| last.elapsed_s >= row.elapsed_s)
        {
            return false;
        }
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(Point::from_row(row));
        true
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Every point kept, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Point> + ExactSizeIterator {
        self.points.iter()
    }

    /// The newest `n` points (fewer if fewer are kept), oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Point> {
        self.points.iter().skip(self.points.len().saturating_sub(n))
    }
}

impl Default for History {
    fn default() -> History {
        History::new(History::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LimitKind, Percentiles};

    fn row(elapsed_s: u64, active: u64) -> SecondRow {
        let mut failures_by_kind = [0; LimitKind::ALL.len()];
        failures_by_kind[LimitKind::Refused.index()] = 2;
        failures_by_kind[LimitKind::PortExhaustion.index()] = 1;
        SecondRow {
            elapsed_s,
            utc: String::new(),
            attempted: 0,
            established: 0,
            failed: 0,
            active,
            target_rate_per_s: 100.0,
            attempt_rate_per_s: 0.0,
            establish_rate_per_s: 50.0,
            failures_by_kind,
            syn_retransmit_handshakes: 0,
            port_search_slow: 0,
            connect: Percentiles::default(),
            driver_cpu_cores: None,
            requests: None,
        }
    }

    #[test]
    fn keeps_only_the_newest_and_skips_repeats() {
        let mut history = History::new(3);
        assert!(history.is_empty());
        assert!(history.push(&row(1, 10)));
        assert!(!history.push(&row(1, 10)), "same second twice");
        assert!(!history.push(&row(0, 5)), "older second");
        for s in 2..=5 {
            assert!(history.push(&row(s, s * 10)));
        }
        assert_eq!(history.len(), 3);
        let seconds: Vec<u64> = history.iter().map(|p| p.elapsed_s).collect();
        assert_eq!(seconds, [3, 4, 5]);
        let last: Vec<u64> = history.last(2).map(|p| p.active).collect();
        assert_eq!(last, [40, 50]);
        assert_eq!(history.last(10).count(), 3);
        assert_eq!(history.iter().next().unwrap().failed, 3);
    }

    #[test]
    fn gaps_are_kept_as_gaps() {
        // The dashboard may miss seconds when updated slowly: points keep
        // their own elapsed time, so the chart's x axis stays true.
        let mut history = History::default();
        history.push(&row(1, 1));
        history.push(&row(7, 7));
        let seconds: Vec<u64> = history.iter().map(|p| p.elapsed_s).collect();
        assert_eq!(seconds, [1, 7]);
        assert_eq!(History::new(0).capacity, 1);
    }
}
