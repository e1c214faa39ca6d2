//! A worker thread: one single-threaded tokio runtime running one segment of
//! the plan. It paces attempts; an idle connection goes from connect() on
//! into its [`Holder`], a request pool's into its [`request::Pool`] (each
//! an epoll set of the worker's own), and an echo connection is a small
//! local task. Every outcome is recorded into the worker's own [`Delta`]
//! (an uncontended lock the aggregator takes once a tick).
//!
//! Stopping drops the worker's task set and empties its holder: every held
//! socket is closed by its destructor (FIN, or RST when SO_LINGER 0 was set
//! at establish), and the closes are counted in one step.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::LocalSet;
use tokio::time::{Instant, sleep_until};

use super::clock;
use super::conn::{self, AttemptError, BindPolicy, ConnectCall};
use super::hold::{self, HoldEnd, HoldObserver};
use super::holder::{HoldEnds, Holder};
use super::plan::{Endpoint, Segment};
use super::rate::Pacer;
use super::request::{self, PoolEnds};
use super::{Shared, StopReason};
use crate::classify::{self, AttemptContext};
use crate::model::{FailureEvent, PeerClose, Syscall};
use crate::scenario::units::HoldMode;
use crate::stats::{Delta, record_us};

/// connect() calls that use this much CPU are the kernel searching a nearly
/// full port space (normal loopback connects use tens of µs).
pub const PORT_SEARCH_SLOW: Duration = Duration::from_millis(1);

/// connect() calls whose CPU time is measured after one took
/// [`PORT_SEARCH_SLOW`] of wall time (and again after each slow one): a
/// port search slows every call, so it is confirmed on the next ones, and
/// a call that was merely preempted costs 1,024 cheap measurements.
const CPU_MEASURED_CALLS: u32 = 1024;

/// How often a worker re-reads the host's counters when it needs them to
/// classify a failure.
const HOST_SIGNALS_MAX_AGE: Duration = Duration::from_millis(100);

/// What the host's counters say about dropped SYNs.
#[derive(Debug, Clone, Copy, Default)]
struct HostSignals {
    /// ListenOverflows + ListenDrops moved since the run started (None:
    /// unreadable).
    listen_overflows_moved: Option<bool>,
    conntrack_full: bool,
}

/// How early the pacer may start an attempt: the timer's granularity.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Attempts a worker starts back to back before letting its tasks run.
const SPAWN_BATCH: u32 = 64;

/// Handshakes a worker keeps in flight at most when the rate is unlimited
/// (`--rate 0`): a window, so "as fast as possible" does not mean thousands
/// of half-open attempts, each with its task and tokio registration, whose
/// memory the allocator keeps after they are gone. A paced run has no
/// window: its attempts start when they are due, whatever is pending.
const UNPACED_WINDOW: u64 = 512;

/// A worker's runtime: built before the workers start (it takes fds).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs segment `segment` of the plan on this thread, on `runtime`, until
/// it is done or stopped.
pub fn run(
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    segment: Segment,
    recorder: Arc<Mutex<Delta>>,
) {
    let local = LocalSet::new();
    let (holder, pool) = {
        let _in_runtime = runtime.enter();
        match &shared.settings.requests {
            Some(requests) => {
                let host = shared.plan.targets.first().map(ToString::to_string);
                let pool = request::Pool::new(
                    requests,
                    &host.unwrap_or_default(),
                    shared.start,
                    Arc::clone(&recorder),
                );
                (None, Some(pool))
            }
            // Without an epoll set of its own (fd limit reached already),
            // the worker holds idle connections in their tasks.
            None => (Holder::new(shared.start).ok(), None),
        }
    };
    let worker = Rc::new(Worker {
        pool,
        active_by_source: RefCell::new(vec![0; shared.plan.sources.len()]),
        shared,
        holder,
        recorder,
        active: Cell::new(0),
        live_tasks: Cell::new(0),
        connecting: Cell::new(0),
        handshake_done: Notify::new(),
        all_done: Notify::new(),
        host_signals: Cell::new(None),
        cpu_measured_calls: Cell::new(0),
    });
    local.block_on(&runtime, Rc::clone(&worker).drive(segment));
    worker.shared.wait_for_openers();
    // Tasks still holding connections are dropped here; their sockets close.
    drop(local);
    if let Some(holder) = &worker.holder {
        holder.close_all();
    }
    if let Some(pool) = &worker.pool {
        pool.close_all();
    }
    worker.count_dropped_connections();
}

