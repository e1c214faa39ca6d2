//! Mergeable run statistics: what workers record on the hot path and what
//! the aggregator turns into snapshots, per-second rows and the summary.
//!
//! Everything here merges by addition (counters add, HdrHistograms add,
//! first events keep the earliest, peaks and last times the highest), so the same code serves worker threads
//! now and worker processes or machines later. A worker records into its own
//! [`Delta`]; the [`Aggregator`] takes each worker's delta every tick, folds
//! it into the run's cumulative totals and publishes an immutable
//! [`Snapshot`].
//!
//! The counts follow one set of definitions (see [`crate::model::Totals`]):
//! an attempt ends established or failed to connect (`failed`), or is still
//! under way; an established connection ends closed by ceiling, closed by
//! the server or lost with a worker process, or is still held. The failure
//! kinds and groups count events: connect failures, server closes and
//! connections lost with a worker alike.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub mod requests;
pub mod wire;

use hdrhistogram::Histogram;

use crate::model::{
    ClosePattern, FailureEvent, LimitKind, Percentiles, STALL_MIN_SLOW_CALLS, SourceSummary,
    Spread, Syscall, Warnings,
};

/// Highest latency a histogram tracks, in microseconds (10 minutes); larger
/// values are clamped to it rather than dropped.
const HIST_MAX_US: u64 = 600_000_000;

/// A latency histogram in microseconds, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// The latency histograms' setting, as two ends of a fleet compare it
/// (their histograms add only if it is the same).
pub fn histogram_setting() -> String {
    let h = new_histogram();
    format!(
        "{}..{} us, {} significant figures",
        h.low(),
        h.high(),
        h.sigfig()
    )
}

/// Records one microsecond value, clamping to the histogram's range.
pub fn record_us(hist: &mut Histogram<u64>, us: u64) {
    hist.saturating_record(us.clamp(1, HIST_MAX_US));
}

/// A coarse histogram (2 significant figures) for counts and ages whose
/// shape matters more than their last digit.
pub fn new_coarse_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 2).expect("valid histogram bounds")
}

/// Min, p10, p50, p90 and max of a histogram; zeros when empty.
pub fn spread(hist: &Histogram<u64>) -> Spread {
    if hist.is_empty() {
        return Spread::default();
    }
    Spread {
        min: hist.min(),
        p10: hist.value_at_quantile(0.10),
        p50: hist.value_at_quantile(0.50),
        p90: hist.value_at_quantile(0.90),
        max: hist.max(),
    }
}

/// Percentiles of a histogram; all zero when it is empty.
pub fn percentiles(hist: &Histogram<u64>) -> Percentiles {
    if hist.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: hist.len(),
        min: hist.min(),
        mean: hist.mean(),
        p50: hist.value_at_quantile(0.50),
        p90: hist.value_at_quantile(0.90),
        p99: hist.value_at_quantile(0.99),
        p999: hist.value_at_quantile(0.999),
        max: hist.max(),
    }
}

/// One worker's latencies, summed over its reports: what a fleet's host
/// measured itself (connect, and total in request mode), where the run's
/// histograms hold every host's at once.
#[derive(Debug, Clone)]
pub struct OwnLatency {
    connect_us: Histogram<u64>,
    total_us: Option<Histogram<u64>>,
}

impl Default for OwnLatency {
    fn default() -> Self {
        OwnLatency {
            connect_us: new_histogram(),
            total_us: None,
        }
    }
}

impl OwnLatency {
    /// Adds a report's latencies.
    pub fn add(&mut self, delta: &Delta) {
        // The same bounds on both sides: adding cannot fail.
        let _ = self.connect_us.add(&delta.connect_us);
        if let Some(r) = &delta.requests {
            let _ = self
                .total_us
                .get_or_insert_with(new_histogram)
                .add(&r.total_us);
        }
    }

    /// Percentiles by metric, named as the summary's `latency`; empty
    /// when nothing was measured.
    pub fn percentiles(&self) -> BTreeMap<String, Percentiles> {
        let mut out = BTreeMap::new();
        if !self.connect_us.is_empty() {
            out.insert("connect_us".to_string(), percentiles(&self.connect_us));
        }
        if let Some(total) = self.total_us.as_ref().filter(|h| !h.is_empty()) {
            out.insert("total_us".to_string(), percentiles(total));
        }
        out
    }
}

/// Key of a failure group: what failed, how, with which errno.
pub type GroupKey = (LimitKind, Syscall, Option<i32>);

/// Failures sharing a [`GroupKey`]: a count and the first event only.
#[derive(Debug, Clone)]
pub struct GroupStats {
    pub count: u64,
    pub first: FailureEvent,
    pub last_elapsed_s: f64,
}

impl GroupStats {
    fn merge(&mut self, other: &GroupStats) {
        self.count += other.count;
        if other.first.elapsed_s < self.first.elapsed_s {
            self.first = other.first.clone();
        }
        self.last_elapsed_s = self.last_elapsed_s.max(other.last_elapsed_s);
    }
}

/// Per source IP counters; "in use" is established minus closed; `failed`
/// counts connect failures only (server closes are in `closed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceCounters {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub closed: u64,
}

