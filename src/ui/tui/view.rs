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
//!
//! At every size a number is shown whole or not at all: a panel, a column
//! or a detail that does not fit is left out, a title or a line picks a
//! shorter form. The banner wraps, and its remedy is never cut.

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
    let width = usize::from(area.width);
    let banner_room = area.height.saturating_sub(HEADER + FOOTER + MIN_BODY);
    let mut banner = banner_lines(view, width, usize::from(banner_room));
    banner.truncate(usize::from(area.height.saturating_sub(HEADER + FOOTER)));
    let [header, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(HEADER),
        Constraint::Length(banner.len() as u16),
        Constraint::Min(0),
        Constraint::Length(FOOTER),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header_lines(view, width)), header);
    frame.render_widget(
        Paragraph::new(banner).style(Style::new().fg(Color::White).bg(Color::Red)),
        banner_area,
    );
    frame.render_widget(Paragraph::new(footer_line(view, width)), footer);

    let left_width = if area.width >= WIDE { 44 } else { 35 };
    let [left, right] =
        Layout::horizontal([Constraint::Length(left_width), Constraint::Min(0)]).areas(body);

    // A panel too short for its content is left out, never cut: the
    // numbers first, then the host, then latency.
    // Request mode adds five rows: requests/s, in flight, queued,
    // rejects, errors.
    let numbers_rows = if view.snapshot.total.requests.is_some() {
        12
    } else {
        7
    };
    let numbers_height = left.height.min(numbers_rows);
    let host_height = if left.height >= numbers_height + 7 {
        7
    } else {
        0
    };
    let latency_height = visible(left.height - numbers_height - host_height, 3);
    // Rows too few for latency go to the host panel.
    let host_height = match (latency_height, host_height) {
        (0, 1..) => left.height - numbers_height,
        _ => host_height,
    };
    let [numbers, latency, host] = column(
        left,
        [visible(numbers_height, 3), latency_height, host_height],
    );
    render_numbers(frame, numbers, view);
    render_latency(frame, latency, view);
    render_host(frame, host, view);

    let limit_lines = limits_lines(view, usize::from(right.width.saturating_sub(2)));
    let limits_want = (limit_lines.len() as u16 + 2).min(body.height / 3).max(3);
    let rate_want = match body.height {
        30.. => 6,
        20.. => 4,
        _ => 3,
    };
    // Each panel in order of importance takes its least height while rows
    // are left; the chart and the sources share what remains.
    let mut rows = right.height;
    let mut take = |least: u16| {
        if least <= rows {
            rows -= least;
            least
        } else {
            0
        }
    };
    let limits_height = take(limits_want);
    let chart_least = take(5);
    let sources_least = take(4);
    let rate_height = take(rate_want);
    let constraint = |least: u16| match least {
        0 => Constraint::Length(0),
        n => Constraint::Min(n),
    };
    let [chart, rate, limits, sources] = Layout::vertical([
        constraint(chart_least),
        Constraint::Length(rate_height),
        Constraint::Length(limits_height),
        constraint(sources_least),
    ])
    .areas(right);
    render_active_chart(frame, chart, view);
    render_rate(frame, rate, view);
    if !limits.is_empty() {
        frame.render_widget(Paragraph::new(limit_lines).block(panel("Limits")), limits);
    }
    render_sources(frame, sources, view);
}

/// Rows of the header and the footer.
const HEADER: u16 = 2;
const FOOTER: u16 = 1;
/// Rows the banner leaves to the panels when it can do without them.
const MIN_BODY: u16 = 8;

/// `height`, or 0 (hidden) when it is below `least`.
fn visible(height: u16, least: u16) -> u16 {
    if height >= least { height } else { 0 }
}

/// `area` cut into rows of the given heights, top to bottom.
fn column<const N: usize>(area: Rect, heights: [u16; N]) -> [Rect; N] {
    let mut y = area.y;
    heights.map(|h| {
        let h = h.min(area.bottom().saturating_sub(y));
        let rect = Rect {
            y,
            height: h,
            ..area
        };
        y += h;
        rect
    })
}

fn panel(title: &str) -> Block<'_> {
    Block::bordered().title(Span::styled(
        format!(" {title} "),
        Style::new().add_modifier(Modifier::BOLD),
    ))
}

