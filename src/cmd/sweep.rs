//! `ceiling sweep`: each pool size a request run (its own results
//! directory under the sweep's), then `sweep.csv`, its `report.html` and the
//! verdict.

use std::process::ExitCode;

use anyhow::Context;

use super::args;
use crate::UsageError;
use crate::cli::SweepArgs;
use crate::runner;
use crate::scenario::units::DriverMode;
use crate::scenario::{self, Pace, Scenario, ScenarioSpec};
use crate::sweep;
use crate::ui::Output;
use crate::ui::tui::micros_text;

pub fn sweep(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let SweepArgs { pools, goal, run } = args;
    let out = run.out.clone();
    let file = match &run.scenario {
        Some(path) => scenario::load_file(path)?,
        None => ScenarioSpec::default(),
    };
    let mut spec = args::merge_spec(file, run, false);
    match spec.mode {
        None | Some(DriverMode::Request) => spec.mode = Some(DriverMode::Request),
        Some(other) => {
            let name = if other == DriverMode::Echo {
                "echo"
            } else {
                "idle"
            };
            return Err(UsageError(format!(
                "sweep puts requests through a pool, but the mode is {name}: drop --mode \
                 (or mode in the scenario file), or set it to request"
            ))
            .into());
        }
    }
    // Every step is checked before the first runs (a range: its ends).
    let check = |pool: u64| {
        Scenario::validate(ScenarioSpec {
            pool: Some(pool),
            ..spec.clone()
        })
    };
    let scenarios: Vec<Scenario> = pools
        .bounds()
        .into_iter()
        .map(check)
        .collect::<Result<_, _>>()?;
    let name = format!("sweep-{}", scenarios[0].name);
    let rate = match scenarios[0].pace {
        Pace::Constant { per_s } => Some(per_s),
        _ => None,
    };
    let dir = out.unwrap_or_else(|| runner::default_results_dir(&name));
    std::fs::create_dir_all(&dir)
        .map_err(|e| UsageError(format!("cannot write results to '{}': {e}", dir.display())))?;
    let mut rows: Vec<sweep::StepRow> = Vec::new();
    let mut done = Vec::new();
    while let Some(pool) = pools.next(&done) {
        eprintln!("ceiling: sweep: pool {pool}");
        let scenario = check(pool)?;
        let finished = runner::execute(
            scenario,
            Output::Silent,
            Some(dir.join(format!("pool-{pool}"))),
            None,
        )
        .with_context(|| format!("sweep step with pool {pool}"))?;
        finished.written?;
        let row = goal.row(pool, &finished.summary);
        eprintln!(
            "ceiling: sweep: pool {pool}: {:.0} responses/s, total p99 {}, queue p99 {}, {} \
             errors, {} rejects: {}",
            row.achieved_rate_per_s,
            micros_text(row.total_p99_us),
            micros_text(row.queue_p99_us),
            row.errors,
            row.rejects,
            if row.meets_goal {
                "meets the goal".to_string()
            } else {
                format!("misses {}", row.missed)
            }
        );
        done.push((pool, row.meets_goal));
        rows.push(row);
        if finished.interrupted {
            break;
        }
    }
    rows.sort_by_key(|r| r.pool);
    let table = sweep::csv(&rows).context("cannot write sweep.csv")?;
    std::fs::write(dir.join("sweep.csv"), table).context("cannot write sweep.csv")?;
    super::report::write_beside(&dir);
    print!("{}", sweep::verdict(&rows, rate));
    println!("results: {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
