//! A fleet: one test from many hosts, merged live and exactly
//! (DESIGN.md, "Hosts are one more level of the same merge").
//!
//! The coordinator (`ceiling run --fleet N`) is a run whose workers are
//! agents: it waits for N agents to join over TCP (token, version and
//! histogram setting checked), measures each one's clock offset with a few
//! pings, sets one start time, and hands each agent its segment `k` of `N`
//! of the plan. From there each agent connection carries the worker
//! protocol of [`crate::engine::procs`] (the spec, control lines, reports),
//! relayed into the engine as a worker process's pipes are: the engine
//! cannot tell an agent from a worker process. An agent (`ceiling agent`)
//! runs its segment as `run --processes auto` would, split again over its
//! own worker processes or threads.
//!
//! - [`wire`]: the join handshake's messages; the token comparison.
//! - [`coordinator`]: listen, gather (the barrier), clocks, the relays,
//!   the per-host books.
//! - [`agent`]: join, wait for the start, run the segment, report.
//! - [`render`]: the Kubernetes manifests and Slurm script that start a
//!   fleet on a cluster engine.

pub mod agent;
pub mod coordinator;
pub mod render;
pub mod wire;

use std::time::Duration;

/// How often the coordinator sends its controls to an agent when they did
/// not change: the agent's sign that the coordinator is there.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Silence after which either side counts the other as lost: a few
/// heartbeats (or reports) missed.
pub const SILENCE: Duration = Duration::from_secs(3);

/// How often an agent reports (the coordinator's tick).
pub const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Longest wait for an agent's first line before its connection is
/// dropped.
const JOIN_LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pings per agent for its clock offset; the one with the shortest round
/// trip counts.
const PINGS: u32 = 5;

/// The start is set this long after the pings, plus twice the longest
/// round trip, so that every agent has its start time before it comes.
const START_LEAD: Duration = Duration::from_millis(250);

/// Where the coordinator listens when --fleet-listen is not given:
/// loopback, so that nobody else joins unless told to.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7979";

/// How long the coordinator waits for every agent by default.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Most hosts in a fleet.
const MAX_HOSTS: u64 = 10_000;

/// `--fleet N` / `agent --hosts N`: 1 to [`MAX_HOSTS`].
pub fn parse_hosts(text: &str) -> Result<u64, String> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(n) if (1..=MAX_HOSTS).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{text}' is not a host count: a fleet takes 1 to {MAX_HOSTS} agents (and at most \
             one per connection), e.g. --fleet 4"
        )),
    }
}

/// `--index K`: 0 or more (the coordinator checks it against its N).
pub fn parse_index(text: &str) -> Result<u64, String> {
    let text = text.trim();
    text.parse::<u64>().map_err(|_| {
        format!("'{text}' is not a host index: use 0 to N-1 for a fleet of N hosts, e.g. --index 0")
    })
}

/// `--fleet-listen ADDR:PORT`.
pub fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    text.parse().map_err(|_| {
        format!(
            "'{text}' is not an ADDR:PORT to listen on: use an IP address and a port, e.g. \
             {DEFAULT_LISTEN} (loopback), 0.0.0.0:7979 (every interface) or [::]:7979"
        )
    })
}

/// `agent --join ADDR:PORT`: an IP address or a host name, and a port
/// (resolved when the agent starts).
pub fn parse_join(text: &str) -> Result<String, String> {
    let text = text.trim();
    let refuse = || {
        format!(
            "'{text}' is not the coordinator's ADDR:PORT: use an address or a host name and its \
             port, e.g. 10.1.0.2:7979, [fd00::2]:7979 or ceiling-coordinator.my-ns.svc:7979"
        )
    };
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_string());
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(refuse)?;
    let name_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    match port.parse::<u16>() {
        Ok(port) if port > 0 && name_ok => Ok(text.to_string()),
        _ => Err(refuse()),
    }
}

/// `--fleet-join-timeout`: 1s to 1h (as `ceiling fleet --join-timeout`).
pub fn parse_join_timeout(text: &str) -> Result<Duration, String> {
    let d = crate::scenario::units::parse_duration(text)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(format!(
            "'{}' is out of range: --fleet-join-timeout takes 1s to 1h, e.g. 60s",
            text.trim()
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_address_may_be_a_name_but_needs_a_port() {
        assert!(parse_join("127.0.0.1:7979").is_ok());
        assert!(parse_join("[::1]:7979").is_ok());
        assert!(parse_join("ceiling-coordinator.ns.svc:7979").is_ok());
        for bad in [
            "",
            "127.0.0.1",
            "host:",
            "host:0",
            ":7979",
            "a b:1",
            "host:99999",
        ] {
            let e = parse_join(bad).unwrap_err();
            assert!(e.contains("ADDR:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_fleet_has_one_host_or_more() {
        assert_eq!(parse_hosts("3"), Ok(3));
        assert!(
            parse_hosts("0")
                .unwrap_err()
                .contains("'0' is not a host count")
        );
        assert!(parse_hosts("-1").is_err());
        assert!(parse_listen("localhost:7979").is_err());
        assert!(parse_listen("0.0.0.0:7979").is_ok());
    }
}
