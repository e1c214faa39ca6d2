//! The short human summary printed at the end of a run: what was asked,
//! what was reached (in the terms of `Totals`: attempts end established or
//! as connect failures, connections end closed by ceiling, closed by the
//! server or lost with a worker), a run in which nothing connected, the
//! first limit in plain words with its remedy, and where the files are. Fits 80 columns (long evidence and remedies wrap).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::model::{FirstLimit, LimitKind, Percentiles, Summary, Syscall, errno_name, thousands};

/// Lines are wrapped to this many columns.
const WIDTH: usize = 80;

/// Renders the summary a person reads at the end of a run.
pub fn render(summary: &Summary, results_dir: &Path) -> String {
    let mut out = String::new();
    header(&mut out, summary);
    totals(&mut out, summary);
    if let Some(nothing) = &summary.nothing_connected {
        out.push('\n');
        wrap(&mut out, "", &nothing.message);
    }
    match &summary.first_limit {
        Some(limit) => first_limit(&mut out, limit, summary),
        None if summary.nothing_connected.is_some() => {}
        None => out.push_str("\nfirst limit: no limit hit\n"),
    }
    failures(&mut out, summary);
    fleet(&mut out, summary);
    worker_deaths(&mut out, summary);
    warnings(&mut out, summary);
    lab_server(&mut out, summary);
    requests(&mut out, summary);
    latency(&mut out, summary);
    let _ = writeln!(out, "\nresults: {}", results_dir.display());
    out
}

/// Request mode: what became of the requests.
fn requests(out: &mut String, summary: &Summary) {
    let Some(r) = &summary.requests else { return };
    let errors: u64 = r.errors.values().sum();
    let _ = writeln!(out, "\nrequests");
    let _ = writeln!(out, "  scheduled   {:>12}", thousands(r.scheduled));
    let _ = writeln!(out, "  sent        {:>12}", thousands(r.sent));
    let _ = writeln!(out, "  responses   {:>12}", thousands(r.responses));
    let kinds: Vec<String> = r
        .errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{kind} {}", thousands(*n)))
        .collect();
    let _ = writeln!(
        out,
        "  errors      {:>12}{}",
        thousands(errors),
        if kinds.is_empty() {
            String::new()
        } else {
            format!("  ({})", kinds.join(", "))
        }
    );
    let _ = writeln!(out, "  rejects     {:>12}", thousands(r.rejects));
    let _ = writeln!(out, "  reconnects  {:>12}", thousands(r.reconnects));
    if r.queued_at_end + r.in_flight_at_end > 0 {
        let _ = writeln!(
            out,
            "  at the end  {} queued, {} in flight",
            thousands(r.queued_at_end),
            thousands(r.in_flight_at_end)
        );
    }
    let status: Vec<String> = r
        .status
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(class, n)| format!("{class} {}", thousands(*n)))
        .collect();
    if !status.is_empty() {
        let _ = writeln!(out, "  status      {}", status.join(", "));
    }
    for text in &r.error_texts {
        let _ = writeln!(out, "  error reply \"{text}\"");
    }
}

/// The lab server's design and what it used: threads, memory per
/// connection, CPU, context switches, and its cgroups' refusals.
fn lab_server(out: &mut String, summary: &Summary) {
    let Some(lab) = &summary.lab else { return };
    let Some(f) = &lab.server.figures else { return };
    let mut limits = Vec::new();
    if let Some(max) = lab.server.threads_max {
        limits.push(format!("pids.max {}", thousands(max)));
    }
    if let Some(cpus) = lab.server.cpus {
        limits.push(format!("CPU quota {cpus} cores"));
    }
    let _ = writeln!(
        out,
        "\nlab server ({}{})",
        lab.server.model,
        if limits.is_empty() {
            String::new()
        } else {
            format!(", {}", limits.join(", "))
        }
    );
    let mut line = format!(
        "{} threads at most, RSS {} KiB at start and {} KiB at most{}; CPU {:.2} s user + {:.2} s \
         system; context switches {} voluntary, {} involuntary",
        thousands(f.peak_threads),
        thousands(f.rss_kib_at_start),
        thousands(f.peak_rss_kib),
        f.rss_bytes_per_connection
            .map_or(String::new(), |b| format!(
                " (~{} B per held connection)",
                thousands(b)
            )),
        f.cpu_user_s,
        f.cpu_system_s,
        thousands(f.voluntary_switches),
        thousands(f.involuntary_switches)
    );
    if let Some(refused) = f.pids_refused.filter(|&n| n > 0) {
        let _ = write!(
            line,
            "; the pids limit refused {} thread starts",
            thousands(refused)
        );
    }
    if let (Some(periods), Some(seconds)) = (f.cpu_throttled_periods, f.cpu_throttled_s)
        && periods > 0
    {
        let _ = write!(
            line,
            "; throttled by its CPU quota in {} periods, {seconds:.2} s in all",
            thousands(periods)
        );
    }
    wrap(out, "  ", &line);
}

