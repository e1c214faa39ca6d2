//! Bad input: one clear message naming the value and the accepted forms,
//! exit status 2, never a panic, and no load started.

use std::path::PathBuf;
use std::time::Duration;

use crate::util::{Server, ceiling, out_dir, require_netns, run_bounded, summary, text};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs `ceiling ARGS`, expects exit 2 and stderr containing every needle.
fn refused(args: &[&str], needles: &[&str]) {
    let mut cmd = ceiling();
    cmd.args(args);
    let output = run_bounded(cmd, Duration::from_secs(20));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}\nstderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
}

#[test]
fn bad_toml_names_file_line_and_column() {
    let path = fixture("bad-syntax.toml");
    refused(
        &["run", path.to_str().unwrap()],
        &["bad-syntax.toml", "line 3", "column"],
    );
}

#[test]
fn an_unknown_field_is_named_with_the_accepted_ones() {
    let path = fixture("unknown-field.toml");
    refused(
        &["run", path.to_str().unwrap()],
        &["unknown field `conections`", "line 2", "connections"],
    );
}

#[test]
fn a_bad_value_in_a_file_names_the_value_and_the_forms() {
    let path = fixture("bad-target.toml");
    refused(
        &["run", path.to_str().unwrap()],
        &["127.0.0.1:99999", "out of range", "line 2"],
    );
}

#[test]
fn bad_flags_name_the_value_and_the_accepted_forms() {
    refused(
        &["run", "--target", "127.0.0.1"],
        &["'127.0.0.1'", "IP:PORT"],
    );
    refused(
        &["run", "--target", "127.0.0.1:70000"],
        &["70000", "out of range"],
    );
    refused(&["run", "--source", "127.0.0.1/40"], &["/40", "prefix"]);
    refused(&["run", "--source", "127.0.0.9-127.0.0.1"], &["reversed"]);
    refused(&["run", "--connections", "0"], &["'0'", "whole number"]);
    refused(&["run", "--connections", "lots"], &["'lots'", "10k"]);
    refused(&["run", "--hold", "3"], &["'3'", "500ms"]);
    refused(&["run", "--ramp", "0..10"], &["FROM..TO/OVER"]);
    refused(&["run", "--hold", "end"], &["duration"]);
}

#[test]
fn a_missing_scenario_file_is_a_usage_error() {
    refused(
        &["run", "/nonexistent/scenario.toml"],
        &["/nonexistent/scenario.toml", "cannot read"],
    );
}

#[test]
fn a_source_that_is_not_local_is_refused_before_any_load() {
    // 192.0.2.0/24 is TEST-NET-1: never assigned to this host. Only bind()
    // is tried on it; nothing is sent anywhere.
    let (_tmp, out) = out_dir();
    refused(
        &[
            "run",
            "--source",
            "192.0.2.1",
            "--target",
            "127.0.0.1:9",
            "--out",
            out.to_str().unwrap(),
        ],
        &["192.0.2.1", "not an address of this host"],
    );
    assert!(
        !out.exists(),
        "a results directory was created for a refused run"
    );
}

#[test]
fn an_fd_limit_above_the_hard_limit_is_refused() {
    refused(&["run", "--fd-limit", "100m"], &["hard limit"]);
}

#[test]
fn an_unwritable_or_used_results_directory_is_refused() {
    refused(
        &["run", "--out", "/proc/ceiling-results"],
        &["/proc/ceiling-results", "cannot write results"],
    );
    let (_tmp, out) = out_dir();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("summary.json"), "{}").unwrap();
    refused(
        &["run", "--out", out.to_str().unwrap()],
        &["cannot write results", "--out"],
    );
}

#[test]
fn serve_refuses_bad_listen_values() {
    refused(
        &["serve", "--listen", "localhost:80"],
        &["localhost", "not resolved"],
    );
    refused(&["serve", "--backlog", "0"], &["'0'"]);
}

#[test]
fn help_states_the_defaults_the_code_uses() {
    use ceiling::scenario::{DEFAULT_CONNECTIONS, DEFAULT_RATE};
    let output = run_bounded(
        {
            let mut cmd = ceiling();
            cmd.args(["run", "--help"]);
            cmd
        },
        Duration::from_secs(10),
    );
    let help = text(&output.stdout);
    assert!(
        help.contains(&format!("Default {}k", DEFAULT_CONNECTIONS / 1000)),
        "{help}"
    );
    assert!(
        help.contains(&format!("Default {}k", DEFAULT_RATE as u64 / 1000)),
        "{help}"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("| {}k |", DEFAULT_CONNECTIONS / 1000)),
        "README's flag table disagrees"
    );
}

