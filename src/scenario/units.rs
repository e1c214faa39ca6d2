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

/// One `--target` (or `--listen`) value: one address, or a port range on one
/// IP; or, for a target, a host name and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub text: String,
    /// Empty for a name: its addresses are known once it is resolved.
    pub addrs: Vec<SocketAddr>,
    pub name: Option<TargetName>,
}

/// A target given by host name (`localhost:7070`, `my-svc.my-ns.svc:8080`):
/// parsing does no I/O, so it is resolved when the run starts, and every
/// address it resolves to becomes a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetName {
    /// As typed.
    pub text: String,
    pub host: String,
    pub ports: PortRange,
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
    #[serde(
        serialize_with = "serialize_duration",
        deserialize_with = "deserialize_duration"
    )]
    pub over: Duration,
}

/// Most steps in a stepped rate.
pub const MAX_STEPS: usize = 16;

/// A stepped rate: each rate held for `each` in turn, the last one after.
/// Copy, like every pace, so it is kept in a fixed array.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "StepsWire", try_from = "StepsWire")]
pub struct StepsSpec {
    rates: [f64; MAX_STEPS],
    len: usize,
    pub each: Duration,
}

/// A [`StepsSpec`] as plain data: `{"rates": [1000.0, 2000.0], "each": "10s"}`.
#[derive(Serialize, Deserialize)]
struct StepsWire {
    rates: Vec<f64>,
    #[serde(
        serialize_with = "serialize_duration",
        deserialize_with = "deserialize_duration"
    )]
    each: Duration,
}

impl From<StepsSpec> for StepsWire {
    fn from(s: StepsSpec) -> StepsWire {
        StepsWire {
            rates: s.rates().to_vec(),
            each: s.each,
        }
    }
}

impl TryFrom<StepsWire> for StepsSpec {
    type Error = String;
    fn try_from(w: StepsWire) -> Result<StepsSpec, String> {
        StepsSpec::new(&w.rates, w.each)
    }
}

impl StepsSpec {
    /// Steps of `rates`, `each` long; 2 to [`MAX_STEPS`] of them.
    pub fn new(rates: &[f64], each: Duration) -> Result<StepsSpec, String> {
        if !(2..=MAX_STEPS).contains(&rates.len()) {
            return Err(format!(
                "{} rate(s): give 2 to {MAX_STEPS} (one rate is --rate)",
                rates.len()
            ));
        }
        let mut all = [0.0; MAX_STEPS];
        all[..rates.len()].copy_from_slice(rates);
        Ok(StepsSpec {
            rates: all,
            len: rates.len(),
            each,
        })
    }

    pub fn rates(&self) -> &[f64] {
        &self.rates[..self.len]
    }

    /// Every rate times `share` (a worker's part of the run's rate).
    pub fn scaled(mut self, share: f64) -> StepsSpec {
        for rate in &mut self.rates[..self.len] {
            *rate *= share;
        }
        self
    }

    pub fn max_rate(&self) -> f64 {
        self.rates().iter().copied().fold(0.0, f64::max)
    }

    /// Seconds from the start at which attempt `i` (0-based) is due: each
    /// step starts `rate × EACH` attempts, the last step every one left.
    pub fn seconds_to(&self, i: f64) -> f64 {
        let each = self.each.as_secs_f64();
        let mut before = 0.0;
        let last = self.len - 1;
        for (k, &rate) in self.rates().iter().enumerate() {
            let in_step = rate * each;
            if k == last || i < before + in_step {
                return k as f64 * each + (i - before) / rate;
            }
            before += in_step;
        }
        unreachable!("the last step takes every attempt left")
    }

    /// The rate asked for `secs` after the start.
    pub fn rate_at(&self, secs: f64) -> f64 {
        let k = (secs / self.each.as_secs_f64()).floor().max(0.0) as usize;
        self.rates()[k.min(self.len - 1)]
    }

    /// `Err` (saying why) unless every rate and EACH are in range and the
    /// last rate is above 0 (or the run would never finish).
    pub fn check(&self) -> Result<(), String> {
        for rate in self.rates() {
            check_rate(*rate).map_err(|e| format!("rate {rate} {e}"))?;
        }
        RAMP_OVER
            .check(self.each)
            .map_err(|e| format!("EACH {} {e}", format_duration(self.each)))?;
        if self.rates()[self.len - 1] == 0.0 {
            return Err(
                "the last rate must be above 0 connects/s, or the run would never finish".into(),
            );
        }
        Ok(())
    }

