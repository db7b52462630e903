//! The pure bookkeeping of LazyFS: what a power cut may throw away, with no FUSE and no
//! path in it, so that property tests can drive it against in-memory files and trees.
//!
//! - [`FileUndo`]: one file's **undo log** since its last `fsync`: its length then, and the
//!   old bytes of every range changed since (each old byte saved once). Restoring it brings
//!   the file back to its last durable contents; [`FileUndo::torn_piece`] picks the prefix
//!   of the last write that a torn crash keeps.
//! - [`Journal`]: the **directory operations** not yet durable (create, link, remove,
//!   rename), each waiting for an `fsync` of its parent directories, and the rules by
//!   which they become durable or are reverted (see [`Journal`]).
//! - [`Namespace`] and [`FileStore`]: the two ways the bookkeeping touches storage. The
//!   file system implements them over the backing directory; the tests over memory.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;

use rand::Rng;

/// An inode number of the mounted file system (the FUSE one, not the backing one).
pub type Ino = u64;

/// Where the bytes of one file live: a backing file, or a `Vec<u8>` in tests.
pub trait FileStore {
    /// Reads at `offset` into `buf`; fewer bytes than asked only at the end of the file.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Cuts or extends (with zeros) the file to `len`.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl FileStore for &std::fs::File {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match FileExt::read_at(*self, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(*self, data, offset)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }
}

impl FileStore for Vec<u8> {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = (offset as usize).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        let end = offset as usize + data.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[offset as usize..end].copy_from_slice(data);
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.resize(len as usize, 0);
        Ok(())
    }
}

/// A set of byte ranges `[start, end)`, kept sorted, disjoint and coalesced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start → end.
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// Adds `[start, end)`.
    pub fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // Merge with a range that starts before and reaches `start`.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.ranges.remove(&s);
            }
        }
        // Swallow every range that starts inside [start, end].
        let inside: Vec<(u64, u64)> = self.ranges.range(start..=end).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in inside {
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
    }

    /// The parts of `[start, end)` that the set does not cover, in order.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = start;
        if let Some((_, &e)) = self.ranges.range(..=start).next_back() {
            at = at.max(e);
        }
        for (&s, &e) in self.ranges.range(start..end) {
            if s > at {
                out.push((at, s));
            }
            at = at.max(e);
        }
        if at < end {
            out.push((at, end));
        }
        out
    }

    /// Number of bytes covered.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }
}

/// One file's changes since its last durable point (its last `fsync`, or the mount).
///
/// Invariant: every byte at a position below `durable_len` whose value may differ from
/// the durable one has its durable value saved. Callers keep it by calling
/// [`FileUndo::before_change`] before each change of bytes (write, hole punch, the part a
/// truncate cuts).
#[derive(Clone, Debug, Default)]
pub struct FileUndo {
    durable_len: u64,
    /// Old bytes, by start offset; their ranges are `saved_ranges`.
    saved: BTreeMap<u64, Vec<u8>>,
    saved_ranges: RangeSet,
    /// Every range written (or grown into) since the durable point: what a crash drops.
    written: RangeSet,
    /// `(offset, len)` of the last write since the durable point; writes that continue
    /// it exactly extend it (the kernel splits one `write()` into requests at page
    /// boundaries).
    last_write: Option<(u64, u64)>,
}

impl FileUndo {
    /// Starts a log for a file that is `durable_len` long now and durable as it is.
    pub fn new(durable_len: u64) -> Self {
        FileUndo { durable_len, ..Default::default() }
    }

    /// The length the file had at its last durable point.
    pub fn durable_len(&self) -> u64 {
        self.durable_len
    }

    /// Call before bytes `[start, end)` of the file change: saves their durable values
    /// (those not saved yet). Positions past the file's current end need nothing: a
    /// truncate cut them, and it saved them then.
    pub fn before_change(&mut self, store: &mut impl FileStore, start: u64, end: u64) -> io::Result<()> {
        let end = end.min(self.durable_len);
        if start >= end {
            return Ok(());
        }
        for (a, b) in self.saved_ranges.gaps(start, end) {
            let mut buf = vec![0u8; (b - a) as usize];
            let n = store.read_at(&mut buf, a)?;
            buf.truncate(n);
            if n > 0 {
                self.saved_ranges.insert(a, a + n as u64);
                self.saved.insert(a, buf);
            }
        }
        Ok(())
    }

