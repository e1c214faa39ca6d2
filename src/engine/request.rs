//! Request mode on one worker: its share of the pool's connections serve
//! requests that a generator stamps with their intended time (open loop),
//! or back to back (closed loop, `--rate 0`, as wrk).
//!
//! A due request goes to a free connection, or waits for one in a FIFO
//! queue (`--when-pool-busy queue`, at most `--queue-timeout`), or is
//! rejected (`reject`). Queue wait is a free connection − the intended
//! time, service time the response − the send, total the response − the
//! intended time: a stalled server shows in the total of every request due
//! during the stall (no coordinated omission).
//!
//! The connections live outside tokio, in the pool's own epoll set (as
//! idle ones do in `holder`): from the handshake on, each is one slab entry
//! of 88 bytes (its socket, its times, its state, a buffer only while a
//! response spans reads) and nothing else, where a task and tokio's
//! readiness entry would cost over 1 KB. Every event is handled where it
//! arrives: a response read, its figures recorded and the next request
//! written in one pass, with no task to wake. Reads go into the worker's
//! one scratch buffer; the run's end drops the set with every connection.
//!
//! After a response that says the server closes (`Connection: close`),
//! the connection is closed and reopened (a reconnect); after a malformed
//! one, reopened only if it had answered before (a server that turned it
//! away with a message and a close is a server close, its message the
//! evidence). A close the server did not announce is a server close
//! (evidence: the error text or bytes it sent); the request in flight, if
//! any, is an error (`closed`, not retried), and the connection is
//! reopened only if it had been answered before (a kept-alive connection
//! the server ended), not when it was closed at the door (a cap such as
//! Redis `maxclients`: the pool stays short, and the limit is named).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slab::Slab;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep_until};

use super::Control;
use super::clock::{self, Epoch};
use super::conn::{self, AttemptError};
use super::due::Dues;
use super::hold::{EVIDENCE_BYTES, HoldEnd, server_close};
use super::holder::HoldEnds;
use super::plan::Segment;
use super::rate::Pacer;
use crate::epoll::{self, EpollSet};
use crate::model::{RequestErrorKind, Syscall};
use crate::protocol::client::{self, Exchange, Reply, ReplyError};
use crate::scenario::Pace;
use crate::scenario::request::{MAX_QUEUED, RequestProtocol, Requests, WhenPoolBusy};
use crate::scenario::units::unescape;
use crate::stats::Delta;
use crate::stats::requests::RequestDelta;

/// The scratch buffer every connection of a worker reads into.
const SCRATCH: usize = 64 * 1024;

/// A pending buffer larger than this is freed once its response is in.
const PENDING_KEPT: usize = 4096;

/// How early the generator may stamp a request: the timer's granularity.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Requests the generator hands out back to back before yielding.
const BATCH: u32 = 64;

/// What the run's settings say about requests, as the engine needs it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RequestSettings {
    pub requests: Requests,
    /// The request rate; Unlimited is the closed loop.
    pub pace: Pace,
    /// Echo and line modes' message, unescaped.
    pub message: Vec<u8>,
}

impl RequestSettings {
    /// The protocol object, with `host` as HTTP's default `Host`.
    pub fn exchange(&self, host: &str) -> Box<dyn Exchange> {
        let r = &self.requests;
        match r.protocol {
            RequestProtocol::Echo => Box::new(client::Echo::new(&self.message)),
            RequestProtocol::Line => Box::new(client::Line::new(&self.message)),
            RequestProtocol::Redis => Box::new(client::Redis::new(&r.command)),
            RequestProtocol::Http => {
                // Checked by the scenario: the escapes are valid.
                let body = unescape(&r.body).unwrap_or_default();
                Box::new(client::Http::new(
                    &r.method, &r.path, host, &r.headers, &body,
                ))
            }
        }
    }
}

/// Where the pool reports what happened to its connections: as the
/// holder does, and whether one that ended is opened again.
pub trait PoolEnds: HoldEnds {
    /// The connection of attempt `index` ended (reported to `ended`
    /// already) and asks to be opened again: the owner opens it, unless
    /// the run is over or stopping.
    fn reopen(&self, index: u64);
}

/// How a pooled connection ended.
enum ConnEnd {
    /// Closed by ceiling: the server said it closes, or sent something
    /// that is not a response; `reopen`: it is opened again (it had
    /// answered, or it said it closes).
    Closed { reopen: bool },
    /// The server closed it unannounced; `reopen`: it had answered before.
    ServerClosed { end: HoldEnd, reopen: bool },
}

