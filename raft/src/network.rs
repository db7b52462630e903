//! The wire between hosts: the [`Transport`] trait, the RPC enums, openraft's network adapter,
//! and [`LocalTransport`], the in-process implementation.
//!
//! One [`Transport`] serves every group of a host: each call names the target node, its address
//! and the group id, and carries one [`RpcRequest`]. Requests and responses are plain
//! serde/bincode values ([`RpcRequest::encode`], [`RpcResponse::decode`], …), so the gRPC
//! transport (`grpc.rs`) carries them as bytes keyed by group id and hands them to
//! [`RaftHost::handle_rpc`] on the other side. Besides openraft's RPCs, the same wire carries the
//! crate's own forwarding RPCs, [`RpcRequest::Propose`] and [`RpcRequest::ReadIndex`].
//!
//! Error mapping into openraft (which decides retries and backoff from it):
//! - [`TransportError::Unreachable`], [`TransportError::Refused`], [`TransportError::Remote`]
//!   (the peer does not host the group, or its raft stopped) and
//!   [`TransportError::Unauthenticated`] → `Unreachable`: openraft backs off.
//! - [`TransportError::Network`] → `NetworkError`: openraft retries at once.
//! - no answer within the RPC's deadline → `Timeout`.
//!
//! [`RaftHost::handle_rpc`]: crate::RaftHost::handle_rpc

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Timeout;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RPCTypes;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use serde::Deserialize;
use serde::Serialize;

use crate::errors::RaftError;
use crate::errors::WriteError;
use crate::types::decode;
use crate::types::encode;
use crate::types::CommandBytes;
use crate::types::LogId;
use crate::types::ReplyBytes;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::TypeConfig;
use crate::types::Vote;
use crate::NodeAddr;
use crate::NodeId;

/// One Raft RPC addressed to a group.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// A whole snapshot in one message (snapshots are the machine's serialized state).
    InstallSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// Writes forwarded by a follower: the receiving node proposes `commands` (each a bincode
    /// `StateMachine::Command`) through its own proposer as a leader — stamping them with its
    /// own clock — and never forwards them further (it answers `ForwardToLeader` instead).
    Propose {
        commands: Vec<CommandBytes>,
    },
    /// A follower's linearizable read: the receiving node confirms its leadership with a quorum
    /// (ReadIndex) and answers the log index the follower must apply before reading.
    ReadIndex,
    /// Leader to follower: the group is idle; stop your timers if you have exactly the leader's
    /// vote, last log id and committed index (see `quiesce`). Answered `Sleep(true)` if it did.
    Sleep {
        vote: Vote,
        last_log_id: Option<LogId>,
        committed: Option<LogId>,
    },
    /// Node liveness, sent with the empty group id: one per node pair, not per group.
    Ping {
        from: NodeId,
        incarnation: u64,
    },
    /// Who are you? Sent with the empty group id by a node that has no cluster data yet,
    /// before it takes part (see `identity`).
    Identify {
        from: NodeId,
    },
}

/// The answer to an [`RpcRequest`], same variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    InstallSnapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// One answer per forwarded command (a bincode `StateMachine::Reply`, or why there is
    /// none), or why the whole batch was not proposed.
    Propose(Result<Vec<Result<ReplyBytes, WriteError>>, WriteError>),
    /// The read index confirmed by the leader, or why there is none.
    ReadIndex(Result<u64, WriteError>),
    /// Whether the follower went to sleep.
    Sleep(bool),
    /// The answer to a `Ping`: the pinged node's incarnation (changes when it restarts).
    Pong {
        incarnation: u64,
    },
    /// The answer to `Identify`: the answering node's cluster id (if it knows one), its store
    /// id, and the store id the asking node is registered with there (if any).
    Identity {
        cluster: Option<String>,
        store: u64,
        registered_as: Option<u64>,
    },
}