    /// As given: `1000,2000,4000/10s`.
    pub fn text(&self) -> String {
        let rates: Vec<String> = self.rates().iter().map(ToString::to_string).collect();
        format!("{}/{}", rates.join(","), format_duration(self.each))
    }
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
    /// Requests at a rate over a pool of persistent connections.
    Request,
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

/// The inverse of [`serialize_duration`], exactly (humantime's text keeps
/// every nanosecond): how a ramp reaches worker processes and agents.
pub fn deserialize_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

const DURATION_FORMS: &str = "a number with a unit: 500ms, 10s, 2m, 1h, 2d";

const DAY: u64 = 24 * 3600;

/// The durations one setting accepts, inclusive. The upper bounds keep every
/// deadline the engine computes far from `Instant`'s range and within its
/// timers' (the holder's millisecond clock runs 49 days); beyond them a
/// value is a typo, not a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
    /// What the value is, for messages: "a run", "a hold"...
    pub what: &'static str,
}

/// `duration`: a soak test of a month is the longest anyone runs.
pub const RUN_DURATION: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(30 * DAY),
    what: "the run's duration",
};
/// `hold`: 0s closes at once; a hold never outlasts the longest run.
pub const HOLD: DurationRange = DurationRange {
    min: Duration::ZERO,
    max: Duration::from_secs(30 * DAY),
    what: "a hold",
};
/// `connect_timeout`: the kernel gives up on a SYN by itself after
/// tcp_syn_retries (about 2 minutes by default), so an hour is never reached.
pub const CONNECT_TIMEOUT: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(3600),
    what: "a connect timeout",
};
/// `interval`: one echo an hour is already a keepalive; idle mode is for
/// connections that send nothing.
pub const INTERVAL: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(3600),
    what: "an echo interval",
};
/// A ramp's OVER: no longer than the longest run.
pub const RAMP_OVER: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(30 * DAY),
    what: "a ramp",
};
/// `serve --idle-timeout`.
pub const IDLE_TIMEOUT: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(30 * DAY),
    what: "an idle timeout",
};

impl DurationRange {
    /// `1ms to 30d`, as users type durations.
    pub fn describe(&self) -> String {
        format!(
            "{} to {}",
            short_duration(self.min),
            short_duration(self.max)
        )
    }

    /// Parses `text` and checks it is in range.
    pub fn parse(&self, text: &str) -> Result<Duration, String> {
        let d = parse_duration(text)?;
        self.check(d)
            .map_err(|why| format!("'{}' {why}", text.trim()))?;
        Ok(d)
    }

    /// `Err` (saying why and what to use) when `d` is out of range.
    pub fn check(&self, d: Duration) -> Result<(), String> {
        if (self.min..=self.max).contains(&d) {
            Ok(())
        } else {
            Err(format!(
                "is out of range: {} takes {}",
                self.what,
                self.describe()
            ))
        }
    }
}

/// A range's bound in one unit: `0s`, `1ms`, `1h`, `30d`.
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format_duration(d);
    }
    match secs {
        s if s % DAY == 0 => format!("{}d", s / DAY),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `500ms`, `10s`, `2m`, `1h30m`. A bare number is refused: the unit matters.
/// Any length humantime reads; the settings' own parsers bound it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() || text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("'{text}' is not a duration: use {DURATION_FORMS}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration ({e}): use {DURATION_FORMS}"))
}

/// `--duration`: within [`RUN_DURATION`].
pub fn parse_run_duration(text: &str) -> Result<Duration, String> {
    RUN_DURATION.parse(text)
}

/// `--connect-timeout`: within [`CONNECT_TIMEOUT`].
pub fn parse_connect_timeout(text: &str) -> Result<Duration, String> {
    CONNECT_TIMEOUT.parse(text)
}

/// The escapes a message may use, for messages about them.
const MESSAGE_ESCAPES: &str = "\\r \\n \\t \\0 \\\\ and \\xHH (a byte in hex)";

