//! The raw baseline: the physical reference that `scripts/bench.sh` compares
//! ceiling against. Plain epoll through libc, no tokio, no allocation and no
//! bookkeeping per connection beyond its fd: what the kernel can do on this
//! box, measured in the same run as ceiling.
//!
//! ```text
//! cargo bench --bench raw_baseline -- churn --target 127.0.0.1:PORT --connections N [--close rst|fin] [--source IP]
//! cargo bench --bench raw_baseline -- hold  --target 127.0.0.1:PORT --connections N [--close rst|fin] [--source IP] [--hold-ms MS]
//! cargo bench --bench raw_baseline -- serve --listen 127.0.0.1:PORT [--backlog N] [--max-s S]
//! ```
//!
//! `churn` opens N connections one after another with up to 256 in flight
//! (non-blocking connect, epoll for EPOLLOUT) and closes each as soon as it is
//! established: RST (SO_LINGER 0) with `--close rst`, FIN otherwise. `hold`
//! opens N with up to 1024 in flight, keeps them all, holds `--hold-ms`,
//! closes them and prints the VmRSS delta per connection; it also prints
//! `last_established_unix_s`, the wall-clock time its last connection was
//! established, so that a script can time many clients started together.
//! `--source IP` binds each socket to IP (IP_BIND_ADDRESS_NO_PORT first, port
//! 0: connect() picks the port per destination). Never more than N
//! attempts; failures are counted by errno; gives up after 60 s.
//!
//! `serve` is the raw server, a minimal holder: SO_REUSEADDR and
//! SO_REUSEPORT (many `serve` processes can share one port, the kernel
//! spreads connections among them), accept4 until EAGAIN on each epoll
//! wake-up, and every accepted fd kept open, never read nor registered. It
//! prints `listening on ADDR` once ready and runs until a signal ends it
//! (the kernel closes the fds) or `--max-s` (default 600) has passed. Out of
//! fds it warns once and pauses accepting for 100 ms at a time.
//!
//! Loopback addresses only, for targets, sources and listening.

use std::collections::BTreeMap;
use std::io::Write;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use libc::c_int;

const USAGE: &str = "usage: raw_baseline churn|hold --target 127.0.0.1:PORT --connections N \
                     [--close rst|fin] [--source IP] [--hold-ms MS]
       raw_baseline serve --listen 127.0.0.1:PORT [--backlog N (4096)] [--max-s S (600)]";
const CHURN_IN_FLIGHT: usize = 256;
const HOLD_IN_FLIGHT: usize = 1024;
const GIVE_UP: Duration = Duration::from_secs(60);
/// How long `serve` stops accepting after running out of fds or memory.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Churn,
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Rst,
    Fin,
}

#[derive(Debug)]
enum Command {
    Client(Opts),
    Serve(ServeOpts),
}

/// `churn` and `hold`.
#[derive(Debug)]
struct Opts {
    mode: Mode,
    target: SocketAddr,
    /// Bind each socket to this IP (port picked at connect()).
    source: Option<IpAddr>,
    connections: u64,
    close: Close,
    hold: Duration,
}

/// `serve`.
#[derive(Debug)]
struct ServeOpts {
    listen: SocketAddr,
    backlog: c_int,
    /// Exit by itself after this long: a forgotten server does not hold
    /// its fds for ever.
    max: Duration,
}

fn parse_count(s: &str) -> Result<u64, String> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1_000),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a count (e.g. 20000, 20k)"))
}

