//! The waiting queue of one event: one entry per user; joins before the sale opens are
//! shuffled at opening with a leader-chosen seed (deterministic from the log), later joins
//! are FIFO; the leader admits the next batch so that at most `max_admitted` admissions are
//! live, each valid `admission_seconds`.
//!
//! How it is kept:
//! - every waiting user has a sequence number; the queue order is sequence order. Joins get
//!   increasing numbers. Since the machine clock never runs backwards, every join before the
//!   on-sale time has a lower number than every join after it: numbers below `presale_end`
//!   are the pre-sale block, which `Queue::admit` shuffles once, at opening, among the
//!   same numbers (so they stay ahead of later joins).
//! - an admitted user leaves the waiting order and gets `admitted_until`; an admission is
//!   live while `now < admitted_until`. Expired admissions are dropped at the next admit
//!   (and ignored by every query before that). An expired admission is not re-queued: the
//!   user may join again, at the back.
//!
//! Caveat: a waiting user's position is counted, `O(position)`; fine for the SSE poll rate
//! of a few per second per user, not for a per-request hot path over a million entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::limits::QUEUE_ENTRIES_MAX;
use crate::{Millis, Rejection, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueStatus {
    Waiting,
    Admitted,
}

/// One user's place, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueView {
    pub user: UserId,
    /// 1-based position among waiting users (0 when admitted).
    pub position: u64,
    /// Waiting users ahead.
    pub ahead: u64,
    pub status: QueueStatus,
    pub admitted_until: Option<Millis>,
}

/// Queue state. Fields are up to the implementation; keep them BTreeMap/Vec based.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    /// Set by the first admit at/after the on-sale time; the pre-sale block is shuffled then.
    opened: bool,
    /// Next sequence number to hand out.
    next_seq: u64,
    /// Sequence numbers below this joined before the on-sale time.
    presale_end: u64,
    /// Waiting users in queue order.
    waiting: BTreeMap<u64, UserId>,
    /// Reverse of `waiting`.
    seq_of: BTreeMap<UserId, u64>,
    /// Admitted users and when their admission ends (exclusive).
    admitted: BTreeMap<UserId, Millis>,
    /// `admitted` ordered by deadline, to drop expired admissions and find the next one.
    admitted_by_deadline: BTreeSet<(Millis, UserId)>,
    /// When the sale opened (the first admit at/after `on_sale_at`).
    opened_at: Millis,
    /// Users admitted since the opening: with `opened_at`, the measured admission rate.
    admitted_total: u64,
    /// Which sequence numbers are still waiting, as a Fenwick tree over `0..next_seq`, so a
    /// user's place is O(log n) instead of a walk of everyone ahead.
    waiting_ranks: Fenwick,
}

/// A Fenwick (binary indexed) tree of counts over positions `1..=len`, growing at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Fenwick(Vec<u32>);

impl Fenwick {
    /// Sum of the counts at positions `1..=i`.
    fn prefix(&self, mut i: usize) -> u64 {
        let mut sum = 0;
        while i > 0 {
            sum += u64::from(self.0[i - 1]);
            i &= i - 1;
        }
        sum
    }

    /// Append position `len + 1` with `count`.
    fn push(&mut self, count: u32) {
        let i = self.0.len() + 1;
        let low = i & i.wrapping_neg();
        let covered = self.prefix(i - 1) - self.prefix(i - low);
        self.0.push(u32::try_from(covered).expect("fits: at most one per position") + count);
    }

    /// Take one from the count at position `i`.
    fn remove_one(&mut self, mut i: usize) {
        while i <= self.0.len() {
            self.0[i - 1] -= 1;
            i += i & i.wrapping_neg();
        }
    }
}

impl Queue {
    /// Whether the sale has opened (the pre-sale joins were shuffled).
    pub fn is_opened(&self) -> bool {
        self.opened
    }

