//! The FUSE side of LazyFS: a pass-through of the backing directory (a fuser
//! [`Filesystem`]) that feeds every change into the bookkeeping of [`super::model`], and the
//! crash that rolls the backing directory back to its durable state.
//!
//! It owns the **inode table** (FUSE inode → the places it is found at: entries
//! `(parent inode, name)` or trash slots, so a directory rename moves its whole subtree
//! and an unlinked file stays reachable for its open handles), the open handles (each
//! keeps its backing `File`), the per-file undo logs and the directory journal. One mutex
//! guards all of it; the FUSE session runs one thread.
//!
//! Kernel caching is kept out of the way: entry and attribute TTLs are 0, no
//! `FOPEN_KEEP_CACHE` (each open drops the page cache), no writeback cache (every write
//! reaches this code as it happens), no `direct_io` (mmap reads work). After a crash the
//! reverted inodes and entries are also invalidated through the FUSE notifier.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use rand::SeedableRng;

use super::model::{DirOp, FileUndo, Ino, Journal, Namespace, Place, Replaced};
use super::CrashReport;

/// The name of the trash directory at the root of the backing directory, hidden from the
/// mount.
pub(crate) const TRASH: &str = ".lazyfs-trash";

const TTL: Duration = Duration::ZERO;
const ROOT: Ino = 1;

/// What the mount and its [`super::LazyFs`] handle share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// While set, writes and creations answer `ENOSPC`.
    pub(crate) full: AtomicBool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fuser [`Filesystem`].
pub(crate) struct LazyFsImpl {
    pub(crate) shared: Arc<Shared>,
}

struct Node {
    /// Where the inode is: entries first, trash slots while an unlink is not durable.
    /// Empty once it is gone from the backing directory.
    names: Vec<Place>,
    /// Backing `(st_dev, st_ino)`.
    key: (u64, u64),
    /// Lookups the kernel holds.
    nlookup: u64,
    /// Open handles.
    open: u32,
}

struct Handle {
    ino: Ino,
    file: Arc<File>,
    /// Opened with `O_SYNC` or `O_DSYNC`: every write is durable at once.
    sync: bool,
}

struct DirEntry {
    ino: u64,
    kind: FileType,
    name: OsString,
}

/// Kernel caches to drop after a crash.
pub(crate) enum Inval {
    Inode(Ino),
    Entry(Ino, OsString),
}

/// Everything behind the mutex.
pub(crate) struct State {
    backing: PathBuf,
    trash: PathBuf,
    nodes: HashMap<Ino, Node>,
    by_key: HashMap<(u64, u64), Ino>,
    next_ino: Ino,
    handles: HashMap<u64, Handle>,
    dirs: HashMap<u64, Vec<DirEntry>>,
    next_fh: u64,
    undo: HashMap<Ino, FileUndo>,
    journal: Journal,
    next_slot: u64,
    invals: Vec<Inval>,
}

type Res<T> = Result<T, Errno>;

fn key_of(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

fn kind_of(meta: &fs::Metadata) -> FileType {
    FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0) + Duration::new(0, nsecs as u32)
    }
}

fn cstr(path: &Path) -> Res<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn last_os_error() -> Errno {
    Errno::from(io::Error::last_os_error())
}

/// `rename` that never replaces what is at `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (CString::new(from.as_os_str().as_bytes())?, CString::new(to.as_os_str().as_bytes())?);
    // SAFETY: two valid NUL-terminated paths.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE)
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINVAL) {
        // The backing file system has no RENAME_NOREPLACE.
        if fs::symlink_metadata(to).is_ok() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        return fs::rename(from, to);
    }
    Err(err)
}

/// Removes whatever is at `path` (a directory with its contents).
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path)?.is_dir() {
        true => fs::remove_dir_all(path),
        false => fs::remove_file(path),
    }
}

fn is_trash(parent: Ino, name: &OsStr) -> bool {
    parent == ROOT && name == TRASH
}

