//! The built-in target server (`ceiling serve`, and the embedded default
//! target of `ceiling run`).
//!
//! [`bind`] creates one listener per configured address (socket2:
//! `SO_REUSEADDR`, `IPV6_V6ONLY` on IPv6, the configured backlog) and returns
//! a [`Bound`] that is already listening, so its real addresses can be
//! printed before any connection is accepted. [`Bound::run`] then accepts on
//! every listener until its shutdown future completes, and returns what the
//! server did as [`ServerTotals`].
//!
//! Shutdown has the shape of mini-redis: the accept loops stop first (so the
//! totals are final), then a watch channel tells every connection task to
//! close, and the server waits, bounded, until the last task has dropped its
//! completion sender.
//!
//! With the defaults (hold, async, no cap, no idle timeout) one thread
//! outside the runtime accepts on every listener and a held connection is
//! an fd in that thread's epoll set and nothing else (the `idle`
//! submodule). Otherwise it costs one small task and no buffer:
//! it waits for read readiness and reads into a stack scratch buffer that
//! never lives across an await (see the `conn` submodule). [`bind_with`] adds
//! [`ServeOptions`]: the threads model (`threads`), a connection cap with
//! its [`WhenFull`] policy and an idle timeout (`slots` keeps who is
//! served); [`ProcessFigures`] is what serving costs the process.
//!
//! In a request mode ([`Mode::Answer`]) a connection answers requests of a
//! [`crate::protocol::Protocol`] in order, each after the service time (the `answer`
//! submodule), on a task or a thread as in the other modes.

mod accept;
mod answer;
mod conn;
mod idle;
mod options;
mod pool;
mod process;
mod slots;
mod threads;

use std::future::Future;
use std::io;
use std::net::{self, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use idle::IdleServer;
use slots::Shared;

pub use accept::{AcceptBackoff, AcceptErrorKind, classify_accept_error};
pub use options::{
    Cap, DEFAULT_THREAD_STACK, MAX_QUEUE, MAX_SERVICE_TIME, MAX_WORKERS, Model, Pool, ServeOptions,
    ServiceTime, WhenFull, WhenQueueFull, parse_max_conns, parse_model, parse_queue,
    parse_service_time, parse_size, parse_when_full, parse_when_queue_full, parse_workers,
};
pub use process::ProcessFigures;

/// The address `ceiling serve` listens on when none is given: loopback, so
/// the server is never reachable from outside unless asked.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(net::IpAddr::V4(net::Ipv4Addr::LOCALHOST), 0);

/// The listen backlog when none is given (the kernel caps it at
/// `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// How long [`Bound::run`] waits for connection tasks to finish after it
/// told them to stop. They stop at their next poll, so this only matters if
/// the runtime is starved; it keeps shutdown from hanging.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the server does with an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hold it and write back every byte that arrives.
    Echo,
    /// Hold it; read and discard what arrives.
    Hold,
    /// Close it at once (an orderly FIN).
    Close,
    /// Answer each request of this protocol (after the service time), in
    /// order, until the client closes or asks to.
    Answer(crate::protocol::Protocol),
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on; port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    pub mode: Mode,
    /// Passed to listen(); the kernel caps it at `net.core.somaxconn`. Small
    /// values reproduce accept-queue overflow.
    pub backlog: u32,
    /// false: listen but never accept.
    pub accept: bool,
    /// Set SO_REUSEPORT before bind, so several processes listen on the
    /// same address and the kernel spreads new connections among them by a
    /// hash of the 4-tuple (`serve --processes`; see [`reserve`]).
    pub reuse_port: bool,
}

impl Default for ServerConfig {
    /// One loopback listener on a free port, holding what it accepts.
    fn default() -> Self {
        ServerConfig {
            listen: vec![DEFAULT_LISTEN],
            mode: Mode::Hold,
            backlog: DEFAULT_BACKLOG,
            accept: true,
            reuse_port: false,
        }
    }
}

/// Connections the server turned away or closed to make room, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Over the cap, `close`: the reject message, then a FIN.
    pub full_close: u64,
    /// Over the cap, `reset`: a RST.
    pub full_reset: u64,
    /// Held connections closed (FIN) to make room, `close-oldest`.
    pub closed_oldest: u64,
    /// No thread could be started (threads model): message, then a FIN.
    pub thread_spawn_failed: u64,
}

