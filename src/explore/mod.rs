//! `ceiling explore`'s ladder, as pure logic: what a climb was run with
//! (a [`Rung`]), what it reached (an [`Outcome`]), and from the limit it
//! hit, the change the next climb makes ([`next`]) — the classic story:
//! port range → more source IPs → fd limit → more worker processes →
//! memory; then, for a ladder given a server thread cap ([`ServerLadder`]),
//! the server's design: a thread per connection under the cap (C10K), the
//! async design under the same cap, and a CPU quota on the server
//! ([`ServerRung`]). No I/O here: `cmd::explore` runs the climbs, [`report`] writes
//! the table.
//!
//! A climb is one run that opens up to a bound of connections, holds them
//! all, and stops at the first limit; its ceiling is the most held at once
//! ([`ceiling_of`]).

pub mod report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::model::{LimitKind, Summary, thousands};
use crate::scenario::lab::Sysctl;
use crate::scenario::units::{HoldMode, PortPick, PortRange, Processes, ServerModel};
use crate::scenario::{Pace, Scenario};

/// Climbs a ladder makes at most, unless told otherwise.
pub const DEFAULT_MAX_STEPS: u32 = 10;
/// Most climbs `--max-steps` allows.
pub const MAX_STEPS: u32 = 32;
/// The ephemeral port range of a new network namespace (the kernel's
/// default), when `[lab]` does not set one.
pub const NAMESPACE_PORT_RANGE: PortRange = PortRange {
    lo: 32768,
    hi: 60999,
};
/// A port-range widening multiplies the number of ports by this much.
pub const WIDEN_FACTOR: u32 = 4;
/// fds a worker process keeps for itself beside its connections (the same
/// headroom `run --processes auto` counts).
pub const FDS_KEPT_PER_PROCESS: u64 = 64;
/// Sources added are sized for this much more than the bound: the kernel's
/// port search does not always find the last free ports of a range.
const SOURCE_MARGIN: f64 = 1.1;
/// A memory-limit raise multiplies the limit by this much.
const MEMORY_FACTOR: u64 = 2;

/// The settings the ladder turns, as one climb ran with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// `[lab] ip_local_port_range`; None: the namespace's default.
    pub port_range: Option<PortRange>,
    /// Source IPs; empty: the kernel picks (127.0.0.1 for a loopback
    /// target).
    pub sources: Vec<IpAddr>,
    /// The driver's soft fd limit; None: raised to the hard limit.
    pub fd_limit: Option<u64>,
    /// Worker processes; None: ceiling's own process.
    pub processes: Option<u64>,
    /// `[lab] memory_limit` for the worker processes. A lab refuses it
    /// without worker processes (ceiling's own process stays outside the
    /// cgroup), so it applies only from the climb that adds them.
    pub memory_limit: Option<u64>,
    /// The port range was widened once already: the next port exhaustion
    /// adds source IPs instead.
    pub widened: bool,
    /// The lab server's design, on a ladder with a [`ServerLadder`].
    pub server: ServerRung,
}

/// The server rungs, climbed in this order once the client's settings
/// reach the bound. Each climb keeps the client's settings that got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerRung {
    /// The scenario's server, without the ladder's thread cap and CPU
    /// quota: the client's rungs climb against it.
    #[default]
    AsGiven,
    /// One thread per connection in a pids cgroup of the cap (C10K): the
    /// climb stops at the cap.
    Threads,
    /// The async design under the same cap: the climb passes it.
    Async,
    /// The async design under the cap and a CPU quota: the climb needs
    /// the server's CPU, and the quota throttles it.
    CpuQuota,
}

/// The server rungs a ladder climbs after the bound, from its scenario's
/// `[lab] server_threads_max` (and `server_cpus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLadder {
    /// pids.max of the server's cgroup on the server rungs.
    pub threads_max: u64,
    /// The server's CPU quota on the last rung, in thousandths of a core;
    /// None: no CPU rung.
    pub cpu_millis: Option<u64>,
}

/// What the ladder needs to know beside the rung.
#[derive(Debug, Clone)]
pub struct Context {
    /// Connections each climb opens at most.
    pub bound: u64,
    /// The hard RLIMIT_NOFILE (the soft limit goes no higher).
    pub fd_hard: u64,
    pub targets: Vec<SocketAddr>,
    pub pick_port_at: PortPick,
    /// The ephemeral port range when `[lab]` sets none: the host's for a
    /// climb outside a lab, [`NAMESPACE_PORT_RANGE`] in one.
    pub default_port_range: PortRange,
    /// The server rungs after the bound (None: the ladder ends there).
    pub server_ladder: Option<ServerLadder>,
}

