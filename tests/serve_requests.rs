//! `ceiling serve --mode http|redis|line`, answered to real clients that
//! nobody on the team wrote (redis-cli, redis-benchmark, curl, wrk: Debian
//! packages .ci/run installs) and to plain sockets. A test skips without
//! its client, and under CI=true that skip is a failure. Every wait is
//! bounded; timings are asserted as lower bounds only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{ceiling, installed, require, run_bounded, text};

/// Upper bound on any single wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

/// Both server models each test runs against.
const MODELS: [&str; 2] = ["async", "threads"];

/// A running `ceiling serve` whose stdout stays readable, so the exit
/// line's counts can be checked; killed (by its PID) if a test fails first.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut child = ceiling()
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ceiling serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(WAIT).expect("a 'listening on' line");
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("not a listening line: {first}"))
            .parse()
            .expect("an address");
        Served { child, lines, addr }
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then the exit line (the one before `stats:`).
    fn stop(mut self) -> String {
        let pid = self.child.id() as libc::pid_t;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill");
        let mut exit_line = None;
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            if line.starts_with("stats: ") {
                break;
            }
            exit_line = Some(line);
        }
        let status = self.child.wait().expect("serve exits");
        assert!(status.success(), "serve exited with {status}");
        exit_line.expect("an exit line")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `requests R, responses S, request errors E` from an exit line.
fn request_counts(exit_line: &str) -> (u64, u64, u64) {
    let figure = |name: &str| -> u64 {
        let at = exit_line
            .find(&format!(", {name} "))
            .unwrap_or_else(|| panic!("no '{name}' in: {exit_line}"));
        exit_line[at + name.len() + 3..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("'{name}' has no number in: {exit_line}"))
    };
    (
        figure("requests"),
        figure("responses"),
        figure("request errors"),
    )
}

