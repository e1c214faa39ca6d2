//! `ceiling fleet kubernetes`: the manifests of a fleet test, as YAML
//! documents built as JSON values. In order: the token's Secret, the
//! scenario's ConfigMap (when a file is given), the coordinator's headless
//! Service, the coordinator's Job, and the agents' Indexed Job.
//!
//! The agents' Job is Indexed (`JOB_COMPLETION_INDEX` is each agent's
//! index) with no retry of an index (`backoffLimitPerIndex: 0` and a pod
//! failure policy that fails the index): an agent that failed is recorded
//! by the coordinator as a lost host, the others go on, and no restarted
//! agent knocks on a running test. Each agent first waits until the
//! Service's name resolves (the coordinator's pod is up), so no agent
//! fails for having started first.

use serde_json::{Value, json};

use super::{Fleet, dns_label};

/// The port range every agent pod sets (`net.ipv4.ip_local_port_range`,
/// one of the sysctls Kubernetes counts safe for a pod to set): the
/// widest the kernel takes for ephemeral ports without clashing with
/// privileged ones.
pub const PORT_RANGE: &str = "1024 65535";
/// How long the coordinator's pod keeps its results after the run, for
/// `kubectl cp` to copy them out.
pub const KEEP_RESULTS_SECS: u64 = 3600;
/// Where the coordinator runs and writes its results directory, and where
/// the `results` container keeps it.
pub const WORK_DIR: &str = "/work";
/// Where the scenario file is mounted.
pub const SCENARIO_DIR: &str = "/etc/ceiling";

/// What only Kubernetes needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub image: String,
    /// None: kubectl's current namespace.
    pub namespace: Option<String>,
    /// The fleet's shared token, put in the Secret.
    pub token: String,
}

/// The names of one fleet's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Names {
    /// `ceiling-<run name>`: the `app.kubernetes.io/instance` label.
    pub instance: String,
    pub secret: String,
    pub config_map: String,
    /// The Service's and the coordinator Job's.
    pub coordinator: String,
    pub agents: String,
}

impl Names {
    /// From the run's name; short enough that an agent pod's host name,
    /// `<agents job>-<index>`, stays within a DNS label's 63 characters.
    pub fn of(run_name: &str) -> Names {
        let label = dns_label(run_name, 30);
        let instance = if label.is_empty() {
            "ceiling".to_owned()
        } else {
            format!("ceiling-{label}")
        };
        Names {
            secret: format!("{instance}-token"),
            config_map: format!("{instance}-scenario"),
            coordinator: format!("{instance}-coordinator"),
            agents: format!("{instance}-agents"),
            instance,
        }
    }
}

/// The manifests, as YAML documents separated by `---`.
pub fn render(fleet: &Fleet, options: &Options) -> String {
    let mut out = String::new();
    for doc in documents(fleet, options) {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&doc).expect("a JSON value is YAML"));
    }
    out
}