/// What a climb reached, from its summary.json.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `first_limit.kind`; None: no limit was hit.
    pub limit: Option<LimitKind>,
    /// [`ceiling_of`] its summary.
    pub ceiling: u64,
    /// `totals.established`.
    pub established: u64,
    /// Stopped by Ctrl-C or SIGTERM.
    pub aborted: bool,
    /// `lab.server.figures.pids_refused`: thread starts the server's pids
    /// cgroup refused.
    pub server_pids_refused: Option<u64>,
    /// `lab.server.figures.cpu_throttled_s`: how long the server's CPU
    /// quota throttled it.
    pub server_cpu_throttled_s: Option<f64>,
}

impl Outcome {
    /// What a climb reached, from its summary.
    pub fn of(summary: &Summary, interrupted: bool) -> Outcome {
        let figures = summary
            .lab
            .as_ref()
            .and_then(|lab| lab.server.figures.as_ref());
        Outcome {
            limit: summary.first_limit.as_ref().map(|f| f.kind),
            ceiling: ceiling_of(summary),
            established: summary.totals.established,
            aborted: summary.aborted || interrupted,
            server_pids_refused: figures.and_then(|f| f.pids_refused),
            server_cpu_throttled_s: figures.and_then(|f| f.cpu_throttled_s),
        }
    }
}

/// Why a ladder ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every connection of the bound was held: the ceiling is above it.
    ReachedBound,
    /// A limit the ladder has no rung for (backlog, server, timeouts...):
    /// this is the ceiling; its remedy is ceiling's.
    OffTheLadder(LimitKind),
    /// A limit the ladder knows, but nothing is left to turn.
    NoRemedyLeft(LimitKind, String),
    /// Fewer than the bound held, yet no limit: failures that are not
    /// limits (refused, reset...) or a run that ran out of time.
    ShortWithoutLimit,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The ladder's step bound.
    MaxSteps,
    /// The CPU rung: the server's CPU quota throttled it (with the climb's
    /// first limit, if it hit one).
    ServerCpu {
        cpu_millis: u64,
        throttled_ms: u64,
        limit: Option<LimitKind>,
    },
}

impl End {
    /// One line for the table's footer and explore.json.
    pub fn describe(&self, bound: u64) -> String {
        match self {
            End::ReachedBound => format!(
                "reached the bound: all {} connections held, no limit hit",
                thousands(bound)
            ),
            End::OffTheLadder(kind) => format!(
                "stopped at {kind} ({}): not a limit the ladder raises; see its remedy",
                kind.describe()
            ),
            End::NoRemedyLeft(kind, why) => format!("stopped at {kind}: {why}"),
            End::ShortWithoutLimit => format!(
                "stopped: fewer than {} held and no limit named (see failures.csv of the last \
                 step, or give the climb more --duration)",
                thousands(bound)
            ),
            End::Interrupted => "stopped: interrupted".into(),
            End::MaxSteps => "stopped: the ladder's step bound (--max-steps)".into(),
            End::ServerCpu {
                cpu_millis,
                throttled_ms,
                limit,
            } => format!(
                "stopped at the server's CPU: its quota of {} cores throttled it for {:.1} s \
                 ({}): more CPU for the server, or a lower rate",
                cores(*cpu_millis),
                *throttled_ms as f64 / 1000.0,
                match limit {
                    Some(kind) => format!("first limit {kind}"),
                    None => "every connection held, more slowly".into(),
                }
            ),
        }
    }

    /// A short key for explore.json.
    pub fn key(&self) -> &'static str {
        match self {
            End::ReachedBound => "reached_bound",
            End::OffTheLadder(_) => "off_the_ladder",
            End::NoRemedyLeft(..) => "no_remedy_left",
            End::ShortWithoutLimit => "short_without_limit",
            End::Interrupted => "interrupted",
            End::MaxSteps => "max_steps",
            End::ServerCpu { .. } => "server_cpu",
        }
    }
}

