//! Snapshot tests of every results file from one fixed run, the summary.json
//! schema, and the results directory's refusal to overwrite.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::model::{
    Evidence, FailureGroup, FirstLimit, HostReport, LimitKind, SCHEMA_VERSION, Safety,
    SourceSummary, Syscall, Totals, Warnings, WorkersReport,
};
use crate::stats::{Delta, Phase, SecondRow, percentiles, record_us};

/// A run of 2 sources against one target: ports ran out at attempt 28,230,
/// a few refusals, echo RTT measured.
fn fixture() -> (Summary, Snapshot) {
    let mut total = Delta::new(2);
    // Connect latency: a body around 100 µs to 2 ms and a slow tail.
    for i in 0..200_u64 {
        record_us(&mut total.connect_us, 80 + i * i / 20);
    }
    for us in [15_000, 48_000, 250_000] {
        record_us(&mut total.connect_us, us);
    }
    for i in 0..50_u64 {
        record_us(&mut total.rtt_us, 40 + 7 * i);
    }
    total.attempted = 28_236;
    total.established = 28_229;
    total.failed = 7;

    let mut latency = BTreeMap::new();
    latency.insert("connect_us".to_string(), percentiles(&total.connect_us));
    latency.insert("rtt_us".to_string(), percentiles(&total.rtt_us));

    let mut facts = BTreeMap::new();
    facts.insert("ip_local_port_range".to_string(), json!("32768 60999"));
    facts.insert("ports_per_source".to_string(), json!(28232));
    let first_limit = FirstLimit {
        kind: LimitKind::PortExhaustion,
        errno: Some(libc::EADDRNOTAVAIL),
        errno_name: Some("EADDRNOTAVAIL".into()),
        syscall: Syscall::Connect,
        at_attempt: 28_230,
        at_elapsed_s: 11.843,
        active_at: 28_229,
        source: "127.0.0.1".into(),
        target: "127.0.0.1:7070".into(),
        evidence: Evidence {
            message: "connect() returned EADDRNOTAVAIL with 28,229 connections held from \
                      127.0.0.1: ip_local_port_range 32768-60999 gives 28,232 ports per \
                      source IP and target"
                .into(),
            facts,
        },
        host: None,
        remedy: "add source IPs: --source 127.0.0.2-127.0.0.9".into(),
    };
    let failures = vec![
        FailureGroup {
            kind: LimitKind::PortExhaustion,
            syscall: Syscall::Connect,
            errno: Some(libc::EADDRNOTAVAIL),
            errno_name: Some("EADDRNOTAVAIL".into()),
            count: 4,
            first_attempt: 28_230,
            first_elapsed_s: 11.843,
            last_elapsed_s: 12.0104,
            source: "127.0.0.1".into(),
            target: "127.0.0.1:7070".into(),
        },
        FailureGroup {
            kind: LimitKind::Refused,
            syscall: Syscall::Connect,
            errno: Some(libc::ECONNREFUSED),
            errno_name: Some("ECONNREFUSED".into()),
            count: 2,
            first_attempt: 3,
            first_elapsed_s: 0.0021,
            last_elapsed_s: 0.0042,
            source: "127.0.0.2".into(),
            target: "127.0.0.1:7070".into(),
        },
        FailureGroup {
            kind: LimitKind::ConnectTimeout,
            syscall: Syscall::Timeout,
            errno: None,
            errno_name: None,
            count: 1,
            first_attempt: 28_101,
            first_elapsed_s: 11.5,
            last_elapsed_s: 11.5,
            source: "127.0.0.2".into(),
            target: "127.0.0.1:7070".into(),
        },
    ];
    let mut failures_by_kind = BTreeMap::new();
    for group in &failures {
        *failures_by_kind
            .entry(group.kind.as_str().to_string())
            .or_insert(0) += group.count;
    }
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        ceiling_version: "0.1.0".into(),
        scenario: json!({
            "name": "port-exhaustion",
            "targets": ["127.0.0.1:7070"],
            "sources": ["127.0.0.1", "127.0.0.2"],
            "connections": 60000,
        }),
        started_at: "2025-05-01T12:00:00Z".into(),
        duration_s: 12.34,
        aborted: false,
        totals: Totals {
            attempted: 28_236,
            established: 28_229,
            connect_failed: 7,
            unfinished: 0,
            never_attempted: 31_764,
            peak_active: 28_229,
            closed_by_driver: 28_229,
            closed_by_server: 0,
            lost_with_worker: 0,
            held_at_end: 0,
            last_established_s: 7.9,
        },
        nothing_connected: None,
        first_limit: Some(first_limit),
        failures_by_kind,
        failures,
        warnings: Warnings {
            port_search_slow: 12,
            port_search_stall_seconds: 1,
            connect_syscall_max_us: 1_840,
            syn_retransmit_handshakes: 3,
            echo_unanswered: 0,
            ..Default::default()
        },
        latency,
        requests: None,
        sources: vec![
            SourceSummary {
                source: "127.0.0.1".into(),
                attempted: 28_233,
                established: 28_229,
                failed: 4,
                peak_ports_in_use: 28_229,
            },
            SourceSummary {
                source: "127.0.0.2".into(),
                attempted: 3,
                established: 0,
                failed: 3,
                peak_ports_in_use: 0,
            },
        ],
        host: HostReport {
            values: [
                ("ip_local_port_range".to_string(), json!([32768, 60999])),
                (
                    "rlimit_nofile".to_string(),
                    json!({"soft": 1024, "hard": 524288}),
                ),
            ]
            .into(),
            counter_deltas: [("TcpExtListenOverflows".to_string(), 0)].into(),
        },
        workers: WorkersReport {
            processes: 0,
            threads_per_process: 2,
            reason: "worker threads in ceiling's own process".into(),
            deaths: vec![],
        },
        safety: Safety {
            plan: "host room: 1,000 sockets need ~0.0 GiB of kernel memory".into(),
            stopped: None,
        },
        lab: None,
        targets_resolved: Vec::new(),
        merge: None,
        fleet: None,
    };
    let snapshot = Snapshot {
        elapsed: Duration::from_millis(12_340),
        phase: Phase::Done,
        target_rate_per_s: 0.0,
        planned_connections: 60_000,
        total,
        peak_active: 28_229,
        peak_ports_in_use: vec![28_229, 0],
        last_row: None,
    };
    (summary, snapshot)
}

