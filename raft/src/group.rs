//! [`Group`]: the handle the application uses on one running Raft group — initialize, write,
//! read (linearizable or local), watch progress — plus [`Group::raft`] as an escape hatch.
//!
//! ## Routing to the leader
//!
//! [`Group::write`] and [`Group::read_linearizable`] work on any replica. They look up the
//! leader in the local metrics; if it is this node they act locally, else they send one
//! [`RpcRequest::Propose`] / [`RpcRequest::ReadIndex`] through the host's [`Transport`] to the
//! leader, which acts *locally* (it never forwards further). If that node answers
//! `ForwardToLeader` with another leader, the hint is followed, at most [`FORWARD_HOPS_MAX`]
//! times. With no leader known, or the leader unreachable (nothing was delivered), the call waits
//! [`ROUTE_RETRY_PAUSE_MS`] and looks again. Everything is bounded by one deadline,
//! `HostConfig::write_timeout_ms` from the call's start. A forwarded write whose outcome is
//! unknown (timeout or a broken connection after sending) is never retried: it answers
//! `Unavailable`, as a local write that times out does.
//!
//! ## Stamping
//!
//! The node that calls openraft's `client_write` — the leader, after any forwarding — calls
//! [`StateMachine::stamp`] on the command with its own wall clock (plus
//! `HostConfig::clock_skew_ms`) just before proposing it. A follower never stamps what it
//! forwards, so every command carries its leader's time.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::Fatal;
use openraft::errors::ForwardToLeader;
use openraft::errors::InitializeError;
use openraft::errors::LinearizableReadError;
use openraft::metrics::WaitError;
use openraft::ReadPolicy;
use tokio::time::Instant;

use crate::errors::RaftError;
use crate::errors::WriteError;
use crate::host::GroupRaft;
use crate::network::RpcRequest;
use crate::network::RpcResponse;
use crate::network::Transport;
use crate::network::TransportError;
use crate::store::state::read_state;
use crate::store::state::SharedState;
use crate::types::decode;
use crate::types::encode;
use crate::types::CommandBytes;
use crate::types::ReplyBytes;
use crate::types::TypeConfig;
use crate::GroupId;
use crate::NodeAddr;
use crate::NodeId;
use crate::StateMachine;

/// Most `ForwardToLeader` hints one [`Group::write`] or [`Group::read_linearizable`] follows.
/// One more hint answers `Unavailable` (leadership is moving faster than we can follow).
pub const FORWARD_HOPS_MAX: usize = 3;

/// Pause before looking for the leader again when none is known, or when the known one could
/// not be reached. Each pause is cut short by the call's deadline.
pub const ROUTE_RETRY_PAUSE_MS: u64 = 50;

/// This node's wall clock in ms since the Unix epoch, plus `skew_ms`, floored at 0. Only ever
/// used to stamp commands this node proposes.
pub(crate) fn stamp_clock_ms(skew_ms: i64) -> u64 {
    let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let wall = i64::try_from(wall).unwrap_or(i64::MAX);
    u64::try_from(wall.saturating_add(skew_ms)).unwrap_or(0)
}

/// Where one routed attempt goes.
enum Target {
    Local,
    Remote(NodeId, NodeAddr),
}

/// Why one routed attempt did not produce an answer.
enum AttemptError {
    /// A definite answer from the group (possibly `ForwardToLeader`, which the router follows).
    Write(WriteError),
    /// Nothing was delivered (or, for reads, nothing that matters was lost): look again.
    NotDelivered(String),
}

/// What the local metrics say about the leader.
enum LeaderView {
    Unknown,
    /// Known, but its address is not in this node's membership (yet).
    NoAddress(NodeId),
    Known(NodeId, NodeAddr),
}

/// A running group. Cheap to clone; all clones drive the same openraft instance.
pub struct Group<S: StateMachine> {
    inner: Arc<GroupInner<S>>,
}

impl<S: StateMachine> Clone for Group<S> {
    fn clone(&self) -> Self {
        Group { inner: self.inner.clone() }
    }
}

struct GroupInner<S: StateMachine> {
    id: GroupId,
    node_id: NodeId,
    raft: GroupRaft<S>,
    state: SharedState<S>,
    write_timeout: Duration,
    clock_skew_ms: i64,
    transport: Arc<dyn Transport>,
}

