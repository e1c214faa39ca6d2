//! `serve --processes N`: one supervisor, N server processes of this same
//! binary, so the target side is not held to one process's fd table and
//! RLIMIT_NOFILE.
//!
//! Every process listens on the same ADDR:PORT with SO_REUSEPORT, and the
//! kernel spreads new connections among them by a hash of the 4-tuple:
//! roughly even, never exact. (The other design, one port per process,
//! would make every client name N targets and scripts read N addresses;
//! with SO_REUSEPORT the `listening on` lines stay what they are.) For port
//! 0 the supervisor resolves the port first with a socket it binds but never
//! listens on ([`server::reserve`]), starts the processes on that port and
//! drops its socket once they all listen.
//!
//! The supervisor (this module's [`supervise`]) re-executes the binary as
//! `ceiling serve --as-process K` with the same options and the resolved
//! addresses. A server process writes JSON lines on its stdout (a pipe to
//! the supervisor): one per listener when it listens, a report of its
//! counters and process figures once a second and a last one at exit. The
//! supervisor prints the same lines as one process would, with the figures
//! summed ([`sum`] says how), and one line per process at exit.
//!
//! A server process dies with the supervisor (PR_SET_PDEATHSIG, SIGKILL);
//! Ctrl-C or SIGTERM to the supervisor is forwarded to every process by PID,
//! and a process that dies while serving is reported on stderr while the
//! others go on.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{config_from, exit_line, listen_error, print_stdout, protocol, stats_line};
use crate::cli::ServeArgs;
use crate::server::{self, ProcessFigures, ServerTotals};

/// How long the server processes have to listen after they start.
const STARTUP_BOUND: Duration = Duration::from_secs(10);

/// How long stopping processes have to report and exit before they are
/// killed: more than a server's own shutdown grace (5 s).
const STOP_BOUND: Duration = Duration::from_secs(8);

/// What a server process tells the supervisor, one JSON object a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "snake_case")]
enum ProcessLine {
    /// A listener listens (one line per address).
    Listening { addr: SocketAddr },
    /// The counters and figures now; `last` at exit.
    Report {
        last: bool,
        totals: ServerTotals,
        process: ProcessFigures,
    },
}

/// The line a server process prints when a listener listens.
pub(super) fn listening_line(addr: SocketAddr) -> String {
    json_line(&ProcessLine::Listening { addr })
}

/// The line a server process prints once a second and (`last`) at exit.
pub(super) fn report_line(last: bool, totals: &ServerTotals, process: &ProcessFigures) -> String {
    json_line(&ProcessLine::Report {
        last,
        totals: *totals,
        process: *process,
    })
}

fn json_line(line: &ProcessLine) -> String {
    let mut text = serde_json::to_string(line).expect("plain data serializes");
    text.push('\n');
    text
}

/// One server process as the supervisor knows it.
#[derive(Debug, Clone)]
struct Process {
    /// 1-based, as printed.
    index: usize,
    pid: u32,
    /// `listening` lines received.
    listening: usize,
    /// The latest report, if any.
    report: Option<(ServerTotals, ProcessFigures)>,
    /// It sent its report at exit.
    reported_last: bool,
    /// How it ended, once it has (the supervisor reaped it).
    exit: Option<ExitStatus>,
}

impl Process {
    fn running(&self) -> bool {
        self.exit.is_none()
    }

    /// Ended without its report at exit: killed, crashed, or exited on an
    /// error.
    fn died(&self) -> bool {
        self.exit.is_some() && !self.reported_last
    }

    /// Its figures as they count in the sums: a process that died holds
    /// nothing and has no threads or memory any more; what it accepted
    /// and the CPU it used are as of its last report.
    fn counted(&self) -> (ServerTotals, ProcessFigures) {
        let (mut totals, mut figures) = self.report.unwrap_or_default();
        if self.died() {
            totals.held = 0;
            totals.queued = 0;
            totals.request_queue = 0;
            totals.workers_busy = 0;
            figures.threads = Some(0);
            figures.rss_kib = Some(0);
        }
        (totals, figures)
    }

    /// `process 2 pid 4243: accepted ..., held at exit ..., accept errors N`,
    /// and for a process that died, how and that its counts are from its
    /// last report.
    fn exit_line(&self, answers: bool) -> String {
        let (totals, _) = self.counted();
        let mut line = format!(
            "process {} pid {}: {}",
            self.index,
            self.pid,
            exit_line(&totals, answers)
        );
        if self.died() {
            let how = self.exit.map_or_else(|| "ended".into(), describe_exit);
            let counts = if self.report.is_some() {
                "counts as of its last report"
            } else {
                "it never reported"
            };
            line.push_str(&format!(" (died: {how}; {counts})"));
        }
        line
    }
}