/// The same run, but nothing failed and no RTT was measured.
fn fixture_without_limit() -> (Summary, Snapshot) {
    let (mut summary, mut snapshot) = fixture();
    summary.first_limit = None;
    summary.failures.clear();
    summary.failures_by_kind.clear();
    summary.warnings = Warnings::default();
    summary.latency.remove("rtt_us");
    summary.totals.connect_failed = 0;
    summary.aborted = true;
    summary.duration_s = 75.2;
    snapshot.total.rtt_us.reset();
    (summary, snapshot)
}

fn second_rows() -> Vec<SecondRow> {
    let mut failures_by_kind = [0; LimitKind::ALL.len()];
    failures_by_kind[LimitKind::Refused.index()] = 2;
    let first = SecondRow {
        elapsed_s: 1,
        utc: "2025-05-01T12:00:01Z".into(),
        attempted: 2_400,
        established: 2_398,
        failed: 2,
        active: 2_398,
        target_rate_per_s: 2_500.0,
        attempt_rate_per_s: 2_399.44,
        establish_rate_per_s: 2_397.96,
        failures_by_kind,
        syn_retransmit_handshakes: 0,
        port_search_slow: 0,
        connect: crate::model::Percentiles {
            count: 2_398,
            min: 61,
            mean: 102.5,
            p50: 95,
            p90: 140,
            p99: 410,
            p999: 1_200,
            max: 2_050,
        },
        driver_cpu_cores: None,
        requests: None,
    };
    let mut failures_by_kind = [0; LimitKind::ALL.len()];
    failures_by_kind[LimitKind::PortExhaustion.index()] = 4;
    let second = SecondRow {
        elapsed_s: 2,
        utc: "2025-05-01T12:00:02Z".into(),
        attempted: 4_900,
        established: 4_894,
        failed: 6,
        active: 4_894,
        target_rate_per_s: 2_500.0,
        attempt_rate_per_s: 2_500.0,
        establish_rate_per_s: 2_496.0,
        failures_by_kind,
        syn_retransmit_handshakes: 3,
        port_search_slow: 12,
        connect: crate::model::Percentiles {
            count: 2_496,
            min: 70,
            mean: 180.25,
            p50: 120,
            p90: 610,
            p99: 1_900,
            p999: 15_000,
            max: 48_000,
        },
        driver_cpu_cores: Some(0.84),
        requests: None,
    };
    vec![first, second]
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// A results directory with the fixture written into it.
fn finished_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let (summary, snapshot) = fixture();
    let mut dir = ResultsDir::create(&tmp.path().join("run")).unwrap();
    dir.append_rows(&second_rows());
    dir.finish(&summary, &snapshot).unwrap();
    tmp
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- snapshots of each file ----

#[test]
fn timeseries_csv_is_flushed_after_every_append() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run");
    let mut dir = ResultsDir::create(&path).unwrap();
    // The header is there before any row.
    assert_eq!(read(&path, "timeseries.csv").lines().count(), 1);
    let rows = second_rows();
    dir.append_rows(&rows[..1]);
    assert_eq!(read(&path, "timeseries.csv").lines().count(), 2);
    dir.append_rows(&rows[1..]);
    // Read while `dir` is still open: nothing waits in a buffer.
    insta::assert_snapshot!("timeseries_csv", read(&path, "timeseries.csv"));
    drop(dir);
}

