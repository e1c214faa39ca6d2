//! The agent's side of a fleet: join the coordinator (token, version,
//! index), answer its pings, wait for the start it set, run the segment it
//! was given (over worker processes when one fd table is not enough, as
//! `run --processes auto` does) and report over the same connection with
//! the worker protocol. A coordinator that goes away (its connection
//! closes, or nothing comes from it past [`SILENCE`]) stops the load here:
//! an agent never keeps loading a target on its own.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use super::wire::{Join, NamedTarget, ToAgent, ToCoordinator, unix_ns_now};
use super::{REPORT_EVERY, SILENCE};
use crate::classify::capacity::Room;
use crate::classify::host;
use crate::engine::plan::Plan;
use crate::engine::procs::{self, ControlUnreadable, Launcher, WorkerSpec, send_line};
use crate::engine::rate::Schedule;
use crate::engine::{Engine, Launch, StopReason};
use crate::model::{ResolvedTarget, thousands};
use crate::runner::layout::WorkerLayout;
use crate::stats::Delta;

/// How long an agent keeps trying to reach a coordinator that is not
/// listening yet (an engine may start the agents first).
const CONNECT_RETRY: Duration = Duration::from_secs(60);

/// How long an agent waits for the start beyond the coordinator's join
/// timeout.
const START_GRACE: Duration = Duration::from_secs(30);

/// What an agent is asked for.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The coordinator, ADDR:PORT or NAME:PORT (resolved once).
    pub join: String,
    pub token: String,
    pub index: u64,
    /// The host count it was told, checked by the coordinator.
    pub hosts: Option<u64>,
    pub name: String,
}

/// The flags of `ceiling agent`, before the environment fills them in.
#[derive(Debug, Clone, Default)]
pub struct AgentFlags {
    pub join: String,
    pub token: Option<String>,
    pub index: Option<u64>,
    pub hosts: Option<u64>,
    pub name: Option<String>,
}

impl AgentSettings {
    /// The flags, else the environment (`env`): the token from
    /// CEILING_FLEET_TOKEN, the index from JOB_COMPLETION_INDEX (Kubernetes)
    /// or SLURM_PROCID, the host count from SLURM_NTASKS, the name from
    /// the host name. Err: what is missing or does not parse, and how to
    /// give it.
    pub fn resolve(
        flags: AgentFlags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AgentSettings, String> {
        let token = flags
            .token
            .or_else(|| env("CEILING_FLEET_TOKEN"))
            .filter(|t| !t.is_empty())
            .ok_or(
                "no fleet token: give --token TOKEN or set CEILING_FLEET_TOKEN (the                  coordinator's --fleet-token)",
            )?;
        let from_env = |name: &str, parse: fn(&str) -> Result<u64, String>| {
            env(name)
                .map(|value| parse(&value).map_err(|e| format!("{name}={value}: {e}")))
                .transpose()
        };
        let index = match flags.index {
            Some(index) => index,
            None => match from_env("JOB_COMPLETION_INDEX", super::parse_index)? {
                Some(index) => index,
                None => from_env("SLURM_PROCID", super::parse_index)?.ok_or(
                    "no host index: give --index K (0 to N-1), or run under a Kubernetes                      Indexed Job (JOB_COMPLETION_INDEX) or srun (SLURM_PROCID)",
                )?,
            },
        };
        let hosts = match flags.hosts {
            Some(hosts) => Some(hosts),
            None => from_env("SLURM_NTASKS", super::parse_hosts)?,
        };
        let name = flags
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| host_name().unwrap_or_else(|| format!("agent-{index}")));
        Ok(AgentSettings {
            join: flags.join,
            token,
            index,
            hosts,
            name,
        })
    }
}

/// This host's name, as the kernel has it.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Why an agent ended without running its share to the end.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot resolve the coordinator's address '{join}' within {} s: {source}", CONNECT_RETRY.as_secs())]
    Resolve { join: String, source: io::Error },
    #[error("cannot reach the coordinator at {join} within {} s: {source}", CONNECT_RETRY.as_secs())]
    Connect { join: String, source: io::Error },
    #[error("the coordinator refused this agent: {0}")]
    Refused(String),
    #[error("lost the coordinator before the start: {0}")]
    LostBeforeStart(String),
    #[error("the coordinator said something this agent cannot read: {0}")]
    Unreadable(String),
    #[error("cannot start the agent: {0}")]
    Start(io::Error),
    #[error("this host has no room for its share: {0}")]
    NoRoom(String),
    #[error(transparent)]
    Control(#[from] ControlUnreadable),
}

