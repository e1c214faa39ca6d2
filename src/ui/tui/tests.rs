//! Whole-screen rendering tests: fixed runs built with the real
//! [`Aggregator`], drawn into a `TestBackend` and compared as text with
//! insta snapshots (under `snapshots/`), plus a no-panic sweep over sizes.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use super::*;
use crate::model::{Evidence, FailureEvent, LimitKind};
use crate::stats::{Aggregator, Delta, Phase, record_us};

/// What a fixture run does, second by second.
struct Spec {
    sources: usize,
    seconds: u64,
    /// Connects per second asked for and made.
    rate: u64,
    /// Established connections stop at this many; every attempt past it
    /// fails with port exhaustion.
    cap: Option<u64>,
    echo: bool,
    planned: u64,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            sources: 1,
            seconds: 30,
            rate: 1_000,
            cap: None,
            echo: false,
            planned: 100_000,
        }
    }
}

fn port_exhaustion(attempt: u64, elapsed_s: f64, active: u64) -> FailureEvent {
    FailureEvent::example(LimitKind::PortExhaustion, attempt, elapsed_s, active)
}

/// Runs the spec through an aggregator; returns the last snapshot (0.4 s
/// into the next second) and the history the dashboard would have kept.
fn run(spec: &Spec) -> (Snapshot, History) {
    let mut agg = Aggregator::new(spec.sources, spec.planned);
    let mut history = History::default();
    let mut attempted = 0u64;
    let mut established = 0u64;
    let mut last = None;
    for second in 1..=spec.seconds {
        let mut delta = Delta::new(spec.sources);
        // A ramp: the first five seconds at a fifth of the rate each.
        let rate = spec.rate * second.min(5) / 5;
        for i in 0..rate {
            attempted += 1;
            delta.attempted += 1;
            let source = (attempted as usize) % spec.sources.max(1);
            if let Some(counters) = delta.sources.get_mut(source) {
                counters.attempted += 1;
            }
            let elapsed_s = second as f64 - 1.0 + i as f64 / rate as f64;
            if spec.cap.is_some_and(|cap| established >= cap) {
                delta.record_failure(port_exhaustion(attempted, elapsed_s, established), source);
                continue;
            }
            established += 1;
            delta.established += 1;
            if let Some(counters) = delta.sources.get_mut(source) {
                counters.established += 1;
            }
            // Deterministic spread: mostly a few hundred µs, a slow tail.
            let us = 150
                + (attempted * 7919) % 900
                + if attempted.is_multiple_of(97) {
                    25_000
                } else {
                    0
                };
            record_us(&mut delta.connect_us, us);
            if spec.echo {
                record_us(&mut delta.rtt_us, 40 + (attempted * 31) % 200);
            }
        }
        if spec.cap.is_some_and(|cap| established >= cap) {
            // Past the cap the kernel searches a full port space: every
            // connect() is slow, each such second a stall.
            delta.warnings.syn_retransmit_handshakes += 3;
            delta.warnings.port_search_slow += rate;
        }
        agg.absorb(&delta);
        let snapshot = agg.snapshot(
            Duration::from_secs(second),
            Phase::Opening,
            spec.rate as f64,
            String::new,
            false,
        );
        history.push(snapshot.last_row.as_ref().expect("a row each second"));
        last = Some(snapshot);
    }
    let mut snapshot = last.expect("at least one second");
    snapshot.elapsed += Duration::from_millis(400);
    (snapshot, history)
}

fn context(spec: &Spec, sources: Vec<String>) -> RunContext {
    RunContext {
        name: "port-exhaustion".into(),
        targets: vec!["127.0.0.1:7070".into()],
        source_names: sources,
        duration: Some(Duration::from_secs(60)),
        planned_connections: spec.planned,
        echo: spec.echo,
    }
}

fn sources(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| format!("127.0.{}.{}", i / 256, i % 256))
        .collect()
}

fn host() -> HostPanel {
    HostPanel {
        fds_in_use: Some(28_251),
        fd_soft: 1_048_576,
        fd_hard: 1_048_576,
        port_range: Some((32768, 60999)),
        tcp_inuse: Some(28_260),
        tcp_time_wait: Some(12),
        listen_drops_delta: Some(0),
    }
}

