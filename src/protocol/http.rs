//! HTTP/1.1 requests, framed by httparse: the head until its blank line,
//! then a body of `Content-Length` bytes, or a chunked one (httparse's
//! chunk-size parser, the walk shared with the client's responses:
//! [`chunked_end`]). Any method and path get `200 OK` and a small body (no
//! body for HEAD); the connection stays open unless the client sends
//! `Connection: close` (or speaks HTTP/1.0 without `Connection:
//! keep-alive`). A head that does not parse, a chunk size that does not, or
//! a request with both `Content-Length` and `Transfer-Encoding` (RFC 9112
//! 6.3: which one frames it is how requests get smuggled) gets `400`, a
//! head over [`MAX_HEAD`] or with more than [`MAX_HEADERS`] headers `431`, a
//! request over [`MAX_REQUEST`] `413`, a transfer coding other than chunked
//! `501`; each of those closes the connection.

use super::Answer;

/// The largest request head (request line and headers) answered.
pub const MAX_HEAD: usize = 16 * 1024;

/// The largest request, head and body, answered.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The most headers a request may have.
pub const MAX_HEADERS: usize = 64;

/// The body of every `200 OK`.
pub const BODY: &[u8] = b"ok\n";

/// Answers the first request in `buf` (see [`Answer`]).
pub fn answer(buf: &[u8], out: &mut Vec<u8>) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Answer::Incomplete,
        Ok(_) => {
            return refuse(
                out,
                431,
                "Request Header Fields Too Large",
                "head too large",
            );
        }
        Err(httparse::Error::TooManyHeaders) => {
            return refuse(
                out,
                431,
                "Request Header Fields Too Large",
                "too many headers",
            );
        }
        Err(err) => return refuse(out, 400, "Bad Request", &err.to_string()),
    };
    let head = match Head::read(&request) {
        Ok(head) => head,
        Err(Refusal(code, reason, why)) => return refuse(out, code, reason, why),
    };
    let len = if head.chunked {
        match chunked_end(buf, head_len, MAX_REQUEST) {
            Ok(Some(end)) => end,
            Ok(None) => return Answer::Incomplete,
            Err(Chunked::TooLarge) => {
                return refuse(out, 413, "Content Too Large", "request too large");
            }
            Err(Chunked::BadSize) => return refuse(out, 400, "Bad Request", "bad chunk size"),
        }
    } else {
        let len = head_len.saturating_add(head.content_length);
        if len > MAX_REQUEST {
            return refuse(out, 413, "Content Too Large", "request too large");
        }
        if buf.len() < len {
            return Answer::Incomplete;
        }
        len
    };
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ");
    out.extend_from_slice(BODY.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    if head.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if head.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head.no_body {
        out.extend_from_slice(BODY);
    }
    Answer::Answered {
        len,
        close: head.close,
    }
}

/// `503 Service Unavailable`, body `busy`; the connection stays open
/// unless `close`.
pub fn busy(out: &mut Vec<u8>, close: bool) {
    status(out, 503, "Service Unavailable", "busy", close);
}

/// A response with a one-line plain-text body: `HTTP/1.1 {code} {reason}`.
fn status(out: &mut Vec<u8>, code: u16, reason: &str, body: &str, close: bool) {
    let body = format!("{body}\n");
    let connection = if close { "Connection: close\r\n" } else { "" };
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// An error response that closes the connection.
fn refuse(out: &mut Vec<u8>, code: u16, reason: &str, body: &str) -> Answer {
    status(out, code, reason, body, true);
    Answer::Refused
}

/// Why a chunked body cannot be walked.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// A chunk size line that does not parse.
    BadSize,
    /// The body runs past the size allowed.
    TooLarge,
}

