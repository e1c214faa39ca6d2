//! Idle connections, outside tokio: one epoll set per worker thread, from
//! the handshake to the close.
//!
//! An idle connection needs nothing from a task: read interest and two
//! times (when its handshake gives up, when its hold ends). Keeping a task
//! and tokio's readiness entry for it costs over 1 KB and three epoll_ctl
//! calls; here a connecting socket goes straight into the worker's own
//! epoll set (EPOLLOUT | EPOLLIN | EPOLLRDHUP, edge-triggered) and costs one
//! slab entry (socket, attempt number, a time) and one queue entry while it
//! waits for its handshake or its expiry: a few dozen bytes. The epoll fd
//! itself is the only thing tokio watches.
//!
//! - Writable: the handshake ended; one TCP_INFO read says established
//!   (with its SYN retransmissions) or the pending error says why not. To
//!   a target on this host the handshake is usually over when connect()
//!   returns: the same read then, before the socket goes in with read
//!   interest only, saves the writable event.
//! - Readable: read into a stack buffer until it would block: EOF or an
//!   error is the server closing it; bytes before that are kept (first
//!   [`EVIDENCE_BYTES`]) as evidence.
//! - Handshake timeouts and hold expiries are FIFO queues (one connect
//!   timeout and one hold length per run, set in start order), not a timer
//!   each.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::time::Duration;

use slab::Slab;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use super::clock::{self, Epoch};
use super::conn::{self, AttemptError};
use super::due::Dues;
use super::hold::{EVIDENCE_BYTES, HoldEnd, server_close};
use crate::epoll::{self, EpollSet};
use crate::model::Syscall;

/// One connection, connecting or held.
struct Held {
    /// The plan's index of its attempt.
    index: u64,
    /// Connecting: the attempt's origin (latency is measured from it);
    /// held: when it was established. µs after the holder's epoch.
    since_us: u64,
    stream: std::net::TcpStream,
    connecting: bool,
}

/// Where the holder reports what happened to its connections.
pub trait HoldEnds {
    /// The handshake of attempt `index` completed after `latency`; returns
    /// when its hold ends (None: when the holder is dropped).
    fn established(&self, index: u64, latency: Duration, retransmits: u32) -> Option<Instant>;
    /// The handshake of attempt `index` failed or timed out, `after` its
    /// attempt's origin.
    fn connect_failed(&self, index: u64, error: AttemptError, after: Duration);
    /// The held connection of attempt `index` ended after `age`.
    fn ended(&self, index: u64, end: HoldEnd, age: Duration);
}

/// A worker's idle connections.
pub struct Holder {
    epoll: EpollSet,
    /// Times are kept relative to this.
    epoch: Epoch,
    held: RefCell<Slab<Held>>,
    /// Holds that end at a fixed time (`--hold DURATION`).
    expiries: Dues,
    /// Handshakes that give up at the connect timeout.
    connect_deadlines: Dues,
    /// What servers sent on connections they have not closed yet (rare).
    evidence: RefCell<HashMap<usize, Vec<u8>>>,
    /// Signalled when a queue gets its first entry.
    queued: Notify,
    len: Cell<usize>,
}

impl Holder {
    /// A new, empty holder. Call it inside the worker's runtime.
    pub fn new(epoch: Instant) -> io::Result<Holder> {
        Ok(Holder {
            epoll: EpollSet::new()?,
            epoch: Epoch(epoch),
            held: RefCell::new(Slab::new()),
            expiries: Dues::default(),
            connect_deadlines: Dues::default(),
            evidence: RefCell::new(HashMap::new()),
            queued: Notify::new(),
            len: Cell::new(0),
        })
    }

    /// Connections connecting or held now.
    pub fn len(&self) -> usize {
        self.len.get()
    }

