//! Request mode on one worker: its share of the pool's connections serve
//! requests that a generator stamps with their intended time (open loop),
//! or back to back (closed loop, `--rate 0`, as wrk).
//!
//! A due request goes to a free connection through a FIFO queue: when no
//! connection is free it waits there (`--when-pool-busy queue`, at most
//! `--queue-timeout`) or is rejected (`reject`). Queue wait is a free
//! connection − the intended time, service time the response − the send,
//! total the response − the intended time: a stalled server shows in the
//! total of every request due during the stall (no coordinated omission).
//!
//! A connection reads into the worker's one scratch buffer and keeps a
//! buffer of its own only while a response spans reads; it has no timer
//! (the run's end drops it with the worker's tasks), so a pooled
//! connection costs its task, its socket and ~200 bytes of state.
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
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep_until};

use super::Control;
use super::hold::{EVIDENCE_BYTES, HoldEnd, printable};
use super::plan::Segment;
use super::rate::Pacer;
use crate::model::{PeerClose, RequestErrorKind};
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

/// How a pooled connection ended.
pub enum ConnEnd {
    /// Closed by ceiling: the server said it closes, or sent something
    /// that is not a response; `reopen`: it is opened again (it had
    /// answered, or it said it closes).
    Closed { reopen: bool },
    /// The server closed it unannounced; `reopen`: it had answered before.
    ServerClosed { end: HoldEnd, reopen: bool },
}

/// One worker's pool: the queue of due requests and the connections
/// waiting for one.
pub struct Pool {
    exchange: Box<dyn Exchange>,
    closed_loop: bool,
    when_busy: WhenPoolBusy,
    queue_timeout: Duration,
    /// Intended times of the requests due and not yet taken.
    queue: RefCell<VecDeque<Instant>>,
    /// Connections waiting for a request.
    idle: Cell<usize>,
    ready: Notify,
    scratch: RefCell<Vec<u8>>,
}

impl Pool {
    pub fn new(settings: &RequestSettings, host: &str) -> Pool {
        Pool {
            exchange: settings.exchange(host),
            closed_loop: matches!(settings.pace, Pace::Unlimited),
            when_busy: settings.requests.when_pool_busy,
            queue_timeout: settings.requests.queue_timeout,
            queue: RefCell::new(VecDeque::new()),
            idle: Cell::new(0),
            ready: Notify::new(),
            scratch: RefCell::new(vec![0; SCRATCH]),
        }
    }

