//! `ceiling run --fleet N` and `ceiling agent` on loopback: a coordinator
//! and its agents as real processes against `ceiling serve`: exact totals,
//! the barrier, the token, a lost agent, a lost coordinator, bad input.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    Server, assert_results_complete, ceiling, out_dir, run_bounded, summary, text,
    timeseries_column,
};

const TOKEN: &str = "fleet-test-token";

/// A loopback port nothing listens on now (the coordinator takes it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ceiling run --fleet hosts` on `port` against `server`, with `args`.
fn coordinator(out: &Path, server: &Server, port: u16, hosts: u64, args: &[&str]) -> Child {
    ceiling()
        .args(["run", "--ui", "none", "--out", out.to_str().unwrap()])
        .args(["--target", &server.addr()])
        .args(["--fleet", &hosts.to_string()])
        .args(["--fleet-listen", &format!("127.0.0.1:{port}")])
        .args(["--fleet-token", TOKEN])
        .args(args)
        .env_remove("CEILING_FLEET_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `ceiling agent` for host `index` of `hosts`, the token in the
/// environment.
fn agent(port: u16, index: u64, hosts: u64, token: &str) -> Child {
    agent_command(port, index, hosts, token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn agent_command(port: u16, index: u64, hosts: u64, token: &str) -> Command {
    agent_at(&format!("127.0.0.1:{port}"), index, hosts, token)
}

/// `ceiling agent --join JOIN` for host `index` of `hosts`.
fn agent_at(join: &str, index: u64, hosts: u64, token: &str) -> Command {
    let mut cmd = ceiling();
    cmd.args(["agent", "--join", join])
        .args(["--index", &index.to_string(), "--hosts", &hosts.to_string()])
        .args(["--name", &format!("agent-{index}")])
        .env("CEILING_FLEET_TOKEN", token)
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_PROCID")
        .env_remove("SLURM_NTASKS");
    cmd
}

/// Waits for `child` at most `bound`; kills it and panics past that.
fn wait(mut child: Child, bound: Duration, what: &str) -> (ExitStatus, Output) {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, child.wait_with_output().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not end within {bound:?}\nstdout:\n{}\nstderr:\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the coordinator, then for each agent, every one of them
/// successful; the coordinator's output and the agents'.
fn wait_fleet(coord: Child, agents: Vec<Child>) -> (Output, Vec<Output>) {
    let (status, output) = wait(coord, Duration::from_secs(60), "the coordinator");
    assert!(status.success(), "{}", text(&output.stderr));
    let agents = agents
        .into_iter()
        .enumerate()
        .map(|(k, a)| {
            let (status, output) = wait(a, Duration::from_secs(10), "an agent");
            assert!(status.success(), "agent {k}: {}", text(&output.stderr));
            output
        })
        .collect();
    (output, agents)
}

/// hosts.csv as (header, rows), each row by column name.
fn hosts_csv(out: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(out.join("hosts.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[..4],
        ["index", "name", "address", "segment"],
        "{header:?}"
    );
    assert_eq!(header.last().unwrap(), "total_p99_us", "{header:?}");
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect()
}

/// Merged totals == the hosts' totals added, in summary.json and hosts.csv.
fn assert_hosts_add_up(out: &Path, s: &serde_json::Value) {
    let hosts = s["fleet"]["hosts"].as_array().unwrap();
    let rows = hosts_csv(out);
    assert_eq!(rows.len(), hosts.len());
    for field in [
        "attempted",
        "established",
        "connect_failed",
        "unfinished",
        "never_attempted",
        "closed_by_driver",
        "closed_by_server",
        "lost_with_worker",
        "held_at_end",
    ] {
        let sum: u64 = hosts
            .iter()
            .map(|h| h["totals"][field].as_u64().unwrap())
            .sum();
        assert_eq!(s["totals"][field], sum, "{field}: {s}");
        let csv_sum: u64 = rows.iter().map(|r| r[field].parse::<u64>().unwrap()).sum();
        assert_eq!(csv_sum, sum, "{field} in hosts.csv: {rows:?}");
    }
    // Each host's own connect latencies: one sample per connection it
    // established, its p99 in hosts.csv; together, the run's.
    let samples: u64 = hosts
        .iter()
        .map(|h| {
            let own = h["latency"]["connect_us"]["count"].as_u64().unwrap_or(0);
            assert_eq!(own, h["totals"]["established"].as_u64().unwrap(), "{h}");
            own
        })
        .sum();
    assert_eq!(s["latency"]["connect_us"]["count"], samples, "{s}");
    for (row, h) in rows.iter().zip(hosts) {
        let p99 = h["latency"]["connect_us"]["p99"]
            .as_u64()
            .map(|p| p.to_string());
        assert_eq!(
            Some(&row["connect_p99_us"]),
            p99.as_ref().or(Some(&String::new())),
            "{row:?}"
        );
    }
}

#[test]
fn three_agents_make_exactly_the_attempts_asked_and_the_hosts_add_up() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(
        &out,
        &server,
        port,
        3,
        &["--connections", "3001", "--rate", "3000", "--hold", "1s"],
    );
    let mut agents: Vec<Child> = (0..2).map(|k| agent(port, k, 3, TOKEN)).collect();
    // A host name is resolved once (localhost: ::1 and 127.0.0.1 both
    // tried).
    let named = agent_at(&format!("localhost:{port}"), 2, 3, TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    agents.push(named);
    let (output, agents) = wait_fleet(coord, agents);
    for (k, agent) in agents.iter().enumerate() {
        let stdout = text(&agent.stdout);
        assert!(
            stdout.contains(&format!("host {k} of 3: attempted ")),
            "{stdout}"
        );
    }
    assert_results_complete(&out);
    let s = summary(&out);
    crate::results::validate(&s);
    let t = &s["totals"];
    assert_eq!(t["attempted"], 3001, "{s}");
    assert_eq!(t["established"], 3001, "{s}");
    assert_eq!(t["closed_by_driver"], 3001, "{s}");
    let hosts = s["fleet"]["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    for (k, h) in hosts.iter().enumerate() {
        assert_eq!(h["index"], k as u64);
        assert_eq!(h["name"], format!("agent-{k}"));
        assert_eq!(h["segment"], format!("{k}+3"));
        // 3001 = 1001 + 1000 + 1000: the larger share to the lowest index.
        let share = if k == 0 { 1001 } else { 1000 };
        assert_eq!(h["totals"]["attempted"], share, "{h}");
        assert!(h["start_offset_ms"].is_number(), "{h}");
    }
    assert!(s["fleet"]["start_skew_ms"].as_f64().unwrap() >= 0.0, "{s}");
    assert_hosts_add_up(&out, &s);
    let merged = s["latency"]["connect_us"]["count"].as_u64().unwrap();
    assert_eq!(merged, 3001, "every host's histogram merged: {s}");
    // Hosts 0 and 1 join from 127.0.0.1: one port space to the target.
    let notes = s["fleet"]["address_notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("hosts 0, 1")),
        "{notes:?}"
    );
    assert_eq!(hosts[0]["own_address"], "127.0.0.1", "{s}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("hosts (3; start skew "), "{stdout}");
    assert!(stdout.contains("note: hosts 0, 1"), "{stdout}");
}

/// A TCP relay to `upstream` that holds every chunk `delay` in each
/// direction: a slow link to one agent. (This kernel has no sch_netem, so
/// `tc ... netem delay` cannot make one; the coordinator sees the same
/// thing: late joins, pings and start lines.)
fn slow_link(upstream: u16, delay: Duration) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // One agent joins through it: one connection, then the relay ends.
        let Ok((down, _)) = listener.accept() else {
            return;
        };
        // The coordinator may not listen yet: try for 10 s at most.
        let deadline = Instant::now() + Duration::from_secs(10);
        let up = loop {
            match TcpStream::connect(("127.0.0.1", upstream)) {
                Ok(up) => break up,
                Err(e) if Instant::now() > deadline => panic!("the coordinator: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let pairs = [
            (down.try_clone().unwrap(), up.try_clone().unwrap()),
            (up, down),
        ];
        for (mut from, mut to) in pairs {
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = from.read(&mut buf) {
                    std::thread::sleep(delay);
                    if to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

#[test]
fn a_host_behind_a_slow_link_starts_with_the_others() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(
        &out,
        &server,
        port,
        2,
        &["--connections", "400", "--rate", "400", "--hold", "1s"],
    );
    let near = agent(port, 0, 2, TOKEN);
    // 40 ms each way: every line to and from host 1 comes 40 ms late.
    let far = agent_at(
        &format!("127.0.0.1:{}", slow_link(port, Duration::from_millis(40))),
        1,
        2,
        TOKEN,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_fleet(coord, vec![near, far]);
    let s = summary(&out);
    assert_eq!(s["totals"]["attempted"], 400, "{s}");
    let rtt = s["fleet"]["hosts"][1]["rtt_ms"].as_f64().unwrap();
    assert!(
        rtt >= 80.0,
        "host 1's round trip {rtt} ms over the slow link: {s}"
    );
    // Had the start been a "go" line sent to each, host 1 would start 40 ms
    // after host 0 at least; one start time, set ahead in each one's clock,
    // holds them together.
    let skew = s["fleet"]["start_skew_ms"].as_f64().unwrap();
    assert!(skew < 30.0, "start skew {skew} ms with a 40 ms link: {s}");
    // All 400 were due in the first second, and they are in its row: the
    // tick loop waits out the far host's round trip before it counts a
    // tick (it held back the far host's last 20 before).
    let attempted = timeseries_column(&out, "attempted");
    assert_eq!(attempted[0], 400.0, "attempts by second: {attempted:?}");
}

/// Requests from a fleet: each host opens its part of the pool and puts
/// its part of the rate through it; every request is counted once, each
/// host's own total latency is kept, and each second's row holds the
/// asked rate.
#[test]
fn a_fleet_puts_requests_through_its_hosts_pools_counted_exactly() {
    let server = Server::start(&["--mode", "http", "--service-time", "2ms"]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(
        &out,
        &server,
        port,
        2,
        &[
            "--mode",
            "request",
            "--protocol",
            "http",
            "--pool",
            "20",
            "--rate",
            "400",
            "--duration",
            "3s",
        ],
    );
    let agents: Vec<Child> = (0..2).map(|k| agent(port, k, 2, TOKEN)).collect();
    wait_fleet(coord, agents);
    let s = summary(&out);
    crate::results::validate(&s);
    assert_hosts_add_up(&out, &s);
    assert_eq!(s["totals"]["established"], 20, "{s}");
    let r = &s["requests"];
    let n = |key: &str| r[key].as_u64().unwrap();
    // 3 s at 400/s from when each host's part of the pool is open.
    assert!((1150..=1201).contains(&n("scheduled")), "{r}");
    assert_eq!(
        n("rejects") + r["errors"]["closed"].as_u64().unwrap(),
        0,
        "{r}"
    );
    assert_eq!(
        n("responses") + n("in_flight_at_end"),
        n("scheduled") - n("queued_at_end"),
        "{r}"
    );
    // Each host's own total latency: its part of the responses.
    let hosts = s["fleet"]["hosts"].as_array().unwrap();
    let own: u64 = hosts
        .iter()
        .map(|h| h["latency"]["total_us"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        own,
        s["latency"]["total_us"]["count"].as_u64().unwrap(),
        "{s}"
    );
    assert!(
        hosts
            .iter()
            .all(|h| h["latency"]["total_us"]["count"].as_u64() > Some(500)),
        "{s}"
    );
    // The asked rate, second by second, is what the hosts sent.
    let rows: Vec<(f64, f64)> = timeseries_column(&out, "target_rate_per_s")
        .into_iter()
        .zip(timeseries_column(&out, "requests_sent_per_s"))
        .collect();
    for &(asked, sent) in &rows[1..2] {
        assert!(
            (asked - 400.0).abs() < 8.0 && (sent - 400.0).abs() < 8.0,
            "{rows:?}"
        );
    }
}

#[test]
fn a_missing_agent_refuses_the_run_naming_it_and_nothing_starts() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(
        &out,
        &server,
        port,
        3,
        &["--connections", "300", "--fleet-join-timeout", "2s"],
    );
    let agents: Vec<Child> = [0, 2].iter().map(|&k| agent(port, k, 3, TOKEN)).collect();
    let (status, output) = wait(coord, Duration::from_secs(30), "the coordinator");
    let stderr = text(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no agent joined as host 1 within 2s (joined: 0, 2)"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused fleet creates nothing");
    for a in agents {
        let (status, output) = wait(a, Duration::from_secs(10), "an agent");
        let stderr = text(&output.stderr);
        assert!(!status.success(), "{stderr}");
        assert!(stderr.contains("refused this agent"), "{stderr}");
        assert!(stderr.contains("host 1"), "{stderr}");
        assert!(!stderr.contains("starting in"), "{stderr}");
    }
}

#[test]
fn an_agent_started_before_its_coordinator_waits_for_it() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    // An engine may start the agents first.
    let early = agent(port, 0, 1, TOKEN);
    std::thread::sleep(Duration::from_secs(1));
    let coord = coordinator(&out, &server, port, 1, &["--connections", "50"]);
    let (status, output) = wait(coord, Duration::from_secs(30), "the coordinator");
    assert!(status.success(), "{}", text(&output.stderr));
    let (status, output) = wait(early, Duration::from_secs(10), "the agent");
    let stderr = text(&output.stderr);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("is not there yet"), "{stderr}");
    assert_eq!(summary(&out)["totals"]["established"], 50);
}

#[test]
fn a_wrong_token_is_refused_on_both_sides_and_the_coordinator_keeps_waiting() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(&out, &server, port, 1, &["--connections", "100"]);
    let intruder = agent(port, 0, 1, "not-the-token");
    let (status, output) = wait(intruder, Duration::from_secs(30), "the agent");
    let stderr = text(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused this agent: wrong token"),
        "{stderr}"
    );
    // The coordinator still waits: the right agent runs the test.
    let right = agent(port, 0, 1, TOKEN);
    let (status, coord_output) = wait(coord, Duration::from_secs(30), "the coordinator");
    assert!(status.success(), "{}", text(&coord_output.stderr));
    let coord_stderr = text(&coord_output.stderr);
    assert!(
        coord_stderr.contains("refused a join from 127.0.0.1:")
            && coord_stderr.contains("wrong token"),
        "{coord_stderr}"
    );
    let (status, output) = wait(right, Duration::from_secs(10), "the agent");
    assert!(status.success(), "{}", text(&output.stderr));
    assert_eq!(summary(&out)["totals"]["established"], 100);
}

#[test]
fn an_agent_restarted_before_the_start_takes_its_index_back() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(&out, &server, port, 2, &["--connections", "100"]);
    let mut first = agent(port, 0, 2, TOKEN);
    // Joined and waiting for host 1; then it dies (a pod restarted).
    std::thread::sleep(Duration::from_secs(1));
    first.kill().unwrap();
    first.wait().unwrap();
    let again = agent(port, 0, 2, TOKEN);
    std::thread::sleep(Duration::from_millis(500));
    let other = agent(port, 1, 2, TOKEN);
    let (status, output) = wait(coord, Duration::from_secs(30), "the coordinator");
    let stderr = text(&output.stderr);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("host 0 (agent-0) at 127.0.0.1:")
            && stderr.contains("left before the start"),
        "{stderr}"
    );
    for a in [again, other] {
        let (status, output) = wait(a, Duration::from_secs(10), "an agent");
        assert!(status.success(), "{}", text(&output.stderr));
    }
    assert_eq!(summary(&out)["totals"]["established"], 100);
}

#[test]
fn a_stranger_sending_an_endless_line_is_dropped_and_the_coordinator_keeps_waiting() {
    use std::io::{Read, Write};
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(&out, &server, port, 1, &["--connections", "50"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stranger = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the coordinator never listened: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // 1 MiB without a newline: the coordinator reads 64 KiB and hangs up.
    let chunk = [b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < 1024 * 1024 && stranger.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    let mut answer = Vec::new();
    let _ = stranger.read_to_end(&mut answer);
    assert!(answer.is_empty(), "a stranger was answered: {answer:?}");
    let right = agent(port, 0, 1, TOKEN);
    let (status, output) = wait(coord, Duration::from_secs(30), "the coordinator");
    let stderr = text(&output.stderr);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("did not start with a join"), "{stderr}");
    let (status, _) = wait(right, Duration::from_secs(10), "the agent");
    assert!(status.success());
}

#[test]
fn an_agent_whose_host_has_no_room_says_why_and_the_run_records_it() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    // 100 million held sockets fit in no test machine's memory.
    let coord = coordinator(
        &out,
        &server,
        port,
        1,
        &["--connections", "100m", "--hold", "1s"],
    );
    let a = agent(port, 0, 1, TOKEN);
    let (status, output) = wait(a, Duration::from_secs(30), "the agent");
    let stderr = text(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("this host has no room for its share"),
        "{stderr}"
    );
    let (status, output) = wait(coord, Duration::from_secs(30), "the coordinator");
    assert!(status.success(), "{}", text(&output.stderr));
    let s = summary(&out);
    let death = &s["workers"]["deaths"][0];
    assert!(
        death["how"]
            .as_str()
            .unwrap()
            .starts_with("could not start: this host has no room for its share"),
        "{s}"
    );
    assert_eq!(s["totals"]["attempted"], 0, "{s}");
    assert_eq!(s["totals"]["never_attempted"], 100_000_000u64, "{s}");
}

#[test]
fn a_killed_agent_is_recorded_the_results_are_complete_and_it_cannot_rejoin() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(
        &out,
        &server,
        port,
        2,
        &["--connections", "400", "--rate", "2000", "--hold", "4s"],
    );
    let mut victim = agent(port, 0, 2, TOKEN);
    let survivor = agent(port, 1, 2, TOKEN);
    // Both hold their share (200 each at 1,000/s: 0.2 s) a while later.
    std::thread::sleep(Duration::from_secs(2));
    victim.kill().unwrap();
    victim.wait().unwrap();
    // A restarted agent is told the test already started.
    let restarted = agent(port, 0, 2, TOKEN);
    let (status, output) = wait(restarted, Duration::from_secs(10), "the restarted agent");
    let stderr = text(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the test already started"), "{stderr}");
    let (status, output) = wait(coord, Duration::from_secs(30), "the coordinator");
    assert!(status.success(), "{}", text(&output.stderr));
    let (status, _) = wait(survivor, Duration::from_secs(10), "the other agent");
    assert!(status.success());
    assert_results_complete(&out);
    let s = summary(&out);
    crate::results::validate(&s);
    let deaths = s["workers"]["deaths"].as_array().unwrap();
    assert_eq!(deaths.len(), 1, "{s}");
    let death = &deaths[0];
    assert!(
        death["host"]
            .as_str()
            .unwrap()
            .starts_with("host 0 (agent-0) at 127.0.0.1:"),
        "{death}"
    );
    assert!(
        death["how"].as_str().unwrap().contains("connection lost"),
        "{death}"
    );
    let held = death["held"].as_u64().unwrap();
    assert_eq!(held, 200, "{death}");
    assert_eq!(s["totals"]["lost_with_worker"], held, "{s}");
    assert_eq!(s["totals"]["attempted"], 400, "{s}");
    assert_eq!(s["fleet"]["hosts"][0]["totals"]["lost_with_worker"], held);
    assert_eq!(s["fleet"]["hosts"][1]["totals"]["closed_by_driver"], 200);
    assert_hosts_add_up(&out, &s);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("agents lost (1 of 2)"), "{stdout}");
}

#[test]
fn every_agent_stops_and_exits_non_zero_when_the_coordinator_is_killed() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let mut coord = coordinator(
        &out,
        &server,
        port,
        2,
        &["--connections", "200", "--hold", "end", "--duration", "60s"],
    );
    let agents: Vec<Child> = (0..2).map(|k| agent(port, k, 2, TOKEN)).collect();
    std::thread::sleep(Duration::from_secs(2));
    coord.kill().unwrap();
    coord.wait().unwrap();
    // The issue's bound: every agent stops within 5 s (it hears the
    // connection close at once; a silent link takes 3 s).
    for a in agents {
        let (status, output) = wait(a, Duration::from_secs(5), "an agent");
        let stderr = text(&output.stderr);
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("lost the coordinator"), "{stderr}");
        let stdout = text(&output.stdout);
        assert!(stdout.contains("held at end 0"), "{stdout}");
    }
}

#[test]
fn ctrl_c_at_the_coordinator_reaches_every_agent_as_a_stop() {
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let coord = coordinator(
        &out,
        &server,
        port,
        2,
        &["--connections", "200", "--hold", "end", "--duration", "60s"],
    );
    let agents: Vec<Child> = (0..2).map(|k| agent(port, k, 2, TOKEN)).collect();
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill() with the PID of the coordinator this test started.
    assert_eq!(unsafe { libc::kill(coord.id() as i32, libc::SIGINT) }, 0);
    let (status, output) = wait(coord, Duration::from_secs(30), "the coordinator");
    assert_eq!(status.code(), Some(130), "{}", text(&output.stderr));
    // Told to stop (a control line), not lost: each closes and ends well.
    for a in agents {
        let (status, output) = wait(a, Duration::from_secs(10), "an agent");
        assert!(status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert!(
            stdout.contains("established 100,") && stdout.contains("held at end 0"),
            "{stdout}"
        );
    }
    assert_results_complete(&out);
    let s = summary(&out);
    assert_eq!(s["totals"]["closed_by_driver"], 200, "{s}");
    assert_eq!(s["workers"]["deaths"].as_array().unwrap().len(), 0, "{s}");
}

#[test]
fn the_dashboards_pause_reaches_every_agent() {
    use crate::tui::{Tmux, attempted_on_screen, have_tmux};
    if !have_tmux() {
        return;
    }
    let server = Server::start(&[]);
    let (_tmp, out) = out_dir();
    let port = free_port();
    let command = format!(
        "CEILING_FLEET_TOKEN={TOKEN} {} run --ui tui --name fleettui --target {} --connections 6000 \
         --rate 1000 --hold 1m --fleet 2 --fleet-listen 127.0.0.1:{port} --out {}; sleep 30",
        crate::util::bin(),
        server.addr(),
        out.display()
    );
    let tmux = Tmux::start(&command, 120, 40);
    let agents: Vec<Child> = (0..2).map(|k| agent(port, k, 2, TOKEN)).collect();
    tmux.wait_for("1,000 attempted", Duration::from_secs(20), |s| {
        attempted_on_screen(s).is_some_and(|n| n >= 1000)
    });
    tmux.keys("p");
    tmux.wait_for("PAUSED", Duration::from_secs(5), |s| s.contains("PAUSED"));
    // Reports in flight when the pause went out have landed a second later;
    // from then on neither agent starts an attempt.
    std::thread::sleep(Duration::from_secs(1));
    let paused_at = attempted_on_screen(&tmux.screen()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let later = attempted_on_screen(&tmux.screen()).unwrap();
    assert_eq!(later, paused_at, "attempts went on while paused");
    tmux.keys("q");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out.join("summary.json").exists() {
        assert!(
            Instant::now() < deadline,
            "no summary.json after q:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for a in agents {
        let (status, output) = wait(a, Duration::from_secs(10), "an agent");
        assert!(status.success(), "{}", text(&output.stderr));
    }
    let s = summary(&out);
    assert_eq!(s["totals"]["attempted"], paused_at, "{s}");
}

#[test]
fn bad_fleet_input_exits_2_with_one_message_and_creates_nothing() {
    let (_tmp, out) = out_dir();
    let o = out.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = ceiling();
        cmd.args(["run", "--ui", "none", "--out", o, "--target", "127.0.0.1:9"])
            .args(args)
            .env_remove("CEILING_FLEET_TOKEN");
        run_bounded(cmd, Duration::from_secs(10))
    };
    let cases: [(&[&str], &str); 5] = [
        (
            &["--fleet", "0", "--fleet-token", "t"],
            "'0' is not a host count",
        ),
        (
            &["--fleet", "5", "-c", "3", "--fleet-token", "t"],
            "--fleet 5 is more hosts than --connections 3",
        ),
        (
            &[
                "--fleet",
                "2",
                "--fleet-listen",
                "nowhere",
                "--fleet-token",
                "t",
            ],
            "'nowhere' is not an ADDR:PORT to listen on",
        ),
        (&["--fleet", "2"], "--fleet needs a token"),
        (&["--fleet-listen", "127.0.0.1:7979"], "add --fleet N"),
    ];
    for (args, message) in cases {
        let output = run(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }
    let agent = |args: &[&str]| {
        let mut cmd = ceiling();
        cmd.arg("agent")
            .args(args)
            .env_remove("CEILING_FLEET_TOKEN")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_PROCID")
            .env_remove("SLURM_NTASKS");
        run_bounded(cmd, Duration::from_secs(10))
    };
    let cases: [(&[&str], &str); 3] = [
        (
            &["--join", "nowhere", "--token", "t", "--index", "0"],
            "'nowhere' is not the coordinator's ADDR:PORT",
        ),
        (
            &["--join", "127.0.0.1:9", "--token", "t"],
            "no host index: give --index K",
        ),
        (&["--join", "127.0.0.1:9", "--index", "0"], "no fleet token"),
    ];
    for (args, message) in cases {
        let output = agent(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// A fleet in network namespaces (root): a bridge in a namespace of the
/// test's own (`unshare -n`, where the coordinator runs at 10.77.0.1), a
/// target namespace running `ceiling serve` at 10.77.0.2:7070, and one
/// namespace per host (10.77.0.10 + k), each on a veth pair on the bridge.
/// `setup` runs after the namespaces exist (`$P` is their prefix: `${P}h1`
/// is host 1's namespace, `v${P}h1` its link on the bridge), `during` once
/// the coordinator and agents are started. The namespaces are removed at
/// the end, failed or not. Returns the coordinator's exit status and
/// stdout, and each agent's exit status and stderr.
struct NetnsFleet {
    status: i32,
    stdout: String,
    /// The coordinator's, then each agent's.
    stderr: String,
    agents: Vec<(i32, String)>,
}

/// Named namespaces a test made, removed (their processes killed) on drop:
/// the script removes them itself, this is for a script killed on its
/// bound.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let pids = Command::new("ip").args(["netns", "pids", name]).output();
            for pid in pids.iter().flat_map(|o| {
                text(&o.stdout)
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            }) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    // SAFETY: kill() of a process inside a namespace this
                    // test created (its server or agents).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Names of the namespaces a test makes: unique per test process and call.
fn netns_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "cf{}{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn netns_fleet(hosts: u64, out: &Path, run: &str, setup: &str, during: &str) -> NetnsFleet {
    let prefix = netns_prefix();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().display().to_string();
    let mut names = vec![format!("{prefix}t")];
    names.extend((0..hosts).map(|k| format!("{prefix}h{k}")));
    let script = format!(
        r#"P={prefix}; D='{dir}'; N={hosts}
cleanup() {{
  for ns in {names}; do
    for pid in $(ip netns pids $ns 2>/dev/null); do kill -9 $pid 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
}}
trap cleanup EXIT
ip link add br0 type bridge
ip addr add 10.77.0.1/24 dev br0
ip link set br0 up
mk() {{
  ip netns add $1
  ip link add v$1 type veth peer name eth0 netns $1
  ip link set v$1 master br0 up
  ip netns exec $1 ip addr add $2/24 dev eth0
  ip netns exec $1 ip link set eth0 up
  ip netns exec $1 ip link set lo up
}}
mk ${{P}}t 10.77.0.2
for k in $(seq 0 $((N - 1))); do mk ${{P}}h$k 10.77.0.$((10 + k)); done
{setup}
ip netns exec ${{P}}t "$CEILING" serve --listen 10.77.0.2:7070 > "$D/serve.log" 2>&1 &
for i in $(seq 100); do grep -q 'listening on' "$D/serve.log" && break; sleep 0.05; done
"$CEILING" run --out '{out}' --target 10.77.0.2:7070 --fleet $N \
  --fleet-listen 10.77.0.1:7979 --fleet-token {TOKEN} {run} > "$D/coord.out" 2> "$D/coord.err" &
C=$!
AGENTS=
for k in $(seq 0 $((N - 1))); do
  (set +e; ip netns exec ${{P}}h$k env CEILING_FLEET_TOKEN={TOKEN} "$CEILING" agent \
     --join 10.77.0.1:7979 --index $k --hosts $N --name h$k > "$D/a$k.out" 2> "$D/a$k.err";
   echo $? > "$D/a$k.status") &
  AGENTS="$AGENTS $!"
done
{during}
status=0; wait $C || status=$?
wait $AGENTS
cat "$D/coord.out"; cat "$D/coord.err" >&2
for k in $(seq 0 $((N - 1))); do cat "$D/a$k.err" >&2; done
exit $status
"#,
        names = names.join(" "),
        out = out.display(),
    );
    let _cleanup = Namespaces(names);
    let output = crate::util::in_netns(&script, Duration::from_secs(120));
    let agents = (0..hosts)
        .map(|k| {
            let status = std::fs::read_to_string(tmp.path().join(format!("a{k}.status")))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(-1);
            let stderr =
                std::fs::read_to_string(tmp.path().join(format!("a{k}.err"))).unwrap_or_default();
            (status, stderr)
        })
        .collect();
    let fleet = NetnsFleet {
        status: output.status.code().unwrap_or(-1),
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
        agents,
    };
    assert_eq!(
        fleet.status,
        0,
        "stdout:\n{}\nstderr:\n{}",
        fleet.stdout,
        text(&output.stderr)
    );
    fleet
}

#[test]
fn netns_fleet_a_host_out_of_ports_is_named_and_the_start_skew_stays_small_needs_root() {
    if !crate::util::require_netns("netns_fleet_a_host_out_of_ports_is_named") {
        return;
    }
    let (_tmp, out) = out_dir();
    let fleet = netns_fleet(
        3,
        &out,
        "--ui plain --connections 1500 --rate 3000 --hold end --duration 3s",
        // Host 1 has 100 ports to the target; the others the default range.
        "ip netns exec ${P}h1 sh -c \"echo '50000 50099' > /proc/sys/net/ipv4/ip_local_port_range\"",
        "",
    );
    for (k, (status, stderr)) in fleet.agents.iter().enumerate() {
        assert_eq!(*status, 0, "agent {k}: {stderr}");
    }
    assert_results_complete(&out);
    let s = summary(&out);
    crate::results::validate(&s);
    assert_eq!(s["totals"]["attempted"], 1500, "{s}");
    assert_hosts_add_up(&out, &s);
    let first = &s["first_limit"];
    assert_eq!(first["kind"], "port_exhaustion", "{s}");
    assert_eq!(first["host"], "host 1 (h1)", "{s}");
    // The evidence's host readings are the coordinator's: it says so.
    assert!(
        first["evidence"]["message"].as_str().unwrap().starts_with(
            "hit on host 1 (h1); the host settings and counters quoted here are the coordinator's"
        ),
        "{s}"
    );
    assert!(
        fleet
            .stdout
            .contains("host 1 (h1): port_exhaustion EADDRNOTAVAIL at "),
        "{}",
        fleet.stdout
    );
    // The plain progress lines (what `kubectl logs -f` shows) name it too.
    assert!(
        fleet
            .stderr
            .contains("first limit: port_exhaustion at attempt ")
            && fleet.stderr.contains(" on host 1 (h1)"),
        "{}",
        fleet.stderr
    );
    let rows = hosts_csv(&out);
    assert!(
        rows[1]["first_limit"].starts_with("port_exhaustion EADDRNOTAVAIL at "),
        "{rows:?}"
    );
    assert_eq!(rows[0]["first_limit"], "", "{rows:?}");
    assert_eq!(rows[2]["first_limit"], "", "{rows:?}");
    // Hosts 0 and 2 hold their whole share; host 1 at most its 100 ports.
    assert_eq!(s["fleet"]["hosts"][0]["totals"]["established"], 500, "{s}");
    assert_eq!(s["fleet"]["hosts"][2]["totals"]["established"], 500, "{s}");
    let h1 = s["fleet"]["hosts"][1]["totals"]["established"]
        .as_u64()
        .unwrap();
    assert!(h1 <= 100, "{s}");
    let skew = s["fleet"]["start_skew_ms"].as_f64().unwrap();
    assert!(skew < 50.0, "start skew {skew} ms: {s}");
    let (_tmp, out) = out_dir();
    let fleet = netns_fleet(
        3,
        &out,
        "--ui none --connections 900 --rate 3000 --hold end --duration 8s",
        "",
        "sleep 2; ip link set v${P}h1 down",
    );
    let (status, stderr) = &fleet.agents[1];
    assert_eq!(*status, 1, "the cut-off agent: {stderr}");
    assert!(stderr.contains("lost the coordinator"), "{stderr}");
    for k in [0, 2] {
        assert_eq!(fleet.agents[k].0, 0, "agent {k}: {}", fleet.agents[k].1);
    }
    assert_results_complete(&out);
    let s = summary(&out);
    crate::results::validate(&s);
    let deaths = s["workers"]["deaths"].as_array().unwrap();
    assert_eq!(deaths.len(), 1, "{s}");
    assert!(
        deaths[0]["host"]
            .as_str()
            .unwrap()
            .starts_with("host 1 (h1)"),
        "{s}"
    );
    assert!(
        deaths[0]["how"]
            .as_str()
            .unwrap()
            .contains("nothing heard for 3 s"),
        "{s}"
    );
    assert_eq!(s["totals"]["lost_with_worker"], 300, "{s}");
    assert_eq!(s["totals"]["attempted"], 900, "{s}");
    assert_hosts_add_up(&out, &s);
    assert!(
        fleet.stdout.contains("agents lost (1 of 3)"),
        "{}",
        fleet.stdout
    );
}

#[test]
fn netns_fleet_stop_at_first_limit_stops_every_host_when_one_hits_it_needs_root() {
    if !crate::util::require_netns("netns_fleet_stop_at_first_limit_stops_every_host") {
        return;
    }
    let (_tmp, out) = out_dir();
    netns_fleet(
        3,
        &out,
        "--ui none --connections 30000 --rate 3000 --hold end --duration 10s --stop-at-first-limit",
        "ip netns exec ${P}h1 sh -c \"echo '50000 50099' > /proc/sys/net/ipv4/ip_local_port_range\"",
        "",
    );
    let s = summary(&out);
    assert_eq!(s["first_limit"]["host"], "host 1 (h1)", "{s}");
    // Host 1 ran out after ~100 of its 10,000 (at 1,000/s: ~0.1 s); the
    // others stopped with it, far from their 10,000.
    for k in [0, 2] {
        let never = s["fleet"]["hosts"][k]["totals"]["never_attempted"]
            .as_u64()
            .unwrap();
        assert!(never > 5_000, "host {k} went on: {s}");
    }
    assert_hosts_add_up(&out, &s);
}

/// A target given by name is resolved by each agent in its own network:
/// here the coordinator's hosts file says 127.0.0.2 and the agent's (its
/// own mount namespace) 127.0.0.3; the agent connects to 127.0.0.3 and
/// says so, the coordinator's own answer stays in the summary.
#[test]
fn root_an_agent_resolves_a_target_name_in_its_own_network() {
    let test = "root_an_agent_resolves_a_target_name_in_its_own_network";
    if !crate::util::require_netns(test) {
        return;
    }
    let (tmp, out) = out_dir();
    let file = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let coordinator_hosts = file("hosts.coordinator", "127.0.0.2 svc.ceiling.test\n");
    let agent_hosts = file("hosts.agent", "127.0.0.3 svc.ceiling.test\n");
    let nsswitch = file("nsswitch.conf", "hosts: files\n");
    let log = |name: &str| tmp.path().join(name).display().to_string();
    let script = format!(
        r#"ip link set lo up
mount --make-rprivate /
mount --bind '{nsswitch}' /etc/nsswitch.conf
mount --bind '{coordinator_hosts}' /etc/hosts
# Only the agent's answer is served: had it used the coordinator's, nothing
# would connect.
"$CEILING" serve --listen 127.0.0.3:7070 > '{serve_log}' 2>&1 &
SERVE=$!
trap 'kill $SERVE' EXIT
for i in $(seq 100); do grep -q 'listening on' '{serve_log}' && break; sleep 0.05; done
set +e
CEILING_FLEET_TOKEN=t "$CEILING" run --ui none --out '{out}' --target svc.ceiling.test:7070 \
  -c 40 -r 400 --hold 200ms --fleet 1 --fleet-listen 127.0.0.1:7979 > '{coord_log}' 2>&1 &
COORD=$!
unshare -m sh -c "mount --bind '{agent_hosts}' /etc/hosts && \
  CEILING_FLEET_TOKEN=t exec \"$CEILING\" agent --join 127.0.0.1:7979 --index 0 --hosts 1" \
  > '{agent_log}' 2>&1
echo "agent: exit $?"
wait $COORD
echo "coordinator: exit $?""#,
        serve_log = log("serve.log"),
        coord_log = log("coordinator.log"),
        agent_log = log("agent.log"),
        out = out.display(),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "-n", "sh", "-euc", &script])
        .env("CEILING", crate::util::bin());
    let output = run_bounded(cmd, Duration::from_secs(60));
    let read = |name: &str| std::fs::read_to_string(log(name)).unwrap_or_default();
    let (stdout, agent_log) = (text(&output.stdout), read("agent.log"));
    let context = format!(
        "{stdout}\nagent:\n{agent_log}\ncoordinator:\n{}",
        read("coordinator.log")
    );
    assert!(stdout.contains("agent: exit 0"), "{context}");
    assert!(stdout.contains("coordinator: exit 0"), "{context}");
    let s = summary(&out);
    assert_eq!(
        s["targets_resolved"][0]["addresses"],
        serde_json::json!(["127.0.0.2:7070"]),
        "the coordinator's own answer: {s}"
    );
    assert_eq!(
        s["fleet"]["hosts"][0]["targets_resolved"],
        serde_json::json!([{"name": "svc.ceiling.test:7070", "addresses": ["127.0.0.3:7070"]}]),
        "{s}"
    );
    assert_eq!(s["totals"]["established"], 40, "{s}");
    assert!(
        agent_log.contains("resolved here to 127.0.0.3:7070 (at the coordinator: 127.0.0.2:7070)"),
        "{agent_log}"
    );
}
