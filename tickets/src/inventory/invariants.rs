//! `check_invariants`: everything that must hold between commands, checked from scratch.
//! `O(tickets + holds + bookings)`; for tests and for debugging a snapshot, not for apply.

use std::collections::BTreeSet;

use super::derived::Derived;
use super::{BookingStatus, HoldStatus, Inventory, TicketState, ENDED_HOLDS_MAX};

impl Inventory {
    /// Check every invariant; the first violation is returned as a sentence.
    ///
    /// - one ticket state per ticket of the layout;
    /// - every `Held` ticket's hold is live and lists it, and every live hold holds all its
    ///   tickets (so no ticket is in two live holds);
    /// - expiry is exact: no `Active` hold is past its expiry at the machine's `now`;
    /// - every `Sold` ticket is in exactly one booking that is not refunded, and every such
    ///   booking's tickets are sold; a booking's hold is `Confirmed`; a refunded booking has
    ///   its refund's reference and time, a pending or refunded one its attempt;
    /// - a hold id is live, ended or booked, never two of these; ended holds are `Expired`
    ///   or `Released`, at most [`ENDED_HOLDS_MAX`] of them;
    /// - no user has more than the per-user limit at the machine's `now`;
    /// - the waiting list: one entry per user, in known sections, numbered below the next
    ///   number; an offered entry's hold is live, carries the entry's hold id, user and
    ///   quantity, in its section; a waiting entry's hold id is used by no hold;
    /// - the derived indexes (free seats included) equal a rebuild from the stored core.
    pub fn check_invariants(&self) -> Result<(), String> {
        let core = &self.core;
        let Some(setup) = &core.setup else {
            return if core.states.is_empty() && core.holds.is_empty() && core.bookings.is_empty() {
                Ok(())
            } else {
                Err("not set up, yet has tickets, holds or bookings".into())
            };
        };
        let layout = &self.derived.layout;
        if core.states.len() != layout.count() {
            return Err(format!("{} states for {} tickets", core.states.len(), layout.count()));
        }
        let now = self.now();
        let mut sold_tickets = BTreeSet::new();
        for (i, state) in core.states.iter().enumerate() {
            let id = layout.id(i as u32);
            match state {
                TicketState::Available => {}
                TicketState::Held(no) => {
                    let Some(hold) = core.holds.get(no) else {
                        return Err(format!("{id} held by missing hold {no}"));
                    };
                    if !hold.tickets.contains(&(i as u32)) {
                        return Err(format!("{id} held by {}, which does not list it", hold.id));
                    }
                }
                TicketState::Sold => {
                    sold_tickets.insert(i as u32);
                }
            }
        }
        let mut ids = BTreeSet::new();
        for (no, hold) in &core.holds {
            if hold.no != *no || !ids.insert(hold.id.clone()) {
                return Err(format!("live hold {} filed under {no} or listed twice", hold.id));
            }
            if !matches!(hold.status, HoldStatus::Active | HoldStatus::Confirming) {
                return Err(format!("live hold {} is {:?}", hold.id, hold.status));
            }
            if hold.status == HoldStatus::Active && hold.expires_at <= now {
                return Err(format!(
                    "hold {} is active past its expiry {} at {now}",
                    hold.id, hold.expires_at
                ));
            }
            if hold.status == HoldStatus::Confirming && hold.payment.is_none() {
                return Err(format!("confirming hold {} has no payment", hold.id));
            }
            if hold.no >= core.next_hold_no {
                return Err(format!("hold {} has number {} >= next {}", hold.id, hold.no, core.next_hold_no));
            }
            for t in &hold.tickets {
                if core.states.get(*t as usize) != Some(&TicketState::Held(*no)) {
                    return Err(format!("live hold {} lists ticket {t}, which is not held by it", hold.id));
                }
            }
        }
        if core.ended.len() > ENDED_HOLDS_MAX {
            return Err(format!("{} ended holds kept, more than {ENDED_HOLDS_MAX}", core.ended.len()));
        }
        for ((ended_at, no), hold) in &core.ended {
            if hold.no != *no
                || *ended_at > now
                || !matches!(hold.status, HoldStatus::Expired | HoldStatus::Released)
            {
                return Err(format!(
                    "ended hold {} is {:?}, filed at ({ended_at}, {no})",
                    hold.id, hold.status
                ));
            }
            if !ids.insert(hold.id.clone()) {
                return Err(format!("hold {} is both live and ended, or ended twice", hold.id));
            }
        }
        let mut in_bookings = BTreeSet::new();
        for (id, booking) in &core.bookings {
            if booking.id != *id || booking.hold.status != HoldStatus::Confirmed {
                return Err(format!("booking {id}'s hold {} is {:?}", booking.hold.id, booking.hold.status));
            }
            if !ids.insert(booking.hold.id.clone()) {
                return Err(format!(
                    "hold {} is booked and also live, ended or booked twice",
                    booking.hold.id
                ));
            }
            match booking.status {
                BookingStatus::Refunded if booking.refund_ref.is_none() || booking.refunded_at.is_none() => {
                    return Err(format!("refunded booking {id} has no refund reference or time"));
                }
                BookingStatus::RefundPending | BookingStatus::Refunded if booking.refund.is_none() => {
                    return Err(format!("booking {id} is {:?} without a refund attempt", booking.status));
                }
                // A refunded booking's tickets went back on sale: they may be anything now.
                BookingStatus::Refunded => continue,
                _ => {}
            }
            for t in &booking.hold.tickets {
                if !in_bookings.insert(*t) {
                    return Err(format!("{} is in two bookings", layout.id(*t)));
                }
                if core.states.get(*t as usize) != Some(&TicketState::Sold) {
                    return Err(format!("booking {id} lists {}, which is not sold", layout.id(*t)));
                }
            }
        }
        if sold_tickets != in_bookings {
            return Err(format!(
                "{} tickets sold but bookings list {}",
                sold_tickets.len(),
                in_bookings.len()
            ));
        }
        let users: BTreeSet<&str> = core
            .holds
            .values()
            .map(|h| &*h.user)
            .chain(core.bookings.values().map(|b| &*b.hold.user))
            .collect();
        for user in users {
            let has = self.tickets_of_user(user, now);
            if has > u64::from(setup.per_user_limit) {
                return Err(format!("{user} has {has} tickets, over the limit {}", setup.per_user_limit));
            }
        }
        self.check_waitlist(&ids)?;
        self.check_outbox()?;
        core.queue.check()?;
        self.derived.free.check(layout, |i| core.states[i as usize] == TicketState::Available)?;
        let rebuilt = Derived::rebuild(core)?;
        if rebuilt != self.derived {
            return Err(format!(
                "derived indexes out of step:\n stored  {:?}\n rebuilt {:?}",
                self.derived, rebuilt
            ));
        }
        Ok(())
    }

