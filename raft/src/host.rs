//! [`RaftHost`]: one per node. Owns the sled database, the group-commit flusher and the table
//! of running groups; opens, reopens, drops and shuts down groups; serves incoming RPCs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::Weak;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::SnapshotPolicy;

use crate::errors::RaftError;
use crate::flusher::Flusher;
use crate::group::Group;
use crate::group::GroupParts;
use crate::network::NetworkFactory;
use crate::network::RpcHandler;
use crate::network::RpcRequest;
use crate::network::RpcResponse;
use crate::network::Transport;
use crate::store::log::LogStore;
use crate::store::state::SmStore;
use crate::store::GroupTrees;
use crate::store::META_TREE_SUFFIX;
use crate::types::Snapshot;
use crate::types::TypeConfig;
use crate::GroupId;
use crate::NodeId;
use crate::StateMachine;
use crate::GROUP_ID_BYTES_MAX;

/// Open the node's sled database at `path` with a page cache of `cache_capacity_bytes`.
///
/// **Memory caveat:** sled 0.34's real memory use is reported at roughly 10× `cache_capacity`
/// (spacejam/sled #1309, #986), so budget for that: 64 MiB of cache can mean ~640 MiB resident.
/// sled still flushes in the background every 500 ms; durability for Raft comes from the host's
/// explicit flushes, not from that timer.
pub fn open_db(path: impl AsRef<Path>, cache_capacity_bytes: u64) -> Result<sled::Db, RaftError> {
    let db = sled::Config::new().path(path.as_ref()).cache_capacity(cache_capacity_bytes).open()?;
    Ok(db)
}

/// Settings of a [`RaftHost`], shared by all its groups. Times are in milliseconds.
///
/// The defaults suit a LAN: a leader heartbeats every 150 ms and a follower that hears nothing
/// for a random 600–1200 ms starts an election (pre-vote first, so a node coming back from a
/// partition does not depose a healthy leader). openraft randomizes each group's election timeout
/// and tick phase, so groups created together do not tick in lockstep. A group whose only voter
/// is this node elects itself at once.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// This node's id. Default 1.
    pub node_id: NodeId,
    /// How often a leader sends heartbeats. Default 150.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout; must exceed the heartbeat. Default 600.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout. Default 1200.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and then purge the log) after this many entries since the last one.
    /// Default 50,000: a snapshot is the whole state machine (a 100,000-seat event with its
    /// holds is megabytes), so at 5,000 a hot on-sale serialized and wrote one every second
    /// or two — a profile of 64 clients on 3 nodes spent most of its CPU copying it
    /// (docs/benchmarks.md). 50,000 small entries replay in well under a second.
    pub snapshot_logs_since_last: u64,
    /// Entries already in a snapshot that are kept in the log (so lagging followers can catch
    /// up without a snapshot). Default 1000.
    pub max_in_snapshot_log_to_keep: u64,
    /// Longest wait of `Group::write` / `Group::read_linearizable` before
    /// `WriteError::Unavailable`. Default 2000.
    pub write_timeout_ms: u64,
    /// Deadline for sending and installing a snapshot on a follower. Default 10000.
    pub install_snapshot_timeout_ms: u64,
    /// Added to this node's wall clock (ms since the Unix epoch) when it stamps a command it
    /// proposes as leader ([`StateMachine::stamp`](crate::StateMachine::stamp)). Default 0. Only
    /// for tests and fault injection: it simulates a leader whose clock is behind (negative) or
    /// ahead (positive). It does not affect Raft's own timers.
    pub clock_skew_ms: i64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            node_id: 1,
            heartbeat_interval_ms: 150,
            election_timeout_min_ms: 600,
            election_timeout_max_ms: 1200,
            snapshot_logs_since_last: 50_000,
            max_in_snapshot_log_to_keep: 1000,
            write_timeout_ms: 2000,
            install_snapshot_timeout_ms: 10_000,
            clock_skew_ms: 0,
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
            ..Default::default()
        };
        config.validate().map_err(|e| RaftError::Config(e.to_string()))
    }
}