fn parse_loopback_addr(flag: &str, v: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = v
        .parse()
        .map_err(|_| format!("{flag}: '{v}' is not ADDR:PORT (e.g. 127.0.0.1:7070)"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{flag}: {addr} is not a loopback address: loopback only"
        ));
    }
    Ok(addr)
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Command, String> {
    // `cargo bench` passes `--bench` to harness = false targets: ignore it.
    let mut args = args.filter(|a| a != "--bench");
    let mut mode = None;
    let mut serve = false;
    let mut target = None;
    let mut source = None;
    let mut connections = None;
    let mut close = None;
    let mut hold = None;
    let mut listen = None;
    let mut backlog = None;
    let mut max_s = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "churn" if mode.is_none() && !serve => mode = Some(Mode::Churn),
            "hold" if mode.is_none() && !serve => mode = Some(Mode::Hold),
            "serve" if mode.is_none() && !serve => serve = true,
            "--target" => target = Some(parse_loopback_addr("--target", &value("--target")?)?),
            "--source" => {
                let v = value("--source")?;
                let ip: IpAddr = v.parse().map_err(|_| {
                    format!("--source: '{v}' is not an IP address (e.g. 127.0.0.2)")
                })?;
                if !ip.is_loopback() {
                    return Err(format!(
                        "--source: {ip} is not a loopback address: loopback only (127.0.0.0/8, ::1)"
                    ));
                }
                source = Some(ip);
            }
            "--connections" => connections = Some(parse_count(&value("--connections")?)?),
            "--close" => {
                close = Some(match value("--close")?.as_str() {
                    "rst" => Close::Rst,
                    "fin" => Close::Fin,
                    other => return Err(format!("--close: '{other}' is not rst or fin")),
                })
            }
            "--hold-ms" => {
                let v = value("--hold-ms")?;
                let ms = v
                    .parse::<u64>()
                    .map_err(|_| format!("--hold-ms: '{v}' is not a number of milliseconds"))?;
                hold = Some(Duration::from_millis(ms));
            }
            "--listen" => listen = Some(parse_loopback_addr("--listen", &value("--listen")?)?),
            "--backlog" => {
                let v = value("--backlog")?;
                backlog = Some(
                    v.parse::<c_int>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--backlog: '{v}' is not a positive count"))?,
                );
            }
            "--max-s" => {
                let v = value("--max-s")?;
                max_s = Some(v.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    format!("--max-s: '{v}' is not a positive number of seconds")
                })?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    if serve {
        let client_flags = [
            ("--target", target.is_some()),
            ("--source", source.is_some()),
            ("--connections", connections.is_some()),
            ("--close", close.is_some()),
            ("--hold-ms", hold.is_some()),
        ];
        if let Some((flag, _)) = client_flags.iter().find(|(_, given)| *given) {
            return Err(format!("{flag} is for churn and hold, not serve"));
        }
        return Ok(Command::Serve(ServeOpts {
            listen: listen.ok_or("--listen is required")?,
            backlog: backlog.unwrap_or(4096),
            max: Duration::from_secs(max_s.unwrap_or(600)),
        }));
    }
    let serve_flags = [
        ("--listen", listen.is_some()),
        ("--backlog", backlog.is_some()),
        ("--max-s", max_s.is_some()),
    ];
    if let Some((flag, _)) = serve_flags.iter().find(|(_, given)| *given) {
        return Err(format!("{flag} is for serve, not churn or hold"));
    }
    let target: SocketAddr = target.ok_or("--target is required")?;
    if let Some(ip) = source
        && ip.is_ipv4() != target.is_ipv4()
    {
        return Err(format!(
            "--source {ip} and --target {target} are not the same address family"
        ));
    }
    Ok(Command::Client(Opts {
        mode: mode.ok_or("give a mode: churn, hold or serve")?,
        target,
        source,
        connections: connections.ok_or("--connections is required")?,
        close: close.unwrap_or(Close::Fin),
        hold: hold.unwrap_or(Duration::ZERO),
    }))
}

/// The target as a C socket address, built once.
struct CAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
    family: c_int,
}

