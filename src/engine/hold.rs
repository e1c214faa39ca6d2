//! Holding an established connection: idle with read interest (so a close by
//! the server is seen at once, not counted as held), or echo traffic with
//! RTT measurement. No buffer lives across an await: reads go into a stack
//! buffer, so an idle connection costs no memory beyond its task.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use super::clock;
use crate::model::PeerClose;

/// Bytes of what the server sent that are kept as evidence.
pub const EVIDENCE_BYTES: usize = 200;

/// Why holding ended.
#[derive(Debug, PartialEq)]
pub enum HoldEnd {
    /// The hold time is over: ceiling closes.
    Expired,
    /// The server ended the connection.
    ServerClosed {
        how: PeerClose,
        /// errno of the failed read or write; None for EOF.
        errno: Option<i32>,
        /// What the server sent before closing, printable.
        bytes: Option<String>,
    },
}

/// Echo traffic settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Echo {
    pub message: Box<[u8]>,
    pub interval: Duration,
}

/// What holding reports as it goes (echo results).
pub trait HoldObserver {
    fn rtt(&self, rtt: Duration);
    fn echo_unanswered(&self);
    /// The connection's first echo request got no reply within the
    /// interval (reported once per connection).
    fn echo_silent(&self);
}

/// Keeps unsolicited bytes from the server, up to [`EVIDENCE_BYTES`].
#[derive(Default)]
struct Evidence(Option<Vec<u8>>);

impl Evidence {
    fn keep(&mut self, bytes: &[u8]) {
        let kept = self.0.get_or_insert_with(Vec::new);
        let room = EVIDENCE_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// Bytes as text a person can read: printable ASCII kept, \r \n \t escaped,
/// anything else as \xNN.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

fn server_closed(err: Option<io::Error>, evidence: Evidence) -> HoldEnd {
    server_close(err, evidence.0.as_deref().unwrap_or_default())
}

/// A server's close: a reset or an error (`err`), or its FIN (None), with
/// what it sent before (`bytes`, kept printable).
pub fn server_close(err: Option<io::Error>, bytes: &[u8]) -> HoldEnd {
    HoldEnd::ServerClosed {
        how: if err.is_some() {
            PeerClose::Rst
        } else {
            PeerClose::Eof
        },
        errno: err.and_then(|e| e.raw_os_error()),
        bytes: (!bytes.is_empty()).then(|| printable(bytes)),
    }
}

/// Holds `stream` until `until` or until the server closes it.
pub async fn hold(
    stream: &TcpStream,
    until: Instant,
    echo: Option<&Echo>,
    observer: &impl HoldObserver,
) -> HoldEnd {
    match echo {
        None => hold_idle(stream, until).await,
        // Echo state (two timers, a write in flight) is boxed so that it
        // does not enlarge every idle connection's task.
        Some(echo) => Box::pin(hold_echo(stream, until, echo, observer)).await,
    }
}

async fn hold_idle(stream: &TcpStream, until: Instant) -> HoldEnd {
    let mut evidence = Evidence::default();
    let expiry = sleep_until(until);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            _ = &mut expiry => return HoldEnd::Expired,
            ready = stream.readable() => {
                if let Err(e) = ready {
                    return server_closed(Some(e), evidence);
                }
            }
        }
        let mut buf = [0u8; 512];
        match stream.try_read(&mut buf) {
            Ok(0) => return server_closed(None, evidence),
            Ok(n) => evidence.keep(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return server_closed(Some(e), evidence),
        }
    }
}

async fn hold_echo(
    stream: &TcpStream,
    until: Instant,
    echo: &Echo,
    observer: &impl HoldObserver,
) -> HoldEnd {
    let mut tally = EchoTally::default();
    echo_until_end(stream, until, echo, observer, &mut tally).await
}

/// Echo state of one connection that outlives a single request.
#[derive(Default)]
struct EchoTally {
    replies: u64,
    /// The first request went unanswered for a whole interval (reported
    /// once).
    starved: bool,
}

async fn echo_until_end(
    stream: &TcpStream,
    until: Instant,
    echo: &Echo,
    observer: &impl HoldObserver,
    tally: &mut EchoTally,
) -> HoldEnd {
    let mut evidence = Evidence::default();
    let expiry = sleep_until(until);
    let next_send = sleep_until(Instant::now());
    tokio::pin!(expiry, next_send);
    // When the outstanding message was sent, and how much of its echo is in.
    let mut sent_at: Option<Instant> = None;
    let mut echoed = 0usize;
    loop {
        tokio::select! {
            _ = &mut expiry => return HoldEnd::Expired,
            _ = &mut next_send => {
                next_send.as_mut().reset(clock::after(Instant::now(), echo.interval));
                if sent_at.is_some() {
                    observer.echo_unanswered();
                    if tally.replies == 0 && !tally.starved {
                        tally.starved = true;
                        observer.echo_silent();
                    }
                    continue;
                }
                if let Err(e) = write_all(stream, &echo.message).await {
                    return server_closed(Some(e), evidence);
                }
                sent_at = Some(Instant::now());
                echoed = 0;
            }
            ready = stream.readable() => {
                if let Err(e) = ready {
                    return server_closed(Some(e), evidence);
                }
                let mut buf = [0u8; 4096];
                match stream.try_read(&mut buf) {
                    Ok(0) => return server_closed(None, evidence),
                    Ok(n) => match sent_at {
                        Some(at) => {
                            echoed += n;
                            if echoed >= echo.message.len() {
                                observer.rtt(at.elapsed());
                                tally.replies += 1;
                                sent_at = None;
                            }
                        }
                        None => evidence.keep(&buf[..n]),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return server_closed(Some(e), evidence),
                }
            }
        }
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_bytes() {
        assert_eq!(
            printable(b"-ERR max\r\n\x00\x7f"),
            "-ERR max\\r\\n\\x00\\x7f"
        );
    }

    #[test]
    fn evidence_keeps_only_the_first_bytes() {
        let mut evidence = Evidence::default();
        evidence.keep(&[b'a'; 150]);
        evidence.keep(&[b'b'; 150]);
        let text = printable(&evidence.0.unwrap());
        assert_eq!(text.len(), EVIDENCE_BYTES);
        assert!(text.ends_with('b') && text.starts_with('a'));
    }
}