    /// Notices numbered without repeats, oldest first, none past the last number given.
    fn check_outbox(&self) -> Result<(), String> {
        let mut last = 0;
        for n in &self.core.outbox {
            if n.seq <= last || n.seq > self.core.next_notice_seq {
                return Err(format!(
                    "notice {} after {last} (last given {})",
                    n.seq, self.core.next_notice_seq
                ));
            }
            last = n.seq;
        }
        if self.core.outbox.len() > super::OUTBOX_MAX {
            return Err(format!("{} notices wait, more than {}", self.core.outbox.len(), super::OUTBOX_MAX));
        }
        Ok(())
    }

    fn check_waitlist(&self, hold_ids: &BTreeSet<std::sync::Arc<str>>) -> Result<(), String> {
        let core = &self.core;
        let layout = &self.derived.layout;
        let mut users = BTreeSet::new();
        for (seq, entry) in &core.waitlist {
            if entry.seq != *seq || *seq >= core.next_wait_seq {
                return Err(format!("waiting-list entry {} filed under {seq}", entry.seq));
            }
            if !users.insert(entry.user.clone()) {
                return Err(format!("{} is on the waiting list twice", entry.user));
            }
            let Some(section) = layout.sections().get(entry.section as usize) else {
                return Err(format!("waiting-list entry {seq} names section {}", entry.section));
            };
            match entry.offered {
                Some(no) => {
                    let Some(hold) = core.holds.get(&no) else {
                        return Err(format!("entry {seq}'s offer {no} is not a live hold"));
                    };
                    if hold.id != entry.offer_hold_id
                        || hold.user != entry.user
                        || hold.tickets.len() != entry.quantity as usize
                        || !hold
                            .tickets
                            .iter()
                            .all(|t| (section.start..section.start + section.len).contains(t))
                    {
                        return Err(format!("entry {seq}'s offer {} is not what it asked for", hold.id));
                    }
                }
                None if hold_ids.contains(&entry.offer_hold_id) => {
                    return Err(format!("waiting entry {seq}'s hold id {} is used", entry.offer_hold_id));
                }
                None => {}
            }
        }
        Ok(())
    }
}
