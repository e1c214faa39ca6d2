//! Plain data shared by every module: the kinds of limit ceiling can name,
//! the raw failure events the engine reports, and the `Summary` written to
//! `summary.json`.
//!
//! Nothing here imports from the rest of the crate, so every other module can
//! depend on it without creating cycles.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Version of the `summary.json` layout; bump on any incompatible change and
/// keep `src/sink/summary.schema.json` in step.
pub const SCHEMA_VERSION: u32 = 2;

/// What a failed attempt (or a held connection's end) says about the limit
/// that was hit. See DESIGN.md, "Limit classification".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    PortExhaustion,
    SourceAddressInvalid,
    FdLimitProcess,
    FdLimitSystem,
    KernelMemory,
    BacklogOverflow,
    ServerClosed,
    ConntrackFull,
    ConnectTimeout,
    PortSearchSlow,
    Refused,
    Reset,
    Unreachable,
    Other,
    LostWithWorker,
    /// The target's CPU: no connection failed, but connects slowed or fell
    /// short of the rate while the target's processes were at their CPU
    /// quota (or every core they may use). A finding about the run, never
    /// a failure event: not in [`LimitKind::ALL`], no failure column.
    ServerCpu,
}

impl LimitKind {
    /// Every kind a failure event can have, in the order used for columns
    /// and tables ([`LimitKind::ServerCpu`] is a first limit only).
    pub const ALL: [LimitKind; 15] = [
        LimitKind::PortExhaustion,
        LimitKind::SourceAddressInvalid,
        LimitKind::FdLimitProcess,
        LimitKind::FdLimitSystem,
        LimitKind::KernelMemory,
        LimitKind::BacklogOverflow,
        LimitKind::ServerClosed,
        LimitKind::ConntrackFull,
        LimitKind::ConnectTimeout,
        LimitKind::PortSearchSlow,
        LimitKind::Refused,
        LimitKind::Reset,
        LimitKind::Unreachable,
        LimitKind::Other,
        LimitKind::LostWithWorker,
    ];

    /// Position in [`LimitKind::ALL`], for per-kind counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in files and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::PortExhaustion => "port_exhaustion",
            LimitKind::SourceAddressInvalid => "source_address_invalid",
            LimitKind::FdLimitProcess => "fd_limit_process",
            LimitKind::FdLimitSystem => "fd_limit_system",
            LimitKind::KernelMemory => "kernel_memory",
            LimitKind::BacklogOverflow => "backlog_overflow",
            LimitKind::ServerClosed => "server_closed",
            LimitKind::ConntrackFull => "conntrack_full",
            LimitKind::ConnectTimeout => "connect_timeout",
            LimitKind::PortSearchSlow => "port_search_slow",
            LimitKind::Refused => "refused",
            LimitKind::Reset => "reset",
            LimitKind::Unreachable => "unreachable",
            LimitKind::Other => "other",
            LimitKind::LostWithWorker => "lost_with_worker",
            LimitKind::ServerCpu => "server_cpu",
        }
    }

    /// True for kinds that are a capacity limit: the candidates for
    /// `first_limit`. Config errors, refusals and warnings are not.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            LimitKind::PortExhaustion
                | LimitKind::FdLimitProcess
                | LimitKind::FdLimitSystem
                | LimitKind::KernelMemory
                | LimitKind::BacklogOverflow
                | LimitKind::ServerClosed
                | LimitKind::ConntrackFull
                | LimitKind::ConnectTimeout
                | LimitKind::ServerCpu
        )
    }

    /// A plain-words name for summaries and banners.
    pub fn describe(self) -> &'static str {
        match self {
            LimitKind::PortExhaustion => "ephemeral ports exhausted",
            LimitKind::SourceAddressInvalid => "source address is not local",
            LimitKind::FdLimitProcess => "per-process fd limit (RLIMIT_NOFILE)",
            LimitKind::FdLimitSystem => "system-wide file limit (fs.file-max)",
            LimitKind::KernelMemory => "kernel memory",
            LimitKind::BacklogOverflow => "listen backlog overflow",
            LimitKind::ServerClosed => "target closed established connections",
            LimitKind::ConntrackFull => "conntrack table full",
            LimitKind::ConnectTimeout => "connect timed out",
            LimitKind::PortSearchSlow => "connect() slow: kernel port search",
            LimitKind::Refused => "connection refused",
            LimitKind::Reset => "connection reset",
            LimitKind::Unreachable => "host or network unreachable",
            LimitKind::Other => "other error",
            LimitKind::LostWithWorker => "lost with a worker process that died",
            LimitKind::ServerCpu => "the target's CPU",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation that failed. `Timeout` is ceiling's own connect timeout;
/// `Read`/`Write` are on an established, held connection; `WorkerExit` is a
/// worker process that ended before its share of the run was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Syscall {
    Socket,
    Setsockopt,
    Bind,
    Connect,
    Timeout,
    Read,
    Write,
    WorkerExit,
}

