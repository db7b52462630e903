//! `Setup`: the first command of every event group.

use super::derived::section_index;
use super::{Inventory, InventoryReply, InventorySetup, Outcome, TicketState};
use crate::limits::{HOLD_SECONDS_MAX, HOLD_SECONDS_MIN, PER_USER_LIMIT_MAX, TICKETS_PER_EVENT_MAX};
use crate::Rejection;

impl Inventory {
    /// Build the ticket states (all available) and the id index. A second `Setup` is
    /// `invalid_request`, as is a ticket list the rules cannot work with: empty or over
    /// `TICKETS_PER_EVENT_MAX`, duplicate ids, sections or rows not contiguous (the order
    /// [`crate::layout::tickets_for`] produces), limits out of range.
    pub(super) fn set_up(&mut self, setup: InventorySetup) -> InventoryReply {
        if self.setup.is_some() {
            return Err(Rejection::invalid("setup", "the inventory is already set up"));
        }
        if setup.tickets.is_empty() || setup.tickets.len() > TICKETS_PER_EVENT_MAX as usize {
            return Err(Rejection::invalid("tickets", format!("need 1..={TICKETS_PER_EVENT_MAX} tickets")));
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
        let sections =
            section_index(&setup.tickets).map_err(|detail| Rejection::invalid("tickets", detail))?;
        let mut index = std::collections::BTreeMap::new();
        for (i, ticket) in setup.tickets.iter().enumerate() {
            if index.insert(ticket.id.clone(), i).is_some() {
                return Err(Rejection::invalid("tickets", format!("duplicate ticket id {}", ticket.id)));
            }
        }
        self.states = vec![TicketState::Available; setup.tickets.len()];
        self.index = index;
        self.derived.sections = sections;
        self.setup = Some(setup);
        Ok(Outcome::SetUp)
    }
}