/// The next climb, or the end of the ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Climb {
        rung: Rung,
        /// The change, in words, for the table.
        change: String,
    },
    End(End),
}

/// From the limit a climb hit, the change the next climb makes.
pub fn next(rung: &Rung, outcome: &Outcome, ctx: &Context) -> Next {
    if outcome.aborted {
        return Next::End(End::Interrupted);
    }
    if rung.server == ServerRung::CpuQuota
        && let Some(note) = server_cpu_end(rung, outcome, ctx)
    {
        return Next::End(note);
    }
    let Some(kind) = outcome.limit else {
        if outcome.ceiling >= ctx.bound || outcome.established >= ctx.bound {
            return match server_step(rung, ctx) {
                Some(next) => next,
                None => Next::End(End::ReachedBound),
            };
        }
        return Next::End(End::ShortWithoutLimit);
    };
    if rung.server == ServerRung::Threads
        && (kind == LimitKind::ServerClosed || outcome.server_pids_refused.unwrap_or(0) > 0)
    {
        // The thread cap: C10K. The next rung changes the design.
        return server_step(rung, ctx).unwrap_or(Next::End(End::OffTheLadder(kind)));
    }
    match kind {
        LimitKind::PortExhaustion => ports(rung, ctx),
        LimitKind::FdLimitProcess => fds(rung, ctx),
        LimitKind::KernelMemory => match rung.memory_limit {
            Some(limit) if rung.processes.is_some() => {
                let raised = limit.saturating_mul(MEMORY_FACTOR);
                climb(
                    Rung {
                        memory_limit: Some(raised),
                        ..rung.clone()
                    },
                    format!("raise memory_limit {} → {}", mib(limit), mib(raised)),
                )
            }
            _ => Next::End(End::NoRemedyLeft(
                kind,
                "the memory that ran out is not the lab's memory cgroup: free memory on the \
                 host, or see the remedy"
                    .into(),
            )),
        },
        other => Next::End(End::OffTheLadder(other)),
    }
}

fn climb(rung: Rung, change: String) -> Next {
    Next::Climb { rung, change }
}

/// The server rung after `rung`'s, with the change in words; None when the
/// ladder has no server rungs or none is left.
fn server_step(rung: &Rung, ctx: &Context) -> Option<Next> {
    let ladder = ctx.server_ladder?;
    let cap = thousands(ladder.threads_max);
    let (server, change) = match rung.server {
        ServerRung::AsGiven => (
            ServerRung::Threads,
            format!(
                "a thread per connection: server_model = threads, server_threads_max = {cap} \
                 (C10K)"
            ),
        ),
        ServerRung::Threads => (
            ServerRung::Async,
            format!("the async design: server_model = async, server_threads_max = {cap} as before"),
        ),
        ServerRung::Async => {
            let millis = ladder.cpu_millis?;
            (
                ServerRung::CpuQuota,
                format!(
                    "a CPU quota on the server: server_cpus = {} (async, server_threads_max = \
                     {cap})",
                    cores(millis)
                ),
            )
        }
        ServerRung::CpuQuota => return None,
    };
    Some(climb(
        Rung {
            server,
            ..rung.clone()
        },
        change,
    ))
}

/// On the CPU rung: the end it makes when the quota throttled the server.
fn server_cpu_end(rung: &Rung, outcome: &Outcome, ctx: &Context) -> Option<End> {
    let cpu_millis = ctx.server_ladder?.cpu_millis?;
    let throttled = outcome.server_cpu_throttled_s.filter(|&s| s > 0.0)?;
    (rung.server == ServerRung::CpuQuota).then_some(End::ServerCpu {
        cpu_millis,
        throttled_ms: (throttled * 1000.0).round() as u64,
        limit: outcome.limit,
    })
}

/// The server's CPU throttling on the CPU rung, in words for the climb's
/// row (its evidence): None on other rungs or when it was not throttled.
pub fn server_cpu_note(rung: &Rung, outcome: &Outcome, ctx: &Context) -> Option<String> {
    match server_cpu_end(rung, outcome, ctx)? {
        End::ServerCpu {
            cpu_millis,
            throttled_ms,
            ..
        } => Some(format!(
            "the server's CPU quota of {} cores throttled it for {:.1} s \
             (lab.server.figures.cpu_throttled_s)",
            cores(cpu_millis),
            throttled_ms as f64 / 1000.0
        )),
        _ => None,
    }
}

