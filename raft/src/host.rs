//! [`RaftHost`]: one per node. Owns the sled database, the snapshot files, the group-commit
//! flusher, the node-liveness view and the table of groups; opens, reopens, evicts, drops and
//! shuts down groups; serves incoming RPCs.
//!
//! ## Residency
//!
//! Every group stored on this node is in the table, **resident** (its openraft instance runs)
//! or **dormant** (only on disk; a few bytes in memory). Groups start dormant at start-up —
//! except those that were not closed cleanly (see below), which [`RaftHost::recover`] reopens
//! — and are loaded on demand: an incoming RPC, [`RaftHost::load`], [`RaftHost::open_group`].
//! A group that has slept for `HostConfig::evict_after_ms`, with no handle held by the
//! application, nothing queued and a machine that is not [`busy`](crate::StateMachine::busy),
//! is evicted: its instance stops and its memory is freed (openraft costs ~200 KiB per
//! running group, so 10,000 resident idle groups would not fit a small node).
//!
//! **Clean close and leader restore.** Evicting a group writes its committed log id and a
//! `clean` marker durably. A group reopened with a matching marker starts with openraft's
//! leader restore on (a leader comes back as the leader at once, without an election: the
//! first write on an evicted event costs one reopen, not an election) and the marker is
//! removed, durably, before it runs. Without a marker (a crash while it ran), leader restore is
//! off: the persisted committed index may lag what the node had acknowledged, and a restored
//! leader could then serve a stale read. Such groups are reopened, awake, at start-up.
//!
//! ## Sleeping (see `quiesce`) and liveness (see `liveness`)
//!
//! A keeper task puts idle groups to sleep, evicts long-sleeping ones, and reacts to peers
//! going dead by waking the groups they led. A pinger task pings every peer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::Weak;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use openraft::SnapshotPolicy;

use crate::errors::RaftError;
use crate::figures;
use crate::figures::GroupView;
use crate::figures::RaftFigures;
use crate::figures::SnapshotCounting;
use crate::flusher::Flusher;
use crate::group::Group;
use crate::group::GroupParts;
use crate::identity::Identity;
use crate::liveness::Liveness;
use crate::liveness::PeerStatus;
use crate::liveness::LIVENESS_INTERVAL_MS;
use crate::liveness::LIVENESS_TIMEOUT_MS;
use crate::network::NetworkFactory;
use crate::network::RpcHandler;
use crate::network::RpcRequest;
use crate::network::RpcResponse;
use crate::network::Transport;
use crate::network::TransportError;
use crate::quiesce;
use crate::store::log::LogStore;
use crate::store::snapshot;
use crate::store::state::SmStore;
use crate::store::GroupTrees;
use crate::store::KEY_CLEAN;
use crate::store::KEY_COMMITTED;
use crate::store::KEY_MEMBERS;
use crate::store::KEY_VOTE;
use crate::types::decode;
use crate::types::encode;
use crate::types::Snapshot;
use crate::types::TypeConfig;
use crate::types::Vote;
use crate::GroupId;
use crate::NodeAddr;
use crate::NodeId;
use crate::StateMachine;
use crate::GROUP_ID_BYTES_MAX;

/// Open the node's sled database at `path` with a page cache of `cache_capacity_bytes`, and
/// make its files and their names durable: sled never fsyncs a directory nor its `conf` file,
/// so `conf`, `path` and its parent are fsynced here (else a power cut soon after the first start could lose the database file's
/// very name). Give the same `path` as [`HostConfig::sled_dir`], so the flusher fsyncs what
/// sled's own flush leaves unsynced.
///
/// **Memory caveat:** sled 0.34's real memory use is reported at roughly 10× `cache_capacity`
/// (spacejam/sled #1309, #986), so budget for that: 64 MiB of cache can mean ~640 MiB resident.
/// sled still flushes in the background every 500 ms; durability for Raft comes from the host's
/// explicit flushes, not from that timer.
pub fn open_db(path: impl AsRef<std::path::Path>, cache_capacity_bytes: u64) -> Result<sled::Db, RaftError> {
    let path = path.as_ref();
    let mut config = sled::Config::new().path(path).cache_capacity(cache_capacity_bytes);
    if crate::planted::planted(crate::planted::Bug::AckBeforeFsync) {
        config = config.flush_every_ms(None);
    }
    let db = config.open()?;
    if !crate::planted::planted(crate::planted::Bug::SkipDirFsync) {
        let fsync = |p: &std::path::Path, r: std::io::Result<()>| {
            r.map_err(|e| RaftError::Storage(format!("fsync {}: {e}", p.display())))
        };
        // sled writes its `conf` without an fsync: a torn one fails every later open.
        let conf = path.join("conf");
        fsync(&conf, std::fs::File::open(&conf).and_then(|f| f.sync_all()))?;
        fsync(path, crate::durable::sync_dir(path))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync(parent, crate::durable::sync_dir(parent))?;
        }
    }
    Ok(db)
}