/// Like [`refused`], with `--out` in a temp dir: asserts nothing was
/// created there either. Returns stderr.
fn refused_before_load(args: &[&str], needles: &[&str]) -> String {
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args(args)
        .args(["--ui", "none", "--out", out.to_str().unwrap()]);
    let output = run_bounded(cmd, Duration::from_secs(20));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}\nstderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
    assert!(!out.exists(), "{args:?}: a results directory was created");
    stderr
}

#[test]
fn extreme_values_are_refused_with_their_range_before_any_load() {
    // Each was accepted, then panicked a worker or the main thread, or
    // never ended.
    for (args, range) in [
        (
            &["--mode", "echo", "--interval", "500000000000y"][..],
            "an echo interval takes 1ms to 1h",
        ),
        (&["--duration", "500000000000y"], "1ms to 30d"),
        (
            &["--hold", "500000000000y", "--duration", "2s"],
            "0s to 30d",
        ),
        (&["--connect-timeout", "500000000000y"], "1ms to 1h"),
        (&["--rate", "1e-300"], "0.001 to 10m"),
        (&["--ramp", "0..1/10000000000y"], "1ms to 30d"),
        (&["--ramp", "1e-300..1e-300/1s"], "0.001 to 10m"),
        (&["--threads", "0"], "1 to 1024"),
    ] {
        let mut all = vec!["run", "--connections", "5"];
        all.extend_from_slice(args);
        let stderr = refused_before_load(&all, &[range]);
        assert!(!stderr.contains("10^12"), "{stderr}");
    }
    let file = fixture("extreme-duration.toml");
    refused_before_load(
        &["run", file.to_str().unwrap()],
        &["line 3", "500000000000y", "1ms to 30d"],
    );
}

#[test]
fn help_and_readme_state_every_range() {
    use ceiling::scenario::units;
    let mut cmd = ceiling();
    cmd.args(["run", "--help"]);
    let help = text(&run_bounded(cmd, Duration::from_secs(10)).stdout);
    // clap rewraps the doc comments: compare with single spaces.
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for range in [
        units::CONNECTIONS.describe(),
        units::THREADS.describe(),
        units::MAX_IN_FLIGHT.describe(),
        units::RUN_DURATION.describe(),
        units::HOLD.describe(),
        units::CONNECT_TIMEOUT.describe(),
        units::INTERVAL.describe(),
        "0.001 to 10m".to_string(),
        units::FD_LIMIT.describe(),
    ] {
        assert!(help.contains(&range), "run --help lacks {range:?}:\n{help}");
        assert!(readme.contains(&range), "README lacks {range:?}");
    }
}

#[test]
fn a_scenario_file_over_the_size_limit_or_a_device_is_refused() {
    refused_before_load(&["run", "/dev/zero"], &["'/dev/zero'", "character device"]);
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "#".repeat(3 << 20)).unwrap();
    refused_before_load(
        &["run", big.to_str().unwrap()],
        &["big.toml", "is 3145728 bytes", "at most 1048576 bytes"],
    );
}

