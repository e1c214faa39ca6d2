//! The plan: which (source IP, source port, target) each attempt uses, and
//! how the attempts split into segments for workers.
//!
//! Attempt `i` (0-based, in the order the rate profile starts them) uses
//! combination `i % C` of the C (source, target) pairs whose address
//! families match, sources varying fastest. With explicit source ports,
//! round `i / C` of a pair uses port `lo + round % ports`.

use std::net::{IpAddr, SocketAddr};

use crate::scenario::units::PortRange;

/// Where one attempt goes from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Index into [`Plan::sources`], when sources were given.
    pub source_index: Option<usize>,
    /// Address to bind: an explicit IP, an explicit port, or both. None
    /// leaves both to the kernel.
    pub bind: Option<SocketAddr>,
    pub target_index: usize,
    pub target: SocketAddr,
}

/// (source, target) pairs of one address family.
#[derive(Debug, Clone, Default)]
struct FamilyPairs {
    /// Indexes into the plan's sources; empty when none were given.
    sources: Vec<usize>,
    targets: Vec<usize>,
}

impl FamilyPairs {
    fn len(&self) -> u64 {
        self.sources.len().max(1) as u64 * self.targets.len() as u64
    }
}

/// The expanded address plan of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sources: Vec<IpAddr>,
    pub targets: Vec<SocketAddr>,
    pub source_ports: Option<PortRange>,
    pub connections: u64,
    v4: FamilyPairs,
    v6: FamilyPairs,
}

impl Plan {
    /// Builds the plan. Targets must be non-empty; every target must have a
    /// source of its family when sources are given (checked by the scenario).
    pub fn new(
        sources: Vec<IpAddr>,
        targets: Vec<SocketAddr>,
        source_ports: Option<PortRange>,
        connections: u64,
    ) -> Plan {
        assert!(!targets.is_empty(), "a plan needs a target");
        let family = |v4: bool| FamilyPairs {
            sources: (0..sources.len())
                .filter(|&i| sources[i].is_ipv4() == v4)
                .collect(),
            targets: (0..targets.len())
                .filter(|&i| targets[i].is_ipv4() == v4)
                .collect(),
        };
        let (mut v4, mut v6) = (family(true), family(false));
        // A family with targets but, when sources exist, none of its own has
        // no pairs (the scenario refuses that; keep the plan consistent).
        for pairs in [&mut v4, &mut v6] {
            if !sources.is_empty() && pairs.sources.is_empty() {
                pairs.targets.clear();
            }
        }
        Plan {
            sources,
            targets,
            source_ports,
            connections,
            v4,
            v6,
        }
    }

    /// Number of (source, target) pairs attempts cycle through.
    pub fn pair_count(&self) -> u64 {
        self.v4.len() + self.v6.len()
    }

    /// The endpoint of attempt `index` (0-based).
    pub fn endpoint(&self, index: u64) -> Endpoint {
        let pairs = self.pair_count();
        let (pair, round) = (index % pairs, index / pairs);
        let (family, pair) = if pair < self.v4.len() {
            (&self.v4, pair)
        } else {
            (&self.v6, pair - self.v4.len())
        };
        let source_slots = family.sources.len().max(1) as u64;
        let source_index = family.sources.get((pair % source_slots) as usize).copied();
        let target_index = family.targets[(pair / source_slots) as usize];
        let target = self.targets[target_index];
        let port = self
            .source_ports
            .map(|range| range.lo + (round % u64::from(range.len())) as u16);
        let ip = source_index.map(|i| self.sources[i]);
        let bind = match (ip, port) {
            (None, None) => None,
            (ip, port) => {
                let unspecified = if target.is_ipv4() {
                    IpAddr::from([0u8; 4])
                } else {
                    IpAddr::from([0u16; 8])
                };
                Some(SocketAddr::new(
                    ip.unwrap_or(unspecified),
                    port.unwrap_or(0),
                ))
            }
        };
        Endpoint {
            source_index,
            bind,
            target_index,
            target,
        }
    }

    /// Segment `k` of `n`: every n-th attempt starting at k. Shares differ
    /// by at most one, the larger ones going to the lowest segments, and
    /// together they cover every attempt exactly once.
    pub fn segment(&self, k: u64, n: u64) -> Segment {
        Segment::WHOLE.split(k, n)
    }
}

