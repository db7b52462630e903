//! The waiting list: buyers who want `quantity` tickets of a section of an event whose
//! seats are gone. When seats of that section come back (a hold expires or is released, a
//! booking is refunded, an offer lapses), the first entry that fits gets an **offer**: an
//! ordinary hold made for it in the same apply, so the returned seats never reach anyone
//! else first. The entry's holder confirms it as any hold; if it lapses (or they release
//! it, or leave the list) the entry is gone and its seats go to the next entry.
//!
//! Rules:
//! - One entry per user and event. Joining checks what a reserve checks (the event is on
//!   sale, queue admission, quantity `1..=TICKETS_PER_HOLD_MAX`, a known section, the
//!   per-user limit counting the entry's quantity), in that order, then: already on the
//!   list is `conflict`; a full list ([`WAITLIST_ENTRIES_MAX`]) is `limit_exceeded`.
//! - The offer's hold id is chosen by the node at join (`offer_hold_id`, in the command),
//!   so replies stay deterministic, and a join delivered twice (same user, same id) is
//!   answered with its entry, changing nothing.
//! - Offers go in join order within a section (FIFO): after every command that may have
//!   returned seats, each section where a ticket became available (or where a user whose
//!   tickets went back waits) is offered to its waiting entries oldest first; an entry that does not fit (no `quantity` adjacent seats
//!   in one row, not enough general places, or its user at the per-user limit) is passed
//!   over and keeps its place. At most [`WAITLIST_PASSES_MAX`] entries are passed over per
//!   section and command, so a command's cost stays bounded; entries further back are
//!   offered when seats next come back.
//! - One offer at a time per entry. An offer is a hold of `offer_ms` (the event's setting),
//!   not extended past what any hold may be. No offers while the event is not on sale, past
//!   its `sales_end`, or cancelled (a cancel empties the list of its waiting entries).
//! - Seats freed at the start of a command (expiry) are offered before the command itself
//!   runs, so a reserve in the same entry cannot take them ahead of the list.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Changes, Hold, HoldStatus, Inventory, InventoryReply, Outcome, TicketStatus};
use crate::layout::SectionTickets;
use crate::limits::TICKETS_PER_HOLD_MAX;
use crate::{HoldId, Millis, Rejection, UserId};

/// Most entries one event's waiting list keeps; one more join is `limit_exceeded`.
pub const WAITLIST_ENTRIES_MAX: usize = 100_000;
/// Most waiting entries passed over (they did not fit) per section in one command.
pub const WAITLIST_PASSES_MAX: usize = 16;

/// An entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WaitRecord {
    /// Join order, unique within the event.
    pub seq: u64,
    pub user: Arc<str>,
    /// The section's index in the layout.
    pub section: u32,
    pub quantity: u32,
    pub joined_at: Millis,
    /// The id the offer's hold gets.
    pub offer_hold_id: Arc<str>,
    /// The offer's live hold number, once offered.
    pub offered: Option<u64>,
}

/// Where an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitlistStatus {
    Waiting,
    Offered,
}

/// An entry as the rules answer it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistEntry {
    pub user: UserId,
    pub section: String,
    pub quantity: u32,
    pub joined_at: Millis,
    /// 1-based among the section's waiting entries; 0 once offered.
    pub position: u64,
    pub status: WaitlistStatus,
    /// The offer's hold, once offered.
    pub offer: Option<Hold>,
}

