//! Drawing: a pure function from a [`View`] (the latest snapshot, the run's
//! context, host readings, controls, the chart history and the view state)
//! to a frame. Nothing here touches the terminal or the clock, so every
//! screen can be rendered into a `TestBackend` and compared.
//!
//! Layout, top to bottom: a two-line header, the first-limit banner (when a
//! limit was hit), the body and a one-line footer. The body's left column
//! holds the big numbers, connect latency and the host; the right column the
//! active-connections chart, connects per second, the limits and the
//! sources. Below [`COMPACT_WIDTH`]×[`COMPACT_HEIGHT`] the body gives way to
//! one compact panel.

use hdrhistogram::Histogram;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Chart, Clear, Dataset, GraphType, Paragraph, Row, Sparkline, Table, Wrap,
};

use super::history::History;
use super::{Controls, HostPanel, RunContext};
use crate::model::{FirstLimit, LimitKind, Percentiles, thousands};
use crate::stats::{self, Phase, Snapshot, SourceCounters};

/// Terminals narrower than this get the compact view.
pub const COMPACT_WIDTH: u16 = 60;
/// Terminals shorter than this get the compact view.
pub const COMPACT_HEIGHT: u16 = 16;

/// Width from which panels add detail columns.
const WIDE: u16 = 120;

/// View state the keys change; not part of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UiState {
    /// The help overlay is shown.
    pub help: bool,
    /// First source row shown in the sources panel (clamped when drawn).
    pub source_scroll: usize,
}

/// Everything one frame shows.
pub struct View<'a> {
    pub context: &'a RunContext,
    pub snapshot: &'a Snapshot,
    /// The classified first limit, with evidence and remedy, once known.
    pub first_limit: Option<&'a FirstLimit>,
    pub host: &'a HostPanel,
    pub controls: Controls,
    pub history: &'a History,
    pub ui: &'a UiState,
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, view: &View) {
    let area = frame.area();
    if area.width < COMPACT_WIDTH || area.height < COMPACT_HEIGHT {
        render_compact(frame, area, view);
    } else {
        render_full(frame, area, view);
    }
    if view.ui.help {
        render_help(frame, area);
    }
}

fn render_full(frame: &mut Frame, area: Rect, view: &View) {
    let banner = banner_lines(view);
    let [header, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(banner.len() as u16),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header_lines(view)), header);
    frame.render_widget(
        Paragraph::new(banner).style(Style::new().fg(Color::White).bg(Color::Red)),
        banner_area,
    );
    frame.render_widget(Paragraph::new(footer_line(view)), footer);

    let left_width = if area.width >= WIDE { 44 } else { 35 };
    let [left, right] =
        Layout::horizontal([Constraint::Length(left_width), Constraint::Min(0)]).areas(body);

    let [numbers, latency, host] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Min(0),
        Constraint::Length(7),
    ])
    .areas(left);
    render_numbers(frame, numbers, view);
    render_latency(frame, latency, view);
    render_host(frame, host, view);

    let limit_lines = limits_lines(view, right.width.saturating_sub(2));
    let limits_height = (limit_lines.len() as u16 + 2).min(body.height / 3).max(3);
    let rate_height = match body.height {
        30.. => 6,
        20.. => 4,
        _ => 3,
    };
    let [chart, rate, limits, sources] = Layout::vertical([
        Constraint::Min(5),
        Constraint::Length(rate_height),
        Constraint::Length(limits_height),
        Constraint::Min(4),
    ])
    .areas(right);
    render_active_chart(frame, chart, view);
    render_rate(frame, rate, view);
    frame.render_widget(Paragraph::new(limit_lines).block(panel("Limits")), limits);
    render_sources(frame, sources, view);
}

fn panel(title: &str) -> Block<'_> {
    Block::bordered().title(Span::styled(
        format!(" {title} "),
        Style::new().add_modifier(Modifier::BOLD),
    ))
}