/// Where a pooled connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its handshake is under way.
    Connecting,
    /// Established, waiting for a request (in `Pool::idle`).
    Idle,
    /// A request is out (or going out) and its response not all in.
    Busy,
}

/// One pooled connection: a slab entry, for the whole run.
struct Conn {
    /// The plan's index of its attempt (the same across reconnects).
    index: u64,
    /// Tells this opening from an earlier one of the same slot and index
    /// (a reconnect), for the handshake deadline.
    serial: u64,
    /// Connecting: the attempt's origin (latency is measured from it);
    /// established: when it was established. µs after the pool's epoch.
    since_us: u64,
    /// The request out: when it was sent (ns after the epoch), and how
    /// long it waited for this connection (a closed loop's: 0). The wait
    /// is kept rather than the intended time, so total = queue + service
    /// exactly (intended <= sent <= response).
    sent_ns: u64,
    queue_ns: u64,
    stream: std::net::TcpStream,
    /// Bytes of the request written so far (the rest when it is writable).
    written: u32,
    state: State,
    /// It has had a good response: a close from now on is a kept-alive
    /// connection the server ended, reopened.
    answered: bool,
    /// A response that spans reads, kept until it is whole.
    pending: Vec<u8>,
    /// What the server said that may explain its close; most servers say
    /// nothing, so it is made on first need.
    said: Option<Box<Said>>,
}

/// One worker's pool: its connections, the queue of due requests, and the
/// connections waiting for one.
pub struct Pool {
    exchange: Box<dyn Exchange>,
    closed_loop: bool,
    when_busy: WhenPoolBusy,
    queue_timeout: Duration,
    recorder: Arc<Mutex<Delta>>,
    /// The connections' epoll set; the errno if it could not be made (each
    /// attempt then fails with it).
    epoll: Result<EpollSet, i32>,
    epoch: Epoch,
    conns: RefCell<Slab<Conn>>,
    /// Openings so far (see `Conn::serial`).
    openings: Cell<u64>,
    /// Established connections waiting for a request, longest first.
    idle: RefCell<VecDeque<u32>>,
    /// Intended times of the requests due and not yet taken.
    queue: RefCell<VecDeque<Instant>>,
    /// Handshakes that give up at the connect timeout.
    connect_deadlines: Dues,
    /// Signalled when `connect_deadlines` gets its first entry.
    deadline_queued: Notify,
    scratch: RefCell<Vec<u8>>,
}

impl Pool {
    /// An empty pool whose times count from `epoch`, recording into
    /// `recorder`. Call it inside the worker's runtime.
    pub fn new(
        settings: &RequestSettings,
        host: &str,
        epoch: Instant,
        recorder: Arc<Mutex<Delta>>,
    ) -> Pool {
        Pool {
            exchange: settings.exchange(host),
            closed_loop: matches!(settings.pace, Pace::Unlimited),
            when_busy: settings.requests.when_pool_busy,
            queue_timeout: settings.requests.queue_timeout,
            recorder,
            epoll: EpollSet::new().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            epoch: Epoch(epoch),
            conns: RefCell::new(Slab::new()),
            openings: Cell::new(0),
            idle: RefCell::new(VecDeque::new()),
            queue: RefCell::new(VecDeque::new()),
            connect_deadlines: Dues::default(),
            deadline_queued: Notify::new(),
            scratch: RefCell::new(vec![0; SCRATCH]),
        }
    }

    pub fn is_closed_loop(&self) -> bool {
        self.closed_loop
    }

    /// Whether no connection is connecting or open.
    pub fn is_empty(&self) -> bool {
        self.conns.borrow().is_empty()
    }

