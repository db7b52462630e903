//! openraft's `RaftStateMachine` + `RaftSnapshotBuilder` for one group: the application
//! [`StateMachine`] in memory, snapshots durable in the group's `{gid}:meta` tree.
//!
//! The machine is never written to disk by `apply`: it is rebuilt on restart from the stored
//! snapshot plus a replay of the log (openraft installs the snapshot returned by
//! `get_current_snapshot` into the empty machine, then re-applies up to the saved `committed`).
//! A snapshot is the machine's own `snapshot()` bytes; its openraft metadata carries the last
//! applied log id and membership. Metadata and data are written in one sled batch (atomic) and
//! flushed before `build_snapshot` / `install_snapshot` return.

use std::io;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::RwLockReadGuard;
use std::sync::RwLockWriteGuard;

use futures::Stream;
use futures::StreamExt;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;

use crate::flusher::Flusher;
use crate::store::io_err;
use crate::types::decode_io;
use crate::types::encode_io;
use crate::types::LogId;
use crate::types::ReplyBytes;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;
use crate::StateMachine;

/// Meta key of the current snapshot's metadata.
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
/// Meta key of the current snapshot's data (written in the same batch as the metadata).
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";

/// What the application reads: the machine plus openraft's applied position.
pub(crate) struct SmState<S> {
    pub(crate) machine: S,
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
}

/// The state shared between the openraft state-machine worker and `Group::read_*`.
pub(crate) type SharedState<S> = Arc<RwLock<SmState<S>>>;

/// Read-lock the state. A poisoned lock (a panic inside `apply`) is recovered for reads: the
/// group's raft has stopped by then, and readers see the last state.
pub(crate) fn read_state<S>(state: &RwLock<SmState<S>>) -> RwLockReadGuard<'_, SmState<S>> {
    state.read().unwrap_or_else(|p| p.into_inner())
}

fn write_state<S>(state: &RwLock<SmState<S>>) -> io::Result<RwLockWriteGuard<'_, SmState<S>>> {
    state.write().map_err(|_| io::Error::other("state machine lock poisoned by a panic in apply"))
}

/// openraft's state-machine adapter for one group (opaque: it appears only in
/// [`GroupRaft`](crate::GroupRaft)). Also its own snapshot builder.
pub struct SmStore<S> {
    gid: Arc<str>,
    meta: sled::Tree,
    flusher: Flusher,
    state: SharedState<S>,
}

impl<S> Clone for SmStore<S> {
    fn clone(&self) -> Self {
        SmStore {
            gid: self.gid.clone(),
            meta: self.meta.clone(),
            flusher: self.flusher.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: StateMachine> SmStore<S> {
    /// Wrap an empty `machine`; openraft restores it from the stored snapshot at start-up.
    pub(crate) fn new(gid: Arc<str>, meta: sled::Tree, flusher: Flusher, machine: S) -> SmStore<S> {
        let state = SmState { machine, last_applied: None, membership: StoredMembership::default() };
        SmStore { gid, meta, flusher, state: Arc::new(RwLock::new(state)) }
    }

    pub(crate) fn shared(&self) -> SharedState<S> {
        self.state.clone()
    }

    fn stored_snapshot_meta(&self) -> io::Result<Option<SnapshotMeta>> {
        match self.meta.get(KEY_SNAPSHOT_META).map_err(io_err)? {
            None => Ok(None),
            Some(bytes) => decode_io(&bytes, "snapshot meta").map(Some),
        }
    }

    /// Store `meta` + `data` atomically and wait until they are on disk.
    async fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        batch.insert(KEY_SNAPSHOT_META, encode_io(meta)?);
        batch.insert(KEY_SNAPSHOT_DATA, data);
        self.meta.apply_batch(batch).map_err(io_err)?;
        self.flusher.sync().await?;
        tracing::debug!(
            group = %self.gid,
            last_log_index = meta.last_log_id.as_ref().map(|l| l.index),
            bytes = data.len(),
            "snapshot saved"
        );
        Ok(())
    }
}

impl<S: StateMachine> RaftSnapshotBuilder<TypeConfig> for SmStore<S> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        // Serializing a large machine is CPU work: keep it off the async workers.
        let state = self.state.clone();
        let (meta, data) = tokio::task::spawn_blocking(move || {
            let st = read_state(&state);
            let meta = SnapshotMeta { last_log_id: st.last_applied, last_membership: st.membership.clone() };
            (meta, st.machine.snapshot())
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot task failed: {e}")))?;
        self.save_snapshot(&meta, &data).await?;
        Ok(Snapshot { meta, snapshot: data })
    }
}

impl<S: StateMachine> RaftStateMachine<TypeConfig> for SmStore<S> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SmStore<S>;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let st = read_state(&self.state);
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id;
            let reply = match entry.payload {
                EntryPayload::Blank => {
                    write_state(&self.state)?.last_applied = Some(log_id);
                    ReplyBytes::default()
                }
                EntryPayload::Normal(command) => {
                    // An undecodable command is a version mismatch between proposer and replica;
                    // skipping it would fork the replicas, so the group stops instead.
                    let command: S::Command = decode_io(&command.0, "command")?;
                    let reply = {
                        let mut st = write_state(&self.state)?;
                        let reply = st.machine.apply(command, log_id.index);
                        st.last_applied = Some(log_id);
                        reply
                    };
                    ReplyBytes(encode_io(&reply)?)
                }
                EntryPayload::Membership(membership) => {
                    let mut st = write_state(&self.state)?;
                    st.membership = StoredMembership::new(Some(log_id), membership);
                    st.last_applied = Some(log_id);
                    ReplyBytes::default()
                }
            };
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> io::Result<()> {
        {
            let mut st = write_state(&self.state)?;
            st.machine.restore(&snapshot, meta.last_log_id.as_ref().map_or(0, |l| l.index())).map_err(
                |e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("group {}: restore failed: {e}", self.gid),
                    )
                },
            )?;
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
        }
        // At start-up openraft re-installs the stored snapshot: no need to write it again.
        if self.stored_snapshot_meta()?.as_ref() != Some(meta) {
            self.save_snapshot(meta, &snapshot).await?;
        }
        tracing::info!(
            group = %self.gid,
            last_log_index = meta.last_log_id.as_ref().map(|l| l.index),
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let Some(meta) = self.stored_snapshot_meta()? else {
            return Ok(None);
        };
        let data = self.meta.get(KEY_SNAPSHOT_DATA).map_err(io_err)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("group {}: snapshot meta without data", self.gid),
            )
        })?;
        Ok(Some(Snapshot { meta, snapshot: data.to_vec() }))
    }
}
