use std::fmt::Write as _;

use super::*;
use crate::classify::host::QueueSource;

/// A host like the lab netns: range 50000-50010, soft fd 1000 / hard 20000.
fn host(counters: &[(&str, u64)]) -> HostState {
    let values = serde_json::json!({
        "ip_local_port_range": "50000-50010",
        "ip_local_port_count": 11,
        "somaxconn": 4096,
        "tcp_max_syn_backlog": 2048,
        "tcp_syn_retries": 6,
        "rlimit_nofile_soft": 1000,
        "rlimit_nofile_hard": 20000,
        "file_nr_allocated": 2466000,
        "file_max": 2466177,
        "tcp_mem_pages": "287901 383868 575802",
        "nf_conntrack_count": 262144,
        "nf_conntrack_max": 262144,
    });
    let base: &[(&str, u64)] = &[
        ("TcpExt.ListenOverflows", 10),
        ("TcpExt.ListenDrops", 10),
        ("TcpExt.TCPSynRetrans", 3),
        ("TcpExt.TCPTimeWaitOverflow", 0),
        ("TcpExt.TCPAbortOnMemory", 0),
        ("Tcp.ActiveOpens", 100),
        ("Tcp.AttemptFails", 0),
        ("sockstat.tcp_tw", 0),
        ("sockstat.tcp_mem", 259),
    ];
    let mut map: BTreeMap<String, u64> = base.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    map.extend(counters.iter().map(|(k, v)| (k.to_string(), *v)));
    HostState {
        values: serde_json::from_value(values).unwrap(),
        counters: map,
    }
}

fn event(
    kind: LimitKind,
    syscall: Syscall,
    errno: Option<i32>,
    attempt: u64,
    active: u64,
) -> FailureEvent {
    FailureEvent {
        syscall,
        errno,
        ..FailureEvent::example(kind, attempt, 1.5, active)
    }
}

fn one_source() -> RunFacts {
    RunFacts {
        source_count: 1,
        target_count: 1,
        connect_timeout_ms: 2000,
        target_local: true,
        ..RunFacts::default()
    }
}

fn run(ev: &FailureEvent, end_counters: &[(&str, u64)], facts: &RunFacts) -> (Evidence, String) {
    explain(ev, &host(&[]), &host(end_counters), facts)
}

#[test]
fn port_exhaustion_on_connect() {
    let ev = event(
        LimitKind::PortExhaustion,
        Syscall::Connect,
        Some(libc::EADDRNOTAVAIL),
        12,
        11,
    );
    let (evidence, remedy) = run(&ev, &[("Tcp.ActiveOpens", 111)], &one_source());
    assert_eq!(
        evidence.message,
        "connect() failed with EADDRNOTAVAIL at attempt 12 with 11 held from 127.0.0.1 to \
         127.0.0.1:7070; ip_local_port_range 50000-50010 gives 11 ports per (source IP, target): \
         ≈ 11 connections for 1 source IP × 1 target"
    );
    assert_eq!(
        remedy,
        "add source IPs (e.g. --source 127.0.0.2-127.0.0.9: each adds ~11 ports per target) or \
         target ports, or widen net.ipv4.ip_local_port_range (now 50000-50010)"
    );
    assert_eq!(evidence.facts["ip_local_port_range"], "50000-50010");
    assert_eq!(evidence.facts["delta.Tcp.ActiveOpens"], 11);
}

#[test]
fn port_exhaustion_with_time_wait_and_two_targets() {
    let ev = event(
        LimitKind::PortExhaustion,
        Syscall::Connect,
        Some(libc::EADDRNOTAVAIL),
        21,
        20,
    );
    let facts = RunFacts {
        target_count: 2,
        ..one_source()
    };
    let (evidence, remedy) = run(&ev, &[("sockstat.tcp_tw", 2)], &facts);
    assert!(
        evidence
            .message
            .contains("≈ 22 connections for 1 source IP × 2 targets")
    );
    assert!(
        evidence
            .message
            .ends_with("; 2 sockets in TIME_WAIT hold ports")
    );
    assert!(remedy.ends_with("`--close rst` leaves no TIME_WAIT behind"));
    assert_eq!(evidence.facts["sockstat.tcp_tw"], 2);
}