impl State {
    pub(crate) fn new(backing: PathBuf) -> io::Result<State> {
        let meta = fs::metadata(&backing)?;
        let trash = backing.join(TRASH);
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node { names: vec![], key: key_of(&meta), nlookup: 1, open: 0 });
        let mut by_key = HashMap::new();
        by_key.insert(key_of(&meta), ROOT);
        Ok(State {
            backing,
            trash,
            nodes,
            by_key,
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            dirs: HashMap::new(),
            next_fh: 1,
            undo: HashMap::new(),
            journal: Journal::default(),
            next_slot: 0,
            invals: Vec::new(),
        })
    }

    // ---- the inode table ----

    fn path_of(&self, ino: Ino) -> Option<PathBuf> {
        self.path_at_depth(ino, 0)
    }

    fn path_at_depth(&self, ino: Ino, depth: u32) -> Option<PathBuf> {
        if ino == ROOT {
            return Some(self.backing.clone());
        }
        if depth > 4096 {
            return None;
        }
        let node = self.nodes.get(&ino)?;
        for place in &node.names {
            if let Place::Entry(parent, name) = place {
                if let Some(p) = self.path_at_depth(*parent, depth + 1) {
                    return Some(p.join(name));
                }
            }
        }
        node.names.iter().find_map(|p| match p {
            Place::Trash(slot) => Some(self.trash.join(slot.to_string())),
            Place::Entry(..) => None,
        })
    }

    fn place_path(&self, place: &Place) -> Option<PathBuf> {
        match place {
            Place::Entry(parent, name) => Some(self.path_of(*parent)?.join(name)),
            Place::Trash(slot) => Some(self.trash.join(slot.to_string())),
        }
    }

    fn entry_path(&self, parent: Ino, name: &OsStr) -> Res<PathBuf> {
        if is_trash(parent, name) {
            return Err(Errno::ENOENT);
        }
        Ok(self.path_of(parent).ok_or(Errno::ENOENT)?.join(name))
    }

    /// The node of the backing file `meta`, found at `place`: the known one (now also
    /// known at `place`), or a new one.
    fn node_for(&mut self, meta: &fs::Metadata, place: Place) -> Ino {
        let key = key_of(meta);
        if let Some(&ino) = self.by_key.get(&key) {
            let known = self.nodes.get(&ino).is_some_and(|n| n.names.contains(&place) || ino == ROOT);
            if known {
                return ino;
            }
            if self.nodes.contains_key(&ino) {
                // A new name for it (a hard link made outside, or a stale table): keep
                // only the places that still hold this very file.
                let names = self.nodes[&ino].names.clone();
                let valid: Vec<Place> = names
                    .into_iter()
                    .filter(|p| {
                        self.place_path(p)
                            .and_then(|p| fs::symlink_metadata(p).ok())
                            .is_some_and(|m| key_of(&m) == key)
                    })
                    .collect();
                let node = self.nodes.get_mut(&ino).expect("checked");
                node.names = valid;
                node.names.insert(0, place);
                return ino;
            }
        }
        self.fresh_node(meta, place)
    }

    /// A new node for a backing file just created at `place`.
    fn fresh_node(&mut self, meta: &fs::Metadata, place: Place) -> Ino {
        let key = key_of(meta);
        if let Some(old) = self.by_key.remove(&key) {
            // The backing inode number was reused: the old node is gone.
            if let Some(n) = self.nodes.get_mut(&old) {
                n.names.clear();
            }
            self.forget_if_unused(old);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node { names: vec![place], key, nlookup: 0, open: 0 });
        self.by_key.insert(key, ino);
        ino
    }

    /// Drops a node that is gone from the backing directory and unknown to the kernel.
    fn forget_if_unused(&mut self, ino: Ino) {
        if ino == ROOT {
            return;
        }
        let Some(n) = self.nodes.get(&ino) else { return };
        if n.names.is_empty() {
            if self.by_key.get(&n.key) == Some(&ino) {
                self.by_key.remove(&n.key);
            }
            self.undo.remove(&ino);
            if n.nlookup == 0 && n.open == 0 {
                self.nodes.remove(&ino);
            }
        }
    }

    /// Replaces `from` by `to` among the places of `ino`.
    fn move_name(&mut self, ino: Ino, from: &Place, to: Place) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            match n.names.iter().position(|p| p == from) {
                Some(i) => n.names[i] = to,
                None => n.names.push(to),
            }
            // Entries first: they name the inode's path.
            n.names.sort_by_key(|p| matches!(p, Place::Trash(_)));
        }
    }

    fn drop_name(&mut self, ino: Ino, at: &Place) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.names.retain(|p| p != at);
        }
        self.forget_if_unused(ino);
    }

    /// Drops the places that no longer hold their node (after a directory was removed
    /// with its contents).
    fn prune_names(&mut self) {
        let inos: Vec<Ino> = self.nodes.keys().copied().filter(|&i| i != ROOT).collect();
        for ino in inos {
            let node = &self.nodes[&ino];
            let key = node.key;
            let valid: Vec<Place> = node
                .names
                .clone()
                .into_iter()
                .filter(|p| {
                    self.place_path(p)
                        .and_then(|p| fs::symlink_metadata(p).ok())
                        .is_some_and(|m| key_of(&m) == key)
                })
                .collect();
            if valid.len() != self.nodes[&ino].names.len() {
                self.nodes.get_mut(&ino).expect("listed").names = valid;
                self.forget_if_unused(ino);
            }
        }
    }

    fn attr(&self, ino: Ino, meta: &fs::Metadata) -> FileAttr {
        let trashed = self
            .nodes
            .get(&ino)
            .map_or(0, |n| n.names.iter().filter(|p| matches!(p, Place::Trash(_))).count());
        FileAttr {
            ino: INodeNo(ino),
            size: meta.size(),
            blocks: meta.blocks(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind_of(meta),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: (meta.nlink() as u32).saturating_sub(trashed as u32),
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: meta.blksize() as u32,
            flags: 0,
        }
    }

    /// Any open backing file of `ino` (for an inode with no path left).
    fn any_file(&self, ino: Ino) -> Option<Arc<File>> {
        self.handles.values().find(|h| h.ino == ino).map(|h| h.file.clone())
    }

    fn meta_of(&self, ino: Ino, fh: Option<FileHandle>) -> Res<fs::Metadata> {
        if let Some(h) = fh.and_then(|fh| self.handles.get(&fh.0)) {
            return Ok(h.file.metadata()?);
        }
        if let Some(meta) = self.path_of(ino).and_then(|p| fs::symlink_metadata(p).ok()) {
            return Ok(meta);
        }
        match self.any_file(ino) {
            Some(f) => Ok(f.metadata()?),
            None => Err(Errno::ENOENT),
        }
    }

    fn new_fh(&mut self) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        fh
    }

    fn new_slot(&mut self) -> (u64, PathBuf) {
        self.next_slot += 1;
        (self.next_slot, self.trash.join(self.next_slot.to_string()))
    }

    fn tracked(&self, ino: Ino) -> bool {
        self.nodes.get(&ino).is_some_and(|n| !n.names.is_empty())
    }

    /// The undo log of `ino`, started now if there is none (the file as it is now is
    /// durable); `None` for an inode gone from the backing directory.
    fn undo_of(&mut self, ino: Ino, file: &File) -> Res<Option<&mut FileUndo>> {
        if !self.tracked(ino) {
            return Ok(None);
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.undo.entry(ino) {
            e.insert(FileUndo::new(file.metadata()?.len()));
        }
        Ok(self.undo.get_mut(&ino))
    }

    /// Sets the length of `file` (inode `ino`), keeping what a crash needs.
    fn resize(&mut self, ino: Ino, file: &File, len: u64, full: bool) -> Res<()> {
        let old = file.metadata()?.len();
        if len > old && full {
            return Err(Errno::ENOSPC);
        }
        if len == old {
            return Ok(());
        }
        if let Some(u) = self.undo_of(ino, file)? {
            u.before_change(&mut &*file, len, old)?;
        }
        file.set_len(len)?;
        if let Some(u) = self.undo.get_mut(&ino) {
            u.note_resize(old, len);
        }
        Ok(())
    }

    // ---- requests ----

    fn lookup(&mut self, parent: Ino, name: &OsStr) -> Res<FileAttr> {
        let path = self.entry_path(parent, name)?;
        let meta = fs::symlink_metadata(&path)?;
        let ino = self.node_for(&meta, Place::entry(parent, name));
        self.nodes.get_mut(&ino).expect("just made").nlookup += 1;
        Ok(self.attr(ino, &meta))
    }

    fn forget(&mut self, ino: Ino, n: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlookup = node.nlookup.saturating_sub(n);
        }
        self.forget_if_unused(ino);
    }

    fn getattr(&self, ino: Ino, fh: Option<FileHandle>) -> Res<FileAttr> {
        Ok(self.attr(ino, &self.meta_of(ino, fh)?))
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &mut self,
        ino: Ino,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
        full: bool,
    ) -> Res<FileAttr> {
        let handle_file = fh.and_then(|fh| self.handles.get(&fh.0)).map(|h| h.file.clone());
        let path = self.path_of(ino);
        if let Some(len) = size {
            let file = match &handle_file {
                Some(f) => f.clone(),
                None => match &path {
                    Some(p) => Arc::new(OpenOptions::new().read(true).write(true).open(p)?),
                    None => self.any_file(ino).ok_or(Errno::ENOENT)?,
                },
            };
            self.resize(ino, &file, len, full)?;
        }
        let file = handle_file.or_else(|| if path.is_none() { self.any_file(ino) } else { None });
        if let Some(mode) = mode {
            let perms = fs::Permissions::from_mode(mode & 0o7777);
            match (&file, &path) {
                (Some(f), _) => f.set_permissions(perms)?,
                (None, Some(p)) => fs::set_permissions(p, perms)?,
                (None, None) => return Err(Errno::ENOENT),
            }
        }
        if uid.is_some() || gid.is_some() {
            match (&file, &path) {
                (Some(f), _) => std::os::unix::fs::fchown(&**f, uid, gid)?,
                (None, Some(p)) => std::os::unix::fs::lchown(p, uid, gid)?,
                (None, None) => return Err(Errno::ENOENT),
            }
        }
        if atime.is_some() || mtime.is_some() {
            let ts = |t: Option<TimeOrNow>| match t {
                None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
                Some(TimeOrNow::Now) => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
                Some(TimeOrNow::SpecificTime(t)) => {
                    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                    libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as _ }
                }
            };
            let times = [ts(atime), ts(mtime)];
            // SAFETY: a valid fd or path and a two-element timespec array.
            let rc = match (&file, &path) {
                (Some(f), _) => unsafe {
                    libc::futimens(std::os::fd::AsRawFd::as_raw_fd(&**f), times.as_ptr())
                },
                (None, Some(p)) => {
                    let c = cstr(p)?;
                    unsafe {
                        libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
                    }
                }
                (None, None) => return Err(Errno::ENOENT),
            };
            if rc != 0 {
                return Err(last_os_error());
            }
        }
        self.getattr(ino, fh)
    }

    fn readlink(&self, ino: Ino) -> Res<Vec<u8>> {
        let path = self.path_of(ino).ok_or(Errno::ENOENT)?;
        Ok(fs::read_link(path)?.into_os_string().into_vec())
    }

    /// Registers a new inode made at `(parent, name)`: node, lookup, journal.
    fn created(&mut self, parent: Ino, name: &OsStr, meta: &fs::Metadata) -> (Ino, FileAttr) {
        let place = Place::entry(parent, name);
        let ino = self.fresh_node(meta, place.clone());
        self.nodes.get_mut(&ino).expect("just made").nlookup += 1;
        self.journal.push(DirOp::Create { at: place, ino, dir: meta.is_dir() });
        (ino, self.attr(ino, meta))
    }

    fn mknod(&mut self, parent: Ino, name: &OsStr, mode: u32, rdev: u32) -> Res<FileAttr> {
        let path = self.entry_path(parent, name)?;
        let c = cstr(&path)?;
        // SAFETY: a valid path.
        if unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) } != 0 {
            return Err(last_os_error());
        }
        let meta = fs::symlink_metadata(&path)?;
        Ok(self.created(parent, name, &meta).1)
    }

    fn mkdir(&mut self, parent: Ino, name: &OsStr, mode: u32) -> Res<FileAttr> {
        let path = self.entry_path(parent, name)?;
        fs::DirBuilder::new().mode(mode & 0o7777).create(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))?;
        let meta = fs::symlink_metadata(&path)?;
        Ok(self.created(parent, name, &meta).1)
    }

    fn symlink(&mut self, parent: Ino, name: &OsStr, target: &Path) -> Res<FileAttr> {
        let path = self.entry_path(parent, name)?;
        std::os::unix::fs::symlink(target, &path)?;
        let meta = fs::symlink_metadata(&path)?;
        Ok(self.created(parent, name, &meta).1)
    }

    fn link(&mut self, ino: Ino, parent: Ino, name: &OsStr) -> Res<FileAttr> {
        let src = self.path_of(ino).ok_or(Errno::ENOENT)?;
        let dst = self.entry_path(parent, name)?;
        fs::hard_link(&src, &dst)?;
        let meta = fs::symlink_metadata(&dst)?;
        let place = Place::entry(parent, name);
        let node = self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        node.names.insert(0, place.clone());
        node.nlookup += 1;
        self.journal.push(DirOp::Link { at: place, ino });
        Ok(self.attr(ino, &meta))
    }

    /// unlink and rmdir: the entry goes to the trash until the removal is durable.
    fn remove(&mut self, parent: Ino, name: &OsStr, dir: bool) -> Res<()> {
        let path = self.entry_path(parent, name)?;
        let meta = fs::symlink_metadata(&path)?;
        match (dir, meta.is_dir()) {
            (false, true) => return Err(Errno::EISDIR),
            (true, false) => return Err(Errno::ENOTDIR),
            (true, true) if fs::read_dir(&path)?.next().is_some() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let place = Place::entry(parent, name);
        let ino = self.node_for(&meta, place.clone());
        let (slot, trash) = self.new_slot();
        rename_noreplace(&path, &trash)?;
        self.move_name(ino, &place, Place::Trash(slot));
        self.journal.push(DirOp::Remove { from: place, ino, dir, slot });
        Ok(())
    }

    fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Res<()> {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let src = self.entry_path(parent, name)?;
        let dst = self.entry_path(newparent, newname)?;
        let smeta = fs::symlink_metadata(&src)?;
        let from = Place::entry(parent, name);
        let to = Place::entry(newparent, newname);
        let ino = self.node_for(&smeta, from.clone());
        let mut replaced = None;
        if let Ok(dmeta) = fs::symlink_metadata(&dst) {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if key_of(&dmeta) == key_of(&smeta) {
                return Ok(()); // Two names of one inode: POSIX says do nothing.
            }
            match (smeta.is_dir(), dmeta.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if fs::read_dir(&dst)?.next().is_some() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            let dino = self.node_for(&dmeta, to.clone());
            let (slot, trash) = self.new_slot();
            rename_noreplace(&dst, &trash)?;
            self.move_name(dino, &to, Place::Trash(slot));
            replaced = Some(Replaced { ino: dino, dir: dmeta.is_dir(), slot });
        }
        if let Err(e) = rename_noreplace(&src, &dst) {
            if let Some(r) = replaced {
                let trash = self.trash.join(r.slot.to_string());
                if rename_noreplace(&trash, &dst).is_ok() {
                    self.move_name(r.ino, &Place::Trash(r.slot), to);
                }
            }
            return Err(e.into());
        }
        self.move_name(ino, &from, to.clone());
        self.journal.push(DirOp::Rename { from, to, ino, dir: smeta.is_dir(), replaced });
        Ok(())
    }

    fn open_handle(&mut self, ino: Ino, file: File, sync: bool) -> u64 {
        let fh = self.new_fh();
        self.handles.insert(fh, Handle { ino, file: Arc::new(file), sync });
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.open += 1;
        }
        fh
    }

    fn open(&mut self, ino: Ino, flags: i32, full: bool) -> Res<u64> {
        let path = self.path_of(ino).ok_or(Errno::ENOENT)?;
        // Always read access when writing: the undo log reads what a write replaces.
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let file = OpenOptions::new().read(true).write(write).open(&path)?;
        if write && flags & libc::O_TRUNC != 0 {
            self.resize(ino, &file, 0, full)?;
        }
        Ok(self.open_handle(ino, file, flags & (libc::O_SYNC | libc::O_DSYNC) != 0))
    }

    fn create(&mut self, parent: Ino, name: &OsStr, mode: u32, flags: i32) -> Res<(FileAttr, u64)> {
        let path = self.entry_path(parent, name)?;
        let sync = flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode & 0o7777)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && flags & libc::O_EXCL == 0 => {
                // Lost a race with another creator: open what is there.
                let attr = self.lookup(parent, name)?;
                let fh = self.open(attr.ino.0, flags, false)?;
                return Ok((attr, fh));
            }
            Err(e) => return Err(e.into()),
        };
        file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
        let meta = file.metadata()?;
        let (ino, attr) = self.created(parent, name, &meta);
        let fh = self.open_handle(ino, file, sync);
        Ok((attr, fh))
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        let h = self.handles.get(&fh).ok_or(Errno::EBADF)?;
        let mut buf = vec![0u8; size as usize];
        let n = super::model::FileStore::read_at(&mut &*h.file, &mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn write(&mut self, fh: u64, offset: u64, data: &[u8], flags: i32) -> Res<u32> {
        let h = self.handles.get(&fh).ok_or(Errno::EBADF)?;
        let (ino, file, sync) =
            (h.ino, h.file.clone(), h.sync || flags & (libc::O_SYNC | libc::O_DSYNC) != 0);
        let len = data.len() as u64;
        if let Some(u) = self.undo_of(ino, &file)? {
            u.before_change(&mut &*file, offset, offset + len)?;
        }
        file.write_all_at(data, offset)?;
        if let Some(u) = self.undo.get_mut(&ino) {
            u.note_write(offset, len);
        }
        if sync {
            file.sync_data()?;
            self.undo.remove(&ino);
        }
        Ok(data.len() as u32)
    }

    fn release(&mut self, fh: u64) {
        if let Some(h) = self.handles.remove(&fh) {
            if let Some(n) = self.nodes.get_mut(&h.ino) {
                n.open = n.open.saturating_sub(1);
            }
            self.forget_if_unused(h.ino);
        }
    }

    fn fsync(&mut self, ino: Ino, fh: u64, datasync: bool) -> Res<()> {
        let h = self.handles.get(&fh).ok_or(Errno::EBADF)?;
        if datasync {
            h.file.sync_data()?;
        } else {
            h.file.sync_all()?;
        }
        self.undo.remove(&ino);
        Ok(())
    }

    fn opendir(&mut self, ino: Ino) -> Res<u64> {
        let path = self.path_of(ino).ok_or(Errno::ENOENT)?;
        let dev = fs::metadata(&path)?.dev();
        let parent = match self.nodes.get(&ino).and_then(|n| n.names.first()) {
            Some(Place::Entry(p, _)) => *p,
            _ => ROOT,
        };
        let mut entries = vec![
            DirEntry { ino, kind: FileType::Directory, name: ".".into() },
            DirEntry { ino: parent, kind: FileType::Directory, name: "..".into() },
        ];
        for e in fs::read_dir(&path)? {
            let e = e?;
            let name = e.file_name();
            if is_trash(ino, &name) {
                continue;
            }
            let d_ino = std::os::unix::fs::DirEntryExt::ino(&e);
            let kind = e.file_type().ok().and_then(FileType::from_std).unwrap_or(FileType::RegularFile);
            // The inode the kernel knows it by, or a stand-in (only `d_ino` shows it).
            let ino = self.by_key.get(&(dev, d_ino)).copied().unwrap_or(d_ino | 1 << 62);
            entries.push(DirEntry { ino, kind, name });
        }
        let fh = self.new_fh();
        self.dirs.insert(fh, entries);
        Ok(fh)
    }

    fn fsyncdir(&mut self, ino: Ino) -> Res<()> {
        let path = self.path_of(ino).ok_or(Errno::ENOENT)?;
        File::open(&path)?.sync_all()?;
        let mut journal = std::mem::take(&mut self.journal);
        let durable = journal.fsync_dir(ino, self);
        self.journal = journal;
        if !durable.is_empty() {
            // The trash slots they emptied.
            let _ = File::open(&self.trash).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    fn statfs(&self, full: bool) -> Res<libc::statvfs> {
        let c = cstr(&self.backing)?;
        // SAFETY: zeroed statvfs is a valid out-parameter; c is a valid path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(last_os_error());
        }
        if full {
            st.f_bfree = 0;
            st.f_bavail = 0;
        }
        Ok(st)
    }

    fn fallocate(&mut self, fh: u64, offset: u64, length: u64, mode: i32, full: bool) -> Res<()> {
        let known = libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !known != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        let zero = mode & libc::FALLOC_FL_ZERO_RANGE != 0;
        if full && !punch {
            return Err(Errno::ENOSPC);
        }
        let h = self.handles.get(&fh).ok_or(Errno::EBADF)?;
        let (ino, file) = (h.ino, h.file.clone());
        let old = file.metadata()?.len();
        let end = offset.saturating_add(length);
        if let Some(u) = self.undo_of(ino, &file)? {
            if punch || zero {
                u.before_change(&mut &*file, offset, end.min(old))?;
            }
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&*file);
        // SAFETY: a valid fd.
        if unsafe { libc::fallocate(fd, mode, offset as libc::off_t, length as libc::off_t) } != 0 {
            return Err(last_os_error());
        }
        let new = file.metadata()?.len();
        if let Some(u) = self.undo.get_mut(&ino) {
            if (punch || zero) && offset < new {
                u.note_write(offset, end.min(new) - offset);
            }
            u.note_resize(old, new);
        }
        Ok(())
    }

    // ---- LazyFs API ----

    pub(crate) fn unsynced_bytes(&self) -> u64 {
        self.undo.values().map(FileUndo::written_bytes).sum()
    }

    /// The power cut: file data back to the last fsync, then pending directory ops
    /// reverted newest first, then (torn) the kept prefixes written back, and the trash
    /// emptied. Returns the report and the kernel caches to drop.
    pub(crate) fn crash(&mut self, torn: bool, seed: u64) -> (CrashReport, Vec<Inval>) {
        let mut report = CrashReport::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut pieces = Vec::new();
        let mut inos: Vec<Ino> = self.undo.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let undo = self.undo.remove(&ino).expect("listed");
            report.bytes_dropped += undo.written_bytes();
            let Some(path) = self.path_of(ino) else { continue };
            let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else { continue };
            if torn {
                if let Ok(Some(piece)) = undo.torn_piece(&mut &file, &mut rng) {
                    pieces.push((ino, piece));
                }
            }
            if undo.restore(&mut &file).is_ok() {
                report.files_reverted += 1;
            }
            self.invals.push(Inval::Inode(ino));
        }
        let mut journal = std::mem::take(&mut self.journal);
        report.entries_reverted = journal.crash(self);
        self.prune_names();
        for (ino, (offset, bytes)) in pieces {
            let live =
                self.nodes.get(&ino).is_some_and(|n| n.names.iter().any(|p| matches!(p, Place::Entry(..))));
            let Some(path) = self.path_of(ino).filter(|_| live) else { continue };
            let written =
                OpenOptions::new().write(true).open(&path).and_then(|f| f.write_all_at(&bytes, offset));
            if written.is_ok() {
                report.torn_bytes_kept += bytes.len() as u64;
            }
        }
        report.bytes_dropped = report.bytes_dropped.saturating_sub(report.torn_bytes_kept);
        self.empty_trash();
        (report, std::mem::take(&mut self.invals))
    }

    /// A clean unmount: every pending directory op becomes durable, the trash goes.
    pub(crate) fn commit_all(&mut self) {
        let mut journal = std::mem::take(&mut self.journal);
        journal.commit_all(self);
        self.undo.clear();
        self.empty_trash();
    }

    /// Removes whatever is left in the trash; inodes only found there are gone.
    fn empty_trash(&mut self) {
        if let Ok(rd) = fs::read_dir(&self.trash) {
            for e in rd.flatten() {
                let _ = remove_any(&e.path());
            }
        }
        let inos: Vec<Ino> = self.nodes.keys().copied().collect();
        for ino in inos {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.names.retain(|p| matches!(p, Place::Entry(..)));
            }
            self.forget_if_unused(ino);
        }
    }
}

