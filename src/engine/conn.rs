//! One connection attempt at the socket level: socket(), optional bind(),
//! non-blocking connect() timed in CPU time, the wait for the handshake, and
//! the one TCP_INFO read of an established connection.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::classify::host;
use crate::model::Syscall;
use crate::scenario::units::CloseMode;

/// How the socket is bound before connect().
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindPolicy {
    /// Source address (explicit IP and/or port), if any.
    pub addr: Option<SocketAddr>,
    /// The port was chosen by the user (`--source-ports`): set SO_REUSEADDR
    /// so the same port can serve several targets.
    pub explicit_port: bool,
    /// With an IP and port 0: set IP_BIND_ADDRESS_NO_PORT (the port is
    /// picked at connect()); false lets bind() pick it.
    pub no_port: bool,
}

/// A failed attempt, as the kernel reported it.
#[derive(Debug)]
pub struct AttemptError {
    pub syscall: Syscall,
    /// None for ceiling's own timeout.
    pub errno: Option<i32>,
    /// SYN retransmissions of a socket that timed out (TCP_INFO).
    pub syn_retransmits: Option<u32>,
}

impl AttemptError {
    pub fn from_io(syscall: Syscall, err: io::Error) -> AttemptError {
        AttemptError {
            syscall,
            errno: err.raw_os_error(),
            syn_retransmits: None,
        }
    }
}

/// The connect() call itself, timed whether or not the attempt then
/// succeeded. Filled in as soon as connect() returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectCall {
    /// Asked by the caller: also read the thread's CPU clock around the
    /// call. That clock is a real syscall each time (no vDSO), so it is
    /// read only when a slow call has made a port search likely.
    pub measure_cpu: bool,
    /// Wall time inside connect(), µs (the vDSO clock: nearly free). A
    /// large value is a port search or just preemption.
    pub wall_us: u64,
    /// CPU time the calling thread spent inside connect(), µs, when
    /// measured: immune to preemption, so a large value means the kernel
    /// itself was busy (port search in a nearly full range).
    pub cpu_us: Option<u64>,
}

/// Opens one connection: returns the established stream, or the failure.
/// `connect_call` is filled in as soon as connect() returns.
pub async fn open(
    bind: BindPolicy,
    target: SocketAddr,
    deadline: Instant,
    close: CloseMode,
    connect_call: &mut ConnectCall,
) -> Result<TcpStream, AttemptError> {
    let socket = start(bind, target, close, connect_call)?;
    let stream = TcpStream::from_std(socket.into())
        .map_err(|e| AttemptError::from_io(Syscall::Connect, e))?;
    match tokio::time::timeout_at(deadline, stream.writable()).await {
        Err(_elapsed) => Err(AttemptError {
            syscall: Syscall::Timeout,
            errno: None,
            syn_retransmits: tcp_info(&stream).map(|info| u32::from(info.tcpi_retransmits)),
        }),
        Ok(Err(e)) => Err(AttemptError::from_io(Syscall::Connect, e)),
        Ok(Ok(())) => match stream.take_error() {
            Ok(None) => Ok(stream),
            Ok(Some(e)) | Err(e) => Err(AttemptError::from_io(Syscall::Connect, e)),
        },
    }
}

