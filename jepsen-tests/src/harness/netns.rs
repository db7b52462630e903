//! The network-namespace mode (root only), as Jepsen does it: each node in its own network
//! namespace, joined by veth pairs to one bridge in the harness's namespace; partitions
//! are iptables `DROP` rules on `INPUT` inside the receiving node's namespace. The harness
//! (the clients) reaches every node over the bridge from the host side, so partitions
//! only cut node-to-node traffic.
//!
//! Names carry the harness's pid (`bxj<pid><letter>…`): a later run removes what a killed
//! harness left behind (its pid no longer exists), and [`Netns`] removes what it made when
//! it drops — namespaces, the bridge (its veths go with the namespaces), and the one
//! `FORWARD ACCEPT` rule it adds for the bridge in the host's iptables.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// Port every node listens on for HTTP inside its own namespace.
pub const HTTP_PORT: u16 = 8080;
/// Port every node listens on for Raft inside its own namespace.
pub const RAFT_PORT: u16 = 7070;
const PREFIX: &str = "bxj";

static SERIAL: AtomicU32 = AtomicU32::new(0);

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("run {args:?}"))?;
    if !out.status.success() {
        bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub struct Netns {
    tag: String,
    bridge: String,
    /// `10.a.b.0/24`: node `i` is `10.a.b.i`, the bridge `10.a.b.254`.
    net: (u8, u8),
    nodes: usize,
    /// Directed cuts in force: `(from, to)` = packets from `from` dropped at `to`.
    cuts: Mutex<BTreeSet<(u64, u64)>>,
    forward_rule: bool,
}

impl Netns {
    /// Make the bridge and one namespace per node (ids `1..=nodes`).
    pub fn create(nodes: usize) -> Result<Netns> {
        cleanup_stale();
        let pid = std::process::id();
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{PREFIX}{pid}{}", (b'a' + (serial % 26) as u8) as char);
        let bridge = format!("{tag}b");
        // A /24 no interface on this host uses yet.
        let used = run(&["ip", "-4", "-o", "addr", "show"]).unwrap_or_default();
        let mut net = None;
        for k in 0..250u32 {
            let a = 200 + ((pid + serial + k) / 250 % 50) as u8;
            let b = ((pid + serial * 7 + k) % 250) as u8;
            if !used.contains(&format!(" 10.{a}.{b}.")) {
                net = Some((a, b));
                break;
            }
        }
        let net = net.context("no free 10.x.y.0/24 for the test network")?;
        let mut me = Netns { tag, bridge, net, nodes, cuts: Mutex::default(), forward_rule: false };
        me.build().inspect_err(|_| me.teardown())?;
        Ok(me)
    }

    fn build(&mut self) -> Result<()> {
        let br = self.bridge.clone();
        run(&["ip", "link", "add", &br, "type", "bridge"])?;
        run(&["ip", "addr", "add", &format!("{}/24", self.host_ip()), "dev", &br])?;
        run(&["ip", "link", "set", &br, "up"])?;
        // Bridged frames may pass the host's FORWARD chain (br_netfilter); a DROP policy
        // there (Docker sets one) would cut the nodes off from each other.
        run(&["iptables", "-I", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"])?;
        self.forward_rule = true;
        for id in 1..=self.nodes as u64 {
            let ns = self.ns(id);
            let veth = format!("{}v{id}", self.tag);
            run(&["ip", "netns", "add", &ns])?;
            run(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            run(&["ip", "link", "set", &veth, "master", &br])?;
            run(&["ip", "link", "set", &veth, "up"])?;
            run(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "ip",
                "addr",
                "add",
                &format!("{}/24", self.ip(id)),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up"])?;
            run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    pub fn ns(&self, id: u64) -> String {
        format!("{}n{id}", self.tag)
    }

    pub fn ip(&self, id: u64) -> String {
        format!("10.{}.{}.{id}", self.net.0, self.net.1)
    }

    pub fn host_ip(&self) -> String {
        format!("10.{}.{}.254", self.net.0, self.net.1)
    }

    /// Drop packets from `from` arriving at `to` (one direction).
    pub fn cut(&self, from: u64, to: u64) -> Result<()> {
        if !self.cuts.lock().unwrap().insert((from, to)) {
            return Ok(());
        }
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns(to),
            "iptables",
            "-A",
            "INPUT",
            "-s",
            &self.ip(from),
            "-j",
            "DROP",
        ])?;
        Ok(())
    }

    /// Packets the partition rules dropped so far (all nodes), then remove every rule.
    pub fn heal(&self) -> Result<u64> {
        let mut dropped = 0;
        let mut cuts = self.cuts.lock().unwrap();
        let tos: BTreeSet<u64> = cuts.iter().map(|(_, t)| *t).collect();
        for to in tos {
            dropped += self.dropped_packets(to);
            run(&["ip", "netns", "exec", &self.ns(to), "iptables", "-F", "INPUT"])?;
        }
        cuts.clear();
        Ok(dropped)
    }

    pub fn cuts(&self) -> BTreeSet<(u64, u64)> {
        self.cuts.lock().unwrap().clone()
    }

    fn dropped_packets(&self, id: u64) -> u64 {
        let out = run(&["ip", "netns", "exec", &self.ns(id), "iptables", "-L", "INPUT", "-v", "-n", "-x"])
            .unwrap_or_default();
        out.lines()
            .filter(|l| l.contains("DROP"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    fn teardown(&mut self) {
        for id in 1..=self.nodes as u64 {
            let _ = run(&["ip", "netns", "del", &self.ns(id)]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge]);
        if self.forward_rule {
            let _ =
                run(&["iptables", "-D", "FORWARD", "-i", &self.bridge, "-o", &self.bridge, "-j", "ACCEPT"]);
            self.forward_rule = false;
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Remove namespaces, links and FORWARD rules named after a harness pid that is gone.
pub fn cleanup_stale() {
    let dead = |name: &str| -> bool {
        let Some(rest) = name.strip_prefix(PREFIX) else { return false };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        !digits.is_empty() && !std::path::Path::new(&format!("/proc/{digits}")).exists()
    };
    for line in run(&["ip", "netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if dead(name) {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
    for line in run(&["ip", "-o", "link", "show"]).unwrap_or_default().lines() {
        // "12: bxj123ab: <...>" or "13: bxj123av1@if2: <...>"
        let Some(name) = line.split(':').nth(1).map(|s| s.trim().split('@').next().unwrap_or("")) else {
            continue;
        };
        if dead(name) {
            let _ = run(&["ip", "link", "del", name]);
            if name.ends_with('b') {
                let _ = run(&["iptables", "-D", "FORWARD", "-i", name, "-o", name, "-j", "ACCEPT"]);
            }
        }
    }
}

/// Whether this process can use the namespace mode: root, `ip` and `iptables` present,
/// and a namespace can actually be made. `Err` says why not.
pub fn available() -> Result<(), String> {
    if !super::tools::is_root() {
        return Err("not root".into());
    }
    for tool in ["ip", "iptables"] {
        if !super::tools::have(tool) {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    // Everything a run does, once, on a throwaway namespace, bridge and veth pair.
    let pid = std::process::id();
    let (probe, bridge, veth) =
        (format!("{PREFIX}{pid}probe"), format!("{PREFIX}{pid}pb"), format!("{PREFIX}{pid}pv"));
    let result = (|| -> Result<(), String> {
        run(&["ip", "netns", "add", &probe]).map_err(|e| format!("cannot make a network namespace: {e}"))?;
        run(&["ip", "link", "add", &bridge, "type", "bridge"])
            .map_err(|e| format!("cannot make a bridge: {e}"))?;
        run(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &probe])
            .map_err(|e| format!("cannot make a veth pair: {e}"))?;
        run(&["ip", "link", "set", &veth, "master", &bridge])
            .map_err(|e| format!("cannot bridge a veth: {e}"))?;
        run(&["ip", "netns", "exec", &probe, "iptables", "-A", "INPUT", "-s", "10.0.0.1", "-j", "DROP"])
            .map_err(|e| format!("iptables does not work in a namespace: {e}"))?;
        Ok(())
    })();
    let _ = run(&["ip", "netns", "del", &probe]);
    let _ = run(&["ip", "link", "del", &bridge]);
    result
}