fn c_addr(addr: SocketAddr) -> CAddr {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let (len, family) = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for any sockaddr.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
            (mem::size_of::<libc::sockaddr_in>(), libc::AF_INET)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            (mem::size_of::<libc::sockaddr_in6>(), libc::AF_INET6)
        }
    };
    CAddr {
        storage,
        len: len as libc::socklen_t,
        family,
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: c_int) -> String {
    let name = match e {
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EAGAIN => "EAGAIN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

/// Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit.
fn raise_nofile() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to fill in / read from.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// VmRSS of this process in KiB, from /proc/self/status.
fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn close_fd(fd: c_int, close: Close) {
    if close == Close::Rst {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: fd is a socket we own; linger is a valid option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
    // SAFETY: fd is ours and closed exactly once.
    unsafe { libc::close(fd) };
}

enum Started {
    /// In progress: registered with epoll for EPOLLOUT.
    Pending,
    /// connect() completed at once.
    Connected(c_int),
}

fn set_int_opt(fd: c_int, level: c_int, name: c_int, value: c_int) -> Result<(), c_int> {
    // SAFETY: value is a valid c_int option value for the length given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// Binds `fd` to the source IP with port 0, IP_BIND_ADDRESS_NO_PORT set
/// first: the port is picked at connect(), per destination, not here.
fn bind_source(fd: c_int, source: &CAddr) -> Result<(), c_int> {
    set_int_opt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
    // SAFETY: source outlives the call; its len matches its family.
    let rc = unsafe { libc::bind(fd, (&raw const source.storage).cast(), source.len) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// One non-blocking connect, from `source` when given. Err(errno) when it
/// failed at once (the socket, if any, is already closed).
fn start_connect(ep: c_int, addr: &CAddr, source: Option<&CAddr>) -> Result<Started, c_int> {
    // SAFETY: plain syscalls on fds this function owns; addr outlives the call.
    unsafe {
        let fd = libc::socket(
            addr.family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(errno());
        }
        if let Some(source) = source
            && let Err(e) = bind_source(fd, source)
        {
            libc::close(fd);
            return Err(e);
        }
        let rc = libc::connect(fd, (&raw const addr.storage).cast(), addr.len);
        if rc == 0 {
            return Ok(Started::Connected(fd));
        }
        let e = errno();
        if e != libc::EINPROGRESS {
            libc::close(fd);
            return Err(e);
        }
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLOUT | libc::EPOLLONESHOT) as u32,
            u64: fd as u64,
        };
        if libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) != 0 {
            let e = errno();
            libc::close(fd);
            return Err(e);
        }
        Ok(Started::Pending)
    }
}

fn so_error(fd: c_int) -> c_int {
    let mut err: c_int = 0;
    let mut len = mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: err and len are valid for getsockopt to write.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &mut len,
        )
    };
    if rc != 0 { errno() } else { err }
}

struct Outcome {
    established: u64,
    failures: BTreeMap<c_int, u64>,
    elapsed: Duration,
    /// Wall-clock time of the last establishment (None: none established).
    last_established: Option<SystemTime>,
    /// Hold mode: the established fds, still open.
    held: Vec<c_int>,
}

/// Runs exactly `opts.connections` attempts; Err on a syscall error of the
/// loop itself or after 60 s.
fn drive(opts: &Opts) -> Result<Outcome, String> {
    let addr = c_addr(opts.target);
    let source = opts.source.map(|ip| c_addr(SocketAddr::new(ip, 0)));
    let max_in_flight = match opts.mode {
        Mode::Churn => CHURN_IN_FLIGHT,
        Mode::Hold => HOLD_IN_FLIGHT,
    };
    // SAFETY: plain syscall.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(format!("epoll_create1: {}", errno_name(errno())));
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; max_in_flight];
    let mut held = Vec::with_capacity(if opts.mode == Mode::Hold {
        opts.connections as usize
    } else {
        0
    });
    let mut failures: BTreeMap<c_int, u64> = BTreeMap::new();
    let (mut started, mut established, mut failed) = (0u64, 0u64, 0u64);
    let mut in_flight = 0usize;
    let mut last_established = None;

    let start = Instant::now();
    let deadline = start + GIVE_UP;
    let mut on_established = |fd: c_int, established: &mut u64| {
        *established += 1;
        // One vDSO clock read: cheap next to the connect() it follows.
        last_established = Some(SystemTime::now());
        match opts.mode {
            Mode::Churn => close_fd(fd, opts.close),
            Mode::Hold => held.push(fd),
        }
    };
    let result = loop {
        while in_flight < max_in_flight && started < opts.connections {
            started += 1;
            match start_connect(ep, &addr, source.as_ref()) {
                Ok(Started::Pending) => in_flight += 1,
                Ok(Started::Connected(fd)) => on_established(fd, &mut established),
                Err(e) => {
                    failed += 1;
                    *failures.entry(e).or_default() += 1;
                }
            }
        }
        if established + failed == opts.connections {
            break Ok(());
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "gave up after {} s: {established} established, {failed} failed, \
                 {in_flight} in flight of {}",
                GIVE_UP.as_secs(),
                opts.connections
            ));
        }
        // SAFETY: events is a valid buffer of events.len() entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as c_int, 100) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            break Err(format!("epoll_wait: {}", errno_name(e)));
        }
        for ev in &events[..n as usize] {
            let fd = ev.u64 as c_int;
            in_flight -= 1;
            match so_error(fd) {
                0 => on_established(fd, &mut established),
                e => {
                    failed += 1;
                    *failures.entry(e).or_default() += 1;
                    // SAFETY: fd is ours, closed once.
                    unsafe { libc::close(fd) };
                }
            }
        }
    };
    let elapsed = start.elapsed();
    // SAFETY: ep is ours; the held sockets stay open without it.
    unsafe { libc::close(ep) };
    result.map(|()| Outcome {
        established,
        failures,
        elapsed,
        last_established,
        held,
    })
}