    /// Entries held: waiting users plus admissions not yet dropped.
    pub fn len(&self) -> usize {
        self.waiting.len() + self.admitted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waiting users, not counting admitted ones.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether `user` holds an admission live at `now`.
    pub fn is_admitted(&self, user: &str, now: Millis) -> bool {
        self.admitted.get(user).is_some_and(|until| now < *until)
    }

    /// Admissions live at `now`.
    pub fn live_admissions(&self, now: Millis) -> usize {
        self.admitted_by_deadline.iter().rev().take_while(|(until, _)| now < *until).count()
    }

    /// Earliest end of an admission (live or not yet dropped).
    pub fn earliest_admission_end(&self) -> Option<Millis> {
        self.admitted_by_deadline.first().map(|(until, _)| *until)
    }

    /// Waiting users in queue order (for tests and operators).
    pub fn waiting_order(&self) -> Vec<UserId> {
        self.waiting.values().cloned().collect()
    }

    /// `user`'s place at `now`; `None` when not in the queue (or the admission is over).
    pub fn view(&self, user: &str, now: Millis) -> Option<QueueView> {
        if let Some(until) = self.admitted.get(user) {
            if now < *until {
                return Some(QueueView {
                    user: user.to_string(),
                    position: 0,
                    ahead: 0,
                    status: QueueStatus::Admitted,
                    admitted_until: Some(*until),
                });
            }
            return None;
        }
        let seq = *self.seq_of.get(user)?;
        let ahead = self.waiting_ranks.prefix(seq as usize);
        debug_assert_eq!(
            ahead,
            self.waiting.range(..seq).count() as u64,
            "the rank index agrees with the queue"
        );
        Some(QueueView {
            user: user.to_string(),
            position: ahead + 1,
            ahead,
            status: QueueStatus::Waiting,
            admitted_until: None,
        })
    }

    /// Join at `now`. Joining twice returns the same place. Past `QUEUE_ENTRIES_MAX`
    /// entries a join is `limit_exceeded`.
    pub(crate) fn join(
        &mut self,
        user: &str,
        now: Millis,
        on_sale_at: Millis,
    ) -> Result<QueueView, Rejection> {
        if let Some(view) = self.view(user, now) {
            return Ok(view);
        }
        // An admission that is over is forgotten: the user joins again at the back.
        self.drop_admission(user);
        if self.len() >= QUEUE_ENTRIES_MAX {
            return Err(Rejection::limit(format!("waiting queue is full ({QUEUE_ENTRIES_MAX} entries)")));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.opened && now < on_sale_at {
            debug_assert_eq!(self.presale_end, seq, "pre-sale joins must be one block at the front");
            self.presale_end = self.next_seq;
        }
        self.waiting.insert(seq, user.to_string());
        self.waiting_ranks.push(1);
        self.seq_of.insert(user.to_string(), seq);
        debug_assert_eq!(self.waiting.len(), self.seq_of.len(), "waiting and seq_of must pair up");
        Ok(self.view(user, now).expect("just joined"))
    }

    /// Leave the queue, waiting or admitted.
    pub(crate) fn leave(&mut self, user: &str, now: Millis) -> Result<(), Rejection> {
        let live = self.view(user, now).is_some();
        let removed_waiting = match self.seq_of.remove(user) {
            Some(seq) => {
                self.waiting_ranks.remove_one(seq as usize + 1);
                self.waiting.remove(&seq).is_some()
            }
            None => false,
        };
        self.drop_admission(user);
        if !live && !removed_waiting {
            return Err(Rejection::not_found("queue entry"));
        }
        Ok(())
    }

    /// Seconds a waiting user `ahead` others can expect to wait, from the admission rate
    /// measured since the opening; `None` before there is a rate to measure (the caller
    /// falls back to the configured one). Deterministic: a function of the log and `now`.
    pub fn estimated_wait_seconds(&self, ahead: u64, now: Millis) -> Option<u64> {
        let elapsed_ms = now.saturating_sub(self.opened_at);
        if !self.opened || self.admitted_total == 0 || elapsed_ms < 1_000 {
            return None;
        }
        // (ahead + 1) admissions at admitted_total per elapsed_ms.
        Some((ahead + 1).saturating_mul(elapsed_ms) / self.admitted_total / 1_000)
    }

    /// The user completed a booking: their admission ends now (no-op if not admitted).
    pub(crate) fn finish_admission(&mut self, user: &str) {
        self.drop_admission(user);
    }

    fn drop_admission(&mut self, user: &str) {
        if let Some(until) = self.admitted.remove(user) {
            let removed = self.admitted_by_deadline.remove(&(until, user.to_string()));
            debug_assert!(removed, "admitted and admitted_by_deadline must pair up");
        }
    }

    /// Open the sale if due (shuffling the pre-sale block with `seed`), drop admissions
    /// over at `now`, then admit waiting users in order while fewer than `max_admitted`
    /// are live. Returns the newly admitted users in admission order. Before `on_sale_at`
    /// nobody is admitted.
    pub(crate) fn admit(
        &mut self,
        now: Millis,
        seed: u64,
        on_sale_at: Millis,
        max_admitted: u32,
        admission_ms: u64,
    ) -> Vec<UserId> {
        if now < on_sale_at {
            return Vec::new();
        }
        if !self.opened {
            self.opened = true;
            self.opened_at = now;
            self.shuffle_presale(seed);
        }
        while let Some((until, user)) = self.admitted_by_deadline.first().cloned() {
            if until > now {
                break;
            }
            self.admitted_by_deadline.pop_first();
            self.admitted.remove(&user);
        }
        let mut out = Vec::new();
        while self.admitted.len() < max_admitted as usize {
            let Some((seq, user)) = self.waiting.pop_first() else { break };
            self.waiting_ranks.remove_one(seq as usize + 1);
            self.seq_of.remove(&user);
            let until = now.saturating_add(admission_ms);
            self.admitted.insert(user.clone(), until);
            self.admitted_by_deadline.insert((until, user.clone()));
            self.admitted_total += 1;
            out.push(user);
        }
        debug_assert_eq!(
            self.admitted.len(),
            self.admitted_by_deadline.len(),
            "admission indexes must pair up"
        );
        out
    }

    /// Fisher–Yates over the pre-sale block, driven by splitmix64 from `seed`. The shuffled
    /// users take the block's own sequence numbers, so they stay ahead of later joins.
    fn shuffle_presale(&mut self, seed: u64) {
        let seqs: Vec<u64> = self.waiting.range(..self.presale_end).map(|(s, _)| *s).collect();
        let mut users: Vec<UserId> = seqs.iter().map(|s| self.waiting[s].clone()).collect();
        let mut rng = SplitMix64(seed);
        for i in (1..users.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            users.swap(i, j);
        }
        for (seq, user) in seqs.into_iter().zip(users) {
            self.seq_of.insert(user.clone(), seq);
            self.waiting.insert(seq, user);
        }
    }

    /// Check the queue's own pairings; used by `Inventory::check_invariants`.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.waiting_ranks.0.len() as u64 != self.next_seq {
            return Err("queue: the rank index does not cover every sequence number".into());
        }
        for (rank, seq) in self.waiting.keys().enumerate() {
            if self.waiting_ranks.prefix(*seq as usize) != rank as u64 {
                return Err(format!("queue: the rank index puts {seq} off its place {rank}"));
            }
        }
        if self.waiting.len() != self.seq_of.len() {
            return Err("queue: waiting and seq_of differ in size".into());
        }
        for (seq, user) in &self.waiting {
            if self.seq_of.get(user) != Some(seq) {
                return Err(format!("queue: {user} at {seq} not in seq_of"));
            }
            if self.admitted.contains_key(user) {
                return Err(format!("queue: {user} both waiting and admitted"));
            }
        }
        let pairs: BTreeSet<(Millis, UserId)> = self.admitted.iter().map(|(u, t)| (*t, u.clone())).collect();
        if pairs != self.admitted_by_deadline {
            return Err("queue: admitted_by_deadline does not match admitted".into());
        }
        if self.next_seq < self.presale_end
            || self.waiting.last_key_value().is_some_and(|(s, _)| *s >= self.next_seq)
        {
            return Err("queue: sequence numbers out of range".into());
        }
        Ok(())
    }
}