/// socket(), bind() as asked, and a non-blocking connect(): returns the
/// socket with its handshake under way (or done), or the failure.
/// `connect_call` is filled in as soon as connect() returns.
pub fn start(
    bind: BindPolicy,
    target: SocketAddr,
    close: CloseMode,
    connect_call: &mut ConnectCall,
) -> Result<Socket, AttemptError> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(|e| AttemptError::from_io(Syscall::Socket, e))?;
    if let Some(addr) = bind.addr {
        let setup = if bind.explicit_port {
            socket.set_reuse_address(true)
        } else if !bind.no_port {
            // The user asked for bind() to pick the port (--pick-port-at
            // bind): one port space per source IP, EADDRINUSE when it runs out.
            Ok(())
        } else {
            // Only the IP is fixed: let connect() pick the port, so the
            // kernel can reuse a port for different targets (the full
            // 4-tuple space instead of bind()'s 2-tuple).
            host::set_bind_address_no_port(&socket)
        };
        setup.map_err(|e| AttemptError::from_io(Syscall::Setsockopt, e))?;
        socket
            .bind(&addr.into())
            .map_err(|e| AttemptError::from_io(Syscall::Bind, e))?;
    }
    let cpu_before = connect_call.measure_cpu.then(thread_cpu_time);
    let before = std::time::Instant::now();
    let result = socket.connect(&target.into());
    connect_call.wall_us = before.elapsed().as_micros() as u64;
    connect_call.cpu_us =
        cpu_before.map(|cpu| thread_cpu_time().saturating_sub(cpu).as_micros() as u64);
    match result {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(AttemptError::from_io(Syscall::Connect, e)),
    }
    if close == CloseMode::Rst {
        // Linger 0 turns the eventual close() into a RST: no TIME_WAIT.
        socket
            .set_linger(Some(Duration::ZERO))
            .map_err(|e| AttemptError::from_io(Syscall::Setsockopt, e))?;
    }
    Ok(socket)
}

/// How a handshake that was under way ended, from the socket alone: one
/// TCP_INFO read when it completed (its SYN retransmissions), the pending
/// error otherwise.
pub fn handshake_outcome(fd: &impl AsFd) -> Result<u32, AttemptError> {
    match tcp_info_fd(fd.as_fd().as_raw_fd()) {
        Some(info) if handshake_completed(&info) => Ok(info.tcpi_total_retrans),
        _ => {
            let sock = SockRef::from(fd);
            let err = match sock.take_error() {
                Ok(Some(e)) | Err(e) => e,
                // Not established and no error: the peer is already gone.
                Ok(None) => io::Error::from_raw_os_error(libc::ECONNRESET),
            };
            Err(AttemptError::from_io(Syscall::Connect, err))
        }
    }
}

/// SYN retransmissions of a handshake that is still under way.
pub fn syn_retransmits(fd: &impl AsFd) -> Option<u32> {
    tcp_info_fd(fd.as_fd().as_raw_fd()).map(|info| u32::from(info.tcpi_retransmits))
}

/// `tcpi_state` of an established connection.
const TCP_ESTABLISHED: u8 = 1;
/// `tcpi_state` once the peer's FIN has arrived on an established one.
const TCP_CLOSE_WAIT: u8 = 8;

/// Established, or established and already closed by the server (a server
/// that turns connections away writes its reason and a FIN right after
/// accept(), which can come before this socket is looked at): either way
/// the handshake completed, and the close is the server's, seen next as
/// EOF with the bytes before it.
fn handshake_completed(info: &libc::tcp_info) -> bool {
    matches!(info.tcpi_state, TCP_ESTABLISHED | TCP_CLOSE_WAIT)
}

/// CPU time consumed by the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The socket's TCP_INFO, when the kernel gives it.
pub fn tcp_info(stream: &TcpStream) -> Option<libc::tcp_info> {
    tcp_info_fd(SockRef::from(stream).as_raw_fd())
}

fn tcp_info_fd(fd: std::os::fd::RawFd) -> Option<libc::tcp_info> {
    // SAFETY: tcp_info is plain old data; zeroed is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

/// Whether the handshake has completed already (one TCP_INFO read; see
/// `handshake_completed`), with its SYN retransmissions; None while it
/// is under way or if it failed.
pub fn established_now(fd: &impl AsFd) -> Option<u32> {
    tcp_info_fd(fd.as_fd().as_raw_fd())
        .filter(handshake_completed)
        .map(|info| info.tcpi_total_retrans)
}

/// SYN retransmissions an established connection needed: at establish time
/// nothing but the SYN can have been retransmitted, so the total counts them.
pub fn handshake_retransmits(stream: &TcpStream) -> u32 {
    tcp_info(stream).map_or(0, |info| info.tcpi_total_retrans)
}
