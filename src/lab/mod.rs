//! The lab: a disposable network namespace for this process, with loopback
//! up and per-namespace sysctls written only there, and a memory cgroup
//! ([`cgroup`]). `ceiling lab` uses it; nothing here touches the host's own
//! settings.
//!
//! The namespace is anonymous (`unshare(CLONE_NEWNET)`, never bind-mounted):
//! it exists while a process is in it and disappears when the last one
//! exits, so nothing is ever left in `ip netns list`. It is per task: call
//! [`NetNamespace::enter`] before any thread starts, and every thread and
//! child started afterwards is in it.

pub mod cgroup;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;

/// Errors setting up the lab; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "cannot create a network namespace: {0} (ceiling lab needs root, or CAP_SYS_ADMIN: run \
         it with sudo)"
    )]
    Unshare(io::Error),
    #[error("cannot bring loopback up in the lab's namespace: {0}")]
    Loopback(io::Error),
    #[error(
        "tcp_ehash_entries needs Linux 6.1 or later (this kernel has no \
         net.ipv4.tcp_child_ehash_entries to size a namespace's own table): drop it from [lab]"
    )]
    EhashUnsupported,
    #[error(
        "{name} is not a per-namespace setting on this kernel ({path} is {why} inside the lab's \
         namespace): ceiling lab writes only per-namespace sysctls; drop it from [lab]"
    )]
    NotPerNamespace {
        name: String,
        path: String,
        why: &'static str,
    },
    #[error("cannot set {name} to '{value}' in the lab's namespace: {source}")]
    Write {
        name: String,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("{name}: wrote '{wanted}' in the lab's namespace but it reads back '{got}'")]
    ReadBack {
        name: String,
        wanted: String,
        got: String,
    },
    #[error(
        "{name} changed on the host when it was written in the lab's namespace (was '{before}', \
         now '{after}'): it is not per-namespace here; ceiling wrote '{before}' back and stops"
    )]
    HostChanged {
        name: String,
        before: String,
        after: String,
    },
}

/// One sysctl to write in the namespace: dotted name under `net.` and the
/// value as /proc/sys takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlWrite {
    pub name: String,
    pub value: String,
}

impl SysctlWrite {
    fn path(&self) -> String {
        format!("/proc/sys/{}", self.name.replace('.', "/"))
    }
}

/// Proof that this process is in its own, new network namespace.
#[derive(Debug)]
pub struct NetNamespace {
    /// The sysctls as read back inside, in the order written.
    applied: Vec<(String, String)>,
}

impl NetNamespace {
    /// Moves this process into a new network namespace, brings `lo` up and
    /// writes `sysctls` there, each read back. Call it before any thread
    /// starts: threads that exist already stay in the host's namespace.
    ///
    /// `ehash_entries` gives the namespace a TCP established-connection
    /// hash table of its own with that many buckets (the kernel rounds up to
    /// a power of two), instead of sharing the host's. The kernel sizes a
    /// new namespace's table from `tcp_child_ehash_entries` of the namespace
    /// it is created from, so this first makes an intermediate namespace,
    /// writes that there, and creates the lab's namespace from it: the
    /// host's setting is never written. The intermediate namespace is gone
    /// as soon as this process leaves it.
    ///
    /// Each sysctl must be under `net.`; it is refused unless it is writable
    /// inside the new namespace (the kernel shows host-wide net settings
    /// read-only in a child namespace) and, as a second check, the host's
    /// value (through a file opened before the switch) must not move.
    pub fn enter(
        sysctls: &[SysctlWrite],
        ehash_entries: Option<u32>,
    ) -> Result<NetNamespace, LabError> {
        for s in sysctls {
            assert!(
                s.name.starts_with("net.") && !s.name.contains(".."),
                "the lab writes only net.* sysctls, not {}",
                s.name
            );
        }
        let child_ehash: Vec<SysctlWrite> = ehash_entries
            .map(|entries| SysctlWrite {
                name: CHILD_EHASH.into(),
                value: entries.to_string(),
            })
            .into_iter()
            .collect();
        if let Some(s) = child_ehash.first()
            && std::fs::metadata(s.path()).is_err()
        {
            return Err(LabError::EhashUnsupported);
        }
        // Opened here, in the host's namespace.
        let mut host_of_intermediate = HostValues::open(&child_ehash);
        let mut host = HostValues::open(sysctls);
        unshare_net()?;
        let mut applied = Vec::with_capacity(sysctls.len() + 1);
        if let Some(entries) = ehash_entries {
            host_of_intermediate.write_each(&child_ehash)?;
            unshare_net()?;
            applied.push(own_ehash_size(entries)?);
        }
        loopback_up().map_err(LabError::Loopback)?;
        applied.extend(host.write_each(sysctls)?);
        Ok(NetNamespace { applied })
    }