fn bounded(program: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    let out = run_bounded(cmd, WAIT);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn redis_cli_and_redis_benchmark_get_their_answers() {
    if !require(
        "redis_cli_and_redis_benchmark_get_their_answers",
        installed("redis-benchmark") && installed("redis-cli"),
        "redis-cli and redis-benchmark (Debian: redis-tools)",
    ) {
        return;
    }
    for model in MODELS {
        let server = Served::start(&["--mode", "redis", "--model", model]);
        let port = server.port();
        let cli = |args: &[&str]| {
            let mut all = vec!["-h", "127.0.0.1", "-p", &port];
            all.extend_from_slice(args);
            let (ok, out, err) = bounded("redis-cli", &all);
            assert!(ok, "redis-cli {args:?}: {err}");
            out
        };
        assert_eq!(cli(&["ping"]), "PONG\n", "{model}");
        assert_eq!(cli(&["echo", "hello"]), "hello\n", "{model}");
        assert!(
            cli(&["get", "k"]).starts_with("ERR unknown command 'get'"),
            "{model}"
        );
        let (ok, out, err) = bounded(
            "redis-benchmark",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "ping",
                "-n",
                "2000",
                "-c",
                "20",
                "-q",
            ],
        );
        assert!(ok, "redis-benchmark ({model}): {out}{err}");
        // -q prints one line per test, its rate at the end of the output
        // after progress lines.
        for test in ["PING_INLINE: ", "PING_MBULK: "] {
            let line = out
                .rsplit(['\n', '\r'])
                .find(|line| {
                    line.trim_start().starts_with(test) && line.contains("requests per second")
                })
                .unwrap_or_else(|| panic!("no {test} result ({model}): {out}"));
            let rate: f64 = line.trim_start()[test.len()..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no rate in {line:?}"));
            assert!(rate > 0.0, "{line}");
        }
        let (requests, responses, errors) = request_counts(&server.stop());
        // 3 from redis-cli, 2 × 2000 PINGs, and what redis-benchmark asks
        // first (CONFIG GET, answered with an error).
        assert!(requests >= 4003, "{model}: {requests} requests");
        assert_eq!((responses, errors), (requests, 0), "{model}");
    }
}

#[test]
fn curl_reuses_one_keep_alive_connection_honours_close_and_uploads_chunked() {
    if !require(
        "curl_reuses_one_keep_alive_connection_honours_close_and_uploads_chunked",
        installed("curl"),
        "curl (Debian: curl)",
    ) {
        return;
    }
    for model in MODELS {
        let server = Served::start(&["--mode", "http", "--model", model]);
        let (ok, out, err) = bounded("curl", &["-sv", &server.url("/a"), &server.url("/b")]);
        assert!(ok, "curl ({model}): {err}");
        assert_eq!(out, "ok\nok\n", "{model}");
        assert!(
            err.contains("Re-using existing connection"),
            "the second URL did not reuse the connection ({model}): {err}"
        );
        assert_eq!(err.matches("< HTTP/1.1 200 OK").count(), 2, "{err}");
        let (ok, _, err) = bounded(
            "curl",
            &["-sv", "-H", "Connection: close", &server.url("/c")],
        );
        assert!(ok, "curl ({model}): {err}");
        assert!(err.contains("< Connection: close"), "{model}: {err}");
        // An upload of unknown length goes chunked (curl's chunks of its
        // own size), then a request on the same connection.
        let mut upload = tempfile::NamedTempFile::new().unwrap();
        upload.write_all(&[b'x'; 40_000]).unwrap();
        let data = format!("@{}", upload.path().display());
        let (ok, out, err) = bounded(
            "curl",
            &[
                "-sv",
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
                &data,
                &server.url("/up"),
                "--next",
                &server.url("/after"),
            ],
        );
        assert!(ok, "curl ({model}): {err}");
        assert!(
            err.contains("> Transfer-Encoding: chunked"),
            "{model}: {err}"
        );
        assert_eq!(out, "ok\nok\n", "{model}: {err}");
        assert!(
            err.contains("Re-using existing connection"),
            "{model}: {err}"
        );
        let exit_line = server.stop();
        assert!(
            exit_line.starts_with("accepted 3, "),
            "three curl calls, three connections ({model}): {exit_line}"
        );
        assert_eq!(request_counts(&exit_line), (5, 5, 0), "{model}");
    }
}

#[test]
fn wrk_gets_only_2xx_without_socket_errors() {
    if !require(
        "wrk_gets_only_2xx_without_socket_errors",
        // `wrk --version` prints its version but exits 1: it runs at all.
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk (Debian: wrk)",
    ) {
        return;
    }
    for model in MODELS {
        let server = Served::start(&["--mode", "http", "--model", model]);
        let (ok, out, err) = bounded("wrk", &["-t1", "-c10", "-d1s", &server.url("/")]);
        assert!(ok, "wrk ({model}): {out}{err}");
        let requests: u64 = out
            .lines()
            .find_map(|line| line.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no request count ({model}): {out}"));
        assert!(requests > 0, "{out}");
        assert!(!out.contains("Socket errors"), "{model}: {out}");
        assert!(!out.contains("Non-2xx"), "{model}: {out}");
        let (answered, responses, errors) = request_counts(&server.stop());
        assert!(answered >= requests, "{model}: {answered} < {requests}");
        assert_eq!((responses, errors), (answered, 0), "{model}");
    }
}

/// Reads until `want` bytes arrived or the peer closed.
fn read_at_least(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => panic!("read: {err}"),
        }
    }
    got
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

#[test]
fn line_mode_answers_split_and_pipelined_lines_and_refuses_an_endless_one() {
    for model in MODELS {
        let server = Served::start(&["--mode", "line", "--model", model]);
        let mut stream = connect(server.addr);
        // One line in two writes, then two lines in one.
        stream.write_all(b"hel").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(b"lo\r\none\ntwo\n").unwrap();
        assert_eq!(read_at_least(&mut stream, 15), b"hello\r\none\ntwo\n");
        // A line longer than the bound: an error line, then EOF.
        let mut endless = connect(server.addr);
        endless.write_all(&vec![b'x'; 20 * 1024]).unwrap();
        let mut rest = Vec::new();
        endless
            .read_to_end(&mut rest)
            .expect("closed after the error");
        assert_eq!(text(&rest), "error: line longer than 16384 bytes\n");
        drop(stream);
        assert_eq!(request_counts(&server.stop()), (3, 3, 1), "{model}");
    }
}

#[test]
fn malformed_http_gets_400_and_a_close() {
    let server = Served::start(&["--mode", "http"]);
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nno colon\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("closed after the 400");
    let answer = text(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert_eq!(request_counts(&server.stop()), (0, 0, 1));
}

#[test]
fn a_service_time_delays_each_response_at_least_that_long() {
    for model in MODELS {
        let server = Served::start(&[
            "--mode",
            "line",
            "--model",
            model,
            "--service-time",
            "200ms",
        ]);
        let mut stream = connect(server.addr);
        let start = Instant::now();
        stream.write_all(b"ping\n").unwrap();
        assert_eq!(read_at_least(&mut stream, 5), b"ping\n");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200),
            "{model}: answered in {took:?}"
        );
    }
}