struct Worker {
    shared: Arc<Shared>,
    /// Request mode: this worker's part of the pool, its queue and its
    /// generator.
    pool: Option<request::Pool>,
    /// Idle established connections.
    holder: Option<Holder>,
    recorder: Arc<Mutex<Delta>>,
    /// Connections this worker holds now (for closing them in one step).
    active: Cell<u64>,
    active_by_source: RefCell<Vec<u64>>,
    /// Attempt tasks not yet finished.
    live_tasks: Cell<u64>,
    /// Attempts still waiting for their handshake.
    connecting: Cell<u64>,
    /// Signalled when a handshake ends (for the unpaced window).
    handshake_done: Notify,
    /// Signalled when `live_tasks` drops to zero.
    all_done: Notify,
    /// Host counters behind timeouts and resets, and when they were read.
    host_signals: Cell<Option<(Instant, HostSignals)>>,
    /// connect() calls still to time with the CPU clock (see
    /// [`CPU_MEASURED_CALLS`]).
    cpu_measured_calls: Cell<u32>,
}

impl Worker {
    async fn drive(self: Rc<Self>, segment: Segment) {
        let shared = Arc::clone(&self.shared);
        let mut control = shared.control.subscribe();
        let run_end = sleep_until(shared.run_deadline());
        tokio::pin!(run_end);
        let mut pacer = Pacer::new(shared.settings.pace, segment, shared.plan.connections);
        // This thread's share of --max-in-flight (its segment is one of
        // `stride`), or the unpaced window.
        let window = match shared.settings.max_in_flight {
            Some(n) => Some(n.div_ceil(segment.stride.max(1)).max(1)),
            None if matches!(shared.settings.pace, crate::scenario::Pace::Unlimited) => {
                Some(UNPACED_WINDOW)
            }
            None => None,
        };
        let mut batch = 0;
        if self.holder.is_some() {
            let worker = Rc::clone(&self);
            tokio::task::spawn_local(async move {
                if let Some(holder) = &worker.holder {
                    holder.run(&*worker).await;
                }
            });
        }
        if self.pool.is_some() {
            let worker = Rc::clone(&self);
            tokio::task::spawn_local(async move {
                if let Some(pool) = &worker.pool {
                    pool.run(&*worker).await;
                }
            });
        }
        while let Some((index, offset)) = pacer.peek() {
            let now = Instant::now();
            let state = *control.borrow_and_update();
            if state.stop.is_some() {
                break;
            }
            let Some(intended) = state.schedule.instant_of(offset, now) else {
                // Paused: wait for a resume (or a stop, or the end).
                tokio::select! {
                    _ = control.changed() => continue,
                    _ = &mut run_end => break,
                }
            };
            // Tokio's timer fires on whole milliseconds, up to 1 ms late:
            // wake up to TIMER_SLACK early instead, and measure latency from
            // the earlier of the intended and the actual start.
            if intended > now + TIMER_SLACK {
                tokio::select! {
                    _ = sleep_until(intended - TIMER_SLACK) => {}
                    _ = control.changed() => continue,
                    _ = &mut run_end => break,
                }
            }
            if self.connecting.get() >= window.unwrap_or(u64::MAX) {
                tokio::select! {
                    _ = self.handshake_done.notified() => continue,
                    _ = control.changed() => continue,
                    _ = &mut run_end => break,
                }
            }
            pacer.advance();
            self.connecting.set(self.connecting.get() + 1);
            let origin = intended.min(Instant::now());
            match (&self.pool, &self.holder) {
                // A request pool's: connect() here, the handshake and the
                // requests in the pool's epoll set; no task.
                (Some(pool), _) => self.start_pooled(pool, index, origin),
                // Idle: connect() here, the handshake and the hold in the
                // holder's epoll set; no task.
                (None, Some(holder)) if shared.settings.echo.is_none() => {
                    self.start_held(holder, index, origin)
                }
                _ => {
                    self.live_tasks.set(self.live_tasks.get() + 1);
                    tokio::task::spawn_local(Rc::clone(&self).attempt(index, origin));
                }
            }
            batch += 1;
            if batch >= SPAWN_BATCH {
                batch = 0;
                tokio::task::yield_now().await;
            }
        }
        shared.opening_workers.fetch_sub(1, Ordering::SeqCst);
        let connections = shared.plan.connections.max(1);
        // This worker's part of the pool, and so of the request rate (a
        // worker with no connection of the pool gets no requests).
        let share = segment.len(connections) as f64 / connections as f64;
        if let Some(pool) = &self.pool
            && !pool.is_closed_loop()
            && share > 0.0
        {
            // Requests start once this worker's share of the pool is open.
            while self.connecting.get() > 0 && control.borrow().stop.is_none() {
                tokio::select! {
                    _ = self.handshake_done.notified() => {}
                    _ = control.changed() => {}
                    _ = &mut run_end => return,
                }
            }
            let requests = shared
                .settings
                .requests
                .as_ref()
                .expect("a pool has settings");
            let pace = request::share_of(requests.pace, share);
            let ready = shared.start.elapsed();
            tokio::select! {
                _ = pool.generate(
                    pace,
                    ready,
                    shared.run_deadline(),
                    &mut control,
                    &*self,
                ) => {}
                _ = &mut run_end => return,
            }
        }
        while self.busy() && control.borrow().stop.is_none() {
            tokio::select! {
                _ = self.all_done.notified() => {}
                _ = control.changed() => {}
                _ = &mut run_end => return,
            }
        }
    }