    /// Every sysctl written, with the value read back inside.
    pub fn applied(&self) -> &[(String, String)] {
        &self.applied
    }
}

/// The sysctl of a namespace that sizes the TCP hash table of namespaces
/// created from it (Linux 6.1+).
const CHILD_EHASH: &str = "net.ipv4.tcp_child_ehash_entries";

/// The size of the current namespace's TCP hash table: read-only, negative
/// when the namespace shares the host's table.
const EHASH: &str = "net.ipv4.tcp_ehash_entries";

/// unshare(CLONE_NEWNET): the calling task (the only one yet) moves into a
/// new network namespace.
fn unshare_net() -> Result<(), LabError> {
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(LabError::Unshare(io::Error::last_os_error()));
    }
    Ok(())
}

/// Checks that the namespace just made has its own hash table of `entries`
/// rounded up to a power of two (the kernel falls back to the host's table
/// when it cannot allocate one).
fn own_ehash_size(entries: u32) -> Result<(String, String), LabError> {
    let path = SysctlWrite {
        name: EHASH.into(),
        value: String::new(),
    }
    .path();
    let got = std::fs::read_to_string(path)
        .map(|v| normalize(&v))
        .unwrap_or_default();
    let wanted = entries.next_power_of_two().to_string();
    if got != wanted {
        return Err(LabError::ReadBack {
            name: EHASH.into(),
            wanted,
            got,
        });
    }
    Ok((EHASH.to_string(), got))
}

/// The host's values of sysctls about to be written in a namespace, through
/// files opened in the host's namespace: reads through them keep showing
/// the host's values after the switch, so a write that reaches the host
/// anyway is seen.
struct HostValues(Vec<Option<(File, String)>>);

impl HostValues {
    fn open(sysctls: &[SysctlWrite]) -> HostValues {
        HostValues(
            sysctls
                .iter()
                .map(|s| {
                    let mut f = File::open(s.path()).ok()?;
                    let before = read_value(&mut f).ok()?;
                    Some((f, before))
                })
                .collect(),
        )
    }

    /// Writes each of `sysctls` (the ones this was opened for) in the
    /// current namespace; (name, value read back) of each.
    fn write_each(&mut self, sysctls: &[SysctlWrite]) -> Result<Vec<(String, String)>, LabError> {
        let mut applied = Vec::with_capacity(sysctls.len());
        for (s, host) in sysctls.iter().zip(self.0.iter_mut()) {
            let got = write_in_namespace(s)?;
            if let Some((file, before)) = host {
                let after = read_value(file).unwrap_or_else(|_| before.clone());
                if after != *before {
                    // Cannot happen for a table the kernel registers per
                    // namespace; if it ever does, undo and stop.
                    let _ = std::fs::write(s.path(), before.as_bytes());
                    return Err(LabError::HostChanged {
                        name: s.name.clone(),
                        before: before.clone(),
                        after,
                    });
                }
            }
            applied.push((s.name.clone(), got));
        }
        Ok(applied)
    }
}

/// Writes one sysctl inside the namespace and returns the value read back.
fn write_in_namespace(s: &SysctlWrite) -> Result<String, LabError> {
    let path = s.path();
    let not_per_ns = |why| LabError::NotPerNamespace {
        name: s.name.clone(),
        path: path.clone(),
        why,
    };
    let meta = std::fs::metadata(&path).map_err(|_| not_per_ns("absent"))?;
    if meta.permissions().mode() & 0o200 == 0 {
        return Err(not_per_ns("read-only"));
    }
    std::fs::write(&path, s.value.as_bytes()).map_err(|source| LabError::Write {
        name: s.name.clone(),
        value: s.value.clone(),
        source,
    })?;
    let got = std::fs::read_to_string(&path)
        .map(|v| normalize(&v))
        .map_err(|source| LabError::Write {
            name: s.name.clone(),
            value: s.value.clone(),
            source,
        })?;
    if got != normalize(&s.value) {
        return Err(LabError::ReadBack {
            name: s.name.clone(),
            wanted: s.value.clone(),
            got,
        });
    }
    Ok(got)
}

/// `50000\t50010\n` → `50000 50010`.
fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read_value(f: &mut File) -> io::Result<String> {
    f.seek(SeekFrom::Start(0))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(normalize(&text))
}

/// `ip link set lo up`, as one SIOCSIFFLAGS ioctl.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; zeroed is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_values_compare_without_their_whitespace() {
        assert_eq!(normalize("50000\t50010\n"), "50000 50010");
        assert_eq!(
            SysctlWrite {
                name: "net.core.somaxconn".into(),
                value: "8".into()
            }
            .path(),
            "/proc/sys/net/core/somaxconn"
        );
    }
}
