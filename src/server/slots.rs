//! Who is being served: the cap's semaphore, the registry of served
//! sockets (oldest first), and the [`Slot`] each served connection owns.
//!
//! The registry exists for two closes that come from outside a
//! connection: `close-oldest` and, for blocking threads, shutdown. Both
//! call shutdown(2) on the socket, which wakes its reader with EOF (a
//! blocked read() in a thread, or epoll for a task); the connection then
//! ends the usual way. A connection unregisters *before* it closes its
//! socket, under the same lock, so the registry never shuts down an fd
//! number that has been closed and reused.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, watch};

use super::options::{Model, ServeOptions, ServiceTime, WhenFull};
use super::pool::WorkerPool;
use super::{HeldGuard, Mode, ServerStats};

/// State every accept loop, connection task and connection thread shares.
pub(super) struct Shared {
    pub mode: Mode,
    pub model: Model,
    pub thread_stack: usize,
    pub idle_timeout: Option<std::time::Duration>,
    /// Waited before each response (request modes).
    pub service_time: ServiceTime,
    /// Serves the requests of `--model pool`; set by the server after
    /// [`Shared::new`].
    pub pool: Option<Arc<WorkerPool>>,
    /// The cap's policy; `None` with `permits`.
    pub when_full: Option<WhenFull>,
    /// One permit per slot under the cap; `None`: no cap.
    pub permits: Option<Arc<Semaphore>>,
    /// Written before closing a connection over the cap.
    pub full_message: Vec<u8>,
    /// Written before closing a connection no thread could be made for.
    pub spawn_failed_message: Vec<u8>,
    pub stats: Arc<ServerStats>,
    pub registry: Registry,
    /// Cloned by connection tasks: `true` tells them to close.
    pub stop: watch::Receiver<bool>,
    /// Held (through this struct's Arc) by everything that serves; the
    /// server waits until the last clone is gone.
    pub _done: mpsc::Sender<()>,
}

impl Shared {
    pub fn new(
        mode: Mode,
        options: &ServeOptions,
        stats: Arc<ServerStats>,
        stop: watch::Receiver<bool>,
        done: mpsc::Sender<()>,
    ) -> Shared {
        Shared {
            mode,
            model: options.model,
            thread_stack: options.thread_stack,
            idle_timeout: options.idle_timeout,
            service_time: options.service_time,
            pool: None,
            when_full: options.cap.as_ref().map(|cap| cap.when_full),
            permits: options
                .cap
                .as_ref()
                .map(|cap| Arc::new(Semaphore::new(cap.max))),
            full_message: options.full_message(),
            spawn_failed_message: options.spawn_failed_message(),
            stats,
            registry: Registry::default(),
            stop,
            _done: done,
        }
    }

    /// The defaults (hold, async, no cap, no idle timeout): a held
    /// connection needs nothing but read interest ([`super::idle`]).
    pub fn plain_hold(&self) -> bool {
        self.mode == Mode::Hold
            && self.model == Model::Async
            && self.permits.is_none()
            && self.idle_timeout.is_none()
    }

    /// What to do with a connection just accepted (hold and echo modes).
    pub fn admit(&self) -> Admission {
        let (Some(permits), Some(when_full)) = (&self.permits, self.when_full) else {
            return Admission::Serve(None);
        };
        match Arc::clone(permits).try_acquire_owned() {
            Ok(permit) => Admission::Serve(Some(permit)),
            Err(TryAcquireError::Closed) => Admission::Serve(None),
            Err(TryAcquireError::NoPermits) => match when_full {
                WhenFull::Close => Admission::Reject(Reason::FullClose),
                WhenFull::Reset => Admission::Reject(Reason::FullReset),
                WhenFull::CloseOldest => {
                    // Its slot frees when its connection has ended.
                    self.registry.close_oldest(&self.stats);
                    Admission::Wait
                }
                // Another listener took the last slot between this loop's
                // wait and its accept: the connection waits its turn.
                WhenFull::StopAccepting | WhenFull::Queue => Admission::Wait,
            },
        }
    }
}

/// The verdict on one accepted connection.
pub(super) enum Admission {
    /// Serve it now; the permit (if capped) is its slot.
    Serve(Option<OwnedSemaphorePermit>),
    /// Close it at once, counted under this reason.
    Reject(Reason),
    /// Accepted but not served until a permit frees.
    Wait,
}

/// Why the server turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    FullClose,
    FullReset,
    ThreadSpawnFailed,
}

