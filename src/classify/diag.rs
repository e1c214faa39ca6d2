//! Listening sockets' accept queues from the kernel's sock_diag netlink
//! interface (what `ss -ltn` shows as Recv-Q / Send-Q): the only place the
//! listen backlog of a socket can be read, since /proc/net/tcp omits it.
//!
//! The request encoding and the reply parsing are pure functions over bytes;
//! [`dump_listeners`] is the thin socket layer around them.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

// Constants from linux/netlink.h, linux/sock_diag.h and linux/inet_diag.h.
const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_DUMP: u16 = 0x100 | 0x200;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, sockid.
const REQ_LEN: usize = 8 + SOCKID_LEN;
/// `struct inet_diag_sockid`: sport, dport, src[4], dst[4], if, cookie[2].
const SOCKID_LEN: usize = 48;
/// `struct inet_diag_msg`: family, state, timer, retrans, sockid, expires,
/// rqueue, wqueue, uid, inode.
const MSG_LEN: usize = 4 + SOCKID_LEN + 20;
const TCP_LISTEN: u32 = 10;

/// One TCP socket as inet_diag reports it (a listener, or a connection
/// in the states asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagListener {
    pub local: SocketAddr,
    /// The peer (unspecified, port 0, for a listener).
    pub remote: SocketAddr,
    /// Connections in the accept queue (`sk_ack_backlog`).
    pub queued: u32,
    /// The listen backlog (`sk_max_ack_backlog`), after the somaxconn cap.
    pub backlog: u32,
    /// The socket's inode (`socket:[N]` in its owner's /proc/PID/fd).
    pub inode: u32,
}

/// A dump request for every LISTEN TCP socket of `family` (AF_INET or
/// AF_INET6).
pub fn encode_listen_dump(family: u8, seq: u32) -> Vec<u8> {
    encode_dump(family, seq, 1 << TCP_LISTEN)
}

/// A dump request for every TCP socket of `family` in `states` (a bitmask
/// of 1 << TCP state number): the kernel filters by state.
pub fn encode_dump(family: u8, seq: u32, states: u32) -> Vec<u8> {
    let len = NLMSG_HDRLEN + REQ_LEN;
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    buf.push(family);
    buf.push(libc::IPPROTO_TCP as u8);
    buf.push(0); // no extensions
    buf.push(0); // pad
    buf.extend_from_slice(&states.to_ne_bytes());
    buf.resize(len, 0); // sockid: all zero, the dump filters nothing
    buf
}

/// What one datagram of the dump reply held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DiagBatch {
    pub listeners: Vec<DiagListener>,
    /// NLMSG_DONE was seen: the dump is complete.
    pub done: bool,
}

/// Parses one datagram of netlink messages. An NLMSG_ERROR with a non-zero
/// code becomes that errno.
pub fn parse_dump_reply(mut buf: &[u8]) -> io::Result<DiagBatch> {
    let mut batch = DiagBatch::default();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().unwrap());
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sock_diag: netlink message length {len} out of bounds"),
            ));
        }
        let payload = &buf[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => {
                batch.done = true;
                break;
            }
            NLMSG_ERROR => {
                let code = payload
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                    .unwrap_or(0);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some(l) = parse_diag_msg(payload) {
                    batch.listeners.push(l);
                }
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        buf = &buf[aligned.min(buf.len())..];
    }
    Ok(batch)
}

fn parse_diag_msg(p: &[u8]) -> Option<DiagListener> {
    if p.len() < MSG_LEN {
        return None;
    }
    let family = i32::from(p[0]);
    let id = &p[4..4 + SOCKID_LEN];
    let port = u16::from_be_bytes([id[0], id[1]]);
    let dport = u16::from_be_bytes([id[2], id[3]]);
    let address = |bytes: &[u8]| match family {
        libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    };
    let ip = address(&id[4..20])?;
    let peer = address(&id[20..36])?;
    let rest = &p[4 + SOCKID_LEN..];
    let word = |i: usize| u32::from_ne_bytes(rest[i * 4..i * 4 + 4].try_into().unwrap());
    Some(DiagListener {
        local: SocketAddr::new(ip, port),
        remote: SocketAddr::new(peer, dport),
        queued: word(1),
        backlog: word(2),
        inode: word(4),
    })
}

/// Every listening TCP socket of `family` in this network namespace.
pub fn dump_listeners(family: i32) -> io::Result<Vec<DiagListener>> {
    dump(family, 1 << TCP_LISTEN)
}

