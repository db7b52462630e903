//! Every bound of the crate, as a named constant whose doc says what happens at the limit.

/// Most results in one page; a larger `limit` is rejected (`Invalid{field: "limit"}`).
pub const SEARCH_RESULTS_MAX: usize = 100;
/// Page size when `limit` is 0.
pub const SEARCH_RESULTS_DEFAULT: usize = 20;
/// Longest accepted `term`, in bytes (UTF-8); longer is rejected (`Invalid{field: "term"}`).
pub const TERM_BYTES_MAX: usize = 200;
/// Most words in a `term` (every word must match); more is rejected (`Invalid{field: "term"}`).
pub const TERM_WORDS_MAX: usize = 8;
/// Words of at least this many characters also match at edit distance 1 (typos).
pub const FUZZY_CHARS_MIN: usize = 5;
/// The last word is also matched as a prefix when it has at least this many characters
/// (a one-letter prefix would expand to a large part of the dictionary).
pub const PREFIX_CHARS_MIN: usize = 2;
/// Longest accepted `location`, in bytes; longer is rejected (`Invalid{field: "location"}`).
pub const LOCATION_BYTES_MAX: usize = 100;
/// Longest accepted `type`, in bytes; longer is rejected (`Invalid{field: "type"}`).
pub const EVENT_TYPE_BYTES_MAX: usize = 64;
/// Largest accepted `radius_km`, in km (half the Earth's circumference); larger, zero or
/// negative is rejected (`Invalid{field: "radius_km"}`).
pub const RADIUS_KM_MAX: f64 = 20_000.0;
/// Longest accepted `cursor`, in bytes; longer is rejected (`Invalid{field: "cursor"}`).
pub const CURSOR_BYTES_MAX: usize = 1024;
/// "Upcoming" (no filter at all) floors `now_ms` to this granularity, in ms, so the result
/// cache can serve the same answer for a minute. An event that started less than this long
/// ago can still be listed as upcoming.
pub const UPCOMING_NOW_GRANULARITY_MS: u64 = 60_000;
/// Result cache entries when `SearchOptions::default()` is used.
pub const CACHE_ENTRIES_DEFAULT: usize = 1024;
/// Indexing memory budget when `SearchOptions::default()` is used, in bytes (tantivy needs at
/// least 15 MB per indexing thread).
pub const WRITER_MEMORY_BYTES_DEFAULT: usize = 64 << 20;
/// The first time window tried by a query without a term, in ms (1 day); it grows by
/// [`WINDOW_GROWTH`] until a page is full or the whole date range is covered.
pub const WINDOW_MS_INITIAL: u64 = 24 * 3600 * 1000;
/// Growth factor of the time window of a query without a term.
pub const WINDOW_GROWTH: u64 = 8;
/// Most dictionary terms one typo or prefix word expands to (the first ones in term order,
/// per segment); the rest are ignored. Keeps "a" + prefix from touching the whole dictionary.
pub const EXPANSIONS_MAX: usize = 32;
/// Most grid cells a distance query's prefilter may use; beyond, a coarser level is used,
/// and beyond the coarsest (16°), no prefilter (exact check on every candidate).
pub const GEO_CELLS_MAX: usize = 64;
/// Attempts of [`crate::SearchIndex::compact`] when a background merge races it; after the
/// last, the error is returned (the index is intact, just not compacted).
pub const COMPACT_ATTEMPTS_MAX: u32 = 20;
