//! `ceiling sweep`: pool sizes through request runs against `ceiling serve`
//! with a known service time, so which pool meets the goal is computable.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use crate::util::{Server, ceiling, out_dir, run_bounded, summary, text};

#[test]
fn sweep_names_the_smallest_pool_meeting_the_goal_and_writes_a_row_per_step() {
    // 10 ms a request at 300/s: 3 connections busy on average. A pool of 2
    // serves 200/s (the queue grows: p99 far over 100 ms); 12 keep up.
    let server = Server::start(&["--mode", "http", "--service-time", "10ms"]);
    let (_dir, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args([
        "sweep",
        "--pool",
        "2,12",
        "--rate",
        "300",
        "--duration",
        "2s",
        "--goal",
        "p99<100ms,errors<1%",
        "--protocol",
        "http",
        "--target",
    ])
    .arg(server.addr())
    .arg("--out")
    .arg(&out);
    let run = run_bounded(cmd, Duration::from_secs(60));
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{}\n{stdout}", text(&run.stderr));
    assert!(
        stdout.contains("smallest pool meeting the goal: 12"),
        "{stdout}"
    );
    assert!(stdout.contains("Little's law: 300 requests/s"), "{stdout}");
    let mut reader = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][col("pool")], "2");
    assert_eq!(&rows[0][col("meets_goal")], "false");
    assert_eq!(&rows[0][col("missed")], "p99<100ms");
    assert_eq!(&rows[1][col("meets_goal")], "true");
    assert_eq!(&rows[1][col("connections")], "12");
    // Each step is a whole run with its own results.
    for pool in [2, 12] {
        let s = summary(&out.join(format!("pool-{pool}")));
        assert!(s["requests"].is_object());
        assert_eq!(s["scenario"]["requests"]["pool"], pool);
    }
}

#[test]
fn sweep_bad_input_is_refused_before_any_run() {
    let cases: [(&[&str], &str); 4] = [
        (&["--pool", "10,50"], "--goal"),
        (&["--pool", "10", "--goal", "p99<50"], "needs a duration"),
        (&["--pool", "50,10", "--goal", "p99<50ms"], "rising"),
        (
            &["--pool", "10", "--goal", "p99<5ms", "--mode", "echo"],
            "request",
        ),
    ];
    for (args, says) in cases {
        let (_dir, out) = out_dir();
        let mut cmd = ceiling();
        cmd.arg("sweep")
            .args(args)
            .args(["--target", "127.0.0.1:9", "--out"])
            .arg(&out);
        let run = run_bounded(cmd, Duration::from_secs(20));
        let err = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
        assert!(!out.exists(), "{args:?}: nothing created");
    }
}

#[test]
fn a_pool_range_is_searched_for_the_smallest_pool_meeting_the_goal() {
    // 10 ms a request at 300/s: 3 busy on average; a pool of 2 cannot keep
    // up (its queue grows to the 1 s timeout), 12 can, with room for a
    // loaded machine's slower server. The search runs 2, 12, then halves
    // between them.
    let server = Server::start(&["--mode", "http", "--service-time", "10ms"]);
    let (_dir, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args([
        "sweep",
        "--pool",
        "2..12",
        "--rate",
        "300",
        "--duration",
        "2s",
        "--goal",
        "p99<200ms,rejects<1%",
        "--protocol",
        "http",
        "--target",
    ])
    .arg(server.addr())
    .arg("--out")
    .arg(&out);
    let run = run_bounded(cmd, Duration::from_secs(120));
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{}\n{stdout}", text(&run.stderr));
    let mut reader = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<(u64, bool)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[col("pool")].parse().unwrap(),
                &r[col("meets_goal")] == "true",
            )
        })
        .collect();
    assert_eq!(rows.first(), Some(&(2, false)), "{rows:?}");
    assert_eq!(rows.last(), Some(&(12, true)), "{rows:?}");
    assert!(rows.len() > 2, "the range was searched: {rows:?}");
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "sorted: {rows:?}");
    // Halving 2..12 takes at most 4 more steps.
    assert!(rows.len() <= 6, "a search, not a scan: {rows:?}");
    let pick = rows.iter().find(|(_, met)| *met).unwrap().0;
    // 3 busy on average: 4 or 5 meet it on a quiet machine; the search's
    // pick is inside the range whatever the load.
    assert!((3..12).contains(&pick), "{rows:?}");
    assert!(
        stdout.contains(&format!("smallest pool meeting the goal: {pick}")),
        "{stdout}"
    );
}

#[test]
fn ctrl_c_keeps_the_steps_done_in_sweep_csv_and_the_verdict() {
    // As a terminal's Ctrl-C: SIGINT to the sweep's process group, a
    // second into its second step (of 3 s). 10 ms a request at 300/s: a
    // pool of 2 misses the goal; 12 would meet it, given its whole run.
    let server = Server::start(&["--mode", "http", "--service-time", "10ms"]);
    let (_dir, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args([
        "sweep",
        "--pool",
        "2,12,20",
        "--rate",
        "300",
        "--duration",
        "3s",
        "--goal",
        "p99<100ms",
        "--protocol",
        "http",
        "--target",
    ])
    .arg(server.addr())
    .arg("--out")
    .arg(&out)
    .process_group(0)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let group = child.id() as i32;
    let mut stderr = String::new();
    let mut signalled = None;
    // Bounded: the sweep's three steps end by themselves within seconds.
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "ceiling: sweep: pool 12" {
            signalled = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(1));
                // SAFETY: kill(2) on the process group of our own child.
                unsafe { libc::kill(-group, libc::SIGINT) }
            }));
        }
        stderr.push_str(&line);
        stderr.push('\n');
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let signalled = signalled.unwrap_or_else(|| panic!("no second step: {stderr}"));
    assert_eq!(signalled.join().unwrap(), 0, "the signal was sent");
    assert_eq!(status.code(), Some(130), "{stderr}\n{stdout}");
    // The step done and the one stopped, each with its figures.
    let mut reader = csv::Reader::from_path(out.join("sweep.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{stderr}");
    assert_eq!(&rows[0][col("pool")], "2");
    assert_eq!(&rows[0][col("missed")], "p99<100ms");
    assert_eq!(&rows[1][col("pool")], "12");
    assert_eq!(&rows[1][col("meets_goal")], "false");
    assert!(
        rows[1][col("missed")].starts_with("interrupted after "),
        "{:?}",
        &rows[1]
    );
    assert!(rows[1][col("scheduled")].parse::<u64>().unwrap() > 0);
    let stopped = summary(&out.join("pool-12"));
    assert_eq!(stopped["aborted"], true);
    assert!(!out.join("pool-20").exists(), "no step after the signal");
    assert!(
        stdout.contains("no pool met the goal (largest tried: 2)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sweep interrupted during the step with pool 12"),
        "{stdout}"
    );
    assert!(stderr.contains("ceiling: sweep: pool 12: "), "{stderr}");
}