impl RpcRequest {
    /// The RPC's name, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RpcRequest::AppendEntries(_) => "append_entries",
            RpcRequest::Vote(_) => "vote",
            RpcRequest::PreVote(_) => "pre_vote",
            RpcRequest::InstallSnapshot { .. } => "install_snapshot",
            RpcRequest::TransferLeader(_) => "transfer_leader",
            RpcRequest::Propose { .. } => "propose",
            RpcRequest::ReadIndex => "read_index",
            RpcRequest::Sleep { .. } => "sleep",
            RpcRequest::Ping { .. } => "ping",
            RpcRequest::Identify { .. } => "identify",
        }
    }

    /// bincode bytes, for a byte-oriented transport.
    pub fn encode(&self) -> Result<Vec<u8>, RaftError> {
        encode(self).map_err(RaftError::Storage)
    }

    /// Inverse of [`RpcRequest::encode`].
    pub fn decode(bytes: &[u8]) -> Result<RpcRequest, RaftError> {
        decode(bytes).map_err(RaftError::Storage)
    }
}

impl RpcResponse {
    /// bincode bytes, for a byte-oriented transport.
    pub fn encode(&self) -> Result<Vec<u8>, RaftError> {
        encode(self).map_err(RaftError::Storage)
    }

    /// Inverse of [`RpcResponse::encode`].
    pub fn decode(bytes: &[u8]) -> Result<RpcResponse, RaftError> {
        decode(bytes).map_err(RaftError::Storage)
    }
}

/// Why a transport could not deliver an RPC or bring back its answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer cannot be reached (connect timeout, unknown node, partitioned).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer's host answered that nothing listens there (TCP connection refused): its
    /// process is not running. Stronger than `Unreachable`, which may be a slow or cut-off
    /// peer: liveness takes it as proof of death at once (`liveness`).
    #[error("refused: {0}")]
    Refused(String),
    /// A transient failure on an established path; retrying at once may work.
    #[error("network: {0}")]
    Network(String),
    /// The peer answered with an error (it does not host the group, or its raft stopped).
    #[error("remote: {0}")]
    Remote(String),
    /// The peer refused the RPC: the cluster secret is missing or wrong on one side.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
}

/// Client side of the wire: send one RPC for `group` to node `target` at `addr` and wait for
/// its answer. Implementations must not connect eagerly and should bound their own waits;
/// the adapter also enforces openraft's per-RPC deadline.
pub trait Transport: Send + Sync + 'static {
    fn send<'a>(
        &'a self,
        target: NodeId,
        addr: &'a NodeAddr,
        group: &'a str,
        rpc: RpcRequest,
    ) -> BoxFuture<'a, Result<RpcResponse, TransportError>>;
}

/// Openraft's network factory for one group: every client shares the host's transport.
pub(crate) struct NetworkFactory {
    pub(crate) from: NodeId,
    pub(crate) group: Arc<str>,
    pub(crate) transport: Arc<dyn Transport>,
    /// The least time any RPC is given (see [`GroupNetwork::call`]).
    pub(crate) ttl_min: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> GroupNetwork {
        GroupNetwork {
            from: self.from,
            target,
            addr: node.clone(),
            group: self.group.clone(),
            transport: self.transport.clone(),
            ttl_min: self.ttl_min,
        }
    }
}

/// Openraft's client to one peer of one group.
pub(crate) struct GroupNetwork {
    from: NodeId,
    target: NodeId,
    addr: NodeAddr,
    group: Arc<str>,
    transport: Arc<dyn Transport>,
    ttl_min: Duration,
}

