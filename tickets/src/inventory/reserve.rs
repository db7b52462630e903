//! `Reserve`: checks in a fixed order (the first failing one is the reply), then the
//! all-or-nothing take-over of the chosen tickets.
//!
//! Order: idempotency replay; the same request delivered twice (answered with its live hold,
//! see `same_request`); event cancelled or not on sale (`event_closed`); queue admission;
//! hold id reuse (`invalid_request` on `hold_id`); count out of
//! `1..=TICKETS_PER_HOLD_MAX` (`limit_exceeded`); duplicate ids (`invalid_request` on
//! `ticket_ids`); unknown ticket id (`invalid_request` on `ticket_ids`) or unknown section
//! (`invalid_request` on `section`) — both are bad values in the request, so both are 400,
//! never 404; per-user limit (`limit_exceeded`); availability (`ticket_unavailable`).
//!
//! Cost: explicit ids `O(k log n)`; a general section `O(quantity + n / 4096)`; best
//! available `O(rows + free runs of the chosen row)` (see `free`).

use std::sync::Arc;

use super::{
    Changes, Found, HoldRecord, HoldStatus, Idempotency, Inventory, InventoryReply, Outcome, Selection,
    TicketState,
};
use crate::layout::SectionTickets;
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
        // One lookup of the hold id: the same request delivered twice is answered at once,
        // any other reuse is refused in its turn below.
        let hold_id_used = match self.find_hold(&hold_id) {
            Some(Found::Live(record)) if self.same_request(record, &user, &selection) => {
                return Ok(Outcome::Hold(self.view(record)));
            }
            found => found.is_some() || self.derived.wait_hold_ids.contains_key(hold_id.as_str()),
        };
        self.check_selling(&user, now)?;
        if hold_id_used {
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
                    .filter(|i| !self.derived.free.is_free(**i))
                    .map(|i| self.derived.layout.id(*i))
                    .collect();
                if !taken.is_empty() {
                    return Err(Rejection::TicketUnavailable { tickets: taken });
                }
                indexes
            }
            Selection::Best { section, quantity } => {
                let layout = &self.derived.layout;
                let Some(s) = layout.sections().iter().position(|s| &s.name == section) else {
                    return Err(Rejection::invalid("section", format!("no section {section}")));
                };
                self.check_user_limit(&user, count, now)?;
                let found = match &layout.sections()[s].tickets {
                    SectionTickets::Seated { .. } => self.derived.free.best_in_rows(layout, s, *quantity),
                    SectionTickets::General { start, len } => {
                        self.derived.free.lowest(*start, *len, *quantity)
                    }
                };
                match found {
                    Some(indexes) => indexes,
                    None => return Err(Rejection::TicketUnavailable { tickets: Vec::new() }),
                }
            }
        };
        let hold_ms = self.core.setup.as_ref().expect("set up").hold_ms;
        let hold = self.take(hold_id, user.clone(), picked, now, hold_ms, changes);
        let reply = Ok(Outcome::Hold(self.view(&hold)));
        self.remember(&user, idempotency.as_ref(), &reply, now);
        reply
    }

    /// Whether live hold `record` is what this very `Reserve` made: the same user, and the
    /// same tickets (explicit ids) or the same quantity in the same section (best available).
    /// Hold ids are chosen by the node, one per request, so a hold id met again with the
    /// same request is that request delivered twice (a forwarded write whose answer was
    /// lost), and it is answered as the first delivery was, changing nothing.
    fn same_request(&self, record: &HoldRecord, user: &str, selection: &Selection) -> bool {
        if &*record.user != user {
            return false;
        }
        let layout = &self.derived.layout;
        match selection {
            Selection::Tickets(ids) => {
                let mut asked: Vec<u32> = ids.iter().filter_map(|id| layout.find(id)).collect();
                asked.sort_unstable();
                asked.len() == ids.len() && asked == record.tickets
            }
            Selection::Best { section, quantity } => {
                record.tickets.len() == *quantity as usize
                    && layout.section(section).is_some_and(|s| {
                        record.tickets.iter().all(|t| (s.start..s.start + s.len).contains(t))
                    })
            }
        }
    }

    /// Ticket indexes for `ids`, sorted; duplicates and unknown ids are refused.
    fn resolve_ids(&self, ids: &[String]) -> Result<Vec<u32>, Rejection> {
        let mut indexes = Vec::with_capacity(ids.len());
        for id in ids {
            match self.derived.layout.find(id) {
                Some(i) => indexes.push(i),
                None => return Err(Rejection::invalid("ticket_ids", format!("no ticket {id}"))),
            }
        }
        let mut sorted = indexes.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(Rejection::invalid(
                "ticket_ids",
                format!("ticket {} listed twice", self.derived.layout.id(w[0])),
            ));
        }
        Ok(sorted)
    }

    /// What a reserve and a waiting-list join both need first: a live event on sale, inside
    /// its sales window, and (with a queue) the user admitted.
    pub(super) fn check_selling(&self, user: &str, now: Millis) -> Result<(), Rejection> {
        let setup = self.core.setup.as_ref().expect("set up");
        if self.core.cancelled {
            return Err(Rejection::EventClosed { detail: "event cancelled".into() });
        }
        if now < setup.on_sale_at {
            return Err(Rejection::EventClosed { detail: "not on sale yet".into() });
        }
        if now >= setup.sales_end {
            return Err(Rejection::EventClosed { detail: "sales have ended".into() });
        }
        if setup.queue.enabled && !self.core.queue.is_admitted(user, now) {
            return Err(Rejection::QueueAdmissionRequired);
        }
        Ok(())
    }

    pub(super) fn check_user_limit(&self, user: &str, requested: u64, now: Millis) -> Result<(), Rejection> {
        let limit = u64::from(self.core.setup.as_ref().expect("set up").per_user_limit);
        let has = self.tickets_of_user(user, now);
        if has + requested > limit {
            return Err(Rejection::limit(format!("per-user limit is {limit} tickets; you have {has}")));
        }
        Ok(())
    }

    /// Create the hold over `indexes` (sorted, all free), for `hold_ms`.
    pub(super) fn take(
        &mut self,
        hold_id: HoldId,
        user: UserId,
        indexes: Vec<u32>,
        now: Millis,
        hold_ms: u64,
        changes: &mut Changes,
    ) -> Arc<HoldRecord> {
        let no = self.core.next_hold_no;
        self.core.next_hold_no += 1;
        let amount = indexes.iter().map(|i| self.derived.layout.price(*i)).sum();
        let hold = Arc::new(HoldRecord {
            no,
            id: Arc::from(hold_id.into_string()),
            user: Arc::from(user.into_string()),
            amount,
            created_at: now,
            expires_at: now.saturating_add(hold_ms),
            extensions: 0,
            status: HoldStatus::Active,
            payment: None,
            tickets: indexes,
        });
        for &i in &hold.tickets {
            debug_assert_eq!(
                self.core.states[i as usize],
                TicketState::Available,
                "ticket must be free before it is held"
            );
            self.set_ticket(i, TicketState::Held(no), changes);
        }
        self.derived.index_hold(&hold);
        self.core.holds.insert(no, hold.clone());
        hold
    }
}
