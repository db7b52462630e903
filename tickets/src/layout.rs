//! An event's tickets, made from the venue's sections: one ticket per seat, with ids
//! `<section>-<row>-<seat>`, and `capacity` tickets `<section>-<n>` (n from 1) per
//! general-admission section. Order: sections as the venue lists them, rows front to back,
//! seats by number — the order best-available search walks and the order of every
//! per-ticket list (seat maps, changes).
//!
//! [`Layout`] is the compact form the inventory keeps: sections and rows with the index
//! range of their tickets, so a ticket is an index `0..count` and its id, section, row and
//! price are computed, never stored per ticket. Section and row names cannot contain `-`
//! (the catalog refuses them, and so does [`Layout::new`]), so an id names at most one
//! ticket and [`Layout::find`] parses it back in `O(log rows)`.
//!
//! [`tickets_for`] lists the tickets as [`TicketSpec`]s, for callers that want them all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{SectionKind, SectionSpec, VenueSpec};
use crate::limits::{ROWS_PER_SECTION_MAX, SEATS_PER_ROW_MAX, SECTIONS_PER_VENUE_MAX, TICKETS_PER_EVENT_MAX};
use crate::TicketId;

/// One ticket as the API shows it.
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

/// A seated row: its seats `1..=len` are tickets `start..start + len`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowLayout {
    pub name: String,
    pub start: u32,
    pub len: u32,
}

/// Where a section's tickets are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionTickets {
    /// Rows front to back.
    Seated { rows: Vec<RowLayout>, by_name: BTreeMap<String, u32> },
    /// Tickets `start..start + len`, numbered `1..=len`.
    General { start: u32, len: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionLayout {
    pub name: String,
    pub price: u64,
    pub tickets: SectionTickets,
    /// The section's first ticket and how many it has.
    pub start: u32,
    pub len: u32,
}

/// The tickets of an event, compactly: sections and rows with their index ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    sections: Vec<SectionLayout>,
    by_name: BTreeMap<String, usize>,
    count: u32,
}

/// A ticket's place in the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub section: usize,
    /// `(row index within the section, seat number from 1)`; `None` for general admission.
    pub seat: Option<(u32, u32)>,
    /// Number from 1 within a general section (0 for a seat).
    pub number: u32,
}

impl Layout {
    /// The layout of `sections` priced with `prices` (a section without a price costs 0).
    /// Refuses what the rules cannot work with: no sections or no tickets, more than
    /// [`TICKETS_PER_EVENT_MAX`], names that are empty, repeated or contain `-`, rows or
    /// seats out of their limits.
    pub fn new(sections: &[SectionSpec], prices: &BTreeMap<String, u64>) -> Result<Layout, String> {
        if sections.is_empty() || sections.len() > SECTIONS_PER_VENUE_MAX {
            return Err(format!("need 1..={SECTIONS_PER_VENUE_MAX} sections"));
        }
        let mut layout = Layout::default();
        let mut next: u64 = 0;
        for (s, spec) in sections.iter().enumerate() {
            check_part("section", &spec.name)?;
            if layout.by_name.insert(spec.name.clone(), s).is_some() {
                return Err(format!("duplicate section {}", spec.name));
            }
            let start = next;
            let tickets = match &spec.kind {
                SectionKind::Seated { rows } => {
                    if rows.is_empty() || rows.len() > ROWS_PER_SECTION_MAX {
                        return Err(format!("section {} needs 1..={ROWS_PER_SECTION_MAX} rows", spec.name));
                    }
                    let mut out = Vec::with_capacity(rows.len());
                    let mut by_name = BTreeMap::new();
                    for (r, row) in rows.iter().enumerate() {
                        check_part("row", &row.name)?;
                        if row.seats == 0 || row.seats > SEATS_PER_ROW_MAX {
                            return Err(format!(
                                "row {} of {} needs 1..={SEATS_PER_ROW_MAX} seats",
                                row.name, spec.name
                            ));
                        }
                        if by_name.insert(row.name.clone(), r as u32).is_some() {
                            return Err(format!("duplicate row {} in {}", row.name, spec.name));
                        }
                        out.push(RowLayout { name: row.name.clone(), start: next as u32, len: row.seats });
                        next += u64::from(row.seats);
                        check_count(next)?;
                    }
                    SectionTickets::Seated { rows: out, by_name }
                }
                SectionKind::General { capacity } => {
                    if *capacity == 0 {
                        return Err(format!("section {} has no capacity", spec.name));
                    }
                    next += u64::from(*capacity);
                    check_count(next)?;
                    SectionTickets::General { start: start as u32, len: *capacity }
                }
            };
            layout.sections.push(SectionLayout {
                name: spec.name.clone(),
                price: prices.get(&spec.name).copied().unwrap_or(0),
                tickets,
                start: start as u32,
                len: (next - start) as u32,
            });
        }
        layout.count = next as u32;
        Ok(layout)
    }

    /// How many tickets.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    pub fn sections(&self) -> &[SectionLayout] {
        &self.sections
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<&SectionLayout> {
        self.by_name.get(name).map(|i| &self.sections[*i])
    }

    /// Where ticket `index` is. Panics when out of range (indexes come from this layout).
    pub fn place(&self, index: u32) -> Place {
        assert!(index < self.count, "ticket {index} out of range {}", self.count);
        let s = self.sections.partition_point(|s| s.start + s.len <= index);
        let section = &self.sections[s];
        match &section.tickets {
            SectionTickets::General { start, .. } => {
                Place { section: s, seat: None, number: index - start + 1 }
            }
            SectionTickets::Seated { rows, .. } => {
                let r = rows.partition_point(|r| r.start + r.len <= index);
                Place { section: s, seat: Some((r as u32, index - rows[r].start + 1)), number: 0 }
            }
        }
    }

