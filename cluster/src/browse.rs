//! Browse reads: served from this node's replicas without a Raft round trip, possibly a
//! little stale, each with the version (applied log index) it reflects.

use std::time::Duration;

use tickets::catalog::{Event, Performer, Venue};
use tickets::inventory::{Availability, TicketStatus};
use tickets::layout::TicketSpec;
use tickets::Rejection;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::machine::ChangeSet;
use crate::store::{wall_ms, Store};

/// An event page: the event with its venue, performers and ticket counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeatMap {
    pub version: u64,
    pub tickets: Vec<(TicketSpec, TicketStatus)>,
    /// When a hold of this version lapses and the map reads differently without a new
    /// entry (`Inventory::next_lapse_after`); `None`: not before the next entry.
    pub valid_until: Option<tickets::Millis>,
}

/// An event's ticket statuses in layout order (no specs), with the version they reflect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeatStatuses {
    pub version: u64,
    pub statuses: Vec<TicketStatus>,
    /// As [`SeatMap::valid_until`].
    pub valid_until: Option<tickets::Millis>,
}

/// One page of a catalog listing, in id order.
#[derive(Clone, Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// The id to continue after; `None` when the listing is done.
    pub next: Option<String>,
}

/// Most catalog entries one listing page looks at: a filter that matches little answers a
/// short (even empty) page with a cursor instead of walking the whole catalog.
pub const LISTING_SCAN_MAX: usize = 10_000;

/// Which events a listing keeps.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventFilter {
    /// `Some(true)`: only cancelled; `Some(false)`: only scheduled.
    pub cancelled: Option<bool>,
    /// `starts_at` at or after this.
    pub from_ms: Option<tickets::Millis>,
    /// `starts_at` at or before this.
    pub to_ms: Option<tickets::Millis>,
}

impl EventFilter {
    fn keeps(&self, e: &Event) -> bool {
        self.cancelled.is_none_or(|c| c == e.cancelled)
            && self.from_ms.is_none_or(|t| e.spec.starts_at >= t)
            && self.to_ms.is_none_or(|t| e.spec.starts_at <= t)
    }
}

/// Up to `limit` values of `map` after the key `after` that `keep` accepts, looking at no
/// more than [`LISTING_SCAN_MAX`] entries.
fn list_page<K: std::borrow::Borrow<str> + Ord, V: Clone>(
    map: &std::collections::BTreeMap<K, V>,
    after: Option<&str>,
    limit: usize,
    keep: impl Fn(&V) -> bool,
) -> Listing<V> {
    use std::ops::Bound;
    let start = match after {
        Some(a) => Bound::Excluded(a),
        None => Bound::Unbounded,
    };
    let mut items = Vec::with_capacity(limit.min(128));
    let mut range = map.range::<str, _>((start, Bound::Unbounded));
    let mut scanned = 0;
    let mut last: Option<&K> = None;
    for (id, value) in range.by_ref() {
        scanned += 1;
        last = Some(id);
        if keep(value) {
            items.push(value.clone());
            if items.len() == limit {
                break;
            }
        }
        if scanned == LISTING_SCAN_MAX {
            break;
        }
    }
    // More after the last entry looked at? Then the client continues from there.
    let more = range.next().is_some();
    Listing {
        items,
        next: if more { last.map(|k| std::borrow::Borrow::<str>::borrow(k).to_string()) } else { None },
    }
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
    SeatMap { version: m.version(), tickets, valid_until: next_lapse(m, now) }
}

fn next_lapse(m: &crate::machine::GroupMachine, now: tickets::Millis) -> Option<tickets::Millis> {
    m.as_inventory().and_then(|i| i.next_lapse_after(now.max(i.now())))
}

impl Store {
    pub fn venue(&self, id: &str) -> Result<Venue> {
        self.catalog_read(|c| c.venues.get(id).cloned()).ok_or_else(|| Rejection::not_found("venue").into())
    }

    pub fn performer(&self, id: &str) -> Result<Performer> {
        self.catalog_read(|c| c.performers.get(id).cloned())
            .ok_or_else(|| Rejection::not_found("performer").into())
    }

    /// Venues in id order after `after`.
    pub fn list_venues(&self, after: Option<&str>, limit: usize) -> Listing<Venue> {
        self.catalog_read(|c| list_page(&c.venues, after, limit, |_| true))
    }