    /// Takes over a socket whose non-blocking connect() is under way:
    /// `origin` is when its attempt was due, `deadline` when its handshake
    /// gives up; `maybe_done`: the target is on this host, where the
    /// handshake usually ends inside connect() (one TCP_INFO read then
    /// finds it established, reported before this returns). The error is
    /// epoll's (the socket is then closed).
    pub fn start_connecting(
        &self,
        socket: socket2::Socket,
        index: u64,
        origin: Instant,
        deadline: Instant,
        maybe_done: bool,
        ends: &impl PoolEnds,
    ) -> io::Result<()> {
        let epoll = self
            .epoll
            .as_ref()
            .map_err(|&errno| io::Error::from_raw_os_error(errno))?;
        // A request is written whole, and the next only once the response
        // is in: Nagle's algorithm could only hold back the tail of a
        // request longer than a segment until the server's ACK, which a
        // server waiting for the rest may delay by up to 40 ms, all of it
        // in the service time (wrk sets it too). Cannot fail on a TCP
        // socket.
        let _ = socket.set_tcp_nodelay(true);
        let stream: std::net::TcpStream = socket.into();
        let done = if maybe_done {
            conn::established_now(&stream)
        } else {
            None
        };
        let serial = self.openings.get();
        self.openings.set(serial + 1);
        let key = {
            let mut conns = self.conns.borrow_mut();
            let entry = conns.vacant_entry();
            let key = entry.key();
            // Writable: the handshake's end, and room for the rest of a
            // request that did not fit (edge-triggered: no event while
            // the socket just stays writable).
            epoll.add(stream.as_raw_fd(), epoll::HELD | libc::EPOLLOUT, key as u64)?;
            entry.insert(Conn {
                index,
                serial,
                since_us: self.epoch.us(origin),
                sent_ns: 0,
                queue_ns: 0,
                stream,
                written: 0,
                state: State::Connecting,
                answered: false,
                pending: Vec::new(),
                said: None,
            });
            key
        };
        match done {
            Some(retransmits) => {
                self.established(key, retransmits, ends);
            }
            None => {
                if self
                    .connect_deadlines
                    .push(self.epoch.ms(deadline), key, serial)
                {
                    self.deadline_queued.notify_one();
                }
            }
        }
        Ok(())
    }