#[test]
fn failures_csv() {
    let tmp = finished_dir();
    insta::assert_snapshot!(
        "failures_csv",
        read(&tmp.path().join("run"), "failures.csv")
    );
}

#[test]
fn sources_csv() {
    let tmp = finished_dir();
    insta::assert_snapshot!("sources_csv", read(&tmp.path().join("run"), "sources.csv"));
}

#[test]
fn latency_csv() {
    let tmp = finished_dir();
    insta::assert_snapshot!("latency_csv", read(&tmp.path().join("run"), "latency.csv"));
}

#[test]
fn connect_hgrm() {
    let tmp = finished_dir();
    insta::assert_snapshot!(
        "connect_hgrm",
        read(&tmp.path().join("run"), "connect.hgrm")
    );
}

#[test]
fn summary_json() {
    let tmp = finished_dir();
    insta::assert_snapshot!(
        "summary_json",
        read(&tmp.path().join("run"), "summary.json")
    );
}

#[test]
fn text_with_first_limit() {
    let (summary, _) = fixture();
    let text = text::render(
        &summary,
        Path::new("results/20250501T120000Z-port-exhaustion"),
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    insta::assert_snapshot!("text_with_first_limit", text);
}

#[test]
fn text_without_limit() {
    let (summary, _) = fixture_without_limit();
    let text = text::render(
        &summary,
        Path::new("results/20250501T120000Z-port-exhaustion"),
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    insta::assert_snapshot!("text_without_limit", text);
}

// ---- the set of files ----

#[test]
fn finish_writes_every_file_and_no_temporary_ones() {
    let tmp = finished_dir();
    let dir = tmp.path().join("run");
    assert_eq!(
        names_in(&dir),
        [
            "connect.hgrm",
            "connect.hlog",
            "failures.csv",
            "latency.csv",
            "rtt.hgrm",
            "rtt.hlog",
            "sources.csv",
            "summary.json",
            "timeseries.csv"
        ]
    );
    let rtt = read(&dir, "rtt.hgrm");
    assert!(rtt.contains("Total count    =           50]"), "{rtt}");
    let latency = read(&dir, "latency.csv");
    assert!(
        latency.lines().any(|l| l.starts_with("rtt,100.0,")),
        "{latency}"
    );
    // The time series written during the run is kept as it was.
    assert_eq!(read(&dir, "timeseries.csv").lines().count(), 3);
}

#[test]
fn no_rtt_files_or_rows_without_rtt_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let (summary, snapshot) = fixture_without_limit();
    let path = tmp.path().join("run");
    let mut dir = ResultsDir::create(&path).unwrap();
    dir.finish(&summary, &snapshot).unwrap();
    assert!(!path.join("rtt.hgrm").exists());
    assert!(!path.join("rtt.hlog").exists());
    assert!(path.join("connect.hgrm").exists());
    assert!(path.join("connect.hlog").exists());
    assert!(!read(&path, "latency.csv").contains("rtt"));
}

#[test]
fn empty_tables_keep_the_header_rows_would_have() {
    let full = finished_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (mut summary, mut snapshot) = fixture_without_limit();
    summary.sources.clear();
    snapshot.total.connect_us.reset();
    let path = tmp.path().join("run");
    ResultsDir::create(&path)
        .unwrap()
        .finish(&summary, &snapshot)
        .unwrap();
    for name in ["failures.csv", "sources.csv", "latency.csv"] {
        let empty = read(&path, name);
        let with_rows = read(&full.path().join("run"), name);
        assert_eq!(empty.lines().count(), 1, "{name}: {empty}");
        assert_eq!(empty.lines().next(), with_rows.lines().next(), "{name}");
    }
}

// ---- the results directory ----

#[test]
fn create_refuses_a_directory_that_is_not_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("summary.json"), "{}").unwrap();
    let err = ResultsDir::create(&path).err().expect("must refuse");
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("choose another --out"), "{message}");
    // Nothing of the other run was touched.
    assert_eq!(names_in(&path), ["summary.json"]);
    assert_eq!(read(&path, "summary.json"), "{}");
}

