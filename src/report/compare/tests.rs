use serde_json::json;

use super::*;
use crate::report::read::Timeseries;

fn run(name: &str, summary: Value) -> Run {
    Run {
        name: name.into(),
        dir: name.into(),
        summary,
        timeseries: Timeseries::default(),
        latency: Vec::new(),
        failures: None,
        sources: None,
        hosts: None,
    }
}

/// A summary with the fields compare reads; `first` is (kind, held).
fn summary(established: u64, first: Option<(&str, u64)>, p99: u64) -> Value {
    json!({
        "scenario": {"name": "x", "connections": 30000, "embedded_target": true,
                     "targets": [format!("127.0.0.1:{}", 30000 + established % 1000)]},
        "totals": {"attempted": 30000, "established": established, "failed": 30000 - established,
                   "peak_active": established, "last_established_s": 3.0,
                   "held_at_end": established},
        "first_limit": first.map(|(kind, held)| json!({"kind": kind, "active_at": held, "at_elapsed_s": 2.5})),
        "failures_by_kind": {"port_exhaustion": 30000 - established, "refused": 0},
        "latency": {"connect_us": {"p50": 40, "p90": 400, "p99": p99, "p999": 9000, "max": 12000}},
        "host": {"values": {"somaxconn": 4096, "ip_local_port_range": "32768-60999",
                            "ip_local_port_count": 28232, "file_nr_allocated": 1373}},
        "workers": {"processes": 0, "threads_per_process": 2, "reason": "threads"},
    })
}

fn side(label: &str, runs: Vec<Run>) -> Side {
    Side {
        label: label.into(),
        runs,
    }
}

fn row<'a>(c: &'a Comparison, figure: &str) -> &'a Row {
    c.rows.iter().find(|r| r.figure == figure).unwrap()
}

#[test]
fn one_knob_changed_is_named_without_a_warning() {
    let a = summary(28231, Some(("port_exhaustion", 28231)), 800);
    let mut b = summary(30000, None, 900);
    b["host"]["values"]["ip_local_port_range"] = json!("10000-65535");
    b["host"]["values"]["ip_local_port_count"] = json!(55536);
    b["host"]["values"]["file_nr_allocated"] = json!(9999);
    let c = compare(&[side("A", vec![run("a", a)]), side("B", vec![run("b", b)])]);
    let keys: Vec<&str> = c.settings.iter().map(|d| d.key.as_str()).collect();
    // The built-in target's port and the files in use are not settings.
    assert_eq!(
        keys,
        ["host.ip_local_port_count", "host.ip_local_port_range"],
        "{c:?}"
    );
    assert_eq!(c.knobs_changed, 1);
    assert!(c.warning.is_none());
}

#[test]
fn two_knobs_changed_warn() {
    let a = summary(28231, None, 800);
    let mut b = summary(28231, None, 800);
    b["scenario"]["connections"] = json!(40000);
    b["host"]["values"]["somaxconn"] = json!(128);
    let c = compare(&[side("A", vec![run("a", a)]), side("B", vec![run("b", b)])]);
    assert_eq!(c.knobs_changed, 2);
    assert!(
        c.warning
            .as_deref()
            .unwrap()
            .starts_with("more than one knob changed (B changes 2 against A)"),
        "{c:?}"
    );
    assert!(render(&c).contains("warning: more than one knob changed"));
}