impl GroupNetwork {
    /// Send `rpc` and wait for its answer for `ttl`, but never less than `ttl_min` (the
    /// election timeout). openraft gives append-entries and heartbeats one heartbeat
    /// interval (100 ms); a node busy for longer than that (a burst of event creations, a
    /// debug build on two cores) then sees every replication stream fail and restart, which
    /// stalls commits far longer than the slow answer would have. An answer later than an
    /// election timeout is as good as lost, so that is the bound.
    async fn call(
        &self,
        rpc: RpcRequest,
        ttl: Duration,
        action: RPCTypes,
    ) -> Result<RpcResponse, RPCError<TypeConfig>> {
        let kind = rpc.kind();
        let ttl = ttl.max(self.ttl_min);
        let sent = self.transport.send(self.target, &self.addr, &self.group, rpc);
        match tokio::time::timeout(ttl, sent).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                tracing::debug!(group = %self.group, target = self.target, rpc = kind, error = %e, "rpc failed");
                Err(match e {
                    TransportError::Unreachable(_)
                    | TransportError::Refused(_)
                    | TransportError::Remote(_)
                    | TransportError::Unauthenticated(_) => {
                        RPCError::Unreachable(Unreachable::from_string(e))
                    }
                    TransportError::Network(_) => RPCError::Network(NetworkError::from_string(e)),
                })
            }
            Err(_) => {
                tracing::debug!(group = %self.group, target = self.target, rpc = kind, ?ttl, "rpc timed out");
                Err(RPCError::Timeout(Timeout { action, id: self.from, target: self.target, timeout: ttl }))
            }
        }
    }

    fn unexpected(&self, got: &RpcResponse) -> RPCError<TypeConfig> {
        RPCError::Network(NetworkError::from_string(format!(
            "group {}: unexpected response from node {}: {got:?}",
            self.group, self.target
        )))
    }
}

impl RaftNetworkV2<TypeConfig> for GroupNetwork {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RpcRequest::AppendEntries(rpc), option.hard_ttl(), RPCTypes::AppendEntries).await? {
            RpcResponse::AppendEntries(r) => Ok(r),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RpcRequest::Vote(rpc), option.hard_ttl(), RPCTypes::Vote).await? {
            RpcResponse::Vote(r) => Ok(r),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RpcRequest::PreVote(rpc), option.hard_ttl(), RPCTypes::Vote).await? {
            RpcResponse::Vote(r) => Ok(r),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let rpc = RpcRequest::InstallSnapshot { vote, meta: snapshot.meta, data: snapshot.snapshot };
        let call = self.call(rpc, option.hard_ttl(), RPCTypes::InstallSnapshot);
        let response = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = call => r,
        };
        match response {
            Ok(RpcResponse::InstallSnapshot(r)) => Ok(r),
            Ok(other) => Err(StreamingError::Network(NetworkError::from_string(format!(
                "group {}: unexpected response to snapshot: {other:?}",
                self.group
            )))),
            Err(RPCError::Timeout(t)) => Err(StreamingError::Timeout(t)),
            Err(RPCError::Unreachable(u)) => Err(StreamingError::Unreachable(u)),
            Err(RPCError::Network(n)) => Err(StreamingError::Network(n)),
            Err(RPCError::RemoteError(r)) => Err(StreamingError::Network(NetworkError::new(&r))),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RpcRequest::TransferLeader(req), option.hard_ttl(), RPCTypes::TransferLeader).await? {
            RpcResponse::TransferLeader(r) => Ok(r),
            other => Err(self.unexpected(&other)),
        }
    }
}

/// Server side as seen by [`LocalTransport`]: a host that can handle an RPC for a group.
pub(crate) trait RpcHandler: Send + Sync + 'static {
    /// `None` when the host is gone.
    fn handle<'a>(
        &'a self,
        group: &'a str,
        rpc: RpcRequest,
    ) -> BoxFuture<'a, Option<Result<RpcResponse, RaftError>>>;
}

#[derive(Default)]
struct LocalInner {
    hosts: RwLock<BTreeMap<NodeId, Arc<dyn RpcHandler>>>,
    unreachable: RwLock<BTreeSet<NodeId>>,
}

