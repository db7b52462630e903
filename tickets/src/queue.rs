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
//! - every admission that ends (the user leaves, books, or the admission runs out) leaves
//!   its duration in a window of the last [`ADMISSION_SAMPLES_MAX`], in log order: what
//!   [`Queue::estimate_wait`] learns the pace of the queue from (see "Wait estimates" below).
//!   A slot freed while users wait is remembered until the next admission fills it, which
//!   then dates from that moment.
//!
//! # Wait estimates
//!
//! [`Queue::estimate_wait`] is a pure function of the queue (applied log entries only) and
//! the reader's `now`, so every replica that reads at the same `now` gives the same answer.
//! With `m` = `max_admitted` slots, a waiting user `ahead` others back needs
//! `k = ahead + 1 - free` shoppers to finish (`free` = slots not live now: the first users
//! in line take them at once; if `k <= 0` the wait is the next admission, about now). The
//! slots then empty at about `m / S` per second, `S` being how long a shopper keeps a slot:
//!
//! ```text
//! wait(k) = r + (k - (m + 1) / 2) * S / m          (at least 0)
//! r       = S - age * (1 - cv²) / (1 + cv²)          (mean time left in a slot, cv capped at 1)
//! ```
//!
//! `age` is the mean age of the `m` slots (a free slot counts as a fresh admission, age 0)
//! and `cv` the spread of the durations (standard deviation / mean). `r` is exact at both
//! ends: fresh slots (`age` 0) have `S` left; slots in their steady state (mean age
//! `S (1 + cv²) / 2`) have `S (1 + cv²) / 2` left, as renewal theory says; memoryless
//! shoppers (`cv` 1) always have `S` left. The `(k - (m + 1) / 2)` centres the `k`-th
//! departure on the middle of the first round.
//!
//! `S` and `cv` come from the window of finished admissions, each timed from when its slot
//! went out of service (the admission, or the moment the slot was freed while users waited:
//! the leader's refill delay is part of a slot's cycle). Early in a sale the window only
//! holds the quick shoppers (the slow ones are still shopping), so `S` is the Kaplan–Meier
//! mean over the finished ones and the live ones, censored at their age (while there are at
//! most [`KM_LIVE_MAX`] live ones): the area under the survival curve up to the longest time
//! seen. `cv` comes from the same curve and is shrunk towards [`PRIOR_CV`] with
//! [`PRIOR_CV_WEIGHT`] pseudo-samples, so two lucky samples do not make the range tight.
//!
//! **Prior.** Before any admission of this event has ended there is nothing to measure: a
//! shopper takes somewhere between 1/64 of the admission window and all of it. The point uses
//! the geometric middle of that (a log-uniform prior): `S = admission / 8`; the range spans
//! the whole prior, `S` from `admission / 64` to `admission`. The window is stored with the
//! event, so it is the event's history: it survives restarts and snapshots.
//!
//! **Range.** With `n` samples the mean is known to `rel = 0.1 + 2 cv / √n` (10 % for what
//! the model leaves out, two standard errors for the rest); `wait(k)` is taken at
//! `S (1 - rel)` and `S (1 + rel)`, widened on both sides by two standard deviations of the
//! `k`-th departure at that pace, `σ √k / m` (`σ` = `cv S`). The range narrows as samples
//! arrive and always holds the point.
//!
//! Caveat: a waiting user's position is counted, `O(position)`; fine for the SSE poll rate
//! of a few per second per user, not for a per-request hot path over a million entries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::limits::QUEUE_ENTRIES_MAX;
use crate::{Millis, Rejection, UserId};

