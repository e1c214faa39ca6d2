//! `ceiling run` end to end on real loopback sockets.

use std::time::Duration;

use crate::util::{Server, assert_results_complete, ceiling, out_dir, run_bounded, summary, text};

const BOUND: Duration = Duration::from_secs(60);

fn run_args(out: &std::path::Path) -> Vec<String> {
    vec![
        "run".into(),
        "--ui".into(),
        "none".into(),
        "--out".into(),
        out.display().to_string(),
    ]
}

/// A finished `ceiling run ARGS` that exited 0: its output, its results
/// directory and its summary.json.
struct Finished {
    output: std::process::Output,
    out: std::path::PathBuf,
    summary: serde_json::Value,
    _tmp: tempfile::TempDir,
}

fn run_ok(args: &[&str]) -> Finished {
    let (tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out)).args(args);
    let output = run_bounded(cmd, BOUND);
    assert!(
        output.status.success(),
        "{args:?}: stderr: {}",
        text(&output.stderr)
    );
    let summary = summary(&out);
    Finished {
        output,
        out,
        summary,
        _tmp: tmp,
    }
}

#[test]
fn opens_exactly_n_connections_against_serve_and_writes_every_file() {
    let server = Server::start(&["--listen", "127.0.0.1:0"]);
    let Finished {
        output,
        out,
        summary: s,
        _tmp,
        ..
    } = run_ok(&[
        "--target",
        &server.addr(),
        "--connections",
        "3k",
        "--rate",
        "0",
        "--hold",
        "1s",
    ]);
    assert_eq!(s["totals"]["attempted"], 3000);
    assert_eq!(s["totals"]["established"], 3000);
    assert_eq!(s["totals"]["connect_failed"], 0);
    assert_eq!(s["totals"]["peak_active"], 3000);
    assert_eq!(s["totals"]["closed_by_driver"], 3000);
    assert!(s["first_limit"].is_null());
    assert_eq!(s["aborted"], false);
    assert_eq!(s["latency"]["connect_us"]["count"], 3000);
    assert_results_complete(&out);
    assert!(
        !out.join("rtt.hgrm").exists(),
        "rtt.hgrm written without echo mode"
    );
    let series = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    let last = series.lines().last().unwrap();
    assert!(series.lines().count() >= 2, "{series}");
    // attempted and established columns of the last row.
    let cols: Vec<&str> = last.split(',').collect();
    assert_eq!((cols[2], cols[3]), ("3000", "3000"), "{last}");
    let printed = text(&output.stdout);
    assert!(
        printed.contains("3000") || printed.contains("3,000"),
        "{printed}"
    );
}

/// --steps: the rate the profile asks for steps second by second (the
/// target column is the schedule's own count per second), and the count
/// stays exact; worker processes get the steps too.
#[test]
fn steps_raise_the_rate_step_by_step() {
    let server = Server::start(&[]);
    let f = run_ok(&[
        "--target",
        &server.addr(),
        "--steps",
        "100,300,600/1s",
        "--connections",
        "700",
        "--hold",
        "100ms",
        "--processes",
        "2",
    ]);
    assert_eq!(f.summary["totals"]["attempted"], 700, "{}", f.summary);
    assert_eq!(f.summary["totals"]["established"], 700, "{}", f.summary);
    assert_eq!(
        f.summary["scenario"]["pace"]["kind"], "steps",
        "{}",
        f.summary
    );
    let mut reader = csv::Reader::from_path(f.out.join("timeseries.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let target = header
        .iter()
        .position(|h| h == "target_rate_per_s")
        .unwrap();
    let rows: Vec<f64> = reader
        .records()
        .map(|r| r.unwrap()[target].parse().unwrap())
        .collect();
    // Seconds 1 and 2 asked for 100/s and 300/s (within a tick's share).
    assert!((80.0..=120.0).contains(&rows[0]), "{rows:?}");
    assert!((270.0..=330.0).contains(&rows[1]), "{rows:?}");
}

#[test]
fn the_embedded_default_target_needs_no_setup() {
    let Finished {
        output,
        summary: s,
        _tmp,
        ..
    } = run_ok(&["--connections", "500", "--rate", "2k", "--hold", "300ms"]);
    assert_eq!(s["totals"]["established"], 500);
    assert_eq!(s["scenario"]["embedded_target"], true);
    assert!(text(&output.stderr).contains("built-in server"));
}

/// Past one process's fds with no target and no --processes: the built-in
/// target is a child of its own (two fds per connection in one process
/// stopped at ~10,000 before) and the driver takes worker processes by
/// itself, saying so.
#[test]
fn the_embedded_target_holds_past_one_process_fd_table() {
    let Finished {
        output,
        summary: s,
        _tmp,
        ..
    } = run_ok(&["--connections", "50k", "--rate", "0", "--hold", "3s"]);
    let stderr = text(&output.stderr);
    assert_eq!(s["totals"]["attempted"], 50_000, "{stderr}");
    assert_eq!(s["totals"]["established"], 50_000, "{stderr}");
    assert!(s["first_limit"].is_null(), "{}", s["first_limit"]);
    assert!(
        s["workers"]["processes"].as_u64().unwrap() >= 3,
        "{}",
        s["workers"]
    );
    assert!(stderr.contains("worker processes"), "{stderr}");
    assert!(stderr.contains("--processes"), "{stderr}");
    assert!(stderr.contains("server processes"), "{stderr}");
}

/// A run refused before load (here: more sockets than the host's memory)
/// creates nothing: no results directory, no server.
#[test]
fn a_refused_run_creates_nothing() {
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out))
        .args(["--connections", "100m", "--rate", "0"]);
    let output = run_bounded(cmd, BOUND);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!out.exists(), "{} was created: {stderr}", out.display());
    assert!(!stderr.contains("built-in server"), "{stderr}");
}

