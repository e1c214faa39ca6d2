//! Turns the first limit's event into what a person acts on: one line of
//! evidence naming the facts (attempt, held count, addresses, the host
//! values and counters that explain it), the facts themselves for scripts,
//! and a one-line remedy with the real numbers of this host.
//!
//! Pure: it reads only its arguments, so every message is testable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::Value;

use super::cpu::{CpuShortfall, ServerCpu};
use super::host::{self, HostState, ListenerQueue};
use super::procfs::SocketStates;
use crate::model::{
    ClosePattern, Evidence, FailureEvent, LimitKind, PeerClose, Syscall, WorkerDeath, errno_name,
    thousands,
};

/// Facts about the run the explanation needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFacts {
    /// How many source IPs the plan used (0 = none bound: kernel default).
    pub source_count: usize,
    pub target_count: usize,
    pub explicit_source_ports: Option<(u16, u16)>,
    /// The target is ceiling's embedded server, sharing this process's fds.
    pub embedded_target: bool,
    pub connections_requested: u64,
    pub established: u64,
    pub peak_active: u64,
    pub connect_timeout_ms: u64,
    /// The target is on this host, so "ListenOverflows did not move" is
    /// evidence (for a remote target those counters are not ours).
    pub target_local: bool,
    /// The target's listener queue, read when the limit was hit (target on
    /// this host only): says at which count it stopped accepting.
    pub target_listener: Option<ListenerQueue>,
    /// The run's sockets by state when the limit was hit (read once then,
    /// from /proc/net/tcp{,6}): says whether handshakes filled the table.
    pub handshakes: Option<Handshakes>,
    /// How the target's closes of held connections were spread, when it
    /// closed any: tells a cap from a timeout.
    pub close_pattern: Option<ClosePattern>,
    /// Worker processes that died, with their memory cgroup's readings.
    pub worker_deaths: Vec<WorkerDeath>,
    /// The lab's server runs in a pids cgroup: its pids.max and the thread
    /// starts it refused so far.
    pub server_pids: Option<ServerPids>,
    /// The target's processes were at their CPU quota (or every core they
    /// may use) for some seconds of the run: read once a second.
    pub server_cpu: Option<ServerCpu>,
    /// The seconds connects slowed or fell short of the rate (for a
    /// `server_cpu` first limit).
    pub shortfall: Option<CpuShortfall>,
}

/// The run's sockets to its targets by state at the limit, and the
/// connections established by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshakes {
    pub states: SocketStates,
    pub established: u64,
}

/// A server's pids cgroup, as the lab made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerPids {
    pub max: u64,
    pub refused: u64,
}

/// Fewest closes a verdict is drawn from.
const VERDICT_MIN_CLOSES: u64 = 3;

/// Closes that all came within this many milliseconds of each other are
/// one moment: the server went away (when their ages differ).
const SHUTDOWN_WINDOW_MS: u64 = 250;

/// Cap, timeout or shutdown, from how the target's closes were spread:
/// - one age (p10..p90 within 5% or 200 ms) of at least 500 ms: an idle or
///   session timeout of that age;
/// - within 100 ms of connecting with (almost) nothing else held: the target
///   closes every connection at once;
/// - one moment (all within `SHUTDOWN_WINDOW_MS`, 250 ms) at ages that differ by
///   more than twice that window (and 200 ms): the server shut down or
///   restarted;
/// - one count of others held (p10..p90 within 5% or 2): a connection cap of
///   that count;
/// - none of these: no single cap or timeout (a crash, a load shedder).
pub fn close_verdict(p: &ClosePattern) -> Option<String> {
    let shape = close_shape(p)?;
    let (age, held) = (&p.age_ms, &p.others_held);
    let window = p.last_at_ms.saturating_sub(p.first_at_ms);
    Some(if shape == CloseShape::Timeout {
        let half = (age.p90 - age.p10) as f64 / 2000.0;
        format!(
            "every connection closed at {:.1} ± {half:.1} s of age ({} closes): looks like an \
             idle or session timeout of {:.0} s",
            age.p50 as f64 / 1000.0,
            p.closes,
            age.p50 as f64 / 1000.0
        )
    } else if shape == CloseShape::AtOnce {
        format!(
            "the target closed every connection within {} ms of connecting ({} closes): it \
             refuses by accepting and closing",
            age.p90, p.closes
        )
    } else if shape == CloseShape::Shutdown {
        // Nothing else held after the last close: every one was closed.
        let closed = if held.min == 0 {
            format!("every held connection ({}) was", thousands(p.closes))
        } else {
            format!("{} held connections were", thousands(p.closes))
        };
        format!(
            "{closed} closed by the server within {window} ms at {:.1} s into the run, at ages \
             {:.1}-{:.1} s: the server shut down or restarted",
            p.first_at_ms as f64 / 1000.0,
            age.min as f64 / 1000.0,
            age.max as f64 / 1000.0
        )
    } else if shape == CloseShape::Cap {
        format!(
            "closes came while {} others were held ({} closes, ages {}..{} ms): looks like a \
             connection cap of ~{}",
            held.p50, p.closes, age.min, age.max, held.p50
        )
    } else {
        format!(
            "closes came at ages {}..{} ms with {}..{} others held, over {:.1} s ({} closes): \
             no single cap, timeout or moment (a crash or load shedding?)",
            age.p10,
            age.p90,
            held.p10,
            held.p90,
            window as f64 / 1000.0,
            p.closes
        )
    })
}

