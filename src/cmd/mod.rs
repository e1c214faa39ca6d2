//! One module per subcommand: turns flags into validated values, starts the
//! work, wires snapshots to the UI and the results directory.

pub mod explore;
pub mod lab;
pub mod run;
pub mod serve;
pub mod worker;

/// What to do about an fd limit above the hard RLIMIT_NOFILE: only root can
/// raise the hard limit, and ceiling does not do it for anyone, so root is
/// told how and everyone else that it takes root.
pub fn hard_limit_remedy(wanted: u64) -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return "only root can raise the hard limit".to_string();
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let ceiling = match nr_open {
        Some(n) if wanted > n => format!(
            "; {wanted} is also above fs.nr_open ({n}), the most any process may have, \
             which is a host setting"
        ),
        _ => String::new(),
    };
    format!(
        "ceiling does not raise the hard limit itself: raise it in the shell that starts \
         ceiling (`ulimit -Hn {wanted}`) or for the user in /etc/security/limits.conf \
         (nofile){ceiling}"
    )
}