impl Rejected {
    pub fn total(&self) -> u64 {
        self.full_close + self.full_reset + self.closed_oldest + self.thread_spawn_failed
    }
}

/// What the server did, printed at exit (and, with `serve --processes`,
/// sent by each server process to the parent as JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTotals {
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections held now (from [`Bound::run`]: when shutdown began).
    pub held: u64,
    /// The most connections held at once.
    pub peak_held: u64,
    /// accept() failures that made the server back off (EMFILE, ENFILE,
    /// ENOBUFS, ENOMEM, ...). Errors about one aborted connection are not
    /// counted.
    pub accept_errors: u64,
    /// Accepted, waiting for a slot (`queue`, `close-oldest`), not held.
    pub queued: u64,
    pub rejected: Rejected,
    /// Held connections closed by the idle timeout.
    pub idle_closed: u64,
    /// Requests read whole (request modes).
    pub requests: u64,
    /// Responses to them written whole.
    pub responses: u64,
    /// Input that was not a request of the protocol, or over its size
    /// bound: answered with the protocol's error, then closed.
    pub request_errors: u64,
    /// Requests answered busy because the pool's queue was full (`reject`).
    pub busy_rejected: u64,
    /// Connections closed because the pool's queue was full (`close`).
    pub busy_closed: u64,
    /// Requests waiting for a worker now (`--model pool`).
    pub request_queue: u64,
    /// Workers serving a request now.
    pub workers_busy: u64,
}

/// Live counters shared by the accept loops and connection tasks. Reading
/// them is a few relaxed atomic loads, cheap enough to poll every second.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Counted by the accept loops, once per accepted connection.
    accepted: AtomicU64,
    /// Incremented when a connection task starts holding, decremented (by
    /// [`HeldGuard`]'s drop) whenever it ends, however it ends.
    held: AtomicU64,
    /// Raised with `fetch_max` on every increment of `held`.
    peak_held: AtomicU64,
    /// Counted by the accept loops on errors that make them back off.
    accept_errors: AtomicU64,
    /// Up while a connection waits for a slot, down when it gets one or
    /// the server stops.
    queued: AtomicU64,
    rejected: RejectedCounters,
    idle_closed: AtomicU64,
    /// Counted by connections as they read requests, write responses, or
    /// refuse what is not a request.
    requests: AtomicU64,
    responses: AtomicU64,
    request_errors: AtomicU64,
    /// Counted by the worker pool as it turns requests away.
    busy_rejected: AtomicU64,
    busy_closed: AtomicU64,
    /// Up when a request joins the pool's queue, down when a worker takes
    /// it.
    request_queue: AtomicU64,
    /// Up while a worker serves a request.
    workers_busy: AtomicU64,
}

/// [`Rejected`], live.
#[derive(Debug, Default)]
struct RejectedCounters {
    full_close: AtomicU64,
    full_reset: AtomicU64,
    closed_oldest: AtomicU64,
    thread_spawn_failed: AtomicU64,
}

impl ServerStats {
    /// The counters now. Each is exact; they are not read as one atomic
    /// snapshot, which is fine for a live display.
    pub fn totals(&self) -> ServerTotals {
        ServerTotals {
            accepted: self.accepted.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
            peak_held: self.peak_held.load(Ordering::Relaxed),
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            rejected: Rejected {
                full_close: self.rejected.full_close.load(Ordering::Relaxed),
                full_reset: self.rejected.full_reset.load(Ordering::Relaxed),
                closed_oldest: self.rejected.closed_oldest.load(Ordering::Relaxed),
                thread_spawn_failed: self.rejected.thread_spawn_failed.load(Ordering::Relaxed),
            },
            idle_closed: self.idle_closed.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            responses: self.responses.load(Ordering::Relaxed),
            request_errors: self.request_errors.load(Ordering::Relaxed),
            busy_rejected: self.busy_rejected.load(Ordering::Relaxed),
            busy_closed: self.busy_closed.load(Ordering::Relaxed),
            request_queue: self.request_queue.load(Ordering::Relaxed),
            workers_busy: self.workers_busy.load(Ordering::Relaxed),
        }
    }

    /// Counts one more held connection until the guard drops.
    fn hold(self: &Arc<Self>) -> HeldGuard {
        self.count_held();
        HeldGuard(Arc::clone(self))
    }

    /// One more held connection (its owner calls [`Self::release`]).
    fn count_held(&self) {
        let now = self.held.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_held.fetch_max(now, Ordering::Relaxed);
    }

