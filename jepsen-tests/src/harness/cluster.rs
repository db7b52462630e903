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
//!
//! Membership can change during a run (the membership nemesis): a node is taken out
//! ([`Cluster::retire`]) and a fresh process joins with `--join` and no id
//! ([`Cluster::start_joiner`], [`Cluster::admit_joiner`]), becoming a member under the id
//! the cluster gives it. So nodes are kept by id in a table that grows, and each process
//! runs in a *slot*: a pair of addresses (and, in namespace mode, a namespace) made at the
//! start. Slots `1..=n` hold the first nodes (slot k = node k); spare slots, one per join
//! onto a new machine that the schedule holds, are made with them, so every node's
//! connect shim and every link proxy exists from the start. A replacement runs on the
//! slot of the node it replaces (the same machine, wiped). The clients learn of members
//! through the shared [`Directory`].
//!
//! With disks on ([`Cluster::start`]'s `disks`), every node's data directory is a
//! [`LazyFs`] mount (the real files in `<data dir>.disk`), so a node can lose power
//! ([`Cluster::power_cut`]: kill -9, then everything not fsynced is gone) or find its disk
//! full ([`Cluster::set_disk_full`]). The mounts are served by this process and unmounted
//! when the [`Cluster`] drops, after its processes are killed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::members::Directory;
use super::netns::{self, Netns};
use super::proxy::Proxy;
use super::shim;
use super::tools;
use crate::lazyfs::{CrashReport, LazyFs};

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
        /// `(from slot, to slot, kind)` -> proxy.
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
    /// 0 while joining (until the cluster has named it).
    pub id: u64,
    /// Where it runs (its addresses; its namespace in namespace mode).
    pub slot: u64,
    /// `host:port` the node serves HTTP on, as the harness reaches it.
    pub http_addr: String,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// The member it joined through (`--join`, no `--node-id`); `None`: one of the first
    /// nodes (`--node-id` and `--peers`). A restart passes the same flags.
    join_via: Option<String>,
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
    /// `name`: of its data directory and log in the run directory (`node-<id>` for the
    /// first nodes, `node-join<k>` for the k-th joiner, whose id is not known yet).
    fn new(id: u64, slot: &Slot, name: &str, dir: &Path, join_via: Option<String>) -> NodeProc {
        NodeProc {
            id,
            slot: slot.number,
            http_addr: slot.http_addr.clone(),
            raft_addr: slot.raft_addr.clone(),
            data_dir: dir.join(name),
            log: dir.join(format!("{name}.log")),
            join_via,
            child: None,
            paused: false,
        }
    }

    /// Whether the process is still running (reaps it if it exited).
    fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        let Some(child) = self.child.as_mut() else { return Ok(None) };
        let st = child.try_wait()?;
        if st.is_some() {
            self.child = None;
        }
        Ok(st)
    }

    /// kill -9 (SIGCONT first if paused, so nothing stays stopped).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.paused {
                let _ = signal(c.id(), "-CONT");
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    fn log_tail(&self, lines: usize) -> String {
        testkit::log_tail(&self.log, lines)
    }
}

/// Where a node process can run: its addresses, the same for every process run there.
#[derive(Clone, Debug)]
struct Slot {
    number: u64,
    http_addr: String,
    raft_addr: String,
    /// A process has run here (spare slots are handed out once).
    used: bool,
}

pub struct Cluster {
    /// The members, by id (removed nodes move to `retired`).
    nodes: BTreeMap<u64, NodeProc>,
    /// Nodes taken out of the cluster (killed; kept for their logs).
    retired: Vec<NodeProc>,
    /// A fresh process joining, until it is ready and has an id.
    joining: Option<NodeProc>,
    /// Slot k at index k - 1.
    slots: Vec<Slot>,
    /// Joiners started so far (names their data directories).
    joins: u64,
    directory: Arc<Directory>,
    net: Net,
    binary: PathBuf,
    peers: String,
    /// libfaketime's library when the clock nemesis is on; offset files in `dir`.
    faketime: Option<PathBuf>,
    /// The lazy disks, by data directory (mounted before a process first runs on it), when
    /// the cluster has them.
    disks: Option<BTreeMap<PathBuf, LazyFs>>,
    /// More flags for every `serve` (e.g. `--snapshot-every`).
    node_args: Vec<String>,
    dir: PathBuf,
    http: reqwest::Client,
}

