//! Generated input for the flag parsers and for scenario files: parsing and
//! validation never panic, and whatever validates is within the ranges the
//! README and --help document, so the engine can trust it (its schedule
//! and deadlines are computed here too). A bounded number of cases runs
//! with every `cargo test` (PROPTEST_CASES raises it for a longer run);
//! what broke things is kept in tests/fixtures/fuzz-corpus/ and replayed
//! first, every run.

use std::path::{Path, PathBuf};

use clap::Parser;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

use ceiling::cli::{Cli, Command, RunArgs};
use ceiling::cmd::args::build_scenario_from;
use ceiling::engine::{clock, rate};
use ceiling::scenario::units::{self, HoldMode, Processes};
use ceiling::scenario::{MAX_MESSAGE_BYTES, Pace, Scenario, ScenarioSpec, emit, parse_text};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz-corpus")
}

/// Cases per property: PROPTEST_CASES, or 1024; failures are kept in the
/// corpus directory.
fn config() -> Config {
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/fixtures/fuzz-corpus/proptest-regressions.txt",
        ))),
        // A few seconds under `cargo test`; PROPTEST_CASES for more.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1024),
        ..Config::default()
    }
}

/// What the engine may rely on in a validated scenario.
fn assert_trustworthy(s: &Scenario) {
    assert!(units::CONNECTIONS.check(s.connections).is_ok(), "{s:?}");
    match s.pace {
        Pace::Unlimited => {}
        Pace::Constant { per_s } => {
            assert!(
                (units::MIN_RATE..=units::MAX_RATE).contains(&per_s),
                "{s:?}"
            )
        }
        Pace::Ramp(ramp) => assert!(ramp.check().is_ok() && ramp.to > 0.0, "{s:?}"),
        Pace::Steps(steps) => assert!(steps.check().is_ok(), "{s:?}"),
    }
    match s.hold {
        HoldMode::For(d) => assert!(units::HOLD.check(d).is_ok(), "{s:?}"),
        HoldMode::UntilEnd => assert!(s.duration.is_some(), "{s:?}"),
    }
    if let Some(d) = s.duration {
        assert!(units::RUN_DURATION.check(d).is_ok(), "{s:?}");
    }
    assert!(units::CONNECT_TIMEOUT.check(s.connect_timeout).is_ok());
    assert!(units::INTERVAL.check(s.interval).is_ok());
    assert!(s.message.len() <= MAX_MESSAGE_BYTES);
    if let Some(n) = s.fd_limit {
        assert!(units::FD_LIMIT.check(n).is_ok(), "{s:?}");
    }
    if let Some(n) = s.threads {
        assert!(units::THREADS.check(n).is_ok(), "{s:?}");
    }
    if let Some(Processes::Count(n)) = s.processes {
        assert!((1..=units::MAX_PROCESSES).contains(&n), "{s:?}");
    }
    let mut targets = s.targets.clone();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), s.targets.len(), "a duplicate target");
    assert!(targets.len() as u64 <= units::MAX_TARGETS);
    assert!(s.sources.len() as u64 <= units::MAX_SOURCES);

    // The engine's arithmetic on it: the first and last attempt's start, on
    // a schedule at the slowest and fastest live rate factor.
    let now = tokio::time::Instant::now();
    for index in [0, s.connections - 1] {
        let offset = rate::start_offset(s.pace, index);
        for factor in [0.01, 1.0, 100.0] {
            let schedule = rate::Schedule::starting_at(now).rebased(now, factor, false);
            assert!(schedule.instant_of(offset, now).is_some());
        }
    }
    let _ = clock::after(now, s.connect_timeout);
    let _ = clock::after(now, s.interval);
    let _ = clock::after(now, s.duration.unwrap_or(clock::NEVER));

    // explore hands scenarios on as files: they read back the same.
    let text = emit::to_toml(s);
    let back = parse_text(&text)
        .map_err(|e| e.to_string())
        .and_then(|spec| Scenario::validate(spec).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(emit::to_toml(&back), text);
}

/// Parses and validates a scenario file's text; never panics.
fn check_file(text: &str) {
    if let Ok(spec) = parse_text(text)
        && let Ok(s) = Scenario::validate(spec)
    {
        assert_trustworthy(&s);
    }
}

/// `ceiling run ARGS` (or `lab` ARGS) up to the validated scenario; never
/// panics.
fn check_flags(lab: bool, args: &[String]) {
    let argv = ["ceiling", if lab { "lab" } else { "run" }]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    let Ok(cli) = Cli::try_parse_from(argv) else {
        return;
    };
    let args: RunArgs = match cli.command {
        Command::Run(args) => args.run,
        Command::Lab(args) => *args,
        other => panic!("not run or lab: {other:?}"),
    };
    if let Ok(s) = build_scenario_from(ScenarioSpec::default(), args, lab) {
        assert_trustworthy(&s);
    }
}

const FLAGS: &[&str] = &[
    "--target",
    "--source",
    "--source-ports",
    "--connections",
    "--rate",
    "--ramp",
    "--steps",
    "--hold",
    "--duration",
    "--connect-timeout",
    "--mode",
    "--message",
    "--interval",
    "--close",
    "--fd-limit",
    "--pick-port-at",
    "--threads",
    "--processes",
    "--name",
];

