//! The search feeder: keeps this node's search index a projection of its catalog
//! replica. It subscribes to the catalog's applied changes; each batch of event changes
//! becomes one index commit that records the catalog log index it covers and a
//! [`FeedMark`] (the catalog's clock and a fingerprint of venue and performer names). At
//! start, or when it fell behind the change channel, it catches up from the catalog *state*
//! (the log may be purged; the state is always whole): it re-indexes the events whose
//! `updated_at` is at or after the mark's clock — a scan of the events, no log replay. It
//! rebuilds the whole index only when it cannot catch up: a new or reset index, one without a
//! mark, or venue/performer names that changed since. Search never calls into raft.

use std::hash::{Hash, Hasher};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use search::{EventDoc, FeedMark, PerformerDoc, SearchIndex, VenueDoc};
use tickets::catalog::{Catalog, CatalogChange, Event};

use raft::Group;
use tokio::sync::watch;

use crate::machine::GroupMachine;

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
        id: event.id.to_string(),
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

/// What event documents copy from venues and performers (names, cities, places), hashed.
fn names_fingerprint(c: &Catalog) -> u64 {
    // SipHash with fixed keys: the same on every run of one build (another build may hash
    // differently: then one rebuild).
    let mut h = std::hash::DefaultHasher::new();
    for v in c.venues.values() {
        let l = &v.spec.location;
        (&v.id, &v.spec.name, &v.spec.city, l.lat.to_bits(), l.lon.to_bits()).hash(&mut h);
    }
    for p in c.performers.values() {
        (&p.id, &p.spec.name).hash(&mut h);
    }
    h.finish()
}

/// The mark of documents read from `c` now.
pub fn feed_mark(c: &Catalog) -> FeedMark {
    FeedMark { clock_ms: c.clock.now(), names: names_fingerprint(c) }
}

/// The documents that bring an index whose last commit was read at `since` up to `c`: every
/// event changed at or after the mark's clock (the catalog's clock only moves forward, and
/// every change to an event sets its `updated_at` to it). `None` when venue or performer
/// names changed since: any document may be stale, rebuild.
pub fn changed_since(c: &Catalog, since: &FeedMark) -> Option<Vec<EventDoc>> {
    if names_fingerprint(c) != since.names {
        return None;
    }
    Some(c.events.values().filter(|e| e.updated_at >= since.clock_ms).map(|e| event_doc(c, e)).collect())
}

/// The mark of a batch's commit: it must not claim more than the batch covers. A restart
/// re-indexes events changed at or after the mark's clock, and rebuilds when the names
/// fingerprint differs; so when the catalog has already applied changes past the batch
/// (`exact` false), the mark is taken as of the batch: the latest `updated_at` among its
/// events (at most the clock at its last change) and the previous commit's names fingerprint
/// (a venue renamed after the batch then makes a restart rebuild, never miss it).
fn batch_mark(
    c: &Catalog,
    exact: bool,
    batch: &[(u64, CatalogChange)],
    previous: Option<FeedMark>,
) -> FeedMark {
    if exact {
        return feed_mark(c);
    }
    let clock_in_batch = batch
        .iter()
        .filter_map(|(_, change)| match change {
            CatalogChange::Event(e) => Some(e.updated_at),
            _ => None,
        })
        .max();
    let previous_clock = previous.map_or(0, |p| p.clock_ms);
    FeedMark {
        clock_ms: clock_in_batch.unwrap_or(previous_clock).max(previous_clock),
        names: previous.map_or(0, |p| p.names),
    }
}

async fn rebuild(catalog: &Group<GroupMachine>, index: &Arc<SearchIndex>) {
    let started = std::time::Instant::now();
    let (version, mark, docs) = catalog.read_local(|m| {
        let c = m.as_catalog().expect("the catalog group hosts the catalog");
        (m.version(), feed_mark(c), c.events.values().map(|e| event_doc(c, e)).collect::<Vec<_>>())
    });
    let count = docs.len();
    let index = index.clone();
    // One segment keeps every query shape fast (docs/search.md); a rebuild is rare.
    match tokio::task::spawn_blocking(move || {
        index.rebuild_marked(version, Some(mark), docs).and_then(|()| index.compact())
    })
    .await
    {
        Ok(Ok(())) => info!(
            events = count,
            catalog_index = version,
            took_ms = started.elapsed().as_millis() as u64,
            "search index rebuilt from the catalog"
        ),
        Ok(Err(e)) => warn!(error = %e, "search index rebuild failed"),
        Err(e) => warn!(error = %e, "search index rebuild panicked"),
    }
}