/// The manifests as values, in the order they are applied.
pub fn documents(fleet: &Fleet, options: &Options) -> Vec<Value> {
    let names = Names::of(&fleet.name);
    let metadata = |name: &str, component: &str| {
        let mut meta = json!({ "name": name, "labels": labels(&names, component) });
        if let Some(ns) = &options.namespace {
            meta["namespace"] = json!(ns);
        }
        meta
    };
    // Within the namespace the Service's own name resolves; across, its
    // full one.
    let coordinator_host = match &options.namespace {
        Some(ns) => format!("{}.{ns}.svc", names.coordinator),
        None => names.coordinator.clone(),
    };
    let token_env = json!({
        "name": "CEILING_FLEET_TOKEN",
        "valueFrom": { "secretKeyRef": { "name": names.secret, "key": "token" } },
    });
    let deadline = fleet.deadline().as_secs();

    let mut docs = vec![json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(&names.secret, "token"),
        "type": "Opaque",
        "stringData": { "token": options.token },
    })];
    if let Some(file) = &fleet.scenario {
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(&names.config_map, "scenario"),
            "data": { file.file_name.as_str(): file.text },
        }));
    }
    docs.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(&names.coordinator, "coordinator"),
        "spec": {
            // Headless: the name resolves to the coordinator pod itself.
            "clusterIP": "None",
            "selector": labels(&names, "coordinator"),
            "ports": [{ "name": "fleet", "port": fleet.port, "targetPort": fleet.port, "protocol": "TCP" }],
        },
    }));

    let scenario_path = fleet
        .scenario
        .as_ref()
        .map(|f| format!("{SCENARIO_DIR}/{}", f.file_name));
    let mut mounts = vec![json!({ "name": "results", "mountPath": WORK_DIR })];
    let mut volumes = vec![json!({ "name": "results", "emptyDir": {} })];
    if fleet.scenario.is_some() {
        mounts.push(json!({ "name": "scenario", "mountPath": SCENARIO_DIR, "readOnly": true }));
        volumes.push(json!({ "name": "scenario", "configMap": { "name": names.config_map } }));
    }
    docs.push(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(&names.coordinator, "coordinator"),
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline + KEEP_RESULTS_SECS + 60,
            "template": {
                "metadata": {
                    "labels": labels(&names, "coordinator"),
                    // `kubectl logs -f job/...` follows the run, not the
                    // results keeper.
                    "annotations": { "kubectl.kubernetes.io/default-container": "coordinator" },
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "coordinator",
                            "image": options.image,
                            "command": ["ceiling"],
                            "args": fleet.coordinator_args(scenario_path),
                            "workingDir": WORK_DIR,
                            "env": [token_env],
                            "ports": [{ "name": "fleet", "containerPort": fleet.port, "protocol": "TCP" }],
                            "volumeMounts": mounts,
                        },
                        {
                            // Keeps the results directory for `kubectl cp`
                            // once the run has ended.
                            "name": "results",
                            "image": options.image,
                            "command": ["sleep", (deadline + KEEP_RESULTS_SECS).to_string()],
                            "workingDir": WORK_DIR,
                            "volumeMounts": [{ "name": "results", "mountPath": WORK_DIR }],
                        },
                    ],
                    "volumes": volumes,
                },
            },
        },
    }));

    let mut agent_args = fleet.agent_args(&coordinator_host);
    // Kubernetes expands $(VAR) from the container's environment: the
    // node in the name shows agents that share one (and its port space).
    agent_args.extend(["--name".to_owned(), "$(POD_NAME)@$(NODE_NAME)".to_owned()]);
    docs.push(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(&names.agents, "agent"),
        "spec": {
            "completionMode": "Indexed",
            "completions": fleet.hosts,
            "parallelism": fleet.hosts,
            "backoffLimitPerIndex": 0,
            "podFailurePolicy": {
                "rules": [{
                    "action": "FailIndex",
                    "onExitCodes": { "containerName": "agent", "operator": "NotIn", "values": [0] },
                }],
            },
            "activeDeadlineSeconds": deadline,
            "template": {
                "metadata": { "labels": labels(&names, "agent") },
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "sysctls": [{ "name": "net.ipv4.ip_local_port_range", "value": PORT_RANGE }],
                    },
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": { "matchLabels": labels(&names, "agent") },
                    }],
                    "initContainers": [{
                        "name": "wait-for-coordinator",
                        "image": options.image,
                        "command": [
                            "sh", "-c",
                            "until getent hosts \"$0\" >/dev/null; do sleep 1; done",
                            coordinator_host,
                        ],
                    }],
                    "containers": [{
                        "name": "agent",
                        "image": options.image,
                        "command": ["ceiling"],
                        "args": agent_args,
                        "env": [
                            token_env,
                            { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                            { "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } },
                        ],
                    }],
                },
            },
        },
    }));
    docs
}

/// The labels of one component; the Service selects the coordinator's.
fn labels(names: &Names, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "ceiling",
        "app.kubernetes.io/instance": names.instance,
        "app.kubernetes.io/component": component,
    })
}
