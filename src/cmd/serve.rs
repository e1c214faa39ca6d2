//! `ceiling serve`: the built-in target server as a command.
//!
//! Flags become a [`ServerConfig`] and [`ServeOptions`]; every listener
//! prints `listening on ADDR:PORT` once it listens (scripts and tests wait
//! for that line); Ctrl-C or SIGTERM stops the server and prints what it
//! accepted and held (and in a request mode, the requests it answered and
//! turned away), then a `stats:` line (also printed once a second with
//! `--stats`). Flags that do not fit together (`--service-time` or the
//! pool without a request mode, pool options without the pool) are usage
//! errors before anything listens.
//!
//! With `--processes N` this process becomes a supervisor of N server
//! processes of the same binary (the `processes` submodule): same lines,
//! figures summed over the processes.

mod processes;

use std::future::Future;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::UsageError;
use crate::classify::host;
use crate::cli::{ServeArgs, ServeMode};
use crate::protocol::Protocol;
use crate::server::{
    self, Cap, Mode, Model, Pool, ProcessFigures, ServeOptions, ServerConfig, ServerTotals,
    WhenFull,
};

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    check_fd_limit(args.fd_limit)?;
    check_service_time(&args)?;
    check_pool(&args)?;
    // Signal handlers go in before the first `listening on` line: a script
    // that sends SIGTERM as soon as it reads that line must not kill us
    // with the default action.
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    if args.as_process.is_none() && args.processes > 1 {
        return processes::supervise(args, shutdown).await;
    }
    if let Some(soft) = args.fd_limit {
        host::set_nofile_soft(soft)
            .with_context(|| format!("cannot set the soft fd limit to {soft}"))?;
    }
    serve_here(args, shutdown).await
}

