//! `ceiling run --mode request`: requests through a pool of persistent
//! connections, against `ceiling serve` on loopback (service time known,
//! so the queueing is computable) and against real servers nobody on the
//! team wrote (redis-server, nginx; a test skips without them, and under
//! CI=true that skip is a failure). Latencies are asserted as lower bounds
//! (or against each other), never as deadlines.

use std::path::Path;
use std::time::Duration;

use crate::util::{
    Server, ceiling, installed, out_dir, require, run_bounded, summary, text, timeseries_column,
};

/// Upper bound on any run here.
const BOUND: Duration = Duration::from_secs(60);

/// `ceiling run --mode request ARGS --out OUT --ui none`, which must exit 0.
fn request_run(out: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = ceiling();
    cmd.args(["run", "--mode", "request", "--ui", "none", "--out"])
        .arg(out)
        .args(args);
    let run = run_bounded(cmd, BOUND);
    assert!(
        run.status.success(),
        "{args:?}: {}\n{}",
        text(&run.stderr),
        text(&run.stdout)
    );
    summary(out)
}

fn count(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

/// Samples of `metric` in latency.csv above `us`.
fn samples_above(out: &Path, metric: &str, us: u64) -> u64 {
    let mut reader = csv::Reader::from_path(out.join("latency.csv")).unwrap();
    let mut total = 0;
    let mut at_or_below = 0;
    for row in reader.records() {
        let row = row.unwrap();
        if &row[0] != metric {
            continue;
        }
        let (value, count): (u64, u64) = (row[2].parse().unwrap(), row[3].parse().unwrap());
        total = total.max(count);
        if value <= us {
            at_or_below = at_or_below.max(count);
        }
    }
    total - at_or_below
}

#[test]
fn an_ample_pool_does_not_queue_and_a_short_one_does_by_littles_law() {
    // 10 ms a request: 500 requests/s keep 5 connections busy.
    let server = Server::start(&["--mode", "http", "--service-time", "10ms"]);
    let addr = server.addr();
    let (_dir, ample) = out_dir();
    let s = request_run(
        &ample,
        &[
            "--target",
            &addr,
            "--protocol",
            "http",
            "--pool",
            "20",
            "--rate",
            "500",
            "--duration",
            "2s",
        ],
    );
    let r = &s["requests"];
    assert_eq!(count(r, &["rejects"]), 0, "{r}");
    assert_eq!(count(r, &["errors", "error_reply"]), 0, "{r}");
    assert_eq!(count(r, &["reconnects"]), 0, "{r}");
    // Most of them answered (the 10 ms sleeps of a starved server on a busy
    // machine may leave the last ones in flight or queued).
    assert!(count(r, &["status", "2xx"]) >= 800, "{r}");
    // 2 s at 500/s, from the moment the pool is open.
    let scheduled = count(r, &["scheduled"]);
    assert!((980..=1000).contains(&scheduled), "{r}");
    assert!(count(&s, &["totals", "established"]) == 20);
    // One pool, one queue: one worker thread at a rate.
    assert_eq!(count(&s, &["workers", "threads_per_process"]), 1, "{s}");
    let ample_queue_p50 = count(&s, &["latency", "queue_us", "p50"]);
    let service_p50 = count(&s, &["latency", "service_us", "p50"]);
    assert!(service_p50 >= 10_000, "service time ≥ 10 ms: {s}");

    // 2 connections serve at most 200/s: of 500/s, 300/s queue. The wait
    // of a request due at t grows as 1.5·t until the queue timeout (1 s)
    // turns the rest into rejects.
    let (_dir, short) = out_dir();
    let s = request_run(
        &short,
        &[
            "--target",
            &addr,
            "--protocol",
            "http",
            "--pool",
            "2",
            "--rate",
            "500",
            "--duration",
            "3s",
        ],
    );
    let r = &s["requests"];
    let answered = count(r, &["responses"]);
    assert!(answered <= 2 * 3 * 100 + 2, "at most 200/s served: {r}");
    assert!(count(r, &["rejects"]) > 0, "the queue timed out: {r}");
    let short_queue_p50 = count(&s, &["latency", "queue_us", "p50"]);
    assert!(
        short_queue_p50 >= 300_000,
        "a short pool's median wait is hundreds of ms: {s}"
    );
    assert!(
        short_queue_p50 > 20 * ample_queue_p50.max(1),
        "queue wait grows when the pool is short ({ample_queue_p50} µs → {short_queue_p50} µs)"
    );
    // Total = queue + service, request by request.
    assert!(count(&s, &["latency", "total_us", "p50"]) >= short_queue_p50);
    // Second by second: both connections busy, the queue deep, rejects
    // once the first requests have waited a second.
    let mut reader = csv::Reader::from_path(short.join("timeseries.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (busy, depth, rejects, p99) = (
        col("busy_connections"),
        col("queue_depth"),
        col("rejects_per_s"),
        col("total_p99_us"),
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let second = &rows[1];
    // (At the row's instant one may be between a response and its next
    // send.)
    assert!(second[busy].parse::<u64>().unwrap() >= 1, "{second:?}");
    assert!(second[depth].parse::<u64>().unwrap() >= 100, "{second:?}");
    assert!(second[p99].parse::<u64>().unwrap() >= 300_000, "{second:?}");
    assert!(
        rows.iter()
            .any(|r| r[rejects].parse::<f64>().unwrap() > 0.0),
        "{rows:?}"
    );
}

#[test]
fn a_busy_pool_rejects_when_asked_to_and_counts_each_request_once() {
    let server = Server::start(&["--mode", "line", "--service-time", "10ms"]);
    let (_dir, out) = out_dir();
    let s = request_run(
        &out,
        &[
            "--target",
            &server.addr(),
            "--protocol",
            "line",
            "--pool",
            "2",
            "--rate",
            "500",
            "--duration",
            "2s",
            "--when-pool-busy",
            "reject",
        ],
    );
    let r = &s["requests"];
    let rejects = count(r, &["rejects"]);
    // 500/s offered, 200/s served: ~300/s rejected.
    assert!(rejects >= 400, "{r}");
    // Nothing waits for a connection: at most one hand-over each.
    assert!(count(r, &["queued_at_end"]) <= 2, "{r}");
}

#[test]
fn a_servers_error_reply_is_an_error_with_its_text_kept() {
    let server = Server::start(&["--mode", "redis"]);
    let (_dir, out) = out_dir();
    let s = request_run(
        &out,
        &[
            "--target",
            &server.addr(),
            "--protocol",
            "redis",
            "--command",
            "GET k",
            "--pool",
            "4",
            "--rate",
            "200",
            "--duration",
            "1s",
        ],
    );
    crate::results::validate(&s);
    let r = &s["requests"];
    let errors = count(r, &["errors", "error_reply"]);
    assert!(errors > 100, "{r}");
    assert_eq!(count(r, &["responses"]), 0, "{r}");
    let texts = r["error_texts"].as_array().unwrap();
    assert_eq!(texts.len(), 1, "one distinct text: {r}");
    assert!(
        texts[0]
            .as_str()
            .unwrap()
            .starts_with("-ERR unknown command"),
        "{r}"
    );
}

#[test]
fn a_server_that_closes_after_each_response_is_reconnected_not_failed() {
    // Asked to close, `ceiling serve` answers with Connection: close.
    let server = Server::start(&["--mode", "http"]);
    let (_dir, out) = out_dir();
    let s = request_run(
        &out,
        &[
            "--target",
            &server.addr(),
            "--protocol",
            "http",
            "--header",
            "Connection: close",
            "--pool",
            "4",
            "--rate",
            "100",
            "--duration",
            "1s",
        ],
    );
    let r = &s["requests"];
    let responses = count(r, &["responses"]);
    assert!(responses >= 90, "{r}");
    assert_eq!(count(r, &["errors", "closed"]), 0, "{r}");
    // Every response but each connection's last at the end reopens it.
    let reconnects = count(r, &["reconnects"]);
    assert!(
        reconnects + 4 >= responses && reconnects <= responses,
        "{r}"
    );
    assert_eq!(count(&s, &["totals", "closed_by_server"]), 0, "{s}");
    assert!(s["first_limit"].is_null(), "{s}");
}

#[test]
fn a_stalled_server_shows_in_the_total_of_every_request_due_during_the_stall() {
    let server = Server::start(&["--mode", "http", "--service-time", "1ms"]);
    let pid = server.child.id() as libc::pid_t;
    let (_dir, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(["run", "--mode", "request", "--ui", "none", "--out"])
        .arg(&out)
        .args([
            "--target",
            &server.addr(),
            "--protocol",
            "http",
            "--pool",
            "10",
            "--rate",
            "200",
            "--duration",
            "4s",
            "--queue-timeout",
            "30s",
        ]);
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The server we started, by its PID: stopped for (at least) 1 s.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let run = child.wait_with_output().unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let s = summary(&out);
    let r = &s["requests"];
    // 200 requests were due during the stall; the one due k/200 s into it
    // waited at least the rest of it: 100 of them 500 ms or more.
    let slow = samples_above(&out, "total", 500_000);
    assert!(slow >= 95, "{slow} requests took over 500 ms: {s}");
    // The count stays exact: every due request was sent and answered,
    // none dropped by the stall.
    assert_eq!(count(r, &["rejects"]), 0, "{r}");
    let scheduled = count(r, &["scheduled"]);
    // (one more when the last is due at the very end: t = 0 and t = 4 s)
    assert!((790..=801).contains(&scheduled), "4 s at 200/s: {r}");
    assert_eq!(
        count(r, &["responses"]) + count(r, &["in_flight_at_end"]),
        scheduled - count(r, &["queued_at_end"]),
        "{r}"
    );
    // The send was held back by the stall too: the queue wait says so.
    assert!(count(&s, &["latency", "queue_us", "max"]) >= 500_000, "{s}");
}

#[test]
fn a_closed_loop_runs_each_connection_back_to_back_also_in_worker_processes() {
    let server = Server::start(&["--mode", "redis"]);
    for processes in ["1", "2"] {
        let (_dir, out) = out_dir();
        let s = request_run(
            &out,
            &[
                "--target",
                &server.addr(),
                "--protocol",
                "redis",
                "--pool",
                "4",
                "--rate",
                "0",
                "--duration",
                "1s",
                "--processes",
                processes,
            ],
        );
        let r = &s["requests"];
        // Hundreds a second at least, even on a loaded machine.
        assert!(count(r, &["responses"]) > 200, "{processes}: {r}");
        assert_eq!(count(r, &["rejects"]), 0);
        assert!(count(r, &["in_flight_at_end"]) <= 4, "{r}");
        assert_eq!(count(&s, &["totals", "established"]), 4);
        // Back to back: no queue.
        assert_eq!(count(&s, &["latency", "queue_us", "max"]), 1, "{s}");
    }
}

#[test]
fn redis_maxclients_below_the_pool_is_a_named_limit() {
    if !require(
        "redis_maxclients_below_the_pool_is_a_named_limit",
        installed("redis-server"),
        "redis-server",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--maxclients",
            "5",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let target = format!("127.0.0.1:{port}");
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(&target).is_ok()
    });
    assert!(up, "redis-server listens on {target}");
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(["run", "--mode", "request", "--ui", "none", "--out"])
        .arg(&out)
        .args([
            "--target",
            &target,
            "--protocol",
            "redis",
            "--pool",
            "8",
            "--rate",
            "400",
            "--duration",
            "1s",
        ]);
    let run = run_bounded(cmd, BOUND);
    let _ = redis.kill();
    let _ = redis.wait();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let s = summary(&out);
    let limit = &s["first_limit"];
    assert_eq!(limit["kind"], "server_closed", "{s}");
    let evidence = limit["evidence"].to_string();
    assert!(
        evidence.contains("max number of clients reached"),
        "the server's words are the evidence: {evidence}"
    );
    let r = &s["requests"];
    // Five connections serve; the three turned away stay closed.
    assert!(count(r, &["responses"]) > 100, "{r}");
    assert_eq!(count(r, &["reconnects"]), 0, "{r}");
    assert_eq!(count(&s, &["totals", "closed_by_server"]), 3, "{s}");
}

#[test]
fn request_mode_bad_input_is_refused_before_any_load() {
    let cases: [(&[&str], &str); 7] = [
        (&["--pool", "20", "--connections", "10"], "--connections"),
        (
            &["--rate", "0", "--when-pool-busy", "reject"],
            "closed loop",
        ),
        (&["--rate", "0", "--queue-timeout", "1s"], "closed loop"),
        (&["--protocol", "smtp"], "smtp"),
        (&["--header", "Accept text/plain"], "Name: value"),
        (&["--protocol", "redis", "--path", "/x"], "--protocol http"),
        (&["--hold", "1s"], "--duration"),
    ];
    for (args, says) in cases {
        let (_dir, out) = out_dir();
        let mut cmd = ceiling();
        cmd.args(["run", "--mode", "request", "--ui", "none", "--out"])
            .arg(&out)
            .args(["--target", "127.0.0.1:9"])
            .args(args);
        let run = run_bounded(cmd, BOUND);
        let err = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
        assert!(!out.exists(), "{args:?}: nothing created");
    }
    let mut cmd = ceiling();
    cmd.args(["run", "--pool", "5", "--target", "127.0.0.1:9"]);
    let run = run_bounded(cmd, BOUND);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run.stderr).contains("--mode request"));
}

/// `ceiling run scenarios/NAME.toml --duration 3s` (against `target` when
/// given), which must exit 0.
fn scenario_run(out: &Path, name: &str, target: Option<&str>) -> serde_json::Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let mut cmd = ceiling();
    cmd.arg("run")
        .arg(file)
        .args(["--duration", "3s", "--ui", "none", "--out"])
        .arg(out);
    if let Some(target) = target {
        cmd.args(["--target", target]);
    }
    let run = run_bounded(cmd, BOUND);
    assert!(run.status.success(), "{name}: {}", text(&run.stderr));
    summary(out)
}

