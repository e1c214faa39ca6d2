//! The results contract on real output: summary.json from real runs
//! validates against the JSON Schema shipped in the repo, and every
//! scenario in scenarios/ parses, validates and documents itself.

use std::time::Duration;

use crate::util::{Server, ceiling, out_dir, run_bounded, summary, text};

pub fn validate(instance: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(ceiling::sink::SUMMARY_SCHEMA).unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("the schema is valid");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "summary.json does not match the schema:\n{}",
        errors.join("\n")
    );
}

#[test]
fn real_summaries_validate_against_the_schema() {
    // One with a limit and failures (a server that closes), one echo run
    // with RTT and no limit.
    let closing = Server::start(&["--mode", "close"]);
    let echo = Server::start(&["--mode", "echo"]);
    let runs: [&[&str]; 2] = [
        &[
            "--target",
            &closing.addr(),
            "--connections",
            "10",
            "--rate",
            "0",
            "--hold",
            "1s",
        ],
        &[
            "--target",
            &echo.addr(),
            "--connections",
            "10",
            "--rate",
            "0",
            "--hold",
            "500ms",
            "--mode",
            "echo",
            "--interval",
            "100ms",
        ],
    ];
    for args in runs {
        let (_tmp, out) = out_dir();
        let mut cmd = ceiling();
        cmd.args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
            .args(args);
        let output = run_bounded(cmd, Duration::from_secs(30));
        assert!(output.status.success(), "{}", text(&output.stderr));
        let s = summary(&out);
        validate(&s);
        assert_eq!(s["schema_version"], 2);
    }
}

#[test]
fn every_shipped_scenario_parses_validates_and_says_what_it_shows() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let spec = ceiling::scenario::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        ceiling::scenario::Scenario::validate(spec)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let header = std::fs::read_to_string(&path).unwrap();
        for needle in ["Shows:", "Needs root:", "Expected outcome"] {
            assert!(
                header.contains(needle),
                "{} lacks a '{needle}' line in its header",
                path.display()
            );
        }
    }
    assert!(seen >= 2, "no scenarios found in {}", dir.display());
}
