//! Request mode's settings (`--mode request`): the protocol and its
//! request, the pool, and what a request does when no connection is free.
//! Checked here, so the engine only builds the request bytes.

use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Pool size when none is given.
pub const DEFAULT_POOL: u64 = 50;
/// Request rate when none is given (requests/s).
pub const DEFAULT_REQUEST_RATE: f64 = 4_000.0;
/// How long a queued request may wait for a connection by default.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// A request run without `--duration` lasts this long.
pub const DEFAULT_REQUEST_DURATION: Duration = Duration::from_secs(10);
/// The built-in server's service time in request mode: ~10 ms each, so
/// the default rate keeps ~40 of the default 50 connections busy and
/// some requests queue.
pub const BUILT_IN_SERVICE_TIME: &str = "5ms..15ms";
/// Most requests queued at once (each takes 16 bytes).
pub const MAX_QUEUED: usize = 1_000_000;

/// The protocol of request mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RequestProtocol {
    /// The message, echoed back.
    #[default]
    Echo,
    /// HTTP/1.1 with keep-alive.
    Http,
    /// One RESP command (default PING).
    Redis,
    /// A line out, a line back.
    Line,
}

impl RequestProtocol {
    /// The `ceiling serve --mode` that answers it.
    pub fn serve_mode(self) -> &'static str {
        match self {
            RequestProtocol::Echo => "echo",
            RequestProtocol::Http => "http",
            RequestProtocol::Redis => "redis",
            RequestProtocol::Line => "line",
        }
    }
}

/// What a request due when no pooled connection is free does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenPoolBusy {
    /// Wait for a connection, at most the queue timeout, then it is a
    /// reject.
    #[default]
    Queue,
    /// Not sent: counted as a reject (k6's dropped iterations).
    Reject,
}

/// Request mode, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    pub protocol: RequestProtocol,
    pub pool: u64,
    pub when_pool_busy: WhenPoolBusy,
    #[serde(with = "humantime_serde_compat")]
    pub queue_timeout: Duration,
    /// HTTP only.
    pub method: String,
    pub path: String,
    /// "Name: value" each.
    pub headers: Vec<String>,
    /// The body as typed (escapes and all).
    pub body: String,
    /// Redis only: the command's words.
    pub command: String,
}

/// Durations as `"1s"` text, both ways.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        super::super::units::serialize_duration(d, s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::super::units::deserialize_duration(d)
    }
}

/// The method, if it is one token of letters (GET, POST, ...).
pub fn check_method(method: &str) -> Result<(), String> {
    if !method.is_empty() && method.len() <= 32 && method.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "'{method}' is not an HTTP method: use upper-case letters, e.g. GET, POST, HEAD"
        ))
    }
}

/// The path, if it starts with `/` (or is `*`) and has no space or
/// control byte.
pub fn check_path(path: &str) -> Result<(), String> {
    let clean = path.bytes().all(|b| b > b' ' && b != 0x7f);
    if clean && (path.starts_with('/') || path == "*") {
        Ok(())
    } else {
        Err(format!(
            "'{path}' is not a request path: give one starting with '/', without spaces, \
             e.g. /index.html"
        ))
    }
}

/// A header, if it is `Name: value` with a token for a name.
pub fn check_header(header: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "'{header}' is not a header: write it as \"Name: value\", e.g. \"Accept: text/plain\""
        )
    };
    let (name, value) = header.split_once(':').ok_or_else(bad)?;
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token || value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(bad());
    }
    Ok(())
}

/// A RESP command: one word at least, of printable text.
pub fn check_command(command: &str) -> Result<(), String> {
    if command.split_whitespace().next().is_none() {
        return Err(format!(
            "'{command}' is not a command: give its words, e.g. PING or \"GET key\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_need_a_colon_and_a_token_name() {
        assert!(check_header("Accept: text/plain").is_ok());
        assert!(check_header("X-A:b").is_ok());
        let err = check_header("Accept text/plain").unwrap_err();
        assert!(err.contains("'Accept text/plain'") && err.contains("Name: value"));
        assert!(check_header(": x").is_err());
        assert!(check_header("A b: x").is_err());
        assert!(check_method("get").is_err());
        assert!(check_path("index.html").is_err());
        assert!(check_path("/a b").is_err());
        assert!(check_command("  ").is_err());
    }
}