/// The bytes of an echo message as typed: `\r`, `\n`, `\t`, `\0`, `\\`
/// and `\xHH` are escapes (a shell's `'PING\r\n'` is six characters, and a
/// Redis server answers only a real CR LF); every other character is its
/// UTF-8 bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let byte = match chars.next().map(|(_, e)| e) {
            Some('r') => b'\r',
            Some('n') => b'\n',
            Some('t') => b'\t',
            Some('0') => 0,
            Some('\\') => b'\\',
            Some('x') => {
                let hex: String = chars.by_ref().take(2).map(|(_, h)| h).collect();
                u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| {
                        format!(
                            "'\\x{hex}' at byte {at} is not a byte in hex: write two hex digits, \
                             e.g. \\x0d"
                        )
                    })?
            }
            Some(other) => {
                return Err(format!(
                    "'\\{other}' at byte {at} is not an escape: use {MESSAGE_ESCAPES}"
                ));
            }
            None => {
                return Err(format!(
                    "a lone '\\' ends the message: write \\\\ for a backslash ({MESSAGE_ESCAPES})"
                ));
            }
        };
        out.push(byte);
    }
    Ok(out)
}

/// `--interval`: within [`INTERVAL`].
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    INTERVAL.parse(text)
}

/// `serve --idle-timeout`: within [`IDLE_TIMEOUT`].
pub fn parse_idle_timeout(text: &str) -> Result<Duration, String> {
    IDLE_TIMEOUT.parse(text)
}

/// A hold: a duration within [`HOLD`], or `end`.
pub fn parse_hold(text: &str) -> Result<HoldMode, String> {
    if text.trim() == "end" {
        return Ok(HoldMode::UntilEnd);
    }
    HOLD.parse(text)
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

const COUNT_FORMS: &str = "optionally with k (thousand) or m (million): 500, 10k, 1.5m";

/// The whole numbers one count setting accepts, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountRange {
    pub min: u64,
    pub max: u64,
    /// What is counted, for messages: "connection count"...
    pub what: &'static str,
    /// The upper bound in words, where that says more than the number
    /// ("the hard limit").
    pub max_name: Option<&'static str>,
    /// Why the bounds are what they are, or what the value does.
    pub why: &'static str,
}

/// Most connection attempts in one run: above this a run is a typo.
pub const MAX_CONNECTIONS: u64 = 100_000_000;
/// Most worker processes a run may start.
pub const MAX_PROCESSES: u64 = 1024;
/// Most worker threads per process.
pub const MAX_THREADS: u64 = 1024;
/// The largest RLIMIT_NOFILE the kernel lets anyone set (fs.nr_open's own
/// ceiling on 64-bit Linux: INT_MAX rounded down to a multiple of 64).
pub const MAX_FD_LIMIT: u64 = 2_147_483_584;

/// `connections`.
pub const CONNECTIONS: CountRange = CountRange {
    min: 1,
    max: MAX_CONNECTIONS,
    what: "connection count",
    max_name: None,
    why: "attempts in one run",
};
/// `fd_limit`: a process needs about ten fds of its own to run at all.
pub const FD_LIMIT: CountRange = CountRange {
    min: 16,
    max: MAX_FD_LIMIT,
    what: "fd limit",
    max_name: Some("the hard limit"),
    why: "ceiling needs about ten fds before its first connection, and no hard limit is above \
          2147483584",
};
/// `threads`.
pub const THREADS: CountRange = CountRange {
    min: 1,
    max: MAX_THREADS,
    what: "thread count",
    max_name: None,
    why: "worker threads per process",
};
/// `max_in_flight`.
pub const MAX_IN_FLIGHT: CountRange = CountRange {
    min: 1,
    max: 10_000_000,
    what: "handshake count",
    max_name: None,
    why: "handshakes in flight at once, shared among the worker threads",
};
/// `serve --backlog`, `[lab] server_backlog`.
pub const BACKLOG: CountRange = CountRange {
    min: 1,
    max: 65_535,
    what: "backlog",
    max_name: None,
    why: "the kernel caps it at net.core.somaxconn",
};

impl CountRange {
    /// `1 to 100m`, with the bounds written as they can be typed.
    pub fn describe(&self) -> String {
        let max = self
            .max_name
            .map_or_else(|| short_count(self.max), String::from);
        format!("{} to {max}", short_count(self.min))
    }