#[test]
fn a_lab_sysctl_and_the_host_value_it_sets_are_one_knob() {
    let mut a = summary(1000, Some(("port_exhaustion", 1000)), 800);
    a["lab"] = json!({"sysctls": {"net.ipv4.ip_local_port_range": "50000 50999"}});
    let mut b = a.clone();
    b["lab"]["sysctls"]["net.ipv4.ip_local_port_range"] = json!("50000 53999");
    b["host"]["values"]["ip_local_port_range"] = json!("50000-53999");
    let mut c = b.clone();
    c["scenario"]["sources"] = json!(["127.0.0.1", "127.0.0.2"]);
    let cmp = compare(&[
        side("A", vec![run("a", a)]),
        side("B", vec![run("b", b)]),
        side("C", vec![run("c", c)]),
    ]);
    assert_eq!(cmp.knobs_changed, 2, "{cmp:?}");
    let warning = cmp.warning.unwrap();
    assert!(warning.contains("(C changes 2 against A)"), "{warning}");
    let sources = cmp
        .settings
        .iter()
        .find(|d| d.key == "scenario.sources")
        .unwrap();
    assert_eq!(sources.values, ["–", "–", "127.0.0.1, 127.0.0.2"]);
}

#[test]
fn the_first_limit_moving_is_said_in_words() {
    let a = summary(28231, Some(("port_exhaustion", 28231)), 800);
    let b = summary(30000, Some(("fd_limit_process", 65519)), 800);
    let c = compare(&[
        side("A", vec![run("a", a.clone())]),
        side("B", vec![run("b", b)]),
    ]);
    assert!(c.limit_moved);
    assert_eq!(
        c.limit_text,
        "port_exhaustion at 28,231 held → fd_limit_process at 65,519 held: the limit moved"
    );
    let same = compare(&[
        side("A", vec![run("a", a.clone())]),
        side("B", vec![run("b", a)]),
    ]);
    assert!(!same.limit_moved);
    assert!(
        same.limit_text.ends_with(": the same limit"),
        "{}",
        same.limit_text
    );
    let none = compare(&[
        side("A", vec![run("a", summary(30000, None, 1))]),
        side(
            "B",
            vec![run("b", summary(100, Some(("server_closed", 50)), 1))],
        ),
    ]);
    assert_eq!(
        none.limit_text,
        "no limit → server_closed at 50 held: the limit moved"
    );
}

#[test]
fn the_table_gives_each_side_and_its_change_against_a() {
    let a = summary(20000, None, 800);
    let b = summary(30000, None, 1200);
    let c = compare(&[side("A", vec![run("a", a)]), side("B", vec![run("b", b)])]);
    let established = row(&c, "established");
    assert_eq!(established.values, [Some(20000.0), Some(30000.0)]);
    assert_eq!(established.delta_pct, [None, Some(50.0)]);
    assert_eq!(established.significant, [None, None]);
    assert_eq!(row(&c, "connect_p99").delta_pct[1], Some(50.0));
    assert_eq!(row(&c, "connect_rate").values[0], Some(20000.0 / 3.0));
    // Only kinds that failed; refused never did.
    assert!(c.rows.iter().any(|r| r.figure == "failed_port_exhaustion"));
    assert!(!c.rows.iter().any(|r| r.figure == "failed_refused"));
    // No limit on either side: nothing to time.
    assert!(!c.rows.iter().any(|r| r.figure == "time_to_first_limit"));
    assert!(c.significance.starts_with("one run each: no significance"));
    let text = render(&c);
    assert!(text.contains("established"), "{text}");
    assert!(text.contains("+50.0%"), "{text}");
    assert!(text.contains("1.2 ms"), "{text}");
}

#[test]
fn several_runs_a_side_are_rank_tested() {
    let runs = |label: &str, established: &[u64]| {
        side(
            label,
            established
                .iter()
                .map(|&e| run(label, summary(e, None, 800)))
                .collect(),
        )
    };
    // Four a side, no overlap: p = 2/70 < 5%.
    let c = compare(&[
        runs("A", &[100, 101, 102, 103]),
        runs("B", &[200, 201, 202, 203]),
    ]);
    let r = row(&c, "established");
    assert_eq!(r.values, [Some(101.5), Some(201.5)]);
    assert_eq!(r.significant[1], Some(true));
    assert!((r.p[1].unwrap() - 2.0 / 70.0).abs() < 1e-12);
    // The p99 is the same everywhere: `~`.
    assert_eq!(row(&c, "connect_p99").significant[1], Some(false));
    let text = render(&c);
    assert!(text.contains("+98.5% (p=0.029)"), "{text}");
    assert!(text.contains("~ (p=1.000)"), "{text}");
    // Three a side can never reach 5%, and the output says so.
    let c = compare(&[runs("A", &[100, 101, 102]), runs("B", &[200, 201, 202])]);
    assert_eq!(row(&c, "established").significant[1], Some(false));
    assert!(
        c.significance.contains("use at least 4"),
        "{}",
        c.significance
    );
}