/// Where a chunked body starting at `pos` of `buf` ends (its last chunk
/// and trailers included), None while incomplete; `max`: where it must
/// end by.
pub fn chunked_end(buf: &[u8], mut pos: usize, max: usize) -> Result<Option<usize>, Chunked> {
    loop {
        let size = match httparse::parse_chunk_size(&buf[pos.min(buf.len())..]) {
            Ok(httparse::Status::Complete((used, size))) => {
                pos += used;
                size
            }
            Ok(httparse::Status::Partial) if buf.len() < max => return Ok(None),
            Ok(httparse::Status::Partial) => return Err(Chunked::TooLarge),
            Err(_) => return Err(Chunked::BadSize),
        };
        if size == 0 {
            // Trailers, if any, end with an empty line.
            let rest = &buf[pos.min(buf.len())..];
            let end = if rest.starts_with(b"\r\n") {
                Some(pos + 2)
            } else {
                rest.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|at| pos + at + 4)
            };
            return match end {
                Some(end) if end > max => Err(Chunked::TooLarge),
                None if buf.len() >= max => Err(Chunked::TooLarge),
                end => Ok(end),
            };
        }
        pos = pos.saturating_add(size as usize).saturating_add(2);
        if pos > max {
            return Err(Chunked::TooLarge);
        }
        if buf.len() < pos {
            return Ok(None);
        }
    }
}

/// Why a parsed head is refused: status code, reason phrase, body.
struct Refusal(u16, &'static str, &'static str);

/// What the answer needs from a request's head.
#[derive(Debug)]
struct Head {
    content_length: usize,
    /// The body is chunked.
    chunked: bool,
    /// Close after the response.
    close: bool,
    /// HTTP/1.0: keep-alive is said explicitly in the response.
    http10: bool,
    /// HEAD: the response has no body.
    no_body: bool,
}

