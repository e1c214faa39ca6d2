//! How a run fits on this host, decided before anything starts: the fd
//! limit, the worker processes and threads, and whether the host has the
//! memory and file table for the sockets it will hold.

use anyhow::Context;

use crate::UsageError;
use crate::classify::capacity::Room;
use crate::classify::host;
use crate::model::thousands;
use crate::scenario::units::{HoldMode, Processes};
use crate::scenario::{Origin, Pace, Scenario};

/// Sets the soft fd limit as asked (`from` says where it was asked), or
/// raises it to the hard limit.
pub fn apply_fd_limit(wanted: Option<u64>, from: Origin) -> anyhow::Result<(u64, u64)> {
    let (soft, hard) = host::nofile_limits().context("cannot read RLIMIT_NOFILE")?;
    let target = match wanted {
        Some(n) if n > hard => {
            return Err(UsageError(format!(
                "{} is above the hard limit {hard}: use at most {hard} ({})",
                from.spell("fd_limit", n),
                host::hard_limit_remedy(n)
            ))
            .into());
        }
        Some(n) => n,
        None => hard,
    };
    if target != soft {
        host::set_nofile_soft(target)
            .with_context(|| format!("cannot set the soft fd limit to {target}"))?;
    }
    Ok((target, hard))
}

/// fds a worker process keeps for itself (stdio, pipes, epoll, /proc
/// reads) beside its connections.
const FDS_KEPT_PER_PROCESS: u64 = 64;

/// Refuses a run whose held sockets would not fit in the host's memory or
/// file table; returns what was checked, for the summary.
pub fn check_host_room(
    scenario: &Scenario,
    target_local: &[bool],
    own_server: bool,
) -> anyhow::Result<String> {
    let connections = peak_connections_estimate(scenario);
    // A target on this host (ceiling's own server included) holds the
    // other end of each connection.
    let server_here = own_server || (!target_local.is_empty() && target_local.iter().all(|&l| l));
    let sockets = connections * if server_here { 2 } else { 1 };
    let Some(room) = Room::read() else {
        return Ok("host room: /proc/meminfo or fs.file-nr unreadable: not checked".into());
    };
    let note = room.check_plan(sockets).map_err(UsageError)?;
    if sockets >= 100_000 {
        eprintln!("ceiling: {note}");
    }
    Ok(note)
}

/// The most connections a run can hold at once: all of them, unless a paced
/// run closes each after a fixed hold (then about rate × hold).
pub fn peak_connections_estimate(scenario: &Scenario) -> u64 {
    let max_rate = match scenario.pace {
        Pace::Unlimited => return scenario.connections,
        Pace::Constant { per_s } => per_s,
        Pace::Ramp(ramp) => ramp.from.max(ramp.to),
        Pace::Steps(steps) => steps.max_rate(),
    };
    match scenario.hold {
        HoldMode::For(hold) => {
            let held_at_once = max_rate * (hold + scenario.connect_timeout).as_secs_f64();
            scenario.connections.min(held_at_once.ceil() as u64)
        }
        HoldMode::UntilEnd => scenario.connections,
    }
}

/// Worker processes and threads for a run.
pub struct WorkerLayout {
    /// 0: worker threads in ceiling's own process.
    pub processes: usize,
    /// Per process.
    pub threads: usize,
    /// Why this layout, for the summary and the user.
    pub reason: String,
}

impl WorkerLayout {
    pub fn choose(scenario: &Scenario, fd_hard: u64) -> anyhow::Result<Self> {
        let connections = scenario.connections;
        let per_process = fd_hard.saturating_sub(FDS_KEPT_PER_PROCESS).max(1);
        let held_at_once = peak_connections_estimate(scenario);
        // Request mode at a rate: one worker thread by default, so the pool
        // is one pool with one queue (each thread has its own part of the
        // pool, of the rate and of the queue).
        let open_loop_requests = scenario.requests.is_some()
            && !matches!(scenario.pace, crate::scenario::Pace::Unlimited);
        let threads = scenario.threads.or(open_loop_requests.then_some(1));
        let (processes, reason) = match scenario.processes {
            // More held at once than one fd table takes, and no --fd-limit
            // asking to meet that limit: worker processes, said out loud.
            None if scenario.fd_limit.is_none() && held_at_once > per_process => {
                let n = held_at_once.div_ceil(per_process);
                (
                    n,
                    format!(
                        "{} connections held at once need more fds than one process has (hard \
                         limit {}): {n} worker processes of up to {} connections each, as \
                         `--processes auto` gives (set --processes N to choose)",
                        thousands(held_at_once),
                        thousands(fd_hard),
                        thousands(per_process)
                    ),
                )
            }
            None => (0, "worker threads in ceiling's own process".to_string()),
            Some(Processes::Auto) => {
                return Ok(WorkerLayout::auto(connections, threads, fd_hard));
            }
            Some(Processes::Count(n)) => (
                n.min(connections),
                format!("{} worker process(es), as asked", n.min(connections)),
            ),
        };
        Ok(WorkerLayout::with(processes, connections, threads, reason))
    }

    /// `--processes auto` for `connections` attempts: as many worker
    /// processes as they need under the hard fd limit, none when one is
    /// enough (a fleet's agent lays out its segment so).
    pub fn auto(connections: u64, threads: Option<u64>, fd_hard: u64) -> WorkerLayout {
        let per_process = fd_hard.saturating_sub(FDS_KEPT_PER_PROCESS).max(1);
        let needed = connections.div_ceil(per_process);
        let (processes, reason) = if needed <= 1 {
            (
                0,
                format!(
                    "--processes auto: {} connections fit in one process under the hard fd \
                     limit of {}: worker threads in ceiling's own process",
                    thousands(connections),
                    thousands(fd_hard)
                ),
            )
        } else {
            (
                needed,
                format!(
                    "--processes auto: {} connections need {needed} worker processes under the \
                     hard fd limit of {} ({} connections each at most)",
                    thousands(connections),
                    thousands(fd_hard),
                    thousands(per_process)
                ),
            )
        };
        WorkerLayout::with(processes, connections, threads, reason)
    }

    /// `processes` (0: threads in this process) with `threads` each, or one
    /// per core shared among them, at most one per connection.
    fn with(
        processes: u64,
        connections: u64,
        threads: Option<u64>,
        reason: String,
    ) -> WorkerLayout {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let shared_cores = match processes {
            0 => cores,
            n => (cores / n).max(1),
        };
        let per_process_connections = connections.div_ceil(processes.max(1));
        let threads = threads
            .unwrap_or(shared_cores)
            .min(per_process_connections)
            .max(1);
        WorkerLayout {
            processes: processes as usize,
            threads: threads as usize,
            reason,
        }
    }
}
