//! Loopback ports for the nodes a test or benchmark starts.
//!
//! Binding `127.0.0.1:0` and closing the listener is not enough: between the close and the
//! node's own bind, the kernel may hand the same port out again, to another test's listener
//! bound to `:0` or as the local end of any outgoing connection. CI saw it: a node's Raft
//! port was answered by another node's HTTP server ("404", "invalid compression flag: 123").
//!
//! So a port comes from below the kernel's ephemeral range (`ip_local_port_range`), where the
//! kernel never picks one by itself; it is claimed for the life of this process by a UDP
//! socket bound to the same number (the nodes speak only TCP), so that two test processes
//! running at once never pick the same one, and the claim vanishes with the process, even on
//! kill -9; and it must take a TCP bind at the moment it is picked (nothing else listens).
//! Where no such range exists (an ephemeral range that starts too low), it falls back to `:0`.

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// The first port handed out (above the well-known and commonly configured ones).
const RANGE_START: u16 = 20_000;
/// Fewest ports a range must have to be used instead of `:0`.
const RANGE_MIN_LEN: u16 = 1_000;

struct Claims {
    next: u16,
    /// The UDP sockets that hold this process's claims, kept until it exits.
    held: Vec<UdpSocket>,
}

static CLAIMS: Mutex<Option<Claims>> = Mutex::new(None);

/// The first port of the kernel's ephemeral range (Linux), else the IANA default.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(49_152)
}

/// `count` distinct loopback ports, each free now and handed to no one else while this
/// process lives (see the module doc).
pub fn free_ports(count: usize) -> io::Result<Vec<u16>> {
    let end = ephemeral_start();
    if end.saturating_sub(RANGE_START) < RANGE_MIN_LEN {
        return ephemeral(count);
    }
    let len = end - RANGE_START;
    let mut claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    let claims = claims.get_or_insert_with(|| Claims {
        // Start where other processes are unlikely to be, so a claim seldom needs a second try.
        next: RANGE_START + (std::process::id() % u32::from(len)) as u16,
        held: Vec::new(),
    });
    let mut ports = Vec::with_capacity(count);
    for _ in 0..len {
        if ports.len() == count {
            break;
        }
        let port = claims.next;
        claims.next = if port + 1 >= end { RANGE_START } else { port + 1 };
        if claims.held.iter().any(|s| s.local_addr().is_ok_and(|a| a.port() == port)) {
            continue;
        }
        let Ok(claim) = UdpSocket::bind(("127.0.0.1", port)) else { continue };
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        claims.held.push(claim);
        ports.push(port);
    }
    if ports.len() < count {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("only {} of {count} free loopback ports in {RANGE_START}..{end}", ports.len()),
        ));
    }
    Ok(ports)
}

/// The fallback: ports the kernel picks, all held until all are picked.
fn ephemeral(count: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..count).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_outside_the_ephemeral_range_and_bindable() {
        let a = free_ports(8).unwrap();
        let b = free_ports(8).unwrap();
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 16, "no port handed out twice: {a:?} {b:?}");
        if ephemeral_start() >= RANGE_START + RANGE_MIN_LEN {
            assert!(all.iter().all(|&p| (RANGE_START..ephemeral_start()).contains(&p)), "{all:?}");
        }
        for p in all {
            TcpListener::bind(("127.0.0.1", p)).expect("a handed-out port binds");
        }
    }

    #[test]
    fn a_port_claimed_elsewhere_is_skipped() {
        let taken = free_ports(1).unwrap()[0];
        // Another process's claim looks like this: a UDP socket on the number.
        let next = {
            let c = CLAIMS.lock().unwrap();
            c.as_ref().unwrap().next
        };
        let other = UdpSocket::bind(("127.0.0.1", next));
        let got = free_ports(1).unwrap()[0];
        assert_ne!(got, taken);
        if other.is_ok() {
            assert_ne!(got, next, "a port claimed by another socket is not handed out");
        }
    }
}