impl SourceCounters {
    fn merge(&mut self, other: &SourceCounters) {
        self.attempted += other.attempted;
        self.established += other.established;
        self.failed += other.failed;
        self.closed += other.closed;
    }

    /// Connections from this source held now (cumulative counters only).
    pub fn in_use(&self) -> u64 {
        self.established.saturating_sub(self.closed)
    }
}

/// Everything one worker recorded since its delta was last taken. Merging
/// deltas in any order gives the same totals.
#[derive(Debug, Clone)]
pub struct Delta {
    pub attempted: u64,
    pub established: u64,
    /// Attempts that ended without a connection (connect failures); not
    /// server closes nor connections lost with a worker.
    pub failed: u64,
    pub closed_by_driver: u64,
    pub closed_by_server: u64,
    /// Held connections lost with a worker process that died (the kernel
    /// closed them): not in `closed_by_driver`.
    pub lost_with_worker: u64,
    /// Most connections held at once, noted where the count goes up and
    /// with every event's active count (merges by max). With threads it is
    /// the run-wide count; a worker process's is its own, which its relay
    /// turns into a run-wide figure.
    pub peak_active: u64,
    /// Milliseconds after the run's start of the first and the last close
    /// by the target (merge by min and max).
    pub server_close_at_ms: Option<(u64, u64)>,
    /// Seconds after the run's start at which the latest connection was
    /// established (merges by max).
    pub last_established_s: f64,
    pub failures_by_kind: [u64; LimitKind::ALL.len()],
    pub groups: HashMap<GroupKey, GroupStats>,
    /// Earliest failure whose kind is a limit.
    pub first_limit: Option<FailureEvent>,
    pub warnings: Warnings,
    pub connect_us: Histogram<u64>,
    pub rtt_us: Histogram<u64>,
    /// Age at close of the held connections the target closed, ms + 1
    /// (histograms start at 1).
    pub server_close_age_ms: Histogram<u64>,
    /// Others held when the target closed one, + 1.
    pub server_close_others: Histogram<u64>,
    /// Indexed like the plan's source list.
    pub sources: Vec<SourceCounters>,
    /// Request mode's figures; None until a request is recorded (other
    /// modes never pay for its histograms).
    pub requests: Option<Box<requests::RequestDelta>>,
}

impl Delta {
    pub fn new(source_count: usize) -> Delta {
        Delta::with_histograms(source_count, new_histogram, new_coarse_histogram)
    }

    /// An empty delta whose histograms take no room: counters to merge
    /// with [`Delta::merge_counters`].
    pub fn counters_only(source_count: usize) -> Delta {
        let tiny = || Histogram::new_with_bounds(1, 2, 1).expect("valid histogram bounds");
        Delta::with_histograms(source_count, tiny, tiny)
    }

