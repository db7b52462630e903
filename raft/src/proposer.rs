//! The proposal queue of one group: writes wait here until a batch takes them, so that many
//! commands share one Raft entry (one append, one fsync, one replication round).
//!
//! - **Bounded.** At most [`PROPOSALS_QUEUED_MAX`] commands wait; past it a write is refused
//!   at once with `Overloaded` (nothing proposed, truly safe to retry), so a surge cannot grow
//!   the wait without bound and collapse into timeouts.
//! - **Batches.** A driver takes up to [`BATCH_COMMANDS_MAX`] commands / [`BATCH_BYTES_MAX`]
//!   bytes at a time; at most [`PIPELINE_BATCHES_MAX`] batches of a group are in flight. No
//!   timer: at low load a command goes out alone at once, under load the queue fills while
//!   the previous batches replicate, and the next batch takes all of it (natural batching,
//!   like group commit).
//! - **Knowing what happened.** Each command carries a claim that moves `Queued → Taken →
//!   Proposed`; a caller whose deadline passes cancels it if it is not yet `Proposed` (then
//!   nothing was proposed: `Unavailable`), else it may still commit (`Unknown`). A driver
//!   skips cancelled commands and never proposes one. Giving a command back (a batch that was
//!   not delivered) moves it `Proposed → Taken` again: a caller that saw `Proposed` in between
//!   answered `Unknown`, which stays true.
//!
//! The driving itself (where a batch goes, stamping, forwarding) is in `group`.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::errors::WriteError;
use crate::types::CommandBytes;
use crate::types::ReplyBytes;

/// Most commands waiting in one group's queue; one more write is refused with `Overloaded`.
pub const PROPOSALS_QUEUED_MAX: usize = 8_192;
/// Most commands in one Raft entry.
pub const BATCH_COMMANDS_MAX: usize = 2_048;
/// Most command bytes in one Raft entry (a single larger command still goes, alone).
pub const BATCH_BYTES_MAX: usize = 4 << 20;
/// Most batches of one group in flight at once (proposed, not yet answered). One: the next
/// batch forms while the current one replicates, so under load batches grow instead of
/// multiplying. Interleaved A/B (`boxoffice-bench --mode ga --nodes 3 --clients 64`, 3 × 10 s
/// each): 2 in flight 6,304 / 6,066 / 6,336 holds/s, 1 in flight 6,894 / 6,226 / 6,640, with
/// lower p99 and max (docs/benchmarks.md).
pub const PIPELINE_BATCHES_MAX: usize = 1;

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const PROPOSED: u8 = 2;
const CANCELLED: u8 = 3;

/// Where a command is; shared by its caller and the driver (see the module doc).
#[derive(Clone, Default)]
pub(crate) struct Claim(Arc<AtomicU8>);

impl Claim {
    fn advance(&self, from: u8, to: u8) -> bool {
        self.0.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Caller side, at its deadline: `true` if the command is cancelled before it could be
    /// proposed (nothing will be), `false` if it was proposed (it may commit).
    pub(crate) fn cancel(&self) -> bool {
        self.advance(QUEUED, CANCELLED) || self.advance(TAKEN, CANCELLED)
    }
}

/// One command waiting for its answer.
pub(crate) struct Pending {
    pub(crate) command: CommandBytes,
    /// Forwarded to this node by another: propose here or answer `ForwardToLeader`, never
    /// forward again.
    pub(crate) local_only: bool,
    pub(crate) claim: Claim,
    pub(crate) tx: oneshot::Sender<Result<ReplyBytes, WriteError>>,
}

impl Pending {
    /// A command and the receiver of its answer.
    pub(crate) fn new(
        command: CommandBytes,
        local_only: bool,
    ) -> (Pending, Claim, oneshot::Receiver<Result<ReplyBytes, WriteError>>) {
        let (tx, rx) = oneshot::channel();
        let claim = Claim::default();
        (Pending { command, local_only, claim: claim.clone(), tx }, claim, rx)
    }

    pub(crate) fn answer(self, result: Result<ReplyBytes, WriteError>) {
        // The caller may have given up; nothing to do then.
        let _ = self.tx.send(result);
    }

    /// Driver side, just before handing the command to the log (or to the leader):
    /// `false` if its caller cancelled it (drop it, never propose it).
    pub(crate) fn propose(&self) -> bool {
        self.claim.advance(TAKEN, PROPOSED)
    }

