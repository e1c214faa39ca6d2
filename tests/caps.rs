//! How a server's own limits look from the client: `run` against `serve
//! --max-conns 50 --when-full POLICY` with 150 connections, and against an
//! idle timeout. Each must be named from what the socket said.

use std::time::Duration;

use crate::util::{Server, ceiling, out_dir, run_bounded, summary, text};

fn run(args: &[&str]) -> serde_json::Value {
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
        .args(args);
    let output = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{args:?}: {}",
        text(&output.stderr)
    );
    summary(&out)
}

fn capped(policy: &str, extra_serve: &[&str], extra_run: &[&str]) -> serde_json::Value {
    let mut serve_args = vec!["--max-conns", "50", "--when-full", policy];
    serve_args.extend_from_slice(extra_serve);
    let server = Server::start(&serve_args);
    let addr = server.addr();
    // One driver thread: attempts then reach the server's accept queue in
    // attempt order. With two, a delayed thread lets later attempts take the
    // cap's last slots (seen in CI: attempt 49 reset at a cap of 50).
    let mut args = vec![
        "--target",
        addr.as_str(),
        "--threads",
        "1",
        "--connections",
        "150",
        "--rate",
        "200",
        // Long enough that a loaded machine still reads every close by the
        // target before the driver's own closes begin.
        "--hold",
        "3s",
    ];
    args.extend_from_slice(extra_run);
    run(&args)
}

/// The attempt the cap first showed at: the 51st, give or take one for the
/// kernel's own delivery order between CPUs.
fn assert_near(value: &serde_json::Value, expected: u64, context: &serde_json::Value) {
    let got = value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {context}"));
    assert!(
        got.abs_diff(expected) <= 1,
        "expected about {expected}, got {got}: {context}"
    );
}

fn verdict(s: &serde_json::Value) -> String {
    s["first_limit"]["evidence"]["facts"]["verdict"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn cap_close_sends_its_message_and_reads_as_a_cap_of_50() {
    let s = capped("close", &[], &[]);
    assert_eq!(s["totals"]["established"], 150, "{s}");
    assert_eq!(s["totals"]["closed_by_server"], 100, "{s}");
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "server_closed", "{s}");
    assert_near(&first["at_attempt"], 51, first);
    let message = first["evidence"]["message"].as_str().unwrap();
    assert!(
        message.contains("max connections (50) reached"),
        "{message}"
    );
    assert!(verdict(&s).contains("cap of ~50"), "{}", verdict(&s));
}

#[test]
fn cap_reset_is_an_rst_and_a_cap_of_50() {
    let s = capped("reset", &[], &[]);
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "server_closed", "{s}");
    assert_near(&first["at_attempt"], 51, first);
    assert_eq!(first["evidence"]["facts"]["peer_close"], "rst", "{first}");
    assert_eq!(s["totals"]["closed_by_server"], 100);
    assert!(verdict(&s).contains("cap of ~50"), "{}", verdict(&s));
}

#[test]
fn cap_close_oldest_closes_held_ones_at_a_cap_of_50() {
    let s = capped("close-oldest", &[], &[]);
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "server_closed", "{s}");
    // The oldest connection goes when the 51st arrives.
    assert_near(&first["at_attempt"], 1, first);
    assert_eq!(s["totals"]["closed_by_server"], 100);
    assert!(verdict(&s).contains("cap of ~50"), "{}", verdict(&s));
}

#[test]
fn cap_stop_accepting_with_a_small_backlog_is_a_backlog_overflow() {
    let s = capped(
        "stop-accepting",
        &["--backlog", "8"],
        // The timeouts (1 s) come before the first holds end (2 s), so
        // the target's queue is still full when ceiling reads it.
        &["--connect-timeout", "1s"],
    );
    let established = s["totals"]["established"].as_u64().unwrap();
    // 50 accepted and the accept queue's backlog + 1.
    assert!((58..=60).contains(&established), "{established}: {s}");
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "backlog_overflow", "{s}");
    assert!(
        first["evidence"]["facts"]["listener_queued"]
            .as_u64()
            .unwrap()
            >= 8,
        "{first}"
    );
}

#[test]
fn cap_queue_has_no_error_only_silent_connections_past_50() {
    let s = capped(
        "queue",
        &["--mode", "echo"],
        &["--mode", "echo", "--interval", "200ms"],
    );
    assert!(s["first_limit"].is_null(), "{s}");
    let w = &s["warnings"];
    assert_eq!(w["echo_silent_connections"], 100, "{w}");
    assert_near(&w["echo_silent_first_attempt"], 51, w);
}

#[test]
fn an_idle_timeout_reads_as_a_timeout_not_a_cap() {
    let server = Server::start(&["--idle-timeout", "1s"]);
    let s = run(&[
        "--target",
        &server.addr(),
        "--connections",
        "60",
        "--rate",
        "200",
        "--hold",
        "3s",
    ]);
    assert_eq!(s["totals"]["closed_by_server"], 60, "{s}");
    let v = verdict(&s);
    assert!(v.contains("timeout of 1 s"), "{v}");
    assert!(!v.contains("cap"), "{v}");
}

