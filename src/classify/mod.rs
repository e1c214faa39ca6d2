//! Names the limit behind a failure from what the kernel said: (syscall,
//! errno, context) → [`LimitKind`] ([`classify`], a pure table, DESIGN.md
//! "Limit classification"), and the first limit's evidence and remedy
//! ([`explain()`]).
//!
//! # Layout
//! - this module: the classification table.
//! - [`explain`](mod@explain): one-line evidence, facts and a remedy.
//! - [`nothing`]: why a run in which nothing connected got nowhere.
//! - [`host`]: reads sysctls, rlimits, kernel counters, listener queues.
//! - [`procfs`]: pure parsers of the /proc text `host` reads.
//! - [`capacity`]: whether the host has memory and files left for a run.
//! - [`cpu`]: whether the target's CPU held it back (seconds at its quota).
//! - [`diag`]: listener queues and backlogs over sock_diag netlink.

pub mod capacity;
pub mod cpu;
pub mod diag;
pub mod explain;
pub mod host;
pub mod nothing;
pub mod procfs;

use std::io;

use crate::model::{LimitKind, Syscall};

pub use cpu::ServerCpu;
pub use explain::{RunFacts, ServerPids, close_verdict, explain};
pub use nothing::nothing_connected;

/// What the engine knew about the attempt when it failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptContext {
    /// The socket was bound to an explicit source IP.
    pub source_bound: bool,
    /// The socket was bound to an explicit source port (--source-ports).
    pub explicit_source_port: bool,
    /// IP_BIND_ADDRESS_NO_PORT was set before bind(ip, 0).
    pub no_port_bind: bool,
    /// The connection had been established (a held connection's read/write).
    pub established: bool,
    /// The target address is on this host, so its listen counters are ours.
    pub target_local: bool,
    /// Whether ListenOverflows/ListenDrops moved since the run started;
    /// None when they cannot be read.
    pub listen_overflows_moved: Option<bool>,
    /// Age of the connection when it ended, ms (held connections only).
    pub age_ms: Option<u64>,
    /// The host's `nf_conntrack_count` had reached `nf_conntrack_max`
    /// (false when conntrack is absent or could not be read).
    pub conntrack_full: bool,
    /// A worker process was SIGKILLed while its memory cgroup counted an
    /// OOM kill.
    pub oom_killed: bool,
}

impl AttemptContext {
    /// The target's accept queue overflowed during the run, and we can see
    /// it (the target is on this host).
    fn target_overflowed(&self) -> bool {
        self.target_local && self.listen_overflows_moved == Some(true)
    }
}

/// A reset of a held connection younger than this, while the target's accept
/// queue overflows, is the kernel dropping a connection the server never
/// accepted rather than the server closing it.
pub const UNACCEPTED_RESET_MAX_AGE_MS: u64 = 1000;