fn first_limit(snapshot: &Snapshot) -> FirstLimit {
    let event = snapshot.total.first_limit.clone().expect("a limit was hit");
    FirstLimit {
        kind: event.kind,
        errno: event.errno,
        errno_name: Some("EADDRNOTAVAIL".into()),
        syscall: event.syscall,
        at_attempt: event.attempt,
        at_elapsed_s: event.elapsed_s,
        active_at: event.active,
        source: event.source,
        target: event.target,
        evidence: Evidence {
            message: "28,232 ports in use from 127.0.0.1 to 127.0.0.1:7070;\n\
                      ip_local_port_range 32768-60999 holds 28,232"
                .into(),
            facts: Default::default(),
        },
        remedy: "add source IPs with --source 127.0.0.2-127.0.0.9".into(),
    }
}

const RUNNING: Controls = Controls {
    paused: false,
    rate_factor: 1.0,
};

/// The buffer as text, one line per row, trailing blanks cut.
fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn draw(width: u16, height: u16, view: &View) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| render(frame, view)).unwrap();
    text(terminal.backend().buffer())
}

/// Renders a fixture at a size with the given view state.
struct Case {
    spec: Spec,
    sources: Vec<String>,
    limit: bool,
    controls: Controls,
    ui: UiState,
}

impl Case {
    fn new(spec: Spec) -> Case {
        let sources = sources(spec.sources);
        Case {
            spec,
            sources,
            limit: false,
            controls: RUNNING,
            ui: UiState::default(),
        }
    }

    fn draw(&self, width: u16, height: u16) -> String {
        let (snapshot, history) = run(&self.spec);
        let limit = self.limit.then(|| first_limit(&snapshot));
        let context = context(&self.spec, self.sources.clone());
        let host = host();
        let view = View {
            context: &context,
            snapshot: &snapshot,
            first_limit: limit.as_ref(),
            host: &host,
            controls: self.controls,
            history: &history,
            ui: &self.ui,
        };
        draw(width, height, &view)
    }
}

fn limited() -> Spec {
    Spec {
        cap: Some(28_232),
        seconds: 40,
        ..Spec::default()
    }
}

