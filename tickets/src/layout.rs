//! Turning a venue's sections into an event's ticket list: one ticket per seat, with ids
//! `<section>-<row>-<seat>`, and `capacity` tickets `<section>-<n>` (n from 1) per
//! general-admission section. Order: sections as the venue lists them, rows front to back,
//! seats by number — the order best-available search walks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{SectionKind, VenueSpec};
use crate::TicketId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSpec {
    pub id: TicketId,
    pub section: String,
    /// Row name for a seat; `None` for general admission.
    pub row: Option<String>,
    /// Seat number within the row (from 1); `None` for general admission.
    pub seat: Option<u32>,
    /// Price in minor units.
    pub price: u64,
}

/// The tickets of an event at `venue` with `prices` per section name. Sections without a
/// price get price 0 (the catalog refuses such events before this is called).
pub fn tickets_for(venue: &VenueSpec, prices: &BTreeMap<String, u64>) -> Vec<TicketSpec> {
    let mut out = Vec::with_capacity(venue.capacity() as usize);
    for section in &venue.sections {
        let price = prices.get(&section.name).copied().unwrap_or(0);
        match &section.kind {
            SectionKind::Seated { rows } => {
                for row in rows {
                    for seat in 1..=row.seats {
                        out.push(TicketSpec {
                            id: format!("{}-{}-{}", section.name, row.name, seat),
                            section: section.name.clone(),
                            row: Some(row.name.clone()),
                            seat: Some(seat),
                            price,
                        });
                    }
                }
            }
            SectionKind::General { capacity } => {
                for n in 1..=*capacity {
                    out.push(TicketSpec {
                        id: format!("{}-{}", section.name, n),
                        section: section.name.clone(),
                        row: None,
                        seat: None,
                        price,
                    });
                }
            }
        }
    }
    out
}