fn header_lines(view: &View) -> Vec<Line<'static>> {
    let ctx = view.context;
    let snap = view.snapshot;
    let sources = match ctx.source_names.len() {
        0 => "kernel-chosen source".to_string(),
        1 => format!("source {}", ctx.source_names[0]),
        n => format!("{n} sources"),
    };
    let first = Line::from(vec![
        Span::styled("ceiling ", Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(ctx.name.clone(), Style::new().fg(Color::Cyan).bold()),
        Span::raw(format!("  → {}  · {sources}", targets_text(&ctx.targets))),
    ]);
    let elapsed = snap.elapsed.as_secs();
    let bound = match ctx.duration {
        Some(d) => format!(" / {}", duration_text(d.as_secs())),
        None => String::new(),
    };
    let achieved = snap
        .last_row
        .as_ref()
        .map_or(0.0, |row| row.establish_rate_per_s);
    let attempts = snap
        .last_row
        .as_ref()
        .map_or(0.0, |row| row.attempt_rate_per_s);
    let target = if snap.target_rate_per_s > 0.0 {
        format!("{}/s", rate_text(snap.target_rate_per_s))
    } else if snap.phase == Phase::Opening {
        "unpaced".to_string()
    } else {
        // Every attempt has been made: there is no rate to keep.
        "—".to_string()
    };
    let mut second = vec![
        Span::raw(format!("{}{bound}  ", duration_text(elapsed))),
        Span::styled(snap.phase.as_str().to_string(), Style::new().bold()),
        Span::raw(format!(
            "  target {target} · attempts {}/s · established {}/s",
            rate_text(attempts),
            rate_text(achieved)
        )),
    ];
    if (view.controls.rate_factor - 1.0).abs() > 1e-9 {
        second.push(Span::raw(format!(" (×{:.2})", view.controls.rate_factor)));
    }
    if view.controls.paused {
        second.push(Span::raw("  "));
        second.push(Span::styled(
            " PAUSED ",
            Style::new().fg(Color::Black).bg(Color::Yellow).bold(),
        ));
    }
    vec![first, Line::from(second)]
}

/// The first two targets and how many more.
fn targets_text(targets: &[String]) -> String {
    match targets.len() {
        0 => "(no target)".to_string(),
        1 | 2 => targets.join(", "),
        n => format!("{}, {} +{} more", targets[0], targets[1], n - 2),
    }
}

/// The first-limit banner: what, when, the evidence and the remedy. Before
/// the classified limit arrives, the raw event still names the kind.
fn banner_lines(view: &View) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    if let Some(limit) = view.first_limit {
        let mut lines = vec![
            Line::from(vec![
                Span::styled(" FIRST LIMIT ", bold),
                Span::styled(limit.kind.describe().to_string(), bold),
                Span::raw(format!(
                    " at attempt {} · {} active · {}s · {} → {}",
                    thousands(limit.at_attempt),
                    thousands(limit.active_at),
                    decimal1(limit.at_elapsed_s),
                    limit.source,
                    limit.target
                )),
            ]),
            Line::from(format!(
                "   {}{}",
                errno_prefix(limit),
                one_line(&limit.evidence.message)
            )),
        ];
        if !limit.remedy.is_empty() {
            lines.push(Line::from(vec![
                Span::styled("   fix: ", bold),
                Span::raw(one_line(&limit.remedy)),
            ]));
        }
        return lines;
    }
    if let Some(event) = &view.snapshot.total.first_limit {
        let errno = event
            .errno
            .map(|e| {
                crate::model::errno_name(e)
                    .map_or_else(|| format!("errno {e}"), |name| name.to_string())
            })
            .unwrap_or_default();
        let line = format!(
            " FIRST LIMIT {} at attempt {} ({}s): {} {errno}",
            event.kind.describe(),
            thousands(event.attempt),
            decimal1(event.elapsed_s),
            event.syscall
        );
        return vec![Line::styled(line, bold)];
    }
    Vec::new()
}

fn errno_prefix(limit: &FirstLimit) -> String {
    match (&limit.errno_name, limit.errno) {
        (Some(name), _) => format!("{} {name}: ", limit.syscall),
        (None, Some(errno)) => format!("{} errno {errno}: ", limit.syscall),
        (None, None) => format!("{}: ", limit.syscall),
    }
}