/// Check that `gid` can name sled trees: `[A-Za-z0-9_.-]{1,GROUP_ID_BYTES_MAX}`.
fn validate_group_id(gid: &str) -> Result<(), RaftError> {
    let ok = !gid.is_empty()
        && gid.len() <= GROUP_ID_BYTES_MAX
        && gid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(RaftError::InvalidGroupId(gid.to_string()))
    }
}

/// One node's Raft groups over one sled database. Cheap to clone.
///
/// Call [`RaftHost::shutdown`] before dropping the last clone: dropping it stops the flusher,
/// and groups still running (through `Group` handles) then fail their next log write.
/// Opening and dropping groups are serialized by one async lock (a reopen replays the group's
/// log inside `open_group`), so reopening many groups at start-up runs one group at a time.
pub struct RaftHost<S: StateMachine> {
    inner: Arc<HostInner<S>>,
}

impl<S: StateMachine> Clone for RaftHost<S> {
    fn clone(&self) -> Self {
        RaftHost { inner: self.inner.clone() }
    }
}

struct HostInner<S: StateMachine> {
    config: HostConfig,
    raft_config: Arc<openraft::Config>,
    db: sled::Db,
    flusher: Flusher,
    transport: Arc<dyn Transport>,
    groups: RwLock<BTreeMap<GroupId, Group<S>>>,
    /// Serializes opening and dropping groups, so `open_group` is idempotent under races.
    open_lock: tokio::sync::Mutex<()>,
    shut_down: AtomicBool,
}

impl<S: StateMachine> Drop for HostInner<S> {
    fn drop(&mut self) {
        self.flusher.stop();
    }
}