#[test]
fn a_service_time_without_requests_is_refused_before_listening() {
    let out = run_bounded(
        {
            let mut cmd = ceiling();
            cmd.args(["serve", "--mode", "echo", "--service-time", "200ms"]);
            cmd
        },
        WAIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).is_empty(), "nothing listens");
    assert!(
        text(&out.stderr).contains("--service-time 200ms needs requests to answer"),
        "{}",
        text(&out.stderr)
    );
}

/// `--model pool --workers 1 --queue 1`: of four requests sent at once
/// (each takes 1 s, so all four arrive while the first is served), one is
/// served, one waits its turn and is served after it, and two are turned
/// away: a 503 on a connection that stays open (`reject`), or a close
/// without an answer (`close`).
#[test]
fn a_pool_of_one_with_a_queue_of_one_turns_the_rest_away() {
    for policy in ["reject", "close"] {
        let server = Served::start(&[
            "--mode",
            "http",
            "--model",
            "pool",
            "--workers",
            "1",
            "--queue",
            "1",
            "--when-queue-full",
            policy,
            "--service-time",
            "1s",
        ]);
        let mut streams: Vec<TcpStream> = (0..4).map(|_| connect(server.addr)).collect();
        for stream in &mut streams {
            stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        }
        let answers: Vec<String> = streams
            .iter_mut()
            .map(|stream| {
                let got = text(&read_at_least(stream, 12));
                got.get(..12).unwrap_or(&got).to_string()
            })
            .collect();
        let mut sorted = answers.clone();
        sorted.sort();
        let turned_away = if policy == "reject" {
            "HTTP/1.1 503"
        } else {
            ""
        };
        let mut expected = [turned_away, turned_away, "HTTP/1.1 200", "HTTP/1.1 200"];
        expected.sort();
        assert_eq!(sorted, expected, "{policy}");
        if policy == "reject" {
            // The 503 kept its connection: a next request is answered.
            let busy = streams.iter_mut().last().expect("four connections");
            busy.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            assert!(text(&read_at_least(busy, 12)).starts_with("HTTP/1.1 "));
        }
        drop(streams);
        let exit_line = server.stop();
        let (rejected, closed) = if policy == "reject" { (2, 0) } else { (0, 2) };
        assert!(
            exit_line.ends_with(&format!("busy rejected {rejected}, busy closed {closed}")),
            "{exit_line}"
        );
    }
}

/// `--when-queue-full wait` with one worker and no queue: three requests
/// at once are all served, one after another, so the last answer comes no
/// sooner than three service times.
#[test]
fn a_full_pool_that_waits_serves_every_request_in_turn() {
    let server = Served::start(&[
        "--mode",
        "line",
        "--model",
        "pool",
        "--workers",
        "1",
        "--queue",
        "0",
        "--when-queue-full",
        "wait",
        "--service-time",
        "200ms",
    ]);
    let start = Instant::now();
    let mut streams: Vec<TcpStream> = (0..3).map(|_| connect(server.addr)).collect();
    for stream in &mut streams {
        stream.write_all(b"hi\n").unwrap();
    }
    for stream in &mut streams {
        assert_eq!(read_at_least(stream, 3), b"hi\n");
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(600), "all three in {took:?}");
    drop(streams);
    let exit_line = server.stop();
    assert_eq!(request_counts(&exit_line), (3, 3, 0));
    assert!(
        exit_line.ends_with("busy rejected 0, busy closed 0"),
        "{exit_line}"
    );
}

/// Pipelined commands in one write, one of them split across two writes,
/// come back in the order they were sent, under every model.
#[test]
fn pipelined_redis_commands_are_answered_in_order() {
    for model in ["async", "threads", "pool"] {
        let server = Served::start(&["--mode", "redis", "--model", model]);
        let mut stream = connect(server.addr);
        stream
            .write_all(b"*2\r\n$4\r\nECHO\r\n$1\r\na\r\nECHO b\r\nPING\r\n*2\r\n$4\r\nEC")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(b"HO\r\n$1\r\nc\r\n").unwrap();
        let want = b"$1\r\na\r\n$1\r\nb\r\n+PONG\r\n$1\r\nc\r\n";
        assert_eq!(
            text(&read_at_least(&mut stream, want.len())),
            text(want),
            "{model}"
        );
        drop(stream);
        assert_eq!(request_counts(&server.stop()), (4, 4, 0), "{model}");
    }
}