/// What the host hands [`Group::new`].
pub(crate) struct GroupParts<S: StateMachine> {
    pub(crate) id: GroupId,
    pub(crate) node_id: NodeId,
    pub(crate) raft: GroupRaft<S>,
    pub(crate) state: SharedState<S>,
    pub(crate) write_timeout: Duration,
    pub(crate) clock_skew_ms: i64,
    pub(crate) transport: Arc<dyn Transport>,
}

/// Map a fatal openraft error: a stopped raft is a shutdown (retry elsewhere), the rest is fatal.
fn fatal_to_write(gid: &str, fatal: &Fatal<TypeConfig>) -> WriteError {
    match fatal {
        Fatal::Stopped => WriteError::Unavailable(format!("group {gid}: raft stopped")),
        other => WriteError::Fatal(format!("group {gid}: {other}")),
    }
}

/// The variant name of a response, for error messages.
fn response_kind(r: &RpcResponse) -> &'static str {
    match r {
        RpcResponse::AppendEntries(_) => "append_entries",
        RpcResponse::Vote(_) => "vote",
        RpcResponse::InstallSnapshot(_) => "install_snapshot",
        RpcResponse::TransferLeader(_) => "transfer_leader",
        RpcResponse::Propose(_) => "propose",
        RpcResponse::ReadIndex(_) => "read_index",
    }
}

impl<S: StateMachine> Group<S> {
    pub(crate) fn new(parts: GroupParts<S>) -> Group<S> {
        let GroupParts { id, node_id, raft, state, write_timeout, clock_skew_ms, transport } = parts;
        Group {
            inner: Arc::new(GroupInner { id, node_id, raft, state, write_timeout, clock_skew_ms, transport }),
        }
    }

    /// The group's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The openraft instance: membership changes, metrics, leadership transfer, etc.
    pub fn raft(&self) -> &GroupRaft<S> {
        &self.inner.raft
    }

