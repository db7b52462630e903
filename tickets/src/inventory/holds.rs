//! Hold life after reserve: release, extend, expire; and the two helpers every command
//! uses to change a hold's status or a ticket's state with the indexes kept in step.

use super::{
    status_name, Changes, Hold, HoldStatus, Inventory, InventoryReply, Outcome, TicketState, TicketStatus,
};
use crate::limits::{HOLD_EXTENSIONS_MAX, HOLD_TOTAL_MS_MAX};
use crate::{HoldId, Millis, Rejection, UserId};

impl Inventory {
    /// Change hold `id` with `change`, re-indexing it; returns the changed hold.
    pub(super) fn update_hold(&mut self, id: &str, change: impl FnOnce(&mut Hold)) -> Hold {
        let hold = self.holds.get_mut(id).expect("update_hold of a missing hold");
        self.derived.unindex_hold(hold);
        change(hold);
        self.derived.index_hold(hold);
        hold.clone()
    }

    /// Set ticket `index` to `state`, keeping the held/sold counters, and note the change.
    pub(super) fn set_ticket(&mut self, index: usize, state: TicketState, changes: &mut Changes) {
        let status = match &state {
            TicketState::Available => TicketStatus::Available,
            TicketState::Held(_) => TicketStatus::Held,
            TicketState::Sold(_) => TicketStatus::Sold,
        };
        match &state {
            TicketState::Available => {}
            TicketState::Held(_) => self.derived.held += 1,
            TicketState::Sold(_) => self.derived.sold += 1,
        }
        match std::mem::replace(&mut self.states[index], state) {
            TicketState::Available => {}
            TicketState::Held(_) => self.derived.held -= 1,
            TicketState::Sold(_) => self.derived.sold -= 1,
        }
        changes.set(index, status);
    }

    /// Mark an `Active` hold `Expired` and free the tickets it still holds.
    pub(super) fn expire_hold(&mut self, id: &str, changes: &mut Changes) {
        let hold = self.update_hold(id, |h| {
            debug_assert_eq!(h.status, HoldStatus::Active, "only an active hold expires");
            h.status = HoldStatus::Expired;
        });
        self.free_tickets(&hold, changes);
    }

    /// Make every ticket still `Held` by `hold` available.
    fn free_tickets(&mut self, hold: &Hold, changes: &mut Changes) {
        for ticket in &hold.tickets {
            let i = self.index[ticket];
            if matches!(&self.states[i], TicketState::Held(h) if *h == hold.id) {
                self.set_ticket(i, TicketState::Available, changes);
            }
        }
    }

    /// The checks release and extend share: the hold exists, is the user's, and is live.
    /// A hold found expired is marked so (its tickets freed) before `hold_expired`.
    fn live_hold_of(
        &mut self,
        hold_id: &str,
        user: &str,
        now: Millis,
        changes: &mut Changes,
    ) -> Result<(), Rejection> {
        let Some(hold) = self.holds.get(hold_id) else {
            return Err(Rejection::not_found("hold"));
        };
        if hold.user != user {
            return Err(Rejection::Forbidden);
        }
        match hold.status_at(now) {
            HoldStatus::Active => Ok(()),
            HoldStatus::Expired => {
                if hold.status == HoldStatus::Active {
                    self.expire_hold(hold_id, changes);
                }
                Err(Rejection::HoldExpired)
            }
            status => Err(Rejection::HoldNotActive { status: status_name(status).to_string() }),
        }
    }

    pub(super) fn release(
        &mut self,
        hold_id: HoldId,
        user: UserId,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        self.live_hold_of(&hold_id, &user, now, changes)?;
        let hold = self.update_hold(&hold_id, |h| h.status = HoldStatus::Released);
        self.free_tickets(&hold, changes);
        Ok(Outcome::Hold(hold))
    }

    /// Add the event's hold length again, at most `HOLD_EXTENSIONS_MAX` times and never
    /// past `created_at + HOLD_TOTAL_MS_MAX`.
    pub(super) fn extend(
        &mut self,
        hold_id: HoldId,
        user: UserId,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        self.live_hold_of(&hold_id, &user, now, changes)?;
        let hold_ms = self.setup.as_ref().expect("set up").hold_ms;
        let hold = &self.holds[&hold_id];
        if hold.extensions >= HOLD_EXTENSIONS_MAX {
            return Err(Rejection::limit(format!("a hold is extended at most {HOLD_EXTENSIONS_MAX} times")));
        }
        let cap = hold.created_at.saturating_add(HOLD_TOTAL_MS_MAX);
        if hold.expires_at >= cap {
            return Err(Rejection::limit(format!(
                "a hold lives at most {} minutes",
                HOLD_TOTAL_MS_MAX / 60_000
            )));
        }
        let expires_at = hold.expires_at.saturating_add(hold_ms).min(cap);
        let hold = self.update_hold(&hold_id, |h| {
            h.expires_at = expires_at;
            h.extensions += 1;
        });
        Ok(Outcome::Hold(hold))
    }

    /// Expire every `Active` hold with `expires_at <= now`; reply with their ids in order.
    pub(super) fn expire_due(&mut self, now: Millis, changes: &mut Changes) -> InventoryReply {
        let mut due: Vec<HoldId> = self
            .derived
            .active_by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .map(|(_, id)| id.clone())
            .collect();
        for id in &due {
            self.expire_hold(id, changes);
        }
        due.sort();
        Ok(Outcome::Expired(due))
    }
}