fn header_lines(view: &View, width: usize) -> Vec<Line<'static>> {
    let ctx = view.context;
    let snap = view.snapshot;
    let sources = match ctx.source_names.len() {
        0 => "kernel-chosen source".to_string(),
        1 => format!("source {}", ctx.source_names[0]),
        n => format!("{n} sources"),
    };
    let name = || {
        vec![
            Span::styled("ceiling ", Style::new().add_modifier(Modifier::BOLD)),
            Span::styled(ctx.name.clone(), Style::new().fg(Color::Cyan).bold()),
        ]
    };
    let with = |extra: String| {
        let mut spans = name();
        spans.push(Span::raw(extra));
        spans
    };
    let first = fit_spans(
        width,
        vec![
            with(format!("  → {}  · {sources}", targets_text(&ctx.targets))),
            with(format!("  → {}", targets_text(&ctx.targets))),
            name(),
        ],
    );
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
    let mut tail = Vec::new();
    if (view.controls.rate_factor - 1.0).abs() > 1e-9 {
        tail.push(Span::raw(format!(" (×{:.2})", view.controls.rate_factor)));
    }
    if view.controls.paused {
        tail.push(Span::raw("  "));
        tail.push(Span::styled(
            " PAUSED ",
            Style::new().fg(Color::Black).bg(Color::Yellow).bold(),
        ));
    }
    let second = |time: String, rates: String| {
        let mut spans = vec![
            Span::raw(format!("{time}  ")),
            Span::styled(snap.phase.as_str().to_string(), Style::new().bold()),
            Span::raw(rates),
        ];
        spans.extend(tail.iter().cloned());
        spans
    };
    let full_time = format!("{}{bound}", duration_text(elapsed));
    // Request mode: the rate that matters is of requests (the pool's
    // connects are over once it is open).
    if let Some(r) = snap.total.requests.as_deref() {
        let sent = snap
            .last_row
            .as_ref()
            .and_then(|row| row.requests.as_ref())
            .map_or(0.0, |row| row.sent_per_s);
        let requests = if snap.target_rate_per_s > 0.0 {
            format!(
                "  requests {}/s of {}/s",
                rate_text(sent),
                rate_text(snap.target_rate_per_s)
            )
        } else {
            format!("  requests {}/s", rate_text(sent))
        };
        let queue = format!(
            " · queued {} · in flight {}",
            thousands(r.queue_depth()),
            thousands(r.in_flight())
        );
        let second = fit_spans(
            width,
            vec![
                second(full_time.clone(), format!("{requests}{queue}")),
                second(full_time, requests.clone()),
                second(duration_text(elapsed), requests),
                second(duration_text(elapsed), String::new()),
            ],
        );
        return vec![first, second];
    }
    let second = fit_spans(
        width,
        vec![
            second(
                full_time.clone(),
                format!(
                    "  target {target} · attempts {}/s · established {}/s",
                    rate_text(attempts),
                    rate_text(achieved)
                ),
            ),
            second(
                full_time.clone(),
                format!("  target {target} · established {}/s", rate_text(achieved)),
            ),
            second(full_time, format!("  {}/s", rate_text(achieved))),
            second(
                duration_text(elapsed),
                format!("  {}/s", rate_text(achieved)),
            ),
            second(duration_text(elapsed), String::new()),
        ],
    );
    vec![first, second]
}

