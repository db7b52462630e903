//! The cluster under test: N real `boxoffice serve` processes, on one of two networks:
//! - [`NetMode::Netns`] (root): each node in its own network namespace on a bridge,
//!   partitions are iptables `DROP` rules inside the namespaces ([`super::netns`]);
//! - [`NetMode::Proxy`]: nodes on loopback, each node's connections to each peer (Raft and
//!   HTTP forwarding) going through a per-link [`Proxy`] (see [`super::shim`] for how).
//!
//! Clients talk HTTP directly to the nodes. With the clock nemesis on, every node runs
//! under libfaketime with its own offset file ([`Cluster::set_clock_offset`]). Every
//! process is killed (after a SIGCONT), every proxy closed and every namespace removed
//! when the [`Cluster`] drops, also on panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::netns::{self, Netns};
use super::proxy::Proxy;
use super::shim;
use super::tools;

pub const AUTH_SECRET: &str = "jepsen-auth-secret-0123456789abcdef";
pub const CLUSTER_SECRET: &str = "jepsen-cluster-secret-0123456789abcdef";
const POLL: Duration = Duration::from_millis(100);
const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How node-to-node traffic is carried and cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetMode {
    /// Network namespaces on a bridge, iptables partitions (root only).
    Netns,
    /// Loopback with a TCP proxy per directed link.
    Proxy,
}

impl NetMode {
    /// `auto`: namespaces when they work here (installing `ip`/`iptables` if root), else
    /// the proxies; the reason is returned for the log.
    pub fn choose(wanted: &str) -> Result<(NetMode, String)> {
        match wanted {
            "proxy" => Ok((NetMode::Proxy, "asked for".into())),
            "netns" | "auto" => {
                let installed = tools::ensure_installed();
                match netns::available() {
                    Ok(()) => Ok((NetMode::Netns, format!("namespaces work here ({installed})"))),
                    Err(why) if wanted == "auto" => {
                        Ok((NetMode::Proxy, format!("network namespaces unavailable: {why}; {installed}")))
                    }
                    Err(why) => bail!("--net netns: {why} ({installed})"),
                }
            }
            other => bail!("--net {other:?}: auto, netns or proxy"),
        }
    }
}