/// Bring the index up to the catalog: re-index what changed since its mark, or rebuild when
/// that cannot be known (see the module doc).
async fn catch_up(catalog: &Group<GroupMachine>, index: &Arc<SearchIndex>) {
    let Some(since) = index.feed_mark().filter(|_| index.applied_index() > 0) else {
        return rebuild(catalog, index).await;
    };
    let started = std::time::Instant::now();
    let (version, mark, docs) = catalog.read_local(|m| {
        let c = m.as_catalog().expect("the catalog group hosts the catalog");
        (m.version(), feed_mark(c), changed_since(c, &since))
    });
    let Some(docs) = docs else {
        info!("venue or performer names changed since the search index's last commit: rebuilding it");
        return rebuild(catalog, index).await;
    };
    let count = docs.len();
    let from = index.applied_index();
    let index2 = index.clone();
    match tokio::task::spawn_blocking(move || index2.apply_marked(version, Some(mark), docs)).await {
        Ok(Ok(())) => info!(
            events = count,
            from,
            catalog_index = version,
            took_ms = started.elapsed().as_millis() as u64,
            "search index caught up with the catalog"
        ),
        Ok(Err(e)) => {
            warn!(error = %e, "search index catch-up failed: rebuilding");
            rebuild(catalog, index).await
        }
        Err(e) => warn!(error = %e, "search index catch-up panicked"),
    }
}

