//! Reads the host values and kernel counters that explain a limit. STUB.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Host values and counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostState {
    /// Settings: sysctls, rlimits (read once).
    pub values: BTreeMap<String, serde_json::Value>,
    /// Kernel counters (netstat, snmp, sockstat), as read.
    pub counters: BTreeMap<String, u64>,
}

/// Reads everything (values and counters).
pub fn probe() -> HostState {
    unimplemented!()
}

/// Reads only the counters (cheaper than [`probe`]).
pub fn read_counters() -> BTreeMap<String, u64> {
    unimplemented!()
}

/// end - start for every counter present in both.
pub fn counter_deltas(start: &HostState, end: &HostState) -> BTreeMap<String, i64> {
    let _ = (start, end);
    unimplemented!()
}

/// ListenOverflows + ListenDrops of this network namespace, fast path.
pub fn listen_drop_count() -> Option<u64> {
    unimplemented!()
}

/// (soft, hard) RLIMIT_NOFILE.
pub fn nofile_limits() -> io::Result<(u64, u64)> {
    unimplemented!()
}

/// Sets the soft RLIMIT_NOFILE (keeps the hard one).
pub fn set_nofile_soft(soft: u64) -> io::Result<()> {
    let _ = soft;
    unimplemented!()
}

/// Ok when `ip` is an address of this host (bind test); the bind error
/// (EADDRNOTAVAIL) otherwise.
pub fn check_local_address(ip: IpAddr) -> io::Result<()> {
    let _ = ip;
    unimplemented!()
}

/// True when `addr`'s IP is loopback or an address of this host.
pub fn is_local_target(addr: SocketAddr) -> bool {
    let _ = addr;
    unimplemented!()
}

/// A listening socket's accept queue, from /proc/net/tcp{,6} LISTEN rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerQueue {
    /// Connections waiting in the accept queue.
    pub queued: u64,
    /// The listen backlog.
    pub backlog: u64,
}

/// The accept queue of the listener bound to `addr` on this host, if any.
pub fn listener_queue(addr: SocketAddr) -> Option<ListenerQueue> {
    let _ = addr;
    unimplemented!()
}
