//! # boxoffice-raft: many openraft groups per node, stored in one sled database
//!
//! This crate owns consensus for boxoffice. It hosts any number of Raft *groups* (the catalog
//! group, one group per event) inside one process, persists all of them in the node's single
//! sled database, and moves their RPCs through a pluggable [`Transport`]. It knows nothing about
//! tickets: a group runs any deterministic [`StateMachine`].
//!
//! ## Main types
//!
//! - [`StateMachine`]: the application rules hosted in a group (`apply`, `snapshot`, `restore`).
//! - [`RaftHost`]: one per node. Owns the sled [`sled::Db`], the group-commit flusher and the
//!   table of running groups. Opens, reopens, drops and shuts down groups; serves incoming RPCs
//!   ([`RaftHost::handle_rpc`]).
//! - [`Group`]: a handle on one running group: `initialize`, `write`, `read_linearizable`,
//!   `read_local`, metrics, and [`Group::raft`] as an escape hatch to openraft.
//! - [`Transport`], [`RpcRequest`], [`RpcResponse`]: the wire contract between hosts.
//!   [`LocalTransport`] is the in-process implementation (one-node production and tests).
//! - [`WriteError`] (what a writer must do next) and [`RaftError`] (everything else).
//!
//! ## Module layout
//!
//! - `types`: the openraft type configuration (commands travel as bincode bytes) and the codec.
//! - `flusher`: the per-host group-commit thread: one `fsync` for every queued append/vote.
//! - `store::log`: `RaftLogStorage` + `RaftLogReader` on the `{gid}:log` / `{gid}:meta` trees.
//! - `store::state`: `RaftStateMachine` + `RaftSnapshotBuilder`, in-memory machine + durable
//!   snapshots.
//! - `network`: the `Transport` trait, the RPC enums, the openraft network adapter and
//!   `LocalTransport`.
//! - `host`, `group`: the public API. `errors`: the crate's error enums.
//!
//! ## Storage and durability
//!
//! One sled `Db` per node; each group `gid` has two trees, `"{gid}:log"` (entries keyed by
//! big-endian `u64` index) and `"{gid}:meta"` (vote, committed, last purged, snapshot).
//! sled's `flush` is database-wide and fsyncs, so appends never flush themselves: they write
//! their batch, queue their completion callback on the host's flusher, and the flusher calls
//! `db.flush()` once for everything queued before firing the callbacks (group commit).
//! `save_vote`, truncation and snapshot saves wait for the same flusher before returning.
//!
//! **The state machine is rebuilt from snapshot + log.** The application state lives only in
//! memory (behind a lock shared with [`Group::read_local`]). Snapshots are stored durably; on
//! restart openraft installs the stored snapshot into the empty machine handed to
//! [`RaftHost::open_group`] and re-applies the log from there up to the persisted committed index.
//! `apply` therefore never touches disk.
//!
//! ## Must not depend on
//!
//! `tickets` or anything above this crate (`cluster`, `search`, `api`, `node`). No clock or
//! randomness reaches a [`StateMachine`]: whatever is not deterministic travels inside the command.
//!
//! ## Caveats
//!
//! - sled 0.34 is beta software: memory use is roughly 10× `cache_capacity` (see [`open_db`]) and
//!   corruption after hard kills has been reported upstream.
//! - openraft is pinned to a 0.10 alpha; its API may still move. Everything openraft-specific is
//!   behind this crate's types except [`Group::raft`].
//! - A [`WriteError::Unavailable`] after a timeout or leader change does not mean the command was
//!   not applied: it may still commit. Commands must carry an idempotency key when retried.
//! - Every group runs its own openraft tasks and heartbeats; there is no heartbeat coalescing.

mod errors;
mod flusher;
mod group;
mod host;
mod network;
mod store;
mod types;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;

pub use crate::errors::RaftError;
pub use crate::errors::WriteError;
pub use crate::group::Group;
pub use crate::host::open_db;
pub use crate::host::GroupRaft;
pub use crate::host::HostConfig;
pub use crate::host::RaftHost;
pub use crate::network::LocalTransport;
pub use crate::network::RpcRequest;
pub use crate::network::RpcResponse;
pub use crate::network::Transport;
pub use crate::network::TransportError;
pub use crate::store::state::SmStore;
pub use crate::types::CommandBytes;
pub use crate::types::ReplyBytes;
pub use crate::types::TypeConfig;

/// Re-export of the pinned openraft, for callers using [`Group::raft`].
pub use openraft;

/// A node's id, stable for the node's lifetime and stored in every group's membership.
pub type NodeId = u64;

/// A group's id, e.g. `"catalog"` or `"evt_3f2a…"`. It names sled trees, so it is restricted to
/// `[A-Za-z0-9_.-]`, 1..=[`GROUP_ID_BYTES_MAX`] bytes (checked by [`RaftHost::open_group`]).
pub type GroupId = String;

/// Longest accepted [`GroupId`], in bytes. Longer ids are rejected with
/// [`RaftError::InvalidGroupId`].
pub const GROUP_ID_BYTES_MAX: usize = 128;

/// The application state machine hosted in a group.
///
/// Deterministic: `apply` must depend only on `(self, command)` (and `index`), so that every
/// replica computes the same state and reply. `apply` is called once per committed normal entry,
/// in log order, also when the log is replayed after a restart.
pub trait StateMachine: Send + Sync + 'static {
    /// What a client proposes. Travels through the log bincode-encoded.
    type Command: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What `apply` answers to the proposer.
    type Reply: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Apply one committed command at log `index`.
    fn apply(&mut self, command: Self::Command, index: u64) -> Self::Reply;

    /// Serialize the whole state for a snapshot.
    fn snapshot(&self) -> Vec<u8>;

    /// Replace the whole state from snapshot bytes (instance method: the machine may hold
    /// non-serialized fields such as notification channels, which it keeps).
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String>;
}

/// Address book entry stored in a group's membership (the openraft `Node` type).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// Where the node's Raft transport (gRPC) listens, e.g. `"10.0.0.2:7001"`.
    pub raft_addr: String,
    /// Where the node's HTTP API listens, e.g. `"10.0.0.2:8080"`.
    pub http_addr: String,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "raft={} http={}", self.raft_addr, self.http_addr)
    }
}