/// The server rungs a ladder from `base` climbs after the bound: from its
/// `[lab] server_threads_max` (and `server_cpus`); None without them.
pub fn server_ladder_of(base: &Scenario) -> Option<ServerLadder> {
    let server = &base.lab.as_ref()?.server;
    Some(ServerLadder {
        threads_max: server.threads_max?,
        cpu_millis: server.cpu_millis,
    })
}

/// `0.05` (thousandths of a core as cores).
fn cores(millis: u64) -> String {
    let text = format!("{:.3}", millis as f64 / 1000.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Port exhaustion: widen the range once, then add source IPs.
fn ports(rung: &Rung, ctx: &Context) -> Next {
    let current = rung.port_range.unwrap_or(ctx.default_port_range);
    if !rung.widened
        && let Some(wider) = widen(current, &ctx.targets)
    {
        return climb(
            Rung {
                port_range: Some(wider),
                widened: true,
                ..rung.clone()
            },
            format!(
                "widen ip_local_port_range {current} → {wider} ({} ports per source IP and \
                 target)",
                thousands(u64::from(wider.len()))
            ),
        );
    }
    let per_source = u64::from(current.len())
        * match ctx.pick_port_at {
            PortPick::Connect => ctx.targets.len().max(1) as u64,
            PortPick::Bind => 1,
        };
    match add_sources(&rung.sources, ctx, per_source) {
        Ok(sources) => {
            let change = format!(
                "add source IPs: {} ({} × {} ports)",
                ip_ranges(&sources),
                sources.len(),
                thousands(per_source)
            );
            climb(
                Rung {
                    sources,
                    widened: true,
                    ..rung.clone()
                },
                change,
            )
        }
        Err(why) => Next::End(End::NoRemedyLeft(LimitKind::PortExhaustion, why)),
    }
}

/// The fd limit: raise the soft limit to the hard one, then add worker
/// processes (each has an fd table of its own), then more of them.
fn fds(rung: &Rung, ctx: &Context) -> Next {
    let soft = rung.fd_limit.unwrap_or(ctx.fd_hard);
    if soft < ctx.fd_hard {
        return climb(
            Rung {
                fd_limit: Some(ctx.fd_hard),
                ..rung.clone()
            },
            format!(
                "raise fd_limit {} → {} (the hard limit)",
                thousands(soft),
                thousands(ctx.fd_hard)
            ),
        );
    }
    let per_process = ctx.fd_hard.saturating_sub(FDS_KEPT_PER_PROCESS).max(1);
    let processes = match rung.processes {
        None => ctx.bound.div_ceil(per_process).max(2),
        Some(n) => n * 2,
    };
    let most = crate::scenario::units::MAX_PROCESSES.min(ctx.bound);
    if rung.processes.is_some_and(|n| n >= most) {
        return Next::End(End::NoRemedyLeft(
            LimitKind::FdLimitProcess,
            format!("already {most} worker processes, the most a run may have"),
        ));
    }
    let processes = processes.min(most);
    let memory = match rung.memory_limit {
        Some(bytes) if rung.processes.is_none() => {
            format!(", in the lab's memory cgroup of {}", mib(bytes))
        }
        _ => String::new(),
    };
    climb(
        Rung {
            processes: Some(processes),
            ..rung.clone()
        },
        format!(
            "add worker processes: processes = {processes} (an fd table of {} each){memory}",
            thousands(ctx.fd_hard)
        ),
    )
}

/// The range `WIDEN_FACTOR` times as wide: upwards to 65535 first, then
/// downwards, never over a target port (the lab's server listens there)
/// nor below 1024. None when it cannot grow.
pub fn widen(range: PortRange, targets: &[SocketAddr]) -> Option<PortRange> {
    let want = range.len() * WIDEN_FACTOR;
    let hi_limit = targets
        .iter()
        .map(|t| u32::from(t.port()))
        .filter(|&p| p > u32::from(range.hi))
        .min()
        .map_or(65_535, |p| p - 1);
    let lo_limit = targets
        .iter()
        .map(|t| u32::from(t.port()))
        .filter(|&p| p < u32::from(range.lo))
        .max()
        .map_or(1024, |p| (p + 1).max(1024));
    let lo = u32::from(range.lo);
    let hi = (lo + want - 1).min(hi_limit);
    let lo = (hi + 1).saturating_sub(want).max(lo_limit).min(lo);
    let wider = PortRange {
        lo: lo as u16,
        hi: hi as u16,
    };
    (wider.len() > range.len()).then_some(wider)
}

/// Enough IPv4 loopback sources for the bound (at least twice as many as
/// now), continuing after the last one (from 127.0.0.1 when the kernel
/// chose).
fn add_sources(sources: &[IpAddr], ctx: &Context, per_source: u64) -> Result<Vec<IpAddr>, String> {
    if ctx.targets.iter().any(SocketAddr::is_ipv6) {
        return Err(
            "IPv6 loopback has one address (::1): add target ports instead of source IPs".into(),
        );
    }
    let needed = (ctx.bound as f64 * SOURCE_MARGIN / per_source.max(1) as f64).ceil() as u64;
    let count = needed.max(sources.len() as u64 * 2).max(2);
    let most = crate::scenario::units::MAX_SOURCES;
    if sources.len() as u64 >= most {
        return Err(format!(
            "already {most} source IPs, the most a run may have"
        ));
    }
    let count = count.min(most);
    let mut out = sources.to_vec();
    let mut next = match sources.iter().rev().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(u32::from(*v4) + 1),
        IpAddr::V6(_) => None,
    }) {
        Some(n) => n,
        None if sources.is_empty() => u32::from(Ipv4Addr::new(127, 0, 0, 1)),
        None => return Err("the sources are IPv6: add target ports instead".into()),
    };
    while (out.len() as u64) < count {
        let ip = Ipv4Addr::from(next);
        if !ip.is_loopback() {
            return Err("no loopback addresses left in 127.0.0.0/8".into());
        }
        out.push(IpAddr::V4(ip));
        next += 1;
    }
    Ok(out)
}