/// What the spread of the target's closes points to (see [`close_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseShape {
    Timeout,
    AtOnce,
    Shutdown,
    Cap,
    Scattered,
}

/// The shape of the closes; None below [`VERDICT_MIN_CLOSES`].
fn close_shape(p: &ClosePattern) -> Option<CloseShape> {
    if p.closes < VERDICT_MIN_CLOSES {
        return None;
    }
    let tight = |s: &crate::model::Spread, floor: u64| s.p90 - s.p10 <= floor.max(s.p50 / 20);
    let (age, held) = (&p.age_ms, &p.others_held);
    let window = p.last_at_ms.saturating_sub(p.first_at_ms);
    Some(if tight(age, 200) && age.p50 >= 500 {
        CloseShape::Timeout
    } else if age.p90 < 100 && held.p90 <= 2 {
        CloseShape::AtOnce
    } else if window <= SHUTDOWN_WINDOW_MS && age.max - age.min >= (2 * window).max(200) {
        CloseShape::Shutdown
    } else if tight(held, 2) {
        CloseShape::Cap
    } else {
        CloseShape::Scattered
    })
}

/// Counter deltas always shown in the facts, even when zero: a zero here is
/// evidence too (no overflow, no SYN loss).
const KEY_COUNTERS: &[&str] = &[
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPSynRetrans",
    "TcpExt.TCPTimeWaitOverflow",
];

/// Evidence (one line + facts) and a one-line remedy for the first limit.
pub fn explain(
    event: &FailureEvent,
    start: &HostState,
    end: &HostState,
    facts: &RunFacts,
) -> (Evidence, String) {
    let x = Explainer {
        ev: event,
        run: facts,
        host: HostView::new(start, end),
    };
    let evidence = Evidence {
        message: x.message(),
        facts: x.facts(),
    };
    (evidence, x.remedy())
}

/// Host values (end overriding start), counter deltas and end counters.
struct HostView {
    values: BTreeMap<String, Value>,
    deltas: BTreeMap<String, i64>,
    end: BTreeMap<String, u64>,
}

impl HostView {
    fn new(start: &HostState, end: &HostState) -> Self {
        let mut values = start.values.clone();
        values.extend(end.values.clone());
        HostView {
            values,
            deltas: host::counter_deltas(start, end),
            end: end.counters.clone(),
        }
    }

    fn num(&self, key: &str) -> Option<u64> {
        self.values.get(key)?.as_u64()
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.values.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// A counter's change over the run, as "+N".
    fn delta(&self, key: &str) -> Option<String> {
        self.deltas.get(key).map(|d| format!("{d:+}"))
    }

    fn ports(&self) -> Option<u64> {
        self.num("ip_local_port_count")
    }

    fn port_range(&self) -> String {
        self.text("ip_local_port_range")
            .unwrap_or_else(|| "?".into())
    }
}

struct Explainer<'a> {
    ev: &'a FailureEvent,
    run: &'a RunFacts,
    host: HostView,
}