    /// Records a write of `len` bytes at `offset` (after [`Self::before_change`]).
    pub fn note_write(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.written.insert(offset, offset + len);
        self.last_write = match self.last_write {
            Some((o, l)) if o + l == offset => Some((o, l + len)),
            _ => Some((offset, len)),
        };
    }

    /// Records a change of length from `old_len` to `new_len` (after
    /// [`Self::before_change`] over the part cut, if it shrank): growth counts as written.
    pub fn note_resize(&mut self, old_len: u64, new_len: u64) {
        if new_len > old_len {
            self.written.insert(old_len, new_len);
        }
    }

    /// Bytes written since the durable point (each position once).
    pub fn written_bytes(&self) -> u64 {
        self.written.total()
    }

    /// Puts the file back as it was at its durable point.
    pub fn restore(&self, store: &mut impl FileStore) -> io::Result<()> {
        store.set_len(self.durable_len)?;
        for (&offset, bytes) in &self.saved {
            store.write_at(bytes, offset)?;
        }
        Ok(())
    }

    /// For a torn crash: the prefix of the last write that survives, as `(offset, bytes)`
    /// read from the file now (before [`Self::restore`]). Its length is drawn from
    /// `1..len` (so the write is neither kept whole nor lost whole), or `0..=1` for a
    /// one-byte write. A last write that starts past the durable length keeps nothing:
    /// with the writes before it lost, it would sit after a hole of zeros, which a
    /// journaling file system (ext4 `data=ordered`) does not show after a crash.
    pub fn torn_piece(
        &self,
        store: &mut impl FileStore,
        rng: &mut impl Rng,
    ) -> io::Result<Option<(u64, Vec<u8>)>> {
        let Some((offset, len)) = self.last_write else { return Ok(None) };
        let keep = if len >= 2 { rng.random_range(1..len) } else { rng.random_range(0..=len) };
        if keep == 0 || offset > self.durable_len {
            return Ok(None);
        }
        let mut buf = vec![0u8; keep as usize];
        let n = store.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok(if n == 0 { None } else { Some((offset, buf)) })
    }
}

/// A place an inode can be found at: a directory entry, or a slot of the trash (where an
/// unlinked or replaced inode waits until its removal is durable).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    /// The entry `name` of directory `parent`.
    Entry(Ino, OsString),
    /// Trash slot number.
    Trash(u64),
}

impl Place {
    /// The entry `(parent, name)`.
    pub fn entry(parent: Ino, name: &OsStr) -> Place {
        Place::Entry(parent, name.to_os_string())
    }
}

/// One directory operation that is not durable yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirOp {
    /// A new inode at `at` (create, mknod, mkdir, symlink).
    Create { at: Place, ino: Ino, dir: bool },
    /// A new name `at` for an existing inode.
    Link { at: Place, ino: Ino },
    /// The entry `from` removed (unlink, rmdir); its inode went to trash `slot`.
    Remove { from: Place, ino: Ino, dir: bool, slot: u64 },
    /// `ino` (a directory if `dir`) moved from `from` to `to`; what `to` named before
    /// went to trash.
    Rename { from: Place, to: Place, ino: Ino, dir: bool, replaced: Option<Replaced> },
}

/// The inode a rename replaced, and the trash slot it is kept in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replaced {
    pub ino: Ino,
    pub dir: bool,
    pub slot: u64,
}

impl DirOp {
    fn entries(&self) -> Vec<&Place> {
        match self {
            DirOp::Create { at, .. } | DirOp::Link { at, .. } => vec![at],
            DirOp::Remove { from, .. } => vec![from],
            DirOp::Rename { from, to, .. } => vec![from, to],
        }
    }

    /// The directories whose `fsync` makes this op durable.
    fn parents(&self) -> Vec<Ino> {
        let mut out: Vec<Ino> = self
            .entries()
            .into_iter()
            .filter_map(|p| match p {
                Place::Entry(parent, _) => Some(*parent),
                Place::Trash(_) => None,
            })
            .collect();
        out.dedup();
        out
    }

    /// Inodes the op needs to exist: the parents and its subject.
    fn refs(&self) -> Vec<Ino> {
        let mut out = self.parents();
        out.push(match self {
            DirOp::Create { ino, .. }
            | DirOp::Link { ino, .. }
            | DirOp::Remove { ino, .. }
            | DirOp::Rename { ino, .. } => *ino,
        });
        out
    }