/// Served sockets by age, for `close-oldest` and for shutdown.
#[derive(Debug, Default)]
pub(super) struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    /// Ids grow with time, so the first entry is the oldest.
    next_id: u64,
    open: BTreeMap<u64, RawFd>,
    /// Set at shutdown: nothing registers any more.
    stopping: bool,
    /// Closes asked for while nothing was registered: every served socket
    /// was already shut down, or its permit had passed to a waiting
    /// connection that had not registered yet. The next registrations pay
    /// them, so each connection over the cap still closes exactly one and
    /// no waiting connection is left without a slot.
    owed_closes: usize,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, RegistryInner> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers `fd`, then pays an owed close (on the oldest, which may be
    /// `fd` itself); `None` once the server is stopping.
    fn register(&self, fd: RawFd, stats: &ServerStats) -> Option<u64> {
        let mut inner = self.lock();
        if inner.stopping {
            return None;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.open.insert(id, fd);
        if inner.owed_closes > 0 {
            inner.owed_closes -= 1;
            inner.shut_down_oldest(stats);
        }
        Some(id)
    }

    fn unregister(&self, id: u64) {
        self.lock().open.remove(&id);
    }

    /// Shuts down the oldest served socket, or the next one to register if
    /// none is served now.
    fn close_oldest(&self, stats: &ServerStats) {
        let mut inner = self.lock();
        if !inner.shut_down_oldest(stats) {
            inner.owed_closes += 1;
        }
    }

    /// Stops registering and shuts down every served socket.
    pub fn stop_all(&self) {
        let mut inner = self.lock();
        inner.stopping = true;
        for (_, fd) in std::mem::take(&mut inner.open) {
            shutdown(fd);
        }
    }
}

impl RegistryInner {
    /// Shuts down and forgets the oldest served socket, counted in
    /// `closed_oldest`; false if none is served.
    fn shut_down_oldest(&mut self, stats: &ServerStats) -> bool {
        let Some((_, fd)) = self.open.pop_first() else {
            return false;
        };
        shutdown(fd);
        stats.rejected.closed_oldest.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// shutdown(fd, SHUT_RDWR): the peer gets a FIN, our reader gets EOF.
/// Only called under the registry lock on a registered (so open) fd.
fn shutdown(fd: RawFd) {
    // SAFETY: shutdown(2) takes any fd; a registered fd is open, because
    // its owner unregisters (under the lock held here) before closing it.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// One served connection's place: counted in `held`, listed in the
/// registry, holding a permit under a cap. Dropping it (before the socket
/// closes) gives all three back.
pub(super) struct Slot {
    shared: Arc<Shared>,
    id: u64,
    // Field order is drop order: `held` goes down before the permit lets a
    // waiting connection in, so `held` never passes the cap.
    /// `None` until serving starts ([`Slot::hold`]).
    held: Option<HeldGuard>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// Takes a slot for the socket `fd`, in accept order (the order
    /// `close-oldest` goes by); `None` if the server is stopping (the
    /// caller just closes the socket). It counts in `held` from
    /// [`Slot::hold`] on: a connection thread calls that once it runs, so
    /// a thread that never started is never counted.
    pub fn take(
        shared: &Arc<Shared>,
        fd: RawFd,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Option<Slot> {
        let id = shared.registry.register(fd, &shared.stats)?;
        Some(Slot {
            shared: Arc::clone(shared),
            id,
            held: None,
            _permit: permit,
        })
    }

    /// Counts the connection in `held` until the slot drops.
    pub fn hold(mut self) -> Slot {
        self.held = Some(self.shared.stats.hold());
        self
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.registry.unregister(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(registry: &Registry) -> Vec<u64> {
        registry.lock().open.keys().copied().collect()
    }

    fn closed_oldest(stats: &ServerStats) -> u64 {
        stats.rejected.closed_oldest.load(Ordering::Relaxed)
    }

    #[test]
    fn the_oldest_goes_first_and_stopping_refuses_new_ones() {
        let (registry, stats) = (Registry::default(), ServerStats::default());
        // fds that are not sockets: shutdown fails with ENOTSOCK, harmlessly.
        let first = registry.register(-1, &stats).unwrap();
        let second = registry.register(-1, &stats).unwrap();
        assert!(first < second);
        registry.close_oldest(&stats);
        assert_eq!(registered(&registry), [second]);
        assert_eq!(closed_oldest(&stats), 1);
        registry.unregister(first); // already gone: no effect
        registry.stop_all();
        assert_eq!(registry.register(-1, &stats), None);
    }

    #[test]
    fn a_close_asked_of_an_empty_registry_is_paid_by_the_next_registration() {
        // The served sockets were all shut down already, or their slots had
        // passed to waiting connections not yet registered: the close is
        // owed, or one waiting connection would never get a slot.
        let (registry, stats) = (Registry::default(), ServerStats::default());
        registry.close_oldest(&stats);
        registry.close_oldest(&stats);
        assert_eq!(closed_oldest(&stats), 0);
        let first = registry.register(-1, &stats).unwrap();
        assert!(
            registered(&registry).is_empty(),
            "{first} shut down at once"
        );
        assert_eq!(closed_oldest(&stats), 1);
        registry.register(-1, &stats).unwrap();
        let third = registry.register(-1, &stats).unwrap();
        assert_eq!(registered(&registry), [third], "the debt is paid off");
        assert_eq!(closed_oldest(&stats), 2);
    }
}