/// Settings of a [`RaftHost`], shared by all its groups. Times are in milliseconds.
///
/// The defaults suit a LAN: a leader heartbeats every 250 ms and a follower that hears nothing
/// for a random 1–2 s starts an election (pre-vote first, so a node coming back from a
/// partition does not depose a healthy leader). openraft randomizes each group's election timeout
/// and tick phase, so groups created together do not tick in lockstep. A group whose only voter
/// is this node elects itself at once.
///
/// Why not faster: openraft gives each heartbeat one heartbeat interval to be answered, and an
/// awake group that misses heartbeats cannot go to sleep, so on a busy node (a burst of event
/// creations) tight timers feed on themselves — measured with 100/400–800 ms: a debug build
/// creating events 8 at a time went from healthy to ~8,000 failed heartbeats/s and never
/// recovered. Failover does not wait for these timers: a node silent for
/// [`crate::LIVENESS_TIMEOUT_MS`] has its groups elected away at once (`quiesce`).
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// This node's id. Default 1.
    pub node_id: NodeId,
    /// How often a leader sends heartbeats. Default 250.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout; must exceed the heartbeat. Default 1000.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout. Default 2000.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and then purge the log) after this many entries since the last one.
    /// Default 20,000 entries; each entry is a batch of commands, so under load that is many
    /// more commands, while a restart replays at most this many entries.
    pub snapshot_logs_since_last: u64,
    /// Entries already in a snapshot that are kept in the log (so lagging followers can catch
    /// up without a snapshot). Default 1000.
    pub max_in_snapshot_log_to_keep: u64,
    /// Longest wait of `Group::write` / `Group::read_linearizable` before it answers.
    /// Default 2000.
    pub write_timeout_ms: u64,
    /// Deadline for sending and installing a snapshot on a follower. Default 10000.
    pub install_snapshot_timeout_ms: u64,
    /// Added to this node's wall clock (ms since the Unix epoch) when it stamps a batch it
    /// proposes as leader. Default 0. Only for tests and fault injection: it simulates a leader
    /// whose clock is behind (negative) or ahead (positive). It does not affect Raft's timers.
    pub clock_skew_ms: i64,
    /// A group idle this long (no write, read or RPC), whose followers have everything, goes
    /// to sleep: no heartbeat, no timer. 0: groups never sleep. Default 500: a group that has
    /// answered stops costing ticks and heartbeats soon after, which is what a failover needs
    /// (a kill -9 wakes a thousand groups in seconds; with 2 s, the ones already served kept
    /// ticking and slowed the rest: failover max 2.9–3.5 s against 2.2–2.6 s with 500 ms, A/B
    /// in docs/benchmarks.md). A busy group never idles that long, so it never sleeps.
    pub sleep_after_ms: u64,
    /// A group asleep this long, with nothing holding it, leaves memory (dormant). 0: never.
    /// Default 15000.
    pub evict_after_ms: u64,
    /// The sled database's directory (what [`open_db`] opened). With it, every flush of the
    /// flusher also fsyncs sled's log file and this directory: sled's `flush` writes with
    /// `sync_file_range`, which neither commits the file's size nor flushes the disk's
    /// cache, so without this an acknowledged write does not survive a power cut (found by
    /// the power nemesis, docs/fault-tests.md). `None` (the default, for tests on
    /// throwaway databases): a crash of the process is survived, a power cut is not.
    pub sled_dir: Option<std::path::PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            node_id: 1,
            heartbeat_interval_ms: 250,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_logs_since_last: 20_000,
            max_in_snapshot_log_to_keep: 1000,
            write_timeout_ms: 2000,
            install_snapshot_timeout_ms: 10_000,
            clock_skew_ms: 0,
            sleep_after_ms: 500,
            evict_after_ms: 15_000,
            sled_dir: None,
        }
    }
}

impl HostConfig {
    /// The openraft configuration of every group of this host, validated.
    fn raft_config(&self) -> Result<openraft::Config, RaftError> {
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.election_timeout_min_ms {
            return Err(RaftError::Config(format!(
                "heartbeat_interval_ms ({}) must be > 0 and < election_timeout_min_ms ({})",
                self.heartbeat_interval_ms, self.election_timeout_min_ms
            )));
        }
        if self.write_timeout_ms == 0 || self.snapshot_logs_since_last == 0 {
            return Err(RaftError::Config(
                "write_timeout_ms and snapshot_logs_since_last must be > 0".into(),
            ));
        }
        let config = openraft::Config {
            cluster_name: "boxoffice".to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.install_snapshot_timeout_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.max_in_snapshot_log_to_keep,
            // A follower further behind than this gets a snapshot instead of entries; it must
            // exceed the snapshot interval or a snapshot would not fix the lag.
            replication_lag_threshold: self.snapshot_logs_since_last.saturating_mul(2).max(1000),
            enable_pre_vote: Some(true),
            // Only a group reopened after a clean close may restore its leadership (see the
            // module doc); `load_locked` turns it on for those.
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        config.validate().map_err(|e| RaftError::Config(e.to_string()))
    }
}

/// Check that `gid` can name sled trees and a directory: `[A-Za-z0-9_.-]{1,GROUP_ID_BYTES_MAX}`,
/// not `.` or `..`.
fn validate_group_id(gid: &str) -> Result<(), RaftError> {
    let ok = !gid.is_empty()
        && gid.len() <= GROUP_ID_BYTES_MAX
        && gid != "."
        && gid != ".."
        && gid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(RaftError::InvalidGroupId(gid.to_string()))
    }
}

/// Longest wait, when a group is loaded, for its openraft core to publish its stored state.
const LOAD_METRICS_WAIT: Duration = Duration::from_secs(2);

/// Makes the empty machine of a group (by id), to open or reopen it.
pub type MachineFactory<S> = Arc<dyn Fn(&str) -> S + Send + Sync>;

/// A group's residency (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// Running and ticking.
    Awake,
    /// Running, ticks off.
    Asleep,
    /// Only on disk.
    Dormant,
}

impl Residency {
    pub fn name(self) -> &'static str {
        match self {
            Residency::Awake => "awake",
            Residency::Asleep => "asleep",
            Residency::Dormant => "dormant",
        }
    }
}

/// One group as the host sees it, for operators.
#[derive(Clone, Debug)]
pub struct GroupStatus {
    pub id: GroupId,
    pub residency: Residency,
    /// The leader this node knows of (for a dormant group: when it was last running).
    pub leader: Option<NodeId>,
    /// Voters and learners (for a dormant group: at its last clean close; empty if unknown).
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// A membership change is in flight (joint consensus: `voters` is the union of the old
    /// and the new voter sets until it commits). Never for a dormant group.
    pub changing: bool,
    /// Last log index and applied index here (for a dormant group: its committed index at
    /// the last clean close).
    pub last_log_index: u64,
    pub applied_index: u64,
}

/// Counters and gauges of a host, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct HostStats {
    pub awake: u64,
    pub asleep: u64,
    pub dormant: u64,
    /// Times a group went to sleep / woke up / left memory / was loaded again.
    pub sleeps: u64,
    pub wakes: u64,
    pub evictions: u64,
    pub loads: u64,
    /// Groups woken because the node that led them was declared dead.
    pub failover_wakes: u64,
    /// Times a group became the leader here (see `figures::LeaderWatch`).
    pub leader_changes: u64,
    /// Snapshots sent to a peer that received and answered them / installed here from a leader.
    pub snapshots_sent: u64,
    pub snapshots_installed: u64,
}