#[test]
fn echo_mode_measures_round_trips() {
    let server = Server::start(&["--mode", "echo"]);
    let Finished {
        out,
        summary: s,
        _tmp,
        ..
    } = run_ok(&[
        "--target",
        &server.addr(),
        "--connections",
        "40",
        "--rate",
        "400",
        "--mode",
        "echo",
        "--interval",
        "200ms",
        "--hold",
        "1s",
    ]);
    let rtt = &s["latency"]["rtt_us"];
    // 40 connections × about 5 messages in 1 s.
    assert!(rtt["count"].as_u64().unwrap() >= 120, "{rtt}");
    assert!(rtt["p50"].as_u64().unwrap() > 0);
    assert_eq!(s["warnings"]["echo_unanswered"], 0);
    assert!(out.join("rtt.hgrm").is_file());
}

/// Each histogram written as `.hgrm` is also an HdrHistogram interval log,
/// one interval per second; read back with hdrhistogram's iterator, the
/// intervals add up to the whole run's (`summary` checks the counts and
/// one interval per row on every run; here, bucket by bucket too), also
/// when worker processes recorded them.
#[test]
fn every_histogram_is_also_an_interval_log_that_adds_up_to_the_run() {
    let server = Server::start(&["--mode", "echo"]);
    let Finished {
        out,
        summary: s,
        _tmp,
        ..
    } = run_ok(&[
        "--target",
        &server.addr(),
        "--connections",
        "60",
        "--rate",
        "40",
        "--mode",
        "echo",
        "--interval",
        "200ms",
        "--hold",
        "1s",
        "--processes",
        "2",
    ]);
    let sums = crate::util::hlog_sums(&out);
    let metrics: Vec<&str> = sums.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(metrics, ["connect", "rtt"]);
    for (metric, sum) in &sums {
        assert!(sum.intervals >= 2, "{metric}: {} intervals", sum.intervals);
        let whole = &s["latency"][format!("{metric}_us")];
        assert!(sum.count > 0);
        for (key, value) in [
            ("min", sum.histogram.min()),
            ("max", sum.histogram.max()),
            ("p50", sum.histogram.value_at_quantile(0.5)),
            ("p99", sum.histogram.value_at_quantile(0.99)),
        ] {
            assert_eq!(whole[key], value, "{metric} {key}: {whole}");
        }
    }
    let log = std::fs::read_to_string(out.join("connect.hlog")).unwrap();
    let started = humantime::parse_rfc3339(s["started_at"].as_str().unwrap()).unwrap();
    let secs = started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        log.contains(&format!("#[StartTime: {secs}.")) && log.contains("#[BaseTime: "),
        "{log}"
    );
}

