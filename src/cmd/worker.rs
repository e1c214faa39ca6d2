//! `ceiling worker` (hidden): one worker process of `run --processes`.
//!
//! Reads its [`WorkerSpec`] from the first line of stdin, runs its segment
//! of the plan on worker threads, and every tick writes a [`WorkerReport`]
//! (the stats delta since the last one) as a JSON line to stdout. Further
//! stdin lines are the coordinator's controls; the end of stdin (the
//! coordinator is gone) stops the run. Ctrl-C does not reach it: it runs in
//! its own process group, and the coordinator stops it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncBufReadExt;

use crate::engine::clock;
use crate::engine::plan::Plan;
use crate::engine::procs::{self, WorkerSpec};
use crate::engine::rate::Schedule;
use crate::engine::{Engine, Launch};

/// How often a worker reports: the coordinator's tick while there are few
/// workers. With many, each report costs the coordinator a decode and a
/// merge on a machine whose cores the kernel needs for the connections (51
/// workers reporting every tick took ~5% of this 2-core box during the
/// million's climb), so reports thin out to at most [`SLOWEST_REPORT`] apart,
/// staggered across workers by their start. A local stop, such as the first
/// limit under `--stop-at-first-limit`, is reported at once.
fn report_every(workers: usize) -> Duration {
    let ticks = workers.div_ceil(WORKERS_PER_TICK).max(1) as u32;
    (REPORT_TICK * ticks).min(SLOWEST_REPORT)
}

const REPORT_TICK: Duration = Duration::from_millis(100);
const WORKERS_PER_TICK: usize = 10;
const SLOWEST_REPORT: Duration = Duration::from_millis(500);

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
        let start = clock::instant_of_monotonic_ns(spec.start_monotonic_ns);
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
        let every = report_every(spec.workers);
        let mut stdout = tokio::io::stdout();
        let served = procs::serve(&engine, &mut stdin, &mut stdout, every, None, |_, _| {}).await;
        let panics = engine.join();
        served?;
        anyhow::Ok(panics)
    });
    // The stdin reader sits in a blocking read() that only the coordinator
    // can end; waiting for it would keep this process alive, and the
    // coordinator waits for it to exit.
    runtime.shutdown_background();
    let panics = ran?;
    for panic in &panics {
        eprintln!("ceiling worker: {panic}");
    }
    // A failed exit: the coordinator records this process's death, with
    // the lines above as its stderr.
    Ok(if panics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_thin_out_with_many_workers_up_to_half_a_second() {
        let ms = |workers| report_every(workers).as_millis();
        assert_eq!(ms(1), 100);
        assert_eq!(ms(10), 100);
        assert_eq!(ms(11), 200);
        assert_eq!(ms(30), 300);
        assert_eq!(ms(51), 500);
        assert_eq!(ms(2000), 500);
    }
}
