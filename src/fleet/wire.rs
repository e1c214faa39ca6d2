//! The join handshake of a fleet, as JSON lines over the agent's TCP
//! connection, before the worker protocol of [`crate::engine::procs`]
//! takes the same connection over.
//!
//! Agent → coordinator: [`ToCoordinator::Join`]; then a
//! [`ToCoordinator::Pong`] for each ping; then, at its start,
//! [`ToCoordinator::Started`] (or [`ToCoordinator::CannotStart`]), and from
//! there on `WorkerReport` lines.
//! Coordinator → agent: [`ToAgent::Welcome`] or [`ToAgent::Refused`];
//! pings; [`ToAgent::Go`] with its `WorkerSpec` and the start time in the
//! agent's own clock; from there on `ControlLine` lines (one a second at
//! least: the heartbeat).

use serde::{Deserialize, Serialize};

use std::net::SocketAddr;

use crate::engine::procs::WorkerSpec;
use crate::model::ResolvedTarget;

/// The handshake's version: raised whenever a message of this module or of
/// the worker protocol changes shape.
pub const PROTOCOL: u32 = 1;

/// What an agent says when it joins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Join {
    pub token: String,
    pub ceiling_version: String,
    pub protocol: u32,
    /// [`crate::stats::histogram_setting`]: histograms add only if equal.
    pub histogram: String,
    pub index: u64,
    /// The host count the agent was told, if it was.
    pub hosts: Option<u64>,
    pub name: String,
    /// The agent's own address on its connection to the coordinator (as
    /// its socket has it): another address seen at the coordinator means
    /// a NAT between them.
    #[serde(default)]
    pub own_address: Option<String>,
}

impl Join {
    /// This build's join for `index` of `hosts`, named `name`.
    pub fn new(token: String, index: u64, hosts: Option<u64>, name: String) -> Join {
        Join {
            token,
            ceiling_version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: PROTOCOL,
            histogram: crate::stats::histogram_setting(),
            index,
            hosts,
            name,
            own_address: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToCoordinator {
    Join(Join),
    /// The answer to ping `seq`: the agent's wall clock when it answered.
    Pong {
        seq: u32,
        agent_unix_ns: i64,
    },
    /// The agent's wall clock when its engine started, and what each
    /// target name resolved to on its host.
    Started {
        agent_unix_ns: i64,
        #[serde(default)]
        targets_resolved: Vec<ResolvedTarget>,
    },
    /// Instead of [`ToCoordinator::Started`]: the agent cannot run its
    /// share (its host has no room for it, its workers could not start).
    CannotStart {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAgent {
    /// Joined: wait for the others (at most `join_timeout_ms`, then pings
    /// and the start).
    Welcome {
        index: u64,
        hosts: u64,
        join_timeout_ms: u64,
    },
    /// Not joined, or the test will not start; the agent prints the reason
    /// and exits non-zero.
    Refused {
        reason: String,
    },
    Ping {
        seq: u32,
    },
    /// Start the spec's share at `start_at_unix_ns` of the agent's own
    /// clock.
    Go {
        spec: Box<WorkerSpec>,
        start_at_unix_ns: i64,
        /// The targets given by name: each agent resolves them again in
        /// its own network, in place of the coordinator's addresses.
        #[serde(default)]
        names: Vec<NamedTarget>,
    },
}

/// A target given by name, with what the coordinator resolved it to (the
/// addresses the spec's targets hold for it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedTarget {
    /// As given: `my-svc.my-ns.svc:8080`.
    pub name: String,
    pub host: String,
    /// Its ports, first and last.
    pub ports: (u16, u16),
    pub addresses: Vec<SocketAddr>,
}

/// Nanoseconds since the Unix epoch now (wall clock).
pub fn unix_ns_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Whether two tokens are equal, in time that does not depend on where
/// they differ (only on their lengths).
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cret", "s3creT"));
        assert!(!same_token("s3cret", "s3cre"));
        assert!(!same_token("", "x"));
    }

    #[test]
    fn messages_are_one_json_line_each_tagged_by_type() {
        let join = ToCoordinator::Join(Join::new("t".into(), 2, Some(3), "node".into()));
        let line = serde_json::to_string(&join).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"type":"join""#), "{line}");
        let back: ToCoordinator = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, ToCoordinator::Join(j) if j.index == 2 && j.hosts == Some(3)));
    }
}
