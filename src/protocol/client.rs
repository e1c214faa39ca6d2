//! The client side of the request protocols (`ceiling run --mode request`):
//! the bytes of one request, built once, and whether the bytes read so far
//! hold a whole response and of what kind. A run holds one [`Exchange`]
//! trait object, so a pooled connection's loop has no branch per protocol.
//!
//! - [`Http`]: HTTP/1.1 keep-alive; the response head by httparse, its
//!   body by `Content-Length` or chunked (httparse's chunk-size parser);
//!   status classes counted, 4xx and 5xx are error replies; `Connection:
//!   close` (or HTTP/1.0 without keep-alive) says the server closes next.
//! - [`Redis`]: one RESP command; a `-ERR ...` reply is an error reply,
//!   its text kept.
//! - [`Line`]: a line out, a line back; `ERROR`, `CLIENT_ERROR`,
//!   `SERVER_ERROR` (memcached) and `busy` (`ceiling serve`'s pool) lines
//!   are error replies.
//! - [`Echo`]: the message, the same number of bytes back.

use std::fmt::Write as _;

use super::http::{Chunked, chunked_end};

/// The largest response read: a larger one is malformed, and its
/// connection is closed (responses are kept whole until complete, so this
/// bounds a connection's buffer).
pub const MAX_RESPONSE: usize = 1 << 20;

/// The largest HTTP response head read.
const MAX_HEAD: usize = 16 * 1024;

/// The most headers an HTTP response may have.
const MAX_HEADERS: usize = 64;

/// RESP arrays nested deeper than this are malformed.
const MAX_DEPTH: usize = 16;

/// A protocol as the client speaks it.
pub trait Exchange: Send + Sync {
    /// The request's bytes (the same for every request of a run).
    fn request(&self) -> &[u8];
    /// What the bytes read so far (from the start of the response) hold.
    fn response(&self, buf: &[u8]) -> Reply;
}

/// The verdict on the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// No whole response yet: read more.
    Incomplete,
    /// One whole response of `len` bytes.
    Complete(Response),
}

/// One whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub len: usize,
    /// HTTP status code (HTTP only).
    pub status: Option<u16>,
    /// An error reply's text (`-ERR ...`, `503 Service Unavailable`), or
    /// why the bytes are not a response (`malformed`).
    pub error: Option<ReplyError>,
    /// The server closes the connection after this response.
    pub close: bool,
}

/// A response that is not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The server answered with an error.
    Reply(String),
    /// Not a response of the protocol (or over [`MAX_RESPONSE`]): the
    /// connection is closed.
    Malformed(String),
}

fn ok(len: usize) -> Reply {
    Reply::Complete(Response {
        len,
        status: None,
        error: None,
        close: false,
    })
}

fn error_reply(len: usize, text: &[u8]) -> Reply {
    Reply::Complete(Response {
        len,
        status: None,
        error: Some(ReplyError::Reply(
            String::from_utf8_lossy(text).trim_end().to_string(),
        )),
        close: false,
    })
}

fn malformed(len: usize, why: impl Into<String>) -> Reply {
    Reply::Complete(Response {
        len,
        status: None,
        error: Some(ReplyError::Malformed(why.into())),
        close: true,
    })
}

/// The same bytes back.
pub struct Echo {
    message: Vec<u8>,
}

impl Echo {
    pub fn new(message: &[u8]) -> Echo {
        Echo {
            message: message.to_vec(),
        }
    }
}

impl Exchange for Echo {
    fn request(&self) -> &[u8] {
        &self.message
    }

    fn response(&self, buf: &[u8]) -> Reply {
        let len = self.message.len();
        if buf.len() < len {
            Reply::Incomplete
        } else if buf[..len] != self.message[..] {
            malformed(len, "the echo differs from the message")
        } else {
            ok(len)
        }
    }
}

/// A line out, a line back.
pub struct Line {
    message: Vec<u8>,
}

impl Line {
    /// `message` gets a `\n` unless it ends in one.
    pub fn new(message: &[u8]) -> Line {
        let mut message = message.to_vec();
        if message.last() != Some(&b'\n') {
            message.push(b'\n');
        }
        Line { message }
    }
}

impl Exchange for Line {
    fn request(&self) -> &[u8] {
        &self.message
    }

    fn response(&self, buf: &[u8]) -> Reply {
        let window = &buf[..buf.len().min(MAX_RESPONSE)];
        match window.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = &buf[..end];
                let is_error = [&b"ERROR"[..], b"CLIENT_ERROR", b"SERVER_ERROR", b"error"]
                    .iter()
                    .any(|p| line.starts_with(p))
                    || line.trim_ascii() == b"busy";
                if is_error {
                    error_reply(end + 1, line)
                } else {
                    ok(end + 1)
                }
            }
            None if buf.len() < MAX_RESPONSE => Reply::Incomplete,
            None => malformed(buf.len(), "a line longer than 1 MiB"),
        }
    }
}

