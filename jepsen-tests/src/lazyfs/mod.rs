//! LazyFS: a FUSE pass-through file system that keeps track of every change not yet made
//! durable, so that a test can **lose it on command** ([`LazyFs::crash`]), as a power cut of
//! the machine would (the idea of Jepsen's LazyFS, in Rust, mounted in-process). This module
//! owns the public API: mounting (a fuser background session), unmounting on drop, the
//! crash, the "disk full" switch and the clean-up of stale mounts.
//!
//! - [`model`]: the pure bookkeeping (undo logs of file data, the journal of directory
//!   operations), property-tested without FUSE.
//! - [`fs`]: the fuser `Filesystem` over the backing directory.
//!
//! ## Durability model (strict POSIX, what a power cut may produce)
//!
//! - **File data** (writes, truncates, `fallocate`) is durable once the file is fsynced
//!   (`fsync` or `fdatasync`; or at once for a handle opened `O_SYNC`/`O_DSYNC`).
//! - **Directory entries** (create, mknod, mkdir, symlink, link, unlink, rmdir, rename)
//!   are durable once their parent directory is fsynced — both parents for a rename, which
//!   is atomic: undone whole until both are. An fsync of a file does *not* make its entry
//!   durable (ext4 would in practice; POSIX does not promise it). An entry also waits for
//!   the earlier entry ops it depends on: a file made in a new directory is not durable
//!   before the directory's own entry is ([`model::Journal`]).
//! - `chmod`, `chown`, `utimes` and xattrs are not tracked: they are never lost.
//! - A clean unmount (drop) makes everything durable, as `umount` syncs.
//!
//! ## Design: undo, not redo
//!
//! Writes go straight to the backing file; the layer keeps, per file, an undo log since
//! its last fsync: the length it had then and the old bytes of every range overwritten
//! within that length (each old byte saved once). fsync = fsync of the backing file and
//! the log is forgotten; a crash writes the old bytes back and cuts to the old length.
//! Reads, `mmap` reads (tantivy) and sizes are then plain pass-through, the kernel needs
//! no overlay, and memory holds only overwritten old bytes (appends, the common case for
//! sled's log, cost nothing). Unlinked and replaced inodes go to a trash directory inside
//! the backing directory (`.lazyfs-trash`, hidden from the mount) until the removal is
//! durable, so a crash can put them back with their contents; open handles keep working
//! on them meanwhile.
//!
//! ## Limits (what a real power cut could do that this does not)
//!
//! - Within one file, the unsynced writes are lost all together (or, torn, all but a
//!   prefix of the last write): no reordering of writes, no loss of an older write while
//!   a newer one survives, no tearing in the middle of a write.
//! - A torn write is cut at a byte, where disks tear at 512 B or 4 KiB sectors. The "last
//!   write" is the last run of contiguous FUSE write requests (the kernel splits one
//!   `write()` at page boundaries, so appends made of several calls count as one). A last
//!   write that starts past the durable length keeps nothing (it would sit after a hole
//!   of zeros, which ext4 `data=ordered` does not show); an in-place overwrite can tear.
//! - Metadata journaling filesystems (ext4 `data=ordered`) are kinder than this model: an
//!   fsync of a file commits its directory entry there, and an fsync of any directory
//!   commits all earlier metadata ops. Code that passes here may rely on less than ext4
//!   gives; code that fails here may still work on ext4.
//! - Permissions, owners, times and xattrs survive a crash as they are.
//! - `RENAME_EXCHANGE`/`RENAME_WHITEOUT` are refused (`EINVAL`); POSIX locks and `flock`
//!   are the kernel's local ones (not forwarded).
//! - A crash while another process still writes through the mount is safe (one lock) but
//!   the writer's later writes simply land on the restored files.
//! - Leftovers of a mount whose process died (no drop): whatever the backing directory
//!   holds is taken as durable at the next mount; its trash is emptied.
//!
//! ## Stores on top (what `tests/lazyfs.rs` shows)
//!
//! - sled 0.34 never fsyncs its directory (a new database vanishes whole), writes `conf`
//!   without fsync (a torn one makes `sled::open` answer `Corruption`), and its `flush()`
//!   ends in `sync_file_range`, which is no durable point here (nor on a real disk): flush,
//!   then `fdatasync` its `db` file. Under torn crashes it can lose fdatasynced keys: it
//!   overwrites a log segment in place once its contents were rewritten elsewhere, and
//!   only `sync_file_range`d.
//! - tantivy fsyncs its directory before renaming `meta.json` into place, not after: its
//!   last commit needs a later directory fsync to be durable.