/// A tiny deterministic PRNG (splitmix64); enough to order a queue fairly from a seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_stay_right_under_joins_leaves_and_admissions() {
        let mut q = Queue::default();
        let mut rng = SplitMix64(99);
        for step in 0..3_000u64 {
            let user = format!("u{}", rng.next() % 200);
            match rng.next() % 4 {
                0 | 1 => {
                    q.join(&user, step, 500).unwrap();
                }
                2 => {
                    let _ = q.leave(&user, step);
                }
                _ => {
                    q.admit(step, 5, 500, (rng.next() % 4) as u32, 50);
                }
            }
            q.check().unwrap();
            for (rank, user) in q.waiting_order().iter().enumerate() {
                assert_eq!(q.view(user, step).unwrap().ahead, rank as u64, "step {step}");
            }
        }
    }

    #[test]
    fn the_wait_estimate_follows_the_measured_admission_rate() {
        let mut q = Queue::default();
        for i in 0..10 {
            q.join(&format!("u{i}"), 0, 1_000).unwrap();
        }
        assert_eq!(q.estimated_wait_seconds(3, 0), None, "not open yet");
        // Two admitted at the opening (t = 1 s), two more when slots free up at t = 11 s.
        assert_eq!(q.admit(1_000, 1, 1_000, 2, 10_000).len(), 2);
        assert_eq!(q.estimated_wait_seconds(3, 1_000), None, "no time to measure yet");
        assert_eq!(q.admit(11_000, 1, 1_000, 2, 10_000).len(), 2);
        // 4 admissions in 10 s: someone with 3 ahead waits (3 + 1) * 10 / 4 = 10 s.
        assert_eq!(q.estimated_wait_seconds(3, 11_000), Some(10));
        assert_eq!(q.estimated_wait_seconds(0, 11_000), Some(2));
    }

    #[test]
    fn presale_joins_are_shuffled_then_fifo() {
        let mut q = Queue::default();
        for u in ["a", "b", "c", "d", "e"] {
            q.join(u, 10, 100).unwrap();
        }
        q.join("late", 150, 100).unwrap();
        assert!(q.admit(50, 7, 100, 0, 1000).is_empty(), "nobody before the sale");
        q.admit(150, 7, 100, 0, 1000);
        let order = q.waiting_order();
        assert_eq!(order.last().map(String::as_str), Some("late"));
        let mut again = Queue::default();
        for u in ["a", "b", "c", "d", "e"] {
            again.join(u, 10, 100).unwrap();
        }
        again.join("late", 150, 100).unwrap();
        again.admit(150, 7, 100, 0, 1000);
        assert_eq!(order, again.waiting_order(), "same seed, same order");
        q.check().unwrap();
    }

    #[test]
    fn the_seed_decides_the_order() {
        let order = |seed: u64| {
            let mut q = Queue::default();
            for u in ["a", "b", "c", "d", "e", "f", "g", "h"] {
                q.join(u, 10, 100).unwrap();
            }
            q.admit(100, seed, 100, 0, 1000);
            q.waiting_order()
        };
        let orders: std::collections::BTreeSet<Vec<UserId>> = (0..8).map(order).collect();
        assert!(orders.len() > 1, "different seeds should give different orders");
        let mut sorted = order(3);
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c", "d", "e", "f", "g", "h"], "a shuffle loses nobody");
    }

    #[test]
    fn admissions_are_bounded_and_expire() {
        let mut q = Queue::default();
        for u in ["a", "b", "c"] {
            q.join(u, 200, 100).unwrap();
        }
        assert_eq!(q.admit(200, 1, 100, 2, 50), ["a", "b"]);
        assert_eq!(q.admit(249, 1, 100, 2, 50), Vec::<UserId>::new());
        assert!(q.is_admitted("a", 249) && !q.is_admitted("a", 250));
        assert_eq!(q.admit(250, 1, 100, 2, 50), ["c"]);
        assert_eq!(q.len(), 1);
        q.check().unwrap();
    }
}