/// A dormant group: what is remembered of it in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dormant {
    /// Its leader when it was last running (from its stored vote at start-up).
    pub(crate) leader: Option<NodeId>,
    /// `(voters, learners)` at its last clean close.
    pub(crate) members: (Vec<NodeId>, Vec<NodeId>),
    /// Its committed index at its last clean close.
    pub(crate) committed: u64,
}

pub(crate) enum Slot<S: StateMachine> {
    Resident(Group<S>),
    Dormant(Dormant),
}

pub(crate) struct Entry<S: StateMachine> {
    /// Serializes loading, evicting and dropping this group.
    pub(crate) lock: Arc<tokio::sync::Mutex<()>>,
    pub(crate) slot: Slot<S>,
}

/// One node's Raft groups over one sled database. Cheap to clone.
///
/// Create it inside a tokio runtime (it starts its keeper and pinger tasks). Call
/// [`RaftHost::shutdown`] before dropping the last clone: dropping it stops the flusher, and
/// groups still running (through `Group` handles) then fail their next log write.
pub struct RaftHost<S: StateMachine> {
    pub(crate) inner: Arc<HostInner<S>>,
}

impl<S: StateMachine> Clone for RaftHost<S> {
    fn clone(&self) -> Self {
        RaftHost { inner: self.inner.clone() }
    }
}

pub(crate) struct HostInner<S: StateMachine> {
    pub(crate) config: HostConfig,
    raft_config: openraft::Config,
    db: sled::Db,
    snapshot_root: Arc<PathBuf>,
    flusher: Flusher,
    pub(crate) transport: Arc<dyn Transport>,
    make_machine: MachineFactory<S>,
    pub(crate) groups: RwLock<BTreeMap<GroupId, Entry<S>>>,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) identity: Arc<Identity>,
    /// Each group that takes leadership here, as it does (see [`RaftHost::subscribe_leaderships`]).
    became_leader: tokio::sync::broadcast::Sender<GroupId>,
    shut_down: AtomicBool,
    pub(crate) stats: Counters,
}

/// Leaderships buffered for a slow [`RaftHost::subscribe_leaderships`] subscriber.
pub const LEADERSHIPS_BUFFERED: usize = 4_096;

/// What a peer answered to [`RaftHost::identify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Its cluster id, if it knows one.
    pub cluster: Option<String>,
    /// Its store id.
    pub store: u64,
    /// The store id the asking node is registered with there, if it is.
    pub registered_as: Option<u64>,
}

/// Monotonic counters of [`HostStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) wakes: Arc<AtomicU64>,
    pub(crate) sleeps: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) failover_wakes: AtomicU64,
    pub(crate) leader_changes: Arc<AtomicU64>,
    pub(crate) snapshots_sent: Arc<AtomicU64>,
    pub(crate) snapshots_installed: AtomicU64,
}

impl<S: StateMachine> Drop for HostInner<S> {
    fn drop(&mut self) {
        self.flusher.stop();
    }
}

/// This process's incarnation: distinct across restarts.
fn incarnation() -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

