//! Storage of the groups in the node's sled database: openraft's storage-v2 traits as thin
//! adapters over three sled trees shared by every group.
//!
//! Layout (`gid` never contains a NUL byte, so `{gid}\0` prefixes are unambiguous):
//!
//! | tree          | key                           | value (bincode)                         |
//! |---------------|-------------------------------|-----------------------------------------|
//! | `raft.groups` | `{gid}`                       | storage format version (marks the group as stored) |
//! | `raft.log`    | `{gid}\0` + log index, `u64` big-endian | `Entry`                      |
//! | `raft.meta`   | `{gid}\0vote`                 | `Vote` (flushed before `save_vote` returns) |
//! | `raft.meta`   | `{gid}\0committed`            | `LogId` (re-applied up to on restart)   |
//! | `raft.meta`   | `{gid}\0last_purged`          | `LogId` (written before entries are removed) |
//! | `raft.meta`   | `{gid}\0snapshot`             | which snapshot file is current, its CRC, its `SnapshotMeta` |
//! | `raft.meta`   | `{gid}\0clean`                | the committed id written at a clean close (eviction); removed, durably, when the group runs again |
//! | `raft.meta`   | `{gid}\0members`              | `(voters, learners)` at the last clean close, for a dormant group's status |
//!
//! Snapshot data lives in files (`snapshot`), not in sled.
//!
//! Why shared trees, not two trees per group: sled keeps the names of all its trees in one
//! record that it clones and rewrites whenever a tree is created, so creating the n-th group
//! cost O(n) (perf, 3,000 events: `sled::meta::open_tree` → `BTreeMap::clone` was the top
//! user-space cost, and event creation slowed from 65/s at 2,000 events to 20/s at 10,000).
//!
//! Big-endian index keys make sled's byte order the log order, so ranges and `last()` are log
//! ranges.

use std::ops::Bound;
use std::sync::Arc;

use sled::IVec;

pub(crate) mod log;
pub(crate) mod snapshot;
pub(crate) mod state;

#[cfg(test)]
mod conformance;

/// Meta key of the last saved vote.
pub(crate) const KEY_VOTE: &[u8] = b"vote";
/// Meta key of the last saved committed log id.
pub(crate) const KEY_COMMITTED: &[u8] = b"committed";
/// Meta key of the last purged log id.
pub(crate) const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// Meta key of the clean-close marker (see `host`).
pub(crate) const KEY_CLEAN: &[u8] = b"clean";
/// Meta key of what a dormant group's members were (voters, learners), written at a clean
/// close so operators see it without loading the group.
pub(crate) const KEY_MEMBERS: &[u8] = b"members";
/// Storage format version written in [`GROUPS_TREE`]. 2: entries are batches, snapshots are
/// files. 3: groups share three trees. 4: the machines' records changed (events and
/// inventories gained the end of sales); they are bincode, which is not self-describing, so
/// records written before do not decode and such a data directory is refused. 5: events,
/// inventories and bookings gained the refund window and refund state (cancel and refund),
/// and the waiting queue keeps when each admission started and the durations of the last
/// ones that ended (for the wait estimate). 6: events and inventories gained the waiting
/// list (its entries, the offer time), inventories the webhook outbox, the catalog its
/// webhook endpoints.
pub(crate) const FORMAT_VERSION: u8 = 6;

/// The tree of every group's log entries.
pub(crate) const LOG_TREE: &str = "raft.log";
/// The tree of every group's meta records.
pub(crate) const META_TREE: &str = "raft.meta";
/// The tree of the groups stored here (gid → format version).
pub(crate) const GROUPS_TREE: &str = "raft.groups";
/// Suffix of the per-group meta trees of storage formats 1 and 2 (a data dir written by an
/// older boxoffice, which this one refuses rather than ignores).
pub(crate) const OLD_META_TREE_SUFFIX: &str = ":meta";

/// One group's slice of a shared tree: every key is prefixed with `{gid}\0`.
#[derive(Clone)]
pub(crate) struct Keyspace {
    tree: sled::Tree,
    prefix: Arc<[u8]>,
}

impl Keyspace {
    pub(crate) fn new(tree: sled::Tree, gid: &str) -> Keyspace {
        let mut prefix = gid.as_bytes().to_vec();
        prefix.push(0);
        Keyspace { tree, prefix: prefix.into() }
    }

