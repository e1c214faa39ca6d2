//! Reads the host values and kernel counters that explain a limit: sysctls
//! and rlimits ([`probe`]), TCP counters ([`read_counters`]), whether an
//! address is local, and a listener's accept queue.
//!
//! A thin layer over files and syscalls: all parsing is in
//! [`super::procfs`] and [`super::diag`]. Nothing here writes a sysctl; the
//! only setting it changes is this process's own soft RLIMIT_NOFILE. A file
//! that is missing (no netfilter, no cgroup) is left out, not an error.
//!
//! The files read again all run long (the counters, the port range and
//! /proc/self/fd) are opened once, by [`probe`] at the start, and kept open:
//! a process whose fd table is full (EMFILE) still reads them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{diag, procfs};

/// Host values and counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostState {
    /// Settings: sysctls, rlimits (read once).
    pub values: BTreeMap<String, serde_json::Value>,
    /// Kernel counters (netstat, snmp, sockstat), as read.
    pub counters: BTreeMap<String, u64>,
}

/// Single-number sysctls read by [`probe`], by value name.
const SYSCTLS: &[(&str, &str)] = &[
    ("somaxconn", "/proc/sys/net/core/somaxconn"),
    (
        "tcp_max_syn_backlog",
        "/proc/sys/net/ipv4/tcp_max_syn_backlog",
    ),
    ("tcp_syncookies", "/proc/sys/net/ipv4/tcp_syncookies"),
    (
        "tcp_abort_on_overflow",
        "/proc/sys/net/ipv4/tcp_abort_on_overflow",
    ),
    (
        "tcp_max_tw_buckets",
        "/proc/sys/net/ipv4/tcp_max_tw_buckets",
    ),
    ("tcp_tw_reuse", "/proc/sys/net/ipv4/tcp_tw_reuse"),
    ("tcp_syn_retries", "/proc/sys/net/ipv4/tcp_syn_retries"),
    ("file_max", "/proc/sys/fs/file-max"),
    (
        "nf_conntrack_count",
        "/proc/sys/net/netfilter/nf_conntrack_count",
    ),
    (
        "nf_conntrack_max",
        "/proc/sys/net/netfilter/nf_conntrack_max",
    ),
];

/// TcpExt counters kept: listen queue overflows, SYN loss, TIME_WAIT and
/// memory aborts.
const TCP_EXT: &[&str] = &[
    "ListenOverflows",
    "ListenDrops",
    "TCPSynRetrans",
    "TCPTimeouts",
    "TCPTimeWaitOverflow",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
    "EmbryonicRsts",
    "TCPBacklogDrop",
    "TCPAbortOnData",
    "TCPAbortOnClose",
    "TCPAbortOnMemory",
    "TCPAbortOnTimeout",
    "TCPAbortOnLinger",
    "TCPAbortFailed",
    "TCPMemoryPressures",
    "TW",
];

/// Tcp (snmp) counters kept.
const TCP: &[&str] = &[
    "ActiveOpens",
    "PassiveOpens",
    "AttemptFails",
    "EstabResets",
    "CurrEstab",
    "RetransSegs",
    "OutRsts",
    "InErrs",
];

/// sockstat gauges kept.
const SOCKSTAT: &[&str] = &[
    "sockstat.sockets_used",
    "sockstat.tcp_inuse",
    "sockstat.tcp_orphan",
    "sockstat.tcp_tw",
    "sockstat.tcp_alloc",
    "sockstat.tcp_mem",
    "sockstat.tcp6_inuse",
];

/// True for counters that are a level, not a running total (sockstat,
/// Tcp.CurrEstab): their value at the end says more than their change.
pub fn is_gauge(key: &str) -> bool {
    key.starts_with("sockstat.") || key == "Tcp.CurrEstab"
}

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// True when the connection tracking table is full (count at max); false
/// when it is not, or when conntrack is not loaded here.
pub fn conntrack_full() -> bool {
    let value = |name| {
        read(&format!("/proc/sys/net/netfilter/{name}"))
            .as_deref()
            .and_then(procfs::parse_u64)
    };
    match (value("nf_conntrack_count"), value("nf_conntrack_max")) {
        (Some(count), Some(max)) => max > 0 && count >= max,
        _ => false,
    }
}