#[test]
fn the_request_scenarios_show_what_their_headers_say() {
    // pool-too-small: the built-in server, 20 connections for 3,000/s.
    let (_dir, out) = out_dir();
    let s = scenario_run(&out, "pool-too-small", None);
    let r = &s["requests"];
    assert!(s["first_limit"].is_null(), "{s}");
    assert!(count(r, &["rejects"]) > 0, "{r}");
    let queue = count(&s, &["latency", "queue_us", "p50"]);
    let service = count(&s, &["latency", "service_us", "p50"]);
    assert!(queue > 10 * service, "queue wait dominates: {s}");

    // pool-over-server-cap: 100 against a cap of 50, named.
    let server = Server::start(&[
        "--mode",
        "http",
        "--max-conns",
        "50",
        "--when-full",
        "close",
    ]);
    let (_dir, out) = out_dir();
    let s = scenario_run(&out, "pool-over-server-cap", Some(&server.addr()));
    assert_eq!(s["first_limit"]["kind"], "server_closed", "{s}");
    assert!(
        s["first_limit"]["evidence"]
            .to_string()
            .contains("max connections (50) reached"),
        "{s}"
    );
    assert_eq!(count(&s, &["totals", "closed_by_server"]), 50, "{s}");
    let r = &s["requests"];
    assert_eq!(count(r, &["reconnects"]), 0, "{r}");
    assert!(count(r, &["responses"]) > 1000, "{r}");
    drop(server);

    // thread-pool-queue: 5 workers, a queue of 20, then 503s.
    let server = Server::start(&[
        "--mode",
        "http",
        "--model",
        "pool",
        "--workers",
        "5",
        "--queue",
        "20",
        "--when-queue-full",
        "reject",
        "--service-time",
        "50ms",
    ]);
    let (_dir, out) = out_dir();
    let s = scenario_run(&out, "thread-pool-queue", Some(&server.addr()));
    let r = &s["requests"];
    assert_eq!(count(r, &["rejects"]), 0, "{r}");
    // 5 workers at 50 ms: at most 100/s (and the 20 queued at the end).
    assert!(count(r, &["status", "2xx"]) <= 3 * 100 + 5 + 20, "{r}");
    assert!(count(r, &["status", "5xx"]) > 300, "{r}");
    assert_eq!(
        r["error_texts"][0], "503 Service Unavailable",
        "the server's words: {r}"
    );
    assert!(
        count(&s, &["latency", "service_us", "p99"]) >= 200_000,
        "waits in the server's queue: {s}"
    );
    drop(server);

    // pool-1000-at-3000: ~333 ms a request keeps ~1,000 busy.
    let server = Server::start(&["--mode", "http", "--service-time", "300ms..366ms"]);
    let (_dir, out) = out_dir();
    let s = scenario_run(&out, "pool-1000-at-3000", Some(&server.addr()));
    let r = &s["requests"];
    assert!(s["first_limit"].is_null(), "{s}");
    assert_eq!(count(&s, &["totals", "established"]), 1100);
    assert_eq!(count(r, &["rejects"]), 0, "{r}");
    let queue = count(&s, &["latency", "queue_us", "p50"]);
    let service = count(&s, &["latency", "service_us", "p50"]);
    assert!(service >= 300_000, "{s}");
    assert!(queue * 10 < service, "no queueing to speak of: {s}");
    // Little's law: rate × service ≈ 1,000 in flight at the end.
    let in_flight = count(r, &["in_flight_at_end"]);
    assert!((800..=1100).contains(&in_flight), "{r}");
}