#[test]
fn port_exhaustion_on_bind_without_no_port() {
    let ev = event(
        LimitKind::PortExhaustion,
        Syscall::Bind,
        Some(libc::EADDRINUSE),
        23,
        22,
    );
    let facts = RunFacts {
        source_count: 2,
        ..one_source()
    };
    let (evidence, remedy) = run(&ev, &[], &facts);
    assert!(
        evidence.message.contains(
            "bind() failed with EADDRINUSE at attempt 23 with 22 held from 127.0.0.1 to 127.0.0.1:7070; \
             ip_local_port_range 50000-50010 gives 11 ports per source IP: ≈ 22 connections for 2 source IPs"
        ),
        "{}",
        evidence.message
    );
    assert!(remedy.starts_with("let the kernel pick the port at connect time"));
    assert!(remedy.contains("IP_BIND_ADDRESS_NO_PORT"));
    assert!(remedy.contains("gets all 11 ports"));
}

#[test]
fn port_exhaustion_with_explicit_source_ports() {
    let ev = event(
        LimitKind::PortExhaustion,
        Syscall::Bind,
        Some(libc::EADDRINUSE),
        11,
        10,
    );
    let facts = RunFacts {
        explicit_source_ports: Some((40000, 40009)),
        ..one_source()
    };
    let (evidence, remedy) = run(&ev, &[], &facts);
    assert!(
        evidence
            .message
            .contains("--source-ports 40000-40009 gives 10 ports per source IP")
    );
    assert_eq!(
        remedy,
        "widen --source-ports (now 40000-40009) or add source IPs (e.g. --source 127.0.0.2-127.0.0.9)"
    );
    assert_eq!(evidence.facts["explicit_source_ports"], "40000-40009");
}

#[test]
fn fd_limit_process() {
    let ev = event(
        LimitKind::FdLimitProcess,
        Syscall::Socket,
        Some(libc::EMFILE),
        997,
        993,
    );
    let (evidence, remedy) = run(&ev, &[], &one_source());
    assert_eq!(
        evidence.message,
        "socket() failed with EMFILE at attempt 997 with 993 held; RLIMIT_NOFILE soft 1000, hard 20000"
    );
    assert_eq!(
        remedy,
        "raise the soft fd limit (hard is 20000): drop --fd-limit or `ulimit -n 20000`; beyond \
         the hard limit add worker processes (`--processes auto`)"
    );
    assert_eq!(evidence.facts["rlimit_nofile_soft"], 1000);
    assert_eq!(evidence.facts["embedded_target"], false);
}

#[test]
fn fd_limit_at_the_hard_limit() {
    let ev = event(
        LimitKind::FdLimitProcess,
        Syscall::Socket,
        Some(libc::EMFILE),
        19996,
        19990,
    );
    let mut end = host(&[]);
    end.values
        .insert("rlimit_nofile_soft".into(), Value::from(20000));
    let (_, remedy) = explain(&ev, &host(&[]), &end, &one_source());
    assert!(
        remedy.starts_with(
            "the soft fd limit is already the hard limit (20000): add worker processes"
        )
    );
    assert!(remedy.contains("`--processes auto`"), "{remedy}");
}

fn backlog_facts() -> RunFacts {
    RunFacts {
        target_listener: Some(ListenerQueue {
            queued: 9,
            backlog: 8,
            source: QueueSource::SockDiag,
        }),
        ..one_source()
    }
}

#[test]
fn backlog_overflow_by_timeout() {
    let mut ev = event(LimitKind::BacklogOverflow, Syscall::Timeout, None, 10, 9);
    ev.syn_retransmits = Some(2);
    let end = [
        ("TcpExt.ListenOverflows", 283),
        ("TcpExt.ListenDrops", 283),
        ("TcpExt.TCPSynRetrans", 185),
    ];
    let (evidence, remedy) = run(&ev, &end, &backlog_facts());
    assert_eq!(
        evidence.message,
        "no SYN-ACK within 2 s for attempt 10 with 9 held from 127.0.0.1 to 127.0.0.1:7070; \
         ListenOverflows +273, ListenDrops +273 on this host; SYN retransmits 2 \
         (TCPSynRetrans +182 on this host); listener: 9 queued, backlog 8 (full)"
    );
    assert_eq!(
        remedy,
        "the target does not accept fast enough: raise its listen backlog (now 8) and the kernel \
         caps above it (net.core.somaxconn 4096, net.ipv4.tcp_max_syn_backlog 2048), or make it \
         accept faster"
    );
    let f = &evidence.facts;
    assert_eq!(f["delta.TcpExt.ListenOverflows"], 273);
    assert_eq!(f["delta.TcpExt.TCPSynRetrans"], 182);
    assert_eq!(
        f["delta.TcpExt.TCPTimeWaitOverflow"], 0,
        "key counters kept at zero"
    );
    assert!(
        !f.contains_key("delta.TcpExt.TCPAbortOnMemory"),
        "other zero deltas left out"
    );
    assert_eq!(f["syn_retransmits"], 2);
    assert_eq!(f["listener_queued"], 9);
    assert_eq!(f["listener_backlog"], 8);
    assert_eq!(f["somaxconn"], 4096);
    assert_eq!(f["connect_timeout_ms"], 2000);
}

