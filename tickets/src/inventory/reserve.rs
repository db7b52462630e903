//! `Reserve`: checks in a fixed order (the first failing one is the reply), then the
//! all-or-nothing take-over of the chosen tickets.
//!
//! Order: idempotency replay; event cancelled or not on sale (`event_closed`); queue
//! admission; hold id reuse (`invalid_request` on `hold_id`); count out of
//! `1..=TICKETS_PER_HOLD_MAX` (`limit_exceeded`); duplicate ids (`invalid_request` on
//! `ticket_ids`); unknown ticket id (`invalid_request` on `ticket_ids`) or unknown section
//! (`invalid_request` on `section`) — both are bad values in the request, so both are 400,
//! never 404; per-user limit (`limit_exceeded`); availability (`ticket_unavailable`).
//!
//! Cost: explicit ids `O(k log n)`; best-available `O(section size)`.

use std::collections::BTreeSet;

use super::derived::SectionLayout;
use super::{
    Changes, Hold, HoldStatus, Idempotency, Inventory, InventoryReply, Outcome, Selection, TicketState,
};
use crate::limits::TICKETS_PER_HOLD_MAX;
use crate::{HoldId, Millis, Rejection, UserId};

impl Inventory {
    pub(super) fn reserve(
        &mut self,
        hold_id: HoldId,
        user: UserId,
        selection: Selection,
        idempotency: Option<Idempotency>,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        if let Some(reply) = self.replay(&user, idempotency.as_ref()) {
            return reply;
        }
        let setup = self.setup.as_ref().expect("set up");
        if self.cancelled {
            return Err(Rejection::EventClosed { detail: "event cancelled".into() });
        }
        if now < setup.on_sale_at {
            return Err(Rejection::EventClosed { detail: "not on sale yet".into() });
        }
        if setup.queue.enabled && !self.queue.is_admitted(&user, now) {
            return Err(Rejection::QueueAdmissionRequired);
        }
        if self.holds.contains_key(&hold_id) {
            return Err(Rejection::invalid("hold_id", "hold id already used"));
        }
        let count = match &selection {
            Selection::Tickets(ids) => ids.len() as u64,
            Selection::Best { quantity, .. } => u64::from(*quantity),
        };
        if count == 0 || count > u64::from(TICKETS_PER_HOLD_MAX) {
            return Err(Rejection::limit(format!("a hold has 1..={TICKETS_PER_HOLD_MAX} tickets")));
        }
        let picked = match &selection {
            Selection::Tickets(ids) => {
                let indexes = self.resolve_ids(ids)?;
                self.check_user_limit(&user, count, now)?;
                let taken: Vec<String> = indexes
                    .iter()
                    .filter(|i| !self.is_available(**i, now))
                    .map(|i| self.tickets()[*i].id.clone())
                    .collect();
                if !taken.is_empty() {
                    return Err(Rejection::TicketUnavailable { tickets: taken });
                }
                indexes
            }
            Selection::Best { section, quantity } => {
                let Some(layout) =
                    self.derived.sections.iter().find(|s| &s.name == section).map(|s| &s.layout)
                else {
                    return Err(Rejection::invalid("section", format!("no section {section}")));
                };
                self.check_user_limit(&user, count, now)?;
                let found = match layout {
                    SectionLayout::Seated { rows } => {
                        rows.iter().find_map(|row| self.best_run(row.start, row.len, *quantity as usize, now))
                    }
                    SectionLayout::General { start, len } => {
                        self.first_free(*start, *len, *quantity as usize, now)
                    }
                };
                match found {
                    Some(indexes) => indexes,
                    None => return Err(Rejection::TicketUnavailable { tickets: Vec::new() }),
                }
            }
        };
        let reply = Ok(Outcome::Hold(self.take(hold_id, user.clone(), picked, now, changes)));
        self.remember(&user, idempotency.as_ref(), &reply, now);
        reply
    }