    /// One attempt, from socket() to the close of the held connection.
    /// `origin` is the intended start, or the actual one when the pacer
    /// started it early: latency is measured from it.
    async fn attempt(self: Rc<Self>, index: u64, origin: Instant) {
        if let Some(stream) = self.open(index, origin).await {
            let endpoint = self.shared.plan.endpoint(index);
            let settings = &self.shared.settings;
            let established_at = Instant::now();
            let until = match settings.hold {
                HoldMode::For(hold) => clock::after(established_at, hold),
                HoldMode::UntilEnd => self.shared.run_deadline(),
            };
            let observer = AttemptObserver {
                worker: &self,
                attempt: index + 1,
            };
            let end = hold::hold(&stream, until, settings.echo.as_ref(), &observer).await;
            drop(stream);
            self.closed(index, &endpoint, end, established_at.elapsed());
        }
        self.live_tasks.set(self.live_tasks.get() - 1);
        self.notify_if_done();
    }

    /// socket() to the handshake's end: the established connection, or
    /// None when the attempt failed (recorded either way).
    async fn open(&self, index: u64, origin: Instant) -> Option<TcpStream> {
        let endpoint = self.shared.plan.endpoint(index);
        let bind = self.begin(&endpoint);
        let settings = &self.shared.settings;
        let deadline = clock::after(Instant::now(), settings.connect_timeout);
        let mut call = self.connect_call();
        let opened = conn::open(bind, endpoint.target, deadline, settings.close, &mut call).await;
        self.handshake_ended();
        self.note_connect_call(call);
        let stream = match opened {
            Err(error) => {
                self.handshake_failed(index, &endpoint, origin, error);
                return None;
            }
            Ok(stream) => stream,
        };
        let latency = origin.elapsed();
        let retransmits = conn::handshake_retransmits(&stream);
        self.record_established(&endpoint, latency, retransmits);
        Some(stream)
    }

    /// An idle attempt: socket(), bind(), connect() now; its handshake and
    /// hold go on in `holder`, which reports back through [`HoldEnds`].
    fn start_held(&self, holder: &Holder, index: u64, origin: Instant) {
        self.start_watched(index, origin, |socket, deadline, maybe_done| {
            holder.start_connecting(socket, index, origin, deadline, maybe_done, self)
        });
    }

    /// A pooled attempt: socket(), bind(), connect() now; its handshake and
    /// requests go on in `pool`, which reports back through [`PoolEnds`].
    fn start_pooled(&self, pool: &request::Pool, index: u64, origin: Instant) {
        self.start_watched(index, origin, |socket, deadline, maybe_done| {
            pool.start_connecting(socket, index, origin, deadline, maybe_done, self)
        });
    }