/// Finished admissions whose durations the wait estimate remembers (the most recent ones);
/// an older one drops out when a new one ends.
pub const ADMISSION_SAMPLES_MAX: usize = 32;
/// Before any admission has ended, a shopper is assumed to keep a slot for
/// `admission / PRIOR_DIVISOR` (the geometric middle of `admission / PRIOR_DIVISOR²` and
/// `admission`, the prior's range).
pub const PRIOR_DIVISOR: u64 = 8;
/// Most live admissions the pace estimate treats one by one (as shoppers still shopping);
/// with more, it uses the finished ones alone (a queue that admits this many at once is in
/// its steady state long before its first shoppers finish, and the window is unbiased then).
pub const KM_LIVE_MAX: usize = 256;
/// The spread (standard deviation / mean) of shopping times assumed before there are
/// samples, and what few samples are shrunk towards.
pub const PRIOR_CV: f64 = 0.5;
/// How many samples [`PRIOR_CV`] weighs as.
pub const PRIOR_CV_WEIGHT: f64 = 4.0;
/// The share of the estimate the range allows for what the model leaves out (the time the
/// leader takes to admit the next user, shoppers who change pace).
pub const MODEL_SLACK: f64 = 0.1;

/// How long a waiting user can expect to wait: a point and a range, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitEstimate {
    pub point_ms: u64,
    pub low_ms: u64,
    pub high_ms: u64,
    /// Finished admissions the estimate rests on (0: the prior alone).
    pub samples: u32,
}

