//! The plain holding server: accepts and holds on a thread of its own,
//! outside tokio.
//!
//! With the defaults (hold mode, async model, no cap, no idle timeout) a
//! held connection needs nothing but its fd and read interest, so that a
//! client's close is seen. One thread per server ([`IdleServer`]) blocks in
//! epoll_wait on one epoll set holding every listener (edge-triggered
//! EPOLLIN), every connection it accepted (EPOLLIN | EPOLLRDHUP,
//! edge-triggered) and an eventfd that says stop. A wake-up costs one
//! epoll_wait, then accept4() until the backlog is empty and one epoll_ctl
//! per new connection: no task, no tokio registration, no registry entry,
//! no runtime in the way. A connection costs a slab slot and one epoll item.
//!
//! Why not the runtime: spread over 60 server processes, a million
//! connections wake each process for about one connection at a time, and
//! tokio's own work per wake-up (parking, the reactor, the timer, the
//! select) cost more than the accept: 11-12 CPU-s of server time per
//! million against 6.5-6.8 for a plain epoll server (2026-11-23, this
//! 2-core VM, raw clients).
//!
//! Readable connection: read into a stack buffer and discard until it would
//! block; EOF or an error is the client leaving: the socket is closed and
//! `held` goes down. accept() failing for lack of fds or memory backs off
//! ([`AcceptBackoff`]) while held connections are still watched. When the
//! server stops, the thread closes its listeners and hands its set back,
//! so the totals are read before dropping the set closes every connection
//! in it.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use slab::Slab;
use tokio::sync::oneshot;

use super::ServerStats;
use super::accept::{AcceptBackoff, AcceptErrorKind, classify_accept_error};
use crate::epoll::{self, Epoll};

/// accept() calls per listener before the rest of the set gets a turn.
const ACCEPT_BATCH: usize = 256;

/// The epoll key of the stop eventfd.
const STOP_KEY: u64 = u64::MAX;

/// Set in the epoll key of a listener; the rest is its index.
const LISTENER_KEY: u64 = 1 << 63;

/// The connections held by one [`IdleServer`].
pub(super) struct IdleSet {
    held: Slab<OwnedFd>,
    /// Counts `held`; given back for what is left when the set drops.
    stats: Arc<ServerStats>,
}

impl IdleSet {
    fn new(stats: Arc<ServerStats>) -> IdleSet {
        IdleSet {
            held: Slab::new(),
            stats,
        }
    }

    /// Holds `fd` in `epoll`, counted in `held`; the error is epoll_ctl's
    /// (the socket is then closed).
    fn add(&mut self, epoll: &Epoll, fd: OwnedFd) -> io::Result<()> {
        let entry = self.held.vacant_entry();
        epoll.add(fd.as_raw_fd(), epoll::HELD, entry.key() as u64)?;
        entry.insert(fd);
        self.stats.count_held();
        Ok(())
    }

    /// The connection under `key` had an event: closed if its client left.
    fn check(&mut self, key: usize) {
        if self.held.get(key).is_some_and(client_left) {
            drop(self.held.remove(key));
            self.stats.release();
        }
    }
}

impl Drop for IdleSet {
    /// Closes every connection still held, and counts them out.
    fn drop(&mut self) {
        for _ in self.held.drain() {
            self.stats.release();
        }
    }
}

/// An eventfd: raised once, it stays readable.
struct StopSignal(OwnedFd);