/// HdrHistogram's own (Java) HistogramLogProcessor reads connect.hlog: the
/// percentile distribution it prints for the whole log is connect.hgrm,
/// byte for byte.
#[test]
fn hdrhistogram_java_tools_read_the_interval_log_as_the_run_wrote_its_hgrm() {
    const JAR: &str = "/usr/share/java/hdrhistogram.jar";
    let test = "hdrhistogram_java_tools_read_the_interval_log_as_the_run_wrote_its_hgrm";
    let java = std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !crate::util::require(
        test,
        java && std::path::Path::new(JAR).is_file(),
        "java and HdrHistogram's jar (libhdrhistogram-java)",
    ) {
        return;
    }
    let server = Server::start(&["--listen", "127.0.0.1:0"]);
    let Finished { out, _tmp, .. } = run_ok(&[
        "--target",
        &server.addr(),
        "--connections",
        "300",
        "--rate",
        "200",
        "--hold",
        "200ms",
    ]);
    let mut cmd = std::process::Command::new("java");
    cmd.args(["-cp", JAR, "org.HdrHistogram.HistogramLogProcessor", "-i"])
        .arg(out.join("connect.hlog"))
        .args(["-outputValueUnitRatio", "1"]);
    let output = run_bounded(cmd, BOUND);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let distribution: String = text(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with("#[StartTime:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let hgrm = std::fs::read_to_string(out.join("connect.hgrm")).unwrap();
    assert_eq!(distribution, hgrm);
    assert!(hgrm.contains("Total count    =          300]"), "{hgrm}");
}

#[test]
fn a_server_that_closes_is_named_server_closed_with_evidence() {
    let server = Server::start(&["--mode", "close"]);
    let Finished {
        summary: s, _tmp, ..
    } = run_ok(&[
        "--target",
        &server.addr(),
        "--connections",
        "20",
        "--rate",
        "200",
        "--hold",
        "2s",
    ]);
    assert_eq!(s["totals"]["closed_by_server"], 20);
    assert_eq!(s["failures_by_kind"]["server_closed"], 20);
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "server_closed");
    assert_eq!(first["at_attempt"], 1);
    assert_eq!(first["syscall"], "read");
    assert!(first["remedy"].as_str().unwrap().len() > 10);
    // The closes' spread: all at once after connecting, so not a cap nor a
    // timeout.
    let facts = &first["evidence"]["facts"];
    assert_eq!(facts["server_closes"]["closes"], 20, "{facts}");
    let verdict = facts["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.contains("closed every connection within"),
        "{facts}"
    );
    assert!(
        first["evidence"]["message"]
            .as_str()
            .unwrap()
            .contains(verdict)
    );
}

#[test]
fn refusals_are_counted_but_are_not_a_limit() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out)).args([
        "--target",
        &format!("127.0.0.1:{port}"),
        "--connections",
        "10",
        "--rate",
        "0",
    ]);
    // Nothing connected at all: said so, with exit status 3
    // (tests/figures.rs checks the words).
    let output = run_bounded(cmd, BOUND);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let s = summary(&out);
    assert_eq!(s["failures_by_kind"]["refused"], 10);
    assert!(s["first_limit"].is_null());
    let failures = std::fs::read_to_string(out.join("failures.csv")).unwrap();
    assert!(failures.contains("ECONNREFUSED"), "{failures}");
}

#[test]
fn a_target_that_dies_mid_run_is_recorded_and_the_run_goes_on() {
    let mut server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out)).args([
        "--target",
        &server.addr(),
        "--connections",
        "60",
        "--rate",
        "30",
        "--hold",
        "5s",
    ]);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    server.kill();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let s = summary(&out);
    let held_then_closed = s["failures_by_kind"]["server_closed"].as_u64().unwrap();
    let refused = s["failures_by_kind"]["refused"].as_u64().unwrap();
    assert!(held_then_closed >= 10, "{s}");
    assert!(refused >= 10, "{s}");
    assert_eq!(s["totals"]["attempted"], 60);
    assert_eq!(s["aborted"], false);
}