    /// Watches the connections: completes handshakes, reads responses and
    /// sends what is next, sees server closes, times out handshakes,
    /// reporting to `ends`. Runs until dropped.
    pub async fn run(&self, ends: &impl PoolEnds) {
        let Ok(epoll) = &self.epoll else {
            // Every attempt failed with the reason.
            return;
        };
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; epoll::EVENT_BATCH];
        loop {
            let next = self.connect_deadlines.front();
            let due = async {
                match next {
                    Some(at_ms) => tokio::select! {
                        () = sleep_until(self.epoch.at_ms(at_ms)) => {}
                        () = self.deadline_queued.notified() => {}
                    },
                    None => self.deadline_queued.notified().await,
                }
            };
            tokio::select! {
                ready = epoll.readable() => match ready {
                    Ok(mut guard) => {
                        let ready = epoll.take(&mut events);
                        if ready.is_empty() {
                            guard.clear_ready();
                        }
                        let full = ready.len() == epoll::EVENT_BATCH;
                        for event in ready {
                            self.on_event(event.u64 as usize, event.events as i32, ends);
                        }
                        if full {
                            // More may be ready: the generator (and the
                            // worker's other tasks) run first.
                            drop(guard);
                            tokio::task::yield_now().await;
                        }
                    }
                    // Polling an epoll fd does not fail; if it ever does,
                    // the handshakes still time out.
                    Err(_) => {
                        self.expire_handshakes(ends);
                        sleep_until(clock::after(Instant::now(), Duration::from_millis(10))).await;
                    }
                },
                () = due => self.expire_handshakes(ends),
            }
        }
    }

    /// Closes every connection at once (the run is over); their closes are
    /// counted by the caller, and the requests out on them are neither
    /// answered nor failed.
    pub fn close_all(&self) {
        self.connect_deadlines.clear();
        self.idle.borrow_mut().clear();
        self.queue.borrow_mut().clear();
        self.conns.borrow_mut().clear();
    }

    fn on_event(&self, key: usize, flags: i32, ends: &impl PoolEnds) {
        let Some((state, index)) = self.conns.borrow().get(key).map(|c| (c.state, c.index)) else {
            return;
        };
        if state == State::Connecting {
            if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) == 0 {
                return;
            }
            let outcome = conn::handshake_outcome(&self.conns.borrow()[key].stream);
            match outcome {
                Ok(retransmits) => {
                    if !self.established(key, retransmits, ends) {
                        return;
                    }
                }
                Err(error) => {
                    let conn = self.conns.borrow_mut().remove(key);
                    let after = self.epoch.since_us(conn.since_us);
                    drop(conn);
                    ends.connect_failed(index, error, after);
                    return;
                }
            }
        } else if flags & libc::EPOLLOUT != 0 && !self.write(key, ends) {
            return;
        }
        if flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
            self.on_readable(key, flags, ends);
        }
    }

    /// The handshake of `key` completed: reported, and the connection put
    /// to work. Returns whether it is still open.
    fn established(&self, key: usize, retransmits: u32, ends: &impl PoolEnds) -> bool {
        let now_us = self.epoch.us(Instant::now());
        let (index, latency) = {
            let mut conns = self.conns.borrow_mut();
            let conn = &mut conns[key];
            let latency = Duration::from_micros(now_us.saturating_sub(conn.since_us));
            conn.since_us = now_us;
            conn.state = State::Idle;
            (conn.index, latency)
        };
        // The pool's connections are held until the run ends or the
        // server closes them: no hold length.
        let _ = ends.established(index, latency, retransmits);
        self.free(key, ends)
    }

    /// `key` is free for a request: the next one of a closed loop, the
    /// first in the queue, or it waits. Returns whether it is still open.
    fn free(&self, key: usize, ends: &impl PoolEnds) -> bool {
        if self.closed_loop {
            return self.send(key, None, ends);
        }
        match self.take() {
            Some(intended) => self.send(key, Some(intended), ends),
            None => {
                self.conns.borrow_mut()[key].state = State::Idle;
                self.idle.borrow_mut().push_back(key as u32);
                true
            }
        }
    }

    /// Sends a request on `key` (free), due at `intended` (None: a closed
    /// loop's, due now). Returns whether the connection is still open.
    fn send(&self, key: usize, intended: Option<Instant>, ends: &impl PoolEnds) -> bool {
        let now = Instant::now();
        {
            let mut d = lock(&self.recorder);
            let r = d.requests_mut();
            // A closed loop's request is due as it is sent.
            r.scheduled += u64::from(intended.is_none());
            r.sent += 1;
        }
        {
            let mut conns = self.conns.borrow_mut();
            let conn = &mut conns[key];
            conn.state = State::Busy;
            conn.sent_ns = self.epoch.ns(now);
            conn.queue_ns =
                intended.map_or(0, |i| now.saturating_duration_since(i).as_nanos() as u64);
            conn.written = 0;
        }
        self.write(key, ends)
    }

    /// Writes what is left of `key`'s request, as far as the socket takes
    /// it now. Returns whether the connection is still open.
    fn write(&self, key: usize, ends: &impl PoolEnds) -> bool {
        let request = self.exchange.request();
        let written = {
            let mut conns = self.conns.borrow_mut();
            let conn = &mut conns[key];
            loop {
                let rest = &request[(conn.written as usize).min(request.len())..];
                if conn.state != State::Busy || rest.is_empty() {
                    break Ok(());
                }
                match (&conn.stream).write(rest) {
                    Ok(n) => conn.written += n as u32,
                    // The rest when it is writable.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            }
        };
        match written {
            Ok(()) => true,
            Err(e) => {
                self.server_closed(key, Some(e), ends);
                false
            }
        }
    }

    /// Reads what is there. A read that did not fill the scratch buffer
    /// took all there was, unless the event also said the server hung up
    /// (then on to its EOF): nothing that arrives later goes unseen, since
    /// epoll reports it as a new edge. One read per response.
    fn on_readable(&self, key: usize, flags: i32, ends: &impl PoolEnds) {
        let hangup = flags & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) != 0;
        loop {
            let read = {
                let conns = self.conns.borrow();
                let Some(conn) = conns.get(key) else {
                    return;
                };
                (&conn.stream).read(&mut self.scratch.borrow_mut())
            };
            match read {
                Ok(0) => return self.eof(key, ends),
                Ok(n) => {
                    if !self.received(key, n, ends) || (n < SCRATCH && !hangup) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.server_closed(key, Some(e), ends),
            }
        }
    }

    /// `n` bytes in the scratch buffer from `key`. Returns whether the
    /// connection is still open.
    fn received(&self, key: usize, n: usize, ends: &impl PoolEnds) -> bool {
        let reply = {
            let mut conns = self.conns.borrow_mut();
            let conn = &mut conns[key];
            let scratch = self.scratch.borrow();
            if conn.state != State::Busy {
                // Bytes nobody asked for: kept as evidence.
                let unasked = &mut conn.said.get_or_insert_default().unasked;
                let room = EVIDENCE_BYTES.saturating_sub(unasked.len());
                unasked.extend_from_slice(&scratch[..n.min(room)]);
                return true;
            }
            if conn.pending.is_empty() {
                let reply = self.exchange.response(&scratch[..n]);
                if reply == Reply::Incomplete {
                    conn.pending.extend_from_slice(&scratch[..n]);
                }
                reply
            } else {
                conn.pending.extend_from_slice(&scratch[..n]);
                self.exchange.response(&conn.pending)
            }
        };
        let Reply::Complete(response) = reply else {
            return true;
        };
        let now_ns = self.epoch.ns(Instant::now());
        let mut conns = self.conns.borrow_mut();
        let conn = &mut conns[key];
        {
            let mut d = lock(&self.recorder);
            let r = d.requests_mut();
            let us = |ns: u64| ns / 1000;
            let service = now_ns.saturating_sub(conn.sent_ns);
            r.record_times(us(conn.queue_ns), us(service), us(conn.queue_ns + service));
            if let Some(code) = response.status {
                r.record_status(code);
            }
            match &response.error {
                None => r.responses += 1,
                Some(ReplyError::Reply(text)) => {
                    r.record_error(RequestErrorKind::ErrorReply, Some(text));
                }
                Some(ReplyError::Malformed(why)) => {
                    r.record_error(RequestErrorKind::Malformed, Some(why));
                }
            }
        }
        match response.error {
            None => {
                conn.answered = true;
                if let Some(said) = &mut conn.said {
                    said.last_error = None;
                }
            }
            Some(ReplyError::Reply(text)) => {
                conn.said.get_or_insert_default().last_error = Some(text);
            }
            Some(ReplyError::Malformed(_)) => {
                // Not a response: a server that turns connections away
                // writes its reason and closes; if it has closed already,
                // that is its close, with its words as the evidence.
                let said = if conn.pending.is_empty() {
                    self.scratch.borrow()[..n.min(EVIDENCE_BYTES)].to_vec()
                } else {
                    conn.pending[..conn.pending.len().min(EVIDENCE_BYTES)].to_vec()
                };
                let server_closed = matches!((&conn.stream).read(&mut [0; 1]), Ok(0));
                let answered = conn.answered;
                drop(conns);
                let end = if server_closed {
                    ConnEnd::ServerClosed {
                        end: server_close(None, &said),
                        reopen: answered,
                    }
                } else {
                    ConnEnd::Closed { reopen: answered }
                };
                self.end(key, end, ends);
                return false;
            }
        }
        if conn.pending.capacity() > PENDING_KEPT {
            conn.pending = Vec::new();
        } else {
            conn.pending.clear();
        }
        drop(conns);
        if response.close {
            self.end(key, ConnEnd::Closed { reopen: true }, ends);
            return false;
        }
        self.free(key, ends)
    }

    /// The server closed `key` (EOF).
    fn eof(&self, key: usize, ends: &impl PoolEnds) {
        let end = {
            let mut conns = self.conns.borrow_mut();
            let conn = &mut conns[key];
            if conn.state == State::Busy {
                // What it said last: an error reply, unasked bytes, or a
                // response cut short.
                self.in_flight_failed();
                let last_error = conn.said.as_mut().and_then(|s| s.last_error.take());
                let bytes = match &last_error {
                    Some(text) => text.as_bytes(),
                    None if !unasked(&conn.said).is_empty() => unasked(&conn.said),
                    None => &conn.pending[..conn.pending.len().min(EVIDENCE_BYTES)],
                };
                server_close(None, bytes)
            } else {
                server_close(None, unasked(&conn.said))
            }
        };
        let reopen = self.conns.borrow()[key].answered;
        self.end(key, ConnEnd::ServerClosed { end, reopen }, ends);
    }

    /// `key` failed with `err` (a reset, or a write that could not go).
    fn server_closed(&self, key: usize, err: Option<io::Error>, ends: &impl PoolEnds) {
        let (end, reopen) = {
            let conns = self.conns.borrow();
            let conn = &conns[key];
            if conn.state == State::Busy {
                self.in_flight_failed();
            }
            (server_close(err, unasked(&conn.said)), conn.answered)
        };
        self.end(key, ConnEnd::ServerClosed { end, reopen }, ends);
    }

    /// The request out on a connection that closed is an error.
    fn in_flight_failed(&self) {
        lock(&self.recorder)
            .requests_mut()
            .record_error(RequestErrorKind::Closed, None);
    }

    /// Closes `key` and reports it (and asks for it again if it reopens).
    fn end(&self, key: usize, end: ConnEnd, ends: &impl PoolEnds) {
        let conn = self.conns.borrow_mut().remove(key);
        if conn.state == State::Idle {
            let mut idle = self.idle.borrow_mut();
            if let Some(at) = idle.iter().position(|&k| k as usize == key) {
                idle.remove(at);
            }
        }
        let (index, age) = (conn.index, self.epoch.since_us(conn.since_us));
        // Closing: FIN, or RST when SO_LINGER 0 was set at connect.
        drop(conn);
        let (end, reopen) = match end {
            ConnEnd::Closed { reopen } => (HoldEnd::Expired, reopen),
            ConnEnd::ServerClosed { end, reopen } => (end, reopen),
        };
        ends.ended(index, end, age);
        if reopen {
            ends.reopen(index);
        }
    }

    /// Times out the handshakes that are due.
    fn expire_handshakes(&self, ends: &impl PoolEnds) {
        let now_ms = self.epoch.ms(Instant::now());
        let live = |key: usize, serial: u64| {
            self.conns
                .borrow()
                .get(key)
                .is_some_and(|c| c.serial == serial && c.state == State::Connecting)
        };
        while let Some(key) = self.connect_deadlines.pop_due(now_ms, live) {
            let conn = self.conns.borrow_mut().remove(key);
            let error = AttemptError {
                syscall: Syscall::Timeout,
                errno: None,
                syn_retransmits: conn::syn_retransmits(&conn.stream),
            };
            let (index, after) = (conn.index, self.epoch.since_us(conn.since_us));
            drop(conn);
            ends.connect_failed(index, error, after);
        }
    }

    /// Hands out this worker's requests at `pace` (its share of the run's
    /// rate), from `ready` after the run's start, until stopped or until
    /// `until` (the run's end: none is due then, however late this worker
    /// runs).
    pub async fn generate(
        &self,
        pace: Pace,
        ready: Duration,
        until: Instant,
        control: &mut watch::Receiver<Control>,
        ends: &impl PoolEnds,
    ) {
        let mut pacer = Pacer::new(pace, Segment::WHOLE, u64::MAX);
        let mut batch = 0;
        while let Some((_, offset)) = pacer.peek() {
            let now = Instant::now();
            let state = *control.borrow_and_update();
            if state.stop.is_some() {
                return;
            }
            let offset = offset.map(|o| o.saturating_add(ready));
            let Some(intended) = state.schedule.instant_of(offset, now) else {
                // Paused.
                if control.changed().await.is_err() {
                    return;
                }
                continue;
            };
            if intended >= until {
                return;
            }
            if intended > now + TIMER_SLACK {
                tokio::select! {
                    _ = sleep_until(intended - TIMER_SLACK) => {}
                    changed = control.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        continue;
                    }
                }
            }
            pacer.advance();
            self.dispatch(intended, ends);
            batch += 1;
            if batch >= BATCH {
                batch = 0;
                tokio::task::yield_now().await;
            }
        }
    }

    /// A request is due: to a free connection, the queue, or rejected.
    fn dispatch(&self, intended: Instant, ends: &impl PoolEnds) {
        let now = Instant::now();
        // Stamped up to the timer's slack early: measured from the earlier.
        let intended = intended.min(now);
        let free = {
            let mut d = lock(&self.recorder);
            let r = d.requests_mut();
            r.scheduled += 1;
            let mut queue = self.queue.borrow_mut();
            self.expire(&mut queue, now, r);
            // A connection is idle only while the queue is empty.
            let free = self.idle.borrow_mut().pop_front();
            if free.is_none()
                && (self.when_busy == WhenPoolBusy::Reject || queue.len() >= MAX_QUEUED)
            {
                r.rejects += 1;
                return;
            }
            r.queued += 1;
            if free.is_some() {
                r.dequeued += 1;
            } else {
                queue.push_back(intended);
            }
            free
        };
        if let Some(key) = free {
            self.send(key as usize, Some(intended), ends);
        }
    }

    /// Rejects the requests at the front of the queue that waited past the
    /// queue timeout.
    fn expire(&self, queue: &mut VecDeque<Instant>, now: Instant, r: &mut RequestDelta) {
        while let Some(&intended) = queue.front()
            && now.saturating_duration_since(intended) > self.queue_timeout
        {
            queue.pop_front();
            r.dequeued += 1;
            r.rejects += 1;
        }
    }

    /// The next due request for a free connection, if any.
    fn take(&self) -> Option<Instant> {
        let mut queue = self.queue.borrow_mut();
        queue.front()?;
        let mut d = lock(&self.recorder);
        let r = d.requests_mut();
        self.expire(&mut queue, Instant::now(), r);
        let intended = queue.pop_front()?;
        r.dequeued += 1;
        Some(intended)
    }
}

