//! `ceiling sweep`: request runs over a list of pool sizes, and the smallest
//! pool whose run meets a latency and error goal. This module parses the
//! pool list and the goal, checks every step before the first runs, runs
//! the steps (each a whole run through [`runner::execute`], with its own
//! results directory under the sweep's), turns each step's summary into a
//! `sweep.csv` row and picks; `cmd/sweep.rs` only parses and prints.
//!
//! Beside the pick stands Little's law: connections busy on average =
//! request rate × mean service time. A pool well above it that still
//! misses the goal points at the server; one below it queues by
//! construction.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::Summary;
use crate::runner;
use crate::scenario::units::{self, DriverMode};
use crate::scenario::{Pace, Scenario, ScenarioError, ScenarioSpec};
use crate::sink::ResultsUnwritten;
use crate::ui::Output;

/// Most steps of one sweep.
pub const MAX_STEPS: usize = 64;

/// A figure a goal can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// A percentile (50, 90, 99, 99.9 as 999, or max as 0) of a request
    /// latency: total (default), queue or service.
    Latency { metric: &'static str, pick: u32 },
    /// Errors per request scheduled, %.
    Errors,
    /// Rejects per request scheduled, %.
    Rejects,
}

/// One condition of a goal: FIGURE < VALUE (or <=).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub text: String,
    pub figure: Figure,
    pub inclusive: bool,
    /// µs for a latency, % for errors and rejects.
    pub value: f64,
}

/// A goal: every condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal(pub Vec<Condition>);

const GOAL_FORMS: &str = "conditions separated by commas, each FIGURE<VALUE or FIGURE<=VALUE: \
     p50, p90, p99, p999 or max of total latency (or queue_p99, service_p99, total_p99, ...) \
     below a duration (50ms), errors or rejects below a share of the requests (0.1%), e.g. \
     'p99<50ms,errors<0.1%'";

/// Parses `--goal`.
pub fn parse_goal(text: &str) -> Result<Goal, String> {
    let bad = |part: &str, why: &str| format!("goal '{text}': '{part}' {why}: use {GOAL_FORMS}");
    let mut conditions = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad(part, "is empty"));
        }
        let (name, inclusive, value) = if let Some((n, v)) = part.split_once("<=") {
            (n, true, v)
        } else if let Some((n, v)) = part.split_once('<') {
            (n, false, v)
        } else {
            return Err(bad(part, "has no < or <="));
        };
        let (name, value) = (name.trim(), value.trim());
        let figure = match name {
            "errors" => Figure::Errors,
            "rejects" => Figure::Rejects,
            _ => {
                let (metric, pct) = match name.split_once('_') {
                    Some(("total", p)) => ("total", p),
                    Some(("queue", p)) => ("queue", p),
                    Some(("service", p)) => ("service", p),
                    Some(_) => return Err(bad(part, "names no figure")),
                    None => ("total", name),
                };
                let pick = match pct {
                    "p50" => 50,
                    "p90" => 90,
                    "p99" => 99,
                    "p999" => 999,
                    "max" => 0,
                    _ => return Err(bad(part, "names no figure")),
                };
                Figure::Latency { metric, pick }
            }
        };
        let value = match figure {
            Figure::Latency { .. } => units::parse_duration(value)
                .map(|d| d.as_secs_f64() * 1e6)
                .map_err(|_| bad(part, "needs a duration with its unit"))?,
            Figure::Errors | Figure::Rejects => value
                .strip_suffix('%')
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && (0.0..=100.0).contains(v))
                .ok_or_else(|| bad(part, "needs a share from 0% to 100%"))?,
        };
        conditions.push(Condition {
            text: part.to_string(),
            figure,
            inclusive,
            value,
        });
    }
    Ok(Goal(conditions))
}

/// The pool sizes of a sweep: a rising list, each run, or a range LO..HI
/// searched for the smallest that meets the goal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pools {
    List(Vec<u64>),
    Range(u64, u64),
}

impl Pools {
    /// The sizes known before any run: the list, or the range's ends.
    pub fn bounds(&self) -> Vec<u64> {
        match self {
            Pools::List(pools) => pools.clone(),
            Pools::Range(lo, hi) => vec![*lo, *hi],
        }
    }

