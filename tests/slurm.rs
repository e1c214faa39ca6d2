//! A fleet through Slurm for real: `ceiling fleet slurm` renders the batch
//! script, `sbatch --wait` runs it on the one-machine cluster that .ci/run
//! starts (`scripts/slurm-localhost.sh`), and the coordinator and the
//! agents are its `srun` steps, each agent learning its index from
//! `SLURM_PROCID`, against `ceiling serve` on loopback.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use crate::util::{
    Server, assert_invariants, bin, installed, out_dir, require, run_bounded, summary, text,
};

/// Whether a Slurm controller answers and its partition is up.
fn slurm_is_up() -> bool {
    installed("sbatch")
        && Command::new("sinfo")
            .args(["-h", "-o", "%a"])
            .output()
            .is_ok_and(|o| o.status.success() && text(&o.stdout).contains("up"))
}

#[test]
fn a_fleet_runs_through_sbatch_and_srun_with_exact_totals_needs_slurm() {
    let test = "a_fleet_runs_through_sbatch_and_srun_with_exact_totals_needs_slurm";
    if !require(
        test,
        slurm_is_up(),
        "a running Slurm (scripts/slurm-localhost.sh start, as .ci/run does)",
    ) {
        return;
    }
    let server = Server::start(&["--listen", "127.0.0.1:0"]);
    let (tmp, out) = out_dir();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let render = crate::util::ceiling()
        .args([
            "fleet",
            "slurm",
            "--hosts",
            "2",
            "--port",
            &port.to_string(),
        ])
        .args(["--join-timeout", "60s", "--target", &server.addr()])
        .args(["--connections", "400", "--rate", "400", "--hold", "2s"])
        .args(["--ui", "none", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(render.status.success(), "{}", text(&render.stderr));
    let script = tmp.path().join("fleet.sh");
    std::fs::write(&script, &render.stdout).unwrap();
    let job_out = tmp.path().join("job.out");
    let job = format!("ceiling-test-{}", std::process::id());

    let mut sbatch = Command::new("sbatch");
    sbatch
        .args(["--wait", "--overcommit", "--job-name", &job])
        .arg(format!("--output={}", job_out.display()))
        .arg(format!("--chdir={}", tmp.path().display()))
        .arg(&script)
        .env("CEILING", bin())
        // This host's name may resolve to an address that is not loopback:
        // the agents join the coordinator on loopback, as the test's rules
        // ask.
        .env("CEILING_COORDINATOR_ADDR", "127.0.0.1")
        .env("CEILING_FLEET_TOKEN", "slurm-test-token");
    let done = run_bounded(sbatch, Duration::from_secs(180));
    // Whatever happened, nothing of the job is left running.
    let _ = Command::new("scancel").args(["--name", &job]).status();
    let log = std::fs::read_to_string(&job_out).unwrap_or_default();
    assert!(
        done.status.success(),
        "sbatch: {}{}\njob output:\n{log}",
        text(&done.stdout),
        text(&done.stderr)
    );

    let s = summary(&out);
    assert_eq!(s["totals"]["attempted"], 400, "{log}");
    assert_eq!(s["totals"]["established"], 400, "{log}");
    let hosts = s["fleet"]["hosts"].as_array().expect("a fleet object");
    let mut indexes: Vec<u64> = hosts.iter().map(|h| h["index"].as_u64().unwrap()).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1], "each SLURM_PROCID is one host: {log}");
    for host in hosts {
        assert_eq!(host["totals"]["attempted"], 200, "{host}");
    }
    assert!(s["fleet"]["start_skew_ms"].is_number(), "{}", s["fleet"]);
    let csv = std::fs::read_to_string(out.join("hosts.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        3,
        "a header and one row per host:\n{csv}"
    );
    assert!(log.contains("joined"), "the agents' progress lines: {log}");
    assert_invariants(&out);
}