#[test]
fn sigint_stops_the_run_and_leaves_complete_files() {
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out))
        .args(["--connections", "1000", "--rate", "100", "--hold", "1m"]);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "stderr: {}",
        text(&output.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["aborted"], true);
    let attempted = s["totals"]["attempted"].as_u64().unwrap();
    assert!((100..1000).contains(&attempted), "{attempted}");
    assert_eq!(s["totals"]["closed_by_driver"], s["totals"]["established"]);
    assert_results_complete(&out);
    let series = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    assert!(series.lines().count() >= 3, "{series}");
}

#[test]
fn sources_spread_connections_round_robin() {
    let server = Server::start(&[]);
    let Finished {
        out,
        summary: s,
        _tmp,
        ..
    } = run_ok(&[
        "--target",
        &server.addr(),
        "--source",
        "127.0.0.2-127.0.0.4",
        "--connections",
        "300",
        "--rate",
        "0",
        "--hold",
        "500ms",
    ]);
    let sources = s["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    for source in sources {
        assert_eq!(source["established"], 100, "{source}");
        assert_eq!(source["peak_ports_in_use"], 100, "{source}");
    }
    let csv = std::fs::read_to_string(out.join("sources.csv")).unwrap();
    assert!(csv.contains("127.0.0.3"), "{csv}");
}

#[test]
fn explicit_source_ports_run_out_as_port_exhaustion() {
    // Five ports below the ephemeral range, so no outgoing connection of
    // another test holds one of them.
    let server = Server::start(&[]);
    let base = 20_000 + (std::process::id() % 10_000) as u16;
    let range = format!("{base}-{}", base + 4);
    let Finished {
        out,
        summary: s,
        _tmp,
        ..
    } = run_ok(&[
        "--target",
        &server.addr(),
        "--source",
        "127.0.0.5",
        "--source-ports",
        &range,
        "--connections",
        "8",
        "--rate",
        "100",
        "--hold",
        "1s",
    ]);
    assert_eq!(s["totals"]["established"], 5, "{s}");
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "port_exhaustion", "{s}");
    assert_eq!(first["at_attempt"], 6);
    assert!(
        first["remedy"].as_str().unwrap().contains("--source-ports"),
        "{first}"
    );
    let failures = std::fs::read_to_string(out.join("failures.csv")).unwrap();
    assert!(failures.contains("port_exhaustion"), "{failures}");
}

#[test]
fn hold_until_end_closes_everything_at_the_duration() {
    let server = Server::start(&[]);
    let Finished {
        summary: s, _tmp, ..
    } = run_ok(&[
        "--target",
        &server.addr(),
        "--connections",
        "200",
        "--rate",
        "1k",
        "--hold",
        "end",
        "--duration",
        "1500ms",
    ]);
    assert_eq!(s["totals"]["established"], 200);
    assert_eq!(s["totals"]["closed_by_driver"], 200);
    let duration = s["duration_s"].as_f64().unwrap();
    assert!((1.4..4.0).contains(&duration), "ran {duration} s");
    assert_eq!(s["aborted"], false);
}

#[test]
fn a_server_that_never_echoes_is_reported_connection_by_connection() {
    // `serve --mode hold` reads and discards: every echo request goes
    // unanswered, as past the cap of a server that accepts and queues.
    let server = Server::start(&["--mode", "hold"]);
    let Finished {
        summary: s,
        output,
        _tmp,
        ..
    } = run_ok(&[
        "--target",
        &server.addr(),
        "--connections",
        "10",
        "--rate",
        "0",
        "--mode",
        "echo",
        "--interval",
        "100ms",
        "--hold",
        "600ms",
    ]);
    let w = &s["warnings"];
    assert_eq!(w["echo_silent_connections"], 10, "{w}");
    assert_eq!(w["echo_silent_first_attempt"], 1, "{w}");
    assert!(w["echo_unanswered"].as_u64().unwrap() >= 10, "{w}");
    assert_eq!(s["latency"]["rtt_us"]["count"], 0);
    assert!(text(&output.stdout).contains("no first echo reply in time"));
}