    /// The next size to run, given the steps run so far (pool, goal met);
    /// None when the sweep is done. A range is searched assuming a larger
    /// pool does no worse: its low end, its high end, then halves until
    /// the smallest pool meeting the goal is known within 10% (or 1).
    pub fn next(&self, done: &[(u64, bool)]) -> Option<u64> {
        if done.len() >= MAX_STEPS {
            return None;
        }
        let met = |pool: u64| done.iter().find(|(p, _)| *p == pool).map(|(_, m)| *m);
        match self {
            Pools::List(pools) => pools.iter().copied().find(|p| met(*p).is_none()),
            Pools::Range(lo, hi) => {
                match (met(*lo), met(*hi)) {
                    (None, _) => return Some(*lo),
                    (Some(true), _) => return None,
                    (Some(false), None) => return Some(*hi),
                    (Some(false), Some(false)) => return None,
                    (Some(false), Some(true)) => {}
                }
                let failing = done.iter().filter(|(_, m)| !m).map(|(p, _)| *p).max()?;
                let meeting = done.iter().filter(|(_, m)| *m).map(|(p, _)| *p).min()?;
                let resolution = (failing / 10).max(1);
                (meeting > failing + resolution).then(|| failing + (meeting - failing) / 2)
            }
        }
    }
}

/// `--pool` for clap: `P,P,...` or `LO..HI`.
pub fn parse_pool_list(text: &str) -> Result<Pools, String> {
    if let Some((lo, hi)) = text.split_once("..") {
        let lo = units::parse_pool(lo.trim()).map_err(|e| format!("--pool '{text}': {e}"))?;
        let hi = units::parse_pool(hi.trim()).map_err(|e| format!("--pool '{text}': {e}"))?;
        if hi <= lo {
            return Err(format!(
                "--pool '{text}': a range to search runs from the smaller to the larger, \
                 e.g. 10..1000"
            ));
        }
        return Ok(Pools::Range(lo, hi));
    }
    parse_pools(text).map(Pools::List)
}

/// Parses `--pool`: sizes separated by commas, each 1 to 100m, rising.
pub fn parse_pools(text: &str) -> Result<Vec<u64>, String> {
    let mut pools = Vec::new();
    for part in text.split(',').map(str::trim) {
        let pool = units::parse_pool(part).map_err(|e| format!("--pool '{text}': {e}"))?;
        if pools.last().is_some_and(|&last| pool <= last) {
            return Err(format!(
                "--pool '{text}': {pool} after {}: give the sizes rising, e.g. 10,50,100",
                pools.last().unwrap_or(&0)
            ));
        }
        pools.push(pool);
    }
    if pools.len() > MAX_STEPS {
        return Err(format!(
            "--pool '{text}': {} sizes; a sweep has at most {MAX_STEPS} steps",
            pools.len()
        ));
    }
    Ok(pools)
}

/// One step's figures: a row of `sweep.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepRow {
    pub pool: u64,
    /// Responses (and error replies) per second of the run.
    pub achieved_rate_per_s: f64,
    pub queue_p50_us: u64,
    pub queue_p99_us: u64,
    pub total_p50_us: u64,
    pub total_p99_us: u64,
    pub service_mean_us: f64,
    pub scheduled: u64,
    pub errors: u64,
    pub rejects: u64,
    /// Connections held at once at the peak (the server's connections from
    /// this client).
    pub connections: u64,
    /// The first limit's kind, empty when none.
    pub first_limit: String,
    pub meets_goal: bool,
    /// The first condition that failed, empty when the goal is met; for a
    /// step stopped by a signal, that it was (see [`StepRow::interrupted`]).
    pub missed: String,
    /// The step was stopped by Ctrl-C or SIGTERM: its figures are of the
    /// part that ran, too short to judge (`meets_goal` false). Not a
    /// column: `missed` says it.
    #[serde(skip)]
    pub interrupted: bool,
}

impl StepRow {
    /// Marks a step stopped by a signal after `ran_s` of `planned`.
    fn not_judged(&mut self, ran_s: f64, planned: Option<Duration>) {
        self.interrupted = true;
        self.meets_goal = false;
        self.missed = match planned {
            Some(planned) => format!(
                "interrupted after {ran_s:.1} s of {} s",
                tenths(planned.as_secs_f64())
            ),
            None => format!("interrupted after {ran_s:.1} s"),
        };
    }
}