/// The figures summed over the processes, each as [`Process::counted`]:
/// counters add; `peak_held` is the sum of each process's peak, which is
/// an upper bound of the most held at one moment (exact when every process
/// peaked at once, as when connections are opened and then held); threads
/// and RSS add up the server processes, not the supervisor.
fn sum(processes: &[Process]) -> (ServerTotals, ProcessFigures) {
    let mut sum = (ServerTotals::default(), ProcessFigures::default());
    let (t, f) = (&mut sum.0, &mut sum.1);
    for process in processes {
        let (totals, figures) = process.counted();
        t.accepted += totals.accepted;
        t.held += totals.held;
        t.peak_held += totals.peak_held;
        t.accept_errors += totals.accept_errors;
        t.queued += totals.queued;
        t.rejected.full_close += totals.rejected.full_close;
        t.rejected.full_reset += totals.rejected.full_reset;
        t.rejected.closed_oldest += totals.rejected.closed_oldest;
        t.rejected.thread_spawn_failed += totals.rejected.thread_spawn_failed;
        t.idle_closed += totals.idle_closed;
        t.requests += totals.requests;
        t.responses += totals.responses;
        t.request_errors += totals.request_errors;
        t.busy_rejected += totals.busy_rejected;
        t.busy_closed += totals.busy_closed;
        t.request_queue += totals.request_queue;
        t.workers_busy += totals.workers_busy;
        let add = |sum: Option<u64>, one: Option<u64>| match (sum, one) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        f.threads = add(f.threads, figures.threads);
        f.rss_kib = add(f.rss_kib, figures.rss_kib);
        f.voluntary_switches += figures.voluntary_switches;
        f.involuntary_switches += figures.involuntary_switches;
        f.user_cpu += figures.user_cpu;
        f.system_cpu += figures.system_cpu;
    }
    sum
}

/// What the watcher of one process saw.
#[derive(Debug)]
enum Event {
    Line(usize, ProcessLine),
    /// A stdout line that is not a [`ProcessLine`].
    Garbled(usize, String),
    Exited(usize, std::io::Result<ExitStatus>),
}

/// `serve --processes N`: starts the server processes, prints their
/// addresses once all listen, prints summed `--stats` lines, and at
/// `shutdown` stops them and prints the exit report.
pub(super) async fn supervise(
    args: ServeArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let (config, _) = config_from(&args);
    let reservations = config
        .listen
        .iter()
        .map(|&addr| server::reserve(addr))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(listen_error)?;
    let addrs: Vec<SocketAddr> = reservations.iter().map(|r| r.addr()).collect();
    let count = args.processes;
    let answers = protocol(args.mode).is_some();
    if let Some(max) = args.max_conns {
        eprintln!(
            "ceiling: --max-conns {max} applies to each of the {count} processes: up to {} in all, and which process a connection reaches is up to the kernel's hash",
            max.saturating_mul(count)
        );
    }

    let (events, mut rx) = mpsc::unbounded_channel();
    let mut processes = Vec::with_capacity(count);
    for index in 1..=count {
        // Spawned from this future, which `block_on` polls on the main
        // thread: PR_SET_PDEATHSIG fires when the thread that forked
        // exits, and the main thread lives as long as the supervisor.
        let child = spawn(&args, &addrs, index)
            .with_context(|| format!("cannot start server process {index} of {count}"))?;
        let pid = child.id().expect("a child not yet waited for has a pid");
        tokio::spawn(watch(index, child, events.clone()));
        processes.push(Process {
            index,
            pid,
            listening: 0,
            report: None,
            reported_last: false,
            exit: None,
        });
    }
    drop(events);

    tokio::pin!(shutdown);
    let started = Instant::now();
    let mut stopping = false;
    while processes.iter().any(|p| p.listening < addrs.len()) {
        tokio::select! {
            () = &mut shutdown => {
                stopping = true;
                break;
            }
            event = rx.recv() => {
                let Some(event) = event else { break };
                note(&mut processes, event);
                // Any exit before listening is a failure, even a clean one.
                if let Some(ended) = processes.iter().find(|p| !p.running()).cloned() {
                    stop(&mut processes, &mut rx).await;
                    anyhow::bail!(
                        "server process {} (pid {}) ended before it listened: {} (its error, if any, is above)",
                        ended.index,
                        ended.pid,
                        ended.exit.map_or_else(|| "ended".into(), describe_exit)
                    );
                }
            }
            () = tokio::time::sleep_until(started + STARTUP_BOUND) => {
                let late: Vec<String> = processes
                    .iter()
                    .filter(|p| p.listening < addrs.len())
                    .map(|p| format!("{} (pid {})", p.index, p.pid))
                    .collect();
                stop(&mut processes, &mut rx).await;
                anyhow::bail!(
                    "server processes {} did not listen within {} s",
                    late.join(", "),
                    STARTUP_BOUND.as_secs()
                );
            }
        }
    }
    // Every process listens on every address: the reserved ports can go.
    drop(reservations);

    if !stopping {
        let mut lines = String::new();
        for addr in &addrs {
            lines.push_str(&format!("listening on {addr}\n"));
        }
        for p in &processes {
            lines.push_str(&format!("process {} pid {}: listening\n", p.index, p.pid));
        }
        print_stdout(&lines)?;

        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.tick().await; // the first tick is now
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                event = rx.recv() => {
                    let Some(event) = event else { break };
                    if let Some(ended) = note(&mut processes, event) {
                        let left = processes.iter().filter(|p| p.running()).count();
                        eprintln!(
                            "ceiling: server process {} (pid {}) died: {}; its connections are gone; {left} of {count} processes still serving",
                            ended.index,
                            ended.pid,
                            ended.exit.map_or_else(|| "ended".into(), describe_exit),
                        );
                        if left == 0 {
                            print_stdout(&exit_report(&processes, answers))?;
                            anyhow::bail!(
                                "all {count} server processes died (see above): nothing is serving"
                            );
                        }
                    }
                }
                _ = every.tick(), if args.stats => {
                    let (totals, figures) = sum(&processes);
                    print_stdout(&format!("{}\n", stats_line(&totals, &figures)))?;
                }
            }
        }
    }
    stop(&mut processes, &mut rx).await;
    print_stdout(&exit_report(&processes, answers))?;
    Ok(ExitCode::SUCCESS)
}