/// How an agent's share of the run ended.
pub struct AgentEnd {
    pub index: u64,
    pub hosts: u64,
    /// The coordinator went away mid-run: the load was stopped here.
    pub coordinator_lost: bool,
    /// Worker threads that panicked, one line each.
    pub panics: Vec<String>,
    /// Everything it reported, summed.
    pub totals: Delta,
    /// Its held connections when it ended.
    pub held: u64,
}

impl AgentEnd {
    /// The final line: "host 1 of 3: attempted 1,000, established 1,000,
    /// ...".
    pub fn line(&self) -> String {
        let t = &self.totals;
        format!(
            "host {} of {}: attempted {}, established {}, connect failed {}, closed {}, lost \
             {}, held at end {}{}",
            self.index,
            self.hosts,
            thousands(t.attempted),
            thousands(t.established),
            thousands(t.failed),
            thousands(t.closed_by_driver + t.closed_by_server),
            thousands(t.lost_with_worker),
            thousands(self.held),
            if self.coordinator_lost {
                " (the coordinator was lost: the load was stopped)"
            } else {
                ""
            }
        )
    }
}

/// Joins, runs this agent's share of the test, returns how it ended.
pub fn run(settings: &AgentSettings) -> Result<AgentEnd, AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Start)?;
    let ended = runtime.block_on(run_async(settings));
    // A read of the coordinator's connection may still be pending; this
    // process ends, the kernel closes it.
    runtime.shutdown_background();
    ended
}

async fn run_async(settings: &AgentSettings) -> Result<AgentEnd, AgentError> {
    let stream = connect(&settings.join).await?;
    let _ = stream.set_nodelay(true);
    let own_address = stream.local_addr().ok().map(|a| a.ip().to_string());
    let (read, mut writer) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut join = Join::new(
        settings.token.clone(),
        settings.index,
        settings.hosts,
        settings.name.clone(),
    );
    join.own_address = own_address;
    send(&mut writer, &ToCoordinator::Join(join)).await?;
    let (hosts, join_timeout) = match next(&mut lines, SILENCE).await? {
        ToAgent::Welcome {
            hosts,
            join_timeout_ms,
            ..
        } => (hosts, Duration::from_millis(join_timeout_ms)),
        ToAgent::Refused { reason } => return Err(AgentError::Refused(reason)),
        other => {
            return Err(AgentError::Unreadable(format!(
                "{other:?} before a welcome"
            )));
        }
    };
    eprintln!(
        "ceiling agent: joined {} as host {} of {hosts} ({}); waiting for the start",
        settings.join, settings.index, settings.name
    );
    let wait_until = Instant::now() + join_timeout + START_GRACE;
    let (mut spec, start_at_unix_ns, names) = loop {
        let left = wait_until.saturating_duration_since(Instant::now());
        match next(&mut lines, left).await? {
            ToAgent::Ping { seq } => {
                let pong = ToCoordinator::Pong {
                    seq,
                    agent_unix_ns: unix_ns_now(),
                };
                send(&mut writer, &pong).await?;
            }
            ToAgent::Go {
                spec,
                start_at_unix_ns,
                names,
            } => break (*spec, start_at_unix_ns, names),
            ToAgent::Refused { reason } => return Err(AgentError::Refused(reason)),
            other @ ToAgent::Welcome { .. } => {
                return Err(AgentError::Unreadable(format!("{other:?} twice")));
            }
        }
    };
    let wait = Duration::from_nanos((start_at_unix_ns - unix_ns_now()).max(0) as u64);
    eprintln!(
        "ceiling agent: host {}: {} connection(s) of {} to open, starting in {} ms",
        settings.index,
        thousands(spec.segment.len(spec.connections)),
        thousands(spec.connections),
        wait.as_millis()
    );
    let resolved = resolve_here(&mut spec, &names, settings.index).await;
    let room = host_room(&spec);
    tokio::time::sleep(wait).await;
    let (targets_resolved, engine) = match resolved
        .and_then(|resolved| room.map(|()| resolved))
        .and_then(|resolved| Ok((resolved, start_engine(spec)?)))
    {
        Ok(started) => started,
        Err(e) => {
            // The coordinator records why this host's share never ran.
            let reason = e.to_string();
            let _ = send(&mut writer, &ToCoordinator::CannotStart { reason }).await;
            return Err(e);
        }
    };
    let started = ToCoordinator::Started {
        agent_unix_ns: unix_ns_now(),
        targets_resolved,
    };
    send(&mut writer, &started).await?;
    let mut totals = Delta::counters_only(engine.source_count());
    let mut held = 0;
    let mut printed = Instant::now();
    let index = settings.index;
    let served = procs::serve(
        &engine,
        &mut lines,
        &mut writer,
        REPORT_EVERY,
        Some(SILENCE),
        |delta, active| {
            totals.merge_counters(delta);
            held = active;
            if printed.elapsed() >= Duration::from_secs(1) {
                printed = Instant::now();
                // As a run does: stop before this host runs out of memory
                // or files (the coordinator sees this host end early).
                if let Some(why) = Room::read().and_then(|room| room.exhausted())
                    && engine.stop_reason().is_none()
                {
                    eprintln!("ceiling agent: host {index}: stopping: {why}");
                    engine.stop(StopReason::HostRoom);
                }
                eprintln!(
                    "ceiling agent: host {index}: {:.0} s, attempted {}, established {}, held {}",
                    engine.start_instant().elapsed().as_secs_f64(),
                    thousands(totals.attempted),
                    thousands(totals.established),
                    thousands(active)
                );
            }
        },
    )
    .await;
    if served.as_ref().is_ok_and(|s| s.coordinator_lost) {
        eprintln!(
            "ceiling agent: host {index}: lost the coordinator at {}: stopped the load and \
             closed every connection",
            settings.join
        );
    }
    let panics = engine.join();
    let served = served?;
    Ok(AgentEnd {
        index,
        hosts,
        coordinator_lost: served.coordinator_lost,
        panics,
        totals,
        held,
    })
}