/// The feed's task: all it needs is this node's catalog replica, the index it keeps, and the
/// node's shutdown signal.
pub(crate) async fn run(
    catalog: Group<GroupMachine>,
    index: Arc<SearchIndex>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = catalog.read_local(|m| m.subscribe_catalog_changes());
    if index.applied_index() == 0 {
        rebuild(&catalog, &index).await;
    } else if index.applied_index() < catalog.applied_index() {
        catch_up(&catalog, &index).await;
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
                catch_up(&catalog, &index).await;
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
            catch_up(&catalog, &index).await;
            continue;
        }
        let last = batch.last().map_or(0, |(i, _)| *i);
        if last <= index.applied_index() {
            continue;
        }
        let previous = index.feed_mark();
        let (mark, docs): (FeedMark, Vec<EventDoc>) = catalog.read_local(|m| {
            let c = m.as_catalog().expect("the catalog group hosts the catalog");
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
            // The index may only ever cover what the catalog applied: a change arrives after
            // its entry is applied, under the same lock this read takes.
            assert!(
                last <= m.version(),
                "search feed: a change at catalog index {last} arrived before the catalog applied it ({})",
                m.version()
            );
            let docs = ids.iter().filter_map(|id| c.events.get(*id)).map(|e| event_doc(c, e)).collect();
            (batch_mark(c, m.version() == last, &batch, previous), docs)
        });
        let index = index.clone();
        last_commit = Some(tokio::time::Instant::now());
        match tokio::task::spawn_blocking(move || index.apply_marked(last, Some(mark), docs)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "search index commit failed; rebuilding on the next change"),
            Err(e) => warn!(error = %e, "search index commit panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickets::catalog::{CatalogCommand, EventPatch, EventSpec, PerformerSpec, VenueSpec};

    fn venue(name: &str) -> VenueSpec {
        serde_json::from_value(serde_json::json!({
            "name": name, "city": "Lisbon", "country": "PT", "location": {"lat": 38.7, "lon": -9.1},
            "sections": [{"name": "Floor", "kind": {"General": {"capacity": 4}}}]
        }))
        .expect("venue spec")
    }

    fn performer(name: &str) -> PerformerSpec {
        PerformerSpec { name: name.into(), genre: "rock".into() }
    }

    fn event(name: &str) -> EventSpec {
        // From JSON, so optional fields added later need no change here.
        serde_json::from_value(serde_json::json!({
            "name": name, "description": "", "event_type": "concert", "venue_id": "v1",
            "performer_ids": ["p1"], "starts_at": 10_000_000, "on_sale_at": 0,
            "prices": {"Floor": 100}, "currency": "EUR", "per_user_limit": 4, "hold_seconds": 600,
            "queue": {"enabled": false, "max_admitted": 1, "admission_seconds": 60}
        }))
        .expect("event spec")
    }

    fn ids(docs: &[EventDoc]) -> Vec<&str> {
        let mut ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn what_changed_since_a_mark_is_found_from_the_state() {
        let mut c = Catalog::default();
        let node =
            CatalogCommand::RegisterNode { id: 1, raft_addr: "r".into(), http_addr: "h".into(), store_id: 1 };
        c.apply(node, 10).unwrap();
        c.apply(CatalogCommand::CreateVenue { id: "v1".into(), spec: venue("Arena") }, 100).unwrap();
        c.apply(CatalogCommand::CreatePerformer { id: "p1".into(), spec: performer("The Band") }, 100)
            .unwrap();
        c.apply(CatalogCommand::CreateEvent { id: "e0".into(), spec: event("Old") }, 500).unwrap();
        c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event("One") }, 1_000).unwrap();
        let mark = feed_mark(&c);
        assert_eq!(mark.clock_ms, 1_000);
        // Nothing changed yet: only what shares the mark's instant (at or after it).
        assert_eq!(ids(&changed_since(&c, &mark).unwrap()), ["e1"]);
        let rename = EventPatch { name: Some("Old, renamed".into()), ..Default::default() };
        c.apply(CatalogCommand::UpdateEvent { id: "e0".into(), patch: rename }, 2_000).unwrap();
        c.apply(CatalogCommand::CreateEvent { id: "e2".into(), spec: event("Two") }, 2_000).unwrap();
        c.apply(CatalogCommand::CancelEvent { id: "e1".into() }, 3_000).unwrap();
        let changed = changed_since(&c, &mark).unwrap();
        assert_eq!(ids(&changed), ["e0", "e1", "e2"]);
        assert!(changed.iter().any(|d| d.name == "Old, renamed"));
        assert!(changed.iter().any(|d| d.id == "e1" && d.cancelled));
        // A later mark sees only what came after it.
        assert_eq!(ids(&changed_since(&c, &feed_mark(&c)).unwrap()), ["e1"]);
        // A renamed performer (a venue in use cannot change): any document may carry the old name.
        c.apply(CatalogCommand::UpdatePerformer { id: "p1".into(), spec: performer("The Others") }, 4_000)
            .unwrap();
        assert!(changed_since(&c, &mark).is_none());
    }

    #[test]
    fn a_batch_mark_claims_no_more_than_the_batch_covers() {
        let mut c = Catalog::default();
        let node =
            CatalogCommand::RegisterNode { id: 1, raft_addr: "r".into(), http_addr: "h".into(), store_id: 1 };
        c.apply(node, 10).unwrap();
        c.apply(CatalogCommand::CreateVenue { id: "v1".into(), spec: venue("Arena") }, 100).unwrap();
        c.apply(CatalogCommand::CreatePerformer { id: "p1".into(), spec: performer("The Band") }, 100)
            .unwrap();
        c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event("One") }, 1_000).unwrap();
        let in_batch = CatalogChange::Event(Box::new(c.events["e1"].clone()));
        let previous = FeedMark { clock_ms: 900, names: 7 };
        // The catalog went on past the batch (to clock 5,000, a performer renamed).
        c.apply(CatalogCommand::UpdatePerformer { id: "p1".into(), spec: performer("The Others") }, 5_000)
            .unwrap();
        let batch = [(3, in_batch)];
        assert_eq!(batch_mark(&c, false, &batch, Some(previous)), FeedMark { clock_ms: 1_000, names: 7 });
        // No event in the batch: the previous clock.
        let names_only = [(4, CatalogChange::Performer(c.performers["p1"].clone()))];
        assert_eq!(batch_mark(&c, false, &names_only, Some(previous)).clock_ms, 900);
        // The batch is all the catalog applied: the mark is exact.
        assert_eq!(batch_mark(&c, true, &batch, Some(previous)), feed_mark(&c));
    }
}
