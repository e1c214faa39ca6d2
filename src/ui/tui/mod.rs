//! The full-screen dashboard (`--ui tui`): ratatui + crossterm.
//!
//! [`Dashboard`] owns the terminal for the run and is driven by the caller:
//! each [`Dashboard::update`] takes the latest snapshot, polls the keys
//! without blocking, and redraws at most ten times a second. Drawing is a
//! pure function of the snapshot and the view state ([`render`]), so a
//! slow terminal never slows the engine: it only reads snapshots.
//!
//! # Layout
//! - `terminal`: raw mode and the alternate screen; restored on finish, on
//!   drop and on panic.
//! - `keys`: key events to [`Action`]s and view inputs.
//! - `history`: the bounded per-second history behind the charts.
//! - `view`: the screen, drawn from a [`View`].

mod history;
mod keys;
mod terminal;
mod view;

#[cfg(test)]
mod tests;

pub use history::{History, Point};
pub use keys::{Input, map_key};
pub use terminal::{available, restore as restore_terminal};
pub use view::{COMPACT_HEIGHT, COMPACT_WIDTH, UiState, View, micros_text, render};

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};

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
    /// Why the figures that are `None` could not be read, when known
    /// (e.g. "fd table full"): shown in their place.
    pub unread: Option<String>,
    /// ceiling's own CPU has held the rate down so far in the run.
    pub generator: Option<crate::model::GeneratorBottleneck>,
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
pub struct Dashboard {
    /// `None` once finished.
    guard: Option<terminal::TerminalGuard>,
    context: RunContext,
    history: History,
    ui: UiState,
    last_draw: Option<Instant>,
}

/// Shortest time between two redraws: at most ten a second.
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// Most key events read in one update, so a flood of input cannot hold up
/// the caller's loop.
const MAX_EVENTS_PER_UPDATE: usize = 64;

impl Dashboard {
    /// Enters raw mode and the alternate screen (on stderr, so stdout stays
    /// for the summary), installs the panic hook that restores them, and
    /// opens the key reader. Call it before the run's load starts: it
    /// needs fds.
    pub fn start(context: RunContext) -> io::Result<Dashboard> {
        let guard = terminal::TerminalGuard::enter()?;
        // The key reader takes its fds on first use: take them now, before
        // a run can fill the fd table.
        event::poll(Duration::ZERO)?;
        Ok(Dashboard {
            guard: Some(guard),
            context,
            history: History::default(),
            ui: UiState::default(),
            last_draw: None,
        })
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
        let source_rows = self.context.source_names.len().max(1);
        let mut actions = Vec::new();
        for _ in 0..MAX_EVENTS_PER_UPDATE {
            if !event::poll(Duration::ZERO)? {
                break;
            }
            match event::read()? {
                Event::Key(key) => {
                    if let Some(input) = map_key(key, self.ui.help) {
                        actions.extend(apply_input(&mut self.ui, input, source_rows));
                    }
                }
                // Ask for a full redraw on the next draw after a resize.
                Event::Resize(_, _) => self.last_draw = None,
                _ => {}
            }
        }
        if let Some(row) = &snapshot.last_row {
            self.history.push(row);
        }
        let due = self
            .last_draw
            .is_none_or(|at| at.elapsed() >= REDRAW_INTERVAL);
        if let (true, Some(guard)) = (due, self.guard.as_mut()) {
            let view = View {
                context: &self.context,
                snapshot,
                first_limit,
                host,
                controls,
                history: &self.history,
                ui: &self.ui,
            };
            guard.terminal.draw(|frame| render(frame, &view))?;
            self.last_draw = Some(Instant::now());
        }
        Ok(actions)
    }

    /// Leaves the alternate screen and restores the terminal.
    pub fn finish(mut self) -> io::Result<()> {
        match self.guard.take() {
            Some(mut guard) => guard.restore(),
            None => Ok(()),
        }
    }
}

/// Applies a view input to the view state; returns the action for the
/// caller, if the input was one. `source_rows` bounds the scrolling.
pub fn apply_input(ui: &mut UiState, input: Input, source_rows: usize) -> Option<Action> {
    let last = source_rows.saturating_sub(1);
    match input {
        Input::Act(action) => return Some(action),
        Input::ToggleHelp => ui.help = !ui.help,
        Input::CloseHelp => ui.help = false,
        Input::Scroll(by) => {
            let moved = ui.source_scroll.saturating_add_signed(by as isize);
            ui.source_scroll = moved.min(last);
        }
        Input::ScrollTop => ui.source_scroll = 0,
        Input::ScrollBottom => ui.source_scroll = last,
    }
    None
}