/// One line per process, then the summed exit line and `stats:` line (the
/// last two lines have the shape one process prints); `answers`: request
/// counts on the exit lines.
fn exit_report(processes: &[Process], answers: bool) -> String {
    let mut report = String::new();
    for process in processes {
        report.push_str(&process.exit_line(answers));
        report.push('\n');
    }
    let (totals, figures) = sum(processes);
    report.push_str(&format!(
        "{}\n{}\n",
        exit_line(&totals, answers),
        stats_line(&totals, &figures)
    ));
    report
}

/// Applies `event`; returns the process if it has just ended without its
/// report at exit (it died).
fn note(processes: &mut [Process], event: Event) -> Option<Process> {
    match event {
        Event::Line(i, ProcessLine::Listening { .. }) => processes[i - 1].listening += 1,
        Event::Line(
            i,
            ProcessLine::Report {
                last,
                totals,
                process,
            },
        ) => {
            let p = &mut processes[i - 1];
            p.report = Some((totals, process));
            p.reported_last |= last;
        }
        Event::Garbled(i, line) => {
            let p = &processes[i - 1];
            eprintln!(
                "ceiling: server process {} (pid {}) wrote an unexpected line: {line}",
                p.index, p.pid
            );
        }
        Event::Exited(i, status) => {
            let p = &mut processes[i - 1];
            p.exit = Some(status.unwrap_or_else(|_| ExitStatus::from_raw(-1)));
            if p.died() {
                return Some(p.clone());
            }
        }
    }
    None
}

/// SIGTERM to every running process (by PID), then their last reports and
/// exits, bounded by [`STOP_BOUND`]; what has not exited by then gets
/// SIGKILL.
async fn stop(processes: &mut [Process], rx: &mut mpsc::UnboundedReceiver<Event>) {
    for p in processes.iter().filter(|p| p.running()) {
        send_signal(p.pid, libc::SIGTERM);
    }
    let mut deadline = Instant::now() + STOP_BOUND;
    let mut killed = false;
    while processes.iter().any(Process::running) {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                note(processes, event);
            }
            () = tokio::time::sleep_until(deadline) => {
                if killed {
                    break;
                }
                for p in processes.iter().filter(|p| p.running()) {
                    eprintln!(
                        "ceiling: server process {} (pid {}) did not stop within {} s of SIGTERM: killing it",
                        p.index,
                        p.pid,
                        STOP_BOUND.as_secs()
                    );
                    send_signal(p.pid, libc::SIGKILL);
                }
                killed = true;
                deadline = Instant::now() + Duration::from_secs(2);
            }
        }
    }
}

