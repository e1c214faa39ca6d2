//! Pure parsers for the /proc and /sys text the host probe reads: the
//! netstat/snmp counter tables, sockstat, sysctl values, `file-nr`,
//! /proc/net/tcp{,6} rows, /proc/self/cgroup and the directory entries
//! getdents64 returns.
//!
//! Each takes the file's text and returns what it could read: a missing
//! field or a malformed line is skipped, never an error, so a kernel that
//! adds or drops a counter cannot break a run.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A process's figures from /proc/PID/status and /proc/PID/stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFigures {
    pub threads: u64,
    pub rss_kib: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// utime + stime of its threads, in clock ticks (USER_HZ).
    pub user_ticks: u64,
    pub system_ticks: u64,
}

/// `Threads:`, `VmRSS:` and the context-switch lines of /proc/PID/status,
/// and utime/stime (fields 14 and 15) of /proc/PID/stat.
pub fn parse_task_figures(status: &str, stat: &str) -> TaskFigures {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    // The command name (field 2) may hold spaces: count from its ')'.
    let times: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    TaskFigures {
        threads: field("Threads:").unwrap_or(0),
        rss_kib: field("VmRSS:").unwrap_or(0),
        voluntary_switches: field("voluntary_ctxt_switches:").unwrap_or(0),
        involuntary_switches: field("nonvoluntary_ctxt_switches:").unwrap_or(0),
        user_ticks: times.first().copied().unwrap_or(0),
        system_ticks: times.get(1).copied().unwrap_or(0),
    }
}

/// TCP state number of a listening socket in /proc/net/tcp (`st` column).
pub const TCP_LISTEN: u8 = 0x0A;

/// Parses the paired-line tables of /proc/net/netstat and /proc/net/snmp
/// (`TcpExt: Name1 Name2 …` followed by `TcpExt: 1 2 …`) into
/// `"TcpExt.Name1" → 1`. Negative values (`Tcp.MaxConn` is -1) are skipped.
pub fn parse_counter_tables(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut header: Option<(&str, Vec<&str>)> = None;
    for line in text.lines() {
        let Some((prefix, rest)) = line.split_once(':') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let is_values = !fields.is_empty() && fields.iter().all(|f| f.parse::<i64>().is_ok());
        match header.take() {
            Some((name, names)) if is_values && name == prefix => {
                for (key, value) in names.iter().zip(&fields) {
                    if let Ok(v) = value.parse::<u64>() {
                        out.insert(format!("{prefix}.{key}"), v);
                    }
                }
            }
            _ if !is_values => header = Some((prefix, fields)),
            _ => {}
        }
    }
    out
}

/// Parses /proc/net/sockstat (or sockstat6): `TCP: inuse 11 orphan 0 tw 0`
/// becomes `"sockstat.tcp_inuse" → 11`, …; `sockets: used 29` becomes
/// `"sockstat.sockets_used"`.
pub fn parse_sockstat(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let proto = proto.trim().to_ascii_lowercase();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        for pair in fields.chunks_exact(2) {
            if let Ok(v) = pair[1].parse::<u64>() {
                out.insert(format!("sockstat.{proto}_{}", pair[0]), v);
            }
        }
    }
    out
}

/// A single-number sysctl file, e.g. `4096\n`.
pub fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// `net.ipv4.ip_local_port_range`: `"32768\t60999\n"` → (32768, 60999).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let lo = it.next()?.ok()?;
    let hi = it.next()?.ok()?;
    (lo <= hi).then_some((lo, hi))
}

/// Entries in a getdents64 buffer (`struct linux_dirent64` records: d_ino
/// u64, d_off i64, d_reclen u16, d_type u8, then the NUL-ended name), "."
/// and ".." left out. A truncated record ends the count.
pub fn count_dirents(buf: &[u8]) -> u64 {
    const NAME: usize = 19;
    let mut count = 0;
    let mut at = 0;
    while let Some(record) = buf.get(at..at + NAME) {
        let len = usize::from(u16::from_ne_bytes([record[16], record[17]]));
        let Some(name) = buf.get(at + NAME..at + len) else {
            break;
        };
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        if name != b"." && name != b".." {
            count += 1;
        }
        at += len.max(NAME);
    }
    count
}

