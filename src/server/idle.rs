//! The plain holding server's accept loop: idle connections outside tokio.
//!
//! With the defaults (hold mode, async model, no cap, no idle timeout) a
//! held connection needs nothing but its fd and read interest, so that a
//! client's close is seen. Here the accept loop keeps every connection it
//! accepted in an epoll set of its own (EPOLLIN | EPOLLRDHUP,
//! edge-triggered) and a slab of fds: no task, no tokio registration, no
//! registry entry, no stop receiver. A connection costs a slab slot and one
//! epoll item; the epoll fd is the only thing tokio watches, next to the
//! listener.
//!
//! Readable: read into a stack buffer and discard until it would block; EOF
//! or an error is the client leaving: the socket is closed and `held` goes
//! down. When the server stops, the loop closes its listener and hands its
//! set back, so the totals are read before dropping the set closes every
//! connection in it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use slab::Slab;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::ServerStats;
use super::accept::{AcceptBackoff, AcceptErrorKind, classify_accept_error};
use super::slots::Shared;
use crate::epoll::{self, EpollSet};

/// Events taken from the kernel per epoll_wait().
const EVENT_BATCH: usize = 256;

/// Connections held by one accept loop.
pub(super) struct IdleSet {
    epoll: EpollSet,
    held: Slab<OwnedFd>,
    events: Vec<libc::epoll_event>,
    /// Counts `held`; given back for what is left when the set drops.
    stats: Arc<ServerStats>,
}

impl IdleSet {
    /// An empty set; its connections count in `stats`' held.
    pub(super) fn new(stats: Arc<ServerStats>) -> io::Result<IdleSet> {
        Ok(IdleSet {
            epoll: EpollSet::new()?,
            held: Slab::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENT_BATCH],
            stats,
        })
    }

    /// Holds `fd`, counted in `held`; the error is epoll_ctl's (the socket
    /// is then closed).
    fn add(&mut self, fd: OwnedFd) -> io::Result<()> {
        let entry = self.held.vacant_entry();
        self.epoll
            .add(fd.as_raw_fd(), epoll::HELD, entry.key() as u64)?;
        entry.insert(fd);
        self.stats.count_held();
        Ok(())
    }

    /// Takes what the kernel has ready until there is nothing left, closing
    /// the connections whose clients left.
    fn drain(&mut self) {
        loop {
            let ready = self.epoll.take(&mut self.events);
            for event in ready {
                let key = event.u64 as usize;
                if self.held.get(key).is_some_and(client_left) {
                    drop(self.held.remove(key));
                    self.stats.release();
                }
            }
            if ready.len() < EVENT_BATCH {
                return;
            }
        }
    }
}

impl Drop for IdleSet {
    /// Closes every connection still held, and counts them out.
    fn drop(&mut self) {
        for _ in self.held.drain() {
            self.stats.release();
        }
    }
}

/// Reads and discards what `fd` has; true at EOF or on an error (the
/// client is gone), false once a read would block.
fn client_left(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return true,
            n if n > 0 => continue,
            _ => match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => return false,
                Some(libc::EINTR) => continue,
                _ => return true,
            },
        }
    }
}

/// One accept4(): the new socket non-blocking and close-on-exec, never
/// registered with tokio.
fn accept(listener: &std::net::TcpListener) -> io::Result<OwnedFd> {
    // SAFETY: null address arguments are allowed; a non-negative result is
    // a new fd that we own.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by accept4 and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Accepts into `set` until `stop_accepting` turns true, then closes the
/// listener and returns the held connections: dropping them closes them.
///
/// # Panics
/// Outside a tokio runtime with I/O enabled.
pub(super) async fn accept_loop(
    listener: std::net::TcpListener,
    mut set: IdleSet,
    shared: Arc<Shared>,
    mut stop_accepting: watch::Receiver<bool>,
) -> IdleSet {
    // SAFETY: the AsyncFd owns the listener, which stays open until it drops.
    let listener = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
        .expect("registering a listener needs a tokio runtime with I/O enabled");
    let stats = &shared.stats;
    let mut backoff = AcceptBackoff::new();
    // After an accept() failure for lack of fds or memory: when to retry.
    let mut resume_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop_accepting.wait_for(|stop| *stop) => return set,
            ready = listener.readable(), if resume_at.is_none() => {
                // An error means the runtime is shutting down: so is the server.
                let Ok(mut ready) = ready else { return set };
                // What the backlog has, up to a batch: one trip through
                // this select per batch, not per connection.
                for _ in 0..EVENT_BATCH {
                    match ready.try_io(|listener| accept(listener.get_ref())) {
                        Ok(Ok(fd)) => {
                            backoff.succeeded();
                            stats.accepted.fetch_add(1, Ordering::Relaxed);
                            // Refused by epoll_ctl (no memory): closed, not held.
                            let _ = set.add(fd);
                        }
                        Ok(Err(err)) => {
                            if classify_accept_error(&err) == AcceptErrorKind::Resource {
                                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                                resume_at = Some(Instant::now() + backoff.failed());
                                break;
                            }
                        }
                        // Empty: readiness cleared, wait for the next.
                        Err(_would_block) => break,
                    }
                }
            }
            _ = sleep_until(resume_at.unwrap_or_else(Instant::now)), if resume_at.is_some() => {
                resume_at = None;
            }
            ready = set.epoll.readable() => {
                // Cleared before draining: an event that comes in while
                // draining raises it again.
                if let Ok(mut guard) = ready {
                    guard.clear_ready();
                }
                set.drain();
            }
        }
    }
}