    /// Initialize the group with `members` (all voters). Call on exactly one pristine node;
    /// the others learn the membership from it. If the group is already initialized this does
    /// nothing and returns `Ok(())`.
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeAddr>) -> Result<(), RaftError> {
        if self.is_initialized().await {
            return Ok(());
        }
        match self.inner.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(group = %self.inner.id, "group initialized");
                Ok(())
            }
            Err(openraft::errors::RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(RaftError::Raft(format!("group {}: initialize: {e}", self.inner.id))),
        }
    }

    /// Whether the group has a membership (it was initialized here or joined from a leader).
    pub async fn is_initialized(&self) -> bool {
        self.inner.raft.is_initialized().await.unwrap_or(false)
    }

    /// Turn openraft's ForwardToLeader into ours, filling in the address from the membership
    /// when openraft did not.
    fn forward_error(&self, f: &ForwardToLeader<TypeConfig>) -> WriteError {
        let leader = f.leader_id.map(|id| {
            let addr = f.leader_node.clone().or_else(|| self.members().remove(&id)).unwrap_or_default();
            (id, addr)
        });
        WriteError::ForwardToLeader { leader }
    }

    /// Propose `command` on the group's leader, wherever it is, wait until it is committed and
    /// applied there, and return the machine's reply.
    ///
    /// On a follower the command is forwarded to the leader (see the module doc: one hop, at most
    /// [`FORWARD_HOPS_MAX`] leader hints followed, a brief wait when no leader is known). The
    /// leader stamps it ([`StateMachine::stamp`]) just before proposing. Gives up after
    /// `HostConfig::write_timeout_ms` in all with `Unavailable` (the command may still commit
    /// later). Never answers `ForwardToLeader`. After a forwarded write, this node may not have
    /// applied the command yet: `read_local` can lag, `read_linearizable` cannot.
    pub async fn write(&self, command: S::Command) -> Result<S::Reply, WriteError> {
        let gid = &self.inner.id;
        let deadline = Instant::now() + self.inner.write_timeout;
        // Encoded once for forwarding; the leader stamps and re-encodes it.
        let unstamped =
            CommandBytes(encode(&command).map_err(|e| WriteError::Fatal(format!("encode command: {e}")))?);
        let command = &command;
        let unstamped = &unstamped;
        let reply = self
            .route("write", deadline, move |target| async move {
                match target {
                    Target::Local => {
                        self.propose(command.clone(), deadline).await.map_err(AttemptError::Write)
                    }
                    Target::Remote(id, addr) => {
                        let rpc = RpcRequest::Propose { command: unstamped.clone() };
                        match self.forward(id, &addr, rpc, deadline, false).await? {
                            RpcResponse::Propose(r) => r.map_err(AttemptError::Write),
                            other => Err(AttemptError::Write(WriteError::Fatal(format!(
                                "group {gid}: node {id} answered a forwarded write with {}",
                                response_kind(&other)
                            )))),
                        }
                    }
                }
            })
            .await?;
        decode::<S::Reply>(&reply.0).map_err(|e| WriteError::Fatal(format!("group {gid}: decode reply: {e}")))
    }

    /// Propose `command` on this node only: stamp it with this node's clock and hand it to
    /// openraft. No forwarding: a follower answers `ForwardToLeader` with the leader it knows.
    /// Bounded by `HostConfig::write_timeout_ms`.
    pub async fn write_local(&self, command: S::Command) -> Result<S::Reply, WriteError> {
        let gid = &self.inner.id;
        let reply = self.propose(command, Instant::now() + self.inner.write_timeout).await?;
        decode::<S::Reply>(&reply.0).map_err(|e| WriteError::Fatal(format!("group {gid}: decode reply: {e}")))
    }

    /// Linearizable read on any replica: get a read index confirmed by a quorum from the leader
    /// (locally when this node leads, else by one [`RpcRequest::ReadIndex`], routed like
    /// [`Group::write`]), wait until the local machine has applied up to it, then run `f` on the
    /// local state. Bounded by `HostConfig::write_timeout_ms` in all.
    pub async fn read_linearizable<T>(&self, f: impl FnOnce(&S) -> T) -> Result<T, WriteError> {
        let deadline = Instant::now() + self.inner.write_timeout;
        let gid = &self.inner.id;
        let index = self
            .route("read", deadline, move |target| async move {
                match target {
                    Target::Local => self.read_index(deadline).await.map_err(AttemptError::Write),
                    Target::Remote(id, addr) => {
                        match self.forward(id, &addr, RpcRequest::ReadIndex, deadline, true).await? {
                            RpcResponse::ReadIndex(r) => r.map_err(AttemptError::Write),
                            other => Err(AttemptError::Write(WriteError::Fatal(format!(
                                "group {gid}: node {id} answered a read index request with {}",
                                response_kind(&other)
                            )))),
                        }
                    }
                }
            })
            .await?;
        self.wait_applied(index, deadline.saturating_duration_since(Instant::now())).await?;
        Ok(self.read_local(f))
    }

    /// Linearizable read on this node only: a follower answers `ForwardToLeader`.
    pub async fn read_linearizable_local<T>(&self, f: impl FnOnce(&S) -> T) -> Result<T, WriteError> {
        let deadline = Instant::now() + self.inner.write_timeout;
        let index = self.read_index(deadline).await?;
        self.wait_applied(index, deadline.saturating_duration_since(Instant::now())).await?;
        Ok(self.read_local(f))
    }

    /// The leader as the local metrics know it.
    fn leader_view(&self) -> LeaderView {
        let Some(id) = self.leader() else {
            return LeaderView::Unknown;
        };
        if id == self.inner.node_id {
            return LeaderView::Known(id, NodeAddr::default());
        }
        match self.members().remove(&id) {
            Some(addr) => LeaderView::Known(id, addr),
            None => LeaderView::NoAddress(id),
        }
    }

    /// Run `attempt` against the leader until it answers, following leader hints and waiting for
    /// a leader when none is known, all before `deadline` (see the module doc).
    async fn route<T, F, Fut>(&self, op: &str, deadline: Instant, attempt: F) -> Result<T, WriteError>
    where
        F: Fn(Target) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let gid = &self.inner.id;
        let mut hint: Option<(NodeId, NodeAddr)> = None;
        let mut hops = 0usize;
        loop {
            let (id, addr) = match hint.take() {
                Some(h) => h,
                None => match self.leader_view() {
                    LeaderView::Known(id, addr) => (id, addr),
                    LeaderView::Unknown => {
                        self.wait_for_leader(op, deadline).await?;
                        continue;
                    }
                    LeaderView::NoAddress(id) => {
                        let problem = format!("leader {id} has no address in the membership");
                        self.pause(op, deadline, &problem).await?;
                        continue;
                    }
                },
            };
            let target = if id == self.inner.node_id { Target::Local } else { Target::Remote(id, addr) };
            match attempt(target).await {
                Ok(value) => return Ok(value),
                Err(AttemptError::Write(WriteError::ForwardToLeader { leader: Some(next) }))
                    if next.0 != id =>
                {
                    hops += 1;
                    if hops > FORWARD_HOPS_MAX {
                        return Err(WriteError::Unavailable(format!(
                            "group {gid}: {op} gave up after {FORWARD_HOPS_MAX} leader hints (last: node {})",
                            next.0
                        )));
                    }
                    tracing::debug!(group = %gid, op, from = id, to = next.0, hops, "following leader hint");
                    hint = Some(next);
                }
                Err(AttemptError::Write(WriteError::ForwardToLeader { .. })) => {
                    let problem = format!("node {id} is not the leader and knows no other");
                    self.pause(op, deadline, &problem).await?;
                }
                Err(AttemptError::Write(e)) => return Err(e),
                Err(AttemptError::NotDelivered(reason)) => {
                    tracing::debug!(group = %gid, op, target = id, %reason, "leader not reached; retrying");
                    self.pause(op, deadline, &reason).await?;
                }
            }
        }
    }

    /// Sleep [`ROUTE_RETRY_PAUSE_MS`], or answer `Unavailable` if the deadline comes first.
    async fn pause(&self, op: &str, deadline: Instant, problem: &str) -> Result<(), WriteError> {
        let wake = Instant::now() + Duration::from_millis(ROUTE_RETRY_PAUSE_MS);
        if wake >= deadline {
            return Err(WriteError::Unavailable(format!(
                "group {}: {op} not done within {:?}: {problem}",
                self.inner.id, self.inner.write_timeout
            )));
        }
        tokio::time::sleep_until(wake).await;
        Ok(())
    }

    /// Wait until the metrics name a leader, or answer `Unavailable` at the deadline.
    async fn wait_for_leader(&self, op: &str, deadline: Instant) -> Result<(), WriteError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let waited =
            self.inner.raft.wait(Some(remaining)).metrics(|m| m.current_leader.is_some(), "a leader").await;
        match waited {
            Ok(_) => Ok(()),
            Err(WaitError::Timeout(..)) => Err(WriteError::Unavailable(format!(
                "group {}: {op}: no leader known within {:?}",
                self.inner.id, self.inner.write_timeout
            ))),
            Err(WaitError::ShuttingDown) => {
                Err(WriteError::Unavailable(format!("group {}: shutting down", self.inner.id)))
            }
        }
    }

    /// Send `rpc` to node `id` through the host's transport before `deadline`. `idempotent`:
    /// whether an RPC lost after sending may be retried (reads) or not (writes: commit status
    /// unknown).
    async fn forward(
        &self,
        id: NodeId,
        addr: &NodeAddr,
        rpc: RpcRequest,
        deadline: Instant,
        idempotent: bool,
    ) -> Result<RpcResponse, AttemptError> {
        let gid = &self.inner.id;
        let kind = rpc.kind();
        let sent = tokio::time::timeout_at(deadline, self.inner.transport.send(id, addr, gid, rpc)).await;
        let lost = |reason: String| {
            if idempotent {
                AttemptError::NotDelivered(reason)
            } else {
                AttemptError::Write(WriteError::Unavailable(format!("{reason}; commit status unknown")))
            }
        };
        match sent {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(
                TransportError::Unreachable(e)
                | TransportError::Remote(e)
                | TransportError::Unauthenticated(e),
            )) => Err(AttemptError::NotDelivered(format!("group {gid}: {kind} to node {id}: {e}"))),
            Ok(Err(TransportError::Network(e))) => {
                Err(lost(format!("group {gid}: {kind} to node {id}: {e}")))
            }
            Err(_) => Err(lost(format!(
                "group {gid}: {kind} to node {id} not answered within {:?}",
                self.inner.write_timeout
            ))),
        }
    }

    /// Stamp `command` with this node's clock and propose it here, before `deadline`.
    async fn propose(&self, mut command: S::Command, deadline: Instant) -> Result<ReplyBytes, WriteError> {
        let gid = &self.inner.id;
        S::stamp(&mut command, stamp_clock_ms(self.inner.clock_skew_ms));
        let bytes = encode(&command).map_err(|e| WriteError::Fatal(format!("encode command: {e}")))?;
        let written = tokio::time::timeout_at(deadline, self.inner.raft.client_write(CommandBytes(bytes)))
            .await
            .map_err(|_| {
                tracing::debug!(group = %gid, timeout = ?self.inner.write_timeout, "write timed out");
                WriteError::Unavailable(format!(
                    "group {gid}: write not committed within {:?}",
                    self.inner.write_timeout
                ))
            })?;
        match written {
            Ok(response) => Ok(response.data),
            Err(openraft::errors::RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(self.forward_error(&f))
            }
            Err(openraft::errors::RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                Err(WriteError::Unavailable(format!(
                    "group {gid}: leader changed (now {:?}); commit status unknown",
                    f.leader_id
                )))
            }
            Err(openraft::errors::RaftError::APIError(e)) => {
                Err(WriteError::Fatal(format!("group {gid}: {e}")))
            }
            Err(openraft::errors::RaftError::Fatal(f)) => Err(fatal_to_write(gid, &f)),
        }
    }

    /// Server side of [`RpcRequest::Propose`]: decode and propose locally (no forwarding).
    pub(crate) async fn propose_forwarded(&self, command: &CommandBytes) -> Result<ReplyBytes, WriteError> {
        let command: S::Command = decode(&command.0).map_err(|e| {
            WriteError::Fatal(format!("group {}: decode forwarded command: {e}", self.inner.id))
        })?;
        self.propose(command, Instant::now() + self.inner.write_timeout).await
    }

    /// Confirm this node's leadership with a quorum (ReadIndex policy) and return the read index.
    async fn read_index(&self, deadline: Instant) -> Result<u64, WriteError> {
        let gid = &self.inner.id;
        let confirmed =
            tokio::time::timeout_at(deadline, self.inner.raft.get_read_log_id(ReadPolicy::ReadIndex))
                .await
                .map_err(|_| {
                WriteError::Unavailable(format!(
                    "group {gid}: read not confirmed within {:?}",
                    self.inner.write_timeout
                ))
            })?;
        match confirmed {
            Ok((read_log_id, _applied)) => Ok(read_log_id.index()),
            Err(openraft::errors::RaftError::APIError(LinearizableReadError::ForwardToLeader(fw))) => {
                Err(self.forward_error(&fw))
            }
            Err(openraft::errors::RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(WriteError::Unavailable(format!("group {gid}: {q}")))
            }
            Err(openraft::errors::RaftError::Fatal(f)) => Err(fatal_to_write(gid, &f)),
        }
    }

    /// Server side of [`RpcRequest::ReadIndex`].
    pub(crate) async fn read_index_local(&self) -> Result<u64, WriteError> {
        self.read_index(Instant::now() + self.inner.write_timeout).await
    }

    /// Possibly stale local read (no raft round trip).
    pub fn read_local<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        let st = read_state(&self.inner.state);
        f(&st.machine)
    }

    /// Index of the last entry applied to the local machine (0 before any).
    pub fn applied_index(&self) -> u64 {
        read_state(&self.inner.state).last_applied.as_ref().map_or(0, |l| l.index)
    }

    /// Index of the last entry in the local log (0 when empty).
    pub fn last_log_index(&self) -> u64 {
        self.inner.raft.metrics().borrow_watched().last_log_index.unwrap_or(0)
    }

    /// The leader this node currently knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow_watched().current_leader
    }

    /// Voters and learners of the current (effective) membership, with their addresses.
    pub fn members(&self) -> BTreeMap<NodeId, NodeAddr> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config.nodes().map(|(id, addr)| (*id, addr.clone())).collect()
    }

    /// Wait until the local machine has applied `index`, at most `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), WriteError> {
        match self.inner.raft.wait(Some(timeout)).applied_index_at_least(Some(index), "wait_applied").await {
            Ok(_) => Ok(()),
            Err(WaitError::Timeout(t, _)) => Err(WriteError::Unavailable(format!(
                "group {}: index {index} not applied within {t:?}",
                self.inner.id
            ))),
            Err(WaitError::ShuttingDown) => {
                Err(WriteError::Unavailable(format!("group {}: shutting down", self.inner.id)))
            }
        }
    }

    /// Stop the openraft instance (used by the host).
    pub(crate) async fn stop(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(group = %self.inner.id, error = %e, "raft shutdown failed");
        }
    }
}

