//! Live output while a run goes: the full-screen dashboard ([`tui`]), an
//! indicatif progress bar, or one plain line a second for logs and pipes.
//! Reads snapshots only; the bar and the lines go to stderr so stdout stays
//! for the final summary.

pub mod tui;

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::model::{FirstLimit, LimitKind};
use crate::stats::Snapshot;
use tui::{Action, Controls, Dashboard, HostPanel, RunContext};

/// Which live output to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Tui,
    Progress,
    Plain,
    Silent,
}

/// What the live output shows at one tick.
pub struct LiveView<'a> {
    pub snapshot: &'a Snapshot,
    /// The first limit, explained, once it has been seen.
    pub first_limit: Option<&'a FirstLimit>,
    pub host: &'a HostPanel,
    pub controls: Controls,
}

/// The live output of one run.
pub enum Live {
    Tui(Box<Dashboard>),
    Progress(ProgressBar),
    /// Prints a line whenever a new second is complete.
    Plain {
        last_row: Option<u64>,
    },
    Silent,
}

impl Live {
    pub fn new(output: Output, context: RunContext) -> std::io::Result<Live> {
        let planned_connections = context.planned_connections;
        Ok(match output {
            Output::Tui => Live::Tui(Box::new(Dashboard::start(context)?)),
            Output::Progress => {
                let bar = ProgressBar::with_draw_target(
                    Some(planned_connections),
                    ProgressDrawTarget::stderr_with_hz(10),
                );
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {elapsed:>4} [{bar:20}] {human_pos}/{human_len} attempted  {wide_msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.enable_steady_tick(Duration::from_millis(100));
                Live::Progress(bar)
            }
            Output::Plain => Live::Plain { last_row: None },
            Output::Silent => Live::Silent,
        })
    }

    /// Shows the tick; returns what the user asked for (dashboard keys).
    pub fn update(&mut self, view: &LiveView<'_>) -> std::io::Result<Vec<Action>> {
        let snapshot = view.snapshot;
        match self {
            Live::Tui(dashboard) => {
                return dashboard.update(snapshot, view.first_limit, view.host, view.controls);
            }
            Live::Progress(bar) => {
                bar.set_position(snapshot.total.attempted);
                bar.set_message(status(snapshot, view.first_limit));
            }
            Live::Plain { last_row } => {
                let Some(row) = &snapshot.last_row else {
                    return Ok(Vec::new());
                };
                if *last_row == Some(row.elapsed_s) {
                    return Ok(Vec::new());
                }
                *last_row = Some(row.elapsed_s);
                eprintln!(
                    "[{:>4}s] attempted {}/{}  established {}  {}",
                    row.elapsed_s,
                    snapshot.total.attempted,
                    snapshot.planned_connections,
                    snapshot.total.established,
                    status(snapshot, view.first_limit)
                );
            }
            Live::Silent => {}
        }
        Ok(Vec::new())
    }

    /// Leaves the terminal clean for the summary.
    pub fn finish(self) -> std::io::Result<()> {
        match self {
            Live::Tui(dashboard) => dashboard.finish(),
            Live::Progress(bar) => {
                bar.finish_and_clear();
                Ok(())
            }
            Live::Plain { .. } | Live::Silent => Ok(()),
        }
    }
}

/// One line: active, rates, failures, the first limit (and the fleet's
/// host that hit it, once `explained` names it).
fn status(snapshot: &Snapshot, explained: Option<&FirstLimit>) -> String {
    let total = &snapshot.total;
    let mut line = format!(
        "{}  active {}  failed {}",
        snapshot.phase.as_str(),
        snapshot.active(),
        total.failed
    );
    match snapshot.last_row.as_ref().map(|row| (row, &row.requests)) {
        // Request mode: the rate that matters is of requests, not connects.
        Some((_, Some(r))) => {
            line.push_str(&format!("  requests {:.0}/s", r.sent_per_s));
            if snapshot.target_rate_per_s > 0.0 {
                line.push_str(&format!(" of {:.0}/s", snapshot.target_rate_per_s));
            }
            line.push_str(&format!("  queued {}  busy {}", r.queue_depth, r.busy));
            if r.total.count > 0 {
                line.push_str(&format!("  total p99 {}", tui::micros_text(r.total.p99)));
            }
        }
        Some((row, None)) => {
            line.push_str(&format!("  {:.0}/s", row.establish_rate_per_s));
            if snapshot.target_rate_per_s > 0.0 {
                line.push_str(&format!(" of {:.0}/s", snapshot.target_rate_per_s));
            }
        }
        None => {}
    }
    if let Some(event) = &total.first_limit {
        line.push_str(&format!(
            "  first limit: {} at attempt {}",
            event.kind.as_str(),
            event.attempt
        ));
        if let Some(host) = explained.and_then(|l| l.host.as_ref()) {
            line.push_str(&format!(" on {host}"));
        }
    } else if let Some(kind) = most_common_failure(snapshot) {
        line.push_str(&format!("  mostly {kind}"));
    }
    line
}

fn most_common_failure(snapshot: &Snapshot) -> Option<LimitKind> {
    LimitKind::ALL
        .into_iter()
        .filter(|k| snapshot.total.failures_by_kind[k.index()] > 0)
        .max_by_key(|k| snapshot.total.failures_by_kind[k.index()])
}