    /// socket(), bind(), connect() now, then `watch(socket, its handshake's
    /// deadline, whether the target is on this host)` takes it over.
    fn start_watched(
        &self,
        index: u64,
        origin: Instant,
        watch: impl FnOnce(socket2::Socket, Instant, bool) -> std::io::Result<()>,
    ) {
        let endpoint = self.shared.plan.endpoint(index);
        let bind = self.begin(&endpoint);
        let settings = &self.shared.settings;
        let mut call = self.connect_call();
        let started = conn::start(bind, endpoint.target, settings.close, &mut call);
        self.note_connect_call(call);
        let deadline = clock::after(Instant::now(), settings.connect_timeout);
        let maybe_done = self.shared.target_local[endpoint.target_index];
        let held = started.and_then(|socket| {
            watch(socket, deadline, maybe_done)
                // epoll_ctl refused it (ENOMEM, or ENOSPC at
                // fs.epoll.max_user_watches), or there is no epoll set:
                // counted against connect.
                .map_err(|e| AttemptError::from_io(Syscall::Connect, e))
        });
        if let Err(error) = held {
            self.handshake_ended();
            self.handshake_failed(index, &endpoint, origin, error);
        }
    }

    /// Counts the attempt and says how its socket is bound.
    fn begin(&self, endpoint: &Endpoint) -> BindPolicy {
        self.record(|d| {
            d.attempted += 1;
            if let Some(i) = endpoint.source_index {
                d.sources[i].attempted += 1;
            }
        });
        BindPolicy {
            addr: endpoint.bind,
            explicit_port: self.shared.plan.source_ports.is_some(),
            no_port: self.shared.settings.bind_address_no_port,
        }
    }

    /// One handshake fewer under way (for the unpaced window).
    fn handshake_ended(&self) {
        self.connecting.set(self.connecting.get() - 1);
        self.handshake_done.notify_one();
    }

    fn handshake_failed(
        &self,
        index: u64,
        endpoint: &Endpoint,
        origin: Instant,
        error: AttemptError,
    ) {
        // A RST that answers the SYN is ECONNREFUSED; ECONNRESET means the
        // handshake completed and the target then reset the connection
        // before ceiling saw it established: it was established, and the
        // target closed it at age 0.
        if error.syscall == Syscall::Connect && error.errno == Some(libc::ECONNRESET) {
            self.record_established(endpoint, origin.elapsed(), 0);
            let end = HoldEnd::ServerClosed {
                how: PeerClose::Rst,
                errno: error.errno,
                bytes: None,
            };
            self.closed(index, endpoint, end, Duration::ZERO);
        } else {
            self.attempt_failed(index, endpoint, error);
        }
    }

    /// Attempts in flight or connections held.
    fn busy(&self) -> bool {
        self.live_tasks.get() > 0
            || self.holder.as_ref().is_some_and(|h| !h.is_empty())
            || self.pool.as_ref().is_some_and(|p| !p.is_empty())
    }

    fn notify_if_done(&self) {
        if !self.busy() {
            self.all_done.notify_one();
        }
    }

    fn record(&self, update: impl FnOnce(&mut Delta)) {
        let mut delta = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        update(&mut delta);
    }

    /// A connect() call to time: with the CPU clock while a port search is
    /// suspected.
    fn connect_call(&self) -> ConnectCall {
        ConnectCall {
            measure_cpu: self.cpu_measured_calls.get() > 0,
            ..ConnectCall::default()
        }
    }

    fn note_connect_call(&self, call: ConnectCall) {
        let slow = PORT_SEARCH_SLOW.as_micros() as u64;
        let Some(cpu_us) = call.cpu_us else {
            if call.wall_us >= slow {
                self.cpu_measured_calls.set(CPU_MEASURED_CALLS);
            }
            return;
        };
        let searching = cpu_us >= slow;
        self.cpu_measured_calls.set(if searching {
            CPU_MEASURED_CALLS
        } else {
            self.cpu_measured_calls.get().saturating_sub(1)
        });
        self.record(|d| {
            if searching {
                d.warnings.port_search_slow += 1;
            }
            d.warnings.connect_syscall_max_us = d.warnings.connect_syscall_max_us.max(cpu_us);
        });
    }