/// The first of `candidates` that fits `width` columns; else the last,
/// cut with an ellipsis.
fn fit_spans(width: usize, candidates: Vec<Vec<Span<'static>>>) -> Line<'static> {
    let mut last = Vec::new();
    for spans in candidates {
        let line = Line::from(spans);
        if line.width() <= width {
            return line;
        }
        last = line.spans;
    }
    let mut room = width;
    let mut kept = Vec::new();
    for span in last {
        let len = span.content.chars().count();
        if len < room {
            room -= len;
            kept.push(span);
        } else {
            let cut: String = span.content.chars().take(room.saturating_sub(1)).collect();
            kept.push(Span::styled(format!("{cut}…"), span.style));
            break;
        }
    }
    Line::from(kept)
}

/// The first two targets and how many more.
fn targets_text(targets: &[String]) -> String {
    match targets.len() {
        0 => "(no target)".to_string(),
        1 | 2 => targets.join(", "),
        n => format!("{}, {} +{} more", targets[0], targets[1], n - 2),
    }
}

/// The first-limit banner, `width` columns wide: what, when, the evidence
/// and the remedy, each wrapped. The remedy is never cut; when more than
/// `room` rows would be needed, the headline and the evidence give up rows
/// (down to one each, ending in "…"). Before the classified limit arrives,
/// the raw event still names the kind.
fn banner_lines(view: &View, width: usize, room: usize) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    if let Some(limit) = view.first_limit {
        let headline = format!(
            "FIRST LIMIT {} at attempt {} · {} active · {}s · {}{} → {}",
            limit.kind.describe(),
            thousands(limit.at_attempt),
            thousands(limit.active_at),
            decimal1(limit.at_elapsed_s),
            limit
                .host
                .as_ref()
                .map_or_else(String::new, |host| format!("{host}: ")),
            limit.source,
            limit.target
        );
        let headline = wrap(&headline, width, " ", "   ");
        let evidence = format!(
            "{}{}",
            errno_prefix(limit),
            one_line(&limit.evidence.message)
        );
        let evidence = wrap(&evidence, width, "   ", "   ");
        let remedy = if limit.remedy.is_empty() {
            Vec::new()
        } else {
            wrap(&limit.remedy, width, FIX, "        ")
        };
        let rest = room.saturating_sub(remedy.len());
        let headline_rows = headline.len().min(rest.saturating_sub(1)).max(1);
        let evidence_rows = evidence
            .len()
            .min(rest.saturating_sub(headline_rows))
            .max(1);
        let mut lines: Vec<Line> = shorten(headline, headline_rows, width)
            .into_iter()
            .map(|l| Line::styled(l, bold))
            .collect();
        lines.extend(
            shorten(evidence, evidence_rows, width)
                .into_iter()
                .map(Line::from),
        );
        for (i, line) in remedy.into_iter().enumerate() {
            lines.push(match line.strip_prefix(FIX) {
                Some(rest) if i == 0 => {
                    Line::from(vec![Span::styled(FIX, bold), Span::raw(rest.to_string())])
                }
                _ => Line::from(line),
            });
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
            "FIRST LIMIT {} at attempt {} ({}s): {} {errno}",
            event.kind.describe(),
            thousands(event.attempt),
            decimal1(event.elapsed_s),
            event.syscall
        );
        return wrap(&line, width, " ", "   ")
            .into_iter()
            .map(|l| Line::styled(l, bold))
            .collect();
    }
    Vec::new()
}

/// How the remedy starts in the banner.
const FIX: &str = "   fix: ";

