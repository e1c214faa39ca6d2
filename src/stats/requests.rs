//! Request mode's statistics: counters and the three latency histograms
//! (queue wait, service time, total from the intended time), merged by
//! addition like the rest of a [`super::Delta`].
//!
//! Every request is counted once where it ends: `scheduled` (due by the
//! rate, or started back to back in a closed loop) = `sent` + `rejects` +
//! still queued; `sent` = `responses` + errors + still in flight. The
//! queue depth and the busy connections are differences of cumulative
//! counters, so they add up across workers too.

use hdrhistogram::Histogram;

use super::{new_histogram, record_us};
use crate::model::{RequestErrorKind, RequestsSummary};

/// Distinct error texts kept (the first ones seen).
pub const ERROR_TEXTS: usize = 5;

/// Longest error text kept, in bytes.
const ERROR_TEXT_BYTES: usize = 200;

#[derive(Debug, Clone)]
pub struct RequestDelta {
    /// Requests due (open loop) or started (closed loop).
    pub scheduled: u64,
    pub sent: u64,
    /// Whole responses that were not errors.
    pub responses: u64,
    /// Indexed like [`RequestErrorKind::ALL`].
    pub errors: [u64; RequestErrorKind::ALL.len()],
    /// The first distinct error replies, as the server wrote them.
    pub error_texts: Vec<String>,
    /// Requests never sent: no free connection (`--when-pool-busy
    /// reject`), the queue full, or their wait over `--queue-timeout`.
    pub rejects: u64,
    /// Connections reopened after the server closed a kept-alive one.
    pub reconnects: u64,
    /// Requests that entered the queue, and that left it (sent or
    /// rejected).
    pub queued: u64,
    pub dequeued: u64,
    /// HTTP status classes 1xx to 5xx.
    pub status: [u64; 5],
    /// A connection free − the intended time.
    pub queue_us: Histogram<u64>,
    /// The response − the send.
    pub service_us: Histogram<u64>,
    /// The response − the intended time.
    pub total_us: Histogram<u64>,
}

impl Default for RequestDelta {
    fn default() -> Self {
        RequestDelta::with_histograms(new_histogram)
    }
}

impl RequestDelta {
    pub fn merge(&mut self, other: &RequestDelta) {
        self.merge_counters(other);
        for (mine, theirs) in [
            (&mut self.queue_us, &other.queue_us),
            (&mut self.service_us, &other.service_us),
            (&mut self.total_us, &other.total_us),
        ] {
            mine.add(theirs).expect("histograms share bounds");
        }
    }

    /// Everything but the histograms.
    pub fn merge_counters(&mut self, other: &RequestDelta) {
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.responses += other.responses;
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        for text in &other.error_texts {
            self.note_error_text(text);
        }
        self.rejects += other.rejects;
        self.reconnects += other.reconnects;
        self.queued += other.queued;
        self.dequeued += other.dequeued;
        for (mine, theirs) in self.status.iter_mut().zip(other.status) {
            *mine += theirs;
        }
    }

    /// Empties it in place, keeping the histograms' allocations.
    pub fn reset(&mut self) {
        self.scheduled = 0;
        self.sent = 0;
        self.responses = 0;
        self.errors = [0; RequestErrorKind::ALL.len()];
        self.error_texts.clear();
        self.rejects = 0;
        self.reconnects = 0;
        self.queued = 0;
        self.dequeued = 0;
        self.status = [0; 5];
        for hist in [&mut self.queue_us, &mut self.service_us, &mut self.total_us] {
            if !hist.is_empty() {
                hist.reset();
            }
        }
    }

    /// Counters without room for histograms: to merge with
    /// [`RequestDelta::merge_counters`].
    pub fn counters_only() -> RequestDelta {
        RequestDelta::with_histograms(|| {
            Histogram::new_with_bounds(1, 2, 1).expect("valid histogram bounds")
        })
    }