    /// Parses `text` (with k/m suffixes) and checks it is in range.
    pub fn parse(&self, text: &str) -> Result<u64, String> {
        let usable = || {
            // k and m are worth a mention only where they can be used.
            let forms = if self.max >= 10_000 {
                format!(", {COUNT_FORMS}")
            } else {
                String::new()
            };
            format!(
                "'{}' is not a usable {}: use a whole number from {} ({}){forms}",
                text.trim(),
                self.what,
                self.describe(),
                self.why
            )
        };
        let (value, multiplier) = split_suffix(text).ok_or_else(usable)?;
        let total = value * multiplier;
        if total.fract() != 0.0 || total < self.min as f64 || total > self.max as f64 {
            return Err(usable());
        }
        Ok(total as u64)
    }

    /// `Err` (saying what to use) when `n` is out of range.
    pub fn check(&self, n: u64) -> Result<(), String> {
        if (self.min..=self.max).contains(&n) {
            Ok(())
        } else {
            Err(format!(
                "{n} is not a usable {}: use {} ({})",
                self.what,
                self.describe(),
                self.why
            ))
        }
    }
}

/// `100m`, `10k`, `1024`: the shortest form `parse_count` reads back.
fn short_count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}m", n / 1_000_000)
    } else if n >= 10_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// A count: `500`, `10k`, `1m`, `1.5m`, `10_000`. Whole, from 1 to 10^12;
/// the settings' own parsers narrow the range.
pub fn parse_count(text: &str) -> Result<u64, String> {
    CountRange {
        min: 1,
        max: 1_000_000_000_000,
        what: "count",
        max_name: None,
        why: "a whole number of things",
    }
    .parse(text)
}

/// `--connections`: within [`CONNECTIONS`].
pub fn parse_connections(text: &str) -> Result<u64, String> {
    CONNECTIONS.parse(text)
}

/// `pool`: the connections of request mode.
pub const POOL: CountRange = CountRange {
    min: 1,
    max: MAX_CONNECTIONS,
    what: "pool size",
    max_name: None,
    why: "connections in one run",
};

/// `--pool`: within [`POOL`].
pub fn parse_pool(text: &str) -> Result<u64, String> {
    POOL.parse(text)
}

/// `queue_timeout`: how long a request may wait for a pooled connection.
pub const QUEUE_TIMEOUT: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(3600),
    what: "a queue timeout",
};

/// `--queue-timeout`: within [`QUEUE_TIMEOUT`].
pub fn parse_queue_timeout(text: &str) -> Result<Duration, String> {
    QUEUE_TIMEOUT.parse(text)
}

/// `--fd-limit`: within [`FD_LIMIT`] (the hard limit is checked at start).
pub fn parse_fd_limit(text: &str) -> Result<u64, String> {
    FD_LIMIT.parse(text)
}

/// `--max-in-flight`: within [`MAX_IN_FLIGHT`].
pub fn parse_max_in_flight(text: &str) -> Result<u64, String> {
    MAX_IN_FLIGHT.parse(text)
}

/// `--threads`: within [`THREADS`].
pub fn parse_threads(text: &str) -> Result<u64, String> {
    THREADS.parse(text)
}

/// How many worker processes a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Processes {
    /// As many as the connection count needs under the hard fd limit.
    Auto,
    Count(u64),
}

/// `auto` or a count from 1 to [`MAX_PROCESSES`].
pub fn parse_processes(text: &str) -> Result<Processes, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(Processes::Auto);
    }
    match parse_count(text) {
        Ok(n) if n <= MAX_PROCESSES => Ok(Processes::Count(n)),
        _ => Err(format!(
            "'{}' is not a process count: use auto (as many as the connections need under \
             the hard fd limit) or a whole number from 1 to {MAX_PROCESSES}",
            text.trim()
        )),
    }
}

/// The slowest paced rate, connects per second: one attempt every 1000 s.
/// Slower is not a load test, and keeps schedule times finite.
pub const MIN_RATE: f64 = 0.001;
/// The fastest paced rate: ten million connects per second is past what
/// one host can open (0 is "as fast as possible" anyway).
pub const MAX_RATE: f64 = 10_000_000.0;

const RATE_FORMS: &str = "0 (as fast as possible; in request mode, a closed loop) or 0.001 \
                          to 10m per second (connects, or requests in request mode), e.g. \
                          500, 5k, 2.5k";

/// A rate in connects per second: `500`, `5k`; `0` = unlimited; else within
/// [`MIN_RATE`]..=[`MAX_RATE`].
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let shown = text.trim();
    let (value, multiplier) =
        split_suffix(text).ok_or_else(|| format!("'{shown}' is not a rate: use {RATE_FORMS}"))?;
    let rate = value * multiplier;
    check_rate(rate).map_err(|why| format!("'{shown}' {why}"))?;
    // -0 is 0.
    Ok(rate.abs())
}

