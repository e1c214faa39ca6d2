//! Parsers for the values users type, shared by flags and scenario files:
//! durations, counts, rates, ramps, addresses, ranges. Each error names the
//! value and the accepted forms.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Deserializer, Serialize};

/// Most source IPs one run may expand to; a larger CIDR is almost surely a
/// typo (a /8 is 16 million addresses).
pub const MAX_SOURCES: u64 = 65_536;
/// Most target addresses one run may expand to.
pub const MAX_TARGETS: u64 = 65_536;

/// One `--target` (or `--listen`) value: one address, or a port range on one IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub text: String,
    pub addrs: Vec<SocketAddr>,
}

/// One `--source` value: one IP, a range, or a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub text: String,
    pub ips: Vec<IpAddr>,
}

/// An inclusive port range `LO-HI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn len(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// A linear ramp of the connect rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RampSpec {
    pub from: f64,
    pub to: f64,
    #[serde(serialize_with = "serialize_duration")]
    pub over: Duration,
}

/// How long a connection is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldMode {
    /// Close this long after it was established.
    For(Duration),
    /// Hold until the run's --duration ends.
    UntilEnd,
}

impl fmt::Display for HoldMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldMode::For(d) => f.write_str(&format_duration(*d)),
            HoldMode::UntilEnd => f.write_str("end"),
        }
    }
}

/// What the driver does on a held connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DriverMode {
    #[default]
    Idle,
    Echo,
}

/// How the driver closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CloseMode {
    #[default]
    Fin,
    Rst,
}

/// Formats a duration the way users type it: `500ms`, `10s`, `2m 30s`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(d).to_string()
}

pub fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

const DURATION_FORMS: &str = "a number with a unit: 500ms, 10s, 2m, 1h";

/// `500ms`, `10s`, `2m`, `1h30m`. A bare number is refused: the unit matters.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() || text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("'{text}' is not a duration: use {DURATION_FORMS}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration ({e}): use {DURATION_FORMS}"))
}

/// A hold: a duration or `end`.
pub fn parse_hold(text: &str) -> Result<HoldMode, String> {
    if text.trim() == "end" {
        return Ok(HoldMode::UntilEnd);
    }
    parse_duration(text)
        .map(HoldMode::For)
        .map_err(|e| format!("{e}, or 'end' to hold until --duration"))
}

fn split_suffix(text: &str) -> Option<(f64, f64)> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, multiplier) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1e3),
        'm' => (&lower[..lower.len() - 1], 1e6),
        _ => (lower.as_str(), 1.0),
    };
    let value: f64 = number.replace('_', "").parse().ok()?;
    value.is_finite().then_some((value, multiplier))
}

const COUNT_FORMS: &str =
    "a whole number, optionally with k (thousand) or m (million): 500, 10k, 1.5m";

/// A count: `500`, `10k`, `1m`, `1.5m`, `10_000`. Must be whole and > 0.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let (value, multiplier) =
        split_suffix(text).ok_or_else(|| format!("'{text}' is not a count: use {COUNT_FORMS}"))?;
    let total = value * multiplier;
    if total < 1.0 || total.fract() != 0.0 || total > 1e12 {
        return Err(format!(
            "'{text}' is not a usable count: it must be a whole number from 1 to 10^12 ({COUNT_FORMS})"
        ));
    }
    Ok(total as u64)
}

/// How many worker processes a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Processes {
    /// As many as the connection count needs under the hard fd limit.
    Auto,
    Count(u64),
}

/// Most worker processes a run may start.
pub const MAX_PROCESSES: u64 = 1024;

/// `auto` or a count from 1 to [`MAX_PROCESSES`].
pub fn parse_processes(text: &str) -> Result<Processes, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(Processes::Auto);
    }
    match parse_count(text) {
        Ok(n) if n <= MAX_PROCESSES => Ok(Processes::Count(n)),
        _ => Err(format!(
            "'{text}' is not a process count: use auto (as many as the connections need under \
             the hard fd limit) or 1 to {MAX_PROCESSES}"
        )),
    }
}

const RATE_FORMS: &str = "connects per second, e.g. 500, 5k, 2.5k; 0 for as fast as possible";

/// A rate in connects per second: `500`, `5k`; `0` = unlimited.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let (value, multiplier) =
        split_suffix(text).ok_or_else(|| format!("'{text}' is not a rate: use {RATE_FORMS}"))?;
    let rate = value * multiplier;
    if !(0.0..=1e9).contains(&rate) {
        return Err(format!("'{text}' is out of range: use {RATE_FORMS}"));
    }
    Ok(rate)
}