/// The most connections a climb held at once: the run's peak, which is
/// exact (tracked where the active count goes up, not sampled). Not the
/// count established: a climb whose time bound ends while connects are
/// still under way closes held connections and frees their ports before
/// the last ones are established.
pub fn ceiling_of(summary: &Summary) -> u64 {
    summary.totals.peak_active
}

/// The first climb's rung, from the scenario the ladder starts from.
pub fn first_rung(base: &Scenario) -> Rung {
    let lab = base.lab.as_ref();
    Rung {
        port_range: lab
            .and_then(|l| l.port_range())
            .map(|(lo, hi)| PortRange { lo, hi }),
        sources: base.sources.clone(),
        fd_limit: base.fd_limit,
        processes: match base.processes {
            None => None,
            Some(Processes::Count(n)) => Some(n),
            Some(Processes::Auto) => None,
        },
        memory_limit: lab.and_then(|l| l.memory_limit),
        widened: false,
        server: ServerRung::AsGiven,
    }
}

/// The rung in words, for the first row of the table.
pub fn describe_start(rung: &Rung, ctx: &Context) -> String {
    let range = rung.port_range.unwrap_or(ctx.default_port_range);
    let mut parts = vec![format!(
        "start: ip_local_port_range {range} ({} ports)",
        thousands(u64::from(range.len()))
    )];
    parts.push(match rung.sources.len() {
        0 => "kernel-chosen source".into(),
        n => format!("{n} source IP(s) {}", ip_ranges(&rung.sources)),
    });
    parts.push(format!(
        "fd_limit {}",
        thousands(rung.fd_limit.unwrap_or(ctx.fd_hard))
    ));
    if let Some(n) = rung.processes {
        parts.push(format!("{n} worker processes"));
    }
    if let Some(bytes) = rung.memory_limit {
        parts.push(format!(
            "memory_limit {}{}",
            mib(bytes),
            if rung.processes.is_none() {
                " (from the step that adds worker processes)"
            } else {
                ""
            }
        ));
    }
    if let Some(ladder) = ctx.server_ladder {
        parts.push(format!(
            "then the server's design: a thread per connection under server_threads_max {}, \
             async{}",
            thousands(ladder.threads_max),
            match ladder.cpu_millis {
                Some(millis) => format!(", a CPU quota of {} cores", cores(millis)),
                None => String::new(),
            }
        ));
    }
    parts.join(", ")
}