/// `Err` (saying what to use) unless `rate` is 0 or within
/// [`MIN_RATE`]..=[`MAX_RATE`].
pub fn check_rate(rate: f64) -> Result<(), String> {
    if rate == 0.0 || (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(format!("is out of range: use {RATE_FORMS}"))
    }
}

const RAMP_FORMS: &str = "FROM..TO/OVER, e.g. 0..20000/30s or 1k..10k/1m";

const STEPS_FORMS: &str = "RATE,RATE,.../EACH, e.g. 1k,2k,4k/10s (2 to 16 rates)";

/// `--steps RATE,RATE,.../EACH`: each rate held for EACH in turn.
pub fn parse_steps(text: &str) -> Result<StepsSpec, String> {
    let bad = |why: &str| format!("'{}' is not steps ({why}): use {STEPS_FORMS}", text.trim());
    let (rates, each) = text.split_once('/').ok_or_else(|| bad("missing /EACH"))?;
    let rates = rates
        .split(',')
        .map(parse_rate)
        .collect::<Result<Vec<f64>, String>>()
        .map_err(|e| bad(&e))?;
    let each = RAMP_OVER.parse(each).map_err(|e| bad(&e))?;
    let steps = StepsSpec::new(&rates, each).map_err(|e| bad(&e))?;
    steps.check().map_err(|why| bad(&why))?;
    Ok(steps)
}

/// `FROM..TO/OVER`: rate rises (or falls) linearly from FROM to TO over OVER.
pub fn parse_ramp(text: &str) -> Result<RampSpec, String> {
    let bad = |why: &str| format!("'{}' is not a ramp ({why}): use {RAMP_FORMS}", text.trim());
    let (rates, over) = text.split_once('/').ok_or_else(|| bad("missing /OVER"))?;
    let (from, to) = rates
        .split_once("..")
        .ok_or_else(|| bad("missing FROM..TO"))?;
    let from = parse_rate(from).map_err(|e| bad(&e))?;
    let to = parse_rate(to).map_err(|e| bad(&e))?;
    let over = RAMP_OVER.parse(over).map_err(|e| bad(&e))?;
    let ramp = RampSpec { from, to, over };
    ramp.check().map_err(|why| bad(&why))?;
    Ok(ramp)
}

impl RampSpec {
    /// `Err` (saying why) unless both rates and OVER are in range and the
    /// ramp ends above 0 (or the run would never finish).
    pub fn check(&self) -> Result<(), String> {
        check_rate(self.from).map_err(|e| format!("FROM {} {e}", self.from))?;
        check_rate(self.to).map_err(|e| format!("TO {} {e}", self.to))?;
        RAMP_OVER
            .check(self.over)
            .map_err(|e| format!("OVER {} {e}", format_duration(self.over)))?;
        if self.to == 0.0 {
            return Err("TO must be above 0 connects/s, or the run would never finish".to_string());
        }
        Ok(())
    }
}

/// The ports a value takes, for messages: a listen address may use port 0.
fn port_forms(allow_zero: bool) -> &'static str {
    if allow_zero {
        "a port 0-65535 (0 picks any free port), or a range LO-HI such as 7070-7079"
    } else {
        "a port 1-65535, or a range LO-HI such as 7070-7079"
    }
}

fn parse_port(text: &str, allow_zero: bool) -> Result<u16, String> {
    let forms = port_forms(allow_zero);
    let port: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{}' is not a port: use {forms}", text.trim()))?;
    let lowest = if allow_zero { 0 } else { 1 };
    if port < lowest || port > 65_535 {
        return Err(format!("port {port} is out of range: use {forms}"));
    }
    Ok(port as u16)
}

/// `LO-HI` (inclusive), or a single port.
pub fn parse_port_range(text: &str) -> Result<PortRange, String> {
    parse_ports(text, false)
}

