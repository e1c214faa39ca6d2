//! A validated [`Scenario`] written back as a scenario file (TOML) that
//! reads back to the same scenario: `ceiling explore` hands each step of its
//! ladder to a child `ceiling lab` or `ceiling run` this way, and keeps the
//! file beside the step's results so the step can be rerun as it was.

use std::net::IpAddr;

use toml::{Table, Value};

use super::lab::Lab;
use super::units::{HoldMode, Processes, format_duration};
use super::{Pace, Scenario};

/// The scenario as TOML, every field spelled out (defaults included), so
/// the file does not depend on this version's defaults.
pub fn to_toml(scenario: &Scenario) -> String {
    let mut t = Table::new();
    let s = scenario;
    t.insert("name".into(), s.name.clone().into());
    if !s.uses_embedded_target() {
        // Names as given: the run that reads the file resolves them.
        let names = s.target_names.iter().map(|n| n.text.clone());
        t.insert(
            "targets".into(),
            strings(s.targets.iter().map(ToString::to_string).chain(names)),
        );
    }
    if !s.sources.is_empty() {
        t.insert("sources".into(), strings(compress_ips(&s.sources)));
    }
    if let Some(ports) = s.source_ports {
        t.insert("source_ports".into(), ports.to_string().into());
    }
    t.insert("connections".into(), count(s.connections));
    match s.pace {
        Pace::Unlimited => {
            t.insert("rate".into(), Value::Integer(0));
        }
        Pace::Constant { per_s } => {
            t.insert("rate".into(), rate(per_s));
        }
        Pace::Ramp(r) => {
            t.insert(
                "ramp".into(),
                format!("{}..{}/{}", r.from, r.to, format_duration(r.over)).into(),
            );
        }
        Pace::Steps(steps) => {
            t.insert("steps".into(), steps.text().into());
        }
    }
    t.insert(
        "hold".into(),
        match s.hold {
            HoldMode::UntilEnd => "end".to_string(),
            HoldMode::For(d) => format_duration(d),
        }
        .into(),
    );
    if let Some(d) = s.duration {
        t.insert("duration".into(), format_duration(d).into());
    }
    t.insert(
        "connect_timeout".into(),
        format_duration(s.connect_timeout).into(),
    );
    t.insert("mode".into(), enum_name(&s.mode).into());
    t.insert("message".into(), s.message.clone().into());
    t.insert("interval".into(), format_duration(s.interval).into());
    t.insert("close".into(), enum_name(&s.close).into());
    if let Some(n) = s.fd_limit {
        t.insert("fd_limit".into(), count(n));
    }
    t.insert("stop_at_first_limit".into(), s.stop_at_first_limit.into());
    if let Some(n) = s.threads {
        t.insert("threads".into(), count(n));
    }
    if let Some(n) = s.max_in_flight {
        t.insert("max_in_flight".into(), count(n));
    }
    match s.processes {
        None => {}
        Some(Processes::Auto) => {
            t.insert("processes".into(), "auto".into());
        }
        Some(Processes::Count(n)) => {
            t.insert("processes".into(), count(n));
        }
    }
    t.insert("pick_port_at".into(), enum_name(&s.pick_port_at).into());
    if let Some(lab) = &s.lab {
        t.insert("lab".into(), Value::Table(lab_table(lab)));
    }
    toml::to_string(&t).expect("a table of plain values serializes")
}