/// A server at its CPU quota is why its queue overflowed: the evidence and
/// the remedy say so first.
#[test]
fn backlog_overflow_with_the_server_at_its_cpu_quota() {
    let mut ev = event(LimitKind::BacklogOverflow, Syscall::Timeout, None, 10, 9);
    ev.syn_retransmits = Some(2);
    let facts = RunFacts {
        server_cpu: Some(crate::classify::ServerCpu {
            seconds: 14,
            cores_used: 0.2,
            quota_cores: Some(0.2),
            cpus: 2.0,
            throttled_s: Some(11.5),
        }),
        ..backlog_facts()
    };
    let (evidence, remedy) = run(&ev, &[("TcpExt.ListenOverflows", 283)], &facts);
    assert!(
        evidence.message.ends_with(
            "; listener: 9 queued, backlog 8 (full); the server process was at its CPU quota of \
             0.2 cores for 14 s (throttled 11.5 s)"
        ),
        "{}",
        evidence.message
    );
    assert!(
        remedy.starts_with(
            "the server process was at its CPU quota of 0.2 cores for 14 s (throttled 11.5 s): \
             an async design or more CPU for the server (it could not accept faster); the target \
             does not accept fast enough"
        ),
        "{remedy}"
    );
    assert_eq!(evidence.facts["server_cpu"]["seconds"], 14);
    assert_eq!(evidence.facts["server_cpu"]["quota_cores"], 0.2);
    // Another kind is not the CPU's doing.
    let ports = event(
        LimitKind::PortExhaustion,
        Syscall::Connect,
        Some(libc::EADDRNOTAVAIL),
        12,
        11,
    );
    let (evidence, remedy) = run(&ports, &[], &facts);
    assert!(!evidence.message.contains("CPU"), "{}", evidence.message);
    assert!(!remedy.contains("CPU"), "{remedy}");
}

/// EMFILE reached by handshakes a full listen queue left in SYN-SENT: the
/// cause is named with the target's counters and rate, and the cap.
#[test]
fn fd_limit_reached_by_handshakes_names_the_target_as_the_cause() {
    let mut ev = event(
        LimitKind::FdLimitProcess,
        Syscall::Socket,
        Some(libc::EMFILE),
        20_001,
        50,
    );
    ev.elapsed_s = 2.0;
    let handshakes = |syn_sent, established| Handshakes {
        states: SocketStates {
            total: 20_000,
            syn_sent,
            established,
        },
        established: 100_000,
    };
    let facts = RunFacts {
        handshakes: Some(handshakes(19_950, 50)),
        ..one_source()
    };
    let end = [
        ("TcpExt.ListenOverflows", 26_010),
        ("TcpExt.ListenDrops", 26_010),
    ];
    let (evidence, remedy) = run(&ev, &end, &facts);
    assert!(
        evidence.message.ends_with(
            "; 19,950 of 20,000 sockets to the target were handshakes (SYN-SENT) waiting on a \
             full listen queue at the target (ListenOverflows +26000, ListenDrops +26000 on \
             this host): the target completed ~50k handshakes/s"
        ),
        "{}",
        evidence.message
    );
    assert!(
        remedy.starts_with(
            "most of what reached the limit were handshakes waiting on a full listen queue at \
             the target (the target completed ~50k handshakes/s): lower the rate, add accept \
             workers to the target, or cap handshakes in flight with --max-in-flight N; raise \
             the soft fd limit"
        ),
        "{remedy}"
    );
    assert_eq!(evidence.facts["sockets_at_limit"]["syn_sent"], 19_950);
    assert_eq!(evidence.facts["established_per_s"], 50_000.0);
    // Mostly established: the fd limit is the limit, nothing more to say.
    let facts = RunFacts {
        handshakes: Some(handshakes(100, 19_900)),
        ..one_source()
    };
    let (evidence, remedy) = run(&ev, &end, &facts);
    assert!(
        !evidence.message.contains("SYN-SENT"),
        "{}",
        evidence.message
    );
    assert!(remedy.starts_with("raise the soft fd limit"), "{remedy}");
}

