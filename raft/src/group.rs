//! [`Group`]: the handle the application uses on one running Raft group — initialize, write,
//! read (linearizable or local), watch progress — plus [`Group::raft`] as an escape hatch.
//!
//! ## Writes: batched, routed to the leader
//!
//! [`Group::write`] encodes the command once and queues it on the group's proposer
//! (`proposer`); a driver takes what is queued as one batch and sends it where the leader is:
//! - this node leads: the batch is stamped with this node's wall clock (plus
//!   `HostConfig::clock_skew_ms`) and proposed as one entry ([`crate::types::Batch`]);
//! - another node leads: the batch goes in one [`RpcRequest::Propose`]; that node queues the
//!   commands on its own proposer as a leader, stamps and proposes them, and answers one reply
//!   per command. It never forwards them again: if it does not lead, it answers
//!   `ForwardToLeader` and this node follows the hint, at most [`FORWARD_HOPS_MAX`] times.
//!
//! With no leader known, or the leader unreachable (nothing was delivered), the driver waits
//! [`ROUTE_RETRY_PAUSE_MS`] and looks again, within `HostConfig::write_timeout_ms`.
//!
//! Every write has a deadline and an exact answer about what happened: `Overloaded` (the queue
//! is full, nothing proposed), `Unavailable` (nothing proposed in time), `Unknown` (proposed,
//! outcome not known in time: it may still commit), or the machine's reply.
//!
//! ## Reads
//!
//! [`Group::read_linearizable`] gets a read index confirmed by a quorum from the leader (here,
//! or by one [`RpcRequest::ReadIndex`]), waits until this replica has applied it, and reads
//! locally. [`Group::read_local`] reads this replica as it is.
//!
//! ## Sleeping
//!
//! A group is awake (its openraft ticks: a leader heartbeats, a follower runs its election
//! timer) or asleep (ticks off: no timer, no message). [`Group::touch`] — every write, read
//! and incoming RPC — wakes it. Putting it to sleep is the host's (`quiesce`): a leader that is
//! idle and whose followers have everything asks them to sleep, then sleeps itself.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
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
use crate::proposer::Pending;
use crate::proposer::Proposer;
use crate::store::state::read_state;
use crate::store::state::SharedState;
use crate::types::decode;
use crate::types::encode;
use crate::types::BatchRef;
use crate::types::CommandBytes;
use crate::types::ReplyBytes;
use crate::types::TypeConfig;
use crate::GroupId;
use crate::NodeAddr;
use crate::NodeId;
use crate::StateMachine;

/// Most `ForwardToLeader` hints one write batch or read follows. One more hint answers
/// `Unavailable` (leadership is moving faster than we can follow).
pub const FORWARD_HOPS_MAX: usize = 3;

/// Pause before looking for the leader again when none is known, or when the known one could
/// not be reached. Each pause is cut short by the deadline.
pub const ROUTE_RETRY_PAUSE_MS: u64 = 50;

/// Heartbeat rounds a leader runs to renew an expired lease before it gives a batch back.
const LEASE_RENEWALS_MAX: usize = 2;

/// This node's wall clock in ms since the Unix epoch, plus `skew_ms`, floored at 0. Only ever
/// used to stamp batches this node proposes.
pub(crate) fn stamp_clock_ms(skew_ms: i64) -> u64 {
    let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let wall = i64::try_from(wall).unwrap_or(i64::MAX);
    u64::try_from(wall.saturating_add(skew_ms)).unwrap_or(0)
}

/// Milliseconds on the process's monotonic clock, for idle times and liveness. The origin is
/// an hour before the first call, so "long ago" is representable right after start.
pub(crate) fn mono_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 3_600_000
}

/// Where one routed attempt goes.
enum Target {
    Local,
    Remote(NodeId, NodeAddr),
}

/// Why one routed read attempt did not produce an answer.
enum AttemptError {
    /// A definite answer from the group (possibly `ForwardToLeader`, which the router follows).
    Write(WriteError),
    /// Nothing was delivered: look again.
    NotDelivered(String),
}