impl<S: StateMachine> RaftHost<S> {
    /// Create the host. `db` is the node's one sled database (the caller opens it with a
    /// deliberate cache capacity, e.g. with [`open_db`]); snapshots go in files under
    /// `snapshot_dir`; `make_machine` makes the empty machine of a group. Every group stored in
    /// `db` starts dormant. Starts the flusher thread and the keeper and pinger tasks.
    pub fn new(
        config: HostConfig,
        db: sled::Db,
        snapshot_dir: PathBuf,
        network: Arc<dyn Transport>,
        make_machine: MachineFactory<S>,
    ) -> Result<Self, RaftError> {
        let raft_config = config.raft_config()?;
        crate::durable::create_dir_durably(&snapshot_dir)
            .map_err(|e| RaftError::Storage(format!("snapshot directory {}: {e}", snapshot_dir.display())))?;
        let stored = GroupTrees::stored(&db)?;
        let flusher = Flusher::start(db.clone(), config.node_id, config.sled_dir.as_deref())
            .map_err(|e| RaftError::Storage(e.to_string()))?;
        let mut groups = BTreeMap::new();
        for gid in stored.into_iter().filter(|gid| validate_group_id(gid).is_ok()) {
            let dormant = read_dormant(&db, &gid)?;
            groups.insert(gid, Entry { lock: Arc::default(), slot: Slot::Dormant(dormant) });
        }
        tracing::info!(node = config.node_id, stored = groups.len(), ?config, "raft host started");
        let stats = Counters::default();
        let liveness = Arc::new(Liveness::new(config.node_id, incarnation()));
        let network: Arc<dyn Transport> = Arc::new(SnapshotCounting {
            inner: network,
            sent: stats.snapshots_sent.clone(),
            liveness: liveness.clone(),
        });
        let host = RaftHost {
            inner: Arc::new(HostInner {
                liveness,
                identity: Identity::open(&db, config.sled_dir.as_deref())?,
                became_leader: tokio::sync::broadcast::channel(LEADERSHIPS_BUFFERED).0,
                config,
                raft_config,
                db,
                snapshot_root: Arc::new(snapshot_dir),
                flusher,
                transport: network,
                make_machine,
                groups: RwLock::new(groups),
                shut_down: AtomicBool::new(false),
                stats,
            }),
        };
        tokio::spawn(quiesce::keeper(Arc::downgrade(&host.inner)));
        tokio::spawn(pinger(Arc::downgrade(&host.inner)));
        Ok(host)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    /// The host's settings.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Why this node's storage can no longer be trusted, once a flush or fsync has failed (a
    /// full or failing disk): every later write fails, and the node must restart to recover
    /// from what is on disk.
    pub fn storage_failure(&self) -> Option<String> {
        self.inner.flusher.failure()
    }

    /// How many `db.flush()` calls (fsyncs) the host has made, over all groups.
    pub fn flush_count(&self) -> u64 {
        self.inner.flusher.flush_count()
    }

    /// The ids of the groups that take leadership on this node, as they do (a subscriber that
    /// falls more than [`LEADERSHIPS_BUFFERED`] behind is told it lagged).
    pub fn subscribe_leaderships(&self) -> tokio::sync::broadcast::Receiver<GroupId> {
        self.inner.became_leader.subscribe()
    }

    /// Whose data this is, and what this node knows of its peers' (see [`Identity`]).
    pub fn identity(&self) -> &Arc<Identity> {
        &self.inner.identity
    }

    /// Ask the node at `addr` who it is (see [`Identity`]): its cluster id if it knows one,
    /// its store id, and the store id this node is registered with there.
    pub async fn identify(&self, target: NodeId, addr: &NodeAddr) -> Result<PeerIdentity, TransportError> {
        let rpc = RpcRequest::Identify { from: self.node_id() };
        match self.inner.transport.send(target, addr, "", rpc).await? {
            RpcResponse::Identity { cluster, store, registered_as } => {
                Ok(PeerIdentity { cluster, store, registered_as })
            }
            other => Err(TransportError::Remote(format!("identify answered {other:?}"))),
        }
    }

    /// Watch these nodes' liveness (every node of the cluster; this one is left out).
    pub fn set_peers(&self, peers: BTreeMap<NodeId, NodeAddr>) {
        self.inner.liveness.set_peers(peers);
    }

    /// These nodes left the cluster for good (removed): dead, so the groups they led fail over
    /// (see `liveness`).
    pub fn set_gone(&self, ids: &[NodeId]) {
        self.inner.liveness.set_gone(ids);
    }

    /// What this node believes of `node`'s liveness (itself: live).
    pub fn peer_status(&self, node: NodeId) -> PeerStatus {
        self.inner.liveness.status(node)
    }

    /// How long `node` has been silent as this node sees it (since its last answer, or since
    /// this node started to watch it); `None` for a node not watched, and for this node.
    pub fn peer_silence(&self, node: NodeId) -> Option<Duration> {
        self.inner.liveness.silent_ms(node).map(Duration::from_millis)
    }

    /// What this node believes of each peer's liveness.
    pub fn peer_statuses(&self) -> BTreeMap<NodeId, PeerStatus> {
        self.inner.liveness.statuses()
    }

    /// Create a group's storage (or reopen it) and start its openraft instance, awake.
    /// Idempotent: a running group is returned as it is (and woken).
    pub async fn open_group(&self, gid: &str) -> Result<Group<S>, RaftError> {
        validate_group_id(gid)?;
        let lock = {
            let mut table = self.inner.groups.write().unwrap_or_else(|p| p.into_inner());
            table
                .entry(gid.to_string())
                .or_insert_with(|| Entry { lock: Arc::default(), slot: Slot::Dormant(Dormant::default()) })
                .lock
                .clone()
        };
        let group = self.inner.load(gid, &lock, false).await?;
        group.touch();
        Ok(group)
    }

    /// Create group `gid` as a **seeded** group, dormant, without starting it. Every voter
    /// writes the same state, as if an election and two entries had already happened:
    ///
    /// - a committed vote for term 1 and the voter [`quiesce::elector`] picks by a hash of
    ///   `gid` (first leaders spread over the nodes: the *named leader*);
    /// - the log: a membership of `voters` at index 0 and `commands` as one batch stamped
    ///   `now_ms` at index 1, both as the named leader's entries of term 1;
    /// - those two entries committed (applied when the group first loads), and the
    ///   clean-close marker, so the named leader loads the group as its leader (openraft's
    ///   leader restore) with no election and no blank entry.
    ///
    /// `false` if the group was already stored here.
    ///
    /// **Why this is Raft.** The caller gives every voter the same arguments (derived from
    /// replicated state), so the seeded state is the outcome of a run every voter agrees on:
    /// term 1 has exactly one leader (every voter's vote is for it, so none can grant term 1
    /// to anyone else; a voter that has not seeded yet does not store the group and answers
    /// nothing), and it appended the seed; the seed entries are identical wherever they
    /// exist, so no leader can ever hold a conflicting entry at 0 or 1, and they are never
    /// truncated — which is why treating them as committed before any quorum round is
    /// safe; nothing was ever acknowledged before the seed, so the restored leader cannot
    /// serve a stale read (the hazard leader restore has after a crash). A later replica
    /// gets the seed from a leader like any other entry, or in a snapshot. A voter whose node
    /// is dead is replaced by the ordinary failover (its groups elect a leader for term 2 or
    /// later).
    ///
    /// It saves what creating a group used to cost — an openraft instance started on every
    /// voter, an election, a blank entry and the set-up entry, each replicated and fsynced —
    /// for a group that may never be used: creating one is a few sled writes and a share of a
    /// group-committed fsync. Members are stored without addresses; the transport sends to
    /// the address the cluster records (`set_peers`).
    pub async fn create_seeded(
        &self,
        gid: &str,
        voters: &std::collections::BTreeSet<NodeId>,
        now_ms: u64,
        commands: &[S::Command],
    ) -> Result<bool, RaftError> {
        validate_group_id(gid)?;
        let Some(leader) = quiesce::elector(gid, voters, 0, |_| true) else {
            return Err(RaftError::Raft(format!("group {gid}: a seeded group needs voters")));
        };
        // The entry's lock is taken before the entry is visible, so nothing loads the group
        // before its seed is written.
        let lock: Arc<tokio::sync::Mutex<()>> = Arc::default();
        let _guard = lock.clone().try_lock_owned().expect("a new lock is free");
        {
            let mut table = self.inner.groups.write().unwrap_or_else(|p| p.into_inner());
            if table.contains_key(gid) {
                return Ok(false);
            }
            let dormant = Dormant {
                leader: Some(leader),
                members: (voters.iter().copied().collect(), Vec::new()),
                committed: SEED_COMMITTED,
            };
            table.insert(gid.to_string(), Entry { lock, slot: Slot::Dormant(dormant) });
        }
        let written = self.write_seed(gid, voters, leader, now_ms, commands);
        let synced = match written {
            Ok(()) => self.inner.flusher.sync().await.map_err(|e| RaftError::Storage(e.to_string())),
            Err(e) => Err(e),
        };
        if let Err(e) = synced {
            // Not stored after all: a later call tries again.
            self.inner.groups.write().unwrap_or_else(|p| p.into_inner()).remove(gid);
            let _ = GroupTrees::delete(&self.inner.db, gid);
            return Err(e);
        }
        Ok(true)
    }

    /// The storage of a seeded group (see [`RaftHost::create_seeded`]), not yet synced.
    fn write_seed(
        &self,
        gid: &str,
        voters: &std::collections::BTreeSet<NodeId>,
        leader: NodeId,
        now_ms: u64,
        commands: &[S::Command],
    ) -> Result<(), RaftError> {
        use openraft::entry::RaftEntry;
        use openraft::vote::RaftLeaderId;
        use openraft::vote::RaftVote;
        type LeaderId = openraft::alias::LeaderIdOf<crate::types::TypeConfig>;
        let bad = |e: String| RaftError::Storage(format!("group {gid}: seed: {e}"));
        let commands = commands
            .iter()
            .map(|c| encode(c).map(crate::types::CommandBytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let batch = encode(&crate::types::Batch { now_ms, commands }).map_err(bad)?;
        // The entries are the named leader's in term 1, like the vote: its restore then
        // finds its own entries and appends no blank one (a first use costs one entry, the
        // write's).
        let term1 = LeaderId::new(1, leader).to_committed();
        let membership = openraft::Membership::new_with_defaults(vec![voters.clone()], Vec::<NodeId>::new());
        let entries = [
            crate::types::Entry::new(
                crate::types::LogId::new(term1, 0),
                openraft::EntryPayload::Membership(membership),
            ),
            crate::types::Entry::new(
                crate::types::LogId::new(term1, SEED_COMMITTED),
                openraft::EntryPayload::Normal(crate::types::CommandBytes(batch)),
            ),
        ];
        let vote = crate::types::Vote::from_leader_id(LeaderId::new(1, leader), true);
        let committed = encode(&entries[1].log_id).map_err(bad)?;
        let trees = GroupTrees::open(&self.inner.db, gid)?;
        let mut log = trees.log.batch();
        for entry in &entries {
            log.insert(&crate::store::index_key(entry.log_id.index), encode(entry).map_err(bad)?);
        }
        trees.log.apply_batch(log)?;
        let members: (Vec<NodeId>, Vec<NodeId>) = (voters.iter().copied().collect(), Vec::new());
        let mut meta = trees.meta.batch();
        meta.insert(KEY_MEMBERS, encode(&members).map_err(bad)?);
        meta.insert(KEY_VOTE, encode(&vote).map_err(bad)?);
        meta.insert(KEY_COMMITTED, committed.clone());
        meta.insert(KEY_CLEAN, committed);
        trees.meta.apply_batch(meta)?;
        Ok(())
    }

    /// The group `gid` if it is resident.
    pub fn group(&self, gid: &str) -> Option<Group<S>> {
        self.inner.resident(gid)
    }

    /// The group `gid`, loaded (asleep) if dormant. `GroupNotFound` if it is not stored here.
    pub async fn load(&self, gid: &str) -> Result<Group<S>, RaftError> {
        if let Some(g) = self.inner.resident(gid) {
            return Ok(g);
        }
        let lock = self.inner.entry_lock(gid).ok_or_else(|| RaftError::GroupNotFound(gid.to_string()))?;
        self.inner.load(gid, &lock, true).await
    }

    /// The leader of `gid` as this node knows it (for a dormant group: when it last ran).
    pub fn known_leader(&self, gid: &str) -> Option<NodeId> {
        match &self.inner.groups.read().unwrap_or_else(|p| p.into_inner()).get(gid)?.slot {
            Slot::Resident(g) => g.known_leader(),
            Slot::Dormant(d) => d.leader,
        }
    }

    /// The voters of `gid` as this node last knew them (a dormant group: at its last clean
    /// close), if it is stored here.
    pub fn stored_voters(&self, gid: &str) -> Option<Vec<NodeId>> {
        match &self.inner.groups.read().unwrap_or_else(|p| p.into_inner()).get(gid)?.slot {
            Slot::Resident(g) => Some(g.voters().into_iter().collect()),
            Slot::Dormant(d) => Some(d.members.0.clone()),
        }
    }

    /// Whether `gid` is stored on this node (resident or dormant).
    pub fn is_stored(&self, gid: &str) -> bool {
        self.inner.groups.read().unwrap_or_else(|p| p.into_inner()).contains_key(gid)
    }

    /// Ids of the resident groups, sorted.
    pub fn open_groups(&self) -> Vec<GroupId> {
        let table = self.inner.groups.read().unwrap_or_else(|p| p.into_inner());
        table.iter().filter(|(_, e)| matches!(e.slot, Slot::Resident(_))).map(|(id, _)| id.clone()).collect()
    }

    /// Ids of every group stored here, sorted.
    pub fn stored_groups(&self) -> Vec<GroupId> {
        self.inner.groups.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Every stored group with its residency and known leader, sorted by id.
    pub fn group_statuses(&self) -> Vec<GroupStatus> {
        let table = self.inner.groups.read().unwrap_or_else(|p| p.into_inner());
        table
            .iter()
            .map(|(id, e)| match &e.slot {
                Slot::Resident(g) => {
                    let (voters, learners) = g.voters_and_learners();
                    GroupStatus {
                        id: id.clone(),
                        residency: if g.is_asleep() { Residency::Asleep } else { Residency::Awake },
                        leader: g.known_leader(),
                        voters,
                        learners,
                        changing: g.membership_changing(),
                        last_log_index: g.last_log_index(),
                        applied_index: g.applied_index(),
                    }
                }
                Slot::Dormant(d) => GroupStatus {
                    id: id.clone(),
                    residency: Residency::Dormant,
                    leader: d.leader,
                    voters: d.members.0.clone(),
                    learners: d.members.1.clone(),
                    changing: false,
                    last_log_index: d.committed,
                    applied_index: d.committed,
                },
            })
            .collect()
    }

    /// Figures over the groups in memory here (see the `figures` module): read from each
    /// group's metrics watch under the table's lock, without waking or loading any group.
    pub fn raft_figures(&self) -> RaftFigures {
        let views: Vec<GroupView> = {
            let table = self.inner.groups.read().unwrap_or_else(|p| p.into_inner());
            table
                .values()
                .filter_map(|e| match &e.slot {
                    Slot::Resident(g) => Some(group_view(g)),
                    Slot::Dormant(_) => None,
                })
                .collect()
        };
        figures::aggregate(self.node_id(), &views, &self.inner.liveness.statuses())
    }

    /// Counters and gauges for metrics.
    pub fn stats(&self) -> HostStats {
        let mut stats = HostStats {
            sleeps: self.inner.stats.sleeps.load(Ordering::Relaxed),
            evictions: self.inner.stats.evictions.load(Ordering::Relaxed),
            loads: self.inner.stats.loads.load(Ordering::Relaxed),
            failover_wakes: self.inner.stats.failover_wakes.load(Ordering::Relaxed),
            wakes: self.inner.stats.wakes.load(Ordering::Relaxed),
            leader_changes: self.inner.stats.leader_changes.load(Ordering::Relaxed),
            snapshots_sent: self.inner.stats.snapshots_sent.load(Ordering::Relaxed),
            snapshots_installed: self.inner.stats.snapshots_installed.load(Ordering::Relaxed),
            ..HostStats::default()
        };
        for status in self.group_statuses() {
            match status.residency {
                Residency::Awake => stats.awake += 1,
                Residency::Asleep => stats.asleep += 1,
                Residency::Dormant => stats.dormant += 1,
            }
        }
        stats
    }

    /// Reopen, awake, every group that was not closed cleanly (it ran when the node stopped),
    /// so it rejoins its group and its machine rebuilds what the application derives from it.
    pub async fn recover(&self) -> Result<Vec<GroupId>, RaftError> {
        let mut reopened = Vec::new();
        for gid in self.stored_groups() {
            if self.inner.resident(&gid).is_some() {
                continue;
            }
            let trees = GroupTrees::view(&self.inner.db, &gid)?;
            if trees.meta.get(KEY_CLEAN)?.is_none() {
                let group = self.open_group(&gid).await?;
                drop(group);
                reopened.push(gid);
            }
        }
        tracing::info!(
            node = self.node_id(),
            groups = reopened.len(),
            "reopened the groups not closed cleanly"
        );
        Ok(reopened)
    }

    /// Stop the group's raft (if running) and delete its storage and snapshots.
    pub async fn drop_group(&self, gid: &str) -> Result<(), RaftError> {
        validate_group_id(gid)?;
        let Some(lock) = self.inner.entry_lock(gid) else { return Ok(()) };
        let _guard = lock.lock().await;
        let entry = self.inner.groups.write().unwrap_or_else(|p| p.into_inner()).remove(gid);
        if let Some(Entry { slot: Slot::Resident(group), .. }) = entry {
            group.stop().await;
        }
        GroupTrees::delete(&self.inner.db, gid)?;
        self.inner.flusher.sync().await.map_err(|e| RaftError::Storage(e.to_string()))?;
        let (root, id) = (self.inner.snapshot_root.clone(), gid.to_string());
        tokio::task::spawn_blocking(move || snapshot::remove_all(&root, &id))
            .await
            .map_err(|e| RaftError::Storage(e.to_string()))?
            .map_err(|e| RaftError::Storage(e.to_string()))?;
        tracing::info!(node = self.node_id(), group = gid, "group dropped");
        Ok(())
    }

    /// Stop every group, make everything durable and stop the flusher. Later calls fail with
    /// `ShuttingDown` / `GroupNotFound`.
    pub async fn shutdown(&self) {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let groups: Vec<Group<S>> = {
            let mut table = self.inner.groups.write().unwrap_or_else(|p| p.into_inner());
            let resident: Vec<Group<S>> = table
                .values()
                .filter_map(|e| match &e.slot {
                    Slot::Resident(g) => Some(g.clone()),
                    Slot::Dormant(_) => None,
                })
                .collect();
            table.clear();
            resident
        };
        let count = groups.len();
        futures::future::join_all(groups.iter().map(|g| g.stop())).await;
        if let Err(e) = self.inner.flusher.sync().await {
            tracing::error!(node = self.node_id(), error = %e, "final flush failed");
        }
        self.inner.flusher.stop();
        tracing::info!(node = self.node_id(), groups = count, "raft host shut down");
    }

    /// Server side of the transport: hand an incoming RPC (already decoded) to the local group,
    /// loading it if it is dormant. See `quiesce` for what wakes a group and for the vote guard.
    pub async fn handle_rpc(&self, gid: &str, rpc: RpcRequest) -> Result<RpcResponse, RaftError> {
        if gid.is_empty() {
            return match rpc {
                RpcRequest::Ping { from, incarnation } => {
                    self.inner.liveness.heard(from, incarnation);
                    Ok(RpcResponse::Pong { incarnation: self.inner.liveness.incarnation() })
                }
                RpcRequest::Identify { from } => {
                    let identity = &self.inner.identity;
                    Ok(RpcResponse::Identity {
                        cluster: identity.cluster(),
                        store: identity.store_id(),
                        registered_as: identity.registered(from),
                    })
                }
                other => Err(RaftError::Raft(format!("{} needs a group", other.kind()))),
            };
        }
        if let RpcRequest::Sleep { vote, last_log_id, committed } = &rpc {
            // A dormant group is as quiet as it gets; only a running one has timers to stop.
            let asleep = match self.inner.resident(gid) {
                Some(group) => quiesce::accept_sleep(&group, vote, last_log_id.as_ref(), committed.as_ref()),
                None if self.is_stored(gid) => true,
                None => return Err(RaftError::GroupNotFound(gid.to_string())),
            };
            return Ok(RpcResponse::Sleep(asleep));
        }
        let group = self.load(gid).await?;
        if let RpcRequest::Vote(req) | RpcRequest::PreVote(req) = &rpc {
            if let Some(refusal) = quiesce::guard_vote(&self.inner, &group, req) {
                return Ok(RpcResponse::Vote(refusal));
            }
        }
        group.touch();
        let raft = group.raft();
        let stopped = |e: &dyn std::fmt::Display| RaftError::Raft(format!("group {gid}: {e}"));
        let response = match rpc {
            RpcRequest::AppendEntries(req) => {
                RpcResponse::AppendEntries(raft.append_entries(req).await.map_err(|e| stopped(&e))?)
            }
            RpcRequest::Vote(req) => RpcResponse::Vote(raft.vote(req).await.map_err(|e| stopped(&e))?),
            RpcRequest::PreVote(req) => RpcResponse::Vote(raft.pre_vote(req).await.map_err(|e| stopped(&e))?),
            RpcRequest::InstallSnapshot { vote, meta, data } => {
                let snapshot: Snapshot = Snapshot { meta, snapshot: data };
                let answer = raft.install_full_snapshot(vote, snapshot).await.map_err(|e| stopped(&e))?;
                // Taken (not refused for a stale vote): this node's vote is now the sender's.
                if answer.vote == vote {
                    self.inner.stats.snapshots_installed.fetch_add(1, Ordering::Relaxed);
                }
                RpcResponse::InstallSnapshot(answer)
            }
            RpcRequest::TransferLeader(req) => {
                RpcResponse::TransferLeader(raft.handle_transfer_leader(req).await.map_err(|e| stopped(&e))?)
            }
            RpcRequest::Propose { commands } => RpcResponse::Propose(group.propose_forwarded(commands).await),
            RpcRequest::ReadIndex => RpcResponse::ReadIndex(group.read_index_local().await),
            RpcRequest::Sleep { .. } | RpcRequest::Ping { .. } | RpcRequest::Identify { .. } => {
                unreachable!("answered above")
            }
        };
        Ok(response)
    }

    /// A weak handle for [`LocalTransport`](crate::LocalTransport).
    pub(crate) fn rpc_handler(&self) -> Arc<dyn RpcHandler> {
        Arc::new(WeakHost { inner: Arc::downgrade(&self.inner) })
    }
}

impl<S: StateMachine> HostInner<S> {
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    pub(crate) fn resident(&self, gid: &str) -> Option<Group<S>> {
        match &self.groups.read().unwrap_or_else(|p| p.into_inner()).get(gid)?.slot {
            Slot::Resident(g) => Some(g.clone()),
            Slot::Dormant(_) => None,
        }
    }

    pub(crate) fn entry_lock(&self, gid: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        self.groups.read().unwrap_or_else(|p| p.into_inner()).get(gid).map(|e| e.lock.clone())
    }

    /// Load `gid` (its entry must exist) under its lock: the resident group, or a new openraft
    /// instance over its storage (ticks off when `asleep`).
    pub(crate) async fn load(
        &self,
        gid: &str,
        lock: &tokio::sync::Mutex<()>,
        asleep: bool,
    ) -> Result<Group<S>, RaftError> {
        let _guard = lock.lock().await;
        if self.is_shut_down() {
            return Err(RaftError::ShuttingDown);
        }
        match self.groups.read().unwrap_or_else(|p| p.into_inner()).get(gid).map(|e| &e.slot) {
            Some(Slot::Resident(g)) => return Ok(g.clone()),
            Some(Slot::Dormant(_)) => {}
            None => return Err(RaftError::GroupNotFound(gid.to_string())),
        }
        let trees = GroupTrees::open(&self.db, gid)?;
        // A clean close lets the leader come back as the leader; the marker goes (durably)
        // before the group runs, so a crash from here on reopens it without leader restore.
        let marker = trees.meta.get(KEY_CLEAN)?;
        let restore = marker.is_some() && marker == trees.meta.get(KEY_COMMITTED)?;
        if marker.is_some() {
            trees.meta.remove(KEY_CLEAN)?;
            self.flusher.sync().await.map_err(|e| RaftError::Storage(e.to_string()))?;
        }
        let config = Arc::new(openraft::Config {
            enable_tick: !asleep,
            enable_leader_restore: Some(restore),
            ..self.raft_config.clone()
        });
        let gid_arc: Arc<str> = Arc::from(gid);
        let log_store = LogStore::new(gid_arc.clone(), trees.clone(), self.flusher.clone());
        let machine = (self.make_machine)(gid);
        let sm_store = SmStore::new(
            gid_arc.clone(),
            trees.meta.clone(),
            self.flusher.clone(),
            machine,
            self.snapshot_root.clone(),
        );
        let state = sm_store.shared();
        let network = NetworkFactory {
            from: self.config.node_id,
            group: gid_arc,
            transport: self.transport.clone(),
            ttl_min: Duration::from_millis(self.config.election_timeout_min_ms),
        };
        let stored_vote: Option<Vote> = match trees.meta.get(KEY_VOTE)? {
            Some(bytes) => {
                Some(decode(&bytes).map_err(|e| RaftError::Storage(format!("group {gid}: vote: {e}")))?)
            }
            None => None,
        };
        let has_log = trees.log.last()?.is_some();
        let raft = openraft::Raft::new(self.config.node_id, config, network, log_store, sm_store)
            .await
            .map_err(|e| RaftError::Raft(format!("group {gid}: start failed: {e}")))?;
        // The core starts in the background: wait until its metrics show the stored state, so
        // callers see the group's leader and membership at once (the membership comes from
        // the log: a seeded group that never ran has only its seed).
        if stored_vote.is_some() || has_log {
            let started = raft
                .wait(Some(LOAD_METRICS_WAIT))
                .metrics(
                    |m| stored_vote.is_none_or(|v| m.vote >= v) && (!has_log || m.last_log_index.is_some()),
                    "metrics of the stored vote and log",
                )
                .await;
            if let Err(e) = started {
                tracing::warn!(group = gid, error = %e, "group loaded, its metrics are late");
            }
        }
        // Counts leadership taken here, from the group's own core (no task; `figures`). Its
        // baseline is the state the group started in: a leader restored at load is no change.
        let leading = raft.metrics().borrow_watched().state == openraft::ServerState::Leader;
        let watch = Arc::new(figures::LeaderWatch::new(
            self.stats.leader_changes.clone(),
            leading,
            gid.to_string(),
            self.became_leader.clone(),
        ));
        if let Err(e) = raft.set_metrics_recorder(Some(watch)).await {
            tracing::warn!(group = gid, error = %e, "leader changes of this group go uncounted");
        }
        let dormant_leader =
            match self.groups.read().unwrap_or_else(|p| p.into_inner()).get(gid).map(|e| &e.slot) {
                Some(Slot::Dormant(d)) => d.leader,
                _ => None,
            };
        let leader_hint = stored_vote.filter(|v| v.committed).map(|v| v.leader_id.node_id).or(dormant_leader);
        let group = Group::new(GroupParts {
            id: gid.to_string(),
            leader_hint,
            node_id: self.config.node_id,
            raft,
            state,
            write_timeout: Duration::from_millis(self.config.write_timeout_ms),
            clock_skew_ms: self.config.clock_skew_ms,
            transport: self.transport.clone(),
            asleep,
            wakes: self.stats.wakes.clone(),
        });
        if let Some(entry) = self.groups.write().unwrap_or_else(|p| p.into_inner()).get_mut(gid) {
            entry.slot = Slot::Resident(group.clone());
        }
        self.stats.loads.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            node = self.config.node_id,
            group = gid,
            applied = group.applied_index(),
            restore,
            asleep,
            "group loaded"
        );
        Ok(group)
    }

    /// Evict `gid` if it still may (see the module doc): stop it and close it cleanly.
    pub(crate) async fn evict(&self, gid: &str) -> Result<bool, RaftError> {
        let Some(lock) = self.entry_lock(gid) else { return Ok(false) };
        let _guard = lock.lock().await;
        let group = match self.groups.read().unwrap_or_else(|p| p.into_inner()).get(gid).map(|e| &e.slot) {
            Some(Slot::Resident(g)) => g.clone(),
            _ => return Ok(false),
        };
        // The table's handle and ours: nobody else holds it.
        if group.handles() > 2 || !group.is_asleep() || group.proposals_pending() > 0 || group.machine_busy()
        {
            return Ok(false);
        }
        let (committed, leader) = {
            let metrics = group.raft().metrics();
            let m = metrics.borrow_watched();
            (m.local_committed, m.current_leader)
        };
        let members = group.voters_and_learners();
        let dormant = Dormant {
            leader,
            members: members.clone(),
            committed: committed.as_ref().map_or(0, |c| c.index),
        };
        if let Some(entry) = self.groups.write().unwrap_or_else(|p| p.into_inner()).get_mut(gid) {
            entry.slot = Slot::Dormant(dormant);
        }
        group.stop().await;
        drop(group);
        // The marker is the committed record's own bytes; a group that never committed
        // anything gets a marker that matches nothing (no leader restore then).
        let tree = GroupTrees::view(&self.db, gid)?.meta;
        tree.insert(KEY_MEMBERS, encode(&members).map_err(RaftError::Storage)?)?;
        match committed {
            Some(log_id) => {
                let bytes = encode(&log_id).map_err(RaftError::Storage)?;
                tree.insert(KEY_COMMITTED, bytes.clone())?;
                tree.insert(KEY_CLEAN, bytes)?;
            }
            None => {
                tree.remove(KEY_COMMITTED)?;
                tree.insert(KEY_CLEAN, b"none".to_vec())?;
            }
        }
        self.flusher.sync().await.map_err(|e| RaftError::Storage(e.to_string()))?;
        self.stats.evictions.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(node = self.config.node_id, group = gid, "group evicted");
        Ok(true)
    }
}

/// One resident group as its metrics watch shows it now.
fn group_view<S: StateMachine>(group: &Group<S>) -> GroupView {
    let metrics = group.raft().metrics();
    let m = metrics.borrow_watched();
    GroupView {
        asleep: group.is_asleep(),
        leading: m.state == openraft::ServerState::Leader,
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index.unwrap_or(0),
        committed_index: m.local_committed.as_ref().map_or(0, |c| c.index),
        applied_index: m.last_applied.as_ref().map_or(0, |a| a.index),
        voters: m.membership_config.membership().voter_ids().collect(),
    }
}

/// The last index of a seeded group's seed (see [`RaftHost::create_seeded`]).
const SEED_COMMITTED: u64 = 1;

/// What is remembered in memory of the stored group `gid` while it is dormant: the leader of
/// its stored vote, and the members and committed index of its last clean close.
fn read_dormant(db: &sled::Db, gid: &str) -> Result<Dormant, RaftError> {
    let tree = GroupTrees::view(db, gid)?.meta;
    let get = |key: &[u8]| tree.get(key).map_err(RaftError::from);
    let bad = |what: &str, e: String| RaftError::Storage(format!("group {gid}: {what}: {e}"));
    let vote: Option<Vote> = get(KEY_VOTE)?.map(|b| decode(&b)).transpose().map_err(|e| bad("vote", e))?;
    let members = get(KEY_MEMBERS)?.map(|b| decode(&b)).transpose().map_err(|e| bad("members", e))?;
    let committed: Option<crate::types::LogId> =
        get(KEY_COMMITTED)?.map(|b| decode(&b)).transpose().map_err(|e| bad("committed", e))?;
    Ok(Dormant {
        leader: vote.filter(|v| v.committed).map(|v| v.leader_id.node_id),
        members: members.unwrap_or_default(),
        committed: committed.map_or(0, |c| c.index),
    })
}

/// Ping every peer every [`LIVENESS_INTERVAL_MS`] until the host is gone or shut down.
async fn pinger<S: StateMachine>(host: Weak<HostInner<S>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(LIVENESS_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = host.upgrade() else { return };
        if inner.is_shut_down() {
            return;
        }
        let (me, incarnation) = (inner.config.node_id, inner.liveness.incarnation());
        for (id, addr) in inner.liveness.targets() {
            let inner = inner.clone();
            tokio::spawn(async move {
                let ping = RpcRequest::Ping { from: me, incarnation };
                let sent = tokio::time::timeout(
                    Duration::from_millis(LIVENESS_TIMEOUT_MS),
                    inner.transport.send(id, &addr, "", ping),
                )
                .await;
                match sent {
                    Ok(Ok(RpcResponse::Pong { incarnation })) if inner.liveness.heard(id, incarnation) => {
                        tracing::info!(node = me, peer = id, "peer restarted");
                    }
                    Ok(Err(TransportError::Refused(_))) => inner.liveness.refused(id),
                    _ => {}
                }
            });
        }
    }
}

/// A host as seen by the in-process router: held weakly so host and router don't keep each
/// other alive.
struct WeakHost<S: StateMachine> {
    inner: Weak<HostInner<S>>,
}

impl<S: StateMachine> RpcHandler for WeakHost<S> {
    fn handle<'a>(
        &'a self,
        group: &'a str,
        rpc: RpcRequest,
    ) -> BoxFuture<'a, Option<Result<RpcResponse, RaftError>>> {
        Box::pin(async move {
            let host = RaftHost { inner: self.inner.upgrade()? };
            Some(host.handle_rpc(group, rpc).await)
        })
    }
}

/// The openraft instance type of a group hosting `S` (what [`Group::raft`] returns).
pub type GroupRaft<S> = openraft::Raft<TypeConfig, SmStore<S>>;