/// One RESP command.
pub struct Redis {
    request: Vec<u8>,
}

impl Redis {
    /// `command`: words separated by spaces, e.g. `PING` or `GET key`.
    pub fn new(command: &str) -> Redis {
        let words: Vec<&str> = command.split_whitespace().collect();
        let mut request = format!("*{}\r\n", words.len());
        for word in words {
            let _ = write!(request, "${}\r\n{word}\r\n", word.len());
        }
        Redis {
            request: request.into_bytes(),
        }
    }
}

impl Exchange for Redis {
    fn request(&self) -> &[u8] {
        &self.request
    }

    fn response(&self, buf: &[u8]) -> Reply {
        match resp_value(buf, 0, 0) {
            Ok(None) if buf.len() < MAX_RESPONSE => Reply::Incomplete,
            Ok(None) => malformed(buf.len(), "a reply larger than 1 MiB"),
            Ok(Some((end, None))) => ok(end),
            Ok(Some((end, Some(text)))) => error_reply(end, text),
            Err(why) => malformed(buf.len(), why),
        }
    }
}

/// The line that starts at `pos` (without its `\r\n`) and where the next
/// begins; None while it is incomplete.
fn resp_line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], pos + end + 2))
}

fn resp_int(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("'{}' is not a RESP length", String::from_utf8_lossy(line)))
}

/// A whole RESP value: where it ends and, for an error, its text.
type RespValue<'a> = (usize, Option<&'a [u8]>);

/// The RESP value at `pos`; None while incomplete.
fn resp_value(buf: &[u8], pos: usize, depth: usize) -> Result<Option<RespValue<'_>>, String> {
    if depth > MAX_DEPTH {
        return Err("RESP arrays nested too deep".into());
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((line, next)) = resp_line(buf, pos + 1) else {
        return Ok(None);
    };
    match kind {
        b'+' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some((next, None))),
        b'-' => Ok(Some((next, Some(&buf[pos..next - 2])))),
        b'$' | b'!' | b'=' => {
            let n = resp_int(line)?;
            if n < 0 {
                return Ok(Some((next, None)));
            }
            let end = next + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            let error = (kind == b'!').then(|| &buf[next..end - 2]);
            Ok(Some((end, error)))
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = resp_int(line)?;
            let items = if kind == b'%' { n * 2 } else { n };
            let mut at = next;
            for _ in 0..items.max(0) {
                match resp_value(buf, at, depth + 1)? {
                    Some((end, _)) => at = end,
                    None => return Ok(None),
                }
            }
            Ok(Some((at, None)))
        }
        other => Err(format!("a reply starting with {:?}", other as char)),
    }
}

/// An HTTP/1.1 request.
pub struct Http {
    request: Vec<u8>,
    head: bool,
}

impl Http {
    /// `headers`: "Name: value" lines (checked by the caller); a `Host`
    /// among them replaces the default, `host`.
    pub fn new(method: &str, path: &str, host: &str, headers: &[String], body: &[u8]) -> Http {
        let mut text = format!("{method} {path} HTTP/1.1\r\n");
        let has = |name: &str| {
            headers.iter().any(|h| {
                h.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            })
        };
        if !has("host") {
            let _ = write!(text, "Host: {host}\r\n");
        }
        for header in headers {
            let _ = write!(text, "{header}\r\n");
        }
        if !body.is_empty() && !has("content-length") {
            let _ = write!(text, "Content-Length: {}\r\n", body.len());
        }
        text.push_str("\r\n");
        let mut request = text.into_bytes();
        request.extend_from_slice(body);
        Http {
            request,
            head: method.eq_ignore_ascii_case("HEAD"),
        }
    }
}

impl Exchange for Http {
    fn request(&self) -> &[u8] {
        &self.request
    }

    fn response(&self, buf: &[u8]) -> Reply {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Reply::Incomplete,
            Ok(httparse::Status::Partial) => {
                return malformed(buf.len(), "a response head over 16 KiB");
            }
            Err(e) => return malformed(buf.len(), format!("not an HTTP response: {e}")),
        };
        let code = response.code.unwrap_or(0);
        let mut length = None;
        let mut chunked = false;
        let mut close = response.version == Some(0);
        for h in response.headers.iter() {
            // No allocation per response: the hot path of a closed loop.
            if h.name.eq_ignore_ascii_case("content-length") {
                match std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                {
                    Some(n) => length = Some(n),
                    None => {
                        let value = String::from_utf8_lossy(h.value);
                        return malformed(buf.len(), format!("Content-Length '{value}'"));
                    }
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = has_token(h.value, b"chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                if has_token(h.value, b"close") {
                    close = true;
                } else if has_token(h.value, b"keep-alive") {
                    close = false;
                }
            }
        }
        let reason = response.reason.unwrap_or("");
        let no_body = self.head || code == 204 || code == 304 || (100..200).contains(&code);
        let len = if no_body {
            head_len
        } else if chunked {
            match chunked_end(buf, head_len, MAX_RESPONSE) {
                Ok(Some(end)) => end,
                Ok(None) => return Reply::Incomplete,
                Err(Chunked::TooLarge) => return malformed(buf.len(), "a response over 1 MiB"),
                Err(Chunked::BadSize) => {
                    return malformed(buf.len(), "a chunk size that does not parse");
                }
            }
        } else if let Some(n) = length {
            if head_len + n > MAX_RESPONSE {
                return malformed(buf.len(), "a response over 1 MiB");
            }
            if buf.len() < head_len + n {
                return Reply::Incomplete;
            }
            head_len + n
        } else {
            // A body that ends with the connection: the server closes.
            close = true;
            head_len
        };
        Reply::Complete(Response {
            len,
            status: Some(code),
            error: (code >= 400).then(|| ReplyError::Reply(format!("{code} {reason}"))),
            close,
        })
    }
}

