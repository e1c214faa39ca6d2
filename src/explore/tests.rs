//! The ladder's rules, one limit at a time, and the whole story walked
//! with made-up outcomes.

use super::*;
use crate::scenario::parse_text;
use crate::scenario::units::RampSpec;

fn ctx(bound: u64) -> Context {
    Context {
        bound,
        fd_hard: 20_000,
        targets: vec!["127.0.0.1:7070".parse().unwrap()],
        pick_port_at: PortPick::Connect,
        default_port_range: NAMESPACE_PORT_RANGE,
        server_ladder: None,
    }
}

fn start() -> Rung {
    Rung {
        port_range: Some(PortRange {
            lo: 50000,
            hi: 50999,
        }),
        sources: Vec::new(),
        fd_limit: Some(4096),
        processes: None,
        memory_limit: Some(48 << 20),
        widened: false,
        server: ServerRung::AsGiven,
    }
}

fn hit(kind: LimitKind, ceiling: u64) -> Outcome {
    Outcome {
        limit: Some(kind),
        ceiling,
        established: ceiling,
        aborted: false,
        server_pids_refused: None,
        server_cpu_throttled_s: None,
    }
}

fn climb_of(next: Next) -> (Rung, String) {
    match next {
        Next::Climb { rung, change } => (rung, change),
        Next::End(end) => panic!("ended: {end:?}"),
    }
}

