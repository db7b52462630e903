//! Group commit: one thread per host turns many "make my writes durable" requests into one fsync.
//!
//! sled's `flush` is database-wide (it flushes the shared page cache and fsyncs), so flushing
//! once per append would cost one fsync per group per append. Instead every writer first writes
//! into sled (memory), then queues a [`Waiter`] here. The flusher thread blocks for the first
//! waiter, drains everything else already queued (at most [`FLUSH_BATCH_WAITERS_MAX`]), calls
//! `db.flush()` once and then completes all drained waiters in queue order. Writes made before a
//! waiter was queued are covered by that flush, and waiters complete in the order they were
//! queued, which keeps openraft's "IO completes in submission order" rule.
//!
//! The flush runs on its own OS thread, never on the tokio runtime.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use openraft::storage::IOFlushed;

use crate::types::TypeConfig;

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
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Flusher {
    /// Start the flusher thread for `db`.
    pub(crate) fn start(db: sled::Db, node_id: crate::NodeId) -> std::io::Result<Flusher> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let flushes = Arc::new(AtomicU64::new(0));
        let counter = flushes.clone();
        let thread = std::thread::Builder::new()
            .name(format!("raft-flush-{node_id}"))
            .spawn(move || run(db, rx, counter))?;
        Ok(Flusher { tx, flushes, thread: Arc::new(Mutex::new(Some(thread))) })
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

fn run(db: sled::Db, rx: mpsc::Receiver<Msg>, flushes: Arc<AtomicU64>) {
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
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
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
        let flusher = Flusher::start(db.clone(), 0).unwrap();
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