/// No connection failed, but connects slowed while the server was at its
/// CPU quota: the `server_cpu` first limit says both.
#[test]
fn server_cpu_first_limit_says_what_slowed_and_why() {
    let mut ev = event(LimitKind::ServerCpu, Syscall::Connect, None, 2000, 712);
    ev.source = String::new();
    ev.elapsed_s = 1.0;
    let facts = RunFacts {
        server_cpu: Some(crate::classify::ServerCpu {
            seconds: 5,
            cores_used: 0.01,
            quota_cores: Some(0.01),
            cpus: 2.0,
            throttled_s: Some(3.4),
        }),
        shortfall: Some(crate::classify::cpu::CpuShortfall {
            seconds: 4,
            connect_p90_us: 4_100_000,
            rate_ratio: Some(0.38),
        }),
        ..one_source()
    };
    let (evidence, remedy) = run(&ev, &[("TcpExt.ListenOverflows", 2840)], &facts);
    assert_eq!(
        evidence.message,
        "no connection failed, but in 4 s connects slowed (p90 up to 4.1 s) or established at \
         38% of the target rate, from 1 s into the run: the server process was at its CPU \
         quota of 0.01 cores for 5 s (throttled 3.4 s); ListenOverflows +2830, ListenDrops \
         +0 on this host"
    );
    assert_eq!(
        remedy,
        "the server process was at its CPU quota of 0.01 cores for 5 s (throttled 3.4 s): an \
         async design or more CPU for the server (it could not accept faster); or a lower rate"
    );
    assert_eq!(evidence.facts["shortfall"]["seconds"], 4);
}

#[test]
fn backlog_overflow_reset_of_unaccepted_held_connection() {
    let mut ev = event(
        LimitKind::BacklogOverflow,
        Syscall::Read,
        Some(libc::ECONNRESET),
        40,
        39,
    );
    ev.peer_close = Some(PeerClose::Rst);
    ev.age_ms = Some(120);
    let (evidence, _) = run(&ev, &[("TcpExt.ListenOverflows", 15)], &one_source());
    assert_eq!(
        evidence.message,
        "target 127.0.0.1:7070 reset a held connection (RST) after 120 ms with 39 held (attempt \
         40 from 127.0.0.1): the accept queue overflowed, the server never accepted it; \
         ListenOverflows +5, ListenDrops +0 on this host"
    );
    assert_eq!(evidence.facts["peer_close"], "rst");
    assert_eq!(evidence.facts["age_ms"], 120);
}

#[test]
fn server_closed_with_its_message() {
    let mut ev = event(LimitKind::ServerClosed, Syscall::Read, None, 51, 50);
    ev.target = "127.0.0.1:6379".into();
    ev.peer_close = Some(PeerClose::Eof);
    ev.age_ms = Some(1234);
    ev.server_bytes = Some("-ERR max number of clients reached\r\n".into());
    let (evidence, remedy) = run(&ev, &[], &one_source());
    assert_eq!(
        evidence.message,
        "target 127.0.0.1:6379 closed a held connection (EOF) after 1.2 s with 50 held (attempt \
         51 from 127.0.0.1); it sent: '-ERR max number of clients reached\\r\\n'"
    );
    assert!(remedy.starts_with(
        "the target closes connections itself: check its connection cap or idle timeout"
    ));
    assert!(remedy.contains("closes began with 50 held, at age 1.2 s"));
    assert_eq!(
        evidence.facts["server_bytes"],
        "-ERR max number of clients reached\r\n"
    );
    assert_eq!(evidence.facts["peer_close"], "eof");
}

