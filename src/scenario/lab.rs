//! The `[lab]` section of a scenario: the settings `ceiling lab` applies
//! inside its own network namespace (per-namespace sysctls, the built-in
//! target server's backlog and accept policy, a memory cgroup), parsed and
//! validated here like every other field.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::units::{self, PortRange, ServerMode, ServerModel};
use super::{ScenarioError, invalid};

/// Where the built-in server listens in a lab when the scenario names no
/// target: a fixed port, safe because the namespace is the lab's own, and
/// below the usual ephemeral ranges.
pub const DEFAULT_LAB_TARGET: &str = "127.0.0.1:7070";

/// `[lab]` as written: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// net.ipv4.ip_local_port_range, `LO-HI`.
    #[serde(default, deserialize_with = "units::de::port_range")]
    pub ip_local_port_range: Option<PortRange>,
    pub somaxconn: Option<u32>,
    pub tcp_max_syn_backlog: Option<u32>,
    pub tcp_syncookies: Option<u8>,
    pub tcp_syn_retries: Option<u8>,
    pub tcp_max_tw_buckets: Option<u32>,
    pub tcp_tw_reuse: Option<u8>,
    pub tcp_abort_on_overflow: Option<bool>,
    /// Buckets of the namespace's own TCP established-connection hash
    /// table (the host's is shared otherwise).
    #[serde(default, deserialize_with = "units::de::count")]
    pub tcp_ehash_entries: Option<u64>,
    /// A memory cgroup with this limit, e.g. "64MiB".
    #[serde(default, deserialize_with = "units::de::size")]
    pub memory_limit: Option<u64>,
    pub server_backlog: Option<u32>,
    pub server_accept: Option<bool>,
    pub server_mode: Option<ServerMode>,
    /// `ceiling serve --processes N` for the built-in server: more than one
    /// process's fd limit of server-side connections (SO_REUSEPORT).
    #[serde(default, deserialize_with = "units::de::count")]
    pub server_processes: Option<u64>,
    /// The server's design: `async` or `threads` (one per connection).
    pub server_model: Option<ServerModel>,
    /// A pids cgroup for the server: at most this many tasks (threads) in
    /// it, as a host with a threads limit has.
    #[serde(default, deserialize_with = "units::de::count")]
    pub server_threads_max: Option<u64>,
    /// A CPU quota for the server, in cores (e.g. 0.2), by a cpu cgroup.
    pub server_cpus: Option<f64>,
    /// Not a lab setting: accepted only to say where it belongs.
    #[serde(default, deserialize_with = "units::de::count")]
    pub fd_limit: Option<u64>,
}

/// One per-namespace sysctl the lab may write: only these, all under
/// /proc/sys/net.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    /// Dotted name, e.g. `net.ipv4.ip_local_port_range`.
    pub name: &'static str,
    /// The value as written to /proc/sys, e.g. `50000 50010`.
    pub value: String,
}

impl Sysctl {
    /// Path under /proc/sys.
    pub fn path(&self) -> String {
        format!("/proc/sys/{}", self.name.replace('.', "/"))
    }
}

/// The built-in target server of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabServer {
    pub backlog: u32,
    /// false: listen, never accept.
    pub accept: bool,
    pub mode: ServerMode,
    /// Server processes (`ceiling serve --processes`), each with its own fd
    /// table; 1 serves from one process.
    pub processes: usize,
    pub model: ServerModel,
    /// pids.max of the server's pids cgroup (None: no cgroup).
    pub threads_max: Option<u64>,
    /// The server's CPU quota in thousandths of a core (None: no quota).
    pub cpu_millis: Option<u64>,
}

/// Fewest tasks a lab server's pids cgroup may allow: the server's own
/// threads (runtime, accept thread) come before any connection.
pub const MIN_SERVER_THREADS: u64 = 8;
/// Most: the kernel's own PID space (pid_max's ceiling).
pub const MAX_SERVER_THREADS: u64 = 4_194_304;

/// A validated `[lab]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Lab {
    /// In the order they are written.
    pub sysctls: Vec<Sysctl>,
    /// The namespace's own TCP established-connection hash table, in
    /// buckets (the kernel rounds up to a power of two); `None`: it shares
    /// the host's.
    pub ehash_entries: Option<u32>,
    pub memory_limit: Option<u64>,
    pub server: LabServer,
}