#[test]
fn port_exhaustion_widens_the_range_once_then_adds_sources() {
    let c = ctx(30_000);
    let (wider, change) = climb_of(next(&start(), &hit(LimitKind::PortExhaustion, 1000), &c));
    assert_eq!(
        wider.port_range,
        Some(PortRange {
            lo: 50000,
            hi: 53999
        })
    );
    assert!(wider.widened);
    assert!(
        change.starts_with("widen ip_local_port_range 50000-50999 → 50000-53999"),
        "{change}"
    );
    let (more, change) = climb_of(next(&wider, &hit(LimitKind::PortExhaustion, 4000), &c));
    // 30,000 × 1.1 / 4,000 ports = 8.25 → 9 sources from 127.0.0.1.
    assert_eq!(more.sources.len(), 9, "{change}");
    assert_eq!(more.sources[0], "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(more.sources[8], "127.0.0.9".parse::<IpAddr>().unwrap());
    assert_eq!(more.port_range, wider.port_range, "the range stays");
    assert!(
        change.contains("127.0.0.1-127.0.0.9 (9 × 4,000 ports)"),
        "{change}"
    );
    // Still not enough: at least twice as many, continuing after the last.
    let (again, _) = climb_of(next(&more, &hit(LimitKind::PortExhaustion, 30_000), &c));
    assert_eq!(again.sources.len(), 18);
    assert_eq!(again.sources[17], "127.0.0.18".parse::<IpAddr>().unwrap());
}

#[test]
fn widening_stays_clear_of_the_target_port_and_the_top() {
    let targets: Vec<SocketAddr> = vec!["127.0.0.1:7070".parse().unwrap()];
    let w = |lo, hi| widen(PortRange { lo, hi }, &targets);
    assert_eq!(
        w(60000, 64999),
        Some(PortRange {
            lo: 45536,
            hi: 65535
        })
    );
    // Down to just above the target's port, not over it.
    assert_eq!(
        w(10000, 65535),
        Some(PortRange {
            lo: 7071,
            hi: 65535
        })
    );
    assert_eq!(w(7071, 65535), None);
    // A target above the range caps it from above: it grows downwards.
    let above: Vec<SocketAddr> = vec!["127.0.0.1:50300".parse().unwrap()];
    assert_eq!(
        widen(
            PortRange {
                lo: 50000,
                hi: 50099
            },
            &above
        ),
        Some(PortRange {
            lo: 49900,
            hi: 50299
        })
    );
}

#[test]
fn without_room_to_widen_the_first_port_exhaustion_adds_sources() {
    let rung = Rung {
        port_range: Some(PortRange {
            lo: 7071,
            hi: 65535,
        }),
        ..start()
    };
    let (more, change) = climb_of(next(
        &rung,
        &hit(LimitKind::PortExhaustion, 58_000),
        &ctx(60_000),
    ));
    assert_eq!(more.sources.len(), 2, "{change}");
}

#[test]
fn ipv6_targets_cannot_get_more_loopback_sources() {
    let c = Context {
        targets: vec!["[::1]:7070".parse().unwrap()],
        ..ctx(1000)
    };
    let rung = Rung {
        widened: true,
        ..start()
    };
    match next(&rung, &hit(LimitKind::PortExhaustion, 100), &c) {
        Next::End(End::NoRemedyLeft(LimitKind::PortExhaustion, why)) => {
            assert!(why.contains("target ports"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fd_limit_raises_the_soft_limit_then_adds_processes_then_doubles_them() {
    let c = ctx(30_000);
    let (raised, change) = climb_of(next(&start(), &hit(LimitKind::FdLimitProcess, 4070), &c));
    assert_eq!(raised.fd_limit, Some(20_000));
    assert_eq!(change, "raise fd_limit 4,096 → 20,000 (the hard limit)");
    let (procs, change) = climb_of(next(&raised, &hit(LimitKind::FdLimitProcess, 19_970), &c));
    // 30,000 / 19,936 per process → 2.
    assert_eq!(procs.processes, Some(2));
    assert!(
        change.contains("processes = 2") && change.contains("memory cgroup of 48 MiB"),
        "{change}"
    );
    let (more, change) = climb_of(next(&procs, &hit(LimitKind::FdLimitProcess, 29_000), &c));
    assert_eq!(more.processes, Some(4));
    assert!(!change.contains("memory cgroup"), "said once: {change}");
    // No --fd-limit means the hard limit already: straight to processes.
    let unset = Rung {
        fd_limit: None,
        ..start()
    };
    let (procs, _) = climb_of(next(&unset, &hit(LimitKind::FdLimitProcess, 19_970), &c));
    assert_eq!(procs.processes, Some(2));
}

#[test]
fn kernel_memory_raises_the_cgroup_limit_only_when_there_is_one() {
    let rung = Rung {
        processes: Some(2),
        ..start()
    };
    let (raised, change) = climb_of(next(
        &rung,
        &hit(LimitKind::KernelMemory, 9000),
        &ctx(30_000),
    ));
    assert_eq!(raised.memory_limit, Some(96 << 20));
    assert_eq!(change, "raise memory_limit 48 MiB → 96 MiB");
    let host = Rung {
        memory_limit: None,
        ..rung
    };
    assert!(matches!(
        next(&host, &hit(LimitKind::KernelMemory, 9000), &ctx(30_000)),
        Next::End(End::NoRemedyLeft(LimitKind::KernelMemory, _))
    ));
}

#[test]
fn no_limit_ends_at_the_bound_and_other_limits_end_the_ladder() {
    let c = ctx(30_000);
    let all = Outcome {
        limit: None,
        ceiling: 30_000,
        established: 30_000,
        aborted: false,
        server_pids_refused: None,
        server_cpu_throttled_s: None,
    };
    assert_eq!(next(&start(), &all, &c), Next::End(End::ReachedBound));
    let short = Outcome {
        ceiling: 29_000,
        established: 29_000,
        ..all.clone()
    };
    assert_eq!(
        next(&start(), &short, &c),
        Next::End(End::ShortWithoutLimit)
    );
    for kind in [
        LimitKind::BacklogOverflow,
        LimitKind::ServerClosed,
        LimitKind::ConnectTimeout,
        LimitKind::FdLimitSystem,
        LimitKind::ConntrackFull,
    ] {
        assert_eq!(
            next(&start(), &hit(kind, 500), &c),
            Next::End(End::OffTheLadder(kind))
        );
    }
    let aborted = Outcome {
        aborted: true,
        ..hit(LimitKind::PortExhaustion, 10)
    };
    assert_eq!(next(&start(), &aborted, &c), Next::End(End::Interrupted));
}

/// The classic story, with the outcomes a 2-core box gives.
#[test]
fn the_whole_story_in_order() {
    let c = ctx(30_000);
    let outcomes = [
        hit(LimitKind::PortExhaustion, 1000),
        hit(LimitKind::PortExhaustion, 4000),
        hit(LimitKind::FdLimitProcess, 4070),
        hit(LimitKind::FdLimitProcess, 19_970),
        hit(LimitKind::KernelMemory, 12_000),
    ];
    let mut rung = start();
    let mut changes = Vec::new();
    for outcome in &outcomes {
        let (r, change) = climb_of(next(&rung, outcome, &c));
        rung = r;
        changes.push(
            change
                .split(':')
                .next()
                .unwrap()
                .split(' ')
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    assert_eq!(
        changes,
        [
            "widen ip_local_port_range",
            "add source",
            "raise fd_limit",
            "add worker",
            "raise memory_limit"
        ]
    );
    let done = Outcome {
        limit: None,
        ceiling: 30_000,
        established: 30_000,
        aborted: false,
        server_pids_refused: None,
        server_cpu_throttled_s: None,
    };
    assert_eq!(next(&rung, &done, &c), Next::End(End::ReachedBound));
}

#[test]
fn a_climb_holds_to_the_end_stops_at_the_first_limit_and_applies_the_rung() {
    let base = Scenario::validate(
        parse_text(
            "name = \"ladder\"\nrate = 10000\nfd_limit = 4096\n[lab]\n\
             ip_local_port_range = \"50000-50999\"\nmemory_limit = \"48MiB\"\n",
        )
        .unwrap(),
    )
    .unwrap();
    let c = ctx(30_000);
    let rung = first_rung(&base);
    assert_eq!(rung, start());
    let s = climb_scenario(&base, &rung, &c, 1);
    assert_eq!(s.name, "ladder-step1");
    assert_eq!(s.connections, 30_000);
    assert_eq!(s.hold, HoldMode::UntilEnd);
    assert!(s.stop_at_first_limit);
    // 3 s to open at 10,000/s, twice that, plus 3 s.
    assert_eq!(s.duration, Some(Duration::from_secs(9)));
    let lab = s.lab.as_ref().unwrap();
    assert_eq!(lab.memory_limit, None, "no worker processes yet");
    // 30,000 server-side connections, 14,952 per server process.
    assert_eq!(lab.server.processes, 3);
    let later = Rung {
        port_range: Some(PortRange {
            lo: 50000,
            hi: 53999,
        }),
        processes: Some(2),
        sources: vec!["127.0.0.1".parse().unwrap()],
        ..rung
    };
    let s = climb_scenario(&base, &later, &c, 5);
    let lab = s.lab.as_ref().unwrap();
    assert_eq!(lab.port_range(), Some((50000, 53999)));
    assert_eq!(lab.memory_limit, Some(48 << 20));
    assert_eq!(s.processes, Some(Processes::Count(2)));
    assert_eq!(s.sources.len(), 1);
    // And it survives the trip through a file.
    let text = crate::scenario::emit::to_toml(&s);
    let back = Scenario::validate(parse_text(&text).unwrap()).unwrap();
    assert_eq!(back.lab, s.lab);
    assert_eq!(back.duration, s.duration);
}

#[test]
fn time_to_open_follows_the_pace() {
    let secs = |pace, n| time_to_open(pace, n).as_secs_f64();
    assert_eq!(secs(Pace::Constant { per_s: 1000.0 }, 5000), 5.0);
    assert_eq!(secs(Pace::Unlimited, 20_000), 1.0);
    let ramp = Pace::Ramp(RampSpec {
        from: 0.0,
        to: 10_000.0,
        over: Duration::from_secs(10),
    });
    // 0..10k over 10 s opens 50,000 by its end: 20,000 by √4 = 6.32 s.
    assert!((secs(ramp, 20_000) - 40f64.sqrt()).abs() < 1e-6);
    // Past the ramp, at its final rate.
    assert!((secs(ramp, 60_000) - 11.0).abs() < 1e-6);
    assert_eq!(
        climb_duration(Pace::Constant { per_s: 1.0 }, 1_000_000),
        Duration::from_secs(600)
    );
}

fn summary(established: u64, peak: u64, closed_by_server: u64, active_at: u64) -> Summary {
    use crate::model::*;
    Summary {
        schema_version: SCHEMA_VERSION,
        ceiling_version: String::new(),
        scenario: serde_json::Value::Null,
        started_at: String::new(),
        duration_s: 1.0,
        aborted: false,
        totals: Totals {
            attempted: established + 1,
            established,
            connect_failed: 1,
            peak_active: peak,
            closed_by_driver: established - closed_by_server,
            closed_by_server,
            last_established_s: 1.5,
            ..Totals::default()
        },
        nothing_connected: None,
        first_limit: Some(FirstLimit {
            kind: LimitKind::FdLimitProcess,
            errno: None,
            errno_name: None,
            syscall: Syscall::Socket,
            at_attempt: established + 1,
            at_elapsed_s: 0.5,
            active_at,
            source: String::new(),
            target: String::new(),
            evidence: Evidence::default(),
            host: None,
            remedy: String::new(),
        }),
        failures_by_kind: Default::default(),
        failures: Vec::new(),
        warnings: Warnings::default(),
        latency: Default::default(),
        requests: None,
        sources: Vec::new(),
        host: HostReport::default(),
        lab: None,
        targets_resolved: Vec::new(),
        merge: None,
        fleet: None,
        workers: WorkersReport::default(),
        safety: Default::default(),
    }
}

#[test]
fn the_ceiling_is_the_exact_peak_not_the_count_established() {
    // Every connection established, but the time bound closed some while
    // the last were still opening: 30,000 established through a 28,232-port
    // range never means 30,000 held at once.
    assert_eq!(ceiling_of(&summary(30_000, 28_100, 0, 28_100)), 28_100);
    assert_eq!(ceiling_of(&summary(3826, 3826, 50, 3801)), 3826);
}

fn server_ctx(cpu_millis: Option<u64>) -> Context {
    Context {
        server_ladder: Some(ServerLadder {
            threads_max: 2000,
            cpu_millis,
        }),
        ..ctx(30_000)
    }
}

fn held_all() -> Outcome {
    Outcome {
        limit: None,
        ceiling: 30_000,
        established: 30_000,
        aborted: false,
        server_pids_refused: Some(0),
        server_cpu_throttled_s: None,
    }
}

/// Past the bound, a ladder with a server thread cap climbs the server's
/// design: threads stop at the cap, async passes it, a CPU quota throttles.
#[test]
fn past_the_bound_the_server_design_threads_then_async_then_a_cpu_quota() {
    let c = server_ctx(Some(50));
    let (threads, change) = climb_of(next(&start(), &held_all(), &c));
    assert_eq!(threads.server, ServerRung::Threads);
    assert_eq!(
        change,
        "a thread per connection: server_model = threads, server_threads_max = 2,000 (C10K)"
    );
    // The client's settings stay as they reached the bound.
    assert_eq!(
        Rung {
            server: ServerRung::AsGiven,
            ..threads.clone()
        },
        start()
    );
    let capped = Outcome {
        server_pids_refused: Some(8000),
        ..hit(LimitKind::ServerClosed, 1990)
    };
    let (async_rung, change) = climb_of(next(&threads, &capped, &c));
    assert_eq!(async_rung.server, ServerRung::Async);
    assert!(
        change.starts_with("the async design: server_model = async"),
        "{change}"
    );
    let (cpu, change) = climb_of(next(&async_rung, &held_all(), &c));
    assert_eq!(cpu.server, ServerRung::CpuQuota);
    assert!(change.contains("server_cpus = 0.05"), "{change}");
    let throttled = Outcome {
        server_cpu_throttled_s: Some(2.06),
        ..held_all()
    };
    let end = End::ServerCpu {
        cpu_millis: 50,
        throttled_ms: 2060,
        limit: None,
    };
    assert_eq!(next(&cpu, &throttled, &c), Next::End(end.clone()));
    assert_eq!(end.key(), "server_cpu");
    assert!(
        end.describe(30_000).starts_with(
            "stopped at the server's CPU: its quota of 0.05 cores throttled it for 2.1 s"
        ),
        "{}",
        end.describe(30_000)
    );
    assert_eq!(
        server_cpu_note(&cpu, &throttled, &c).unwrap(),
        "the server's CPU quota of 0.05 cores throttled it for 2.1 s \
         (lab.server.figures.cpu_throttled_s)"
    );
    // A limit on the CPU rung is named with the throttling.
    let backlog = Outcome {
        server_cpu_throttled_s: Some(4.0),
        ..hit(LimitKind::BacklogOverflow, 9000)
    };
    assert!(matches!(
        next(&cpu, &backlog, &c),
        Next::End(End::ServerCpu {
            limit: Some(LimitKind::BacklogOverflow),
            ..
        })
    ));
    // Not throttled: the quota was no limit, the bound was reached.
    assert_eq!(next(&cpu, &held_all(), &c), Next::End(End::ReachedBound));
    assert_eq!(server_cpu_note(&cpu, &held_all(), &c), None);
    // No CPU quota given: the ladder ends once async passed the cap.
    assert_eq!(
        next(&async_rung, &held_all(), &server_ctx(None)),
        Next::End(End::ReachedBound)
    );
    // Without a server ladder the bound ends it, as before.
    assert_eq!(
        next(&start(), &held_all(), &ctx(30_000)),
        Next::End(End::ReachedBound)
    );
    // Another limit on the threads rung, with no refused threads, is off
    // the ladder as anywhere.
    assert_eq!(
        next(&threads, &hit(LimitKind::ConnectTimeout, 900), &c),
        Next::End(End::OffTheLadder(LimitKind::ConnectTimeout))
    );
}

#[test]
fn the_server_rungs_set_the_labs_server_and_come_from_server_threads_max() {
    let base = Scenario::validate(
        parse_text(
            "name = \"ladder\"\nrate = 10000\n[lab]\nserver_threads_max = 2000\n\
             server_cpus = 0.05\n",
        )
        .unwrap(),
    )
    .unwrap();
    let ladder = server_ladder_of(&base).unwrap();
    assert_eq!(
        ladder,
        ServerLadder {
            threads_max: 2000,
            cpu_millis: Some(50)
        }
    );
    let c = Context {
        server_ladder: Some(ladder),
        ..ctx(30_000)
    };
    let server_of = |server: ServerRung| {
        let rung = Rung {
            server,
            ..first_rung(&base)
        };
        let lab = climb_scenario(&base, &rung, &c, 1).lab.unwrap();
        (
            lab.server.model,
            lab.server.threads_max,
            lab.server.cpu_millis,
        )
    };
    // The client's rungs climb against the server without cap or quota.
    assert_eq!(
        server_of(ServerRung::AsGiven),
        (ServerModel::Async, None, None)
    );
    assert_eq!(
        server_of(ServerRung::Threads),
        (ServerModel::Threads, Some(2000), None)
    );
    assert_eq!(
        server_of(ServerRung::Async),
        (ServerModel::Async, Some(2000), None)
    );
    assert_eq!(
        server_of(ServerRung::CpuQuota),
        (ServerModel::Async, Some(2000), Some(50))
    );
    assert!(describe_start(&first_rung(&base), &c).ends_with(
        "then the server's design: a thread per connection under server_threads_max 2,000, \
             async, a CPU quota of 0.05 cores"
    ));
    // No cap, no server rungs.
    let plain = Scenario::validate(parse_text("name = \"l\"\n[lab]\n").unwrap()).unwrap();
    assert_eq!(server_ladder_of(&plain), None);
}