/// kill(2) to one of our server processes. Only called for a process that
/// has not been reaped (its watcher has not reported its exit), so the PID
/// is still its own.
fn send_signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a PID we spawned and a valid signal number.
        unsafe { libc::kill(pid, signal) };
    }
}

/// `exited with status 1`, `killed by signal 9 (SIGKILL)`.
fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGHUP => " (SIGHUP)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        None => format!("ended ({status})"),
    }
}

/// Starts server process `index` on the resolved `addrs`.
fn spawn(args: &ServeArgs, addrs: &[SocketAddr], index: usize) -> std::io::Result<Child> {
    // /proc/self/exe runs this very binary even if the file was replaced
    // since (a rebuild while serving).
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0(
            std::env::args_os()
                .next()
                .unwrap_or_else(|| "ceiling".into()),
        )
        .args(process_args(args, addrs, index))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // If the supervisor fails before it stops them.
        .kill_on_drop(true);
    let parent = libc::pid_t::try_from(std::process::id()).expect("a pid fits pid_t");
    // SAFETY: the closure calls only prctl(2) and getppid(2), both
    // async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor died before prctl: nobody would kill us.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// The arguments of server process `index`: every serving option as given,
/// the resolved addresses instead of `--listen`, no `--processes`.
fn process_args(args: &ServeArgs, addrs: &[SocketAddr], index: usize) -> Vec<String> {
    // Destructured without `..`: a new serve option does not compile until
    // it is passed on here (or said not to be).
    let ServeArgs {
        listen: _,
        mode,
        service_time,
        backlog,
        no_accept,
        model,
        workers,
        queue,
        when_queue_full,
        thread_stack,
        max_conns,
        when_full,
        reject_message,
        idle_timeout,
        // Server processes always report once a second.
        stats: _,
        processes: _,
        fd_limit,
        as_process: _,
    } = args;
    let mut out: Vec<String> = vec!["serve".into()];
    for addr in addrs {
        out.extend(["--listen".into(), addr.to_string()]);
    }
    let mode = clap::ValueEnum::to_possible_value(mode)
        .expect("every mode has a name")
        .get_name()
        .to_string();
    out.extend(["--mode".into(), mode]);
    if let Some(time) = service_time {
        out.extend(["--service-time".into(), time.describe()]);
    }
    out.extend(["--backlog".into(), backlog.to_string()]);
    if *no_accept {
        out.push("--no-accept".into());
    }
    out.extend(["--model".into(), model.name().into()]);
    if let Some(workers) = workers {
        out.extend(["--workers".into(), workers.to_string()]);
    }
    if let Some(queue) = queue {
        out.extend(["--queue".into(), queue.to_string()]);
    }
    if let Some(policy) = when_queue_full {
        out.extend(["--when-queue-full".into(), policy.name().into()]);
    }
    out.extend(["--thread-stack".into(), thread_stack.to_string()]);
    if let Some(max) = max_conns {
        out.extend(["--max-conns".into(), max.to_string()]);
    }
    if let Some(policy) = when_full {
        out.extend(["--when-full".into(), policy.name().into()]);
    }
    if let Some(message) = reject_message {
        out.push(format!("--reject-message={message}"));
    }
    if let Some(timeout) = idle_timeout {
        out.extend([
            "--idle-timeout".into(),
            humantime::format_duration(*timeout).to_string(),
        ]);
    }
    if let Some(limit) = fd_limit {
        out.extend(["--fd-limit".into(), limit.to_string()]);
    }
    out.extend(["--as-process".into(), index.to_string()]);
    out
}

/// Forwards one process's stdout lines, then its exit, to the supervisor.
async fn watch(index: usize, mut child: Child, events: mpsc::UnboundedSender<Event>) {
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let event = match serde_json::from_str(&line) {
                Ok(parsed) => Event::Line(index, parsed),
                Err(_) => Event::Garbled(index, line),
            };
            if events.send(event).is_err() {
                break;
            }
        }
    }
    let status = child.wait().await;
    let _ = events.send(Event::Exited(index, status));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as Sub, ServeMode};
    use crate::scenario::units::parse_listen;
    use crate::server::{Model, Rejected, WhenFull};
    use clap::Parser;

    fn parse(argv: &[String]) -> ServeArgs {
        let cli = Cli::try_parse_from(std::iter::once("ceiling".to_string()).chain(argv.to_vec()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        match cli.command {
            Sub::Serve(args) => args,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn a_server_process_gets_every_option_and_the_resolved_addresses() {
        let given = ServeArgs {
            listen: vec![parse_listen("127.0.0.1:0").unwrap()],
            mode: ServeMode::Http,
            service_time: Some(crate::server::ServiceTime {
                min: Duration::from_micros(1500),
                max: Duration::from_millis(5),
            }),
            backlog: 8,
            no_accept: true,
            model: Model::Pool,
            workers: Some(5),
            queue: Some(20),
            when_queue_full: Some(crate::server::WhenQueueFull::Close),
            thread_stack: 128 * 1024,
            max_conns: Some(50),
            when_full: Some(WhenFull::CloseOldest),
            reject_message: Some("--busy, try later\r\n".into()),
            idle_timeout: Some(Duration::from_millis(1500)),
            stats: true,
            processes: 4,
            fd_limit: Some(100),
            as_process: None,
        };
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:7070".parse().unwrap(),
            "[::1]:7071".parse().unwrap(),
        ];
        let got = parse(&process_args(&given, &addrs, 3));
        let expanded: Vec<SocketAddr> = got.listen.iter().flat_map(|s| s.addrs.clone()).collect();
        assert_eq!(expanded, addrs);
        assert_eq!((got.processes, got.as_process), (1, Some(3)));
        // Everything else as given.
        let same = |args: &ServeArgs| {
            format!(
                "{:?}",
                ServeArgs {
                    listen: Vec::new(),
                    stats: false,
                    processes: 1,
                    as_process: None,
                    ..args.clone()
                }
            )
        };
        assert_eq!(same(&got), same(&given));
        // And the defaults stay defaults.
        let got = parse(&process_args(&ServeArgs::default(), &addrs, 1));
        assert_eq!(same(&got), same(&ServeArgs::default()));
    }

    #[test]
    fn process_lines_round_trip() {
        let totals = ServerTotals {
            accepted: 7,
            held: 3,
            peak_held: 5,
            rejected: Rejected {
                full_reset: 2,
                ..Rejected::default()
            },
            ..ServerTotals::default()
        };
        let figures = ProcessFigures {
            threads: Some(3),
            rss_kib: None,
            user_cpu: Duration::from_micros(1500),
            ..ProcessFigures::default()
        };
        for line in [
            listening_line("[::1]:7070".parse().unwrap()),
            report_line(true, &totals, &figures),
        ] {
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            let parsed: ProcessLine = serde_json::from_str(&line).unwrap();
            assert_eq!(json_line(&parsed), line);
        }
    }

    fn process(index: usize, accepted: u64, held: u64, died: bool) -> Process {
        Process {
            index,
            pid: 1000 + index as u32,
            listening: 1,
            report: Some((
                ServerTotals {
                    accepted,
                    held,
                    peak_held: held + 1,
                    idle_closed: 1,
                    ..ServerTotals::default()
                },
                ProcessFigures {
                    threads: Some(3),
                    rss_kib: Some(4096),
                    voluntary_switches: 10,
                    user_cpu: Duration::from_millis(100),
                    ..ProcessFigures::default()
                },
            )),
            reported_last: !died,
            exit: Some(if died {
                ExitStatus::from_raw(libc::SIGKILL)
            } else {
                ExitStatus::from_raw(0)
            }),
        }
    }

    #[test]
    fn sums_add_counters_and_peaks_and_a_dead_process_holds_nothing() {
        let processes = [process(1, 210, 200, false), process(2, 190, 180, true)];
        let (totals, figures) = sum(&processes);
        assert_eq!(totals.accepted, 400);
        assert_eq!(totals.held, 200, "the dead process's connections are gone");
        assert_eq!(totals.peak_held, 201 + 181, "sum of the peaks");
        assert_eq!(totals.idle_closed, 2);
        assert_eq!(figures.threads, Some(3));
        assert_eq!(figures.rss_kib, Some(4096));
        assert_eq!(figures.voluntary_switches, 20);
        assert_eq!(figures.user_cpu, Duration::from_millis(200));
        assert_eq!(
            processes[0].exit_line(false),
            "process 1 pid 1001: accepted 210, peak held 201, held at exit 200, accept errors 0"
        );
        assert_eq!(
            processes[1].exit_line(false),
            "process 2 pid 1002: accepted 190, peak held 181, held at exit 0, accept errors 0 (died: killed by signal 9 (SIGKILL); counts as of its last report)"
        );
        let report = exit_report(&processes, false);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "accepted 400, peak held 382, held at exit 200, accept errors 0"
        );
        assert!(lines[3].starts_with("stats: accepted 400, held 200,"));
    }

    #[test]
    fn exits_are_described_with_the_signal_name() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGKILL)),
            "killed by signal 9 (SIGKILL)"
        );
    }
}