/// Newlines and tabs folded to spaces, so a message stays on its line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn footer_line(view: &View) -> Line<'static> {
    let key = Style::new().fg(Color::Black).bg(Color::Gray);
    let pause = if view.controls.paused {
        " resume  "
    } else {
        " pause  "
    };
    let keys: [(&str, &str); 6] = [
        ("q", " stop  "),
        ("p", pause),
        ("+/-", " rate ±10%  "),
        ("↑↓", " sources  "),
        ("h", " help  "),
        ("", ""),
    ];
    let mut spans = vec![Span::raw(" ")];
    for (k, what) in keys.into_iter().filter(|(k, _)| !k.is_empty()) {
        spans.push(Span::styled(format!(" {k} "), key));
        spans.push(Span::raw(what));
    }
    Line::from(spans)
}

fn render_numbers(frame: &mut Frame, area: Rect, view: &View) {
    let snap = view.snapshot;
    let total = &snap.total;
    let planned = if snap.planned_connections > 0 {
        snap.planned_connections
    } else {
        view.context.planned_connections
    };
    let big = Style::new().add_modifier(Modifier::BOLD);
    let row = |label: &str, value: String, style: Style| {
        Line::from(vec![
            Span::raw(format!("{label:<12}")),
            Span::styled(format!("{value:>10}"), style),
        ])
    };
    let failed_style = if total.failed > 0 {
        big.fg(Color::Red)
    } else {
        big
    };
    let mut attempted = row("attempted", thousands(total.attempted), big);
    if planned > 0 {
        attempted.push_span(Span::raw(format!(" / {}", thousands(planned))));
    }
    let lines = vec![
        row("active", thousands(snap.active()), big.fg(Color::Green)),
        row("established", thousands(total.established), big),
        attempted,
        row("failed", thousands(total.failed), failed_style),
        row("peak", thousands(snap.peak_active), big),
    ];
    frame.render_widget(Paragraph::new(lines).block(panel("Connections")), area);
}

/// Latency rows: one column for connect, a second for the echo RTT.
fn render_latency(frame: &mut Frame, area: Rect, view: &View) {
    let block = panel(if view.context.echo {
        "Latency"
    } else {
        "Connect latency"
    });
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    let total = &view.snapshot.total;
    let connect = stats::percentiles(&total.connect_us);
    let rtt = view.context.echo.then(|| stats::percentiles(&total.rtt_us));
    let mut lines = Vec::new();
    let needed = 5 + u16::from(rtt.is_some());
    if inner.height >= needed {
        if rtt.is_some() {
            lines.push(Line::styled(
                format!("{:<6}{:>10}{:>10}", "", "connect", "rtt"),
                Style::new().add_modifier(Modifier::DIM),
            ));
        }
        for (label, pick) in PERCENTILE_ROWS {
            let mut text = format!("{label:<6}{:>10}", latency_text(&connect, pick));
            if let Some(rtt) = &rtt {
                text.push_str(&format!("{:>10}", latency_text(rtt, pick)));
            }
            lines.push(Line::from(text));
        }
    } else {
        // Too short for a table: pack the percentiles onto few lines.
        let pack = |name: &str, p: &Percentiles| {
            let parts: Vec<String> = PERCENTILE_ROWS
                .iter()
                .map(|(label, pick)| format!("{label} {}", latency_text(p, *pick)))
                .collect();
            Line::from(format!("{name}{}", parts.join("  ")))
        };
        lines.push(pack(if rtt.is_some() { "connect " } else { "" }, &connect));
        if let Some(rtt) = &rtt {
            lines.push(pack("rtt ", rtt));
        }
    }
    let used = lines.len() as u16;
    let wrap = inner.height < needed;
    let paragraph = if wrap {
        Paragraph::new(lines).wrap(Wrap { trim: true })
    } else {
        Paragraph::new(lines)
    };
    frame.render_widget(paragraph, inner);
    if wrap || inner.height <= used + 1 {
        return;
    }
    // The rest of the panel: a histogram of connect (then RTT) latency.
    let rest = Rect {
        y: inner.y + used + 1,
        height: inner.height - used - 1,
        ..inner
    };
    let name = if view.context.echo { "connect" } else { "" };
    let mut bars = histogram_lines(name, &total.connect_us, rest.width);
    if view.context.echo {
        bars.extend(histogram_lines("rtt", &total.rtt_us, rest.width));
    }
    frame.render_widget(Paragraph::new(bars), rest);
}