/// The files [`read_kept`] keeps open.
const KEPT_FILES: [&str; 5] = [
    "/proc/net/netstat",
    "/proc/net/snmp",
    "/proc/net/sockstat",
    "/proc/net/sockstat6",
    PORT_RANGE,
];

const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The kept /proc files of this process, opened in the network namespace
/// `netns` (/proc/net follows the namespace of the opener).
struct Kept {
    netns: Option<(u64, u64)>,
    files: BTreeMap<&'static str, File>,
    /// /proc/self/fd, listed again from its start at each count.
    fd_dir: Option<File>,
}

static KEPT: Mutex<Kept> = Mutex::new(Kept {
    netns: None,
    files: BTreeMap::new(),
    fd_dir: None,
});

impl Kept {
    fn lock() -> std::sync::MutexGuard<'static, Kept> {
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        // Files opened in another network namespace (before `lab` moved
        // this process) describe that one: open them again. stat needs no fd.
        let netns = fs::metadata("/proc/self/ns/net")
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if kept.netns != netns {
            kept.files.clear();
            kept.netns = netns;
        }
        kept
    }

    fn read(&mut self, path: &'static str) -> io::Result<String> {
        let file = match self.files.entry(path) {
            std::collections::btree_map::Entry::Occupied(file) => file.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => slot.insert(File::open(path)?),
        };
        file.seek(SeekFrom::Start(0))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(text)
    }

    fn fd_dir(&mut self) -> io::Result<&File> {
        if self.fd_dir.is_none() {
            let dir = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open("/proc/self/fd")?;
            self.fd_dir = Some(dir);
        }
        Ok(self.fd_dir.as_ref().expect("just opened"))
    }
}

/// The TCP socket tables, read once at a limit: opened with the kept
/// files but not read then (they can be long).
const TCP_TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// Opens the files read all run long ([`KEPT_FILES`], [`TCP_TABLES`],
/// /proc/self/fd) now, while fds are free; those already open stay.
fn keep_proc_files() {
    let mut kept = Kept::lock();
    for path in KEPT_FILES {
        let _ = kept.read(path);
    }
    for path in TCP_TABLES {
        if let std::collections::btree_map::Entry::Vacant(slot) = kept.files.entry(path)
            && let Ok(file) = File::open(path)
        {
            slot.insert(file);
        }
    }
    let _ = kept.fd_dir();
}

/// This host's (namespace's) sockets connecting to `targets`, by state:
/// the SYN-SENT ones from sock_diag (the kernel filters by state, so a
/// million held connections are not read), with `held` (the run's own
/// count) as the established; when no netlink socket can be had (a full fd
/// table), every row of the kept TCP tables.
pub fn socket_states_to(targets: &[SocketAddr], held: u64) -> Option<procfs::SocketStates> {
    let to_target = |remote: SocketAddr| {
        targets.iter().any(|t| {
            t.port() == remote.port() && t.ip().to_canonical() == remote.ip().to_canonical()
        })
    };
    let dumps: Vec<_> = [libc::AF_INET, libc::AF_INET6]
        .into_iter()
        .filter_map(|f| diag::dump(f, 1 << procfs::TCP_SYN_SENT).ok())
        .collect();
    if !dumps.is_empty() {
        let syn_sent = dumps
            .iter()
            .flatten()
            .filter(|s| to_target(s.remote))
            .count() as u64;
        return Some(procfs::SocketStates {
            total: syn_sent + held,
            syn_sent,
            established: held,
        });
    }
    let mut rows = Vec::new();
    let mut read_any = false;
    for path in TCP_TABLES {
        if let Ok(text) = read_kept(path) {
            read_any = true;
            rows.extend(procfs::parse_proc_net_tcp(&text));
        }
    }
    read_any.then(|| procfs::count_states_to(&rows, targets))
}

/// One of [`KEPT_FILES`], read from its start through the kept file
/// (opened now if it is not open yet).
fn read_kept(path: &'static str) -> io::Result<String> {
    Kept::lock().read(path)
}

