//! How the server serves: its model (tasks or threads), its connection cap
//! and what it does when the cap is reached, its idle timeout. Also the
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
}

impl Model {
    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        match self {
            Model::Async => "async",
            Model::Threads => "threads",
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

/// `async` or `threads`.
pub fn parse_model(text: &str) -> Result<Model, String> {
    match text.trim() {
        "async" => Ok(Model::Async),
        "threads" => Ok(Model::Threads),
        other => Err(format!(
            "'{other}' is not a server model: use async (one task per connection) or threads (one OS thread per connection)"
        )),
    }
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
    fn model_names_parse_back() {
        for model in [Model::Async, Model::Threads] {
            assert_eq!(parse_model(model.name()), Ok(model));
        }
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
