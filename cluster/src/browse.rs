//! Browse reads: served from this node's replicas without a Raft round trip, possibly a
//! little stale, each with the version (applied log index) it reflects.

use std::time::Duration;

use tickets::catalog::{Event, Performer, Venue};
use tickets::inventory::{Availability, TicketStatus};
use tickets::layout::TicketSpec;
use tickets::Rejection;

use crate::error::Result;
use crate::store::{wall_ms, Store};

/// An event page: the event with its venue, performers and ticket counts.
#[derive(Clone, Debug)]
pub struct EventPage {
    pub event: Event,
    pub venue: Venue,
    pub performers: Vec<Performer>,
    pub availability: Availability,
    /// The inventory's applied log index.
    pub version: u64,
    /// The catalog's applied log index (the descriptive part's version).
    pub catalog_version: u64,
}

#[derive(Clone, Debug)]
pub struct SeatMap {
    pub version: u64,
    pub tickets: Vec<(TicketSpec, TicketStatus)>,
}

/// The seat map of an inventory machine as of `now` (lazy expiry applied).
fn seat_map(m: &crate::machine::GroupMachine, now: tickets::Millis) -> SeatMap {
    let tickets = m
        .as_inventory()
        .map(|i| {
            i.ticket_statuses(now.max(i.now()))
                .into_iter()
                .map(|(spec, status)| (spec.clone(), status))
                .collect()
        })
        .unwrap_or_default();
    SeatMap { version: m.version(), tickets }
}

impl Store {
    pub fn venue(&self, id: &str) -> Result<Venue> {
        self.catalog_read(|c| c.venues.get(id).cloned()).ok_or_else(|| Rejection::not_found("venue").into())
    }

    pub fn performer(&self, id: &str) -> Result<Performer> {
        self.catalog_read(|c| c.performers.get(id).cloned())
            .ok_or_else(|| Rejection::not_found("performer").into())
    }

    pub async fn event_page(&self, id: &str) -> Result<EventPage> {
        let (event, venue, performers) = self
            .catalog_read(|c| {
                let event = c.events.get(id)?.clone();
                let venue = c.venues.get(&event.spec.venue_id)?.clone();
                let performers =
                    event.spec.performer_ids.iter().filter_map(|p| c.performers.get(p).cloned()).collect();
                Some((event, venue, performers))
            })
            .ok_or_else(|| Rejection::not_found("event"))?;
        let group = self.event_group(id).await?;
        let now = wall_ms();
        let (availability, version) = group.read_local(|m| {
            let inv = m.as_inventory();
            (inv.map(|i| i.availability(now.max(i.now()))).unwrap_or_default(), m.version())
        });
        Ok(EventPage {
            event,
            venue,
            performers,
            availability,
            version,
            catalog_version: self.catalog_version(),
        })
    }

    pub async fn seat_map(&self, id: &str) -> Result<SeatMap> {
        let group = self.event_group(id).await?;
        let now = wall_ms();
        Ok(group.read_local(|m| seat_map(m, now)))
    }

    /// Wait until the event's inventory version passes `since`, at most `limit`; returns
    /// the version then (unchanged if the wait timed out).
    pub async fn wait_version(&self, id: &str, since: u64, limit: Duration) -> Result<u64> {
        let group = self.event_group(id).await?;
        let mut version = group.read_local(|m| m.subscribe_version());
        let _ = tokio::time::timeout(limit, version.wait_for(|v| *v > since)).await;
        let current = *version.borrow();
        Ok(current)
    }
}

/// A seat stream's start: either a snapshot or the changes missed since `Last-Event-ID`,
/// and the live feed, subscribed under the machine's lock so nothing falls in between.
pub struct SeatWatch {
    pub snapshot: Option<SeatMap>,
    pub missed: Vec<crate::machine::ChangeSet>,
    /// The version the client is at once `snapshot` / `missed` are sent.
    pub version: u64,
    pub live: tokio::sync::broadcast::Receiver<crate::machine::ChangeSet>,
}

impl Store {
    /// Start watching an event's seats, resuming after `last_seen` when the recent-change
    /// window still covers it (else a fresh snapshot).
    pub async fn watch_seats(&self, id: &str, last_seen: Option<u64>) -> Result<SeatWatch> {
        let group = self.event_group(id).await?;
        let now = wall_ms();
        Ok(group.read_local(|m| {
            let live = m.subscribe_changes();
            let version = m.version();
            if let Some(missed) = last_seen.filter(|v| *v <= version).and_then(|v| m.changes_since(v)) {
                return SeatWatch { snapshot: None, missed, version, live };
            }
            SeatWatch { snapshot: Some(seat_map(m, now)), missed: Vec::new(), version, live }
        }))
    }

    /// The applied-version feed of an event's group (wakes queue streams).
    pub async fn watch_version(&self, id: &str) -> Result<tokio::sync::watch::Receiver<u64>> {
        let group = self.event_group(id).await?;
        Ok(group.read_local(|m| m.subscribe_version()))
    }
}

impl Store {
    /// Search this node's local index (no Raft: answers even without a quorum).
    pub async fn search(&self, query: search::SearchQuery) -> Result<search::SearchPage> {
        let index =
            self.inner.search.clone().ok_or_else(|| crate::Error::unavailable("search is not enabled"))?;
        match tokio::task::spawn_blocking(move || index.search(&query)).await {
            Ok(Ok(page)) => Ok(page),
            Ok(Err(search::SearchError::Invalid { field, detail })) => {
                Err(Rejection::invalid(field, detail).into())
            }
            Ok(Err(e)) => Err(crate::Error::Internal(e.to_string())),
            Err(e) => Err(crate::Error::Internal(e.to_string())),
        }
    }
}