#[test]
fn conditions_parse_with_units_and_factors_of_a() {
    let c = Condition::parse("peak_active < 0.95*A").unwrap();
    assert_eq!(
        (c.figure.as_str(), c.op, c.rhs),
        ("peak_active", Op::Lt, Rhs::OfA(0.95))
    );
    let c = Condition::parse("connect_p99>5ms").unwrap();
    assert_eq!((c.op, c.rhs), (Op::Gt, Rhs::Value(5000.0)));
    assert_eq!(
        Condition::parse("established >= 28k").unwrap().rhs,
        Rhs::Value(28000.0)
    );
    assert_eq!(
        Condition::parse("time_to_first_limit <= 500ms")
            .unwrap()
            .rhs,
        Rhs::Value(0.5)
    );
    assert_eq!(
        Condition::parse("failed_port_exhaustion != A").unwrap().rhs,
        Rhs::OfA(1.0)
    );
    assert_eq!(Condition::parse("rtt_max <= 300us").unwrap().op, Op::Le);
}

#[test]
fn a_bad_condition_says_what_is_accepted() {
    let e = Condition::parse("peak-held < 5").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--fail-if 'peak-held < 5': unknown figure 'peak-held'"),
        "{e}"
    );
    assert!(e.to_string().contains("peak_active"), "{e}");
    let e = Condition::parse("peak_active < 5ms").unwrap_err();
    assert!(e.to_string().contains("unit 'ms' does not fit"), "{e}");
    let e = Condition::parse("connect_p99 5ms").unwrap_err();
    assert!(e.to_string().contains("no comparison"), "{e}");
    let e = Condition::parse("connect_p99 > fast").unwrap_err();
    assert!(e.to_string().contains("'fast' is not a value"), "{e}");
    let e = Condition::parse("established < x*A").unwrap_err();
    assert!(e.to_string().contains("'x' is not a number"), "{e}");
}

#[test]
fn conditions_are_checked_against_the_sides_after_the_first() {
    let a = summary(30000, None, 800);
    let b = summary(20000, None, 7000);
    let c = compare(&[side("A", vec![run("a", a)]), side("B", vec![run("b", b)])]);
    let conds: Vec<Condition> = [
        "peak_active < 0.95*A",
        "connect_p99 > 5ms",
        "connect_p50 > 5ms",
        "rtt_p99 > 1ms",
    ]
    .iter()
    .map(|t| Condition::parse(t).unwrap())
    .collect();
    let held = check(&c, &conds).unwrap();
    let names: Vec<&str> = held.iter().map(|h| h.condition.as_str()).collect();
    assert_eq!(names, ["peak_active < 0.95*A", "connect_p99 > 5ms"]);
    assert_eq!(
        held[0].text,
        "fail-if 'peak_active < 0.95*A' holds for B: peak_active is 20,000 against 28,500"
    );
    assert_eq!(
        held[1].text,
        "fail-if 'connect_p99 > 5ms' holds for B: connect_p99 is 7 ms against 5 ms"
    );
}