/// What the local metrics say about the leader.
enum LeaderView {
    Unknown,
    /// Known, but its address is not in this node's membership (yet).
    NoAddress(NodeId),
    Known(NodeId, NodeAddr),
}

/// A running group. Cheap to clone; all clones drive the same openraft instance. While a
/// handle is held, the host does not evict the group from memory.
pub struct Group<S: StateMachine> {
    inner: Arc<GroupInner<S>>,
}

impl<S: StateMachine> Clone for Group<S> {
    fn clone(&self) -> Self {
        Group { inner: self.inner.clone() }
    }
}

/// Spacing of the first elections of a new group (see [`Group::elect_first`]).
pub const FIRST_ELECTION_RETRY_MS: u64 = 150;
/// Most first elections tried before the election timer takes over.
pub const FIRST_ELECTION_TRIES_MAX: u32 = 10;

struct GroupInner<S: StateMachine> {
    id: GroupId,
    node_id: NodeId,
    raft: GroupRaft<S>,
    state: SharedState<S>,
    write_timeout: Duration,
    clock_skew_ms: i64,
    transport: Arc<dyn Transport>,
    proposer: Proposer,
    /// Ticks off (see the module doc).
    asleep: AtomicBool,
    /// `mono_ms` of the last write, read or RPC.
    last_active_ms: AtomicU64,
    /// `mono_ms` when it last went to sleep.
    asleep_since_ms: AtomicU64,
    /// `mono_ms` when it last woke (or was opened awake).
    awake_since_ms: AtomicU64,
    /// The host's count of wake-ups.
    wakes: Arc<AtomicU64>,
    /// The leader when the group was last running here, until openraft knows one.
    leader_hint: Option<NodeId>,
}

impl<S: StateMachine> Drop for GroupInner<S> {
    fn drop(&mut self) {
        tracing::trace!(group = %self.id, "group handle dropped");
    }
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
    pub(crate) asleep: bool,
    pub(crate) wakes: Arc<AtomicU64>,
    pub(crate) leader_hint: Option<NodeId>,
}

/// Map a fatal openraft error: a stopped raft is a shutdown (retry elsewhere); a storage
/// failure (a full disk) may have come after the entry went to the followers, so the command
/// may still commit there: its outcome is unknown; the rest is fatal.
fn fatal_to_write(gid: &str, fatal: &Fatal<TypeConfig>) -> WriteError {
    match fatal {
        Fatal::Stopped => WriteError::Unavailable(format!("group {gid}: raft stopped")),
        Fatal::StorageError(e) => WriteError::Unknown(format!(
            "group {gid}: this node's storage failed ({e}); the command may still commit on other replicas"
        )),
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
        RpcResponse::Sleep(_) => "sleep",
        RpcResponse::Pong { .. } => "pong",
        RpcResponse::Identity { .. } => "identity",
    }
}

/// Answer each of `items` with its reply, in order; if `from` sent a different number of
/// replies than there were commands, that is a bug: every command fails as `Fatal`.
fn answer_each(items: Vec<Pending>, replies: Vec<Result<ReplyBytes, WriteError>>, gid: &str, from: &str) {
    if replies.len() != items.len() {
        let e = WriteError::Fatal(format!(
            "group {gid}: {from} answered {} replies for {} commands",
            replies.len(),
            items.len()
        ));
        return answer_all(items, e);
    }
    for (item, reply) in items.into_iter().zip(replies) {
        item.answer(reply);
    }
}

/// Answer every command of `items` with a clone of `e`.
fn answer_all(items: Vec<Pending>, e: WriteError) {
    for item in items {
        item.answer(Err(e.clone()));
    }
}

