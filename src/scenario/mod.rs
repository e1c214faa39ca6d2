//! Scenario files (TOML, unknown fields refused) and command-line overrides,
//! merged and validated into one [`Scenario`] the engine can trust.

pub mod emit;
pub mod lab;
pub mod request;
pub mod units;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use units::{
    CloseMode, DriverMode, HoldMode, PortPick, PortRange, Processes, RampSpec, SourceSpec,
    StepsSpec, TargetName, TargetSpec,
};

pub use units::MAX_CONNECTIONS;

use crate::model::ResolvedTarget;

/// Connections opened when neither the file nor the flags say.
pub const DEFAULT_CONNECTIONS: u64 = 8_000;
/// Connect rate when neither the file nor the flags say (connects/s).
pub const DEFAULT_RATE: f64 = 4_000.0;
pub const DEFAULT_HOLD: Duration = Duration::from_secs(3);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_MESSAGE: &str = "ping\n";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The largest scenario file read: a scenario is a few hundred bytes, and
/// a file larger than this is not one (or is `/dev/zero`).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Longest echo message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 65_536;

/// A scenario as written in a file or given by flags: every field optional.
/// Flags are turned into one of these and laid over the file's.
///
/// Each field is named after its `ceiling run` flag, with `_` for `-`; the
/// flag's own spelling is accepted too (`connect-timeout`), and so are
/// `target` and `source` (the flags' names) for `targets` and `sources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    pub name: Option<String>,
    #[serde(default, alias = "target", deserialize_with = "units::de_targets")]
    pub targets: Vec<TargetSpec>,
    #[serde(default, alias = "source", deserialize_with = "units::de_sources")]
    pub sources: Vec<SourceSpec>,
    #[serde(
        default,
        alias = "source-ports",
        deserialize_with = "units::de::port_range"
    )]
    pub source_ports: Option<PortRange>,
    #[serde(default, deserialize_with = "units::de::connections")]
    pub connections: Option<u64>,
    #[serde(default, deserialize_with = "units::de::rate")]
    pub rate: Option<f64>,
    #[serde(default, deserialize_with = "units::de::ramp")]
    pub ramp: Option<RampSpec>,
    #[serde(default, deserialize_with = "units::de::steps")]
    pub steps: Option<StepsSpec>,
    #[serde(default, deserialize_with = "units::de::hold")]
    pub hold: Option<HoldMode>,
    #[serde(default, deserialize_with = "units::de::run_duration")]
    pub duration: Option<Duration>,
    #[serde(
        default,
        alias = "connect-timeout",
        deserialize_with = "units::de::connect_timeout"
    )]
    pub connect_timeout: Option<Duration>,
    pub mode: Option<DriverMode>,
    pub message: Option<String>,
    #[serde(default, deserialize_with = "units::de::interval")]
    pub interval: Option<Duration>,
    pub close: Option<CloseMode>,
    #[serde(default, alias = "fd-limit", deserialize_with = "units::de::fd_limit")]
    pub fd_limit: Option<u64>,
    /// Where `fd_limit` was given, for messages about it after validation.
    #[serde(skip)]
    pub fd_limit_from: Origin,
    #[serde(alias = "stop-at-first-limit")]
    pub stop_at_first_limit: Option<bool>,
    #[serde(default, deserialize_with = "units::de::threads")]
    pub threads: Option<u64>,
    /// Most handshakes in flight at once, run-wide.
    #[serde(
        default,
        alias = "max-in-flight",
        deserialize_with = "units::de::max_in_flight"
    )]
    pub max_in_flight: Option<u64>,
    #[serde(default, deserialize_with = "units::de::processes")]
    pub processes: Option<Processes>,
    /// When a socket bound to a source IP gets its port: `connect`
    /// (IP_BIND_ADDRESS_NO_PORT, the default) or `bind`.
    #[serde(alias = "pick-port-at")]
    pub pick_port_at: Option<PortPick>,
    /// Request mode (`mode = "request"`): the pool's size.
    #[serde(default, deserialize_with = "units::de::pool")]
    pub pool: Option<u64>,
    pub protocol: Option<request::RequestProtocol>,
    #[serde(alias = "when-pool-busy")]
    pub when_pool_busy: Option<request::WhenPoolBusy>,
    #[serde(
        default,
        alias = "queue-timeout",
        deserialize_with = "units::de::queue_timeout"
    )]
    pub queue_timeout: Option<Duration>,
    /// HTTP request: method, path, headers ("Name: value"), body.
    pub method: Option<String>,
    pub path: Option<String>,
    #[serde(default, alias = "headers")]
    pub header: Vec<String>,
    pub body: Option<String>,
    /// Redis request: the command (default PING).
    pub command: Option<String>,
    /// `ceiling lab` only: the namespace's settings.
    pub lab: Option<lab::LabSpec>,
}

/// Where a setting was given: messages name the file's key or the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// The scenario file (or a default).
    #[default]
    File,
    /// A command-line flag.
    Flag,
}

impl Origin {
    /// `fd_limit = 100` or `--fd-limit 100`: the setting as the user wrote
    /// it, from its field name.
    pub fn spell(self, field: &str, value: impl fmt::Display) -> String {
        match self {
            Origin::File => format!("{field} = {value} in the scenario file"),
            Origin::Flag => format!("--{} {value}", field.replace('_', "-")),
        }
    }
}

