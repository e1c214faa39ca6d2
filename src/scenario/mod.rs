//! Scenario files (TOML, unknown fields refused) and command-line overrides,
//! merged and validated into one [`Scenario`] the engine can trust.

pub mod emit;
pub mod lab;
pub mod units;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use units::{
    CloseMode, DriverMode, HoldMode, PortPick, PortRange, Processes, RampSpec, SourceSpec,
    TargetSpec,
};

/// Connections opened when neither the file nor the flags say.
pub const DEFAULT_CONNECTIONS: u64 = 8_000;
/// Connect rate when neither the file nor the flags say (connects/s).
pub const DEFAULT_RATE: f64 = 4_000.0;
pub const DEFAULT_HOLD: Duration = Duration::from_secs(3);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_MESSAGE: &str = "ping\n";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Above this many attempts a run is almost surely a typo.
pub const MAX_CONNECTIONS: u64 = 100_000_000;

/// A scenario as written in a file or given by flags: every field optional.
/// Flags are turned into one of these and laid over the file's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "units::de_targets")]
    pub targets: Vec<TargetSpec>,
    #[serde(default, deserialize_with = "units::de_sources")]
    pub sources: Vec<SourceSpec>,
    #[serde(default, deserialize_with = "units::de::port_range")]
    pub source_ports: Option<PortRange>,
    #[serde(default, deserialize_with = "units::de::count")]
    pub connections: Option<u64>,
    #[serde(default, deserialize_with = "units::de::rate")]
    pub rate: Option<f64>,
    #[serde(default, deserialize_with = "units::de::ramp")]
    pub ramp: Option<RampSpec>,
    #[serde(default, deserialize_with = "units::de::hold")]
    pub hold: Option<HoldMode>,
    #[serde(default, deserialize_with = "units::de::duration")]
    pub duration: Option<Duration>,
    #[serde(default, deserialize_with = "units::de::duration")]
    pub connect_timeout: Option<Duration>,
    pub mode: Option<DriverMode>,
    pub message: Option<String>,
    #[serde(default, deserialize_with = "units::de::duration")]
    pub interval: Option<Duration>,
    pub close: Option<CloseMode>,
    #[serde(default, deserialize_with = "units::de::count")]
    pub fd_limit: Option<u64>,
    pub stop_at_first_limit: Option<bool>,
    #[serde(default, deserialize_with = "units::de::count")]
    pub threads: Option<u64>,
    #[serde(default, deserialize_with = "units::de::processes")]
    pub processes: Option<Processes>,
    /// When a socket bound to a source IP gets its port: `connect`
    /// (IP_BIND_ADDRESS_NO_PORT, the default) or `bind`.
    pub pick_port_at: Option<PortPick>,
    /// `ceiling lab` only: the namespace's settings.
    pub lab: Option<lab::LabSpec>,
}

impl ScenarioSpec {
    /// `self` with every field that `over` sets replaced by `over`'s.
    /// Lists given in `over` replace the file's lists whole.
    pub fn overridden_by(self, over: ScenarioSpec) -> ScenarioSpec {
        // A rate given on the command line replaces a ramp from the file and
        // the other way round: they are one setting.
        let pace_overridden = over.rate.is_some() || over.ramp.is_some();
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
            hold: over.hold.or(self.hold),
            duration: over.duration.or(self.duration),
            connect_timeout: over.connect_timeout.or(self.connect_timeout),
            mode: over.mode.or(self.mode),
            message: over.message.or(self.message),
            interval: over.interval.or(self.interval),
            close: over.close.or(self.close),
            fd_limit: over.fd_limit.or(self.fd_limit),
            stop_at_first_limit: over.stop_at_first_limit.or(self.stop_at_first_limit),
            threads: over.threads.or(self.threads),
            processes: over.processes.or(self.processes),
            pick_port_at: over.pick_port_at.or(self.pick_port_at),
            lab: over.lab.or(self.lab),
        }
    }
}

/// Errors in a scenario: all are the user's to fix (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file '{path}': {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
}

/// A validated scenario: everything the engine needs, defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    /// Empty: run against the embedded target server.
    pub targets: Vec<SocketAddr>,
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
    pub message: String,
    #[serde(serialize_with = "units::serialize_duration")]
    pub interval: Duration,
    pub close: CloseMode,
    pub fd_limit: Option<u64>,
    pub stop_at_first_limit: bool,
    /// Worker threads per process (default: one per core, shared among
    /// the processes).
    pub threads: Option<u64>,
    /// None: one process (ceiling's own).
    pub processes: Option<Processes>,
    pub pick_port_at: PortPick,
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