impl Namespace for State {
    fn relocate(&mut self, ino: Ino, from: &Place, to: &Place) -> io::Result<()> {
        let not_found = || io::Error::from(io::ErrorKind::NotFound);
        let src = self.place_path(from).ok_or_else(not_found)?;
        let dst = self.place_path(to).ok_or_else(not_found)?;
        rename_noreplace(&src, &dst)?;
        self.move_name(ino, from, to.clone());
        for p in [from, to] {
            if let Place::Entry(parent, name) = p {
                self.invals.push(Inval::Entry(*parent, name.clone()));
            }
        }
        Ok(())
    }

    fn remove(&mut self, ino: Ino, at: &Place) -> io::Result<()> {
        let path = self.place_path(at).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let dir = fs::symlink_metadata(&path)?.is_dir();
        remove_any(&path)?;
        if let Place::Entry(parent, name) = at {
            self.invals.push(Inval::Entry(*parent, name.clone()));
        }
        self.drop_name(ino, at);
        if dir {
            self.prune_names();
        }
        Ok(())
    }
}

impl LazyFsImpl {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    fn full(&self) -> bool {
        self.shared.full.load(Ordering::SeqCst)
    }

    fn reply_entry(reply: ReplyEntry, res: Res<FileAttr>) {
        match res {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn reply_empty(reply: ReplyEmpty, res: Res<()>) {
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for LazyFsImpl {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let res = self.lock().lookup(parent.0, name);
        Self::reply_entry(reply, res);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.lock().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lock().getattr(ino.0, fh) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let full = self.full();
        match self.lock().setattr(ino.0, mode, uid, gid, size, atime, mtime, fh, full) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.lock().readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        if self.full() {
            return reply.error(Errno::ENOSPC);
        }
        let res = self.lock().mknod(parent.0, name, mode & !umask, rdev);
        Self::reply_entry(reply, res);
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        if self.full() {
            return reply.error(Errno::ENOSPC);
        }
        let res = self.lock().mkdir(parent.0, name, mode & !umask);
        Self::reply_entry(reply, res);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = self.lock().remove(parent.0, name, false);
        Self::reply_empty(reply, res);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = self.lock().remove(parent.0, name, true);
        Self::reply_empty(reply, res);
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        if self.full() {
            return reply.error(Errno::ENOSPC);
        }
        let res = self.lock().symlink(parent.0, link_name, target);
        Self::reply_entry(reply, res);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let res = self.lock().rename(parent.0, name, newparent.0, newname, flags);
        Self::reply_empty(reply, res);
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        if self.full() {
            return reply.error(Errno::ENOSPC);
        }
        let res = self.lock().link(ino.0, newparent.0, newname);
        Self::reply_entry(reply, res);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let full = self.full();
        match self.lock().open(ino.0, flags.0, full) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.lock().read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if self.full() {
            return reply.error(Errno::ENOSPC);
        }
        match self.lock().write(fh.0, offset, data, flags.0) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is no durable point.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().release(fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let res = self.lock().fsync(ino.0, fh.0, datasync);
        Self::reply_empty(reply, res);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.lock().opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let st = self.lock();
        let Some(entries) = st.dirs.get(&fh.0) else { return reply.error(Errno::EBADF) };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.lock().dirs.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let res = self.lock().fsyncdir(ino.0);
        Self::reply_empty(reply, res);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let full = self.full();
        match self.lock().statfs(full) {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        if self.full() {
            return reply.error(Errno::ENOSPC);
        }
        match self.lock().create(parent.0, name, mode & !umask, flags) {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let full = self.full();
        let res = self.lock().fallocate(fh.0, offset, length, mode, full);
        Self::reply_empty(reply, res);
    }
}

/// Used by [`super::LazyFs`] to build the shared state.
pub(crate) fn shared(backing: &Path) -> io::Result<Arc<Shared>> {
    Ok(Arc::new(Shared {
        state: Mutex::new(State::new(backing.to_path_buf())?),
        full: AtomicBool::new(false),
    }))
}