const KEYS: &[&str] = &[
    "name",
    "targets",
    "target",
    "sources",
    "source",
    "source_ports",
    "connections",
    "rate",
    "ramp",
    "steps",
    "hold",
    "duration",
    "connect_timeout",
    "connect-timeout",
    "mode",
    "message",
    "interval",
    "close",
    "fd_limit",
    "stop_at_first_limit",
    "threads",
    "processes",
    "pick_port_at",
    "out",
];

const LAB_KEYS: &[&str] = &[
    "ip_local_port_range",
    "somaxconn",
    "tcp_syncookies",
    "tcp_ehash_entries",
    "memory_limit",
    "server_backlog",
    "server_processes",
    "fd_limit",
];

/// Numbers as people (and typos) write them.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        "-?[0-9]{1,21}(\\.[0-9]{1,4})?(e-?[0-9]{1,3})?",
        Just("1e-300".to_string()),
        Just("500000000000".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
    ]
}

/// A value for any flag: numbers with units and suffixes, ramps,
/// addresses, words, and anything at all.
fn value() -> impl Strategy<Value = String> {
    fn with_unit() -> impl Strategy<Value = String> {
        let unit = prop::sample::select(vec![
            "", "k", "m", "K", "M", "ms", "s", "h", "d", "y", "us", "ns", "days", "w", "min",
        ]);
        (number(), unit).prop_map(|(n, u)| format!("{n}{u}"))
    }
    let plausible = (
        1u32..2000,
        prop::sample::select(vec!["", "k", "ms", "s", "m", "h", "d"]),
    )
        .prop_map(|(n, u)| format!("{n}{u}"));
    let edges = prop::sample::select(vec![
        "0",
        "0s",
        "1ms",
        "30d",
        "31d",
        "720h",
        "1h",
        "61m",
        "3601s",
        "0.001",
        "0.0009",
        "10m",
        "10000001",
        "100m",
        "100000001",
        "16",
        "15",
        "1024",
        "1025",
        "2147483584",
    ])
    .prop_map(String::from);
    prop_oneof![
        3 => plausible,
        2 => edges,
        3 => with_unit(),
        1 => (with_unit(), with_unit(), with_unit())
            .prop_map(|(a, b, c)| format!("{a}..{b}/{c}")),
        1 => (prop::collection::vec(with_unit(), 0..20), with_unit())
            .prop_map(|(rates, each)| format!("{}/{each}", rates.join(","))),
        1 => (0u8..4, any::<u16>(), any::<u16>())
            .prop_map(|(ip, a, b)| format!("127.0.0.{ip}:{a}-{b}")),
        1 => (0u8..4, any::<u16>()).prop_map(|(ip, port)| format!("127.0.0.{ip}:{port}")),
        1 => (0u8..4, 0u8..40).prop_map(|(ip, prefix)| format!("127.0.{ip}.0/{prefix}")),
        1 => prop::sample::select(vec![
            "end", "auto", "bind", "connect", "echo", "idle", "rst", "fin", "", "-", "--",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,12}",
    ]
}

/// A TOML value for a key: a number, a string from [`value`], a boolean,
/// a list of strings.
fn toml_value() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        1 => any::<i64>().prop_map(toml::Value::Integer),
        2 => (0i64..100_000).prop_map(toml::Value::Integer),
        1 => any::<f64>().prop_map(toml::Value::Float),
        3 => value().prop_map(toml::Value::String),
        1 => any::<bool>().prop_map(toml::Value::Boolean),
        1 => prop::collection::vec(value(), 0..3)
            .prop_map(|v| toml::Value::Array(v.into_iter().map(toml::Value::String).collect())),
    ]
}

/// A scenario file: some fields, maybe a [lab] section, maybe junk.
fn scenario_text() -> impl Strategy<Value = String> {
    let line = |keys: &'static [&'static str]| {
        (prop::sample::select(keys), toml_value()).prop_map(|(k, v)| format!("{k} = {v}\n"))
    };
    (
        prop::collection::vec(line(KEYS), 0..5),
        prop::option::of(prop::collection::vec(line(LAB_KEYS), 0..3)),
        prop::option::of("\\PC{0,20}"),
    )
        .prop_map(|(top, lab, junk)| {
            let mut text: String = top.concat();
            if let Some(lab) = lab {
                text.push_str("[lab]\n");
                text.push_str(&lab.concat());
            }
            if let Some(junk) = junk {
                text.push_str(&junk);
            }
            text
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_flags_never_panic_and_what_validates_is_in_range(
        lab in any::<bool>(),
        pairs in prop::collection::vec((prop::sample::select(FLAGS), value()), 1..5),
    ) {
        let args: Vec<String> = pairs
            .into_iter()
            .flat_map(|(flag, value)| [flag.to_string(), value])
            .collect();
        check_flags(lab, &args);
    }

    #[test]
    fn fuzz_scenario_files_never_panic_and_what_validates_is_in_range(
        text in scenario_text(),
    ) {
        check_file(&text);
    }
}

/// Every input kept in the corpus, replayed: `flags.txt` (one case a line,
/// `run` or `lab` then the arguments, tab-separated) and every `*.toml`.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let mut cases = 0;
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {
                check_file(&text);
                cases += 1;
            }
            _ if path.file_name().is_some_and(|n| n == "flags.txt") => {
                for line in text
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.is_empty())
                {
                    let mut fields = line.split('\t');
                    let lab = fields.next() == Some("lab");
                    let args: Vec<String> = fields.map(String::from).collect();
                    check_flags(lab, &args);
                    cases += 1;
                }
            }
            _ => {}
        }
    }
    assert!(cases >= 10, "the corpus holds only {cases} cases");
}
