//! Epoll sets of ceiling's own: [`Epoll`], waited on by a thread of its
//! own, and [`EpollSet`], one watched by tokio as a single fd.
//!
//! The driver's holders and the plain holding server keep thousands of idle
//! sockets each; registering every one with tokio would cost a readiness
//! entry, a task and extra epoll_ctl calls per socket. Instead the driver's
//! holders keep them in an [`EpollSet`]: tokio watches the set's fd, and
//! when it is readable the owner takes the ready sockets with
//! [`EpollSet::take`]. The plain holding server needs no runtime at all: a
//! thread blocks in [`Epoll::wait`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// Events an owner takes from the kernel per epoll_wait().
pub const EVENT_BATCH: usize = 256;

/// What a held socket is watched for, edge-triggered: the peer's bytes,
/// its FIN or its RST.
pub const HELD: i32 = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;

/// A plain epoll set.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new, empty set.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is
        // a new fd that we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by epoll_create1 and nobody else owns it.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `fd` for `events` (EPOLLIN, ...), reported with `key`. The
    /// socket leaves the set by itself when it is closed.
    pub fn add(&self, fd: RawFd, events: i32, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: key,
        };
        // SAFETY: both fds are open; the event is read during the call only.
        let rc =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One epoll_wait: the ready events, at most `events.len()`, once one
    /// is ready or after `timeout` (None: no timeout; rounded up to whole
    /// milliseconds). Empty if a signal interrupted the wait.
    pub fn wait<'a>(
        &self,
        events: &'a mut [libc::epoll_event],
        timeout: Option<Duration>,
    ) -> io::Result<&'a [libc::epoll_event]> {
        let timeout_ms = timeout.map_or(-1, |t| {
            i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
        });
        let capacity = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: the kernel writes at most `capacity` entries into events.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                capacity,
                timeout_ms,
            )
        };
        match usize::try_from(n) {
            Ok(n) => Ok(&events[..n]),
            Err(_) => match io::Error::last_os_error() {
                err if err.kind() == io::ErrorKind::Interrupted => Ok(&events[..0]),
                err => Err(err),
            },
        }
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// An epoll set registered with the current tokio runtime.
pub struct EpollSet {
    fd: AsyncFd<Epoll>,
}

impl EpollSet {
    /// A new, empty set. Call it inside a runtime with I/O enabled.
    pub fn new() -> io::Result<EpollSet> {
        // SAFETY: the set owns the epoll fd and never closes or replaces it
        // while the AsyncFd is alive.
        let fd = unsafe { AsyncFd::register_with_interest(Epoll::new()?, Interest::READABLE) }?;
        Ok(EpollSet { fd })
    }

    /// Watches `fd` for `events` (EPOLLIN, ...), reported with `key`. The
    /// socket leaves the set by itself when it is closed.
    pub fn add(&self, fd: RawFd, events: i32, key: u64) -> io::Result<()> {
        self.fd.get_ref().add(fd, events, key)
    }

    /// Waits until the set has something ready (or may have).
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, Epoll>> {
        self.fd.readable().await
    }

    /// One epoll_wait without blocking: the ready events, at most
    /// `events.len()`.
    pub fn take<'a>(&self, events: &'a mut [libc::epoll_event]) -> &'a [libc::epoll_event] {
        self.fd
            .get_ref()
            .wait(events, Some(Duration::ZERO))
            .unwrap_or(&[])
    }
}
