//! `ceiling explore`: climbs to the first limit and reports the ceiling;
//! with `--ladder`, applies the remedy and climbs again ([`crate::explore`]
//! decides the change).
//!
//! Each climb is a child process, `ceiling lab STEP.toml` (or `ceiling run`
//! for a scenario without `[lab]`) writing a normal results directory:
//! a namespace is per process and cannot be re-entered cleanly once
//! threads exist, so every climb gets a fresh one, and its fds, rlimits and
//! memory stay its own. The child's scenario is written beside its results
//! (`step-N.toml`, rerunnable as it is) and its output to `step-N.log`;
//! `ladder.csv` and `explore.json` are rewritten after every climb, so an
//! interrupted ladder still leaves the climbs it made.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Instant;

use anyhow::Context as _;

use crate::UsageError;
use crate::classify::host;
use crate::cli::{ExploreArgs, UiMode};
use crate::cmd::args;
use crate::explore::report::{self, Report, Row};
use crate::explore::{self, Context, End, Next, Outcome};
use crate::model::{Summary, thousands};
use crate::runner;
use crate::scenario::units::PortRange;
use crate::scenario::{self, Scenario, ScenarioSpec, emit};

/// `--ladder` without a scenario starts from this one.
const DEFAULT_LADDER: &str = include_str!("../../scenarios/explore-ladder.toml");
/// The bound when neither the scenario nor `--connections` gives one.
pub const DEFAULT_BOUND: u64 = 30_000;
/// The pace when neither the scenario nor the flags give one.
pub const DEFAULT_RATE: f64 = 10_000.0;
/// Exit status of an interrupted explore.
const EXIT_INTERRUPTED: u8 = 130;