/// /proc/meminfo: (MemTotal, MemAvailable) in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(kib * 1024)
        })
    };
    Some((field("MemTotal")?, field("MemAvailable")?))
}

/// `fs.file-nr`: (allocated, allocated but unused, max).
pub fn parse_file_nr(text: &str) -> Option<(u64, u64, u64)> {
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    Some((it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?))
}

/// One row of /proc/net/tcp or /proc/net/tcp6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Kernel TCP state number ([`TCP_LISTEN`] = 0x0A).
    pub state: u8,
    /// For a listener: always 0 (write_seq - snd_una); the listen backlog is
    /// not in this file (only inet_diag carries it).
    pub tx_queue: u64,
    /// For a listener: connections waiting in the accept queue.
    pub rx_queue: u64,
    /// The socket's inode (`socket:[N]` in its owner's /proc/PID/fd); 0
    /// when the row has none.
    pub inode: u64,
}

/// Parses every row of /proc/net/tcp or /proc/net/tcp6, skipping the
/// header and anything malformed.
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpRow> {
    text.lines().filter_map(parse_tcp_row).collect()
}

fn parse_tcp_row(line: &str) -> Option<TcpRow> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?.strip_suffix(':')?;
    let local = parse_hex_socket_addr(fields.next()?)?;
    let remote = parse_hex_socket_addr(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let (tx, rx) = fields.next()?.split_once(':')?;
    let (tx_queue, rx_queue) = (
        u64::from_str_radix(tx, 16).ok()?,
        u64::from_str_radix(rx, 16).ok()?,
    );
    // tr:tm->when, retrnsmt, uid, timeout, inode.
    let inode = fields.nth(4).and_then(|f| f.parse().ok()).unwrap_or(0);
    Some(TcpRow {
        local,
        remote,
        state,
        tx_queue,
        rx_queue,
        inode,
    })
}

/// TCP state numbers of /proc/net/tcp: SYN-SENT and ESTABLISHED.
pub const TCP_SYN_SENT: u8 = 0x02;
pub const TCP_ESTABLISHED: u8 = 0x01;

/// Sockets connecting to one of some targets, by state: how many of a
/// run's sockets were still handshaking at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SocketStates {
    /// Every socket whose remote address is a target.
    pub total: u64,
    /// SYN sent, no SYN-ACK yet.
    pub syn_sent: u64,
    pub established: u64,
}

/// Counts the rows whose remote address is one of `targets` (the driver's
/// side of its connections; the server's side has them as local), by
/// state.
pub fn count_states_to(rows: &[TcpRow], targets: &[SocketAddr]) -> SocketStates {
    let mut states = SocketStates::default();
    for row in rows.iter().filter(|r| {
        r.state != TCP_LISTEN
            && targets.iter().any(|t| {
                t.port() == r.remote.port() && t.ip().to_canonical() == r.remote.ip().to_canonical()
            })
    }) {
        states.total += 1;
        match row.state {
            TCP_SYN_SENT => states.syn_sent += 1,
            TCP_ESTABLISHED => states.established += 1,
            _ => {}
        }
    }
    states
}

/// `0100007F:1B9E` → 127.0.0.1:7070. The kernel prints each 32-bit word of
/// the address as a host-order integer, so on little-endian machines the
/// bytes of each word appear reversed; the port is plain big-endian hex.
pub fn parse_hex_socket_addr(field: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = field.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(hex_word(ip_hex)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&hex_word(&ip_hex[i * 8..i * 8 + 8])?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Eight hex digits printed from a u32 in host byte order → the four bytes
/// as they were in memory (network order).
fn hex_word(hex: &str) -> Option<[u8; 4]> {
    u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes)
}

/// The LISTEN row serving `addr`: same port, and the same IP or a wildcard
/// one (0.0.0.0, or :: which also takes IPv4 unless IPV6_V6ONLY). An exact
/// IP match wins over a wildcard.
pub fn find_listener(rows: &[TcpRow], addr: SocketAddr) -> Option<TcpRow> {
    let listeners = rows.iter().filter(|r| r.state == TCP_LISTEN).copied();
    pick_listener(listeners, addr, |r| r.local)
}

/// Of listening sockets `items` (local address from `local_of`), the one
/// that serves connections to `addr`, as [`find_listener`] chooses.
pub fn pick_listener<T>(
    items: impl IntoIterator<Item = T>,
    addr: SocketAddr,
    local_of: impl Fn(&T) -> SocketAddr,
) -> Option<T> {
    let want = addr.ip().to_canonical();
    let mut wildcard = None;
    for item in items {
        let local = local_of(&item);
        if local.port() != addr.port() {
            continue;
        }
        let ip = local.ip().to_canonical();
        if ip == want {
            return Some(item);
        }
        let serves = match ip {
            IpAddr::V4(v4) => v4.is_unspecified() && want.is_ipv4(),
            IpAddr::V6(v6) => v6.is_unspecified(),
        };
        if serves && wildcard.is_none() {
            wildcard = Some(item);
        }
    }
    wildcard
}

/// Where one of this process's cgroups lives, from /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPath {
    /// cgroup v1: `N:memory:/path` → /sys/fs/cgroup/memory/path.
    V1(String),
    /// cgroup v2: `0::/path` → /sys/fs/cgroup/path.
    V2(String),
}