type Pick = fn(&Percentiles) -> u64;

const PERCENTILE_ROWS: [(&str, Pick); 5] = [
    ("p50", |p| p.p50),
    ("p90", |p| p.p90),
    ("p99", |p| p.p99),
    ("p99.9", |p| p.p999),
    ("max", |p| p.max),
];

fn latency_text(p: &Percentiles, pick: Pick) -> String {
    if p.count == 0 {
        "–".to_string()
    } else {
        micros_text(pick(p))
    }
}

/// Decade buckets: upper bound (exclusive) in µs and the label.
const BUCKETS: [(u64, &str); 6] = [
    (100, "<100µs"),
    (1_000, "<1ms"),
    (10_000, "<10ms"),
    (100_000, "<100ms"),
    (1_000_000, "<1s"),
    (u64::MAX, "≥1s"),
];

/// Counts per decade bucket.
pub fn bucket_counts(hist: &Histogram<u64>) -> [u64; BUCKETS.len()] {
    let mut counts = [0; BUCKETS.len()];
    for value in hist.iter_recorded() {
        let v = value.value_iterated_to();
        let i = BUCKETS
            .iter()
            .position(|(upper, _)| v < *upper)
            .unwrap_or(BUCKETS.len() - 1);
        counts[i] += value.count_at_value();
    }
    counts
}

/// One line per bucket between the lowest and highest non-empty one.
fn histogram_lines(name: &str, hist: &Histogram<u64>, width: u16) -> Vec<Line<'static>> {
    let counts = bucket_counts(hist);
    let (Some(lo), Some(hi)) = (
        counts.iter().position(|&c| c > 0),
        counts.iter().rposition(|&c| c > 0),
    ) else {
        return Vec::new();
    };
    let max = counts[lo..=hi].iter().copied().max().unwrap_or(1).max(1);
    let prefix = if name.is_empty() {
        String::new()
    } else {
        format!("{name:<8}")
    };
    let label_width = 7 + prefix.len();
    let bar_width = usize::from(width).saturating_sub(label_width + 8);
    (lo..=hi)
        .map(|i| {
            let len = (counts[i] as f64 / max as f64 * bar_width as f64).ceil() as usize;
            Line::from(vec![
                Span::styled(
                    format!("{prefix}{:<7}", BUCKETS[i].1),
                    Style::new().add_modifier(Modifier::DIM),
                ),
                Span::styled("█".repeat(len.min(bar_width)), Style::new().fg(Color::Cyan)),
                Span::raw(format!(" {}", si(counts[i]))),
            ])
        })
        .collect()
}

fn render_host(frame: &mut Frame, area: Rect, view: &View) {
    let host = view.host;
    let width = usize::from(area.width.saturating_sub(2 + 6));
    let dim = Style::new().add_modifier(Modifier::DIM);
    let label = |text: &str| Span::styled(format!("{text:<6}"), dim);
    let opt = |v: Option<u64>| v.map_or_else(|| "?".to_string(), thousands);
    let fds = fitting(
        width,
        [
            format!(
                "{} / {} (hard {})",
                opt(host.fds_in_use),
                limit_text(host.fd_soft),
                limit_text(host.fd_hard)
            ),
            format!(
                "{} / {} (hard {})",
                opt(host.fds_in_use),
                short_limit_text(host.fd_soft),
                short_limit_text(host.fd_hard)
            ),
        ],
    );
    let mut lines = vec![Line::from(vec![label("fds"), Span::raw(fds)])];
    match host.port_range {
        Some((lo, hi)) => {
            lines.push(Line::from(vec![
                label("ports"),
                Span::raw(format!("{lo}–{hi} ({})", thousands(range_size(lo, hi)))),
            ]));
            lines.push(Line::from(vec![
                label(""),
                Span::raw(port_use_text(view, range_size(lo, hi))),
            ]));
        }
        None => lines.push(Line::from(vec![label("ports"), Span::raw("?")])),
    }
    let tcp = fitting(
        width,
        [
            format!(
                "{} in use · {} TIME_WAIT",
                opt(host.tcp_inuse),
                opt(host.tcp_time_wait)
            ),
            format!(
                "{} · TIME_WAIT {}",
                opt(host.tcp_inuse),
                opt(host.tcp_time_wait)
            ),
        ],
    );
    lines.push(Line::from(vec![label("tcp"), Span::raw(tcp)]));
    let drops = match host.listen_drops_delta {
        Some(0) => Span::raw("+0"),
        Some(n) => Span::styled(format!("+{}", thousands(n)), Style::new().fg(Color::Red)),
        None => Span::raw("?"),
    };
    lines.push(Line::from(vec![
        Span::styled("listen overflows ", dim),
        drops,
    ]));
    frame.render_widget(Paragraph::new(lines).block(panel("Host")), area);
}

