//! A run that attempted connections and established none found no limit:
//! it found a target that is not there. Names why in plain words (nothing
//! listens, the path is blocked, or how the attempts failed) from the
//! totals and the failure kinds.
//!
//! Pure: it reads only its arguments.

use std::collections::BTreeMap;

use crate::model::{LimitKind, NothingConnected, NothingConnectedCause, Totals, thousands};

/// Why nothing connected, or None when something did (or nothing was
/// attempted). `targets` are the run's targets as written.
pub fn nothing_connected(
    totals: &Totals,
    failures_by_kind: &BTreeMap<String, u64>,
    targets: &[String],
) -> Option<NothingConnected> {
    if totals.established > 0 || totals.attempted == 0 {
        return None;
    }
    let count = |kind: LimitKind| failures_by_kind.get(kind.as_str()).copied().unwrap_or(0);
    let failed = totals.connect_failed;
    let to = match targets {
        [] => "the target".to_string(),
        [one] => one.clone(),
        many => many.join(", "),
    };
    let every = if totals.attempted == 1 {
        "the only attempt".to_string()
    } else {
        format!("every attempt ({})", thousands(totals.attempted))
    };
    let refused = count(LimitKind::Refused);
    let timed_out = count(LimitKind::ConnectTimeout)
        + count(LimitKind::BacklogOverflow)
        + count(LimitKind::ConntrackFull);
    let unreachable = count(LimitKind::Unreachable);
    let (cause, message) = if failed == 0 {
        (
            NothingConnectedCause::Unfinished,
            format!(
                "nothing connected: the run was stopped before any of the {} attempts to {to} \
                 finished its handshake",
                thousands(totals.attempted)
            ),
        )
    } else if refused == failed && totals.unfinished == 0 {
        (
            NothingConnectedCause::Refused,
            format!(
                "nothing accepted a connection: {every} to {to} was refused (ECONNREFUSED): is \
                 the server running and is this the right port?"
            ),
        )
    } else if timed_out + unreachable == failed {
        let how = match (timed_out, unreachable) {
            (_, 0) => "timed out (no answer to the SYN)".to_string(),
            (0, _) => "was unreachable (EHOSTUNREACH/ENETUNREACH)".to_string(),
            (t, u) => format!(
                "timed out ({}) or was unreachable ({})",
                thousands(t),
                thousands(u)
            ),
        };
        (
            NothingConnectedCause::Blocked,
            format!(
                "nothing accepted a connection: {every} to {to} {how}: the path is blocked (a \
                 firewall dropping SYNs, a wrong address, a host that is down or a missing \
                 route)"
            ),
        )
    } else {
        let mut kinds: Vec<(u64, LimitKind)> = LimitKind::ALL
            .iter()
            .map(|&k| (count(k), k))
            .filter(|&(n, _)| n > 0)
            .collect();
        kinds.sort_by_key(|&(n, _)| std::cmp::Reverse(n));
        let how: Vec<String> = kinds
            .iter()
            .map(|(n, k)| format!("{} {} ({k})", thousands(*n), k.describe()))
            .collect();
        (
            NothingConnectedCause::Failed,
            format!(
                "nothing connected: none of the {} attempts to {to} was established: {}",
                thousands(totals.attempted),
                how.join(", ")
            ),
        )
    };
    Some(NothingConnected { cause, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(attempted: u64, established: u64, failures: &[(LimitKind, u64)]) -> Totals {
        let failed: u64 = failures.iter().map(|(_, n)| n).sum();
        Totals {
            attempted,
            established,
            connect_failed: failed,
            unfinished: attempted - established - failed,
            ..Totals::default()
        }
    }

    fn kinds(failures: &[(LimitKind, u64)]) -> BTreeMap<String, u64> {
        failures
            .iter()
            .map(|(k, n)| (k.as_str().to_string(), *n))
            .collect()
    }

    fn verdict(attempted: u64, failures: &[(LimitKind, u64)]) -> Option<NothingConnected> {
        nothing_connected(
            &run(attempted, 0, failures),
            &kinds(failures),
            &["127.0.0.1:9".to_string()],
        )
    }

    #[test]
    fn every_attempt_refused_is_nothing_listening() {
        let v = verdict(5, &[(LimitKind::Refused, 5)]).unwrap();
        assert_eq!(v.cause, NothingConnectedCause::Refused);
        assert_eq!(
            v.message,
            "nothing accepted a connection: every attempt (5) to 127.0.0.1:9 was refused \
             (ECONNREFUSED): is the server running and is this the right port?"
        );
    }

    #[test]
    fn timeouts_and_unreachable_are_a_blocked_path() {
        let v = verdict(
            4,
            &[(LimitKind::ConnectTimeout, 3), (LimitKind::Unreachable, 1)],
        )
        .unwrap();
        assert_eq!(v.cause, NothingConnectedCause::Blocked);
        assert!(
            v.message.contains("timed out (3) or was unreachable (1)"),
            "{}",
            v.message
        );
        assert!(v.message.contains("the path is blocked"), "{}", v.message);
    }

    #[test]
    fn mixed_failures_are_listed_and_a_stopped_run_says_so() {
        let v = verdict(
            4,
            &[(LimitKind::Refused, 1), (LimitKind::FdLimitProcess, 3)],
        )
        .unwrap();
        assert_eq!(v.cause, NothingConnectedCause::Failed);
        assert!(
            v.message.contains("3 per-process fd limit"),
            "{}",
            v.message
        );
        let v = verdict(4, &[]).unwrap();
        assert_eq!(v.cause, NothingConnectedCause::Unfinished);
    }

    #[test]
    fn a_run_that_connected_once_or_never_tried_is_not_this() {
        let t = run(5, 1, &[(LimitKind::Refused, 4)]);
        assert!(nothing_connected(&t, &kinds(&[(LimitKind::Refused, 4)]), &[]).is_none());
        assert!(verdict(0, &[]).is_none());
    }
}