#[test]
fn create_refuses_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run");
    fs::write(&path, "not a directory").unwrap();
    let err = ResultsDir::create(&path).err().expect("must refuse");
    assert!(err.to_string().contains("choose another --out"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "not a directory");
}

#[test]
fn create_accepts_an_empty_directory_and_makes_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let dir = ResultsDir::create(&empty).unwrap();
    assert_eq!(dir.path(), empty);
    assert!(empty.join("timeseries.csv").exists());

    let nested = tmp.path().join("results/a/b");
    ResultsDir::create(&nested).unwrap();
    assert_eq!(names_in(&nested), ["timeseries.csv"]);
}

// ---- summary.json against its schema ----

fn schema_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SUMMARY_SCHEMA).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("schema is a valid draft 2020-12 schema")
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn written_summary_json_validates_against_the_schema() {
    let validator = schema_validator();
    let tmp = finished_dir();
    let written: Value = serde_json::from_str(&read(&tmp.path().join("run"), "summary.json"))
        .expect("summary.json is JSON");
    assert_eq!(errors(&validator, &written), Vec::<String>::new());

    // Without a first limit (null) and without RTT, too.
    let (summary, _) = fixture_without_limit();
    let value = serde_json::to_value(&summary).unwrap();
    assert_eq!(value["first_limit"], Value::Null);
    assert_eq!(errors(&validator, &value), Vec::<String>::new());
}

/// How a summary breaks the contract, and a change that does it.
type Breakage = (&'static str, fn(&mut Value));

#[test]
fn schema_rejects_summaries_that_break_the_contract() {
    let validator = schema_validator();
    let (summary, _) = fixture();
    let valid = serde_json::to_value(&summary).unwrap();
    assert!(validator.is_valid(&valid));

    let broken: &[Breakage] = &[
        ("totals.attempted removed", |v| {
            v["totals"].as_object_mut().unwrap().remove("attempted");
        }),
        ("bogus first_limit.kind", |v| {
            v["first_limit"]["kind"] = json!("too_many_cats")
        }),
        ("first_limit.remedy removed", |v| {
            v["first_limit"].as_object_mut().unwrap().remove("remedy");
        }),
        ("latency.connect_us.p999 removed", |v| {
            v["latency"]["connect_us"]
                .as_object_mut()
                .unwrap()
                .remove("p999");
        }),
        ("schema_version 1", |v| v["schema_version"] = json!(1)),
        ("aborted as a string", |v| v["aborted"] = json!("no")),
        ("unknown failure kind", |v| {
            v["failures_by_kind"]["gremlins"] = json!(1)
        }),
        ("unknown top-level field", |v| v["extra"] = json!(true)),
        ("negative count", |v| {
            v["totals"]["connect_failed"] = json!(-1)
        }),
        ("totals.connect_failed removed", |v| {
            v["totals"]
                .as_object_mut()
                .unwrap()
                .remove("connect_failed");
        }),
        ("an unknown nothing_connected cause", |v| {
            v["nothing_connected"] = json!({"cause": "gremlins", "message": ""})
        }),
    ];
    for (what, breaks) in broken {
        let mut value = valid.clone();
        breaks(&mut value);
        assert!(
            !validator.is_valid(&value),
            "schema accepted a summary with {what}"
        );
    }
}