    fn record_established(&self, endpoint: &Endpoint, latency: Duration, retransmits: u32) {
        self.active.set(self.active.get() + 1);
        if let Some(i) = endpoint.source_index {
            self.active_by_source.borrow_mut()[i] += 1;
        }
        let now_active = self.shared.active.fetch_add(1, Ordering::Relaxed) + 1;
        let at = self.shared.start.elapsed().as_secs_f64();
        self.record(|d| {
            d.established += 1;
            // The peak is noted where the count goes up: exact, not sampled.
            d.note_active(now_active);
            d.last_established_s = d.last_established_s.max(at);
            record_us(&mut d.connect_us, latency.as_micros() as u64);
            if retransmits > 0 {
                d.warnings.syn_retransmit_handshakes += 1;
            }
            if let Some(i) = endpoint.source_index {
                d.sources[i].established += 1;
            }
        });
    }

    fn closed(&self, index: u64, endpoint: &Endpoint, end: HoldEnd, age: Duration) {
        self.active.set(self.active.get() - 1);
        if let Some(i) = endpoint.source_index {
            self.active_by_source.borrow_mut()[i] -= 1;
        }
        let active_before = self.shared.active.fetch_sub(1, Ordering::Relaxed);
        let source_closed = |d: &mut Delta| {
            if let Some(i) = endpoint.source_index {
                d.sources[i].closed += 1;
            }
        };
        match end {
            HoldEnd::Expired => self.record(|d| {
                d.closed_by_driver += 1;
                source_closed(d);
            }),
            HoldEnd::ServerClosed { how, errno, bytes } => {
                let age_ms = age.as_millis() as u64;
                let at_ms = self.shared.start.elapsed().as_millis() as u64;
                let syscall = Syscall::Read;
                let ctx = AttemptContext {
                    established: true,
                    age_ms: Some(age_ms),
                    ..self.context(endpoint, errno)
                };
                let mut event = self.event(index, endpoint, syscall, errno, &ctx);
                event.active = active_before;
                event.peer_close = Some(how);
                event.age_ms = Some(age_ms);
                event.server_bytes = bytes;
                let is_limit = event.kind.is_limit();
                self.record(|d| {
                    d.closed_by_server += 1;
                    d.record_server_close(age_ms, active_before.saturating_sub(1), at_ms);
                    source_closed(d);
                    d.record_event(event);
                });
                self.stop_if_limit(is_limit);
            }
        }
    }

    fn attempt_failed(&self, index: u64, endpoint: &Endpoint, error: AttemptError) {
        let ctx = self.context(endpoint, error.errno);
        let mut event = self.event(index, endpoint, error.syscall, error.errno, &ctx);
        event.syn_retransmits = error.syn_retransmits;
        self.failed(event, endpoint);
    }

    fn context(&self, endpoint: &Endpoint, errno: Option<i32>) -> AttemptContext {
        let explicit_port = self.shared.plan.source_ports.is_some();
        let target_local = self.shared.target_local[endpoint.target_index];
        // The host's counters only matter for timeouts and resets; reading
        // them for every refusal would cost a file read per failure.
        let needs_counters = matches!(
            errno,
            None | Some(libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT)
        );
        let signals = if needs_counters {
            self.host_signals()
        } else {
            HostSignals::default()
        };
        AttemptContext {
            source_bound: endpoint.source_index.is_some(),
            explicit_source_port: explicit_port,
            no_port_bind: endpoint.source_index.is_some()
                && !explicit_port
                && self.shared.settings.bind_address_no_port,
            established: false,
            target_local,
            listen_overflows_moved: if target_local {
                signals.listen_overflows_moved
            } else {
                None
            },
            conntrack_full: signals.conntrack_full,
            age_ms: None,
            oom_killed: false,
        }
    }

