//! How the server serves: its model (tasks, threads, or a worker pool), its connection cap
//! and what it does when the cap is reached, its idle timeout, the service
//! time of each request it answers. Also the
//! parsers `ceiling serve`'s flags use for these values, so the accepted
//! forms and their error messages live next to the types.

use std::time::Duration;

/// One task per connection on the tokio runtime, or one OS thread each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    /// Event-driven, woken by epoll: C10K's answer. A small task per
    /// connection; a plain holding server (no cap, no idle timeout) keeps
    /// its connections in the epoll set of one accepting thread instead.
    #[default]
    Async,
    /// One OS thread per connection with blocking reads and writes: the
    /// design that runs out of threads (pids, threads-max, memory) first.
    Threads,
    /// Request modes only: connections on tasks as in `Async`, requests
    /// served by a fixed pool of worker threads behind a bounded queue
    /// ([`Pool`]): the design that queues, then turns requests away.
    Pool,
}

impl Model {
    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        match self {
            Model::Async => "async",
            Model::Threads => "threads",
            Model::Pool => "pool",
        }
    }
}

/// What the server does with a new connection while `max` are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Accept, write the reject message, close with a FIN.
    #[default]
    Close,
    /// Accept and close with SO_LINGER 0: the client gets a RST.
    Reset,
    /// Do not call accept() until a slot frees: new connections wait in the
    /// listen backlog, and past it their SYNs are dropped.
    StopAccepting,
    /// Accept it and close the oldest held connection to make room.
    CloseOldest,
    /// Accept it but neither read nor write until a slot frees (a bounded
    /// pool's semaphore), then serve it as any other.
    Queue,
}

impl WhenFull {
    /// Every policy, by its flag name, in the order help lists them.
    pub const ALL: [(&'static str, WhenFull); 5] = [
        ("close", WhenFull::Close),
        ("reset", WhenFull::Reset),
        ("stop-accepting", WhenFull::StopAccepting),
        ("close-oldest", WhenFull::CloseOldest),
        ("queue", WhenFull::Queue),
    ];

    pub fn name(self) -> &'static str {
        WhenFull::ALL
            .iter()
            .find(|(_, policy)| *policy == self)
            .map_or("close", |(name, _)| name)
    }
}

/// `close, reset, stop-accepting, close-oldest, queue`
fn policy_list() -> String {
    WhenFull::ALL.map(|(name, _)| name).join(", ")
}

/// What a request gets when every worker is busy and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenQueueFull {
    /// Wait for room in the queue; its connection reads nothing meanwhile,
    /// so the wait backs up into TCP.
    Wait,
    /// Answer at once with the protocol's busy reply (HTTP 503, RESP
    /// `-ERR busy`, a line `busy`); the connection stays open.
    #[default]
    Reject,
    /// Close the connection without an answer.
    Close,
}

impl WhenQueueFull {
    /// Every policy, by its flag name.
    pub const ALL: [(&'static str, WhenQueueFull); 3] = [
        ("wait", WhenQueueFull::Wait),
        ("reject", WhenQueueFull::Reject),
        ("close", WhenQueueFull::Close),
    ];

    pub fn name(self) -> &'static str {
        WhenQueueFull::ALL
            .iter()
            .find(|(_, policy)| *policy == self)
            .map_or("reject", |(name, _)| name)
    }
}

/// `--model pool`: how many workers, how many requests may wait for one,
/// and what happens past that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub workers: usize,
    pub queue: usize,
    pub when_full: WhenQueueFull,
}

/// Most worker threads `--workers` starts.
pub const MAX_WORKERS: usize = 4096;
/// The longest `--queue`.
pub const MAX_QUEUE: usize = 1_000_000;

impl Default for Pool {
    /// 8 workers, a queue of 32, reject when it is full.
    fn default() -> Self {
        Pool {
            workers: 8,
            queue: 32,
            when_full: WhenQueueFull::Reject,
        }
    }
}

/// A connection cap: at most `max` connections served at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cap {
    pub max: usize,
    pub when_full: WhenFull,
}

/// Everything about serving beyond where to listen; the default is the
/// async model, no cap and no idle timeout (what `ceiling run` embeds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    pub model: Model,
    /// Stack size of each connection thread (threads model).
    pub thread_stack: usize,
    pub cap: Option<Cap>,
    /// Close a connection that received nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// Written to connections the server turns away (cap `close`, or no
    /// thread for it); `None`: a default message naming the reason.
    pub reject_message: Option<Vec<u8>>,
    /// How long each request takes before its response (request modes).
    pub service_time: ServiceTime,
    /// The worker pool of [`Model::Pool`].
    pub pool: Pool,
}

/// The time a request takes before its response is sent: fixed, or drawn
/// uniformly from `min..=max` for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceTime {
    pub min: Duration,
    pub max: Duration,
}