/// File descriptors this process has open (entries of /proc/self/fd, the
/// kept one included), counted through the kept directory: no new fd.
pub fn open_fd_count() -> io::Result<u64> {
    let mut kept = Kept::lock();
    let fd = kept.fd_dir()?.as_raw_fd();
    // SAFETY: lseek on an fd we own.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32 * 1024];
    let mut count = 0;
    loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into buf.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        match n {
            ..0 => return Err(io::Error::last_os_error()),
            0 => return Ok(count),
            n => count += procfs::count_dirents(&buf[..n as usize]),
        }
    }
}

/// What the dashboard's host panel shows, read through the kept files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PanelReading {
    pub open_fds: Option<u64>,
    pub port_range: Option<(u16, u16)>,
    /// As [`read_counters`] gives them.
    pub counters: BTreeMap<String, u64>,
    /// Why something was not read (the first error), e.g. "fd table full".
    pub unread: Option<String>,
}

/// The dashboard's host readings: open fds, the port range, the counters.
pub fn read_panel() -> PanelReading {
    let mut first_error = None;
    let mut note = |e: io::Error| {
        first_error.get_or_insert_with(|| match e.raw_os_error() {
            Some(libc::EMFILE) => "fd table full (EMFILE)".to_string(),
            Some(libc::ENFILE) => "system file table full (ENFILE)".to_string(),
            _ => e.to_string(),
        });
    };
    let open_fds = open_fd_count().map_err(&mut note).ok();
    let port_range = read_kept(PORT_RANGE)
        .map_err(&mut note)
        .ok()
        .and_then(|text| procfs::parse_port_range(&text));
    let counters = counters_with(|path| read_kept(path).map_err(&mut note).ok());
    PanelReading {
        open_fds,
        port_range,
        counters,
        unread: first_error,
    }
}

/// Reads everything (values and counters).
pub fn probe() -> HostState {
    keep_proc_files();
    let mut values = BTreeMap::new();
    for (name, path) in SYSCTLS {
        if let Some(v) = read(path).as_deref().and_then(procfs::parse_u64) {
            values.insert(name.to_string(), Value::from(v));
        }
    }
    let range = read_kept(PORT_RANGE).ok();
    if let Some((lo, hi)) = range.as_deref().and_then(procfs::parse_port_range) {
        values.insert(
            "ip_local_port_range".into(),
            Value::from(format!("{lo}-{hi}")),
        );
        let count = u64::from(hi - lo) + 1;
        values.insert("ip_local_port_count".into(), Value::from(count));
    }
    if let Some((allocated, _, _)) = read("/proc/sys/fs/file-nr")
        .as_deref()
        .and_then(procfs::parse_file_nr)
    {
        values.insert("file_nr_allocated".into(), Value::from(allocated));
    }
    if let Some(mem) = read("/proc/sys/net/ipv4/tcp_mem") {
        let pages: Vec<&str> = mem.split_whitespace().collect();
        values.insert("tcp_mem_pages".into(), Value::from(pages.join(" ")));
    }
    if let Ok((soft, hard)) = nofile_limits() {
        values.insert("rlimit_nofile_soft".into(), Value::from(soft));
        values.insert("rlimit_nofile_hard".into(), Value::from(hard));
    }
    if let Some(limit) = cgroup_memory_limit() {
        values.insert("cgroup_memory_limit_bytes".into(), Value::from(limit));
    }
    HostState {
        values,
        counters: read_counters(),
    }
}

/// This process's memory cgroup limit in bytes, when there is one.
fn cgroup_memory_limit() -> Option<u64> {
    let (dir, file) = match procfs::parse_cgroup(&read("/proc/self/cgroup")?, "memory")? {
        procfs::CgroupPath::V1(path) => (
            format!("/sys/fs/cgroup/memory{path}"),
            "memory.limit_in_bytes",
        ),
        procfs::CgroupPath::V2(path) => (format!("/sys/fs/cgroup{path}"), "memory.max"),
    };
    read(&format!("{}/{file}", dir.trim_end_matches('/')))
        .as_deref()
        .and_then(procfs::parse_memory_limit)
}

/// Keeps the counters ceiling reports from the parsed netstat, snmp and
/// sockstat tables.
pub fn select_counters(all: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let tcp_ext = TCP_EXT.iter().map(|n| format!("TcpExt.{n}"));
    let tcp = TCP.iter().map(|n| format!("Tcp.{n}"));
    let sockstat = SOCKSTAT.iter().map(|n| n.to_string());
    tcp_ext
        .chain(tcp)
        .chain(sockstat)
        .filter_map(|key| all.get(&key).map(|v| (key, *v)))
        .collect()
}