    fn event(
        &self,
        index: u64,
        endpoint: &Endpoint,
        syscall: Syscall,
        errno: Option<i32>,
        ctx: &AttemptContext,
    ) -> FailureEvent {
        FailureEvent {
            kind: classify::classify(syscall, errno, ctx),
            syscall,
            errno,
            attempt: index + 1,
            elapsed_s: self.shared.start.elapsed().as_secs_f64(),
            active: self.shared.active.load(Ordering::Relaxed),
            source: match endpoint.source_index {
                Some(i) => self.shared.plan.sources[i].to_string(),
                None => "(kernel-chosen)".into(),
            },
            target: endpoint.target.to_string(),
            peer_close: None,
            age_ms: None,
            server_bytes: None,
            syn_retransmits: None,
        }
    }

    /// An attempt that ended without a connection.
    fn failed(&self, event: FailureEvent, endpoint: &Endpoint) {
        let is_limit = event.kind.is_limit();
        let source_index = endpoint.source_index.unwrap_or(usize::MAX);
        self.record(|d| d.record_failure(event, source_index));
        self.stop_if_limit(is_limit);
    }

    fn stop_if_limit(&self, is_limit: bool) {
        if is_limit && self.shared.settings.stop_at_first_limit {
            self.shared.stop(StopReason::FirstLimit);
        }
    }

    /// The host's listen-drop and conntrack state, read at most every
    /// [`HOST_SIGNALS_MAX_AGE`].
    fn host_signals(&self) -> HostSignals {
        let now = Instant::now();
        if let Some((read_at, signals)) = self.host_signals.get()
            && now - read_at < HOST_SIGNALS_MAX_AGE
        {
            return signals;
        }
        let listen_overflows_moved = match (
            self.shared.listen_drops_at_start,
            classify::host::listen_drop_count(),
        ) {
            (Some(start), Some(now)) => Some(now > start),
            _ => None,
        };
        let signals = HostSignals {
            listen_overflows_moved,
            conntrack_full: classify::host::conntrack_full(),
        };
        self.host_signals.set(Some((now, signals)));
        signals
    }

    /// Counts the connections the task set held when it was dropped as
    /// closed by ceiling.
    fn count_dropped_connections(&self) {
        let active = self.active.replace(0);
        if active == 0 {
            return;
        }
        self.shared.active.fetch_sub(active, Ordering::Relaxed);
        let by_source = std::mem::take(&mut *self.active_by_source.borrow_mut());
        self.record(|d| {
            d.closed_by_driver += active;
            for (counters, held) in d.sources.iter_mut().zip(by_source) {
                counters.closed += held;
            }
        });
    }
}

impl HoldEnds for Worker {
    fn established(&self, index: u64, latency: Duration, retransmits: u32) -> Option<Instant> {
        self.handshake_ended();
        let endpoint = self.shared.plan.endpoint(index);
        self.record_established(&endpoint, latency, retransmits);
        match self.shared.settings.hold {
            HoldMode::For(hold) => Some(clock::after(Instant::now(), hold)),
            // Closed when the run ends and the holder is emptied.
            HoldMode::UntilEnd => None,
        }
    }

    fn connect_failed(&self, index: u64, error: AttemptError, after: Duration) {
        self.handshake_ended();
        let endpoint = self.shared.plan.endpoint(index);
        let origin = Instant::now()
            .checked_sub(after)
            .unwrap_or_else(Instant::now);
        self.handshake_failed(index, &endpoint, origin, error);
        self.notify_if_done();
    }

    fn ended(&self, index: u64, end: HoldEnd, age: Duration) {
        let endpoint = self.shared.plan.endpoint(index);
        self.closed(index, &endpoint, end, age);
        self.notify_if_done();
    }
}

impl PoolEnds for Worker {
    /// A kept-alive connection the server ended, or one it said it
    /// closes: opened again (a reconnect), unless the run is over.
    fn reopen(&self, index: u64) {
        if self.shared.control.borrow().stop.is_some()
            || Instant::now() >= self.shared.run_deadline()
        {
            return;
        }
        self.record(|d| d.requests_mut().reconnects += 1);
        self.connecting.set(self.connecting.get() + 1);
        if let Some(pool) = &self.pool {
            self.start_pooled(pool, index, Instant::now());
        }
    }
}

/// What one held connection reports, with its attempt number.
struct AttemptObserver<'a> {
    worker: &'a Worker,
    attempt: u64,
}

