//! One held connection (async model): hold (read and discard), echo, or
//! answer requests (the `answer` module), until EOF, an error, the idle
//! timeout, or the server's stop signal.
//!
//! The task keeps read interest (tokio registers EPOLLIN | EPOLLRDHUP), so a
//! peer's FIN or RST ends it at once instead of leaving a dead socket counted
//! as held. It owns no buffer: reads go into a stack scratch buffer inside a
//! plain function, which is never part of the task's state. Only when an echo
//! peer stops reading are the bytes it has not taken kept, at most one
//! scratch buffer's worth, until they can be written.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::slots::Slot;
use super::{Mode, answer};

/// Bytes read per read() call.
const SCRATCH: usize = 8 * 1024;

/// Reads per readiness event before yielding to other connections, so one
/// fast sender cannot starve the rest.
const READS_PER_WAKE: usize = 16;

/// Serves one accepted connection; `slot` and `stream` are held only to be
/// dropped when it ends (`held` goes down, the registry forgets the socket,
/// a waiting connection may take the slot, then the socket closes).
pub(super) async fn serve(stream: TcpStream, slot: Slot, mut stop: watch::Receiver<bool>) {
    let shared = slot.shared();
    let served = async {
        match shared.mode {
            Mode::Answer(protocol) => answer::serve_task(&stream, protocol, shared).await,
            mode => handle(&stream, mode, shared.idle_timeout).await,
        }
    };
    tokio::select! {
        end = served => {
            if let Ok(End::Idle) = end {
                shared.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    // The slot goes before the socket closes: whoever sees the close (a
    // client reading EOF) must find the count already updated.
    drop(slot);
    drop(stream);
}

/// Why a connection ended on its side.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
    /// The peer closed, or (request modes) asked to close or was refused.
    Eof,
    /// Nothing arrived for the idle timeout.
    Idle,
}

/// Runs until EOF, the idle timeout or an error; all end the connection.
async fn handle(stream: &TcpStream, mode: Mode, idle: Option<Duration>) -> io::Result<End> {
    // Empty until an echo peer stops reading; an empty Vec owns no memory.
    let mut unsent: Vec<u8> = Vec::new();
    // A deadline past the clock's range is no deadline.
    let mut idle_at = idle.and_then(|idle| Instant::now().checked_add(idle));
    loop {
        if !unsent.is_empty() {
            stream.writable().await?;
            write_some(stream, &mut unsent)?;
            continue;
        }
        match idle_at {
            Some(at) => match tokio::time::timeout_at(at, stream.readable()).await {
                Ok(ready) => ready?,
                Err(_elapsed) => return Ok(End::Idle),
            },
            None => stream.readable().await?,
        }
        match read_some(stream, mode, &mut unsent)? {
            Step::Eof => return Ok(End::Eof),
            Step::Open { received } => {
                if received {
                    idle_at = idle.and_then(|idle| Instant::now().checked_add(idle));
                }
            }
        }
    }
}

/// What a burst of reads found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing more to read now (or the burst limit was reached); whether
    /// any byte arrived.
    Open { received: bool },
    /// The peer closed its side.
    Eof,
}

/// Reads what is there (up to [`READS_PER_WAKE`] times): discards it (hold)
/// or writes it back (echo), keeping in `unsent` what the peer's window
/// cannot take; stops reading as soon as anything is unsent.
fn read_some(stream: &TcpStream, mode: Mode, unsent: &mut Vec<u8>) -> io::Result<Step> {
    let mut scratch = [0u8; SCRATCH];
    let mut received = false;
    for _ in 0..READS_PER_WAKE {
        let n = match stream.try_read(&mut scratch) {
            Ok(0) => return Ok(Step::Eof),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                return Ok(Step::Open { received });
            }
            Err(err) => return Err(err),
        };
        received = true;
        if mode == Mode::Echo {
            let written = write_now(stream, &scratch[..n])?;
            if written < n {
                unsent.extend_from_slice(&scratch[written..n]);
                return Ok(Step::Open { received });
            }
        }
    }
    Ok(Step::Open { received })
}

/// Writes from the front of `unsent` what the socket takes now.
fn write_some(stream: &TcpStream, unsent: &mut Vec<u8>) -> io::Result<()> {
    let written = write_now(stream, unsent)?;
    unsent.drain(..written);
    if unsent.is_empty() {
        // Give the memory back: the connection is idle-sized again.
        *unsent = Vec::new();
    }
    Ok(())
}

/// Writes as much of `bytes` as the socket takes without waiting.
fn write_now(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.try_write(&bytes[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::super::ServerStats;
    use super::super::options::ServeOptions;
    use super::super::slots::Shared;
    use super::*;

    /// The whole per-connection task (socket, slot, stop handle, the state
    /// machine with its idle timer) stays a few hundred bytes: the read
    /// scratch buffer is not in it (512 bytes in a debug build).
    #[tokio::test]
    async fn connection_task_holds_no_buffer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let stats = Arc::new(ServerStats::default());
        let (_stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, _done_rx) = mpsc::channel(1);
        let options = ServeOptions {
            idle_timeout: Some(Duration::from_secs(1)),
            ..ServeOptions::default()
        };
        let shared = Arc::new(Shared::new(
            Mode::Echo,
            &options,
            Arc::clone(&stats),
            stop_rx.clone(),
            done_tx,
        ));
        let slot = Slot::take(&shared, stream.as_raw_fd(), None)
            .expect("not stopping")
            .hold();
        let task = serve(stream, slot, stop_rx);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "connection task is {size} bytes");
        assert!(size < SCRATCH);
        assert_eq!(stats.totals().held, 1);
        drop(task);
        assert_eq!(stats.totals().held, 0, "dropping the task releases held");
    }
}
