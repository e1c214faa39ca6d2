//! Helpers shared by the integration tests: the binary, a `serve` child
//! that is killed on drop, results directories, root/namespace checks.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn ceiling() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ceiling"))
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ceiling")
}

/// A `ceiling serve` child process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addrs: Vec<SocketAddr>,
}

impl Server {
    /// Starts `ceiling serve ARGS` and waits (5 s at most) for its
    /// `listening on` lines: one per `--listen` value expanded, at least one.
    pub fn start(args: &[&str]) -> Server {
        let mut child = ceiling()
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ceiling serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addrs = Vec::new();
        while let Ok(line) = rx.recv_timeout(if addrs.is_empty() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(300)
        }) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                addrs.push(addr.trim().parse().expect("listening line has an address"));
            }
        }
        assert!(
            !addrs.is_empty(),
            "ceiling serve did not print 'listening on' within 5 s"
        );
        Server { child, addrs }
    }

    pub fn addr(&self) -> String {
        self.addrs[0].to_string()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh temp dir and the results path inside it (not yet created).
pub fn out_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    (dir, out)
}

/// The run's summary.json, once its figures are checked against each other
/// and against timeseries.csv ([`assert_invariants`]): every test that reads
/// a results directory checks it.
pub fn summary(out: &Path) -> serde_json::Value {
    assert_invariants(out);
    read_summary(out)
}

/// One column of the run's timeseries.csv, a value per row.
pub fn timeseries_column(out: &Path, name: &str) -> Vec<f64> {
    let path = out.join("timeseries.csv");
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let header = reader.headers().unwrap().clone();
    let col = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no {name} column in {}", path.display()));
    reader
        .records()
        .map(|r| r.unwrap()[col].parse().unwrap())
        .collect()
}

fn read_summary(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("summary.json"))
        .unwrap_or_else(|e| panic!("no summary.json in {}: {e}", out.display()));
    serde_json::from_str(&text).unwrap()
}