/// The first text that fits `width` columns, else the last (shortest) one.
fn fitting<const N: usize>(width: usize, texts: [String; N]) -> String {
    let last = texts.len() - 1;
    texts
        .into_iter()
        .enumerate()
        .find(|(i, t)| *i == last || t.chars().count() <= width)
        .map(|(_, t)| t)
        .unwrap_or_default()
}

/// How much of the port range the sources use: the one source, or the
/// busiest one and the average when there are several.
fn port_use_text(view: &View, range: u64) -> String {
    let sources = source_rows(view);
    let pct = |n: u64| n as f64 * 100.0 / range.max(1) as f64;
    match sources.as_slice() {
        [] => String::new(),
        [(_, counters)] => format!(
            "{} in use ({:.0}%)",
            thousands(counters.in_use()),
            pct(counters.in_use())
        ),
        many => {
            let (name, busiest) = many
                .iter()
                .max_by_key(|(_, c)| c.in_use())
                .expect("not empty");
            let sum: u64 = many.iter().map(|(_, c)| c.in_use()).sum();
            format!(
                "max {:.0}% ({name}) avg {:.0}%",
                pct(busiest.in_use()),
                pct(sum) / many.len() as f64
            )
        }
    }
}

fn range_size(lo: u16, hi: u16) -> u64 {
    u64::from(hi.saturating_sub(lo)) + 1
}

fn limit_text(limit: u64) -> String {
    if limit == 0 || limit == u64::MAX || limit == libc::RLIM_INFINITY {
        "∞".to_string()
    } else {
        thousands(limit)
    }
}

/// A limit in at most five columns: exact below 100,000, else 1.05M, 524k.
fn short_limit_text(limit: u64) -> String {
    match limit {
        0 | u64::MAX => "∞".to_string(),
        0..100_000 => thousands(limit),
        100_000..1_000_000 => format!("{:.0}k", limit as f64 / 1e3),
        1_000_000..10_000_000 => format!("{:.2}M", limit as f64 / 1e6),
        10_000_000..100_000_000 => format!("{:.1}M", limit as f64 / 1e6),
        _ => si(limit),
    }
}

fn render_active_chart(frame: &mut Frame, area: Rect, view: &View) {
    let points: Vec<(f64, f64)> = view
        .history
        .iter()
        .map(|p| (p.elapsed_s as f64, p.active as f64))
        .collect();
    let mut title = format!(
        "Active connections · now {}",
        thousands(view.snapshot.active())
    );
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        frame.render_widget(
            Paragraph::new("waiting for the first second…").block(panel(&title)),
            area,
        );
        return;
    };
    let x0 = first.0;
    let x1 = last.0.max(x0 + 1.0);
    // A short panel spends no rows on the time axis: the span goes in the
    // title instead.
    let x_labels = area.height >= 9;
    if !x_labels {
        title.push_str(&format!(
            " · {}–{}",
            duration_text(x0 as u64),
            duration_text(x1 as u64)
        ));
    }
    let block = panel(&title);
    let y_max = nice_ceiling(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let dataset = Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::new().fg(Color::Green))
        .data(&points);
    let chart = Chart::new(vec![dataset])
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .labels(if x_labels {
                    vec![duration_text(x0 as u64), duration_text(x1 as u64)]
                } else {
                    Vec::new()
                })
                .style(Style::new().add_modifier(Modifier::DIM)),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels(["0".to_string(), si(y_max as u64)])
                .style(Style::new().add_modifier(Modifier::DIM)),
        );
    frame.render_widget(chart, area);
}