/// A share of a plan's attempts: those with `index % stride == offset`.
/// Segments split again the same way (threads within a process, processes
/// within a machine, machines within a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub offset: u64,
    pub stride: u64,
}

impl Segment {
    pub const WHOLE: Segment = Segment {
        offset: 0,
        stride: 1,
    };

    /// Part `k` of `n` of this segment.
    pub fn split(self, k: u64, n: u64) -> Segment {
        assert!(n > 0 && k < n, "segment {k} of {n} does not exist");
        Segment {
            offset: self.offset + self.stride * k,
            stride: self.stride * n,
        }
    }

    /// How many of `total` attempts fall in this segment.
    pub fn len(self, total: u64) -> u64 {
        if self.offset >= total {
            0
        } else {
            (total - self.offset - 1) / self.stride + 1
        }
    }

    pub fn is_empty(self, total: u64) -> bool {
        self.len(total) == 0
    }

    /// The global index of this segment's `j`-th attempt.
    pub fn attempt(self, j: u64) -> u64 {
        self.offset + j * self.stride
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn attempts_round_robin_over_every_pair_sources_fastest() {
        let plan = Plan::new(
            vec![ip("127.0.0.1"), ip("127.0.0.2")],
            vec![addr("127.0.0.1:7070"), addr("127.0.0.1:7071")],
            None,
            10,
        );
        assert_eq!(plan.pair_count(), 4);
        let seen: Vec<(Option<usize>, u16)> = (0..5)
            .map(|i| {
                let e = plan.endpoint(i);
                (e.source_index, e.target.port())
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (Some(0), 7070),
                (Some(1), 7070),
                (Some(0), 7071),
                (Some(1), 7071),
                (Some(0), 7070)
            ]
        );
        assert_eq!(plan.endpoint(1).bind, Some(addr("127.0.0.2:0")));
    }

    #[test]
    fn no_source_leaves_binding_to_the_kernel() {
        let plan = Plan::new(vec![], vec![addr("[::1]:80")], None, 3);
        let e = plan.endpoint(2);
        assert_eq!(
            (e.source_index, e.bind, e.target),
            (None, None, addr("[::1]:80"))
        );
    }

    #[test]
    fn explicit_ports_advance_per_round_and_wrap() {
        let plan = Plan::new(
            vec![ip("127.0.0.1"), ip("127.0.0.2")],
            vec![addr("127.0.0.1:80")],
            Some(PortRange {
                lo: 40000,
                hi: 40001,
            }),
            10,
        );
        let ports: Vec<_> = (0..6)
            .map(|i| plan.endpoint(i).bind.unwrap().port())
            .collect();
        assert_eq!(ports, vec![40000, 40000, 40001, 40001, 40000, 40000]);
        let no_ip = Plan::new(
            vec![],
            vec![addr("127.0.0.1:80")],
            Some(PortRange { lo: 5, hi: 5 }),
            1,
        );
        assert_eq!(no_ip.endpoint(0).bind, Some(addr("0.0.0.0:5")));
    }

    #[test]
    fn mixed_families_pair_only_with_their_own() {
        let plan = Plan::new(
            vec![ip("127.0.0.1"), ip("::1")],
            vec![addr("127.0.0.1:80"), addr("[::1]:80")],
            None,
            4,
        );
        assert_eq!(plan.pair_count(), 2);
        for i in 0..4 {
            let e = plan.endpoint(i);
            let source = plan.sources[e.source_index.unwrap()];
            assert_eq!(source.is_ipv4(), e.target.is_ipv4());
        }
    }

    #[test]
    fn segments_cover_every_attempt_once_with_remainders_first() {
        let plan = Plan::new(vec![], vec![addr("127.0.0.1:80")], None, 10);
        let lens: Vec<u64> = (0..3).map(|k| plan.segment(k, 3).len(10)).collect();
        assert_eq!(lens, vec![4, 3, 3]);
        let mut all: Vec<u64> = (0..3)
            .flat_map(|k| {
                let s = plan.segment(k, 3);
                (0..s.len(10)).map(move |j| s.attempt(j))
            })
            .collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        // Splitting a segment again keeps the property.
        let sub = plan.segment(1, 2).split(1, 2);
        assert_eq!((sub.offset, sub.stride), (3, 4));
        assert_eq!(sub.len(10), 2);
        assert_eq!(plan.segment(4, 5).split(1, 2).len(10), 1);
        assert!(plan.segment(4, 5).split(1, 2).is_empty(9));
    }
}