#[test]
fn totals_fields_of_later_versions_are_figures_and_a_name_no_run_has_is_an_error() {
    let a = summary(30000, None, 800);
    let mut b = summary(30000, None, 800);
    b["totals"]["held_at_end"] = json!(100);
    let c = compare(&[side("A", vec![run("a", a)]), side("B", vec![run("b", b)])]);
    assert_eq!(row(&c, "held_at_end").values, [Some(30000.0), Some(100.0)]);
    assert_eq!(row(&c, "last_established_s").unit, Unit::Seconds);
    let gate = Condition::parse("held_at_end < 0.9*A").unwrap();
    assert!(!gate.known);
    assert_eq!(check(&c, &[gate]).unwrap().len(), 1);
    // A known figure no run has does not hold; an unknown one is an error.
    let rtt = Condition::parse("rtt_p99 > 1ms").unwrap();
    assert!(check(&c, &[rtt]).unwrap().is_empty());
    let typo = Condition::parse("peak < 0.95*A").unwrap();
    let e = check(&c, &[typo]).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "--fail-if 'peak < 0.95*A': unknown figure 'peak': use one of established"
        ),
        "{e}"
    );
}

#[test]
fn runs_of_one_side_that_are_not_repeats_are_warned_of() {
    let a1 = summary(100, None, 800);
    let mut a2 = summary(101, None, 800);
    a2["host"]["values"]["somaxconn"] = json!(128);
    let c = compare(&[
        side("A", vec![run("a1", a1.clone()), run("a2", a2)]),
        side("B", vec![run("b1", a1.clone()), run("b2", a1)]),
    ]);
    assert_eq!(
        c.warning.as_deref(),
        Some("the runs of A are not repeats of one setup: they differ in host.somaxconn")
    );
}

/// `summary` with a request run's `requests` object, total latency and
/// length.
fn request_summary(responses: u64, rejects: u64, total_p99: u64) -> Value {
    let mut s = summary(50, None, 800);
    s["duration_s"] = json!(10.0);
    s["requests"] = json!({
        "scheduled": responses + rejects, "sent": responses, "responses": responses,
        "errors": {"closed": 2, "error_reply": 1, "malformed": 0},
        "rejects": rejects, "reconnects": 3,
        "status": {"2xx": responses, "5xx": 0},
    });
    s["latency"]["total_us"] =
        json!({"p50": 900, "p90": 2000, "p99": total_p99, "p999": 9000, "max": 12000});
    s
}

#[test]
fn request_runs_compare_their_requests_and_gate_on_them() {
    let a = request_summary(30_000, 0, 4_000);
    let b = request_summary(20_000, 1_500, 60_000);
    let c = compare(&[side("A", vec![run("a", a)]), side("B", vec![run("b", b)])]);
    assert_eq!(row(&c, "responses").values, [Some(30000.0), Some(20000.0)]);
    assert_eq!(row(&c, "rejects").values, [Some(0.0), Some(1500.0)]);
    assert_eq!(row(&c, "request_errors").values, [Some(3.0), Some(3.0)]);
    assert_eq!(row(&c, "request_errors_closed").values[1], Some(2.0));
    assert_eq!(row(&c, "status_2xx").values[1], Some(20000.0));
    let rate = row(&c, "request_rate");
    assert_eq!((rate.unit, rate.values[0]), (Unit::PerSecond, Some(3000.0)));
    assert_eq!(row(&c, "total_p99").values, [Some(4000.0), Some(60000.0)]);
    let conds: Vec<Condition> = [
        "total_p99 > 50ms",
        "rejects > 0",
        "request_rate < 0.9*A",
        "reconnects > 3",
    ]
    .iter()
    .map(|t| Condition::parse(t).unwrap())
    .collect();
    assert!(conds.iter().all(|c| c.known));
    let held = check(&c, &conds).unwrap();
    let names: Vec<&str> = held.iter().map(|h| h.condition.as_str()).collect();
    assert_eq!(
        names,
        ["total_p99 > 50ms", "rejects > 0", "request_rate < 0.9*A"]
    );
    // Known request figures against connection runs do not hold: no error.
    let plain = compare(&[
        side("A", vec![run("a", summary(30000, None, 800))]),
        side("B", vec![run("b", summary(30000, None, 800))]),
    ]);
    assert!(check(&plain, &conds).unwrap().is_empty());
    assert!(Condition::parse("request_rate > 2k/s").is_ok());
}