impl Default for LabServer {
    fn default() -> Self {
        LabServer {
            backlog: 4096,
            accept: true,
            mode: ServerMode::Hold,
            processes: 1,
            model: ServerModel::Async,
            threads_max: None,
            cpu_millis: None,
        }
    }
}

impl Lab {
    pub fn port_range(&self) -> Option<(u16, u16)> {
        self.sysctls
            .iter()
            .find(|s| s.name == "net.ipv4.ip_local_port_range")
            .and_then(|s| {
                let mut it = s.value.split_whitespace().map(|p| p.parse().ok());
                Some((it.next()??, it.next()??))
            })
    }
}

/// The bounds the kernel puts on `tcp_child_ehash_entries` (16Mi), and a
/// floor below which a table of one's own makes no sense.
const MIN_EHASH_ENTRIES: u64 = 128;
const MAX_EHASH_ENTRIES: u64 = 16 << 20;

fn in_range(
    field: &'static str,
    value: Option<u64>,
    lo: u64,
    hi: u64,
    what: &str,
) -> Result<Option<String>, ScenarioError> {
    match value {
        None => Ok(None),
        Some(v) if (lo..=hi).contains(&v) => Ok(Some(v.to_string())),
        Some(v) => Err(invalid(
            field,
            format!("[lab] {field} = {v} is out of range: use {lo} to {hi} ({what})"),
        )),
    }
}

impl LabSpec {
    /// Checks each value against what the kernel accepts, so a bad value is
    /// refused before the namespace exists.
    pub fn validate(self) -> Result<Lab, ScenarioError> {
        if let Some(n) = self.fd_limit {
            return Err(invalid(
                "fd_limit",
                format!(
                    "[lab] fd_limit = {n}: the fd limit is a setting of the driver, the same in \
                     `ceiling run` and `ceiling lab`: write `fd_limit = {n}` at the top of the \
                     file (before [lab]) or pass --fd-limit {n}"
                ),
            ));
        }
        let mut sysctls = Vec::new();
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                sysctls.push(Sysctl { name, value });
            }
        };
        if let Some(r) = self.ip_local_port_range {
            if r.lo < 1024 {
                return Err(invalid(
                    "ip_local_port_range",
                    format!(
                        "[lab] ip_local_port_range {}-{} starts below 1024: the kernel refuses \
                         ephemeral ports among the privileged ones; use e.g. 50000-50010",
                        r.lo, r.hi
                    ),
                ));
            }
            push(
                "net.ipv4.ip_local_port_range",
                Some(format!("{} {}", r.lo, r.hi)),
            );
        }
        push(
            "net.core.somaxconn",
            in_range(
                "somaxconn",
                self.somaxconn.map(u64::from),
                1,
                i32::MAX as u64,
                "the cap on every listen() backlog",
            )?,
        );
        push(
            "net.ipv4.tcp_max_syn_backlog",
            in_range(
                "tcp_max_syn_backlog",
                self.tcp_max_syn_backlog.map(u64::from),
                1,
                i32::MAX as u64,
                "half-open connections per listener",
            )?,
        );
        push(
            "net.ipv4.tcp_syncookies",
            in_range(
                "tcp_syncookies",
                self.tcp_syncookies.map(u64::from),
                0,
                2,
                "0 off, 1 when the SYN queue overflows, 2 always",
            )?,
        );
        push(
            "net.ipv4.tcp_syn_retries",
            in_range(
                "tcp_syn_retries",
                self.tcp_syn_retries.map(u64::from),
                1,
                127,
                "SYN retransmissions before connect() gives up",
            )?,
        );
        push(
            "net.ipv4.tcp_max_tw_buckets",
            in_range(
                "tcp_max_tw_buckets",
                self.tcp_max_tw_buckets.map(u64::from),
                0,
                i32::MAX as u64,
                "TIME_WAIT sockets in the namespace",
            )?,
        );
        push(
            "net.ipv4.tcp_tw_reuse",
            in_range(
                "tcp_tw_reuse",
                self.tcp_tw_reuse.map(u64::from),
                0,
                2,
                "0 off, 1 on, 2 loopback only",
            )?,
        );
        push(
            "net.ipv4.tcp_abort_on_overflow",
            self.tcp_abort_on_overflow.map(|b| u8::from(b).to_string()),
        );
        let ehash_entries = in_range(
            "tcp_ehash_entries",
            self.tcp_ehash_entries,
            MIN_EHASH_ENTRIES,
            MAX_EHASH_ENTRIES,
            "hash buckets for the namespace's TCP connections; the kernel rounds up to a power \
             of two",
        )?
        .map(|n| n.parse().expect("in range, so a u32"));
        if let Some(bytes) = self.memory_limit
            && bytes < 4 << 20
        {
            return Err(invalid(
                "memory_limit",
                format!(
                    "[lab] memory_limit = {bytes} bytes is too small to run anything: use 4MiB \
                     or more, e.g. \"64MiB\""
                ),
            ));
        }
        let backlog = match self.server_backlog {
            Some(n) => units::parse_backlog(&n.to_string())
                .map_err(|e| invalid("server_backlog", format!("[lab] server_backlog: {e}")))?,
            None => LabServer::default().backlog,
        };
        let processes = match self.server_processes {
            None => 1,
            Some(n) if (1..=units::MAX_PROCESSES).contains(&n) => n as usize,
            Some(n) => {
                return Err(invalid(
                    "server_processes",
                    format!(
                        "[lab] server_processes = {n} is out of range: use 1 to {} (each \
                         process of the built-in server holds up to its fd limit)",
                        units::MAX_PROCESSES
                    ),
                ));
            }
        };
        let threads_max = match self.server_threads_max {
            None => None,
            Some(n) if (MIN_SERVER_THREADS..=MAX_SERVER_THREADS).contains(&n) => Some(n),
            Some(n) => {
                return Err(invalid(
                    "server_threads_max",
                    format!(
                        "[lab] server_threads_max = {n} is out of range: use \
                         {MIN_SERVER_THREADS} to {MAX_SERVER_THREADS} (the server needs a few \
                         threads of its own before its first connection)"
                    ),
                ));
            }
        };
        let cpu_millis = match self.server_cpus {
            None => None,
            Some(cpus) if cpus.is_finite() && (0.01..=1024.0).contains(&cpus) => {
                Some((cpus * 1000.0).round() as u64)
            }
            Some(cpus) => {
                return Err(invalid(
                    "server_cpus",
                    format!(
                        "[lab] server_cpus = {cpus} is out of range: use 0.01 to 1024 cores, \
                         e.g. 0.2 for a fifth of one core"
                    ),
                ));
            }
        };
        Ok(Lab {
            sysctls,
            ehash_entries,
            memory_limit: self.memory_limit,
            server: LabServer {
                backlog,
                accept: self.server_accept.unwrap_or(true),
                mode: self.server_mode.unwrap_or_default(),
                processes,
                model: self.server_model.unwrap_or_default(),
                threads_max,
                cpu_millis,
            },
        })
    }
}