/// A fleet's hosts: one line each, and the start skew.
fn fleet(out: &mut String, summary: &Summary) {
    let Some(fleet) = &summary.fleet else { return };
    let _ = writeln!(
        out,
        "\nhosts ({}; start skew {})",
        fleet.hosts.len(),
        fleet
            .start_skew_ms
            .map_or_else(|| "unknown".to_string(), |ms| format!("{ms:.1} ms"))
    );
    for h in &fleet.hosts {
        let t = &h.totals;
        let mut line = format!(
            "host {} ({}): attempted {}, established {}, failed {}, lost {}",
            h.index,
            h.name,
            thousands(t.attempted),
            thousands(t.established),
            thousands(t.connect_failed),
            thousands(t.lost_with_worker)
        );
        if let Some(limit) = &h.first_limit {
            let _ = write!(line, "; first limit {}", limit.describe());
        }
        wrap(out, "  ", &line);
    }
    for note in &fleet.address_notes {
        wrap(out, "  ", &format!("note: {note}"));
    }
}

/// One line per worker process (or agent) that died, with what it took
/// with it.
fn worker_deaths(out: &mut String, summary: &Summary) {
    let deaths = &summary.workers.deaths;
    if deaths.is_empty() {
        return;
    }
    let _ = match &summary.fleet {
        Some(fleet) => writeln!(
            out,
            "\nagents lost ({} of {})",
            deaths.len(),
            fleet.hosts.len()
        ),
        None => writeln!(
            out,
            "\nworker processes that died ({} of {})",
            deaths.len(),
            summary.workers.processes
        ),
    };
    for d in deaths {
        let pid = d.pid.map_or(String::new(), |pid| format!(" (pid {pid})"));
        let who = d
            .host
            .clone()
            .unwrap_or_else(|| format!("worker {}{pid}", d.worker));
        let mut line = format!(
            "{who} {} after {}: {} held connections lost, {} attempts under way, {} \
             never attempted",
            d.how,
            seconds(d.at_elapsed_s),
            thousands(d.held),
            thousands(d.in_flight),
            thousands(d.not_attempted)
        );
        if let Some(kills) = d.oom_kills {
            let _ = write!(line, "; memory cgroup OOM kills so far: {kills}");
        }
        wrap(out, "  ", &line);
        if !d.stderr_tail.is_empty() {
            let last = d.stderr_tail.lines().last().unwrap_or_default();
            wrap(out, "    stderr: ", last);
        }
    }
}

fn header(out: &mut String, summary: &Summary) {
    let name = summary
        .scenario
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("(unnamed scenario)");
    let status = if summary.aborted {
        "aborted before the end"
    } else {
        "completed"
    };
    let _ = writeln!(out, "{name}: ran {}, {status}", seconds(summary.duration_s));
}

fn totals(out: &mut String, summary: &Summary) {
    let t = &summary.totals;
    // Where the established connections went, when not all to ceiling's
    // own closes.
    let other_ends = t.closed_by_server + t.lost_with_worker + t.held_at_end > 0;
    let rows = [
        ("attempted", t.attempted, true, ""),
        ("established", t.established, true, ""),
        ("connect failures", t.connect_failed, true, ""),
        (
            "unfinished",
            t.unfinished,
            t.unfinished > 0,
            "under way when the run stopped",
        ),
        (
            "never attempted",
            t.never_attempted,
            t.never_attempted > 0,
            "",
        ),
        ("closed by ceiling", t.closed_by_driver, other_ends, ""),
        (
            "closed by server",
            t.closed_by_server,
            t.closed_by_server > 0,
            "",
        ),
        (
            "lost with worker",
            t.lost_with_worker,
            t.lost_with_worker > 0,
            "",
        ),
        ("held at end", t.held_at_end, t.held_at_end > 0, ""),
        ("peak active", t.peak_active, true, ""),
    ];
    let rows: Vec<(String, u64, String)> = rows
        .into_iter()
        .filter(|&(_, _, shown, _)| shown)
        .map(|(label, n, _, note)| (label.to_string(), n, note.to_string()))
        .collect();
    out.push_str("\nconnections\n");
    table(out, &rows);
    if t.established > 0 {
        let _ = writeln!(
            out,
            "  the last established after {}",
            seconds(t.last_established_s)
        );
    }
}

