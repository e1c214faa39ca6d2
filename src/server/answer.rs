//! Request modes: a connection answers each request of its protocol, in
//! order, after the service time, until the client closes, asks to close, or
//! sends what is not a request (answered with the protocol's error, then
//! closed).
//!
//! [`Requests`] is the part every model shares: the read buffer, the
//! output buffer and the counting. [`serve_task`] drives it on a task (the
//! service time is a tokio timer, so other connections go on meanwhile, or
//! with `--model pool` a worker's sleep the task awaits) and
//! [`serve_thread`] on a connection's own thread (a blocking sleep).
//!
//! The buffers are bounded: the read buffer never holds more than the
//! protocol's largest request ([`Protocol::max_request`]), since a request
//! that does not fit is refused; the output is sent once it reaches that
//! size too. Both are freed when empty, so a keep-alive connection waiting
//! for its next request holds no buffer. Pipelined requests are answered in
//! order; with no service time their responses go out in one write.
//!
//! When the server ends a connection (a refused request, or a close the
//! client asked for) it sends its FIN first and reads on for a moment
//! before closing, so the last response is not lost to a RST.

use std::io::{self, Read, Write};
use std::net;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ServerStats;
use super::conn::End;
use super::options::ServiceTime;
use super::pool::Verdict;
use super::slots::Shared;
use crate::protocol::{Answer, Protocol};

/// Bytes read per read() call, into a stack buffer.
const SCRATCH: usize = 8 * 1024;

/// How long a connection the server closes (a refused request, or a close
/// the client asked for) keeps reading and discarding after its FIN, and
/// how much: closing with unread bytes would send a RST, which can destroy
/// the error response before the client reads it (nginx's lingering close).
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// What to do after looking at the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// A whole request, answered into the output: wait the service time,
    /// then send (and close if `close`).
    Respond { close: bool },
    /// Send what is answered, then read more.
    Read,
    /// Send the error answer, then close.
    Refuse,
}

/// One connection's requests: bytes read and not yet answered, responses
/// not yet sent.
struct Requests<'a> {
    protocol: Protocol,
    stats: &'a ServerStats,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Responses in `output`.
    unsent: u64,
    /// Where the last answered request's response starts in `output`.
    last: usize,
}

impl<'a> Requests<'a> {
    fn new(protocol: Protocol, stats: &'a ServerStats) -> Self {
        Requests {
            protocol,
            stats,
            input: Vec::new(),
            output: Vec::new(),
            unsent: 0,
            last: 0,
        }
    }

    /// Answers the first buffered request, if whole.
    fn next(&mut self) -> Next {
        self.last = self.output.len();
        match self.protocol.answer(&self.input, &mut self.output) {
            Answer::Incomplete => Next::Read,
            Answer::Answered { len, close } => {
                self.input.drain(..len);
                self.unsent += 1;
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                Next::Respond { close }
            }
            Answer::Refused => {
                self.stats.request_errors.fetch_add(1, Ordering::Relaxed);
                Next::Refuse
            }
        }
    }

    /// The last request is not served after all: its response is taken
    /// back, and with `busy` the protocol's busy answer put in its place.
    fn turn_away_last(&mut self, busy: bool, close: bool) {
        self.output.truncate(self.last);
        self.unsent -= 1;
        if busy {
            self.protocol.busy(&mut self.output, close);
        }
    }

    /// Output large enough to send before answering more.
    fn output_full(&self) -> bool {
        self.output.len() >= self.protocol.max_request()
    }

    /// How many more bytes a read may add. Never 0 when [`Self::next`]
    /// said [`Next::Read`]: a full buffer holding no whole request is
    /// refused.
    fn room(&self) -> usize {
        self.protocol.max_request().saturating_sub(self.input.len())
    }

