//! Request framing: where one request ends in the bytes read so far, and
//! what answers it, for the request protocols `ceiling serve` answers
//! (HTTP/1.1, RESP, a line). It imports nothing from the crate and does no
//! I/O, so the request client can share the framing later.
//!
//! The shape is mini-redis's frame check: [`Protocol::answer`] looks at the
//! front of a connection's read buffer and says [`Answer::Incomplete`] (a
//! normal answer: read more), [`Answer::Answered`] (one whole request of
//! `len` bytes, its response appended to the output buffer), or
//! [`Answer::Refused`] (not a request of this protocol, or larger than the
//! protocol's bound: an error response appended, then the connection
//! closes). A caller never needs more than [`Protocol::max_request`] bytes
//! buffered: a request that does not fit is refused, so no buffer grows
//! without bound.
//!
//! - [`http`]: HTTP/1.1 (and 1.0) by httparse; any method and path get
//!   `200 OK` with a small body; keep-alive unless the client asks to close.
//! - [`redis`]: RESP arrays and inline commands; PING, ECHO, QUIT.
//! - [`line`]: a line in, the same line back.
//! - [`client`]: the other side, for `run --mode request`: a request to
//!   send, and where its response ends.

pub mod client;
pub mod http;
pub mod line;
pub mod redis;

/// A request protocol the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Redis,
    Line,
}

/// The verdict on the front of a read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// No whole request yet: read more. The output is untouched.
    Incomplete,
    /// One whole request, the first `len` bytes of the buffer; its response
    /// is appended to the output. `close`: the client asked to close (HTTP
    /// `Connection: close`, RESP QUIT) once the response is sent.
    Answered { len: usize, close: bool },
    /// Not a request, or one over [`Protocol::max_request`]: an error
    /// response is appended to the output; send it and close.
    Refused,
}

impl Protocol {
    /// The most bytes one request may take; a caller's read buffer needs
    /// no more.
    pub fn max_request(self) -> usize {
        match self {
            Protocol::Http => http::MAX_REQUEST,
            Protocol::Redis => redis::MAX_REQUEST,
            Protocol::Line => line::MAX_LINE,
        }
    }

    /// The answer to a request the server is too busy to serve: HTTP
    /// `503` (with `Connection: close` if `close`, else kept alive), RESP
    /// `-ERR busy`, a line `busy`.
    pub fn busy(self, out: &mut Vec<u8>, close: bool) {
        match self {
            Protocol::Http => http::busy(out, close),
            Protocol::Redis => out.extend_from_slice(b"-ERR busy\r\n"),
            Protocol::Line => out.extend_from_slice(b"busy\n"),
        }
    }

    /// Answers the first request in `buf` into `out` (see [`Answer`]).
    pub fn answer(self, buf: &[u8], out: &mut Vec<u8>) -> Answer {
        match self {
            Protocol::Http => http::answer(buf, out),
            Protocol::Redis => redis::answer(buf, out),
            Protocol::Line => line::answer(buf, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every protocol: a request cut anywhere is incomplete, and the whole
    /// of it is one request of its full length.
    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let requests: [(Protocol, &[u8]); 3] = [
            (Protocol::Http, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            (Protocol::Redis, b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n"),
            (Protocol::Line, b"hello\n"),
        ];
        for (protocol, request) in requests {
            for cut in 0..request.len() {
                let mut out = Vec::new();
                assert_eq!(
                    protocol.answer(&request[..cut], &mut out),
                    Answer::Incomplete,
                    "{protocol:?} cut at {cut}"
                );
                assert!(out.is_empty());
            }
            let mut out = Vec::new();
            assert_eq!(
                protocol.answer(request, &mut out),
                Answer::Answered {
                    len: request.len(),
                    close: false
                }
            );
        }
    }

    #[test]
    fn busy_answers_are_each_protocols_own() {
        let mut out = Vec::new();
        Protocol::Redis.busy(&mut out, false);
        Protocol::Line.busy(&mut out, false);
        assert_eq!(out, b"-ERR busy\r\nbusy\n");
        let mut out = Vec::new();
        Protocol::Http.busy(&mut out, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nbusy\n"
        );
        let mut out = Vec::new();
        Protocol::Http.busy(&mut out, true);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("Connection: close\r\n")
        );
    }
}