/// Whether a header value holds `token`, in any case.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .windows(token.len())
        .any(|w| w.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every proper prefix of a response is incomplete; the whole is one
    /// response of its full length.
    fn whole(exchange: &dyn Exchange, response: &[u8]) -> Response {
        for cut in 0..response.len() {
            assert_eq!(
                exchange.response(&response[..cut]),
                Reply::Incomplete,
                "cut at {cut} of {:?}",
                String::from_utf8_lossy(response)
            );
        }
        let mut longer = response.to_vec();
        longer.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        match exchange.response(&longer) {
            Reply::Complete(r) => {
                assert_eq!(r.len, response.len());
                r
            }
            Reply::Incomplete => panic!("incomplete: {:?}", String::from_utf8_lossy(response)),
        }
    }

    #[test]
    fn http_responses_end_by_length_or_chunks_and_say_close() {
        let http = Http::new("GET", "/", "127.0.0.1:80", &[], b"");
        assert_eq!(
            http.request(),
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"
        );
        let r = whole(&http, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        assert_eq!((r.status, r.error, r.close), (Some(200), None, false));
        let r = whole(
            &http,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n",
        );
        assert_eq!(r.status, Some(200));
        let r = whole(
            &http,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
        );
        assert!(r.error.is_none());
        let r = whole(
            &http,
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 5\r\n\r\nbusy\n",
        );
        assert_eq!(r.status, Some(503));
        assert!(r.close);
        assert_eq!(
            r.error,
            Some(ReplyError::Reply("503 Service Unavailable".into()))
        );
        let r = whole(&http, b"HTTP/1.0 204 No Content\r\n\r\n");
        assert!(r.close, "HTTP/1.0 without keep-alive closes");
        match http.response(b"SSH-2.0-OpenSSH\r\n\r\n") {
            Reply::Complete(r) => assert!(matches!(r.error, Some(ReplyError::Malformed(_)))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_requests_carry_headers_and_a_body() {
        let headers = vec!["Host: example".to_string(), "X-A: b".to_string()];
        let http = Http::new("POST", "/p", "127.0.0.1:80", &headers, b"hi");
        assert_eq!(
            http.request(),
            b"POST /p HTTP/1.1\r\nHost: example\r\nX-A: b\r\nContent-Length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn resp_errors_keep_their_text_and_nested_replies_end_where_they_do() {
        let redis = Redis::new("PING");
        assert_eq!(redis.request(), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            Redis::new("GET k").request(),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
        assert!(whole(&redis, b"+PONG\r\n").error.is_none());
        let r = whole(&redis, b"-ERR max number of clients reached\r\n");
        assert_eq!(
            r.error,
            Some(ReplyError::Reply(
                "-ERR max number of clients reached".into()
            ))
        );
        whole(&redis, b"$5\r\nhello\r\n");
        whole(&redis, b"$-1\r\n");
        whole(&redis, b"*2\r\n$1\r\na\r\n*1\r\n:3\r\n");
        whole(&redis, b"%1\r\n+k\r\n+v\r\n");
        assert!(matches!(
            redis.response(b"hello\r\n"),
            Reply::Complete(Response {
                error: Some(ReplyError::Malformed(_)),
                close: true,
                ..
            })
        ));
    }

    #[test]
    fn a_line_comes_back_and_error_lines_are_errors() {
        let line = Line::new(b"ping");
        assert_eq!(line.request(), b"ping\n");
        assert!(whole(&line, b"ping\n").error.is_none());
        assert!(whole(&line, b"busy\n").error.is_some());
        assert!(
            whole(&line, b"SERVER_ERROR out of memory\r\n")
                .error
                .is_some()
        );
        let echo = Echo::new(b"abc");
        assert!(whole(&echo, b"abc").error.is_none());
        assert!(matches!(
            echo.response(b"abd"),
            Reply::Complete(Response {
                error: Some(ReplyError::Malformed(_)),
                ..
            })
        ));
    }
}