    pub fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Takes over a socket whose non-blocking connect() is under way:
    /// `origin` is when its attempt was due, `deadline` when its handshake
    /// gives up. The error is epoll_ctl's (the socket is then closed).
    ///
    /// `maybe_done`: the target is on this host, where the whole handshake
    /// usually runs inside connect() itself. Then one TCP_INFO read now
    /// finds it established, and the socket goes in with read interest
    /// only: no writable event to wake the holder for, and the established
    /// connection is reported to `ends` before this returns.
    pub fn start_connecting(
        &self,
        socket: socket2::Socket,
        index: u64,
        origin: Instant,
        deadline: Instant,
        maybe_done: bool,
        ends: &impl HoldEnds,
    ) -> io::Result<()> {
        let stream: std::net::TcpStream = socket.into();
        if maybe_done && let Some(retransmits) = conn::established_now(&stream) {
            let now = Instant::now();
            let key = self
                .add(stream, index, self.us(now), false, epoll::HELD)
                .map_err(|(e, _)| e)?;
            let latency = now.saturating_duration_since(origin);
            self.established(key, index, latency, retransmits, ends);
            return Ok(());
        }
        let key = self
            .add(
                stream,
                index,
                self.us(origin),
                true,
                epoll::HELD | libc::EPOLLOUT,
            )
            .map_err(|(e, _)| e)?;
        self.push(&self.connect_deadlines, self.ms(deadline), key, index);
        Ok(())
    }

    fn add(
        &self,
        stream: std::net::TcpStream,
        index: u64,
        since_us: u64,
        connecting: bool,
        interest: i32,
    ) -> Result<usize, (io::Error, std::net::TcpStream)> {
        let mut held = self.held.borrow_mut();
        let entry = held.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.epoll.add(stream.as_raw_fd(), interest, key as u64) {
            return Err((e, stream));
        }
        entry.insert(Held {
            index,
            since_us,
            stream,
            connecting,
        });
        self.len.set(self.len.get() + 1);
        Ok(key)
    }

    fn push(&self, queue: &Dues, at_ms: u32, key: usize, index: u64) {
        if queue.push(at_ms, key, index) {
            self.queued.notify_one();
        }
    }

