//! What starts a fleet test on a cluster engine, rendered as text:
//! [`kubernetes`] manifests and a [`slurm`] batch script. The engine places
//! the coordinator (`ceiling run ... --fleet N`) and N agents (`ceiling
//! agent --join`); ceiling coordinates the test. Pure: a checked [`Fleet`]
//! in, text out, no I/O.

pub mod kubernetes;
pub mod slurm;

use std::time::Duration;

use crate::UsageError;
use crate::scenario::Scenario;
use crate::scenario::units::HoldMode;

/// Time added to a fleet's deadline past the join timeout and the run's
/// own length: for pods and steps to start, agents to stop and the
/// coordinator to write its results.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(300);

/// One fleet test, checked, as the engines render it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Agents, one per host.
    pub hosts: u64,
    /// The port the coordinator listens on for its agents.
    pub port: u16,
    pub join_timeout: Duration,
    /// The scenario file given, if any.
    pub scenario: Option<ScenarioFile>,
    /// The run flags after the scenario file, as the user typed them.
    pub run_flags: Vec<String>,
    /// The run's name (the scenario's), for the engine's names.
    pub name: String,
    /// The longest the run lasts once started: its duration, or else
    /// twice the pace's time to open every connection plus a hold and a
    /// connect timeout.
    pub run_time: Duration,
}

/// A scenario file passed to the coordinator: its name is kept (a run
/// without `--name` is named after the file) and its text travels with
/// what is rendered (a ConfigMap, a here-document).
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioFile {
    pub file_name: String,
    pub text: String,
}

/// What [`Fleet::new`] checks.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub hosts: u64,
    pub port: u16,
    pub join_timeout: Duration,
    /// The run arguments as typed: the scenario file first, if any, then
    /// the run flags.
    pub run_args: Vec<String>,
    /// The scenario file's text, when the run arguments name one.
    pub scenario_text: Option<String>,
}

impl Fleet {
    /// Checks what `ceiling run` cannot: the host count against the run
    /// and no `[lab]`. `scenario` is the run arguments, validated.
    pub fn new(spec: FleetSpec, scenario: &Scenario) -> Result<Fleet, UsageError> {
        if spec.hosts > scenario.connections {
            return Err(UsageError(format!(
                "--hosts {} is more than the run's {} connection(s): each agent opens at least \
                 one; use --hosts {} or fewer, or give more --connections",
                spec.hosts, scenario.connections, scenario.connections
            )));
        }
        if scenario.lab.is_some() {
            return Err(UsageError(
                "the scenario has a [lab] section, which only `ceiling lab` applies on one \
                 machine: remove [lab] to run it as a fleet"
                    .into(),
            ));
        }
        let mut run_flags = spec.run_args;
        let scenario_file = match spec.scenario_text {
            Some(text) => {
                let path = run_flags.remove(0);
                Some(ScenarioFile {
                    file_name: scenario_file_name(&path)?,
                    text,
                })
            }
            None => None,
        };
        Ok(Fleet {
            hosts: spec.hosts,
            port: spec.port,
            join_timeout: spec.join_timeout,
            scenario: scenario_file,
            run_flags,
            name: scenario.name.clone(),
            run_time: run_time(scenario),
        })
    }

    /// The coordinator's arguments after `ceiling`: `run`, the scenario at
    /// `scenario_path` (where the engine puts the file), the run flags as
    /// typed, then the fleet's.
    pub fn coordinator_args(&self, scenario_path: Option<String>) -> Vec<String> {
        let mut args = vec!["run".to_owned()];
        args.extend(scenario_path);
        args.extend(self.run_flags.iter().cloned());
        args.extend([
            "--fleet".to_owned(),
            self.hosts.to_string(),
            "--fleet-listen".to_owned(),
            format!("0.0.0.0:{}", self.port),
            "--fleet-join-timeout".to_owned(),
            duration_arg(self.join_timeout),
        ]);
        args
    }

    /// An agent's arguments after `ceiling`, joining the coordinator at
    /// `host` (a name or an address); its index comes from the engine's
    /// environment.
    pub fn agent_args(&self, host: &str) -> Vec<String> {
        vec![
            "agent".to_owned(),
            "--join".to_owned(),
            format!("{host}:{}", self.port),
            "--hosts".to_owned(),
            self.hosts.to_string(),
        ]
    }

    /// How long the whole test may take: the join timeout, the run, and
    /// [`DEADLINE_MARGIN`]; whole seconds.
    pub fn deadline(&self) -> Duration {
        let total = self.join_timeout + self.run_time + DEADLINE_MARGIN;
        Duration::from_secs(total.as_secs() + u64::from(total.subsec_nanos() > 0))
    }
}

