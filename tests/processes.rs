//! `ceiling serve --processes N`: real server processes sharing a loopback
//! port with SO_REUSEPORT, driven by `ceiling run` or plain sockets. Every
//! wait is bounded; every process is stopped by its PID.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{ceiling, out_dir, run_bounded, summary, text};

/// Upper bound on any single wait in these tests.
const WAIT: Duration = Duration::from_secs(15);

/// A running `ceiling serve --processes N` (the supervisor); killed by its
/// PID if a test fails first (its server processes die with it).
struct Fleet {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    addr: SocketAddr,
    /// PID of each server process, by its number (index 0 is process 1).
    pids: Vec<u32>,
}

/// One `process K pid P: accepted ...` line of the exit report.
#[derive(Debug)]
struct ProcessCounts {
    pid: u32,
    accepted: u64,
    held: u64,
    /// The rest of the line after the counts (`(died: ...)`).
    note: String,
}

/// The exit report: the per-process lines, the summed exit line and the
/// summed `stats:` line.
#[derive(Debug)]
struct Report {
    status: ExitStatus,
    processes: Vec<ProcessCounts>,
    exit_line: String,
    stats_line: String,
}

impl Fleet {
    fn start(args: &[&str]) -> Fleet {
        let mut child = ceiling()
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ceiling serve");
        let stdout = lines_of(child.stdout.take().expect("stdout piped"));
        let stderr = lines_of(child.stderr.take().expect("stderr piped"));
        let mut fleet = Fleet {
            child,
            stdout,
            stderr,
            addr: "127.0.0.1:0".parse().unwrap(),
            pids: Vec::new(),
        };
        let first = fleet.next_line();
        fleet.addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .parse()
            .expect("an address");
        loop {
            let line = fleet.next_line();
            let Some(rest) = line.strip_prefix("process ") else {
                panic!("unexpected line {line:?}");
            };
            let (number, pid) = rest
                .strip_suffix(": listening")
                .and_then(|r| r.split_once(" pid "))
                .unwrap_or_else(|| panic!("process line {line:?}"));
            assert_eq!(number.parse::<usize>().unwrap(), fleet.pids.len() + 1);
            fleet.pids.push(pid.parse().unwrap());
            if fleet.pids.len() == expected_processes(args) {
                break;
            }
        }
        fleet
    }

    fn next_line(&self) -> String {
        self.stdout
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no stdout line in time: {e}"))
    }

    fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id()).unwrap()
    }

    /// Waits (bounded) for a summed `--stats` line containing `needle`.
    fn wait_for_stats(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.starts_with("stats:") && line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no stats line with {needle:?} in time: {e}"),
            }
        }
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    fn wait_for_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no stderr line with {needle:?} in time: {e}"),
            }
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "supervisor did not exit in time");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM to the supervisor; its exit status and exit report.
    fn stop(mut self) -> Report {
        // SAFETY: kill(2) on our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGTERM) }, 0);
        let status = self.wait_exit();
        self.report(status)
    }

    /// The exit report from the remaining stdout lines (periodic `stats:`
    /// lines before it skipped).
    fn report(&self, status: ExitStatus) -> Report {
        let mut processes = Vec::new();
        let exit_line = loop {
            let line = self.next_line();
            if line.starts_with("stats:") {
                continue;
            }
            match line.strip_prefix("process ") {
                Some(rest) => processes.push(parse_process_line(rest)),
                None => break line,
            }
        };
        let stats_line = self.next_line();
        assert!(exit_line.starts_with("accepted "), "{exit_line:?}");
        assert!(stats_line.starts_with("stats: "), "{stats_line:?}");
        Report {
            status,
            processes,
            exit_line,
            stats_line,
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn expected_processes(args: &[&str]) -> usize {
    let at = args
        .iter()
        .position(|a| *a == "--processes")
        .expect("--processes in the args");
    args[at + 1].parse().unwrap()
}

fn lines_of<R: Read + Send + 'static>(pipe: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `K pid P: accepted A, peak held X, held at exit H, accept errors E[ (note)]`
fn parse_process_line(rest: &str) -> ProcessCounts {
    let (head, counts) = rest.split_once(": ").expect("process line");
    let pid = head.split_once(" pid ").expect("pid").1.parse().unwrap();
    let (counts, note) = counts.split_once(" (").unwrap_or((counts, ""));
    let number = |label: &str| -> u64 {
        counts
            .split(", ")
            .find_map(|part| part.strip_prefix(label))
            .unwrap_or_else(|| panic!("{label} in {rest:?}"))
            .parse()
            .unwrap()
    };
    ProcessCounts {
        pid,
        accepted: number("accepted "),
        held: number("held at exit "),
        note: note.to_string(),
    }
}

/// The number after `label` in a summed line.
fn figure(line: &str, label: &str) -> u64 {
    line.split(", ")
        .find_map(|part| part.trim_start_matches("stats: ").strip_prefix(label))
        .and_then(|n| n.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
}

/// Whether `pid` is gone or a zombie (dead, not yet reaped by whoever
/// inherited it).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat[stat.rfind(')').expect("comm") + 2..].starts_with('Z'),
    }
}

fn assert_all_dead(pids: &[u32]) {
    let deadline = Instant::now() + WAIT;
    while !pids.iter().all(|&pid| dead(pid)) {
        if Instant::now() > deadline {
            let alive: Vec<u32> = pids.iter().copied().filter(|&p| !dead(p)).collect();
            for &pid in &alive {
                // SAFETY: kill(2) on a server process this test started,
                // so that a failure leaves nothing running.
                unsafe { libc::kill(libc::pid_t::try_from(pid).unwrap(), libc::SIGKILL) };
            }
            panic!("server processes still alive: {alive:?} (killed now)");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The soft `Max open files` of a process, from /proc/PID/limits.
fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn two_processes_share_400_connections_from_ceiling_run_and_the_sums_are_exact() {
    let fleet = Fleet::start(&["--processes", "2", "--listen", "127.0.0.1:0", "--stats"]);
    assert_eq!(fleet.pids.len(), 2);
    assert!(fleet.pids.iter().all(|&pid| pid != fleet.child.id()));

    let (_tmp, out) = out_dir();
    let mut run = ceiling();
    run.args(["run", "--ui", "none", "--out"])
        .arg(&out)
        .args(["--target", &fleet.addr.to_string()])
        .args(["--connections", "400", "--rate", "0", "--hold", "500ms"]);
    let output = run_bounded(run, Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    assert_eq!(s["totals"]["established"], 400);
    assert_eq!(s["totals"]["connect_failed"], 0);

    fleet.wait_for_stats("stats: accepted 400,");
    let report = fleet.stop();
    assert!(report.status.success(), "{report:?}");
    assert_eq!(report.processes.len(), 2, "{report:?}");
    let accepted: Vec<u64> = report.processes.iter().map(|p| p.accepted).collect();
    // SO_REUSEPORT spreads by hash: both take some (all 400 on one side
    // has a chance of 2^-399), and nothing is counted twice or lost.
    assert!(accepted.iter().all(|&n| n > 0), "{report:?}");
    assert_eq!(accepted.iter().sum::<u64>(), 400, "{report:?}");
    assert!(
        report.exit_line.starts_with("accepted 400, "),
        "{}",
        report.exit_line
    );
    assert_eq!(figure(&report.stats_line, "accepted "), 400);
    // Threads of two server processes (at least a runtime thread each).
    assert!(figure(&report.stats_line, "threads ") >= 2, "{report:?}");
    assert!(report.processes.iter().all(|p| p.note.is_empty()));
}

#[test]
fn each_process_has_its_own_fd_limit_and_together_they_hold_more_than_one() {
    const LIMIT: u64 = 64;
    const CONNECTIONS: usize = 120;
    let fleet = Fleet::start(&[
        "--processes",
        "2",
        "--fd-limit",
        &LIMIT.to_string(),
        "--stats",
    ]);
    for &pid in &fleet.pids {
        assert_eq!(soft_nofile(pid), LIMIT, "process {pid}");
    }
    let streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect_timeout(&fleet.addr, Duration::from_secs(2)).expect("connect"))
        .collect();
    // One process cannot hold LIMIT connections: its fd table holds LIMIT
    // fds, some of them its own (runtime, pipes, listener). Wait until the
    // two hold more than that.
    let deadline = Instant::now() + WAIT;
    let mut held = 0;
    while held <= LIMIT {
        let line = fleet.wait_for_stats("held ");
        held = figure(&line, "held ");
        assert!(Instant::now() < deadline, "held {held}: {line}");
    }
    let report = fleet.stop();
    assert!(report.status.success(), "{report:?}");
    let per_process: Vec<u64> = report.processes.iter().map(|p| p.held).collect();
    assert!(
        per_process.iter().all(|&n| n < LIMIT),
        "one process held {LIMIT} or more with a limit of {LIMIT}: {report:?}"
    );
    assert!(
        per_process.iter().sum::<u64>() > LIMIT,
        "two processes held no more than one could: {report:?}"
    );
    drop(streams);
}

#[test]
fn max_conns_caps_each_process_not_the_total() {
    let fleet = Fleet::start(&["--processes", "2", "--max-conns", "5", "--stats"]);
    let note = fleet.wait_for_stderr("--max-conns 5");
    assert!(note.contains("each of the 2 processes: up to 10"), "{note}");
    let streams: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect_timeout(&fleet.addr, Duration::from_secs(2)).expect("connect"))
        .collect();
    // Each turns away what is over its own cap (message, then FIN).
    fleet.wait_for_stats("stats: accepted 40,");
    let report = fleet.stop();
    assert!(report.status.success(), "{report:?}");
    // Each process served at most 5; together more than one cap of 5 when
    // both got more than 5 of the 40 (all but certain with a hash).
    assert!(report.processes.iter().all(|p| p.held <= 5), "{report:?}");
    assert!(
        figure(&report.exit_line, "held at exit ") <= 10,
        "{report:?}"
    );
    assert!(figure(&report.exit_line, "held at exit ") > 5, "{report:?}");
    assert_eq!(
        figure(&report.stats_line, "rejected ") + figure(&report.exit_line, "held at exit "),
        40,
        "{report:?}"
    );
    drop(streams);
}

#[test]
fn fd_limit_sets_a_single_server_process_limit_too() {
    let mut server = ceiling()
        .args(["serve", "--fd-limit", "40"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ceiling serve");
    let lines = lines_of(server.stdout.take().unwrap());
    let line = lines.recv_timeout(WAIT).expect("a listening line");
    assert!(line.starts_with("listening on "), "{line}");
    let limit = soft_nofile(server.id());
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(limit, 40);
}

#[test]
fn a_killed_process_is_reported_and_the_other_keeps_serving() {
    let mut fleet = Fleet::start(&["--processes", "2", "--stats"]);
    let (victim, survivor) = (fleet.pids[0], fleet.pids[1]);
    // SAFETY: kill(2) on a server process this test's child started.
    assert_eq!(
        unsafe { libc::kill(libc::pid_t::try_from(victim).unwrap(), libc::SIGKILL) },
        0
    );
    let warning = fleet.wait_for_stderr(&format!("pid {victim}"));
    assert!(
        warning.contains("killed by signal 9 (SIGKILL)") && warning.contains("1 of 2"),
        "{warning}"
    );
    // Every new connection now reaches the survivor.
    let streams: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect_timeout(&fleet.addr, Duration::from_secs(2)).expect("connect"))
        .collect();
    fleet.wait_for_stats("stats: accepted 50, held 50,");
    assert!(
        fleet.child.try_wait().unwrap().is_none(),
        "supervisor exited"
    );
    let report = fleet.stop();
    assert!(report.status.success(), "{report:?}");
    let dead = &report.processes[0];
    assert_eq!(dead.pid, victim);
    assert!(
        dead.note.starts_with("died: killed by signal 9"),
        "{report:?}"
    );
    let alive = &report.processes[1];
    assert_eq!((alive.pid, alive.accepted, alive.held), (survivor, 50, 50));
    assert!(alive.note.is_empty(), "{report:?}");
    drop(streams);
}

#[test]
fn when_every_process_dies_the_supervisor_exits_1_and_says_so() {
    let mut fleet = Fleet::start(&["--processes", "2"]);
    for &pid in &fleet.pids {
        // SAFETY: kill(2) on server processes this test's child started.
        unsafe { libc::kill(libc::pid_t::try_from(pid).unwrap(), libc::SIGKILL) };
    }
    let status = fleet.wait_exit();
    assert_eq!(status.code(), Some(1));
    fleet.wait_for_stderr("all 2 server processes died");
    let report = fleet.report(status);
    assert!(report.processes.iter().all(|p| p.note.starts_with("died")));
}

#[test]
fn sigterm_to_the_supervisor_stops_every_process() {
    let fleet = Fleet::start(&["--processes", "3"]);
    let pids = fleet.pids.clone();
    let report = fleet.stop();
    assert!(report.status.success(), "{report:?}");
    assert_eq!(report.processes.len(), 3);
    assert_all_dead(&pids);
}

#[test]
fn server_processes_die_with_a_killed_supervisor() {
    let mut fleet = Fleet::start(&["--processes", "2"]);
    let pids = fleet.pids.clone();
    // SIGKILL: the supervisor cannot forward anything; PR_SET_PDEATHSIG
    // must end its processes.
    fleet.child.kill().unwrap();
    fleet.wait_exit();
    assert_all_dead(&pids);
}

#[test]
fn processes_and_fd_limit_usage_errors_exit_2_and_name_the_fix() {
    let hard = {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one struct we own.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        lim.rlim_max
    };
    let above = (hard + 1).to_string();
    for (args, needle) in [
        (vec!["--processes", "0"], "from 1 to 1024"),
        (vec!["--processes", "two"], "from 1 to 1024"),
        (
            vec!["--processes", "2", "--fd-limit", "8"],
            "from 16 to the hard limit",
        ),
        (vec!["--processes", "2", "--fd-limit", &above], "hard limit"),
    ] {
        let mut cmd = ceiling();
        cmd.arg("serve").args(&args);
        let output = run_bounded(cmd, WAIT);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_port_in_use_fails_before_any_process_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = ceiling();
    cmd.args(["serve", "--processes", "2", "--listen", &addr]);
    let output = run_bounded(cmd, WAIT);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: bind")) && stderr.contains("port 0"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
