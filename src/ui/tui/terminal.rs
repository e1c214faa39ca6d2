//! Owns the real terminal: raw mode and the alternate screen on stderr, and
//! the three ways they are undone — an explicit restore, the guard's `Drop`,
//! and a panic hook — so that no exit path leaves a broken terminal behind.
//!
//! The dashboard draws on stderr, like the progress bar, so that stdout stays
//! for the final text summary (`ceiling run > summary.txt` still shows the
//! dashboard).

use std::io::{self, IsTerminal, Stderr};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::execute;
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// True while raw mode and the alternate screen are on; the panic hook only
/// restores when this is set, and restoring twice is harmless.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// The ratatui terminal the dashboard draws on.
pub type Term = Terminal<CrosstermBackend<Stderr>>;

/// True when the dashboard can run: stderr is a terminal (where it draws) and
/// stdin is one too (where keys come from).
pub fn available() -> bool {
    io::stderr().is_terminal() && io::stdin().is_terminal()
}

/// Raw mode and the alternate screen for as long as it lives.
pub struct TerminalGuard {
    pub terminal: Term,
}

impl TerminalGuard {
    /// Installs the panic hook (once per process), enters raw mode and the
    /// alternate screen. On failure, whatever was already changed is undone.
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        let entered = enable_raw_mode()
            .and_then(|()| execute!(io::stderr(), EnterAlternateScreen))
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stderr())));
        match entered {
            Ok(terminal) => {
                // From here on the guard's Drop restores on any error.
                let mut guard = TerminalGuard { terminal };
                guard.terminal.hide_cursor()?;
                // Not `Terminal::clear`: it asks the terminal for the cursor
                // position on stdout, which times out when stdout is
                // redirected (`ceiling run > summary.txt`).
                execute!(io::stderr(), Clear(ClearType::All))?;
                Ok(guard)
            }
            Err(err) => {
                let _ = restore();
                Err(err)
            }
        }
    }

    /// Restores the terminal now; the later `Drop` then does nothing.
    pub fn restore(&mut self) -> io::Result<()> {
        let _ = self.terminal.show_cursor();
        restore()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

/// Leaves the alternate screen and raw mode if they are on. Raw mode goes
/// first: it has more side effects than the screen switch. Safe to call
/// from anywhere, any number of times (e.g. before a forced exit).
pub fn restore() -> io::Result<()> {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let raw = disable_raw_mode();
    let screen = execute!(io::stderr(), LeaveAlternateScreen, crossterm::cursor::Show);
    raw.and(screen)
}

/// Chains a hook that restores the terminal before the previous hook prints
/// the panic message, so the message lands on a usable screen.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = restore();
            previous(info);
        }));
    });
}