/// A lab server whose pids cgroup refused thread starts: the cgroup is
/// named as the cap, and the remedy is the design, not a setting.
#[test]
fn server_closed_by_its_pids_cgroup_names_the_thread_cap() {
    let mut ev = event(LimitKind::ServerClosed, Syscall::Read, None, 1996, 2039);
    ev.peer_close = Some(PeerClose::Eof);
    ev.server_bytes = Some("ceiling-serve: cannot start a thread for this connection\r\n".into());
    let facts = RunFacts {
        server_pids: Some(crate::classify::ServerPids {
            max: 2000,
            refused: 8003,
        }),
        ..one_source()
    };
    let (evidence, remedy) = run(&ev, &[], &facts);
    assert!(
        evidence
            .message
            .contains("; the server's pids cgroup (pids.max 2000) refused 8003 thread starts: its threads are the cap"),
        "{}",
        evidence.message
    );
    assert!(remedy.contains("server_model = \"async\""), "{remedy}");
    assert!(remedy.contains("2000 tasks"), "{remedy}");
    // A pids cgroup that refused nothing is not the cause.
    let facts = RunFacts {
        server_pids: Some(crate::classify::ServerPids {
            max: 2000,
            refused: 0,
        }),
        ..one_source()
    };
    let (evidence, remedy) = run(&ev, &[], &facts);
    assert!(!evidence.message.contains("pids"), "{}", evidence.message);
    assert!(
        remedy.starts_with("the target closes connections itself"),
        "{remedy}"
    );
}

#[test]
fn server_closed_silently_by_reset() {
    let mut ev = event(
        LimitKind::ServerClosed,
        Syscall::Write,
        Some(libc::EPIPE),
        3,
        300,
    );
    ev.age_ms = Some(30_000);
    let (evidence, _) = run(&ev, &[], &one_source());
    assert!(
        evidence
            .message
            .starts_with("target 127.0.0.1:7070 reset a held connection (RST) after 30 s")
    );
    assert!(evidence.message.ends_with("; it sent nothing"));
}

#[test]
fn limits_this_machine_cannot_produce() {
    let ev = event(
        LimitKind::FdLimitSystem,
        Syscall::Socket,
        Some(libc::ENFILE),
        5,
        4,
    );
    let (evidence, remedy) = run(&ev, &[], &one_source());
    assert!(evidence.message.contains("ENFILE"));
    assert!(
        evidence
            .message
            .contains("fs.file-nr 2466000 allocated of fs.file-max 2466177")
    );
    assert!(remedy.starts_with("raise fs.file-max (now 2466177"));

    let ev = event(
        LimitKind::KernelMemory,
        Syscall::Connect,
        Some(libc::ENOBUFS),
        8400,
        8399,
    );
    let mut end = host(&[("TcpExt.TCPAbortOnMemory", 7), ("sockstat.tcp_mem", 600000)]);
    end.values
        .insert("cgroup_memory_limit_bytes".into(), Value::from(32u64 << 20));
    let (evidence, remedy) = explain(&ev, &host(&[]), &end, &one_source());
    assert!(
        evidence
            .message
            .contains("connect() failed with ENOBUFS at attempt 8400")
    );
    assert!(
        evidence
            .message
            .contains("TCP memory 600000 pages (tcp_mem 287901 383868 575802)")
    );
    assert!(evidence.message.contains("TCPAbortOnMemory +7"));
    assert!(evidence.message.contains("cgroup memory limit 32 MiB"));
    assert!(remedy.contains("memory.max, now 32 MiB"));
    assert!(remedy.contains("net.ipv4.tcp_mem (now 287901 383868 575802 pages)"));

    let ev = event(LimitKind::ConntrackFull, Syscall::Timeout, None, 9, 8);
    let (evidence, remedy) = run(&ev, &[], &one_source());
    assert!(
        evidence
            .message
            .contains("nf_conntrack_count 262144 of nf_conntrack_max 262144")
    );
    assert!(remedy.contains("nf_conntrack_max (now 262144)"));
}