impl HoldObserver for AttemptObserver<'_> {
    fn rtt(&self, rtt: Duration) {
        self.worker
            .record(|d| record_us(&mut d.rtt_us, rtt.as_micros() as u64));
    }

    fn echo_unanswered(&self) {
        self.worker.record(|d| d.warnings.echo_unanswered += 1);
    }

    fn echo_silent(&self) {
        let attempt = self.attempt;
        self.worker.record(|d| {
            let w = &mut d.warnings;
            w.echo_silent_connections += 1;
            w.echo_silent_first_attempt = Some(
                w.echo_silent_first_attempt
                    .map_or(attempt, |a| a.min(attempt)),
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rate::Schedule;
    use crate::engine::{Control, Settings};

    /// A worker of a one-attempt plan to 127.0.0.1:9, outside any runtime.
    fn test_worker() -> Rc<Worker> {
        let (control, _) = tokio::sync::watch::channel(Control {
            stop: None,
            schedule: Schedule::starting_at(Instant::now()),
        });
        let shared = Arc::new(Shared {
            plan: crate::engine::plan::Plan::new(
                vec![],
                vec!["127.0.0.1:9".parse().unwrap()],
                None,
                1,
            ),
            settings: Settings::for_tests(),
            start: Instant::now(),
            target_local: vec![true],
            listen_drops_at_start: None,
            control,
            active: Default::default(),
            opening_workers: Default::default(),
            running_workers: Default::default(),
            finished: Default::default(),
        });
        Rc::new(Worker {
            pool: None,
            active_by_source: RefCell::new(vec![]),
            shared,
            holder: None,
            recorder: Arc::new(Mutex::new(Delta::new(0))),
            active: Cell::new(0),
            live_tasks: Cell::new(0),
            connecting: Cell::new(0),
            handshake_done: Notify::new(),
            all_done: Notify::new(),
            host_signals: Cell::new(None),
            cpu_measured_calls: Cell::new(0),
        })
    }

    /// Every attempt in flight, and every echo connection, is one of these
    /// futures: a buffer or a second timer kept across an await shows up
    /// here first. (Idle held connections live in the holder instead.)
    #[test]
    fn a_connection_task_stays_small() {
        let worker = test_worker();
        let task = worker.attempt(0, Instant::now());
        let size = std::mem::size_of_val(&task);
        // 776 bytes in a debug build.
        let limit = 832;
        assert!(
            size <= limit,
            "a connection's task takes {size} bytes (limit {limit})"
        );
    }

    /// The CPU clock (a syscall) is read only after a call took 1 ms of wall
    /// time, and only slow CPU times count as port search.
    #[test]
    fn connect_cpu_time_is_measured_only_once_a_call_was_slow() {
        let worker = test_worker();
        let slow_wall = PORT_SEARCH_SLOW.as_micros() as u64;
        let fast = |cpu_us| ConnectCall {
            measure_cpu: true,
            wall_us: 30,
            cpu_us,
        };
        assert!(!worker.connect_call().measure_cpu);
        worker.note_connect_call(ConnectCall {
            wall_us: 30,
            ..ConnectCall::default()
        });
        assert!(
            !worker.connect_call().measure_cpu,
            "a fast call changes nothing"
        );
        // Slow by the wall clock: preempted or searching; not counted yet.
        worker.note_connect_call(ConnectCall {
            wall_us: slow_wall,
            ..ConnectCall::default()
        });
        assert!(worker.connect_call().measure_cpu);
        worker.note_connect_call(fast(Some(slow_wall + 500)));
        worker.note_connect_call(fast(Some(40)));
        {
            let d = worker.recorder.lock().unwrap();
            assert_eq!(d.warnings.port_search_slow, 1);
            assert_eq!(d.warnings.connect_syscall_max_us, slow_wall + 500);
        }
        // Measured until CPU_MEASURED_CALLS fast calls in a row.
        for _ in 1..CPU_MEASURED_CALLS {
            assert!(worker.connect_call().measure_cpu);
            worker.note_connect_call(fast(Some(40)));
        }
        assert!(!worker.connect_call().measure_cpu);
        assert_eq!(worker.recorder.lock().unwrap().warnings.port_search_slow, 1);
    }
}