pub mod fs;
pub mod model;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fuser::{BackgroundSession, Config, INodeNo, MountOption, Notifier, SessionACL};

/// What a [`LazyFs::crash`] threw away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrashReport {
    /// Bytes written since the last durable point that the crash threw away (each file
    /// position once; growth by truncate/fallocate included).
    pub bytes_dropped: u64,
    /// Files whose contents/size were rolled back.
    pub files_reverted: u64,
    /// Directory entry operations (create, mkdir, rename, unlink, link, rmdir...) rolled
    /// back.
    pub entries_reverted: u64,
    /// With `torn`: bytes of unsynced writes deliberately kept.
    pub torn_bytes_kept: u64,
}

/// A mounted lazy file system. Unmounts on drop (also when a panic unwinds), which is a
/// clean unmount: what was not lost by a crash becomes durable.
pub struct LazyFs {
    shared: Arc<fs::Shared>,
    session: Option<BackgroundSession>,
    notifier: Notifier,
    mountpoint: PathBuf,
    backing: PathBuf,
}

impl std::fmt::Debug for LazyFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyFs")
            .field("mountpoint", &self.mountpoint)
            .field("backing", &self.backing)
            .finish()
    }
}

impl LazyFs {
    /// Is FUSE usable here? `Err(reason)` when not (not root, no `/dev/fuse`, no
    /// `fusermount3`, or a probe mount fails). Probed once per process.
    pub fn available() -> Result<(), String> {
        static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
        PROBE.get_or_init(probe).clone()
    }

