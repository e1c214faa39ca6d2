//! Deadlines of many connections without a timer each: one FIFO queue per
//! kind of deadline (the connect timeout, a fixed hold), whose entries are
//! due in the order they were pushed because every entry of a queue waits
//! the same length of time. An entry names its connection by slab key and
//! attempt index; a connection closed before its deadline leaves a stale
//! entry, which the owner tells apart when it pops it.

use std::cell::RefCell;
use std::collections::VecDeque;

/// One connection's deadline: ms after the owner's epoch.
struct Due {
    at_ms: u32,
    key: u32,
    /// Tells a stale entry (closed since and its slot reused) from the live
    /// one.
    index: u64,
}

/// A FIFO queue of deadlines.
#[derive(Default)]
pub struct Dues {
    queue: RefCell<VecDeque<Due>>,
}

impl Dues {
    /// Queues `key` (attempt `index`) to be due at `at_ms`; returns whether
    /// the queue was empty (its owner may be sleeping without a deadline).
    pub fn push(&self, at_ms: u32, key: usize, index: u64) -> bool {
        let mut queue = self.queue.borrow_mut();
        queue.push_back(Due {
            at_ms,
            key: key as u32,
            index,
        });
        queue.len() == 1
    }

    /// When the first entry is due.
    pub fn front(&self) -> Option<u32> {
        self.queue.borrow().front().map(|d| d.at_ms)
    }

    /// The key of the next entry due by `now_ms` for which `live(key,
    /// index)` holds; stale entries are dropped on the way.
    pub fn pop_due(&self, now_ms: u32, live: impl Fn(usize, u64) -> bool) -> Option<usize> {
        loop {
            let due = {
                let mut queue = self.queue.borrow_mut();
                match queue.front() {
                    Some(front) if front.at_ms <= now_ms => queue.pop_front()?,
                    _ => return None,
                }
            };
            let key = due.key as usize;
            if live(key, due.index) {
                return Some(key);
            }
        }
    }

    pub fn clear(&self) {
        self.queue.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection waiting for a deadline has one entry.
    #[test]
    fn an_entry_is_sixteen_bytes() {
        assert!(std::mem::size_of::<Due>() <= 16);
    }

    #[test]
    fn entries_come_due_in_order_and_stale_ones_are_skipped() {
        let dues = Dues::default();
        assert!(dues.push(10, 1, 100));
        assert!(!dues.push(20, 2, 200));
        assert!(!dues.push(30, 3, 300));
        assert_eq!(dues.front(), Some(10));
        assert_eq!(dues.pop_due(5, |_, _| true), None, "nothing due yet");
        // Key 1 was closed and its slot reused by another attempt.
        assert_eq!(
            dues.pop_due(25, |key, index| key != 1 || index == 101),
            Some(2)
        );
        assert_eq!(dues.pop_due(25, |_, _| true), None);
        assert_eq!(dues.front(), Some(30));
        dues.clear();
        assert_eq!(dues.front(), None);
    }
}