impl Syscall {
    pub fn as_str(self) -> &'static str {
        match self {
            Syscall::Socket => "socket",
            Syscall::Setsockopt => "setsockopt",
            Syscall::Bind => "bind",
            Syscall::Connect => "connect",
            Syscall::Timeout => "timeout",
            Syscall::Read => "read",
            Syscall::Write => "write",
            Syscall::WorkerExit => "worker_exit",
        }
    }
}

impl fmt::Display for Syscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a held connection ended when the server ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerClose {
    /// Orderly close: read() returned 0.
    Eof,
    /// ECONNRESET / EPIPE on an established connection.
    Rst,
}

/// Facts about one failed attempt, as the engine saw them, before any host
/// evidence is attached. Small and `Clone`: only the first event of each
/// group is kept, never one per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureEvent {
    pub kind: LimitKind,
    pub syscall: Syscall,
    /// errno, when the failure came with one (a ceiling timeout has none).
    pub errno: Option<i32>,
    /// 1-based attempt number of the connection concerned.
    pub attempt: u64,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Connections held (established, not yet closed) at that moment, in the
    /// worker that saw it; the aggregator replaces it with the run-wide count
    /// when it knows better.
    pub active: u64,
    pub source: String,
    pub target: String,
    /// For a held connection ended by the server: EOF or RST.
    pub peer_close: Option<PeerClose>,
    /// For a held connection: its age at close, in milliseconds.
    pub age_ms: Option<u64>,
    /// The first bytes the server sent before closing, printable.
    pub server_bytes: Option<String>,
    /// SYN retransmissions seen on the socket (TCP_INFO), where read.
    pub syn_retransmits: Option<u32>,
}

#[cfg(test)]
impl FailureEvent {
    /// A connect() failure from 127.0.0.1 to 127.0.0.1:7070, for tests;
    /// change the fields a test is about with struct update syntax.
    pub fn example(kind: LimitKind, attempt: u64, elapsed_s: f64, active: u64) -> FailureEvent {
        FailureEvent {
            kind,
            syscall: Syscall::Connect,
            errno: Some(libc::EADDRNOTAVAIL),
            attempt,
            elapsed_s,
            active,
            source: "127.0.0.1".into(),
            target: "127.0.0.1:7070".into(),
            peer_close: None,
            age_ms: None,
            server_bytes: None,
            syn_retransmits: None,
        }
    }
}

/// Why the first limit happened, for people and for scripts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// One line a person reads.
    pub message: String,
    /// Named facts: host values, counter deltas, socket observations.
    pub facts: BTreeMap<String, serde_json::Value>,
}

/// The first failure that was a capacity limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstLimit {
    pub kind: LimitKind,
    pub errno: Option<i32>,
    /// Symbolic errno name, e.g. "EADDRNOTAVAIL".
    pub errno_name: Option<String>,
    pub syscall: Syscall,
    pub at_attempt: u64,
    pub at_elapsed_s: f64,
    pub active_at: u64,
    pub source: String,
    pub target: String,
    /// The fleet's host that hit it: "host 3 (node-7)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub evidence: Evidence,
    pub remedy: String,
}

/// A failure group: one row of `failures.csv` and one entry of
/// `summary.json`'s `failures`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    pub kind: LimitKind,
    pub syscall: Syscall,
    pub errno: Option<i32>,
    pub errno_name: Option<String>,
    pub count: u64,
    pub first_attempt: u64,
    pub first_elapsed_s: f64,
    pub last_elapsed_s: f64,
    /// Source and target of the first failure of the group.
    pub source: String,
    pub target: String,
}