enum Net {
    Proxy {
        /// `(from, to, kind)` -> proxy.
        proxies: BTreeMap<(u64, u64, &'static str), Proxy>,
        shim: PathBuf,
    },
    Netns {
        ns: Netns,
        /// Packets dropped by partitions healed so far.
        dropped: std::sync::atomic::AtomicU64,
    },
}

pub struct NodeProc {
    pub id: u64,
    /// `host:port` the node serves HTTP on, as the harness reaches it.
    pub http_addr: String,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl NodeProc {
    pub fn base(&self) -> String {
        format!("http://{}", self.http_addr)
    }
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
    pub fn is_paused(&self) -> bool {
        self.paused
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl NodeProc {
    fn new(id: u64, http_addr: String, raft_addr: String, dir: &Path) -> NodeProc {
        NodeProc {
            id,
            http_addr,
            raft_addr,
            data_dir: dir.join(format!("node-{id}")),
            log: dir.join(format!("node-{id}.log")),
            child: None,
            paused: false,
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    net: Net,
    binary: PathBuf,
    peers: String,
    /// libfaketime's library when the clock nemesis is on; offset files in `dir`.
    faketime: Option<PathBuf>,
    dir: PathBuf,
    http: reqwest::Client,
}

/// `count` distinct free loopback ports (all held until all are picked).
pub fn free_ports(count: usize) -> Result<Vec<u16>> {
    let ls: Vec<std::net::TcpListener> =
        (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
    Ok(ls.iter().map(|l| l.local_addr().unwrap().port()).collect())
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let st = Command::new("kill").args([sig, &pid.to_string()]).status().context("run kill")?;
    if !st.success() {
        bail!("kill {sig} {pid} failed");
    }
    Ok(())
}

impl Cluster {
    /// Start `n` nodes with data and logs in `dir`; does not wait for readiness.
    /// `faketime`: run every node under libfaketime (for the clock nemesis).
    pub async fn start(
        n: usize,
        binary: &Path,
        dir: &Path,
        mode: NetMode,
        faketime: Option<PathBuf>,
    ) -> Result<Cluster> {
        let (net, nodes) = match mode {
            NetMode::Proxy => {
                let shim = shim::build(dir)?;
                let ports = free_ports(2 * n)?;
                let nodes: Vec<NodeProc> = (0..n)
                    .map(|i| {
                        NodeProc::new(
                            i as u64 + 1,
                            format!("127.0.0.1:{}", ports[i]),
                            format!("127.0.0.1:{}", ports[n + i]),
                            dir,
                        )
                    })
                    .collect();
                let mut proxies = BTreeMap::new();
                for a in &nodes {
                    for b in &nodes {
                        if a.id == b.id {
                            continue;
                        }
                        for (kind, addr) in [("raft", &b.raft_addr), ("http", &b.http_addr)] {
                            let target: SocketAddr = addr.parse()?;
                            proxies.insert((a.id, b.id, kind), Proxy::start(a.id, b.id, kind, target).await?);
                        }
                    }
                }
                (Net::Proxy { proxies, shim }, nodes)
            }
            NetMode::Netns => {
                let ns = Netns::create(n)?;
                let nodes = (1..=n as u64)
                    .map(|id| {
                        NodeProc::new(
                            id,
                            format!("{}:{}", ns.ip(id), netns::HTTP_PORT),
                            format!("{}:{}", ns.ip(id), netns::RAFT_PORT),
                            dir,
                        )
                    })
                    .collect();
                (Net::Netns { ns, dropped: Default::default() }, nodes)
            }
        };
        let peers = nodes.iter().map(|n| format!("{}={}", n.id, n.raft_addr)).collect::<Vec<_>>().join(",");
        let mut cluster = Cluster {
            nodes,
            net,
            binary: binary.to_path_buf(),
            peers,
            faketime,
            dir: dir.to_path_buf(),
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build()?,
        };
        for id in cluster.ids() {
            if cluster.faketime.is_some() {
                cluster.set_clock_offset(id, 0)?;
            }
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    pub fn mode(&self) -> NetMode {
        match self.net {
            Net::Proxy { .. } => NetMode::Proxy,
            Net::Netns { .. } => NetMode::Netns,
        }
    }

    fn clock_file(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.faketime"))
    }

    /// Set node `id`'s wall clock to real time + `offset_s` (libfaketime re-reads the file
    /// at most a second later). Monotonic clocks are left alone (timers, Raft elections).
    pub fn set_clock_offset(&self, id: u64, offset_s: i64) -> Result<()> {
        if self.faketime.is_none() {
            bail!("the cluster was not started under libfaketime");
        }
        let text = if offset_s >= 0 { format!("+{offset_s}s\n") } else { format!("{offset_s}s\n") };
        let path = self.clock_file(id);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn node(&self, id: u64) -> &NodeProc {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        &mut self.nodes[id as usize - 1]
    }

    /// Nodes running and not paused.
    pub fn live(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.is_running() && !n.paused).map(|n| n.id).collect()
    }

    fn spawn(&mut self, id: u64) -> Result<()> {
        let mut preload: Vec<String> = Vec::new();
        let mut cmd = match &self.net {
            Net::Proxy { proxies, shim } => {
                let map: Vec<(u16, u16)> = proxies
                    .iter()
                    .filter(|((from, _, _), _)| *from == id)
                    .map(|(_, p)| (p.target.port(), p.listen_port))
                    .collect();
                preload.push(shim.display().to_string());
                let mut cmd = Command::new(&self.binary);
                cmd.env(shim::MAP_ENV, shim::map_value(&map));
                cmd
            }
            Net::Netns { ns, .. } => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &ns.ns(id)]).arg(&self.binary);
                cmd
            }
        };
        if let Some(lib) = &self.faketime {
            preload.push(lib.display().to_string());
            cmd.env("FAKETIME_TIMESTAMP_FILE", self.clock_file(id))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        if !preload.is_empty() {
            cmd.env("LD_PRELOAD", preload.join(":"));
        }
        let (binary, peers) = (self.binary.clone(), self.peers.clone());
        let node = self.node_mut(id);
        if node.child.is_some() {
            bail!("node {id} already running");
        }
        std::fs::create_dir_all(&node.data_dir)?;
        let mut log = OpenOptions::new().create(true).append(true).open(&node.log)?;
        writeln!(log, "---- jepsen harness: starting node {id} ----")?;
        let child = cmd
            .arg("serve")
            .args(["--node-id", &id.to_string()])
            .args(["--http", &node.http_addr])
            .args(["--raft", &node.raft_addr])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--peers", &peers, "--cluster-secret", CLUSTER_SECRET])
            .env("BOXOFFICE_AUTH_SECRET", AUTH_SECRET)
            .env("NO_COLOR", "1")
            .env("RUST_LIB_BACKTRACE", "0")
            .env(
                "RUST_LOG",
                std::env::var("JEPSEN_NODE_LOG").unwrap_or_else(|_| "info,openraft=warn,sled=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// kill -9 (SIGCONT first if paused, so nothing stays stopped).
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut c) = node.child.take() {
            if node.paused {
                let _ = signal(c.id(), "-CONT");
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        node.paused = false;
    }

    /// Start a killed node again (same ports, data and flags).
    pub fn restart(&mut self, id: u64) -> Result<()> {
        self.kill(id);
        self.spawn(id)
    }

    pub fn pause(&mut self, id: u64) -> Result<()> {
        let node = self.node_mut(id);
        let pid = node.pid().ok_or_else(|| anyhow!("node {id} is not running"))?;
        signal(pid, "-STOP")?;
        node.paused = true;
        Ok(())
    }

    pub fn resume(&mut self, id: u64) -> Result<()> {
        let node = self.node_mut(id);
        if let Some(pid) = node.pid() {
            if node.paused {
                signal(pid, "-CONT")?;
            }
        }
        node.paused = false;
        Ok(())
    }

    /// Cut every link between nodes on different sides (both directions, Raft and HTTP).
    pub fn partition(&self, sides: &[Vec<u64>]) -> Result<()> {
        for (i, side) in sides.iter().enumerate() {
            for other in &sides[i + 1..] {
                for a in side {
                    for b in other {
                        self.cut_one_way(*a, *b)?;
                        self.cut_one_way(*b, *a)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Cut one direction. Namespaces: packets from `from` are dropped at `to` (a real
    /// one-way cut: `to` still sends to `from`). Proxies: `from` cannot open connections to
    /// `to`, and its open ones close (connections `to` opens still carry both directions).
    pub fn cut_one_way(&self, from: u64, to: u64) -> Result<()> {
        match &self.net {
            Net::Proxy { proxies, .. } => {
                for ((f, t, _), p) in proxies {
                    if *f == from && *t == to {
                        p.set_cut(true);
                    }
                }
            }
            Net::Netns { ns, .. } => ns.cut(from, to)?,
        }
        Ok(())
    }

    /// Proof that partitions acted on real traffic: connections accepted through the link
    /// proxies per kind (`raft`, `http`), or packets the iptables rules dropped.
    pub fn traffic_proof(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        match &self.net {
            Net::Proxy { proxies, .. } => {
                for ((_, _, kind), p) in proxies {
                    *out.entry(*kind).or_default() += p.accepted();
                }
            }
            Net::Netns { dropped, .. } => {
                out.insert("packets_dropped", dropped.load(std::sync::atomic::Ordering::Relaxed));
            }
        }
        out
    }

    pub fn heal_network(&self) -> Result<()> {
        match &self.net {
            Net::Proxy { proxies, .. } => {
                for p in proxies.values() {
                    p.set_cut(false);
                }
            }
            Net::Netns { ns, dropped } => {
                let n = ns.heal()?;
                dropped.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Directed cuts in force, `(from, to)`.
    pub fn cut_links(&self) -> BTreeSet<(u64, u64)> {
        match &self.net {
            Net::Proxy { proxies, .. } => {
                proxies.iter().filter(|(_, p)| p.is_cut()).map(|((f, t, _), _)| (*f, *t)).collect()
            }
            Net::Netns { ns, .. } => ns.cuts(),
        }
    }

    /// Heal everything: network, paused and killed nodes.
    pub fn heal_all(&mut self) -> Result<()> {
        self.heal_network()?;
        for id in self.ids() {
            if self.faketime.is_some() {
                self.set_clock_offset(id, 0)?;
            }
            if self.node(id).paused {
                self.resume(id)?;
            }
            if !self.node(id).is_running() {
                self.spawn(id)?;
            }
        }
        Ok(())
    }

    pub async fn get_json(&self, id: u64, path: &str, timeout: Duration) -> Result<(u16, Value)> {
        let resp = self.http.get(format!("{}{path}", self.node(id).base())).timeout(timeout).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Wait until node `id` answers `/readyz` 200; error with its log tail on exit/timeout.
    pub async fn wait_ready(&mut self, id: u64, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.node_mut(id).child.as_mut() {
                if let Some(st) = child.try_wait()? {
                    self.node_mut(id).child = None;
                    bail!("node {id} exited ({st}) before ready; log tail:\n{}", self.log_tail(id, 40));
                }
            }
            let last = match self.get_json(id, "/readyz", POLL_REQUEST_TIMEOUT).await {
                Ok((200, _)) => return Ok(start.elapsed()),
                Ok((s, b)) => format!("{s} {b}"),
                Err(e) => e.to_string(),
            };
            if start.elapsed() > timeout {
                bail!(
                    "node {id} not ready in {timeout:?} (last: {last}); log tail:\n{}",
                    self.log_tail(id, 40)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn wait_all_ready(&mut self, timeout: Duration) -> Result<()> {
        for id in self.ids() {
            self.wait_ready(id, timeout).await?;
        }
        Ok(())
    }

    /// The leader of `group` as the live nodes report it (the most named one), if any.
    pub async fn leader_of(&self, group: &str) -> Option<u64> {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for id in self.live() {
            let Ok((200, view)) = self.get_json(id, "/v1/cluster", Duration::from_millis(800)).await else {
                continue;
            };
            let leader = view["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|g| g["id"] == group))
                .and_then(|g| g["leader"].as_u64());
            if let Some(l) = leader {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|(_, v)| *v).map(|(l, _)| l)
    }

    /// Wait until a live node names a leader of `group` that itself agrees.
    pub async fn wait_leader(&self, group: &str, timeout: Duration) -> Result<u64> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.leader_of(group).await {
                if let Ok((200, view)) = self.get_json(l, "/v1/cluster", POLL_REQUEST_TIMEOUT).await {
                    let theirs = view["groups"]
                        .as_array()
                        .and_then(|gs| gs.iter().find(|g| g["id"] == group))
                        .and_then(|g| g["leader"].as_u64());
                    if theirs == Some(l) {
                        return Ok(l);
                    }
                }
            }
            if start.elapsed() > timeout {
                bail!("group {group}: no agreed leader within {timeout:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.node(id).log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
        // Then the network: proxies close, namespaces and the bridge are removed.
        if let Net::Proxy { proxies, .. } = &mut self.net {
            proxies.clear();
        }
    }
}