/// The kind of a failure from the syscall, its errno (None for ceiling's own
/// timeout or an EOF) and the context.
pub fn classify(syscall: Syscall, errno: Option<i32>, ctx: &AttemptContext) -> LimitKind {
    use LimitKind as K;
    use libc::{
        EADDRINUSE, EADDRNOTAVAIL, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, EMFILE, ENETUNREACH,
        ENFILE, ENOBUFS, ENOMEM, EPIPE, ETIMEDOUT,
    };

    let Some(e) = errno else {
        return match syscall {
            Syscall::Timeout => no_answer(ctx),
            Syscall::Read | Syscall::Write => K::ServerClosed,
            // The memory cgroup's limit: the kernel kills, it returns no
            // ENOMEM.
            Syscall::WorkerExit if ctx.oom_killed => K::KernelMemory,
            Syscall::WorkerExit => K::LostWithWorker,
            _ => K::Other,
        };
    };
    match syscall {
        Syscall::Socket => match e {
            EMFILE => K::FdLimitProcess,
            ENFILE => K::FdLimitSystem,
            ENOMEM | ENOBUFS => K::KernelMemory,
            _ => K::Other,
        },
        Syscall::Setsockopt => match e {
            ENOMEM | ENOBUFS => K::KernelMemory,
            _ => K::Other,
        },
        Syscall::Bind => match e {
            // bind(ip, 0) without IP_BIND_ADDRESS_NO_PORT, or every port of
            // an explicit --source-ports range taken.
            EADDRINUSE => K::PortExhaustion,
            // The explicit source IP is not an address of this host.
            EADDRNOTAVAIL => K::SourceAddressInvalid,
            ENOMEM | ENOBUFS => K::KernelMemory,
            EMFILE => K::FdLimitProcess,
            ENFILE => K::FdLimitSystem,
            _ => K::Other,
        },
        Syscall::Connect => match e {
            // No free ephemeral port for this (source IP, target).
            EADDRNOTAVAIL => K::PortExhaustion,
            // The 4-tuple is taken (explicit source ports).
            EADDRINUSE => K::PortExhaustion,
            ECONNREFUSED => K::Refused,
            ECONNRESET | EPIPE if ctx.target_overflowed() => K::BacklogOverflow,
            ECONNRESET | EPIPE => K::Reset,
            // The kernel gave up after tcp_syn_retries: no SYN-ACK came.
            ETIMEDOUT => no_answer(ctx),
            EHOSTUNREACH | ENETUNREACH => K::Unreachable,
            ENOMEM | ENOBUFS => K::KernelMemory,
            ENFILE => K::FdLimitSystem,
            EMFILE => K::FdLimitProcess,
            _ => K::Other,
        },
        Syscall::Timeout => no_answer(ctx),
        Syscall::Read | Syscall::Write => match e {
            ECONNRESET | EPIPE if ctx.target_overflowed() && young(ctx) => K::BacklogOverflow,
            ECONNRESET | EPIPE => K::ServerClosed,
            // Keepalive or retransmissions gave up: the peer vanished.
            ETIMEDOUT => K::ServerClosed,
            _ => K::Other,
        },
        Syscall::WorkerExit => K::LostWithWorker,
    }
}

/// No SYN-ACK: a visible accept-queue overflow, else a full conntrack
/// table, else a plain timeout.
fn no_answer(ctx: &AttemptContext) -> LimitKind {
    if ctx.target_overflowed() {
        LimitKind::BacklogOverflow
    } else if ctx.conntrack_full {
        LimitKind::ConntrackFull
    } else {
        LimitKind::ConnectTimeout
    }
}

fn young(ctx: &AttemptContext) -> bool {
    ctx.age_ms
        .is_some_and(|ms| ms < UNACCEPTED_RESET_MAX_AGE_MS)
}

