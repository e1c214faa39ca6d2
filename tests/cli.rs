//! Bad input: one clear message naming the value and the accepted forms,
//! exit status 2, never a panic, and no load started.

use std::path::PathBuf;
use std::time::Duration;

use crate::util::{ceiling, out_dir, run_bounded, text};

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
    refused(&["run", "--rate", "5", "--ramp", "0..5/1s"], &["--ramp"]);
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
