//! Names the limit behind a failure from what the kernel said: (syscall,
//! errno, context) → [`LimitKind`], and the first limit's evidence and
//! remedy. STUB: being written.

pub mod host;

use std::io;

use crate::model::{Evidence, FailureEvent, LimitKind, Syscall};

/// What the engine knew about the attempt when it failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptContext {
    /// The socket was bound to an explicit source IP.
    pub source_bound: bool,
    /// The socket was bound to an explicit source port (--source-ports).
    pub explicit_source_port: bool,
    /// IP_BIND_ADDRESS_NO_PORT was set before bind(ip, 0).
    pub no_port_bind: bool,
    /// The connection had been established (a held connection's read/write).
    pub established: bool,
    /// The target address is on this host, so its listen counters are ours.
    pub target_local: bool,
    /// Whether ListenOverflows/ListenDrops moved since the run started;
    /// None when they cannot be read.
    pub listen_overflows_moved: Option<bool>,
    /// Age of the connection when it ended, ms (held connections only).
    pub age_ms: Option<u64>,
}

/// The kind of a failure from the syscall, its errno (None for ceiling's own
/// timeout or an EOF) and the context.
pub fn classify(syscall: Syscall, errno: Option<i32>, ctx: &AttemptContext) -> LimitKind {
    let _ = (syscall, errno, ctx);
    unimplemented!()
}

/// [`classify`] for an `io::Error` (its raw errno).
pub fn classify_io(syscall: Syscall, err: &io::Error, ctx: &AttemptContext) -> LimitKind {
    classify(syscall, err.raw_os_error(), ctx)
}

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
}

/// Evidence (one line + facts) and a one-line remedy for the first limit.
pub fn explain(
    event: &FailureEvent,
    start: &host::HostState,
    end: &host::HostState,
    facts: &RunFacts,
) -> (Evidence, String) {
    let _ = (event, start, end, facts);
    unimplemented!()
}