impl<S: StateMachine> RaftHost<S> {
    /// Create the host. `db` is the node's one sled database (the caller opens it with a
    /// deliberate cache capacity, e.g. with [`open_db`]). Starts the flusher thread.
    pub fn new(config: HostConfig, db: sled::Db, network: Arc<dyn Transport>) -> Result<Self, RaftError> {
        let raft_config = Arc::new(config.raft_config()?);
        let flusher =
            Flusher::start(db.clone(), config.node_id).map_err(|e| RaftError::Storage(e.to_string()))?;
        tracing::info!(node = config.node_id, ?config, "raft host started");
        Ok(RaftHost {
            inner: Arc::new(HostInner {
                config,
                raft_config,
                db,
                flusher,
                transport: network,
                groups: RwLock::new(BTreeMap::new()),
                open_lock: tokio::sync::Mutex::new(()),
                shut_down: AtomicBool::new(false),
            }),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    /// The host's settings.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// How many `db.flush()` calls (fsyncs) the host has made, over all groups.
    pub fn flush_count(&self) -> u64 {
        self.inner.flusher.flush_count()
    }

    /// Open (create, or reopen after restart) the group's storage and start its openraft
    /// instance. Idempotent: a second call returns the running group and drops `machine`.
    /// `machine` is the empty state machine; on reopen openraft restores it from the stored
    /// snapshot and re-applies the committed log after it.
    pub async fn open_group(&self, gid: &str, machine: S) -> Result<Group<S>, RaftError> {
        validate_group_id(gid)?;
        let _guard = self.inner.open_lock.lock().await;
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return Err(RaftError::ShuttingDown);
        }
        if let Some(group) = self.group(gid) {
            return Ok(group);
        }
        let trees = GroupTrees::open(&self.inner.db, gid)?;
        let gid_arc: Arc<str> = Arc::from(gid);
        let log_store = LogStore::new(gid_arc.clone(), trees.clone(), self.inner.flusher.clone());
        let sm_store = SmStore::new(gid_arc.clone(), trees.meta.clone(), self.inner.flusher.clone(), machine);
        let state = sm_store.shared();
        let network = NetworkFactory {
            from: self.node_id(),
            group: gid_arc.clone(),
            transport: self.inner.transport.clone(),
        };
        let raft =
            openraft::Raft::new(self.node_id(), self.inner.raft_config.clone(), network, log_store, sm_store)
                .await
                .map_err(|e| RaftError::Raft(format!("group {gid}: start failed: {e}")))?;
        let group = Group::new(GroupParts {
            id: gid.to_string(),
            node_id: self.node_id(),
            raft,
            state,
            write_timeout: Duration::from_millis(self.inner.config.write_timeout_ms),
            clock_skew_ms: self.inner.config.clock_skew_ms,
            transport: self.inner.transport.clone(),
        });
        self.inner.groups.write().unwrap_or_else(|p| p.into_inner()).insert(gid.to_string(), group.clone());
        tracing::info!(node = self.node_id(), group = gid, applied = group.applied_index(), "group opened");
        Ok(group)
    }

    /// The running group `gid`, if open.
    pub fn group(&self, gid: &str) -> Option<Group<S>> {
        self.inner.groups.read().unwrap_or_else(|p| p.into_inner()).get(gid).cloned()
    }

    /// Ids of the running groups, sorted.
    pub fn open_groups(&self) -> Vec<GroupId> {
        self.inner.groups.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Group ids that have storage in the db (to reopen them all at start-up), sorted.
    pub fn stored_groups(&self) -> Vec<GroupId> {
        let mut ids: Vec<GroupId> = self
            .inner
            .db
            .tree_names()
            .into_iter()
            .filter_map(|name| {
                let name = std::str::from_utf8(&name).ok()?;
                let gid = name.strip_suffix(META_TREE_SUFFIX)?;
                validate_group_id(gid).ok()?;
                Some(gid.to_string())
            })
            .collect();
        ids.sort();
        ids
    }

    /// Stop the group's raft (if running) and delete its storage.
    pub async fn drop_group(&self, gid: &str) -> Result<(), RaftError> {
        validate_group_id(gid)?;
        let _guard = self.inner.open_lock.lock().await;
        let group = self.inner.groups.write().unwrap_or_else(|p| p.into_inner()).remove(gid);
        if let Some(group) = group {
            group.stop().await;
        }
        self.inner.db.drop_tree(crate::store::log_tree_name(gid))?;
        self.inner.db.drop_tree(crate::store::meta_tree_name(gid))?;
        self.inner.flusher.sync().await.map_err(|e| RaftError::Storage(e.to_string()))?;
        tracing::info!(node = self.node_id(), group = gid, "group dropped");
        Ok(())
    }

    /// Stop every group, make everything durable and stop the flusher. Later calls fail with
    /// `ShuttingDown` / `GroupNotFound`.
    pub async fn shutdown(&self) {
        let _guard = self.inner.open_lock.lock().await;
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let groups: Vec<Group<S>> =
            std::mem::take(&mut *self.inner.groups.write().unwrap_or_else(|p| p.into_inner()))
                .into_values()
                .collect();
        let count = groups.len();
        futures::future::join_all(groups.iter().map(|g| g.stop())).await;
        if let Err(e) = self.inner.flusher.sync().await {
            tracing::error!(node = self.node_id(), error = %e, "final flush failed");
        }
        self.inner.flusher.stop();
        tracing::info!(node = self.node_id(), groups = count, "raft host shut down");
    }

    /// Server side of the transport: hand an incoming RPC (already decoded) to the local group.
    ///
    /// Raft RPCs go to openraft. A forwarded write ([`RpcRequest::Propose`]) is proposed here
    /// as a local leader write and a [`RpcRequest::ReadIndex`] is answered from here; neither is
    /// forwarded again (a non-leader answers `ForwardToLeader` inside the response).
    pub async fn handle_rpc(&self, gid: &str, rpc: RpcRequest) -> Result<RpcResponse, RaftError> {
        let group = self.group(gid).ok_or_else(|| RaftError::GroupNotFound(gid.to_string()))?;
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
                RpcResponse::InstallSnapshot(
                    raft.install_full_snapshot(vote, snapshot).await.map_err(|e| stopped(&e))?,
                )
            }
            RpcRequest::TransferLeader(req) => {
                RpcResponse::TransferLeader(raft.handle_transfer_leader(req).await.map_err(|e| stopped(&e))?)
            }
            RpcRequest::Propose { command } => RpcResponse::Propose(group.propose_forwarded(&command).await),
            RpcRequest::ReadIndex => RpcResponse::ReadIndex(group.read_index_local().await),
        };
        Ok(response)
    }

    /// A weak handle for [`LocalTransport`](crate::LocalTransport).
    pub(crate) fn rpc_handler(&self) -> Arc<dyn RpcHandler> {
        Arc::new(WeakHost { inner: Arc::downgrade(&self.inner) })
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