/// A real Redis (not ours) answers `PING\r\n` only with a real CR LF: the
/// message's escapes make the six characters a shell passes into the six
/// bytes Redis reads. Skips without redis-server; under CI=true a skip is
/// a failure.
#[test]
fn echo_mode_pings_a_real_redis_with_escapes_in_the_message() {
    if !crate::util::require(
        "echo_mode_pings_a_real_redis",
        crate::util::installed("redis-server"),
        "redis-server (Debian: redis-server)",
    ) {
        return;
    }
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut redis = std::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let addr = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "redis did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out)).args([
        "--target",
        &addr,
        "--connections",
        "5",
        "--rate",
        "0",
        "--mode",
        "echo",
        "--message",
        r"PING\r\n",
        "--interval",
        "200ms",
        "--hold",
        "1s",
    ]);
    let output = run_bounded(cmd, BOUND);
    let _ = redis.kill();
    let _ = redis.wait();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    drop(tmp);
    assert_eq!(s["totals"]["established"], 5);
    assert_eq!(s["scenario"]["message"], r"PING\r\n");
    let replies = s["latency"]["rtt_us"]["count"].as_u64().unwrap();
    assert!(replies >= 10, "{replies} replies from redis: {s}");
    assert_eq!(
        s["warnings"]["echo_unanswered"].as_u64().unwrap_or(0),
        0,
        "{}",
        s["warnings"]
    );
}

/// A cpu cgroup of the test's own with a quota of 0.1 core, removed on
/// drop (after the processes in it have exited).
struct CpuQuota(std::path::PathBuf);

impl CpuQuota {
    fn create(tenths_of_a_core: u64) -> std::io::Result<CpuQuota> {
        let dir = std::path::PathBuf::from(format!(
            "/sys/fs/cgroup/cpu/ceiling-test-gen-{}",
            std::process::id()
        ));
        std::fs::create_dir(&dir)?;
        let cgroup = CpuQuota(dir);
        std::fs::write(cgroup.0.join("cpu.cfs_period_us"), "100000")?;
        std::fs::write(
            cgroup.0.join("cpu.cfs_quota_us"),
            (tenths_of_a_core * 10_000).to_string(),
        )?;
        Ok(cgroup)
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// ceiling itself in a cpu cgroup of 0.1 core, asked for 20,000 connects/s
/// on one thread: it says the generator was the bottleneck, and marks the
/// latencies; the same run without the quota at a rate within its means
/// does not.
#[test]
fn the_generator_says_when_it_is_the_bottleneck_needs_root() {
    let root = unsafe { libc::geteuid() } == 0;
    if !crate::util::require(
        "the_generator_says_when_it_is_the_bottleneck",
        root && std::path::Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists(),
        "root and a cgroup v1 cpu controller to put ceiling under a CPU quota",
    ) {
        return;
    }
    let server = Server::start(&["--listen", "127.0.0.1:0"]);
    let quota = CpuQuota::create(1).expect("a cpu cgroup of our own");
    let (_tmp, out) = out_dir();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$CEILING\" \"$@\"",
            quota.0.display()
        ))
        .arg("sh")
        .env("CEILING", crate::util::bin())
        .args(run_args(&out))
        .args(["--target", &server.addr(), "--threads", "1"])
        .args(["--connections", "12000", "--rate", "20k", "--hold", "0s"]);
    let output = run_bounded(cmd, BOUND);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    let g = &s["warnings"]["generator_bottleneck"];
    assert!(
        g.is_object(),
        "no verdict under 0.1 core: {}",
        s["warnings"]
    );
    assert!(g["cores_available"].as_f64().unwrap() <= 0.11, "{g}");
    assert!(g["achieved_ratio"].as_f64().unwrap() < 0.9, "{g}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("the generator was the bottleneck"),
        "{stdout}"
    );
    assert!(
        stdout.contains("latencies include its own delay"),
        "{stdout}"
    );
    drop(quota);

    let Finished { summary: s, .. } = run_ok(&[
        "--target",
        &server.addr(),
        "--connections",
        "1000",
        "--rate",
        "500",
        "--hold",
        "0s",
    ]);
    assert!(
        s["warnings"]["generator_bottleneck"].is_null(),
        "{}",
        s["warnings"]
    );
}