const RAMP_FORMS: &str = "FROM..TO/OVER, e.g. 0..20000/30s or 1k..10k/1m";

/// `FROM..TO/OVER`: rate rises (or falls) linearly from FROM to TO over OVER.
pub fn parse_ramp(text: &str) -> Result<RampSpec, String> {
    let bad = |why: &str| format!("'{text}' is not a ramp ({why}): use {RAMP_FORMS}");
    let (rates, over) = text.split_once('/').ok_or_else(|| bad("missing /OVER"))?;
    let (from, to) = rates
        .split_once("..")
        .ok_or_else(|| bad("missing FROM..TO"))?;
    let from = parse_rate(from).map_err(|e| bad(&e))?;
    let to = parse_rate(to).map_err(|e| bad(&e))?;
    let over = parse_duration(over).map_err(|e| bad(&e))?;
    if over.is_zero() {
        return Err(bad("OVER must be longer than 0s"));
    }
    if from == 0.0 && to == 0.0 {
        return Err(bad("FROM and TO cannot both be 0"));
    }
    Ok(RampSpec { from, to, over })
}

const PORT_FORMS: &str = "a port 1-65535, or a range LO-HI such as 7070-7079";

fn parse_port(text: &str, allow_zero: bool) -> Result<u16, String> {
    let port: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a port: use {PORT_FORMS}"))?;
    let lowest = if allow_zero { 0 } else { 1 };
    if port < lowest || port > 65_535 {
        return Err(format!("port {port} is out of range: use {PORT_FORMS}"));
    }
    Ok(port as u16)
}

/// `LO-HI` (inclusive), or a single port.
pub fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (parse_port(lo, false)?, parse_port(hi, false)?),
        None => {
            let port = parse_port(text, false)?;
            (port, port)
        }
    };
    if lo > hi {
        return Err(format!(
            "'{text}': the range is reversed ({lo} > {hi}); write it as {hi}-{lo}"
        ));
    }
    Ok(PortRange { lo, hi })
}

const TARGET_FORMS: &str =
    "IP:PORT or IP:PORT-PORT, e.g. 127.0.0.1:7070, 127.0.0.1:7070-7079, [::1]:7070";

fn parse_addr_ports(text: &str, allow_zero: bool) -> Result<TargetSpec, String> {
    let trimmed = text.trim();
    let (host, ports) = if let Some(rest) = trimmed.strip_prefix('[') {
        let (host, ports) = rest
            .split_once("]:")
            .ok_or_else(|| format!("'{text}' is not an address: use {TARGET_FORMS}"))?;
        (host, ports)
    } else {
        trimmed
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':'))
            .ok_or_else(|| {
                format!("'{text}' is not an address: use {TARGET_FORMS} (IPv6 goes in brackets)")
            })?
    };
    let ip: IpAddr = host.parse().map_err(|_| {
        format!(
            "'{host}' in '{text}' is not an IP address (names are not resolved): use {TARGET_FORMS}"
        )
    })?;
    let range = if allow_zero && ports.trim() == "0" {
        PortRange { lo: 0, hi: 0 }
    } else {
        parse_port_range(ports).map_err(|e| format!("{e} (in '{text}')"))?
    };
    if u64::from(range.len()) > MAX_TARGETS {
        return Err(format!(
            "'{text}' expands to more than {MAX_TARGETS} addresses"
        ));
    }
    let addrs = (range.lo..=range.hi)
        .map(|port| SocketAddr::new(ip, port))
        .collect();
    Ok(TargetSpec {
        text: trimmed.to_string(),
        addrs,
    })
}

/// A target: `IP:PORT` or `IP:PORT-PORT`; port 0 is refused.
pub fn parse_target(text: &str) -> Result<TargetSpec, String> {
    parse_addr_ports(text, false)
}

/// A listen address: like a target, but port 0 (pick a free port) is allowed.
pub fn parse_listen(text: &str) -> Result<TargetSpec, String> {
    parse_addr_ports(text, true)
}

/// A listen backlog: 1..=65535.
pub fn parse_backlog(text: &str) -> Result<u32, String> {
    let n = parse_count(text)?;
    if n > 65_535 {
        return Err(format!(
            "backlog {n} is too large: use 1 to 65535 (the kernel caps it at net.core.somaxconn)"
        ));
    }
    Ok(n as u32)
}

