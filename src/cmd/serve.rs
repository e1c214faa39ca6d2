//! `ceiling serve`: the built-in target server as a command.
//!
//! Flags become a [`ServerConfig`]; every listener prints `listening on
//! ADDR:PORT` once it listens (scripts and tests wait for that line); Ctrl-C
//! or SIGTERM stops the server and prints what it accepted and held.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{ServeArgs, ServeMode};
use crate::server::{self, Mode, ServerConfig, ServerTotals};

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = config_from(&args);
    // Signal handlers go in before the first `listening on` line: a script
    // that sends SIGTERM as soon as it reads that line must not kill us
    // with the default action.
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;

    let bound = server::bind(config).map_err(listen_error)?;
    let mut lines = String::new();
    for addr in bound.local_addrs() {
        lines.push_str(&format!("listening on {addr}\n"));
    }
    print_stdout(&lines)?;

    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    let totals = bound.run(shutdown).await;
    print_stdout(&format!("{}\n", exit_line(&totals)))?;
    Ok(ExitCode::SUCCESS)
}

/// The validated server configuration for these flags.
fn config_from(args: &ServeArgs) -> ServerConfig {
    let mut listen: Vec<_> = args
        .listen
        .iter()
        .flat_map(|spec| spec.addrs.iter().copied())
        .collect();
    if listen.is_empty() {
        listen.push(server::DEFAULT_LISTEN);
    }
    ServerConfig {
        listen,
        mode: match args.mode {
            ServeMode::Echo => Mode::Echo,
            ServeMode::Hold => Mode::Hold,
            ServeMode::Close => Mode::Close,
        },
        backlog: args.backlog,
        accept: !args.no_accept,
    }
}

/// `accepted 10000, peak held 10000, held at exit 9998, accept errors 0`
fn exit_line(totals: &ServerTotals) -> String {
    format!(
        "accepted {}, peak held {}, held at exit {}, accept errors {}",
        totals.accepted, totals.peak_held, totals.held, totals.accept_errors
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
        let config = config_from(&ServeArgs::default());
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
        };
        let config = config_from(&args);
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
        };
        assert_eq!(
            exit_line(&totals),
            "accepted 10000, peak held 10000, held at exit 9998, accept errors 0"
        );
    }
}