    fn created(&self) -> Option<Ino> {
        match self {
            DirOp::Create { ino, .. } => Some(*ino),
            _ => None,
        }
    }

    fn moves_dir(&self) -> bool {
        matches!(self, DirOp::Rename { dir: true, .. })
    }

    /// The directory this op removes for good once durable.
    fn removed_dir(&self) -> Option<Ino> {
        match self {
            DirOp::Remove { ino, dir: true, .. } => Some(*ino),
            DirOp::Rename { replaced: Some(Replaced { ino, dir: true, .. }), .. } => Some(*ino),
            _ => None,
        }
    }
}

/// The storage side of directory operations. Errors are taken as "that place is gone"
/// (e.g. its parent directory was removed for good): the journal then drops the inode.
pub trait Namespace {
    /// Moves inode `ino` from `from` to `to` (`to` is free).
    fn relocate(&mut self, ino: Ino, from: &Place, to: &Place) -> io::Result<()>;
    /// Removes the place `at` of `ino` for good (a directory with all it holds).
    fn remove(&mut self, ino: Ino, at: &Place) -> io::Result<()>;
}

#[derive(Clone, Debug)]
struct Pending {
    /// Position in the history of ops.
    seq: u64,
    op: DirOp,
    /// Parent directories not fsynced since the op.
    waiting: Vec<Ino>,
}

/// The directory operations not yet durable, in the order they happened.
///
/// An op becomes durable when every parent directory it names (both, for a rename) has
/// been fsynced after it — **and** no earlier op it depends on is still pending. It
/// depends on an earlier op that touched one of its entries (same parent and name) or
/// that created an inode it needs (its subject or a parent): a file created in a new
/// directory is not durable until the directory's own entry is, as on a real disk where
/// the file would be unreachable. The removal of a directory also depends on the earlier
/// ops that put something in or took something out of it, and renames of directories
/// become durable in the order they happened (so that no replay of the durable ops can
/// move a directory into its own subtree).
///
/// Once the removal of a directory waits for nothing more, ops that wait for that
/// directory's own `fsync` stop waiting: it cannot be fsynced any more, and what it held
/// goes with it (a disk may always keep more than it promised, never less).
///
/// A crash reverts the pending ops newest first. The property tests check that this
/// gives the same tree as replaying only the durable ops from the start.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    ops: Vec<Pending>,
    next_seq: u64,
}

impl Journal {
    /// Records an op that just happened.
    pub fn push(&mut self, op: DirOp) {
        let waiting = op.parents();
        self.next_seq += 1;
        self.ops.push(Pending { seq: self.next_seq, op, waiting });
    }

    /// Ops not durable yet.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether every op is durable.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Directory `dir` was fsynced: makes durable what now can be, empties the trash
    /// slots they free (through `ns`), and returns those ops in the order they happened.
    pub fn fsync_dir(&mut self, dir: Ino, ns: &mut impl Namespace) -> Vec<DirOp> {
        for p in &mut self.ops {
            p.waiting.retain(|&d| d != dir);
        }
        let mut durable = Vec::new();
        let mut removed: HashSet<Ino> = HashSet::new();
        loop {
            // A directory whose removal is durable, or waits for nothing more, will never
            // need an fsync: what it held is gone with it.
            let mut removable = removed.clone();
            removable
                .extend(self.ops.iter().filter(|p| p.waiting.is_empty()).filter_map(|p| p.op.removed_dir()));
            let mut changed = false;
            for p in &mut self.ops {
                let before = p.waiting.len();
                p.waiting.retain(|d| !removable.contains(d));
                changed |= p.waiting.len() != before;
            }
            let mut blocked_entries: HashSet<Place> = HashSet::new();
            let mut blocked_created: HashSet<Ino> = HashSet::new();
            let mut blocked_parents: HashSet<Ino> = HashSet::new();
            let mut blocked_dir_move = false;
            let mut kept = Vec::with_capacity(self.ops.len());
            for p in std::mem::take(&mut self.ops) {
                let blocked = p.op.entries().iter().any(|e| blocked_entries.contains(*e))
                    || p.op.refs().iter().any(|i| blocked_created.contains(i))
                    || p.op.removed_dir().is_some_and(|d| blocked_parents.contains(&d))
                    || (p.op.moves_dir() && blocked_dir_move);
                if p.waiting.is_empty() && !blocked {
                    commit(&p.op, ns);
                    removed.extend(p.op.removed_dir());
                    durable.push((p.seq, p.op));
                    changed = true;
                } else {
                    blocked_entries.extend(p.op.entries().into_iter().cloned());
                    blocked_created.extend(p.op.created());
                    blocked_parents.extend(p.op.parents());
                    blocked_dir_move |= p.op.moves_dir();
                    kept.push(p);
                }
            }
            self.ops = kept;
            if !changed {
                durable.sort_by_key(|(seq, _)| *seq);
                return durable.into_iter().map(|(_, op)| op).collect();
            }
        }
    }