/// Reads only the counters (cheaper than [`probe`]).
pub fn read_counters() -> BTreeMap<String, u64> {
    counters_with(|path| read_kept(path).ok())
}

/// The counters, each file read by `read`.
fn counters_with(mut read: impl FnMut(&'static str) -> Option<String>) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for path in ["/proc/net/netstat", "/proc/net/snmp"] {
        if let Some(text) = read(path) {
            all.extend(procfs::parse_counter_tables(&text));
        }
    }
    for path in ["/proc/net/sockstat", "/proc/net/sockstat6"] {
        if let Some(text) = read(path) {
            all.extend(procfs::parse_sockstat(&text));
        }
    }
    select_counters(&all)
}

/// end - start for every counter present in both.
pub fn counter_deltas(start: &HostState, end: &HostState) -> BTreeMap<String, i64> {
    start
        .counters
        .iter()
        .filter_map(|(key, &a)| {
            let b = *end.counters.get(key)?;
            let delta = i128::from(b) - i128::from(a);
            Some((
                key.clone(),
                delta.clamp(i64::MIN.into(), i64::MAX.into()) as i64,
            ))
        })
        .collect()
}

/// ListenOverflows + ListenDrops of this network namespace, fast path (one
/// file). The kernel counts every overflow as a drop too, so the sum only
/// says whether anything moved, not how many SYNs were lost.
pub fn listen_drop_count() -> Option<u64> {
    listen_drops_from(&read_kept("/proc/net/netstat").ok()?)
}

/// [`listen_drop_count`] on given /proc/net/netstat text.
pub fn listen_drops_from(netstat: &str) -> Option<u64> {
    listen_drops_in(&procfs::parse_counter_tables(netstat))
}

/// ListenOverflows + ListenDrops from counters already read (as
/// [`read_counters`] names them).
pub fn listen_drops_in(c: &BTreeMap<String, u64>) -> Option<u64> {
    let overflows = c.get("TcpExt.ListenOverflows");
    let drops = c.get("TcpExt.ListenDrops");
    match (overflows, drops) {
        (None, None) => None,
        (a, b) => Some(a.copied().unwrap_or(0) + b.copied().unwrap_or(0)),
    }
}

/// (soft, hard) RLIMIT_NOFILE. `RLIM_INFINITY` reads as `u64::MAX`.
pub fn nofile_limits() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// What to do about an fd limit above the hard RLIMIT_NOFILE: only root can
/// raise the hard limit, and ceiling does not do it for anyone, so root is
/// told how and everyone else that it takes root.
pub fn hard_limit_remedy(wanted: u64) -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return "only root can raise the hard limit".to_string();
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let ceiling = match nr_open {
        Some(n) if wanted > n => format!(
            "; {wanted} is also above fs.nr_open ({n}), the most any process may have, \
             which is a host setting"
        ),
        _ => String::new(),
    };
    format!(
        "ceiling does not raise the hard limit itself: raise it in the shell that starts \
         ceiling (`ulimit -Hn {wanted}`) or for the user in /etc/security/limits.conf \
         (nofile){ceiling}"
    )
}

/// The figures of process `pid` and every process below it (a `serve
/// --processes` supervisor and its server processes), summed; None when
/// `pid` is gone. Context switches are summed over each live thread (the
/// process's own status line counts its first thread only).
pub fn process_tree(pid: u32) -> Option<procfs::TaskFigures> {
    let mut total = procfs::TaskFigures::default();
    let found = walk_process_tree(pid, &[], |pid| {
        let (Some(status), Some(stat)) = (
            read(&format!("/proc/{pid}/status")),
            read(&format!("/proc/{pid}/stat")),
        ) else {
            return false;
        };
        let f = procfs::parse_task_figures(&status, &stat);
        total.threads += f.threads;
        total.rss_kib += f.rss_kib;
        total.user_ticks += f.user_ticks;
        total.system_ticks += f.system_ticks;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let t = procfs::parse_task_figures(&status, "");
            total.voluntary_switches += t.voluntary_switches;
            total.involuntary_switches += t.involuntary_switches;
        }
        true
    });
    found.then_some(total)
}