    fn key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + suffix.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(suffix);
        key
    }

    /// The first key after every key of this keyspace (`{gid}\x01`).
    fn end(&self) -> Vec<u8> {
        let mut end = self.prefix.to_vec();
        *end.last_mut().expect("the prefix ends with NUL") = 1;
        end
    }

    pub(crate) fn get(&self, suffix: &[u8]) -> sled::Result<Option<IVec>> {
        self.tree.get(self.key(suffix))
    }

    pub(crate) fn insert(&self, suffix: &[u8], value: impl Into<IVec>) -> sled::Result<Option<IVec>> {
        self.tree.insert(self.key(suffix), value)
    }

    pub(crate) fn remove(&self, suffix: &[u8]) -> sled::Result<Option<IVec>> {
        self.tree.remove(self.key(suffix))
    }

    /// The records whose key suffix is within the bounds, as `(suffix, value)`, in order.
    pub(crate) fn range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = sled::Result<(Vec<u8>, IVec)>> + use<> {
        let start = match start {
            Bound::Included(s) => Bound::Included(self.key(s)),
            Bound::Excluded(s) => Bound::Excluded(self.key(s)),
            Bound::Unbounded => Bound::Included(self.prefix.to_vec()),
        };
        let end = match end {
            Bound::Included(s) => Bound::Included(self.key(s)),
            Bound::Excluded(s) => Bound::Excluded(self.key(s)),
            Bound::Unbounded => Bound::Excluded(self.end()),
        };
        let skip = self.prefix.len();
        self.tree.range::<Vec<u8>, _>((start, end)).map(move |r| r.map(|(k, v)| (k[skip..].to_vec(), v)))
    }

    /// The record with the greatest key, as `(suffix, value)`.
    pub(crate) fn last(&self) -> sled::Result<Option<(Vec<u8>, IVec)>> {
        self.range(Bound::Unbounded, Bound::Unbounded).next_back().transpose()
    }

    /// A batch of writes to this keyspace, applied atomically by [`Keyspace::apply_batch`].
    pub(crate) fn batch(&self) -> KeyBatch {
        KeyBatch { inner: sled::Batch::default(), prefix: self.prefix.clone() }
    }

    pub(crate) fn apply_batch(&self, batch: KeyBatch) -> sled::Result<()> {
        debug_assert_eq!(batch.prefix, self.prefix, "a batch applied to another group's keyspace");
        self.tree.apply_batch(batch.inner)
    }

    /// Remove every record of this keyspace.
    pub(crate) fn clear(&self) -> sled::Result<usize> {
        let mut batch = self.batch();
        let mut count = 0;
        for item in self.range(Bound::Unbounded, Bound::Unbounded) {
            batch.remove(&item?.0);
            count += 1;
        }
        self.apply_batch(batch)?;
        Ok(count)
    }
}

/// Writes to one [`Keyspace`], keys given without the prefix.
pub(crate) struct KeyBatch {
    inner: sled::Batch,
    prefix: Arc<[u8]>,
}

impl KeyBatch {
    fn key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut key = self.prefix.to_vec();
        key.extend_from_slice(suffix);
        key
    }

    pub(crate) fn insert(&mut self, suffix: &[u8], value: impl Into<IVec>) {
        let key = self.key(suffix);
        self.inner.insert(key, value);
    }

    pub(crate) fn remove(&mut self, suffix: &[u8]) {
        let key = self.key(suffix);
        self.inner.remove(key);
    }
}

/// The storage of one group: its slices of the shared log and meta trees.
#[derive(Clone)]
pub(crate) struct GroupTrees {
    pub(crate) log: Keyspace,
    pub(crate) meta: Keyspace,
}

impl GroupTrees {
    /// The storage of `gid`, marking the group as stored (checking its format if it was).
    pub(crate) fn open(db: &sled::Db, gid: &str) -> sled::Result<GroupTrees> {
        let groups = db.open_tree(GROUPS_TREE)?;
        match groups.get(gid.as_bytes())? {
            None => {
                groups.insert(gid.as_bytes(), &[FORMAT_VERSION])?;
            }
            Some(v) => {
                if v.as_ref() != [FORMAT_VERSION] {
                    return Err(sled::Error::Unsupported(format!(
                        "group {gid}: storage format {:?}, expected {FORMAT_VERSION}",
                        v.as_ref()
                    )));
                }
            }
        }
        GroupTrees::view(db, gid)
    }

