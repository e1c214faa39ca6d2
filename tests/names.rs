//! Targets given by host name, resolved once when the run starts. Only
//! `localhost`, or names from a hosts file bind-mounted inside a mount and
//! network namespace the test creates (no DNS is asked: nsswitch there says
//! `hosts: files`), so nothing resolves outside loopback.

use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use crate::util::{Server, ceiling, out_dir, require_netns, run_bounded, summary, text};

const BOUND: Duration = Duration::from_secs(60);

/// `--target localhost:PORT` and `targets = ["localhost:PORT"]` in a file:
/// every address localhost resolves to is a target (a server listens on
/// each), the name and its addresses are in the summary.
#[test]
fn a_target_named_localhost_is_resolved_and_recorded_from_a_flag_and_a_file() {
    let server = Server::start(&["--listen", "127.0.0.1:0"]);
    let port = server.addrs[0].port();
    let ips: Vec<IpAddr> = ("localhost", port)
        .to_socket_addrs()
        .unwrap()
        .map(|a| a.ip())
        .fold(Vec::new(), |mut ips, ip| {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
            ips
        });
    assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
    // Where localhost is also ::1, a server listens there too.
    let _v6 = ips
        .iter()
        .any(IpAddr::is_ipv6)
        .then(|| Server::start(&["--listen", &format!("[::1]:{port}")]));
    let expected: Vec<String> = ips
        .iter()
        .map(|ip| std::net::SocketAddr::new(*ip, port).to_string())
        .collect();

    let (tmp, out) = out_dir();
    let file = tmp.path().join("named.toml");
    std::fs::write(&file, format!("targets = [\"localhost:{port}\"]\n")).unwrap();
    let target = format!("localhost:{port}");
    let from_flag = ["--target", target.as_str()];
    let from_file = [file.to_str().unwrap()];
    for (i, args) in [&from_flag[..], &from_file[..]].into_iter().enumerate() {
        let out = out.with_extension(i.to_string());
        let mut cmd = ceiling();
        cmd.args(["run", "--ui", "none", "--out"])
            .arg(&out)
            .args(args)
            .args(["-c", "30", "-r", "300", "--hold", "100ms"]);
        let output = run_bounded(cmd, BOUND);
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("target localhost:{port} resolved to")),
            "{stderr}"
        );
        let s = summary(&out);
        crate::results::validate(&s);
        assert_eq!(s["totals"]["established"], 30, "{args:?}");
        assert_eq!(
            s["targets_resolved"],
            serde_json::json!([{"name": target, "addresses": expected}])
        );
        assert_eq!(s["scenario"]["targets"], serde_json::json!(expected));
    }
}

/// In a mount and network namespace of its own, a hosts file names two
/// loopback addresses `svc.ceiling.test`: both are targets, each gets its
/// share. A name the hosts file lacks is refused with the resolver's answer
/// (exit 2), and nothing is created.
#[test]
fn root_a_name_with_two_addresses_targets_both_and_an_unknown_name_is_refused() {
    let test = "root_a_name_with_two_addresses_targets_both_and_an_unknown_name_is_refused";
    if !require_netns(test) {
        return;
    }
    let (tmp, out) = out_dir();
    let hosts = tmp.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 svc.ceiling.test\n127.0.0.2 svc.ceiling.test\n",
    )
    .unwrap();
    let nsswitch = tmp.path().join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files\n").unwrap();
    let refused = tmp.path().join("refused");
    let script = format!(
        r#"ip link set lo up
mount --make-rprivate /
mount --bind '{hosts}' /etc/hosts
mount --bind '{nsswitch}' /etc/nsswitch.conf
"$CEILING" serve --listen 127.0.0.1:7070 --listen 127.0.0.2:7070 > '{log}' &
SERVE_PID=$!
for i in $(seq 100); do [ "$(grep -c 'listening on' '{log}')" -ge 2 ] && break; sleep 0.05; done
set +e
"$CEILING" run --ui none --out '{out}' --target svc.ceiling.test:7070 -c 40 -r 400 --hold 100ms
ok=$?
"$CEILING" run --ui none --out '{refused}' --target nosuch.ceiling.test:7070 -c 4
echo "unknown name: exit $?"
kill $SERVE_PID
exit $ok"#,
        hosts = hosts.display(),
        nsswitch = nsswitch.display(),
        log = tmp.path().join("serve.log").display(),
        out = out.display(),
        refused = refused.display(),
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "-n", "sh", "-euc", &script])
        .env("CEILING", crate::util::bin());
    let output = run_bounded(cmd, BOUND);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let s = summary(&out);
    assert_eq!(
        s["targets_resolved"],
        serde_json::json!([{
            "name": "svc.ceiling.test:7070",
            "addresses": ["127.0.0.1:7070", "127.0.0.2:7070"]
        }])
    );
    assert_eq!(s["totals"]["established"], 40, "{s}");
    assert_eq!(s["scenario"]["targets"].as_array().unwrap().len(), 2);
    assert_eq!(s["failures"], serde_json::json!([]), "none failed");

    assert!(
        stdout.contains("unknown name: exit 2"),
        "{stdout}\n{stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("nosuch.ceiling.test"))
        .unwrap_or_else(|| panic!("the name is not named: {stderr}"));
    assert!(
        line.contains("does not resolve: ") && line.contains("give the target as an address"),
        "{line}"
    );
    assert!(!refused.exists(), "a refused run created its directory");
}
