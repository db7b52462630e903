//! openraft's `RaftLogStorage` + `RaftLogReader` for one group, on its `{gid}:log` and
//! `raft.meta` trees (the group's keyspaces).
//!
//! Durability rules (openraft's storage contract, and how they are met):
//! - `append`: entries are written to sled (readable at once) and the completion callback is
//!   queued on the host's [`Flusher`]; it fires only after a `db.flush()` that covers them.
//! - `save_vote`: written, then awaits a flush before returning.
//! - `truncate_after`: one atomic sled batch removing the tail, then awaits a flush.
//! - `purge`: writes `last_purged`, awaits a flush, and only then removes the entries, so a
//!   crash can never leave entries missing without `last_purged` saying so.
//! - `save_committed`: written without a flush. A lost `committed` only means re-applying less on
//!   restart; openraft learns the rest from the leader.
//!
//! Writes reach sled in call order, and flush waiters complete in queue order, so vote and log
//! IO stay serialized as openraft requires.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;

use crate::flusher::Flusher;
use crate::flusher::Waiter;
use crate::store::index_key;
use crate::store::io_err;
use crate::store::key_index;
use crate::store::GroupTrees;
use crate::store::KEY_COMMITTED;
use crate::store::KEY_LAST_PURGED;
use crate::store::KEY_VOTE;
use crate::types::decode_io;
use crate::types::encode_io;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;

/// The log store of one group. Clones share the same trees (it is also its own reader).
#[derive(Clone)]
pub(crate) struct LogStore {
    gid: Arc<str>,
    trees: GroupTrees,
    flusher: Flusher,
}

impl LogStore {
    /// A write to sled failed (a full disk): the node's storage is no longer trusted (see
    /// `Flusher::fail`); the error goes on to openraft, which stops the group.
    fn failed(&self, e: sled::Error) -> io::Error {
        let e = io_err(e);
        self.flusher.fail(&format!("sled write: {e}"));
        e
    }

    pub(crate) fn new(gid: Arc<str>, trees: GroupTrees, flusher: Flusher) -> LogStore {
        LogStore { gid, trees, flusher }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8], what: &str) -> io::Result<Option<T>> {
        match self.trees.meta.get(key).map_err(io_err)? {
            None => Ok(None),
            Some(bytes) => decode_io(&bytes, what).map(Some),
        }
    }

    fn last_purged(&self) -> io::Result<Option<LogId>> {
        self.read_meta(KEY_LAST_PURGED, "last_purged")
    }
}

/// Turn a `u64` range bound into a log key bound.
fn key_bound(bound: Bound<&u64>) -> Bound<[u8; 8]> {
    match bound {
        Bound::Included(i) => Bound::Included(index_key(*i)),
        Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let bounds = (key_bound(range.start_bound()), key_bound(range.end_bound()));
        let mut entries: Vec<Entry> = Vec::new();
        let (start, end) = bounds;
        let as_slice = |b: &Bound<[u8; 8]>| match b {
            Bound::Included(k) => Bound::Included(k.to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let (start, end) = (as_slice(&start), as_slice(&end));
        for item in
            self.trees.log.range(start.as_ref().map(|k| k.as_slice()), end.as_ref().map(|k| k.as_slice()))
        {
            let (key, value) = item.map_err(io_err)?;
            let index = key_index(&key)?;
            let entry: Entry = decode_io(&value, "log entry")?;
            if entry.log_id.index != index {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("group {}: entry {} stored under key {index}", self.gid, entry.log_id.index),
                ));
            }
            if let Some(prev) = entries.last() {
                if prev.log_id.index + 1 != index {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("group {}: hole in log between {} and {index}", self.gid, prev.log_id.index),
                    ));
                }
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(KEY_VOTE, "vote")
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id = self.last_purged()?;
        let last_log_id = match self.trees.log.last().map_err(io_err)? {
            None => last_purged_log_id,
            Some((_, value)) => {
                let entry: Entry = decode_io(&value, "log entry")?;
                Some(entry.log_id)
            }
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.trees.meta.insert(KEY_VOTE, encode_io(vote)?).map_err(|e| self.failed(e))?;
        self.flusher.sync().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        match committed {
            Some(log_id) => {
                self.trees.meta.insert(KEY_COMMITTED, encode_io(&log_id)?).map_err(|e| self.failed(e))?
            }
            None => self.trees.meta.remove(KEY_COMMITTED).map_err(|e| self.failed(e))?,
        };
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        self.read_meta(KEY_COMMITTED, "committed")
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.trees.log.batch();
        let mut count = 0usize;
        for entry in entries {
            batch.insert(&index_key(entry.log_id.index), encode_io(&entry)?);
            count += 1;
        }
        self.trees.log.apply_batch(batch).map_err(|e| self.failed(e))?;
        tracing::trace!(group = %self.gid, entries = count, "appended, waiting for flush");
        self.flusher.enqueue(Waiter::Io(callback));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = match &last_log_id {
            Some(log_id) => log_id.index + 1,
            None => 0,
        };
        let mut batch = self.trees.log.batch();
        let mut count = 0usize;
        for item in self.trees.log.range(Bound::Included(&index_key(from)[..]), Bound::Unbounded) {
            batch.remove(&item.map_err(io_err)?.0);
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        self.trees.log.apply_batch(batch).map_err(|e| self.failed(e))?;
        tracing::debug!(group = %self.gid, from, entries = count, "truncated log tail");
        self.flusher.sync().await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let advanced = match self.last_purged()? {
            Some(prev) => prev < log_id,
            None => true,
        };
        if advanced {
            self.trees.meta.insert(KEY_LAST_PURGED, encode_io(&log_id)?).map_err(|e| self.failed(e))?;
            // `last_purged` must be durable before any entry disappears.
            self.flusher.sync().await?;
        }
        // Removal runs even when `last_purged` did not move: a crash may have cut a previous
        // purge between its flush and its removal.
        let mut batch = self.trees.log.batch();
        let mut count = 0usize;
        for item in self.trees.log.range(Bound::Unbounded, Bound::Included(&index_key(log_id.index)[..])) {
            batch.remove(&item.map_err(io_err)?.0);
            count += 1;
        }
        self.trees.log.apply_batch(batch).map_err(|e| self.failed(e))?;
        tracing::debug!(group = %self.gid, upto = log_id.index, entries = count, "purged log head");
        Ok(())
    }
}
