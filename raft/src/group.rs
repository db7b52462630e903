//! [`Group`]: the handle the application uses on one running Raft group — initialize, write,
//! read (linearizable or local), watch progress — plus [`Group::raft`] as an escape hatch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::Fatal;
use openraft::errors::ForwardToLeader;
use openraft::errors::InitializeError;
use openraft::errors::LinearizableReadError;
use openraft::metrics::WaitError;
use openraft::ReadPolicy;

use crate::errors::RaftError;
use crate::errors::WriteError;
use crate::host::GroupRaft;
use crate::store::state::read_state;
use crate::store::state::SharedState;
use crate::types::decode;
use crate::types::encode;
use crate::types::CommandBytes;
use crate::types::TypeConfig;
use crate::GroupId;
use crate::NodeAddr;
use crate::NodeId;
use crate::StateMachine;

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
    raft: GroupRaft<S>,
    state: SharedState<S>,
    write_timeout: Duration,
}

/// Map a fatal openraft error: a stopped raft is a shutdown (retry elsewhere), the rest is fatal.
fn fatal_to_write(gid: &str, fatal: &Fatal<TypeConfig>) -> WriteError {
    match fatal {
        Fatal::Stopped => WriteError::Unavailable(format!("group {gid}: raft stopped")),
        other => WriteError::Fatal(format!("group {gid}: {other}")),
    }
}

impl<S: StateMachine> Group<S> {
    pub(crate) fn new(
        id: GroupId,
        raft: GroupRaft<S>,
        state: SharedState<S>,
        write_timeout: Duration,
    ) -> Group<S> {
        Group { inner: Arc::new(GroupInner { id, raft, state, write_timeout }) }
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
    fn forward(&self, f: &ForwardToLeader<TypeConfig>) -> WriteError {
        let leader = f.leader_id.map(|id| {
            let addr = f.leader_node.clone().or_else(|| self.members().remove(&id)).unwrap_or_default();
            (id, addr)
        });
        WriteError::ForwardToLeader { leader }
    }

    /// Propose `command`, wait until it is committed and applied here, and return the
    /// machine's reply. Gives up after `HostConfig::write_timeout_ms` with `Unavailable`
    /// (the command may still commit later).
    pub async fn write(&self, command: S::Command) -> Result<S::Reply, WriteError> {
        let gid = &self.inner.id;
        let bytes = encode(&command).map_err(|e| WriteError::Fatal(format!("encode command: {e}")))?;
        let written =
            tokio::time::timeout(self.inner.write_timeout, self.inner.raft.client_write(CommandBytes(bytes)))
                .await
                .map_err(|_| {
                    tracing::debug!(group = %gid, timeout = ?self.inner.write_timeout, "write timed out");
                    WriteError::Unavailable(format!(
                        "group {gid}: write not committed within {:?}",
                        self.inner.write_timeout
                    ))
                })?;
        match written {
            Ok(response) => decode::<S::Reply>(&response.data.0)
                .map_err(|e| WriteError::Fatal(format!("group {gid}: decode reply: {e}"))),
            Err(openraft::errors::RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(self.forward(&f))
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

    /// Linearizable read: confirm leadership with a quorum (read index), wait until the
    /// local machine has applied up to it, then run `f` on the local state.
    pub async fn read_linearizable<T>(&self, f: impl FnOnce(&S) -> T) -> Result<T, WriteError> {
        let gid = &self.inner.id;
        let ensured = tokio::time::timeout(
            self.inner.write_timeout,
            self.inner.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        .map_err(|_| {
            WriteError::Unavailable(format!(
                "group {gid}: read not confirmed within {:?}",
                self.inner.write_timeout
            ))
        })?;
        match ensured {
            Ok(_) => Ok(self.read_local(f)),
            Err(openraft::errors::RaftError::APIError(LinearizableReadError::ForwardToLeader(fw))) => {
                Err(self.forward(&fw))
            }
            Err(openraft::errors::RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(WriteError::Unavailable(format!("group {gid}: {q}")))
            }
            Err(openraft::errors::RaftError::Fatal(f)) => Err(fatal_to_write(gid, &f)),
        }
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
