//! openraft's `RaftStateMachine` + `RaftSnapshotBuilder` for one group: the application
//! [`StateMachine`] in memory, snapshots in their own files (`store::snapshot`).
//!
//! The machine is never written to disk by `apply`: it is rebuilt on restart from the stored
//! snapshot plus a replay of the log (openraft installs the snapshot returned by
//! `get_current_snapshot` into the empty machine, then re-applies up to the saved `committed`).
//!
//! **Apply.** A normal entry is a [`Batch`]: its commands are decoded before the state lock is
//! taken, applied in order under one write lock with the batch's stamped time, and their replies
//! encoded after it is released; the machine's `applied` hook then runs once for the entry.
//!
//! **Snapshots never stall writes.** `build_snapshot` takes the machine's cheap
//! [`StateMachine::snapshot`] copy under a *read* lock (applies wait only for that copy), then
//! encodes it and writes its file on a blocking thread, fsynced apart from the log (see
//! `store::snapshot`). Only the small metadata record — which file, its CRC, the last log id
//! and membership — goes through sled and the group-commit flusher, after the file is durable.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
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
use serde::Deserialize;
use serde::Serialize;

use crate::flusher::Flusher;
use crate::store::io_err;
use crate::store::snapshot;
use crate::types::decode_io;
use crate::types::encode_io;
use crate::types::Batch;
use crate::types::BatchReply;
use crate::types::LogId;
use crate::types::ReplyBytes;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;
use crate::StateMachine;

/// Meta key of the current snapshot's record ([`StoredSnapshot`]).
const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// Where the current snapshot is and what it covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    /// File name (without `.snap`) under the group's snapshot directory.
    name: String,
    crc: u32,
}

/// What the application reads: the machine plus openraft's applied position.
pub(crate) struct SmState<S> {
    pub(crate) machine: S,
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
    /// Commands applied since the state the last snapshot copied. openraft's policy counts
    /// entries, and an entry is a batch of up to `BATCH_COMMANDS_MAX` commands, so the
    /// keeper also asks for a snapshot when this passes `SNAPSHOT_COMMANDS`: what a restart
    /// or a reloaded group replays stays bounded in commands, not only in entries.
    pub(crate) commands_since_snapshot: AtomicU64,
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
    meta: crate::store::Keyspace,
    flusher: Flusher,
    state: SharedState<S>,
    snapshot_root: Arc<PathBuf>,
}

impl<S> Clone for SmStore<S> {
    fn clone(&self) -> Self {
        SmStore {
            gid: self.gid.clone(),
            meta: self.meta.clone(),
            flusher: self.flusher.clone(),
            state: self.state.clone(),
            snapshot_root: self.snapshot_root.clone(),
        }
    }
}

/// A snapshot's file name: its last log index and term, unique per group.
fn snapshot_name(meta: &SnapshotMeta) -> String {
    match &meta.last_log_id {
        Some(l) => format!("{}-{}", l.index, l.leader_id.term),
        None => "empty".to_string(),
    }
}

impl<S: StateMachine> SmStore<S> {
    /// Wrap an empty `machine`; openraft restores it from the stored snapshot at start-up.
    pub(crate) fn new(
        gid: Arc<str>,
        meta: crate::store::Keyspace,
        flusher: Flusher,
        machine: S,
        snapshot_root: Arc<PathBuf>,
    ) -> SmStore<S> {
        let state = SmState {
            machine,
            last_applied: None,
            membership: StoredMembership::default(),
            commands_since_snapshot: AtomicU64::new(0),
        };
        SmStore { gid, meta, flusher, state: Arc::new(RwLock::new(state)), snapshot_root }
    }

    pub(crate) fn shared(&self) -> SharedState<S> {
        self.state.clone()
    }

    fn stored(&self) -> io::Result<Option<StoredSnapshot>> {
        match self.meta.get(KEY_SNAPSHOT).map_err(io_err)? {
            None => Ok(None),
            Some(bytes) => decode_io(&bytes, "snapshot record").map(Some),
        }
    }

    /// Write `data` as the snapshot described by `meta`: the file first (durable), then the
    /// record pointing at it (durable), then the older files go.
    async fn save_snapshot(&self, meta: &SnapshotMeta, data: Arc<Vec<u8>>) -> io::Result<()> {
        let name = snapshot_name(meta);
        let (root, gid, file) = (self.snapshot_root.clone(), self.gid.clone(), name.clone());
        let bytes = data.len();
        let crc = tokio::task::spawn_blocking(move || snapshot::write(&root, &gid, &file, &data))
            .await
            .map_err(|e| io::Error::other(format!("snapshot write task failed: {e}")))??;
        let record = StoredSnapshot { meta: meta.clone(), name: name.clone(), crc };
        self.meta.insert(KEY_SNAPSHOT, encode_io(&record)?).map_err(io_err)?;
        self.flusher.sync().await?;
        let (root, gid) = (self.snapshot_root.clone(), self.gid.clone());
        let removed = tokio::task::spawn_blocking(move || snapshot::remove_others(&root, &gid, &name)).await;
        if let Ok(Err(e)) | Err(e) = removed.map_err(io::Error::other) {
            tracing::warn!(group = %self.gid, error = %e, "could not remove older snapshot files");
        }
        tracing::debug!(group = %self.gid, last_log_index = meta.last_log_id.as_ref().map(|l| l.index), bytes, "snapshot saved");
        Ok(())
    }
}