/// The longest service time `--service-time` takes.
pub const MAX_SERVICE_TIME: Duration = Duration::from_secs(60);

impl ServiceTime {
    pub fn fixed(time: Duration) -> ServiceTime {
        ServiceTime {
            min: time,
            max: time,
        }
    }

    /// The service time of the next request; `None` for none at all.
    pub fn draw(&self) -> Option<Duration> {
        let time = if self.max > self.min {
            let spread = (self.max - self.min).as_nanos() as u64;
            self.min + Duration::from_nanos(fastrand::u64(0..=spread))
        } else {
            self.min
        };
        (!time.is_zero()).then_some(time)
    }

    /// `200ms`, or `1ms..5ms` for a range.
    pub fn describe(&self) -> String {
        let text = |d: Duration| humantime::format_duration(d).to_string();
        if self.max > self.min {
            format!("{}..{}", text(self.min), text(self.max))
        } else {
            text(self.min)
        }
    }
}

/// The thread stack when none is given: enough for the blocking loop and
/// its 8 KiB buffer, small enough that thousands of threads are cheap.
pub const DEFAULT_THREAD_STACK: usize = 64 * 1024;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            model: Model::Async,
            thread_stack: DEFAULT_THREAD_STACK,
            cap: None,
            idle_timeout: None,
            reject_message: None,
            service_time: ServiceTime::default(),
            pool: Pool::default(),
        }
    }
}

impl ServeOptions {
    /// The bytes written before closing a connection over the cap.
    pub(super) fn full_message(&self) -> Vec<u8> {
        match (&self.reject_message, &self.cap) {
            (Some(message), _) => message.clone(),
            (None, Some(cap)) => {
                format!("ceiling-serve: max connections ({}) reached\r\n", cap.max).into_bytes()
            }
            (None, None) => Vec::new(),
        }
    }

    /// The bytes written before closing a connection no thread could be
    /// started for.
    pub(super) fn spawn_failed_message(&self) -> Vec<u8> {
        match &self.reject_message {
            Some(message) => message.clone(),
            None => b"ceiling-serve: cannot start a thread for this connection\r\n".to_vec(),
        }
    }
}

/// `async`, `threads` or `pool`.
pub fn parse_model(text: &str) -> Result<Model, String> {
    match text.trim() {
        "async" => Ok(Model::Async),
        "threads" => Ok(Model::Threads),
        "pool" => Ok(Model::Pool),
        other => Err(format!(
            "'{other}' is not a server model: use async (one task per connection), threads (one OS thread per connection) or pool (worker threads behind a bounded request queue)"
        )),
    }
}

/// `--workers`: 1 to [`MAX_WORKERS`].
pub fn parse_workers(text: &str) -> Result<usize, String> {
    match text.trim().replace('_', "").parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{text}' is not a usable number of workers: use a whole number from 1 to {MAX_WORKERS}"
        )),
    }
}

/// `--queue`: 0 (no queue: busy as soon as every worker is) to
/// [`MAX_QUEUE`].
pub fn parse_queue(text: &str) -> Result<usize, String> {
    match text.trim().replace('_', "").parse::<usize>() {
        Ok(n) if n <= MAX_QUEUE => Ok(n),
        _ => Err(format!(
            "'{text}' is not a usable queue length: use a whole number from 0 (no queue) to {MAX_QUEUE}"
        )),
    }
}

/// One of [`WhenQueueFull::ALL`] by name.
pub fn parse_when_queue_full(text: &str) -> Result<WhenQueueFull, String> {
    let text = text.trim();
    WhenQueueFull::ALL
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, policy)| *policy)
        .ok_or_else(|| {
            format!("'{text}' is not a --when-queue-full policy: use wait, reject or close")
        })
}

/// One of [`WhenFull::ALL`] by name.
pub fn parse_when_full(text: &str) -> Result<WhenFull, String> {
    let text = text.trim();
    WhenFull::ALL
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, policy)| *policy)
        .ok_or_else(|| {
            format!(
                "'{text}' is not a --when-full policy: use one of {}",
                policy_list()
            )
        })
}

/// A connection cap: a whole number of at least 1.
pub fn parse_max_conns(text: &str) -> Result<usize, String> {
    let policies = policy_list();
    match text.trim().replace('_', "").parse::<usize>() {
        Ok(0) => Err(format!(
            "'{text}' is not a usable cap: --max-conns must be at least 1 (when it is reached, --when-full picks one of {policies})"
        )),
        // The semaphore behind the cap holds at most usize::MAX >> 3.
        Ok(n) if n <= usize::MAX >> 3 => Ok(n),
        _ => Err(format!(
            "'{text}' is not a usable cap: --max-conns takes a whole number from 1, e.g. 50 (when it is reached, --when-full picks one of {policies})"
        )),
    }
}

const SIZE_FORMS: &str = "bytes, or a number with k (KiB) or m (MiB): 65536, 64k, 1m";