    /// One held connection fewer.
    fn release(&self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One held connection in [`ServerStats::held`]; dropping it (EOF, error,
/// shutdown, or the runtime dropping the task) takes it back out.
struct HeldGuard(Arc<ServerStats>);

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A listen failure, naming the step and the address. It travels inside an
/// [`io::Error`] of the same kind; the OS error is its `source()`.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {step}")]
pub struct ListenError {
    /// The configured address (port 0 as given).
    pub addr: SocketAddr,
    /// The call that failed: socket, setsockopt, bind or listen.
    pub step: &'static str,
    #[source]
    pub source: io::Error,
}

/// Listeners bound and listening, not yet accepting.
pub struct Bound {
    /// Non-blocking std listeners; they are registered with the tokio
    /// reactor inside [`Bound::run`], so [`bind`] works outside a runtime.
    listeners: Vec<net::TcpListener>,
    /// The real addresses (port 0 resolved), in config order.
    addrs: Vec<SocketAddr>,
    mode: Mode,
    /// Model, cap, idle timeout.
    options: ServeOptions,
    /// false: keep the listeners open but never accept (`--no-accept`).
    accept: bool,
    /// Shared with every accept loop and connection task.
    stats: Arc<ServerStats>,
    /// The workers of `--model pool`, started by [`bind_with`].
    pool: Option<Arc<pool::WorkerPool>>,
}

impl Bound {
    /// The addresses actually bound (port 0 resolved), in config order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// The live counters; they keep counting while [`Bound::run`] runs.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// Serves until `shutdown` completes, then closes everything.
    ///
    /// Works on a current-thread or a multi-thread runtime; it needs the
    /// runtime's I/O and time drivers.
    ///
    /// # Panics
    /// Each accept loop, in its own task, panics if its listener cannot be
    /// registered with the runtime's reactor (no I/O driver enabled).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> ServerTotals {
        let Bound {
            listeners,
            mode,
            options,
            accept,
            stats,
            pool,
            ..
        } = self;
        if !accept {
            // The kernel completes handshakes into the accept queue until it
            // is full; nobody takes them out.
            shutdown.await;
            drop(listeners);
            return stats.totals();
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let (stop_accepting_tx, stop_accepting_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let mut shared = Shared::new(mode, &options, Arc::clone(&stats), stop_rx, done_tx);
        shared.pool = pool;
        let shared = Arc::new(shared);
        // The plain holding server accepts on a thread of its own; every
        // other kind (or that one, if its thread cannot be made) in a task
        // per listener.
        let (idle, listeners) = if shared.plain_hold() {
            match IdleServer::start(listeners, Arc::clone(&stats)) {
                Ok(idle) => (Some(idle), Vec::new()),
                Err((_, listeners)) => (None, listeners),
            }
        } else {
            (None, listeners)
        };
        let mut accepting = JoinSet::new();
        for listener in listeners {
            accepting.spawn(accept::serve_listener(
                listener,
                Arc::clone(&shared),
                stop_accepting_rx.clone(),
            ));
        }

        shutdown.await;
        // Stop accepting first (the loops drop their listeners, and the
        // idle thread hands back the connections it holds), so the totals
        // cannot move after they are read.
        stop_accepting_tx.send_replace(true);
        let idle_set = match idle {
            Some(idle) => idle.stop().await,
            None => None,
        };
        while accepting.join_next().await.is_some() {}
        let totals = stats.totals();
        // Tasks see the watch; blocked threads see their socket shut down;
        // the idle sets close theirs as they drop.
        stop_tx.send_replace(true);
        shared.registry.stop_all();
        drop(idle_set);
        drop(shared);
        // recv() returns None once everything that serves dropped its
        // clone of `shared`, and with it the sender.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv()).await;
        // A response written just before the stop was counted by its task
        // after the write, which another thread may not have run yet when
        // the connection counts were read: the request counts are read
        // again now that every task is done.
        let settled = stats.totals();
        ServerTotals {
            requests: settled.requests,
            responses: settled.responses,
            request_errors: settled.request_errors,
            busy_rejected: settled.busy_rejected,
            busy_closed: settled.busy_closed,
            ..totals
        }
    }
}

/// Binds and listens on every configured address (IPv4 and IPv6), to serve
/// with the default [`ServeOptions`] (async, no cap, no idle timeout).
///
/// Errors are [`ListenError`]s inside an [`io::Error`] of the OS error's
/// kind (`AddrInUse`, `AddrNotAvailable`, `PermissionDenied`, ...).
pub fn bind(config: ServerConfig) -> io::Result<Bound> {
    bind_with(config, ServeOptions::default())
}

/// [`bind`], to serve with `options`: the model, a cap and its policy, an
/// idle timeout.
pub fn bind_with(config: ServerConfig, options: ServeOptions) -> io::Result<Bound> {
    if config.listen.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to listen on",
        ));
    }
    let mut listeners = Vec::with_capacity(config.listen.len());
    let mut addrs = Vec::with_capacity(config.listen.len());
    for &addr in &config.listen {
        let listener = listen_on(addr, config.backlog, config.reuse_port)?;
        addrs.push(listener.local_addr()?);
        listeners.push(listener);
    }
    let stats = Arc::default();
    let pool = match options.model {
        Model::Pool => Some(Arc::new(pool::WorkerPool::start(
            options.pool,
            options.thread_stack,
            &stats,
        )?)),
        Model::Async | Model::Threads => None,
    };
    Ok(Bound {
        listeners,
        addrs,
        mode: config.mode,
        options,
        accept: config.accept,
        stats,
        pool,
    })
}

/// One non-blocking listener on `addr`; with `reuse_port`, one of a
/// SO_REUSEPORT group.
fn listen_on(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<net::TcpListener> {
    let socket = bound_socket(addr, reuse_port)?;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    socket
        .listen(backlog)
        .map_err(|e| listen_error(addr, "listen", e))?;
    Ok(socket.into())
}

/// The OS error at `step` as a [`ListenError`] inside an error of the same
/// kind.
fn listen_error(addr: SocketAddr, step: &'static str, source: io::Error) -> io::Error {
    io::Error::new(source.kind(), ListenError { addr, step, source })
}

/// A non-blocking TCP socket bound to `addr`, not listening yet.
fn bound_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let fail = |step: &'static str| move |source: io::Error| listen_error(addr, step, source);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(fail("socket"))?;
    if addr.is_ipv6() {
        // Without it a [::]:P listener would also take 0.0.0.0:P.
        socket.set_only_v6(true).map_err(fail("IPV6_V6ONLY"))?;
    }
    // A restarted server can bind while old connections sit in TIME_WAIT.
    socket
        .set_reuse_address(true)
        .map_err(fail("SO_REUSEADDR"))?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(fail("SO_REUSEPORT"))?;
    }
    socket.set_nonblocking(true).map_err(fail("O_NONBLOCK"))?;
    socket.bind(&addr.into()).map_err(fail("bind"))?;
    Ok(socket)
}