impl ScenarioSpec {
    /// `self` (the file's) with every field that `over` (the command
    /// line's) sets replaced by `over`'s, with its origin. Lists given in
    /// `over` replace the file's lists whole.
    pub fn overridden_by(self, over: ScenarioSpec) -> ScenarioSpec {
        // A rate given on the command line replaces a ramp from the file and
        // the other way round: they are one setting.
        let pace_overridden = over.rate.is_some() || over.ramp.is_some() || over.steps.is_some();
        ScenarioSpec {
            name: over.name.or(self.name),
            targets: pick_list(self.targets, over.targets),
            sources: pick_list(self.sources, over.sources),
            source_ports: over.source_ports.or(self.source_ports),
            connections: over.connections.or(self.connections),
            rate: if pace_overridden {
                over.rate
            } else {
                self.rate
            },
            ramp: if pace_overridden {
                over.ramp
            } else {
                self.ramp
            },
            steps: if pace_overridden {
                over.steps
            } else {
                self.steps
            },
            hold: over.hold.or(self.hold),
            duration: over.duration.or(self.duration),
            connect_timeout: over.connect_timeout.or(self.connect_timeout),
            mode: over.mode.or(self.mode),
            message: over.message.or(self.message),
            interval: over.interval.or(self.interval),
            close: over.close.or(self.close),
            fd_limit_from: if over.fd_limit.is_some() {
                over.fd_limit_from
            } else {
                self.fd_limit_from
            },
            fd_limit: over.fd_limit.or(self.fd_limit),
            stop_at_first_limit: over.stop_at_first_limit.or(self.stop_at_first_limit),
            threads: over.threads.or(self.threads),
            max_in_flight: over.max_in_flight.or(self.max_in_flight),
            processes: over.processes.or(self.processes),
            pick_port_at: over.pick_port_at.or(self.pick_port_at),
            pool: over.pool.or(self.pool),
            protocol: over.protocol.or(self.protocol),
            when_pool_busy: over.when_pool_busy.or(self.when_pool_busy),
            queue_timeout: over.queue_timeout.or(self.queue_timeout),
            method: over.method.or(self.method),
            path: over.path.or(self.path),
            header: pick_list(self.header, over.header),
            body: over.body.or(self.body),
            command: over.command.or(self.command),
            lab: over.lab.or(self.lab),
        }
    }
}

/// Errors in a scenario: all are the user's to fix (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The OS error is part of the message, not a `source()`: printed as a
    /// chain it would appear twice.
    #[error("cannot read scenario file '{path}': {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Not a file ceiling reads: too large, or a device or directory.
    #[error("scenario file '{path}' {why}")]
    NotAScenario { path: PathBuf, why: String },
    /// toml's message carries the line, the column and the field.
    #[error("scenario file '{path}': {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field,
        message: message.into(),
    }
}

/// How attempts are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pace {
    /// As fast as the worker can go.
    Unlimited,
    Constant {
        per_s: f64,
    },
    Ramp(RampSpec),
    /// Each rate held for a while in turn; the last one holds after.
    Steps(StepsSpec),
}

/// A validated scenario: everything the engine needs, defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    /// Empty (and no `target_names`): run against the embedded target
    /// server.
    pub targets: Vec<SocketAddr>,
    /// Targets given by host name, not resolved yet: the run resolves them
    /// when it starts ([`Scenario::with_resolved`]), in its own network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_names: Vec<TargetName>,
    /// Empty: let the kernel pick the source address.
    pub sources: Vec<IpAddr>,
    pub source_ports: Option<PortRange>,
    pub connections: u64,
    pub pace: Pace,
    #[serde(serialize_with = "serialize_hold")]
    pub hold: HoldMode,
    #[serde(serialize_with = "serialize_opt_duration")]
    pub duration: Option<Duration>,
    #[serde(serialize_with = "units::serialize_duration")]
    pub connect_timeout: Duration,
    pub mode: DriverMode,
    /// The echo message as typed (escapes and all).
    pub message: String,
    /// The bytes it stands for ([`units::unescape`]): what echo mode sends.
    #[serde(skip)]
    pub payload: Vec<u8>,
    #[serde(serialize_with = "units::serialize_duration")]
    pub interval: Duration,
    pub close: CloseMode,
    pub fd_limit: Option<u64>,
    /// Where `fd_limit` was given.
    #[serde(skip)]
    pub fd_limit_from: Origin,
    pub stop_at_first_limit: bool,
    /// Worker threads per process (default: one per core, shared among
    /// the processes).
    pub threads: Option<u64>,
    /// Most handshakes in flight at once, run-wide (None: no cap on a paced
    /// run, a window per worker thread on an unpaced one).
    pub max_in_flight: Option<u64>,
    /// None: one process (ceiling's own).
    pub processes: Option<Processes>,
    pub pick_port_at: PortPick,
    /// Request mode's settings (None in the other modes); `pace` is then
    /// the request rate, and the pool is opened as fast as it connects.
    pub requests: Option<request::Requests>,
    /// `[lab]`: only `ceiling lab` runs a scenario that has one. Reported in
    /// the summary's own `lab` object, with the values read back.
    #[serde(skip)]
    pub lab: Option<lab::Lab>,
}

