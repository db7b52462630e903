//! # search — the local search index of boxoffice
//!
//! This crate owns event search: a [tantivy] index of the catalog's events kept on every
//! node, so browsing answers from local data even when no quorum is reachable. The index is
//! a *projection* of the catalog (STYLE habit 3): it is fed the events the catalog group
//! applied on this node, each commit records the catalog log index it covers
//! ([`SearchIndex::applied_index`]) and the caller's [`FeedMark`], so that after a restart
//! the caller re-feeds only what changed since ([`SearchIndex::feed_mark`]), or rebuilds
//! when the index was missing or corrupt ([`SearchIndex::open`] then starts empty). Search
//! never calls into raft; it is fed.
//!
//! Main types:
//! - [`SearchIndex`]: open/create, [`apply`](SearchIndex::apply) (upsert + commit; with a
//!   mark: [`apply_marked`](SearchIndex::apply_marked)), [`rebuild`](SearchIndex::rebuild), [`search`](SearchIndex::search),
//!   [`compact`](SearchIndex::compact) (merge to one segment after a bulk load).
//! - [`EventDoc`] (with [`VenueDoc`], [`PerformerDoc`]): what is indexed; stored whole as
//!   JSON, so results carry venue and performer names without another lookup.
//! - [`SearchQuery`] → [`SearchPage`] of [`SearchHit`]s with an opaque `next_cursor`.
//! - [`SearchError`]: `Invalid { field }` (→ 400 `invalid_request`) or `Index` (→ 500).
//!
//! Query semantics (any subset of parameters; all given ones must hold):
//! - `term`: every word must match (AND) in the name, performers, venue name, city or
//!   description, ranked by BM25 with the name boosted. Words of
//!   [`FUZZY_CHARS_MIN`]+ characters also match at edit distance 1 ("tayler" → Taylor), the
//!   last word also matches as a prefix ("taylor swi" → Taylor Swift), both at a small
//!   constant score; a term equal to the whole name (folded) gets a large boost, so the
//!   exact name ranks first. Text is lowercased and ASCII-folded ("motley" finds "Mötley").
//! - `location`: the venue's city equals it, case- and accent-insensitively (not fuzzy).
//! - `lat` + `lon` + `radius_km`: great-circle (haversine) distance ≤ radius; a box on the
//!   lat/lon fast fields prefilters, the exact distance decides. All three or none.
//! - `event_type`: exact (lowercased). `date_from_ms`/`date_to_ms`: inclusive, on starts_at.
//! - No parameter at all: upcoming events (`starts_at >= now_ms`, floored to the minute).
//! - Cancelled events are never returned (they stay indexed, flagged).
//! - Order: with a term, score descending, then starts_at, then id; without, starts_at then
//!   id. Paging is keyset: the cursor holds the last result's sort key, so pages have no
//!   duplicates or gaps while the index is unchanged.
//!
//! Module layout:
//! - [`limits`]: every bound, as a named constant.
//! - `model`: the fed documents and the answers (plain serde types, re-exported here).
//! - `query` (private): validation and normalization of a query into a plan; cursor codec.
//! - `schema` (private): tantivy schema, analyzers, EventDoc → tantivy document.
//! - `collector` (private): top-k after a cursor, with the cancelled and distance checks.
//! - [`geo`]: haversine and the prefilter box.
//! - `index` (private): [`SearchIndex`], the shell: directory, writer, reader, result cache.
//!
//! Must not depend on: raft, cluster, api, node, or any async runtime. It is a blocking
//! library; callers run `apply`/`rebuild` (which commit, i.e. fsync) on `spawn_blocking`.
//!
//! Caveats:
//! - Scores depend on index-wide statistics, so a cursor of a *term* query may skip or
//!   repeat a result if the index changes between pages (queries without a term are immune:
//!   their key is `(starts_at, id)`).
//! - `generation` restarts at 0 when the index is reset; ETags should combine it with
//!   `applied_index` (content is a function of the catalog index).
//! - `open` verifies checksums of every file (reads the whole index once); corruption that
//!   happens later surfaces as `SearchError::Index` from `search`, and the caller should
//!   `rebuild`.
//! - Typo and prefix matches are found by running tantivy's Levenshtein automaton over the
//!   `all` field's dictionary and become ordinary BM25 term queries at a low boost, at most
//!   [`EXPANSIONS_MAX`] per word (first in term order): a prefix such as "th" on a large
//!   vocabulary does not find every word starting with it.
//! - Query latency grows with the number of segments (a fixed cost per segment per query):
//!   after a bulk load or `rebuild`, call `compact` (10 s at a million events here).
//! - The result cache is cleared on every commit; it helps repeated queries between commits.

mod collector;
mod error;
pub mod geo;
mod index;
pub mod limits;
mod model;
mod query;
mod schema;

pub use error::SearchError;
pub use index::{SearchIndex, SearchOptions};
pub use limits::*;
pub use model::{EventDoc, FeedMark, PerformerDoc, SearchHit, SearchPage, SearchQuery, VenueDoc};