/// Serves from this process: the whole server, or (`--as-process`) one
/// process of `serve --processes`, which reports to its parent in JSON
/// lines instead of the lines a person reads.
async fn serve_here(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<ExitCode> {
    let as_process = args.as_process.is_some();
    let (mut config, options) = config_from(&args);
    // The processes of `--processes` share each address.
    config.reuse_port = as_process;
    let bound = server::bind_with(config, options).map_err(listen_error)?;
    let mut lines = String::new();
    for addr in bound.local_addrs() {
        if as_process {
            lines.push_str(&processes::listening_line(addr));
        } else {
            lines.push_str(&format!("listening on {addr}\n"));
        }
    }
    if as_process {
        // A first report at once: the parent has figures from the start.
        let stats = bound.stats();
        lines.push_str(&processes::report_line(
            false,
            &stats.totals(),
            &ProcessFigures::now(),
        ));
    }
    print_stdout(&lines)?;

    let stats = bound.stats();
    // A server process always reports once a second: its parent sums the
    // reports for --stats, and keeps the last one of a process that dies.
    let ticker = (args.stats || as_process).then(|| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await; // the first tick is now
            loop {
                every.tick().await;
                let (totals, figures) = (stats.totals(), ProcessFigures::now());
                let line = if as_process {
                    processes::report_line(false, &totals, &figures)
                } else {
                    format!("{}\n", stats_line(&totals, &figures))
                };
                if print_stdout(&line).is_err() {
                    return;
                }
            }
        })
    });
    let totals = bound.run(shutdown).await;
    if let Some(ticker) = ticker {
        ticker.abort();
        let _ = ticker.await;
    }
    let figures = ProcessFigures::now();
    print_stdout(&if as_process {
        processes::report_line(true, &totals, &figures)
    } else {
        format!(
            "{}\n{}\n",
            exit_line(&totals, protocol(args.mode).is_some()),
            stats_line(&totals, &figures)
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--fd-limit` within what this process may set (its parser,
/// `units::parse_fd_limit`, has already refused one too low to run).
fn check_fd_limit(wanted: Option<u64>) -> anyhow::Result<()> {
    let Some(wanted) = wanted else {
        return Ok(());
    };
    let (_, hard) = host::nofile_limits().context("cannot read RLIMIT_NOFILE")?;
    if wanted > hard {
        return Err(UsageError(format!(
            "--fd-limit {wanted} is above the hard limit {hard}: use at most {hard} ({}), and --processes N to serve from N fd tables",
            host::hard_limit_remedy(wanted)
        ))
        .into());
    }
    Ok(())
}

/// `--service-time` only where there are requests to take time.
fn check_service_time(args: &ServeArgs) -> Result<(), UsageError> {
    match (args.service_time, protocol(args.mode)) {
        (Some(time), None) => Err(UsageError(format!(
            "--service-time {} needs requests to answer: use it with --mode http, redis or line (--mode {} has none)",
            time.describe(),
            mode_name(args.mode),
        ))),
        _ => Ok(()),
    }
}

/// `--model pool` only in a request mode, its options only with it.
fn check_pool(args: &ServeArgs) -> Result<(), UsageError> {
    let pool_flags = [
        ("--workers", args.workers.is_some()),
        ("--queue", args.queue.is_some()),
        ("--when-queue-full", args.when_queue_full.is_some()),
    ];
    if args.model != Model::Pool {
        if let Some((flag, _)) = pool_flags.iter().find(|(_, given)| *given) {
            return Err(UsageError(format!(
                "{flag} sizes the worker pool: add --model pool (with --mode http, redis or line), or drop {flag}"
            )));
        }
    } else if protocol(args.mode).is_none() {
        return Err(UsageError(format!(
            "--model pool serves requests: use it with --mode http, redis or line (--mode {} has none)",
            mode_name(args.mode)
        )));
    }
    Ok(())
}

fn mode_name(mode: ServeMode) -> String {
    clap::ValueEnum::to_possible_value(&mode).map_or_else(String::new, |v| v.get_name().to_string())
}

/// The protocol a request mode answers.
fn protocol(mode: ServeMode) -> Option<Protocol> {
    match mode {
        ServeMode::Http => Some(Protocol::Http),
        ServeMode::Redis => Some(Protocol::Redis),
        ServeMode::Line => Some(Protocol::Line),
        ServeMode::Echo | ServeMode::Hold | ServeMode::Close => None,
    }
}

/// The validated server configuration for these flags.
fn config_from(args: &ServeArgs) -> (ServerConfig, ServeOptions) {
    let mut listen: Vec<_> = args
        .listen
        .iter()
        .flat_map(|spec| spec.addrs.iter().copied())
        .collect();
    if listen.is_empty() {
        listen.push(server::DEFAULT_LISTEN);
    }
    let config = ServerConfig {
        listen,
        mode: match (args.mode, protocol(args.mode)) {
            (_, Some(protocol)) => Mode::Answer(protocol),
            (ServeMode::Echo, None) => Mode::Echo,
            (ServeMode::Close, None) => Mode::Close,
            (_, None) => Mode::Hold,
        },
        backlog: args.backlog,
        accept: !args.no_accept,
        reuse_port: false,
    };
    let options = ServeOptions {
        model: args.model,
        thread_stack: args.thread_stack,
        // clap refuses --when-full without --max-conns.
        cap: args.max_conns.map(|max| Cap {
            max,
            when_full: args.when_full.unwrap_or(WhenFull::Close),
        }),
        idle_timeout: args.idle_timeout,
        reject_message: args.reject_message.clone().map(String::into_bytes),
        service_time: args.service_time.unwrap_or_default(),
        pool: {
            let default = Pool::default();
            Pool {
                workers: args.workers.unwrap_or(default.workers),
                queue: args.queue.unwrap_or(default.queue),
                when_full: args.when_queue_full.unwrap_or(default.when_full),
            }
        },
    };
    (config, options)
}

/// `accepted 10000, peak held 10000, held at exit 9998, accept errors 0`,
/// and in a request mode (`answers`) `, requests 5, responses 5, request
/// errors 0, busy rejected 0, busy closed 0`.
fn exit_line(totals: &ServerTotals, answers: bool) -> String {
    let mut line = format!(
        "accepted {}, peak held {}, held at exit {}, accept errors {}",
        totals.accepted, totals.peak_held, totals.held, totals.accept_errors
    );
    if answers {
        line.push_str(&format!(
            ", requests {}, responses {}, request errors {}, busy rejected {}, busy closed {}",
            totals.requests,
            totals.responses,
            totals.request_errors,
            totals.busy_rejected,
            totals.busy_closed
        ));
    }
    line
}

/// `stats: accepted 10, held 5, peak held 5, queued 0, rejected 5
/// (full_close 5, full_reset 0, closed_oldest 0, thread_spawn_failed 0),
/// idle closed 0, requests 0, responses 0, request errors 0, busy rejected
/// 0, busy closed 0, request queue 0, workers busy 0, threads 3, rss 5120 KiB, voluntary switches 12,
/// involuntary switches 1, cpu user 0.010 s, cpu system 0.020 s` (one
/// line); a figure the system does not give is `-`.
fn stats_line(totals: &ServerTotals, process: &ProcessFigures) -> String {
    let or_dash = |figure: Option<u64>| figure.map_or("-".to_string(), |n| n.to_string());
    let rejected = &totals.rejected;
    format!(
        "stats: accepted {}, held {}, peak held {}, queued {}, rejected {} (full_close {}, full_reset {}, closed_oldest {}, thread_spawn_failed {}), idle closed {}, requests {}, responses {}, request errors {}, busy rejected {}, busy closed {}, request queue {}, workers busy {}, threads {}, rss {} KiB, voluntary switches {}, involuntary switches {}, cpu user {:.3} s, cpu system {:.3} s",
        totals.accepted,
        totals.held,
        totals.peak_held,
        totals.queued,
        rejected.total(),
        rejected.full_close,
        rejected.full_reset,
        rejected.closed_oldest,
        rejected.thread_spawn_failed,
        totals.idle_closed,
        totals.requests,
        totals.responses,
        totals.request_errors,
        totals.busy_rejected,
        totals.busy_closed,
        totals.request_queue,
        totals.workers_busy,
        or_dash(process.threads),
        or_dash(process.rss_kib),
        process.voluntary_switches,
        process.involuntary_switches,
        process.user_cpu.as_secs_f64(),
        process.system_cpu.as_secs_f64(),
    )
}

/// Writes and flushes; a closed stdout (the reader went away) is not an
/// error worth failing the server for.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(err).context("writing to stdout")
        }
        _ => Ok(()),
    }
}