/// What started a cluster beyond its size and network.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// libfaketime's library: run every node under it (the clock nemesis).
    pub faketime: Option<PathBuf>,
    /// Every node's data directory on a [`LazyFs`] (the power and disk nemeses).
    pub disks: bool,
    /// More flags for every `serve`.
    pub node_args: Vec<String>,
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let st = Command::new("kill").args([sig, &pid.to_string()]).status().context("run kill")?;
    if !st.success() {
        bail!("kill {sig} {pid} failed");
    }
    Ok(())
}

impl Cluster {
    /// Start `n` nodes with data and logs in `dir`; does not wait for readiness. `spare`:
    /// slots to make beside them for nodes that join on new machines later.
    pub async fn start(
        n: usize,
        spare: usize,
        binary: &Path,
        dir: &Path,
        mode: NetMode,
        options: StartOptions,
    ) -> Result<Cluster> {
        let StartOptions { faketime, disks, node_args } = options;
        let total = n + spare;
        let (net, slots) = match mode {
            NetMode::Proxy => {
                let shim = shim::build(dir)?;
                let ports = testkit::free_ports(2 * total).context("picking loopback ports")?;
                let slots: Vec<Slot> = (0..total)
                    .map(|i| Slot {
                        number: i as u64 + 1,
                        http_addr: format!("127.0.0.1:{}", ports[i]),
                        raft_addr: format!("127.0.0.1:{}", ports[total + i]),
                        used: false,
                    })
                    .collect();
                let mut proxies = BTreeMap::new();
                for a in &slots {
                    for b in &slots {
                        if a.number == b.number {
                            continue;
                        }
                        for (kind, addr) in [("raft", &b.raft_addr), ("http", &b.http_addr)] {
                            let target: SocketAddr = addr.parse()?;
                            let (from, to) = (a.number, b.number);
                            proxies.insert((from, to, kind), Proxy::start(from, to, kind, target).await?);
                        }
                    }
                }
                (Net::Proxy { proxies, shim }, slots)
            }
            NetMode::Netns => {
                let ns = Netns::create(total)?;
                let slots = (1..=total as u64)
                    .map(|k| Slot {
                        number: k,
                        http_addr: format!("{}:{}", ns.ip(k), netns::HTTP_PORT),
                        raft_addr: format!("{}:{}", ns.ip(k), netns::RAFT_PORT),
                        used: false,
                    })
                    .collect();
                (Net::Netns { ns, dropped: Default::default() }, slots)
            }
        };
        let mut slots = slots;
        let mut nodes = BTreeMap::new();
        for slot in &mut slots[..n] {
            slot.used = true;
            let id = slot.number;
            nodes.insert(id, NodeProc::new(id, slot, &format!("node-{id}"), dir, None));
        }
        let peers = nodes.values().map(|n| format!("{}={}", n.id, n.raft_addr)).collect::<Vec<_>>().join(",");
        let directory = Arc::new(Directory::new(nodes.values().map(|n| (n.id, n.base()))));
        let mut cluster = Cluster {
            nodes,
            retired: Vec::new(),
            joining: None,
            slots,
            joins: 0,
            directory,
            net,
            binary: binary.to_path_buf(),
            peers,
            faketime,
            disks: disks.then(BTreeMap::new),
            node_args,
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

    /// The members as the clients see them (kept up to date as membership changes).
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.clone()
    }

    pub fn mode(&self) -> NetMode {
        match self.net {
            Net::Proxy { .. } => NetMode::Proxy,
            Net::Netns { .. } => NetMode::Netns,
        }
    }

    /// Per slot: a process on it keeps the slot's clock.
    fn clock_file(&self, slot: u64) -> PathBuf {
        self.dir.join(format!("node-{slot}.faketime"))
    }

    /// Set node `id`'s wall clock to real time + `offset_s` (libfaketime re-reads the file
    /// at most a second later). Monotonic clocks are left alone (timers, Raft elections).
    pub fn set_clock_offset(&self, id: u64, offset_s: i64) -> Result<()> {
        if self.faketime.is_none() {
            bail!("the cluster was not started under libfaketime");
        }
        let text = if offset_s >= 0 { format!("+{offset_s}s\n") } else { format!("{offset_s}s\n") };
        let path = self.clock_file(self.node(id).slot);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// The members' ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn node(&self, id: u64) -> &NodeProc {
        self.nodes.get(&id).unwrap_or_else(|| panic!("node {id} is not a member"))
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        self.nodes.get_mut(&id).unwrap_or_else(|| panic!("node {id} is not a member"))
    }

    /// Members running and not paused.
    pub fn live(&self) -> Vec<u64> {
        self.nodes.values().filter(|n| n.is_running() && !n.paused).map(|n| n.id).collect()
    }

    /// Nodes taken out of the cluster so far.
    pub fn retired_ids(&self) -> Vec<u64> {
        self.retired.iter().map(|n| n.id).collect()
    }

    /// The command that runs a node on `slot`: through its namespace or with the connect
    /// shim of its links, under libfaketime when the clock nemesis is on.
    fn command(&self, slot: u64) -> Command {
        let mut preload: Vec<String> = Vec::new();
        let mut cmd = match &self.net {
            Net::Proxy { proxies, shim } => {
                let map: Vec<(u16, u16)> = proxies
                    .iter()
                    .filter(|((from, _, _), _)| *from == slot)
                    .map(|(_, p)| (p.target.port(), p.listen_port))
                    .collect();
                preload.push(shim.display().to_string());
                let mut cmd = Command::new(&self.binary);
                cmd.env(shim::MAP_ENV, shim::map_value(&map));
                cmd
            }
            Net::Netns { ns, .. } => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &ns.ns(slot)]).arg(&self.binary);
                cmd
            }
        };
        if let Some(lib) = &self.faketime {
            preload.push(lib.display().to_string());
            cmd.env("FAKETIME_TIMESTAMP_FILE", self.clock_file(slot))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        if !preload.is_empty() {
            cmd.env("LD_PRELOAD", preload.join(":"));
        }
        cmd
    }

    fn spawn(&mut self, id: u64) -> Result<()> {
        let data_dir = self.node(id).data_dir.clone();
        self.mount_disk(&data_dir)?;
        let cmd = self.command(self.node(id).slot);
        let (binary, peers, extra) = (self.binary.clone(), self.peers.clone(), self.node_args.clone());
        launch(cmd, self.node_mut(id), &binary, &peers, &extra)
    }

    /// Mount the lazy disk of `data_dir` if the cluster has disks and it is not mounted.
    fn mount_disk(&mut self, data_dir: &Path) -> Result<()> {
        let Some(disks) = self.disks.as_mut() else { return Ok(()) };
        if !disks.contains_key(data_dir) {
            let disk = LazyFs::mount(&disk_backing(data_dir), data_dir)
                .with_context(|| format!("mount a lazy disk on {}", data_dir.display()))?;
            disks.insert(data_dir.to_path_buf(), disk);
        }
        Ok(())
    }

    /// Whether the nodes' data directories are lazy disks.
    pub fn has_disks(&self) -> bool {
        self.disks.is_some()
    }

    fn disk(&self, id: u64) -> Result<&LazyFs> {
        let dir = &self.node(id).data_dir;
        let disks =
            self.disks.as_ref().ok_or_else(|| anyhow!("the cluster was started without lazy disks"))?;
        disks.get(dir).ok_or_else(|| anyhow!("node {id} has no disk mounted on {}", dir.display()))
    }

    /// Power loss of `ids` at one instant: each is killed (kill -9), then each disk loses
    /// everything its node had not made durable (`torn`: the last unsynced write of a file
    /// may survive in part). The nodes stay down ([`Cluster::restart`] them).
    pub fn power_cut(&mut self, ids: &[u64], torn: bool, seed: u64) -> Result<Vec<(u64, CrashReport)>> {
        for id in ids {
            self.kill(*id);
        }
        let mut out = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            out.push((*id, self.disk(*id)?.crash(torn, seed.wrapping_add(k as u64))));
        }
        Ok(out)
    }

    /// Flip bytes in one file of stopped node `id`'s data, chosen from `seed`: sled's log
    /// (`db/db`), a snapshot file, or a search index file, each a third of the time when it
    /// exists. The bytes are written and fsynced (through the lazy disk, if any: durable
    /// corruption). Returns what was done.
    pub fn corrupt(&self, id: u64, seed: u64) -> Result<String> {
        use rand::{Rng, SeedableRng};
        use std::io::{Read, Seek, SeekFrom};
        let node = self.node(id);
        if node.is_running() {
            bail!("node {id} is running: stop it before corrupting its files");
        }
        let mut files: [Vec<PathBuf>; 3] = Default::default();
        let mut stack = vec![node.data_dir.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
                let path = entry?.path();
                let rel = path.strip_prefix(&node.data_dir).unwrap_or(&path).to_string_lossy().into_owned();
                if path.is_dir() {
                    stack.push(path);
                } else if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                    let kind = if rel == "db/db" {
                        Some(0)
                    } else if rel.starts_with("snapshots/") && rel.ends_with(".snap") {
                        Some(1)
                    } else if rel.starts_with("search/") {
                        Some(2)
                    } else {
                        None
                    };
                    if let Some(k) = kind {
                        files[k].push(path);
                    }
                }
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let kinds: Vec<usize> = (0..3).filter(|k| !files[*k].is_empty()).collect();
        if kinds.is_empty() {
            bail!("node {id} has no file to corrupt in {}", node.data_dir.display());
        }
        let kind = kinds[rng.random_range(0..kinds.len())];
        let file = files[kind][rng.random_range(0..files[kind].len())].clone();
        let mut f = OpenOptions::new().read(true).write(true).open(&file)?;
        let len = f.metadata()?.len();
        let count = rng.random_range(1..=8u64);
        let mut offsets = Vec::new();
        for _ in 0..count {
            let at = rng.random_range(0..len);
            let mut byte = [0u8; 1];
            f.seek(SeekFrom::Start(at))?;
            f.read_exact(&mut byte)?;
            byte[0] ^= 1 << rng.random_range(0..8);
            f.seek(SeekFrom::Start(at))?;
            f.write_all(&byte)?;
            offsets.push(at);
        }
        f.sync_all()?;
        let rel = file.strip_prefix(&node.data_dir).unwrap_or(&file).display().to_string();
        Ok(format!("flipped a bit in {count} bytes of {rel} ({len} B) at {offsets:?}"))
    }

    /// Node `id`'s disk answers `ENOSPC` to every write while `full`.
    pub fn set_disk_full(&self, id: u64, full: bool) -> Result<()> {
        self.disk(id)?.set_full(full);
        Ok(())
    }

    /// Start a fresh process on `slot` with an empty data directory, `--join` the HTTP
    /// address of member `via` and no `--node-id`: the cluster gives it its id. Wait for
    /// it with [`Cluster::admit_joiner`]. `slot`: the slot of the node it replaces (the same
    /// machine) or a spare one ([`Cluster::spare_slot`]).
    pub fn start_joiner(&mut self, slot: u64, via: u64) -> Result<()> {
        if self.joining.is_some() {
            bail!("a node is already joining");
        }
        if let Some(m) = self.nodes.values().find(|n| n.slot == slot && n.is_running()) {
            bail!("slot {slot} is taken by node {}", m.id);
        }
        self.joins += 1;
        let via_addr = self.node(via).http_addr.clone();
        let s = self.slots.get_mut(slot as usize - 1).ok_or_else(|| anyhow!("no slot {slot}"))?;
        s.used = true;
        let mut node = NodeProc::new(0, s, &format!("node-join{}", self.joins), &self.dir, Some(via_addr));
        if node.data_dir.exists() {
            bail!("{} exists: a joiner starts empty", node.data_dir.display());
        }
        if self.faketime.is_some() {
            // A fresh machine's clock is right (a skew in force is healed when its fault ends).
            let path = self.clock_file(slot);
            std::fs::write(&path, "+0s\n")?;
        }
        self.mount_disk(&node.data_dir.clone())?;
        let cmd = self.command(slot);
        launch(cmd, &mut node, &self.binary, &self.peers, &self.node_args)?;
        self.joining = Some(node);
        Ok(())
    }

    /// Wait until the joiner answers `/readyz` 200 and says its id (`GET /v1/cluster`
    /// `node_id`, which must match the `node_id` file it kept); from then on it is a member
    /// under that id, and the clients may pick it. On a timeout or exit it is killed; if it
    /// had been given an id (its `node_id` file) it still becomes a member — the cluster
    /// knows it, and the final restart and reads must account for it — and the error says so.
    pub async fn admit_joiner(&mut self, timeout: Duration) -> Result<u64> {
        let mut node = self.joining.take().ok_or_else(|| anyhow!("no node is joining"))?;
        let ready = wait_proc_ready(&self.http, &mut node, timeout).await;
        let kept = std::fs::read_to_string(node.data_dir.join("node_id"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        let said = match &ready {
            Ok(_) => get_json(&self.http, &node.base(), "/v1/cluster", POLL_REQUEST_TIMEOUT)
                .await
                .ok()
                .and_then(|(s, v)| (s == 200).then(|| v["node_id"].as_u64()).flatten()),
            Err(_) => None,
        };
        match (ready, kept) {
            (Ok(_), Some(id)) if said == Some(id) => {
                self.admit(id, node);
                Ok(id)
            }
            (Ok(_), kept) => {
                node.kill();
                let err = anyhow!(
                    "the joiner in {} is ready but names itself {said:?}, its node_id file {kept:?}",
                    node.data_dir.display()
                );
                if let Some(id) = kept {
                    self.admit(id, node);
                } else {
                    self.retired.push(node);
                }
                Err(err)
            }
            (Err(e), Some(id)) => {
                node.kill();
                self.admit(id, node);
                Err(e.context(format!("the joiner got id {id} but was not ready (killed; a member still)")))
            }
            (Err(e), None) => {
                node.kill();
                self.retired.push(node);
                Err(e.context("the joiner got no id (killed)"))
            }
        }
    }

    fn admit(&mut self, id: u64, mut node: NodeProc) {
        node.id = id;
        let mut log = OpenOptions::new().append(true).open(&node.log).ok();
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "---- jepsen harness: this node joined as node {id} ----");
        }
        assert!(!self.nodes.contains_key(&id), "node {id} joined twice");
        assert!(!self.retired_ids().contains(&id), "node {id} was removed; its id came back");
        self.directory.admit(id, node.base());
        self.nodes.insert(id, node);
    }

    /// A slot no process has run on, if one is left.
    pub fn spare_slot(&self) -> Option<u64> {
        let used: BTreeSet<u64> = self.nodes.values().map(|n| n.slot).collect();
        self.slots.iter().find(|s| !s.used && !used.contains(&s.number)).map(|s| s.number)
    }

    /// Clients stop picking node `id` (before it is taken out).
    pub fn withdraw(&self, id: u64) {
        self.directory.withdraw(id);
    }

    /// Node `id` is out of the cluster: killed, no longer a member (its log stays).
    pub fn retire(&mut self, id: u64) {
        self.directory.withdraw(id);
        if let Some(mut node) = self.nodes.remove(&id) {
            node.kill();
            self.retired.push(node);
        }
    }

    /// Delete a killed node's data directory (what a lost disk looks like).
    pub fn wipe(&mut self, id: u64) -> Result<()> {
        let node = self.node(id);
        if node.is_running() {
            bail!("node {id} is running: kill it before wiping its data");
        }
        let data_dir = node.data_dir.clone();
        // A lazy disk goes with its contents: unmounted, its backing files deleted.
        if let Some(disk) = self.disks.as_mut().and_then(|d| d.remove(&data_dir)) {
            drop(disk);
            let backing = disk_backing(&data_dir);
            std::fs::remove_dir_all(&backing).with_context(|| format!("remove {}", backing.display()))?;
        }
        std::fs::remove_dir_all(&data_dir).with_context(|| format!("remove {}", data_dir.display()))?;
        Ok(())
    }

    /// The slot node `id` runs on.
    pub fn slot_of(&self, id: u64) -> u64 {
        self.node(id).slot
    }
}

