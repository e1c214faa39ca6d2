//! `ceiling compare` over real results directories: the moved limit, the
//! table, the rank test with several runs a side, --fail-if gates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::util::{ceiling, run_bounded, summary, text};

/// A quick run against the built-in target: `connections` opened at once,
/// each held for `hold`.
fn quick_run(out: &Path, connections: u32, hold: &str) {
    let mut cmd = ceiling();
    cmd.args(["run", "--ui", "none", "--rate", "0", "--hold", hold])
        .args(["--connections", &connections.to_string(), "--out"])
        .arg(out);
    let output = run_bounded(cmd, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

fn compare(args: &[&str]) -> std::process::Output {
    let mut cmd = ceiling();
    cmd.arg("compare").args(args);
    run_bounded(cmd, Duration::from_secs(30))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn compare_names_the_limit_that_moved_and_gates_on_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    quick_run(&a, 200, "1s");
    let b = tmp.path().join("b");
    crate::util::capped_run(&b, "200", "1000");
    let held = summary(&b)["first_limit"]["active_at"].as_u64().unwrap();

    let output = compare(&[s(&a), s(&b)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "first limit: no limit → server_closed at {held} held: the limit moved"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("scenario.embedded_target"), "{stdout}");
    assert!(stdout.contains("one run each: no significance"), "{stdout}");

    // The figures in --json are the summaries'.
    let output = compare(&["--json", s(&a), s(&b)]);
    assert!(output.status.success());
    let json: Value = serde_json::from_str(&text(&output.stdout)).unwrap();
    let rows = json["comparison"]["rows"].as_array().unwrap();
    let peak = rows.iter().find(|r| r["figure"] == "peak_active").unwrap();
    assert_eq!(
        peak["values"][0],
        summary(&a)["totals"]["peak_active"].as_f64().unwrap()
    );
    assert_eq!(
        peak["values"][1],
        summary(&b)["totals"]["peak_active"].as_f64().unwrap()
    );
    assert_eq!(json["comparison"]["limit_moved"], true);

    // Gates: B held far fewer than A; A's connect p99 is no gate (only the
    // sides after the first are checked).
    let output = compare(&[
        s(&a),
        s(&b),
        "--fail-if",
        "peak_active < 0.95*A",
        "--fail-if",
        "failed_server_closed == 0",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("fail-if 'peak_active < 0.95*A' holds for B: peak_active is"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("'failed_server_closed == 0' holds"),
        "{stdout}"
    );
    let output = compare(&[s(&a), s(&b), "--fail-if", "failed_server_closed > 0"]);
    assert_eq!(output.status.code(), Some(1));
    let output = compare(&[s(&a), s(&a), "--fail-if", "peak_active < 0.95*A"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
}

#[test]
fn several_runs_a_side_get_a_rank_test() {
    let tmp = tempfile::tempdir().unwrap();
    let side = |name: &str, connections: u32| -> String {
        (1..=4)
            .map(|i| {
                let dir: PathBuf = tmp.path().join(format!("{name}{i}"));
                quick_run(&dir, connections, "0s");
                dir.display().to_string()
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let a = side("a", 100);
    let b = side("b", 200);
    let output = compare(&[&a, &b, "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: Value = serde_json::from_str(&text(&output.stdout)).unwrap();
    let rows = json["comparison"]["rows"].as_array().unwrap();
    let established = rows.iter().find(|r| r["figure"] == "established").unwrap();
    assert_eq!(established["values"], serde_json::json!([100.0, 200.0]));
    assert_eq!(established["significant"][1], true);
    let p = established["p"][1].as_f64().unwrap();
    assert!((p - 2.0 / 70.0).abs() < 1e-9, "{p}");
    let output = compare(&[&a, &b]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("+100.0% (p=0.029)"), "{stdout}");
    assert!(
        stdout.contains("Mann-Whitney U test against A at 5%"),
        "{stdout}"
    );
}

#[test]
fn a_bad_condition_or_directory_is_one_message_and_exit_2() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/report/limit");
    for (args, expected) in [
        (
            vec![fixture, fixture, "--fail-if", "peak < 0.95*A"],
            "--fail-if 'peak < 0.95*A': unknown figure 'peak': use one of established, peak_active",
        ),
        (
            vec![fixture, fixture, "--fail-if", "peak_active > 5ms"],
            "unit 'ms' does not fit; this figure takes a count",
        ),
        (
            vec![fixture, "/nonexistent/dir"],
            "'/nonexistent/dir' is not a results directory",
        ),
    ] {
        let output = compare(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    // One side is not a comparison.
    let output = compare(&[fixture]);
    assert_eq!(output.status.code(), Some(2));
}
