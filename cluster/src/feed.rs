//! The search feeder: keeps this node's search index a projection of its catalog
//! replica. It subscribes to the catalog's applied changes; each batch of event changes
//! becomes one index commit that records the catalog log index it covers. At start, or
//! when it fell behind the change channel, it rebuilds the index from the catalog state
//! (the log may be purged, the state is always whole). Search never calls into raft.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use search::{EventDoc, PerformerDoc, SearchIndex, VenueDoc};
use tickets::catalog::{Catalog, CatalogChange, Event};

use crate::store::Store;

/// Longest a change waits for others to share its index commit.
pub const FEED_BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Least time between two index commits. Each commit writes a new segment (six files) and
/// sets off merges; at one commit per 50 ms, creating events at 50/s spent most of a node's
/// CPU creating and deleting index files in the kernel (perf: `ext4_create` ~11 %, 75 % of
/// the CPU in system time). A lone change after a quiet spell is still indexed in 50 ms.
pub const FEED_COMMIT_INTERVAL_MIN: Duration = Duration::from_millis(500);
/// Most changes in one index commit.
pub const FEED_BATCH_MAX: usize = 1_000;

/// The search document of an event, with its venue and performer names.
pub fn event_doc(catalog: &Catalog, event: &Event) -> EventDoc {
    let venue = catalog.venues.get(&event.spec.venue_id);
    EventDoc {
        id: event.id.clone(),
        name: event.spec.name.clone(),
        description: event.spec.description.clone(),
        event_type: event.spec.event_type.clone(),
        starts_at_ms: event.spec.starts_at,
        on_sale_at_ms: event.spec.on_sale_at,
        cancelled: event.cancelled,
        venue: VenueDoc {
            id: event.spec.venue_id.clone(),
            name: venue.map(|v| v.spec.name.clone()).unwrap_or_default(),
            city: venue.map(|v| v.spec.city.clone()).unwrap_or_default(),
            lat: venue.map_or(0.0, |v| v.spec.location.lat),
            lon: venue.map_or(0.0, |v| v.spec.location.lon),
        },
        performers: event
            .spec
            .performer_ids
            .iter()
            .filter_map(|p| catalog.performers.get(p))
            .map(|p| PerformerDoc { id: p.id.clone(), name: p.spec.name.clone() })
            .collect(),
    }
}

async fn rebuild(store: &Store, index: &Arc<SearchIndex>) {
    let (version, docs) = store.catalog_group().read_local(|m| {
        let c = m.as_catalog().expect("the catalog group hosts the catalog");
        (m.version(), c.events.values().map(|e| event_doc(c, e)).collect::<Vec<_>>())
    });
    let count = docs.len();
    let index = index.clone();
    // One segment keeps every query shape fast (docs/search.md); a rebuild is rare.
    match tokio::task::spawn_blocking(move || index.rebuild(version, docs).and_then(|()| index.compact()))
        .await
    {
        Ok(Ok(())) => info!(events = count, catalog_index = version, "search index rebuilt from the catalog"),
        Ok(Err(e)) => warn!(error = %e, "search index rebuild failed"),
        Err(e) => warn!(error = %e, "search index rebuild panicked"),
    }
}

pub(crate) async fn run(store: Store, index: Arc<SearchIndex>) {
    let mut shutdown = store.inner.shutdown.subscribe();
    let mut changes = store.catalog_group().read_local(|m| m.subscribe_catalog_changes());
    if index.applied_index() < store.catalog_version() || index.applied_index() == 0 {
        rebuild(&store, &index).await;
    }
    let mut last_commit: Option<tokio::time::Instant> = None;
    loop {
        let first = tokio::select! {
            c = changes.recv() => c,
            _ = shutdown.changed() => return,
        };
        let mut batch = Vec::new();
        match first {
            Ok(c) => batch.push(c),
            Err(RecvError::Lagged(_)) => {
                rebuild(&store, &index).await;
                continue;
            }
            Err(RecvError::Closed) => return,
        }
        let mut deadline = tokio::time::Instant::now() + FEED_BATCH_WINDOW;
        if let Some(at) = last_commit {
            deadline = deadline.max(at + FEED_COMMIT_INTERVAL_MIN);
        }
        let mut lagged = false;
        while batch.len() < FEED_BATCH_MAX {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Ok(c)) => batch.push(c),
                Ok(Err(RecvError::Lagged(_))) => {
                    lagged = true;
                    break;
                }
                Ok(Err(RecvError::Closed)) | Err(_) => break,
            }
        }
        if lagged {
            rebuild(&store, &index).await;
            continue;
        }
        let last = batch.last().map_or(0, |(i, _)| *i);
        if last <= index.applied_index() {
            continue;
        }
        let docs: Vec<EventDoc> = store.catalog_read(|c| {
            // An event's document carries its venue's and performers' names too: an edited
            // venue or performer re-indexes the events that name it (an admin's rare edit;
            // walking the events then is fine).
            let mut ids: Vec<&str> = batch
                .iter()
                .flat_map(|(_, change)| -> Vec<&str> {
                    match change {
                        CatalogChange::Event(e) => vec![e.id.as_str()],
                        CatalogChange::Venue(v) => c
                            .events
                            .values()
                            .filter(|e| e.spec.venue_id == v.id)
                            .map(|e| e.id.as_str())
                            .collect(),
                        CatalogChange::Performer(p) => c
                            .events
                            .values()
                            .filter(|e| e.spec.performer_ids.contains(&p.id))
                            .map(|e| e.id.as_str())
                            .collect(),
                        _ => Vec::new(),
                    }
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.iter().filter_map(|id| c.events.get(*id)).map(|e| event_doc(c, e)).collect()
        });
        let index = index.clone();
        last_commit = Some(tokio::time::Instant::now());
        match tokio::task::spawn_blocking(move || index.apply(last, docs)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "search index commit failed; rebuilding on the next change"),
            Err(e) => warn!(error = %e, "search index commit panicked"),
        }
    }
}