    /// The storage of `gid` without marking it as stored (to read a dormant group).
    pub(crate) fn view(db: &sled::Db, gid: &str) -> sled::Result<GroupTrees> {
        Ok(GroupTrees {
            log: Keyspace::new(db.open_tree(LOG_TREE)?, gid),
            meta: Keyspace::new(db.open_tree(META_TREE)?, gid),
        })
    }

    /// Delete everything `gid` stored (its log, meta records and its mark).
    pub(crate) fn delete(db: &sled::Db, gid: &str) -> sled::Result<()> {
        let trees = GroupTrees::view(db, gid)?;
        trees.log.clear()?;
        trees.meta.clear()?;
        db.open_tree(GROUPS_TREE)?.remove(gid.as_bytes())?;
        Ok(())
    }

    /// Ids of the groups stored in `db`, sorted. Refuses a db of an older storage format.
    pub(crate) fn stored(db: &sled::Db) -> sled::Result<Vec<String>> {
        if let Some(old) = db.tree_names().iter().find(|n| n.ends_with(OLD_META_TREE_SUFFIX.as_bytes())) {
            return Err(sled::Error::Unsupported(format!(
                "this data directory was written by an older boxoffice (a sled tree per group, e.g. {:?}); \
                 this version stores groups in shared trees (format {FORMAT_VERSION}): start it on an empty data directory",
                String::from_utf8_lossy(old)
            )));
        }
        let groups = db.open_tree(GROUPS_TREE)?;
        let mut ids = Vec::new();
        for key in groups.iter().keys() {
            ids.push(String::from_utf8_lossy(&key?).into_owned());
        }
        Ok(ids)
    }
}

/// Log key of `index`: big-endian so that byte order is index order.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Inverse of [`index_key`].
pub(crate) fn key_index(key: &[u8]) -> std::io::Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("log key of {} bytes", key.len()))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Map a sled error to the `io::Error` openraft's storage traits use.
pub(crate) fn io_err(e: sled::Error) -> std::io::Error {
    match e {
        sled::Error::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspaces_of_groups_do_not_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let a = GroupTrees::open(&db, "a").unwrap();
        let ab = GroupTrees::open(&db, "ab").unwrap();
        for i in [1u64, 2, 3] {
            a.log.insert(&index_key(i), vec![1]).unwrap();
            ab.log.insert(&index_key(i + 10), vec![2]).unwrap();
        }
        a.meta.insert(b"vote", vec![7]).unwrap();
        let keys = |k: &Keyspace, s: Bound<&[u8]>, e: Bound<&[u8]>| -> Vec<u64> {
            k.range(s, e).map(|r| key_index(&r.unwrap().0).unwrap()).collect()
        };
        assert_eq!(keys(&a.log, Bound::Unbounded, Bound::Unbounded), vec![1, 2, 3]);
        assert_eq!(keys(&ab.log, Bound::Unbounded, Bound::Unbounded), vec![11, 12, 13]);
        assert_eq!(keys(&a.log, Bound::Included(&index_key(2)[..]), Bound::Unbounded), vec![2, 3]);
        assert_eq!(keys(&a.log, Bound::Unbounded, Bound::Excluded(&index_key(3)[..])), vec![1, 2]);
        assert_eq!(key_index(&a.log.last().unwrap().unwrap().0).unwrap(), 3);
        assert!(ab.meta.get(b"vote").unwrap().is_none());
        let mut batch = a.log.batch();
        batch.remove(&index_key(1));
        a.log.apply_batch(batch).unwrap();
        assert_eq!(keys(&a.log, Bound::Unbounded, Bound::Unbounded), vec![2, 3]);
        assert_eq!(GroupTrees::stored(&db).unwrap(), vec!["a".to_string(), "ab".to_string()]);
        GroupTrees::delete(&db, "a").unwrap();
        assert!(a.log.last().unwrap().is_none() && a.meta.get(b"vote").unwrap().is_none());
        assert_eq!(keys(&ab.log, Bound::Unbounded, Bound::Unbounded), vec![11, 12, 13]);
        assert_eq!(GroupTrees::stored(&db).unwrap(), vec!["ab".to_string()]);
    }

    #[test]
    fn a_data_dir_of_the_tree_per_group_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("evt_1:meta").unwrap();
        let err = GroupTrees::stored(&db).unwrap_err().to_string();
        assert!(err.contains("older boxoffice"), "{err}");
    }
}
