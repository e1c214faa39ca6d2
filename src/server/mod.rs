//! The built-in target server (`ceiling serve`, and the embedded default
//! target of `ceiling run`). STUB: being written.

use std::io;
use std::net::SocketAddr;

/// What the server does with an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Echo,
    Hold,
    Close,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on; port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    pub mode: Mode,
    pub backlog: u32,
    /// false: listen but never accept.
    pub accept: bool,
}

/// What the server did, printed at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerTotals {
    pub accepted: u64,
    pub held: u64,
    pub peak_held: u64,
    pub accept_errors: u64,
}

/// Listeners bound and listening, not yet accepting.
pub struct Bound {}

impl Bound {
    /// The addresses actually bound (port 0 resolved), in config order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        unimplemented!()
    }

    /// Serves until `shutdown` completes, then closes everything.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) -> ServerTotals {
        let _ = shutdown;
        unimplemented!()
    }
}

/// Binds and listens on every configured address (IPv4 and IPv6).
pub fn bind(config: ServerConfig) -> io::Result<Bound> {
    let _ = config;
    unimplemented!()
}
