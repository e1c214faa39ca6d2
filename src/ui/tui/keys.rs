//! Keys to inputs: which key asks the run for what ([`Action`]) and which
//! only changes the view (help overlay, scrolling the sources panel).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::Action;

/// What one key press means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Handed to the caller.
    Act(Action),
    /// h or ?: show or hide the help overlay.
    ToggleHelp,
    /// Esc while the help overlay is open: close it (not a stop).
    CloseHelp,
    /// Scroll the sources panel by this many rows.
    Scroll(i32),
    ScrollTop,
    ScrollBottom,
}

/// Rows a PageUp / PageDown moves.
const PAGE: i32 = 10;

/// Maps a key event; `None` for keys that mean nothing (and for releases,
/// which terminals with the kitty protocol report too). In raw mode Ctrl-C
/// arrives here as a key, so it maps to a stop like `q`.
pub fn map_key(key: KeyEvent, help_open: bool) -> Option<Input> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let input = match key.code {
        KeyCode::Char('c' | 'C') if ctrl => Input::Act(super::Action::Stop),
        _ if ctrl => return None,
        KeyCode::Char('q' | 'Q') => Input::Act(Action::Stop),
        KeyCode::Esc if help_open => Input::CloseHelp,
        KeyCode::Esc => Input::Act(Action::Stop),
        KeyCode::Char('p' | 'P' | ' ') => Input::Act(Action::TogglePause),
        KeyCode::Char('+' | '=') => Input::Act(Action::RateUp),
        KeyCode::Char('-' | '_') => Input::Act(Action::RateDown),
        KeyCode::Char('h' | '?') | KeyCode::F(1) => Input::ToggleHelp,
        KeyCode::Up | KeyCode::Char('k') => Input::Scroll(-1),
        KeyCode::Down | KeyCode::Char('j') => Input::Scroll(1),
        KeyCode::PageUp => Input::Scroll(-PAGE),
        KeyCode::PageDown => Input::Scroll(PAGE),
        KeyCode::Home | KeyCode::Char('g') => Input::ScrollTop,
        KeyCode::End | KeyCode::Char('G') => Input::ScrollBottom,
        _ => return None,
    };
    Some(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventState;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn stop_keys() {
        for key in [press(KeyCode::Char('q')), press(KeyCode::Esc), ctrl('c')] {
            assert_eq!(
                map_key(key, false),
                Some(Input::Act(Action::Stop)),
                "{key:?}"
            );
        }
        // q and Ctrl-C stop even with the help open; Esc only closes it.
        assert_eq!(
            map_key(press(KeyCode::Char('q')), true),
            Some(Input::Act(Action::Stop))
        );
        assert_eq!(map_key(ctrl('c'), true), Some(Input::Act(Action::Stop)));
        assert_eq!(map_key(press(KeyCode::Esc), true), Some(Input::CloseHelp));
    }

    #[test]
    fn control_keys() {
        let cases = [
            ('p', Input::Act(Action::TogglePause)),
            ('+', Input::Act(Action::RateUp)),
            ('=', Input::Act(Action::RateUp)),
            ('-', Input::Act(Action::RateDown)),
            ('h', Input::ToggleHelp),
            ('?', Input::ToggleHelp),
            ('j', Input::Scroll(1)),
            ('k', Input::Scroll(-1)),
        ];
        for (c, expected) in cases {
            assert_eq!(
                map_key(press(KeyCode::Char(c)), false),
                Some(expected),
                "{c}"
            );
        }
        assert_eq!(map_key(press(KeyCode::Up), false), Some(Input::Scroll(-1)));
        assert_eq!(map_key(press(KeyCode::Down), false), Some(Input::Scroll(1)));
        assert_eq!(
            map_key(press(KeyCode::End), false),
            Some(Input::ScrollBottom)
        );
    }

    #[test]
    fn other_keys_releases_and_ctrl_chords_mean_nothing() {
        assert_eq!(map_key(press(KeyCode::Char('x')), false), None);
        assert_eq!(map_key(press(KeyCode::Enter), false), None);
        // Ctrl-P is not p, Ctrl-Q is not q.
        assert_eq!(map_key(ctrl('p'), false), None);
        assert_eq!(map_key(ctrl('q'), false), None);
        let release = KeyEvent {
            code: KeyCode::Char('q'),
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Release,
            state: KeyEventState::NONE,
        };
        assert_eq!(map_key(release, false), None);
    }
}
