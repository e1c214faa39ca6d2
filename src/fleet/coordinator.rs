//! The coordinator's side of a fleet: listen, gather N agents (the
//! barrier: nothing starts before all have joined), measure their clocks,
//! start them at one time, relay each agent's worker protocol into the
//! engine, and keep each host's books for `hosts.csv` and the summary.
//!
//! After the barrier the listener stays open only to refuse: a restarted
//! agent is told "the test already started", never let in.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::wire::{Join, NamedTarget, ToAgent, ToCoordinator, same_token, unix_ns_now};
use super::{HEARTBEAT, JOIN_LINE_TIMEOUT, PINGS, SILENCE, START_LEAD};
use crate::engine::plan::Plan;
use crate::engine::procs::{Death, Ended, Link, Peer, Relay, Tally, send_line};
use crate::engine::{Engine, Launch, Settings, WorkerBody};
use crate::model::{
    FirstLimit, FleetHost, FleetReport, HostLimit, ResolvedTarget, Totals, WorkerDeath,
};
use crate::stats::OwnLatency;

/// What a coordinator is asked for.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// Agents to wait for.
    pub hosts: u64,
    pub listen: SocketAddr,
    pub token: String,
    /// How long to wait for all of them before refusing the run.
    pub join_timeout: Duration,
}

impl FleetSettings {
    /// The fleet flags checked together: none without --fleet; a token
    /// (flag or environment) with it. Err: the message for the user.
    pub fn resolve(
        hosts: Option<u64>,
        listen: Option<SocketAddr>,
        token: Option<String>,
        join_timeout: Option<Duration>,
    ) -> Result<Option<FleetSettings>, String> {
        let Some(hosts) = hosts else {
            let given = [
                (listen.is_some(), "--fleet-listen"),
                (join_timeout.is_some(), "--fleet-join-timeout"),
            ];
            return match given.iter().find(|(given, _)| *given) {
                Some((_, flag)) => Err(format!(
                    "{flag} is for a fleet's coordinator: add --fleet N (the agents to wait \
                     for), or leave {flag} out"
                )),
                None => Ok(None),
            };
        };
        let token = token.filter(|t| !t.is_empty()).ok_or(
            "--fleet needs a token its agents must give: add --fleet-token TOKEN or set \
             CEILING_FLEET_TOKEN (the agents take the same with --token or the variable)",
        )?;
        Ok(Some(FleetSettings {
            hosts,
            listen: listen.unwrap_or_else(|| {
                super::DEFAULT_LISTEN
                    .parse()
                    .expect("the default listen address parses")
            }),
            token,
            join_timeout: join_timeout.unwrap_or(super::DEFAULT_JOIN_TIMEOUT),
        }))
    }
}

/// Longest first line a connection may send (a join is a few hundred
/// bytes).
const JOIN_LINE_MAX: u64 = 64 * 1024;

/// Why a fleet did not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot listen for agents on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot start the fleet's runtime: {0}")]
    Runtime(io::Error),
    #[error(
        "the fleet did not gather: no agent joined as host {} within {} (joined: {}); nothing \
         was started. Start the missing agents (`ceiling agent --join ADDR:PORT --index K`), or \
         give them longer with --fleet-join-timeout",
        list(missing),
        humantime::format_duration(*waited),
        if joined.is_empty() { "none".to_string() } else { list(joined) }
    )]
    NotGathered {
        missing: Vec<u64>,
        joined: Vec<u64>,
        waited: Duration,
    },
    #[error("host {index} ({name}) left before the start ({why}); nothing was started")]
    Left {
        index: u64,
        name: String,
        why: String,
    },
    #[error("interrupted while waiting for agents; nothing was started")]
    Interrupted,
}