    /// Watches the connections: completes handshakes, sees server closes,
    /// times out handshakes and ends holds, reporting each to `ends`. Runs
    /// until dropped.
    pub async fn run(&self, ends: &impl HoldEnds) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; epoll::EVENT_BATCH];
        loop {
            let next = match (self.expiries.front(), self.connect_deadlines.front()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // A queue's first entry may be due before the other queue's
            // front: it wakes this loop to look again.
            let due = async {
                match next {
                    Some(at_ms) => {
                        tokio::select! {
                            () = sleep_until(self.epoch.at_ms(at_ms)) => {}
                            () = self.queued.notified() => {}
                        }
                    }
                    None => self.queued.notified().await,
                }
            };
            tokio::select! {
                ready = self.epoll.readable() => match ready {
                    Ok(mut guard) => {
                        if self.take_events(&mut events, ends) == 0 {
                            guard.clear_ready();
                        }
                    }
                    // Polling an epoll fd does not fail; if it ever does,
                    // the queues still end what is due.
                    Err(_) => {
                        self.expire(ends);
                        sleep_until(clock::after(Instant::now(), Duration::from_millis(10))).await;
                    }
                },
                _ = due => self.expire(ends),
            }
        }
    }

    /// One epoll_wait without blocking; returns how many events it gave.
    fn take_events(&self, events: &mut [libc::epoll_event], ends: &impl HoldEnds) -> usize {
        let ready = self.epoll.take(events);
        for event in ready {
            let (key, flags) = (event.u64 as usize, event.events as i32);
            let connecting = match self.held.borrow().get(key) {
                Some(held) => held.connecting,
                None => continue,
            };
            if connecting {
                if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) == 0 {
                    continue;
                }
                if !self.on_handshake(key, ends) {
                    continue;
                }
            }
            if flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
                self.on_readable(key, ends);
            }
        }
        ready.len()
    }

    /// The handshake of `key` ended; returns whether it is now held.
    fn on_handshake(&self, key: usize, ends: &impl HoldEnds) -> bool {
        let (index, outcome, origin_us) = {
            let held = self.held.borrow();
            let held = &held[key];
            (
                held.index,
                conn::handshake_outcome(&held.stream),
                held.since_us,
            )
        };
        match outcome {
            Ok(retransmits) => {
                let now = Instant::now();
                let now_us = self.us(now);
                let latency = Duration::from_micros(now_us.saturating_sub(origin_us));
                {
                    let mut held = self.held.borrow_mut();
                    let held = &mut held[key];
                    held.connecting = false;
                    held.since_us = now_us;
                }
                self.established(key, index, latency, retransmits, ends);
                true
            }
            Err(error) => {
                let held = self.remove(key);
                let after = self.since(held.since_us);
                drop(held);
                ends.connect_failed(index, error, after);
                false
            }
        }
    }

    /// `key` (attempt `index`) is held from now on: reported to `ends`, and
    /// its hold's end queued.
    fn established(
        &self,
        key: usize,
        index: u64,
        latency: Duration,
        retransmits: u32,
        ends: &impl HoldEnds,
    ) {
        if let Some(until) = ends.established(index, latency, retransmits) {
            self.push(&self.expiries, self.ms(until), key, index);
        }
    }

    /// Reads what is there (edge-triggered: until it would block).
    fn on_readable(&self, key: usize, ends: &impl HoldEnds) {
        let mut buf = [0u8; 512];
        let end = loop {
            let read = match self.held.borrow().get(key) {
                Some(held) => (&held.stream).read(&mut buf),
                None => return,
            };
            match read {
                Ok(0) => break self.server_closed(key, None),
                Ok(n) => {
                    let mut evidence = self.evidence.borrow_mut();
                    let kept = evidence.entry(key).or_default();
                    let room = EVIDENCE_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break self.server_closed(key, Some(e)),
            }
        };
        let held = self.remove(key);
        let age = self.since(held.since_us);
        drop(held);
        ends.ended(end.0, end.1, age);
    }

    fn server_closed(&self, key: usize, err: Option<io::Error>) -> (u64, HoldEnd) {
        let index = self.held.borrow()[key].index;
        let bytes = self.evidence.borrow_mut().remove(&key).unwrap_or_default();
        (index, server_close(err, &bytes))
    }

    /// Times out due handshakes and ends due holds.
    fn expire(&self, ends: &impl HoldEnds) {
        let now_ms = self.ms(Instant::now());
        while let Some(due) = self.pop_due(&self.connect_deadlines, now_ms, true) {
            let held = self.remove(due);
            let error = AttemptError {
                syscall: Syscall::Timeout,
                errno: None,
                syn_retransmits: conn::syn_retransmits(&held.stream),
            };
            let (index, after) = (held.index, self.since(held.since_us));
            drop(held);
            ends.connect_failed(index, error, after);
        }
        while let Some(due) = self.pop_due(&self.expiries, now_ms, false) {
            let held = self.remove(due);
            let (index, age) = (held.index, self.since(held.since_us));
            // Closing: FIN, or RST when SO_LINGER 0 was set at connect.
            drop(held);
            ends.ended(index, HoldEnd::Expired, age);
        }
    }

    /// The key of the next entry due by `now_ms` in `queue` that is still
    /// live and (for handshakes) still connecting.
    fn pop_due(&self, queue: &Dues, now_ms: u32, connecting: bool) -> Option<usize> {
        queue.pop_due(now_ms, |key, index| {
            self.held
                .borrow()
                .get(key)
                .is_some_and(|held| held.index == index && held.connecting == connecting)
        })
    }

    /// Closes every connection at once (the run is over); their closes are
    /// counted by the caller.
    pub fn close_all(&self) {
        self.expiries.clear();
        self.connect_deadlines.clear();
        self.evidence.borrow_mut().clear();
        self.held.borrow_mut().clear();
        self.len.set(0);
    }

    fn remove(&self, key: usize) -> Held {
        self.len.set(self.len.get() - 1);
        self.evidence.borrow_mut().remove(&key);
        // Closing the socket also takes it out of the epoll set.
        self.held.borrow_mut().remove(key)
    }

    fn us(&self, at: Instant) -> u64 {
        self.epoch.us(at)
    }

    fn ms(&self, at: Instant) -> u32 {
        self.epoch.ms(at)
    }

    fn since(&self, us: u64) -> Duration {
        self.epoch.since_us(us)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::PeerClose;
    use std::io::Write;
    use std::rc::Rc;
    use tokio::task::LocalSet;

    /// Records what the holder reports; holds each connection for `hold`.
    struct Ends {
        hold: Option<Duration>,
        established: RefCell<Vec<u64>>,
        failed: RefCell<Vec<(u64, Syscall, Option<i32>)>>,
        ended: RefCell<Vec<(u64, HoldEnd)>>,
    }

    impl Ends {
        fn holding(hold: Option<Duration>) -> Rc<Ends> {
            Rc::new(Ends {
                hold,
                established: RefCell::default(),
                failed: RefCell::default(),
                ended: RefCell::default(),
            })
        }
    }

    impl HoldEnds for Ends {
        fn established(&self, index: u64, _: Duration, _: u32) -> Option<Instant> {
            self.established.borrow_mut().push(index);
            self.hold.map(|hold| Instant::now() + hold)
        }

        fn connect_failed(&self, index: u64, error: AttemptError, _after: Duration) {
            self.failed
                .borrow_mut()
                .push((index, error.syscall, error.errno));
        }

        fn ended(&self, index: u64, end: HoldEnd, _age: Duration) {
            self.ended.borrow_mut().push((index, end));
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A non-blocking connect() to `addr`, under way (or done).
    pub(in crate::engine) fn connecting(addr: std::net::SocketAddr) -> socket2::Socket {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM.nonblocking(),
            None,
        )
        .unwrap();
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => panic!("connect: {e}"),
        }
        socket
    }

    /// Runs the holder with `ends` while `test` runs.
    async fn with_holder<F: std::future::Future<Output = ()>>(
        ends: &Rc<Ends>,
        test: impl FnOnce(Rc<Holder>) -> F,
    ) {
        let holder = Rc::new(Holder::new(Instant::now()).unwrap());
        let (h, e) = (Rc::clone(&holder), Rc::clone(ends));
        let task = tokio::task::spawn_local(async move { h.run(&*e).await });
        test(holder).await;
        task.abort();
    }

    /// What an idle held connection costs in userspace: its slab entry and
    /// its expiry (16 bytes: see `due`). The 256 B/connection budget
    /// (issue 3) is for RSS as a whole; these are the part that grows with
    /// the count.
    #[test]
    fn a_held_connection_is_a_few_dozen_bytes() {
        // A slab slot is the entry or a free-list link, whichever is larger.
        let entry = std::mem::size_of::<Held>().max(std::mem::size_of::<usize>() * 2);
        assert!(entry <= 24, "slab entry {entry} B");
    }

    #[test]
    fn completes_handshakes_holds_until_expiry_and_sees_the_server_close() {
        let ends = Ends::holding(Some(Duration::from_millis(200)));
        runtime().block_on(LocalSet::new().run_until(with_holder(&ends, |holder| {
            let ends = Rc::clone(&ends);
            async move {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let deadline = Instant::now() + Duration::from_secs(5);
                holder
                    .start_connecting(connecting(addr), 7, Instant::now(), deadline, false, &*ends)
                    .unwrap();
                holder
                    .start_connecting(connecting(addr), 9, Instant::now(), deadline, false, &*ends)
                    .unwrap();
                let (_kept, _) = listener.accept().unwrap();
                let (mut closing, _) = listener.accept().unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert_eq!(ends.established.borrow().len(), 2);
                assert_eq!(holder.len(), 2);
                // The second accepted is one of the two: whichever it is,
                // its close is seen with the bytes before it.
                closing.write_all(b"-ERR max clients\r\n").unwrap();
                drop(closing);
                tokio::time::sleep(Duration::from_millis(50)).await;
                {
                    let ended = ends.ended.borrow();
                    assert_eq!(ended.len(), 1, "{ended:?}");
                    assert_eq!(
                        ended[0].1,
                        HoldEnd::ServerClosed {
                            how: PeerClose::Eof,
                            errno: None,
                            bytes: Some("-ERR max clients\\r\\n".into()),
                        }
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                let ended = ends.ended.borrow();
                assert_eq!(ended.len(), 2);
                assert_eq!(ended[1].1, HoldEnd::Expired);
                assert_eq!(holder.len(), 0);
            }
        })));
    }

    #[test]
    fn a_refused_connect_and_a_reset_are_reported_as_such() {
        let ends = Ends::holding(None);
        runtime().block_on(LocalSet::new().run_until(with_holder(&ends, |holder| {
            let ends = Rc::clone(&ends);
            async move {
                // A port nobody listens on: RST to the SYN.
                let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let refused = closed.local_addr().unwrap();
                drop(closed);
                let deadline = Instant::now() + Duration::from_secs(5);
                holder
                    .start_connecting(
                        connecting(refused),
                        1,
                        Instant::now(),
                        deadline,
                        false,
                        &*ends,
                    )
                    .unwrap();
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                holder
                    .start_connecting(
                        connecting(listener.local_addr().unwrap()),
                        3,
                        Instant::now(),
                        deadline,
                        false,
                        &*ends,
                    )
                    .unwrap();
                let (server, _) = listener.accept().unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                socket2::SockRef::from(&server)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(server);
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert_eq!(
                    ends.failed.borrow().as_slice(),
                    &[(1, Syscall::Connect, Some(libc::ECONNREFUSED))]
                );
                let ended = ends.ended.borrow();
                assert!(
                    matches!(
                        ended.as_slice(),
                        [(
                            3,
                            HoldEnd::ServerClosed {
                                how: PeerClose::Rst,
                                errno: Some(libc::ECONNRESET),
                                ..
                            }
                        )]
                    ),
                    "{ended:?}"
                );
                assert!(holder.is_empty());
            }
        })));
    }

    #[test]
    fn a_loopback_handshake_done_inside_connect_is_reported_at_once() {
        let ends = Ends::holding(None);
        runtime().block_on(LocalSet::new().run_until(with_holder(&ends, |holder| {
            let ends = Rc::clone(&ends);
            async move {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let deadline = Instant::now() + Duration::from_secs(5);
                holder
                    .start_connecting(connecting(addr), 5, Instant::now(), deadline, true, &*ends)
                    .unwrap();
                // Reported before start_connecting returned: no event needed.
                assert_eq!(ends.established.borrow().len(), 1);
                assert_eq!(holder.len(), 1);
                // Held with read interest: the server's close is still seen.
                let (server, _) = listener.accept().unwrap();
                drop(server);
                tokio::time::sleep(Duration::from_millis(50)).await;
                let ended = ends.ended.borrow();
                assert!(
                    matches!(
                        ended.as_slice(),
                        [(
                            5,
                            HoldEnd::ServerClosed {
                                how: PeerClose::Eof,
                                ..
                            }
                        )]
                    ),
                    "{ended:?}"
                );
                assert!(holder.is_empty());
            }
        })));
    }

    /// A server that turns a connection away right after accept() (its
    /// reason, then a FIN) can do so before the holder looks at the socket:
    /// that handshake completed, and the close is the server's.
    #[test]
    fn a_connection_closed_by_the_server_before_it_is_looked_at_was_established() {
        let ends = Ends::holding(None);
        runtime().block_on(LocalSet::new().run_until(with_holder(&ends, |holder| {
            let ends = Rc::clone(&ends);
            async move {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let deadline = Instant::now() + Duration::from_secs(5);
                for (index, at_once) in [(1, true), (2, false)] {
                    let socket = connecting(addr);
                    let (mut server, _) = listener.accept().unwrap();
                    server.write_all(b"-ERR full\r\n").unwrap();
                    drop(server);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    holder
                        .start_connecting(socket, index, Instant::now(), deadline, at_once, &*ends)
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert!(
                    ends.failed.borrow().is_empty(),
                    "{:?}",
                    ends.failed.borrow()
                );
                assert_eq!(ends.established.borrow().as_slice(), &[1, 2]);
                let ended = ends.ended.borrow();
                assert_eq!(ended.len(), 2, "{ended:?}");
                for (_, end) in ended.iter() {
                    assert_eq!(
                        end,
                        &HoldEnd::ServerClosed {
                            how: PeerClose::Eof,
                            errno: None,
                            bytes: Some("-ERR full\\r\\n".into()),
                        }
                    );
                }
            }
        })));
    }

    #[test]
    fn a_handshake_that_gets_no_answer_times_out() {
        let ends = Ends::holding(None);
        runtime().block_on(LocalSet::new().run_until(with_holder(&ends, |holder| {
            let ends = Rc::clone(&ends);
            async move {
                // Backlog 0 and never accepting: once its queue is full,
                // the next SYN is dropped and the handshake hangs.
                let listener =
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                        .unwrap();
                listener
                    .bind(
                        &"127.0.0.1:0"
                            .parse::<std::net::SocketAddr>()
                            .unwrap()
                            .into(),
                    )
                    .unwrap();
                listener.listen(0).unwrap();
                let addr = listener.local_addr().unwrap().as_socket().unwrap();
                let deadline = Instant::now() + Duration::from_millis(300);
                for index in 0..4 {
                    holder
                        .start_connecting(
                            connecting(addr),
                            index,
                            Instant::now(),
                            deadline,
                            false,
                            &*ends,
                        )
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(600)).await;
                let failed = ends.failed.borrow();
                assert!(!failed.is_empty(), "no handshake timed out");
                assert!(
                    failed
                        .iter()
                        .all(|f| f.1 == Syscall::Timeout && f.2.is_none()),
                    "{failed:?}"
                );
                assert_eq!(failed.len() + ends.established.borrow().len(), 4);
            }
        })));
    }

    /// The loop sleeps until the earliest front of the two queues; a first
    /// handshake deadline that comes before a pending hold's end must wake
    /// it (a handshake done inside connect() never enters the deadline
    /// queue, so that queue is often empty).
    #[test]
    fn a_handshake_deadline_before_a_pending_expiry_is_kept() {
        let ends = Ends::holding(Some(Duration::from_secs(5)));
        runtime().block_on(LocalSet::new().run_until(with_holder(&ends, |holder| {
            let ends = Rc::clone(&ends);
            async move {
                let accepting = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let far = Instant::now() + Duration::from_secs(5);
                let addr = accepting.local_addr().unwrap();
                holder
                    .start_connecting(connecting(addr), 0, Instant::now(), far, true, &*ends)
                    .unwrap();
                assert_eq!(ends.established.borrow().len(), 1);
                // The loop now sleeps until that hold ends, 5 s away.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .unwrap();
                full.bind(
                    &"127.0.0.1:0"
                        .parse::<std::net::SocketAddr>()
                        .unwrap()
                        .into(),
                )
                .unwrap();
                full.listen(0).unwrap();
                let addr = full.local_addr().unwrap().as_socket().unwrap();
                // Fill its queue outside the holder: its SYNs then go
                // unanswered and the holder gets no event to wake it.
                let _fill: Vec<_> = (0..3).map(|_| connecting(addr)).collect();
                tokio::time::sleep(Duration::from_millis(50)).await;
                let soon = Instant::now() + Duration::from_millis(300);
                for index in 1..5 {
                    holder
                        .start_connecting(
                            connecting(addr),
                            index,
                            Instant::now(),
                            soon,
                            false,
                            &*ends,
                        )
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
                let failed = ends.failed.borrow();
                assert_eq!(
                    failed.len(),
                    4,
                    "not timed out by their deadline: {failed:?}"
                );
                assert!(failed.iter().all(|f| f.1 == Syscall::Timeout), "{failed:?}");
            }
        })));
    }

    #[test]
    fn dropping_the_holder_closes_its_connections() {
        runtime().block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let holder = Holder::new(Instant::now()).unwrap();
            let ends = Ends::holding(None);
            let deadline = Instant::now() + Duration::from_secs(5);
            holder
                .start_connecting(
                    connecting(listener.local_addr().unwrap()),
                    0,
                    Instant::now(),
                    deadline,
                    true,
                    &*ends,
                )
                .unwrap();
            let (mut server, _) = listener.accept().unwrap();
            drop(holder);
            let mut buf = [0u8; 8];
            assert_eq!(server.read(&mut buf).unwrap(), 0, "the peer saw EOF");
        });
    }
}
