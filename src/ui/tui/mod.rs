//! The full-screen dashboard (`--ui tui`): ratatui + crossterm. STUB: being
//! written. Drawing is a pure function of the latest snapshot and the view
//! state; a slow terminal never slows the engine (it only reads snapshots).

use std::io;
use std::time::Duration;

use crate::model::FirstLimit;
use crate::stats::Snapshot;

/// What does not change during a run: shown in the header.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub name: String,
    pub targets: Vec<String>,
    /// Source IPs as given (empty: the kernel chooses).
    pub source_names: Vec<String>,
    /// The run's --duration bound, if any.
    pub duration: Option<Duration>,
    pub planned_connections: u64,
    /// Echo mode: show the RTT panel.
    pub echo: bool,
}

/// Host readings for the host panel, refreshed about once a second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostPanel {
    /// Open fds of this process.
    pub fds_in_use: Option<u64>,
    pub fd_soft: u64,
    pub fd_hard: u64,
    pub port_range: Option<(u16, u16)>,
    /// sockstat TCP inuse / tw for this network namespace.
    pub tcp_inuse: Option<u64>,
    pub tcp_time_wait: Option<u64>,
    /// ListenOverflows + ListenDrops since the run started.
    pub listen_drops_delta: Option<u64>,
}

/// The engine's controls as they are now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Controls {
    pub paused: bool,
    /// Multiplier applied to the rate profile (1.0 = as configured).
    pub rate_factor: f64,
}

/// What a key asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// q, Esc, Ctrl-C: graceful stop.
    Stop,
    /// p: pause / resume opening.
    TogglePause,
    /// +: rate up 10%.
    RateUp,
    /// -: rate down 10%.
    RateDown,
}

/// Owns the terminal for the run (alternate screen, raw mode); restores it
/// on finish, on drop and on panic.
pub struct Dashboard {}

impl Dashboard {
    pub fn start(context: RunContext) -> io::Result<Dashboard> {
        let _ = context;
        unimplemented!()
    }

    /// Draws (at most 10 times a second) and returns the keys pressed since
    /// the last call, without blocking.
    pub fn update(
        &mut self,
        snapshot: &Snapshot,
        first_limit: Option<&FirstLimit>,
        host: &HostPanel,
        controls: Controls,
    ) -> io::Result<Vec<Action>> {
        let _ = (snapshot, first_limit, host, controls);
        unimplemented!()
    }

    /// Leaves the alternate screen and restores the terminal.
    pub fn finish(self) -> io::Result<()> {
        unimplemented!()
    }
}
