//! `ceiling sweep`: flags and scenario file → [`Sweep`] (every step
//! checked) → its steps run → each step's line, the verdict and
//! `report.html`; exit 130 when Ctrl-C or SIGTERM stopped a step.

use std::process::ExitCode;

use super::args;
use crate::UsageError;
use crate::cli::SweepArgs;
use crate::runner;
use crate::scenario::{self, ScenarioSpec};
use crate::sweep::{Progress, Sweep, SweepError};
use crate::ui::tui::micros_text;

pub fn sweep(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let SweepArgs { pools, goal, run } = args;
    let out = run.out.clone();
    let file = match &run.scenario {
        Some(path) => scenario::load_file(path)?,
        None => ScenarioSpec::default(),
    };
    let spec = args::merge_spec(file, run, false);
    let sweep = Sweep::new(spec, pools, goal, out).map_err(anyhow_of)?;
    let swept = sweep.run(print_progress).map_err(anyhow_of)?;
    super::report::write_beside(&swept.dir);
    print!("{}", swept.verdict());
    println!("results: {}", swept.dir.display());
    Ok(if swept.interrupted {
        ExitCode::from(runner::EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_progress(progress: Progress<'_>) {
    match progress {
        Progress::Starting(pool) => eprintln!("ceiling: sweep: pool {pool}"),
        Progress::Done(row) => eprintln!(
            "ceiling: sweep: pool {}: {:.0} responses/s, total p99 {}, queue p99 {}, {} \
             errors, {} rejects: {}",
            row.pool,
            row.achieved_rate_per_s,
            micros_text(row.total_p99_us),
            micros_text(row.queue_p99_us),
            row.errors,
            row.rejects,
            if row.interrupted {
                format!("{}: not judged", row.missed)
            } else if row.meets_goal {
                "meets the goal".to_string()
            } else {
                format!("misses {}", row.missed)
            }
        ),
    }
}

/// Bad input keeps its exit status 2 ([`UsageError`], [`ScenarioError`]
/// in the chain); the rest is exit 1.
///
/// [`ScenarioError`]: crate::scenario::ScenarioError
fn anyhow_of(err: SweepError) -> anyhow::Error {
    match err {
        SweepError::Usage(message) => UsageError(message).into(),
        SweepError::Scenario(e) => e.into(),
        other => other.into(),
    }
}