/// The address `fd` is bound to, from getsockname.
fn local_addr(fd: c_int) -> Result<SocketAddr, c_int> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid for getsockname to write.
    if unsafe { libc::getsockname(fd, (&raw mut storage).cast(), &mut len) } != 0 {
        return Err(errno());
    }
    match c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for an AF_INET socket.
            let sin = unsafe { *(&raw const storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for an AF_INET6 socket.
            let sin6 = unsafe { *(&raw const storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
        }
        _ => Err(libc::EAFNOSUPPORT),
    }
}

/// A non-blocking listener on `opts.listen`, shared with other processes
/// through SO_REUSEPORT.
fn listener(opts: &ServeOpts) -> Result<(c_int, SocketAddr), String> {
    let addr = c_addr(opts.listen);
    let at = |what: &str, e: c_int| format!("{what} {}: {}", opts.listen, errno_name(e));
    // SAFETY: plain syscalls on an fd this function owns; addr outlives them.
    unsafe {
        let fd = libc::socket(
            addr.family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(at("socket for", errno()));
        }
        let setup = set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
            .and_then(|()| set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1))
            .map_err(|e| at("SO_REUSEADDR/SO_REUSEPORT on", e))
            .and_then(|()| {
                if libc::bind(fd, (&raw const addr.storage).cast(), addr.len) != 0 {
                    return Err(at("bind", errno()));
                }
                if libc::listen(fd, opts.backlog) != 0 {
                    return Err(at("listen on", errno()));
                }
                local_addr(fd).map_err(|e| at("getsockname of", e))
            });
        match setup {
            Ok(bound) => Ok((fd, bound)),
            Err(msg) => {
                libc::close(fd);
                Err(msg)
            }
        }
    }
}