/// What a server said that may explain its close.
#[derive(Default)]
struct Said {
    /// Bytes it sent unasked (a greeting, or its reason before it closes).
    unasked: Vec<u8>,
    /// Its last error reply, until a success.
    last_error: Option<String>,
}

fn unasked(said: &Option<Box<Said>>) -> &[u8] {
    said.as_ref().map_or(&[], |s| &s.unasked)
}

fn lock(recorder: &Mutex<Delta>) -> std::sync::MutexGuard<'_, Delta> {
    recorder.lock().unwrap_or_else(|e| e.into_inner())
}

/// `pace` scaled by `share` (a worker's part of the pool): its part of
/// the run's request rate.
pub fn share_of(pace: Pace, share: f64) -> Pace {
    match pace {
        Pace::Unlimited => Pace::Unlimited,
        Pace::Constant { per_s } => Pace::Constant {
            per_s: per_s * share,
        },
        Pace::Ramp(mut ramp) => {
            ramp.from *= share;
            ramp.to *= share;
            Pace::Ramp(ramp)
        }
        Pace::Steps(steps) => Pace::Steps(steps.scaled(share)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::holder::tests::connecting;
    use crate::scenario::request::DEFAULT_QUEUE_TIMEOUT;

    fn settings(pace: Pace) -> RequestSettings {
        RequestSettings {
            requests: Requests {
                protocol: RequestProtocol::Http,
                pool: 1,
                when_pool_busy: WhenPoolBusy::Queue,
                queue_timeout: DEFAULT_QUEUE_TIMEOUT,
                method: "GET".into(),
                path: "/".into(),
                headers: vec![],
                body: String::new(),
                command: "PING".into(),
            },
            pace,
            message: b"ping\n".to_vec(),
        }
    }

    /// Records what the pool reports.
    #[derive(Default)]
    struct Ends {
        established: Cell<u32>,
        failed: RefCell<Vec<(u64, Syscall)>>,
        ended: RefCell<Vec<HoldEnd>>,
        reopened: Cell<u32>,
    }

    impl HoldEnds for Ends {
        fn established(&self, _: u64, _: Duration, _: u32) -> Option<Instant> {
            self.established.set(self.established.get() + 1);
            None
        }

        fn connect_failed(&self, index: u64, error: AttemptError, _: Duration) {
            self.failed.borrow_mut().push((index, error.syscall));
        }

        fn ended(&self, _: u64, end: HoldEnd, _: Duration) {
            self.ended.borrow_mut().push(end);
        }
    }

    impl PoolEnds for Ends {
        fn reopen(&self, _: u64) {
            self.reopened.set(self.reopened.get() + 1);
        }
    }

    fn recorder() -> Arc<Mutex<Delta>> {
        Arc::new(Mutex::new(Delta::new(0)))
    }

    /// Requests are not held back by Nagle's algorithm: a request larger
    /// than a segment would otherwise wait with its tail for the server's
    /// (delayed) ACK. A closed loop sends its first request as soon as the
    /// connection is up.
    #[test]
    fn a_pooled_connection_sends_at_once_without_nagles_delay() {
        let runtime = crate::engine::worker::runtime().unwrap();
        let _in = runtime.enter();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let recorder = recorder();
        let pool = Pool::new(
            &settings(Pace::Unlimited),
            "127.0.0.1:80",
            Instant::now(),
            Arc::clone(&recorder),
        );
        let ends = Ends::default();
        let far = Instant::now() + Duration::from_secs(5);
        let socket = connecting(listener.local_addr().unwrap());
        pool.start_connecting(socket, 0, Instant::now(), far, true, &ends)
            .unwrap();
        assert_eq!(ends.established.get(), 1, "a loopback handshake is done");
        assert!(pool.conns.borrow()[0].stream.nodelay().unwrap());
        assert_eq!(lock(&recorder).requests_mut().sent, 1);
        let (mut accepted, _) = listener.accept().unwrap();
        let mut head = [0; 14];
        accepted.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"GET / HTTP/1.1");
    }

    /// A response in, the next request out, and a server's close seen with
    /// its last words (the request out is an error); a connection that had
    /// answered asks to reopen.
    #[test]
    fn a_pooled_connection_serves_until_the_server_closes_it() {
        let runtime = crate::engine::worker::runtime().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = recorder();
        let ends = Ends::default();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let pool = Pool::new(
                &settings(Pace::Unlimited),
                "127.0.0.1:80",
                Instant::now(),
                Arc::clone(&recorder),
            );
            let far = Instant::now() + Duration::from_secs(5);
            pool.start_connecting(connecting(addr), 3, Instant::now(), far, false, &ends)
                .unwrap();
            let server = std::thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0; 1024];
                for _ in 0..2 {
                    let _ = s.read(&mut buf).unwrap();
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .unwrap();
                }
                let _ = s.read(&mut buf).unwrap();
                // A response cut short.
                s.write_all(b"HTTP/1.1 20").unwrap();
            });
            tokio::select! {
                () = pool.run(&ends) => unreachable!(),
                () = async {
                    while !pool.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                } => {}
            }
            server.join().unwrap();
        });
        let mut d = lock(&recorder);
        let r = d.requests_mut();
        assert_eq!((r.sent, r.responses), (3, 2));
        assert_eq!(r.errors[RequestErrorKind::Closed as usize], 1);
        match &ends.ended.borrow()[..] {
            [HoldEnd::ServerClosed { bytes, .. }] => {
                assert_eq!(bytes.as_deref(), Some("HTTP/1.1 20"));
            }
            other => panic!("ended {other:?}"),
        }
        assert_eq!(ends.reopened.get(), 1);
    }

    /// A listener whose accept queue is full (backlog 0, one connection
    /// in it, never accepted): the next SYN is dropped and the handshake
    /// hangs. Returns the listener, the connection filling it, its address.
    fn hanging_listener() -> (socket2::Socket, std::net::TcpStream, std::net::SocketAddr) {
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let filler = std::net::TcpStream::connect(addr).unwrap();
        (listener, filler, addr)
    }

    /// A handshake gives up at its deadline, and only at its own: a
    /// reconnect opens in the slot of a connection whose deadline is still
    /// queued, with the same attempt index.
    #[test]
    fn a_reopened_handshake_times_out_at_its_own_deadline() {
        let runtime = crate::engine::worker::runtime().unwrap();
        let (_listener, _filler, hanging) = hanging_listener();
        let answering = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ends = Ends::default();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let pool = Pool::new(
                &settings(Pace::Constant { per_s: 1.0 }),
                "127.0.0.1:80",
                Instant::now(),
                recorder(),
            );
            let soon = Instant::now() + Duration::from_millis(200);
            let later = soon + Duration::from_millis(400);
            let run = pool.run(&ends);
            tokio::pin!(run);
            let mut until = async |t: Instant| {
                tokio::select! {
                    () = &mut run => unreachable!(),
                    () = tokio::time::sleep_until(t) => {}
                }
            };
            // Attempt 0 in slot 0, its deadline queued; it is established.
            let addr = answering.local_addr().unwrap();
            pool.start_connecting(connecting(addr), 0, Instant::now(), soon, false, &ends)
                .unwrap();
            until(Instant::now() + Duration::from_millis(50)).await;
            assert_eq!(ends.established.get(), 1);
            // It ends, and opens again in slot 0: a handshake that hangs.
            pool.end(0, ConnEnd::Closed { reopen: false }, &ends);
            pool.start_connecting(connecting(hanging), 0, Instant::now(), later, false, &ends)
                .unwrap();
            until(soon + Duration::from_millis(150)).await;
            assert!(
                ends.failed.borrow().is_empty(),
                "timed out at the old deadline"
            );
            assert_eq!(pool.conns.borrow()[0].state, State::Connecting);
            until(later + Duration::from_millis(150)).await;
            assert_eq!(*ends.failed.borrow(), [(0, Syscall::Timeout)]);
            assert!(pool.is_empty());
        });
    }

    /// Every pooled connection is one slab entry for the whole run (plus
    /// its place in the idle list): what the pool costs per connection in
    /// user space, next to the kernel's socket.
    #[test]
    fn a_pooled_connection_is_one_small_entry() {
        // A slab slot is the entry or a free-list link, whichever is larger.
        let entry = std::mem::size_of::<Conn>().max(std::mem::size_of::<usize>() * 2);
        // 88 bytes: a timer, a buffer kept inline or a field more shows
        // here first.
        assert!(entry <= 96, "slab entry {entry} B");
    }
}
