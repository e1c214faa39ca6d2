//! A [`Delta`] as plain serde data, so a worker process can send what it
//! recorded to the coordinator (one JSON line per delta on a pipe) and the
//! coordinator merges it exactly as it merges a worker thread's delta.
//!
//! Histograms travel as their non-empty buckets, (highest equivalent value,
//! count) pairs: lossless at the histograms' precision, a few hundred pairs
//! for a busy tick, and decoded by recording straight into the receiver's
//! histogram (no histogram is allocated per report).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::requests::RequestDelta;
use super::{Delta, GroupStats, SourceCounters};
use crate::model::{FailureEvent, LimitKind, RequestErrorKind, Syscall, Warnings};

/// A delta on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireDelta {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub closed_by_driver: u64,
    pub closed_by_server: u64,
    pub lost_with_worker: u64,
    /// The worker's own peak of connections held (merges by max).
    #[serde(default)]
    pub peak_active: u64,
    /// First and last close by the target, ms after the run's start.
    #[serde(default)]
    pub server_close_at_ms: Option<(u64, u64)>,
    pub last_established_s: f64,
    /// Indexed like [`LimitKind::ALL`].
    pub failures_by_kind: Vec<u64>,
    pub groups: Vec<WireGroup>,
    pub first_limit: Option<FailureEvent>,
    pub warnings: Warnings,
    pub connect_us: Vec<(u64, u64)>,
    pub rtt_us: Vec<(u64, u64)>,
    pub server_close_age_ms: Vec<(u64, u64)>,
    pub server_close_others: Vec<(u64, u64)>,
    /// (source index, [attempted, established, failed, closed]) of the
    /// sources whose counters moved.
    pub sources: Vec<(usize, [u64; 4])>,
    /// Request mode's figures, when any were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<WireRequests>,
}

/// Request mode's counters and histograms on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireRequests {
    /// scheduled, sent, responses, rejects, reconnects, queued, dequeued.
    pub counts: [u64; 7],
    /// Indexed like [`RequestErrorKind::ALL`].
    pub errors: Vec<u64>,
    pub error_texts: Vec<String>,
    pub status: [u64; 5],
    pub queue_us: Vec<(u64, u64)>,
    pub service_us: Vec<(u64, u64)>,
    pub total_us: Vec<(u64, u64)>,
}

impl From<&RequestDelta> for WireRequests {
    fn from(r: &RequestDelta) -> WireRequests {
        WireRequests {
            counts: [
                r.scheduled,
                r.sent,
                r.responses,
                r.rejects,
                r.reconnects,
                r.queued,
                r.dequeued,
            ],
            errors: r.errors.to_vec(),
            error_texts: r.error_texts.clone(),
            status: r.status,
            queue_us: encode(&r.queue_us),
            service_us: encode(&r.service_us),
            total_us: encode(&r.total_us),
        }
    }
}

/// One failure group on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireGroup {
    pub kind: LimitKind,
    pub syscall: Syscall,
    pub errno: Option<i32>,
    pub count: u64,
    pub first: FailureEvent,
    pub last_elapsed_s: f64,
}

/// A wire delta that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("a worker's stats are malformed: {0}")]
pub struct WireError(String);

impl From<&Delta> for WireDelta {
    fn from(d: &Delta) -> WireDelta {
        let mut groups: Vec<WireGroup> = d
            .groups
            .iter()
            .map(|(&(kind, syscall, errno), g)| WireGroup {
                kind,
                syscall,
                errno,
                count: g.count,
                first: g.first.clone(),
                last_elapsed_s: g.last_elapsed_s,
            })
            .collect();
        groups.sort_by_key(|g| (g.kind, g.syscall, g.errno));
        WireDelta {
            attempted: d.attempted,
            established: d.established,
            failed: d.failed,
            closed_by_driver: d.closed_by_driver,
            closed_by_server: d.closed_by_server,
            lost_with_worker: d.lost_with_worker,
            peak_active: d.peak_active,
            server_close_at_ms: d.server_close_at_ms,
            last_established_s: d.last_established_s,
            failures_by_kind: d.failures_by_kind.to_vec(),
            groups,
            first_limit: d.first_limit.clone(),
            warnings: d.warnings.clone(),
            connect_us: encode(&d.connect_us),
            rtt_us: encode(&d.rtt_us),
            server_close_age_ms: encode(&d.server_close_age_ms),
            server_close_others: encode(&d.server_close_others),
            sources: d
                .sources
                .iter()
                .enumerate()
                .filter(|(_, s)| **s != SourceCounters::default())
                .map(|(i, s)| (i, [s.attempted, s.established, s.failed, s.closed]))
                .collect(),
            requests: d.requests.as_deref().map(WireRequests::from),
        }
    }
}

