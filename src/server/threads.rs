//! The threads model: one OS thread per served connection, blocking reads
//! and writes on it (hold, echo, or answering requests with a blocking
//! sleep for the service time), the stack it asks for and nothing else.
//!
//! The accept loop stays async; only serving moves to a thread. When no
//! thread can be made (EAGAIN from a pids limit or threads-max, ENOMEM),
//! the connection gets the reject message and a close, is counted under
//! `thread_spawn_failed`, and the loop goes on to the next accept: no
//! retry, so no spin. At shutdown the registry shuts down every socket,
//! which wakes each blocked read() with EOF.

use std::io::{self, Read, Write};
use std::net;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::accept::reject;
use super::conn::End;
use super::slots::{Reason, Shared, Slot};
use super::{Mode, answer};

/// Bytes read per read() call, on the thread's own stack.
const BUFFER: usize = 8 * 1024;

/// Starts a thread serving `stream`, or turns it away if none can start.
pub(super) fn start(shared: &Arc<Shared>, stream: TcpStream, permit: Option<OwnedSemaphorePermit>) {
    let stream = match stream
        .into_std()
        .and_then(|s| s.set_nonblocking(false).map(|()| s))
    {
        Ok(stream) => stream,
        // Deregistering from the reactor failed: the socket is closed.
        Err(_) => return,
    };
    // Registered here, in accept order, for close-oldest.
    let Some(slot) = Slot::take(shared, stream.as_raw_fd(), permit) else {
        return; // stopping
    };
    // The thread takes the socket as a bare fd, so that if spawn() fails
    // (and drops the closure unrun) the socket is still ours to answer on.
    let fd = stream.into_raw_fd();
    let spawned = std::thread::Builder::new()
        .stack_size(shared.thread_stack)
        .spawn(move || {
            // SAFETY: the closure runs only if spawn() succeeded, and then
            // it is the fd's only owner (the accept loop gave it up).
            let stream = unsafe { net::TcpStream::from_raw_fd(fd) };
            serve(slot.hold(), stream);
        });
    if spawned.is_err() {
        // The closure was dropped unrun: its slot is already given back,
        // the fd is still open and owned by nobody else.
        // SAFETY: as just said.
        let stream = unsafe { net::TcpStream::from_raw_fd(fd) };
        reject(shared, &stream, Reason::ThreadSpawnFailed);
    }
}

/// The thread's body: serve until EOF, an error, the idle timeout or a
/// shutdown(2) from the registry.
fn serve(slot: Slot, mut stream: net::TcpStream) {
    let shared = slot.shared();
    if stream.set_read_timeout(shared.idle_timeout).is_err() {
        return;
    }
    if let Mode::Answer(protocol) = shared.mode {
        let end = answer::serve_thread(&mut stream, protocol, shared.service_time, &shared.stats);
        if let Ok(End::Idle) = end {
            shared.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
        }
        drop(slot);
        drop(stream);
        return;
    }
    let mut buffer = [0u8; BUFFER];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if shared.mode == Mode::Echo && stream.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                shared.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(_) => break,
        }
    }
    // Out of `held` and the registry before the socket closes.
    drop(slot);
    drop(stream);
}