fn serialize_hold<S: serde::Serializer>(hold: &HoldMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hold.to_string())
}

fn serialize_opt_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => units::serialize_duration(d, s),
        None => s.serialize_none(),
    }
}

/// Reads a scenario file: a regular file or a pipe (`<(...)`), at most
/// [`MAX_FILE_BYTES`]. The size is checked on what is read, not only on
/// what the file claims (`/dev/zero` claims 0 bytes).
pub fn load_file(path: &Path) -> Result<ScenarioSpec, ScenarioError> {
    let text = read_bounded(path)?;
    parse_text(&text).map_err(|message| ScenarioError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

fn read_bounded(path: &Path) -> Result<String, ScenarioError> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    let read_error = |error| ScenarioError::Read {
        path: path.to_path_buf(),
        error,
    };
    let refuse = |why: String| ScenarioError::NotAScenario {
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    let kind = meta.file_type();
    let what = if kind.is_dir() {
        Some("a directory")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(refuse(format!(
            "is {what}, not a file: give a scenario file (TOML), e.g. scenarios/load-test.toml"
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        // A regular file says its size; a pipe only that it goes on.
        let size = if kind.is_file() && meta.len() > MAX_FILE_BYTES {
            format!("is {} bytes", meta.len())
        } else {
            format!("has more than {MAX_FILE_BYTES} bytes")
        };
        return Err(refuse(format!(
            "{size}: a scenario file is at most {MAX_FILE_BYTES} bytes (1 MiB); a scenario is a \
             few lines of TOML, so this is another file: give the scenario file"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        refuse(format!(
            "is not UTF-8 text (invalid byte at offset {}): a scenario is a TOML file",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Parses scenario TOML; the error text names line, column and field.
pub fn parse_text(text: &str) -> Result<ScenarioSpec, String> {
    let toml_error = |e: toml::de::Error| e.to_string().trim_end().to_string();
    let table: toml::Table = toml::from_str(text).map_err(toml_error)?;
    check_keys(&table)?;
    toml::from_str(text).map_err(toml_error)
}

/// Keys serde would misread: two spellings of one field (`target` and
/// `targets`), and flags that are not scenario fields (`out`, `ui`).
fn check_keys(table: &toml::Table) -> Result<(), String> {
    // field → the key that gave it (a file may hold many keys: a map).
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for key in table.keys() {
        match key.as_str() {
            "out" => {
                return Err(
                    "`out` is not a scenario field: the results directory is chosen \
                            per run; pass --out DIR instead"
                        .to_string(),
                );
            }
            "ui" => {
                return Err(
                    "`ui` is not a scenario field: the live output is chosen per run; \
                            pass --ui MODE instead"
                        .to_string(),
                );
            }
            _ => {}
        }
        let field = match key.replace('-', "_").as_str() {
            "target" => "targets".to_string(),
            "source" => "sources".to_string(),
            other => other.to_string(),
        };
        if let Some(first) = seen.get(&field) {
            let list = match field.as_str() {
                "targets" => {
                    " (a list holds several: targets = [\"127.0.0.1:7070\", \"127.0.0.1:7071\"])"
                }
                "sources" => " (a list holds several: sources = [\"127.0.0.2\", \"127.0.0.3\"])",
                _ => "",
            };
            return Err(format!(
                "`{first}` and `{key}` are the same setting, given twice: keep one{list}"
            ));
        }
        seen.insert(field, key);
    }
    Ok(())
}

impl Scenario {
    /// Fills in defaults and checks that the values make sense together.
    /// Every value is checked against its documented range here too (flags
    /// and files are checked as they are parsed; a spec built in code is
    /// not), so the engine can trust what it gets.
    pub fn validate(mut spec: ScenarioSpec) -> Result<Scenario, ScenarioError> {
        let name = spec.name.take().unwrap_or_else(|| "default".into());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "name",
                format!("'{name}' is not a usable name: use letters, digits, '-', '_' and '.'"),
            ));
        }
        let lab = spec.lab.take().map(lab::LabSpec::validate).transpose()?;
        let mut target_names: Vec<TargetName> = Vec::new();
        for name in spec.targets.iter().filter_map(|t| t.name.as_ref()) {
            if let Some(first) = target_names
                .iter()
                .find(|n| (&n.host, n.ports) == (&name.host, name.ports))
            {
                return Err(invalid(
                    "targets",
                    format!(
                        "target '{}' appears twice ('{}' and '{}'): remove the duplicate",
                        name.text, first.text, name.text
                    ),
                ));
            }
            if lab.is_some() {
                return Err(invalid(
                    "targets",
                    format!(
                        "target '{}': in a lab the built-in server listens on the targets inside \
                         the namespace, so they are addresses, not names: give an IP address, \
                         e.g. 127.0.0.1:7070",
                        name.text
                    ),
                ));
            }
            target_names.push(name.clone());
        }
        let mut targets = unique(
            "targets",
            "target",
            spec.targets
                .iter()
                .flat_map(|t| t.addrs.iter().map(move |a| (*a, t.text.as_str()))),
        )?;
        if let Some(lab) = &lab {
            if targets.is_empty() {
                targets.push(lab::DEFAULT_LAB_TARGET.parse().expect("a socket address"));
            }
            lab::check_targets(lab, &targets)?;
        }
        let sources = unique(
            "sources",
            "source",
            spec.sources
                .iter()
                .flat_map(|s| s.ips.iter().map(move |ip| (*ip, s.text.as_str()))),
        )?;
        if sources.len() as u64 > units::MAX_SOURCES {
            return Err(invalid(
                "sources",
                format!(
                    "{} source addresses in all; at most {} are allowed",
                    sources.len(),
                    units::MAX_SOURCES
                ),
            ));
        }
        if targets.len() as u64 > units::MAX_TARGETS {
            return Err(invalid(
                "targets",
                format!(
                    "{} target addresses in all; at most {} are allowed",
                    targets.len(),
                    units::MAX_TARGETS
                ),
            ));
        }
        check_families(&sources, &targets)?;

        let connections = spec.connections.unwrap_or(DEFAULT_CONNECTIONS);
        units::CONNECTIONS
            .check(connections)
            .map_err(|e| invalid("connections", e))?;
        let paces = [
            spec.rate.is_some(),
            spec.ramp.is_some(),
            spec.steps.is_some(),
        ];
        if paces.iter().filter(|given| **given).count() > 1 {
            return Err(invalid(
                "rate",
                "give one of a rate, a ramp or steps, not two: --rate R (rate = R in a file) \
                 for a constant rate, --ramp FROM..TO/OVER (ramp = \"FROM..TO/OVER\") for one \
                 that climbs, or --steps RATE,RATE,.../EACH (steps = \"...\") for one that steps",
            ));
        }
        let pace = match (spec.rate, spec.ramp, spec.steps) {
            (_, _, Some(steps)) => {
                steps
                    .check()
                    .map_err(|why| invalid("steps", format!("{}: {why}", steps.text())))?;
                Pace::Steps(steps)
            }
            (_, Some(ramp), None) => {
                ramp.check().map_err(|why| {
                    invalid(
                        "ramp",
                        format!(
                            "{}..{}/{}: {why}",
                            ramp.from,
                            ramp.to,
                            units::format_duration(ramp.over)
                        ),
                    )
                })?;
                Pace::Ramp(ramp)
            }
            (Some(rate), None, None) => {
                units::check_rate(rate).map_err(|e| invalid("rate", format!("{rate} {e}")))?;
                if rate == 0.0 {
                    Pace::Unlimited
                } else {
                    Pace::Constant { per_s: rate }
                }
            }
            (None, None, None) => Pace::Constant {
                per_s: DEFAULT_RATE,
            },
        };
        let mode = spec.mode.unwrap_or_default();
        let requests = requests_of(&spec, mode, pace)?;
        let mut connections = connections;
        let mut pace = pace;
        if let Some(r) = &requests {
            if let Some(allowed) = spec.connections
                && r.pool > allowed
            {
                return Err(invalid(
                    "pool",
                    format!(
                        "a pool of {} is more than the {allowed} connections allowed: the pool's \
                         connections are the run's; lower --pool, or raise --connections (or \
                         drop it: request mode opens exactly the pool)",
                        r.pool
                    ),
                ));
            }
            connections = r.pool;
            if spec.rate.is_none() && spec.ramp.is_none() && spec.steps.is_none() {
                pace = Pace::Constant {
                    per_s: request::DEFAULT_REQUEST_RATE,
                };
            }
            if spec.hold.is_some() {
                return Err(invalid(
                    "hold",
                    "request mode holds the pool's connections until the run ends: drop hold, \
                     and give the run's length with --duration",
                ));
            }
            spec.hold = Some(HoldMode::UntilEnd);
            spec.duration = spec.duration.or(Some(request::DEFAULT_REQUEST_DURATION));
        }
        let hold = spec.hold.unwrap_or(HoldMode::For(DEFAULT_HOLD));
        if let HoldMode::For(d) = hold {
            in_range("hold", &units::HOLD, d)?;
        }
        if hold == HoldMode::UntilEnd && spec.duration.is_none() {
            return Err(invalid(
                "hold",
                "'end' holds until the run's duration ends it: give a duration too (--duration 1m, \
                 or duration = \"1m\" in the file)",
            ));
        }
        if let Some(d) = spec.duration {
            in_range("duration", &units::RUN_DURATION, d)?;
        }
        let connect_timeout = spec.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        in_range("connect_timeout", &units::CONNECT_TIMEOUT, connect_timeout)?;
        let message = spec.message.unwrap_or_else(|| DEFAULT_MESSAGE.into());
        let payload = units::unescape(&message).map_err(|e| invalid("message", e))?;
        if mode == DriverMode::Echo && payload.is_empty() {
            return Err(invalid("message", "echo mode needs a non-empty message"));
        }
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(invalid(
                "message",
                format!(
                    "{} bytes is too long: at most {MAX_MESSAGE_BYTES}",
                    payload.len()
                ),
            ));
        }
        let interval = spec.interval.unwrap_or(DEFAULT_INTERVAL);
        in_range("interval", &units::INTERVAL, interval)?;
        if let Some(limit) = spec.fd_limit {
            units::FD_LIMIT
                .check(limit)
                .map_err(|e| invalid("fd_limit", e))?;
        }
        if let Some(n) = spec.max_in_flight {
            units::MAX_IN_FLIGHT
                .check(n)
                .map_err(|e| invalid("max_in_flight", e))?;
        }
        if let Some(threads) = spec.threads {
            units::THREADS
                .check(threads)
                .map_err(|e| invalid("threads", e))?;
        }
        if let Some(Processes::Count(n)) = spec.processes
            && !(1..=units::MAX_PROCESSES).contains(&n)
        {
            return Err(invalid(
                "processes",
                format!(
                    "{n} is not a process count: use auto or 1 to {}",
                    units::MAX_PROCESSES
                ),
            ));
        }
        let pick_port_at = spec.pick_port_at.unwrap_or_default();
        if pick_port_at == PortPick::Bind {
            if sources.is_empty() {
                return Err(invalid(
                    "pick_port_at",
                    "'bind' picks the port when binding a source IP: give sources too \
                     (e.g. --source 127.0.0.1), or drop it",
                ));
            }
            if spec.source_ports.is_some() {
                return Err(invalid(
                    "pick_port_at",
                    "'bind' lets the kernel pick the port at bind(); source_ports names the \
                     ports itself: give one or the other",
                ));
            }
        }
        Ok(Scenario {
            name,
            targets,
            target_names,
            sources,
            source_ports: spec.source_ports,
            connections,
            pace,
            hold,
            duration: spec.duration,
            connect_timeout,
            mode,
            message,
            payload,
            interval,
            close: spec.close.unwrap_or_default(),
            fd_limit: spec.fd_limit,
            fd_limit_from: spec.fd_limit_from,
            stop_at_first_limit: spec.stop_at_first_limit.unwrap_or(false),
            threads: spec.threads,
            max_in_flight: spec.max_in_flight,
            processes: spec.processes,
            pick_port_at,
            requests,
            lab,
        })
    }

    /// True when no target was given: the embedded server is the target.
    pub fn uses_embedded_target(&self) -> bool {
        self.targets.is_empty() && self.target_names.is_empty()
    }

    /// The scenario with its target names replaced by the addresses they
    /// resolved to (`answers`: each name's addresses, in the resolver's
    /// order, as [`Self::target_names`]), and what each name gave. Every
    /// address becomes a target, on each of the name's ports, but those of
    /// a family no `--source` has (e.g. `::1` with IPv4 sources); an address
    /// that is a target already is one target.
    pub fn with_resolved(
        mut self,
        answers: &[Vec<IpAddr>],
    ) -> Result<(Scenario, Vec<ResolvedTarget>), ScenarioError> {
        let mut resolved = Vec::new();
        let names = std::mem::take(&mut self.target_names);
        for (name, ips) in names.iter().zip(answers) {
            let usable: Vec<IpAddr> = ips
                .iter()
                .copied()
                .filter(|ip| {
                    self.sources.is_empty()
                        || self.sources.iter().any(|s| s.is_ipv4() == ip.is_ipv4())
                })
                .collect();
            if usable.is_empty() {
                let listed: Vec<String> = ips.iter().map(ToString::to_string).collect();
                return Err(invalid(
                    "targets",
                    format!(
                        "target '{}' resolves to {} only, of a family none of the sources has: \
                         add a source of that family, or give the target as an address",
                        name.text,
                        listed.join(", ")
                    ),
                ));
            }
            let mut addresses = Vec::new();
            for ip in usable {
                for port in name.ports.lo..=name.ports.hi {
                    let addr = SocketAddr::new(ip, port);
                    if !self.targets.contains(&addr) {
                        self.targets.push(addr);
                    }
                    addresses.push(addr.to_string());
                }
            }
            resolved.push(ResolvedTarget {
                name: name.text.clone(),
                addresses,
            });
        }
        if self.targets.len() as u64 > units::MAX_TARGETS {
            return Err(invalid(
                "targets",
                format!(
                    "{} target addresses in all once the names are resolved; at most {} are \
                     allowed",
                    self.targets.len(),
                    units::MAX_TARGETS
                ),
            ));
        }
        Ok((self, resolved))
    }
}

/// Request mode's settings from the spec; None in another mode, where
/// giving any of them is refused.
fn requests_of(
    spec: &ScenarioSpec,
    mode: DriverMode,
    pace: Pace,
) -> Result<Option<request::Requests>, ScenarioError> {
    if mode != DriverMode::Request {
        let given = [
            ("pool", spec.pool.is_some()),
            ("protocol", spec.protocol.is_some()),
            ("when_pool_busy", spec.when_pool_busy.is_some()),
            ("queue_timeout", spec.queue_timeout.is_some()),
            ("method", spec.method.is_some()),
            ("path", spec.path.is_some()),
            ("header", !spec.header.is_empty()),
            ("body", spec.body.is_some()),
            ("command", spec.command.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(_, given)| *given) {
            return Err(invalid(
                field,
                format!(
                    "{field} is a setting of request mode: add --mode request (mode = \
                     \"request\" in a file), or drop it"
                ),
            ));
        }
        return Ok(None);
    }
    let pool = spec.pool.unwrap_or(request::DEFAULT_POOL);
    units::POOL.check(pool).map_err(|e| invalid("pool", e))?;
    let protocol = spec.protocol.unwrap_or(request::RequestProtocol::Http);
    let http_only = [
        ("method", spec.method.is_some()),
        ("path", spec.path.is_some()),
        ("header", !spec.header.is_empty()),
        ("body", spec.body.is_some()),
    ];
    if protocol != request::RequestProtocol::Http
        && let Some((field, _)) = http_only.iter().find(|(_, given)| *given)
    {
        return Err(invalid(
            field,
            format!("{field} is a setting of HTTP requests: add --protocol http, or drop it"),
        ));
    }
    if protocol != request::RequestProtocol::Redis && spec.command.is_some() {
        return Err(invalid(
            "command",
            "command is a setting of Redis requests: add --protocol redis, or drop it",
        ));
    }
    let closed_loop = matches!(pace, Pace::Unlimited);
    if closed_loop {
        let flag = if spec.when_pool_busy.is_some() {
            Some("when_pool_busy")
        } else if spec.queue_timeout.is_some() {
            Some("queue_timeout")
        } else {
            None
        };
        if let Some(field) = flag {
            return Err(invalid(
                field,
                format!(
                    "{field} says what a request due at a rate does when no connection is \
                     free, but rate 0 is a closed loop (each connection sends its next request \
                     when its response is in: none waits): give a rate (--rate 3000), or drop \
                     {field}"
                ),
            ));
        }
    }
    let method = spec.method.clone().unwrap_or_else(|| "GET".into());
    request::check_method(&method).map_err(|e| invalid("method", e))?;
    let path = spec.path.clone().unwrap_or_else(|| "/".into());
    request::check_path(&path).map_err(|e| invalid("path", e))?;
    for header in &spec.header {
        request::check_header(header).map_err(|e| invalid("header", e))?;
    }
    let body = spec.body.clone().unwrap_or_default();
    units::unescape(&body).map_err(|e| invalid("body", e))?;
    let command = spec.command.clone().unwrap_or_else(|| "PING".into());
    request::check_command(&command).map_err(|e| invalid("command", e))?;
    let queue_timeout = spec.queue_timeout.unwrap_or(request::DEFAULT_QUEUE_TIMEOUT);
    in_range("queue_timeout", &units::QUEUE_TIMEOUT, queue_timeout)?;
    Ok(Some(request::Requests {
        protocol,
        pool,
        when_pool_busy: spec.when_pool_busy.unwrap_or_default(),
        queue_timeout,
        method,
        path,
        headers: spec.header.clone(),
        body,
        command,
    }))
}

/// Every target must be reachable from at least one source of its family.
fn check_families(sources: &[IpAddr], targets: &[SocketAddr]) -> Result<(), ScenarioError> {
    if sources.is_empty() {
        return Ok(());
    }
    for target in targets {
        if !sources.iter().any(|s| s.is_ipv4() == target.is_ipv4()) {
            let family = if target.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(invalid(
                "sources",
                format!(
                    "target {target} is {family} but no source is: add a {family} source or drop the target"
                ),
            ));
        }
    }
    Ok(())
}

/// `Err` naming the field when `d` is outside `range`.
fn in_range(
    field: &'static str,
    range: &units::DurationRange,
    d: Duration,
) -> Result<(), ScenarioError> {
    range
        .check(d)
        .map_err(|e| invalid(field, format!("{} {e}", units::format_duration(d))))
}

/// The addresses in order, refusing one given twice (the same target
/// twice is one target: a lab's server could not listen on it twice, and
/// a run would count its connections as two targets'). `items` pairs each
/// address with the value it came from.
fn unique<A: Copy + Eq + std::hash::Hash + fmt::Display>(
    field: &'static str,
    flag: &str,
    items: impl Iterator<Item = (A, impl AsRef<str>)>,
) -> Result<Vec<A>, ScenarioError> {
    let mut seen: std::collections::HashMap<A, String> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (addr, text) in items {
        let text = text.as_ref();
        if let Some(first) = seen.get(&addr) {
            let given = if first == text {
                format!("'{text}' is given twice")
            } else {
                format!("'{first}' and '{text}' both include it")
            };
            return Err(invalid(
                field,
                format!(
                    "{flag} {addr} appears twice ({given}): remove the duplicate (--{flag} may \
                     be repeated, but each {flag} only once)"
                ),
            ));
        }
        seen.insert(addr, text.to_string());
        out.push(addr);
    }
    Ok(out)
}

/// A list from the flags replaces the file's list; an empty one keeps it.
fn pick_list<T>(mine: Vec<T>, theirs: Vec<T>) -> Vec<T> {
    if theirs.is_empty() { mine } else { theirs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(text: &str) -> Result<Scenario, String> {
        let spec = parse_text(text)?;
        Scenario::validate(spec).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_file_parses_with_suffixed_values() {
        let s = validated(
            r#"
            name = "lt"
            targets = ["127.0.0.1:7070-7071"]
            sources = ["127.0.0.2-127.0.0.3"]
            connections = "10k"
            ramp = "0..2k/10s"
            hold = "5s"
            duration = "1m"
            mode = "echo"
            close = "rst"
            "#,
        )
        .unwrap();
        assert_eq!(s.targets.len(), 2);
        assert_eq!(s.sources.len(), 2);
        assert_eq!(s.connections, 10_000);
        assert!(matches!(s.pace, Pace::Ramp(r) if r.to == 2000.0));
        assert_eq!(s.hold, HoldMode::For(Duration::from_secs(5)));
        assert_eq!(s.close, CloseMode::Rst);
    }

    #[test]
    fn unknown_fields_and_bad_values_name_line_and_field() {
        let err = validated("connections = 10\nconections = 5\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("unknown field `conections`"), "{err}");
        let err = validated("targets = [\"127.0.0.1:99999\"]\n").unwrap_err();
        assert!(
            err.contains("line 1") && err.contains("out of range"),
            "{err}"
        );
        let err = validated("hold = \"3\"\n").unwrap_err();
        assert!(err.contains("500ms"), "{err}");
    }

    #[test]
    fn flags_override_the_file_and_rate_replaces_ramp() {
        let file = parse_text("connections = 100\nramp = \"0..10/1s\"\nhold = \"1s\"\n").unwrap();
        let flags = ScenarioSpec {
            rate: Some(50.0),
            connections: Some(7),
            ..Default::default()
        };
        let s = Scenario::validate(file.overridden_by(flags)).unwrap();
        assert_eq!(s.connections, 7);
        assert_eq!(s.pace, Pace::Constant { per_s: 50.0 });
        assert_eq!(s.hold, HoldMode::For(Duration::from_secs(1)));
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        assert!(
            validated("rate = 5\nramp = \"0..5/1s\"\n")
                .unwrap_err()
                .contains("not two")
        );
        assert!(
            validated("ramp = \"0..5/1s\"\nsteps = \"1,2/1s\"\n")
                .unwrap_err()
                .contains("--steps RATE,RATE,.../EACH")
        );
        assert!(
            validated("hold = \"end\"\n")
                .unwrap_err()
                .contains("duration")
        );
        assert!(
            validated("sources = [\"127.0.0.2\"]\ntargets = [\"[::1]:80\"]\n")
                .unwrap_err()
                .contains("IPv6")
        );
        assert!(validated("fd_limit = 3\n").is_err());
        assert!(validated("name = \"a b\"\n").is_err());
        assert!(validated("connections = 0\n").is_err());
    }

    #[test]
    fn target_names_are_kept_until_resolved_then_every_address_is_a_target() {
        let s = validated("targets = [\"svc.test:7070-7071\", \"127.0.0.9:80\"]\n").unwrap();
        // Parsing does no I/O: the name waits for the run.
        assert_eq!(s.targets, vec!["127.0.0.9:80".parse().unwrap()]);
        assert_eq!(s.target_names.len(), 1);
        assert!(!s.uses_embedded_target());
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let (s, resolved) = s
            .with_resolved(&[vec![ip("127.0.0.1"), ip("127.0.0.9")]])
            .unwrap();
        assert!(s.target_names.is_empty());
        let targets: Vec<String> = s.targets.iter().map(ToString::to_string).collect();
        // 127.0.0.9:80 was a target already; the name's own ports are new.
        assert_eq!(
            targets,
            [
                "127.0.0.9:80",
                "127.0.0.1:7070",
                "127.0.0.1:7071",
                "127.0.0.9:7070",
                "127.0.0.9:7071"
            ]
        );
        assert_eq!(resolved[0].name, "svc.test:7070-7071");
        assert_eq!(resolved[0].addresses.len(), 4);
    }

    #[test]
    fn resolved_addresses_of_a_family_no_source_has_are_left_out() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let s = validated("targets = [\"localhost:7070\"]\nsources = [\"127.0.0.2\"]\n").unwrap();
        let (s, resolved) = s
            .clone()
            .with_resolved(&[vec![ip("::1"), ip("127.0.0.1")]])
            .unwrap();
        assert_eq!(s.targets, vec!["127.0.0.1:7070".parse().unwrap()]);
        assert_eq!(resolved[0].addresses, ["127.0.0.1:7070"]);
        let err = validated("targets = [\"localhost:7070\"]\nsources = [\"127.0.0.2\"]\n")
            .unwrap()
            .with_resolved(&[vec![ip("::1")]])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'localhost:7070' resolves to ::1 only"),
            "{err}"
        );
    }

    #[test]
    fn lab_targets_stay_addresses_and_a_name_is_given_once() {
        let err = validated("targets = [\"localhost:7070\"]\n[lab]\n").unwrap_err();
        assert!(err.contains("not names: give an IP address"), "{err}");
        let err = validated("targets = [\"svc.test:80\", \"svc.test:80\"]\n").unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
    }

    #[test]
    fn a_target_or_source_given_twice_is_refused_naming_it() {
        let err = validated("targets = [\"127.0.0.1:7070\", \"127.0.0.1:7070\"]\n").unwrap_err();
        assert!(err.contains("127.0.0.1:7070 appears twice"), "{err}");
        let err =
            validated("targets = [\"127.0.0.1:7070-7072\", \"127.0.0.1:7071\"]\n").unwrap_err();
        assert!(
            err.contains("'127.0.0.1:7070-7072' and '127.0.0.1:7071'"),
            "{err}"
        );
        let err = validated("sources = [\"127.0.0.2\", \"127.0.0.1/30\"]\n").unwrap_err();
        assert!(err.contains("source 127.0.0.2 appears twice"), "{err}");
        let err =
            validated("targets = [\"127.0.0.1:7070\", \"127.0.0.1:7070\"]\n[lab]\n").unwrap_err();
        assert!(err.contains("remove the duplicate"), "{err}");
    }

    #[test]
    fn flag_names_and_single_values_are_accepted_as_keys() {
        let s = validated(
            "target = \"127.0.0.1:7070\"\nsource = \"127.0.0.2\"\nconnect-timeout = \"2s\"\n\
             fd-limit = 100\nstop-at-first-limit = true\npick-port-at = \"bind\"\n",
        )
        .unwrap();
        assert_eq!(s.targets, vec!["127.0.0.1:7070".parse().unwrap()]);
        assert_eq!(s.sources, vec!["127.0.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.fd_limit, Some(100));
        assert!(s.stop_at_first_limit);
        assert_eq!(s.pick_port_at, PortPick::Bind);
        let s =
            validated("targets = \"127.0.0.1:7070-7071\"\nsources = [\"127.0.0.2\"]\n").unwrap();
        assert_eq!(s.targets.len(), 2);
        let err =
            validated("target = \"127.0.0.1:7070\"\ntargets = [\"127.0.0.1:7071\"]\n").unwrap_err();
        assert!(
            err.contains("`target` and `targets` are the same setting"),
            "{err}"
        );
        let err = validated("fd_limit = 100\nfd-limit = 200\n").unwrap_err();
        assert!(err.contains("`fd-limit` and `fd_limit`"), "{err}");
        let wide = "\"127.0.0.1:1-65535\", ".repeat(3);
        let err = validated(&format!("targets = [{wide}]\n")).unwrap_err();
        assert!(err.contains("past 65536 target addresses"), "{err}");
        let err = validated("targets = 7070\n").unwrap_err();
        assert!(err.contains("a string or a list of strings"), "{err}");
        assert!(
            validated("out = \"x\"\n")
                .unwrap_err()
                .contains("--out DIR")
        );
        assert!(
            validated("ui = \"none\"\n")
                .unwrap_err()
                .contains("--ui MODE")
        );
    }

    #[test]
    fn ranges_are_checked_on_specs_built_in_code_too() {
        let spec = |f: fn(&mut ScenarioSpec)| {
            let mut spec = ScenarioSpec::default();
            f(&mut spec);
            Scenario::validate(spec).map_err(|e| e.to_string())
        };
        const FAR: Duration = Duration::from_secs(u64::MAX);
        assert!(
            spec(|s| s.duration = Some(FAR))
                .unwrap_err()
                .contains("1ms to 30d")
        );
        assert!(spec(|s| s.hold = Some(HoldMode::For(FAR))).is_err());
        assert!(spec(|s| s.connect_timeout = Some(FAR)).is_err());
        assert!(spec(|s| s.interval = Some(FAR)).is_err());
        assert!(spec(|s| s.rate = Some(1e-300)).is_err());
        assert!(spec(|s| s.rate = Some(f64::NAN)).is_err());
        assert!(spec(|s| s.threads = Some(0)).is_err());
        assert!(spec(|s| s.connections = Some(0)).is_err());
        assert!(spec(|s| s.processes = Some(Processes::Count(0))).is_err());
        assert!(
            spec(|s| {
                s.ramp = Some(RampSpec {
                    from: 0.0,
                    to: 1.0,
                    over: FAR,
                })
            })
            .is_err()
        );
        assert_eq!(spec(|s| s.rate = Some(0.0)).unwrap().pace, Pace::Unlimited);
    }

    #[test]
    fn where_fd_limit_was_given_is_kept_for_messages() {
        let file = parse_text("fd_limit = \"1m\"\n").unwrap();
        let s = Scenario::validate(file.clone().overridden_by(ScenarioSpec::default())).unwrap();
        assert_eq!(
            s.fd_limit_from.spell("fd_limit", 7),
            "fd_limit = 7 in the scenario file"
        );
        let flags = ScenarioSpec {
            fd_limit: Some(100),
            fd_limit_from: Origin::Flag,
            ..Default::default()
        };
        let s = Scenario::validate(file.overridden_by(flags)).unwrap();
        assert_eq!(s.fd_limit_from.spell("fd_limit", 7), "--fd-limit 7");
    }

    #[test]
    fn a_scenario_file_is_read_within_a_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "#".repeat(2 << 20)).unwrap();
        let err = load_file(&big).unwrap_err().to_string();
        assert!(
            err.contains("big.toml") && err.contains("2097152 bytes"),
            "{err}"
        );
        assert!(err.contains("1048576"), "{err}");
        let err = load_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("character device"),
            "{err}"
        );
        let err = load_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        let err = load_file(&dir.path().join("none.toml")).unwrap_err();
        // The OS error once, in the message, and not again as a source.
        assert_eq!(err.to_string().matches("os error 2").count(), 1, "{err}");
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn defaults_fill_an_empty_file() {
        let s = validated("").unwrap();
        assert!(s.uses_embedded_target());
        assert_eq!(s.connections, DEFAULT_CONNECTIONS);
        assert_eq!(
            s.pace,
            Pace::Constant {
                per_s: DEFAULT_RATE
            }
        );
        assert_eq!(s.mode, DriverMode::Idle);
    }
}