    pub fn is_closed_loop(&self) -> bool {
        self.closed_loop
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
        recorder: &Mutex<Delta>,
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
            self.dispatch(intended, recorder);
            batch += 1;
            if batch >= BATCH {
                batch = 0;
                tokio::task::yield_now().await;
            }
        }
    }

    /// A request is due: to a free connection (through the queue, where
    /// it stays until that connection runs), the queue, or rejected.
    fn dispatch(&self, intended: Instant, recorder: &Mutex<Delta>) {
        let now = Instant::now();
        // Stamped up to the timer's slack early: measured from the earlier.
        let intended = intended.min(now);
        let mut d = lock(recorder);
        let r = d.requests_mut();
        r.scheduled += 1;
        let mut queue = self.queue.borrow_mut();
        self.expire(&mut queue, now, r);
        let free = queue.len() < self.idle.get();
        if !free && (self.when_busy == WhenPoolBusy::Reject || queue.len() >= MAX_QUEUED) {
            r.rejects += 1;
            return;
        }
        r.queued += 1;
        queue.push_back(intended);
        self.ready.notify_one();
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
    fn take(&self, recorder: &Mutex<Delta>) -> Option<Instant> {
        let mut queue = self.queue.borrow_mut();
        queue.front()?;
        let mut d = lock(recorder);
        let r = d.requests_mut();
        self.expire(&mut queue, Instant::now(), r);
        let intended = queue.pop_front()?;
        r.dequeued += 1;
        Some(intended)
    }

    /// Serves requests on one connection until the connection ends; at the
    /// run's end the worker drops it (no timer of its own: a pooled
    /// connection costs its task and its socket only).
    pub async fn serve(&self, stream: &TcpStream, recorder: &Mutex<Delta>) -> ConnEnd {
        // A request is written whole, and the next only once the response
        // is in: Nagle's algorithm could only hold back the tail of a
        // request longer than a segment until the server's ACK, which a
        // server waiting for the rest may delay by up to 40 ms, all of it
        // in the service time (wrk sets it too). Cannot fail on a
        // connected TCP socket.
        let _ = stream.set_nodelay(true);
        let mut pending: Vec<u8> = Vec::new();
        // What the server said that may explain its close; most servers
        // say nothing, so it is made on first need.
        let mut said: Option<Box<Said>> = None;
        let mut answered = false;
        loop {
            // When the request is sent, and how long it waited for this
            // connection (a closed loop's request is due as it is sent:
            // no queue). The wait is kept rather than the intended time:
            // 8 bytes fewer in every pooled connection, and total =
            // queue + service exactly (intended <= sent <= response).
            let (sent_at, queue_ns) = if self.closed_loop {
                (Instant::now(), 0)
            } else {
                let intended = loop {
                    if let Some(intended) = self.take(recorder) {
                        break intended;
                    }
                    self.idle.set(self.idle.get() + 1);
                    let woke = tokio::select! {
                        _ = self.ready.notified() => Ok(false),
                        ready = readable(stream) => ready.map(|()| true),
                    };
                    self.idle.set(self.idle.get() - 1);
                    match woke {
                        Ok(false) => {}
                        // Readable while idle: a close, or bytes nobody
                        // asked for (kept as evidence).
                        Ok(true) => match self.read(stream) {
                            Ok(0) => return self.closed(None, answered, None, unasked(&said)),
                            Ok(n) => {
                                let scratch = self.scratch.borrow();
                                let unasked = &mut said.get_or_insert_default().unasked;
                                let room = EVIDENCE_BYTES.saturating_sub(unasked.len());
                                unasked.extend_from_slice(&scratch[..n.min(room)]);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => {
                                return self.closed(Some(e), answered, None, unasked(&said));
                            }
                        },
                        Err(e) => return self.closed(Some(e), answered, None, unasked(&said)),
                    }
                };
                let now = Instant::now();
                (
                    now,
                    now.saturating_duration_since(intended).as_nanos() as u64,
                )
            };
            {
                let mut d = lock(recorder);
                let r = d.requests_mut();
                // A closed loop's request is due as it is sent.
                r.scheduled += u64::from(self.closed_loop);
                r.sent += 1;
            }
            if let Err(e) = write_all(stream, self.exchange.request()).await {
                return self.closed(Some(e), answered, Some(recorder), unasked(&said));
            }
            // The response.
            loop {
                if let Err(e) = readable(stream).await {
                    return self.closed(Some(e), answered, Some(recorder), unasked(&said));
                }
                let n = match self.read(stream) {
                    Ok(0) => {
                        // What it said last: an error reply, unasked
                        // bytes, or a response cut short.
                        let evidence = said
                            .as_mut()
                            .and_then(|s| s.last_error.take())
                            .map(String::into_bytes);
                        let bytes = match &evidence {
                            Some(text) => text.as_slice(),
                            None if !unasked(&said).is_empty() => unasked(&said),
                            None => &pending[..pending.len().min(EVIDENCE_BYTES)],
                        };
                        return self.closed(None, answered, Some(recorder), bytes);
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => {
                        return self.closed(Some(e), answered, Some(recorder), unasked(&said));
                    }
                };
                let reply = {
                    let scratch = self.scratch.borrow();
                    if pending.is_empty() {
                        let reply = self.exchange.response(&scratch[..n]);
                        if reply == Reply::Incomplete {
                            pending.extend_from_slice(&scratch[..n]);
                        }
                        reply
                    } else {
                        pending.extend_from_slice(&scratch[..n]);
                        self.exchange.response(&pending)
                    }
                };
                let Reply::Complete(response) = reply else {
                    continue;
                };
                let now = Instant::now();
                let us = |d: Duration| d.as_micros() as u64;
                {
                    let mut d = lock(recorder);
                    let r = d.requests_mut();
                    let queue = Duration::from_nanos(queue_ns);
                    let service = now.saturating_duration_since(sent_at);
                    r.record_times(us(queue), us(service), us(queue + service));
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
                        answered = true;
                        if let Some(said) = &mut said {
                            said.last_error = None;
                        }
                    }
                    Some(ReplyError::Reply(text)) => {
                        said.get_or_insert_default().last_error = Some(text);
                    }
                    Some(ReplyError::Malformed(_)) => {
                        // Not a response: a server that turns connections
                        // away writes its reason and closes; if it has
                        // closed already, that is its close, with its
                        // words as the evidence.
                        let said = if pending.is_empty() {
                            self.scratch.borrow()[..n.min(EVIDENCE_BYTES)].to_vec()
                        } else {
                            pending[..pending.len().min(EVIDENCE_BYTES)].to_vec()
                        };
                        if let Ok(0) = self.read(stream) {
                            return self.closed(None, answered, None, &said);
                        }
                        return ConnEnd::Closed { reopen: answered };
                    }
                }
                if pending.capacity() > PENDING_KEPT {
                    pending = Vec::new();
                } else {
                    pending.clear();
                }
                if response.close {
                    return ConnEnd::Closed { reopen: true };
                }
                break;
            }
        }
    }

    /// One read into the scratch buffer. A read that did not fill it took
    /// all there was: the socket's readiness is cleared here, so the next
    /// wait for a response goes straight to epoll instead of a read that
    /// would find nothing (one syscall fewer per request). Safe: nothing
    /// can have arrived unseen between the read and the clear (the same
    /// poll, and epoll reports anything later as a new event).
    fn read(&self, stream: &TcpStream) -> io::Result<usize> {
        let mut scratch = self.scratch.borrow_mut();
        let n = stream.try_read(&mut scratch)?;
        if n > 0 && n < scratch.len() {
            let _ = stream.try_io(Interest::READABLE, || {
                Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
            });
        }
        Ok(n)
    }

    /// The server closed the connection (`err` None: EOF); with
    /// `in_flight`, the request sent on it is an error.
    fn closed(
        &self,
        err: Option<io::Error>,
        answered: bool,
        in_flight: Option<&Mutex<Delta>>,
        bytes: &[u8],
    ) -> ConnEnd {
        if let Some(recorder) = in_flight {
            lock(recorder)
                .requests_mut()
                .record_error(RequestErrorKind::Closed, None);
        }
        ConnEnd::ServerClosed {
            end: HoldEnd::ServerClosed {
                how: if err.is_some() {
                    PeerClose::Rst
                } else {
                    PeerClose::Eof
                },
                errno: err.and_then(|e| e.raw_os_error()),
                bytes: (!bytes.is_empty()).then(|| printable(bytes)),
            },
            reopen: answered,
        }
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

/// Waits until `stream` is readable, through the stream's one reader
/// waker slot: `TcpStream::readable()` keeps a waiter in its future (152
/// bytes, in every pooled connection's task for the whole run); this keeps
/// a reference. Only one task may wait this way per stream: each pooled
/// connection has its own.
fn readable(stream: &TcpStream) -> impl Future<Output = io::Result<()>> + '_ {
    std::future::poll_fn(move |cx| stream.poll_read_ready(cx))
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::future::poll_fn(|cx| stream.poll_write_ready(cx)).await?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

    /// Requests are not held back by Nagle's algorithm: a request larger
    /// than a segment would otherwise wait with its tail for the server's
    /// (delayed) ACK.
    #[test]
    fn a_pooled_connection_sends_without_nagles_delay() {
        let runtime = crate::engine::worker::runtime().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let _in = runtime.enter();
        let stream = TcpStream::from_std(client).unwrap();
        assert!(!stream.nodelay().unwrap(), "Nagle is on by default");
        let pool = Pool::new(&settings(Pace::Unlimited), "127.0.0.1:80");
        let recorder = Mutex::new(Delta::new(0));
        // Sends its first request, then waits for a response that the
        // listener never sends.
        runtime.block_on(async {
            tokio::select! {
                biased;
                _ = pool.serve(&stream, &recorder) => panic!("no response came"),
                () = tokio::task::yield_now() => {}
            }
        });
        assert_eq!(lock(&recorder).requests_mut().sent, 1);
        assert!(stream.nodelay().unwrap());
    }

    /// Every pooled connection holds one of these futures (boxed, in its
    /// task) for the whole run: a timer or a buffer kept in it shows here
    /// first, and the memory per pooled connection with it.
    #[test]
    fn a_pooled_connections_state_stays_small() {
        let runtime = crate::engine::worker::runtime().unwrap();
        let _in = runtime.enter();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let stream = TcpStream::from_std(client).unwrap();
        let pool = Pool::new(&settings(Pace::Constant { per_s: 1.0 }), "127.0.0.1:80");
        let recorder = Mutex::new(Delta::new(0));
        let serve = pool.serve(&stream, &recorder);
        let size = std::mem::size_of_val(&serve);
        // 208 bytes in a debug build (400 when it waited with
        // `TcpStream::readable()` and kept two evidence buffers inline).
        let limit = 224;
        assert!(
            size <= limit,
            "a pooled connection's state takes {size} bytes (limit {limit})"
        );
    }
}