    fn received(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// The output was sent: count its responses, free what is empty.
    fn sent(&mut self) {
        self.stats
            .responses
            .fetch_add(self.unsent, Ordering::Relaxed);
        self.unsent = 0;
        self.output = Vec::new();
        if self.input.is_empty() {
            self.input = Vec::new();
        }
    }
}

/// Serves requests on a task until EOF, a close the client asked for, a
/// refused request, the idle timeout, or an error.
pub(super) async fn serve_task(
    stream: &TcpStream,
    protocol: Protocol,
    shared: &Shared,
) -> io::Result<End> {
    let (service_time, idle) = (shared.service_time, shared.idle_timeout);
    let mut requests = Requests::new(protocol, &shared.stats);
    let idle_deadline = || idle.and_then(|idle| Instant::now().checked_add(idle));
    let mut idle_at = idle_deadline();
    let mut eof = false;
    loop {
        match requests.next() {
            Next::Respond { close } => {
                if let Some(pool) = &shared.pool {
                    match pool.serve(service_time.draw()).await {
                        Verdict::Served => {}
                        Verdict::Busy => requests.turn_away_last(true, close),
                        Verdict::Close => {
                            requests.turn_away_last(false, true);
                            send_async(stream, &mut requests).await?;
                            linger_async(stream).await;
                            return Ok(End::Eof);
                        }
                    }
                    send_async(stream, &mut requests).await?;
                } else if let Some(time) = service_time.draw() {
                    // Earlier answers are not held back by this one's time.
                    tokio::time::sleep(time).await;
                    send_async(stream, &mut requests).await?;
                } else if close || requests.output_full() {
                    send_async(stream, &mut requests).await?;
                }
                if close {
                    linger_async(stream).await;
                    return Ok(End::Eof);
                }
                continue;
            }
            Next::Refuse => {
                send_async(stream, &mut requests).await?;
                linger_async(stream).await;
                return Ok(End::Eof);
            }
            Next::Read => {}
        }
        if !requests.output.is_empty() {
            send_async(stream, &mut requests).await?;
        }
        if eof {
            return Ok(End::Eof);
        }
        match idle_at {
            Some(at) => match tokio::time::timeout_at(at, stream.readable()).await {
                Ok(ready) => ready?,
                Err(_elapsed) => return Ok(End::Idle),
            },
            None => stream.readable().await?,
        }
        let (received, at_eof) = read_async(stream, &mut requests)?;
        if received {
            idle_at = idle_deadline();
        }
        // Requests read before the EOF are still answered.
        eof = at_eof;
    }
}

/// Reads what is there, up to the room left; whether anything arrived and
/// whether the peer closed its side.
fn read_async(stream: &TcpStream, requests: &mut Requests<'_>) -> io::Result<(bool, bool)> {
    let mut scratch = [0u8; SCRATCH];
    let mut received = false;
    while requests.room() > 0 {
        let want = requests.room().min(SCRATCH);
        match stream.try_read(&mut scratch[..want]) {
            Ok(0) => return Ok((received, true)),
            Ok(n) => {
                requests.received(&scratch[..n]);
                received = true;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err),
        }
    }
    Ok((received, false))
}

/// Sends the whole output, waiting for the socket as needed.
async fn send_async(stream: &TcpStream, requests: &mut Requests<'_>) -> io::Result<()> {
    let mut written = 0;
    while written < requests.output.len() {
        stream.writable().await?;
        match stream.try_write(&requests.output[written..]) {
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(err),
        }
    }
    requests.sent();
    Ok(())
}

/// Sends a FIN, then reads and discards until the peer closes, for at most
/// [`LINGER_TIME`] and [`LINGER_BYTES`].
async fn linger_async(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).shutdown(net::Shutdown::Write);
    let drain = async {
        let mut left = LINGER_BYTES;
        while left > 0 && stream.readable().await.is_ok() {
            match discard(stream) {
                Ok(0) => return,
                Ok(n) => left = left.saturating_sub(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// One read into a stack buffer (never part of a task's state), thrown
/// away.
fn discard(stream: &TcpStream) -> io::Result<usize> {
    let mut scratch = [0u8; SCRATCH];
    stream.try_read(&mut scratch)
}

/// [`linger_async`] on a blocking socket.
fn linger_blocking(stream: &mut net::TcpStream) {
    let _ = stream.shutdown(net::Shutdown::Write);
    let deadline = std::time::Instant::now() + LINGER_TIME;
    let mut scratch = [0u8; SCRATCH];
    let mut left = LINGER_BYTES;
    while left > 0 {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        if wait.is_zero() || stream.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match stream.read(&mut scratch) {
            Ok(0) => return,
            Ok(n) => left = left.saturating_sub(n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Serves requests on the connection's own thread, blocking, until EOF, a
/// close the client asked for, a refused request, the idle timeout (the
/// socket's read timeout) or an error.
pub(super) fn serve_thread(
    stream: &mut net::TcpStream,
    protocol: Protocol,
    service_time: ServiceTime,
    stats: &ServerStats,
) -> io::Result<End> {
    let mut requests = Requests::new(protocol, stats);
    let mut scratch = [0u8; SCRATCH];
    let mut eof = false;
    loop {
        match requests.next() {
            Next::Respond { close } => {
                if let Some(time) = service_time.draw() {
                    std::thread::sleep(time);
                    send_blocking(stream, &mut requests)?;
                } else if close || requests.output_full() {
                    send_blocking(stream, &mut requests)?;
                }
                if close {
                    linger_blocking(stream);
                    return Ok(End::Eof);
                }
                continue;
            }
            Next::Refuse => {
                send_blocking(stream, &mut requests)?;
                linger_blocking(stream);
                return Ok(End::Eof);
            }
            Next::Read => {}
        }
        if !requests.output.is_empty() {
            send_blocking(stream, &mut requests)?;
        }
        if eof {
            return Ok(End::Eof);
        }
        let want = requests.room().min(SCRATCH);
        match stream.read(&mut scratch[..want]) {
            Ok(0) => eof = true,
            Ok(n) => requests.received(&scratch[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(End::Idle);
            }
            Err(err) => return Err(err),
        }
    }
}

fn send_blocking(stream: &mut net::TcpStream, requests: &mut Requests<'_>) -> io::Result<()> {
    stream.write_all(&requests.output)?;
    requests.sent();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_without_a_whole_request_is_refused_not_grown() {
        let stats = ServerStats::default();
        let mut requests = Requests::new(Protocol::Line, &stats);
        requests.received(&vec![b'a'; Protocol::Line.max_request() - 1]);
        assert_eq!(requests.next(), Next::Read);
        assert_eq!(requests.room(), 1);
        requests.received(b"a");
        assert_eq!(requests.next(), Next::Refuse);
        assert_eq!(stats.totals().request_errors, 1);
    }

    #[test]
    fn a_request_turned_away_gets_the_busy_answer_in_place_of_its_own() {
        let stats = ServerStats::default();
        let mut requests = Requests::new(Protocol::Redis, &stats);
        requests.received(b"ECHO one\r\nECHO two\r\n");
        assert_eq!(requests.next(), Next::Respond { close: false });
        assert_eq!(requests.next(), Next::Respond { close: false });
        requests.turn_away_last(true, false);
        assert_eq!(requests.output, b"$3\r\none\r\n-ERR busy\r\n");
        requests.sent();
        assert_eq!((stats.totals().requests, stats.totals().responses), (2, 1));
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_counted_when_sent() {
        let stats = ServerStats::default();
        let mut requests = Requests::new(Protocol::Line, &stats);
        requests.received(b"one\ntwo\nthr");
        assert_eq!(requests.next(), Next::Respond { close: false });
        assert_eq!(requests.next(), Next::Respond { close: false });
        assert_eq!(requests.next(), Next::Read);
        assert_eq!(requests.output, b"one\ntwo\n");
        assert_eq!((stats.totals().requests, stats.totals().responses), (2, 0));
        requests.sent();
        assert_eq!(stats.totals().responses, 2);
        assert_eq!(requests.output.capacity(), 0, "the output is freed");
        assert_eq!(requests.input, b"thr");
    }
}