#[test]
fn mid_run_no_limit_80x24() {
    let screen = Case::new(Spec::default()).draw(80, 24);
    assert!(screen.contains("no failures yet"), "{screen}");
    assert!(screen.contains("30s / 1m00s"), "{screen}");
    assert!(!screen.contains("FIRST LIMIT"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn first_limit_banner_120x40() {
    let mut case = Case::new(limited());
    case.limit = true;
    let screen = case.draw(120, 40);
    assert!(
        screen.contains("FIRST LIMIT ephemeral ports exhausted at attempt 28,233"),
        "{screen}"
    );
    assert!(
        screen.contains("fix: add source IPs with --source 127.0.0.2-127.0.0.9"),
        "{screen}"
    );
    // The evidence's newline is folded: one line.
    assert!(
        screen.contains("127.0.0.1:7070; ip_local_port_range"),
        "{screen}"
    );
    assert!(screen.contains("port_exhaustion"), "{screen}");
    assert!(screen.contains("SYN retransmit"), "{screen}");
    assert!(screen.contains("s stalled"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn first_limit_banner_80x24() {
    let mut case = Case::new(limited());
    case.limit = true;
    let screen = case.draw(80, 24);
    assert!(screen.contains("fix: add source IPs"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn limit_before_its_evidence_is_named_from_the_event() {
    // The coordinator classifies the limit a moment later: the raw event
    // already names the kind.
    let screen = Case::new(limited()).draw(100, 30);
    assert!(
        screen.contains("FIRST LIMIT ephemeral ports exhausted at attempt 28,233"),
        "{screen}"
    );
    assert!(screen.contains("connect EADDRNOTAVAIL"), "{screen}");
}

#[test]
fn many_sources_scrolled_100x30() {
    let mut case = Case::new(Spec {
        sources: 64,
        ..Spec::default()
    });
    case.ui.source_scroll = 10;
    let screen = case.draw(100, 30);
    assert!(screen.contains("Sources 11–"), "{screen}");
    assert!(screen.contains("of 64"), "{screen}");
    assert!(screen.contains("127.0.0.11 "), "{screen}");
    assert!(!screen.contains("127.0.0.10 "), "scrolled past: {screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn scrolling_past_the_end_shows_the_last_page() {
    let mut case = Case::new(Spec {
        sources: 64,
        seconds: 3,
        ..Spec::default()
    });
    case.ui.source_scroll = 1_000;
    let screen = case.draw(100, 30);
    assert!(screen.contains("of 64"), "{screen}");
    assert!(screen.contains("127.0.0.64 "), "{screen}");
}

#[test]
fn tiny_terminal_gets_the_compact_view() {
    let mut case = Case::new(limited());
    case.limit = true;
    case.controls.paused = true;
    let screen = case.draw(40, 10);
    assert!(
        screen.contains("LIMIT ephemeral ports exhausted"),
        "{screen}"
    );
    assert!(screen.contains("PAUSED"), "{screen}");
    assert!(!screen.contains("Host"), "no panels: {screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn echo_mode_shows_rtt_with_kernel_chosen_source_paused() {
    let mut case = Case::new(Spec {
        echo: true,
        seconds: 12,
        rate: 500,
        ..Spec::default()
    });
    case.sources = Vec::new();
    case.controls = Controls {
        paused: true,
        rate_factor: 1.1,
    };
    let screen = case.draw(100, 32);
    assert!(screen.contains("rtt"), "{screen}");
    assert!(screen.contains("(kernel-chosen)"), "{screen}");
    assert!(screen.contains("PAUSED"), "{screen}");
    assert!(screen.contains("(×1.10)"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn help_overlay_80x24() {
    let mut case = Case::new(Spec::default());
    case.ui.help = true;
    let screen = case.draw(80, 24);
    assert!(
        screen.contains("pause / resume opening connections"),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn before_the_first_second() {
    let context = context(&Spec::default(), sources(2));
    let snapshot = Aggregator::new(2, 100).snapshot(
        Duration::from_millis(300),
        Phase::Opening,
        100.0,
        String::new,
        false,
    );
    let history = History::default();
    let view = View {
        context: &context,
        snapshot: &snapshot,
        first_limit: None,
        host: &HostPanel::default(),
        controls: RUNNING,
        history: &history,
        ui: &UiState::default(),
    };
    let screen = draw(80, 24, &view);
    assert!(screen.contains("waiting for the first second"), "{screen}");
    assert!(screen.contains("0s / 1m00s"), "{screen}");
}

#[test]
fn rendering_never_panics_at_any_size() {
    let spec = Spec {
        sources: 40,
        seconds: 35,
        echo: true,
        ..limited()
    };
    let (snapshot, history) = run(&spec);
    let limit = first_limit(&snapshot);
    let context = context(&spec, sources(spec.sources));
    let host = host();
    let empty_host = HostPanel::default();
    let sizes = (1..=24).chain((25..=200).step_by(7)).chain([200]);
    for width in sizes {
        for height in (1..=20).chain((21..=60).step_by(3)).chain([60]) {
            for (help, scroll, limit, host) in [
                (false, 0, Some(&limit), &host),
                (true, 500, None, &empty_host),
            ] {
                let ui = UiState {
                    help,
                    source_scroll: scroll,
                };
                let view = View {
                    context: &context,
                    snapshot: &snapshot,
                    first_limit: limit,
                    host,
                    controls: RUNNING,
                    history: &history,
                    ui: &ui,
                };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    draw(width, height, &view)
                }));
                assert!(result.is_ok(), "panicked at {width}×{height} help={help}");
            }
        }
    }
}

#[test]
fn view_inputs_change_the_view_and_actions_pass_through() {
    let mut ui = UiState::default();
    assert_eq!(
        apply_input(&mut ui, Input::Act(Action::RateUp), 1),
        Some(Action::RateUp)
    );
    assert_eq!(apply_input(&mut ui, Input::ToggleHelp, 1), None);
    assert!(ui.help);
    apply_input(&mut ui, Input::CloseHelp, 1);
    assert!(!ui.help);
    apply_input(&mut ui, Input::Scroll(-1), 64);
    assert_eq!(ui.source_scroll, 0);
    apply_input(&mut ui, Input::Scroll(10), 64);
    assert_eq!(ui.source_scroll, 10);
    apply_input(&mut ui, Input::Scroll(100), 64);
    assert_eq!(ui.source_scroll, 63);
    apply_input(&mut ui, Input::ScrollTop, 64);
    assert_eq!(ui.source_scroll, 0);
    apply_input(&mut ui, Input::ScrollBottom, 64);
    assert_eq!(ui.source_scroll, 63);
}