/// Resolves the targets given by name on this host, in its own network,
/// and puts this host's addresses in the spec in place of the
/// coordinator's (a Service name, say, may answer otherwise here).
async fn resolve_here(
    spec: &mut WorkerSpec,
    names: &[NamedTarget],
    index: u64,
) -> Result<Vec<ResolvedTarget>, AgentError> {
    let mut resolved = Vec::new();
    for named in names {
        let cannot = |why: String| {
            AgentError::Start(io::Error::other(format!(
                "target '{}' {why} on this host",
                named.name
            )))
        };
        let found = tokio::net::lookup_host((named.host.as_str(), named.ports.0))
            .await
            .map_err(|e| cannot(format!("does not resolve ({e})")))?;
        // Of the sources' families, as the coordinator's answer was.
        let mut ips: Vec<std::net::IpAddr> = Vec::new();
        for ip in found.map(|a| a.ip()) {
            let usable =
                spec.sources.is_empty() || spec.sources.iter().any(|s| s.is_ipv4() == ip.is_ipv4());
            if usable && !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        if ips.is_empty() {
            return Err(cannot(
                "resolves to no address of the sources' family".into(),
            ));
        }
        let here: Vec<SocketAddr> = ips
            .iter()
            .flat_map(|ip| (named.ports.0..=named.ports.1).map(|port| SocketAddr::new(*ip, port)))
            .collect();
        spec.targets.retain(|t| !named.addresses.contains(t));
        for addr in &here {
            if !spec.targets.contains(addr) {
                spec.targets.push(*addr);
            }
        }
        let text: Vec<String> = here.iter().map(ToString::to_string).collect();
        let theirs: Vec<String> = named.addresses.iter().map(ToString::to_string).collect();
        if text != theirs {
            eprintln!(
                "ceiling agent: host {index}: target {} resolved here to {} (at the coordinator: \
                 {})",
                named.name,
                text.join(", "),
                theirs.join(", ")
            );
        }
        resolved.push(ResolvedTarget {
            name: named.name.clone(),
            addresses: text,
        });
    }
    Ok(resolved)
}

/// Resolves `join` and connects, retrying for [`CONNECT_RETRY`] while the
/// name does not resolve yet (a cluster's Service gets its record when the
/// coordinator's pod is up) or nothing listens; once resolved, the name is
/// not looked up again.
async fn connect(join: &str) -> Result<TcpStream, AgentError> {
    let give_up = Instant::now() + CONNECT_RETRY;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut said = false;
    loop {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        if addrs.is_empty() {
            match tokio::net::lookup_host(join).await {
                Ok(found) => addrs = found.collect(),
                Err(e) if Instant::now() >= give_up => {
                    return Err(AgentError::Resolve {
                        join: join.to_string(),
                        source: e,
                    });
                }
                Err(e) => last = e,
            }
        }
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        if Instant::now() >= give_up {
            return Err(AgentError::Connect {
                join: join.to_string(),
                source: last,
            });
        }
        if !said {
            said = true;
            eprintln!(
                "ceiling agent: the coordinator at {join} is not there yet ({last}): retrying \
                 for {} s",
                CONNECT_RETRY.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn send(writer: &mut OwnedWriteHalf, message: &ToCoordinator) -> Result<(), AgentError> {
    let line = serde_json::to_string(message).expect("a message serializes");
    let sent = tokio::time::timeout(SILENCE, send_line(writer, &line))
        .await
        .unwrap_or(false);
    if sent {
        Ok(())
    } else {
        Err(AgentError::LostBeforeStart("its connection closed".into()))
    }
}

/// The coordinator's next message, within `within`.
async fn next(
    lines: &mut Lines<BufReader<OwnedReadHalf>>,
    within: Duration,
) -> Result<ToAgent, AgentError> {
    match tokio::time::timeout(within, lines.next_line()).await {
        Ok(Ok(Some(line))) => {
            serde_json::from_str(&line).map_err(|e| AgentError::Unreadable(format!("{e}: {line}")))
        }
        Ok(Ok(None)) => Err(AgentError::LostBeforeStart(
            "it closed the connection".into(),
        )),
        Ok(Err(e)) => Err(AgentError::LostBeforeStart(e.to_string())),
        Err(_) => Err(AgentError::LostBeforeStart(format!(
            "nothing from it for {} s",
            within.as_secs()
        ))),
    }
}

/// Whether this host has the memory and files for its share (and the
/// target's end of it, when the target is on this host too).
fn host_room(spec: &WorkerSpec) -> Result<(), AgentError> {
    let share = spec.segment.len(spec.connections);
    let local = spec.targets.iter().all(|t| host::is_local_target(*t));
    let sockets = share * if local { 2 } else { 1 };
    match Room::read().map(|room| room.check_plan(sockets)) {
        Some(Err(why)) => Err(AgentError::NoRoom(why)),
        _ => Ok(()),
    }
}

/// Starts this agent's segment now: worker threads, or worker processes
/// when one fd table is not enough.
fn start_engine(spec: WorkerSpec) -> Result<Engine, AgentError> {
    let (_, fd_hard) = host::nofile_limits().map_err(AgentError::Start)?;
    host::set_nofile_soft(fd_hard).map_err(AgentError::Start)?;
    let share = spec.segment.len(spec.connections);
    let threads = (spec.threads > 0).then_some(spec.threads as u64);
    let layout = WorkerLayout::auto(share, threads, fd_hard);
    if layout.processes > 0 {
        eprintln!("ceiling agent: {}", layout.reason);
    }
    let launch = Launch {
        start: Instant::now(),
        // This host's view, not the coordinator's.
        target_local: spec
            .targets
            .iter()
            .map(|t| host::is_local_target(*t))
            .collect(),
        listen_drops_at_start: host::listen_drop_count(),
    };
    let start = launch.start;
    let plan = Plan::new(
        spec.sources,
        spec.targets,
        spec.source_ports,
        spec.connections,
    );
    let engine = match layout.processes {
        0 => Engine::start(plan, spec.settings, spec.segment, layout.threads, launch),
        processes => {
            let launcher = Launcher::new(layout.threads).map_err(AgentError::Start)?;
            Engine::start_processes(
                plan,
                spec.settings,
                spec.segment,
                processes,
                Arc::new(launcher),
                launch,
            )
        }
    }
    .map_err(AgentError::Start)?;
    engine.set_schedule(Schedule::from_wire(start, spec.schedule));
    if let Some(reason) = spec.stop {
        engine.stop(reason);
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn flags() -> AgentFlags {
        AgentFlags {
            join: "127.0.0.1:7979".into(),
            name: Some("a".into()),
            ..AgentFlags::default()
        }
    }

    #[test]
    fn the_index_comes_from_the_flag_then_kubernetes_then_slurm() {
        let vars = [
            ("CEILING_FLEET_TOKEN", "t"),
            ("JOB_COMPLETION_INDEX", "2"),
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
        ];
        let s = AgentSettings::resolve(flags(), env(&vars)).unwrap();
        assert_eq!((s.index, s.hosts, s.token.as_str()), (2, Some(8), "t"));
        let s = AgentSettings::resolve(
            flags(),
            env(&vars[2..]
                .iter()
                .copied()
                .chain([("CEILING_FLEET_TOKEN", "t")])
                .collect::<Vec<_>>()),
        )
        .unwrap();
        assert_eq!(s.index, 5);
        let s = AgentSettings::resolve(
            AgentFlags {
                index: Some(1),
                hosts: Some(3),
                ..flags()
            },
            env(&vars),
        )
        .unwrap();
        assert_eq!((s.index, s.hosts), (1, Some(3)));
    }

    #[test]
    fn a_missing_token_or_index_says_how_to_give_it() {
        let e = AgentSettings::resolve(flags(), env(&[("SLURM_PROCID", "0")])).unwrap_err();
        assert!(e.contains("--token"), "{e}");
        let e = AgentSettings::resolve(flags(), env(&[("CEILING_FLEET_TOKEN", "t")])).unwrap_err();
        assert!(e.contains("--index K"), "{e}");
        let e = AgentSettings::resolve(
            flags(),
            env(&[("CEILING_FLEET_TOKEN", "t"), ("JOB_COMPLETION_INDEX", "x")]),
        )
        .unwrap_err();
        assert!(e.starts_with("JOB_COMPLETION_INDEX=x:"), "{e}");
    }
}
