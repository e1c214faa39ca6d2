//! An epoll set of ceiling's own, watched by tokio as one fd.
//!
//! The driver's holders and the plain holding server keep thousands of idle
//! sockets each; registering every one with tokio would cost a readiness
//! entry, a task and extra epoll_ctl calls per socket. Instead each keeps
//! them in an [`EpollSet`]: tokio watches the set's fd, and when it is
//! readable the owner takes the ready sockets with [`EpollSet::take`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// What a held socket is watched for, edge-triggered: the peer's bytes,
/// its FIN or its RST.
pub const HELD: i32 = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;

/// An epoll set registered with the current tokio runtime.
pub struct EpollSet {
    fd: AsyncFd<OwnedFd>,
}

impl EpollSet {
    /// A new, empty set. Call it inside a runtime with I/O enabled.
    pub fn new() -> io::Result<EpollSet> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is
        // a new fd that we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by epoll_create1 and nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the set owns the epoll fd and never closes or replaces it
        // while the AsyncFd is alive.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(EpollSet { fd })
    }

    /// Watches `fd` for `events` (EPOLLIN, ...), reported with `key`. The
    /// socket leaves the set by itself when it is closed.
    pub fn add(&self, fd: RawFd, events: i32, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: key,
        };
        // SAFETY: both fds are open; the event is read during the call only.
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.get_ref().as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                &mut event,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the set has something ready (or may have).
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, OwnedFd>> {
        self.fd.readable().await
    }

    /// One epoll_wait without blocking: the ready events, at most
    /// `events.len()`.
    pub fn take<'a>(&self, events: &'a mut [libc::epoll_event]) -> &'a [libc::epoll_event] {
        // SAFETY: the kernel writes at most events.len() entries.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.get_ref().as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                0,
            )
        };
        &events[..n.max(0) as usize]
    }
}