impl Explainer<'_> {
    fn message(&self) -> String {
        let ev = self.ev;
        let mut m = match ev.kind {
            LimitKind::ServerCpu => self.server_cpu_head(),
            LimitKind::ServerClosed => self.closed_head(),
            LimitKind::BacklogOverflow if is_held(ev.syscall) => self.closed_head(),
            LimitKind::PortSearchSlow => format!(
                "connect() slow at attempt {} with {} held{}: the kernel is searching a nearly \
                 full port space",
                ev.attempt,
                ev.active,
                self.route()
            ),
            _ if ev.syscall == Syscall::Timeout => self.timeout_head(),
            // source: "worker process 3"; target: "pid 123: killed by ...".
            _ if ev.syscall == Syscall::WorkerExit => format!(
                "{} ({}) with {} held in all; it had started attempts up to #{}",
                ev.source,
                ev.target,
                thousands(ev.active),
                thousands(ev.attempt)
            ),
            _ => self.failed_head(),
        };
        let h = &self.host;
        match ev.kind {
            LimitKind::PortExhaustion | LimitKind::PortSearchSlow => {
                let _ = write!(m, "; {}", self.port_space());
                if let Some(tw) = h.end.get("sockstat.tcp_tw").filter(|&&tw| tw > 0) {
                    let _ = write!(m, "; {tw} sockets in TIME_WAIT hold ports");
                }
            }
            LimitKind::SourceAddressInvalid => {
                let _ = write!(m, "; {} is not an address of this host", or_q(&ev.source));
            }
            LimitKind::FdLimitProcess => {
                let _ = write!(
                    m,
                    "; RLIMIT_NOFILE soft {}, hard {}",
                    limit(h.num("rlimit_nofile_soft")),
                    limit(h.num("rlimit_nofile_hard"))
                );
            }
            LimitKind::FdLimitSystem => {
                let _ = write!(
                    m,
                    "; fs.file-nr {} allocated of fs.file-max {} (host-wide)",
                    limit(h.num("file_nr_allocated")),
                    limit(h.num("file_max"))
                );
            }
            LimitKind::KernelMemory => {
                if let Some(mem) = h.end.get("sockstat.tcp_mem") {
                    let _ = write!(m, "; TCP memory {mem} pages");
                    if let Some(tcp_mem) = h.text("tcp_mem_pages") {
                        let _ = write!(m, " (tcp_mem {tcp_mem})");
                    }
                }
                for key in ["TcpExt.TCPAbortOnMemory", "TcpExt.TCPMemoryPressures"] {
                    if let Some(d) = h.deltas.get(key).filter(|&&d| d != 0) {
                        let _ = write!(m, "; {} {d:+}", short(key));
                    }
                }
                if let Some(bytes) = h.num("cgroup_memory_limit_bytes") {
                    let _ = write!(m, "; cgroup memory limit {}", mib(bytes));
                }
                if let Some(death) = self.oom_death() {
                    let _ = write!(
                        m,
                        "; the workers' memory cgroup counted {} OOM kill(s){}",
                        death.oom_kills.unwrap_or(0),
                        match death.memory_limit_bytes {
                            Some(b) => format!(" at its limit of {}", mib(b)),
                            None => String::new(),
                        }
                    );
                }
            }
            LimitKind::BacklogOverflow => {
                m.push_str(&self.listen_counters());
                m.push_str(&self.syn_clauses());
                m.push_str(&self.listener_clause());
                m.push_str(&self.server_cpu_clause());
            }
            LimitKind::ConntrackFull => {
                let _ = write!(
                    m,
                    "; nf_conntrack_count {} of nf_conntrack_max {}",
                    limit(h.num("nf_conntrack_count")),
                    limit(h.num("nf_conntrack_max"))
                );
                m.push_str(&self.syn_clauses());
            }
            LimitKind::ConnectTimeout => {
                m.push_str(&self.syn_clauses());
                if self.run.target_local {
                    m.push_str(&self.listen_counters());
                } else {
                    m.push_str(
                        "; target not on this host: its ListenOverflows are not visible here",
                    );
                }
                m.push_str(&self.server_cpu_clause());
            }
            LimitKind::Refused => {
                let _ = write!(m, "; nothing listens on {}", or_q(&ev.target));
            }
            LimitKind::Reset => m.push_str("; the handshake was answered with RST"),
            LimitKind::ServerCpu => {
                if self.run.target_local {
                    m.push_str(&self.listen_counters());
                }
                m.push_str(&self.syn_clauses());
            }
            LimitKind::ServerClosed
            | LimitKind::Unreachable
            | LimitKind::Other
            | LimitKind::LostWithWorker => {}
        }
        if let Some(cause) = self.handshake_cause() {
            let _ = write!(m, "; {}", cause.evidence);
        }
        m
    }

    /// When a limit on local resources (fds, ports, memory) was reached
    /// while most of the run's sockets were still handshaking: the target
    /// not answering fast enough is the cause, with its counters.
    fn handshake_cause(&self) -> Option<HandshakeCause> {
        if !matches!(
            self.ev.kind,
            LimitKind::FdLimitProcess
                | LimitKind::FdLimitSystem
                | LimitKind::PortExhaustion
                | LimitKind::KernelMemory
        ) {
            return None;
        }
        let hs = self.run.handshakes?;
        let states = hs.states;
        if states.syn_sent == 0 || states.syn_sent * 2 <= states.total {
            return None;
        }
        let overflows = self
            .host
            .deltas
            .get("TcpExt.ListenOverflows")
            .copied()
            .filter(|&d| d > 0 && self.run.target_local);
        let (waiting, counters) = match overflows {
            Some(_) => (
                " waiting on a full listen queue at the target",
                self.listen_counters().replacen("; ", " (", 1) + ")",
            ),
            None => (" the target had not answered", String::new()),
        };
        let completed = completed_handshakes(hs.established, self.ev.elapsed_s);
        let evidence = format!(
            "{} of {} sockets to the target were handshakes (SYN-SENT){waiting}{counters}: \
             {completed}",
            thousands(states.syn_sent),
            thousands(states.total)
        );
        let remedy = format!(
            "most of what reached the limit were handshakes{waiting} ({completed}): lower the \
             rate, add accept workers to the target, or cap handshakes in flight with \
             --max-in-flight N"
        );
        Some(HandshakeCause { evidence, remedy })
    }

    /// `connect() failed with EADDRNOTAVAIL at attempt 12 with 11 held from
    /// 127.0.0.1 to 127.0.0.1:7070`
    /// The worker process death this event stands for, when its memory
    /// cgroup counted an OOM kill.
    fn oom_death(&self) -> Option<&WorkerDeath> {
        if self.ev.syscall != Syscall::WorkerExit {
            return None;
        }
        self.run
            .worker_deaths
            .iter()
            .find(|d| d.oom_kills.unwrap_or(0) > 0)
    }

    fn failed_head(&self) -> String {
        let ev = self.ev;
        let mut m = format!(
            "{}() failed with {} at attempt {} with {} held",
            ev.syscall,
            errno_text(ev.errno),
            ev.attempt,
            ev.active
        );
        // socket() has no addresses yet.
        if ev.syscall != Syscall::Socket {
            m.push_str(&self.route());
        }
        if ev.syscall == Syscall::Connect && ev.errno == Some(libc::ETIMEDOUT) {
            match self.host.num("tcp_syn_retries") {
                Some(n) => {
                    let _ = write!(m, " (the kernel gave up after tcp_syn_retries {n})");
                }
                None => m.push_str(" (the kernel gave up retrying the SYN)"),
            }
        }
        m
    }

    /// `no connection failed, but in 4 s connects slowed (p90 up to 3.1 s)
    /// and established at 55% of the target rate, from 1 s into the run:
    /// the server process was at its CPU quota of 0.01 cores for 3 s`
    fn server_cpu_head(&self) -> String {
        let short = self.run.shortfall.unwrap_or_default();
        let mut m = format!(
            "no connection failed, but in {} s connects slowed (p90 up to {})",
            short.seconds,
            duration(short.connect_p90_us / 1000)
        );
        if let Some(ratio) = short.rate_ratio.filter(|&r| r < 0.9) {
            let _ = write!(
                m,
                " or established at {:.0}% of the target rate",
                ratio * 100.0
            );
        }
        let _ = write!(m, ", from {:.0} s into the run", self.ev.elapsed_s);
        if let Some(cpu) = self.run.server_cpu {
            let _ = write!(m, ": {}", cpu.describe());
        }
        m
    }

    /// `no SYN-ACK within 2 s for attempt 10 with 9 held to 127.0.0.1:7070`
    fn timeout_head(&self) -> String {
        let ev = self.ev;
        let within = match self.run.connect_timeout_ms {
            0 => "before the connect timeout".to_string(),
            ms => format!("within {}", duration(ms)),
        };
        format!(
            "no SYN-ACK {within} for attempt {} with {} held{}",
            ev.attempt,
            ev.active,
            self.route()
        )
    }

    /// `target 127.0.0.1:6379 closed a held connection (EOF) after 1.2 s
    /// with 50 held (attempt 51 from 127.0.0.1); it sent: '…'`
    fn closed_head(&self) -> String {
        let ev = self.ev;
        let how = match (ev.peer_close, ev.errno) {
            (Some(PeerClose::Eof), _) | (None, None) => "closed a held connection (EOF)".into(),
            (Some(PeerClose::Rst), _) | (None, Some(libc::ECONNRESET | libc::EPIPE)) => {
                "reset a held connection (RST)".into()
            }
            (None, Some(libc::ETIMEDOUT)) => {
                "stopped answering on a held connection (ETIMEDOUT)".into()
            }
            (None, Some(e)) => format!("ended a held connection ({})", errno_text(Some(e))),
        };
        let target = if ev.target.is_empty() {
            "target".to_string()
        } else {
            format!("target {}", ev.target)
        };
        let mut m = format!("{target} {how}");
        if let Some(age) = ev.age_ms {
            let _ = write!(m, " after {}", duration(age));
        }
        let _ = write!(m, " with {} held (attempt {}", ev.active, ev.attempt);
        if !ev.source.is_empty() {
            let _ = write!(m, " from {}", ev.source);
        }
        m.push(')');
        if ev.kind == LimitKind::BacklogOverflow {
            m.push_str(": the accept queue overflowed, the server never accepted it");
        }
        match ev.server_bytes.as_deref() {
            Some(bytes) if !bytes.is_empty() => {
                let _ = write!(m, "; it sent: '{}'", one_line(bytes, 80));
            }
            _ if ev.kind == LimitKind::ServerClosed => m.push_str("; it sent nothing"),
            _ => {}
        }
        // A known cause first, then what the spread of the closes suggests.
        if ev.kind == LimitKind::ServerClosed
            && let Some(pids) = self.run.server_pids.filter(|p| p.refused > 0)
        {
            let _ = write!(
                m,
                "; the server's pids cgroup (pids.max {}) refused {} thread starts: its \
                 threads are the cap",
                pids.max, pids.refused
            );
        }
        if ev.kind == LimitKind::ServerClosed
            && let Some(verdict) = self.run.close_pattern.as_ref().and_then(close_verdict)
        {
            let _ = write!(m, "; {verdict}");
        }
        m
    }

    fn route(&self) -> String {
        let ev = self.ev;
        let mut r = String::new();
        if !ev.source.is_empty() {
            let _ = write!(r, " from {}", ev.source);
        }
        if !ev.target.is_empty() {
            let _ = write!(r, " to {}", ev.target);
        }
        r
    }

    /// `ip_local_port_range 50000-50010 gives 11 ports per (source IP,
    /// target): ≈ 11 connections for 1 source IP × 1 target`
    fn port_space(&self) -> String {
        let run = self.run;
        let sources = run.source_count.max(1) as u64;
        let targets = run.target_count.max(1) as u64;
        let (what, ports, per_target) = match run.explicit_source_ports {
            Some((lo, hi)) => (
                format!("--source-ports {lo}-{hi}"),
                Some(u64::from(hi.saturating_sub(lo)) + 1),
                self.ev.syscall != Syscall::Bind,
            ),
            None => (
                format!("ip_local_port_range {}", self.host.port_range()),
                self.host.ports(),
                // bind(ip, 0) takes a port for every target at once.
                self.ev.syscall != Syscall::Bind,
            ),
        };
        let Some(ports) = ports else {
            return format!("{what} unknown");
        };
        let (per, total) = if per_target {
            ("per (source IP, target)", ports * sources * targets)
        } else {
            ("per source IP", ports * sources)
        };
        let mut s = format!(
            "{what} gives {ports} ports {per}: ≈ {total} connections for {sources} source IP"
        );
        if sources != 1 {
            s.push('s');
        }
        if per_target {
            let _ = write!(
                s,
                " × {targets} target{}",
                if targets == 1 { "" } else { "s" }
            );
        }
        s
    }

    /// `; ListenOverflows +273, ListenDrops +273 on this host`
    fn listen_counters(&self) -> String {
        let h = &self.host;
        match (
            h.delta("TcpExt.ListenOverflows"),
            h.delta("TcpExt.ListenDrops"),
        ) {
            (Some(o), Some(d)) => format!("; ListenOverflows {o}, ListenDrops {d} on this host"),
            (Some(o), None) => format!("; ListenOverflows {o} on this host"),
            _ => String::new(),
        }
    }

    /// `; SYN retransmits 2 (TCPSynRetrans +546 on this host)`
    fn syn_clauses(&self) -> String {
        let host = self
            .host
            .deltas
            .get("TcpExt.TCPSynRetrans")
            .filter(|&&d| d != 0)
            .map(|d| format!("{d:+}"));
        match (self.ev.syn_retransmits, host) {
            (Some(n), Some(h)) => format!("; SYN retransmits {n} (TCPSynRetrans {h} on this host)"),
            (Some(n), None) => format!("; SYN retransmits {n}"),
            (None, Some(h)) => format!("; TCPSynRetrans {h} on this host"),
            (None, None) => String::new(),
        }
    }

    /// `; listener: 9 queued, backlog 8 (full)`
    fn listener_clause(&self) -> String {
        match self.run.target_listener {
            Some(q) if q.backlog_known() => format!(
                "; listener: {} queued, backlog {}{}",
                q.queued,
                q.backlog,
                if q.is_full() { " (full)" } else { "" }
            ),
            Some(q) => format!("; listener: {} queued", q.queued),
            None => String::new(),
        }
    }

    /// `; the server process was at its CPU quota of 0.2 cores for 14 s`,
    /// when it was.
    fn server_cpu_clause(&self) -> String {
        self.run
            .server_cpu
            .map(|cpu| format!("; {}", cpu.describe()))
            .unwrap_or_default()
    }

    fn remedy(&self) -> String {
        let remedy = self.kind_remedy();
        if let Some(cause) = self.handshake_cause() {
            return format!("{}; {remedy}", cause.remedy);
        }
        match (self.ev.kind, self.run.server_cpu) {
            // The target's CPU is why it did not accept: say so first.
            (LimitKind::BacklogOverflow | LimitKind::ConnectTimeout, Some(cpu)) => {
                format!("{}; {remedy}", cpu.remedy())
            }
            _ => remedy,
        }
    }

    fn kind_remedy(&self) -> String {
        let ev = self.ev;
        let h = &self.host;
        let run = self.run;
        match ev.kind {
            LimitKind::PortExhaustion => self.port_remedy(),
            LimitKind::PortSearchSlow => format!(
                "add source IPs{} or target ports, so each (source IP, target) uses fewer of its \
                 {} ports",
                self.source_example(),
                limit(h.ports())
            ),
            LimitKind::SourceAddressInvalid => format!(
                "use source IPs assigned to this host ({} is not): any 127.0.0.0/8 address works \
                 on lo; add others with `ip addr add`",
                or_q(&ev.source)
            ),
            LimitKind::FdLimitProcess => {
                let soft = h.num("rlimit_nofile_soft");
                let hard = h.num("rlimit_nofile_hard");
                match (soft, hard) {
                    (Some(s), Some(hd)) if s >= hd => format!(
                        "the soft fd limit is already the hard limit ({}): add worker processes, \
                         each with an fd table of its own (`--processes auto`, or more with \
                         `--processes N`), or raise the hard limit as root (limits.conf nofile, \
                         systemd LimitNOFILE=)",
                        limit(Some(hd))
                    ),
                    (_, Some(hd)) => format!(
                        "raise the soft fd limit (hard is {0}): drop --fd-limit or `ulimit -n {0}`; \
                         beyond the hard limit add worker processes (`--processes auto`)",
                        limit(Some(hd))
                    ),
                    _ => {
                        "raise the soft fd limit (`ulimit -n`, up to the hard limit `ulimit -Hn`); \
                          beyond it add worker processes (`--processes auto`)"
                            .to_string()
                    }
                }
            }
            LimitKind::FdLimitSystem => format!(
                "raise fs.file-max (now {}, {} allocated; host-wide, not per namespace) or close \
                 files held by other processes",
                limit(h.num("file_max")),
                limit(h.num("file_nr_allocated"))
            ),
            LimitKind::KernelMemory if self.oom_death().is_some() => {
                let limit = self
                    .oom_death()
                    .and_then(|d| d.memory_limit_bytes)
                    .map_or(String::new(), |b| format!(" (now {})", mib(b)));
                format!(
                    "raise the workers' memory cgroup limit{limit} or hold fewer connections: \
                     each held connection's socket memory is charged to it, and the kernel \
                     OOM-kills a worker instead of returning ENOMEM"
                )
            }
            LimitKind::KernelMemory => {
                let cgroup = match h.num("cgroup_memory_limit_bytes") {
                    Some(b) => format!(", now {}", mib(b)),
                    None => String::new(),
                };
                let tcp_mem = match h.text("tcp_mem_pages") {
                    Some(t) => format!(" (now {t} pages)"),
                    None => String::new(),
                };
                format!(
                    "free memory or raise the memory limit (cgroup memory.limit_in_bytes or \
                     memory.max{cgroup}); TCP's own limit is net.ipv4.tcp_mem{tcp_mem}"
                )
            }
            LimitKind::BacklogOverflow => {
                let backlog = match run.target_listener {
                    Some(q) if q.backlog_known() => format!(" (now {})", q.backlog),
                    _ => String::new(),
                };
                format!(
                    "the target does not accept fast enough: raise its listen backlog{backlog} \
                     and the kernel caps above it (net.core.somaxconn {}, \
                     net.ipv4.tcp_max_syn_backlog {}), or make it accept faster",
                    limit(h.num("somaxconn")),
                    limit(h.num("tcp_max_syn_backlog"))
                )
            }
            LimitKind::ServerClosed
                if run.close_pattern.as_ref().and_then(close_shape)
                    == Some(CloseShape::Shutdown) =>
            {
                "the target went away with every connection at once (it shut down, restarted \
                 or crashed): not a connection limit; check its logs and its supervisor, then \
                 run again"
                    .to_string()
            }
            LimitKind::ServerClosed if run.server_pids.is_some_and(|p| p.refused > 0) => {
                let max = run.server_pids.map_or(0, |p| p.max);
                format!(
                    "the server cannot start a thread per connection past its pids cgroup's \
                     limit ({max} tasks, [lab] server_threads_max): an event-driven server holds \
                     them with a few threads ([lab] server_model = \"async\"), or raise the \
                     limit (threads-max, pids.max, systemd TasksMax=)"
                )
            }
            LimitKind::ServerClosed => {
                let age = ev.age_ms.map(duration).unwrap_or_else(|| "?".into());
                let mut r = format!(
                    "the target closes connections itself: check its connection cap or idle \
                     timeout (closes began with {} held, at age {age}: closes at one held count \
                     point to a cap, e.g. Redis maxclients; at one age, to a timeout)",
                    ev.active
                );
                if let Some(b) = ev.server_bytes.as_deref().filter(|b| !b.is_empty()) {
                    let _ = write!(r, "; its message: '{}'", one_line(b, 60));
                }
                r
            }
            LimitKind::ConntrackFull => format!(
                "raise net.netfilter.nf_conntrack_max (now {}) where the connections are \
                 tracked, or exempt the test traffic from conntrack (raw table, NOTRACK)",
                limit(h.num("nf_conntrack_max"))
            ),
            LimitKind::ConnectTimeout => {
                let timeout = match run.connect_timeout_ms {
                    0 => String::new(),
                    ms => format!(" (now {})", duration(ms)),
                };
                let overflows = h.deltas.get("TcpExt.ListenOverflows").copied().unwrap_or(0);
                if run.target_local && overflows > 0 {
                    format!(
                        "the target's accept queue overflowed later in the run (ListenOverflows \
                         {overflows:+}): raise its listen backlog or make it accept faster; or \
                         raise --connect-timeout{timeout}"
                    )
                } else if run.target_local {
                    format!(
                        "the target is on this host and its accept queue did not overflow: check \
                         it is running and accepting (`ss -ltn`), or raise --connect-timeout{timeout}"
                    )
                } else {
                    format!(
                        "on the target host check the listen queue (`ss -ltn`: Recv-Q at Send-Q, \
                         `nstat -az TcpExtListenOverflows`) and firewalls or conntrack on the \
                         path; or raise --connect-timeout{timeout}"
                    )
                }
            }
            LimitKind::Refused => format!(
                "start the target or fix --target: nothing listens on {}",
                or_q(&ev.target)
            ),
            LimitKind::Reset => "check the target's logs and firewalls on the path; a target \
                                 with tcp_abort_on_overflow=1 also resets when its accept queue \
                                 is full"
                .to_string(),
            LimitKind::Unreachable => format!(
                "check the route to {} (`ip route get`) and that the target address is right",
                or_q(&ev.target)
            ),
            LimitKind::Other => format!(
                "not a known connection limit: look up {} for {}()",
                errno_text(ev.errno),
                ev.syscall
            ),
            LimitKind::ServerCpu => match self.run.server_cpu {
                Some(cpu) => format!("{}; or a lower rate", cpu.remedy()),
                None => "more CPU for the server, or a lower rate".to_string(),
            },
            LimitKind::LostWithWorker => "not a connection limit: a worker process died; its \
                                          stderr is in summary.json workers.deaths (run again, \
                                          or report the crash)"
                .to_string(),
        }
    }

    fn port_remedy(&self) -> String {
        let h = &self.host;
        if let Some((lo, hi)) = self.run.explicit_source_ports {
            return format!(
                "widen --source-ports (now {lo}-{hi}) or add source IPs{}",
                self.source_example()
            );
        }
        if self.ev.syscall == Syscall::Bind {
            return format!(
                "let the kernel pick the port at connect time (IP_BIND_ADDRESS_NO_PORT before \
                 bind(ip, 0): ceiling's default, --pick-port-at connect): each (source IP, \
                 target) then gets all {} ports; or add source IPs{}",
                limit(h.ports()),
                self.source_example()
            );
        }
        let mut r = format!(
            "add source IPs{} or target ports, or widen net.ipv4.ip_local_port_range (now {})",
            self.source_example_with_ports(),
            h.port_range()
        );
        if h.end.get("sockstat.tcp_tw").is_some_and(|&tw| tw > 0) {
            r.push_str("; `--close rst` leaves no TIME_WAIT behind");
        }
        r
    }

    /// ` (e.g. --source 127.0.0.2-127.0.0.9)`, or "" when no safe example.
    fn source_example(&self) -> String {
        self.suggested_sources()
            .map(|s| format!(" (e.g. --source {s})"))
            .unwrap_or_default()
    }

    /// ` (e.g. --source 127.0.0.2-127.0.0.9: each adds ~11 ports per target)`
    fn source_example_with_ports(&self) -> String {
        let each = self
            .host
            .ports()
            .map(|n| format!(": each adds ~{n} ports per target"))
            .unwrap_or_default();
        match self.suggested_sources() {
            Some(s) => format!(" (e.g. --source {s}{each})"),
            None if !each.is_empty() => format!(" ({})", &each[2..]),
            None => String::new(),
        }
    }

    /// Eight loopback addresses after the one in use, when the run used at
    /// most one source and it (or the target) is IPv4 loopback: those are
    /// always local. None otherwise: other addresses may not be ours.
    fn suggested_sources(&self) -> Option<String> {
        if self.run.source_count > 1 {
            return None;
        }
        let base = match parse_ip(&self.ev.source) {
            Some(IpAddr::V4(ip)) if ip.is_loopback() => ip,
            Some(_) => return None,
            None => match parse_ip(&self.ev.target) {
                Some(IpAddr::V4(ip)) if ip.is_loopback() => Ipv4Addr::new(127, 0, 0, 1),
                _ => return None,
            },
        };
        let [a, b, c, d] = base.octets();
        let first = d.checked_add(1).filter(|&f| f <= 246)?;
        Some(format!("{a}.{b}.{c}.{first}-{a}.{b}.{c}.{}", first + 7))
    }

    fn facts(&self) -> BTreeMap<String, Value> {
        let ev = self.ev;
        let run = self.run;
        let h = &self.host;
        let mut f: BTreeMap<String, Value> = h.values.clone();
        for (key, &d) in &h.deltas {
            if host::is_gauge(key) {
                continue;
            }
            if d != 0 || KEY_COUNTERS.contains(&key.as_str()) {
                f.insert(format!("delta.{key}"), Value::from(d));
            }
        }
        for (key, &v) in &h.end {
            if host::is_gauge(key) {
                f.insert(key.clone(), Value::from(v));
            }
        }
        f.insert("source_count".into(), Value::from(run.source_count));
        f.insert("target_count".into(), Value::from(run.target_count));
        f.insert("embedded_target".into(), Value::from(run.embedded_target));
        if let Some((lo, hi)) = run.explicit_source_ports {
            f.insert(
                "explicit_source_ports".into(),
                Value::from(format!("{lo}-{hi}")),
            );
        }
        if run.connect_timeout_ms > 0 {
            f.insert(
                "connect_timeout_ms".into(),
                Value::from(run.connect_timeout_ms),
            );
        }
        if let Some(q) = run.target_listener {
            f.insert("listener_queued".into(), Value::from(q.queued));
            if q.backlog_known() {
                f.insert("listener_backlog".into(), Value::from(q.backlog));
            }
        }
        if let Some(n) = ev.syn_retransmits {
            f.insert("syn_retransmits".into(), Value::from(n));
        }
        if let Some(hs) = run.handshakes {
            if let Ok(value) = serde_json::to_value(hs.states) {
                f.insert("sockets_at_limit".into(), value);
            }
            if ev.elapsed_s > 0.0 {
                let rate = hs.established as f64 / ev.elapsed_s;
                f.insert("established_per_s".into(), Value::from(rate.round()));
            }
        }
        if let Some(cpu) = run.server_cpu
            && let Ok(value) = serde_json::to_value(cpu)
        {
            f.insert("server_cpu".into(), value);
        }
        if ev.kind == LimitKind::ServerCpu
            && let Some(short) = run.shortfall
            && let Ok(value) = serde_json::to_value(short)
        {
            f.insert("shortfall".into(), value);
        }
        if let Some(pattern) = &run.close_pattern {
            if let Ok(value) = serde_json::to_value(pattern) {
                f.insert("server_closes".into(), value);
            }
            if let Some(verdict) = close_verdict(pattern) {
                f.insert("verdict".into(), Value::from(verdict));
            }
        }
        if let Some(age) = ev.age_ms {
            f.insert("age_ms".into(), Value::from(age));
        }
        if let Some(close) = ev.peer_close {
            let name = match close {
                PeerClose::Eof => "eof",
                PeerClose::Rst => "rst",
            };
            f.insert("peer_close".into(), Value::from(name));
        }
        if let Some(bytes) = &ev.server_bytes {
            f.insert("server_bytes".into(), Value::from(bytes.clone()));
        }
        f
    }
}