#[test]
fn thread_per_connection_in_a_pids_cgroup_is_named_with_its_message_needs_root() {
    let skip = |why: &str| {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "not skipped under CI: {why}"
        );
        eprintln!("skipped: {why}");
    };
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root to create a pids cgroup");
    }
    let cgroup = match crate::util::PidsCgroup::create(40) {
        Ok(cgroup) => cgroup,
        Err(err) => return skip(&format!("cannot create a cgroup v1 pids group: {err}")),
    };
    let server = Server::start(&["--model", "threads"]);
    cgroup.add(server.child.id());
    let s = run(&[
        "--target",
        &server.addr(),
        "--connections",
        "80",
        "--rate",
        "200",
        "--hold",
        "2s",
    ]);
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "server_closed", "{s}");
    let message = first["evidence"]["message"].as_str().unwrap();
    assert!(message.contains("cannot start a thread"), "{message}");
    let closed = s["totals"]["closed_by_server"].as_u64().unwrap();
    assert!(
        (20..80).contains(&closed),
        "{closed} of 80 closed under pids.max 40"
    );
    // The thread limit acts as a cap: closes come at one held count.
    assert!(
        verdict(&s).contains("connection cap of ~"),
        "{}",
        verdict(&s)
    );
    drop(server);
}

#[test]
fn the_active_count_agrees_with_the_kernel_while_the_target_closes_connections() {
    // close-oldest keeps the target at 50: the driver must see the other
    // 100 closed (read interest), not count them as held.
    let server = Server::start(&["--max-conns", "50", "--when-full", "close-oldest"]);
    let port = server.addrs[0].port();
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
        .args([
            "--target",
            &server.addr(),
            "--connections",
            "150",
            "--rate",
            "500",
            "--hold",
            "6s",
        ]);
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Sampled until both settle (all 150 are opened within 0.3 s; a loaded
    // machine may take longer to write the row): the kernel's count of
    // established sockets to the target, and the last time-series row.
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let (kernel, active, last) = loop {
        std::thread::sleep(Duration::from_millis(250));
        let ss = std::process::Command::new("ss")
            .args([
                "-Htn",
                "state",
                "established",
                "dst",
                &format!("127.0.0.1:{port}"),
            ])
            .output()
            .expect("ss (iproute2) runs");
        let kernel = String::from_utf8_lossy(&ss.stdout).lines().count();
        let series = std::fs::read_to_string(out.join("timeseries.csv")).unwrap_or_default();
        let last = series
            .lines()
            .skip(1)
            .last()
            .unwrap_or_default()
            .to_string();
        let active: Option<usize> = last.split(',').nth(5).and_then(|a| a.parse().ok());
        if (kernel == 50 && active == Some(50)) || std::time::Instant::now() > deadline {
            break (kernel, active, last);
        }
    };
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(kernel, 50, "ss counts {kernel} established to the target");
    assert_eq!(
        active,
        Some(kernel),
        "timeseries says {active:?} active: {last}"
    );
    assert_eq!(summary(&out)["totals"]["closed_by_server"], 100);
}

/// A server of the user's own on this host (not ceiling's built-in one),
/// in a CPU cgroup of 0.01 cores this test makes: ceiling finds it as the
/// owner of the target's listener, reads its CPU and its cgroup's
/// throttling, and names its CPU quota as what slowed the connects.
#[test]
fn a_local_servers_cpu_quota_is_named_from_its_listener_needs_root() {
    let skip = |why: &str| {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "not skipped under CI: {why}"
        );
        eprintln!("skipped: {why}");
    };
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root to create a cpu cgroup");
    }
    let cgroups = match ceiling::lab::cgroup::ServerCgroups::create(None, Some(10)) {
        Ok(Some(cgroups)) => cgroups,
        Ok(None) => unreachable!("a CPU quota was asked"),
        Err(err) => return skip(&format!("cannot create a cpu cgroup: {err}")),
    };
    let server = Server::start(&["--backlog", "64"]);
    for procs in cgroups.procs_files() {
        std::fs::write(procs, server.child.id().to_string()).expect("move into the cgroup");
    }
    // Half the load of scenarios/server-cpu.toml, and a connect timeout
    // that lets every SYN through in the end: nothing fails, connects slow.
    let s = run(&[
        "--target",
        &server.addr(),
        "--connections",
        "2000",
        "--rate",
        "2000",
        "--hold",
        "1s",
        "--connect-timeout",
        "15s",
    ]);
    drop(server);
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "server_cpu", "{s}");
    let message = first["evidence"]["message"].as_str().unwrap();
    assert!(
        message.contains("the server process was at its CPU quota of 0.01 cores for"),
        "{message}"
    );
    let remedy = first["remedy"].as_str().unwrap();
    assert!(
        remedy.starts_with("the server process was at its CPU quota of 0.01 cores"),
        "{remedy}"
    );
}