impl<S: StateMachine> RaftSnapshotBuilder<TypeConfig> for SmStore<S> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (meta, view, copied) = {
            let st = read_state(&self.state);
            let meta = SnapshotMeta { last_log_id: st.last_applied, last_membership: st.membership.clone() };
            (meta, st.machine.snapshot(), st.commands_since_snapshot.load(Ordering::Relaxed))
        };
        let data = tokio::task::spawn_blocking(move || S::encode_snapshot(view))
            .await
            .map_err(|e| io::Error::other(format!("snapshot encode task failed: {e}")))?;
        let data = Arc::new(data);
        self.save_snapshot(&meta, data.clone()).await?;
        // Saturating: a snapshot installed meanwhile has reset the count.
        let _ = read_state(&self.state).commands_since_snapshot.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |n| Some(n.saturating_sub(copied)),
        );
        let data = Arc::try_unwrap(data).unwrap_or_else(|shared| (*shared).clone());
        Ok(Snapshot { meta, snapshot: data })
    }
}

/// Entries reach the state machine in log order, each once: the entry applied next comes after
/// the last applied (or a snapshot's last). A repeat or a step back would apply a command twice
/// or out of order, making this replica's state differ from the others' without any error, so
/// it stops the process instead. (Not "exactly the next index": openraft applies contiguously,
/// but its own storage suite applies 3 then 5, so the trait does not promise it.)
fn follows(gid: &str, last: Option<&LogId>, next: &LogId) {
    if let Some(last) = last {
        assert!(
            next.index > last.index,
            "group {gid}: entry {} applied after {}: the state machine would repeat or reorder entries",
            next.index,
            last.index
        );
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
                    let mut st = write_state(&self.state)?;
                    follows(&self.gid, st.last_applied.as_ref(), &log_id);
                    st.last_applied = Some(log_id);
                    BatchReply::default()
                }
                EntryPayload::Normal(bytes) => {
                    // An undecodable entry is a version mismatch between proposer and replica;
                    // skipping it would fork the replicas, so the group stops instead.
                    let batch: Batch = decode_io(&bytes.0, "batch")?;
                    let commands = batch
                        .commands
                        .iter()
                        .map(|c| decode_io::<S::Command>(&c.0, "command"))
                        .collect::<io::Result<Vec<_>>>()?;
                    let replies = {
                        let _span = tracing::debug_span!("apply", group = %self.gid, index = log_id.index, commands = commands.len())
                            .entered();
                        let mut st = write_state(&self.state)?;
                        follows(&self.gid, st.last_applied.as_ref(), &log_id);
                        st.commands_since_snapshot.fetch_add(commands.len() as u64, Ordering::Relaxed);
                        let replies: Vec<S::Reply> = commands
                            .into_iter()
                            .map(|c| st.machine.apply(c, batch.now_ms, log_id.index))
                            .collect();
                        st.machine.applied(log_id.index);
                        st.last_applied = Some(log_id);
                        replies
                    };
                    BatchReply(
                        replies.iter().map(|r| encode_io(r).map(ReplyBytes)).collect::<io::Result<_>>()?,
                    )
                }
                EntryPayload::Membership(membership) => {
                    let mut st = write_state(&self.state)?;
                    follows(&self.gid, st.last_applied.as_ref(), &log_id);
                    st.membership = StoredMembership::new(Some(log_id), membership);
                    st.last_applied = Some(log_id);
                    BatchReply::default()
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
            st.commands_since_snapshot.store(0, Ordering::Relaxed);
        }
        // At start-up openraft re-installs the stored snapshot: no need to write it again.
        if self.stored()?.map(|s| s.meta).as_ref() != Some(meta) {
            self.save_snapshot(meta, Arc::new(snapshot)).await?;
        }
        tracing::info!(group = %self.gid, last_log_index = meta.last_log_id.as_ref().map(|l| l.index), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let Some(stored) = self.stored()? else {
            return Ok(None);
        };
        let (root, gid) = (self.snapshot_root.clone(), self.gid.clone());
        let (name, crc) = (stored.name.clone(), stored.crc);
        let data = tokio::task::spawn_blocking(move || snapshot::read(&root, &gid, &name, crc))
            .await
            .map_err(|e| io::Error::other(format!("snapshot read task failed: {e}")))??;
        Ok(Some(Snapshot { meta: stored.meta, snapshot: data }))
    }
}