/// A port held for a group of SO_REUSEPORT listeners in other processes:
/// a socket bound with SO_REUSEPORT that never listens, so it takes no
/// connections. Port 0 is resolved here, once, so every process of the
/// group binds the same port; the group's listeners bind it while this is
/// held, and it is dropped once they listen.
#[derive(Debug)]
pub struct Reservation {
    _socket: Socket,
    addr: SocketAddr,
}

impl Reservation {
    /// The reserved address (port 0 resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Reserves `addr` for SO_REUSEPORT listeners ([`ServerConfig::reuse_port`]).
///
/// First a plain bind (SO_REUSEADDR only, as a single listener would do)
/// checks that nobody listens there and picks the port for port 0, so a
/// port in use fails with the same `AddrInUse` [`ListenError`] as
/// [`bind`]; that probe is closed and the port is bound again with
/// SO_REUSEPORT. Without the probe, a SO_REUSEPORT bind would silently join
/// another group of the same user on that port.
pub fn reserve(addr: SocketAddr) -> io::Result<Reservation> {
    let probe = bound_socket(addr, false)?;
    let picked = probe_addr(&probe, addr)?;
    drop(probe);
    let socket = bound_socket(picked, true)?;
    Ok(Reservation {
        _socket: socket,
        addr: picked,
    })
}

fn probe_addr(socket: &Socket, addr: SocketAddr) -> io::Result<SocketAddr> {
    socket
        .local_addr()
        .and_then(|local| {
            local
                .as_socket()
                .ok_or_else(|| io::Error::other("bound socket has no IP address"))
        })
        .map_err(|e| listen_error(addr, "getsockname", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// `ceiling run` moves the server to its own runtime thread, and
    /// `ceiling serve` may spawn it on a multi-thread runtime.
    #[test]
    fn bound_and_its_run_future_are_send() {
        let bound = bind(ServerConfig::default()).expect("bind 127.0.0.1:0");
        assert_send(&bound);
        assert_send(&bound.run(async {}));
    }

    /// Whether this process's socket from `local` to `peer` has
    /// TCP_NODELAY set (found among its open fds).
    fn nodelay_of(local: SocketAddr, peer: SocketAddr) -> Option<bool> {
        use std::os::fd::BorrowedFd;
        for entry in std::fs::read_dir("/proc/self/fd").ok()? {
            let Some(fd) = entry
                .ok()
                .and_then(|e| e.file_name().to_str()?.parse().ok())
            else {
                continue;
            };
            // SAFETY: only borrowed for the calls below; an fd closed
            // meanwhile fails them.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let socket = socket2::SockRef::from(&fd);
            let ends = (socket.local_addr(), socket.peer_addr());
            if let (Ok(l), Ok(p)) = ends
                && l.as_socket() == Some(local)
                && p.as_socket() == Some(peer)
            {
                return socket.tcp_nodelay().ok();
            }
        }
        None
    }

    /// A server that writes back answers with Nagle's algorithm off: an
    /// echo written in chunks as it is read would otherwise keep its tail
    /// until the client's delayed ACK (up to 40 ms of service time); a
    /// holding server is left as the kernel made it.
    #[test]
    fn a_server_that_answers_turns_nagle_off_and_a_holding_one_does_not() {
        use std::io::{Read, Write};
        for (mode, nodelay) in [(Mode::Echo, true), (Mode::Hold, false)] {
            let bound = bind(ServerConfig {
                mode,
                ..ServerConfig::default()
            })
            .unwrap();
            let addr = bound.local_addrs()[0];
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(bound.run(async {
                    let _ = stopped.await;
                }))
            });
            let mut client = net::TcpStream::connect(addr).unwrap();
            client.write_all(b"x").unwrap();
            if mode == Mode::Echo {
                let mut back = [0; 1];
                client.read_exact(&mut back).unwrap();
            } else {
                // Accepted once the server counts it.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let found = nodelay_of(addr, client.local_addr().unwrap());
            drop(client);
            stop.send(()).unwrap();
            server.join().unwrap();
            assert_eq!(found, Some(nodelay), "{mode:?}");
        }
    }

    #[test]
    fn peak_held_keeps_the_highest_count() {
        let stats = Arc::new(ServerStats::default());
        let first = stats.hold();
        let second = stats.hold();
        drop(first);
        let third = stats.hold();
        assert_eq!((stats.totals().held, stats.totals().peak_held), (2, 2));
        drop((second, third));
        assert_eq!((stats.totals().held, stats.totals().peak_held), (0, 2));
    }

    #[test]
    fn no_address_is_an_error_not_a_silent_server() {
        let config = ServerConfig {
            listen: Vec::new(),
            ..ServerConfig::default()
        };
        let err = bind(config).err().expect("an error");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_reserved_port_takes_reuse_port_listeners_and_refuses_others() {
        let reserved = reserve(DEFAULT_LISTEN).expect("reserve 127.0.0.1:0");
        let addr = reserved.addr();
        assert_ne!(addr.port(), 0);
        let group = ServerConfig {
            listen: vec![addr],
            reuse_port: true,
            ..ServerConfig::default()
        };
        let first = bind(group.clone()).expect("first of the group");
        let second = bind(group).expect("second of the group");
        assert_eq!(first.local_addrs(), second.local_addrs());
        // A listener without SO_REUSEPORT cannot join, and nobody can
        // reserve a port someone listens on.
        let plain = bind(ServerConfig {
            listen: vec![addr],
            ..ServerConfig::default()
        });
        assert_eq!(
            plain.err().map(|e| e.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
        drop(reserved);
        let again = reserve(addr).expect_err("the group listens there");
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(again.to_string(), format!("cannot listen on {addr}: bind"));
    }

    #[test]
    fn listen_errors_name_the_address_and_keep_the_os_error() {
        let taken = net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(ServerConfig {
            listen: vec![addr],
            ..ServerConfig::default()
        })
        .err()
        .expect("the port is taken");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(err.to_string(), format!("cannot listen on {addr}: bind"));
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<ListenError>())
            .expect("a ListenError inside");
        assert_eq!(inner.source.raw_os_error(), Some(libc::EADDRINUSE));
    }
}