impl<S: StateMachine> Group<S> {
    pub(crate) fn new(parts: GroupParts<S>) -> Group<S> {
        let GroupParts {
            id,
            node_id,
            raft,
            state,
            write_timeout,
            clock_skew_ms,
            transport,
            asleep,
            wakes,
            leader_hint,
        } = parts;
        let now = mono_ms();
        Group {
            inner: Arc::new(GroupInner {
                id,
                node_id,
                raft,
                state,
                write_timeout,
                clock_skew_ms,
                transport,
                proposer: Proposer::default(),
                asleep: AtomicBool::new(asleep),
                last_active_ms: AtomicU64::new(now),
                asleep_since_ms: AtomicU64::new(now),
                awake_since_ms: AtomicU64::new(now),
                wakes,
                leader_hint,
            }),
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

    /// How many handles share this running instance (the host's table holds one).
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    // ---- sleeping ---------------------------------------------------------------------

    /// Note activity and wake the group if it sleeps (ticks on: a leader heartbeats again, a
    /// follower runs its election timer).
    pub fn touch(&self) {
        let now = mono_ms();
        self.inner.last_active_ms.store(now, Ordering::Relaxed);
        if self.inner.asleep.swap(false, Ordering::AcqRel) {
            self.inner.awake_since_ms.store(now, Ordering::Relaxed);
            self.inner.raft.runtime_config().tick(true);
            self.inner.wakes.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(group = %self.inner.id, "woke");
        }
    }

    /// Whether the group sleeps here (ticks off).
    pub fn is_asleep(&self) -> bool {
        self.inner.asleep.load(Ordering::Acquire)
    }

    /// Stop this replica's ticks (the host decided it may sleep).
    pub(crate) fn sleep(&self) {
        if !self.inner.asleep.swap(true, Ordering::AcqRel) {
            self.inner.raft.runtime_config().tick(false);
            self.inner.asleep_since_ms.store(mono_ms(), Ordering::Relaxed);
        }
    }

    /// Milliseconds since the last write, read or RPC.
    pub(crate) fn idle_ms(&self) -> u64 {
        mono_ms().saturating_sub(self.inner.last_active_ms.load(Ordering::Relaxed))
    }

    /// Milliseconds asleep (0 when awake).
    pub(crate) fn asleep_ms(&self) -> u64 {
        if !self.is_asleep() {
            return 0;
        }
        mono_ms().saturating_sub(self.inner.asleep_since_ms.load(Ordering::Relaxed))
    }

    /// Proposals waiting or in flight.
    pub(crate) fn proposals_pending(&self) -> usize {
        self.inner.proposer.waiting() + self.inner.proposer.running()
    }

    /// Whether the machine says it is in use beyond its state (see [`StateMachine::busy`]).
    pub(crate) fn machine_busy(&self) -> bool {
        read_state(&self.inner.state).machine.busy()
    }

    // ---- formation --------------------------------------------------------------------

    /// Initialize the group with `members` (all voters). Call on exactly one pristine node;
    /// the others learn the membership from it. If the group is already initialized this does
    /// nothing and returns `Ok(())`.
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeAddr>) -> Result<(), RaftError> {
        if self.is_initialized().await {
            return Ok(());
        }
        self.touch();
        match self.inner.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(group = %self.inner.id, "group initialized");
                // openraft waits an election timeout (1–2 s) before the first election; a new
                // group has no leader to disturb, so elect now (a new event is sellable in
                // milliseconds, not seconds).
                self.elect_first();
                Ok(())
            }
            Err(openraft::errors::RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(RaftError::Raft(format!("group {}: initialize: {e}", self.inner.id))),
        }
    }

