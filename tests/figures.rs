//! Figures that add up and diagnoses a user would not dispute, on real
//! runs: a server that closes everything is not "failed" connects, a port
//! nothing listens on is said plainly (exit 3), a server that shuts down
//! mid-hold is a shutdown, not a timeout. Every results directory here is
//! also checked by `util::assert_invariants`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{Server, assert_results_complete, ceiling, out_dir, run_bounded, summary, text};

fn run_args(out: &std::path::Path) -> Vec<String> {
    ["run", "--ui", "none", "--out", out.to_str().unwrap()]
        .map(String::from)
        .to_vec()
}

#[test]
fn closes_by_the_server_are_not_connect_failures() {
    let server = Server::start(&["--mode", "close"]);
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out))
        .args(["--target", &server.addr()])
        .args(["--connections", "30", "--rate", "0", "--hold", "1s"]);
    let output = run_bounded(cmd, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_results_complete(&out);
    let s = summary(&out);
    let t = &s["totals"];
    assert_eq!(t["attempted"], 30, "{s}");
    assert_eq!(t["established"], 30, "{s}");
    assert_eq!(t["connect_failed"], 0, "{s}");
    assert_eq!(t["closed_by_server"], 30, "{s}");
    // The closes are still failure events (server_closed is a limit).
    assert_eq!(s["failures_by_kind"]["server_closed"], 30, "{s}");
    let stdout = text(&output.stdout);
    let words = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("connect failures 0"), "{stdout}");
    assert!(words.contains("closed by server 30"), "{stdout}");
    assert!(!words.contains("failed 30"), "{stdout}");
}

/// A loopback port nobody listens on: bound, read, closed.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_port_nothing_listens_on_is_said_plainly_and_exits_3() {
    let port = free_port();
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out))
        .args(["--target", &format!("127.0.0.1:{port}")])
        .args(["--connections", "20", "--rate", "0"]);
    let output = run_bounded(cmd, Duration::from_secs(30));
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "nothing accepted a connection: every attempt (20) to 127.0.0.1:{port} was refused"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("is the server running and is this the right port?"),
        "{stdout}"
    );
    assert!(!stdout.contains("no limit hit"), "{stdout}");
    assert_results_complete(&out);
    let s = summary(&out);
    crate::results::validate(&s);
    assert_eq!(s["nothing_connected"]["cause"], "refused", "{s}");
    assert_eq!(s["totals"]["connect_failed"], 20, "{s}");
}

#[test]
fn a_server_killed_mid_hold_is_a_shutdown_not_a_timeout() {
    let mut server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    // 40 connections over ~2 s, each held 6 s: the server dies while all
    // are held, at ages that differ by ~2 s.
    let mut child = ceiling()
        .args(run_args(&out))
        .args(["--target", &server.addr()])
        .args(["--connections", "40", "--rate", "20", "--hold", "6s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for a time series row with all 40 established.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let series = std::fs::read_to_string(out.join("timeseries.csv")).unwrap_or_default();
        let all_up = series
            .lines()
            .skip(1)
            .any(|row| row.split(',').nth(3) == Some("40"));
        if all_up {
            break;
        }
        assert!(Instant::now() < deadline, "40 never established:\n{series}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill() with the PID of the server this test started.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    let _ = server.child.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_results_complete(&out);
    let s = summary(&out);
    assert_eq!(s["totals"]["closed_by_server"], 40, "{s}");
    assert_eq!(s["first_limit"]["kind"], "server_closed", "{s}");
    let verdict = s["first_limit"]["evidence"]["facts"]["verdict"]
        .as_str()
        .unwrap_or_else(|| panic!("no verdict: {s}"));
    assert!(
        verdict.starts_with("every held connection (40) was closed by the server within"),
        "{verdict}"
    );
    assert!(
        verdict.ends_with("the server shut down or restarted"),
        "{verdict}"
    );
    assert!(!verdict.contains("timeout"), "{verdict}");
    // Wrapped at 80 columns on stdout.
    let stdout = text(&output.stdout);
    let words = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("the server shut down or restarted"),
        "{stdout}"
    );
    assert!(words.contains("remedy: the target went away"), "{stdout}");
}

#[test]
fn an_unreachable_target_is_a_blocked_path_needs_root() {
    if !crate::util::require_netns("an_unreachable_target_is_a_blocked_path_needs_root") {
        return;
    }
    // A namespace of our own with only lo: 10.99.0.1 has no route, every
    // connect() is ENETUNREACH and nothing leaves the namespace.
    let (_tmp, out) = out_dir();
    let script = format!(
        "status=0\n\"$CEILING\" run --ui none --out '{}' --target 10.99.0.1:80 \
         --connections 6 --rate 0 || status=$?\necho \"exit status $status\"\n",
        out.display()
    );
    let output = crate::util::in_netns(&script, Duration::from_secs(60));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("exit status 3"),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let words = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(
            "nothing accepted a connection: every attempt (6) to 10.99.0.1:80 was unreachable"
        ),
        "{stdout}"
    );
    assert!(words.contains("the path is blocked"), "{stdout}");
    assert_results_complete(&out);
    let s = summary(&out);
    assert_eq!(s["nothing_connected"]["cause"], "blocked", "{s}");
}

/// A way to break a summary, and what it breaks.
type Tamper = (&'static str, fn(&mut serde_json::Value));

/// The checker itself can fail: figures that contradict each other in the
/// ways issue 12 found are caught.
#[test]
fn the_invariant_checker_catches_figures_that_do_not_add_up() {
    let server = Server::start(&["--mode", "close"]);
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(run_args(&out))
        .args(["--target", &server.addr()])
        .args(["--connections", "20", "--rate", "0", "--hold", "1s"]);
    let output = run_bounded(cmd, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_results_complete(&out);
    let good = summary(&out);
    let tampered: [Tamper; 4] = [
        // "attempted 20, established 20, failed 20".
        ("server closes counted as connect failures", |s| {
            s["totals"]["connect_failed"] = s["totals"]["established"].clone()
        }),
        // A sampled peak below the first limit's active count.
        ("peak_active below first_limit.active_at", |s| {
            s["first_limit"]["active_at"] =
                (s["totals"]["peak_active"].as_u64().unwrap() + 1).into()
        }),
        // Lost connections also counted as closed by ceiling.
        ("a connection counted twice", |s| {
            s["totals"]["closed_by_driver"] = 1.into()
        }),
        ("sources that do not sum to the totals", |s| {
            s["sources"][0]["attempted"] = 0.into()
        }),
    ];
    for (what, tamper) in tampered {
        let mut s = good.clone();
        tamper(&mut s);
        std::fs::write(out.join("summary.json"), s.to_string()).unwrap();
        let caught = std::panic::catch_unwind(|| crate::util::assert_invariants(&out));
        assert!(caught.is_err(), "not caught: {what}");
    }
}