    /// Driver side: the command was not delivered after all; it may be proposed again.
    pub(crate) fn give_back(&self) {
        self.claim.advance(PROPOSED, TAKEN);
    }
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Pending>,
    running: usize,
}

/// The queue of one group.
#[derive(Default)]
pub(crate) struct Proposer {
    queue: Mutex<Queue>,
}

impl Proposer {
    /// Queue `items` as one unit: all of them, or none with `Overloaded` when they do not fit.
    /// `Ok(true)`: the caller must start a driver (fewer than [`PIPELINE_BATCHES_MAX`] run).
    pub(crate) fn submit(&self, items: Vec<Pending>) -> Result<bool, (WriteError, Vec<Pending>)> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.items.len() + items.len() > PROPOSALS_QUEUED_MAX {
            let waiting = q.items.len();
            return Err((
                WriteError::Overloaded(format!(
                    "{waiting} proposals already wait (at most {PROPOSALS_QUEUED_MAX})"
                )),
                items,
            ));
        }
        q.items.extend(items);
        let start = q.running < PIPELINE_BATCHES_MAX;
        if start {
            q.running += 1;
        }
        Ok(start)
    }

    /// The next batch for a running driver, or `None` (the driver stops; it is no longer
    /// counted as running). Cancelled commands are dropped here.
    pub(crate) fn take(&self) -> Option<Vec<Pending>> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(item) = q.items.front() {
            if !batch.is_empty()
                && (batch.len() >= BATCH_COMMANDS_MAX || bytes + item.command.0.len() > BATCH_BYTES_MAX)
            {
                break;
            }
            let item = q.items.pop_front().expect("front exists");
            if item.claim.advance(QUEUED, TAKEN) {
                bytes += item.command.0.len();
                batch.push(item);
            }
        }
        if batch.is_empty() {
            q.running -= 1;
            return None;
        }
        Some(batch)
    }

    /// Commands waiting (not yet taken).
    pub(crate) fn waiting(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).items.len()
    }

    /// Batches in flight.
    pub(crate) fn running(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(n: usize) -> CommandBytes {
        CommandBytes(vec![0; n])
    }

    #[test]
    fn bounded_batched_and_cancellable() {
        let p = Proposer::default();
        let mut claims = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..PIPELINE_BATCHES_MAX {
            let (a, claim, rx) = Pending::new(cmd(10), false);
            assert_eq!(p.submit(vec![a]).ok(), Some(true), "a driver starts while fewer than the most run");
            claims.push(claim);
            receivers.push(rx);
        }
        let (b, claim_b, _rx_b) = Pending::new(cmd(10), false);
        assert_eq!(p.submit(vec![b]).ok(), Some(false), "{PIPELINE_BATCHES_MAX} drivers run at most");
        // A command cancelled while queued is never taken.
        assert!(claim_b.cancel());
        let batch = p.take().unwrap();
        assert_eq!(batch.len(), PIPELINE_BATCHES_MAX, "one batch takes everything queued but the cancelled");
        assert!(batch.iter().all(|i| i.propose()));
        // Once proposed it cannot be cancelled: its outcome is unknown.
        assert!(!claims[0].cancel());
        assert!(p.take().is_none());
        assert_eq!(p.running(), PIPELINE_BATCHES_MAX - 1);
        // Full: refused as a unit, nothing queued.
        let items: Vec<Pending> =
            (0..PROPOSALS_QUEUED_MAX + 1).map(|_| Pending::new(cmd(1), false).0).collect();
        assert!(
            matches!(p.submit(items), Err((WriteError::Overloaded(_), rest)) if rest.len() == PROPOSALS_QUEUED_MAX + 1)
        );
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn batches_are_bounded_in_count_and_bytes() {
        let p = Proposer::default();
        let items: Vec<Pending> =
            (0..BATCH_COMMANDS_MAX + 5).map(|_| Pending::new(cmd(1), false).0).collect();
        p.submit(items).ok().unwrap();
        assert_eq!(p.take().unwrap().len(), BATCH_COMMANDS_MAX);
        assert_eq!(p.take().unwrap().len(), 5);
        let big: Vec<Pending> = (0..3).map(|_| Pending::new(cmd(BATCH_BYTES_MAX / 2 + 1), false).0).collect();
        p.submit(big).ok();
        assert_eq!(p.take().unwrap().len(), 1);
        assert_eq!(p.take().unwrap().len(), 1);
    }
}
