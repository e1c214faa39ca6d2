//! `ceiling compare`: reads each side's results directories, prints the
//! comparison (or its JSON) and checks the --fail-if conditions.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::UsageError;
use crate::cli::CompareArgs;
use crate::report::compare::{self, Condition, Side};
use crate::report::{ReportError, read};

pub fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    // Conditions first: a malformed one is reported before anything is
    // read.
    let conditions: Vec<Condition> = args
        .fail_if
        .iter()
        .map(|text| Condition::parse(text).map_err(|e| UsageError(e.to_string())))
        .collect::<Result<_, _>>()?;
    let mut sides = Vec::new();
    for (i, spec) in args.sides.iter().enumerate() {
        let label = side_label(i);
        let mut runs = Vec::new();
        for dir in spec.split(',').filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            let run = match read::load(&dir).map_err(usage)? {
                read::Loaded::Run(run) => run,
                read::Loaded::Ladder(_) => {
                    return Err(UsageError(format!(
                        "'{}' is an explore directory: compare its climbs, e.g. {0}/step-1 {0}/step-2",
                        dir.display()
                    ))
                    .into());
                }
                read::Loaded::Sweep(sweep) => {
                    let pool = |i: usize| {
                        sweep
                            .table
                            .rows
                            .get(i)
                            .and_then(|r| r.first())
                            .map_or("N".to_string(), |p| p.clone())
                    };
                    return Err(UsageError(format!(
                        "'{}' is a sweep directory: compare its steps, e.g. {0}/pool-{} {0}/pool-{}",
                        dir.display(),
                        pool(0),
                        pool(1)
                    ))
                    .into());
                }
            };
            runs.push(run);
        }
        if runs.is_empty() {
            return Err(UsageError(format!(
                "side {label} ('{spec}') names no directory: give DIR or DIR1,DIR2,..."
            ))
            .into());
        }
        sides.push(Side { label, runs });
    }
    let comparison = compare::compare(&sides);
    let held = compare::check(&comparison, &conditions).map_err(|e| UsageError(e.to_string()))?;
    if args.json {
        let value = serde_json::json!({"comparison": comparison, "fail_if": held});
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", compare::render(&comparison));
        for h in &held {
            println!("{}", h.text);
        }
    }
    Ok(if held.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A, B, ..., Z, then S27, S28, ...
fn side_label(i: usize) -> String {
    match u8::try_from(i).ok().filter(|i| *i < 26) {
        Some(i) => char::from(b'A' + i).to_string(),
        None => format!("S{}", i + 1),
    }
}

/// A directory that is not results is bad input; an unreadable file is not.
fn usage(e: ReportError) -> anyhow::Error {
    match e {
        ReportError::NotResults(_) => UsageError(e.to_string()).into(),
        other => other.into(),
    }
}