/// The raw server: accepts until `opts.max` has passed and keeps every
/// accepted fd open. Returns how many it accepted.
fn serve(opts: &ServeOpts) -> Result<usize, String> {
    let nofile = raise_nofile();
    let (lfd, bound) = listener(opts)?;
    // SAFETY: plain syscall.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(format!("epoll_create1: {}", errno_name(errno())));
    }
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: lfd as u64,
    };
    // SAFETY: ep and lfd are ours; ev is a valid event.
    if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, lfd, &mut ev) } != 0 {
        return Err(format!("epoll_ctl: {}", errno_name(errno())));
    }
    println!("listening on {bound}");
    // A script waits for that line: do not leave it in a buffer.
    let _ = std::io::stdout().flush();

    let deadline = Instant::now() + opts.max;
    let mut held: Vec<c_int> = Vec::new();
    let mut warned = false;
    let mut events = [libc::epoll_event { events: 0, u64: 0 }];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(held.len());
        }
        let timeout = left.min(Duration::from_secs(1)).as_millis().max(1) as c_int;
        // SAFETY: events is a valid buffer of one entry.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 1, timeout) };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                e => return Err(format!("epoll_wait: {}", errno_name(e))),
            }
        }
        if n == 0 {
            continue;
        }
        loop {
            // SAFETY: lfd is our listener; no peer address is asked for.
            let fd = unsafe {
                libc::accept4(
                    lfd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd >= 0 {
                held.push(fd);
                continue;
            }
            match errno() {
                libc::EAGAIN => break,
                // The peer gave up before we accepted: take the next one.
                libc::EINTR | libc::ECONNABORTED | libc::EPROTO => continue,
                e @ (libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    if !warned {
                        eprintln!(
                            "raw_baseline serve: accept4: {} with {} held (RLIMIT_NOFILE \
                             {nofile}): pausing accepts {} ms at a time",
                            errno_name(e),
                            held.len(),
                            ACCEPT_PAUSE.as_millis()
                        );
                        warned = true;
                    }
                    // The listener stays readable: sleeping, not spinning.
                    std::thread::sleep(ACCEPT_PAUSE);
                    break;
                }
                e => return Err(format!("accept4: {}", errno_name(e))),
            }
        }
    }
}

fn print_failures(failures: &BTreeMap<c_int, u64>) {
    if failures.is_empty() {
        println!("failures: none");
    } else {
        let list: Vec<String> = failures
            .iter()
            .map(|(e, n)| format!("{}={n}", errno_name(*e)))
            .collect();
        println!("failures: {}", list.join(" "));
    }
}

fn main() -> ExitCode {
    // `cargo test --all-targets` (or `--benches`) runs every bench binary
    // with no arguments (`cargo bench` passes `--bench`): a baseline needs
    // a target, so there is nothing to check then, and that is not a failure.
    if std::env::args().len() == 1 {
        eprintln!("raw_baseline: no arguments (run by cargo test): nothing to do\n{USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Client(o)) => o,
        Ok(Command::Serve(o)) => {
            return match serve(&o) {
                Ok(accepted) => {
                    println!("held {accepted}; exiting after --max-s {}", o.max.as_secs());
                    ExitCode::SUCCESS
                }
                Err(msg) => {
                    eprintln!("raw_baseline serve: {msg}");
                    ExitCode::from(1)
                }
            };
        }
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("raw_baseline: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let nofile = raise_nofile();
    if opts.mode == Mode::Hold && opts.connections + 16 > nofile {
        eprintln!(
            "raw_baseline: {} held connections need more fds than RLIMIT_NOFILE allows ({nofile})",
            opts.connections
        );
        return ExitCode::from(2);
    }
    let rss_before = vm_rss_kib();
    let outcome = match drive(&opts) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("raw_baseline: {msg}");
            return ExitCode::from(1);
        }
    };
    let secs = outcome.elapsed.as_secs_f64();
    let rate = outcome.established as f64 / secs.max(1e-9);
    match opts.mode {
        Mode::Churn => {
            println!("churn {} in {secs:.3} s = {rate:.0}/s", outcome.established);
            print_failures(&outcome.failures);
        }
        Mode::Hold => {
            let rss_after = vm_rss_kib();
            println!(
                "established {} in {secs:.3} s = {rate:.0}/s",
                outcome.established
            );
            match outcome.last_established {
                Some(at) => println!(
                    "last_established_unix_s {:.6}",
                    at.duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64()
                ),
                None => println!("last_established_unix_s none"),
            }
            print_failures(&outcome.failures);
            std::thread::sleep(opts.hold);
            for &fd in &outcome.held {
                close_fd(fd, opts.close);
            }
            match (rss_before, rss_after) {
                (Some(before), Some(after)) if outcome.established > 0 => {
                    let delta = after.saturating_sub(before);
                    println!(
                        "rss delta {delta} KiB over {} connections = {:.1} B/connection",
                        outcome.established,
                        (delta * 1024) as f64 / outcome.established as f64
                    );
                }
                _ => println!("rss delta: unavailable"),
            }
        }
    }
    ExitCode::SUCCESS
}