/// In-process transport: a router from node id to [`RaftHost`](crate::RaftHost) that calls
/// [`RaftHost::handle_rpc`](crate::RaftHost::handle_rpc) directly.
///
/// Every request and response goes through the same bincode encoding a network transport
/// uses, so the codec is exercised in-process too. Hosts are registered after creation
/// ([`LocalTransport::register`]); the router keeps only weak references. A node marked
/// unreachable ([`LocalTransport::set_reachable`]) receives nothing, and — through a handle
/// from [`LocalTransport::for_node`] — sends nothing either.
///
/// One-node production: `let t = LocalTransport::new(); let host = RaftHost::new(cfg, db,
/// Arc::new(t.clone()))?; t.register(&host);`.
#[derive(Clone, Default)]
pub struct LocalTransport {
    inner: Arc<LocalInner>,
    /// The sending node, when this handle belongs to one (see [`LocalTransport::for_node`]).
    from: Option<NodeId>,
}

impl LocalTransport {
    /// An empty router.
    pub fn new() -> LocalTransport {
        LocalTransport::default()
    }

    /// A handle on the same router that sends on behalf of `node`: its sends fail while `node`
    /// is unreachable. Give each host its own handle to simulate a full partition.
    pub fn for_node(&self, node: NodeId) -> LocalTransport {
        LocalTransport { inner: self.inner.clone(), from: Some(node) }
    }

    /// Route RPCs for `host.node_id()` to `host` (weakly held; replaces an earlier host).
    pub fn register<S: crate::StateMachine>(&self, host: &crate::RaftHost<S>) {
        let handler = host.rpc_handler();
        self.inner.hosts.write().unwrap_or_else(|p| p.into_inner()).insert(host.node_id(), handler);
    }

    /// Stop routing to `node`.
    pub fn unregister(&self, node: NodeId) {
        self.inner.hosts.write().unwrap_or_else(|p| p.into_inner()).remove(&node);
    }

    /// Cut `node` off (`false`) or reconnect it (`true`).
    pub fn set_reachable(&self, node: NodeId, reachable: bool) {
        let mut set = self.inner.unreachable.write().unwrap_or_else(|p| p.into_inner());
        if reachable {
            set.remove(&node);
        } else {
            set.insert(node);
        }
    }

    fn is_cut(&self, node: NodeId) -> bool {
        self.inner.unreachable.read().unwrap_or_else(|p| p.into_inner()).contains(&node)
    }
}

impl Transport for LocalTransport {
    fn send<'a>(
        &'a self,
        target: NodeId,
        _addr: &'a NodeAddr,
        group: &'a str,
        rpc: RpcRequest,
    ) -> BoxFuture<'a, Result<RpcResponse, TransportError>> {
        Box::pin(async move {
            if let Some(from) = self.from {
                if self.is_cut(from) {
                    return Err(TransportError::Unreachable(format!("node {from} (sender) is cut off")));
                }
            }
            if self.is_cut(target) {
                return Err(TransportError::Unreachable(format!("node {target} is cut off")));
            }
            let handler = self.inner.hosts.read().unwrap_or_else(|p| p.into_inner()).get(&target).cloned();
            let Some(handler) = handler else {
                return Err(TransportError::Unreachable(format!("node {target} is not registered")));
            };
            // Round-trip through the wire encoding, as a network transport would.
            let bytes = rpc.encode().map_err(|e| TransportError::Network(e.to_string()))?;
            let rpc = RpcRequest::decode(&bytes).map_err(|e| TransportError::Network(e.to_string()))?;
            let response = match handler.handle(group, rpc).await {
                None => return Err(TransportError::Refused(format!("node {target} has shut down"))),
                Some(Err(e)) => return Err(TransportError::Remote(e.to_string())),
                Some(Ok(r)) => r,
            };
            // A reply from a node that was cut off meanwhile is lost, as on a real network.
            if self.is_cut(target) || self.from.is_some_and(|f| self.is_cut(f)) {
                return Err(TransportError::Unreachable(format!("node {target} was cut off")));
            }
            let bytes = response.encode().map_err(|e| TransportError::Network(e.to_string()))?;
            RpcResponse::decode(&bytes).map_err(|e| TransportError::Network(e.to_string()))
        })
    }
}
