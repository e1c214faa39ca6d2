//! `ceiling fleet kubernetes|slurm`: what they render, read back as data
//! (YAML documents, the commands a batch script runs), the Kubernetes API
//! schema's verdict on the manifests, and bad input refused before
//! anything is printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{ceiling, require, run_bounded, text};

fn scenario() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/load-test.toml")
}

/// `ceiling fleet ARGS`: its stdout, which it must print with exit 0.
fn render(args: &[&str]) -> String {
    let mut cmd = ceiling();
    cmd.arg("fleet").args(args);
    let out = run_bounded(cmd, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{args:?}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The manifests for `hosts` agents from the load-test scenario, with
/// run flags a shell would have to quote.
fn manifests(hosts: u64) -> String {
    render(&[
        "kubernetes",
        "--hosts",
        &hosts.to_string(),
        "--image",
        "registry.example/ceiling:0.1",
        scenario().to_str().unwrap(),
        "--connections",
        "30k",
        "--target",
        "10.0.0.1:80",
        "--message",
        "it's $HOME\\r\\n",
    ])
}

/// Every YAML document, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML document"))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {docs:#?}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect()
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &[&'a str], flag: &str) -> &'a str {
    let at = args.iter().position(|a| *a == flag);
    args[at.unwrap_or_else(|| panic!("{flag} missing in {args:?}")) + 1]
}

/// Whether every label `selector` asks for is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn kubernetes_manifests_read_back_as_the_fleet_contract_says() {
    let file_text = std::fs::read_to_string(scenario()).unwrap();
    for hosts in [1u64, 3, 16] {
        let docs = documents(&manifests(hosts));
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Secret", "ConfigMap", "Service", "Job", "Job"]);

        // The token: a random Secret, the env of both sides.
        let secret = find(&docs, "Secret", "ceiling-load-test-token");
        let token = secret["stringData"]["token"].as_str().unwrap();
        assert!(
            token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
            "{token}"
        );
        let token_env = serde_json::json!({
            "name": "CEILING_FLEET_TOKEN",
            "valueFrom": { "secretKeyRef": { "name": "ceiling-load-test-token", "key": "token" } },
        });

        // The scenario travels whole, under its own file name.
        let config = find(&docs, "ConfigMap", "ceiling-load-test-scenario");
        assert_eq!(config["data"]["load-test.toml"], file_text.as_str());

        // The coordinator: `ceiling run` with the flags as typed.
        let job = find(&docs, "Job", "ceiling-load-test-coordinator");
        assert_eq!(job["spec"]["backoffLimit"], 0);
        let pod = &job["spec"]["template"];
        let coordinator = &pod["spec"]["containers"][0];
        assert_eq!(coordinator["name"], "coordinator");
        assert_eq!(strings(&coordinator["command"]), ["ceiling"]);
        let args = strings(&coordinator["args"]);
        assert_eq!(
            args[..8],
            [
                "run",
                "/etc/ceiling/load-test.toml",
                "--connections",
                "30k",
                "--target",
                "10.0.0.1:80",
                "--message",
                "it's $HOME\\r\\n",
            ]
        );
        assert_eq!(flag(&args, "--fleet"), hosts.to_string());
        assert_eq!(flag(&args, "--fleet-listen"), "0.0.0.0:7979");
        assert!(coordinator["env"].as_array().unwrap().contains(&token_env));
        let mounts = coordinator["volumeMounts"].as_array().unwrap();
        let scenario_mount = mounts
            .iter()
            .find(|m| m["mountPath"] == "/etc/ceiling")
            .unwrap();
        let volume = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == scenario_mount["name"])
            .unwrap();
        assert_eq!(volume["configMap"]["name"], "ceiling-load-test-scenario");

        // The headless Service selects the coordinator's pod, not agents.
        let service = find(&docs, "Service", "ceiling-load-test-coordinator");
        assert_eq!(service["spec"]["clusterIP"], "None");
        assert_eq!(service["spec"]["ports"][0]["port"], 7979);
        let selector = &service["spec"]["selector"];
        assert!(selects(selector, &pod["metadata"]["labels"]), "{selector}");

        // The agents: an Indexed Job of N, no index retried, a deadline.
        let agents = find(&docs, "Job", "ceiling-load-test-agents");
        let spec = &agents["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(spec["completions"], hosts);
        assert_eq!(spec["parallelism"], hosts);
        assert_eq!(spec["backoffLimitPerIndex"], 0);
        let rule = &spec["podFailurePolicy"]["rules"][0];
        assert_eq!(rule["action"], "FailIndex");
        assert_eq!(rule["onExitCodes"]["operator"], "NotIn");
        assert_eq!(rule["onExitCodes"]["values"], serde_json::json!([0]));
        // The run's 1m, the join timeout's 60 s, and a margin.
        let deadline = spec["activeDeadlineSeconds"].as_u64().unwrap();
        assert!((120..3600).contains(&deadline), "{deadline}");
        assert!(job["spec"]["activeDeadlineSeconds"].as_u64().unwrap() > deadline);
        let pod = &spec["template"];
        assert!(!selects(selector, &pod["metadata"]["labels"]));
        assert_eq!(
            pod["spec"]["securityContext"]["sysctls"][0]["name"],
            "net.ipv4.ip_local_port_range"
        );
        let spread = &pod["spec"]["topologySpreadConstraints"][0];
        assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
        assert!(selects(
            &spread["labelSelector"]["matchLabels"],
            &pod["metadata"]["labels"]
        ));
        let agent = &pod["spec"]["containers"][0];
        assert_eq!(agent["name"], rule["onExitCodes"]["containerName"]);
        assert_eq!(strings(&agent["command"]), ["ceiling"]);
        let args = strings(&agent["args"]);
        assert_eq!(args[0], "agent");
        assert_eq!(
            flag(&args, "--join"),
            format!("{}:7979", service["metadata"]["name"].as_str().unwrap())
        );
        assert_eq!(flag(&args, "--hosts"), hosts.to_string());
        // The index is Kubernetes' JOB_COMPLETION_INDEX, not a flag.
        assert!(!args.contains(&"--index"));
        assert!(agent["env"].as_array().unwrap().contains(&token_env));
        // It starts once the Service's name resolves.
        let wait = strings(&pod["spec"]["initContainers"][0]["command"]);
        assert_eq!(wait.last(), Some(&"ceiling-load-test-coordinator"));
    }
}

#[test]
fn kubernetes_manifests_without_a_file_or_in_a_namespace() {
    let docs = documents(&render(&[
        "kubernetes",
        "--hosts",
        "2",
        "--image",
        "ceiling",
        "--namespace",
        "load",
        "--port",
        "9000",
        "--target",
        "10.0.0.1:80",
        "--name",
        "Big_Test",
    ]));
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Secret", "Service", "Job", "Job"]);
    assert!(docs.iter().all(|d| d["metadata"]["namespace"] == "load"));
    let coordinator = &find(&docs, "Job", "ceiling-big-test-coordinator")["spec"]["template"];
    let args = strings(&coordinator["spec"]["containers"][0]["args"]);
    assert_eq!(
        args[..5],
        ["run", "--target", "10.0.0.1:80", "--name", "Big_Test"]
    );
    assert_eq!(flag(&args, "--fleet-listen"), "0.0.0.0:9000");
    let agents = &find(&docs, "Job", "ceiling-big-test-agents")["spec"]["template"];
    let args = strings(&agents["spec"]["containers"][0]["args"]);
    assert_eq!(
        flag(&args, "--join"),
        "ceiling-big-test-coordinator.load.svc:9000"
    );
    // Two renders, two tokens.
    let again = documents(&render(&[
        "kubernetes",
        "--hosts",
        "2",
        "--image",
        "ceiling",
        "--target",
        "10.0.0.1:80",
    ]));
    assert_ne!(
        docs[0]["stringData"]["token"],
        again[0]["stringData"]["token"]
    );
}

/// kubernetes-validate (PyPI), as .ci/run installs it, or on PATH.
fn kubernetes_validate() -> Option<PathBuf> {
    let venv = PathBuf::from("/opt/kv/bin/kubernetes-validate");
    if venv.is_file() {
        return Some(venv);
    }
    let on_path = PathBuf::from("kubernetes-validate");
    crate::util::installed("kubernetes-validate").then_some(on_path)
}

/// kubernetes-validate's verdict on `yaml` against Kubernetes `version`
/// (None: the newest it knows) and what it said.
fn validate(tool: &Path, version: Option<&str>, yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut cmd = Command::new(tool);
    cmd.args(["--strict", "--quiet"]);
    if let Some(version) = version {
        cmd.args(["--kubernetes-version", version]);
    }
    cmd.arg(&file);
    let out = run_bounded(cmd, Duration::from_secs(60));
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// The Kubernetes API schema, strictly (no field it does not know), for
/// several host counts: the newest version the tool knows, and 1.29, the
/// first whose Jobs take backoffLimitPerIndex by default.
#[test]
fn kubernetes_manifests_pass_kubernetes_validate_strict_ci() {
    let tool = kubernetes_validate();
    let test = "kubernetes_manifests_pass_kubernetes_validate_strict_ci";
    if !require(test, tool.is_some(), "kubernetes-validate (pip)") {
        return;
    }
    let tool = tool.unwrap();
    for hosts in [1, 3, 16] {
        let yaml = manifests(hosts);
        for version in [None, Some("1.29.0")] {
            let (ok, said) = validate(&tool, version, &yaml);
            assert!(ok, "{hosts} hosts, Kubernetes {version:?}: {said}\n{yaml}");
        }
    }
    // It does refuse: a field the schema does not have.
    let yaml = manifests(3).replace("completionMode:", "completionMod:");
    let (ok, said) = validate(&tool, None, &yaml);
    assert!(!ok && said.contains("completionMod"), "{said}");
}

/// Runs the rendered script with stand-ins for srun and scontrol that
/// write down their arguments, and returns each srun's arguments, the
/// token it saw, and the scenario file it was given (if any).
fn run_script(script: &str, env: &[(&str, &str)]) -> Vec<(Vec<String>, String, Option<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let record = dir.path().join("record");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&record).unwrap();
    let stub = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/bash\nset -eu\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    stub(
        "scontrol",
        r#"[ "$1 $2 $3" = "show hostnames node[1-3]" ] && printf 'node1\nnode2\nnode3\n'"#,
    );
    stub(
        "srun",
        r#"r="$RECORD/$BASHPID"; printf '%s\0' "$@" > "$r.args"
printf '%s' "$CEILING_FLEET_TOKEN" > "$r.token"
for a in "$@"; do case "$a" in *.toml) cp "$a" "$r.toml";; esac; done"#,
    );
    let file = dir.path().join("fleet.sh");
    std::fs::write(&file, script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {}", text(&syntax.stderr));
    let mut cmd = Command::new("bash");
    cmd.arg(&file)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("RECORD", &record)
        .env("SLURM_JOB_NODELIST", "node[1-3]")
        .env_remove("CEILING")
        .env_remove("CEILING_FLEET_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_bounded(cmd, Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut steps: Vec<_> = std::fs::read_dir(&record)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "args"))
        .map(|p| {
            let args = std::fs::read_to_string(&p).unwrap();
            let args: Vec<String> = args.split_terminator('\0').map(String::from).collect();
            let token = std::fs::read_to_string(p.with_extension("token")).unwrap();
            let toml = std::fs::read_to_string(p.with_extension("toml")).ok();
            (args, token, toml)
        })
        .collect();
    // The coordinator's step first.
    steps.sort_by_key(|(args, _, _)| !args.contains(&"run".to_owned()));
    steps
}

#[test]
fn slurm_script_runs_the_coordinator_and_agents_as_the_contract_says() {
    // A scenario with a line like the here-document's end marker.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odd.toml");
    let scenario_text = "targets = [\"10.0.0.1:80\"]\nconnections = \"10k\"\nduration = \"2m\"\n\
                         mode = \"echo\"\nmessage = '''\nCEILING_SCENARIO\n'''\n";
    std::fs::write(&file, scenario_text).unwrap();
    for hosts in [1u64, 3] {
        let script = render(&[
            "slurm",
            "--hosts",
            &hosts.to_string(),
            file.to_str().unwrap(),
            "--interval",
            "2s",
            "--hold",
            "end",
        ]);
        assert!(
            script.contains(&format!("#SBATCH --ntasks={}\n", hosts + 1)),
            "{script}"
        );
        let steps = run_script(&script, &[]);
        assert_eq!(steps.len(), 2, "{steps:?}");
        let (coordinator, token, toml) = &steps[0];
        let at = coordinator.iter().position(|a| a == "ceiling").unwrap();
        assert!(coordinator[..at].contains(&"--ntasks=1".to_owned()));
        assert!(coordinator[..at].contains(&"--nodelist=node1".to_owned()));
        let args = &coordinator[at + 1..];
        assert_eq!(args[0], "run");
        assert!(args[1].ends_with("/odd.toml"), "{args:?}");
        assert_eq!(args[2..6], ["--interval", "2s", "--hold", "end"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(flag(&args, "--fleet"), hosts.to_string());
        assert_eq!(flag(&args, "--fleet-listen"), "0.0.0.0:7979");
        assert_eq!(toml.as_deref(), Some(scenario_text));
        assert!(token.len() == 32, "{token}");

        let (agents, agent_token, _) = &steps[1];
        let at = agents.iter().position(|a| a == "ceiling").unwrap();
        assert!(agents[..at].contains(&format!("--ntasks={hosts}")));
        let args: Vec<&str> = agents[at + 1..].iter().map(String::as_str).collect();
        assert_eq!(args[0], "agent");
        assert_eq!(flag(&args, "--join"), "node1:7979");
        assert_eq!(flag(&args, "--hosts"), hosts.to_string());
        assert_eq!(agent_token, token);
    }
}

#[test]
fn slurm_script_takes_the_token_and_binary_from_the_environment() {
    let script = render(&["slurm", "--hosts", "2", "--target", "10.0.0.1:80"]);
    let steps = run_script(
        &script,
        &[
            ("CEILING_FLEET_TOKEN", "sesame"),
            ("CEILING", "/opt/ceiling"),
        ],
    );
    for (args, token, toml) in &steps {
        assert_eq!(token, "sesame");
        assert!(args.contains(&"/opt/ceiling".to_owned()), "{args:?}");
        assert!(toml.is_none());
    }
}

#[test]
fn slurm_script_outside_sbatch_says_so() {
    let script = render(&["slurm", "--hosts", "2", "--target", "10.0.0.1:80"]);
    let out = Command::new("bash")
        .args(["-c", &script])
        .env_remove("SLURM_JOB_NODELIST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("submit this script with sbatch"),
        "{}",
        text(&out.stderr)
    );
}

/// `ceiling fleet ARGS`: exit 2, nothing on stdout, and every needle on
/// stderr.
fn refused(args: &[&str], needles: &[&str]) {
    let mut cmd = ceiling();
    cmd.arg("fleet").args(args);
    let out = run_bounded(cmd, Duration::from_secs(20));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: no {needle:?} in {stderr}"
        );
    }
}

#[test]
fn fleet_bad_input_is_refused_before_anything_is_rendered() {
    let file: &'static str = scenario().to_str().unwrap().to_owned().leak();
    for engine in [&["kubernetes", "--image", "ceiling"][..], &["slurm"][..]] {
        let with = |rest: &[&'static str]| -> Vec<&'static str> { [engine, rest].concat() };
        refused(&with(&["--hosts", "0", file]), &["'0'", "1 to 10k"]);
        refused(&with(&[file]), &["--hosts N is required"]);
        refused(
            &with(&[file, "--hosts", "2"]),
            &["'--hosts'", "fleet's own flags first"],
        );
        refused(
            &with(&["--hosts", "2", file, "--port=80"]),
            &["'--port'", "fleet's own flags first"],
        );
        refused(
            &with(&["--hosts", "5", "--target", "10.0.0.1:80", "-c", "3"]),
            &["--hosts 5", "3 connection"],
        );
        refused(
            &with(&["--hosts", "2", file, "--rate", "fast"]),
            &["'fast'", "ceiling run"],
        );
        refused(&with(&["--hosts", "2", file, "--bogus"]), &["--bogus"]);
        refused(
            &with(&["--hosts", "2", "--connections", "5", file]),
            &["scenario file first"],
        );
        refused(
            &with(&["--hosts", "2", file, "--fleet-listen", "1.2.3.4:1"]),
            &["'--fleet-listen'", "leave it out"],
        );
        refused(&with(&["--hosts", "2", "--port", "0", file]), &["0"]);
        refused(
            &with(&["--hosts", "2", "--join-timeout", "2h", file]),
            &["'2h'", "1s to 1h"],
        );
        let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/fd-limit.toml");
        refused(&with(&["--hosts", "2", lab]), &["[lab]"]);
    }
    refused(
        &["kubernetes", "--hosts", "2", file],
        &["--image IMAGE is required"],
    );
    refused(
        &["kubernetes", "--hosts", "2", "--image", "bad image", file],
        &["'bad image'", "NAME[:TAG]"],
    );
    refused(
        &[
            "kubernetes",
            "--hosts",
            "2",
            "--image",
            "x",
            "--namespace",
            "Load",
            file,
        ],
        &["'Load'", "lowercase"],
    );
}