/// The running climb's PID, for the signal handler to pass signals on.
static CHILD: AtomicI32 = AtomicI32::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn explore(args: ExploreArgs) -> anyhow::Result<ExitCode> {
    let ladder = args.ladder;
    let max_steps = if ladder {
        args.max_steps.unwrap_or(explore::DEFAULT_MAX_STEPS)
    } else {
        if args.max_steps.is_some() {
            return Err(UsageError(
                "--max-steps bounds a ladder: add --ladder, or drop --max-steps for one climb"
                    .into(),
            )
            .into());
        }
        1
    };
    let mut run_args = args.run;
    let ui = run_args.ui;
    let out = run_args.out.take();
    let mut file = match &run_args.scenario {
        Some(path) => scenario::load_file(path)?,
        None if ladder => scenario::parse_text(DEFAULT_LADDER)
            .map_err(|e| anyhow::anyhow!("the built-in ladder scenario: {e}"))?,
        None => ScenarioSpec::default(),
    };
    if file.name.is_none() && run_args.scenario.is_none() {
        file.name = Some(if ladder { "ladder" } else { "explore" }.into());
    }
    if file.connections.is_none() && run_args.connections.is_none() {
        file.connections = Some(DEFAULT_BOUND);
    }
    let paced = file.rate.is_some() || file.ramp.is_some();
    if !paced && run_args.rate.is_none() && run_args.ramp.is_none() {
        file.rate = Some(DEFAULT_RATE);
    }
    // A climb holds everything to its end and stops at the first limit: a
    // file's hold is replaced (the file may be shared with `ceiling run`),
    // a --hold given here is a mistake worth saying.
    if let Some(hold) = run_args.hold {
        return Err(UsageError(format!(
            "--hold {hold}: a climb holds every connection until its end (--duration bounds it): \
             drop --hold"
        ))
        .into());
    }
    file.hold = None;
    let base = args::build_scenario_from(file, run_args, ladder)?;
    // Resolved once, here: every climb runs against the same addresses.
    let (base, _) = runner::resolve_targets(base)?;
    let in_lab = base.lab.is_some();
    // SAFETY: geteuid has no preconditions.
    if in_lab && unsafe { libc::geteuid() } != 0 {
        return Err(UsageError(format!(
            "ceiling explore {}needs root: every climb runs in a `ceiling lab` network \
             namespace{}; run it with sudo{}",
            if ladder { "--ladder " } else { "" },
            if ladder {
                ""
            } else {
                " (the scenario has [lab])"
            },
            if ladder {
                ""
            } else {
                ", or use a scenario without [lab]"
            }
        ))
        .into());
    }
    let (_, fd_hard) = host::nofile_limits().context("cannot read RLIMIT_NOFILE")?;
    if let Some(n) = base.fd_limit
        && n > fd_hard
    {
        return Err(UsageError(format!(
            "fd_limit {n} is above the hard limit {fd_hard}: use at most {fd_hard}"
        ))
        .into());
    }
    let out = out.unwrap_or_else(|| runner::default_results_dir(&format!("explore-{}", base.name)));
    create_out(&out)?;
    let ctx = Context {
        bound: base.connections,
        fd_hard,
        targets: base.targets.clone(),
        pick_port_at: base.pick_port_at,
        default_port_range: if in_lab {
            explore::NAMESPACE_PORT_RANGE
        } else {
            host_port_range().unwrap_or(explore::NAMESPACE_PORT_RANGE)
        },
        // One climb runs the scenario's server as it is.
        server_ladder: explore::server_ladder_of(&base).filter(|_| ladder),
    };
    install_signal_handlers();
    let started = Instant::now();
    let mut rung = explore::first_rung(&base);
    let mut change = explore::describe_start(&rung, &ctx);
    let mut rows: Vec<Row> = Vec::new();
    let mut end = End::MaxSteps;
    eprintln!(
        "ceiling: explore: {}climbing to {} connections at most per step; results in {}",
        if ladder {
            format!("ladder of {max_steps} steps at most, ")
        } else {
            String::new()
        },
        thousands(ctx.bound),
        out.display()
    );
    for step in 1..=max_steps {
        let scenario = explore::climb_scenario(&base, &rung, &ctx, step);
        eprintln!("ceiling: explore: step {step}: {change}");
        let summary = climb(&out, step, &scenario, ui)?;
        let first = summary.first_limit.as_ref();
        let outcome = Outcome::of(&summary, INTERRUPTED.load(Ordering::SeqCst));
        eprintln!(
            "ceiling: explore: step {step}: ceiling {}, {} ({:.1} s)",
            thousands(outcome.ceiling),
            match first {
                Some(f) => format!(
                    "first limit {} at attempt {}",
                    f.kind,
                    thousands(f.at_attempt)
                ),
                None => "no limit hit".into(),
            },
            summary.duration_s
        );
        rows.push(Row {
            step,
            change: change.clone(),
            ceiling: outcome.ceiling,
            limit: first.map_or_else(|| "none".into(), |f| f.kind.as_str().into()),
            at_attempt: first.map(|f| f.at_attempt),
            evidence: [
                first.map(|f| one_line(&f.evidence.message)),
                explore::server_cpu_note(&rung, &outcome, &ctx),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; "),
            remedy: first.map_or_else(String::new, |f| one_line(&f.remedy)),
            results_dir: step_dir(&out, step).display().to_string(),
        });
        let next = explore::next(&rung, &outcome, &ctx);
        let stop = match next {
            Next::Climb {
                rung: next_rung,
                change: next_change,
            } if ladder => {
                rung = next_rung;
                change = next_change;
                None
            }
            Next::Climb { .. } => Some(match outcome.limit {
                Some(kind) => End::OffTheLadder(kind),
                None => End::ShortWithoutLimit,
            }),
            Next::End(e) => Some(e),
        };
        let done = stop.is_some() || step == max_steps;
        if let Some(stop) = stop {
            end = stop;
        }
        write_report(&out, ladder, &ctx, &rows, &end, done)?;
        if done {
            break;
        }
    }
    crate::cmd::report::write_beside(&out);
    let report = build_report(ladder, &ctx, &rows, &end);
    print!("{}", report::render(&report));
    println!("results: {}", out.display());
    eprintln!(
        "ceiling: explore: {} step(s) in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if end == End::Interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// This host's net.ipv4.ip_local_port_range.
fn host_port_range() -> Option<PortRange> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some(PortRange {
        lo: parts.next()??,
        hi: parts.next()??,
    })
}

fn create_out(out: &Path) -> anyhow::Result<()> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(UsageError(format!(
            "cannot write results to '{}': it exists and is not empty (explore never \
             overwrites results): choose another --out",
            out.display()
        ))
        .into());
    }
    std::fs::create_dir_all(out)
        .map_err(|e| UsageError(format!("cannot write results to '{}': {e}", out.display())))?;
    Ok(())
}

