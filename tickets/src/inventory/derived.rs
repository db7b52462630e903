//! Indexes derived from the inventory's primary fields, so that commands touch only what
//! they need instead of scanning every hold or ticket. Every hold status change goes
//! through [`Derived::unindex_hold`] / [`Derived::index_hold`] around the change, and every
//! ticket state change through `Inventory::set_ticket`. [`Derived::rebuild`] computes them
//! from scratch; `check_invariants` compares the two (the paired assertion).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Hold, HoldStatus, Inventory, TicketState};
use crate::layout::TicketSpec;
use crate::{BookingId, HoldId, Millis, UserId};

/// Where a section's tickets are in the ticket list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SectionIndex {
    pub name: String,
    pub layout: SectionLayout,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SectionLayout {
    /// Rows front to back; each row's seats `1..=len` are `start..start + len`.
    Seated { rows: Vec<RowRange> },
    /// Tickets `start..start + len`.
    General { start: usize, len: usize },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RowRange {
    pub name: String,
    pub start: usize,
    pub len: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Derived {
    /// The sections, in venue order.
    pub sections: Vec<SectionIndex>,
    /// `Active` holds (as stored) by expiry: `earliest_expiry`, `Expire`, lazy availability.
    pub active_by_expiry: BTreeSet<(Millis, HoldId)>,
    /// `Confirming` holds.
    pub confirming: BTreeSet<HoldId>,
    /// Each user's `Active` or `Confirming` holds (as stored), for the per-user limit.
    pub user_open_holds: BTreeMap<UserId, BTreeSet<HoldId>>,
    /// Each user's bookings.
    pub user_bookings: BTreeMap<UserId, BTreeSet<BookingId>>,
    /// Idempotency records by expiry, for pruning.
    pub idempotency_by_expiry: BTreeSet<(Millis, UserId, String)>,
    /// Tickets stored as `Held` (lazy expiry not applied).
    pub held: u64,
    /// Tickets stored as `Sold`.
    pub sold: u64,
}

impl Derived {
    pub fn index_hold(&mut self, hold: &Hold) {
        match hold.status {
            HoldStatus::Active => {
                self.active_by_expiry.insert((hold.expires_at, hold.id.clone()));
            }
            HoldStatus::Confirming => {
                self.confirming.insert(hold.id.clone());
            }
            HoldStatus::Confirmed | HoldStatus::Released | HoldStatus::Expired => return,
        }
        self.user_open_holds.entry(hold.user.clone()).or_default().insert(hold.id.clone());
    }

    pub fn unindex_hold(&mut self, hold: &Hold) {
        let was_indexed = match hold.status {
            HoldStatus::Active => self.active_by_expiry.remove(&(hold.expires_at, hold.id.clone())),
            HoldStatus::Confirming => self.confirming.remove(&hold.id),
            HoldStatus::Confirmed | HoldStatus::Released | HoldStatus::Expired => return,
        };
        debug_assert!(was_indexed, "hold {} was not indexed under its status", hold.id);
        if let Some(set) = self.user_open_holds.get_mut(&hold.user) {
            set.remove(&hold.id);
            if set.is_empty() {
                self.user_open_holds.remove(&hold.user);
            }
        }
    }

    /// Compute every index from the primary fields.
    pub fn rebuild(inventory: &Inventory) -> Result<Derived, String> {
        let mut d = Derived {
            sections: match &inventory.setup {
                Some(setup) => section_index(&setup.tickets)?,
                None => Vec::new(),
            },
            ..Derived::default()
        };
        for hold in inventory.holds.values() {
            d.index_hold(hold);
        }
        for booking in inventory.bookings.values() {
            d.user_bookings.entry(booking.user.clone()).or_default().insert(booking.id.clone());
        }
        for ((user, key), record) in &inventory.idempotency {
            d.idempotency_by_expiry.insert((record.expires_at, user.clone(), key.clone()));
        }
        for state in &inventory.states {
            match state {
                TicketState::Available => {}
                TicketState::Held(_) => d.held += 1,
                TicketState::Sold(_) => d.sold += 1,
            }
        }
        Ok(d)
    }
}

/// Group tickets into sections and rows. Each section's tickets must be contiguous, each
/// row's seats contiguous and numbered `1..=n` in order (as [`crate::layout::tickets_for`]
/// makes them), and a section either all seated or all general.
pub(crate) fn section_index(tickets: &[TicketSpec]) -> Result<Vec<SectionIndex>, String> {
    let mut sections: Vec<SectionIndex> = Vec::new();
    for (i, t) in tickets.iter().enumerate() {
        let same_section = sections.last().is_some_and(|s| s.name == t.section);
        if !same_section {
            if sections.iter().any(|s| s.name == t.section) {
                return Err(format!("section {} is not contiguous", t.section));
            }
            let layout = match &t.row {
                Some(_) => SectionLayout::Seated { rows: Vec::new() },
                None => SectionLayout::General { start: i, len: 0 },
            };
            sections.push(SectionIndex { name: t.section.clone(), layout });
        }
        let section = sections.last_mut().expect("pushed above");
        match (&mut section.layout, &t.row, t.seat) {
            (SectionLayout::General { len, .. }, None, None) => *len += 1,
            (SectionLayout::Seated { rows }, Some(row), Some(seat)) => {
                let same_row = rows.last().is_some_and(|r| &r.name == row);
                if !same_row {
                    if rows.iter().any(|r| &r.name == row) {
                        return Err(format!("row {} of {} is not contiguous", row, t.section));
                    }
                    rows.push(RowRange { name: row.clone(), start: i, len: 0 });
                }
                let r = rows.last_mut().expect("pushed above");
                r.len += 1;
                if seat as usize != r.len {
                    return Err(format!("ticket {}: seats must be numbered 1..=n in order", t.id));
                }
            }
            _ => {
                return Err(format!(
                    "ticket {}: section {} mixes seats and general admission",
                    t.id, t.section
                ))
            }
        }
    }
    Ok(sections)
}