/// The definitions of README "Results" and the schema, checked on a
/// results directory:
/// - attempted = established + connect_failed + unfinished;
/// - established = closed_by_driver + closed_by_server + lost_with_worker
///   + held_at_end;
/// - attempted + never_attempted = the scenario's connections (request
///   mode: attempted − reconnects);
/// - request mode: scheduled = sent + rejects + queued_at_end, sent =
///   responses + errors + in_flight_at_end, a total latency per whole
///   response;
/// - peak_active ≥ every active count reported: first_limit.active_at,
///   every time series row, each source's ports in use, each dead worker's
///   held; and ≤ established;
/// - the failure kinds sum to connect_failed + closed_by_server +
///   lost_with_worker, and the failure groups to the same;
/// - the sources sum to the totals (a dead worker's attempts under way
///   belong to no source);
/// - the time series never goes back, and its last row is the totals;
/// - each `<metric>.hlog` has one interval per time series row, and its
///   intervals add up to the summary's `latency.<metric>_us.count`.
pub fn assert_invariants(out: &Path) {
    let s = read_summary(out);
    let ctx = format!("in {}: {s}", out.display());
    let n = |v: &serde_json::Value, key: &str| {
        v[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is not a count {ctx}"))
    };
    let t = &s["totals"];
    let (attempted, established, connect_failed) = (
        n(t, "attempted"),
        n(t, "established"),
        n(t, "connect_failed"),
    );
    assert_eq!(
        attempted,
        established + connect_failed + n(t, "unfinished"),
        "attempted = established + connect_failed + unfinished {ctx}"
    );
    assert_eq!(
        established,
        n(t, "closed_by_driver")
            + n(t, "closed_by_server")
            + n(t, "lost_with_worker")
            + n(t, "held_at_end"),
        "established = closed_by_driver + closed_by_server + lost_with_worker + held_at_end {ctx}"
    );
    // Request mode: a reconnect is an attempt beyond the plan's.
    let reconnects = s["requests"]["reconnects"].as_u64().unwrap_or(0);
    if let Some(planned) = s["scenario"]["connections"].as_u64() {
        assert_eq!(
            attempted - reconnects + n(t, "never_attempted"),
            planned,
            "attempted - reconnects + never_attempted = connections {ctx}"
        );
    }
    if let Some(r) = s["requests"].as_object() {
        let r = serde_json::Value::Object(r.clone());
        let errors: u64 = r["errors"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            n(&r, "scheduled"),
            n(&r, "sent") + n(&r, "rejects") + n(&r, "queued_at_end"),
            "requests: scheduled = sent + rejects + queued_at_end {ctx}"
        );
        assert_eq!(
            n(&r, "sent"),
            n(&r, "responses") + errors + n(&r, "in_flight_at_end"),
            "requests: sent = responses + errors + in_flight_at_end {ctx}"
        );
        let statuses: u64 = r["status"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(
            statuses <= n(&r, "responses") + errors,
            "requests: status classes ≤ responses + errors {ctx}"
        );
        let answered = n(&s["latency"]["total_us"], "count");
        assert_eq!(
            answered,
            n(&r, "responses") + n(&r["errors"], "error_reply") + n(&r["errors"], "malformed"),
            "requests: a total latency for each whole response {ctx}"
        );
    }
    let peak = n(t, "peak_active");
    assert!(peak <= established, "peak_active ≤ established {ctx}");
    if !s["first_limit"].is_null() {
        let at = n(&s["first_limit"], "active_at");
        assert!(
            at <= peak,
            "first_limit.active_at {at} ≤ peak_active {peak} {ctx}"
        );
    }
    let deaths = s["workers"]["deaths"].as_array().unwrap();
    for death in deaths {
        assert!(
            n(death, "held") <= peak,
            "a death's held ≤ peak_active {ctx}"
        );
    }
    let by_kind: u64 = s["failures_by_kind"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        by_kind,
        connect_failed + n(t, "closed_by_server") + n(t, "lost_with_worker"),
        "failures_by_kind sums to connect_failed + closed_by_server + lost_with_worker {ctx}"
    );
    let by_group: u64 = s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| n(g, "count"))
        .sum();
    assert_eq!(
        by_group, by_kind,
        "failure groups sum to failures_by_kind {ctx}"
    );
    let sources = s["sources"].as_array().unwrap();
    let sum = |key: &str| sources.iter().map(|src| n(src, key)).sum::<u64>();
    let in_flight_at_death: u64 = deaths.iter().map(|d| n(d, "in_flight")).sum();
    assert_eq!(sum("attempted"), attempted, "sources' attempted {ctx}");
    assert_eq!(
        sum("established"),
        established,
        "sources' established {ctx}"
    );
    let kernel_chosen = sources.len() == 1 && sources[0]["source"] == "(kernel-chosen)";
    let sources_failed = sum("failed") + if kernel_chosen { 0 } else { in_flight_at_death };
    assert_eq!(sources_failed, connect_failed, "sources' failed {ctx}");
    for src in sources {
        assert!(
            n(src, "peak_ports_in_use") <= peak,
            "a source's peak ports in use ≤ peak_active {ctx}"
        );
    }

    // A run that could not write its time series (a full disk) is checked
    // on what it has; assert_results_complete insists on the file.
    let path = out.join("timeseries.csv");
    if !path.exists() {
        return;
    }
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column in {}", path.display()))
    };
    let [a, e, f, act] = ["attempted", "established", "failed", "active"].map(col);
    let mut last: Option<[u64; 4]> = None;
    let mut rows = 0;
    for (i, row) in reader.records().enumerate() {
        rows += 1;
        let row = row.unwrap_or_else(|err| panic!("{} row {}: {err}", path.display(), i + 1));
        let v = [a, e, f, act].map(|c| row[c].parse::<u64>().unwrap());
        let line = format!("{} row {}: {row:?} {ctx}", path.display(), i + 1);
        assert!(v[3] <= peak, "active {} > peak_active {peak}: {line}", v[3]);
        assert!(
            v[0] >= v[1] + v[2],
            "attempted ≥ established + failed: {line}"
        );
        assert!(v[3] <= v[1], "active ≤ established: {line}");
        if let Some(prev) = last {
            assert!(
                (0..3).all(|k| v[k] >= prev[k]),
                "a cumulative count went back: {line}"
            );
        }
        last = Some(v);
    }
    if let Some([a, e, f, _]) = last {
        assert_eq!(
            (a, e, f),
            (attempted, established, connect_failed),
            "the last time series row is the totals {ctx}"
        );
    }
    for (metric, hist) in hlog_sums(out) {
        let key = format!("{metric}_us");
        assert_eq!(
            hist.intervals, rows,
            "{metric}.hlog has one interval per time series row {ctx}"
        );
        assert_eq!(
            hist.count,
            n(&s["latency"][&key], "count"),
            "{metric}.hlog's intervals add up to latency.{key}.count {ctx}"
        );
    }
}