/// Reads a scenario file.
pub fn load_file(path: &Path) -> Result<ScenarioSpec, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_text(&text).map_err(|message| ScenarioError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses scenario TOML; the error text names line, column and field.
pub fn parse_text(text: &str) -> Result<ScenarioSpec, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

impl Scenario {
    /// Fills in defaults and checks that the values make sense together.
    pub fn validate(spec: ScenarioSpec) -> Result<Scenario, ScenarioError> {
        let name = spec.name.unwrap_or_else(|| "default".into());
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
        let lab = spec.lab.map(lab::LabSpec::validate).transpose()?;
        let mut targets: Vec<SocketAddr> = spec
            .targets
            .iter()
            .flat_map(|t| t.addrs.iter().copied())
            .collect();
        if let Some(lab) = &lab {
            if targets.is_empty() {
                targets.push(lab::DEFAULT_LAB_TARGET.parse().expect("a socket address"));
            }
            lab::check_targets(lab, &targets)?;
        }
        let sources: Vec<IpAddr> = spec
            .sources
            .iter()
            .flat_map(|s| s.ips.iter().copied())
            .collect();
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
        if connections > MAX_CONNECTIONS {
            return Err(invalid(
                "connections",
                format!("{connections} is more than ceiling allows in one run ({MAX_CONNECTIONS})"),
            ));
        }
        let pace = match (spec.rate, spec.ramp) {
            (Some(_), Some(_)) => {
                return Err(invalid("rate", "give either a rate or a ramp, not both"));
            }
            (_, Some(ramp)) => {
                if ramp.to == 0.0 {
                    return Err(invalid(
                        "ramp",
                        "the ramp must end above 0 connects/s, or the run would never finish",
                    ));
                }
                Pace::Ramp(ramp)
            }
            (Some(0.0), None) => Pace::Unlimited,
            (Some(rate), None) => Pace::Constant { per_s: rate },
            (None, None) => Pace::Constant {
                per_s: DEFAULT_RATE,
            },
        };
        let hold = spec.hold.unwrap_or(HoldMode::For(DEFAULT_HOLD));
        if hold == HoldMode::UntilEnd && spec.duration.is_none() {
            return Err(invalid(
                "hold",
                "'end' holds until --duration ends the run: give a duration too",
            ));
        }
        if spec.duration.is_some_and(|d| d.is_zero()) {
            return Err(invalid("duration", "must be longer than 0s"));
        }
        let connect_timeout = spec.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect_timeout < Duration::from_millis(1) {
            return Err(invalid("connect_timeout", "must be at least 1ms"));
        }
        let mode = spec.mode.unwrap_or_default();
        let message = spec.message.unwrap_or_else(|| DEFAULT_MESSAGE.into());
        if mode == DriverMode::Echo && message.is_empty() {
            return Err(invalid("message", "echo mode needs a non-empty message"));
        }
        if message.len() > 65_536 {
            return Err(invalid(
                "message",
                format!("{} bytes is too long: at most 65536", message.len()),
            ));
        }
        let interval = spec.interval.unwrap_or(DEFAULT_INTERVAL);
        if interval < Duration::from_millis(1) {
            return Err(invalid("interval", "must be at least 1ms"));
        }
        if let Some(limit) = spec.fd_limit
            && limit < 16
        {
            return Err(invalid(
                "fd_limit",
                format!("{limit} is too low to run at all: use 16 or more"),
            ));
        }
        if let Some(threads) = spec.threads
            && threads > 1024
        {
            return Err(invalid(
                "threads",
                format!("{threads} is too many: use 1 to 1024"),
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
            sources,
            source_ports: spec.source_ports,
            connections,
            pace,
            hold,
            duration: spec.duration,
            connect_timeout,
            mode,
            message,
            interval,
            close: spec.close.unwrap_or_default(),
            fd_limit: spec.fd_limit,
            stop_at_first_limit: spec.stop_at_first_limit.unwrap_or(false),
            threads: spec.threads,
            processes: spec.processes,
            pick_port_at,
            lab,
        })
    }

    /// True when no target was given: the embedded server is the target.
    pub fn uses_embedded_target(&self) -> bool {
        self.targets.is_empty()
    }
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
                .contains("not both")
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