impl Inventory {
    pub(super) fn waitlist_join(
        &mut self,
        user: UserId,
        section: String,
        quantity: u32,
        offer_hold_id: HoldId,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        if let Some(seq) = self.derived.wait_users.get(user.as_str()) {
            if *self.core.waitlist[seq].offer_hold_id == *offer_hold_id {
                return Ok(Outcome::Waitlist(Box::new(self.entry_view(*seq, now))));
            }
        }
        self.check_selling(&user, now)?;
        if self.derived.wait_users.contains_key(user.as_str()) {
            return Err(Rejection::Conflict { detail: "already on this event's waiting list".into() });
        }
        if self.find_hold(&offer_hold_id).is_some()
            || self.derived.wait_hold_ids.contains_key(&*offer_hold_id)
        {
            return Err(Rejection::invalid("hold_id", "hold id already used"));
        }
        if quantity == 0 || quantity > TICKETS_PER_HOLD_MAX {
            return Err(Rejection::limit(format!("a hold has 1..={TICKETS_PER_HOLD_MAX} tickets")));
        }
        let Some(s) = self.derived.layout.sections().iter().position(|s| s.name == section) else {
            return Err(Rejection::invalid("section", format!("no section {section}")));
        };
        self.check_user_limit(&user, u64::from(quantity), now)?;
        if self.core.waitlist.len() >= WAITLIST_ENTRIES_MAX {
            return Err(Rejection::limit(format!(
                "the waiting list is full ({WAITLIST_ENTRIES_MAX} entries)"
            )));
        }
        let seq = self.core.next_wait_seq;
        self.core.next_wait_seq += 1;
        let record = Arc::new(WaitRecord {
            seq,
            user: Arc::from(user.into_string()),
            section: s as u32,
            quantity,
            joined_at: now,
            offer_hold_id: Arc::from(offer_hold_id.into_string()),
            offered: None,
        });
        self.derived.index_wait(&record);
        self.core.waitlist.insert(seq, record);
        // Seats may be free already (nobody waiting fitted them): offer at once.
        self.offer_in(s as u32, now, changes);
        Ok(Outcome::Waitlist(Box::new(self.entry_view(seq, now))))
    }

    /// Leave the list; an offer not being paid for is released (its seats go to the next).
    pub(super) fn waitlist_leave(
        &mut self,
        user: UserId,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        let Some(&seq) = self.derived.wait_users.get(user.as_str()) else {
            return Err(Rejection::not_found("waitlist entry"));
        };
        let entry = self.entry_view(seq, now);
        let record = self.remove_wait(seq);
        if let Some(no) = record.offered {
            if self.core.holds.get(&no).is_some_and(|h| h.status == HoldStatus::Active) {
                self.end_hold(no, HoldStatus::Released, now, changes);
            }
        }
        Ok(Outcome::Waitlist(Box::new(entry)))
    }

    /// The hold numbered `no` left the live holds (expired, released or confirmed): if it
    /// was an offer, its entry is done.
    pub(super) fn offer_ended(&mut self, no: u64) {
        if let Some(seq) = self.derived.offers.get(&no).copied() {
            self.remove_wait(seq);
        }
    }

    /// Drop every waiting entry (the event was cancelled); offers stay ordinary holds.
    pub(super) fn waitlist_close(&mut self) {
        let waiting: Vec<u64> =
            self.core.waitlist.values().filter(|r| r.offered.is_none()).map(|r| r.seq).collect();
        for seq in waiting {
            self.remove_wait(seq);
        }
    }

    /// Offer the seats `changes` returned to the list, section by section.
    pub(super) fn offer_returned(&mut self, now: Millis, changes: &mut Changes) {
        if self.derived.waiting_count == 0 {
            return;
        }
        let layout = self.derived.layout.clone();
        let mut sections: BTreeSet<u32> = changes
            .iter()
            .filter(|(_, status)| *status == TicketStatus::Available)
            .map(|(i, _)| layout.place(i).section as u32)
            .collect();
        // A user below their limit again may fit seats that were free all along.
        for user in changes.users_freed() {
            if let Some(record) = self.derived.wait_users.get(user).map(|seq| &self.core.waitlist[seq]) {
                if record.offered.is_none() {
                    sections.insert(record.section);
                }
            }
        }
        for s in sections {
            self.offer_in(s, now, changes);
        }
    }