/// CPU time (user + system, clock ticks) of process `pid` and every process
/// below it except the subtrees of `exclude` (ceiling's own server).
pub fn tree_cpu_ticks(pid: u32, exclude: &[u32]) -> Option<u64> {
    let mut total = 0;
    let found = walk_process_tree(pid, exclude, |pid| {
        let Some(stat) = read(&format!("/proc/{pid}/stat")) else {
            return false;
        };
        let f = procfs::parse_task_figures("", &stat);
        total += f.user_ticks + f.system_ticks;
        true
    });
    found.then_some(total)
}

/// Visits `root` and every process below it (the children of each of its
/// threads), skipping the subtrees of `exclude`; `visit` says whether the
/// process was still there. False when `root` is gone.
fn walk_process_tree(root: u32, exclude: &[u32], mut visit: impl FnMut(u32) -> bool) -> bool {
    let mut todo = vec![root];
    let mut root_found = false;
    while let Some(pid) = todo.pop() {
        if exclude.contains(&pid) || !visit(pid) {
            continue;
        }
        root_found |= pid == root;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    root_found
}

/// This process's cgroup CPU quota in cores, when it has one.
pub fn own_cpu_quota() -> Option<f64> {
    cpu_quota_of("self")
}

/// The CPU controller's directory of process `pid` ("self" or a PID).
fn cpu_cgroup_dir(pid: &str) -> Option<(String, procfs::CgroupPath)> {
    let path = procfs::parse_cgroup(&read(&format!("/proc/{pid}/cgroup"))?, "cpu")?;
    let dir = match &path {
        procfs::CgroupPath::V1(p) => format!("/sys/fs/cgroup/cpu{}", p.trim_end_matches('/')),
        procfs::CgroupPath::V2(p) => format!("/sys/fs/cgroup{}", p.trim_end_matches('/')),
    };
    Some((dir, path))
}

/// Process `pid`'s cgroup CPU quota in cores ("self" or a PID), when it has
/// one.
pub fn cpu_quota_of(pid: &str) -> Option<f64> {
    match cpu_cgroup_dir(pid)? {
        (dir, procfs::CgroupPath::V1(_)) => procfs::parse_cpu_quota(
            &read(&format!("{dir}/cpu.cfs_quota_us"))?,
            Some(&read(&format!("{dir}/cpu.cfs_period_us"))?),
        ),
        (dir, procfs::CgroupPath::V2(_)) => {
            procfs::parse_cpu_quota(&read(&format!("{dir}/cpu.max"))?, None)
        }
    }
}

/// The throttling of process `pid`'s CPU cgroup so far: (periods
/// throttled, seconds throttled), from its cpu.stat (None: not readable).
pub fn cpu_throttled_of(pid: u32) -> Option<(u64, f64)> {
    let (dir, _) = cpu_cgroup_dir(&pid.to_string())?;
    procfs::parse_cpu_throttled(&read(&format!("{dir}/cpu.stat"))?)
}

/// How many CPUs process `pid` may run on (its affinity mask).
pub fn cpus_allowed(pid: u32) -> Option<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::sched_getaffinity(pid as libc::pid_t, size_of::<libc::cpu_set_t>(), &mut set)
    };
    // SAFETY: `set` was filled in by the kernel.
    (rc == 0).then(|| unsafe { libc::CPU_COUNT(&set) } as usize)
}

/// Clock ticks per second of /proc's CPU times (USER_HZ).
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// Sets the soft RLIMIT_NOFILE (keeps the hard one). Asking for more than
/// the hard limit is an `InvalidInput` error naming the hard limit.
pub fn set_nofile_soft(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile_limits()?;
    if soft > hard {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "soft fd limit {soft} is above the hard limit {hard}: ask for at most {hard}, \
                 or add worker processes (--processes)"
            ),
        ));
    }
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads one rlimit struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("setrlimit(RLIMIT_NOFILE, soft {soft}, hard {hard}): {err}"),
        ));
    }
    Ok(())
}