/// `items` on lines of at most `width` columns, two spaces apart, each
/// item whole on one line (an item wider than a line is wrapped).
fn pack(items: impl IntoIterator<Item = String>, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for item in items {
        if !line.is_empty() && line.chars().count() + 2 + item.chars().count() <= width {
            line.push_str("  ");
            line.push_str(&item);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let mut wrapped = wrap(&item, width, "", "");
        line = wrapped.pop().unwrap_or_default();
        lines.extend(wrapped);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `text` in lines of at most `width` columns, broken between words (a
/// word longer than a line is split). The first line starts with `first`,
/// the others with `rest`.
fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut len = first.chars().count();
    let mut words_on_line = 0;
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let space = usize::from(words_on_line > 0);
            if len + space + word.len() <= width {
                if space > 0 {
                    line.push(' ');
                }
                line.extend(&word);
                len += space + word.len();
                words_on_line += 1;
                break;
            }
            if words_on_line > 0 {
                lines.push(std::mem::replace(&mut line, rest.to_string()));
                len = rest.chars().count();
                words_on_line = 0;
                continue;
            }
            // Alone on its line and still too long: split the word.
            let fits = width.saturating_sub(len).max(1).min(word.len());
            line.extend(&word[..fits]);
            word.drain(..fits);
            if word.is_empty() {
                len += fits;
                words_on_line += 1;
                break;
            }
            lines.push(std::mem::replace(&mut line, rest.to_string()));
            len = rest.chars().count();
        }
    }
    if words_on_line > 0 || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// The first `rows` of `lines`; when some are left out, the last one kept
/// ends in "…".
fn shorten(mut lines: Vec<String>, rows: usize, width: usize) -> Vec<String> {
    if lines.len() > rows {
        lines.truncate(rows);
        if let Some(last) = lines.last_mut() {
            // " …" after a whole word, so no number is left half shown.
            let mut cut = last.trim_end().to_string();
            while cut.chars().count() + 2 > width {
                match cut.rfind(' ') {
                    Some(space) if !cut[..space].trim().is_empty() => {
                        cut.truncate(space);
                        cut.truncate(cut.trim_end().len());
                    }
                    _ => {
                        cut = clip(&cut, width.saturating_sub(2));
                        break;
                    }
                }
            }
            *last = format!("{cut} …");
        }
    }
    lines
}

/// `text` cut to at most `width` columns.
fn clip(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
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

fn footer_line(view: &View, width: usize) -> Line<'static> {
    let key = Style::new().fg(Color::Black).bg(Color::Gray);
    let pause = if view.controls.paused {
        " resume  "
    } else {
        " pause  "
    };
    let keys: [(&str, &str); 5] = [
        ("q", " stop  "),
        ("p", pause),
        ("+/-", " rate ±10%  "),
        ("↑↓", " sources  "),
        ("h", " help  "),
    ];
    // Whole keys only: those that do not fit are left out.
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (k, what) in keys {
        let key_text = format!(" {k} ");
        let len = key_text.chars().count() + what.trim_end().chars().count();
        if used + len > width {
            break;
        }
        used += key_text.chars().count() + what.chars().count();
        spans.push(Span::styled(key_text, key));
        spans.push(Span::raw(what));
    }
    Line::from(spans)
}

fn render_numbers(frame: &mut Frame, area: Rect, view: &View) {
    if area.is_empty() {
        return;
    }
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
    let of_planned = format!(" / {}", thousands(planned));
    // The plan only when it fits whole.
    if planned > 0 && attempted.width() + of_planned.chars().count() <= usize::from(area.width - 2)
    {
        attempted.push_span(Span::raw(of_planned));
    }
    let mut lines = vec![
        row("active", thousands(snap.active()), big.fg(Color::Green)),
        row("established", thousands(total.established), big),
        attempted,
        row("failed", thousands(total.failed), failed_style),
        row("peak", thousands(snap.peak_active), big),
    ];
    // Request mode: the requests' rate, in flight, queued and rejected.
    if let Some(r) = total.requests.as_deref() {
        let rate = snap
            .last_row
            .as_ref()
            .and_then(|row| row.requests.as_ref())
            .map_or(0.0, |row| row.responses_per_s);
        lines.push(row("requests/s", thousands(rate.round() as u64), big));
        lines.push(row("in flight", thousands(r.in_flight()), big));
        lines.push(row("queued", thousands(r.queue_depth()), big));
        let rejects_style = if r.rejects + r.error_count() > 0 {
            big.fg(Color::Red)
        } else {
            big
        };
        lines.push(row("rejects", thousands(r.rejects), rejects_style));
        lines.push(row("errors", thousands(r.error_count()), rejects_style));
    }
    frame.render_widget(Paragraph::new(lines).block(panel("Connections")), area);
}

/// Latency rows: one column for connect, a second for the echo RTT; in
/// request mode the requests' queue wait, service time and total.
fn render_latency(frame: &mut Frame, area: Rect, view: &View) {
    if area.is_empty() {
        return;
    }
    let total = &view.snapshot.total;
    let requests = total.requests.as_deref();
    let block = panel(if view.context.echo || requests.is_some() {
        "Latency"
    } else {
        "Connect latency"
    });
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    // (name, histogram) of each column.
    let columns: Vec<(&str, &Histogram<u64>)> = match requests {
        Some(r) => vec![
            ("queue", &r.queue_us),
            ("service", &r.service_us),
            ("total", &r.total_us),
        ],
        None if view.context.echo => vec![("connect", &total.connect_us), ("rtt", &total.rtt_us)],
        None => vec![("", &total.connect_us)],
    };
    let figures: Vec<(&str, Percentiles)> = columns
        .iter()
        .map(|(name, hist)| (*name, stats::percentiles(hist)))
        .collect();
    let mut lines = Vec::new();
    let named = figures.len() > 1;
    let needed = 5 + u16::from(named);
    let width = 6 + 10 * figures.len() as u16;
    let table = inner.height >= needed && (requests.is_none() || inner.width >= width);
    if table {
        if named {
            let mut head = format!("{:<6}", "");
            for (name, _) in &figures {
                head.push_str(&format!("{name:>10}"));
            }
            lines.push(Line::styled(head, Style::new().add_modifier(Modifier::DIM)));
        }
        for (label, pick) in PERCENTILE_ROWS {
            let mut text = format!("{label:<6}");
            for (_, p) in &figures {
                text.push_str(&format!("{:>10}", latency_text(p, pick)));
            }
            lines.push(Line::from(text));
        }
    } else {
        // Too short for a table: pack the percentiles onto few lines, each
        // "p99 25.2ms" whole on its line.
        let width = usize::from(inner.width);
        for (name, p) in &figures {
            let items = (!name.is_empty())
                .then(|| name.to_string())
                .into_iter()
                .chain(
                    PERCENTILE_ROWS
                        .iter()
                        .map(|(label, pick)| format!("{label} {}", latency_text(p, *pick))),
                );
            lines.extend(pack(items, width).into_iter().map(Line::from));
        }
    }
    let used = lines.len() as u16;
    frame.render_widget(Paragraph::new(lines), inner);
    if !table || inner.height <= used + 1 {
        return;
    }
    // The rest of the panel: a histogram of each column's latency.
    let rest = Rect {
        y: inner.y + used + 1,
        height: inner.height - used - 1,
        ..inner
    };
    let mut bars = Vec::new();
    for (name, hist) in &columns {
        bars.extend(histogram_lines(name, hist, rest.width));
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
    if area.is_empty() {
        return;
    }
    let host = view.host;
    let width = usize::from(area.width.saturating_sub(2 + 6));
    let dim = Style::new().add_modifier(Modifier::DIM);
    let label = |text: &str| Span::styled(format!("{text:<6}"), dim);
    // A figure that could not be read says why, when that is known.
    let unread = || match &host.unread {
        Some(why) => clip(&format!("not read: {why}"), width),
        None => "–".to_string(),
    };
    let fds = match host.fds_in_use {
        Some(fds) => fitting(
            width,
            [
                format!(
                    "{} / {} (hard {})",
                    thousands(fds),
                    limit_text(host.fd_soft),
                    limit_text(host.fd_hard)
                ),
                format!(
                    "{} / {} (hard {})",
                    thousands(fds),
                    short_limit_text(host.fd_soft),
                    short_limit_text(host.fd_hard)
                ),
                format!("{} / {}", thousands(fds), short_limit_text(host.fd_soft)),
            ],
        ),
        None => unread(),
    };
    let mut lines = vec![Line::from(vec![label("fds"), Span::raw(fds)])];
    match host.port_range {
        Some((lo, hi)) => {
            lines.push(Line::from(vec![
                label("ports"),
                Span::raw(format!("{lo}–{hi} ({})", thousands(range_size(lo, hi)))),
            ]));
            lines.push(Line::from(vec![
                label(""),
                Span::raw(port_use_text(view, range_size(lo, hi), width)),
            ]));
        }
        None => lines.push(Line::from(vec![label("ports"), Span::raw(unread())])),
    }
    let tcp = match (host.tcp_inuse, host.tcp_time_wait) {
        (Some(inuse), Some(tw)) => fitting(
            width,
            [
                format!("{} in use · {} TIME_WAIT", thousands(inuse), thousands(tw)),
                format!("{} · TIME_WAIT {}", thousands(inuse), thousands(tw)),
                format!("{} · TW {}", thousands(inuse), thousands(tw)),
            ],
        ),
        _ => unread(),
    };
    lines.push(Line::from(vec![label("tcp"), Span::raw(tcp)]));
    let drops = match host.listen_drops_delta {
        Some(0) => Span::raw("+0"),
        Some(n) => Span::styled(format!("+{}", thousands(n)), Style::new().fg(Color::Red)),
        None => Span::raw("–"),
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
fn port_use_text(view: &View, range: u64, width: usize) -> String {
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
            let max = pct(busiest.in_use());
            let avg = pct(sum) / many.len() as f64;
            fitting(
                width,
                [
                    format!("max {max:.0}% ({name}) avg {avg:.0}%"),
                    format!("max {max:.0}% avg {avg:.0}%"),
                ],
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
    if area.is_empty() {
        return;
    }
    let points: Vec<(f64, f64)> = view
        .history
        .iter()
        .map(|p| (p.elapsed_s as f64, p.active as f64))
        .collect();
    let now = thousands(view.snapshot.active());
    let title_width = usize::from(area.width.saturating_sub(4));
    let titles = |span: &str| {
        [
            format!("Active connections · now {now}{span}"),
            format!("Active connections · now {now}"),
            format!("Active · now {now}"),
            format!("now {now}"),
            String::new(),
        ]
    };
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        frame.render_widget(
            Paragraph::new("waiting for the first second…")
                .wrap(Wrap { trim: true })
                .block(panel(&fitting(title_width, titles("")))),
            area,
        );
        return;
    };
    let x0 = first.0;
    let x1 = last.0.max(x0 + 1.0);
    // A short panel spends no rows on the time axis: the span goes in the
    // title instead.
    let x_labels = area.height >= 9;
    let span = if x_labels {
        String::new()
    } else {
        format!(
            " · {}–{}",
            duration_text(x0 as u64),
            duration_text(x1 as u64)
        )
    };
    let title = fitting(title_width, titles(&span));
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

/// Connects per second (requests per second in request mode), newest at
/// the right, scaled so that the highest achieved or target rate in view
/// fills the panel.
fn render_rate(frame: &mut Frame, area: Rect, view: &View) {
    if area.is_empty() {
        return;
    }
    let width = usize::from(area.width.saturating_sub(2));
    let points: Vec<_> = view.history.last(width).collect();
    let last_row = view.snapshot.last_row.as_ref();
    // Request mode charts requests per second, connects otherwise.
    let requests = view.snapshot.total.requests.is_some();
    let (label, achieved, target) = match last_row {
        row if requests => (
            "Requests/s",
            row.and_then(|row| row.requests.as_ref())
                .map_or(0.0, |r| r.sent_per_s),
            view.snapshot.target_rate_per_s,
        ),
        row => (
            "Connects/s",
            row.map_or(0.0, |row| row.establish_rate_per_s),
            view.snapshot.target_rate_per_s,
        ),
    };
    let rate = |p: &super::Point| {
        if requests {
            p.request_rate_per_s.unwrap_or(0.0)
        } else {
            p.establish_rate_per_s
        }
    };
    let top_rate = points
        .iter()
        .map(|p| rate(p).max(p.target_rate_per_s))
        .fold(0.0, f64::max);
    let achieved = rate_text(achieved);
    let top = rate_text(top_rate);
    let of = if target > 0.0 {
        format!(" of {}", rate_text(target))
    } else {
        String::new()
    };
    let title = fitting(
        usize::from(area.width.saturating_sub(4)),
        [
            format!("{label} {achieved}{of} · top {top}"),
            format!("{label} {achieved}{of}"),
            format!("{label} {achieved}"),
            format!("{achieved}/s"),
            String::new(),
        ],
    );
    let data: Vec<u64> = points.iter().map(|p| rate(p).round() as u64).collect();
    let sparkline = Sparkline::default()
        .block(panel(&title))
        .style(Style::new().fg(Color::Cyan))
        .max(top_rate.ceil().max(1.0) as u64)
        .data(data);
    frame.render_widget(sparkline, area);
}

/// Failures by kind (count, time of first occurrence) and the warnings,
/// in `width` columns: details that do not fit are left out, and a name
/// too long is cut before its count is.
fn limits_lines(view: &View, width: usize) -> Vec<Line<'static>> {
    let total = &view.snapshot.total;
    let name_width = LimitKind::ALL
        .into_iter()
        .filter(|k| total.failures_by_kind[k.index()] > 0)
        .map(|k| k.as_str().len())
        .chain([14])
        .max()
        .unwrap_or(14)
        + 1;
    let dim = Style::new().add_modifier(Modifier::DIM);
    // One row: the name, the count, then details while they fit.
    let row = |name: &str, style: Style, count: u64, details: Vec<Span<'static>>| {
        let count = thousands(count);
        let mut candidates = Vec::new();
        for kept in (0..=details.len()).rev() {
            let mut spans = vec![
                Span::styled(format!("{name:<name_width$}"), style),
                Span::raw(format!("{count:>9}")),
            ];
            spans.extend(details[..kept].iter().cloned());
            candidates.push(spans);
        }
        let short_name = clip(name, width.saturating_sub(count.len() + 1).max(1));
        candidates.push(vec![
            Span::styled(format!("{short_name} "), style),
            Span::raw(count),
        ]);
        fit_spans(width, candidates)
    };
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
        let mut details = Vec::new();
        if let Some(group) = first {
            details.push(Span::raw(format!(
                "  first {}s",
                decimal1(group.first.elapsed_s)
            )));
            let errno = group
                .first
                .errno
                .map(|e| {
                    crate::model::errno_name(e).map_or_else(|| format!("errno {e}"), str::to_string)
                })
                .unwrap_or_default();
            details.push(Span::styled(
                format!("  {} {errno}", group.first.syscall),
                dim,
            ));
        }
        lines.push(row(kind.as_str(), style, count, details));
    }
    let warnings = &total.warnings;
    let warn = Style::new().fg(Color::Yellow);
    if warnings.syn_retransmit_handshakes > 0 {
        lines.push(row(
            "SYN retransmit",
            warn,
            warnings.syn_retransmit_handshakes,
            vec![Span::raw("  handshakes")],
        ));
    }
    if warnings.port_search_stall_seconds > 0 {
        lines.push(row(
            "port search",
            warn,
            warnings.port_search_stall_seconds,
            vec![
                Span::raw("  s stalled"),
                Span::raw(format!(
                    " ({} slow connect())",
                    thousands(warnings.port_search_slow)
                )),
            ],
        ));
    }
    if warnings.echo_unanswered > 0 {
        lines.push(row(
            "echo unanswered",
            warn,
            warnings.echo_unanswered,
            Vec::new(),
        ));
    }
    if let Some(g) = &view.host.generator {
        lines.push(row(
            "generator busy",
            warn,
            g.seconds,
            vec![
                Span::raw("  s"),
                Span::raw(format!(
                    ", {:.2}/{:.2} cores",
                    g.cores_used, g.cores_available
                )),
                Span::raw(format!(
                    ", {:.0}% of the rate: ceiling is the bottleneck",
                    g.achieved_ratio * 100.0
                )),
            ],
        ));
    }
    if lines.is_empty() {
        lines.push(Line::styled("no failures yet", dim));
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
    if area.is_empty() {
        return;
    }
    let rows = source_rows(view);
    let visible = usize::from(area.height.saturating_sub(3)).max(1);
    let offset = clamp_scroll(view.ui.source_scroll, rows.len(), visible);
    let shown = &rows[offset..(offset + visible).min(rows.len())];
    let available = view.host.port_range.map(|(lo, hi)| range_size(lo, hi));
    let failed = |c: &SourceCounters| {
        if c.failed > 0 {
            Span::styled(thousands(c.failed), Style::new().fg(Color::Red))
        } else {
            Span::raw("0")
        }
    };
    let in_use = |c: &SourceCounters| match available {
        Some(n) => format!("{}/{}", thousands(c.in_use()), thousands(n)),
        None => thousands(c.in_use()),
    };
    let of_range = |c: &SourceCounters| match available {
        Some(n) => format!("{:.0}%", c.in_use() as f64 * 100.0 / n as f64),
        None => "–".to_string(),
    };
    let cells = |cell: &dyn Fn(&SourceCounters) -> Span<'static>| -> Vec<Span<'static>> {
        shown.iter().map(|(_, c)| cell(c)).collect()
    };
    // Each column: its header (long and short) and its cells.
    let columns = [
        (
            "established",
            "estab.",
            cells(&|c| Span::raw(thousands(c.established))),
        ),
        ("failed", "fail", cells(&failed)),
        ("ports in use", "in use", cells(&|c| Span::raw(in_use(c)))),
        ("of range", "%", cells(&|c| Span::raw(of_range(c)))),
    ];
    // Whole columns, left to right, while they fit (with short headers if
    // that fits more); to make room for the established count the names
    // are cut (with "…"), never a number.
    let inner = usize::from(area.width.saturating_sub(2));
    let names = shown
        .iter()
        .map(|(name, _)| name.chars().count())
        .chain([9])
        .max()
        .unwrap_or(9)
        .min(inner);
    let data: Vec<usize> = columns
        .iter()
        .map(|(_, _, texts)| texts.iter().map(Span::width).max().unwrap_or(0))
        .collect();
    // (name column width, header and width of each column shown)
    let plan = |short: bool| {
        let mut name_width = names;
        let mut shown = Vec::new();
        for ((long, brief, _), data) in columns.iter().zip(&data) {
            let title = if short { *brief } else { *long };
            let width = (*data).max(title.chars().count());
            let used: usize = name_width + shown.iter().map(|(_, w)| 1 + w).sum::<usize>();
            if used + 1 + width > inner {
                if !shown.is_empty() {
                    break;
                }
                name_width = inner.saturating_sub(1 + width);
            }
            shown.push((title, width));
        }
        (name_width, shown)
    };
    let (long, short) = (plan(false), plan(true));
    let (name_width, shown_columns) = if short.1.len() > long.1.len() {
        short
    } else {
        long
    };
    if name_width < 4 {
        // Not even a name and its established count: no panel.
        return;
    }
    let mut header = vec![Line::from("source")];
    let mut widths = Vec::new();
    let mut table: Vec<Vec<Line>> = shown
        .iter()
        .map(|(name, _)| vec![Line::from(ellipsize(name, name_width))])
        .collect();
    for ((title, width), (_, _, texts)) in shown_columns.into_iter().zip(columns) {
        header.push(Line::from(title).right_aligned());
        widths.push(Constraint::Length(width as u16));
        for (row, text) in table.iter_mut().zip(texts) {
            row.push(Line::from(text).right_aligned());
        }
    }
    let mut constraints = vec![Constraint::Min(name_width as u16)];
    constraints.extend(widths);
    let title = if rows.len() > visible {
        let (from, to, of) = (offset + 1, (offset + visible).min(rows.len()), rows.len());
        fitting(
            usize::from(area.width.saturating_sub(4)),
            [
                format!("Sources {from}–{to} of {of} (↑↓)"),
                format!("Sources {from}–{to}/{of}"),
                format!("{from}–{to}/{of}"),
                String::new(),
            ],
        )
    } else {
        "Sources".to_string()
    };
    let header = Row::new(header).style(Style::new().add_modifier(Modifier::DIM));
    let table = Table::new(table.into_iter().map(Row::new), constraints)
        .header(header)
        .column_spacing(1)
        .block(panel(&title));
    frame.render_widget(table, area);
}

/// `text` in at most `width` columns, ending in "…" when cut.
fn ellipsize(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        format!("{}…", clip(text, width.saturating_sub(1)))
    }
}

/// One panel for small terminals: the big numbers and the limit with its
/// remedy. The remedy is never cut: when rows are short, the other lines
/// give way (the keys first).
fn render_compact(frame: &mut Frame, area: Rect, view: &View) {
    let snap = view.snapshot;
    let total = &snap.total;
    let width = usize::from(area.width);
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
        (Some(limit), _) => format!(
            "LIMIT {} at {}: {}",
            limit.kind.describe(),
            thousands(limit.at_attempt),
            one_line(&limit.remedy)
        ),
        (None, Some(event)) => format!(
            "LIMIT {} at {}",
            event.kind.describe(),
            thousands(event.attempt)
        ),
        (None, None) => "no limit yet".to_string(),
    };
    let limit_style = if total.first_limit.is_some() || view.first_limit.is_some() {
        bold.fg(Color::Red)
    } else {
        Style::new()
    };
    // (text, style), in the order shown; kept by importance.
    let parts = [
        (vec![status], bold),
        (
            vec![
                format!("active {}", thousands(snap.active())),
                format!("peak {}", thousands(snap.peak_active)),
            ],
            bold.fg(Color::Green),
        ),
        (
            vec![
                format!("established {}", thousands(total.established)),
                format!("failed {}", thousands(total.failed)),
            ],
            Style::new(),
        ),
        (
            vec![format!(
                "attempted {}/{}",
                thousands(total.attempted),
                thousands(snap.planned_connections)
            )],
            Style::new(),
        ),
        (vec![limit], limit_style),
        (
            ["q stop", "p pause", "+/- rate", "h help"]
                .map(String::from)
                .to_vec(),
            Style::new().add_modifier(Modifier::DIM),
        ),
    ];
    let wrapped: Vec<(Vec<String>, Style)> = parts
        .into_iter()
        .map(|(items, style)| (pack(items, width), style))
        .collect();
    // The limit, then the status, active, established, attempted, keys.
    let mut rows = usize::from(area.height);
    let mut keep = [false; 6];
    for i in [4, 0, 1, 2, 3, 5] {
        let need = wrapped[i].0.len();
        if need <= rows || i == 4 {
            rows = rows.saturating_sub(need);
            keep[i] = true;
        }
    }
    let lines: Vec<Line> = wrapped
        .into_iter()
        .zip(keep)
        .filter(|(_, kept)| *kept)
        .flat_map(|((lines, style), _)| lines.into_iter().map(move |l| Line::styled(l, style)))
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
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