fn first_limit(out: &mut String, limit: &FirstLimit, summary: &Summary) {
    let _ = writeln!(
        out,
        "\nfirst limit: {} ({})",
        limit.kind.describe(),
        limit.kind
    );
    let _ = writeln!(
        out,
        "  at attempt {}, after {}, with {} active",
        thousands(limit.at_attempt),
        seconds(limit.at_elapsed_s),
        thousands(limit.active_at)
    );
    // A fleet's: the host that hit it, with what it held itself.
    let own = summary
        .fleet
        .iter()
        .flat_map(|f| &f.hosts)
        .filter_map(|h| h.first_limit.as_ref())
        .find(|l| l.at_attempt == limit.at_attempt);
    if let (Some(host), Some(own)) = (&limit.host, own) {
        let _ = writeln!(out, "  {host}: {}", own.describe());
    }
    let _ = writeln!(out, "  {} → {}", limit.source, limit.target);
    let _ = writeln!(out, "  {}", failed_call(limit));
    if !limit.evidence.message.is_empty() {
        wrap(out, "  evidence: ", &limit.evidence.message);
    }
    if !limit.remedy.is_empty() {
        wrap(out, "  remedy: ", &limit.remedy);
    }
}

/// "connect() failed: EADDRNOTAVAIL (errno 99)", or why there is no errno.
fn failed_call(limit: &FirstLimit) -> String {
    match limit.errno {
        Some(errno) => {
            let name = limit
                .errno_name
                .as_deref()
                .or_else(|| errno_name(errno))
                .map(|name| format!("{name} (errno {errno})"))
                .unwrap_or_else(|| format!("errno {errno}"));
            format!("{}() failed: {name}", limit.syscall)
        }
        None if limit.syscall == Syscall::Timeout => {
            "connect() did not finish within the connect timeout (no errno)".into()
        }
        None if limit.syscall == Syscall::WorkerExit => {
            "a worker process ended before its share of the run was done (no errno)".into()
        }
        None => format!("{}(): no errno", limit.syscall),
    }
}

fn failures(out: &mut String, summary: &Summary) {
    let rows: Vec<_> = LimitKind::ALL
        .iter()
        .filter_map(|kind| {
            let count = summary.failures_by_kind.get(kind.as_str()).copied()?;
            (count > 0).then(|| (kind.as_str().to_string(), count, kind.describe().into()))
        })
        .collect();
    if !rows.is_empty() {
        out.push_str("\nfailures by kind\n");
        table(out, &rows);
    }
}

fn warnings(out: &mut String, summary: &Summary) {
    let w = &summary.warnings;
    // Isolated slow connect() calls happen on any busy host; only seconds
    // where most calls were slow say the kernel is searching for ports.
    let slow_note = format!(
        "{} slow calls, longest {}",
        w.port_search_slow,
        micros(w.connect_syscall_max_us)
    );
    let rows: Vec<_> = [
        (
            "seconds of slow connect(): port search",
            w.port_search_stall_seconds,
            slow_note,
        ),
        (
            "handshakes with a SYN retransmit",
            w.syn_retransmit_handshakes,
            String::new(),
        ),
        ("echo requests unanswered", w.echo_unanswered, String::new()),
        (
            "connections with no first echo reply in time",
            w.echo_silent_connections,
            w.echo_silent_first_attempt
                .map(|first| {
                    format!(
                        "from #{} on: a server that accepts and queues?",
                        thousands(first)
                    )
                })
                .unwrap_or_default(),
        ),
    ]
    .into_iter()
    .filter(|(_, count, _)| *count > 0)
    .map(|(label, count, note)| (label.to_string(), count, note))
    .collect();
    let generator = w.generator_bottleneck.as_ref();
    if !rows.is_empty() || generator.is_some() {
        out.push_str("\nwarnings\n");
        table(out, &rows);
        if let Some(g) = generator {
            wrap(out, "  ", &g.message);
        }
    }
}

