//! The run's summary from its last snapshot, the host readings and the
//! classifier's explanation of the first limit.

use std::time::SystemTime;

use crate::classify::{self, RunFacts, host};
use crate::model::{
    FailureEvent, FailureGroup, FirstLimit, HostReport, LimitKind, SCHEMA_VERSION, Safety, Summary,
    WorkersReport, errno_name,
};
use crate::scenario::Scenario;
use crate::scenario::units::DriverMode;
use crate::stats::{Snapshot, percentiles};

/// The first limit with its evidence and remedy.
pub fn explain_first_limit(
    event: &FailureEvent,
    start: &host::HostState,
    at_limit: &host::HostState,
    facts: &RunFacts,
) -> FirstLimit {
    let (evidence, remedy) = classify::explain(event, start, at_limit, facts);
    FirstLimit {
        kind: event.kind,
        errno: event.errno,
        errno_name: event.errno.and_then(errno_name).map(str::to_string),
        syscall: event.syscall,
        at_attempt: event.attempt,
        at_elapsed_s: event.elapsed_s,
        active_at: event.active,
        source: event.source.clone(),
        target: event.target.clone(),
        evidence,
        host: None,
        remedy,
    }
}

/// Host readings: at the start, when the first limit was seen, at the end.
pub struct Hosts<'a> {
    pub start: &'a host::HostState,
    pub at_limit: &'a host::HostState,
    pub end: &'a host::HostState,
}

/// The summary of a run; the caller fills in `workers`, `safety` and `lab`.
pub fn summarize(
    scenario: &Scenario,
    facts: &RunFacts,
    last: &Snapshot,
    hosts: Hosts<'_>,
    started_at: SystemTime,
    aborted: bool,
    (fd_soft, fd_hard): (u64, u64),
) -> Summary {
    let total = &last.total;
    // Counts that worker processes report are merged with the other
    // workers' as of their last reports, which can run a few ahead of any
    // real moment (two workers killed at once each count the other's
    // last figure): no count of held connections is more than were ever
    // established, and the peak is at least every count reported.
    let first_event = total.first_limit.clone().map(|mut event| {
        event.active = event.active.min(total.established);
        event
    });
    let peak_active = last
        .peak_active
        .max(first_event.as_ref().map_or(0, |e| e.active))
        .min(total.established);
    let first_limit = first_event
        .as_ref()
        .map(|event| explain_first_limit(event, hosts.start, hosts.at_limit, facts));
    let mut failures: Vec<FailureGroup> = total
        .groups
        .iter()
        .map(|(&(kind, syscall, errno), group)| FailureGroup {
            kind,
            syscall,
            errno,
            errno_name: errno.and_then(errno_name).map(str::to_string),
            count: group.count,
            first_attempt: group.first.attempt,
            first_elapsed_s: group.first.elapsed_s,
            last_elapsed_s: group.last_elapsed_s,
            source: group.first.source.clone(),
            target: group.first.target.clone(),
        })
        .collect();
    failures.sort_by(|a, b| a.first_elapsed_s.total_cmp(&b.first_elapsed_s));
    let mut latency = std::collections::BTreeMap::new();
    latency.insert("connect_us".to_string(), percentiles(&total.connect_us));
    if scenario.mode == DriverMode::Echo {
        latency.insert("rtt_us".to_string(), percentiles(&total.rtt_us));
    }
    let requests = (scenario.mode == DriverMode::Request).then(|| {
        let figures = total.requests.as_deref().cloned().unwrap_or_default();
        latency.insert("queue_us".to_string(), percentiles(&figures.queue_us));
        latency.insert("service_us".to_string(), percentiles(&figures.service_us));
        latency.insert("total_us".to_string(), percentiles(&figures.total_us));
        figures.summary()
    });
    let mut scenario_json = serde_json::to_value(scenario).unwrap_or_default();
    scenario_json["embedded_target"] = facts.embedded_target.into();
    let mut values = hosts.start.values.clone();
    values.insert("rlimit_nofile_soft".into(), fd_soft.into());
    values.insert("rlimit_nofile_hard".into(), fd_hard.into());
    let source_names: Vec<String> = scenario.sources.iter().map(ToString::to_string).collect();
    let totals = crate::model::Totals {
        attempted: total.attempted,
        established: total.established,
        connect_failed: total.failed,
        unfinished: total.in_flight(),
        // A reconnect (request mode) is an attempt beyond the plan's.
        never_attempted: scenario.connections.saturating_sub(
            total
                .attempted
                .saturating_sub(total.requests.as_ref().map_or(0, |r| r.reconnects)),
        ),
        peak_active,
        closed_by_driver: total.closed_by_driver,
        closed_by_server: total.closed_by_server,
        lost_with_worker: total.lost_with_worker,
        held_at_end: total.active(),
        last_established_s: total.last_established_s,
    };
    let failures_by_kind = LimitKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), total.failures_by_kind[k.index()]))
        .collect();
    let targets: Vec<String> = scenario.targets.iter().map(ToString::to_string).collect();
    Summary {
        schema_version: SCHEMA_VERSION,
        ceiling_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: scenario_json,
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        duration_s: last.elapsed.as_secs_f64(),
        aborted,
        nothing_connected: classify::nothing_connected(&totals, &failures_by_kind, &targets),
        totals,
        first_limit,
        failures_by_kind,
        failures,
        warnings: total.warnings.clone(),
        latency,
        requests,
        sources: if source_names.is_empty() {
            // No --source: the kernel chose, and every connection counts
            // against the one (kernel-chosen) source.
            vec![crate::model::SourceSummary {
                source: "(kernel-chosen)".into(),
                attempted: total.attempted,
                established: total.established,
                failed: total.failed,
                peak_ports_in_use: peak_active,
            }]
        } else {
            last.source_summaries(&source_names)
        },
        host: HostReport {
            values,
            counter_deltas: host::counter_deltas(hosts.start, hosts.end),
        },
        // Filled in by the caller, which knows the layout and the guard.
        workers: WorkersReport::default(),
        safety: Safety::default(),
        lab: None,
        targets_resolved: Vec::new(),
        merge: None,
        fleet: None,
    }
}
