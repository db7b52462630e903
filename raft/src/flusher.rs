//! Group commit: one thread per host turns many "make my writes durable" requests into one fsync.
//!
//! sled's `flush` is database-wide (it writes out the shared IO buffers), so flushing once per
//! append would cost one flush per group per append. Instead every writer first writes into
//! sled (memory), then queues a [`Waiter`] here. The flusher thread blocks for the first
//! waiter, drains everything else already queued (at most [`FLUSH_BATCH_WAITERS_MAX`]), makes
//! the database durable once and then completes all drained waiters in queue order. Writes made
//! before a waiter was queued are covered by that flush, and waiters complete in the order they
//! were queued, which keeps openraft's "IO completes in submission order" rule.
//!
//! "Durable" is `db.flush()` **and** an `fdatasync` of sled's log file and an `fsync` of its
//! directory ([`SledFiles`]): sled 0.34's flush ends in `sync_file_range`, which commits
//! neither the file's size nor the disk's write cache — it survives kill -9, not a power cut
//! (only sled's background thread, every 500 ms, calls `fsync`). The power nemesis found it
//! (docs/fault-tests.md).
//!
//! The flush runs on its own OS thread, never on the tokio runtime.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use openraft::storage::IOFlushed;

use crate::types::TypeConfig;
use crate::watermark::Watermark;

/// Most waiters completed by one flush. More stay queued for the next flush, so one flush never
/// holds back an unbounded number of callbacks.
pub(crate) const FLUSH_BATCH_WAITERS_MAX: usize = 4096;
/// A flush slower than this is logged (a slow disk stalls every write of the node).
const FLUSH_SLOW_MS: u128 = 100;

/// Something that waits for the next flush to finish.
pub(crate) enum Waiter {
    /// openraft's log-append completion callback.
    Io(IOFlushed<TypeConfig>),
    /// An async caller (`save_vote`, snapshot save, truncation) awaiting the flush.
    Notify(tokio::sync::oneshot::Sender<Result<(), String>>),
}

impl Waiter {
    fn complete(self, result: Result<(), String>) {
        match self {
            Waiter::Io(cb) => cb.io_completed(result.map_err(std::io::Error::other)),
            Waiter::Notify(tx) => {
                // The receiver may have given up (e.g. its task was cancelled); nothing to do.
                let _ = tx.send(result);
            }
        }
    }
}

enum Msg {
    Wait(Waiter),
    Stop,
}

/// Handle on a host's flusher thread. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Flusher {
    tx: mpsc::Sender<Msg>,
    flushes: Arc<AtomicU64>,
    /// The first flush error, kept: after a failed flush or fsync nothing later can be
    /// trusted (sled stops taking writes; Linux may forget a failed fsync's error, so a
    /// retried fsync that "succeeds" proves nothing). The node stops serving (see
    /// [`crate::RaftHost::storage_failure`]).
    failed: Arc<Mutex<Option<String>>>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// What `fsync` must reach beyond sled's own flush: its log file and its directories.
struct SledFiles {
    log: File,
    /// sled's directory and its `blobs` directory.
    dirs: [PathBuf; 2],
    /// The entries of `dirs` when they were last fsynced: sled creates, renames and removes
    /// snapshot and blob files there without ever fsyncing them, and an unchanged directory
    /// needs no fsync (which costs a disk cache flush: ~0.2 ms a write at one client).
    synced_names: Vec<std::ffi::OsString>,
}

impl SledFiles {
    /// sled keeps its log in `<dir>/db`, large values in `<dir>/blobs/`.
    fn open(dir: &Path) -> std::io::Result<SledFiles> {
        Ok(SledFiles {
            log: File::open(dir.join("db"))?,
            dirs: [dir.to_path_buf(), dir.join("blobs")],
            synced_names: Vec::new(),
        })
    }