fn lab_table(lab: &Lab) -> Table {
    let mut t = Table::new();
    for sysctl in &lab.sysctls {
        let field = sysctl.name.rsplit('.').next().unwrap_or(sysctl.name);
        let value = match field {
            "ip_local_port_range" => sysctl
                .value
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("-")
                .into(),
            "tcp_abort_on_overflow" => Value::Boolean(sysctl.value.trim() != "0"),
            _ => match sysctl.value.trim().parse::<i64>() {
                Ok(n) => Value::Integer(n),
                Err(_) => sysctl.value.clone().into(),
            },
        };
        t.insert(field.into(), value);
    }
    if let Some(entries) = lab.ehash_entries {
        t.insert("tcp_ehash_entries".into(), count(u64::from(entries)));
    }
    if let Some(bytes) = lab.memory_limit {
        t.insert("memory_limit".into(), count(bytes));
    }
    t.insert(
        "server_backlog".into(),
        Value::Integer(i64::from(lab.server.backlog)),
    );
    t.insert("server_accept".into(), lab.server.accept.into());
    t.insert("server_mode".into(), lab.server.mode.as_str().into());
    if lab.server.processes > 1 {
        t.insert(
            "server_processes".into(),
            Value::Integer(lab.server.processes as i64),
        );
    }
    t.insert("server_model".into(), lab.server.model.as_str().into());
    if let Some(n) = lab.server.threads_max {
        t.insert("server_threads_max".into(), count(n));
    }
    if let Some(millis) = lab.server.cpu_millis {
        t.insert("server_cpus".into(), Value::Float(millis as f64 / 1000.0));
    }
    t
}

fn strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn count(n: u64) -> Value {
    i64::try_from(n).map_or_else(|_| Value::String(n.to_string()), Value::Integer)
}

fn rate(per_s: f64) -> Value {
    if per_s.fract() == 0.0 && per_s < 1e15 {
        Value::Integer(per_s as i64)
    } else {
        Value::Float(per_s)
    }
}

/// A unit enum's serde name, e.g. `idle`.
fn enum_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => panic!("not a unit enum: {other:?}"),
    }
}

/// Consecutive IPv4 addresses as `A-B` ranges; everything else one by one.
fn compress_ips(ips: &[IpAddr]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ips.len() {
        let IpAddr::V4(first) = ips[i] else {
            out.push(ips[i].to_string());
            i += 1;
            continue;
        };
        let mut j = i;
        while let Some(IpAddr::V4(next)) = ips.get(j + 1)
            && u32::from(*next) == u32::from(first) + (j + 1 - i) as u32
        {
            j += 1;
        }
        out.push(if j == i {
            first.to_string()
        } else {
            format!("{first}-{}", ips[j])
        });
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_text;

    fn round_trip(text: &str) -> (Scenario, Scenario, String) {
        let first = Scenario::validate(parse_text(text).unwrap()).unwrap();
        let written = to_toml(&first);
        let second =
            Scenario::validate(parse_text(&written).unwrap_or_else(|e| panic!("{e}\n{written}")))
                .unwrap_or_else(|e| panic!("{e}\n{written}"));
        (first, second, written)
    }

    fn same(a: &Scenario, b: &Scenario) {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap()
        );
        assert_eq!(a.lab, b.lab);
    }

    #[test]
    fn a_full_scenario_reads_back_the_same() {
        let (a, b, written) = round_trip(
            r#"
            name = "every-field"
            targets = ["127.0.0.1:7070-7071", "[::1]:7072"]
            sources = ["127.0.0.2-127.0.0.5", "127.0.0.9", "::1"]
            connections = "12k"
            ramp = "0..2.5k/1m30s"
            hold = "end"
            duration = "2m"
            connect_timeout = "1500ms"
            mode = "echo"
            message = "PING \"quoted\"\r\n"
            interval = "250ms"
            close = "rst"
            fd_limit = 4096
            stop_at_first_limit = true
            threads = 3
            processes = 2
            [lab]
            ip_local_port_range = "50000-50999"
            somaxconn = 100
            tcp_abort_on_overflow = true
            tcp_tw_reuse = 0
            tcp_ehash_entries = 1048576
            memory_limit = "48MiB"
            server_backlog = 8
            server_accept = false
            server_mode = "echo"
            server_processes = 3
            "#,
        );
        same(&a, &b);
        assert!(
            written.contains("\"127.0.0.2-127.0.0.5\""),
            "consecutive sources as one range:\n{written}"
        );
    }

    #[test]
    fn defaults_and_unlimited_rate_read_back_the_same() {
        let (a, b, _) = round_trip("rate = 0\nprocesses = \"auto\"\n");
        same(&a, &b);
        let (a, b, _) = round_trip("rate = 1234.5\nsources = [\"127.0.0.1\"]\n");
        same(&a, &b);
    }
}
