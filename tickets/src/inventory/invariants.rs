//! `check_invariants`: everything that must hold between commands, checked from scratch.
//! `O(tickets + holds + bookings)`; for tests and for debugging a snapshot, not for apply.

use std::collections::BTreeSet;

use super::derived::Derived;
use super::{HoldStatus, Inventory, TicketState};

impl Inventory {
    /// Check every invariant; the first violation is returned as a sentence.
    ///
    /// - ticket states and the id index match the setup's tickets;
    /// - every `Held` ticket's hold exists, is `Active` or `Confirming` and lists it, and
    ///   every such hold holds all its tickets (so no ticket is in two live holds);
    /// - every `Sold` ticket's booking exists and lists it, every booking's tickets are sold
    ///   to it, and a booking's hold is `Confirmed` with that booking;
    /// - sold count == sum of booking ticket counts;
    /// - no user has more than the per-user limit at the machine's `now`;
    /// - the derived indexes equal a rebuild from the primary fields.
    pub fn check_invariants(&self) -> Result<(), String> {
        let Some(setup) = &self.setup else {
            return if self.states.is_empty() && self.index.is_empty() && self.holds.is_empty() {
                Ok(())
            } else {
                Err("not set up, yet has tickets or holds".into())
            };
        };
        if self.states.len() != setup.tickets.len() || self.index.len() != setup.tickets.len() {
            return Err("states / index / tickets differ in length".into());
        }
        for (i, t) in setup.tickets.iter().enumerate() {
            if self.index.get(&t.id) != Some(&i) {
                return Err(format!("index does not map {} to {i}", t.id));
            }
        }
        let mut sold = 0u64;
        for (i, state) in self.states.iter().enumerate() {
            let id = &setup.tickets[i].id;
            match state {
                TicketState::Available => {}
                TicketState::Held(h) => {
                    let Some(hold) = self.holds.get(h) else {
                        return Err(format!("{id} held by missing hold {h}"));
                    };
                    if !matches!(hold.status, HoldStatus::Active | HoldStatus::Confirming) {
                        return Err(format!("{id} held by {h}, which is {:?}", hold.status));
                    }
                    if !hold.tickets.contains(id) {
                        return Err(format!("{id} held by {h}, which does not list it"));
                    }
                }
                TicketState::Sold(b) => {
                    sold += 1;
                    let Some(booking) = self.bookings.get(b) else {
                        return Err(format!("{id} sold in missing booking {b}"));
                    };
                    if !booking.tickets.contains(id) {
                        return Err(format!("{id} sold in {b}, which does not list it"));
                    }
                }
            }
        }
        for hold in self.holds.values() {
            if matches!(hold.status, HoldStatus::Active | HoldStatus::Confirming) {
                for t in &hold.tickets {
                    let Some(i) = self.index.get(t) else {
                        return Err(format!("hold {} lists unknown {t}", hold.id));
                    };
                    if self.states[*i] != TicketState::Held(hold.id.clone()) {
                        return Err(format!(
                            "live hold {} lists {t}, which is {:?}",
                            hold.id, self.states[*i]
                        ));
                    }
                }
            }
            if hold.status == HoldStatus::Confirming && hold.payment.is_none() {
                return Err(format!("confirming hold {} has no payment", hold.id));
            }
            if (hold.status == HoldStatus::Confirmed) != hold.booking_id.is_some() {
                return Err(format!(
                    "hold {} is {:?} with booking {:?}",
                    hold.id, hold.status, hold.booking_id
                ));
            }
        }
        let mut booked = 0u64;
        let mut in_bookings = BTreeSet::new();
        for booking in self.bookings.values() {
            booked += booking.tickets.len() as u64;
            for t in &booking.tickets {
                if !in_bookings.insert(t) {
                    return Err(format!("{t} is in two bookings"));
                }
                let Some(i) = self.index.get(t) else {
                    return Err(format!("booking {} lists unknown {t}", booking.id));
                };
                if self.states[*i] != TicketState::Sold(booking.id.clone()) {
                    return Err(format!("booking {} lists {t}, which is {:?}", booking.id, self.states[*i]));
                }
            }
            match self.holds.get(&booking.hold_id) {
                Some(h)
                    if h.status == HoldStatus::Confirmed && h.booking_id.as_ref() == Some(&booking.id) => {}
                _ => {
                    return Err(format!(
                        "booking {}'s hold {} is not confirmed with it",
                        booking.id, booking.hold_id
                    ))
                }
            }
        }
        if sold != booked {
            return Err(format!("{sold} tickets sold but bookings list {booked}"));
        }
        let now = self.now();
        let users: BTreeSet<&String> = self.holds.values().map(|h| &h.user).collect();
        for user in users {
            let has = self.tickets_of_user(user, now);
            if has > u64::from(setup.per_user_limit) {
                return Err(format!("{user} has {has} tickets, over the limit {}", setup.per_user_limit));
            }
        }
        self.queue.check()?;
        let rebuilt = Derived::rebuild(self)?;
        if rebuilt != self.derived {
            return Err(format!(
                "derived indexes out of step:\n stored  {:?}\n rebuilt {:?}",
                self.derived, rebuilt
            ));
        }
        Ok(())
    }
}