    /// An empty delta; `fine` makes the latency histograms, `coarse` the
    /// server-close ones.
    fn with_histograms(
        source_count: usize,
        fine: fn() -> Histogram<u64>,
        coarse: fn() -> Histogram<u64>,
    ) -> Delta {
        Delta {
            attempted: 0,
            established: 0,
            failed: 0,
            closed_by_driver: 0,
            closed_by_server: 0,
            lost_with_worker: 0,
            peak_active: 0,
            server_close_at_ms: None,
            last_established_s: 0.0,
            failures_by_kind: [0; LimitKind::ALL.len()],
            groups: HashMap::new(),
            first_limit: None,
            warnings: Warnings::default(),
            connect_us: fine(),
            rtt_us: fine(),
            server_close_age_ms: coarse(),
            server_close_others: coarse(),
            sources: vec![SourceCounters::default(); source_count],
            requests: None,
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Delta) {
        self.merge_counters(other);
        self.connect_us
            .add(&other.connect_us)
            .expect("histograms share bounds");
        self.rtt_us
            .add(&other.rtt_us)
            .expect("histograms share bounds");
        self.server_close_age_ms
            .add(&other.server_close_age_ms)
            .expect("histograms share bounds");
        self.server_close_others
            .add(&other.server_close_others)
            .expect("histograms share bounds");
        if let Some(theirs) = &other.requests {
            self.requests_mut().merge(theirs);
        }
    }

    /// Request mode's figures, made on first use.
    pub fn requests_mut(&mut self) -> &mut requests::RequestDelta {
        self.requests.get_or_insert_with(Default::default)
    }

    /// Adds everything of `other` but its histograms into `self`.
    pub fn merge_counters(&mut self, other: &Delta) {
        self.attempted += other.attempted;
        self.established += other.established;
        self.failed += other.failed;
        self.closed_by_driver += other.closed_by_driver;
        self.lost_with_worker += other.lost_with_worker;
        self.note_active(other.peak_active);
        if let Some((first, last)) = other.server_close_at_ms {
            self.note_close_at(first);
            self.note_close_at(last);
        }
        self.last_established_s = self.last_established_s.max(other.last_established_s);
        self.closed_by_server += other.closed_by_server;
        for (mine, theirs) in self.failures_by_kind.iter_mut().zip(other.failures_by_kind) {
            *mine += theirs;
        }
        for (key, group) in &other.groups {
            match self.groups.get_mut(key) {
                Some(mine) => mine.merge(group),
                None => {
                    self.groups.insert(*key, group.clone());
                }
            }
        }
        if let Some(event) = &other.first_limit {
            keep_earliest(&mut self.first_limit, event);
        }
        let (w, o) = (&mut self.warnings, &other.warnings);
        w.port_search_slow += o.port_search_slow;
        w.port_search_stall_seconds += o.port_search_stall_seconds;
        w.connect_syscall_max_us = w.connect_syscall_max_us.max(o.connect_syscall_max_us);
        w.syn_retransmit_handshakes += o.syn_retransmit_handshakes;
        w.echo_unanswered += o.echo_unanswered;
        w.echo_silent_connections += o.echo_silent_connections;
        w.echo_silent_first_attempt =
            match (w.echo_silent_first_attempt, o.echo_silent_first_attempt) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        if self.sources.len() < other.sources.len() {
            self.sources
                .resize(other.sources.len(), SourceCounters::default());
        }
        for (mine, theirs) in self.sources.iter_mut().zip(&other.sources) {
            mine.merge(theirs);
        }
    }

    /// Returns what was recorded and leaves `self` empty (same shape).
    pub fn take(&mut self) -> Delta {
        let empty = Delta::new(self.sources.len());
        std::mem::replace(self, empty)
    }

    /// Empties `self` in place, keeping its allocations: a histogram is
    /// cleared only if something was recorded in it (clearing is a pass
    /// over all its buckets).
    pub fn reset(&mut self) {
        self.attempted = 0;
        self.established = 0;
        self.failed = 0;
        self.closed_by_driver = 0;
        self.closed_by_server = 0;
        self.lost_with_worker = 0;
        self.peak_active = 0;
        self.server_close_at_ms = None;
        self.last_established_s = 0.0;
        self.failures_by_kind = [0; LimitKind::ALL.len()];
        self.groups.clear();
        self.first_limit = None;
        self.warnings = Warnings::default();
        for hist in [
            &mut self.connect_us,
            &mut self.rtt_us,
            &mut self.server_close_age_ms,
            &mut self.server_close_others,
        ] {
            if !hist.is_empty() {
                hist.reset();
            }
        }
        self.sources.fill(SourceCounters::default());
        if let Some(requests) = &mut self.requests {
            requests.reset();
        }
    }

    /// Notes an active count seen: the peak keeps the highest.
    pub fn note_active(&mut self, active: u64) {
        self.peak_active = self.peak_active.max(active);
    }

    fn note_close_at(&mut self, at_ms: u64) {
        self.server_close_at_ms = Some(match self.server_close_at_ms {
            None => (at_ms, at_ms),
            Some((first, last)) => (first.min(at_ms), last.max(at_ms)),
        });
    }

    /// Records that the target closed a held connection of this age while
    /// `others` more were held, `at_ms` after the run's start (the caller
    /// counts it in `closed_by_server` and records its event).
    pub fn record_server_close(&mut self, age_ms: u64, others: u64, at_ms: u64) {
        self.note_close_at(at_ms);
        self.server_close_age_ms
            .saturating_record(age_ms.saturating_add(1).min(HIST_MAX_US));
        self.server_close_others
            .saturating_record(others.saturating_add(1).min(HIST_MAX_US));
    }

    /// How the target's closes were spread; None when it closed none.
    pub fn close_pattern(&self) -> Option<ClosePattern> {
        let closes = self.server_close_age_ms.len();
        let minus_one = |s: Spread| Spread {
            min: s.min - 1,
            p10: s.p10 - 1,
            p50: s.p50 - 1,
            p90: s.p90 - 1,
            max: s.max - 1,
        };
        let (first_at_ms, last_at_ms) = self.server_close_at_ms.unwrap_or_default();
        (closes > 0).then(|| ClosePattern {
            closes,
            age_ms: minus_one(spread(&self.server_close_age_ms)),
            others_held: minus_one(spread(&self.server_close_others)),
            first_at_ms,
            last_at_ms,
        })
    }

    /// Attempts started whose connect has not resolved yet (cumulative
    /// counters only).
    pub fn in_flight(&self) -> u64 {
        self.attempted
            .saturating_sub(self.established + self.failed)
    }

    /// Connections established and not yet closed nor lost.
    pub fn active(&self) -> u64 {
        self.established
            .saturating_sub(self.closed_by_driver + self.closed_by_server + self.lost_with_worker)
    }

    /// Records a limit seen without a failed attempt of its own (a worker
    /// process killed with nothing under way): a candidate first limit.
    pub fn record_limit_seen(&mut self, event: &FailureEvent) {
        if event.kind.is_limit() {
            keep_earliest(&mut self.first_limit, event);
        }
    }

    /// Records a worker process's death: `held` connections lost with it,
    /// `in_flight` attempts under way that now never connect, each a
    /// failure like `event` (none of them per source).
    pub fn record_worker_loss(&mut self, event: &FailureEvent, held: u64, in_flight: u64) {
        self.lost_with_worker += held;
        self.failed += in_flight;
        let count = held + in_flight;
        if count == 0 {
            return;
        }
        self.record_event(event.clone());
        let more = count - 1;
        self.failures_by_kind[event.kind.index()] += more;
        if let Some(group) = self
            .groups
            .get_mut(&(event.kind, event.syscall, event.errno))
        {
            group.count += more;
        }
    }

    /// Records an attempt that ended without a connection: a connect
    /// failure and its event.
    pub fn record_failure(&mut self, event: FailureEvent, source_index: usize) {
        self.failed += 1;
        if let Some(source) = self.sources.get_mut(source_index) {
            source.failed += 1;
        }
        self.record_event(event);
    }

    /// Records a failure event (a connect failure, a held connection the
    /// server ended, a connection lost with a worker) in the kinds, the
    /// groups and the first limit; the caller counts what it ended.
    pub fn record_event(&mut self, event: FailureEvent) {
        self.failures_by_kind[event.kind.index()] += 1;
        self.note_active(event.active);
        if event.kind.is_limit() {
            keep_earliest(&mut self.first_limit, &event);
        }
        let key = (event.kind, event.syscall, event.errno);
        match self.groups.get_mut(&key) {
            Some(group) => {
                group.count += 1;
                group.last_elapsed_s = group.last_elapsed_s.max(event.elapsed_s);
            }
            None => {
                let last_elapsed_s = event.elapsed_s;
                self.groups.insert(
                    key,
                    GroupStats {
                        count: 1,
                        first: event,
                        last_elapsed_s,
                    },
                );
            }
        }
    }
}

fn keep_earliest(slot: &mut Option<FailureEvent>, event: &FailureEvent) {
    let earlier = match slot {
        None => true,
        Some(current) => (event.elapsed_s, event.attempt) < (current.elapsed_s, current.attempt),
    };
    if earlier {
        *slot = Some(event.clone());
    }
}

/// Where the run is, for the progress line and the time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Still opening connections.
    Opening,
    /// Every attempt made; holding what was established.
    Holding,
    /// Stopping: closing what is held.
    Draining,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Opening => "opening",
            Phase::Holding => "holding",
            Phase::Draining => "draining",
            Phase::Done => "done",
        }
    }
}

