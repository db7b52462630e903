//! The documents the index is fed with and the answers it gives. Plain data, serde only.

use serde::{Deserialize, Serialize};

/// Where an event takes place. Stored inside [`EventDoc`] so results need no extra lookups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VenueDoc {
    pub id: String,
    pub name: String,
    pub city: String,
    /// Degrees, -90..=90.
    pub lat: f64,
    /// Degrees, -180..=180.
    pub lon: f64,
}

/// What the feeder records with a commit so that, after a restart, it can tell which events
/// changed since without replaying the catalog's log (which may be purged). Search only keeps
/// it: stored in the commit, given back by [`crate::SearchIndex::feed_mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedMark {
    /// The catalog's clock when the committed documents were read: an event changed after
    /// that carries an `updated_at` at or after it.
    pub clock_ms: u64,
    /// A fingerprint of what event documents copy from venues and performers (names, cities,
    /// places): when it differs, every document may be stale.
    pub names: u64,
}

/// Someone on the bill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerformerDoc {
    pub id: String,
    pub name: String,
}

/// One event as the catalog last applied it: the unit of indexing (upserted by `id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventDoc {
    pub id: String,
    pub name: String,
    pub description: String,
    pub event_type: String,
    pub starts_at_ms: u64,
    pub on_sale_at_ms: u64,
    /// Cancelled events stay indexed (so a later update finds them) but never appear in results.
    pub cancelled: bool,
    pub venue: VenueDoc,
    pub performers: Vec<PerformerDoc>,
}

/// A search request, already parsed from the query string (dates as ms since the epoch).
/// Every field is optional; see [`crate::SearchIndex::search`] for the semantics and bounds.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    pub term: Option<String>,
    pub location: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub radius_km: Option<f64>,
    pub event_type: Option<String>,
    /// Inclusive lower bound on `starts_at_ms`.
    pub date_from_ms: Option<u64>,
    /// Inclusive upper bound on `starts_at_ms`.
    pub date_to_ms: Option<u64>,
    /// 0 means [`crate::SEARCH_RESULTS_DEFAULT`]; at most [`crate::SEARCH_RESULTS_MAX`].
    pub limit: usize,
    /// `next_cursor` of the previous page of the same query.
    pub cursor: Option<String>,
    /// The caller's clock, used only when no filter is given ("upcoming events").
    pub now_ms: u64,
}

/// One result: the event as indexed, and its relevance (0 when the query has no term).
#[derive(Clone, Debug, Serialize)]
pub struct SearchHit {
    pub event: EventDoc,
    pub score: f32,
}

/// One page of results.
#[derive(Clone, Debug, Serialize)]
pub struct SearchPage {
    pub results: Vec<SearchHit>,
    /// Present only when another page exists; pass it back as `SearchQuery::cursor`.
    pub next_cursor: Option<String>,
    /// The index generation this page was computed on (for ETags).
    pub generation: u64,
}