/// Ok when `ip` is an address of this host (bind test); the bind error
/// (EADDRNOTAVAIL) otherwise, with its raw errno kept for [`super::classify_io`].
///
/// Binds a throwaway socket to `ip:0` with IP_BIND_ADDRESS_NO_PORT, so no
/// ephemeral port is taken (the check works even when ports are exhausted)
/// and nothing is sent. With `net.ipv4.ip_nonlocal_bind = 1` every address
/// binds, so every address looks local.
pub fn check_local_address(ip: IpAddr) -> io::Result<()> {
    let addr = SocketAddr::new(ip, 0);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if ip.is_ipv4() {
        // Best effort: an old kernel without it just takes a port briefly.
        let _ = set_bind_address_no_port(&sock);
    }
    sock.bind(&SockAddr::from(addr))
}

/// Sets IP_BIND_ADDRESS_NO_PORT: a later bind(ip, 0) fixes only the IP and
/// connect() picks the port, per destination (IPv4 and IPv6 sockets).
pub fn set_bind_address_no_port(sock: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the declared size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when `addr`'s IP is loopback or an address of this host.
pub fn is_local_target(addr: SocketAddr) -> bool {
    let ip = addr.ip().to_canonical();
    ip.is_loopback() || ip.is_unspecified() || check_local_address(ip).is_ok()
}

/// The process that owns the listener serving `addr` on this host: the
/// first whose /proc/PID/fd holds its socket inode. None when there is no
/// such listener or its owner cannot be read (another user's process
/// without root).
pub fn listener_owner(addr: SocketAddr) -> Option<u32> {
    // sock_diag: the kernel walks its listeners only (/proc/net/tcp walks
    // every socket of the namespace, milliseconds on a big table).
    let inode = match listener_from_diag_with(addr) {
        Some(l) => u64::from(l.inode),
        None => {
            let mut rows = Vec::new();
            for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
                if let Some(text) = read(path) {
                    rows.extend(procfs::parse_proc_net_tcp(&text));
                }
            }
            procfs::find_listener(&rows, addr)?.inode
        }
    };
    if inode == 0 {
        return None;
    }
    let link = format!("socket:[{inode}]");
    let me = std::process::id();
    fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .find(|pid| {
            fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == link.as_str()))
        })
}

/// A listening socket's accept queue, from /proc/net/tcp{,6} LISTEN rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerQueue {
    /// Connections waiting in the accept queue.
    pub queued: u64,
    /// The listen backlog (after the kernel's somaxconn cap); 0 when
    /// `source` is [`QueueSource::ProcNetTcp`], which does not carry it.
    pub backlog: u64,
    /// Where the numbers came from.
    pub source: QueueSource,
}

/// Which kernel interface a [`ListenerQueue`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSource {
    /// sock_diag netlink (as `ss -ltn`): queue and backlog.
    SockDiag,
    /// /proc/net/tcp{,6}: the queue only (fallback when netlink fails).
    ProcNetTcp,
}

impl ListenerQueue {
    /// True when the backlog is known.
    pub fn backlog_known(&self) -> bool {
        self.source == QueueSource::SockDiag
    }

    /// The accept queue is full: the next SYN is dropped.
    pub fn is_full(&self) -> bool {
        self.backlog_known() && self.queued > self.backlog
    }
}

/// The accept queue of the listener bound to `addr` on this host (exact IP
/// or wildcard, same port), if any.
pub fn listener_queue(addr: SocketAddr) -> Option<ListenerQueue> {
    listener_from_diag(addr).or_else(|| listener_from_proc(addr))
}

fn listener_from_diag(addr: SocketAddr) -> Option<ListenerQueue> {
    let found = listener_from_diag_with(addr)?;
    Some(ListenerQueue {
        queued: u64::from(found.queued),
        backlog: u64::from(found.backlog),
        source: QueueSource::SockDiag,
    })
}

/// The listener serving `addr`, from sock_diag.
fn listener_from_diag_with(addr: SocketAddr) -> Option<diag::DiagListener> {
    // A v4 target may be served by a dual-stack [::] listener.
    let families: &[i32] = if addr.is_ipv4() {
        &[libc::AF_INET, libc::AF_INET6]
    } else {
        &[libc::AF_INET6]
    };
    let dumps: Vec<_> = families
        .iter()
        .filter_map(|&f| diag::dump_listeners(f).ok())
        .collect();
    if dumps.is_empty() {
        return None;
    }
    procfs::pick_listener(dumps.into_iter().flatten(), addr, |l| l.local)
}