/// Refuses the coordinator's fleet flags among the run arguments: the
/// renderer sets them (from --hosts, --port and --join-timeout).
pub fn refuse_fleet_flags(run_args: &[String]) -> Result<(), UsageError> {
    match run_args.iter().find(|a| a.starts_with("--fleet")) {
        Some(flag) => Err(UsageError(format!(
            "'{flag}' in the run flags: `ceiling fleet` sets the coordinator's --fleet, \
             --fleet-listen and --fleet-join-timeout itself (from --hosts, --port and \
             --join-timeout): leave it out"
        ))),
        None => Ok(()),
    }
}

/// The fleet's own flags, which come before the run arguments.
const FLEET_FLAGS: [&str; 5] = [
    "--hosts",
    "--port",
    "--join-timeout",
    "--image",
    "--namespace",
];

/// Refuses a fleet flag among the run arguments, where it would be taken
/// for a run flag: it belongs in front of them.
pub fn refuse_misplaced(run_args: &[String]) -> Result<(), UsageError> {
    let misplaced = run_args.iter().find_map(|arg| {
        FLEET_FLAGS
            .into_iter()
            .find(|flag| arg == flag || arg.starts_with(&format!("{flag}=")))
    });
    match misplaced {
        Some(flag) => Err(UsageError(format!(
            "'{flag}' comes after the run arguments, where it would be taken for a run flag: \
             give the fleet's own flags first, e.g. `ceiling fleet slurm|kubernetes --hosts 4 \
             SCENARIO.toml --connections 100k`"
        ))),
        None => Ok(()),
    }
}

/// The file name of the scenario at `path`, which travels as a ConfigMap
/// key or a file in a temporary directory: letters, digits, `.`, `_`, `-`.
fn scenario_file_name(path: &str) -> Result<String, UsageError> {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(UsageError(format!(
            "'{path}': a fleet's scenario file is passed on by its file name, which may hold \
             letters, digits, '.', '_' and '-' only: rename it, e.g. to load-test.toml"
        )))
    }
}

/// The longest a run lasts once started: its duration, or twice the time
/// its pace takes to open every connection (a slow host falls behind),
/// plus a hold and a connect timeout.
pub fn run_time(scenario: &Scenario) -> Duration {
    if let Some(d) = scenario.duration {
        return d;
    }
    let open = crate::explore::time_to_open(scenario.pace, scenario.connections);
    let hold = match scenario.hold {
        HoldMode::For(d) => d,
        HoldMode::UntilEnd => Duration::ZERO,
    };
    open * 2 + hold + scenario.connect_timeout
}

/// A duration as a flag takes it: whole seconds, or milliseconds.
fn duration_arg(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A DNS label (RFC 1123) from a run name: lowercase letters, digits and
/// '-', at most `max` characters; empty when nothing is left.
fn dns_label(name: &str, max: usize) -> String {
    let mut label = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (label.is_empty() || label.ends_with('-'))) {
            label.push(c);
        }
        if label.len() == max {
            break;
        }
    }
    label.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_keep_letters_and_digits() {
        assert_eq!(dns_label("Load_Test.v2", 40), "load-test-v2");
        assert_eq!(dns_label("--a--b--", 40), "a-b");
        assert_eq!(dns_label("émoji", 40), "moji");
        assert_eq!(dns_label("abcdef", 3), "abc");
        assert_eq!(dns_label("ab-cdef", 3), "ab");
    }

    #[test]
    fn scenario_file_names_travel_as_they_are_or_not_at_all() {
        assert_eq!(
            scenario_file_name("dir/load-test.toml").unwrap(),
            "load-test.toml"
        );
        let err = scenario_file_name("my test.toml").unwrap_err().0;
        assert!(
            err.contains("'my test.toml'") && err.contains("rename"),
            "{err}"
        );
    }

    #[test]
    fn a_run_lasts_its_duration_or_twice_its_opening_plus_a_hold() {
        use crate::scenario::ScenarioSpec;
        let scenario = |duration| {
            Scenario::validate(ScenarioSpec {
                connections: Some(1000),
                rate: Some(100.0),
                hold: Some(HoldMode::For(Duration::from_secs(5))),
                connect_timeout: Some(Duration::from_secs(2)),
                duration,
                ..ScenarioSpec::default()
            })
            .unwrap()
        };
        // 10 s to open, twice, a 5 s hold and a 2 s connect timeout.
        assert_eq!(run_time(&scenario(None)), Duration::from_secs(27));
        let bounded = scenario(Some(Duration::from_secs(90)));
        assert_eq!(run_time(&bounded), Duration::from_secs(90));
    }

    #[test]
    fn flag_durations_are_whole_seconds_or_milliseconds() {
        assert_eq!(duration_arg(Duration::from_secs(60)), "60s");
        assert_eq!(duration_arg(Duration::from_millis(1500)), "1500ms");
    }
}