/// Connects per second, newest at the right, scaled so that the highest
/// achieved or target rate in view fills the panel.
fn render_rate(frame: &mut Frame, area: Rect, view: &View) {
    let width = usize::from(area.width.saturating_sub(2));
    let points: Vec<_> = view.history.last(width).collect();
    let achieved = view
        .snapshot
        .last_row
        .as_ref()
        .map_or(0.0, |row| row.establish_rate_per_s);
    let top = points
        .iter()
        .map(|p| p.establish_rate_per_s.max(p.target_rate_per_s))
        .fold(0.0, f64::max);
    let mut title = format!("Connects/s {}", rate_text(achieved));
    if view.snapshot.target_rate_per_s > 0.0 {
        title.push_str(&format!(
            " of {}",
            rate_text(view.snapshot.target_rate_per_s)
        ));
    }
    title.push_str(&format!(" · top {}", rate_text(top)));
    let data: Vec<u64> = points
        .iter()
        .map(|p| p.establish_rate_per_s.round() as u64)
        .collect();
    let sparkline = Sparkline::default()
        .block(panel(&title))
        .style(Style::new().fg(Color::Cyan))
        .max(top.ceil().max(1.0) as u64)
        .data(data);
    frame.render_widget(sparkline, area);
}

/// Failures by kind (count, time of first occurrence) and the warnings.
fn limits_lines(view: &View, width: u16) -> Vec<Line<'static>> {
    let total = &view.snapshot.total;
    let wide = width + 2 >= WIDE - 44;
    let name_width = LimitKind::ALL
        .into_iter()
        .filter(|k| total.failures_by_kind[k.index()] > 0)
        .map(|k| k.as_str().len())
        .chain([14])
        .max()
        .unwrap_or(14)
        + 1;
    let mut lines = Vec::new();
    for kind in LimitKind::ALL {
        let count = total.failures_by_kind[kind.index()];
        if count == 0 {
            continue;
        }
        let first = total
            .groups
            .iter()
            .filter(|((k, _, _), _)| *k == kind)
            .min_by(|a, b| a.1.first.elapsed_s.total_cmp(&b.1.first.elapsed_s))
            .map(|(_, group)| group);
        let style = if kind.is_limit() {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        let mut spans = vec![
            Span::styled(format!("{:<name_width$}", kind.as_str()), style),
            Span::raw(format!("{:>9}", thousands(count))),
        ];
        if let Some(group) = first {
            spans.push(Span::raw(format!(
                "  first {}s",
                decimal1(group.first.elapsed_s)
            )));
            if wide {
                let errno = group
                    .first
                    .errno
                    .map(|e| {
                        crate::model::errno_name(e)
                            .map_or_else(|| format!("errno {e}"), str::to_string)
                    })
                    .unwrap_or_default();
                spans.push(Span::styled(
                    format!("  {} {errno}", group.first.syscall),
                    Style::new().add_modifier(Modifier::DIM),
                ));
            }
        }
        lines.push(Line::from(spans));
    }
    let warnings = &total.warnings;
    let warn = Style::new().fg(Color::Yellow);
    if warnings.syn_retransmit_handshakes > 0 {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<name_width$}", "SYN retransmit"), warn),
            Span::raw(format!(
                "{:>9}  handshakes",
                thousands(warnings.syn_retransmit_handshakes)
            )),
        ]));
    }
    if warnings.port_search_stall_seconds > 0 {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<name_width$}", "port search"), warn),
            Span::raw(format!(
                "{:>9}  s stalled{}",
                thousands(warnings.port_search_stall_seconds),
                if wide {
                    format!(" ({} slow connect())", thousands(warnings.port_search_slow))
                } else {
                    String::new()
                }
            )),
        ]));
    }
    if warnings.echo_unanswered > 0 {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<name_width$}", "echo unanswered"), warn),
            Span::raw(format!("{:>9}", thousands(warnings.echo_unanswered))),
        ]));
    }
    if lines.is_empty() {
        lines.push(Line::styled(
            "no failures yet",
            Style::new().add_modifier(Modifier::DIM),
        ));
    }
    lines
}