/// One `.hlog` file read back: its intervals and their counts added.
pub struct HlogSum {
    pub intervals: usize,
    pub count: u64,
    pub histogram: hdrhistogram::Histogram<u64>,
}

/// Every `<metric>.hlog` in `out`, read with hdrhistogram's interval-log
/// iterator, by metric.
pub fn hlog_sums(out: &Path) -> Vec<(String, HlogSum)> {
    let mut sums = Vec::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        let Some(metric) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".hlog"))
        else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let log =
            ceiling::sink::hlog::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut histogram = ceiling::stats::new_histogram();
        for interval in &log.intervals {
            histogram.add(interval.histogram().unwrap()).unwrap();
        }
        sums.push((
            metric.to_string(),
            HlogSum {
                intervals: log.intervals.len(),
                count: histogram.len(),
                histogram,
            },
        ));
    }
    sums.sort_by(|a, b| a.0.cmp(&b.0));
    sums
}

/// `ceiling run -c CONNECTIONS -r RATE --hold 1s` into `out` against a
/// `ceiling serve --max-conns 50 --when-full close`: its first limit is
/// server_closed. Panics unless it exits 0.
pub fn capped_run(out: &Path, connections: &str, rate: &str) -> Output {
    let server = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--max-conns",
        "50",
        "--when-full",
        "close",
    ]);
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--target", &server.addr()])
        .args(["-c", connections, "-r", rate, "--hold", "1s", "--out"])
        .arg(out);
    let output = run_bounded(cmd, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    output
}

/// Every file a finished (or stopped) run must leave, and figures that add
/// up ([`assert_invariants`]).
pub fn assert_results_complete(out: &Path) {
    for file in [
        "summary.json",
        "timeseries.csv",
        "failures.csv",
        "sources.csv",
        "latency.csv",
        "connect.hgrm",
        "connect.hlog",
        "report.html",
    ] {
        assert!(
            out.join(file).is_file(),
            "{file} missing in {}",
            out.display()
        );
    }
    assert_invariants(out);
}

/// Runs a command with a time bound; panics with its output if it does not
/// end in time.
pub fn run_bounded(mut cmd: Command, bound: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    let deadline = std::time::Instant::now() + bound;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "command did not finish within {bound:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether this process may create network namespaces. Outside root the
/// caller skips with a reason; under CI=true a skip is a failure.
pub fn require_netns(test: &str) -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Command::new("unshare")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success())
        && Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    require(
        test,
        ok,
        "root, unshare and ip (iproute2) to create a network namespace",
    )
}

/// Whether `program --version` runs: a real server or tool a test drives.
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `ok`, or a skip of `test` with the reason that it `needs` something
/// missing here; under CI=true (where .ci/run installs everything) a skip
/// is a failure.
pub fn require(test: &str, ok: bool, needs: &str) -> bool {
    if !ok {
        let reason = format!("{test}: skipped: needs {needs}");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}; under CI=true a skip is a failure");
        }
        eprintln!("{reason}");
    }
    ok
}

/// Runs `script` with sh inside a fresh network namespace (lo up first).
/// `$CEILING` is the binary; the namespace dies with the shell.
pub fn in_netns(script: &str, bound: Duration) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-euc"])
        .arg(format!("ip link set lo up\n{script}"))
        .env("CEILING", bin());
    run_bounded(cmd, bound)
}

/// A pids cgroup (v1) of our own, removed on drop.
pub struct PidsCgroup {
    dir: std::path::PathBuf,
}

impl PidsCgroup {
    pub fn create(max: u32) -> std::io::Result<PidsCgroup> {
        // One per test: several may run at once in this process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::path::PathBuf::from(format!(
            "/sys/fs/cgroup/pids/ceiling-test-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir(&dir)?;
        let cgroup = PidsCgroup { dir };
        std::fs::write(cgroup.dir.join("pids.max"), max.to_string())?;
        Ok(cgroup)
    }

    pub fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("move into cgroup");
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Its processes have exited (the server is dropped first); the
        // kernel may take a moment to let the directory go.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}