impl WireDelta {
    /// Adds the delta into `d`, as [`Delta::merge`] would, recording its
    /// histogram buckets straight into `d`'s. Checked before anything is
    /// added: on error `d` is unchanged.
    pub fn merge_into(self, d: &mut Delta) -> Result<(), WireError> {
        let source_count = d.sources.len();
        if self.failures_by_kind.len() != LimitKind::ALL.len() {
            return Err(WireError(format!(
                "{} failure kinds, expected {}",
                self.failures_by_kind.len(),
                LimitKind::ALL.len()
            )));
        }
        if let Some((i, _)) = self.sources.iter().find(|(i, _)| *i >= source_count) {
            return Err(WireError(format!(
                "source #{i}, but the plan has {source_count} sources"
            )));
        }
        if let Some(r) = &self.requests
            && r.errors.len() != RequestErrorKind::ALL.len()
        {
            return Err(WireError(format!(
                "{} request error kinds, expected {}",
                r.errors.len(),
                RequestErrorKind::ALL.len()
            )));
        }
        if let Some(r) = self.requests {
            let mine = d.requests_mut();
            record_into(&mut mine.queue_us, &r.queue_us);
            record_into(&mut mine.service_us, &r.service_us);
            record_into(&mut mine.total_us, &r.total_us);
            let [
                scheduled,
                sent,
                responses,
                rejects,
                reconnects,
                queued,
                dequeued,
            ] = r.counts;
            let mut errors = [0; RequestErrorKind::ALL.len()];
            errors.copy_from_slice(&r.errors);
            mine.merge_counters(&RequestDelta {
                scheduled,
                sent,
                responses,
                errors,
                error_texts: r.error_texts,
                rejects,
                reconnects,
                queued,
                dequeued,
                status: r.status,
                ..RequestDelta::counters_only()
            });
        }
        record_into(&mut d.connect_us, &self.connect_us);
        record_into(&mut d.rtt_us, &self.rtt_us);
        record_into(&mut d.server_close_age_ms, &self.server_close_age_ms);
        record_into(&mut d.server_close_others, &self.server_close_others);
        let mut c = Delta::counters_only(source_count);
        c.attempted = self.attempted;
        c.established = self.established;
        c.failed = self.failed;
        c.closed_by_driver = self.closed_by_driver;
        c.closed_by_server = self.closed_by_server;
        c.lost_with_worker = self.lost_with_worker;
        c.peak_active = self.peak_active;
        c.server_close_at_ms = self.server_close_at_ms;
        c.last_established_s = self.last_established_s;
        c.failures_by_kind.copy_from_slice(&self.failures_by_kind);
        for g in self.groups {
            c.groups.insert(
                (g.kind, g.syscall, g.errno),
                GroupStats {
                    count: g.count,
                    first: g.first,
                    last_elapsed_s: g.last_elapsed_s,
                },
            );
        }
        c.first_limit = self.first_limit;
        c.warnings = self.warnings;
        for (i, [attempted, established, failed, closed]) in self.sources {
            c.sources[i] = SourceCounters {
                attempted,
                established,
                failed,
                closed,
            };
        }
        d.merge_counters(&c);
        Ok(())
    }
}

/// The histogram's non-empty buckets.
fn encode(hist: &Histogram<u64>) -> Vec<(u64, u64)> {
    if hist.is_empty() {
        return Vec::new();
    }
    hist.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Records the buckets into `hist`, clamped to its range (both ends share
/// the histograms' bounds, so nothing is clamped in practice).
fn record_into(hist: &mut Histogram<u64>, buckets: &[(u64, u64)]) {
    for &(value, count) in buckets {
        hist.saturating_record_n(value.clamp(hist.low(), hist.high()), count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::record_us;

    /// The delta again, shaped for `source_count` sources.
    fn decode(wire: WireDelta, source_count: usize) -> Result<Delta, WireError> {
        let mut d = Delta::new(source_count);
        wire.merge_into(&mut d)?;
        Ok(d)
    }

    fn busy_delta() -> Delta {
        let mut d = Delta::new(2);
        d.attempted = 10;
        d.established = 7;
        d.closed_by_server = 1;
        for us in [40, 55, 1200, 90_000] {
            record_us(&mut d.connect_us, us);
        }
        d.record_server_close(1500, 49, 2100);
        d.record_failure(
            FailureEvent::example(LimitKind::PortExhaustion, 8, 0.5, 7),
            1,
        );
        d.record_failure(FailureEvent::example(LimitKind::Refused, 9, 0.25, 7), 0);
        d.note_active(8);
        d.sources[1].attempted = 4;
        d.warnings.port_search_slow = 3;
        let r = d.requests_mut();
        r.sent = 3;
        r.responses = 2;
        r.record_error(RequestErrorKind::ErrorReply, Some("-ERR x"));
        r.record_times(5, 700, 900);
        d
    }

    #[test]
    fn a_delta_survives_the_wire_and_merges_like_the_original() {
        let original = busy_delta();
        let line = serde_json::to_string(&WireDelta::from(&original)).unwrap();
        let wire: WireDelta = serde_json::from_str(&line).unwrap();
        let decoded = decode(wire, 2).unwrap();

        let (mut direct, mut via_wire) = (Delta::new(2), Delta::new(2));
        direct.merge(&original);
        via_wire.merge(&decoded);
        assert_eq!(WireDelta::from(&direct), WireDelta::from(&via_wire));
        assert_eq!(via_wire.connect_us.len(), 4);
        assert_eq!(via_wire.connect_us.max(), original.connect_us.max());
        assert_eq!(via_wire.first_limit.unwrap().attempt, 8);
        assert_eq!(via_wire.sources[1].attempted, 4);
        assert_eq!(via_wire.peak_active, 8);
        assert_eq!(via_wire.server_close_at_ms, Some((2100, 2100)));
        let requests = via_wire.requests.unwrap();
        assert_eq!((requests.sent, requests.responses), (3, 2));
        assert_eq!(requests.error_texts, vec!["-ERR x".to_string()]);
        assert_eq!(
            requests.total_us.max(),
            original.requests.unwrap().total_us.max()
        );
    }

    #[test]
    fn an_empty_delta_is_small() {
        let line = serde_json::to_string(&WireDelta::from(&Delta::new(80))).unwrap();
        assert!(line.len() < 600, "{} bytes: {line}", line.len());
    }

    #[test]
    fn a_bad_histogram_or_shape_is_an_error_not_a_panic() {
        let mut wire = WireDelta::from(&busy_delta());
        assert!(
            decode(wire.clone(), 1).is_err(),
            "more sources than the plan"
        );
        wire.failures_by_kind.pop();
        assert!(decode(wire, 2).is_err());
    }
}