/// A size in bytes: `65536`, `64k`, `1m` (binary units).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, unit) = match lower.strip_suffix(['k', 'm']) {
        Some(number) if lower.ends_with('k') => (number, 1024),
        Some(number) => (number, 1024 * 1024),
        None => (lower.as_str(), 1),
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{text}' is not a size: use {SIZE_FORMS}"))
}

const SERVICE_TIME_FORMS: &str =
    "a duration from 0 to 60s (200ms, 1.5s), or a range drawn uniformly per request (1ms..5ms)";

/// `--service-time`: a duration, or `MIN..MAX` drawn uniformly per request.
pub fn parse_service_time(text: &str) -> Result<ServiceTime, String> {
    let one = |part: &str| -> Result<Duration, String> {
        let part = part.trim();
        let time = if part == "0" {
            Duration::ZERO
        } else {
            humantime::parse_duration(part)
                .map_err(|_| format!("'{text}' is not a service time: use {SERVICE_TIME_FORMS}"))?
        };
        if time > MAX_SERVICE_TIME {
            return Err(format!(
                "'{text}' is too long a service time: use {SERVICE_TIME_FORMS}"
            ));
        }
        Ok(time)
    };
    let time = match text.split_once("..") {
        Some((min, max)) => ServiceTime {
            min: one(min)?,
            max: one(max)?,
        },
        None => ServiceTime::fixed(one(text)?),
    };
    if time.min > time.max {
        return Err(format!(
            "'{text}' is an empty range: put the shorter time first, e.g. 1ms..5ms"
        ));
    }
    Ok(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(64 * 1024));
        assert_eq!(parse_size("1M"), Ok(1024 * 1024));
        for bad in ["", "0", "k", "1.5m", "64kb", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn service_times_are_fixed_or_a_range() {
        let ms = Duration::from_millis;
        assert_eq!(parse_service_time("200ms"), Ok(ServiceTime::fixed(ms(200))));
        assert_eq!(parse_service_time("0"), Ok(ServiceTime::default()));
        assert_eq!(
            parse_service_time("1ms..5ms"),
            Ok(ServiceTime {
                min: ms(1),
                max: ms(5)
            })
        );
        for bad in ["", "fast", "5ms..1ms", "2m", "1ms..", "-1ms"] {
            let err = parse_service_time(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
        assert_eq!(ServiceTime::default().draw(), None);
        assert_eq!(ServiceTime::fixed(ms(3)).draw(), Some(ms(3)));
        let range = parse_service_time("1ms..5ms").unwrap();
        assert_eq!(range.describe(), "1ms..5ms");
        for _ in 0..100 {
            let time = range.draw().unwrap();
            assert!((ms(1)..=ms(5)).contains(&time), "{time:?}");
        }
    }

    #[test]
    fn model_names_parse_back() {
        for model in [Model::Async, Model::Threads, Model::Pool] {
            assert_eq!(parse_model(model.name()), Ok(model));
        }
    }

    #[test]
    fn pool_sizes_and_policies_parse_with_their_bounds() {
        assert_eq!(parse_workers("5"), Ok(5));
        assert!(parse_workers("0").unwrap_err().contains("from 1 to 4096"));
        assert_eq!(parse_queue("0"), Ok(0));
        assert_eq!(parse_queue("20"), Ok(20));
        assert!(parse_queue("-1").unwrap_err().contains("0 (no queue)"));
        for (name, policy) in WhenQueueFull::ALL {
            assert_eq!(parse_when_queue_full(name), Ok(policy));
            assert_eq!(policy.name(), name);
        }
        assert!(
            parse_when_queue_full("drop")
                .unwrap_err()
                .ends_with("use wait, reject or close")
        );
    }

    #[test]
    fn every_policy_parses_by_its_name_and_errors_list_them_all() {
        for (name, policy) in WhenFull::ALL {
            assert_eq!(parse_when_full(name), Ok(policy));
            assert_eq!(policy.name(), name);
        }
        let err = parse_when_full("bogus").unwrap_err();
        assert!(
            err.ends_with("close, reset, stop-accepting, close-oldest, queue"),
            "{err}"
        );
        assert!(parse_max_conns("0").unwrap_err().contains("stop-accepting"));
        assert_eq!(parse_max_conns("50"), Ok(50));
        assert!(parse_max_conns("ten").is_err());
    }

    #[test]
    fn reject_messages_name_the_cap_unless_given() {
        let mut options = ServeOptions {
            cap: Some(Cap {
                max: 5,
                when_full: WhenFull::Close,
            }),
            ..ServeOptions::default()
        };
        assert_eq!(
            options.full_message(),
            b"ceiling-serve: max connections (5) reached\r\n"
        );
        options.reject_message = Some(b"busy\n".to_vec());
        assert_eq!(options.full_message(), b"busy\n");
        assert_eq!(options.spawn_failed_message(), b"busy\n");
    }
}
