//! The one error type of this crate, named by what the caller must do.

use serde::{Deserialize, Serialize};
use tickets::{NodeId, Rejection};

/// Also the answer's error on the peer plane ([`crate::peer`]), so a peer's refusal reaches
/// the client as if this node had made it.
#[derive(Clone, Debug, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// A rule said no. Deterministic; show it to the client.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// No quorum, no leader yet, or a deadline passed before the write was proposed: nothing
    /// happened; safe to retry after `retry_after_s`.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String, retry_after_s: u64 },
    /// The event's group has more writes waiting than it takes: refused at once, nothing
    /// happened; retry after `retry_after_s`.
    #[error("overloaded: {reason}")]
    Overloaded { reason: String, retry_after_s: u64 },
    /// The write was proposed but its outcome is not known in time: it may have happened.
    /// The ids it would have made let the client look it up or retry with its
    /// `Idempotency-Key`.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown { reason: String, hold_id: Option<String>, booking_id: Option<String> },
    /// This node does not serve what the request needs: one of these peers does (best
    /// first; see [`crate::route`]). The facade ([`crate::routed`]) asks them; a peer that
    /// answers this to a peer request did not serve it either, and the next one is asked.
    #[error("served by another node")]
    Elsewhere { nodes: Vec<NodeId> },
    /// This node must not take part in the cluster as configured (an operator's mistake: a
    /// wiped node under its old id, a second cluster on the same nodes, a taken id). The
    /// message says what happened and what to do.
    #[error("{0}")]
    Refused(String),
    /// A bug or a storage failure. Not the client's fault; logged, never detailed to them.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Error::Unavailable { reason: reason.into(), retry_after_s: 1 }
    }

    /// An `OutcomeUnknown` names the hold this write would make or touch.
    pub fn with_hold(self, id: &str) -> Self {
        match self {
            Error::OutcomeUnknown { reason, booking_id, .. } => {
                Error::OutcomeUnknown { reason, hold_id: Some(id.to_string()), booking_id }
            }
            other => other,
        }
    }
}

impl From<raft::WriteError> for Error {
    fn from(e: raft::WriteError) -> Self {
        match e {
            raft::WriteError::ForwardToLeader { .. } => Error::unavailable("not the leader of this group"),
            raft::WriteError::Unavailable(reason) => Error::unavailable(reason),
            raft::WriteError::Overloaded(reason) => Error::Overloaded { reason, retry_after_s: 1 },
            raft::WriteError::Unknown(reason) => {
                Error::OutcomeUnknown { reason, hold_id: None, booking_id: None }
            }
            raft::WriteError::Fatal(reason) => Error::Internal(reason),
        }
    }
}

impl From<raft::RaftError> for Error {
    fn from(e: raft::RaftError) -> Self {
        Error::Internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