/// nginx serving a small static file on a free loopback port, from a
/// config in a temp dir (one process, as the test's user); killed on drop.
pub struct Nginx {
    child: std::process::Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// `keepalive_requests`: requests on one connection before nginx closes
    /// it (announced with `Connection: close`).
    pub fn start(keepalive_requests: u32) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let root = dir.path().join("www");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("index.html"), "ok\n").unwrap();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             keepalive_requests {keepalive_requests};\n\
             server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
            root.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let up = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(&addr).is_ok()
        });
        assert!(up, "nginx listens on {addr}");
        Nginx {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nginx_closing_after_keepalive_requests_is_reconnected_not_failed() {
    if !require(
        "nginx_closing_after_keepalive_requests_is_reconnected_not_failed",
        installed_nginx(),
        "nginx (Debian: nginx-light)",
    ) {
        return;
    }
    let nginx = Nginx::start(10);
    let (_dir, out) = out_dir();
    let s = request_run(
        &out,
        &[
            "--target",
            &nginx.addr,
            "--protocol",
            "http",
            "--path",
            "/index.html",
            "--pool",
            "4",
            "--rate",
            "400",
            "--duration",
            "2s",
        ],
    );
    let r = &s["requests"];
    let responses = count(r, &["responses"]);
    assert!(responses >= 700, "{r}");
    assert_eq!(count(r, &["status", "2xx"]), responses, "{r}");
    let errors: u64 = ["closed", "error_reply", "malformed"]
        .iter()
        .map(|k| count(r, &["errors", k]))
        .sum();
    assert_eq!(errors, 0, "{r}");
    // Every 10th response on a connection says Connection: close.
    let reconnects = count(r, &["reconnects"]);
    assert!(
        reconnects >= responses / 10 - 4 && reconnects <= responses / 10 + 4,
        "{reconnects} reconnects for {responses} responses: {r}"
    );
    assert_eq!(count(&s, &["totals", "closed_by_server"]), 0, "{s}");
    assert!(s["first_limit"].is_null(), "{s}");
}

/// nginx answers `-v` (not `--version`).
fn installed_nginx() -> bool {
    std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The plain progress lines of a request run give the request rate of the
/// rate asked, the queue and the total p99, not the connects' rate (which
/// is 0/s once the pool is open, against a rate of requests); the time
/// series' target column is the requests asked per second.
#[test]
fn plain_progress_in_request_mode_speaks_of_requests() {
    let server = Server::start(&["--mode", "http", "--service-time", "1ms"]);
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args([
        "run",
        "--mode",
        "request",
        "--protocol",
        "http",
        "--ui",
        "plain",
    ])
    .args(["--pool", "10", "--rate", "200", "--duration", "3s", "--out"])
    .arg(&out)
    .args(["--target", &server.addr()]);
    let run = run_bounded(cmd, BOUND);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let lines = text(&run.stderr);
    let progress: Vec<&str> = lines.lines().filter(|l| l.starts_with('[')).collect();
    assert!(progress.len() >= 2, "{lines}");
    for line in &progress {
        // No connects' "0/s" once the pool is open: the request rate.
        assert!(
            line.contains("  requests ") && !line.contains(" 0/s"),
            "{line}"
        );
        assert!(line.contains("queued "), "{line}");
    }
    // Of the rate asked, while it is asked (the last line may come once
    // the run's requests are over).
    for line in &progress[..progress.len() - 1] {
        assert!(line.contains("/s of 200/s  "), "{line}");
    }
    assert!(progress.iter().any(|l| l.contains("total p99 ")), "{lines}");
    let rows: Vec<(u64, f64)> = timeseries_column(&out, "elapsed_s")
        .into_iter()
        .map(|s| s as u64)
        .zip(timeseries_column(&out, "target_rate_per_s"))
        .collect();
    // Asked from the pool's opening (within the first tick) to the end.
    let at = |s: u64| rows.iter().find(|r| r.0 == s).map_or(0.0, |r| r.1);
    assert!((150.0..=210.0).contains(&at(1)), "{rows:?}");
    assert!((190.0..=210.0).contains(&at(2)), "{rows:?}");
    let asked: f64 = rows.iter().map(|r| r.1).sum();
    assert!((500.0..=620.0).contains(&asked), "{rows:?}");
}