/// One second of the run: a row of `timeseries.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondRow {
    /// Whole seconds since start at the end of this row's interval.
    pub elapsed_s: u64,
    /// Wall-clock time at the end of the interval, RFC 3339 UTC.
    pub utc: String,
    pub attempted: u64,
    pub established: u64,
    /// Connect failures so far (attempts that never established).
    pub failed: u64,
    pub active: u64,
    /// Connects per second asked for over the interval: the rate profile's
    /// mean over it, counting 0 while paused and once every attempt has
    /// started, i.e. the attempts scheduled in the interval per second
    /// (comparable with `attempt_rate_per_s`, row by row). In request mode
    /// the requests asked for instead (the pool's connects are unpaced),
    /// from the pool's opening to the run's end: comparable with
    /// [`RequestRow::sent_per_s`] and `rejects_per_s`.
    pub target_rate_per_s: f64,
    /// Attempts started during the interval, per second.
    pub attempt_rate_per_s: f64,
    /// Connections established during the interval, per second.
    pub establish_rate_per_s: f64,
    /// Failures during the interval, indexed like [`LimitKind::ALL`].
    pub failures_by_kind: [u64; LimitKind::ALL.len()],
    pub syn_retransmit_handshakes: u64,
    pub port_search_slow: u64,
    /// Connect latency of the connections established during the interval.
    pub connect: Percentiles,
    /// Cores of CPU ceiling's own processes (coordinator and workers, not
    /// its built-in server) used over the last second read: the generator's
    /// load. None: not read.
    pub driver_cpu_cores: Option<f64>,
    /// Request mode's second.
    pub requests: Option<RequestRow>,
}

/// Request mode's figures of one second.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestRow {
    pub sent_per_s: f64,
    pub responses_per_s: f64,
    pub errors_per_s: f64,
    pub rejects_per_s: f64,
    /// Requests waiting for a connection at the row's end.
    pub queue_depth: u64,
    /// Connections with a request in flight at the row's end.
    pub busy: u64,
    /// Total latency (from the intended time) of the second's responses.
    pub total: Percentiles,
}

/// One second's latency histograms, cut with its [`SecondRow`]: what a
/// `<metric>.hlog` interval holds. Moved out of the aggregator's second (no
/// copy), so the whole run's histogram is exactly the sum of its intervals.
#[derive(Debug, Clone)]
pub struct IntervalHistograms {
    /// The end of the interval: its row's `utc` (RFC 3339 UTC).
    pub utc: String,
    pub connect_us: Histogram<u64>,
    pub rtt_us: Histogram<u64>,
    /// Request mode only: the second's queue, service and total latency.
    pub requests: Option<Box<RequestIntervals>>,
}

/// A request run's latency histograms of one interval.
#[derive(Debug, Clone)]
pub struct RequestIntervals {
    pub queue_us: Histogram<u64>,
    pub service_us: Histogram<u64>,
    pub total_us: Histogram<u64>,
}

/// The run as of one tick; immutable once published.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub phase: Phase,
    pub target_rate_per_s: f64,
    pub planned_connections: u64,
    /// Everything recorded since the start.
    pub total: Delta,
    /// Most connections held at once: at least every active count the run
    /// reported (rows, events, workers).
    pub peak_active: u64,
    /// Highest `in_use` seen per source, indexed like `total.sources`.
    pub peak_ports_in_use: Vec<u64>,
    /// Rows completed so far (only the newest are kept, see
    /// [`Aggregator::take_rows`]).
    pub last_row: Option<SecondRow>,
}