impl StopSignal {
    fn new() -> io::Result<StopSignal> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new
        // fd that we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by eventfd and nobody else owns it.
        Ok(StopSignal(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn raise(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`. It cannot fail short of the
        // counter overflowing, and a raised signal stays raised anyway.
        unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}

/// The thread that accepts and holds for one server, and how to stop it.
pub(super) struct IdleServer {
    stop: Arc<StopSignal>,
    /// The held connections, sent by the thread as it ends.
    ended: oneshot::Receiver<IdleSet>,
}

impl IdleServer {
    /// Starts accepting on `listeners` (non-blocking) on a new thread. If
    /// the epoll set, the eventfd or the thread cannot be made, or the
    /// listeners cannot be watched, they are given back with the error.
    pub(super) fn start(
        listeners: Vec<TcpListener>,
        stats: Arc<ServerStats>,
    ) -> Result<IdleServer, (io::Error, Vec<TcpListener>)> {
        let parts = Epoll::new().and_then(|epoll| Ok((epoll, StopSignal::new()?)));
        let (epoll, stop) = match parts {
            Ok(parts) => parts,
            Err(err) => return Err((err, listeners)),
        };
        let stop = Arc::new(stop);
        let acceptor = Acceptor {
            epoll,
            ready: vec![false; listeners.len()],
            listeners,
            stop: Arc::clone(&stop),
            set: IdleSet::new(stats),
            backoff: AcceptBackoff::new(),
            resume_at: None,
        };
        if let Err(err) = acceptor.register() {
            return Err((err, acceptor.give_back()));
        }
        // The thread takes the acceptor once it exists: if it cannot be
        // made, the listeners are still here to give back.
        let (hand_over, take_over) = std::sync::mpsc::sync_channel::<Acceptor>(1);
        let (done, ended) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("ceiling-accept".into())
            .spawn(move || {
                if let Ok(acceptor) = take_over.recv() {
                    let _ = done.send(acceptor.run());
                }
            });
        if let Err(err) = thread {
            return Err((err, acceptor.give_back()));
        }
        // The thread is waiting in recv(): the send cannot fail.
        let _ = hand_over.send(acceptor);
        Ok(IdleServer { stop, ended })
    }

    /// Stops accepting and returns the held connections (None if the thread
    /// died); the listeners are closed by then.
    pub(super) async fn stop(mut self) -> Option<IdleSet> {
        self.stop.raise();
        (&mut self.ended).await.ok()
    }
}

impl Drop for IdleServer {
    /// Dropped without [`IdleServer::stop`] (the server's future was
    /// dropped): the thread still ends, and closes everything.
    fn drop(&mut self) {
        self.stop.raise();
    }
}

/// What the thread owns.
struct Acceptor {
    epoll: Epoll,
    listeners: Vec<TcpListener>,
    /// Per listener: its backlog may hold connections (an edge came and
    /// accept() has not said EAGAIN since).
    ready: Vec<bool>,
    /// Kept open while it is in the epoll set.
    stop: Arc<StopSignal>,
    set: IdleSet,
    backoff: AcceptBackoff,
    /// After an accept() failure for lack of fds or memory: when to retry.
    resume_at: Option<Instant>,
}

impl Acceptor {
    /// Accepts and holds until the stop signal; returns the held set.
    fn run(mut self) -> IdleSet {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; epoll::EVENT_BATCH];
        loop {
            let ready = match self.epoll.wait(&mut events, self.timeout()) {
                Ok(ready) => ready,
                Err(err) => {
                    eprintln!("ceiling: serve: epoll_wait: {err}");
                    return self.set;
                }
            };
            for event in ready {
                // Copied out: the kernel's struct is packed.
                let key = event.u64;
                match key {
                    STOP_KEY => return self.set,
                    key if key & LISTENER_KEY != 0 => {
                        self.ready[(key & !LISTENER_KEY) as usize] = true;
                    }
                    key => self.set.check(key as usize),
                }
            }
            self.accept_ready();
        }
    }

    /// Puts the stop signal and every listener in the epoll set.
    fn register(&self) -> io::Result<()> {
        self.epoll
            .add(self.stop.0.as_raw_fd(), libc::EPOLLIN, STOP_KEY)?;
        for (index, listener) in self.listeners.iter().enumerate() {
            let key = LISTENER_KEY | index as u64;
            self.epoll
                .add(listener.as_raw_fd(), libc::EPOLLIN | libc::EPOLLET, key)?;
        }
        Ok(())
    }

    /// The listeners, for a server that cannot use this thread; dropping
    /// the epoll set takes them out of it.
    fn give_back(self) -> Vec<TcpListener> {
        self.listeners
    }

    /// How long the next epoll_wait may block: not at all while a backlog
    /// still has connections, until the backoff ends after a failure.
    fn timeout(&self) -> Option<Duration> {
        match self.resume_at {
            Some(at) => Some(at.saturating_duration_since(Instant::now())),
            None if self.ready.contains(&true) => Some(Duration::ZERO),
            None => None,
        }
    }

    /// Accepts from every listener whose backlog may hold connections, up
    /// to a batch each, unless backing off.
    fn accept_ready(&mut self) {
        if let Some(at) = self.resume_at {
            if Instant::now() < at {
                return;
            }
            self.resume_at = None;
        }
        for (listener, ready) in self.listeners.iter().zip(&mut self.ready) {
            if !*ready {
                continue;
            }
            for _ in 0..ACCEPT_BATCH {
                match accept(listener) {
                    Ok(fd) => {
                        self.backoff.succeeded();
                        self.set.stats.accepted.fetch_add(1, Ordering::Relaxed);
                        // Refused by epoll_ctl (no memory): closed, not held.
                        let _ = self.set.add(&self.epoll, fd);
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        *ready = false;
                        break;
                    }
                    Err(err) => {
                        if classify_accept_error(&err) == AcceptErrorKind::Resource {
                            self.set.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                            // The backlog still waits: `ready` stays set.
                            self.resume_at = Some(Instant::now() + self.backoff.failed());
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Reads and discards what `fd` has; true at EOF or on an error (the
/// client is gone), false once a read would block.
fn client_left(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return true,
            n if n > 0 => continue,
            _ => match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => return false,
                Some(libc::EINTR) => continue,
                _ => return true,
            },
        }
    }
}

/// One accept4(): the new socket non-blocking and close-on-exec.
fn accept(listener: &TcpListener) -> io::Result<OwnedFd> {
    // SAFETY: null address arguments are allowed; a non-negative result is
    // a new fd that we own.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by accept4 and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// Polls until `stats` says `accepted` and `held`, or panics.
    fn wait_for(stats: &ServerStats, accepted: u64, held: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let totals = stats.totals();
            if (totals.accepted, totals.held) == (accepted, held) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "wanted accepted {accepted}, held {held}: {totals:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[tokio::test]
    async fn holds_every_listeners_connections_counts_leavers_and_hands_back_the_rest() {
        let (first, first_addr) = listener();
        let (second, second_addr) = listener();
        let stats = Arc::new(ServerStats::default());
        let server = IdleServer::start(vec![first, second], Arc::clone(&stats))
            .map_err(|(err, _)| err)
            .unwrap();
        let mut clients: Vec<TcpStream> = [first_addr, first_addr, second_addr]
            .iter()
            .map(|addr| TcpStream::connect(addr).unwrap())
            .collect();
        wait_for(&stats, 3, 3);

        // A client that leaves is closed and counted out; bytes before its
        // FIN are read and dropped.
        leave(clients.pop().unwrap());
        wait_for(&stats, 3, 2);

        let set = server.stop().await.expect("the thread hands its set back");
        assert_eq!(set.held.len(), 2);
        for addr in [first_addr, second_addr] {
            let err = TcpStream::connect(addr).expect_err("listeners are closed at stop");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{addr}");
        }
        // Still held until the set drops: the totals are read in between.
        assert_eq!(stats.totals().held, 2);
        drop(set);
        assert_eq!(stats.totals().held, 0);
        for mut client in clients {
            client.set_read_timeout(Some(WAIT)).unwrap();
            assert_eq!(
                client.read(&mut [0u8; 8]).unwrap(),
                0,
                "EOF once the set drops"
            );
        }
    }

    #[test]
    fn dropped_without_stop_it_still_closes_everything() {
        let (listener, addr) = listener();
        let stats = Arc::new(ServerStats::default());
        let server = IdleServer::start(vec![listener], Arc::clone(&stats))
            .map_err(|(err, _)| err)
            .unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        wait_for(&stats, 1, 1);
        drop(server);
        client.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(client.read(&mut [0u8; 8]).unwrap(), 0);
        wait_for(&stats, 1, 0);
    }

    /// Writes a few bytes, then sends a FIN.
    fn leave(mut stream: TcpStream) {
        stream.write_all(b"bytes before the FIN").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
}