/// Latency percentiles of one metric, in microseconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Counts over the whole run. One set of definitions, which every summary
/// satisfies (the test suite checks them on every results directory):
///
/// - `attempted = established + connect_failed + unfinished`
/// - `established = closed_by_driver + closed_by_server + lost_with_worker
///   + held_at_end`
/// - `attempted + never_attempted` = the connections planned
/// - `peak_active` ≥ every active count reported anywhere in the run (the
///   first limit's `active_at`, every time series row, every source's and
///   worker's figure).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Attempts started (a socket was asked for).
    pub attempted: u64,
    /// Attempts whose handshake completed.
    pub established: u64,
    /// Attempts that ended without a connection (refused, timed out, no
    /// port, no fd, under way in a worker process that died, ...).
    /// Before schema 2 this was `failed` and also counted the closes below.
    #[serde(alias = "failed")]
    pub connect_failed: u64,
    /// Attempts neither established nor failed when the run was stopped.
    #[serde(default)]
    pub unfinished: u64,
    /// Planned attempts never started (the run was stopped, or their
    /// worker process died first).
    #[serde(default)]
    pub never_attempted: u64,
    /// Most connections held at once, tracked where the count changes.
    pub peak_active: u64,
    /// Held connections closed by ceiling (hold ended, run ended).
    pub closed_by_driver: u64,
    /// Held connections the target closed first (EOF or RST).
    pub closed_by_server: u64,
    /// Held connections lost with a worker process that died (the kernel
    /// closed them with the process).
    #[serde(default)]
    pub lost_with_worker: u64,
    /// Connections still held when the summary was made.
    #[serde(default)]
    pub held_at_end: u64,
    /// Seconds from the start to the last connection established (0 when
    /// none was): how long it took to get them all up.
    pub last_established_s: f64,
}

/// Why a run in which nothing connected got nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NothingConnectedCause {
    /// Every attempt was refused (ECONNREFUSED): nothing listens there.
    Refused,
    /// Every attempt timed out or was unreachable: the path is blocked.
    Blocked,
    /// The attempts failed in other ways (or in several).
    Failed,
    /// The run was stopped before any handshake finished.
    Unfinished,
}

/// A run that attempted connections and established none: not a limit
/// found but a target that is not there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NothingConnected {
    pub cause: NothingConnectedCause,
    /// What a person reads, with the targets and the counts.
    pub message: String,
}

/// Slow connect() calls a second must have before it counts as a stall.
pub const STALL_MIN_SLOW_CALLS: u64 = 10;

/// Signals that are not failures but explain a slowdown.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Warnings {
    /// connect() calls whose own CPU time passed the threshold: the kernel
    /// searching a nearly full port space.
    pub port_search_slow: u64,
    /// Seconds in which most connect() calls (and at least
    /// [`STALL_MIN_SLOW_CALLS`]) were slow: a sustained port search stall,
    /// unlike an isolated slow call, which the noise of a busy host explains.
    pub port_search_stall_seconds: u64,
    /// Longest connect() call whose CPU time was measured (those after a
    /// call took 1 ms of wall time), CPU microseconds.
    pub connect_syscall_max_us: u64,
    /// Handshakes that needed at least one SYN retransmission (TCP_INFO):
    /// the client-side signature of a dropped SYN.
    pub syn_retransmit_handshakes: u64,
    /// Echo requests that got no reply within the interval.
    pub echo_unanswered: u64,
    /// Connections whose first echo request got no reply within the
    /// interval: the signature of a server that accepts but queues (a
    /// bounded pool) — they are served, if at all, only when a slot frees.
    pub echo_silent_connections: u64,
    /// The lowest attempt number among them.
    pub echo_silent_first_attempt: Option<u64>,
    /// ceiling's own CPU held the rate down (None: it did not, or it was
    /// not measured).
    #[serde(default)]
    pub generator_bottleneck: Option<GeneratorBottleneck>,
}

/// Seconds in which attempts (in request mode, requests sent) ran
/// below the target rate while ceiling's own processes used (nearly) all
/// the CPU they may: the generator, not the target, set the pace, and its
/// latency figures include its own delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorBottleneck {
    pub seconds: u64,
    /// Mean cores ceiling's processes used in those seconds.
    pub cores_used: f64,
    /// Cores they may use: the CPUs, its cgroup's quota, its worker threads.
    pub cores_available: f64,
    /// Attempts started over attempts scheduled (in request mode, requests
    /// sent over requests asked), in those seconds.
    pub achieved_ratio: f64,
    /// The same in words, with the remedy.
    pub message: String,
}

/// Per source IP, one row of `sources.csv`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SourceSummary {
    pub source: String,
    pub attempted: u64,
    pub established: u64,
    /// Attempts from this source that never established (connect
    /// failures, as `totals.connect_failed`).
    pub failed: u64,
    /// Most connections from this source held at once (ports in use), as
    /// sampled every tick.
    pub peak_ports_in_use: u64,
}

