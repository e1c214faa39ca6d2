//! RESP requests, as Redis reads them: an array of bulk strings
//! (`*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n`, what clients send) or an inline
//! command (`PING\r\n`, what a person types into a raw connection). PING
//! gets `+PONG` (or its argument back), ECHO its argument, QUIT `+OK` and a
//! close, anything else `-ERR unknown command`. A request that is not RESP
//! gets `-ERR Protocol error: ...` and a close, as Redis does; so does one
//! over [`MAX_REQUEST`] or with more than [`MAX_ARGS`] arguments.

use super::Answer;

/// The largest request answered (Redis itself takes 512 MB; a test
/// server needs no more than this).
pub const MAX_REQUEST: usize = 64 * 1024;

/// The most arguments a command may have.
pub const MAX_ARGS: usize = 1024;

/// Answers the first request in `buf` (see [`Answer`]).
pub fn answer(buf: &[u8], out: &mut Vec<u8>) -> Answer {
    let parsed = match buf.first() {
        None => return Answer::Incomplete,
        Some(b'*') => array(buf),
        Some(_) => inline(buf),
    };
    match parsed {
        Ok(Some((len, args))) => {
            let close = reply(&args, out);
            Answer::Answered { len, close }
        }
        Ok(None) if buf.len() < MAX_REQUEST => Answer::Incomplete,
        Ok(None) => protocol_error(out, "too big request"),
        Err(why) => protocol_error(out, why),
    }
}

/// A request's length and its arguments; `None`: not whole yet.
type Parsed<'a> = Result<Option<(usize, Vec<&'a [u8]>)>, &'static str>;

/// `*N\r\n` then N bulk strings `$LEN\r\nBYTES\r\n`.
fn array(buf: &[u8]) -> Parsed<'_> {
    let Some((count, mut at)) = number_line(buf, 1)? else {
        return Ok(None);
    };
    let count = usize::try_from(count)
        .ok()
        .filter(|count| (1..=MAX_ARGS).contains(count))
        .ok_or("invalid multibulk length")?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(_) => return Err("expected '$'"),
        }
        let Some((len, start)) = number_line(buf, at + 1)? else {
            return Ok(None);
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= MAX_REQUEST)
            .ok_or("invalid bulk length")?;
        let end = start + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err("expected CRLF after a bulk string");
        }
        args.push(&buf[start..end]);
        at = end + 2;
    }
    Ok(Some((at, args)))
}

/// A decimal number from `at` to the next CRLF, and where the next line
/// starts; `None` if the line is not whole yet.
fn number_line(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, &'static str> {
    let rest = buf.get(at..).unwrap_or_default();
    let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
        // A number line has at most 20 characters before its CRLF.
        return if rest.len() > 20 {
            Err("invalid length line")
        } else {
            Ok(None)
        };
    };
    if rest[end] == b'\n' {
        return Err("expected CRLF");
    }
    if rest.len() < end + 2 {
        return Ok(None);
    }
    if rest[end + 1] != b'\n' {
        return Err("expected CRLF");
    }
    std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .map(|n| Some((n, at + end + 2)))
        .ok_or("invalid length")
}

/// A line up to `\n` (a `\r` before it dropped), split at spaces and tabs.
fn inline(buf: &[u8]) -> Parsed<'_> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let args: Vec<&[u8]> = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|arg| !arg.is_empty())
        .collect();
    if args.len() > MAX_ARGS {
        return Err("too many arguments");
    }
    Ok(Some((end + 1, args)))
}

/// Appends the reply to `args`; true for QUIT (close after replying). An
/// empty inline line gets no reply, as in Redis.
fn reply(args: &[&[u8]], out: &mut Vec<u8>) -> bool {
    let Some((command, rest)) = args.split_first() else {
        return false;
    };
    if command.eq_ignore_ascii_case(b"PING") {
        match rest {
            [] => out.extend_from_slice(b"+PONG\r\n"),
            [message] => bulk(out, message),
            _ => wrong_arity(out, "ping"),
        }
    } else if command.eq_ignore_ascii_case(b"ECHO") {
        match rest {
            [message] => bulk(out, message),
            _ => wrong_arity(out, "echo"),
        }
    } else if command.eq_ignore_ascii_case(b"QUIT") {
        out.extend_from_slice(b"+OK\r\n");
        return true;
    } else {
        out.extend_from_slice(b"-ERR unknown command '");
        out.extend_from_slice(printable(command).as_bytes());
        out.extend_from_slice(b"'\r\n");
    }
    false
}

fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn wrong_arity(out: &mut Vec<u8>, command: &str) {
    out.extend_from_slice(
        format!("-ERR wrong number of arguments for '{command}' command\r\n").as_bytes(),
    );
}

fn protocol_error(out: &mut Vec<u8>, why: &str) -> Answer {
    out.extend_from_slice(format!("-ERR Protocol error: {why}\r\n").as_bytes());
    Answer::Refused
}

/// A command name fit for an error line: at most 64 bytes, anything but
/// printable ASCII as `?` (so no CRLF can end the reply early).
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(64)
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(buf: &[u8]) -> (Answer, Vec<u8>) {
        let mut out = Vec::new();
        let answer = answer(buf, &mut out);
        (answer, out)
    }

    fn answered(len: usize) -> Answer {
        Answer::Answered { len, close: false }
    }

    #[test]
    fn ping_echo_and_unknown_commands_in_both_forms() {
        assert_eq!(run(b"PING\r\n"), (answered(6), b"+PONG\r\n".to_vec()));
        assert_eq!(run(b"ping\n"), (answered(5), b"+PONG\r\n".to_vec()));
        assert_eq!(
            run(b"*1\r\n$4\r\nPING\r\n"),
            (answered(14), b"+PONG\r\n".to_vec())
        );
        let echo = b"*2\r\n$4\r\necho\r\n$12\r\nhello\r\nworld\r\n";
        assert_eq!(
            run(echo),
            (answered(echo.len()), b"$12\r\nhello\r\nworld\r\n".to_vec())
        );
        assert_eq!(
            run(b"ECHO hello\r\n"),
            (answered(12), b"$5\r\nhello\r\n".to_vec())
        );
        assert_eq!(
            run(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
            (answered(20), b"-ERR unknown command 'GET'\r\n".to_vec())
        );
        assert_eq!(
            run(b"ECHO\r\n").1,
            b"-ERR wrong number of arguments for 'echo' command\r\n"
        );
        assert_eq!(
            run(b"QUIT\r\n"),
            (
                Answer::Answered {
                    len: 6,
                    close: true
                },
                b"+OK\r\n".to_vec()
            )
        );
        // An empty line is skipped without a reply.
        assert_eq!(run(b"\r\n"), (answered(2), Vec::new()));
    }

    #[test]
    fn pipelined_commands_are_framed_one_at_a_time() {
        let buf = b"*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPI";
        assert_eq!(run(buf).0, answered(14));
        assert_eq!(run(&buf[14..]).0, answered(6));
        assert_eq!(run(&buf[20..]).0, Answer::Incomplete);
    }

    #[test]
    fn malformed_requests_are_protocol_errors() {
        for bad in [
            b"*x\r\n".as_slice(),
            b"*1\r\n+PING\r\n",
            b"*1\r\n$4\r\nPINGxx",
            b"*0\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$4\n",
        ] {
            let (answer, out) = run(bad);
            assert_eq!(answer, Answer::Refused, "{bad:?}");
            assert!(out.starts_with(b"-ERR Protocol error: "), "{bad:?}");
        }
    }

    #[test]
    fn oversized_requests_are_refused_before_the_buffer_grows() {
        let huge = format!("*1\r\n${}\r\n", MAX_REQUEST + 1);
        assert_eq!(run(huge.as_bytes()).0, Answer::Refused);
        let long_inline = vec![b'a'; MAX_REQUEST];
        assert_eq!(run(&long_inline[..MAX_REQUEST - 1]).0, Answer::Incomplete);
        assert_eq!(run(&long_inline).0, Answer::Refused);
        let many = format!("*{}\r\n", MAX_ARGS + 1);
        assert_eq!(run(many.as_bytes()).0, Answer::Refused);
        // A length line that never ends.
        assert_eq!(run(&[b'*'; 40]).0, Answer::Refused);
    }

    #[test]
    fn unknown_command_names_cannot_break_the_reply_line() {
        let (_, out) = run(b"*1\r\n$5\r\nA\r\nB!\r\n");
        assert_eq!(out, b"-ERR unknown command 'A??B!'\r\n");
    }
}