impl Goal {
    /// The first condition `summary` misses, or None.
    pub fn missed(&self, summary: &Summary) -> Option<&Condition> {
        let requests = summary.requests.clone().unwrap_or_default();
        let scheduled = requests.scheduled.max(1) as f64;
        let errors: u64 = requests.errors.values().sum();
        self.0.iter().find(|c| {
            let actual = match c.figure {
                Figure::Latency { metric, pick } => {
                    let Some(p) = summary.latency.get(&format!("{metric}_us")) else {
                        return true;
                    };
                    if p.count == 0 {
                        return true;
                    }
                    (match pick {
                        50 => p.p50,
                        90 => p.p90,
                        99 => p.p99,
                        999 => p.p999,
                        _ => p.max,
                    }) as f64
                }
                Figure::Errors => errors as f64 * 100.0 / scheduled,
                Figure::Rejects => requests.rejects as f64 * 100.0 / scheduled,
            };
            !(actual < c.value || (c.inclusive && actual == c.value))
        })
    }

    /// A step's row.
    pub fn row(&self, pool: u64, summary: &Summary) -> StepRow {
        let requests = summary.requests.clone().unwrap_or_default();
        let latency = |key: &str| summary.latency.get(key).cloned().unwrap_or_default();
        let (queue, total, service) = (
            latency("queue_us"),
            latency("total_us"),
            latency("service_us"),
        );
        let missed = self.missed(summary);
        StepRow {
            pool,
            achieved_rate_per_s: tenths(total.count as f64 / summary.duration_s.max(1e-3)),
            queue_p50_us: queue.p50,
            queue_p99_us: queue.p99,
            total_p50_us: total.p50,
            total_p99_us: total.p99,
            service_mean_us: tenths(service.mean),
            scheduled: requests.scheduled,
            errors: requests.errors.values().sum(),
            rejects: requests.rejects,
            connections: summary.totals.peak_active,
            first_limit: summary
                .first_limit
                .as_ref()
                .map_or(String::new(), |l| l.kind.as_str().to_string()),
            meets_goal: missed.is_none(),
            missed: missed.map_or(String::new(), |c| c.text.clone()),
            interrupted: false,
        }
    }
}