/// The scenario a climb runs: `base` with the rung's settings, the bound,
/// everything held until the end, stopping at the first limit.
pub fn climb_scenario(base: &Scenario, rung: &Rung, ctx: &Context, step: u32) -> Scenario {
    let mut s = base.clone();
    s.name = format!("{}-step{step}", base.name);
    s.connections = ctx.bound;
    s.hold = HoldMode::UntilEnd;
    s.stop_at_first_limit = true;
    s.duration = Some(
        base.duration
            .unwrap_or_else(|| climb_duration(base.pace, ctx.bound)),
    );
    s.sources = rung.sources.clone();
    s.fd_limit = rung.fd_limit;
    s.processes = rung.processes.map(Processes::Count);
    if let Some(lab) = &mut s.lab {
        if let Some(range) = rung.port_range {
            let value = format!("{} {}", range.lo, range.hi);
            match lab
                .sysctls
                .iter_mut()
                .find(|x| x.name == "net.ipv4.ip_local_port_range")
            {
                Some(sysctl) => sysctl.value = value,
                None => lab.sysctls.insert(
                    0,
                    Sysctl {
                        name: "net.ipv4.ip_local_port_range",
                        value,
                    },
                ),
            }
        }
        lab.memory_limit = rung.memory_limit.filter(|_| rung.processes.is_some());
        // Each server process holds up to its fd limit (the hard one);
        // three quarters of it leaves room for SO_REUSEPORT's uneven spread.
        let per_server = (ctx.fd_hard.saturating_sub(FDS_KEPT_PER_PROCESS) * 3 / 4).max(1);
        let servers = ctx.bound.div_ceil(per_server) as usize;
        lab.server.processes = lab.server.processes.max(servers).max(1);
        if let Some(ladder) = ctx.server_ladder {
            let (model, threads_max, cpu_millis) = match rung.server {
                ServerRung::AsGiven => (lab.server.model, None, None),
                ServerRung::Threads => (ServerModel::Threads, Some(ladder.threads_max), None),
                ServerRung::Async => (ServerModel::Async, Some(ladder.threads_max), None),
                ServerRung::CpuQuota => (
                    ServerModel::Async,
                    Some(ladder.threads_max),
                    ladder.cpu_millis,
                ),
            };
            lab.server.model = model;
            lab.server.threads_max = threads_max;
            lab.server.cpu_millis = cpu_millis;
        }
    }
    s
}

/// A climb's time bound when none is given: twice the time the pace needs
/// to open `bound` connections (a slow machine falls behind the pace), plus
/// 3 s to hold them, at most 10 minutes.
pub fn climb_duration(pace: Pace, bound: u64) -> Duration {
    let open = time_to_open(pace, bound);
    (open * 2 + Duration::from_secs(3)).min(Duration::from_secs(600))
}

/// How long `pace` takes to start `n` attempts. Unlimited counts as
/// 20,000/s, a safe guess for one box.
pub fn time_to_open(pace: Pace, n: u64) -> Duration {
    let n = n as f64;
    let secs = match pace {
        Pace::Unlimited => n / 20_000.0,
        Pace::Constant { per_s } => n / per_s.max(1.0),
        Pace::Steps(steps) => steps.seconds_to(n),
        Pace::Ramp(r) => {
            let over = r.over.as_secs_f64();
            let slope = (r.to - r.from) / over;
            // Attempts by t (t ≤ over): from·t + slope·t²/2.
            let at_end = r.from * over + slope * over * over / 2.0;
            if n > at_end {
                over + (n - at_end) / r.to.max(1.0)
            } else if slope.abs() < f64::EPSILON {
                n / r.from.max(1.0)
            } else {
                let disc = (r.from * r.from + 2.0 * slope * n).max(0.0);
                (disc.sqrt() - r.from) / slope
            }
        }
    };
    Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
}

/// `48 MiB`.
pub fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", thousands(bytes >> 20))
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    }
}

/// IPs as `A-B` ranges of consecutive addresses, comma-separated.
pub fn ip_ranges(ips: &[IpAddr]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ips.len() {
        let mut j = i;
        while let (IpAddr::V4(a), Some(IpAddr::V4(b))) = (ips[j], ips.get(j + 1))
            && u32::from(*b) == u32::from(a) + 1
        {
            j += 1;
        }
        out.push(if i == j {
            ips[i].to_string()
        } else {
            format!("{}-{}", ips[i], ips[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests;
