//! The accept loop of one listener, and the backoff that keeps it from
//! spinning a core when accept() fails for lack of fds or memory.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::{Mode, ServerStats, conn};

/// What an accept() error means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptErrorKind {
    /// One pending connection failed (aborted by the peer, a network error
    /// passed on by the kernel): take the next one at once.
    Connection,
    /// The process or host is out of something (EMFILE, ENFILE, ENOBUFS,
    /// ENOMEM) or the error is unknown: count it and back off, because
    /// retrying at once would fail again and spin.
    Resource,
}

/// Sorts an accept() error; unknown errors back off, to be safe.
pub fn classify_accept_error(err: &io::Error) -> AcceptErrorKind {
    match err.raw_os_error() {
        // accept(2): Linux passes already-pending network errors of the new
        // socket to accept(); they concern that one connection.
        Some(
            libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EINTR
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ETIMEDOUT,
        ) => AcceptErrorKind::Connection,
        _ => AcceptErrorKind::Resource,
    }
}

/// Exponential backoff for resource errors: 1 ms, doubling to 1 s, back to
/// 1 ms after a successful accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptBackoff {
    /// The wait the next failure gets.
    next: Duration,
}

impl AcceptBackoff {
    pub const FIRST: Duration = Duration::from_millis(1);
    pub const MAX: Duration = Duration::from_secs(1);

    pub fn new() -> Self {
        AcceptBackoff { next: Self::FIRST }
    }

    /// Another failure: how long to wait before the next accept().
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(Self::MAX);
        wait
    }

    /// An accept succeeded: the next failure waits the shortest again.
    pub fn succeeded(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

/// What one accept loop owns.
pub(super) struct AcceptLoop {
    pub listener: TcpListener,
    pub mode: Mode,
    pub stats: Arc<ServerStats>,
    /// Cloned into every connection task: `true` tells it to close.
    pub stop: watch::Receiver<bool>,
    /// Cloned into every connection task; the server waits until all clones
    /// are dropped.
    pub done: mpsc::Sender<()>,
}

/// Accepts until the task is aborted (that drops the listener).
pub(super) async fn accept_loop(state: AcceptLoop) {
    let AcceptLoop {
        listener,
        mode,
        stats,
        stop,
        done,
    } = state;
    let mut backoff = AcceptBackoff::new();
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                backoff.succeeded();
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                match mode {
                    Mode::Close => drop(stream),
                    Mode::Hold | Mode::Echo => {
                        let held = stats.hold();
                        tokio::spawn(conn::serve(stream, mode, held, stop.clone(), done.clone()));
                    }
                }
            }
            Err(err) => match classify_accept_error(&err) {
                AcceptErrorKind::Connection => continue,
                AcceptErrorKind::Resource => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff.failed()).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_one_second_and_resets() {
        let mut backoff = AcceptBackoff::new();
        let waits: Vec<u64> = (0..13)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000, 1000]
        );
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(1));
        assert_eq!(backoff.failed(), Duration::from_millis(2));
    }

    #[test]
    fn resource_errors_back_off_and_connection_errors_do_not() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(
                classify_accept_error(&io::Error::from_raw_os_error(errno)),
                AcceptErrorKind::Resource,
                "errno {errno}"
            );
        }
        for errno in [libc::ECONNABORTED, libc::EINTR, libc::EPROTO] {
            assert_eq!(
                classify_accept_error(&io::Error::from_raw_os_error(errno)),
                AcceptErrorKind::Connection,
                "errno {errno}"
            );
        }
        // Unknown: back off rather than risk a spin.
        assert_eq!(
            classify_accept_error(&io::Error::other("strange")),
            AcceptErrorKind::Resource
        );
    }
}