fn step_dir(out: &Path, step: u32) -> PathBuf {
    out.join(format!("step-{step}"))
}

/// Runs one climb as a child and reads its summary.
fn climb(out: &Path, step: u32, scenario: &Scenario, ui: UiMode) -> anyhow::Result<Summary> {
    let file = out.join(format!("step-{step}.toml"));
    let header = format!(
        "# ceiling explore, step {step}: rerun with `ceiling {} {}`\n",
        if scenario.lab.is_some() { "lab" } else { "run" },
        file.display()
    );
    std::fs::write(&file, header + &emit::to_toml(scenario))
        .with_context(|| format!("cannot write {}", file.display()))?;
    let results = step_dir(out, step);
    let log_path = out.join(format!("step-{step}.log"));
    let log =
        File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find ceiling's own executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg(if scenario.lab.is_some() { "lab" } else { "run" })
        .arg(&file)
        .args(["--ui", child_ui(ui), "--out"])
        .arg(&results)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(if ui == UiMode::None {
            Stdio::from(log)
        } else {
            Stdio::inherit()
        });
    // SAFETY: between fork and exec only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(|| {
            // Its own process group: Ctrl-C reaches explore alone, which
            // passes it on once (a second Ctrl-C would make the child quit
            // without writing its results).
            libc::setpgid(0, 0);
            // If explore dies, the climb stops as on SIGTERM and still
            // writes its results.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context("cannot start the climb's `ceiling` process")?;
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    if INTERRUPTED.load(Ordering::SeqCst) {
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let status = child.wait();
    CHILD.store(0, Ordering::SeqCst);
    let status = status.context("cannot wait for the climb's process")?;
    let summary_path = results.join("summary.json");
    let text = match std::fs::read_to_string(&summary_path) {
        Ok(text) => text,
        Err(_) => anyhow::bail!(
            "step {step}: the climb ({}) wrote no summary.json; its output ({}):\n{}",
            status,
            log_path.display(),
            tail(&log_path)
        ),
    };
    serde_json::from_str(&text).with_context(|| format!("cannot read {}", summary_path.display()))
}

/// The child's live output: none, a progress bar, or plain lines (the
/// dashboard needs the terminal's keys, which stay with explore).
fn child_ui(ui: UiMode) -> &'static str {
    match ui {
        UiMode::None => "none",
        UiMode::Progress => "progress",
        UiMode::Auto | UiMode::Tui | UiMode::Plain => "plain",
    }
}

/// The last lines of a log, for an error message.
fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(2000)));
        let _ = f.read_to_string(&mut text);
    }
    text.trim().to_string()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn build_report(ladder: bool, ctx: &Context, rows: &[Row], end: &End) -> Report {
    let (key, text) = match (ladder, end, rows.last()) {
        // One climb that hit a limit: that limit, and what to do.
        (false, End::OffTheLadder(kind), Some(last)) => (
            "first_limit".to_string(),
            format!(
                "first limit {kind} ({}) with {} held: {}",
                kind.describe(),
                thousands(last.ceiling),
                last.remedy
            ),
        ),
        _ => (end.key().to_string(), end.describe(ctx.bound)),
    };
    Report {
        bound: ctx.bound,
        ladder,
        steps: rows.to_vec(),
        ceiling: rows.iter().map(|r| r.ceiling).max().unwrap_or(0),
        end: key,
        end_text: text,
    }
}

/// Rewrites ladder.csv and explore.json with the rows so far.
fn write_report(
    out: &Path,
    ladder: bool,
    ctx: &Context,
    rows: &[Row],
    end: &End,
    done: bool,
) -> anyhow::Result<()> {
    let mut report = build_report(ladder, ctx, rows, end);
    if !done {
        report.end = "running".into();
        report.end_text = "still climbing".into();
    }
    let csv = out.join("ladder.csv");
    report::write_csv(&csv, rows).with_context(|| format!("cannot write {}", csv.display()))?;
    let json = out.join("explore.json");
    report::write_json(&json, &report).with_context(|| format!("cannot write {}", json.display()))
}

extern "C" fn on_signal(signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill is async-signal-safe; the PID is our unreaped child.
        unsafe { libc::kill(child, signal) };
    }
}

/// Ctrl-C and SIGTERM stop the ladder: the running climb gets the signal
/// (and writes its results), no further climb starts.
fn install_signal_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores atomics and calls kill.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
}