/// Host values and counters ceiling read, so a reader of the results knows
/// the box the numbers came from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostReport {
    /// Values read once at start: rlimits, sysctls.
    pub values: BTreeMap<String, serde_json::Value>,
    /// Kernel counters (netstat/snmp), change over the run.
    pub counter_deltas: BTreeMap<String, i64>,
}

/// Five points of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Spread {
    pub min: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub max: u64,
}

/// How the target's closes of held connections were spread: by the
/// connection's age at close, by how many others were held then, and by
/// when they came. One count points to a connection cap, one age to an idle
/// timeout, one moment (ages differing) to a shutdown or restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClosePattern {
    pub closes: u64,
    /// Age of the connection when the target closed it, ms.
    pub age_ms: Spread,
    /// Other connections held when it was closed.
    pub others_held: Spread,
    /// Milliseconds from the run's start to the first close.
    pub first_at_ms: u64,
    /// Milliseconds from the run's start to the last close.
    pub last_at_ms: u64,
}

/// Everything `summary.json` holds. Field names are the results contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub ceiling_version: String,
    pub scenario: serde_json::Value,
    pub started_at: String,
    pub duration_s: f64,
    pub aborted: bool,
    pub totals: Totals,
    /// Set when connections were attempted and none was established: the
    /// run found no limit because nothing accepted (exit status 3).
    #[serde(default)]
    pub nothing_connected: Option<NothingConnected>,
    pub first_limit: Option<FirstLimit>,
    pub failures_by_kind: BTreeMap<String, u64>,
    pub failures: Vec<FailureGroup>,
    pub warnings: Warnings,
    /// Keyed by metric: `connect_us`, `rtt_us` in echo mode, and
    /// `queue_us`, `service_us`, `total_us` in request mode.
    pub latency: BTreeMap<String, Percentiles>,
    /// Request mode only: what became of the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestsSummary>,
    pub sources: Vec<SourceSummary>,
    pub host: HostReport,
    /// `ceiling lab` only: the namespace's settings as read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabReport>,
    pub workers: WorkersReport,
    pub safety: Safety,
    /// The targets given by host name and the addresses each resolved to
    /// when the run started (absent when every target was an address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets_resolved: Vec<ResolvedTarget>,
    /// `ceiling merge` only: the runs merged into this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeReport>,
    /// A fleet run only (`run --fleet N`): each host's share and figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetReport>,
}

/// A target given by host name and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedTarget {
    /// As given: `localhost:7070`.
    pub name: String,
    /// Every address and port it became a target as, e.g. `127.0.0.1:7070`.
    pub addresses: Vec<String>,
}

/// The runs a merged results directory was made from (`ceiling merge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeReport {
    pub inputs: Vec<MergedRun>,
    /// The directory of the input the first limit came from: the earliest
    /// first limit by UTC.
    pub first_limit_from: Option<String>,
}

/// One run of a merge, as its own summary had it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedRun {
    /// Its results directory, as given.
    pub dir: String,
    pub name: String,
    /// RFC 3339 UTC, to the millisecond.
    pub started_at: String,
    /// Seconds after the merged run's start (the earliest input's).
    pub start_offset_s: f64,
    pub duration_s: f64,
    pub totals: Totals,
    /// Its first limit's kind, if it hit one.
    pub first_limit: Option<LimitKind>,
}

/// A fleet run's hosts: what each did, and how together they started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    /// One per agent, by index.
    pub hosts: Vec<FleetHost>,
    /// Latest actual start minus the earliest, in the coordinator's clock
    /// (each agent's clock corrected by its measured offset); None when
    /// fewer than two hosts said when they started.
    pub start_skew_ms: Option<f64>,
    /// What the hosts' addresses tell: hosts seen from one address (they
    /// share its ports and conntrack table), hosts behind a NAT.
    #[serde(default)]
    pub address_notes: Vec<String>,
}