#[test]
fn connect_timeout_local_and_remote() {
    let mut ev = event(LimitKind::ConnectTimeout, Syscall::Timeout, None, 4, 3);
    ev.syn_retransmits = Some(1);
    let (evidence, remedy) = run(&ev, &[], &one_source());
    assert!(evidence.message.contains("SYN retransmits 1"));
    assert!(
        evidence
            .message
            .ends_with("ListenOverflows +0, ListenDrops +0 on this host")
    );
    assert!(remedy.contains("did not overflow"));
    assert!(remedy.ends_with("raise --connect-timeout (now 2 s)"));

    let (_, remedy) = run(&ev, &[("TcpExt.ListenOverflows", 12)], &one_source());
    assert!(
        remedy.starts_with(
            "the target's accept queue overflowed later in the run (ListenOverflows +2)"
        )
    );

    ev.target = "10.1.2.3:80".into();
    let remote = RunFacts {
        target_local: false,
        ..one_source()
    };
    let (evidence, remedy) = run(&ev, &[], &remote);
    assert!(
        evidence
            .message
            .ends_with("its ListenOverflows are not visible here")
    );
    assert!(remedy.starts_with("on the target host check the listen queue"));

    let ev = event(
        LimitKind::ConnectTimeout,
        Syscall::Connect,
        Some(libc::ETIMEDOUT),
        4,
        3,
    );
    let (evidence, _) = run(&ev, &[], &one_source());
    assert!(evidence.message.contains("ETIMEDOUT at attempt 4 with 3 held from 127.0.0.1 to 127.0.0.1:7070 (the kernel gave up after tcp_syn_retries 6)"));
}

/// Every kind's message and remedy in one reviewable snapshot; each is one
/// line and names the attempt.
#[test]
fn every_kind_snapshot() {
    use libc::*;
    let cases: &[(LimitKind, Syscall, Option<i32>)] = &[
        (
            LimitKind::PortExhaustion,
            Syscall::Connect,
            Some(EADDRNOTAVAIL),
        ),
        (
            LimitKind::SourceAddressInvalid,
            Syscall::Bind,
            Some(EADDRNOTAVAIL),
        ),
        (LimitKind::FdLimitProcess, Syscall::Socket, Some(EMFILE)),
        (LimitKind::FdLimitSystem, Syscall::Socket, Some(ENFILE)),
        (LimitKind::KernelMemory, Syscall::Socket, Some(ENOMEM)),
        (LimitKind::BacklogOverflow, Syscall::Timeout, None),
        (LimitKind::ServerClosed, Syscall::Read, None),
        (LimitKind::ConntrackFull, Syscall::Timeout, None),
        (LimitKind::ConnectTimeout, Syscall::Timeout, None),
        (LimitKind::PortSearchSlow, Syscall::Connect, None),
        (LimitKind::Refused, Syscall::Connect, Some(ECONNREFUSED)),
        (LimitKind::Reset, Syscall::Connect, Some(ECONNRESET)),
        (LimitKind::Unreachable, Syscall::Connect, Some(ENETUNREACH)),
        (LimitKind::Other, Syscall::Setsockopt, Some(95)),
        (LimitKind::LostWithWorker, Syscall::WorkerExit, None),
    ];
    assert_eq!(cases.len(), LimitKind::ALL.len(), "one case per kind");
    let end = [("TcpExt.ListenOverflows", 40), ("TcpExt.ListenDrops", 40)];
    let mut out = String::new();
    for &(kind, syscall, errno) in cases {
        let mut ev = event(kind, syscall, errno, 42, 41);
        if kind == LimitKind::ServerClosed {
            ev.age_ms = Some(5000);
        }
        let (evidence, remedy) = run(&ev, &end, &backlog_facts());
        for line in [&evidence.message, &remedy] {
            assert!(!line.contains('\n'), "{kind}: one line: {line}");
        }
        assert!(evidence.message.contains("42"), "{kind}: names the attempt");
        let _ = writeln!(
            out,
            "{kind}\n  evidence: {}\n  remedy:   {remedy}",
            evidence.message
        );
    }
    insta::assert_snapshot!(out);
}

#[test]
fn formatting_helpers() {
    assert_eq!(duration(120), "120 ms");
    assert_eq!(duration(2000), "2 s");
    assert_eq!(duration(1234), "1.2 s");
    assert_eq!(limit(Some(u64::MAX)), "unlimited");
    assert_eq!(limit(None), "?");
    assert_eq!(one_line("a\r\nb\x07", 80), "a\\r\\nb\\x07");
    assert_eq!(one_line("abcdef", 3), "abc…");
    assert_eq!(parse_ip("[::1]:7070"), Some("::1".parse().unwrap()));
    assert_eq!(parse_ip("127.0.0.1"), Some("127.0.0.1".parse().unwrap()));
    assert_eq!(parse_ip(""), None);
}