    /// On the node that initialized this group, while it has no leader yet: start an
    /// election now rather than at the election timeout, and again every
    /// [`FIRST_ELECTION_RETRY_MS`] until there is a leader (the peers may not have opened the
    /// group when the first votes went out: they open it when they apply the catalog change
    /// that created it), for at most [`FIRST_ELECTION_TRIES_MAX`] tries.
    pub fn elect_first(&self) {
        let group = self.clone();
        tokio::spawn(async move {
            for _ in 0..FIRST_ELECTION_TRIES_MAX {
                let (leader, state) = {
                    let m = group.inner.raft.metrics();
                    let m = m.borrow_watched();
                    (m.current_leader, m.state)
                };
                if leader.is_some() || state == openraft::ServerState::Leader {
                    return;
                }
                // An election of ours still running (a slow disk, a busy machine): starting
                // another would only raise the term, and a leader elected meanwhile would be
                // deposed (its group then shows one more blank entry, a version change
                // nobody made).
                if state == openraft::ServerState::Candidate {
                    tokio::time::sleep(Duration::from_millis(FIRST_ELECTION_RETRY_MS)).await;
                    continue;
                }
                if let Err(e) = group.inner.raft.trigger().elect(false).await {
                    tracing::debug!(group = %group.inner.id, error = %e, "first election not started");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(FIRST_ELECTION_RETRY_MS)).await;
            }
        });
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

    // ---- writes -----------------------------------------------------------------------

    /// Propose `command` on the group's leader, wherever it is, and return the machine's reply
    /// once it is committed and applied there. Bounded by `HostConfig::write_timeout_ms`.
    ///
    /// Never answers `ForwardToLeader`. After a forwarded write, this node may not have
    /// applied the command yet: `read_local` can lag, `read_linearizable` cannot.
    pub async fn write(&self, command: S::Command) -> Result<S::Reply, WriteError> {
        self.write_by(command, Instant::now() + self.inner.write_timeout).await
    }

    /// [`Group::write`] with an explicit deadline (see the module doc for the answers).
    pub async fn write_by(&self, command: S::Command, deadline: Instant) -> Result<S::Reply, WriteError> {
        let gid = &self.inner.id;
        let bytes =
            CommandBytes(encode(&command).map_err(|e| WriteError::Fatal(format!("encode command: {e}")))?);
        let reply = self.submit(bytes, false, deadline).await?;
        decode::<S::Reply>(&reply.0).map_err(|e| WriteError::Fatal(format!("group {gid}: decode reply: {e}")))
    }

    /// Propose `command` on this node only: a follower answers `ForwardToLeader` with the
    /// leader it knows. Bounded by `HostConfig::write_timeout_ms`.
    pub async fn write_local(&self, command: S::Command) -> Result<S::Reply, WriteError> {
        let gid = &self.inner.id;
        if let Some(e) = self.not_leader_here() {
            return Err(e);
        }
        let bytes =
            CommandBytes(encode(&command).map_err(|e| WriteError::Fatal(format!("encode command: {e}")))?);
        let reply = self.submit(bytes, true, Instant::now() + self.inner.write_timeout).await?;
        decode::<S::Reply>(&reply.0).map_err(|e| WriteError::Fatal(format!("group {gid}: decode reply: {e}")))
    }

    /// `ForwardToLeader` when this node is not the leader it knows of.
    fn not_leader_here(&self) -> Option<WriteError> {
        match self.leader_view() {
            LeaderView::Known(id, _) if id == self.inner.node_id => None,
            LeaderView::Known(id, addr) => Some(WriteError::ForwardToLeader { leader: Some((id, addr)) }),
            LeaderView::NoAddress(_) | LeaderView::Unknown => {
                Some(WriteError::ForwardToLeader { leader: None })
            }
        }
    }

    /// Queue one command and wait for its answer until `deadline`.
    async fn submit(
        &self,
        command: CommandBytes,
        local_only: bool,
        deadline: Instant,
    ) -> Result<ReplyBytes, WriteError> {
        self.touch();
        let (pending, claim, rx) = Pending::new(command, local_only);
        match self.inner.proposer.submit(vec![pending]) {
            Ok(true) => self.start_driver(),
            Ok(false) => {}
            Err((e, _)) => return Err(e),
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_dropped)) if claim.cancel() => {
                Err(WriteError::Unavailable(format!("group {}: shutting down", self.inner.id)))
            }
            Ok(Err(_dropped)) => {
                Err(WriteError::Unknown(format!("group {}: stopped after proposing", self.inner.id)))
            }
            Err(_) if claim.cancel() => Err(WriteError::Unavailable(format!(
                "group {}: not proposed within the deadline (the group is busy or has no leader)",
                self.inner.id
            ))),
            Err(_) => Err(WriteError::Unknown(format!(
                "group {}: proposed, but not committed within the deadline",
                self.inner.id
            ))),
        }
    }

    fn start_driver(&self) {
        let group = self.clone();
        tokio::spawn(async move {
            while let Some(batch) = group.inner.proposer.take() {
                group.send_batch(batch).await;
            }
        });
    }

    /// Server side of [`RpcRequest::Propose`]: queue the forwarded commands here as a leader
    /// (never forwarding them again) and answer each.
    ///
    /// The commands are queued even if the metrics do not name this node the leader yet (a
    /// group just loaded publishes them a moment later): the driver proposes them here, or
    /// answers `ForwardToLeader` if another node leads.
    pub(crate) async fn propose_forwarded(
        &self,
        commands: Vec<CommandBytes>,
    ) -> Result<Vec<Result<ReplyBytes, WriteError>>, WriteError> {
        self.touch();
        let deadline = Instant::now() + self.inner.write_timeout;
        let mut items = Vec::with_capacity(commands.len());
        let mut waits = Vec::with_capacity(commands.len());
        for command in commands {
            let (pending, claim, rx) = Pending::new(command, true);
            items.push(pending);
            waits.push((claim, rx));
        }
        match self.inner.proposer.submit(items) {
            Ok(true) => self.start_driver(),
            Ok(false) => {}
            Err((e, _)) => return Err(e),
        }
        let mut out = Vec::with_capacity(waits.len());
        for (claim, rx) in waits {
            out.push(match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(answer)) => answer,
                _ if claim.cancel() => {
                    Err(WriteError::Unavailable(format!("group {}: not proposed in time", self.inner.id)))
                }
                _ => Err(WriteError::Unknown(format!("group {}: not committed in time", self.inner.id))),
            });
        }
        Ok(out)
    }

    /// Send one batch to the leader (see the module doc) and answer its commands.
    async fn send_batch(&self, mut items: Vec<Pending>) {
        let gid = &self.inner.id;
        let deadline = Instant::now() + self.inner.write_timeout;
        let mut hint: Option<(NodeId, NodeAddr)> = None;
        let mut hops = 0usize;
        loop {
            let (id, addr) = match hint.take() {
                Some(h) => h,
                None => match self.leader_view() {
                    LeaderView::Known(id, addr) => (id, addr),
                    LeaderView::Unknown => {
                        if let Err(e) = self.wait_for_leader("write", deadline).await {
                            return answer_all(items, e);
                        }
                        continue;
                    }
                    LeaderView::NoAddress(id) => {
                        let problem = format!("leader {id} has no address in the membership");
                        if let Err(e) = self.pause("write", deadline, &problem).await {
                            return answer_all(items, e);
                        }
                        continue;
                    }
                },
            };
            let next = if id == self.inner.node_id {
                self.propose_here(items, deadline).await
            } else {
                // Commands forwarded to this node stop here: the sender follows the hint.
                let (local, remote): (Vec<Pending>, Vec<Pending>) =
                    items.into_iter().partition(|i| i.local_only);
                answer_all(local, WriteError::ForwardToLeader { leader: Some((id, addr.clone())) });
                if remote.is_empty() {
                    return;
                }
                self.propose_there(id, &addr, remote, deadline).await
            };
            let Some((rest, hinted)) = next else { return };
            items = rest;
            match hinted {
                Some(h) if h.0 != id => {
                    hops += 1;
                    if hops > FORWARD_HOPS_MAX {
                        let e = WriteError::Unavailable(format!(
                            "group {gid}: write gave up after {FORWARD_HOPS_MAX} leader hints (last: node {})",
                            h.0
                        ));
                        return answer_all(items, e);
                    }
                    hint = Some(h);
                }
                _ => {
                    if let Err(e) = self.pause("write", deadline, "the leader could not take the batch").await
                    {
                        return answer_all(items, e);
                    }
                }
            }
        }
    }

    /// Propose `items` as one entry here. `None` when every command was answered, else the
    /// commands to route again (nothing of them was proposed) with the leader hint, if any.
    async fn propose_here(
        &self,
        items: Vec<Pending>,
        deadline: Instant,
    ) -> Option<(Vec<Pending>, Option<(NodeId, NodeAddr)>)> {
        let gid = &self.inner.id;
        let items: Vec<Pending> = items.into_iter().filter(|i| i.propose()).collect();
        if items.is_empty() {
            return None;
        }
        let batch = BatchRef {
            now_ms: stamp_clock_ms(self.inner.clock_skew_ms),
            commands: items.iter().map(|i| i.command.0.as_slice()).collect(),
        };
        let bytes = match encode(&batch) {
            Ok(b) => CommandBytes(b),
            Err(e) => {
                answer_all(items, WriteError::Fatal(format!("encode batch: {e}")));
                return None;
            }
        };
        let mut written = tokio::time::timeout_at(deadline, self.inner.raft.client_write(bytes)).await;
        // A leader refuses writes while its quorum lease is expired — always so right after it
        // slept or was loaded (no heartbeat went out). One heartbeat round renews it.
        for _ in 0..LEASE_RENEWALS_MAX {
            let expired = matches!(&written, Ok(Err(openraft::errors::RaftError::APIError(ClientWriteError::ForwardToLeader(f))))
                if f.leader_id.is_none() && f.reason == openraft::errors::ForwardReason::LeaseExpired);
            if !expired || !self.renew_lease(deadline).await {
                break;
            }
            // Written again from the commands (rare): the common path never copies the entry.
            let Ok(again) = encode(&batch) else { break };
            written =
                tokio::time::timeout_at(deadline, self.inner.raft.client_write(CommandBytes(again))).await;
        }
        match written {
            Ok(Ok(response)) => {
                answer_each(items, response.data.0.into_iter().map(Ok).collect(), gid, "this node");
                None
            }
            Ok(Err(openraft::errors::RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                // Refused before it reached the log: route it again.
                for item in &items {
                    item.give_back();
                }
                let hint = match self.forward_error(&f) {
                    WriteError::ForwardToLeader { leader } => leader,
                    _ => None,
                };
                Some((items, hint))
            }
            Ok(Err(openraft::errors::RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)))) => {
                answer_all(
                    items,
                    WriteError::Unknown(format!(
                        "group {gid}: leader changed (now {:?}) after proposing",
                        f.leader_id
                    )),
                );
                None
            }
            Ok(Err(openraft::errors::RaftError::APIError(e))) => {
                answer_all(items, WriteError::Fatal(format!("group {gid}: {e}")));
                None
            }
            Ok(Err(openraft::errors::RaftError::Fatal(f))) => {
                let e = match fatal_to_write(gid, &f) {
                    WriteError::Unavailable(m) => WriteError::Unknown(m),
                    other => other,
                };
                answer_all(items, e);
                None
            }
            Err(_) => {
                tracing::debug!(group = %gid, "write batch timed out");
                answer_all(
                    items,
                    WriteError::Unknown(format!(
                        "group {gid}: not committed within {:?}",
                        self.inner.write_timeout
                    )),
                );
                None
            }
        }
    }

    /// Heartbeat now and wait (until `deadline`) for a quorum to acknowledge it: what a leader
    /// whose lease expired needs before it takes writes. `false` if no quorum answered in time.
    async fn renew_lease(&self, deadline: Instant) -> bool {
        if self.inner.raft.trigger().heartbeat().await.is_err() {
            return false;
        }
        let since = std::time::Instant::now();
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.inner
            .raft
            .wait(Some(remaining))
            .metrics(
                |m| {
                    m.last_quorum_acked
                        .as_ref()
                        .is_some_and(|t| openraft::Instant::elapsed(&**t) <= since.elapsed())
                },
                "a quorum acknowledges the heartbeat",
            )
            .await
            .is_ok()
    }

    /// Send `items` to the leader `id` in one `Propose`. Same answer as [`Group::propose_here`].
    async fn propose_there(
        &self,
        id: NodeId,
        addr: &NodeAddr,
        items: Vec<Pending>,
        deadline: Instant,
    ) -> Option<(Vec<Pending>, Option<(NodeId, NodeAddr)>)> {
        let gid = &self.inner.id;
        let items: Vec<Pending> = items.into_iter().filter(|i| i.propose()).collect();
        if items.is_empty() {
            return None;
        }
        let rpc = RpcRequest::Propose { commands: items.iter().map(|i| i.command.clone()).collect() };
        let sent = tokio::time::timeout_at(deadline, self.inner.transport.send(id, addr, gid, rpc)).await;
        let give_back = |items: Vec<Pending>, hint| {
            for item in &items {
                item.give_back();
            }
            Some((items, hint))
        };
        match sent {
            Ok(Ok(RpcResponse::Propose(Ok(replies)))) => {
                answer_each(items, replies, gid, &format!("node {id}"));
                None
            }
            Ok(Ok(RpcResponse::Propose(Err(WriteError::ForwardToLeader { leader })))) => {
                give_back(items, leader)
            }
            Ok(Ok(RpcResponse::Propose(Err(e)))) => {
                // The whole batch was refused before any of it was proposed there.
                answer_all(items, e);
                None
            }
            Ok(Ok(other)) => {
                let e = WriteError::Fatal(format!(
                    "group {gid}: node {id} answered a forwarded write with {}",
                    response_kind(&other)
                ));
                answer_all(items, e);
                None
            }
            Ok(Err(
                TransportError::Unreachable(e)
                | TransportError::Refused(e)
                | TransportError::Remote(e)
                | TransportError::Unauthenticated(e),
            )) => {
                tracing::debug!(group = %gid, target = id, reason = %e, "leader not reached; retrying");
                give_back(items, None)
            }
            Ok(Err(TransportError::Network(e))) => {
                answer_all(items, WriteError::Unknown(format!("group {gid}: propose to node {id}: {e}")));
                None
            }
            Err(_) => {
                answer_all(
                    items,
                    WriteError::Unknown(format!("group {gid}: node {id} did not answer in time")),
                );
                None
            }
        }
    }

    // ---- reads ------------------------------------------------------------------------

    /// Linearizable read on any replica: get a read index confirmed by a quorum from the leader
    /// (locally when this node leads, else by one [`RpcRequest::ReadIndex`]), wait until the
    /// local machine has applied up to it, then run `f` on the local state. Bounded by
    /// `HostConfig::write_timeout_ms` in all.
    pub async fn read_linearizable<T>(&self, f: impl FnOnce(&S) -> T) -> Result<T, WriteError> {
        self.touch();
        let deadline = Instant::now() + self.inner.write_timeout;
        let gid = &self.inner.id;
        let index = self
            .route("read", deadline, move |target| async move {
                match target {
                    Target::Local => self.read_index(deadline).await.map_err(AttemptError::Write),
                    Target::Remote(id, addr) => {
                        let sent = tokio::time::timeout_at(
                            deadline,
                            self.inner.transport.send(id, &addr, gid, RpcRequest::ReadIndex),
                        )
                        .await;
                        match sent {
                            Ok(Ok(RpcResponse::ReadIndex(r))) => r.map_err(AttemptError::Write),
                            Ok(Ok(other)) => Err(AttemptError::Write(WriteError::Fatal(format!(
                                "group {gid}: node {id} answered a read index request with {}",
                                response_kind(&other)
                            )))),
                            Ok(Err(e)) => Err(AttemptError::NotDelivered(format!(
                                "group {gid}: read index from node {id}: {e}"
                            ))),
                            Err(_) => Err(AttemptError::NotDelivered(format!(
                                "group {gid}: read index from node {id} timed out"
                            ))),
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
        self.touch();
        let deadline = Instant::now() + self.inner.write_timeout;
        let index = self.read_index(deadline).await?;
        self.wait_applied(index, deadline.saturating_duration_since(Instant::now())).await?;
        Ok(self.read_local(f))
    }

    /// The leader as the local metrics know it (or the hint from when it was loaded).
    fn leader_view(&self) -> LeaderView {
        let Some(id) = self.known_leader() else {
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

    /// Run a read `attempt` against the leader until it answers, following leader hints and
    /// waiting for a leader when none is known, all before `deadline`.
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
        self.touch();
        self.read_index(Instant::now() + self.inner.write_timeout).await
    }

    /// Possibly stale local read (no raft round trip).
    pub fn read_local<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        let st = read_state(&self.inner.state);
        f(&st.machine)
    }

    /// Commands applied since the state the last snapshot copied (see `SNAPSHOT_COMMANDS`).
    pub fn commands_since_snapshot(&self) -> u64 {
        read_state(&self.inner.state).commands_since_snapshot.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Index of the last entry applied to the local machine (0 before any).
    pub fn applied_index(&self) -> u64 {
        read_state(&self.inner.state).last_applied.as_ref().map_or(0, |l| l.index)
    }

    /// Index of the last entry in the local log (0 when empty).
    pub fn last_log_index(&self) -> u64 {
        self.inner.raft.metrics().borrow_watched().last_log_index.unwrap_or(0)
    }

    /// The group's current term here (for operators: every election raises it).
    pub fn term(&self) -> u64 {
        self.inner.raft.metrics().borrow_watched().current_term
    }

    /// The leader this node currently knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow_watched().current_leader
    }

    /// Wait, at most `timeout`, until this node knows a leader other than `gone` (a node
    /// declared dead): `true` if it does. Wakes the group, so its election timer runs.
    pub async fn wait_leader_other_than(&self, gone: NodeId, timeout: Duration) -> bool {
        self.touch();
        self.inner
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some_and(|l| l != gone), "a new leader")
            .await
            .is_ok()
    }

    /// The leader this node knows of, or, until it knows one, the leader it had when the
    /// group last ran here (before it left memory).
    pub fn known_leader(&self) -> Option<NodeId> {
        self.leader().or(self.inner.leader_hint)
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
    /// Voter and learner ids of the current membership, sorted.
    pub fn voters_and_learners(&self) -> (Vec<NodeId>, Vec<NodeId>) {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        (membership.voter_ids().collect(), membership.learner_ids().collect())
    }

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
    /// node is not the leader, and also while the group sleeps or has been awake for less than
    /// `max_age` (a sleeping leader sends nothing, so it has no recent acknowledgement to
    /// show; its next write or read finds out). A leader cut off from its quorum answers
    /// `Some(false)` once `max_age` has passed, so callers can fail fast instead of waiting
    /// for a timeout.
    pub fn quorum_acked_within(&self, max_age: Duration) -> Option<bool> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let awake_ms = mono_ms().saturating_sub(self.inner.awake_since_ms.load(Ordering::Relaxed));
        if m.current_leader != Some(m.id) || self.is_asleep() || awake_ms < max_age.as_millis() as u64 {
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
        self.touch();
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
        self.change_membership(openraft::ChangeMembers::ReplaceAllVoters(voters), timeout).await
    }

    /// Leader only: take the learners `ids` out of the membership. Bounded by `timeout`.
    pub async fn remove_learners(
        &self,
        ids: std::collections::BTreeSet<NodeId>,
        timeout: Duration,
    ) -> Result<(), WriteError> {
        self.change_membership(openraft::ChangeMembers::RemoveNodes(ids), timeout).await
    }

    /// One membership change, committed within `timeout`.
    async fn change_membership(
        &self,
        change: openraft::ChangeMembers<NodeId, NodeAddr>,
        timeout: Duration,
    ) -> Result<(), WriteError> {
        self.touch();
        let gid = &self.inner.id;
        match tokio::time::timeout(timeout, self.inner.raft.change_membership(change, false)).await {
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

    /// On the leader: whether member `id` has replicated the log up to within `lag_max`
    /// entries of the leader's last entry. `false` when this node is not the leader or `id` has
    /// never acknowledged anything.
    pub fn caught_up(&self, id: NodeId, lag_max: u64) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let last = m.last_log_index.unwrap_or(0);
        let Some(replication) = m.replication.as_ref() else {
            return false;
        };
        replication.get(&id).and_then(|matched| matched.as_ref()).is_some_and(|l| l.index + lag_max >= last)
    }

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