/// The same in request mode: ceiling under 0.1 core, asked for 20,000
/// requests/s over a pool of 20, stamps them on time but sends a fraction:
/// the verdict says so in requests, not in connects (whose rate is 0 once
/// the pool is open); at a rate within its means it says nothing.
#[test]
fn a_request_run_says_when_the_generator_is_the_bottleneck_needs_root() {
    let root = unsafe { libc::geteuid() } == 0;
    if !crate::util::require(
        "a_request_run_says_when_the_generator_is_the_bottleneck",
        root && std::path::Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists(),
        "root and a cgroup v1 cpu controller to put ceiling under a CPU quota",
    ) {
        return;
    }
    let server = Server::start(&["--mode", "http"]);
    let request_args = |out: &std::path::Path, rate: &str| {
        let mut args = run_args(out);
        args.extend(
            [
                "--mode",
                "request",
                "--protocol",
                "http",
                "--target",
                &server.addr(),
                "--pool",
                "20",
                "--rate",
                rate,
                "--duration",
                "4s",
            ]
            .map(String::from),
        );
        args
    };
    let quota = CpuQuota::create(1).expect("a cpu cgroup of our own");
    let (_tmp, out) = out_dir();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$CEILING\" \"$@\"",
            quota.0.display()
        ))
        .arg("sh")
        .env("CEILING", crate::util::bin())
        .args(request_args(&out, "20k"));
    let output = run_bounded(cmd, BOUND);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    let g = &s["warnings"]["generator_bottleneck"];
    assert!(
        g.is_object(),
        "no verdict under 0.1 core: {}",
        s["warnings"]
    );
    assert!(g["achieved_ratio"].as_f64().unwrap() < 0.9, "{g}");
    let message = g["message"].as_str().unwrap();
    assert!(
        message.contains("while it sent ") && message.contains(" requests/s of the "),
        "{message}"
    );
    drop(quota);

    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(request_args(&out, "200"));
    let output = run_bounded(cmd, BOUND);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    assert!(
        s["warnings"]["generator_bottleneck"].is_null(),
        "{}",
        s["warnings"]
    );
}

/// A target that never accepts leaves handshakes half-open, each with an
/// fd: with a low fd limit and no cap they pile up to EMFILE, which hides
/// the cause; `--max-in-flight` keeps them under the limit, and the
/// target's full listen queue is what is named.
#[test]
fn max_in_flight_keeps_half_open_handshakes_from_drowning_the_run() {
    let run = |extra: &[&str]| {
        let server = Server::start(&["--listen", "127.0.0.1:0", "--no-accept", "--backlog", "4"]);
        let mut args = vec![
            "--target".to_string(),
            server.addr(),
            "--connections".into(),
            "300".into(),
            "--rate".into(),
            "2k".into(),
            "--fd-limit".into(),
            "100".into(),
            "--connect-timeout".into(),
            "500ms".into(),
            "--hold".into(),
            "0s".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&args).summary
    };
    let drowned = run(&[]);
    assert!(
        drowned["failures_by_kind"]["fd_limit_process"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        drowned["failures_by_kind"]
    );
    // EMFILE is the first failure, but the cause is named with it: the
    // fds were handshakes waiting on the target's full listen queue.
    let first = &drowned["first_limit"];
    assert_eq!(first["kind"], "fd_limit_process", "{drowned}");
    let message = first["evidence"]["message"].as_str().unwrap();
    assert!(
        message.contains("sockets to the target were handshakes (SYN-SENT) waiting on a full listen queue at the target (ListenOverflows +"),
        "{message}"
    );
    let remedy = first["remedy"].as_str().unwrap();
    assert!(
        remedy.starts_with(
            "most of what reached the limit were handshakes waiting on a full listen queue"
        ),
        "{remedy}"
    );
    assert!(remedy.contains("--max-in-flight N"), "{remedy}");
    let states = &first["evidence"]["facts"]["sockets_at_limit"];
    assert!(
        states["syn_sent"].as_u64().unwrap() * 2 > states["total"].as_u64().unwrap(),
        "{states}"
    );
    let capped = run(&["--max-in-flight", "40"]);
    assert_eq!(
        capped["failures_by_kind"]["fd_limit_process"], 0,
        "{}",
        capped["failures_by_kind"]
    );
    assert_eq!(
        capped["first_limit"]["kind"], "backlog_overflow",
        "{capped}"
    );
    assert_eq!(capped["totals"]["attempted"], 300, "{capped}");
    assert_eq!(capped["scenario"]["max_in_flight"], 40, "{capped}");
}