/// `LO-HI` or a single port; `allow_zero`: port 0 alone (pick a free port)
/// is accepted, and messages say so.
fn parse_ports(text: &str, allow_zero: bool) -> Result<PortRange, String> {
    if allow_zero && text.trim() == "0" {
        return Ok(PortRange { lo: 0, hi: 0 });
    }
    let port = |p: &str| {
        parse_port(p, allow_zero).and_then(|n| {
            if n == 0 {
                Err(format!(
                    "port 0 picks a free port: it cannot be part of a range; use {}",
                    port_forms(allow_zero)
                ))
            } else {
                Ok(n)
            }
        })
    };
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!(
            "'{}': the range is reversed ({lo} > {hi}); write it as {hi}-{lo}",
            text.trim()
        ));
    }
    Ok(PortRange { lo, hi })
}

const TARGET_FORMS: &str = "IP:PORT, IP:PORT-PORT or NAME:PORT, e.g. 127.0.0.1:7070, \
     127.0.0.1:7070-7079, [::1]:7070, localhost:7070";

const LISTEN_FORMS: &str =
    "IP:PORT or IP:PORT-PORT, e.g. 127.0.0.1:7070, 127.0.0.1:7070-7079, [::1]:7070";

/// What [`parse_addr_ports`] accepts: a listen address (port 0 allowed, no
/// names) or a target (a host name allowed, port 0 not).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accept {
    Listen,
    Target,
}

/// A host name as RFC 1123 has them: dot-separated labels of letters,
/// digits and `-` (not first nor last), 63 characters each, 253 in all,
/// an optional final dot; not all digits and dots (that is a mistyped
/// IPv4 address, not a name).
fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && !name.chars().all(|c| c.is_ascii_digit() || c == '.')
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn parse_addr_ports(text: &str, accept: Accept) -> Result<TargetSpec, String> {
    let (forms, allow_zero) = match accept {
        Accept::Listen => (LISTEN_FORMS, true),
        Accept::Target => (TARGET_FORMS, false),
    };
    let trimmed = text.trim();
    let bracketed = trimmed.starts_with('[');
    let (host, ports) = if let Some(rest) = trimmed.strip_prefix('[') {
        let (host, ports) = rest
            .split_once("]:")
            .ok_or_else(|| format!("'{text}' is not an address: use {forms}"))?;
        (host, ports)
    } else {
        trimmed
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':'))
            .ok_or_else(|| {
                format!("'{text}' is not an address: use {forms} (IPv6 goes in brackets)")
            })?
    };
    if host.trim().is_empty() {
        return Err(format!(
            "'{trimmed}' has no IP address before the port: use {forms}"
        ));
    }
    let range = parse_ports(ports, allow_zero).map_err(|e| format!("{e} (in '{trimmed}')"))?;
    let ip: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) if accept == Accept::Target && !bracketed && is_host_name(host) => {
            return Ok(TargetSpec {
                text: trimmed.to_string(),
                addrs: Vec::new(),
                name: Some(TargetName {
                    text: trimmed.to_string(),
                    host: host.to_string(),
                    ports: range,
                }),
            });
        }
        Err(_) if accept == Accept::Target => {
            return Err(format!(
                "'{host}' in '{trimmed}' is neither an IP address nor a host name: use {forms}"
            ));
        }
        Err(_) => {
            return Err(format!(
                "'{host}' in '{trimmed}' is not an IP address (names are not resolved here): \
                 use {forms}"
            ));
        }
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
        name: None,
    })
}

/// A target: `IP:PORT`, `IP:PORT-PORT` or `NAME:PORT[-PORT]` (resolved
/// when the run starts); port 0 is refused.
pub fn parse_target(text: &str) -> Result<TargetSpec, String> {
    parse_addr_ports(text, Accept::Target)
}

/// A listen address: an IP (never a name) and a port or range; port 0
/// (pick a free port) is allowed.
pub fn parse_listen(text: &str) -> Result<TargetSpec, String> {
    parse_addr_ports(text, Accept::Listen)
}

/// A listen backlog: within [`BACKLOG`].
pub fn parse_backlog(text: &str) -> Result<u32, String> {
    BACKLOG.parse(text).map(|n| n as u32)
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

/// The built-in server's design (`ceiling serve --model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ServerModel {
    /// Event-driven (epoll): a few threads whatever the connections.
    #[default]
    Async,
    /// One OS thread per connection: C10K's cautionary design.
    Threads,
}

