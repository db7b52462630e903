//! Hold life after reserve: release, extend, expiry; and the helpers every command uses to
//! change a hold or a ticket with the indexes kept in step.

use std::sync::Arc;

use super::{
    status_name, Changes, Found, HoldRecord, HoldStatus, Inventory, InventoryReply, Outcome, TicketState,
    TicketStatus, ENDED_HOLDS_MAX, ENDED_HOLD_MS,
};
use crate::limits::{HOLD_EXTENSIONS_MAX, HOLD_TOTAL_MS_MAX};
use crate::{HoldId, Millis, Rejection, UserId};

impl Inventory {
    /// Change live hold `no` with `change`, re-indexing it; returns the changed hold.
    pub(super) fn update_hold(&mut self, no: u64, change: impl FnOnce(&mut HoldRecord)) -> Arc<HoldRecord> {
        let hold = self.core.holds.get_mut(&no).expect("update_hold of a missing hold");
        self.derived.unindex_hold(hold);
        change(Arc::make_mut(hold));
        self.derived.index_hold(hold);
        hold.clone()
    }

    /// Set ticket `index` to `state`, keeping the counters and the free-seat index, and
    /// note the change.
    pub(super) fn set_ticket(&mut self, index: u32, state: TicketState, changes: &mut Changes) {
        let status = match state {
            TicketState::Available => TicketStatus::Available,
            TicketState::Held(_) => TicketStatus::Held,
            TicketState::Sold => TicketStatus::Sold,
        };
        match state {
            TicketState::Available => {}
            TicketState::Held(_) => self.derived.held += 1,
            TicketState::Sold => self.derived.sold += 1,
        }
        match std::mem::replace(&mut self.core.states[index as usize], state) {
            TicketState::Available => {}
            TicketState::Held(_) => self.derived.held -= 1,
            TicketState::Sold => self.derived.sold -= 1,
        }
        self.derived.free.set(&self.derived.layout, index, state == TicketState::Available);
        changes.set(index, status);
    }

    /// End live hold `no` as `status` (`Expired` or `Released`): free its tickets and keep
    /// it as a tombstone (see the module doc of `inventory`).
    pub(super) fn end_hold(&mut self, no: u64, status: HoldStatus, now: Millis, changes: &mut Changes) {
        debug_assert!(matches!(status, HoldStatus::Expired | HoldStatus::Released));
        let hold = self.core.holds.remove(&no).expect("end_hold of a missing hold");
        self.derived.unindex_hold(&hold);
        self.offer_ended(no);
        changes.user_freed(&hold.user);
        for &i in &hold.tickets {
            debug_assert_eq!(
                self.core.states[i as usize],
                TicketState::Held(no),
                "a live hold keeps its tickets"
            );
            self.set_ticket(i, TicketState::Available, changes);
        }
        let mut hold = Arc::unwrap_or_clone(hold);
        hold.status = status;
        if status == HoldStatus::Expired {
            // At its own expiry, though a later entry noticed it.
            let view = self.view(&hold);
            self.notify_hold(super::NoticeKind::HoldExpired, view, hold.expires_at);
        }
        self.derived.ended_ids.insert(hold.id.clone(), (now, no));
        self.core.ended.insert((now, no), Arc::new(hold));
        if self.core.ended.len() > ENDED_HOLDS_MAX {
            self.forget_oldest_ended();
        }
    }

    fn forget_oldest_ended(&mut self) {
        if let Some((_, hold)) = self.core.ended.pop_first() {
            self.derived.ended_ids.remove(&hold.id);
        }
    }

    /// Forget ended holds older than [`ENDED_HOLD_MS`]. `O(forgotten · log n)`.
    pub(super) fn prune_ended(&mut self, now: Millis) {
        while let Some(((ended_at, _), _)) = self.core.ended.first_key_value() {
            if ended_at.saturating_add(ENDED_HOLD_MS) > now {
                break;
            }
            self.forget_oldest_ended();
        }
    }

    /// Expire every `Active` hold with `expires_at <= now`, in expiry order; their ids.
    /// `O(expired · log n)`.
    pub(super) fn expire_due(&mut self, now: Millis, changes: &mut Changes) -> Vec<Arc<str>> {
        let mut expired = Vec::new();
        while let Some(&(expires_at, no)) = self.derived.by_expiry.first() {
            if expires_at > now {
                break;
            }
            expired.push(self.core.holds[&no].id.clone());
            self.end_hold(no, HoldStatus::Expired, now, changes);
        }
        expired
    }

    /// The checks release and extend share: the hold is live, the user's and `Active`;
    /// its number.
    fn active_hold_of(&self, hold_id: &str, user: &str) -> Result<u64, Rejection> {
        let Some(found) = self.find_hold(hold_id) else {
            return Err(Rejection::not_found("hold"));
        };
        let (record, confirmed) = match found {
            Found::Live(r) | Found::Ended(r) => (r, false),
            Found::Booked(b) => (&b.hold, true),
        };
        if &*record.user != user {
            return Err(Rejection::Forbidden);
        }
        match (confirmed, record.status) {
            (false, HoldStatus::Active) => Ok(record.no),
            (false, HoldStatus::Expired) => Err(Rejection::HoldExpired),
            (true, _) => {
                Err(Rejection::HoldNotActive { status: status_name(HoldStatus::Confirmed).to_string() })
            }
            (false, status) => Err(Rejection::HoldNotActive { status: status_name(status).to_string() }),
        }
    }

    pub(super) fn release(
        &mut self,
        hold_id: HoldId,
        user: UserId,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        let no = self.active_hold_of(&hold_id, &user)?;
        self.end_hold(no, HoldStatus::Released, now, changes);
        Ok(Outcome::Hold(self.hold(&hold_id).expect("just ended")))
    }

    /// Add the event's hold length again, at most `HOLD_EXTENSIONS_MAX` times and never
    /// past `created_at + HOLD_TOTAL_MS_MAX`.
    pub(super) fn extend(&mut self, hold_id: HoldId, user: UserId, _now: Millis) -> InventoryReply {
        let no = self.active_hold_of(&hold_id, &user)?;
        let hold_ms = self.core.setup.as_ref().expect("set up").hold_ms;
        let hold = &self.core.holds[&no];
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
        let hold = self.update_hold(no, |h| {
            h.expires_at = expires_at;
            h.extensions += 1;
        });
        Ok(Outcome::Hold(self.view(&hold)))
    }
}