/// In a lab the built-in server listens on the targets: they must be
/// loopback addresses (the namespace has only `lo`) and outside the lab's
/// ephemeral port range (a listener there takes one of the ports away).
pub fn check_targets(lab: &Lab, targets: &[SocketAddr]) -> Result<(), ScenarioError> {
    for target in targets {
        if !target.ip().is_loopback() {
            return Err(invalid(
                "targets",
                format!(
                    "target {target}: in a lab the built-in server listens on the targets inside \
                     the lab's namespace, which has only loopback: use 127.0.0.0/8 or [::1] \
                     addresses, e.g. {DEFAULT_LAB_TARGET}"
                ),
            ));
        }
        if target.port() == 0 {
            return Err(invalid(
                "targets",
                format!("target {target}: give the port the lab's server listens on, not 0"),
            ));
        }
        if let Some((lo, hi)) = lab.port_range()
            && (lo..=hi).contains(&target.port())
        {
            return Err(invalid(
                "targets",
                format!(
                    "target port {} is inside [lab] ip_local_port_range {lo}-{hi}: the listener \
                     would take one of those ports from the driver; use a port outside it, \
                     e.g. {}",
                    target.port(),
                    if lo > 1024 {
                        lo - 1
                    } else {
                        hi.saturating_add(1).max(1024)
                    }
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Scenario, parse_text};

    fn lab_of(text: &str) -> Result<super::Lab, String> {
        let spec = parse_text(text)?;
        let s = Scenario::validate(spec).map_err(|e| e.to_string())?;
        Ok(s.lab.expect("a [lab] section"))
    }

    #[test]
    fn a_lab_section_becomes_sysctls_in_order_and_server_settings() {
        let lab = lab_of(
            "[lab]\nip_local_port_range = \"50000-50010\"\ntcp_tw_reuse = 0\n\
             server_backlog = 8\nserver_accept = false\nmemory_limit = \"64MiB\"\n\
             tcp_ehash_entries = \"2m\"\n",
        )
        .unwrap();
        assert_eq!(lab.ehash_entries, Some(2_000_000));
        assert_eq!(lab.sysctls[0].name, "net.ipv4.ip_local_port_range");
        assert_eq!(lab.sysctls[0].value, "50000 50010");
        assert_eq!(
            lab.sysctls[0].path(),
            "/proc/sys/net/ipv4/ip_local_port_range"
        );
        assert_eq!(lab.sysctls[1].name, "net.ipv4.tcp_tw_reuse");
        assert_eq!(lab.server.backlog, 8);
        assert!(!lab.server.accept);
        assert_eq!(lab.memory_limit, Some(64 << 20));
        assert_eq!(lab.port_range(), Some((50000, 50010)));
    }

    #[test]
    fn the_server_design_and_its_cgroups_have_ranges() {
        let lab = lab_of(
            "[lab]\nserver_model = \"threads\"\nserver_threads_max = \"2k\"\nserver_cpus = 0.25\n",
        )
        .unwrap();
        assert_eq!(lab.server.model, super::ServerModel::Threads);
        assert_eq!(lab.server.threads_max, Some(2000));
        assert_eq!(lab.server.cpu_millis, Some(250));
        let err = lab_of("[lab]\nserver_threads_max = 3\n").unwrap_err();
        assert!(
            err.contains("server_threads_max = 3") && err.contains("8 to"),
            "{err}"
        );
        for bad in ["0", "0.001", "2000", "nan"] {
            let err = lab_of(&format!("[lab]\nserver_cpus = {bad}\n")).unwrap_err();
            assert!(err.contains("0.01 to 1024"), "{bad}: {err}");
        }
        let err = lab_of("[lab]\nserver_model = \"fibers\"\n").unwrap_err();
        assert!(err.contains("async") && err.contains("threads"), "{err}");
    }

    #[test]
    fn bad_lab_values_name_the_field_and_what_is_accepted() {
        let err = lab_of("[lab]\ntcp_syncookies = 3\n").unwrap_err();
        assert!(
            err.contains("tcp_syncookies = 3") && err.contains("0 to 2"),
            "{err}"
        );
        let err = lab_of("[lab]\nsomaxcon = 3\n").unwrap_err();
        assert!(err.contains("unknown field `somaxcon`"), "{err}");
        assert!(err.contains("somaxconn"), "{err}");
        let err = lab_of("[lab]\nfd_limit = 1024\n").unwrap_err();
        assert!(err.contains("at the top of the file"), "{err}");
        let err = lab_of("[lab]\nmemory_limit = \"64 parsecs\"\n").unwrap_err();
        assert!(err.contains("MiB"), "{err}");
        let err = lab_of("[lab]\ntcp_ehash_entries = 100\n").unwrap_err();
        assert!(
            err.contains("tcp_ehash_entries = 100") && err.contains("128 to 16777216"),
            "{err}"
        );
        let err = lab_of("[lab]\nip_local_port_range = \"80-90\"\n").unwrap_err();
        assert!(err.contains("below 1024"), "{err}");
    }

    #[test]
    fn lab_targets_default_to_loopback_and_stay_out_of_the_port_range() {
        let s = Scenario::validate(parse_text("[lab]\n").unwrap()).unwrap();
        assert_eq!(s.targets, vec!["127.0.0.1:7070".parse().unwrap()]);
        let err = Scenario::validate(parse_text("targets = [\"10.0.0.1:80\"]\n[lab]\n").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("only loopback"), "{err}");
        let err = Scenario::validate(
            parse_text(
                "targets = [\"127.0.0.1:50005\"]\n[lab]\nip_local_port_range = \"50000-50010\"\n",
            )
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("inside [lab] ip_local_port_range"), "{err}");
    }
}