/// Every TCP socket of `family` in `states` (a bitmask of 1 << TCP state
/// number) in this network namespace.
pub fn dump(family: i32, states: u32) -> io::Result<Vec<DiagListener>> {
    let sock = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(NETLINK_SOCK_DIAG)),
    )?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    sock.send(&encode_dump(family as u8, 1, states))?;
    let mut sockets = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    // Bounded: ~400 sockets a datagram, a few million at most.
    for _ in 0..10_000 {
        let n = (&sock).read(&mut buf)?;
        if n == 0 {
            break;
        }
        let batch = parse_dump_reply(&buf[..n])?;
        sockets.extend(batch.listeners);
        if batch.done {
            return Ok(sockets);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "sock_diag: the dump did not finish",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize, kind: u16) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&(len as u32).to_ne_bytes());
        h.extend_from_slice(&kind.to_ne_bytes());
        h.extend_from_slice(&0x2u16.to_ne_bytes());
        h.extend_from_slice(&1u32.to_ne_bytes());
        h.extend_from_slice(&0u32.to_ne_bytes());
        h
    }

    fn diag_msg(family: u8, ip: &[u8], port: u16, queued: u32, backlog: u32) -> Vec<u8> {
        let mut m = header(NLMSG_HDRLEN + MSG_LEN, SOCK_DIAG_BY_FAMILY);
        m.extend_from_slice(&[family, 10, 0, 0]);
        let mut id = [0u8; SOCKID_LEN];
        id[0..2].copy_from_slice(&port.to_be_bytes());
        id[4..4 + ip.len()].copy_from_slice(ip);
        m.extend_from_slice(&id);
        for w in [0u32, queued, backlog, 0, 12345] {
            m.extend_from_slice(&w.to_ne_bytes());
        }
        m
    }

    #[test]
    fn request_layout() {
        let req = encode_listen_dump(libc::AF_INET6 as u8, 7);
        assert_eq!(req.len(), 72);
        assert_eq!(u32::from_ne_bytes(req[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(req[4..6].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(req[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(req[8..12].try_into().unwrap()), 7);
        assert_eq!(req[16], libc::AF_INET6 as u8);
        assert_eq!(req[17], 6);
        assert_eq!(u32::from_ne_bytes(req[20..24].try_into().unwrap()), 1 << 10);
    }

    #[test]
    fn reply_with_v4_v6_and_done() {
        let mut buf = diag_msg(libc::AF_INET as u8, &[127, 0, 0, 1], 7070, 3, 2);
        let v6: Ipv6Addr = "::1".parse().unwrap();
        buf.extend(diag_msg(libc::AF_INET6 as u8, &v6.octets(), 7071, 0, 5));
        buf.extend(header(NLMSG_HDRLEN + 4, NLMSG_DONE));
        buf.extend_from_slice(&0i32.to_ne_bytes());
        let batch = parse_dump_reply(&buf).unwrap();
        assert!(batch.done);
        assert_eq!(
            batch.listeners,
            vec![
                DiagListener {
                    local: "127.0.0.1:7070".parse().unwrap(),
                    remote: "0.0.0.0:0".parse().unwrap(),
                    queued: 3,
                    backlog: 2,
                    inode: 12345
                },
                DiagListener {
                    local: "[::1]:7071".parse().unwrap(),
                    remote: "[::]:0".parse().unwrap(),
                    queued: 0,
                    backlog: 5,
                    inode: 12345
                },
            ]
        );
    }

    #[test]
    fn a_connection_has_its_peer_and_a_state_filter_is_asked() {
        let mut buf = diag_msg(libc::AF_INET as u8, &[127, 0, 0, 2], 50000, 0, 0);
        // inet_diag_sockid: dport, then dst after src.
        let id = NLMSG_HDRLEN + 4;
        buf[id + 2..id + 4].copy_from_slice(&7070u16.to_be_bytes());
        buf[id + 20..id + 24].copy_from_slice(&[127, 0, 0, 1]);
        let batch = parse_dump_reply(&buf).unwrap();
        assert_eq!(batch.listeners[0].local, "127.0.0.2:50000".parse().unwrap());
        assert_eq!(batch.listeners[0].remote, "127.0.0.1:7070".parse().unwrap());
        let req = encode_dump(libc::AF_INET as u8, 1, 1 << 2);
        assert_eq!(u32::from_ne_bytes(req[20..24].try_into().unwrap()), 1 << 2);
    }

    #[test]
    fn error_reply_is_the_errno() {
        let mut buf = header(NLMSG_HDRLEN + 4, NLMSG_ERROR);
        buf.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        let err = parse_dump_reply(&buf).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn truncated_reply_is_an_error_not_a_panic() {
        let mut buf = diag_msg(libc::AF_INET as u8, &[127, 0, 0, 1], 1, 0, 0);
        buf.truncate(40);
        assert!(parse_dump_reply(&buf).is_err());
        assert_eq!(parse_dump_reply(&[]).unwrap(), DiagBatch::default());
    }
}