/// To one decimal: enough for a table.
fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `sweep.csv`.
pub fn csv(rows: &[StepRow]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// The verdict: the smallest pool meeting the goal (or that none did),
/// that the sweep was interrupted if it was, and Little's law at `rate`
/// with the service time the steps measured.
pub fn verdict(rows: &[StepRow], rate: Option<f64>) -> String {
    let mut out = String::new();
    let judged = || rows.iter().filter(|r| !r.interrupted);
    match judged().filter(|r| r.meets_goal).min_by_key(|r| r.pool) {
        Some(row) => {
            let _ = writeln!(out, "smallest pool meeting the goal: {}", row.pool);
        }
        None => match judged().map(|r| r.pool).max() {
            Some(largest) => {
                let _ = writeln!(out, "no pool met the goal (largest tried: {largest})");
            }
            None => {
                let _ = writeln!(out, "no pool met the goal (no step ran to its end)");
            }
        },
    }
    if let Some(row) = rows.iter().find(|r| r.interrupted) {
        let _ = writeln!(
            out,
            "sweep interrupted during the step with pool {} ({}): its row is in sweep.csv, not \
             judged; the steps after it did not run",
            row.pool, row.missed
        );
    }
    let served: Vec<&StepRow> = rows.iter().filter(|r| r.service_mean_us > 0.0).collect();
    if let Some(rate) = rate
        && !served.is_empty()
    {
        let service_us =
            served.iter().map(|r| r.service_mean_us).sum::<f64>() / served.len() as f64;
        let busy = rate * service_us / 1e6;
        let _ = writeln!(
            out,
            "Little's law: {rate} requests/s × {:.1} ms mean service = {:.0} connections busy on \
             average: a pool below it queues whatever the server; a pool well above it that \
             misses the goal points at the server",
            service_us / 1e3,
            busy.ceil()
        );
    }
    out
}

/// Why a sweep was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Bad input, refused before anything is created (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A step's scenario does not validate (exit 2).
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A step could not run: its run's own error, with its context.
    #[error("sweep step with pool {pool}")]
    Step {
        pool: u64,
        #[source]
        source: anyhow::Error,
    },
    /// A step ran, but its results files could not all be written.
    #[error(transparent)]
    Unwritten(#[from] ResultsUnwritten),
    #[error("cannot write sweep.csv")]
    Table(#[source] std::io::Error),
}

/// What a sweep tells as it goes, for its caller to print.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A step with this pool size starts.
    Starting(u64),
    /// A step ended: its row.
    Done(&'a StepRow),
}

/// A sweep whose every step has been checked; nothing created yet.
#[derive(Debug)]
pub struct Sweep {
    spec: ScenarioSpec,
    pools: Pools,
    goal: Goal,
    /// A constant request rate, for Little's law (None: a ramp, steps or
    /// a closed loop).
    rate: Option<f64>,
    dir: PathBuf,
}

/// A sweep that ran: its rows by pool size, where they are.
#[derive(Debug)]
pub struct Swept {
    pub rows: Vec<StepRow>,
    /// The sweep's results directory: `sweep.csv` and a `pool-N/` per step.
    pub dir: PathBuf,
    rate: Option<f64>,
    /// A step was stopped by Ctrl-C or SIGTERM: its row is the last (not
    /// judged), and the steps after it did not run.
    pub interrupted: bool,
}

impl Sweep {
    /// Checks a sweep before anything is created: request mode (the
    /// default here), and every step's scenario (a range: its ends).
    /// `out`: the sweep's results directory (default
    /// `results/<UTC time>-sweep-<name>`).
    pub fn new(
        mut spec: ScenarioSpec,
        pools: Pools,
        goal: Goal,
        out: Option<PathBuf>,
    ) -> Result<Sweep, SweepError> {
        match spec.mode {
            None | Some(DriverMode::Request) => spec.mode = Some(DriverMode::Request),
            Some(other) => {
                let name = if other == DriverMode::Echo {
                    "echo"
                } else {
                    "idle"
                };
                return Err(SweepError::Usage(format!(
                    "sweep puts requests through a pool, but the mode is {name}: drop --mode \
                     (or mode in the scenario file), or set it to request"
                )));
            }
        }
        let scenarios: Vec<Scenario> = pools
            .bounds()
            .into_iter()
            .map(|pool| step_scenario(&spec, pool))
            .collect::<Result<_, _>>()?;
        let rate = match scenarios[0].pace {
            Pace::Constant { per_s } => Some(per_s),
            _ => None,
        };
        let dir = out.unwrap_or_else(|| {
            runner::default_results_dir(&format!("sweep-{}", scenarios[0].name))
        });
        Ok(Sweep {
            spec,
            pools,
            goal,
            rate,
            dir,
        })
    }

    /// Runs the steps one after the other (silently: `progress` hears of
    /// each as it starts and ends), then writes `sweep.csv`. A step
    /// stopped by a signal is the last; the steps done so far are kept.
    pub fn run(self, mut progress: impl FnMut(Progress<'_>)) -> Result<Swept, SweepError> {
        let dir = self.dir;
        std::fs::create_dir_all(&dir).map_err(|e| {
            SweepError::Usage(format!("cannot write results to '{}': {e}", dir.display()))
        })?;
        let mut rows: Vec<StepRow> = Vec::new();
        let mut done = Vec::new();
        let mut interrupted = false;
        while let Some(pool) = self.pools.next(&done) {
            progress(Progress::Starting(pool));
            let scenario = step_scenario(&self.spec, pool)?;
            let planned = scenario.duration;
            let finished = runner::execute(
                scenario,
                Output::Silent,
                Some(dir.join(format!("pool-{pool}"))),
                None,
            )
            .map_err(|source| SweepError::Step { pool, source })?;
            finished.written?;
            let mut row = self.goal.row(pool, &finished.summary);
            if finished.interrupted {
                row.not_judged(finished.summary.duration_s, planned);
            }
            progress(Progress::Done(&row));
            done.push((pool, row.meets_goal));
            rows.push(row);
            if finished.interrupted {
                interrupted = true;
                break;
            }
        }
        rows.sort_by_key(|r| r.pool);
        let table = csv(&rows).map_err(|e| SweepError::Table(e.into()))?;
        std::fs::write(dir.join("sweep.csv"), table).map_err(SweepError::Table)?;
        Ok(Swept {
            rows,
            dir,
            rate: self.rate,
            interrupted,
        })
    }
}

impl Swept {
    /// The verdict and Little's law (see [`verdict`]).
    pub fn verdict(&self) -> String {
        verdict(&self.rows, self.rate)
    }
}

/// The scenario of the step with `pool` connections.
fn step_scenario(spec: &ScenarioSpec, pool: u64) -> Result<Scenario, ScenarioError> {
    Scenario::validate(ScenarioSpec {
        pool: Some(pool),
        ..spec.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_goal_parses_each_condition_and_refuses_the_rest() {
        let goal = parse_goal("p99<50ms, errors<0.1%,queue_p50<=2ms").unwrap();
        assert_eq!(goal.0.len(), 3);
        assert_eq!(
            goal.0[0].figure,
            Figure::Latency {
                metric: "total",
                pick: 99
            }
        );
        assert_eq!(goal.0[0].value, 50_000.0);
        assert_eq!(goal.0[1].figure, Figure::Errors);
        assert!((goal.0[1].value - 0.1).abs() < 1e-12);
        assert!(goal.0[2].inclusive);
        for bad in [
            "",
            "p99",
            "p98<5ms",
            "p99<50",
            "errors<2",
            "errors<200%",
            "x_p99<1ms",
        ] {
            let err = parse_goal(bad).unwrap_err();
            assert!(err.contains("p99<50ms,errors<0.1%"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_range_is_searched_down_to_the_smallest_pool_that_meets_the_goal() {
        let range = parse_pool_list("10..1000").unwrap();
        assert_eq!(range, Pools::Range(10, 1000));
        // The goal is met from 137 on.
        let meets = |pool: u64| pool >= 137;
        let mut done = Vec::new();
        while let Some(pool) = range.next(&done) {
            done.push((pool, meets(pool)));
        }
        let pick = done
            .iter()
            .filter(|(_, m)| *m)
            .map(|(p, _)| *p)
            .min()
            .unwrap();
        assert!((137..=137 + 14).contains(&pick), "{done:?}");
        assert!(done.len() <= 12, "{done:?}");
        // Met at the low end: one run; never met: two.
        assert_eq!(range.next(&[(10, true)]), None);
        assert_eq!(range.next(&[(10, false), (1000, false)]), None);
        assert!(parse_pool_list("100..10").is_err());
        let list = parse_pool_list("10,50").unwrap();
        assert_eq!(list.next(&[(10, false)]), Some(50));
        assert_eq!(list.next(&[(10, false), (50, true)]), None);
    }

    #[test]
    fn an_interrupted_step_is_kept_but_not_judged() {
        let step = |pool: u64, meets_goal: bool| StepRow {
            pool,
            achieved_rate_per_s: 100.0,
            queue_p50_us: 0,
            queue_p99_us: 0,
            total_p50_us: 1_000,
            total_p99_us: 2_000,
            service_mean_us: 1_000.0,
            scheduled: 100,
            errors: 0,
            rejects: 0,
            connections: pool,
            first_limit: String::new(),
            meets_goal,
            missed: String::new(),
            interrupted: false,
        };
        // Stopped 0.1 s into its 3 s: a row that "meets" nothing, or all.
        let mut stopped = step(12, true);
        stopped.not_judged(0.1, Some(Duration::from_secs(3)));
        assert!(!stopped.meets_goal);
        assert_eq!(stopped.missed, "interrupted after 0.1 s of 3 s");
        let rows = [step(2, false), stopped.clone()];
        let text = verdict(&rows, Some(100.0));
        assert!(
            text.contains("no pool met the goal (largest tried: 2)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "sweep interrupted during the step with pool 12 (interrupted after 0.1 s of 3 \
                 s): its row is in sweep.csv"
            ),
            "{text}"
        );
        let text = verdict(&[step(2, true), stopped.clone()], None);
        assert!(
            text.starts_with("smallest pool meeting the goal: 2\n"),
            "{text}"
        );
        let text = verdict(&[stopped], None);
        assert!(text.contains("no step ran to its end"), "{text}");
        // The row stays in sweep.csv, with what it measured.
        let table = String::from_utf8(csv(&rows).unwrap()).unwrap();
        assert!(
            !table.contains("interrupted,"),
            "no column of its own: {table}"
        );
        assert!(
            table.contains(",false,interrupted after 0.1 s of 3 s\n"),
            "{table}"
        );
    }

    #[test]
    fn pools_are_a_rising_list() {
        assert_eq!(parse_pools("10,50, 100").unwrap(), vec![10, 50, 100]);
        assert!(parse_pools("50,10").unwrap_err().contains("rising"));
        assert!(parse_pools("0").is_err());
        assert!(parse_pools("10,,20").is_err());
    }
}