impl ServerModel {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerModel::Async => "async",
            ServerModel::Threads => "threads",
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

/// The text of a TOML value that is a number or a string.
struct NumberOrString;

impl serde::de::Visitor<'_> for NumberOrString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a string, e.g. 10000 or \"10k\", \"5s\"")
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<String, E> {
        Ok(n.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<String, E> {
        Ok(n.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<String, E> {
        Ok(f.to_string())
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<String, E> {
        Ok(s.to_string())
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
    let text = de.deserialize_any(NumberOrString)?;
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
    connections => parse_connections -> u64;
    pool => parse_pool -> u64;
    queue_timeout => parse_queue_timeout -> Duration;
    fd_limit => parse_fd_limit -> u64;
    threads => parse_threads -> u64;
    max_in_flight => parse_max_in_flight -> u64;
    rate => parse_rate -> f64;
    run_duration => parse_run_duration -> Duration;
    connect_timeout => parse_connect_timeout -> Duration;
    interval => parse_interval -> Duration;
    hold => parse_hold -> HoldMode;
    ramp => parse_ramp -> RampSpec;
    steps => parse_steps -> StepsSpec;
    port_range => parse_port_range -> PortRange;
    processes => parse_processes -> Processes;
    size => parse_size -> u64;
}

/// The strings of a TOML value that is one string or a list of them, fed to
/// `parse`: `targets = "127.0.0.1:7070"` is `targets = ["127.0.0.1:7070"]`.
/// The addresses the items expand to are counted as they are read, so a
/// long list of wide ranges is refused before it fills memory.
struct OneOrMany<T> {
    parse: fn(&str) -> Result<T, String>,
    example: &'static str,
    /// How many addresses one item expands to.
    size: fn(&T) -> usize,
    /// Most addresses in all, and what they are.
    max: u64,
    what: &'static str,
}

impl<'de, T> serde::de::Visitor<'de> for OneOrMany<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a string or a list of strings, e.g. \"{0}\" or [\"{0}\"]",
            self.example
        )
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Vec<T>, E> {
        (self.parse)(s).map(|v| vec![v]).map_err(E::custom)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        let mut total = 0u64;
        while let Some(s) = seq.next_element::<String>()? {
            let item = (self.parse)(&s).map_err(serde::de::Error::custom)?;
            total += (self.size)(&item) as u64;
            if total > self.max {
                return Err(serde::de::Error::custom(format!(
                    "the list expands past {} {}, the most allowed, at '{s}': narrow the ranges",
                    self.max, self.what
                )));
            }
            out.push(item);
        }
        Ok(out)
    }
}

pub fn de_targets<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<TargetSpec>, D::Error> {
    de.deserialize_any(OneOrMany {
        parse: parse_target,
        example: "127.0.0.1:7070",
        size: |t| t.addrs.len(),
        max: MAX_TARGETS,
        what: "target addresses",
    })
}

pub fn de_sources<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<SourceSpec>, D::Error> {
    de.deserialize_any(OneOrMany {
        parse: parse_source,
        example: "127.0.0.2",
        size: |s| s.ips.len(),
        max: MAX_SOURCES,
        what: "source addresses",
    })
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
    fn messages_take_escapes_for_control_bytes() {
        assert_eq!(unescape("PING\\r\\n").unwrap(), b"PING\r\n");
        assert_eq!(unescape("a\\tb\\0\\\\\\x7f").unwrap(), b"a\tb\0\\\x7f");
        // Real control characters (a TOML "\r\n") stay as they are.
        assert_eq!(unescape("PING\r\n").unwrap(), b"PING\r\n");
        assert_eq!(unescape("µ").unwrap(), "µ".as_bytes());
        let err = unescape("PING\\q").unwrap_err();
        assert!(err.contains("'\\q'") && err.contains("\\xHH"), "{err}");
        assert!(unescape("\\x4").unwrap_err().contains("two hex digits"));
        assert!(unescape("\\xZZ").is_err());
        assert!(unescape("end\\").unwrap_err().contains("lone"));
    }

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
    fn steps_parse_round_trip_and_refuse_nonsense() {
        let steps = parse_steps("1k,2k,4k/10s").unwrap();
        assert_eq!(steps.rates(), [1000.0, 2000.0, 4000.0]);
        assert_eq!(steps.each, Duration::from_secs(10));
        assert_eq!(steps.text(), "1000,2000,4000/10s");
        let wire = serde_json::to_string(&steps).unwrap();
        assert_eq!(wire, r#"{"rates":[1000.0,2000.0,4000.0],"each":"10s"}"#);
        assert_eq!(serde_json::from_str::<StepsSpec>(&wire).unwrap(), steps);
        for bad in [
            "1k/10s", "1k,2k", "1k,0/10s", "1k,x/10s", "1k,2k/0s", "1k,-2/1s",
        ] {
            let e = parse_steps(bad).unwrap_err();
            assert!(e.contains("RATE,RATE,.../EACH"), "{bad}: {e}");
        }
        let many = vec!["1"; MAX_STEPS + 1].join(",") + "/1s";
        assert!(parse_steps(&many).is_err());
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
        // A name is kept as typed, to be resolved when the run starts.
        let named = parse_target("localhost:80-81").unwrap();
        assert!(named.addrs.is_empty());
        let name = named.name.unwrap();
        assert_eq!(
            (name.host.as_str(), name.ports.lo, name.ports.hi),
            ("localhost", 80, 81)
        );
        assert!(
            parse_target("my-svc.my-ns.svc:8080")
                .unwrap()
                .name
                .is_some()
        );
        for bad in ["127.0.0.300:80", "-bad:80", "a_b:80", "a..b:80"] {
            assert!(
                parse_target(bad)
                    .unwrap_err()
                    .contains("neither an IP address nor a host name"),
                "{bad}"
            );
        }
        assert!(
            parse_listen("localhost:80")
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
    fn every_setting_refuses_values_outside_its_range_and_names_it() {
        // The issue's values: each was accepted, then panicked or hung.
        for (parse, text, range) in [
            (
                parse_run_duration as fn(&str) -> Result<Duration, String>,
                "500000000000y",
                "1ms to 30d",
            ),
            (parse_connect_timeout, "500000000000y", "1ms to 1h"),
            (parse_interval, "500000000000y", "1ms to 1h"),
            (parse_idle_timeout, "31d", "1ms to 30d"),
            (parse_run_duration, "0s", "1ms to 30d"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(text) && err.contains(range), "{err}");
        }
        assert!(
            parse_hold("500000000000y")
                .unwrap_err()
                .contains("0s to 30d")
        );
        assert_eq!(parse_hold("0s"), Ok(HoldMode::For(Duration::ZERO)));
        assert_eq!(parse_run_duration("30d"), Ok(Duration::from_secs(30 * DAY)));
        for rate in ["1e-300", "-1", "20m", "0.0001"] {
            let err = parse_rate(rate).unwrap_err();
            assert!(err.contains("0.001 to 10m"), "{err}");
        }
        assert_eq!(parse_rate("0.001"), Ok(0.001));
        assert_eq!(parse_rate("-0"), Ok(0.0));
        assert!(
            parse_ramp("0..1/10000000000y")
                .unwrap_err()
                .contains("1ms to 30d")
        );
        assert!(
            parse_ramp("1e-300..1e-300/1s")
                .unwrap_err()
                .contains("0.001 to 10m")
        );
        assert!(
            parse_ramp("5..0/1s")
                .unwrap_err()
                .contains("TO must be above 0")
        );
        let threads = parse_threads("0").unwrap_err();
        assert!(
            threads.contains("1 to 1024") && !threads.contains("10^12"),
            "{threads}"
        );
        assert!(parse_connections("-5").unwrap_err().contains("1 to 100m"));
        assert!(parse_connections("101m").is_err());
        assert_eq!(parse_connections("100m"), Ok(MAX_CONNECTIONS));
        assert!(parse_fd_limit("15").unwrap_err().contains("16 to"));
        assert!(parse_backlog("0").unwrap_err().contains("1 to 65535"));
    }

    #[test]
    fn a_listen_port_may_be_0_and_the_message_says_so() {
        let err = parse_listen("127.0.0.1:70700").unwrap_err();
        assert!(
            err.contains("0-65535") && err.contains("free port"),
            "{err}"
        );
        assert!(
            parse_target("127.0.0.1:70700")
                .unwrap_err()
                .contains("1-65535")
        );
        assert!(parse_listen(":7070").unwrap_err().contains("no IP address"));
        assert!(parse_listen("127.0.0.1:0-5").unwrap_err().contains("range"));
    }

    #[test]
    fn rates_accept_zero_and_suffixes() {
        assert_eq!(parse_rate("0").unwrap(), 0.0);
        assert_eq!(parse_rate("5k").unwrap(), 5000.0);
        assert!(parse_rate("-1").is_err());
    }
}