/// The source rows: one per named source, or one for the kernel's choice.
fn source_rows(view: &View) -> Vec<(String, SourceCounters)> {
    let sources = &view.snapshot.total.sources;
    let names = &view.context.source_names;
    if names.is_empty() {
        let total = &view.snapshot.total;
        let counters = sources.first().copied().unwrap_or(SourceCounters {
            attempted: total.attempted,
            established: total.established,
            failed: total.failed,
            closed: total.closed_by_driver + total.closed_by_server,
        });
        return vec![("(kernel-chosen)".to_string(), counters)];
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), sources.get(i).copied().unwrap_or_default()))
        .collect()
}

/// The first row shown when `scroll` is asked for and `visible` rows fit.
pub fn clamp_scroll(scroll: usize, rows: usize, visible: usize) -> usize {
    scroll.min(rows.saturating_sub(visible))
}

fn render_sources(frame: &mut Frame, area: Rect, view: &View) {
    let rows = source_rows(view);
    let visible = usize::from(area.height.saturating_sub(3)).max(1);
    let offset = clamp_scroll(view.ui.source_scroll, rows.len(), visible);
    let available = view.host.port_range.map(|(lo, hi)| range_size(lo, hi));
    let title = if rows.len() > visible {
        format!(
            "Sources {}–{} of {} (↑↓)",
            offset + 1,
            (offset + visible).min(rows.len()),
            rows.len()
        )
    } else {
        "Sources".to_string()
    };
    let wide = area.width >= WIDE - 44;
    let header = Row::new(
        ["source", "established", "failed", "ports in use"]
            .into_iter()
            .map(String::from)
            .chain(wide.then(|| "of range".to_string())),
    )
    .style(Style::new().add_modifier(Modifier::DIM));
    let body = rows.iter().skip(offset).take(visible).map(|(name, c)| {
        let failed = if c.failed > 0 {
            Span::styled(thousands(c.failed), Style::new().fg(Color::Red))
        } else {
            Span::raw("0")
        };
        let mut cells = vec![
            Line::from(name.clone()),
            Line::from(thousands(c.established)).right_aligned(),
            Line::from(failed).right_aligned(),
            Line::from(match available {
                Some(n) => format!("{}/{}", thousands(c.in_use()), thousands(n)),
                None => thousands(c.in_use()),
            })
            .right_aligned(),
        ];
        if wide {
            cells.push(
                Line::from(match available {
                    Some(n) => format!("{:.0}%", c.in_use() as f64 * 100.0 / n as f64),
                    None => "?".to_string(),
                })
                .right_aligned(),
            );
        }
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Min(9),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Length(13),
    ];
    if wide {
        widths.push(Constraint::Length(8));
    }
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .block(panel(&title));
    frame.render_widget(table, area);
}

/// One panel for small terminals: the big numbers and the limit line.
fn render_compact(frame: &mut Frame, area: Rect, view: &View) {
    let snap = view.snapshot;
    let total = &snap.total;
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut status = format!(
        "{} {} {}",
        view.context.name,
        duration_text(snap.elapsed.as_secs()),
        snap.phase.as_str()
    );
    if view.controls.paused {
        status.push_str(" PAUSED");
    }
    let limit = match (view.first_limit, &total.first_limit) {
        (Some(limit), _) => Line::styled(
            format!(
                "LIMIT {} at {}: {}",
                limit.kind.describe(),
                thousands(limit.at_attempt),
                one_line(&limit.remedy)
            ),
            bold.fg(Color::Red),
        ),
        (None, Some(event)) => Line::styled(
            format!(
                "LIMIT {} at {}",
                event.kind.describe(),
                thousands(event.attempt)
            ),
            bold.fg(Color::Red),
        ),
        (None, None) => Line::raw("no limit yet"),
    };
    let lines = vec![
        Line::styled(status, bold),
        Line::from(vec![
            Span::raw("active "),
            Span::styled(thousands(snap.active()), bold.fg(Color::Green)),
            Span::raw(format!("  peak {}", thousands(snap.peak_active))),
        ]),
        Line::raw(format!(
            "established {}  failed {}",
            thousands(total.established),
            thousands(total.failed)
        )),
        Line::raw(format!(
            "attempted {}/{}",
            thousands(total.attempted),
            thousands(snap.planned_connections)
        )),
        limit,
        Line::styled(
            "q stop  p pause  +/- rate  h help",
            Style::new().add_modifier(Modifier::DIM),
        ),
    ];
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), area);
}

