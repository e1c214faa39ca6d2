//! The dashboard as a person sees it: the real binary in a real terminal
//! (tmux), against a local `serve`. Skips without tmux (fails under
//! CI=true, where .ci/run installs it).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::util::{Server, assert_results_complete, bin, out_dir, summary};

pub fn have_tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let reason = "tui: skipped: tmux is not installed";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}; under CI=true a skip is a failure");
        }
        eprintln!("{reason}");
    }
    ok
}

/// A detached tmux session, killed on drop.
pub struct Tmux {
    name: String,
}

impl Tmux {
    pub fn start(command: &str, width: u16, height: u16) -> Tmux {
        // Unique per test: tests of one binary run side by side.
        static SESSIONS: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ceiling-test-{}-{}-{}x{}",
            std::process::id(),
            SESSIONS.fetch_add(1, Ordering::Relaxed),
            width,
            height
        );
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .env("TERM", "xterm-256color")
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        Tmux { name }
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .unwrap();
    }

    /// Waits (bounded) until the screen satisfies `ready`.
    pub fn wait_for(&self, what: &str, bound: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + bound;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// The first number on the dashboard's "attempted" line.
pub fn attempted_on_screen(screen: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.contains("attempted"))?;
    let after = &line[line.find("attempted")? + "attempted".len()..];
    let digits: String = after
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn tui_shows_live_numbers_and_q_stops_with_complete_results() {
    if !have_tmux() {
        return;
    }
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    // `; sleep 30` keeps the pane (and the printed summary) after ceiling exits.
    let command = format!(
        "{} run --ui tui --name tuitest --target {} --connections 3000 --rate 1000 --hold 1m --out {}; sleep 30",
        bin(),
        server.addr(),
        out.display()
    );
    let tmux = Tmux::start(&command, 120, 40);
    // The attempted count climbs past 1,000 on the dashboard itself.
    let screen = tmux.wait_for("1,000 attempted", Duration::from_secs(20), |s| {
        s.contains("tuitest") && attempted_on_screen(s).is_some_and(|n| n >= 1000)
    });
    for panel in [
        "Connections",
        "Connect latency",
        "Limits",
        "Sources",
        "Host",
        "q  stop",
    ] {
        assert!(
            screen.contains(panel),
            "no {panel:?} on the dashboard:\n{screen}"
        );
    }
    // p pauses: the header says so.
    tmux.keys("p");
    tmux.wait_for("PAUSED", Duration::from_secs(5), |s| s.contains("PAUSED"));
    tmux.keys("p");
    tmux.keys("q");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out.join("summary.json").exists() {
        assert!(
            Instant::now() < deadline,
            "no summary.json after q:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = summary(&out);
    assert_eq!(s["aborted"], true);
    let attempted = s["totals"]["attempted"].as_u64().unwrap();
    assert!((1000..3000).contains(&attempted), "{attempted}");
    assert_results_complete(&out);
    // The terminal is back: the text summary is on the normal screen.
    let after = tmux.wait_for("the summary", Duration::from_secs(10), |s| {
        s.contains("first limit")
    });
    assert!(after.contains("tuitest"), "{after}");
}

#[test]
fn tui_with_stdout_redirected_draws_and_writes_the_summary_to_the_file() {
    if !have_tmux() {
        return;
    }
    let server = Server::start(&[]);
    let (tmp, out) = out_dir();
    let printed = tmp.path().join("summary.txt");
    let command = format!(
        "{} run --ui tui --target {} --connections 200 --rate 1k --hold 300ms --out {} > {}; echo \"exit $?\" >> {}; sleep 30",
        bin(),
        server.addr(),
        out.display(),
        printed.display(),
        printed.display()
    );
    let tmux = Tmux::start(&command, 100, 30);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&printed).unwrap_or_default();
        if text.contains("exit ") {
            assert!(
                text.contains("exit 0"),
                "{text}\nscreen:\n{}",
                tmux.screen()
            );
            assert!(text.contains("established"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not end:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(summary(&out)["totals"]["established"], 200);
}

/// The Host panel's row that starts with `label`, up to the panel's border.
fn host_row<'a>(screen: &'a str, label: &str) -> Option<&'a str> {
    let line = screen.lines().find(|l| {
        l.strip_prefix('│')
            .is_some_and(|rest| rest.starts_with(label))
    })?;
    let inner = &line['│'.len_utf8()..];
    Some(&inner[..inner.find('│').unwrap_or(inner.len())])
}

/// The first figure after `label` in the Host panel, commas dropped.
fn host_figure(screen: &str, label: &str) -> Option<u64> {
    let row = host_row(screen, label)?;
    let value = row[label.len()..].split_whitespace().next()?;
    value.replace(',', "").parse().ok()
}

#[test]
fn tui_host_panel_keeps_reading_when_the_fd_table_is_full() {
    if !have_tmux() {
        return;
    }
    let server = Server::start(&["--fd-limit", "300"]);
    let (_tmp, out) = out_dir();
    // 2,000 connections in a table of 200 fds: EMFILE within the first
    // second, then the run holds what it has.
    let command = format!(
        "{} run --ui tui --target {} --connections 2000 --fd-limit 200 --hold 30s --out {}; sleep 30",
        bin(),
        server.addr(),
        out.display()
    );
    let tmux = Tmux::start(&command, 120, 40);
    tmux.wait_for("the fd limit", Duration::from_secs(20), |s| {
        s.contains("FIRST LIMIT per-process fd limit")
    });
    // The host panel is read once a second: these readings were taken with
    // the fd table full.
    std::thread::sleep(Duration::from_millis(2500));
    let screen = tmux.screen();
    let fds = host_figure(&screen, "fds");
    assert!(
        fds.is_some_and(|n| (100..=200).contains(&n)),
        "open fds not read at the limit: {fds:?}\n{screen}"
    );
    let ports = host_row(&screen, "ports").unwrap_or_default();
    assert!(ports.contains('–') && !ports.contains('?'), "{screen}");
    assert!(host_figure(&screen, "tcp").is_some(), "{screen}");
    let source = screen
        .lines()
        .find(|l| l.contains("(kernel-chosen)") && !l.contains("FIRST LIMIT"))
        .unwrap_or_default();
    assert!(
        source.contains('%') && !source.contains('?'),
        "the sources' share of the port range: {screen}"
    );
    tmux.keys("q");
}

#[test]
fn tui_shows_request_rate_in_flight_queue_and_the_three_latencies_in_request_mode() {
    if !have_tmux() {
        return;
    }
    // 2 connections at 10 ms serve 200/s of the 1,000/s asked: a queue.
    let server = Server::start(&["--mode", "http", "--service-time", "10ms"]);
    let (_tmp, out) = out_dir();
    let command = format!(
        "{} run --ui tui --mode request --protocol http --target {} --pool 2 --rate 1000 \
         --duration 20s --out {}; sleep 30",
        bin(),
        server.addr(),
        out.display()
    );
    let tmux = Tmux::start(&command, 120, 40);
    // A queue builds (2 connections serve 200 of the 1,000/s): bounded wait.
    let screen = tmux.wait_for(
        "the request panel with a queue",
        Duration::from_secs(20),
        |s| s.contains("requests/s") && s.contains("service") && queued_on_screen(s) > 0,
    );
    for shown in [
        "in flight",
        "queued",
        "rejects",
        "queue",
        "service",
        "total",
        // The chart and the header speak of requests, not connects (0/s
        // once the pool is open).
        "Requests/s",
        "holding  requests ",
        // Of the rate asked, in the header and the chart's title.
        "/s of 1,000/s",
        " of 1,000 · top ",
    ] {
        assert!(screen.contains(shown), "no {shown:?}:\n{screen}");
    }
    assert!(!screen.contains("Connects/s"), "{screen}");
    tmux.keys("q");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out.join("summary.json").exists() {
        assert!(Instant::now() < deadline, "no summary.json after q");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = summary(&out);
    assert!(s["requests"]["responses"].as_u64().unwrap() > 0, "{s}");
}

/// The number on the dashboard's "queued" line (0 when there is none).
fn queued_on_screen(screen: &str) -> u64 {
    screen
        .lines()
        .find(|l| l.contains("queued"))
        .and_then(|l| {
            let digits: String = l[l.find("queued")? + "queued".len()..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}
