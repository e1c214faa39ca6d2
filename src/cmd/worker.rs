//! `ceiling worker` (hidden): one worker process of `run --processes`.
//!
//! Reads its [`WorkerSpec`] from the first line of stdin, runs its segment
//! of the plan on worker threads, and every tick writes a [`WorkerReport`]
//! (the stats delta since the last one) as a JSON line to stdout. Further
//! stdin lines are the coordinator's controls; the end of stdin (the
//! coordinator is gone) stops the run. Ctrl-C does not reach it: it runs in
//! its own process group, and the coordinator stops it.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio::time::Instant;

use crate::engine::plan::Plan;
use crate::engine::procs::{ControlLine, WorkerReport, WorkerSpec};
use crate::engine::rate::Schedule;
use crate::engine::{Engine, Launch, StopReason};
use crate::stats::Delta;
use crate::stats::wire::WireDelta;

/// How often the worker reports (the coordinator's tick).
const REPORT_EVERY: Duration = Duration::from_millis(100);

pub fn worker() -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ran = runtime.block_on(async {
        // One reader for the spec and the controls after it: a second one
        // would lose what the first had buffered.
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let first = stdin
            .next_line()
            .await
            .context("cannot read the worker spec from stdin")?
            .unwrap_or_default();
        let spec: WorkerSpec = serde_json::from_str(&first).context(
            "stdin does not start with a worker spec: `ceiling worker` is started by `ceiling \
             run --processes`, not by hand",
        )?;
        let source_count = spec.sources.len();
        let start = Instant::now()
            .checked_sub(spec.started_ago)
            .unwrap_or_else(Instant::now);
        let plan = Plan::new(
            spec.sources,
            spec.targets,
            spec.source_ports,
            spec.connections,
        );
        let engine = Engine::start(
            plan,
            spec.settings,
            spec.segment,
            spec.threads,
            Launch {
                start,
                target_local: spec.target_local,
                listen_drops_at_start: spec.listen_drops_at_start,
            },
        )
        .context("cannot start worker threads")?;
        engine.set_schedule(Schedule::from_wire(start, spec.schedule));
        if let Some(reason) = spec.stop {
            engine.stop(reason);
        }
        let reported = report_until_done(&engine, stdin, start, source_count).await;
        engine.join();
        reported
    });
    // The stdin reader sits in a blocking read() that only the coordinator
    // can end; waiting for it would keep this process alive, and the
    // coordinator waits for it to exit.
    runtime.shutdown_background();
    ran?;
    Ok(ExitCode::SUCCESS)
}

/// Reports every tick and follows the controls until every worker thread
/// has finished.
async fn report_until_done(
    engine: &Engine,
    mut controls: Lines<BufReader<Stdin>>,
    start: Instant,
    source_count: usize,
) -> anyhow::Result<()> {
    let mut controls_open = true;
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stdout = std::io::stdout().lock();
    // What the workers recorded since the last report; emptied after each.
    let mut delta = Delta::new(source_count);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = engine.finished() => {}
            line = controls.next_line(), if controls_open => {
                match line {
                    Ok(Some(line)) => {
                        let control: ControlLine = serde_json::from_str(&line)
                            .context("unreadable control line from the coordinator")?;
                        engine.set_schedule(Schedule::from_wire(start, control.schedule));
                        if let Some(reason) = control.stop {
                            engine.stop(reason);
                        }
                    }
                    // The coordinator is gone: close what we hold and end.
                    Ok(None) | Err(_) => {
                        controls_open = false;
                        engine.stop(StopReason::Interrupted);
                    }
                }
                continue;
            }
        }
        let finished = engine.is_finished();
        engine.drain(|d| delta.merge(d));
        let report = WorkerReport {
            delta: WireDelta::from(&delta),
            active: engine.active(),
            opening: engine.is_opening(),
            finished,
        };
        let mut line = serde_json::to_string(&report).expect("a report serializes");
        line.push('\n');
        if stdout
            .write_all(line.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // Nobody is listening any more.
            engine.stop(StopReason::Interrupted);
        }
        delta.reset();
        if finished {
            return Ok(());
        }
    }
}