impl Head {
    fn read(request: &httparse::Request<'_, '_>) -> Result<Head, Refusal> {
        let http10 = request.version == Some(0);
        let mut head = Head {
            content_length: 0,
            chunked: false,
            close: http10,
            http10,
            no_body: request.method == Some("HEAD"),
        };
        let mut length_seen: Option<usize> = None;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                let length = std::str::from_utf8(header.value)
                    .ok()
                    .map(str::trim)
                    .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|text| text.parse::<usize>().ok())
                    .ok_or(Refusal(400, "Bad Request", "bad Content-Length"))?;
                // Two different lengths: where the request ends is unknown.
                if length_seen.is_some_and(|seen| seen != length) {
                    return Err(Refusal(400, "Bad Request", "conflicting Content-Length"));
                }
                length_seen = Some(length);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // Only chunked, and only once: a request's last coding
                // must be chunked (RFC 9112 6.3), and any other coding
                // would have to be undone to find where the body ends.
                let value = header.value.trim_ascii();
                if !value.eq_ignore_ascii_case(b"chunked") || head.chunked {
                    return Err(Refusal(
                        501,
                        "Not Implemented",
                        "transfer codings other than chunked",
                    ));
                }
                head.chunked = true;
            } else if header.name.eq_ignore_ascii_case("connection") {
                for token in header.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        head.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        head.close = false;
                    }
                }
            }
        }
        if head.chunked && length_seen.is_some() {
            return Err(Refusal(
                400,
                "Bad Request",
                "both Content-Length and Transfer-Encoding",
            ));
        }
        head.content_length = length_seen.unwrap_or(0);
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(buf: &[u8]) -> (Answer, String) {
        let mut out = Vec::new();
        let answer = answer(buf, &mut out);
        (answer, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_whole_request_gets_ok_and_keeps_the_connection() {
        let request = b"GET /anything?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let (answer, out) = run(request);
        assert_eq!(
            answer,
            Answer::Answered {
                len: request.len(),
                close: false
            }
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
        );
    }

    #[test]
    fn connection_close_and_http10_close_after_the_response() {
        let (answer, out) = run(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert_eq!(
            answer,
            Answer::Answered {
                len: 37,
                close: true
            }
        );
        assert!(out.contains("Connection: close\r\n"), "{out}");
        let (answer, _) = run(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(
            answer,
            Answer::Answered {
                len: 18,
                close: true
            }
        );
        let (answer, out) = run(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(
            answer,
            Answer::Answered {
                len: 42,
                close: false
            }
        );
        assert!(out.contains("Connection: keep-alive\r\n"), "{out}");
    }

    #[test]
    fn head_gets_no_body() {
        let (_, out) = run(b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(out.ends_with("Content-Length: 3\r\n\r\n"), "{out}");
    }

    #[test]
    fn a_body_is_part_of_the_request() {
        let request = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..request.len() {
            assert_eq!(run(&request[..cut]).0, Answer::Incomplete, "cut at {cut}");
        }
        assert_eq!(
            run(request).0,
            Answer::Answered {
                len: request.len(),
                close: false
            }
        );
    }

    #[test]
    fn pipelined_requests_are_answered_one_at_a_time() {
        let one = b"GET /1 HTTP/1.1\r\n\r\n".as_slice();
        let two = [one, b"GET /2 HTTP/1.1\r\n\r\nGET /3 HT"].concat();
        assert_eq!(
            run(&two).0,
            Answer::Answered {
                len: one.len(),
                close: false
            }
        );
        assert_eq!(
            run(&two[one.len()..]).0,
            Answer::Answered {
                len: one.len(),
                close: false
            }
        );
        assert_eq!(run(&two[2 * one.len()..]).0, Answer::Incomplete);
    }

    #[test]
    fn malformed_requests_get_400_and_close() {
        for bad in [
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n".as_slice(),
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            let (answer, out) = run(bad);
            assert_eq!(answer, Answer::Refused, "{bad:?}");
            assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
            assert!(out.contains("Connection: close\r\n"), "{out}");
        }
    }

    #[test]
    fn oversized_heads_and_bodies_are_refused_before_the_buffer_grows() {
        // An unfinished head just past the bound: refused without waiting
        // for the rest.
        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
        head.resize(MAX_HEAD + 1, b'a');
        let (answer, out) = run(&head);
        assert_eq!(answer, Answer::Refused);
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        // Up to the bound it is still a request being read.
        assert_eq!(run(&head[..MAX_HEAD]).0, Answer::Incomplete);

        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        let (answer, out) = run(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
        assert_eq!(answer, Answer::Refused);
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");

        let big = format!("POST / HTTP/1.1\r\nContent-Length: {MAX_REQUEST}\r\n\r\n");
        let (answer, out) = run(big.as_bytes());
        assert_eq!(answer, Answer::Refused);
        assert!(out.starts_with("HTTP/1.1 413 "), "{out}");

        let mut big = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        while big.len() <= MAX_REQUEST {
            big.extend_from_slice(b"400\r\n");
            big.extend_from_slice(&[b'x'; 0x400]);
            big.extend_from_slice(b"\r\n");
        }
        let (answer, out) = run(&big);
        assert_eq!(answer, Answer::Refused);
        assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    }

    /// A chunked body (sizes in hex, extensions, trailers) is framed by its
    /// chunks: every proper prefix is incomplete, the whole is one request,
    /// and what follows it is the next.
    #[test]
    fn a_chunked_body_is_part_of_the_request() {
        let request: &[u8] = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n\
            4\r\nWiki\r\nA;ext=1\r\n0123456789\r\n0\r\nX-Sum: 14\r\n\r\n";
        for cut in 0..request.len() {
            assert_eq!(run(&request[..cut]).0, Answer::Incomplete, "cut at {cut}");
        }
        let mut two = request.to_vec();
        two.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let (answer, out) = run(&two);
        assert_eq!(
            answer,
            Answer::Answered {
                len: request.len(),
                close: false
            }
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        // No trailers: the last chunk and an empty line.
        let plain = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n";
        assert_eq!(
            run(plain).0,
            Answer::Answered {
                len: plain.len(),
                close: false
            }
        );
    }

    /// Framing that cannot be trusted is refused and the connection closed.
    #[test]
    fn ambiguous_or_unknown_framing_is_refused() {
        for (request, code) in [
            (&b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..], "400"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "400",
            ),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "501"),
        ] {
            let (answer, out) = run(request);
            assert_eq!(answer, Answer::Refused, "{}", String::from_utf8_lossy(request));
            assert!(out.starts_with(&format!("HTTP/1.1 {code} ")), "{out}");
        }
    }
}