/// The bind error as the user should read it, with what to change.
fn listen_error(err: io::Error) -> anyhow::Error {
    let hint = match err.kind() {
        io::ErrorKind::AddrInUse => Some(
            "another socket listens on it: stop that process, pick another port, or use port 0 for a free one",
        ),
        io::ErrorKind::AddrNotAvailable => {
            Some("the address is not on this host: use a local address such as 127.0.0.1 or [::1]")
        }
        io::ErrorKind::PermissionDenied => {
            Some("ports below 1024 need root or CAP_NET_BIND_SERVICE: use a higher port, or port 0")
        }
        _ => None,
    };
    let err = anyhow::Error::new(err);
    match hint {
        Some(hint) => anyhow::anyhow!("{err:#}; {hint}"),
        None => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::units::parse_listen;

    #[test]
    fn no_listen_flag_means_one_loopback_listener_on_a_free_port() {
        let (config, options) = config_from(&ServeArgs::default());
        assert_eq!(options, ServeOptions::default());
        assert_eq!(config.listen, ["127.0.0.1:0".parse().unwrap()]);
        assert_eq!(config.mode, Mode::Hold);
        assert!(config.accept);
    }

    #[test]
    fn ranges_and_repeats_become_one_listener_per_port() {
        let args = ServeArgs {
            listen: vec![
                parse_listen("127.0.0.1:7070-7072").unwrap(),
                parse_listen("[::1]:0").unwrap(),
            ],
            mode: ServeMode::Echo,
            backlog: 4,
            no_accept: true,
            ..ServeArgs::default()
        };
        let (config, _) = config_from(&args);
        let ports: Vec<u16> = config.listen.iter().map(|a| a.port()).collect();
        assert_eq!(ports, [7070, 7071, 7072, 0]);
        assert_eq!(config.mode, Mode::Echo);
        assert_eq!(config.backlog, 4);
        assert!(!config.accept);
    }

    #[test]
    fn exit_line_has_the_documented_shape() {
        let totals = ServerTotals {
            accepted: 10_000,
            held: 9_998,
            peak_held: 10_000,
            accept_errors: 0,
            ..ServerTotals::default()
        };
        assert_eq!(
            exit_line(&totals, false),
            "accepted 10000, peak held 10000, held at exit 9998, accept errors 0"
        );
        let answered = ServerTotals {
            requests: 7,
            responses: 6,
            request_errors: 1,
            ..totals
        };
        assert_eq!(
            exit_line(&answered, true),
            "accepted 10000, peak held 10000, held at exit 9998, accept errors 0, requests 7, responses 6, request errors 1, busy rejected 0, busy closed 0"
        );
    }

    #[test]
    fn a_cap_defaults_to_close_and_the_model_and_timeout_pass_through() {
        let args = ServeArgs {
            model: server::Model::Threads,
            thread_stack: 128 * 1024,
            max_conns: Some(50),
            idle_timeout: Some(Duration::from_secs(60)),
            mode: ServeMode::Redis,
            service_time: Some(server::ServiceTime::fixed(Duration::from_millis(2))),
            ..ServeArgs::default()
        };
        let (_, options) = config_from(&args);
        assert_eq!(
            options,
            ServeOptions {
                model: server::Model::Threads,
                thread_stack: 128 * 1024,
                cap: Some(Cap {
                    max: 50,
                    when_full: WhenFull::Close
                }),
                idle_timeout: Some(Duration::from_secs(60)),
                reject_message: None,
                service_time: server::ServiceTime::fixed(Duration::from_millis(2)),
                pool: Pool::default(),
            }
        );
        let (config, _) = config_from(&args);
        assert_eq!(config.mode, Mode::Answer(Protocol::Redis));
    }

    #[test]
    fn a_service_time_without_requests_is_a_usage_error() {
        let args = ServeArgs {
            mode: ServeMode::Echo,
            service_time: Some(server::ServiceTime::fixed(Duration::from_millis(200))),
            ..ServeArgs::default()
        };
        let err = check_service_time(&args).unwrap_err();
        assert_eq!(
            err.0,
            "--service-time 200ms needs requests to answer: use it with --mode http, redis or line (--mode echo has none)"
        );
    }

    #[test]
    fn pool_flags_need_the_pool_and_the_pool_needs_requests() {
        let args = ServeArgs {
            mode: ServeMode::Http,
            workers: Some(5),
            ..ServeArgs::default()
        };
        assert_eq!(
            check_pool(&args).unwrap_err().0,
            "--workers sizes the worker pool: add --model pool (with --mode http, redis or line), or drop --workers"
        );
        let args = ServeArgs {
            model: Model::Pool,
            ..args
        };
        assert!(check_pool(&args).is_ok());
        let (_, options) = config_from(&args);
        assert_eq!(
            options.pool,
            Pool {
                workers: 5,
                ..Pool::default()
            }
        );
        let args = ServeArgs {
            mode: ServeMode::Hold,
            ..args
        };
        assert_eq!(
            check_pool(&args).unwrap_err().0,
            "--model pool serves requests: use it with --mode http, redis or line (--mode hold has none)"
        );
    }

    /// The ranges `serve --help` states are the ones the parsers take.
    #[test]
    fn help_states_the_pool_and_service_time_bounds() {
        use clap::CommandFactory;
        let mut command = crate::cli::Cli::command();
        let help = command
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        let seconds = server::MAX_SERVICE_TIME.as_secs();
        for stated in [
            format!(
                "1 to {}. Default {}",
                server::MAX_WORKERS,
                Pool::default().workers
            ),
            format!(
                "0 to {}. Default {}",
                server::MAX_QUEUE,
                Pool::default().queue
            ),
            format!("0 to {seconds}s"),
            format!("Default {}", Pool::default().when_full.name()),
        ] {
            assert!(help.contains(&stated), "help does not say {stated:?}");
        }
    }

    #[test]
    fn stats_line_names_every_figure() {
        let totals = ServerTotals {
            accepted: 10,
            held: 5,
            peak_held: 5,
            rejected: server::Rejected {
                full_close: 5,
                ..Default::default()
            },
            ..ServerTotals::default()
        };
        let process = ProcessFigures {
            threads: Some(3),
            rss_kib: None,
            voluntary_switches: 12,
            involuntary_switches: 1,
            user_cpu: Duration::from_millis(10),
            system_cpu: Duration::from_millis(20),
        };
        assert_eq!(
            stats_line(&totals, &process),
            "stats: accepted 10, held 5, peak held 5, queued 0, rejected 5 (full_close 5, full_reset 0, closed_oldest 0, thread_spawn_failed 0), idle closed 0, requests 0, responses 0, request errors 0, busy rejected 0, busy closed 0, request queue 0, workers busy 0, threads 3, rss - KiB, voluntary switches 12, involuntary switches 1, cpu user 0.010 s, cpu system 0.020 s"
        );
    }
}