    fn with_histograms(make: fn() -> Histogram<u64>) -> RequestDelta {
        RequestDelta {
            scheduled: 0,
            sent: 0,
            responses: 0,
            errors: [0; RequestErrorKind::ALL.len()],
            error_texts: Vec::new(),
            rejects: 0,
            reconnects: 0,
            queued: 0,
            dequeued: 0,
            status: [0; 5],
            queue_us: make(),
            service_us: make(),
            total_us: make(),
        }
    }

    /// Keeps `text` if it is new and fewer than [`ERROR_TEXTS`] are kept.
    pub fn note_error_text(&mut self, text: &str) {
        if self.error_texts.len() < ERROR_TEXTS && !self.error_texts.iter().any(|t| t == text) {
            let mut text = text.to_string();
            if text.len() > ERROR_TEXT_BYTES {
                let mut cut = ERROR_TEXT_BYTES;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            self.error_texts.push(text);
        }
    }

    pub fn record_error(&mut self, kind: RequestErrorKind, text: Option<&str>) {
        self.errors[kind.index()] += 1;
        if let Some(text) = text {
            self.note_error_text(text);
        }
    }

    pub fn record_status(&mut self, code: u16) {
        if let Some(class) = (code / 100).checked_sub(1)
            && let Some(n) = self.status.get_mut(class as usize)
        {
            *n += 1;
        }
    }

    pub fn record_times(&mut self, queue_us: u64, service_us: u64, total_us: u64) {
        record_us(&mut self.queue_us, queue_us);
        record_us(&mut self.service_us, service_us);
        record_us(&mut self.total_us, total_us);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Requests waiting for a connection now (cumulative counters only).
    pub fn queue_depth(&self) -> u64 {
        self.queued.saturating_sub(self.dequeued)
    }

    /// Requests sent and not answered yet: connections busy (cumulative
    /// counters only).
    pub fn in_flight(&self) -> u64 {
        self.sent
            .saturating_sub(self.responses + self.error_count())
    }

    /// The summary's `requests` object (cumulative counters only).
    pub fn summary(&self) -> RequestsSummary {
        RequestsSummary {
            scheduled: self.scheduled,
            sent: self.sent,
            responses: self.responses,
            errors: RequestErrorKind::ALL
                .iter()
                .map(|k| (k.as_str().to_string(), self.errors[k.index()]))
                .collect(),
            error_texts: self.error_texts.clone(),
            rejects: self.rejects,
            reconnects: self.reconnects,
            queued_at_end: self.queue_depth(),
            in_flight_at_end: self.in_flight(),
            status: ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .iter()
                .zip(self.status)
                .map(|(class, n)| (class.to_string(), n))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_merge_by_addition_and_keep_the_first_texts() {
        let mut a = RequestDelta {
            scheduled: 5,
            sent: 4,
            responses: 2,
            ..Default::default()
        };
        a.record_error(RequestErrorKind::ErrorReply, Some("-ERR one"));
        a.record_status(503);
        a.record_times(10, 20, 30);
        let mut b = RequestDelta {
            sent: 2,
            ..Default::default()
        };
        b.record_error(RequestErrorKind::ErrorReply, Some("-ERR one"));
        b.record_error(RequestErrorKind::Closed, None);
        b.queued = 3;
        b.dequeued = 1;
        let mut total = RequestDelta::default();
        total.merge(&a);
        total.merge(&b);
        assert_eq!(total.sent, 6);
        assert_eq!(total.error_count(), 3);
        assert_eq!(total.error_texts, vec!["-ERR one".to_string()]);
        assert_eq!(total.in_flight(), 1);
        assert_eq!(total.queue_depth(), 2);
        assert_eq!(total.status[4], 1);
        assert_eq!(total.total_us.len(), 1);
        let summary = total.summary();
        assert_eq!(summary.errors["error_reply"], 2);
        assert_eq!(summary.status["5xx"], 1);
        total.reset();
        assert_eq!(total.sent, 0);
        assert!(total.total_us.is_empty());
        total.record_times(1, 1, 1);
        assert_eq!(total.queue_us.len(), 1, "reset keeps usable histograms");
    }
}
