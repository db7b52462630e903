//! The crate's two error enums, named by what the caller must do.
//!
//! - [`WriteError`]: answers to `Group::write` / reads: go to the leader, retry later, or give up.
//! - [`RaftError`]: everything else (opening storage, RPC handling, configuration).

use serde::Deserialize;
use serde::Serialize;

use crate::NodeAddr;
use crate::NodeId;

/// Why a write or linearizable read did not produce an answer.
///
/// Serializable because a node that handles a forwarded write or read ([`RpcRequest::Propose`],
/// [`RpcRequest::ReadIndex`]) sends it back to the forwarding node.
///
/// [`RpcRequest::Propose`]: crate::RpcRequest::Propose
/// [`RpcRequest::ReadIndex`]: crate::RpcRequest::ReadIndex
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WriteError {
    /// This node is not the group's leader. `leader` is the known leader, if any, with its
    /// address from the group's membership; the caller forwards there or retries later.
    #[error("not the leader; leader is {leader:?}")]
    ForwardToLeader { leader: Option<(NodeId, NodeAddr)> },
    /// Nothing was proposed (no leader, no quorum, shutting down, or the deadline passed
    /// before the command reached the log): safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The group has more proposals waiting than it takes ([`PROPOSALS_QUEUED_MAX`]): refused
    /// at once, nothing was proposed; retry after a pause.
    ///
    /// [`PROPOSALS_QUEUED_MAX`]: crate::PROPOSALS_QUEUED_MAX
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The command was handed to the log but its outcome is not known in time (deadline,
    /// leader change, connection lost after sending): it may still commit. Look it up, or
    /// retry with an idempotency key.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// A bug or storage failure (undecodable reply, raft stopped by a storage error).
    #[error("fatal: {0}")]
    Fatal(String),
}

/// Errors of the host-level API and of RPC handling.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// The group id is empty, too long or has characters other than `[A-Za-z0-9_.-]`.
    #[error("invalid group id {0:?}")]
    InvalidGroupId(String),
    /// No group with this id runs on this node (not opened, dropped, or shut down).
    #[error("group {0:?} is not open on this node")]
    GroupNotFound(String),
    /// The configuration is invalid (e.g. election timeout not above the heartbeat).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// sled or encoding failure; the node's storage is suspect.
    #[error("storage: {0}")]
    Storage(String),
    /// openraft refused or failed (initialize on a node outside the members, raft stopped, …).
    #[error("raft: {0}")]
    Raft(String),
    /// The host is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The gRPC server could not serve (listener or HTTP/2 failure).
    #[error("transport: {0}")]
    Transport(String),
}

impl From<sled::Error> for RaftError {
    fn from(e: sled::Error) -> Self {
        RaftError::Storage(e.to_string())
    }
}
