//! The cluster under test: N real `boxoffice serve` processes on loopback, each node's
//! connections to each peer (Raft and HTTP forwarding) going through a per-link
//! [`Proxy`] (see [`super::shim`] for how). Clients talk HTTP directly to the nodes.
//! Every process is killed (after a SIGCONT) and every proxy closed when the [`Cluster`]
//! drops, also on panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::proxy::Proxy;
use super::shim;

pub const AUTH_SECRET: &str = "jepsen-auth-secret-0123456789abcdef";
pub const CLUSTER_SECRET: &str = "jepsen-cluster-secret-0123456789abcdef";
const POLL: Duration = Duration::from_millis(100);
const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub struct NodeProc {
    pub id: u64,
    pub http_port: u16,
    pub raft_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl NodeProc {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
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

pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    /// `(from, to, kind)` -> proxy.
    proxies: BTreeMap<(u64, u64, &'static str), Proxy>,
    binary: PathBuf,
    shim: PathBuf,
    peers: String,
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
    pub async fn start(n: usize, binary: &Path, dir: &Path) -> Result<Cluster> {
        let shim = shim::build(dir)?;
        let ports = free_ports(2 * n)?;
        let nodes: Vec<NodeProc> = (0..n)
            .map(|i| NodeProc {
                id: i as u64 + 1,
                http_port: ports[i],
                raft_port: ports[n + i],
                data_dir: dir.join(format!("node-{}", i + 1)),
                log: dir.join(format!("node-{}.log", i + 1)),
                child: None,
                paused: false,
            })
            .collect();
        let peers =
            nodes.iter().map(|n| format!("{}=127.0.0.1:{}", n.id, n.raft_port)).collect::<Vec<_>>().join(",");
        let mut proxies = BTreeMap::new();
        for a in &nodes {
            for b in &nodes {
                if a.id == b.id {
                    continue;
                }
                for (kind, port) in [("raft", b.raft_port), ("http", b.http_port)] {
                    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
                    proxies.insert((a.id, b.id, kind), Proxy::start(a.id, b.id, kind, target).await?);
                }
            }
        }
        let mut cluster = Cluster {
            nodes,
            proxies,
            binary: binary.to_path_buf(),
            shim,
            peers,
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build()?,
        };
        for id in cluster.ids() {
            cluster.spawn(id)?;
        }
        Ok(cluster)
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
        let map: Vec<(u16, u16)> = self
            .proxies
            .iter()
            .filter(|((from, _, _), _)| *from == id)
            .map(|(_, p)| (p.target.port(), p.listen_port))
            .collect();
        let (binary, shim, peers) = (self.binary.clone(), self.shim.clone(), self.peers.clone());
        let node = self.node_mut(id);
        if node.child.is_some() {
            bail!("node {id} already running");
        }
        std::fs::create_dir_all(&node.data_dir)?;
        let mut log = OpenOptions::new().create(true).append(true).open(&node.log)?;
        writeln!(log, "---- jepsen harness: starting node {id} ----")?;
        let child = Command::new(&binary)
            .arg("serve")
            .args(["--node-id", &id.to_string()])
            .args(["--http", &format!("127.0.0.1:{}", node.http_port)])
            .args(["--raft", &format!("127.0.0.1:{}", node.raft_port)])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--peers", &peers, "--cluster-secret", CLUSTER_SECRET])
            .env("BOXOFFICE_AUTH_SECRET", AUTH_SECRET)
            .env("LD_PRELOAD", &shim)
            .env(shim::MAP_ENV, shim::map_value(&map))
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

    /// Cut every link between `a` and `b` (both directions, Raft and HTTP).
    pub fn partition(&self, sides: &[Vec<u64>]) {
        for (i, side) in sides.iter().enumerate() {
            for other in &sides[i + 1..] {
                for a in side {
                    for b in other {
                        for ((from, to, _), p) in &self.proxies {
                            if (from == a && to == b) || (from == b && to == a) {
                                p.set_cut(true);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Cut one directed link set `from → to` only.
    pub fn cut_one_way(&self, from: u64, to: u64) {
        for ((f, t, _), p) in &self.proxies {
            if *f == from && *t == to {
                p.set_cut(true);
            }
        }
    }

    /// Connections accepted per link kind (`raft`, `http`), all links summed: proof that
    /// node-to-node traffic went through the proxies.
    pub fn proxied_connections(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for ((_, _, kind), p) in &self.proxies {
            *out.entry(*kind).or_default() += p.accepted();
        }
        out
    }

    pub fn heal_network(&self) {
        for p in self.proxies.values() {
            p.set_cut(false);
        }
    }

    pub fn cut_links(&self) -> BTreeSet<(u64, u64)> {
        self.proxies.iter().filter(|(_, p)| p.is_cut()).map(|((f, t, _), _)| (*f, *t)).collect()
    }

    /// Heal everything: network, paused and killed nodes.
    pub fn heal_all(&mut self) -> Result<()> {
        self.heal_network();
        for id in self.ids() {
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
        self.proxies.clear();
    }
}