fn listener_from_proc(addr: SocketAddr) -> Option<ListenerQueue> {
    let mut rows = Vec::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Some(text) = read(path) {
            rows.extend(procfs::parse_proc_net_tcp(&text));
        }
    }
    let row = procfs::find_listener(&rows, addr)?;
    Some(ListenerQueue {
        queued: row.rx_queue,
        backlog: 0,
        source: QueueSource::ProcNetTcp,
    })
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use super::*;

    #[test]
    fn selected_counters_from_fixtures() {
        let mut all = procfs::parse_counter_tables(include_str!("fixtures/netstat.txt"));
        all.extend(procfs::parse_counter_tables(include_str!(
            "fixtures/snmp.txt"
        )));
        all.extend(procfs::parse_sockstat(include_str!(
            "fixtures/sockstat.txt"
        )));
        let c = select_counters(&all);
        assert_eq!(c["TcpExt.ListenOverflows"], 6);
        assert_eq!(c["TcpExt.TCPSynRetrans"], 3);
        assert!(c.contains_key("Tcp.AttemptFails"));
        assert_eq!(c["sockstat.tcp_inuse"], 11);
        assert!(!c.contains_key("IpExt.InOctets"), "only chosen counters");
        assert!(
            !c.contains_key("sockstat.tcp6_inuse"),
            "sockstat6 not given"
        );
        assert!(is_gauge("sockstat.tcp_tw") && is_gauge("Tcp.CurrEstab"));
        assert!(!is_gauge("TcpExt.ListenOverflows"));
    }

    #[test]
    fn listen_drops_sum() {
        assert_eq!(
            listen_drops_from(include_str!("fixtures/netstat.txt")),
            Some(12)
        );
        assert_eq!(listen_drops_from("Ip: A\nIp: 1\n"), None);
    }

    #[test]
    fn deltas_only_for_shared_keys() {
        let state = |pairs: &[(&str, u64)]| HostState {
            values: BTreeMap::new(),
            counters: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let start = state(&[("a", 10), ("b", 5), ("only_start", 1)]);
        let end = state(&[("a", 283), ("b", 2), ("only_end", 9)]);
        let d = counter_deltas(&start, &end);
        assert_eq!(d.len(), 2);
        assert_eq!(d["a"], 273);
        assert_eq!(d["b"], -3);
    }

    #[test]
    fn probe_reads_this_host() {
        let h = probe();
        let count = h.values["ip_local_port_count"].as_u64().unwrap();
        let range = h.values["ip_local_port_range"].as_str().unwrap();
        let (lo, hi) = procfs::parse_port_range(&range.replace('-', " ")).unwrap();
        assert_eq!(count, u64::from(hi - lo) + 1);
        assert!(h.values["somaxconn"].as_u64().unwrap() > 0);
        assert!(h.values["file_max"].as_u64().unwrap() > 0);
        assert!(h.values.contains_key("rlimit_nofile_hard"));
        assert!(h.counters.contains_key("TcpExt.ListenOverflows"));
        assert!(h.counters.contains_key("Tcp.ActiveOpens"));
        assert!(h.counters.contains_key("sockstat.tcp_tw"));
        assert!(listen_drop_count().is_some());
    }

    /// Set in the child process of the test below.
    const FD_FULL_CHILD: &str = "CEILING_TEST_FD_TABLE_FULL";

    #[test]
    fn the_panel_is_read_with_the_fd_table_full() {
        if std::env::var_os(FD_FULL_CHILD).is_some() {
            fill_the_fd_table_and_read();
            return;
        }
        // RLIMIT_NOFILE is per process: lower it in a child, this test alone.
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "classify::host::tests::the_panel_is_read_with_the_fd_table_full",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(FD_FULL_CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran the test: {text}");
    }

    /// In the child: the files kept at the start, then every fd taken.
    fn fill_the_fd_table_and_read() {
        probe();
        let open = open_fd_count().unwrap();
        let limit = open + 16;
        set_nofile_soft(limit).unwrap();
        let mut taken = Vec::new();
        loop {
            match File::open("/dev/null") {
                Ok(file) => taken.push(file),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                    break;
                }
            }
        }
        assert!(
            File::open("/proc/net/netstat").is_err(),
            "the table is full"
        );
        let panel = read_panel();
        // Every fd below the limit is taken (fds opened above it before it
        // was lowered count too).
        assert!(panel.open_fds.is_some_and(|n| n >= limit), "{panel:?}");
        assert!(panel.port_range.is_some(), "{panel:?}");
        assert!(
            panel.counters.contains_key("sockstat.tcp_inuse"),
            "{panel:?}"
        );
        assert!(
            panel.counters.contains_key("TcpExt.ListenOverflows"),
            "{panel:?}"
        );
        assert_eq!(panel.unread, None);
        assert!(listen_drop_count().is_some());
    }

    #[test]
    fn local_address_check_binds_only() {
        check_local_address("127.0.0.2".parse().unwrap()).expect("127.0.0.2 is on lo");
        // TEST-NET-1 (RFC 5737): never assigned, never routed. Bind only.
        let err = check_local_address("192.0.2.1".parse().unwrap()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL));
        assert!(is_local_target("127.0.0.9:80".parse().unwrap()));
        assert!(!is_local_target("192.0.2.1:80".parse().unwrap()));
    }

    #[test]
    fn listener_queue_reports_backlog_and_queue() {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        sock.bind(&SockAddr::from(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ))
        .unwrap();
        sock.listen(7).unwrap();
        let addr = sock.local_addr().unwrap().as_socket().unwrap();
        let q = listener_queue(addr).expect("our listener");
        assert_eq!(q.source, QueueSource::SockDiag);
        assert_eq!(q.backlog, 7);
        assert_eq!(q.queued, 0);
        // Two handshakes complete in the kernel; nobody accepts.
        let _c1 = TcpStream::connect(addr).unwrap();
        let _c2 = TcpStream::connect(addr).unwrap();
        // The final ACK reaches the listener in softirq: allow it a moment.
        let mut queued = 0;
        for _ in 0..100 {
            queued = listener_queue(addr).unwrap().queued;
            if queued == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(queued, 2);
        assert_eq!(listener_from_proc(addr).unwrap().queued, 2);
        // Closed: no listener any more.
        drop(sock);
        assert_eq!(listener_queue(addr), None);
    }

    #[test]
    fn nofile_soft_round_trips() {
        let (soft, hard) = nofile_limits().unwrap();
        let want = soft.min(hard).saturating_sub(1).max(64);
        set_nofile_soft(want).unwrap();
        let got = nofile_limits();
        set_nofile_soft(soft).unwrap();
        assert_eq!(got.unwrap(), (want, hard));
        assert_eq!(nofile_limits().unwrap(), (soft, hard));
        if hard < u64::MAX {
            let err = set_nofile_soft(hard + 1).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(&format!("hard limit {hard}")));
        }
    }

    #[test]
    fn the_owner_of_a_listener_is_found_by_its_socket_inode() {
        use std::os::fd::AsRawFd as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // This process is skipped as the driver: nobody else owns it yet.
        assert_eq!(listener_owner(addr), None);
        // A child that inherits it (no close-on-exec) is its owner.
        // SAFETY: fcntl on an fd this test owns.
        unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_SETFD, 0) };
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let owner = listener_owner(addr);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(owner, Some(child.id()));
    }

    #[test]
    fn handshakes_a_full_listen_queue_leaves_in_syn_sent_are_counted() {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        listener
            .bind(&SockAddr::from(
                "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            ))
            .unwrap();
        listener.listen(1).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Never accepted: past backlog + 1 the SYNs are dropped.
        let clients: Vec<Socket> = (0..12)
            .map(|_| {
                let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
                s.set_nonblocking(true).unwrap();
                let _ = s.connect(&SockAddr::from(addr));
                s
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let states = socket_states_to(&[addr], 2).expect("read");
        assert!(states.syn_sent >= 8, "{states:?}");
        assert_eq!(states.total, states.syn_sent + states.established);
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(socket_states_to(&[other], 0).unwrap().syn_sent, 0);
        drop(clients);
    }
}