    /// Ticket indexes for `ids`, sorted; duplicates and unknown ids are refused.
    fn resolve_ids(&self, ids: &[String]) -> Result<Vec<usize>, Rejection> {
        let mut seen = BTreeSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(Rejection::invalid("ticket_ids", format!("ticket {dup} listed twice")));
        }
        let mut indexes = Vec::with_capacity(ids.len());
        for id in ids {
            match self.index.get(id) {
                Some(i) => indexes.push(*i),
                None => return Err(Rejection::invalid("ticket_ids", format!("no ticket {id}"))),
            }
        }
        indexes.sort_unstable();
        Ok(indexes)
    }

    fn check_user_limit(&self, user: &str, requested: u64, now: Millis) -> Result<(), Rejection> {
        let limit = u64::from(self.setup.as_ref().expect("set up").per_user_limit);
        let has = self.tickets_of_user(user, now);
        if has + requested > limit {
            return Err(Rejection::limit(format!("per-user limit is {limit} tickets; you have {has}")));
        }
        Ok(())
    }

    /// Available at `now`: free, or held by an `Active` hold that has expired.
    pub(super) fn is_available(&self, index: usize, now: Millis) -> bool {
        match &self.states[index] {
            TicketState::Available => true,
            TicketState::Held(h) => self.holds[h].status_at(now) == HoldStatus::Expired,
            TicketState::Sold(_) => false,
        }
    }

    /// In the row `start..start + len` (seat `n` at `start + n - 1`), the run of `quantity`
    /// adjacent available seats closest to the row's center; ties go to the lower seat.
    fn best_run(&self, start: usize, len: usize, quantity: usize, now: Millis) -> Option<Vec<usize>> {
        if quantity > len {
            return None;
        }
        // Doubled coordinates keep the centers integral: a row's center is (len + 1) / 2,
        // a run from seat s has center s + (quantity - 1) / 2.
        let row_center2 = len as i64 + 1;
        let mut best: Option<(i64, usize)> = None;
        let mut run = 0;
        for offset in 0..len {
            run = if self.is_available(start + offset, now) { run + 1 } else { 0 };
            if run >= quantity {
                let first = offset + 1 - quantity;
                let seat = first as i64 + 1;
                let distance = (2 * seat + quantity as i64 - 1 - row_center2).abs();
                if best.is_none_or(|(d, _)| distance < d) {
                    best = Some((distance, first));
                }
            }
        }
        best.map(|(_, first)| (start + first..start + first + quantity).collect())
    }

    /// The `quantity` lowest-numbered available tickets of `start..start + len`.
    fn first_free(&self, start: usize, len: usize, quantity: usize, now: Millis) -> Option<Vec<usize>> {
        let free: Vec<usize> =
            (start..start + len).filter(|i| self.is_available(*i, now)).take(quantity).collect();
        (free.len() == quantity).then_some(free)
    }

    /// Create the hold over `indexes` (sorted, all available at `now`). Holds whose expired
    /// tickets are taken over are marked `Expired` first, so their holder's later confirm
    /// gets `hold_expired`; their other tickets are freed too (and reported as changes).
    fn take(
        &mut self,
        hold_id: HoldId,
        user: UserId,
        indexes: Vec<usize>,
        now: Millis,
        changes: &mut Changes,
    ) -> Hold {
        for i in &indexes {
            if let TicketState::Held(old) = &self.states[*i] {
                let old = old.clone();
                debug_assert_eq!(
                    self.holds[&old].status_at(now),
                    HoldStatus::Expired,
                    "took a live hold's ticket"
                );
                self.expire_hold(&old, changes);
            }
        }
        let setup = self.setup.as_ref().expect("set up");
        let hold = Hold {
            id: hold_id.clone(),
            event_id: setup.event_id.clone(),
            user,
            tickets: indexes.iter().map(|i| setup.tickets[*i].id.clone()).collect(),
            amount: indexes.iter().map(|i| setup.tickets[*i].price).sum(),
            currency: setup.currency.clone(),
            created_at: now,
            expires_at: now.saturating_add(setup.hold_ms),
            extensions: 0,
            status: HoldStatus::Active,
            payment: None,
            booking_id: None,
        };
        for i in indexes {
            debug_assert_eq!(self.states[i], TicketState::Available, "ticket must be free before it is held");
            self.set_ticket(i, TicketState::Held(hold_id.clone()), changes);
        }
        self.derived.index_hold(&hold);
        self.holds.insert(hold_id, hold.clone());
        hold
    }
}
