//! `Setup`: the first command of every event group.

use std::sync::Arc;

use super::derived::Derived;
use super::{Inventory, InventoryReply, InventorySetup, Outcome, TicketState};
use crate::layout::Layout;
use crate::limits::{HOLD_SECONDS_MAX, HOLD_SECONDS_MIN, PER_USER_LIMIT_MAX};
use crate::Rejection;

impl Inventory {
    /// Lay the tickets out (all available). A second `Setup` is `invalid_request`, as is a
    /// layout the rules cannot work with (see [`Layout::new`]) or limits out of range.
    pub(super) fn set_up(&mut self, setup: InventorySetup) -> InventoryReply {
        if self.core.setup.is_some() {
            return Err(Rejection::invalid("setup", "the inventory is already set up"));
        }
        if setup.per_user_limit == 0 || setup.per_user_limit > PER_USER_LIMIT_MAX {
            return Err(Rejection::invalid(
                "per_user_limit",
                format!("must be within 1..={PER_USER_LIMIT_MAX}"),
            ));
        }
        if !(HOLD_SECONDS_MIN * 1_000..=HOLD_SECONDS_MAX * 1_000).contains(&setup.hold_ms) {
            return Err(Rejection::invalid(
                "hold_ms",
                format!("must be within {}..={} ms", HOLD_SECONDS_MIN * 1_000, HOLD_SECONDS_MAX * 1_000),
            ));
        }
        if !(HOLD_SECONDS_MIN * 1_000..=HOLD_SECONDS_MAX * 1_000).contains(&setup.waitlist_offer_ms) {
            return Err(Rejection::invalid(
                "waitlist_offer_ms",
                format!("must be within {}..={} ms", HOLD_SECONDS_MIN * 1_000, HOLD_SECONDS_MAX * 1_000),
            ));
        }
        let layout =
            Layout::new(&setup.sections, &setup.prices).map_err(|d| Rejection::invalid("sections", d))?;
        self.core.states = vec![TicketState::Available; layout.count()];
        self.core.setup = Some(Arc::new(setup));
        self.derived = Derived::rebuild(&self.core).expect("a fresh layout rebuilds");
        Ok(Outcome::SetUp)
    }
}
