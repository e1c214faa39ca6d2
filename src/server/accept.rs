//! The accept loop of one listener, the backoff that keeps it from
//! spinning a core when accept() fails for lack of fds or memory, and what
//! happens to each accepted connection: served, queued or turned away.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use std::os::fd::{AsFd, AsRawFd};

use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::options::{Model, WhenFull};
use super::slots::{Admission, Reason, Shared, Slot};
use super::{Mode, ServerStats, conn, threads};

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

/// Accepts on `listener` until `stop_accepting` turns true, serving each
/// connection in a task or thread ([`accept_loop`]); the plain holding
/// server does without ([`super::idle`]).
///
/// # Panics
/// Outside a tokio runtime with I/O enabled.
pub(super) async fn serve_listener(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop_accepting: watch::Receiver<bool>,
) {
    let listener = TcpListener::from_std(listener)
        .expect("registering a listener needs a tokio runtime with I/O enabled");
    tokio::select! {
        () = accept_loop(listener, shared) => {}
        _ = stop_accepting.wait_for(|stop| *stop) => {}
    }
}

/// Accepts until dropped (that drops the listener).
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut backoff = AcceptBackoff::new();
    let holds = shared.mode != Mode::Close;
    let stop_accepting = holds && shared.when_full == Some(WhenFull::StopAccepting);
    loop {
        // stop-accepting: take the slot first, so while the server is full
        // nothing calls accept() and the kernel's backlog does the waiting.
        let reserved = match (&shared.permits, stop_accepting) {
            (Some(permits), true) => Arc::clone(permits).acquire_owned().await.ok(),
            _ => None,
        };
        match listener.accept().await {
            Ok((stream, _peer)) => {
                backoff.succeeded();
                shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                if !holds {
                    drop(stream);
                    continue;
                }
                let admission = match reserved {
                    Some(permit) => Admission::Serve(Some(permit)),
                    None => shared.admit(),
                };
                match admission {
                    Admission::Serve(permit) => start(&shared, stream, permit),
                    Admission::Reject(reason) => reject(&shared, &stream, reason),
                    Admission::Wait => wait_for_slot(&shared, stream),
                }
            }
            Err(err) => match classify_accept_error(&err) {
                AcceptErrorKind::Connection => continue,
                AcceptErrorKind::Resource => {
                    shared.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff.failed()).await;
                }
            },
        }
    }
}

/// Serves `stream` in a slot: a task (async and pool models) or a thread.
fn start(shared: &Arc<Shared>, stream: TcpStream, permit: Option<OwnedSemaphorePermit>) {
    if matches!(shared.mode, Mode::Echo | Mode::Answer(_)) {
        // What it writes back goes out at once: Nagle's algorithm would
        // hold a reply's tail (an echo written as it is read, in chunks)
        // until the client ACKs the rest, and a client waiting for the
        // whole reply delays that ACK by up to 40 ms, all of it in the
        // client's service time. Cannot fail on a connected TCP socket.
        let _ = stream.set_nodelay(true);
    }
    match shared.model {
        Model::Async | Model::Pool => {
            let fd = stream.as_raw_fd();
            if let Some(slot) = Slot::take(shared, fd, permit) {
                tokio::spawn(conn::serve(stream, slot.hold(), shared.stop.clone()));
            }
        }
        Model::Threads => threads::start(shared, stream, permit),
    }
}

/// A queued connection: accepted, not read, not written, until a slot
/// frees or the server stops.
///
/// It joins the semaphore's queue here, before the accept loop goes on, so
/// a slot freed meanwhile goes to it and not to a connection accepted after
/// it. (A task spawned to wait would queue only when first run; on a busy
/// machine the next accept could take the freed slot first, and under
/// `close-oldest` this one would wait for a close nobody asked for.)
fn wait_for_slot(shared: &Arc<Shared>, stream: TcpStream) {
    let Some(permits) = shared.permits.clone() else {
        return start(shared, stream, None);
    };
    let mut acquire = Box::pin(permits.acquire_owned());
    // The first poll queues it; the task below polls it again with its own
    // waker, which replaces this no-op one.
    let mut queue_now = Context::from_waker(Waker::noop());
    if let Poll::Ready(permit) = acquire.as_mut().poll(&mut queue_now) {
        return start(shared, stream, permit.ok());
    }
    let queued = QueuedGuard::new(&shared.stats);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut stop = shared.stop.clone();
        tokio::select! {
            permit = acquire => {
                drop(queued);
                start(&shared, stream, permit.ok());
            }
            _ = stop.wait_for(|stop| *stop) => {}
        }
    });
}

/// One connection in [`ServerStats::queued`] until dropped.
struct QueuedGuard(Arc<ServerStats>);

impl QueuedGuard {
    fn new(stats: &Arc<ServerStats>) -> Self {
        stats.queued.fetch_add(1, Ordering::Relaxed);
        QueuedGuard(Arc::clone(stats))
    }
}

impl Drop for QueuedGuard {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Turns a connection away: counts it, then writes the message and closes
/// (FIN), or closes with SO_LINGER 0 (RST). Never waits: the message goes
/// into a fresh socket's empty send buffer, or not at all.
pub(super) fn reject(shared: &Shared, stream: &impl AsFd, reason: Reason) {
    let rejected = &shared.stats.rejected;
    let socket = SockRef::from(stream);
    let message = match reason {
        Reason::FullClose => {
            rejected.full_close.fetch_add(1, Ordering::Relaxed);
            &shared.full_message
        }
        Reason::ThreadSpawnFailed => {
            rejected.thread_spawn_failed.fetch_add(1, Ordering::Relaxed);
            &shared.spawn_failed_message
        }
        Reason::FullReset => {
            rejected.full_reset.fetch_add(1, Ordering::Relaxed);
            let _ = socket.set_linger(Some(Duration::ZERO));
            return;
        }
    };
    if !message.is_empty() {
        let _ = socket.send_with_flags(message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    }
    // The FIN now, whatever the caller does with the socket next.
    let _ = socket.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::super::options::{Cap, ServeOptions};
    use super::*;

    /// A connection that must wait has its place in the queue before the
    /// accept loop takes the next one: a slot freed before its task first
    /// runs is still its own.
    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_connection_keeps_its_place_before_its_task_runs() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let options = ServeOptions {
            cap: Some(Cap {
                max: 1,
                when_full: WhenFull::Queue,
            }),
            ..ServeOptions::default()
        };
        let (_stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, _done_rx) = mpsc::channel(1);
        let stats = Arc::new(ServerStats::default());
        let shared = Arc::new(Shared::new(
            Mode::Hold,
            &options,
            Arc::clone(&stats),
            stop_rx,
            done_tx,
        ));
        let permits = shared.permits.clone().unwrap();
        let the_one_slot = Arc::clone(&permits).try_acquire_owned().unwrap();
        wait_for_slot(&shared, stream);
        // The waiting task has not run (one thread, no await yet).
        drop(the_one_slot);
        assert!(
            permits.try_acquire().is_err(),
            "a later connection took the freed slot"
        );
        while stats.totals().held == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(stats.totals().queued, 0);
        drop(client);
    }

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