/// One agent of a fleet run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetHost {
    /// Its index, 0-based: its segment is attempts with index % hosts == index.
    pub index: u64,
    /// The name it gave (--name, or its host name).
    pub name: String,
    /// The address it joined from, as the coordinator sees it.
    pub address: String,
    /// Its own address on that connection; another than `address` means a
    /// NAT between it and the coordinator (None from an agent that did not
    /// say).
    #[serde(default)]
    pub own_address: Option<String>,
    /// What the target names resolved to on its host (each agent resolves
    /// them in its own network); absent when every target was an address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets_resolved: Vec<ResolvedTarget>,
    /// Its share of the plan: "offset+stride" of the attempt indexes.
    pub segment: String,
    /// Its own totals; the run's totals are their sums (but `peak_active`,
    /// its own peak).
    pub totals: Totals,
    /// The first limit it hit, with the connections it held itself then.
    pub first_limit: Option<HostLimit>,
    /// When it actually started, after the start the coordinator set, in
    /// ms (corrected by its clock offset); None if it never said.
    pub start_offset_ms: Option<f64>,
    /// Its clock minus the coordinator's, measured by the join's pings.
    pub clock_offset_ms: f64,
    /// The shortest ping round trip, the one the offset is from.
    pub rtt_ms: f64,
    /// What it measured itself: `connect_us`, and `total_us` in request
    /// mode (the run's `latency` holds every host's at once); absent when
    /// it measured nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, Percentiles>,
}

/// A host's first limit, short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLimit {
    pub kind: LimitKind,
    pub syscall: Syscall,
    pub errno: Option<i32>,
    pub errno_name: Option<String>,
    pub at_attempt: u64,
    pub at_elapsed_s: f64,
    /// Connections the host itself held then.
    pub held: u64,
}

impl HostLimit {
    pub fn from_event(event: &FailureEvent) -> HostLimit {
        HostLimit {
            kind: event.kind,
            syscall: event.syscall,
            errno: event.errno,
            errno_name: event.errno.and_then(errno_name).map(str::to_string),
            at_attempt: event.attempt,
            at_elapsed_s: event.elapsed_s,
            held: event.active,
        }
    }

    /// "port_exhaustion EADDRNOTAVAIL at 61,204 held".
    pub fn describe(&self) -> String {
        let errno = match (&self.errno_name, self.errno) {
            (Some(name), _) => format!(" {name}"),
            (None, Some(errno)) => format!(" errno {errno}"),
            (None, None) => String::new(),
        };
        format!("{}{errno} at {} held", self.kind, thousands(self.held))
    }
}

/// How a request sent in request mode ended without a good response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestErrorKind {
    /// The server answered with an error: RESP `-ERR`, HTTP 4xx/5xx, an
    /// `ERROR`/`busy` line.
    ErrorReply,
    /// The bytes back were not a response of the protocol.
    Malformed,
    /// The server closed (or reset) the connection with the request in
    /// flight.
    Closed,
}

impl RequestErrorKind {
    pub const ALL: [RequestErrorKind; 3] = [
        RequestErrorKind::ErrorReply,
        RequestErrorKind::Malformed,
        RequestErrorKind::Closed,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RequestErrorKind::ErrorReply => "error_reply",
            RequestErrorKind::Malformed => "malformed",
            RequestErrorKind::Closed => "closed",
        }
    }
}

/// `summary.json`'s `requests` object. Every request is counted where it
/// ended: `scheduled = sent + rejects + queued_at_end`, `sent = responses
/// + sum(errors) + in_flight_at_end`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RequestsSummary {
    /// Requests due by the rate (open loop), or started (closed loop).
    pub scheduled: u64,
    pub sent: u64,
    /// Whole responses that were not errors.
    pub responses: u64,
    /// Keyed by [`RequestErrorKind`].
    pub errors: BTreeMap<String, u64>,
    /// The first distinct error replies, as the server wrote them.
    pub error_texts: Vec<String>,
    /// Requests never sent: no free connection and `--when-pool-busy
    /// reject`, the queue full, or a wait over `--queue-timeout`.
    pub rejects: u64,
    /// Connections reopened after the server closed one it had kept alive.
    pub reconnects: u64,
    pub queued_at_end: u64,
    pub in_flight_at_end: u64,
    /// HTTP status classes (`1xx` .. `5xx`) of the responses and error
    /// replies.
    pub status: BTreeMap<String, u64>,
}

/// The host-room check: what the run was planned to take, and why it was
/// stopped early if the host ran low.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Safety {
    /// What was checked before the run (estimated sockets, kernel memory
    /// and files against MemAvailable and fs.file-max).
    pub plan: String,
    /// Why the run was stopped to leave the host usable, if it was.
    pub stopped: Option<String>,
}

