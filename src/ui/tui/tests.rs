//! Whole-screen rendering tests: fixed runs built with the real
//! [`Aggregator`], drawn into a `TestBackend` and compared as text with
//! insta snapshots (under `snapshots/`), plus a no-panic sweep over sizes.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use super::*;
use ratatui::layout::Rect;

use crate::model::{Evidence, FailureEvent, LimitKind, thousands};
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
        unread: None,
        generator: None,
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
        host: None,
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

/// ceiling's own CPU holding the rate down shows in the Limits panel.
#[test]
fn a_busy_generator_is_said_in_the_limits_panel() {
    let spec = Spec::default();
    let (snapshot, history) = run(&spec);
    let context = context(&spec, Vec::new());
    let host = HostPanel {
        generator: Some(crate::model::GeneratorBottleneck {
            seconds: 11,
            cores_used: 0.1,
            cores_available: 0.1,
            achieved_ratio: 0.08,
            message: String::new(),
        }),
        ..host()
    };
    let ui = UiState::default();
    let view = View {
        context: &context,
        snapshot: &snapshot,
        first_limit: None,
        host: &host,
        controls: RUNNING,
        history: &history,
        ui: &ui,
    };
    let screen = draw(120, 40, &view);
    assert!(screen.contains("generator busy"), "{screen}");
    assert!(screen.contains("0.10/0.10 cores"), "{screen}");
    assert!(!screen.contains("no failures yet"), "{screen}");
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

/// A remedy long enough to wrap at every width.
const LONG_REMEDY: &str = "raise the soft fd limit (hard is 1048576): drop --fd-limit or \
    `ulimit -n 1048576`; beyond the hard limit add --processes 4 (each worker process has \
    its own fd table) or raise the hard limit in /etc/security/limits.conf";

/// Every panel shown on `screen` with its title and inner rows, found by
/// its top-left corner.
fn panels(screen: &str) -> Vec<(String, Vec<String>)> {
    let grid: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let at = |y: usize, x: usize| grid.get(y).and_then(|row| row.get(x)).copied();
    let mut found = Vec::new();
    for (y, row) in grid.iter().enumerate() {
        for (x, &c) in row.iter().enumerate() {
            if c != '┌' {
                continue;
            }
            let Some(right) = (x + 1..row.len()).find(|&i| row[i] == '┐') else {
                continue;
            };
            let title: String = row[x + 1..right].iter().collect();
            let title = title.trim_matches('─').trim().to_string();
            let inner = (y + 1..grid.len())
                .take_while(|&r| at(r, x) == Some('│'))
                .map(|r| {
                    (x + 1..right)
                        .map(|i| at(r, i).unwrap_or(' '))
                        .collect::<String>()
                })
                .collect();
            found.push((title, inner));
        }
    }
    found
}

/// What a state's screens must show whole, wherever they show it.
struct Figures {
    remedy: Option<String>,
    labelled: Vec<(&'static str, String)>,
    latency: Vec<(&'static str, Vec<String>)>,
    limit_counts: Vec<String>,
    /// Per source name: the texts of its row.
    sources: Vec<(String, Vec<String>)>,
}

fn figures(
    spec: &Spec,
    snapshot: &Snapshot,
    limit: Option<&FirstLimit>,
    host: &HostPanel,
) -> Figures {
    let total = &snapshot.total;
    let mut labelled = vec![
        ("active", thousands(snapshot.active())),
        ("established", thousands(total.established)),
        ("attempted", thousands(total.attempted)),
        ("failed", thousands(total.failed)),
        ("peak", thousands(snapshot.peak_active)),
        ("fds", thousands(host.fds_in_use.unwrap())),
        ("tcp", thousands(host.tcp_inuse.unwrap())),
        ("now", thousands(snapshot.active())),
    ];
    labelled.push(("overflows", "+0".into()));
    let connect = crate::stats::percentiles(&total.connect_us);
    let rtt = crate::stats::percentiles(&total.rtt_us);
    let latency = [
        ("p50", connect.p50, rtt.p50),
        ("p90", connect.p90, rtt.p90),
        ("p99", connect.p99, rtt.p99),
        ("p99.9", connect.p999, rtt.p999),
        ("max", connect.max, rtt.max),
    ]
    .into_iter()
    .map(|(label, c, r)| {
        let mut values = vec![view::micros_text(c)];
        if spec.echo {
            values.push(view::micros_text(r));
        }
        (label, values)
    })
    .collect();
    let mut limit_counts: Vec<String> = total
        .failures_by_kind
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| thousands(n))
        .collect();
    let w = &total.warnings;
    for n in [
        w.syn_retransmit_handshakes,
        w.port_search_stall_seconds,
        w.port_search_slow,
        w.echo_unanswered,
    ] {
        limit_counts.push(thousands(n));
    }
    let range = 60999 - 32768 + 1;
    let sources = sources(spec.sources)
        .into_iter()
        .zip(&total.sources)
        .map(|(name, c)| {
            (
                name,
                vec![
                    thousands(c.established),
                    thousands(c.failed),
                    format!("{}/{}", thousands(c.in_use()), thousands(range)),
                    format!("{:.0}%", c.in_use() as f64 * 100.0 / range as f64),
                ],
            )
        })
        .collect();
    Figures {
        remedy: limit.map(|l| l.remedy.clone()),
        labelled,
        latency,
        limit_counts,
        sources,
    }
}

fn no_spaces(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Every number on `screen` is whole: wherever a figure's label shows, the
/// figure follows in full; no token is a thousands number cut on either
/// side; every panel title is whole; the remedy shows whole with the limit.
fn check(screen: &str, f: &Figures) -> Result<(), String> {
    let tokens = |line: &str| -> Vec<String> {
        line.split(|c: char| c.is_whitespace() || "│·()".contains(c))
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    };
    if let Some(remedy) = &f.remedy
        && screen.contains("LIMIT")
        && !no_spaces(screen).contains(&no_spaces(remedy))
    {
        return Err("the remedy is not whole".into());
    }
    for line in screen.lines() {
        for t in tokens(line) {
            let t = t.trim_matches(|c: char| ",;:".contains(c) && !t.starts_with(','));
            let groups: Vec<&str> = t.split(',').collect();
            let numeric = t.contains(',') && t.chars().all(|c| c.is_ascii_digit() || c == ',');
            if t.starts_with(',')
                || (numeric
                    && (groups[0].is_empty()
                        || groups[0].len() > 3
                        || groups[1..].iter().any(|g| g.len() != 3)))
            {
                return Err(format!("{t:?} is a cut number in {line:?}"));
            }
            if t.contains('…') && t.chars().any(|c| c.is_ascii_digit()) {
                return Err(format!("{t:?} is a cut number in {line:?}"));
            }
        }
        // A panel title runs into its border only when cut.
        for (i, _) in line.match_indices('┌') {
            let rest = &line[i + '┌'.len_utf8()..];
            if let Some(end) = rest.find('┐') {
                let top = rest[..end].trim_end_matches('─');
                if !top.is_empty() && !top.ends_with(' ') {
                    return Err(format!("a title is cut: {line:?}"));
                }
            }
        }
    }
    let panels = panels(screen);
    // Lines where labelled figures are looked for: the compact view, or
    // the panels' titles and their rows.
    let mut lines: Vec<String> = Vec::new();
    if panels.is_empty() {
        lines.extend(screen.lines().map(String::from));
    }
    for (title, inner) in panels {
        lines.push(title.clone());
        if title == "Connections" || title == "Host" {
            lines.extend(inner.iter().cloned());
        }
        if title.contains("atency") {
            for line in &inner {
                let t = tokens(line);
                for (i, token) in t.iter().enumerate() {
                    if let Some((_, values)) = f.latency.iter().find(|(l, _)| l == token) {
                        let next = t.get(i + 1);
                        if !next.is_some_and(|n| values.contains(n)) {
                            return Err(format!("latency {token} cut in {line:?}"));
                        }
                    }
                }
            }
        }
        if title.starts_with("Limits") {
            for line in &inner {
                for t in tokens(line) {
                    let time = t
                        .strip_suffix('s')
                        .is_some_and(|n| n.parse::<f64>().is_ok());
                    if t.chars().any(|c| c.is_ascii_digit())
                        && !time
                        && !f.limit_counts.contains(&t)
                    {
                        return Err(format!("limit count {t:?} cut in {line:?}"));
                    }
                }
            }
        }
        if title.starts_with("Sources") || title.contains('/') || title.is_empty() {
            for line in &inner {
                let t = tokens(line);
                let Some((_, texts)) = t.first().and_then(|name| {
                    f.sources.iter().find(|(n, _)| {
                        n == name || name.strip_suffix('…').is_some_and(|p| n.starts_with(p))
                    })
                }) else {
                    continue;
                };
                if t.len() < 2 {
                    return Err(format!("a source row without its count: {line:?}"));
                }
                if let Some(bad) = t[1..].iter().find(|x| !texts.contains(x)) {
                    return Err(format!("source figure {bad:?} cut in {line:?}"));
                }
            }
        }
    }
    // Labelled figures, in panels, titles and the compact view alike.
    for line in &lines {
        let t = tokens(line);
        for (i, token) in t.iter().enumerate() {
            for (label, figure) in &f.labelled {
                if token == label {
                    let next = t.get(i + 1).map(String::as_str);
                    let next = next.map(|n| n.split('/').next().unwrap_or(n));
                    if next != Some(figure.as_str()) {
                        return Err(format!("{label} {figure} not whole in {line:?}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Sizes for the sweeps: every width from the compact view's to 130 at
/// the heights where layouts change, wider ones every 5 columns, and every
/// height at widths around the thresholds.
fn sweep_sizes() -> impl Iterator<Item = (u16, u16)> {
    let widths = (40..=130).chain((135..=200).step_by(5));
    let by_width = widths.flat_map(|w| [10, 16, 18, 24, 40].map(|h| (w, h)));
    let by_height = [59, 60, 80, 119, 120]
        .into_iter()
        .flat_map(|w| (10..=50).map(move |h| (w, h)));
    by_width.chain(by_height)
}

/// Renders `case` (with the long remedy when at a limit) at every sweep
/// size and checks each screen.
fn sweep(case: &Case) {
    let (snapshot, history) = run(&case.spec);
    let limit = case.limit.then(|| FirstLimit {
        remedy: LONG_REMEDY.into(),
        ..first_limit(&snapshot)
    });
    let context = context(&case.spec, case.sources.clone());
    let host = host();
    let view = View {
        context: &context,
        snapshot: &snapshot,
        first_limit: limit.as_ref(),
        host: &host,
        controls: case.controls,
        history: &history,
        ui: &case.ui,
    };
    let figures = figures(&case.spec, &snapshot, limit.as_ref(), &host);
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap();
    for (width, height) in sweep_sizes() {
        terminal.backend_mut().resize(width, height);
        terminal.resize(Rect::new(0, 0, width, height)).unwrap();
        terminal.draw(|frame| render(frame, &view)).unwrap();
        let screen = text(terminal.backend().buffer());
        if let Err(why) = check(&screen, &figures) {
            panic!("{width}×{height}: {why}\n{screen}");
        }
    }
}

#[test]
fn every_size_shows_whole_numbers_while_opening() {
    sweep(&Case::new(Spec::default()));
}

#[test]
fn every_size_shows_whole_numbers_and_the_remedy_at_a_limit() {
    let mut case = Case::new(Spec {
        echo: true,
        ..limited()
    });
    case.limit = true;
    sweep(&case);
}

#[test]
fn every_size_shows_whole_numbers_with_many_sources() {
    let mut case = Case::new(Spec {
        sources: 64,
        ..limited()
    });
    case.limit = true;
    case.ui.source_scroll = 7;
    sweep(&case);
}