/// Membership and leadership health, for the layer that places groups on nodes.
impl<S: StateMachine> Group<S> {
    /// Voter ids of the current (possibly uncommitted) membership.
    pub fn voters(&self) -> std::collections::BTreeSet<NodeId> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().voter_ids().collect()
    }

    /// True while a membership change is in flight (the latest config is not committed).
    pub fn membership_changing(&self) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config.log_id() != m.committed_membership_config.log_id()
    }

    /// On the leader: whether a quorum acknowledged it within `max_age`. `None` when this
    /// node is not the leader. A leader cut off from its quorum answers `Some(false)` once
    /// `max_age` has passed, so callers can fail fast instead of waiting for a timeout.
    pub fn quorum_acked_within(&self, max_age: Duration) -> Option<bool> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        if m.current_leader != Some(m.id) {
            return None;
        }
        // A leader that is its own quorum needs no acknowledgement.
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        if voters == [m.id] {
            return Some(true);
        }
        Some(m.last_quorum_acked.as_ref().is_some_and(|t| openraft::Instant::elapsed(&**t) <= max_age))
    }

    /// Leader only: add `id` as a learner (replicated to, not voting). With `blocking`, wait
    /// until it has caught up (bounded by `timeout`).
    pub async fn add_learner(
        &self,
        id: NodeId,
        addr: NodeAddr,
        blocking: bool,
        timeout: Duration,
    ) -> Result<(), WriteError> {
        let gid = &self.inner.id;
        match tokio::time::timeout(timeout, self.inner.raft.add_learner(id, addr, blocking)).await {
            Err(_) => Err(WriteError::Unavailable(format!(
                "group {gid}: learner {id} not caught up within {timeout:?}"
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.membership_error(e)),
        }
    }

    /// Leader only: make `voters` the voter set (joint consensus; learners not named are
    /// removed). Bounded by `timeout`.
    pub async fn set_voters(
        &self,
        voters: std::collections::BTreeSet<NodeId>,
        timeout: Duration,
    ) -> Result<(), WriteError> {
        let gid = &self.inner.id;
        match tokio::time::timeout(timeout, self.inner.raft.change_membership(voters, false)).await {
            Err(_) => Err(WriteError::Unavailable(format!(
                "group {gid}: membership change not committed within {timeout:?}"
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.membership_error(e)),
        }
    }

    fn membership_error(
        &self,
        e: openraft::errors::RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
    ) -> WriteError {
        let gid = &self.inner.id;
        match e {
            openraft::errors::RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                self.forward_error(&f)
            }
            openraft::errors::RaftError::APIError(e) => WriteError::Unavailable(format!("group {gid}: {e}")),
            openraft::errors::RaftError::Fatal(f) => fatal_to_write(gid, &f),
        }
    }
}

impl<S: StateMachine> Group<S> {
    /// On the leader: how long ago each member last acknowledged it (`None` inside the map:
    /// never). `None` when this node is not the leader.
    pub fn member_ack_ages(&self) -> Option<BTreeMap<NodeId, Option<Duration>>> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let heartbeat = m.heartbeat.as_ref()?;
        Some(
            heartbeat
                .iter()
                .map(|(id, t)| (*id, t.as_ref().map(|t| openraft::Instant::elapsed(&**t))))
                .collect(),
        )
    }
}