#[test]
fn an_os_error_is_printed_once() {
    let stderr = refused_before_load(
        &["run", "/nonexistent/scenario.toml"],
        &["No such file or directory"],
    );
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

#[test]
fn fd_limit_is_named_as_it_was_given_with_a_remedy_for_who_runs_it() {
    let file = fixture("fd-limit-above-hard.toml");
    let stderr = refused_before_load(
        &["run", file.to_str().unwrap()],
        &["fd_limit = 2000000000 in the scenario file", "hard limit"],
    );
    assert!(!stderr.contains("--fd-limit"), "{stderr}");
    let flag = refused_before_load(
        &["run", "--fd-limit", "2000m"],
        &["--fd-limit 2000000000 is above the hard limit"],
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(!flag.contains("only root"), "{flag}");
        assert!(flag.contains("ulimit -Hn 2000000000"), "{flag}");
    } else {
        assert!(
            flag.contains("only root can raise the hard limit"),
            "{flag}"
        );
    }
}

#[test]
fn negative_numbers_reach_ceilings_own_message() {
    for (flag, value, needle) in [
        (
            "--connections",
            "-5",
            "'-5' is not a usable connection count",
        ),
        ("--rate", "-1", "'-1' is out of range"),
        ("--threads", "-2", "1 to 1024"),
        ("--fd-limit", "-1", "16 to"),
        ("--duration", "-5s", "'-5s' is not a duration"),
    ] {
        let stderr = refused_before_load(&["run", flag, value], &[needle]);
        assert!(
            !stderr.contains("-- "),
            "{flag} {value}: clap's tip:\n{stderr}"
        );
    }
}

#[test]
fn serve_says_port_0_is_accepted() {
    refused(
        &["serve", "--listen", "127.0.0.1:70700"],
        &["70700", "0-65535", "0 picks any free port"],
    );
    refused(&["serve", "--listen", ":70700"], &["no IP address"]);
}

#[test]
fn a_target_given_twice_is_refused_naming_it() {
    refused_before_load(
        &["run", "--target", "127.0.0.1:9", "--target", "127.0.0.1:9"],
        &["target 127.0.0.1:9 appears twice", "remove the duplicate"],
    );
}

#[test]
fn lab_as_root_refuses_a_duplicate_target_at_once() {
    if !require_netns("lab_as_root_refuses_a_duplicate_target_at_once") {
        return;
    }
    let stderr = refused_before_load(
        &[
            "lab",
            "--target",
            "127.0.0.1:7070",
            "--target",
            "127.0.0.1:7070",
            "--connections",
            "5",
        ],
        &["target 127.0.0.1:7070 appears twice"],
    );
    assert!(!stderr.contains("Address already in use"), "{stderr}");
}

#[test]
fn rate_and_ramp_together_get_one_message() {
    let stderr = refused_before_load(
        &["run", "--rate", "5", "--ramp", "0..5/1s"],
        &["not two", "--rate R", "--ramp FROM..TO/OVER"],
    );
    assert!(!stderr.contains("Usage:"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let stderr = refused_before_load(
        &["run", "--rate", "5", "--steps", "1k,2k/10s"],
        &["not two", "--steps RATE,RATE,.../EACH"],
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn scenario_keys_name_what_to_write() {
    let fixture_refused = |name: &str, needles: &[&str]| {
        let file = fixture(name);
        refused_before_load(&["run", file.to_str().unwrap()], needles);
    };
    fixture_refused(
        "target-and-targets.toml",
        &[
            "`target` and `targets` are the same setting",
            "targets = [\"127.0.0.1:7070\", \"127.0.0.1:7071\"]",
        ],
    );
    fixture_refused(
        "targets-number.toml",
        &[
            "line 2",
            "a string or a list of strings",
            "\"127.0.0.1:7070\"",
        ],
    );
    fixture_refused(
        "out-key.toml",
        &["`out` is not a scenario field", "--out DIR"],
    );
}

#[test]
fn a_scenario_may_name_its_target_as_the_flag_does() {
    let server = Server::start(&["--listen", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.toml");
    std::fs::write(
        &file,
        format!(
            "target = \"{}\"\nconnections = 3\nhold = \"0s\"\nconnect-timeout = \"2s\"\n",
            server.addr()
        ),
    )
    .unwrap();
    let out = dir.path().join("results");
    let mut cmd = ceiling();
    cmd.arg("run")
        .arg(&file)
        .args(["--ui", "none", "--out", out.to_str().unwrap()]);
    let output = run_bounded(cmd, Duration::from_secs(20));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    assert_eq!(s["scenario"]["targets"][0], server.addr().as_str());
    assert_eq!(s["totals"]["established"], 3, "{s}");
}

#[test]
fn values_at_the_edges_of_their_ranges_run_and_end() {
    // The longest interval, rate and hold, and the slowest rate and ramp:
    // the engine's deadlines stay in range, the hold and --duration end it.
    for args in [
        &["--mode", "echo", "--interval", "1h", "--hold", "1s"][..],
        &["--rate", "0.001", "--duration", "1s"],
        &["--ramp", "0..0.001/30d", "--duration", "1s"],
        &["--hold", "30d", "--duration", "1s"],
        &["--connect-timeout", "1h", "--hold", "0s", "--rate", "10m"],
    ] {
        let (_tmp, out) = out_dir();
        let mut cmd = ceiling();
        cmd.args(["run", "--connections", "3", "--ui", "none", "--out"])
            .arg(&out)
            .args(args);
        let output = run_bounded(cmd, Duration::from_secs(30));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(summary(&out)["totals"]["established"].as_u64() >= Some(1));
    }
}
