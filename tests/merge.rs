//! `ceiling merge` on real runs against `ceiling serve` on loopback: the
//! merged directory's counters and histograms are the inputs' added, its
//! figures satisfy the invariants and the schema; directories that cannot
//! be merged are refused (exit 2, one message, nothing written).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::results::validate;
use crate::util::{
    Server, assert_results_complete, capped_run, ceiling, hlog_sums, run_bounded, summary, text,
};

const BOUND: Duration = Duration::from_secs(60);

fn run_cmd(out: &Path, args: &[&str]) -> Command {
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--out"])
        .arg(out)
        .args(args);
    cmd
}

fn merge(dirs: &[&Path], out: &Path) -> Output {
    let mut cmd = ceiling();
    cmd.arg("merge").args(dirs).arg("--out").arg(out);
    run_bounded(cmd, BOUND)
}

fn merged_ok(dirs: &[&Path], out: &Path) -> serde_json::Value {
    let output = merge(dirs, out);
    assert!(
        output.status.success(),
        "merge failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert_results_complete(out);
    let s = summary(out);
    validate(&s);
    s
}

fn count(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

/// Two runs at once against one server, one of them in echo mode: the
/// merged totals, failure counts and histograms are the sums, bucket by
/// bucket; the time series adds per UTC second and ends at the totals.
#[test]
fn two_runs_at_once_merge_into_their_exact_sums() {
    let server = Server::start(&["--mode", "echo", "--listen", "127.0.0.1:0"]);
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("merged"),
    );
    let target = server.addr();
    let first = run_cmd(
        &a,
        &[
            "--target",
            &target,
            "-c",
            "300",
            "-r",
            "200",
            "--hold",
            "1s",
            "--processes",
            "2",
        ],
    );
    let second = run_cmd(
        &b,
        &[
            "--target",
            &target,
            "-c",
            "200",
            "-r",
            "150",
            "--hold",
            "1s",
            "--mode",
            "echo",
            "--interval",
            "200ms",
        ],
    );
    let first = std::thread::spawn(move || run_bounded(first, BOUND));
    let second = run_bounded(second, BOUND);
    let first = first.join().unwrap();
    for out in [&first, &second] {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let (sa, sb) = (summary(&a), summary(&b));
    let s = merged_ok(&[&a, &b], &m);

    for key in [
        "attempted",
        "established",
        "connect_failed",
        "unfinished",
        "never_attempted",
        "peak_active",
        "closed_by_driver",
        "closed_by_server",
        "lost_with_worker",
        "held_at_end",
    ] {
        assert_eq!(
            count(&s, &["totals", key]),
            count(&sa, &["totals", key]) + count(&sb, &["totals", key]),
            "totals.{key}"
        );
    }
    assert_eq!(count(&s, &["totals", "attempted"]), 500);
    assert_eq!(count(&s, &["scenario", "connections"]), 500);
    for metric in ["connect_us", "rtt_us"] {
        let inputs = sa["latency"][metric]["count"].as_u64().unwrap_or(0)
            + count(&sb, &["latency", metric, "count"]);
        assert_eq!(count(&s, &["latency", metric, "count"]), inputs, "{metric}");
    }
    assert!(count(&s, &["latency", "rtt_us", "count"]) > 0);

    // The histograms add exactly: the merged .hlog's intervals add up to
    // the inputs' intervals added, bucket by bucket, and the percentiles
    // are the sum's.
    let merged = hlog_sums(&m);
    let inputs = [hlog_sums(&a), hlog_sums(&b)];
    for (metric, sum) in &merged {
        let mut expected = ceiling::stats::new_histogram();
        for input in &inputs {
            for (m, h) in input {
                if m == metric {
                    expected.add(&h.histogram).unwrap();
                }
            }
        }
        assert_eq!(sum.histogram, expected, "{metric}.hlog");
        let p = &s["latency"][format!("{metric}_us")];
        assert_eq!(p["p99"], expected.value_at_quantile(0.99), "{metric}: {p}");
        assert_eq!(p["max"], expected.max(), "{metric}: {p}");
    }
    assert_eq!(
        merged.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["connect", "rtt"]
    );

    // The time series: one row per UTC second in which either run ended a
    // row (`utc` cut to the second); the runs overlapped, so fewer rows than
    // both together.
    let seconds = |dir: &Path| -> std::collections::BTreeSet<String> {
        let t = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
        t.lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap()[..19].to_string())
            .collect()
    };
    let (in_a, in_b, merged_seconds) = (seconds(&a), seconds(&b), seconds(&m));
    assert_eq!(
        merged_seconds,
        in_a.union(&in_b).cloned().collect(),
        "one merged row per UTC second"
    );
    assert!(!in_a.is_disjoint(&in_b), "the runs overlapped");
    let rows = std::fs::read_to_string(m.join("timeseries.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(rows, merged_seconds.len());

    let inputs = s["merge"]["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0]["dir"], a.display().to_string());
    assert_eq!(inputs[1]["totals"], sb["totals"]);
    assert!(m.join("report.html").is_file());
}

/// Both runs hit a limit; the later run hits it sooner after its own start.
/// The merged first limit is the earliest by UTC, the earlier run's, named.
#[test]
fn the_first_limit_is_the_earliest_by_utc_and_names_its_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (early, late, m) = (
        tmp.path().join("early"),
        tmp.path().join("late"),
        tmp.path().join("merged"),
    );
    // 50 held at most: the 51st connection is closed by the server, at
    // ~0.6 s at 80/s, at ~0.05 s at 1000/s.
    capped_run(&early, "120", "80");
    capped_run(&late, "120", "1000");
    let (se, sl) = (summary(&early), summary(&late));
    let at = |s: &serde_json::Value| s["first_limit"]["at_elapsed_s"].as_f64().unwrap();
    assert!(
        at(&sl) < at(&se),
        "the late run's limit comes sooner after its start"
    );
    let s = merged_ok(&[&late, &early], &m);
    assert_eq!(s["first_limit"]["kind"], "server_closed");
    assert_eq!(s["merge"]["first_limit_from"], early.display().to_string());
    // Counted from the merged start, which is the early run's.
    let offset = s["merge"]["inputs"][1]["start_offset_s"].as_f64().unwrap();
    assert_eq!(offset, 0.0);
    assert!((at(&s) - at(&se)).abs() < 1e-9, "{}", s["first_limit"]);
    let stdout = text(&merge(&[&late, &early], &tmp.path().join("again")).stdout);
    assert!(
        stdout.contains(&format!("first limit from {}", early.display())),
        "{stdout}"
    );
}

/// One real run, and directories made from it that cannot be merged.
#[test]
fn directories_that_cannot_be_merged_are_refused_before_anything_is_written() {
    let server = Server::start(&["--listen", "127.0.0.1:0"]);
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    let out = run_bounded(
        run_cmd(
            &good,
            &["--target", &server.addr(), "-c", "50", "-r", "100"],
        ),
        BOUND,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let copy = |name: &str| -> PathBuf {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for entry in std::fs::read_dir(&good).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        dir
    };

    // Made by an older ceiling: no .hlog.
    let older = copy("older");
    std::fs::remove_file(older.join("connect.hlog")).unwrap();
    // Histograms of 2 significant figures.
    let coarse = copy("coarse");
    std::fs::write(coarse.join("connect.hlog"), coarse_hlog()).unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let busy = copy("busy");
    let ladder = tmp.path().join("ladder");
    std::fs::create_dir(&ladder).unwrap();
    std::fs::write(ladder.join("explore.json"), "{}").unwrap();

    let cases: [(&[&Path], &Path, &[&str]); 6] = [
        (
            &[&good, &empty],
            &tmp.path().join("m1"),
            &["'", "empty", "not a run's results directory"],
        ),
        (
            &[&good, &tmp.path().join("missing")],
            &tmp.path().join("m2"),
            &["missing", "not a run's results directory"],
        ),
        (
            &[&good, &older],
            &tmp.path().join("m3"),
            &["older", "no connect.hlog", "older ceiling"],
        ),
        (
            &[&good, &coarse],
            &tmp.path().join("m4"),
            &["coarse", "2 significant figures", "same histogram settings"],
        ),
        (&[&good], &busy, &["busy", "not an empty directory"]),
        (
            &[&ladder, &good],
            &tmp.path().join("m5"),
            &[
                "ladder",
                "an explore's directory",
                "its steps' run directories",
            ],
        ),
    ];
    for (dirs, out, needles) in cases {
        let output = merge(dirs, out);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{dirs:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        }
        if out != busy {
            assert!(!out.exists(), "{} was created", out.display());
        }
    }
    // Merging one run alone is a copy of its figures.
    let s = merged_ok(&[&good], &tmp.path().join("alone"));
    assert_eq!(s["totals"], summary(&good)["totals"]);
}

/// An interval log as another tool might write it: 2 significant figures.
fn coarse_hlog() -> Vec<u8> {
    use hdrhistogram::serialization::V2DeflateSerializer;
    use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 2).unwrap();
    hist.record(150).unwrap();
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let now = std::time::SystemTime::now();
    let mut log = IntervalLogWriterBuilder::new()
        .with_start_time(now)
        .with_base_time(now)
        .begin_log_with(&mut out, &mut serializer)
        .unwrap();
    log.write_histogram(&hist, Duration::ZERO, Duration::from_secs(1), None)
        .unwrap();
    out
}

/// Two request runs at once (http and redis, each against its own built-in
/// server): the `requests` objects and the queue, service and total
/// histograms add exactly, the request columns add per UTC second, and the
/// merged directory holds the invariants; a request run with a connection
/// run is refused.
#[test]
fn two_request_runs_merge_their_requests_and_histograms_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("merged"),
    );
    let request = |out: &Path, protocol: &str, pool: &str, rate: &str, duration: &str| {
        run_cmd(
            out,
            &[
                "--mode",
                "request",
                "--protocol",
                protocol,
                "--pool",
                pool,
                "--rate",
                rate,
                "--duration",
                duration,
            ],
        )
    };
    let first = request(&a, "http", "10", "300", "2s");
    let second = request(&b, "redis", "5", "200", "3s");
    let first = std::thread::spawn(move || run_bounded(first, BOUND));
    let second = run_bounded(second, BOUND);
    let first = first.join().unwrap();
    for out in [&first, &second] {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let (sa, sb) = (summary(&a), summary(&b));
    let s = merged_ok(&[&a, &b], &m);

    for key in [
        "scheduled",
        "sent",
        "responses",
        "rejects",
        "reconnects",
        "queued_at_end",
        "in_flight_at_end",
    ] {
        assert_eq!(
            count(&s, &["requests", key]),
            count(&sa, &["requests", key]) + count(&sb, &["requests", key]),
            "requests.{key}"
        );
    }
    for group in ["errors", "status"] {
        for (k, v) in s["requests"][group].as_object().unwrap() {
            let expected = sa["requests"][group][k].as_u64().unwrap_or(0)
                + sb["requests"][group][k].as_u64().unwrap_or(0);
            assert_eq!(v.as_u64(), Some(expected), "requests.{group}.{k}");
        }
    }
    assert_eq!(
        count(&s, &["requests", "status", "2xx"]),
        count(&sa, &["requests", "status", "2xx"])
    );
    assert!(count(&s, &["requests", "responses"]) > 0);
    assert_eq!(count(&s, &["scenario", "requests", "pool"]), 15);
    for metric in ["connect_us", "queue_us", "service_us", "total_us"] {
        assert_eq!(
            count(&s, &["latency", metric, "count"]),
            count(&sa, &["latency", metric, "count"]) + count(&sb, &["latency", metric, "count"]),
            "{metric}"
        );
    }

    // Every histogram adds bucket by bucket, the percentiles are the sum's.
    let merged = hlog_sums(&m);
    let inputs = [hlog_sums(&a), hlog_sums(&b)];
    assert_eq!(
        merged.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["connect", "queue", "service", "total"]
    );
    for (metric, sum) in &merged {
        let mut expected = ceiling::stats::new_histogram();
        for input in &inputs {
            for (m, h) in input {
                if m == metric {
                    expected.add(&h.histogram).unwrap();
                }
            }
        }
        assert_eq!(sum.histogram, expected, "{metric}.hlog");
        let p = &s["latency"][format!("{metric}_us")];
        assert_eq!(p["p99"], expected.value_at_quantile(0.99), "{metric}: {p}");
    }

    // The time series has the request columns; in the seconds both runs
    // ran, the requests sent per second are both runs' (300 + 200 a
    // second, give or take the cut of the seconds).
    let mut reader = csv::Reader::from_path(m.join("timeseries.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column"))
    };
    let (sent, busy, p99) = (
        col("requests_sent_per_s"),
        col("busy_connections"),
        col("total_p99_us"),
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let sent: Vec<f64> = rows.iter().map(|r| r[sent].parse().unwrap()).collect();
    assert!(
        sent.iter().any(|&x| x > 400.0),
        "no second with both runs' requests: {sent:?}"
    );
    for r in &rows {
        assert!(
            r[busy].parse::<u64>().unwrap() <= 15,
            "busy above the pools"
        );
        r[p99].parse::<u64>().unwrap();
    }

    // A request run does not merge with a connection run.
    let plain = tmp.path().join("plain");
    let out = run_bounded(run_cmd(&plain, &["-c", "20", "-r", "100"]), BOUND);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let refused = tmp.path().join("mixed");
    let output = merge(&[&a, &plain], &refused);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("merge request runs with request runs only"),
        "{stderr}"
    );
    assert!(!refused.exists());
}