/// Where a lazy disk mounted on `data_dir` keeps its real files.
fn disk_backing(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".disk");
    data_dir.with_file_name(name)
}

/// Run `cmd serve` for `node` with its flags: `--node-id` and `--peers` for the first
/// nodes, `--join` (no id) for a node that joined; then `extra`.
fn launch(mut cmd: Command, node: &mut NodeProc, binary: &Path, peers: &str, extra: &[String]) -> Result<()> {
    let id = node.id;
    if node.child.is_some() {
        bail!("node {id} already running");
    }
    std::fs::create_dir_all(&node.data_dir)?;
    let mut log = OpenOptions::new().create(true).append(true).open(&node.log)?;
    let membership: Vec<String> = match &node.join_via {
        None => vec!["--node-id".into(), id.to_string(), "--peers".into(), peers.into()],
        Some(via) => vec!["--join".into(), via.clone()],
    };
    writeln!(log, "---- jepsen harness: starting node {id} (slot {}) {membership:?} ----", node.slot)?;
    let child = cmd
        .arg("serve")
        .args(&membership)
        .args(["--http", &node.http_addr])
        .args(["--raft", &node.raft_addr])
        .arg("--data-dir")
        .arg(&node.data_dir)
        .args(["--cluster-secret", CLUSTER_SECRET])
        .args(extra)
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

async fn get_json(http: &reqwest::Client, base: &str, path: &str, timeout: Duration) -> Result<(u16, Value)> {
    let resp = http.get(format!("{base}{path}")).timeout(timeout).send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Wait until `node` answers `/readyz` 200; error with its log tail on exit/timeout.
async fn wait_proc_ready(http: &reqwest::Client, node: &mut NodeProc, timeout: Duration) -> Result<Duration> {
    let name = if node.id == 0 {
        format!("joiner {}", node.data_dir.display())
    } else {
        format!("node {}", node.id)
    };
    let base = node.base();
    let waited = testkit::wait_ready(http, &base, timeout, || match node.exited() {
        Ok(status) => status.map(|s| s.to_string()),
        Err(e) => Some(format!("status unknown: {e}")),
    })
    .await;
    waited.map_err(|e| anyhow!("{name} {e}; log tail:\n{}", node.log_tail(40)))
}

impl Cluster {
    /// kill -9 (SIGCONT first if paused, so nothing stays stopped).
    pub fn kill(&mut self, id: u64) {
        self.node_mut(id).kill();
    }

    /// Whether node `id`'s process has exited by itself (reaped): its status, if so.
    pub fn exited(&mut self, id: u64) -> Result<Option<std::process::ExitStatus>> {
        self.node_mut(id).exited()
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
        let (from, to) = (self.node(from).slot, self.node(to).slot);
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

    /// Directed cuts in force, `(from, to)`, between members (by id).
    pub fn cut_links(&self) -> BTreeSet<(u64, u64)> {
        let slots = match &self.net {
            Net::Proxy { proxies, .. } => {
                proxies.iter().filter(|(_, p)| p.is_cut()).map(|((f, t, _), _)| (*f, *t)).collect()
            }
            Net::Netns { ns, .. } => ns.cuts(),
        };
        let id_of: BTreeMap<u64, u64> = self.nodes.values().map(|n| (n.slot, n.id)).collect();
        slots.into_iter().filter_map(|(f, t)| Some((*id_of.get(&f)?, *id_of.get(&t)?))).collect()
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
        get_json(&self.http, &self.node(id).base(), path, timeout).await
    }

    /// A request to member `id` with a bearer token (the membership nemesis's admin calls).
    pub async fn send(
        &self,
        id: u64,
        method: reqwest::Method,
        path: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.node(id).base());
        let resp = self.http.request(method, url).bearer_auth(token).timeout(timeout).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Wait until node `id` answers `/readyz` 200; error with its log tail on exit/timeout.
    pub async fn wait_ready(&mut self, id: u64, timeout: Duration) -> Result<Duration> {
        let node = self.nodes.get_mut(&id).ok_or_else(|| anyhow!("node {id} is not a member"))?;
        wait_proc_ready(&self.http, node, timeout).await
    }

    pub async fn wait_all_ready(&mut self, timeout: Duration) -> Result<()> {
        for id in self.ids() {
            self.wait_ready(id, timeout).await?;
        }
        Ok(())
    }

    /// The leader of `group` as the live nodes report it (the most named one), if any. A
    /// node that is no longer a member (a stale view after the membership nemesis) is not
    /// counted.
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
            if let Some(l) = leader.filter(|l| self.nodes.contains_key(l)) {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|(_, v)| *v).map(|(l, _)| l)
    }

    /// What each live member says of `group`: `(leader, state)` (`state`: `awake` or
    /// `asleep`), or nothing when it does not host it or did not answer.
    pub async fn group_reports(&self, group: &str) -> BTreeMap<u64, (Option<u64>, String)> {
        let mut out = BTreeMap::new();
        for id in self.live() {
            let Ok((200, view)) = self.get_json(id, "/v1/cluster", POLL_REQUEST_TIMEOUT).await else {
                continue;
            };
            if let Some(g) = view["groups"].as_array().and_then(|gs| gs.iter().find(|g| g["id"] == group)) {
                out.insert(id, (g["leader"].as_u64(), g["state"].as_str().unwrap_or("?").to_string()));
            }
        }
        out
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
        self.node(id).log_tail(lines)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut().chain(&mut self.retired).chain(&mut self.joining) {
            node.kill();
        }
        // Then the network: proxies close, namespaces and the bridge are removed.
        if let Net::Proxy { proxies, .. } = &mut self.net {
            proxies.clear();
        }
    }
}