/// A memory size: bytes, or with a unit: `512KiB`, `64MiB`, `1GiB` (also
/// `k`, `m`, `g`, `K`, `M`, `G`, `KB`…: all powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    const FORMS: &str = "bytes or a number with KiB, MiB or GiB, e.g. 64MiB";
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size: use {FORMS}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("'{text}': unknown unit '{unit}': use {FORMS}")),
    };
    n.checked_mul(1 << shift)
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("'{text}' is not a usable size: use {FORMS}"))
}

/// What the built-in server does with an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ServerMode {
    /// Hold it; read and discard.
    #[default]
    Hold,
    /// Hold it and echo every byte back.
    Echo,
    /// Close it at once.
    Close,
}

impl ServerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerMode::Hold => "hold",
            ServerMode::Echo => "echo",
            ServerMode::Close => "close",
        }
    }
}

/// When the source port of a socket bound to a source IP is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PortPick {
    /// At connect(), per destination (IP_BIND_ADDRESS_NO_PORT): the port
    /// space is per (source IP, target).
    #[default]
    Connect,
    /// At bind(ip, 0), before the destination is known: the port space is
    /// per source IP, and running out is EADDRINUSE from bind().
    Bind,
}

const SOURCE_FORMS: &str =
    "an IP (127.0.0.2), a range (127.0.0.2-127.0.0.9) or a CIDR block (127.0.1.0/24)";

fn parse_ip(text: &str, whole: &str) -> Result<IpAddr, String> {
    text.trim()
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| format!("'{text}' in '{whole}' is not an IP address: use {SOURCE_FORMS}"))
}

fn too_many(whole: &str, count: u128) -> String {
    format!("'{whole}' expands to {count} addresses; at most {MAX_SOURCES} are allowed: narrow it")
}

/// `IP`, `IP-IP` (inclusive, same family) or `IP/PREFIX`.
pub fn parse_source(text: &str) -> Result<SourceSpec, String> {
    let trimmed = text.trim();
    let ips = if let Some((ip, prefix)) = trimmed.split_once('/') {
        let ip = parse_ip(ip, text)?;
        let max_prefix = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max_prefix)
            .ok_or_else(|| format!("'/{prefix}' in '{text}' is not a prefix length 0-{max_prefix}: use {SOURCE_FORMS}"))?;
        let size = 1u128 << (max_prefix - prefix);
        if size > u128::from(MAX_SOURCES) {
            return Err(too_many(text, size));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (max_prefix - prefix)
        };
        let base = ip_to_u128(ip) & mask;
        // Network and broadcast addresses of v4 blocks larger than /31 are
        // not host addresses: skip them as `ip` would.
        let (first, last) = if ip.is_ipv4() && prefix < 31 {
            (base + 1, base + size - 2)
        } else {
            (base, base + size - 1)
        };
        (first..=last)
            .map(|n| u128_to_ip(n, ip.is_ipv4()))
            .collect()
    } else if let Some((lo, hi)) = trimmed.split_once('-') {
        let (lo, hi) = (parse_ip(lo, text)?, parse_ip(hi, text)?);
        if lo.is_ipv4() != hi.is_ipv4() {
            return Err(format!("'{text}' mixes IPv4 and IPv6: use {SOURCE_FORMS}"));
        }
        let (a, b) = (ip_to_u128(lo), ip_to_u128(hi));
        if a > b {
            return Err(format!(
                "'{text}': the range is reversed; write it as {hi}-{lo}"
            ));
        }
        if b - a + 1 > u128::from(MAX_SOURCES) {
            return Err(too_many(text, b - a + 1));
        }
        (a..=b).map(|n| u128_to_ip(n, lo.is_ipv4())).collect()
    } else {
        vec![parse_ip(trimmed, text)?]
    };
    Ok(SourceSpec {
        text: trimmed.to_string(),
        ips,
    })
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn u128_to_ip(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// Accepts a TOML value that is either a number or a string and feeds its
/// text to `parse`, so `connections = 10000` and `connections = "10k"` both
/// work and errors carry the file position.
fn from_number_or_string<'de, D, T>(
    de: D,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let text = match Raw::deserialize(de)? {
        Raw::Int(n) => n.to_string(),
        Raw::Float(f) => f.to_string(),
        Raw::Text(s) => s,
    };
    parse(&text).map_err(serde::de::Error::custom)
}

macro_rules! serde_parsers {
    ($($name:ident => $parse:ident -> $ty:ty;)*) => {
        /// serde `deserialize_with` adapters over the parsers above.
        pub mod de {
            use super::*;
            $(
                pub fn $name<'de, D: Deserializer<'de>>(de: D) -> Result<Option<$ty>, D::Error> {
                    from_number_or_string(de, $parse).map(Some)
                }
            )*
        }
    };
}

