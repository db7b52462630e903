//! Storage of one group in the node's sled database: openraft's storage-v2 traits as thin
//! adapters over two sled trees.
//!
//! Layout for group `gid`:
//!
//! | tree          | key                         | value (bincode)                         |
//! |---------------|-----------------------------|-----------------------------------------|
//! | `{gid}:log`   | log index, `u64` big-endian | `Entry`                                 |
//! | `{gid}:meta`  | `vote`                      | `Vote` (flushed before `save_vote` returns) |
//! | `{gid}:meta`  | `committed`                 | `LogId` (re-applied up to on restart)   |
//! | `{gid}:meta`  | `last_purged`               | `LogId` (written before entries are removed) |
//! | `{gid}:meta`  | `snapshot`                  | which snapshot file is current, its CRC, its `SnapshotMeta` |
//! | `{gid}:meta`  | `clean`                     | the committed id written at a clean close (eviction); removed, durably, when the group runs again |
//! | `{gid}:meta`  | `members`                   | `(voters, learners)` at the last clean close, for a dormant group's status |
//! | `{gid}:meta`  | `format`                    | storage format version (marks the group as stored) |
//!
//! Snapshot data lives in files (`snapshot`), not in sled.
//!
//! Big-endian keys make sled's byte order the log order, so ranges and `last()` are log ranges.

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
/// Meta key written when a group's storage is created; marks the group as stored.
pub(crate) const KEY_FORMAT: &[u8] = b"format";
/// Meta key of the clean-close marker (see `host`).
pub(crate) const KEY_CLEAN: &[u8] = b"clean";
/// Meta key of what a dormant group's members were (voters, learners), written at a clean
/// close so operators see it without loading the group.
pub(crate) const KEY_MEMBERS: &[u8] = b"members";
/// Storage format version written under [`KEY_FORMAT`]. 2: entries are batches, snapshots are
/// files.
pub(crate) const FORMAT_VERSION: u8 = 2;

/// Suffix of a group's log tree name.
const LOG_TREE_SUFFIX: &str = ":log";
/// Suffix of a group's meta tree name.
pub(crate) const META_TREE_SUFFIX: &str = ":meta";

/// Name of the log tree of group `gid`.
pub(crate) fn log_tree_name(gid: &str) -> String {
    format!("{gid}{LOG_TREE_SUFFIX}")
}

/// Name of the meta tree of group `gid`.
pub(crate) fn meta_tree_name(gid: &str) -> String {
    format!("{gid}{META_TREE_SUFFIX}")
}

/// The two trees of one group.
#[derive(Clone)]
pub(crate) struct GroupTrees {
    pub(crate) log: sled::Tree,
    pub(crate) meta: sled::Tree,
}

impl GroupTrees {
    /// Open (creating if needed) the trees of `gid` and mark the group as stored.
    pub(crate) fn open(db: &sled::Db, gid: &str) -> sled::Result<GroupTrees> {
        let log = db.open_tree(log_tree_name(gid))?;
        let meta = db.open_tree(meta_tree_name(gid))?;
        match meta.get(KEY_FORMAT)? {
            None => {
                meta.insert(KEY_FORMAT, &[FORMAT_VERSION])?;
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
        Ok(GroupTrees { log, meta })
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