    /// Offer every section that has waiting entries (after the sales window moved).
    pub(super) fn offer_everywhere(&mut self, now: Millis, changes: &mut Changes) {
        let sections: Vec<u32> = (0..self.derived.waiting.len() as u32)
            .filter(|s| !self.derived.waiting[*s as usize].is_empty())
            .collect();
        for s in sections {
            self.offer_in(s, now, changes);
        }
    }

    /// Offer section `s`'s free seats to its waiting entries, oldest first.
    fn offer_in(&mut self, s: u32, now: Millis, changes: &mut Changes) {
        let setup = self.core.setup.as_ref().expect("set up");
        if self.core.cancelled || now < setup.on_sale_at || now >= setup.sales_end {
            return;
        }
        let offer_ms = setup.waitlist_offer_ms;
        let limit = u64::from(setup.per_user_limit);
        let mut passed = 0;
        let mut next = 0;
        while passed < WAITLIST_PASSES_MAX {
            let Some(&seq) = self.derived.waiting.get(s as usize).and_then(|w| w.range(next..).next()) else {
                return;
            };
            next = seq + 1;
            let record = self.core.waitlist[&seq].clone();
            let layout = &self.derived.layout;
            let fits = self.tickets_of_user(&record.user, now) + u64::from(record.quantity) <= limit;
            let found = fits
                .then(|| match &layout.sections()[s as usize].tickets {
                    SectionTickets::Seated { .. } => {
                        self.derived.free.best_in_rows(layout, s as usize, record.quantity)
                    }
                    SectionTickets::General { start, len } => {
                        self.derived.free.lowest(*start, *len, record.quantity)
                    }
                })
                .flatten();
            let Some(picked) = found else {
                passed += 1;
                continue;
            };
            let hold = self.take(
                HoldId::from(&*record.offer_hold_id),
                record.user.to_string().into(),
                picked,
                now,
                offer_ms,
                changes,
            );
            let view = self.view(&hold);
            self.notify_hold(super::NoticeKind::WaitlistOffered, view, now);
            self.derived.unindex_wait(&record);
            let record = Arc::new(WaitRecord { offered: Some(hold.no), ..(*record).clone() });
            self.derived.index_wait(&record);
            self.core.waitlist.insert(seq, record);
        }
    }

    fn remove_wait(&mut self, seq: u64) -> Arc<WaitRecord> {
        let record = self.core.waitlist.remove(&seq).expect("remove_wait of a missing entry");
        self.derived.unindex_wait(&record);
        record
    }

    /// `user`'s entry at `now`; an offer that has lapsed by `now` (and that no command has
    /// ended yet) reads as no entry.
    pub fn waitlist_entry(&self, user: &str, now: Millis) -> Option<WaitlistEntry> {
        let seq = *self.derived.wait_users.get(user)?;
        let entry = self.entry_view(seq, now);
        match &entry.offer {
            Some(hold) if hold.status_at(now) == HoldStatus::Expired => None,
            _ => Some(entry),
        }
    }

    /// Entries on the list (waiting or offered).
    pub fn waitlist_len(&self) -> usize {
        self.core.waitlist.len()
    }

    /// Every entry in join order, as of `now` (for tests and operators).
    pub fn waitlist(&self, now: Millis) -> Vec<WaitlistEntry> {
        self.core.waitlist.keys().map(|seq| self.entry_view(*seq, now)).collect()
    }

    fn entry_view(&self, seq: u64, _now: Millis) -> WaitlistEntry {
        let record = &self.core.waitlist[&seq];
        let layout = &self.derived.layout;
        let (position, status, offer) = match record.offered {
            Some(no) => (0, WaitlistStatus::Offered, Some(self.view(&self.core.holds[&no]))),
            None => {
                let ahead = self.derived.waiting[record.section as usize].range(..seq).count() as u64;
                (ahead + 1, WaitlistStatus::Waiting, None)
            }
        };
        WaitlistEntry {
            user: record.user.to_string().into(),
            section: layout.sections()[record.section as usize].name.clone(),
            quantity: record.quantity,
            joined_at: record.joined_at,
            position,
            status,
            offer,
        }
    }
}