/// [`classify`] for an `io::Error` (its raw errno).
pub fn classify_io(syscall: Syscall, err: &io::Error, ctx: &AttemptContext) -> LimitKind {
    classify(syscall, err.raw_os_error(), ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LimitKind as K;
    use Syscall as S;
    use libc::*;

    fn plain() -> AttemptContext {
        AttemptContext::default()
    }

    /// Target on this host, its ListenOverflows moved.
    fn overflowing() -> AttemptContext {
        AttemptContext {
            target_local: true,
            listen_overflows_moved: Some(true),
            ..plain()
        }
    }

    fn held(age_ms: u64, base: AttemptContext) -> AttemptContext {
        AttemptContext {
            established: true,
            age_ms: Some(age_ms),
            ..base
        }
    }

    #[test]
    fn a_worker_process_killed_under_a_memory_cgroup_oom_is_kernel_memory() {
        let oom = AttemptContext {
            oom_killed: true,
            ..plain()
        };
        assert_eq!(
            classify(Syscall::WorkerExit, None, &oom),
            LimitKind::KernelMemory
        );
        assert_eq!(
            classify(Syscall::WorkerExit, None, &plain()),
            LimitKind::LostWithWorker
        );
    }

    #[test]
    fn table() {
        let remote_overflow = AttemptContext {
            target_local: false,
            ..overflowing()
        };
        let unreadable = AttemptContext {
            target_local: true,
            listen_overflows_moved: None,
            ..plain()
        };
        let quiet = AttemptContext {
            target_local: true,
            listen_overflows_moved: Some(false),
            ..plain()
        };
        let conntrack = AttemptContext {
            conntrack_full: true,
            ..plain()
        };
        let explicit_ports = AttemptContext {
            source_bound: true,
            explicit_source_port: true,
            ..plain()
        };
        let bound_no_port = AttemptContext {
            source_bound: true,
            no_port_bind: true,
            ..plain()
        };
        #[rustfmt::skip]
        let rows: &[(Syscall, Option<i32>, AttemptContext, LimitKind)] = &[
            // socket()
            (S::Socket, Some(EMFILE), plain(), K::FdLimitProcess),
            (S::Socket, Some(ENFILE), plain(), K::FdLimitSystem),
            (S::Socket, Some(ENOMEM), plain(), K::KernelMemory),
            (S::Socket, Some(ENOBUFS), plain(), K::KernelMemory),
            (S::Socket, Some(EAFNOSUPPORT), plain(), K::Other),
            (S::Socket, None, plain(), K::Other),
            // setsockopt()
            (S::Setsockopt, Some(ENOBUFS), plain(), K::KernelMemory),
            (S::Setsockopt, Some(ENOMEM), plain(), K::KernelMemory),
            (S::Setsockopt, Some(EINVAL), plain(), K::Other),
            (S::Setsockopt, Some(EPERM), plain(), K::Other),
            // bind()
            (S::Bind, Some(EADDRINUSE), AttemptContext { source_bound: true, ..plain() }, K::PortExhaustion),
            (S::Bind, Some(EADDRINUSE), explicit_ports, K::PortExhaustion),
            (S::Bind, Some(EADDRNOTAVAIL), bound_no_port, K::SourceAddressInvalid),
            (S::Bind, Some(EADDRNOTAVAIL), explicit_ports, K::SourceAddressInvalid),
            (S::Bind, Some(ENOMEM), plain(), K::KernelMemory),
            (S::Bind, Some(ENOBUFS), plain(), K::KernelMemory),
            (S::Bind, Some(EMFILE), plain(), K::FdLimitProcess),
            (S::Bind, Some(ENFILE), plain(), K::FdLimitSystem),
            (S::Bind, Some(EACCES), plain(), K::Other),
            // connect(), immediate or SO_ERROR
            (S::Connect, Some(EADDRNOTAVAIL), plain(), K::PortExhaustion),
            (S::Connect, Some(EADDRNOTAVAIL), bound_no_port, K::PortExhaustion),
            (S::Connect, Some(EADDRINUSE), explicit_ports, K::PortExhaustion),
            (S::Connect, Some(ECONNREFUSED), plain(), K::Refused),
            (S::Connect, Some(ECONNREFUSED), overflowing(), K::Refused),
            (S::Connect, Some(ECONNRESET), plain(), K::Reset),
            (S::Connect, Some(EPIPE), plain(), K::Reset),
            (S::Connect, Some(ECONNRESET), quiet, K::Reset),
            (S::Connect, Some(ECONNRESET), remote_overflow, K::Reset),
            (S::Connect, Some(ECONNRESET), overflowing(), K::BacklogOverflow),
            (S::Connect, Some(EPIPE), overflowing(), K::BacklogOverflow),
            (S::Connect, Some(ETIMEDOUT), plain(), K::ConnectTimeout),
            (S::Connect, Some(ETIMEDOUT), overflowing(), K::BacklogOverflow),
            (S::Connect, Some(ETIMEDOUT), conntrack, K::ConntrackFull),
            (S::Connect, Some(EHOSTUNREACH), plain(), K::Unreachable),
            (S::Connect, Some(ENETUNREACH), plain(), K::Unreachable),
            (S::Connect, Some(ENOMEM), plain(), K::KernelMemory),
            (S::Connect, Some(ENOBUFS), plain(), K::KernelMemory),
            (S::Connect, Some(ENFILE), plain(), K::FdLimitSystem),
            (S::Connect, Some(EMFILE), plain(), K::FdLimitProcess),
            (S::Connect, Some(EINVAL), plain(), K::Other),
            (S::Connect, None, plain(), K::Other),
            // ceiling's own connect timeout
            (S::Timeout, None, plain(), K::ConnectTimeout),
            (S::Timeout, None, overflowing(), K::BacklogOverflow),
            (S::Timeout, None, remote_overflow, K::ConnectTimeout),
            (S::Timeout, None, unreadable, K::ConnectTimeout),
            (S::Timeout, None, quiet, K::ConnectTimeout),
            (S::Timeout, None, conntrack, K::ConntrackFull),
            (S::Timeout, None, AttemptContext { conntrack_full: true, ..overflowing() }, K::BacklogOverflow),
            // held connections
            (S::Read, None, held(1200, plain()), K::ServerClosed),
            (S::Read, None, held(10, overflowing()), K::ServerClosed),
            (S::Read, Some(ECONNRESET), held(5000, plain()), K::ServerClosed),
            (S::Write, Some(EPIPE), held(5000, plain()), K::ServerClosed),
            (S::Read, Some(ECONNRESET), held(120, overflowing()), K::BacklogOverflow),
            (S::Write, Some(EPIPE), held(999, overflowing()), K::BacklogOverflow),
            (S::Read, Some(ECONNRESET), held(1000, overflowing()), K::ServerClosed),
            (S::Read, Some(ECONNRESET), held(120, remote_overflow), K::ServerClosed),
            (S::Read, Some(ECONNRESET), held(120, quiet), K::ServerClosed),
            (S::Read, Some(ECONNRESET), AttemptContext { established: true, ..overflowing() }, K::ServerClosed),
            (S::Read, Some(ETIMEDOUT), held(60_000, plain()), K::ServerClosed),
            (S::Write, Some(ETIMEDOUT), held(60_000, overflowing()), K::ServerClosed),
            (S::Read, Some(EINVAL), held(10, plain()), K::Other),
            (S::Write, Some(EBADF), held(10, plain()), K::Other),
        ];
        let mut wrong = Vec::new();
        for (i, &(syscall, errno, ctx, want)) in rows.iter().enumerate() {
            let got = classify(syscall, errno, &ctx);
            if got != want {
                wrong.push(format!(
                    "row {i}: {syscall} {errno:?} {ctx:?} → {got}, want {want}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn through_io_errors() {
        let io = io::Error::from_raw_os_error;
        let c = plain();
        assert_eq!(classify_io(S::Socket, &io(ENFILE), &c), K::FdLimitSystem);
        assert_eq!(classify_io(S::Socket, &io(EMFILE), &c), K::FdLimitProcess);
        assert_eq!(classify_io(S::Connect, &io(ENOBUFS), &c), K::KernelMemory);
        assert_eq!(classify_io(S::Socket, &io(ENOMEM), &c), K::KernelMemory);
        assert_eq!(
            classify_io(S::Connect, &io(EADDRNOTAVAIL), &c),
            K::PortExhaustion
        );
        assert_eq!(
            classify_io(S::Bind, &io(EADDRNOTAVAIL), &c),
            K::SourceAddressInvalid
        );
        assert_eq!(
            classify_io(S::Connect, &io(ETIMEDOUT), &overflowing()),
            K::BacklogOverflow
        );
        // An io::Error without an errno is an EOF / ceiling-made error.
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(
            classify_io(S::Read, &eof, &held(5, plain())),
            K::ServerClosed
        );
        assert_eq!(
            classify_io(S::Timeout, &io::Error::from(io::ErrorKind::TimedOut), &c),
            K::ConnectTimeout
        );
    }

    #[test]
    fn every_syscall_and_errno_gives_a_kind_without_panicking() {
        let syscalls = [
            S::Socket,
            S::Setsockopt,
            S::Bind,
            S::Connect,
            S::Timeout,
            S::Read,
            S::Write,
        ];
        for syscall in syscalls {
            for errno in std::iter::once(None).chain((0..140).map(Some)) {
                for ctx in [plain(), overflowing(), held(1, overflowing())] {
                    let kind = classify(syscall, errno, &ctx);
                    if errno.is_some_and(|e| ![EMFILE, ENFILE, ENOMEM, ENOBUFS].contains(&e))
                        && syscall == S::Socket
                    {
                        assert_eq!(kind, K::Other);
                    }
                }
            }
        }
    }
}