/// The cause behind a limit that handshakes reached: one clause for the
/// evidence, one for the remedy.
struct HandshakeCause {
    evidence: String,
    remedy: String,
}

/// "the target completed ~50k handshakes/s" over a second or more; over
/// less, the count and the time ("5 handshakes in 38 ms").
fn completed_handshakes(established: u64, elapsed_s: f64) -> String {
    if elapsed_s < 1.0 {
        return format!(
            "the target completed {} handshakes in {}",
            thousands(established),
            duration((elapsed_s * 1000.0).round() as u64)
        );
    }
    let rate = established as f64 / elapsed_s;
    let rate = if rate >= 10_000.0 {
        format!("{:.0}k", rate / 1000.0)
    } else {
        thousands(rate.round() as u64)
    };
    format!("the target completed ~{rate} handshakes/s")
}

fn is_held(syscall: Syscall) -> bool {
    matches!(syscall, Syscall::Read | Syscall::Write)
}

fn errno_text(errno: Option<i32>) -> String {
    match errno {
        Some(e) => errno_name(e).map_or_else(|| format!("errno {e}"), str::to_string),
        None => "no errno".into(),
    }
}

/// A limit or count; `RLIM_INFINITY` reads "unlimited", unknown "?".
fn limit(v: Option<u64>) -> String {
    match v {
        Some(u64::MAX) => "unlimited".into(),
        Some(v) => v.to_string(),
        None => "?".into(),
    }
}

fn or_q(s: &str) -> &str {
    if s.is_empty() { "?" } else { s }
}

/// "TcpExt.TCPAbortOnMemory" → "TCPAbortOnMemory".
fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

/// 120 → "120 ms", 2000 → "2 s", 1234 → "1.2 s".
fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Control characters escaped, cut at `max` chars: the message stays one
/// line whatever the server sent.
fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// "127.0.0.1", "127.0.0.1:50001" or "[::1]:7070" → the IP.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests;