impl Snapshot {
    pub fn active(&self) -> u64 {
        self.total.active()
    }

    /// Per source rows for `sources.csv` and the summary.
    pub fn source_summaries(&self, source_names: &[String]) -> Vec<SourceSummary> {
        source_names
            .iter()
            .zip(&self.total.sources)
            .zip(&self.peak_ports_in_use)
            .map(|((name, counters), peak)| SourceSummary {
                source: name.clone(),
                attempted: counters.attempted,
                established: counters.established,
                failed: counters.failed,
                peak_ports_in_use: *peak,
            })
            .collect()
    }
}

/// Folds worker deltas into cumulative totals and per-second rows.
pub struct Aggregator {
    total: Delta,
    /// What happened since the last completed second.
    second: Delta,
    peak_active: u64,
    peak_ports_in_use: Vec<u64>,
    planned_connections: u64,
    /// Rows completed but not yet handed to a sink.
    pending_rows: Vec<SecondRow>,
    /// Their seconds' histograms, one per row, not yet handed to a sink.
    pending_intervals: Vec<IntervalHistograms>,
    last_row: Option<SecondRow>,
    next_row_at: u64,
    /// Elapsed seconds at which the row being gathered began (the previous
    /// row's cut).
    row_began_s: f64,
    /// The target rate integrated over time since the last row: attempts
    /// the profile scheduled in the interval.
    target_scheduled: f64,
    /// The previous tick's elapsed seconds and target rate.
    last_target: Option<(f64, f64)>,
    /// The generator's own CPU as last read ([`Self::set_driver_cpu`]).
    driver_cpu_cores: Option<f64>,
}

impl Aggregator {
    pub fn new(source_count: usize, planned_connections: u64) -> Aggregator {
        Aggregator {
            total: Delta::new(source_count),
            second: Delta::new(source_count),
            peak_active: 0,
            peak_ports_in_use: vec![0; source_count],
            planned_connections,
            pending_rows: Vec::new(),
            pending_intervals: Vec::new(),
            last_row: None,
            next_row_at: 1,
            row_began_s: 0.0,
            target_scheduled: 0.0,
            last_target: None,
            driver_cpu_cores: None,
        }
    }

    /// Adds one worker's delta.
    pub fn absorb(&mut self, delta: &Delta) {
        self.total.merge(delta);
        self.second.merge(delta);
        self.peak_active = self
            .peak_active
            .max(self.total.peak_active)
            .max(self.total.active());
        for (peak, counters) in self.peak_ports_in_use.iter_mut().zip(&self.total.sources) {
            *peak = (*peak).max(counters.in_use());
        }
    }

    /// Closes every whole second that `elapsed` has passed (the final call
    /// passes `force_row` to close the partial last second too) and returns
    /// the snapshot.
    pub fn snapshot(
        &mut self,
        elapsed: Duration,
        phase: Phase,
        target_rate_per_s: f64,
        utc_now: impl Fn() -> String,
        force_row: bool,
    ) -> Snapshot {
        self.integrate_target(elapsed, target_rate_per_s);
        let whole_seconds = elapsed.as_secs();
        if whole_seconds >= self.next_row_at || (force_row && self.second_has_data(elapsed)) {
            // Rows are cut at tick time: a tick that runs late folds its
            // extra milliseconds into that row rather than inventing empty
            // rows in between, and the next row's interval starts there.
            let span = (elapsed.as_secs_f64() - self.row_began_s).max(1e-3);
            self.row_began_s = elapsed.as_secs_f64();
            let interval = self.second.take();
            let slow = interval.warnings.port_search_slow;
            if slow >= STALL_MIN_SLOW_CALLS && slow * 2 >= interval.attempted {
                self.total.warnings.port_search_stall_seconds += 1;
            }
            let utc = utc_now();
            let row = SecondRow {
                elapsed_s: whole_seconds.max(self.next_row_at),
                utc: utc.clone(),
                attempted: self.total.attempted,
                established: self.total.established,
                failed: self.total.failed,
                active: self.total.active(),
                target_rate_per_s: std::mem::take(&mut self.target_scheduled) / span,
                attempt_rate_per_s: interval.attempted as f64 / span,
                establish_rate_per_s: interval.established as f64 / span,
                failures_by_kind: interval.failures_by_kind,
                syn_retransmit_handshakes: interval.warnings.syn_retransmit_handshakes,
                port_search_slow: interval.warnings.port_search_slow,
                connect: percentiles(&interval.connect_us),
                driver_cpu_cores: self.driver_cpu_cores,
                requests: self.total.requests.as_deref().map(|total| {
                    let second = interval.requests.as_deref().cloned().unwrap_or_default();
                    RequestRow {
                        sent_per_s: second.sent as f64 / span,
                        responses_per_s: second.responses as f64 / span,
                        errors_per_s: second.error_count() as f64 / span,
                        rejects_per_s: second.rejects as f64 / span,
                        queue_depth: total.queue_depth(),
                        busy: total.in_flight(),
                        total: percentiles(&second.total_us),
                    }
                }),
            };
            self.next_row_at = whole_seconds.max(self.next_row_at) + 1;
            self.pending_rows.push(row.clone());
            self.last_row = Some(row);
            // A request run has an interval of each request metric every
            // second, empty or not, so its logs align with the others.
            let requests = self.total.requests.is_some().then(|| {
                let r = interval.requests.map(|r| *r).unwrap_or_default();
                Box::new(RequestIntervals {
                    queue_us: r.queue_us,
                    service_us: r.service_us,
                    total_us: r.total_us,
                })
            });
            self.pending_intervals.push(IntervalHistograms {
                utc,
                connect_us: interval.connect_us,
                rtt_us: interval.rtt_us,
                requests,
            });
        }
        Snapshot {
            elapsed,
            phase,
            target_rate_per_s,
            planned_connections: self.planned_connections,
            total: self.total.clone(),
            peak_active: self.peak_active,
            peak_ports_in_use: self.peak_ports_in_use.clone(),
            last_row: self.last_row.clone(),
        }
    }