/// One live (or not yet dropped) admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Admission {
    /// When its slot was taken out of service for it: the admission, or earlier, when the
    /// slot was freed while users waited and the leader admitted a moment later. So a
    /// duration counts the refill delay too: how long a slot is busy per shopper.
    since: Millis,
    until: Millis,
}

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
    /// Admitted users: since when, and when their admission ends (exclusive).
    admitted: BTreeMap<UserId, Admission>,
    /// Sum of `since` over `admitted`: the mean age of the admissions without a walk.
    since_sum: u128,
    /// Durations (ms) of the last [`ADMISSION_SAMPLES_MAX`] admissions that ended, oldest
    /// first: from `Admission::since` to leave, booking or the end of the admission.
    durations: VecDeque<Millis>,
    /// When slots were freed while users waited, oldest first, not yet refilled: the next
    /// admissions date from these. Emptied whenever nobody waits (an idle slot is not
    /// busy); at most [`ADMISSION_SAMPLES_MAX`].
    freed: VecDeque<Millis>,
    /// `admitted` ordered by deadline, to drop expired admissions and find the next one.
    admitted_by_deadline: BTreeSet<(Millis, UserId)>,
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
        self.admitted.get(user).is_some_and(|a| now < a.until)
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
        if let Some(a) = self.admitted.get(user) {
            if now < a.until {
                return Some(QueueView {
                    user: user.to_string().into(),
                    position: 0,
                    ahead: 0,
                    status: QueueStatus::Admitted,
                    admitted_until: Some(a.until),
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
            user: user.to_string().into(),
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
        self.drop_admission(user, now);
        if self.len() >= QUEUE_ENTRIES_MAX {
            return Err(Rejection::limit(format!("waiting queue is full ({QUEUE_ENTRIES_MAX} entries)")));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.opened && now < on_sale_at {
            debug_assert_eq!(self.presale_end, seq, "pre-sale joins must be one block at the front");
            self.presale_end = self.next_seq;
        }
        self.waiting.insert(seq, user.to_string().into());
        self.waiting_ranks.push(1);
        self.seq_of.insert(user.to_string().into(), seq);
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
        self.drop_admission(user, now);
        if self.waiting.is_empty() {
            self.freed.clear();
        }
        if !live && !removed_waiting {
            return Err(Rejection::not_found("queue entry"));
        }
        Ok(())
    }

    /// How long a waiting user with `ahead` others in front can expect to wait at `now`, in a
    /// queue of `max_admitted` slots of `admission_ms` each. See the module doc for the model.
    /// Pure: a function of the applied log and `now`.
    pub fn estimate_wait(
        &self,
        ahead: u64,
        now: Millis,
        max_admitted: u32,
        admission_ms: u64,
    ) -> WaitEstimate {
        let m = f64::from(max_admitted.max(1));
        let (live, age_sum_ms) = self.live_ages(now);
        let free = u64::from(max_admitted).saturating_sub(live);
        let samples = self.durations.len() as u32;
        if ahead < free {
            // A slot is free for this user: the leader admits them right away.
            return WaitEstimate { point_ms: 0, low_ms: 0, high_ms: 1_000, samples };
        }
        let k = (ahead + 1 - free) as f64;
        let mean_age = age_sum_ms / m;
        let wait = |s: f64, cv: f64| {
            let cv2 = cv.min(1.0).powi(2);
            let left = (s - mean_age * (1.0 - cv2) / (1.0 + cv2)).clamp(0.0, s);
            (left + (k - (m + 1.0) / 2.0) * s / m).max(0.0)
        };
        let (s, cv, s_low, s_high) = match self.pace(now) {
            None => {
                let admission = admission_ms.max(1) as f64;
                let divisor = PRIOR_DIVISOR as f64;
                (admission / divisor, PRIOR_CV, admission / (divisor * divisor), admission)
            }
            Some((s, cv, n)) => {
                let rel = (MODEL_SLACK + 2.0 * cv / n.sqrt()).min(0.9);
                (s, cv, s * (1.0 - rel), s * (1.0 + rel))
            }
        };
        // Two standard deviations of the k-th departure, at the pace of each end.
        let spread = |s: f64| 2.0 * cv * s * k.sqrt() / m;
        let point = wait(s, cv);
        let low = (wait(s_low, cv) - spread(s_low)).clamp(0.0, point);
        let high = (wait(s_high, cv) + spread(s_high)).max(point);
        debug_assert!(low <= point && point <= high, "the range holds the point");
        WaitEstimate {
            point_ms: point.round() as u64,
            low_ms: low.floor() as u64,
            high_ms: high.ceil() as u64,
            samples,
        }
    }

    /// Live admissions at `now` and the sum of their ages (ms).
    fn live_ages(&self, now: Millis) -> (u64, f64) {
        let mut count = self.admitted.len() as u64;
        let mut since_sum = self.since_sum;
        // Admissions over but not yet dropped sit at the front (the next admit drops them).
        for (until, user) in &self.admitted_by_deadline {
            if *until > now {
                break;
            }
            count -= 1;
            since_sum -= u128::from(self.admitted[user].since);
        }
        let ages = u128::from(now) * u128::from(count) - since_sum.min(u128::from(now) * u128::from(count));
        (count, ages as f64)
    }

    /// How long a shopper keeps a slot (mean, ms), the spread (cv) and the finished
    /// admissions they rest on; `None` before any admission ended.
    ///
    /// Kaplan–Meier over the window of finished durations and, while there are at most
    /// [`KM_LIVE_MAX`], the live admissions as censored at their age: early in a sale only
    /// the quick shoppers have finished, and the ones still shopping say how long the others
    /// take at least. The mean is the area under the survival curve up to the longest time
    /// seen (a lower bound while the longest is still shopping).
    fn pace(&self, now: Millis) -> Option<(f64, f64, f64)> {
        if self.durations.is_empty() {
            return None;
        }
        let finished = self.durations.len();
        let mut seen: Vec<(Millis, bool)> = self.durations.iter().map(|d| (*d, true)).collect();
        let (live, _) = self.live_ages(now);
        if live as usize <= KM_LIVE_MAX {
            seen.extend(
                self.admitted_by_deadline
                    .iter()
                    .filter(|(until, _)| *until > now)
                    .map(|(_, user)| (now.saturating_sub(self.admitted[user].since), false)),
            );
        }
        // Finished before censored at the same time (the usual tie rule).
        seen.sort_unstable_by_key(|(t, done)| (*t, !*done));
        let (mut at_risk, mut survival, mut prev) = (seen.len() as f64, 1.0f64, 0.0f64);
        let (mut mean, mut second) = (0.0f64, 0.0f64);
        for (t, done) in seen {
            let t = t as f64;
            mean += survival * (t - prev);
            second += survival * (t * t - prev * prev);
            prev = t;
            if done {
                survival *= (at_risk - 1.0) / at_risk;
            }
            at_risk -= 1.0;
        }
        let n = finished as f64;
        if mean <= 0.0 {
            return Some((0.0, PRIOR_CV, n));
        }
        let sd = (second - mean * mean).max(0.0).sqrt();
        let cv = (sd / mean * n + PRIOR_CV * PRIOR_CV_WEIGHT) / (n + PRIOR_CV_WEIGHT);
        Some((mean, cv, n))
    }

    /// Durations of the last finished admissions (ms), oldest first.
    pub fn admission_durations(&self) -> impl Iterator<Item = Millis> + '_ {
        self.durations.iter().copied()
    }

    /// The user completed a booking: their admission ends now (no-op if not admitted).
    pub(crate) fn finish_admission(&mut self, user: &str, now: Millis) {
        self.drop_admission(user, now);
    }

    /// End `user`'s admission (if any) at `now`, or when it ran out if that was earlier,
    /// and remember how long it lasted.
    fn drop_admission(&mut self, user: &str, now: Millis) {
        if let Some(a) = self.admitted.remove(user) {
            let removed = self.admitted_by_deadline.remove(&(a.until, user.to_string().into()));
            debug_assert!(removed, "admitted and admitted_by_deadline must pair up");
            self.since_sum -= u128::from(a.since);
            let ended = now.min(a.until);
            self.record_duration(ended.saturating_sub(a.since));
            if !self.waiting.is_empty() {
                if self.freed.len() == ADMISSION_SAMPLES_MAX {
                    self.freed.pop_front();
                }
                self.freed.push_back(ended);
            }
        }
    }

    fn record_duration(&mut self, ms: Millis) {
        if self.durations.len() == ADMISSION_SAMPLES_MAX {
            self.durations.pop_front();
        }
        self.durations.push_back(ms);
        debug_assert!(self.durations.len() <= ADMISSION_SAMPLES_MAX);
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
            self.shuffle_presale(seed);
        }
        while let Some((until, user)) = self.admitted_by_deadline.first().cloned() {
            if until > now {
                break;
            }
            self.drop_admission(&user, now);
        }
        let mut out = Vec::new();
        while self.admitted.len() < max_admitted as usize {
            let Some((seq, user)) = self.waiting.pop_first() else { break };
            self.waiting_ranks.remove_one(seq as usize + 1);
            self.seq_of.remove(&user);
            let until = now.saturating_add(admission_ms);
            let since = self.freed.pop_front().map_or(now, |freed| freed.min(now));
            self.admitted.insert(user.clone(), Admission { since, until });
            self.since_sum += u128::from(since);
            self.admitted_by_deadline.insert((until, user.clone()));
            out.push(user);
        }
        if self.waiting.is_empty() {
            self.freed.clear();
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
        let pairs: BTreeSet<(Millis, UserId)> =
            self.admitted.iter().map(|(u, a)| (a.until, u.clone())).collect();
        if pairs != self.admitted_by_deadline {
            return Err("queue: admitted_by_deadline does not match admitted".into());
        }
        if self.admitted.values().map(|a| u128::from(a.since)).sum::<u128>() != self.since_sum {
            return Err("queue: since_sum does not match admitted".into());
        }
        if self.admitted.values().any(|a| a.since > a.until) {
            return Err("queue: an admission ends before it starts".into());
        }
        if self.durations.len() > ADMISSION_SAMPLES_MAX || self.freed.len() > ADMISSION_SAMPLES_MAX {
            return Err("queue: too many admission durations or freed slots kept".into());
        }
        if self.waiting.is_empty() && !self.freed.is_empty() {
            return Err("queue: freed slots remembered with nobody waiting".into());
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

    /// A queue of `m` slots opened at 0 with `waiting` users behind the first `m`, whose
    /// first `finished` shoppers each took `took` ms (all done by `took`).
    fn busy_queue(m: u32, waiting: usize, finished: usize, took: Millis) -> Queue {
        let mut q = Queue::default();
        for i in 0..m as usize + waiting {
            q.join(&format!("u{i:04}"), 0, 0).unwrap();
        }
        q.admit(0, 1, 0, m, 30_000);
        for i in 0..finished {
            let user = format!("u{i:04}");
            q.leave(&user, took).unwrap();
            q.admit(took, 1, 0, m, 30_000);
        }
        q.check().unwrap();
        q
    }

    #[test]
    fn before_anyone_finishes_the_estimate_is_the_prior_and_wide() {
        let q = busy_queue(5, 40, 0, 0);
        let e = q.estimate_wait(24, 100, 5, 30_000);
        assert_eq!(e.samples, 0);
        // S = 30 s / 8 = 3.75 s; fresh slots: r = S; k = 25: 3.75 + (25 - 3) * 0.75 = 20.25 s.
        assert_eq!(e.point_ms, 20_250 - 100 * 3 / 5, "slots 100 ms old have a little less left");
        assert!(e.low_ms <= 20_250 / 8 && e.high_ms >= 20_250 * 8, "wide: {e:?}");
    }

    #[test]
    fn the_estimate_follows_the_shopping_time_the_log_shows() {
        // Five shoppers took 600 ms each; the five admitted after them are fresh.
        let q = busy_queue(5, 40, 5, 600);
        let e = q.estimate_wait(24, 600, 5, 30_000);
        assert_eq!(e.samples, 5);
        // S = 600 ms, fresh slots: 600 + (25 - 3) * 120 = 3,240 ms.
        assert_eq!(e.point_ms, 3_240);
        // Five equal samples: cv shrinks from 0 to (0 × 5 + 0.5 × 4) / 9 = 0.222; the mean is
        // known to rel = 0.1 + 2 × 0.222 / √5 = 0.299, so S runs 421..779 ms; each end
        // widened by 2 × 0.222 × S × √25 / 5.
        assert_eq!((e.low_ms, e.high_ms), (2_085, 4_555), "{e:?}");
    }

    #[test]
    fn a_free_slot_means_no_wait() {
        let mut q = Queue::default();
        q.join("a", 0, 0).unwrap();
        q.admit(0, 1, 0, 5, 30_000);
        q.join("b", 10, 0).unwrap();
        let e = q.estimate_wait(q.view("b", 10).unwrap().ahead, 10, 5, 30_000);
        assert_eq!((e.point_ms, e.low_ms), (0, 0));
    }

    #[test]
    fn durations_end_at_leave_booking_or_expiry_and_the_window_is_bounded() {
        let mut q = Queue::default();
        for u in ["a", "b", "c"] {
            q.join(u, 0, 0).unwrap();
        }
        q.admit(0, 1, 0, 3, 1_000);
        q.leave("a", 300).unwrap();
        q.finish_admission("b", 500);
        q.admit(5_000, 1, 0, 3, 1_000); // c ran out at 1,000
        assert_eq!(q.admission_durations().collect::<Vec<_>>(), [300, 500, 1_000]);
        for i in 0..ADMISSION_SAMPLES_MAX as u64 + 10 {
            let user = format!("x{i}");
            q.join(&user, 10_000 + i * 10, 0).unwrap();
            q.admit(10_000 + i * 10, 1, 0, 3, 1_000);
            q.leave(&user, 10_000 + i * 10 + 7).unwrap();
        }
        assert_eq!(q.admission_durations().count(), ADMISSION_SAMPLES_MAX);
        assert!(q.admission_durations().all(|d| d == 7), "the oldest drop out first");
        q.check().unwrap();
    }

    #[test]
    fn shoppers_still_shopping_count_as_at_least_their_age() {
        // Three admitted at 0; one leaves at 300 ms, two are still in at 500 ms.
        let mut q = Queue::default();
        for u in ["a", "b", "c", "d"] {
            q.join(u, 0, 0).unwrap();
        }
        q.admit(0, 1, 0, 3, 30_000);
        q.leave("a", 300).unwrap();
        q.admit(300, 1, 0, 3, 30_000); // d, fresh
        let (mean, _, n) = q.pace(500).unwrap();
        // Survival 1 until 300 ms (d, censored at 200, is at risk before), then 2/3 of the
        // three at risk go on to 500: 300 + 200 × 2/3. The finished one alone said 300.
        assert_eq!(n, 1.0);
        assert!((mean - (300.0 + 200.0 * 2.0 / 3.0)).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn a_slot_freed_while_users_wait_is_busy_until_refilled() {
        let mut q = Queue::default();
        for u in ["a", "b"] {
            q.join(u, 0, 0).unwrap();
        }
        q.admit(0, 1, 0, 1, 30_000);
        q.leave("a", 600).unwrap(); // b waits
        q.admit(650, 1, 0, 1, 30_000); // the leader refills 50 ms later
        q.leave("b", 1_250).unwrap();
        assert_eq!(q.admission_durations().collect::<Vec<_>>(), [600, 650], "b's slot was out from 600");
        // Nobody waits: a slot freed now is idle, not busy.
        q.join("c", 2_000, 0).unwrap();
        q.admit(2_000, 1, 0, 1, 30_000);
        q.leave("c", 2_100).unwrap();
        assert_eq!(q.admission_durations().last(), Some(100));
        q.check().unwrap();
    }

    /// A random history: joins, leaves, bookings and admits over time, from `ops`.
    fn history(ops: &[(u8, u8, u16)], m: u32, admission_ms: u64) -> (Queue, Millis) {
        let mut q = Queue::default();
        let mut now = 0;
        for (op, user, dt) in ops {
            now += Millis::from(*dt);
            let user = format!("u{user}");
            match op % 4 {
                0 => {
                    let _ = q.join(&user, now, 0);
                }
                1 => {
                    let _ = q.leave(&user, now);
                }
                2 => q.finish_admission(&user, now),
                _ => {
                    q.admit(now, 3, 0, m, admission_ms);
                }
            }
        }
        q.check().unwrap();
        (q, now)
    }

    /// A queue of 5 slots (10-minute admissions) in which `n` shoppers have finished, each
    /// after a duration from `durations` (in turn), with 60 more waiting; and the time now.
    fn with_samples(n: usize, durations: &[Millis]) -> (Queue, Millis) {
        let mut q = Queue::default();
        for i in 0..n + 65 {
            q.join(&format!("u{i:04}"), 0, 0).unwrap();
        }
        let mut next = durations.iter().cycle();
        let mut ends: BTreeSet<(Millis, UserId)> = BTreeSet::new();
        let mut now = 0;
        for _ in 0..=n {
            for user in q.admit(now, 1, 0, 5, 600_000) {
                ends.insert((now + next.next().unwrap(), user));
            }
            if q.durations.len() == n {
                break;
            }
            let (end, user) = ends.pop_first().unwrap();
            now = end;
            q.leave(&user, now).unwrap();
        }
        assert_eq!(q.durations.len(), n);
        q.check().unwrap();
        (q, now)
    }

    proptest::proptest! {
        #[test]
        fn the_range_holds_the_point_and_grows_with_the_place(
            ops in proptest::collection::vec((0u8..4, 0u8..30, 0u16..2_000), 0..300),
            m in 1u32..8,
            admission_s in 1u64..600,
            ahead in 0u64..50,
            later in 0u64..10_000,
        ) {
            let (q, now) = history(&ops, m, admission_s * 1_000);
            let now = now + later;
            let e = q.estimate_wait(ahead, now, m, admission_s * 1_000);
            proptest::prop_assert!(e.low_ms <= e.point_ms && e.point_ms <= e.high_ms, "{e:?}");
            let next = q.estimate_wait(ahead + 1, now, m, admission_s * 1_000);
            proptest::prop_assert!(
                e.point_ms <= next.point_ms && e.low_ms <= next.low_ms && e.high_ms <= next.high_ms,
                "further back never waits less: {e:?} then {next:?}"
            );
            // What a replica decodes from a snapshot estimates the same.
            let copy: Queue = serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
            proptest::prop_assert_eq!(copy.estimate_wait(ahead, now, m, admission_s * 1_000), e);
        }

        #[test]
        fn the_range_narrows_as_shoppers_finish(
            base in 200u64..100_000,
            spread_pct in 0u64..100,
            seed in 0u64..1_000,
        ) {
            let mut rng = SplitMix64(seed);
            let durations: Vec<Millis> =
                (0..64).map(|_| base + rng.next() % (base * spread_pct / 100 + 1)).collect();
            let width = |n: usize| {
                let (q, now) = with_samples(n, &durations);
                let e = q.estimate_wait(30, now, 5, 600_000);
                (e.high_ms - e.low_ms) as f64 / e.point_ms.max(1) as f64
            };
            let (prior, few, many) = (width(0), width(3), width(32));
            proptest::prop_assert!(prior > few && few > many, "widths {prior} > {few} > {many}");
        }
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
        assert_eq!(order.last().map(UserId::as_str), Some("late"));
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