/// The cgroup path of `controller` (`memory`, `cpu`); a v1 controller line
/// wins over the v2 unified line (on hybrid hosts the v1 controller holds
/// the limit).
pub fn parse_cgroup(text: &str, controller: &str) -> Option<CgroupPath> {
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == controller) {
            return Some(CgroupPath::V1(path.to_string()));
        }
        if controllers.is_empty() {
            v2 = Some(CgroupPath::V2(path.to_string()));
        }
    }
    v2
}

/// A CPU quota in cores: v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us`
/// (-1: none), or v2's `cpu.max` ("max 100000": none).
pub fn parse_cpu_quota(quota_or_max: &str, period: Option<&str>) -> Option<f64> {
    let mut parts = quota_or_max.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok().filter(|q: &f64| *q > 0.0)?;
    let period: f64 = match period {
        Some(text) => text.trim().parse().ok()?,
        None => parts.next()?.parse().ok()?,
    };
    (period > 0.0).then(|| quota / period)
}

/// A CPU cgroup's throttling from its cpu.stat: (periods throttled,
/// seconds throttled); v1 counts `throttled_time` in ns, v2
/// `throttled_usec`.
pub fn parse_cpu_throttled(text: &str) -> Option<(u64, f64)> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next()? == name)
                .then(|| parts.next()?.parse::<u64>().ok())
                .flatten()
        })
    };
    let periods = field("nr_throttled")?;
    let seconds = match field("throttled_time") {
        Some(ns) => ns as f64 / 1e9,
        None => field("throttled_usec")? as f64 / 1e6,
    };
    Some((periods, seconds))
}