    /// Performers in id order after `after`.
    pub fn list_performers(&self, after: Option<&str>, limit: usize) -> Listing<Performer> {
        self.catalog_read(|c| list_page(&c.performers, after, limit, |_| true))
    }

    /// Events in id order after `after` that `filter` keeps.
    pub fn list_events(&self, after: Option<&str>, limit: usize, filter: EventFilter) -> Listing<Event> {
        self.catalog_read(|c| list_page(&c.events, after, limit, |e| filter.keeps(e)))
    }

    pub(crate) async fn local_event_page(&self, id: &str) -> Result<EventPage> {
        // The group first: on a node that does not serve the event, nothing is copied.
        let group = self.event_group(id).await?;
        let (event, venue, performers) = self
            .catalog_read(|c| {
                let event = c.events.get(id)?.clone();
                let venue = c.venues.get(&event.spec.venue_id)?.clone();
                let performers =
                    event.spec.performer_ids.iter().filter_map(|p| c.performers.get(p).cloned()).collect();
                Some((event, venue, performers))
            })
            .ok_or_else(|| Rejection::not_found("event"))?;
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

    pub(crate) async fn local_seat_map(&self, id: &str) -> Result<SeatMap> {
        let group = self.event_group(id).await?;
        let now = wall_ms();
        Ok(group.read_local(|m| seat_map(m, now)))
    }

    /// The event's inventory version (applied log index) here, without reading its seats.
    pub(crate) async fn local_seat_version(&self, id: &str) -> Result<u64> {
        let group = self.event_group(id).await?;
        Ok(group.read_local(|m| m.version()))
    }

    /// The event's ticket layout (sections, rows, prices), fixed when the event was made.
    pub(crate) async fn local_seat_layout(&self, id: &str) -> Result<tickets::layout::Layout> {
        let group = self.event_group(id).await?;
        Ok(group.read_local(|m| m.as_inventory().map(|i| i.layout().clone()).unwrap_or_default()))
    }

    /// The event's ticket statuses in layout order as of now (lazy expiry applied, as in
    /// [`Store::seat_map`]), without the specs.
    pub(crate) async fn local_seat_statuses(&self, id: &str) -> Result<SeatStatuses> {
        let group = self.event_group(id).await?;
        let now = wall_ms();
        Ok(group.read_local(|m| SeatStatuses {
            version: m.version(),
            statuses: m.as_inventory().map(|i| i.statuses(now.max(i.now()))).unwrap_or_default(),
            valid_until: next_lapse(m, now),
        }))
    }

    /// Wait until the event's inventory version passes `since`, at most `limit`; returns
    /// the version then (unchanged if the wait timed out).
    pub(crate) async fn local_wait_version(&self, id: &str, since: u64, limit: Duration) -> Result<u64> {
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
    /// The changes after `version`, in order. It ends when the watcher falls too far behind
    /// or the group goes away (the client then resumes with `Last-Event-ID`).
    pub live: ChangeFeed,
}

/// The live changes of a [`SeatWatch`].
pub type ChangeFeed = BoxStream<'static, ChangeSet>;

/// A group's change broadcast as a feed of the changes after `after`.
pub(crate) fn change_feed(rx: tokio::sync::broadcast::Receiver<ChangeSet>, after: u64) -> ChangeFeed {
    futures::stream::unfold((rx, after), |(mut rx, last)| async move {
        loop {
            match rx.recv().await {
                Ok(set) if set.version > last => {
                    let version = set.version;
                    return Some((set, (rx, version)));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .boxed()
}

impl Store {
    /// Start watching an event's seats, resuming after `last_seen` when the recent-change
    /// window still covers it (else a fresh snapshot).
    pub(crate) async fn local_watch_seats(&self, id: &str, last_seen: Option<u64>) -> Result<SeatWatch> {
        let group = self.event_group(id).await?;
        let now = wall_ms();
        Ok(group.read_local(|m| {
            let version = m.version();
            let live = change_feed(m.subscribe_changes(), version);
            if let Some(missed) = last_seen.filter(|v| *v <= version).and_then(|v| m.changes_since(v)) {
                return SeatWatch { snapshot: None, missed, version, live };
            }
            SeatWatch { snapshot: Some(seat_map(m, now)), missed: Vec::new(), version, live }
        }))
    }

    /// The applied-version feed of an event's group (wakes queue streams).
    pub(crate) async fn local_watch_version(&self, id: &str) -> Result<tokio::sync::watch::Receiver<u64>> {
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