    /// The id of ticket `index`.
    pub fn id(&self, index: u32) -> TicketId {
        let p = self.place(index);
        let section = &self.sections[p.section];
        match (&section.tickets, p.seat) {
            (SectionTickets::Seated { rows, .. }, Some((r, seat))) => {
                format!("{}-{}-{}", section.name, rows[r as usize].name, seat)
            }
            _ => format!("{}-{}", section.name, p.number),
        }
    }

    /// The price of ticket `index`.
    pub fn price(&self, index: u32) -> u64 {
        self.sections[self.place(index).section].price
    }

    /// Ticket `index` as the API shows it.
    pub fn spec(&self, index: u32) -> TicketSpec {
        let p = self.place(index);
        let section = &self.sections[p.section];
        let (row, seat) = match (&section.tickets, p.seat) {
            (SectionTickets::Seated { rows, .. }, Some((r, seat))) => {
                (Some(rows[r as usize].name.clone()), Some(seat))
            }
            _ => (None, None),
        };
        TicketSpec { id: self.id(index), section: section.name.clone(), row, seat, price: section.price }
    }

    /// The ticket whose id is `id`: `<section>-<row>-<seat>` or `<section>-<n>`, numbers in
    /// plain decimal (no sign, no leading zero), so each ticket has exactly one id.
    pub fn find(&self, id: &str) -> Option<u32> {
        let mut parts = id.split('-');
        let section = self.section(parts.next()?)?;
        match &section.tickets {
            SectionTickets::General { start, len } => {
                let n = canonical_number(parts.next()?)?;
                (parts.next().is_none() && (1..=*len).contains(&n)).then(|| start + n - 1)
            }
            SectionTickets::Seated { rows, by_name } => {
                let row = &rows[*by_name.get(parts.next()?)? as usize];
                let seat = canonical_number(parts.next()?)?;
                (parts.next().is_none() && (1..=row.len).contains(&seat)).then(|| row.start + seat - 1)
            }
        }
    }

    /// Every ticket, in order.
    pub fn specs(&self) -> Vec<TicketSpec> {
        (0..self.count).map(|i| self.spec(i)).collect()
    }
}

fn check_part(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('-') {
        return Err(format!("{what} name {name:?} must be non-empty and without '-'"));
    }
    Ok(())
}

fn check_count(count: u64) -> Result<(), String> {
    if count > u64::from(TICKETS_PER_EVENT_MAX) {
        return Err(format!("more than {TICKETS_PER_EVENT_MAX} tickets"));
    }
    Ok(())
}

/// `text` as a number written the one way [`Layout::id`] writes it.
fn canonical_number(text: &str) -> Option<u32> {
    if text.is_empty()
        || text.len() > 10
        || !text.bytes().all(|b| b.is_ascii_digit())
        || text.starts_with('0')
    {
        return None;
    }
    text.parse().ok()
}

/// The tickets of an event at `venue` with `prices` per section name (a section without a
/// price costs 0). An invalid venue (the catalog refuses those) gives no tickets.
pub fn tickets_for(venue: &VenueSpec, prices: &BTreeMap<String, u64>) -> Vec<TicketSpec> {
    Layout::new(&venue.sections, prices).map(|l| l.specs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::RowSpec;

    fn sections() -> Vec<SectionSpec> {
        vec![
            SectionSpec {
                name: "A".into(),
                kind: SectionKind::Seated {
                    rows: vec![
                        RowSpec { name: "1".into(), seats: 3 },
                        RowSpec { name: "B".into(), seats: 2 },
                    ],
                },
            },
            SectionSpec { name: "GA".into(), kind: SectionKind::General { capacity: 12 } },
        ]
    }

    #[test]
    fn ids_round_trip_and_are_in_order() {
        let prices = BTreeMap::from([("A".to_string(), 7)]);
        let layout = Layout::new(&sections(), &prices).unwrap();
        assert_eq!(layout.count(), 17);
        let ids: Vec<String> = (0..17).map(|i| layout.id(i)).collect();
        assert_eq!(&ids[..6], &["A-1-1", "A-1-2", "A-1-3", "A-B-1", "A-B-2", "GA-1"]);
        assert_eq!(ids[16], "GA-12");
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(layout.find(id), Some(i as u32), "{id}");
        }
        assert_eq!(layout.spec(4).price, 7);
        assert_eq!(layout.spec(5).price, 0);
        assert_eq!(layout.spec(3).row.as_deref(), Some("B"));
    }

    #[test]
    fn only_canonical_ids_are_found() {
        let layout = Layout::new(&sections(), &BTreeMap::new()).unwrap();
        for bad in [
            "GA-0", "GA-13", "GA-01", "GA-+1", "GA-1-1", "A-1", "A-1-4", "A-C-1", "X-1", "", "A-1-1-1", "GA-",
        ] {
            assert_eq!(layout.find(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_what_ids_cannot_name() {
        let mut s = sections();
        s[1].name = "G-A".into();
        assert!(Layout::new(&s, &BTreeMap::new()).is_err());
        let mut s = sections();
        s[1].name = "A".into();
        assert!(Layout::new(&s, &BTreeMap::new()).is_err());
        let s = vec![SectionSpec {
            name: "GA".into(),
            kind: SectionKind::General { capacity: TICKETS_PER_EVENT_MAX + 1 },
        }];
        assert!(Layout::new(&s, &BTreeMap::new()).is_err());
    }
}