    /// Adds the attempts the rate profile scheduled since the last tick:
    /// the trapezoid between the last tick's target rate and this one's
    /// (exact for a ramp; the tick the opening ends in counts half). The
    /// first tick's rate stands for the time before it.
    fn integrate_target(&mut self, elapsed: Duration, rate: f64) {
        let now = elapsed.as_secs_f64();
        let (then, rate_then) = self.last_target.unwrap_or((0.0, rate));
        self.target_scheduled += (rate_then + rate) / 2.0 * (now - then).max(0.0);
        self.last_target = Some((now, rate));
    }

    fn second_has_data(&self, elapsed: Duration) -> bool {
        elapsed.as_secs_f64() > (self.next_row_at - 1) as f64 + 0.05
            || self.second.attempted > 0
            || self.second.established > 0
            || self.second.failed > 0
            // Latencies recorded late in the run (echo replies) belong to
            // an interval too: the intervals add up to the whole run.
            || !self.second.connect_us.is_empty()
            || !self.second.rtt_us.is_empty()
            // So do a request run's last requests and responses.
            || self.second.requests.as_deref().is_some_and(|r| {
                r.scheduled > 0 || r.sent > 0 || !r.queue_us.is_empty() || !r.total_us.is_empty()
            })
    }

    /// Attempts whose connect has not resolved yet, run-wide.
    pub fn in_flight(&self) -> u64 {
        self.total.in_flight()
    }

    /// The generator's own CPU, in cores, as last read: goes into the next
    /// rows.
    pub fn set_driver_cpu(&mut self, cores: f64) {
        self.driver_cpu_cores = Some(cores);
    }

    /// Rows completed since the last call, oldest first.
    pub fn take_rows(&mut self) -> Vec<SecondRow> {
        std::mem::take(&mut self.pending_rows)
    }

    /// The histograms of the rows completed since the last call, one per
    /// row, oldest first (take them as often as the rows: each holds two
    /// full histograms).
    pub fn take_intervals(&mut self) -> Vec<IntervalHistograms> {
        std::mem::take(&mut self.pending_intervals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: LimitKind, elapsed_s: f64, attempt: u64) -> FailureEvent {
        FailureEvent::example(kind, attempt, elapsed_s, 0)
    }

    #[test]
    fn merge_adds_counts_histograms_and_keeps_earliest_limit() {
        let mut a = Delta::new(2);
        a.attempted = 3;
        a.established = 2;
        record_us(&mut a.connect_us, 100);
        a.record_failure(event(LimitKind::PortExhaustion, 2.0, 12), 0);
        let mut b = Delta::new(2);
        b.attempted = 5;
        b.established = 5;
        b.closed_by_driver = 1;
        record_us(&mut b.connect_us, 300);
        b.record_failure(event(LimitKind::PortExhaustion, 1.5, 13), 1);
        b.record_failure(event(LimitKind::Refused, 0.5, 1), 1);

        let mut merged = Delta::new(2);
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged.attempted, 8);
        assert_eq!(merged.failed, 3);
        assert_eq!(merged.active(), 6);
        assert_eq!(merged.connect_us.len(), 2);
        assert!(merged.close_pattern().is_none());
        // Refused is not a limit: the first limit is the earliest limit.
        assert_eq!(merged.first_limit.as_ref().unwrap().attempt, 13);
        let group = &merged.groups[&(
            LimitKind::PortExhaustion,
            Syscall::Connect,
            Some(libc::EADDRNOTAVAIL),
        )];
        assert_eq!(group.count, 2);
        assert_eq!(group.first.attempt, 13);
        assert_eq!(group.last_elapsed_s, 2.0);
        assert_eq!(merged.sources[1].failed, 2);
        assert_eq!(merged.failures_by_kind[LimitKind::Refused.index()], 1);
    }

    #[test]
    fn server_closes_merge_into_one_pattern() {
        let mut a = Delta::new(0);
        a.record_server_close(60_000, 10, 61_000);
        a.record_server_close(60_010, 30, 65_500);
        let mut b = Delta::new(0);
        b.record_server_close(59_990, 20, 60_990);
        let mut merged = Delta::new(0);
        merged.merge(&a);
        merged.merge(&b);
        let p = merged.close_pattern().unwrap();
        assert_eq!(p.closes, 3);
        // 2 significant figures: 60,000 ± 1%.
        assert!((59_400..=60_600).contains(&p.age_ms.p50), "{p:?}");
        assert_eq!((p.others_held.min, p.others_held.max), (10, 30));
        // When they came merges by min and max, like the ages.
        assert_eq!((p.first_at_ms, p.last_at_ms), (60_990, 65_500));
    }