/// A cgroup memory limit file: a byte count, or None when unlimited (`max`
/// in v2; v1 reports unlimited as a number near 2^63).
pub fn parse_memory_limit(text: &str) -> Option<u64> {
    let v = parse_u64(text)?;
    (v < 1 << 62).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_figures_from_status_and_stat() {
        let status = "Name:\tceiling\nThreads:\t2003\nVmRSS:\t   35412 kB\n\
                      voluntary_ctxt_switches:\t16623\nnonvoluntary_ctxt_switches:\t2088\n";
        let stat = "4242 (ceiling serve) S 1 4242 4242 0 -1 4194560 1 0 0 0 170 35 0 0 20 0 3";
        assert_eq!(
            parse_task_figures(status, stat),
            TaskFigures {
                threads: 2003,
                rss_kib: 35412,
                voluntary_switches: 16623,
                involuntary_switches: 2088,
                user_ticks: 170,
                system_ticks: 35,
            }
        );
        assert_eq!(parse_task_figures("", ""), TaskFigures::default());
    }

    const NETSTAT: &str = include_str!("fixtures/netstat.txt");
    const SNMP: &str = include_str!("fixtures/snmp.txt");
    const SOCKSTAT: &str = include_str!("fixtures/sockstat.txt");

    /// One linux_dirent64 record, padded to 8 bytes as the kernel does.
    fn dirent(name: &str) -> Vec<u8> {
        let len = (19 + name.len() + 1).next_multiple_of(8);
        let mut record = vec![0u8; len];
        record[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
        record[19..19 + name.len()].copy_from_slice(name.as_bytes());
        record
    }

    #[test]
    fn dirents_counted_without_dot_entries() {
        let buf: Vec<u8> = [".", "..", "0", "1", "2", "255", "1048575"]
            .into_iter()
            .flat_map(dirent)
            .collect();
        assert_eq!(count_dirents(&buf), 5);
        assert_eq!(count_dirents(&buf[..buf.len() - 3]), 4, "cut record");
        assert_eq!(count_dirents(&[]), 0);
    }
    const SOCKSTAT6: &str = include_str!("fixtures/sockstat6.txt");
    const TCP: &str = include_str!("fixtures/tcp.txt");
    const TCP6: &str = include_str!("fixtures/tcp6.txt");

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn netstat_counters_by_name() {
        let c = parse_counter_tables(NETSTAT);
        // Captured right after 6 connects to a listen(2) socket that never
        // accepted: 3 queued, 3 SYNs dropped twice each (SYN + retransmit).
        assert_eq!(c["TcpExt.ListenOverflows"], 6);
        assert_eq!(c["TcpExt.ListenDrops"], 6);
        assert_eq!(c["TcpExt.TCPSynRetrans"], 3);
        assert_eq!(c["TcpExt.TCPTimeWaitOverflow"], 0);
        assert!(c.contains_key("IpExt.InOctets"));
        assert!(c.contains_key("MPTcpExt.MPCapableSYNRX"));
        assert!(!c.contains_key("TcpExt.TcpExt"));
    }

    #[test]
    fn snmp_counters_skip_negative_maxconn() {
        let c = parse_counter_tables(SNMP);
        assert!(c["Tcp.ActiveOpens"] >= 6);
        assert_eq!(c["Tcp.RtoMin"], 200);
        assert!(!c.contains_key("Tcp.MaxConn"), "MaxConn is -1");
        assert!(c.contains_key("Udp.InDatagrams"));
        // IcmpMsg has its own header/value pair.
        assert_eq!(c.get("IcmpMsg.InType3"), Some(&1));
    }

    #[test]
    fn counter_tables_tolerate_garbage() {
        let c = parse_counter_tables("junk\nTcp: A B\nTcp: 1\nFoo: X\nBar: 2\n");
        assert_eq!(c.len(), 1);
        assert_eq!(c["Tcp.A"], 1);
        assert!(parse_counter_tables("").is_empty());
    }

    #[test]
    fn sockstat_fields() {
        let c = parse_sockstat(SOCKSTAT);
        assert_eq!(c["sockstat.sockets_used"], 29);
        assert_eq!(c["sockstat.tcp_inuse"], 11);
        assert_eq!(c["sockstat.tcp_tw"], 0);
        assert_eq!(c["sockstat.tcp_alloc"], 14);
        assert_eq!(c["sockstat.tcp_mem"], 259);
        assert_eq!(c["sockstat.frag_memory"], 0);
        let c6 = parse_sockstat(SOCKSTAT6);
        assert_eq!(
            c6["sockstat.tcp6_inuse"], 3,
            "the ::1 listener and its two ends"
        );
    }

    #[test]
    fn sysctl_values() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("50000 50010"), Some((50000, 50010)));
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("1"), None);
        assert_eq!(parse_file_nr("414\t0\t2466177\n"), Some((414, 0, 2466177)));
        let meminfo = "MemTotal:       24589012 kB\nMemFree:        18000000 kB\n\
                       MemAvailable:   23000000 kB\nBuffers: 1 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some((24_589_012 * 1024, 23_000_000 * 1024))
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_u64(" 4096\n"), Some(4096));
        assert_eq!(parse_u64("max\n"), None);
    }

    #[test]
    fn hex_addresses_v4_and_v6() {
        assert_eq!(
            parse_hex_socket_addr("0100007F:1B9E"),
            Some(sa("127.0.0.1:7070"))
        );
        assert_eq!(
            parse_hex_socket_addr("00000000:07E8"),
            Some(sa("0.0.0.0:2024"))
        );
        assert_eq!(
            parse_hex_socket_addr("00000000000000000000000001000000:1B9F"),
            Some(sa("[::1]:7071"))
        );
        // 2001:db8::5 as the kernel prints it on little-endian.
        assert_eq!(
            parse_hex_socket_addr("B80D0120000000000000000005000000:0050"),
            Some(sa("[2001:db8::5]:80"))
        );
        assert_eq!(parse_hex_socket_addr("0100007F"), None);
        assert_eq!(parse_hex_socket_addr("01007F:0050"), None);
    }

    #[test]
    fn tcp_rows_and_listener_lookup_by_port() {
        let rows = parse_proc_net_tcp(TCP);
        assert_eq!(rows.len(), 11, "header skipped");
        let l = find_listener(&rows, sa("127.0.0.1:7070")).expect("listener on 7070");
        assert_eq!(l.state, TCP_LISTEN);
        assert_eq!(l.local, sa("127.0.0.1:7070"));
        assert_eq!(l.rx_queue, 3, "accept queue: backlog 2 holds 3");
        assert_eq!(l.inode, 21489, "its owner's socket:[21489]");
        // An established row on the same port is not the listener.
        assert!(rows.iter().any(|r| r.state == 1 && r.local.port() == 7070));
        // Wildcard 0.0.0.0:2024 serves any local IPv4 address.
        let w = find_listener(&rows, sa("127.0.0.5:2024")).unwrap();
        assert_eq!(w.local, sa("0.0.0.0:2024"));
        assert_eq!(find_listener(&rows, sa("127.0.0.2:7070")), None);
        assert_eq!(find_listener(&rows, sa("127.0.0.1:9")), None);
        // SYN-SENT rows carry the retransmitted SYN in tx_queue.
        assert!(rows.iter().any(|r| r.state == 2 && r.tx_queue == 1));
    }

    #[test]
    fn tcp6_listener_lookup() {
        let rows = parse_proc_net_tcp(TCP6);
        assert_eq!(rows.len(), 3);
        let l = find_listener(&rows, sa("[::1]:7071")).unwrap();
        assert_eq!(l.local, sa("[::1]:7071"));
        assert_eq!(l.rx_queue, 1);
        assert_eq!(find_listener(&rows, sa("127.0.0.1:7071")), None);
        // A [::] listener is dual-stack: it serves IPv4 too.
        let wild = "  0: 00000000000000000000000000000000:1B9F 00000000000000000000000000000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        let rows = parse_proc_net_tcp(wild);
        assert_eq!(
            find_listener(&rows, sa("127.0.0.1:7071")).unwrap().rx_queue,
            2
        );
        assert_eq!(find_listener(&rows, sa("[::1]:7071")).unwrap().rx_queue, 2);
    }

    #[test]
    fn cgroup_memory_paths_and_limits() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/91be\n0::/\n";
        assert_eq!(
            parse_cgroup(v1, "memory"),
            Some(CgroupPath::V1("/process_api/91be".into()))
        );
        assert_eq!(
            parse_cgroup("0::/user.slice/a.scope\n", "memory"),
            Some(CgroupPath::V2("/user.slice/a.scope".into()))
        );
        assert_eq!(parse_cgroup("garbage", "memory"), None);
        assert_eq!(parse_memory_limit("33554432\n"), Some(33554432));
        assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit("max\n"), None);
    }

    #[test]
    fn cpu_throttled_v1_and_v2() {
        let v1 = "nr_periods 40\nnr_throttled 12\nthrottled_time 2500000000\n";
        assert_eq!(parse_cpu_throttled(v1), Some((12, 2.5)));
        let v2 = "usage_usec 9\nnr_periods 40\nnr_throttled 3\nthrottled_usec 150000\n";
        assert_eq!(parse_cpu_throttled(v2), Some((3, 0.15)));
        assert_eq!(parse_cpu_throttled("usage_usec 9\n"), None);
    }

    #[test]
    fn states_of_the_sockets_to_a_target() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue\n\
           0: 0100007F:1B9E 00000000:0000 0A 00000000:00000000\n\
           1: 0100007F:C350 0100007F:1B9E 02 00000001:00000000\n\
           2: 0100007F:C351 0100007F:1B9E 02 00000001:00000000\n\
           3: 0100007F:C352 0100007F:1B9E 01 00000000:00000000\n\
           4: 0100007F:1B9E 0100007F:C352 01 00000000:00000000\n\
           5: 0100007F:C353 0100007F:1B9F 02 00000001:00000000\n";
        let rows = parse_proc_net_tcp(text);
        let target: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        assert_eq!(
            count_states_to(&rows, &[target]),
            SocketStates {
                total: 3,
                syn_sent: 2,
                established: 1
            }
        );
    }
}