fn latency(out: &mut String, summary: &Summary) {
    let metrics: Vec<(&str, &Percentiles)> = [
        ("connect", "connect_us"),
        ("rtt", "rtt_us"),
        ("queue", "queue_us"),
        ("service", "service_us"),
        ("total", "total_us"),
    ]
    .into_iter()
    .filter_map(|(label, key)| Some((label, summary.latency.get(key)?)))
    .filter(|(label, p)| *label == "connect" || p.count > 0)
    .collect();
    if metrics.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{:<10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}",
        "latency", "p50", "p90", "p99", "p99.9", "max", "samples"
    );
    if let Some(g) = &summary.warnings.generator_bottleneck {
        let _ = writeln!(
            out,
            "  (ceiling's own CPU was saturated for {} s: those seconds' latencies include its \
             own delay)",
            g.seconds
        );
    }
    for (label, p) in metrics {
        if p.count == 0 {
            let _ = writeln!(out, "  {label:<8}no samples");
            continue;
        }
        let _ = writeln!(
            out,
            "  {label:<8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}",
            micros(p.p50),
            micros(p.p90),
            micros(p.p99),
            micros(p.p999),
            micros(p.max),
            thousands(p.count)
        );
    }
}

/// Rows of label, count, note: labels padded, counts right-aligned.
fn table(out: &mut String, rows: &[(String, u64, String)]) {
    let label_width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let counts: Vec<String> = rows.iter().map(|r| thousands(r.1)).collect();
    let count_width = counts.iter().map(String::len).max().unwrap_or(0);
    for ((label, _, note), count) in rows.iter().zip(&counts) {
        let line = format!("  {label:<label_width$}  {count:>count_width$}  {note}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// Appends `prefix` + `text`, wrapped at [`WIDTH`] with continuation lines
/// indented under the text.
fn wrap(out: &mut String, prefix: &str, text: &str) {
    let indent = " ".repeat(prefix.chars().count());
    let mut line = prefix.to_string();
    let mut line_has_words = false;
    for word in text.split_whitespace() {
        if line_has_words && line.chars().count() + 1 + word.chars().count() > WIDTH {
            let _ = writeln!(out, "{line}");
            line = indent.clone();
            line_has_words = false;
        }
        if line_has_words {
            line.push(' ');
        }
        line.push_str(word);
        line_has_words = true;
    }
    let _ = writeln!(out, "{line}");
}

/// Microseconds in a readable unit, about three significant digits:
/// "850 µs", "1.25 ms", "12.5 ms", "2.50 s".
fn micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 999_500 {
        format!("{} ms", three_digits(us as f64 / 1e3))
    } else {
        format!("{} s", three_digits(us as f64 / 1e6))
    }
}

/// Seconds for durations: "850 ms", "12.3 s", "1m 5s".
fn seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return format!("{s} s");
    }
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 59.95 {
        format!("{s:.1} s")
    } else {
        humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string()
    }
}

fn three_digits(x: f64) -> String {
    if x < 9.995 {
        format!("{x:.2}")
    } else if x < 99.95 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_units_readable() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(28_232), "28,232");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(1_250), "1.25 ms");
        assert_eq!(micros(9_999), "10.0 ms");
        assert_eq!(micros(12_500), "12.5 ms");
        assert_eq!(micros(999_499), "999 ms");
        assert_eq!(micros(999_500), "1.00 s");
        assert_eq!(micros(125_000_000), "125 s");
        assert_eq!(seconds(0.25), "250 ms");
        assert_eq!(seconds(12.34), "12.3 s");
        assert_eq!(seconds(65.2), "1m 5s");
    }

    #[test]
    fn long_text_wraps_under_its_label() {
        let mut out = String::new();
        wrap(&mut out, "  remedy: ", &"word ".repeat(30));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH));
        assert!(lines[1].starts_with("          word"));
    }
}