    /// A delta where each of `held` connections was established (noting
    /// the run-wide count then) and each of `closes` ended as `end` says.
    fn held(n: u64) -> Delta {
        let mut d = Delta::new(1);
        for i in 1..=n {
            d.attempted += 1;
            d.established += 1;
            d.note_active(i);
        }
        d
    }

    #[test]
    fn every_attempt_and_connection_ends_in_exactly_one_count() {
        // 120 established, all closed by the server: 0 connect failures,
        // though 120 failure events.
        let mut d = held(120);
        for i in 0..120 {
            d.closed_by_server += 1;
            d.record_server_close(2_000, 119 - i, 3_400);
            d.record_event(FailureEvent {
                syscall: Syscall::Read,
                errno: None,
                ..event(LimitKind::ServerClosed, 3.4, i + 1)
            });
        }
        assert_eq!(d.failed, 0);
        assert_eq!(d.failures_by_kind[LimitKind::ServerClosed.index()], 120);
        assert_eq!(d.active(), 0);
        assert_eq!(d.in_flight(), 0);
        // attempted = established + connect failures + under way.
        d.attempted += 3;
        d.record_failure(event(LimitKind::Refused, 3.5, 121), 0);
        assert_eq!(d.attempted, d.established + d.failed + d.in_flight());
        assert_eq!(d.in_flight(), 2);
        assert_eq!(d.sources[0].failed, 1);
    }