    /// Mounts at `mountpoint` (created if missing, must be empty and not a mount point),
    /// keeping the real files in `backing` (created if missing; what it already holds is
    /// the durable state).
    pub fn mount(backing: &Path, mountpoint: &Path) -> anyhow::Result<LazyFs> {
        std::fs::create_dir_all(backing).with_context(|| format!("creating {}", backing.display()))?;
        if let Err(e) = std::fs::symlink_metadata(mountpoint) {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                bail!("{}", stale_message(mountpoint));
            }
        }
        std::fs::create_dir_all(mountpoint).with_context(|| format!("creating {}", mountpoint.display()))?;
        let mountpoint = match std::fs::canonicalize(mountpoint) {
            Ok(p) => p,
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!("{}", stale_message(mountpoint)),
            Err(e) => return Err(e).with_context(|| format!("resolving {}", mountpoint.display())),
        };
        let backing = std::fs::canonicalize(backing)?;
        if mountpoint.starts_with(&backing) || backing.starts_with(&mountpoint) {
            bail!(
                "mountpoint {} and backing {} must not contain one another",
                mountpoint.display(),
                backing.display()
            );
        }
        if mount_points()?.iter().any(|m| m.path == mountpoint) {
            bail!(
                "{} is already a mount point (a LazyFS left by a killed process? LazyFs::cleanup_stale \
                 or `fusermount3 -uz` removes it)",
                mountpoint.display()
            );
        }
        match std::fs::read_dir(&mountpoint) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!("{}", stale_message(&mountpoint)),
            Err(e) => return Err(e).with_context(|| format!("reading {}", mountpoint.display())),
            Ok(mut rd) => {
                if rd.next().is_some() {
                    bail!("mountpoint {} is not empty", mountpoint.display());
                }
            }
        }
        // A trash left by a mount whose process died: those removals count as durable.
        let trash = backing.join(fs::TRASH);
        if trash.exists() {
            std::fs::remove_dir_all(&trash).with_context(|| format!("emptying {}", trash.display()))?;
        }
        std::fs::create_dir(&trash)?;

        let shared = fs::shared(&backing)?;
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("lazyfs".into()),
            MountOption::Subtype("lazyfs".into()),
            MountOption::DefaultPermissions,
        ];
        // allow_other: the nodes under test may run as another user than the harness.
        config.acl = SessionACL::All;
        config.n_threads = Some(1);
        let session = fuser::spawn_mount(fs::LazyFsImpl { shared: shared.clone() }, &mountpoint, &config)
            .with_context(|| format!("mounting LazyFS at {}", mountpoint.display()))?;
        let notifier = session.notifier();
        Ok(LazyFs { shared, session: Some(session), notifier, mountpoint, backing })
    }

    /// Loses everything not durable, as a power cut would. Meant for after the process
    /// using the mount was killed (`kill -9` and reaped), but safe with handles still open.
    /// `torn`: for each file's last unsynced write, keep a random prefix (seeded by `seed`)
    /// instead of dropping it whole.
    pub fn crash(&self, torn: bool, seed: u64) -> CrashReport {
        let (report, invals) = self.shared.lock().crash(torn, seed);
        // Outside the lock: the kernel may need this file system to answer while it drops
        // its caches.
        for inval in invals {
            let _ = match inval {
                fs::Inval::Inode(ino) => self.notifier.inval_inode(INodeNo(ino), 0, 0),
                fs::Inval::Entry(parent, name) => self.notifier.inval_entry(INodeNo(parent), &name),
            };
        }
        report
    }

    /// While `full`, every write, create, mkdir, mknod, symlink, link, growing truncate and
    /// allocating fallocate answers `ENOSPC` (fsync of data already written still works).
    pub fn set_full(&self, full: bool) {
        self.shared.full.store(full, Ordering::SeqCst);
    }

    /// Bytes written and not yet durable, right now.
    pub fn unsynced_bytes(&self) -> u64 {
        self.shared.lock().unsynced_bytes()
    }

    /// Where the file system is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Where its files really are.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Unmounts (lazily, `fusermount3 -uz`) every FUSE mount at or under `dir`, deepest
    /// first: mounts left by a killed process answer `ENOTCONN` and block their mount
    /// point. Returns how many were unmounted.
    pub fn cleanup_stale(dir: &Path) -> anyhow::Result<usize> {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut stale: Vec<MountPoint> = mount_points()?
            .into_iter()
            .filter(|m| m.fstype.starts_with("fuse") && m.path.starts_with(&dir))
            .collect();
        stale.sort_by_key(|m| std::cmp::Reverse(m.path.components().count()));
        let mut n = 0;
        for m in stale {
            let ok = Command::new("fusermount3")
                .arg("-uz")
                .arg(&m.path)
                .output()
                .is_ok_and(|o| o.status.success())
                || umount(&m.path, libc::MNT_DETACH).is_ok();
            if !ok {
                bail!("could not unmount {}", m.path.display());
            }
            n += 1;
        }
        Ok(n)
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else { return };
        // A plain unmount first; if something still has files open, detach lazily (the
        // session then lives on for those handles, on its own thread).
        let unmounted = match umount(&self.mountpoint, 0) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => true, // already unmounted
            Err(_) => {
                let _ = umount(&self.mountpoint, libc::MNT_DETACH);
                false
            }
        };
        if unmounted {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !session.guard.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if session.guard.is_finished() {
                let _ = session.umount_and_join();
            }
        } else {
            drop(session);
        }
        self.shared.lock().commit_all();
        let _ = std::fs::remove_dir(self.backing.join(fs::TRASH));
    }
}

fn stale_message(mountpoint: &Path) -> String {
    format!(
        "{} is a stale FUSE mount (its process died: ENOTCONN); LazyFs::cleanup_stale or \
         `fusermount3 -uz {}` removes it",
        mountpoint.display(),
        mountpoint.display()
    )
}

fn umount(path: &Path, flags: libc::c_int) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

struct MountPoint {
    path: PathBuf,
    fstype: String,
}

/// The mounts of this process's namespace, from `/proc/self/mountinfo`.
fn mount_points() -> anyhow::Result<Vec<MountPoint>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(MountPoint {
                path: PathBuf::from(unescape(fields.get(4)?)),
                fstype: fields.get(sep + 1)?.to_string(),
            })
        })
        .collect())
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

fn probe() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!("not root (euid {euid}): LazyFS mounts with mount(2)"));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| format!("cannot open /dev/fuse: {e}"))?;
    Command::new("fusermount3")
        .arg("-V")
        .output()
        .map_err(|e| format!("no fusermount3 (apt-get install fuse3): {e}"))?;
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lazyfs-probe-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let result = (|| -> anyhow::Result<()> {
        let fs = LazyFs::mount(&dir.join("backing"), &dir.join("mnt"))?;
        let path = fs.mountpoint().join("probe");
        std::fs::File::create(&path)?.write_all(b"lazyfs")?;
        let mut back = String::new();
        std::fs::File::open(&path)?.read_to_string(&mut back)?;
        if back != "lazyfs" {
            bail!("read back {back:?} through the probe mount");
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| format!("probe mount failed: {e:#}"))
}