serde_parsers! {
    count => parse_count -> u64;
    rate => parse_rate -> f64;
    duration => parse_duration -> Duration;
    hold => parse_hold -> HoldMode;
    ramp => parse_ramp -> RampSpec;
    port_range => parse_port_range -> PortRange;
    processes => parse_processes -> Processes;
    size => parse_size -> u64;
}

/// Deserializes a list of strings through `parse`.
fn list<'de, D, T>(de: D, parse: fn(&str) -> Result<T, String>) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
{
    Vec::<String>::deserialize(de)?
        .iter()
        .map(|s| parse(s).map_err(serde::de::Error::custom))
        .collect()
}

pub fn de_targets<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<TargetSpec>, D::Error> {
    list(de, parse_target)
}

pub fn de_sources<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<SourceSpec>, D::Error> {
    list(de, parse_source)
}

impl FromStr for TargetSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_target(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("10").unwrap_err().contains("500ms, 10s"));
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_hold("end").unwrap(), HoldMode::UntilEnd);
    }

    #[test]
    fn counts_take_suffixes_and_refuse_zero_and_fractions() {
        assert_eq!(parse_count("10k").unwrap(), 10_000);
        assert_eq!(parse_count("1m").unwrap(), 1_000_000);
        assert_eq!(parse_count("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_count("10_000").unwrap(), 10_000);
        assert!(parse_count("0").is_err());
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("-3").is_err());
        assert!(parse_count("lots").unwrap_err().contains("10k"));
    }

    #[test]
    fn ramps_parse_and_refuse_nonsense() {
        let ramp = parse_ramp("0..20k/30s").unwrap();
        assert_eq!(
            (ramp.from, ramp.to, ramp.over),
            (0.0, 20_000.0, Duration::from_secs(30))
        );
        assert!(parse_ramp("0..0/30s").is_err());
        assert!(parse_ramp("0..10/0s").is_err());
        assert!(parse_ramp("10/30s").is_err());
    }

    #[test]
    fn targets_expand_port_ranges_and_need_brackets_for_v6() {
        let t = parse_target("127.0.0.1:7070-7072").unwrap();
        assert_eq!(t.addrs.len(), 3);
        assert_eq!(t.addrs[2], "127.0.0.1:7072".parse().unwrap());
        let v6 = parse_target("[::1]:80").unwrap();
        assert_eq!(v6.addrs, vec!["[::1]:80".parse().unwrap()]);
        assert!(parse_target("::1:80").unwrap_err().contains("brackets"));
        assert!(parse_target("127.0.0.1:0").is_err());
        assert!(
            parse_target("127.0.0.1:70000")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            parse_target("localhost:80")
                .unwrap_err()
                .contains("not resolved")
        );
        assert!(
            parse_target("127.0.0.1:90-80")
                .unwrap_err()
                .contains("reversed")
        );
        assert_eq!(parse_listen("127.0.0.1:0").unwrap().addrs[0].port(), 0);
    }

    #[test]
    fn sources_expand_ranges_and_cidrs() {
        assert_eq!(parse_source("127.0.0.2").unwrap().ips.len(), 1);
        let range = parse_source("127.0.0.2-127.0.0.9").unwrap();
        assert_eq!(range.ips.len(), 8);
        assert_eq!(range.ips[7], "127.0.0.9".parse::<IpAddr>().unwrap());
        let cidr = parse_source("127.0.1.0/24").unwrap();
        assert_eq!(cidr.ips.len(), 254);
        assert_eq!(cidr.ips[0], "127.0.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(parse_source("127.0.0.4/31").unwrap().ips.len(), 2);
        assert_eq!(parse_source("::1/128").unwrap().ips.len(), 1);
        assert!(
            parse_source("10.0.0.0/8")
                .unwrap_err()
                .contains("narrow it")
        );
        assert!(parse_source("127.0.0.1-::1").unwrap_err().contains("mixes"));
        assert!(parse_source("127.0.0.300").is_err());
        assert!(parse_source("127.0.0.1/33").is_err());
    }

    #[test]
    fn rates_accept_zero_and_suffixes() {
        assert_eq!(parse_rate("0").unwrap(), 0.0);
        assert_eq!(parse_rate("5k").unwrap(), 5000.0);
        assert!(parse_rate("-1").is_err());
    }
}