/// How the run's workers were laid out, and the worker processes that died.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WorkersReport {
    /// Worker processes; 0 when the workers ran as threads of ceiling's own
    /// process.
    pub processes: u64,
    /// Worker threads per process.
    pub threads_per_process: u64,
    /// Why `processes` was chosen (e.g. "auto: 60,000 connections need 4
    /// processes under the hard fd limit of 20,000").
    pub reason: String,
    pub deaths: Vec<WorkerDeath>,
}

/// A worker process that ended before its share of the run was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerDeath {
    /// Its number, 0-based; its segment is attempts with index % processes == worker.
    pub worker: u64,
    /// The host it ran on, when the worker was a fleet's agent: "host 2
    /// (node-7, 10.1.0.7:41234)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub pid: Option<u32>,
    /// "killed by signal 9 (SIGKILL)", "exit status 1", "could not start: ...".
    pub how: String,
    pub signal: Option<i32>,
    pub exit_code: Option<i32>,
    pub at_elapsed_s: f64,
    /// Connections it held when it died (the kernel closed them): in
    /// `totals.lost_with_worker`.
    pub held: u64,
    /// Its attempts that were under way (counted as failed).
    pub in_flight: u64,
    /// Its attempts never started.
    pub not_attempted: u64,
    /// The memory cgroup's OOM kills during the run, when the workers ran
    /// in one.
    pub oom_kills: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// The last lines it wrote to stderr.
    pub stderr_tail: String,
}

/// What `ceiling lab` set up for the run, as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabReport {
    /// How the namespace was made and when it goes away.
    pub namespace: String,
    /// Each sysctl written in the namespace → its value read back there.
    pub sysctls: BTreeMap<String, String>,
    pub server: LabServerReport,
    /// The memory cgroup, when `memory_limit` was given.
    pub memory_cgroup: Option<LabCgroupReport>,
}

/// The built-in target server of a lab: a child `ceiling serve` process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabServerReport {
    pub listen: Vec<String>,
    pub backlog: u32,
    pub accept: bool,
    pub mode: String,
    pub pid: u32,
    /// `async` or `threads` (one thread per connection).
    #[serde(default)]
    pub model: String,
    /// pids.max of its pids cgroup (`[lab] server_threads_max`).
    #[serde(default)]
    pub threads_max: Option<u64>,
    /// Its CPU quota in cores (`[lab] server_cpus`).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Its cgroups' directories (removed at exit).
    #[serde(default)]
    pub cgroups: Vec<String>,
    /// What it used over the run, read from /proc (None: never read).
    #[serde(default)]
    pub figures: Option<LabServerFigures>,
}

/// The lab server's threads, memory and CPU over a run (all its
/// processes): the figures that put numbers on C10K.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabServerFigures {
    /// Most threads at once.
    pub peak_threads: u64,
    /// RSS when first read, before the first connection.
    pub rss_kib_at_start: u64,
    pub peak_rss_kib: u64,
    /// (peak RSS − RSS at start) / the run's peak active connections.
    pub rss_bytes_per_connection: Option<u64>,
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// Thread or process starts its pids cgroup refused (pids.events max).
    pub pids_refused: Option<u64>,
    /// Periods in which its CPU quota throttled it, and for how long.
    pub cpu_throttled_periods: Option<u64>,
    pub cpu_throttled_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabCgroupReport {
    pub path: String,
    pub limit_bytes: u64,
    /// OOM kills in the cgroup over the run (None: not counted here).
    pub oom_kills: Option<u64>,
    /// PIDs that were put in it (empty until the driver runs workers as
    /// processes).
    pub members: Vec<u32>,
}

/// `28232` as `28,232`: counts people read, on screen and in summaries.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The name of a signal that ends processes, e.g. `SIGKILL`.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

/// The symbolic name of an errno, e.g. `EADDRNOTAVAIL`, for the errnos that
/// matter to connection limits; `None` for others (the number is kept).
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::EPIPE => "EPIPE",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_match_serde() {
        let json = serde_json::to_string(&LimitKind::ServerCpu).unwrap();
        assert_eq!(json, "\"server_cpu\"");
        for kind in LimitKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(LimitKind::ALL[kind.index()], kind);
        }
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn config_errors_and_refusals_are_not_limits() {
        assert!(!LimitKind::SourceAddressInvalid.is_limit());
        assert!(!LimitKind::Refused.is_limit());
        assert!(!LimitKind::PortSearchSlow.is_limit());
        assert!(LimitKind::PortExhaustion.is_limit());
        assert!(LimitKind::ServerClosed.is_limit());
    }
}