fn list(indexes: &[u64]) -> String {
    indexes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One agent's connection, joined.
struct Agent {
    index: u64,
    name: String,
    address: SocketAddr,
    /// Its own address, as its socket has it.
    own_address: Option<String>,
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    /// Its clock minus ours, ns (from the ping with the shortest round
    /// trip).
    offset_ns: i64,
    rtt: Duration,
}

impl Agent {
    /// "host 2 (node-7)".
    fn label(&self) -> String {
        format!("host {} ({})", self.index, self.name)
    }

    async fn send(&mut self, message: &ToAgent) -> bool {
        let line = serde_json::to_string(message).expect("a message serializes");
        tokio::time::timeout(SILENCE, send_line(&mut self.writer, &line))
            .await
            .unwrap_or(false)
    }

    /// Whether its connection has closed. Before the start an agent says
    /// nothing unasked: anything to read is its end.
    async fn is_gone(&mut self) -> bool {
        // next_line() is cancel safe: a timeout loses nothing; any answer
        // (end, error or a line) is the end of its part.
        tokio::time::timeout(Duration::from_millis(1), self.lines.next_line())
            .await
            .is_ok()
    }

    /// A few pings; keeps the offset of the shortest round trip.
    async fn measure_clock(&mut self) -> Result<(), String> {
        let mut best: Option<(Duration, i64)> = None;
        for seq in 0..PINGS {
            let (sent, sent_ns) = (Instant::now(), unix_ns_now());
            if !self.send(&ToAgent::Ping { seq }).await {
                return Err("its connection closed".into());
            }
            let agent_ns = loop {
                let line = tokio::time::timeout(SILENCE, self.lines.next_line()).await;
                match line {
                    Ok(Ok(Some(line))) => match serde_json::from_str(&line) {
                        Ok(ToCoordinator::Pong {
                            seq: answered,
                            agent_unix_ns,
                        }) if answered == seq => break agent_unix_ns,
                        Ok(_) => continue,
                        Err(e) => return Err(format!("an unreadable answer to a ping: {e}")),
                    },
                    Ok(_) => return Err("its connection closed".into()),
                    Err(_) => {
                        return Err(format!("no answer to a ping in {} s", SILENCE.as_secs()));
                    }
                }
            };
            let rtt = sent.elapsed();
            let offset = agent_ns - (sent_ns + (rtt.as_nanos() / 2) as i64);
            if best.is_none_or(|(shortest, _)| rtt < shortest) {
                best = Some((rtt, offset));
            }
        }
        if let Some((rtt, offset)) = best {
            self.rtt = rtt;
            self.offset_ns = offset;
        }
        Ok(())
    }
}

/// A joined connection, not yet checked.
struct Arrival {
    join: Join,
    address: SocketAddr,
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

/// N agents joined, clocks measured: ready to start.
pub struct Coordinator {
    runtime: tokio::runtime::Runtime,
    agents: Vec<Agent>,
}

impl Coordinator {
    /// Listens on `settings.listen` and waits for every agent; refuses the
    /// run (nothing started) when one is missing after the join timeout.
    pub fn gather(settings: &FleetSettings) -> Result<Coordinator, FleetError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ceiling-fleet")
            .enable_all()
            .build()
            .map_err(FleetError::Runtime)?;
        let agents = runtime.block_on(gather(settings))?;
        Ok(Coordinator { runtime, agents })
    }

    /// Starts the run on the agents: one start time for all, each told its
    /// segment and the start in its own clock. `threads`: worker threads
    /// per agent process (0: the agent's choice); `names`: the targets
    /// given by name, which each agent resolves again in its own network.
    pub fn start(
        self,
        plan: Plan,
        settings: Settings,
        threads: usize,
        launch: Launch,
        names: Vec<NamedTarget>,
    ) -> io::Result<(Engine, Fleet)> {
        let Coordinator { runtime, agents } = self;
        let n = agents.len();
        let longest = agents.iter().map(|a| a.rtt).max().unwrap_or_default();
        let lead = START_LEAD + longest * 2;
        let start_ns = unix_ns_now() + lead.as_nanos() as i64;
        let launch = Launch {
            start: Instant::now() + lead,
            ..launch
        };
        let books = Arc::new(Mutex::new(
            agents
                .iter()
                .map(|a| HostBook {
                    index: a.index,
                    name: a.name.clone(),
                    address: a.address.to_string(),
                    own_address: a.own_address.clone(),
                    clock_offset_ms: a.offset_ns as f64 / 1e6,
                    rtt_ms: a.rtt.as_secs_f64() * 1e3,
                    start_offset_ms: None,
                    targets_resolved: Vec::new(),
                    tally: None,
                })
                .collect::<Vec<_>>(),
        ));
        let deaths = Arc::new(Mutex::new(Vec::new()));
        let bodies = agents
            .into_iter()
            .enumerate()
            .map(|(k, agent)| {
                let (books, deaths) = (Arc::clone(&books), Arc::clone(&deaths));
                let handle = runtime.handle().clone();
                let names = names.clone();
                Box::new(move |shared, recorder| {
                    let peer = Peer {
                        k,
                        n,
                        segment: plan_segment(k, n),
                        label: agent.label(),
                        host: Some(format!("{} at {}", agent.label(), agent.address)),
                        memory: None,
                        deaths: &deaths,
                    };
                    let relay = Relay::new(&shared, peer, recorder).keeping_own_latency();
                    let go = Go {
                        threads,
                        start_ns,
                        names,
                    };
                    handle.block_on(relay_agent(k, relay, agent, go, &books));
                }) as WorkerBody
            })
            .collect();
        let engine = Engine::launch(plan, settings, bodies, launch)?;
        Ok((
            engine,
            Fleet {
                _runtime: runtime,
                books,
                deaths,
            },
        ))
    }
}

fn plan_segment(k: usize, n: usize) -> crate::engine::plan::Segment {
    crate::engine::plan::Segment::WHOLE.split(k as u64, n as u64)
}

/// Accepts joins until every index is taken or the join timeout passes.
async fn gather(settings: &FleetSettings) -> Result<Vec<Agent>, FleetError> {
    let started = Arc::new(AtomicBool::new(false));
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| FleetError::Listen {
                addr: settings.listen,
                source,
            })?;
    let n = settings.hosts;
    eprintln!(
        "ceiling: fleet: waiting for {n} agent(s) on {} (for at most {})",
        settings.listen,
        humantime::format_duration(settings.join_timeout)
    );
    let (arrivals, mut arrived) = mpsc::channel(64);
    tokio::spawn(accept_joins(listener, arrivals, Arc::clone(&started)));
    let deadline = Instant::now() + settings.join_timeout;
    let mut slots: Vec<Option<Agent>> = (0..n).map(|_| None).collect();
    let joined = |slots: &[Option<Agent>]| -> Vec<u64> {
        (0..n).filter(|&i| slots[i as usize].is_some()).collect()
    };
    while slots.iter().any(Option::is_none) {
        let arrival = tokio::select! {
            arrival = arrived.recv() => match arrival {
                Some(arrival) => arrival,
                None => continue,
            },
            () = tokio::time::sleep_until(deadline) => {
                let missing: Vec<u64> = (0..n).filter(|&i| slots[i as usize].is_none()).collect();
                let error = FleetError::NotGathered {
                    joined: joined(&slots),
                    missing,
                    waited: settings.join_timeout,
                };
                let reason = error.to_string();
                for agent in slots.iter_mut().flatten() {
                    agent.send(&ToAgent::Refused { reason: reason.clone() }).await;
                }
                return Err(error);
            }
            _ = tokio::signal::ctrl_c() => return Err(FleetError::Interrupted),
        };
        let Arrival {
            join,
            address,
            lines,
            writer,
        } = arrival;
        let mut agent = Agent {
            index: join.index,
            name: join.name.clone(),
            address,
            own_address: join.own_address.clone(),
            lines,
            writer,
            offset_ns: 0,
            rtt: Duration::ZERO,
        };
        // An agent restarted before the start takes its index back if the
        // earlier one's connection is gone.
        if let Some(slot) = slots.get_mut(join.index as usize)
            && let Some(other) = slot
            && other.is_gone().await
        {
            eprintln!(
                "ceiling: fleet: {} at {} left before the start: its index is free again",
                other.label(),
                other.address
            );
            *slot = None;
        }
        let taken = slots
            .get(join.index as usize)
            .and_then(Option::as_ref)
            .map(|other| format!("{} at {}", other.label(), other.address));
        match refusal(&join, settings, taken) {
            Some(reason) => {
                eprintln!(
                    "ceiling: fleet: refused a join from {address} (host {}, {}): {reason}",
                    join.index, join.name
                );
                agent.send(&ToAgent::Refused { reason }).await;
            }
            None => {
                let welcome = ToAgent::Welcome {
                    index: join.index,
                    hosts: n,
                    join_timeout_ms: settings.join_timeout.as_millis() as u64,
                };
                if agent.send(&welcome).await {
                    let index = join.index as usize;
                    slots[index] = Some(agent);
                    eprintln!(
                        "ceiling: fleet: host {index} ({}) joined from {address} ({} of {n}){}",
                        join.name,
                        joined(&slots).len(),
                        nat_between(join.own_address.as_deref(), address)
                            .map(|own| format!(
                                "; its own address is {own}: a NAT is between (SNAT to its \
                                 node's address?)"
                            ))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    // The barrier is passed: every join from now on is refused at once.
    started.store(true, Ordering::SeqCst);
    let mut agents: Vec<Agent> = slots.into_iter().flatten().collect();
    // Every clock at once: the pings of one agent do not wait for another's.
    let mut measured = tokio::task::JoinSet::new();
    for mut agent in agents.drain(..) {
        measured.spawn(async move {
            let result = agent.measure_clock().await;
            (agent, result)
        });
    }
    while let Some(done) = measured.join_next().await {
        let (agent, result) = done.expect("a clock measurement does not panic");
        if let Err(why) = result {
            return Err(FleetError::Left {
                index: agent.index,
                name: agent.name,
                why,
            });
        }
        agents.push(agent);
    }
    agents.sort_by_key(|a| a.index);
    Ok(agents)
}

/// Why `join` is refused, if it is.
fn refusal(join: &Join, settings: &FleetSettings, taken: Option<String>) -> Option<String> {
    let ours = Join::new(String::new(), 0, None, String::new());
    if !same_token(&join.token, &settings.token) {
        return Some(
            "wrong token: the agent's --token (or CEILING_FLEET_TOKEN) is not the \
             coordinator's --fleet-token"
                .into(),
        );
    }
    if join.ceiling_version != ours.ceiling_version
        || join.protocol != ours.protocol
        || join.histogram != ours.histogram
    {
        return Some(format!(
            "another ceiling: the agent is ceiling {} (protocol {}, histograms {}), the \
             coordinator ceiling {} (protocol {}, histograms {}): run the same ceiling on every \
             host",
            join.ceiling_version,
            join.protocol,
            join.histogram,
            ours.ceiling_version,
            ours.protocol,
            ours.histogram
        ));
    }
    if let Some(hosts) = join.hosts
        && hosts != settings.hosts
    {
        return Some(format!(
            "the agent was told {hosts} host(s), the coordinator runs a fleet of {}: give \
             every agent the same --hosts as the coordinator's --fleet",
            settings.hosts
        ));
    }
    if join.index >= settings.hosts {
        return Some(format!(
            "index {} is out of range: the fleet has {} host(s), indexes 0 to {}",
            join.index,
            settings.hosts,
            settings.hosts - 1
        ));
    }
    taken.map(|other| {
        format!(
            "index {} already joined ({other}): give each agent its own --index",
            join.index
        )
    })
}

/// Accepts connections for the life of the runtime: each one's join goes
/// to the gatherer until the start, and is refused after it.
async fn accept_joins(
    listener: TcpListener,
    arrivals: mpsc::Sender<Arrival>,
    started: Arc<AtomicBool>,
) {
    loop {
        let Ok((stream, address)) = listener.accept().await else {
            continue;
        };
        let (arrivals, started) = (arrivals.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            let Some(arrival) = read_join(stream, address).await else {
                return;
            };
            if started.load(Ordering::SeqCst) {
                let Arrival {
                    join, mut writer, ..
                } = arrival;
                eprintln!(
                    "ceiling: fleet: refused a join from {address} (host {}, {}): the test \
                     already started",
                    join.index, join.name
                );
                let reason = "the test already started: an agent cannot join (or rejoin) a \
                              running test; start a new test"
                    .to_string();
                let line = serde_json::to_string(&ToAgent::Refused { reason })
                    .expect("a message serializes");
                let _ = tokio::time::timeout(SILENCE, send_line(&mut writer, &line)).await;
                return;
            }
            let _ = arrivals.send(arrival).await;
        });
    }
}

/// The first line of a new connection, if it is a join.
async fn read_join(stream: TcpStream, address: SocketAddr) -> Option<Arrival> {
    let _ = stream.set_nodelay(true);
    let (read, writer) = stream.into_split();
    let mut reader = BufReader::new(read);
    // Anyone may connect: the first line is read within a bound of time
    // and of bytes, before the token is known to be right.
    let mut line = Vec::new();
    let mut bounded = (&mut reader).take(JOIN_LINE_MAX);
    let read = bounded.read_until(b'\n', &mut line);
    let read = tokio::time::timeout(JOIN_LINE_TIMEOUT, read).await;
    if !matches!(read, Ok(Ok(n)) if n > 0) {
        return None;
    }
    let join = match serde_json::from_slice(&line) {
        Ok(ToCoordinator::Join(join)) => join,
        _ => {
            eprintln!(
                "ceiling: fleet: {address} did not start with a join (a line of at most {} \
                 bytes): dropped",
                JOIN_LINE_MAX
            );
            return None;
        }
    };
    Some(Arrival {
        join,
        address,
        lines: reader.lines(),
        writer,
    })
}

/// One agent's run, on its engine thread: the spec and the start, its
/// actual start, then the worker protocol until it ends or is lost.
async fn relay_agent(
    k: usize,
    mut relay: Relay<'_>,
    mut agent: Agent,
    go: Go,
    books: &Mutex<Vec<HostBook>>,
) {
    let start_ns = go.start_ns;
    let go = ToAgent::Go {
        spec: Box::new(relay.spec(go.threads)),
        start_at_unix_ns: start_ns + agent.offset_ns,
        names: go.names,
    };
    let mut start_offset_ms = None;
    let mut targets_resolved = Vec::new();
    let ended = if !agent.send(&go).await {
        Ended::Died(Death::without_pid(
            "connection lost before its start".into(),
        ))
    } else {
        let wait = Duration::from_nanos((start_ns - unix_ns_now()).max(0) as u64) + SILENCE;
        match tokio::time::timeout(wait, agent.lines.next_line()).await {
            Ok(Ok(Some(line))) => match serde_json::from_str(&line) {
                Ok(ToCoordinator::Started {
                    agent_unix_ns,
                    targets_resolved: resolved,
                }) => {
                    targets_resolved = resolved;
                    let ours = agent_unix_ns - agent.offset_ns;
                    start_offset_ms = Some((ours - start_ns) as f64 / 1e6);
                    converse(&mut relay, agent).await
                }
                Ok(ToCoordinator::CannotStart { reason }) => {
                    Ended::Died(Death::without_pid(format!("could not start: {reason}")))
                }
                _ => Ended::Died(Death::without_pid(format!(
                    "said something else than its start: {line}"
                ))),
            },
            Ok(_) => Ended::Died(Death::without_pid(
                "connection lost before its start".into(),
            )),
            Err(_) => Ended::Died(Death::without_pid(format!(
                "did not start within {} s of the start time",
                SILENCE.as_secs()
            ))),
        }
    };
    let tally = relay.finish(ended);
    let mut books = books.lock().unwrap_or_else(|e| e.into_inner());
    let book = &mut books[k];
    book.start_offset_ms = start_offset_ms;
    book.targets_resolved = targets_resolved;
    book.tally = Some(tally);
}

/// What one agent is told to start with, beside its spec.
struct Go {
    threads: usize,
    start_ns: i64,
    names: Vec<NamedTarget>,
}

/// The worker protocol over the agent's connection, with a heartbeat
/// both ways; says how the agent ended.
async fn converse(relay: &mut Relay<'_>, agent: Agent) -> Ended {
    let link = Link {
        heartbeat: Some(HEARTBEAT),
        silence: Some(SILENCE),
    };
    let conversed = relay.converse(None, agent.lines, agent.writer, link).await;
    match conversed.broken {
        None if conversed.finished => Ended::Clean,
        None => Ended::Died(Death::without_pid(
            "connection lost: it closed before its last report (killed, or its host went \
             down)"
                .into(),
        )),
        Some(broken) => Ended::Died(Death::without_pid(format!("connection lost: {broken}"))),
    }
}

/// The agent's own address when the coordinator sees it from another: a
/// NAT between them.
fn nat_between(own: Option<&str>, seen: SocketAddr) -> Option<&str> {
    let own = own?;
    let ip: std::net::IpAddr = own.parse().ok()?;
    (ip.to_canonical() != seen.ip().to_canonical()).then_some(own)
}

/// What the hosts' addresses tell about what they share: hosts seen from
/// one address share its ports to each target (and, behind a NAT, its
/// conntrack table); a host seen from another address than its own is
/// behind a NAT.
fn address_notes(hosts: &[FleetHost]) -> Vec<String> {
    let ip = |address: &str| {
        address.parse::<SocketAddr>().map_or_else(
            |_| address.to_string(),
            |a| a.ip().to_canonical().to_string(),
        )
    };
    let mut notes = Vec::new();
    let mut by_ip: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for h in hosts {
        by_ip.entry(ip(&h.address)).or_default().push(h.index);
    }
    for (address, indexes) in by_ip.iter().filter(|(_, i)| i.len() > 1) {
        notes.push(format!(
            "hosts {} reach the coordinator from one address ({address}): if they reach the \
             target from it too, they share its ports to each target (about 28,000 in Linux's \
             default range) and its conntrack table",
            list(indexes)
        ));
    }
    for h in hosts {
        if let (Some(own), Ok(seen)) = (&h.own_address, h.address.parse::<SocketAddr>())
            && nat_between(Some(own), seen).is_some()
        {
            notes.push(format!(
                "host {} ({}) is behind a NAT: its own address is {own}, the coordinator sees {}",
                h.index,
                h.name,
                seen.ip()
            ));
        }
    }
    notes
}

/// What the coordinator knows of one host.
struct HostBook {
    index: u64,
    name: String,
    address: String,
    own_address: Option<String>,
    clock_offset_ms: f64,
    rtt_ms: f64,
    start_offset_ms: Option<f64>,
    /// What the target names resolved to on its host.
    targets_resolved: Vec<ResolvedTarget>,
    /// Its reports, summed, once its relay ended.
    tally: Option<Tally>,
}

impl HostBook {
    fn label(&self) -> String {
        format!("host {} ({})", self.index, self.name)
    }
}

/// A started fleet: its hosts' books, for the summary once the run ended.
pub struct Fleet {
    /// Drives the agents' connections (and refuses late joins) until the
    /// fleet is dropped.
    _runtime: tokio::runtime::Runtime,
    books: Arc<Mutex<Vec<HostBook>>>,
    deaths: Arc<Mutex<Vec<WorkerDeath>>>,
}

impl Fleet {
    /// The agents lost so far.
    pub fn deaths(&self) -> &Mutex<Vec<WorkerDeath>> {
        &self.deaths
    }

    /// Each host's figures and the start skew, once the engine has
    /// finished; `connections`: the run's.
    pub fn report(&self, connections: u64) -> FleetReport {
        let books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        let hosts: Vec<FleetHost> = books
            .iter()
            .map(|book| {
                let (totals, first_limit, segment, latency) = match &book.tally {
                    Some(tally) => (
                        host_totals(tally, connections),
                        tally.own_first_limit.as_ref().map(HostLimit::from_event),
                        format!("{}+{}", tally.segment.offset, tally.segment.stride),
                        tally
                            .latency
                            .as_ref()
                            .map(OwnLatency::percentiles)
                            .unwrap_or_default(),
                    ),
                    None => (Totals::default(), None, String::new(), BTreeMap::new()),
                };
                FleetHost {
                    index: book.index,
                    name: book.name.clone(),
                    address: book.address.clone(),
                    own_address: book.own_address.clone(),
                    targets_resolved: book.targets_resolved.clone(),
                    segment,
                    totals,
                    first_limit,
                    start_offset_ms: book.start_offset_ms,
                    clock_offset_ms: book.clock_offset_ms,
                    rtt_ms: book.rtt_ms,
                    latency,
                }
            })
            .collect();
        let offsets: Vec<f64> = hosts.iter().filter_map(|h| h.start_offset_ms).collect();
        let start_skew_ms = (offsets.len() >= 2).then(|| {
            let max = offsets.iter().copied().fold(f64::MIN, f64::max);
            let min = offsets.iter().copied().fold(f64::MAX, f64::min);
            max - min
        });
        let address_notes = address_notes(&hosts);
        FleetReport {
            hosts,
            start_skew_ms,
            address_notes,
        }
    }

    /// How late a host's report may come after the point of the run's
    /// grid it was cut at: the longest round trip (one way there, and up
    /// to as much again of error in its clock offset).
    pub fn report_lag(&self) -> Duration {
        let books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        let longest_ms = books.iter().map(|b| b.rtt_ms).fold(0.0, f64::max);
        Duration::from_secs_f64(longest_ms.max(0.0) / 1e3)
    }

    /// Each host's label by index: "host 3 (node-7)".
    pub fn labels(&self) -> Vec<String> {
        let books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        books.iter().map(HostBook::label).collect()
    }
}

/// Names the host a first limit was hit on, from its attempt (host k runs
/// the attempts with index % hosts == k), given the hosts' `labels`; its
/// evidence then says that the host readings are the coordinator's.
pub fn name_host(first: &mut FirstLimit, labels: &[String]) {
    if labels.is_empty() || first.host.is_some() {
        return;
    }
    let index = first.at_attempt.saturating_sub(1) % labels.len() as u64;
    let host = labels[index as usize].clone();
    first.evidence.message = format!(
        "hit on {host}; the host settings and counters quoted here are the coordinator's, \
         not that host's: {}",
        first.evidence.message
    );
    first.host = Some(host);
}

/// A host's totals from what it reported (its losses included).
fn host_totals(tally: &Tally, connections: u64) -> Totals {
    let r = &tally.reported;
    Totals {
        attempted: r.attempted,
        established: r.established,
        connect_failed: r.failed,
        unfinished: r.in_flight(),
        never_attempted: tally.segment.len(connections).saturating_sub(r.attempted),
        peak_active: tally.own_peak.min(r.established),
        closed_by_driver: r.closed_by_driver,
        closed_by_server: r.closed_by_server,
        lost_with_worker: r.lost_with_worker,
        held_at_end: r.active(),
        last_established_s: r.last_established_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FleetSettings {
        FleetSettings::resolve(Some(3), None, Some("t".into()), None)
            .unwrap()
            .unwrap()
    }

    fn join(index: u64) -> Join {
        Join::new("t".into(), index, Some(3), "node".into())
    }

    fn host(index: u64, address: &str, own: Option<&str>) -> FleetHost {
        FleetHost {
            index,
            name: format!("h{index}"),
            address: address.into(),
            own_address: own.map(String::from),
            targets_resolved: Vec::new(),
            segment: String::new(),
            totals: Totals::default(),
            first_limit: None,
            start_offset_ms: None,
            clock_offset_ms: 0.0,
            rtt_ms: 0.0,
            latency: BTreeMap::new(),
        }
    }

    #[test]
    fn hosts_seen_from_one_address_and_hosts_behind_a_nat_are_noted() {
        let notes = address_notes(&[
            host(0, "10.0.0.5:40000", Some("10.244.1.7")),
            host(1, "10.0.0.5:40001", Some("10.0.0.5")),
            host(2, "10.0.0.6:40000", None),
            host(3, "[::ffff:10.0.0.7]:1", Some("10.0.0.7")),
        ]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("hosts 0, 1 reach the coordinator from one address (10.0.0.5)")
        );
        assert!(notes[1].contains("host 0 (h0) is behind a NAT: its own address is 10.244.1.7"));
        assert!(address_notes(&[host(0, "10.0.0.5:1", Some("10.0.0.5"))]).is_empty());
    }

    #[test]
    fn a_join_is_refused_for_its_token_version_histograms_count_index_or_a_taken_index() {
        let s = settings();
        assert_eq!(refusal(&join(2), &s, None), None);
        let wrong = |change: fn(&mut Join)| {
            let mut j = join(1);
            change(&mut j);
            refusal(&j, &s, None).unwrap()
        };
        assert!(wrong(|j| j.token = "T".into()).starts_with("wrong token"));
        assert!(wrong(|j| j.ceiling_version = "0.0.1".into()).contains("is ceiling 0.0.1"));
        assert!(wrong(|j| j.protocol += 1).starts_with("another ceiling"));
        assert!(wrong(|j| j.histogram = "1..2 us".into()).contains("histograms 1..2 us"));
        assert!(wrong(|j| j.hosts = Some(4)).contains("told 4 host(s)"));
        assert!(wrong(|j| j.index = 3).contains("index 3 is out of range"));
        let taken = refusal(&join(1), &s, Some("host 1 (a) at 10.0.0.1:5".into())).unwrap();
        assert!(
            taken.contains("index 1 already joined (host 1 (a)"),
            "{taken}"
        );
    }

    #[test]
    fn fleet_flags_need_fleet_and_a_fleet_needs_a_token() {
        assert!(
            FleetSettings::resolve(None, None, None, None)
                .unwrap()
                .is_none()
        );
        let e = FleetSettings::resolve(None, Some("127.0.0.1:1".parse().unwrap()), None, None)
            .unwrap_err();
        assert!(
            e.starts_with("--fleet-listen is for a fleet's coordinator"),
            "{e}"
        );
        let e = FleetSettings::resolve(Some(2), None, Some(String::new()), None).unwrap_err();
        assert!(e.starts_with("--fleet needs a token"), "{e}");
        let s = settings();
        assert_eq!(s.listen.to_string(), super::super::DEFAULT_LISTEN);
        assert_eq!(s.join_timeout, super::super::DEFAULT_JOIN_TIMEOUT);
    }

    #[test]
    fn a_first_limit_is_named_after_the_host_whose_segment_holds_its_attempt() {
        let event = crate::model::FailureEvent::example(
            crate::model::LimitKind::PortExhaustion,
            302,
            0.1,
            102,
        );
        let mut first = FirstLimit {
            kind: event.kind,
            errno: event.errno,
            errno_name: None,
            syscall: event.syscall,
            at_attempt: event.attempt,
            at_elapsed_s: event.elapsed_s,
            active_at: event.active,
            source: event.source,
            target: event.target,
            host: None,
            evidence: crate::model::Evidence {
                message: "ports".into(),
                facts: Default::default(),
            },
            remedy: String::new(),
        };
        let labels: Vec<String> = (0..3).map(|k| format!("host {k} (h{k})")).collect();
        // Attempt 302 is index 301: 301 % 3 == 1.
        name_host(&mut first, &labels);
        assert_eq!(first.host.as_deref(), Some("host 1 (h1)"));
        assert!(
            first.evidence.message.starts_with("hit on host 1 (h1); ")
                && first.evidence.message.ends_with(": ports"),
            "{}",
            first.evidence.message
        );
        // Named once: the summary does not name it twice.
        name_host(&mut first, &labels);
        assert_eq!(first.evidence.message.matches("hit on").count(), 1);
    }

    #[test]
    fn the_refusal_after_the_join_timeout_names_the_missing_hosts() {
        let e = FleetError::NotGathered {
            missing: vec![1, 3],
            joined: vec![0, 2],
            waited: Duration::from_secs(60),
        };
        assert!(
            e.to_string().starts_with(
                "the fleet did not gather: no agent joined as host 1, 3 within 1m (joined: 0, 2)"
            ),
            "{e}"
        );
    }
}