const HELP: &[(&str, &str)] = &[
    ("q  Esc  Ctrl-C", "stop the run (results are written)"),
    ("p", "pause / resume opening connections"),
    ("+  =", "raise the connect rate by 10%"),
    ("-", "lower the connect rate by 10%"),
    ("↑ ↓  j k", "scroll the sources"),
    ("PgUp PgDn", "scroll the sources a page"),
    ("h  ?", "show / hide this help"),
];

fn render_help(frame: &mut Frame, area: Rect) {
    let width = area.width.min(56);
    let height = area.height.min(HELP.len() as u16 + 4);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:<16}"), Style::new().bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::styled(
        "Esc or h closes this help",
        Style::new().add_modifier(Modifier::DIM),
    ));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(panel("Keys")), popup);
}

/// Short counts for axes and bars: 950, 12.3k, 1.5M.
pub fn si(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..10_000 => format!("{:.1}k", n as f64 / 1e3),
        10_000..1_000_000 => format!("{:.0}k", n as f64 / 1e3),
        1_000_000..10_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.0}M", n as f64 / 1e6),
    }
}

/// A rate per second, whole numbers with separators.
fn rate_text(rate: f64) -> String {
    thousands(rate.max(0.0).round() as u64)
}

fn decimal1(x: f64) -> String {
    format!("{x:.1}")
}

/// Seconds as 45s, 12m05s, 1h02m03s.
pub fn duration_text(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// Microseconds with about three significant figures: 850µs, 1.25ms, 2.50s.
pub fn micros_text(us: u64) -> String {
    let ms = us as f64 / 1e3;
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..10_000 => format!("{ms:.2}ms"),
        10_000..100_000 => format!("{ms:.1}ms"),
        100_000..1_000_000 => format!("{ms:.0}ms"),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// A round axis top at or above `x`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(x: f64) -> f64 {
    if x <= 1.0 {
        return 1.0;
    }
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&top| top >= x)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(28_232), "28,232");
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(si(950), "950");
        assert_eq!(si(12_345), "12k");
        assert_eq!(si(1_500_000), "1.5M");
        assert_eq!(duration_text(45), "45s");
        assert_eq!(duration_text(725), "12m05s");
        assert_eq!(duration_text(3723), "1h02m03s");
        assert_eq!(micros_text(850), "850µs");
        assert_eq!(micros_text(1_250), "1.25ms");
        assert_eq!(micros_text(2_500_000), "2.50s");
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(28_232.0), 50_000.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
    }

    #[test]
    fn buckets_split_at_decades() {
        let mut hist = stats::new_histogram();
        for us in [50, 99, 100, 999, 5_000, 2_000_000] {
            stats::record_us(&mut hist, us);
        }
        assert_eq!(bucket_counts(&hist), [2, 2, 1, 0, 0, 1]);
    }

    #[test]
    fn scroll_stays_within_the_rows() {
        assert_eq!(clamp_scroll(0, 64, 5), 0);
        assert_eq!(clamp_scroll(10, 64, 5), 10);
        assert_eq!(clamp_scroll(100, 64, 5), 59);
        assert_eq!(clamp_scroll(3, 2, 5), 0);
    }
}
