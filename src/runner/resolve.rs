//! Target names → addresses, once, when a run starts (scenario parsing does
//! no I/O): with the system's resolver (getaddrinfo: /etc/hosts, then DNS),
//! in the network the run is in, so an agent of a fleet resolves a Service
//! name in its own.

use std::net::{IpAddr, ToSocketAddrs};

use crate::UsageError;
use crate::model::ResolvedTarget;
use crate::scenario::Scenario;

/// The scenario with every target name resolved (see
/// [`Scenario::with_resolved`]) and what each name resolved to. A name
/// that does not resolve is bad input (exit 2), named with the resolver's
/// answer, before anything is created.
pub fn resolve_targets(scenario: Scenario) -> anyhow::Result<(Scenario, Vec<ResolvedTarget>)> {
    let mut answers = Vec::new();
    for name in &scenario.target_names {
        let refuse = |why: String| {
            UsageError(format!(
                "target '{}': the name '{}' {why}; check the name (DNS, /etc/hosts), or give \
                 the target as an address, e.g. 127.0.0.1:{}",
                name.text, name.host, name.ports.lo
            ))
        };
        let addrs = (name.host.as_str(), name.ports.lo)
            .to_socket_addrs()
            .map_err(|e| refuse(format!("does not resolve: {e}")))?;
        let mut ips: Vec<IpAddr> = Vec::new();
        for addr in addrs {
            if !ips.contains(&addr.ip()) {
                ips.push(addr.ip());
            }
        }
        if ips.is_empty() {
            return Err(refuse("resolves to no address".into()).into());
        }
        answers.push(ips);
    }
    let (scenario, resolved) = scenario.with_resolved(&answers)?;
    for target in &resolved {
        eprintln!(
            "ceiling: target {} resolved to {}",
            target.name,
            target.addresses.join(", ")
        );
    }
    Ok((scenario, resolved))
}
