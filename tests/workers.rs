//! `ceiling run --processes`: worker processes with a segment each, the
//! same results as threads, exact counts, and a coordinator that outlives a
//! worker killed under it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{
    Server, assert_results_complete, ceiling, out_dir, run_bounded, summary, text,
    timeseries_column,
};

#[test]
fn three_worker_processes_make_exactly_the_attempts_asked() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
        .args(["--target", &server.addr()])
        .args([
            "--processes",
            "3",
            "--connections",
            "1001",
            "--rate",
            "2000",
        ])
        .args(["--hold", "1s"]);
    let output = run_bounded(cmd, Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_results_complete(&out);
    let s = summary(&out);
    crate::results::validate(&s);
    assert_eq!(s["totals"]["attempted"], 1001, "{s}");
    assert_eq!(s["totals"]["established"], 1001, "{s}");
    assert_eq!(s["totals"]["peak_active"], 1001, "{s}");
    assert_eq!(s["totals"]["closed_by_driver"], 1001, "{s}");
    assert_eq!(s["workers"]["processes"], 3, "{s}");
    assert_eq!(s["workers"]["deaths"].as_array().unwrap().len(), 0);
    // The last of 1,001 at 2,000/s is due at 0.5 s; it cannot be up before.
    let last = s["totals"]["last_established_s"].as_f64().unwrap();
    assert!(
        last >= 0.45 && last <= s["duration_s"].as_f64().unwrap(),
        "{s}"
    );
    // The time series was written from the merged worker reports.
    let series = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    let last = series.lines().last().unwrap();
    assert!(last.split(',').nth(2) == Some("1001"), "{last}");
}

/// A ramp reaches the worker processes as it was given: its OVER went out
/// as text ("1s") that the workers could not read back, so each died at
/// once and nothing was attempted.
#[test]
fn a_ramp_reaches_every_worker_process() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
        .args(["--target", &server.addr()])
        .args(["--processes", "2", "--connections", "100"])
        .args(["--ramp", "0..200/1s", "--hold", "100ms"]);
    let output = run_bounded(cmd, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    assert_eq!(s["totals"]["attempted"], 100, "{s}");
    assert_eq!(s["totals"]["established"], 100, "{s}");
    assert_eq!(s["workers"]["deaths"], serde_json::json!([]), "{s}");
}

/// Each second's row holds what worker processes recorded in that second:
/// they cut their reports on the run's grid, which the coordinator's ticks
/// follow. (They were a tick late: 272 attempts in the first second of a
/// 300/s run, and 27 in a fourth second of a 3 s one.)
#[test]
fn worker_processes_report_each_second_in_its_own_row() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
        .args(["--target", &server.addr()])
        .args(["--processes", "2", "--connections", "900", "--rate", "300"])
        .args(["--hold", "1s"]);
    let output = run_bounded(cmd, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let attempted: Vec<u64> = timeseries_column(&out, "attempted")
        .into_iter()
        .map(|a| a as u64)
        .collect();
    // 300 due in each of the first three seconds (one more at t = 1 s
    // exactly, which the first second may count); none after.
    let near = |got: u64, want: u64| got.abs_diff(want) <= 10;
    assert!(
        near(attempted[0], 300) && near(attempted[1], 600) && attempted[2] == 900,
        "{attempted:?}"
    );
    assert!(attempted[3..].iter().all(|&a| a == 900), "{attempted:?}");
}

#[test]
fn auto_uses_no_worker_process_when_one_process_is_enough_and_says_so() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
        .args(["--target", &server.addr()])
        .args([
            "--processes",
            "auto",
            "--connections",
            "50",
            "--hold",
            "100ms",
        ]);
    let output = run_bounded(cmd, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    assert_eq!(s["workers"]["processes"], 0, "{s}");
    let reason = s["workers"]["reason"].as_str().unwrap();
    assert!(reason.contains("fit in one process"), "{reason}");
    assert_eq!(s["totals"]["established"], 50);
}

#[test]
fn a_bad_process_count_is_a_usage_error_with_the_accepted_forms() {
    for bad in ["0", "many", "5000"] {
        let output = ceiling()
            .args(["run", "--processes", bad, "--connections", "1"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--processes {bad}");
        let err = text(&output.stderr);
        assert!(err.contains("auto") && err.contains("1 to 1024"), "{err}");
    }
}

/// The worker processes of the ceiling process `pid`.
fn worker_pids(pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids.retain(|child| {
        std::fs::read(format!("/proc/{child}/cmdline"))
            .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|arg| arg == b"worker"))
    });
    pids
}

#[test]
fn a_killed_worker_is_recorded_and_the_run_ends_with_every_result() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let mut child = ceiling()
        .args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
        .args(["--target", &server.addr()])
        .args(["--processes", "2", "--connections", "400", "--rate", "2000"])
        .args(["--hold", "3s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both workers run and hold what they opened.
    let deadline = Instant::now() + Duration::from_secs(10);
    let workers = loop {
        let workers = worker_pids(child.id());
        if workers.len() == 2 || Instant::now() > deadline {
            break workers;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(workers.len(), 2, "worker processes not found");
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: kill() with a PID of a process this test started (a worker of
    // the ceiling it spawned).
    assert_eq!(unsafe { libc::kill(workers[0] as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", text(&output.stderr));
    assert_results_complete(&out);
    let s = summary(&out);
    crate::results::validate(&s);
    let deaths = s["workers"]["deaths"].as_array().unwrap();
    assert_eq!(deaths.len(), 1, "{s}");
    let death = &deaths[0];
    assert_eq!(death["pid"], workers[0], "{death}");
    assert_eq!(death["signal"], libc::SIGKILL, "{death}");
    assert!(
        death["how"].as_str().unwrap().contains("SIGKILL"),
        "{death}"
    );
    // No memory cgroup: a plain kill is not a limit.
    assert!(s["first_limit"].is_null(), "{s}");
    assert_eq!(death["oom_kills"], serde_json::Value::Null);
    // The other worker held its 200 to the end; the killed one's held
    // connections count as lost, and everything adds up.
    let held = death["held"].as_u64().unwrap();
    assert!(held > 0 && held <= 200, "{death}");
    let t = &s["totals"];
    // Lost with the worker under their own name: not closed by ceiling,
    // not "other error"; its unstarted attempts never attempted.
    assert_eq!(t["lost_with_worker"], held, "{s}");
    assert_eq!(
        s["failures_by_kind"]["lost_with_worker"],
        held + death["in_flight"].as_u64().unwrap()
    );
    assert_eq!(s["failures_by_kind"]["other"], 0, "{s}");
    assert_eq!(t["never_attempted"], death["not_attempted"], "{s}");
    assert_eq!(
        t["attempted"].as_u64().unwrap() + death["not_attempted"].as_u64().unwrap(),
        400,
        "{s}"
    );
    let stdout = text(&output.stdout);
    assert!(stdout.contains("worker processes that died (1 of 2)"));
    assert!(stdout.contains("lost with worker"), "{stdout}");
}