    /// A power cut: reverts every pending op, newest first; returns how many.
    pub fn crash(&mut self, ns: &mut impl Namespace) -> u64 {
        let ops = std::mem::take(&mut self.ops);
        let n = ops.len() as u64;
        for p in ops.into_iter().rev() {
            revert(&p.op, ns);
        }
        n
    }

    /// A clean unmount: everything becomes durable (as `umount` syncs); empties the trash.
    pub fn commit_all(&mut self, ns: &mut impl Namespace) {
        for p in std::mem::take(&mut self.ops) {
            commit(&p.op, ns);
        }
    }
}

/// What a durable op leaves to do: the inode it unlinked or replaced is gone for good.
fn commit(op: &DirOp, ns: &mut impl Namespace) {
    match op {
        DirOp::Remove { ino, slot, .. } => {
            let _ = ns.remove(*ino, &Place::Trash(*slot));
        }
        DirOp::Rename { replaced: Some(r), .. } => {
            let _ = ns.remove(r.ino, &Place::Trash(r.slot));
        }
        DirOp::Create { .. } | DirOp::Link { .. } | DirOp::Rename { replaced: None, .. } => {}
    }
}

/// Undoes one op; where it cannot be put back (its old parent is gone for good), the
/// inode is dropped instead, as the disk would have lost it.
fn revert(op: &DirOp, ns: &mut impl Namespace) {
    match op {
        DirOp::Create { at, ino, .. } | DirOp::Link { at, ino } => {
            let _ = ns.remove(*ino, at);
        }
        DirOp::Remove { from, ino, slot, .. } => {
            let trash = Place::Trash(*slot);
            if ns.relocate(*ino, &trash, from).is_err() {
                let _ = ns.remove(*ino, &trash);
            }
        }
        DirOp::Rename { from, to, ino, replaced, .. } => {
            if ns.relocate(*ino, to, from).is_err() {
                let _ = ns.remove(*ino, to);
            }
            if let Some(r) = replaced {
                let trash = Place::Trash(r.slot);
                if ns.relocate(r.ino, &trash, to).is_err() {
                    let _ = ns.remove(r.ino, &trash);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use rand::SeedableRng;

    use super::*;

    // ---- files ----

    #[derive(Clone, Debug)]
    enum FileStep {
        Write { offset: u16, data: Vec<u8> },
        Truncate { len: u16 },
        Punch { offset: u16, len: u16 },
        Fsync,
    }

    fn file_step() -> impl Strategy<Value = FileStep> {
        prop_oneof![
            4 => (0u16..3000, proptest::collection::vec(any::<u8>(), 1..600))
                .prop_map(|(offset, data)| FileStep::Write { offset, data }),
            1 => (0u16..3000).prop_map(|len| FileStep::Truncate { len }),
            1 => (0u16..3000, 1u16..800).prop_map(|(offset, len)| FileStep::Punch { offset, len }),
            1 => Just(FileStep::Fsync),
        ]
    }

    /// Applies the steps to `file` through an undo log, as the file system does.
    fn run_file(file: &mut Vec<u8>, steps: &[FileStep]) -> (FileUndo, Vec<u8>) {
        let mut undo = FileUndo::new(file.len() as u64);
        let mut durable = file.clone();
        for step in steps {
            match step {
                FileStep::Write { offset, data } => {
                    let (offset, len) = (*offset as u64, data.len() as u64);
                    undo.before_change(file, offset, offset + len).unwrap();
                    file.write_at(data, offset).unwrap();
                    undo.note_write(offset, len);
                }
                FileStep::Truncate { len } => {
                    let (old, new) = (file.len() as u64, *len as u64);
                    undo.before_change(file, new, old).unwrap();
                    FileStore::set_len(file, new).unwrap();
                    undo.note_resize(old, new);
                }
                FileStep::Punch { offset, len } => {
                    let start = *offset as u64;
                    let end = (start + *len as u64).min(file.len() as u64);
                    if start < end {
                        undo.before_change(file, start, end).unwrap();
                        file.write_at(&vec![0; (end - start) as usize], start).unwrap();
                        undo.note_write(start, end - start);
                    }
                }
                FileStep::Fsync => {
                    undo = FileUndo::new(file.len() as u64);
                    durable = file.clone();
                }
            }
        }
        (undo, durable)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// After a crash a file holds exactly what it held at its last fsync.
        #[test]
        fn crash_restores_the_last_fsync(
            initial in proptest::collection::vec(any::<u8>(), 0..2000),
            steps in proptest::collection::vec(file_step(), 0..40),
        ) {
            let mut file = initial;
            let (undo, durable) = run_file(&mut file, &steps);
            undo.restore(&mut file).unwrap();
            prop_assert_eq!(file, durable);
        }

        /// A torn crash keeps the durable contents plus a strict prefix of the last write.
        #[test]
        fn torn_crash_keeps_a_prefix_of_the_last_write(
            initial in proptest::collection::vec(any::<u8>(), 0..2000),
            steps in proptest::collection::vec(file_step(), 0..40),
            seed in any::<u64>(),
        ) {
            let mut file = initial;
            let (undo, durable) = run_file(&mut file, &steps);
            let after_fsync = steps.iter().rposition(|s| matches!(s, FileStep::Fsync)).map_or(0, |i| i + 1);
            // The last write, with the writes that continued it exactly.
            let mut last: Option<(u64, u64)> = None;
            for s in &steps[after_fsync..] {
                let (o, l) = match s {
                    FileStep::Write { offset, data } => (*offset as u64, data.len() as u64),
                    FileStep::Punch { .. } | FileStep::Truncate { .. } | FileStep::Fsync => continue,
                };
                last = match last {
                    Some((lo, ll)) if lo + ll == o => Some((lo, ll + l)),
                    _ => Some((o, l)),
                };
            }
            let has_punch = steps[after_fsync..].iter().any(|s| matches!(s, FileStep::Punch { .. }));
            let current = file.clone();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let piece = undo.torn_piece(&mut file, &mut rng).unwrap();
            undo.restore(&mut file).unwrap();
            let mut expected = durable;
            if let Some((offset, bytes)) = &piece {
                prop_assert!(has_punch || last.is_some());
                prop_assert_eq!(&current[*offset as usize..*offset as usize + bytes.len()], &bytes[..]);
                expected.write_at(bytes, *offset).unwrap();
                file.write_at(bytes, *offset).unwrap();
                prop_assert!(*offset <= undo.durable_len());
                if let (false, Some((o, l))) = (has_punch, last) {
                    // A strict prefix of the last write.
                    prop_assert_eq!(*offset, o);
                    prop_assert!(l < 2 || (bytes.len() as u64) < l);
                }
            }
            prop_assert_eq!(file, expected);
        }

        /// `written_bytes` counts each position written since the durable point once.
        #[test]
        fn written_bytes_is_the_union_of_writes(
            writes in proptest::collection::vec((0u16..2000, 1u16..300), 0..30),
        ) {
            let mut undo = FileUndo::new(0);
            let mut covered = BTreeSet::new();
            for (offset, len) in writes {
                undo.note_write(offset as u64, len as u64);
                covered.extend(offset as u64..offset as u64 + len as u64);
            }
            prop_assert_eq!(undo.written_bytes(), covered.len() as u64);
        }
    }

    #[test]
    fn range_set_gaps() {
        let mut s = RangeSet::default();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(18, 31);
        assert_eq!(s.total(), 30);
        s.insert(50, 60);
        assert_eq!(s.gaps(0, 100), vec![(0, 10), (40, 50), (60, 100)]);
        assert_eq!(s.gaps(15, 55), vec![(40, 50)]);
        assert_eq!(s.gaps(12, 14), vec![]);
    }

    // ---- directories ----

    const ROOT: Ino = 1;

    /// An in-memory tree: entries by `(parent, name)`, trash slots, and which inodes are
    /// directories.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    struct MemTree {
        entries: BTreeMap<(Ino, OsString), Ino>,
        trash: BTreeMap<u64, Ino>,
        dirs: BTreeSet<Ino>,
    }

    impl MemTree {
        fn alive(&self, ino: Ino) -> bool {
            ino == ROOT
                || self.entries.iter().any(|((p, _), &i)| i == ino && self.alive(*p))
                || self.trash.values().any(|&i| i == ino)
        }

        fn children(&self, dir: Ino) -> Vec<(OsString, Ino)> {
            self.entries.iter().filter(|((p, _), _)| *p == dir).map(|((_, n), &i)| (n.clone(), i)).collect()
        }

        /// Every path reachable from the root, with its inode.
        fn visible(&self) -> BTreeMap<String, Ino> {
            let mut out = BTreeMap::new();
            let mut stack = vec![(String::new(), ROOT)];
            while let Some((path, dir)) = stack.pop() {
                for (name, ino) in self.children(dir) {
                    let p = format!("{path}/{}", name.to_string_lossy());
                    out.insert(p.clone(), ino);
                    if self.dirs.contains(&ino) {
                        stack.push((p, ino));
                    }
                }
            }
            out
        }

        fn take(&mut self, ino: Ino, at: &Place) -> io::Result<()> {
            let ok = match at {
                Place::Entry(p, n) => self.alive(*p) && self.entries.remove(&(*p, n.clone())) == Some(ino),
                Place::Trash(s) => self.trash.remove(s) == Some(ino),
            };
            if ok {
                Ok(())
            } else {
                Err(io::ErrorKind::NotFound.into())
            }
        }

        fn put(&mut self, ino: Ino, at: &Place) -> io::Result<()> {
            match at {
                Place::Entry(p, n) => {
                    if !self.alive(*p) || self.entries.contains_key(&(*p, n.clone())) {
                        return Err(io::ErrorKind::NotFound.into());
                    }
                    self.entries.insert((*p, n.clone()), ino);
                }
                Place::Trash(s) => {
                    self.trash.insert(*s, ino);
                }
            }
            Ok(())
        }

        /// Drops entries whose parent is no longer alive (what `rm -r` would remove).
        fn sweep(&mut self) {
            loop {
                let dead: Vec<_> = self.entries.keys().filter(|(p, _)| !self.alive(*p)).cloned().collect();
                if dead.is_empty() {
                    return;
                }
                for k in dead {
                    self.entries.remove(&k);
                }
            }
        }

        /// Applies an op forward (as the file system did).
        fn apply(&mut self, op: &DirOp) {
            match op {
                DirOp::Create { at, ino, dir } => {
                    if *dir {
                        self.dirs.insert(*ino);
                    }
                    self.put(*ino, at).unwrap();
                }
                DirOp::Link { at, ino } => self.put(*ino, at).unwrap(),
                DirOp::Remove { from, ino, slot, .. } => {
                    self.take(*ino, from).unwrap();
                    self.put(*ino, &Place::Trash(*slot)).unwrap();
                }
                DirOp::Rename { from, to, ino, replaced, .. } => {
                    if let Some(r) = replaced {
                        self.take(r.ino, to).unwrap();
                        self.put(r.ino, &Place::Trash(r.slot)).unwrap();
                    }
                    self.take(*ino, from).unwrap();
                    self.put(*ino, to).unwrap();
                }
            }
        }
    }

    impl Namespace for MemTree {
        fn relocate(&mut self, ino: Ino, from: &Place, to: &Place) -> io::Result<()> {
            if let Place::Entry(p, n) = to {
                if !self.alive(*p) || self.entries.contains_key(&(*p, n.clone())) {
                    return Err(io::ErrorKind::NotFound.into());
                }
            }
            self.take(ino, from)?;
            self.put(ino, to)
        }

        fn remove(&mut self, ino: Ino, at: &Place) -> io::Result<()> {
            self.take(ino, at)?;
            self.sweep();
            Ok(())
        }
    }

    /// One random step: choices are resolved against the tree when run.
    #[derive(Clone, Debug)]
    enum Step {
        Create { dir: u8, name: u8, mkdir: bool },
        Link { file: u8, dir: u8, name: u8 },
        Remove { entry: u8 },
        Rename { entry: u8, dir: u8, name: u8 },
        Fsync { dir: u8 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (any::<u8>(), 0u8..4, any::<bool>()).prop_map(|(dir, name, mkdir)| Step::Create { dir, name, mkdir }),
            1 => (any::<u8>(), any::<u8>(), 0u8..4).prop_map(|(file, dir, name)| Step::Link { file, dir, name }),
            2 => any::<u8>().prop_map(|entry| Step::Remove { entry }),
            3 => (any::<u8>(), any::<u8>(), 0u8..4).prop_map(|(entry, dir, name)| Step::Rename { entry, dir, name }),
            3 => any::<u8>().prop_map(|dir| Step::Fsync { dir }),
        ]
    }

    struct Run {
        tree: MemTree,
        journal: Journal,
        durable: Vec<DirOp>,
        next_ino: Ino,
        next_slot: u64,
    }

    impl Run {
        fn new(initial: &MemTree) -> Self {
            Run {
                tree: initial.clone(),
                journal: Journal::default(),
                durable: vec![],
                next_ino: 100,
                next_slot: 0,
            }
        }

        fn live_dirs(&self) -> Vec<Ino> {
            let mut v: Vec<Ino> =
                self.tree.visible().values().copied().filter(|i| self.tree.dirs.contains(i)).collect();
            v.push(ROOT);
            v.sort();
            v.dedup();
            v
        }

        fn is_ancestor(&self, a: Ino, mut b: Ino) -> bool {
            // Is `a` an ancestor of (or equal to) `b`?
            loop {
                if a == b {
                    return true;
                }
                match self.tree.entries.iter().find(|(_, &i)| i == b) {
                    Some(((p, _), _)) => b = *p,
                    None => return false,
                }
            }
        }

        fn step(&mut self, s: &Step) {
            let visible: Vec<(Ino, OsString, Ino)> = self
                .tree
                .entries
                .iter()
                .filter(|((p, _), _)| self.tree.alive(*p))
                .map(|((p, n), &i)| (*p, n.clone(), i))
                .collect();
            let dirs = self.live_dirs();
            let pick = |v: u8, len: usize| v as usize % len;
            let name = |n: u8| OsString::from(format!("n{n}"));
            let op = match s {
                Step::Create { dir, name: n, mkdir } => {
                    let parent = dirs[pick(*dir, dirs.len())];
                    if self.tree.entries.contains_key(&(parent, name(*n))) {
                        return;
                    }
                    self.next_ino += 1;
                    DirOp::Create { at: Place::Entry(parent, name(*n)), ino: self.next_ino, dir: *mkdir }
                }
                Step::Link { file, dir, name: n } => {
                    let files: Vec<_> =
                        visible.iter().filter(|(_, _, i)| !self.tree.dirs.contains(i)).collect();
                    if files.is_empty() {
                        return;
                    }
                    let ino = files[pick(*file, files.len())].2;
                    let parent = dirs[pick(*dir, dirs.len())];
                    if self.tree.entries.contains_key(&(parent, name(*n))) {
                        return;
                    }
                    DirOp::Link { at: Place::Entry(parent, name(*n)), ino }
                }
                Step::Remove { entry } => {
                    if visible.is_empty() {
                        return;
                    }
                    let (p, n, ino) = visible[pick(*entry, visible.len())].clone();
                    let dir = self.tree.dirs.contains(&ino);
                    if dir && !self.tree.children(ino).is_empty() {
                        return;
                    }
                    self.next_slot += 1;
                    DirOp::Remove { from: Place::Entry(p, n), ino, dir, slot: self.next_slot }
                }
                Step::Rename { entry, dir, name: n } => {
                    if visible.is_empty() {
                        return;
                    }
                    let (p, old, ino) = visible[pick(*entry, visible.len())].clone();
                    let np = dirs[pick(*dir, dirs.len())];
                    let is_dir = self.tree.dirs.contains(&ino);
                    if is_dir && self.is_ancestor(ino, np) {
                        return;
                    }
                    let replaced = match self.tree.entries.get(&(np, name(*n))) {
                        None => None,
                        Some(&r) if r == ino => return,
                        Some(&r) => {
                            let r_dir = self.tree.dirs.contains(&r);
                            if r_dir != is_dir || (r_dir && !self.tree.children(r).is_empty()) {
                                return;
                            }
                            self.next_slot += 1;
                            Some(Replaced { ino: r, dir: r_dir, slot: self.next_slot })
                        }
                    };
                    DirOp::Rename {
                        from: Place::Entry(p, old),
                        to: Place::Entry(np, name(*n)),
                        ino,
                        dir: is_dir,
                        replaced,
                    }
                }
                Step::Fsync { dir } => {
                    let d = dirs[pick(*dir, dirs.len())];
                    let done = self.journal.fsync_dir(d, &mut self.tree);
                    self.durable.extend(done);
                    return;
                }
            };
            self.tree.apply(&op);
            self.journal.push(op);
        }
    }

    fn initial_tree() -> MemTree {
        let mut t = MemTree::default();
        t.dirs.insert(2);
        t.entries.insert((ROOT, "d".into()), 2);
        t.entries.insert((ROOT, "f".into()), 3);
        t.entries.insert((2, "g".into()), 4);
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// A crash leaves exactly the tree that replaying only the durable ops (in their
        /// order) from the start gives, and an empty trash.
        #[test]
        fn crash_equals_replay_of_durable_ops(steps in proptest::collection::vec(step(), 0..40)) {
            let initial = initial_tree();
            let mut run = Run::new(&initial);
            for s in &steps {
                run.step(s);
            }
            run.journal.crash(&mut run.tree);
            run.tree.sweep();
            let mut replay = initial.clone();
            for op in &run.durable {
                replay.apply(op);
                if let DirOp::Remove { ino, slot, .. } = op {
                    replay.remove(*ino, &Place::Trash(*slot)).unwrap();
                }
                if let DirOp::Rename { replaced: Some(r), .. } = op {
                    replay.remove(r.ino, &Place::Trash(r.slot)).unwrap();
                }
            }
            replay.sweep();
            prop_assert_eq!(run.tree.visible(), replay.visible());
            prop_assert!(run.tree.trash.is_empty(), "trash left: {:?}", run.tree.trash);
        }

        /// With no directory fsync at all, a crash gives back the initial tree.
        #[test]
        fn no_fsync_crash_gives_initial(steps in proptest::collection::vec(step(), 0..40)) {
            let initial = initial_tree();
            let mut run = Run::new(&initial);
            for s in steps.iter().filter(|s| !matches!(s, Step::Fsync { .. })) {
                run.step(s);
            }
            run.journal.crash(&mut run.tree);
            prop_assert_eq!(run.tree.visible(), initial.visible());
            prop_assert!(run.tree.trash.is_empty());
        }

        /// Fsyncing every live directory (in any order, twice over) makes everything durable:
        /// the crash then changes nothing.
        #[test]
        fn fsync_everything_then_crash_changes_nothing(
            steps in proptest::collection::vec(step(), 0..40),
            order in any::<u64>(),
        ) {
            let mut run = Run::new(&initial_tree());
            for s in &steps {
                run.step(s);
            }
            let mut dirs = run.live_dirs();
            let n = dirs.len();
            dirs.rotate_left((order as usize) % n);
            for _ in 0..2 {
                for &d in &dirs {
                    let done = run.journal.fsync_dir(d, &mut run.tree);
                    run.durable.extend(done);
                }
            }
            let before = run.tree.visible();
            prop_assert!(run.journal.is_empty(), "still pending: {:?}", run.journal.ops);
            run.journal.crash(&mut run.tree);
            prop_assert_eq!(run.tree.visible(), before);
        }
    }

    #[test]
    fn file_in_new_dir_waits_for_the_dir_entry() {
        let mut tree = initial_tree();
        let mut j = Journal::default();
        let mkdir = DirOp::Create { at: Place::entry(ROOT, OsStr::new("x")), ino: 10, dir: true };
        let create = DirOp::Create { at: Place::entry(10, OsStr::new("f")), ino: 11, dir: false };
        tree.dirs.insert(10);
        tree.apply(&mkdir);
        j.push(mkdir.clone());
        tree.apply(&create);
        j.push(create.clone());
        assert!(j.fsync_dir(10, &mut tree).is_empty(), "x/f is not durable while x is not");
        assert_eq!(j.fsync_dir(ROOT, &mut tree), vec![mkdir, create]);
    }

    #[test]
    fn rename_waits_for_both_parents() {
        let mut tree = initial_tree();
        let mut j = Journal::default();
        let op = DirOp::Rename {
            from: Place::entry(ROOT, OsStr::new("f")),
            to: Place::entry(2, OsStr::new("f2")),
            ino: 3,
            dir: false,
            replaced: None,
        };
        tree.apply(&op);
        j.push(op.clone());
        assert!(j.fsync_dir(2, &mut tree).is_empty());
        assert_eq!(j.fsync_dir(ROOT, &mut tree), vec![op]);
    }
}