    #[test]
    fn a_dead_workers_connections_are_lost_not_closed_nor_other_errors() {
        let mut d = held(10);
        d.attempted += 4; // 4 under way
        let death = FailureEvent {
            syscall: Syscall::WorkerExit,
            errno: None,
            ..event(LimitKind::LostWithWorker, 2.0, 15)
        };
        d.record_worker_loss(&death, 10, 4);
        assert_eq!(d.lost_with_worker, 10);
        assert_eq!(d.closed_by_driver, 0);
        assert_eq!(d.active(), 0);
        assert_eq!(d.failed, 4, "its attempts under way are connect failures");
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.failures_by_kind[LimitKind::LostWithWorker.index()], 14);
        assert_eq!(d.failures_by_kind[LimitKind::Other.index()], 0);
        let group = &d.groups[&(LimitKind::LostWithWorker, Syscall::WorkerExit, None)];
        assert_eq!(group.count, 14);
        // Not a limit: no first limit from a crash.
        assert!(d.first_limit.is_none());
    }

    #[test]
    fn the_peak_is_exact_not_sampled() {
        // 100 connections up and 60 down within one tick: a sample at the
        // tick sees 40, the peak noted where the count went up is 100.
        let mut agg = Aggregator::new(1, 100);
        let mut d = held(100);
        d.closed_by_driver = 60;
        agg.absorb(&d);
        let snap = agg.snapshot(
            Duration::from_secs(1),
            Phase::Opening,
            0.0,
            String::new,
            true,
        );
        assert_eq!(snap.active(), 40);
        assert_eq!(snap.peak_active, 100);
        // An event's active count raises the peak too (it is a count the
        // run reported), and peaks merge by max, not by sum.
        let mut e = Delta::new(1);
        e.record_failure(
            FailureEvent {
                active: 105,
                ..event(LimitKind::PortExhaustion, 1.1, 102)
            },
            0,
        );
        agg.absorb(&e);
        agg.absorb(&held(30));
        let snap = agg.snapshot(
            Duration::from_secs(2),
            Phase::Opening,
            0.0,
            String::new,
            true,
        );
        assert_eq!(snap.peak_active, 105);
        assert!(snap.peak_active >= snap.total.first_limit.as_ref().unwrap().active);
    }

    #[test]
    fn the_seconds_histograms_add_up_to_the_whole_runs() {
        let mut agg = Aggregator::new(0, 100);
        let mut d = Delta::new(0);
        d.attempted = 1;
        d.established = 1;
        record_us(&mut d.connect_us, 100);
        agg.absorb(&d);
        agg.snapshot(
            Duration::from_millis(1000),
            Phase::Holding,
            0.0,
            || "t1".into(),
            false,
        );
        // An echo reply 20 ms into the last second, and nothing else.
        let mut late = Delta::new(0);
        record_us(&mut late.rtt_us, 50);
        agg.absorb(&late);
        let last = agg.snapshot(
            Duration::from_millis(1020),
            Phase::Done,
            0.0,
            || "t2".into(),
            true,
        );
        let rows = agg.take_rows();
        let intervals = agg.take_intervals();
        assert_eq!(intervals.len(), rows.len());
        for (row, interval) in rows.iter().zip(&intervals) {
            assert_eq!(row.utc, interval.utc);
            assert_eq!(row.connect.count, interval.connect_us.len());
        }
        let sum = |f: fn(&IntervalHistograms) -> u64| intervals.iter().map(f).sum::<u64>();
        assert_eq!(sum(|i| i.connect_us.len()), last.total.connect_us.len());
        assert_eq!(sum(|i| i.rtt_us.len()), last.total.rtt_us.len());
        assert_eq!(last.total.rtt_us.len(), 1);
    }

    #[test]
    fn take_leaves_an_empty_delta_of_the_same_shape() {
        let mut d = Delta::new(3);
        d.attempted = 4;
        record_us(&mut d.rtt_us, 10);
        let taken = d.take();
        assert_eq!(taken.attempted, 4);
        assert_eq!(d.attempted, 0);
        assert!(d.rtt_us.is_empty());
        assert_eq!(d.sources.len(), 3);
    }

    #[test]
    fn aggregator_cuts_one_row_per_second_with_interval_rates() {
        let mut agg = Aggregator::new(1, 100);
        let mut d = Delta::new(1);
        d.attempted = 10;
        d.established = 10;
        agg.absorb(&d);
        let snap = agg.snapshot(
            Duration::from_millis(500),
            Phase::Opening,
            20.0,
            String::new,
            false,
        );
        assert!(snap.last_row.is_none());
        assert_eq!(snap.peak_active, 10);
        agg.absorb(&d);
        let snap = agg.snapshot(
            Duration::from_millis(1000),
            Phase::Opening,
            20.0,
            String::new,
            false,
        );
        let row = snap.last_row.unwrap();
        assert_eq!(row.elapsed_s, 1);
        assert_eq!(row.attempted, 20);
        assert!((row.attempt_rate_per_s - 20.0).abs() < 1e-9);
        // A partial last second is closed only when forced.
        let mut closing = Delta::new(1);
        closing.closed_by_driver = 20;
        agg.absorb(&closing);
        let snap = agg.snapshot(
            Duration::from_millis(1500),
            Phase::Done,
            0.0,
            String::new,
            true,
        );
        let row = snap.last_row.unwrap();
        assert_eq!(row.elapsed_s, 2);
        assert_eq!(row.active, 0);
        assert_eq!(agg.take_rows().len(), 2);
        assert_eq!(snap.peak_active, 20);
    }

    #[test]
    fn a_rows_target_rate_is_the_mean_over_its_second_not_the_rate_at_its_end() {
        // A ramp 0..100/2s (50·t per s) sampled every 100 ms, whose attempts
        // have all started at 2.3 s: the engine then says 0.
        let mut agg = Aggregator::new(0, 1000);
        for tick in 1..=25_u64 {
            let t = tick as f64 / 10.0;
            let rate = if t <= 2.3 { 50.0 * t } else { 0.0 };
            agg.snapshot(
                Duration::from_millis(tick * 100),
                Phase::Opening,
                rate,
                String::new,
                tick == 25,
            );
        }
        let rows = agg.take_rows();
        let targets: Vec<f64> = rows.iter().map(|r| r.target_rate_per_s).collect();
        assert_eq!(rows.len(), 3, "{targets:?}");
        // The ramp's mean over [0,1) is 25, over [1,2) 75 (the first tick's
        // rate stands for the time before it: +0.25).
        assert!((targets[0] - 25.0).abs() < 0.5, "{targets:?}");
        assert!((targets[1] - 75.0).abs() < 1e-6, "{targets:?}");
        // The last, half second: ∫50t over [2,2.3] = 32.25 attempts, and
        // half the tick in which opening ended (5.75), over 0.5 s.
        assert!((targets[2] - 76.0).abs() < 1e-6, "{targets:?}");
    }

    #[test]
    fn a_late_cut_starts_the_next_rows_interval() {
        let mut agg = Aggregator::new(0, 1000);
        let mut d = Delta::new(0);
        d.attempted = 12;
        agg.absorb(&d);
        // The first row is cut 200 ms late: 12 attempts over 1.2 s.
        agg.snapshot(
            Duration::from_millis(1200),
            Phase::Opening,
            10.0,
            String::new,
            false,
        );
        d.attempted = 8;
        agg.absorb(&d);
        // The second, on time: 8 attempts over 0.8 s, not over 1 s.
        agg.snapshot(
            Duration::from_millis(2000),
            Phase::Opening,
            10.0,
            String::new,
            false,
        );
        let rows = agg.take_rows();
        let rates: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.attempt_rate_per_s, r.target_rate_per_s))
            .collect();
        for (attempts, target) in &rates {
            assert!((attempts - 10.0).abs() < 1e-9, "{rates:?}");
            assert!((target - 10.0).abs() < 1e-9, "{rates:?}");
        }
    }

    #[test]
    fn only_seconds_where_most_connects_were_slow_count_as_a_stall() {
        let mut agg = Aggregator::new(0, 1000);
        let second = |attempted, slow| {
            let mut d = Delta::new(0);
            d.attempted = attempted;
            d.warnings.port_search_slow = slow;
            d
        };
        // Isolated slow calls: 9 of 10, or 12 of 100, are not a stall.
        for (i, (attempted, slow)) in [(10, 9), (100, 12), (20, 10), (200, 150)]
            .into_iter()
            .enumerate()
        {
            agg.absorb(&second(attempted, slow));
            let snap = agg.snapshot(
                Duration::from_secs(i as u64 + 1),
                Phase::Opening,
                0.0,
                String::new,
                false,
            );
            let expected = [0, 0, 1, 2][i];
            assert_eq!(
                snap.total.warnings.port_search_stall_seconds, expected,
                "second {i}"
            );
        }
    }
}