/// Closes spread over 30 s of the run unless a test says otherwise.
fn pattern(closes: u64, age: [u64; 5], held: [u64; 5]) -> ClosePattern {
    pattern_at(closes, age, held, (10_000, 40_000))
}

fn pattern_at(
    closes: u64,
    age: [u64; 5],
    held: [u64; 5],
    (first_at_ms, last_at_ms): (u64, u64),
) -> ClosePattern {
    let spread = |v: [u64; 5]| crate::model::Spread {
        min: v[0],
        p10: v[1],
        p50: v[2],
        p90: v[3],
        max: v[4],
    };
    ClosePattern {
        closes,
        age_ms: spread(age),
        others_held: spread(held),
        first_at_ms,
        last_at_ms,
    }
}

#[test]
fn closes_at_one_moment_with_ages_differing_read_as_a_shutdown() {
    // 40 held, opened over 2.4 s; the server killed at 3.4 s: every one
    // closed within 12 ms, at ages 0.5..2.9 s, the last with none held.
    let p = pattern_at(
        40,
        [500, 700, 1_700, 2_700, 2_900],
        [0, 4, 20, 36, 39],
        (3_400, 3_412),
    );
    let verdict = close_verdict(&p).unwrap();
    assert_eq!(
        verdict,
        "every held connection (40) was closed by the server within 12 ms at 3.4 s into the \
         run, at ages 0.5-2.9 s: the server shut down or restarted"
    );
    // Not a timeout, and not a cap, though it came at one moment.
    assert!(!verdict.contains("timeout"), "{verdict}");
    // The same closes over 20 s are no single moment.
    let spread_out = pattern_at(
        40,
        [500, 700, 1_700, 2_700, 2_900],
        [0, 4, 20, 36, 39],
        (3_400, 23_400),
    );
    assert!(!close_verdict(&spread_out).unwrap().contains("shut down"));
    // Closes at one moment and one age (all opened at once) stay a timeout:
    // nothing tells them apart.
    let one_age = pattern_at(
        40,
        [2_000, 2_000, 2_010, 2_020, 2_020],
        [0, 4, 20, 36, 39],
        (2_050, 2_060),
    );
    assert!(close_verdict(&one_age).unwrap().contains("timeout of 2 s"));
}

#[test]
fn closes_at_one_age_read_as_a_timeout() {
    // Idle timeout of 60 s: ages within ±100 ms, held counts all over.
    let p = pattern(
        500,
        [59_950, 59_980, 60_010, 60_090, 60_120],
        [10, 80, 250, 450, 499],
    );
    let verdict = close_verdict(&p).unwrap();
    assert!(verdict.contains("60.0 ± 0.1 s"), "{verdict}");
    assert!(verdict.contains("timeout of 60 s"), "{verdict}");
}

#[test]
fn closes_at_one_held_count_read_as_a_cap() {
    // Cap of 50 (close-oldest): ages vary, 50 others held every time.
    let p = pattern(100, [900, 1_500, 3_000, 6_000, 7_000], [50, 50, 50, 51, 51]);
    let verdict = close_verdict(&p).unwrap();
    assert!(verdict.contains("connection cap of ~50"), "{verdict}");
    assert!(!verdict.contains("timeout"), "{verdict}");
}

#[test]
fn immediate_closes_and_scattered_closes_are_named_as_such() {
    let at_once = pattern(20, [0, 0, 1, 2, 3], [0, 0, 1, 2, 3]);
    assert!(close_verdict(&at_once).unwrap().contains("within 2 ms"));
    // Rejected at once past a cap of 50 (accept, message, close): a cap.
    let rejected = pattern(100, [0, 0, 1, 2, 5], [50, 50, 50, 50, 50]);
    assert!(close_verdict(&rejected).unwrap().contains("cap of ~50"));
    let scattered = pattern(30, [100, 400, 2_000, 9_000, 9_500], [3, 10, 40, 90, 95]);
    assert!(
        close_verdict(&scattered)
            .unwrap()
            .contains("no single cap, timeout or moment")
    );
    let too_few = pattern(2, [60_000; 5], [5; 5]);
    assert_eq!(close_verdict(&too_few), None);
}