    /// Every entry of the directories, in order (a missing `blobs` has none).
    fn names(&self) -> std::io::Result<Vec<std::ffi::OsString>> {
        let mut names = Vec::new();
        for (k, dir) in self.dirs.iter().enumerate() {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if k > 0 && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let mut name = std::ffi::OsString::from(if k == 0 { "/" } else { "blobs/" });
                name.push(entry?.file_name());
                names.push(name);
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.log.sync_data()?;
        if crate::planted::planted(crate::planted::Bug::SkipDirFsync) {
            return Ok(()); // (sync_dir would skip too; this also skips reading the names)
        }
        // Names read before the fsync: a change after the read is either covered by this
        // fsync or seen (as a different list) by the next one.
        let names = self.names()?;
        if names != self.synced_names {
            for dir in &self.dirs {
                match crate::durable::sync_dir(dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            self.synced_names = names;
        }
        Ok(())
    }
}

/// Make what sled's own `flush` wrote durable, outside the flusher (rare writes that must be
/// on disk before they are relied on: a node's identity).
pub(crate) fn sync_sled_files(dir: &Path) -> std::io::Result<()> {
    SledFiles::open(dir)?.sync()
}

impl Flusher {
    /// Start the flusher thread for `db`. `sled_dir`: the database's directory, whose log file
    /// and directory every flush also fsyncs (see the module doc); `None` for throwaway
    /// databases (tests), which then survive a crash but not a power cut.
    pub(crate) fn start(
        db: sled::Db,
        node_id: crate::NodeId,
        sled_dir: Option<&Path>,
    ) -> std::io::Result<Flusher> {
        let files = match sled_dir {
            Some(dir) => {
                let watermark = Watermark::open(&db, dir).map_err(std::io::Error::other)?;
                Some((SledFiles::open(dir)?, watermark))
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel::<Msg>();
        let flushes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(None));
        let (counter, failure) = (flushes.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name(format!("raft-flush-{node_id}"))
            .spawn(move || run(db, files, rx, counter, failure))?;
        Ok(Flusher { tx, flushes, failed, thread: Arc::new(Mutex::new(Some(thread))) })
    }

    /// Queue `waiter` to be completed after the next flush. If the flusher has stopped the
    /// waiter completes at once with an error.
    pub(crate) fn enqueue(&self, waiter: Waiter) {
        if let Err(mpsc::SendError(Msg::Wait(w))) = self.tx.send(Msg::Wait(waiter)) {
            w.complete(Err("flusher stopped".to_string()));
        }
    }

    /// Wait until everything written to the db before this call is on disk.
    pub(crate) async fn sync(&self) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(Waiter::Notify(tx));
        match rx.await {
            Ok(result) => result.map_err(std::io::Error::other),
            Err(_) => Err(std::io::Error::other("flusher stopped")),
        }
    }

    /// Record a storage failure seen outside the flusher (a sled write that failed): every
    /// later flush fails, and [`Flusher::failure`] names the first failure.
    pub(crate) fn fail(&self, error: &str) {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| error.to_string());
    }

    /// The first flush that failed, if one has: its error.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many `db.flush()` calls the flusher has made (for tests and metrics).
    pub(crate) fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Flush what is queued, stop the thread and wait for it. Later waiters fail at once.
    pub(crate) fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("flusher thread panicked");
            }
        }
    }
}

/// Make everything written to `db` so far durable.
fn make_durable(db: &sled::Db, files: Option<&mut (SledFiles, Watermark)>) -> Result<(), String> {
    if crate::planted::planted(crate::planted::Bug::AckBeforeFsync) {
        return Ok(());
    }
    let Some((files, watermark)) = files else {
        db.flush().map_err(|e| e.to_string())?;
        return Ok(());
    };
    let staged = watermark.stage()?;
    db.flush().map_err(|e| e.to_string())?;
    files.sync().map_err(|e| format!("fsync of sled's files: {e}"))?;
    if let Some(seq) = staged {
        watermark.record(seq).map_err(|e| format!("durable watermark: {e}"))?;
    }
    Ok(())
}

fn run(
    db: sled::Db,
    mut files: Option<(SledFiles, Watermark)>,
    rx: mpsc::Receiver<Msg>,
    flushes: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
) {
    let mut batch: Vec<Waiter> = Vec::new();
    let mut stopping = false;
    while !stopping {
        // Block for the first message, then take whatever else is already queued.
        match rx.recv() {
            Ok(Msg::Wait(w)) => batch.push(w),
            Ok(Msg::Stop) | Err(_) => stopping = true,
        }
        while batch.len() < FLUSH_BATCH_WAITERS_MAX {
            match rx.try_recv() {
                Ok(Msg::Wait(w)) => batch.push(w),
                Ok(Msg::Stop) => stopping = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        // Once a flush failed, every later one fails the same way (see `Flusher::failed`).
        let earlier = failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let result = match earlier {
            Some(e) => Err(format!("storage failed earlier: {e}")),
            None => make_durable(&db, files.as_mut()),
        };
        if let Err(e) = &result {
            failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.clone());
        }
        flushes.fetch_add(1, Ordering::Relaxed);
        let took = started.elapsed().as_millis();
        if took > FLUSH_SLOW_MS {
            tracing::warn!(
                took_ms = took as u64,
                waiters = batch.len(),
                "slow flush: every write of this node waited"
            );
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = batch.len(), "sled flush failed");
        } else {
            tracing::trace!(waiters = batch.len(), "flushed");
        }
        for w in batch.drain(..) {
            w.complete(result.clone());
        }
    }
    // Anything that raced with Stop is failed rather than silently dropped.
    while let Ok(Msg::Wait(w)) = rx.try_recv() {
        w.complete(Err("flusher stopped".to_string()));
    }
    tracing::debug!("flusher stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAITERS: usize = 1000;

    #[tokio::test]
    async fn queued_waiters_share_flushes_and_complete_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let flusher = Flusher::start(db.clone(), 0, None).unwrap();
        let mut receivers = Vec::new();
        for i in 0..WAITERS {
            db.insert(i.to_be_bytes(), &[1]).unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            flusher.enqueue(Waiter::Notify(tx));
            receivers.push(rx);
        }
        for rx in receivers {
            rx.await.unwrap().unwrap();
        }
        let flushes = flusher.flush_count();
        assert!(flushes >= 1);
        assert!(flushes < WAITERS as u64 / 2, "{flushes} flushes for {WAITERS} waiters");
        flusher.stop();
        assert!(flusher.sync().await.is_err(), "a stopped flusher fails new waiters");
    }
}
