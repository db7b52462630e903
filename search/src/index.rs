//! [`SearchIndex`]: the shell around tantivy (directory, writer, reader, cache).

use std::num::NonZeroUsize;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use lru::LruCache;
use serde::{Deserialize, Serialize};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};
use tracing::{debug, info, warn};

use crate::collector::{Found, TopAfter};
use crate::geo::bounding_box;
use crate::limits::*;
use crate::query::{encode_cursor, plan, Plan};
use crate::schema::{self, cell_index, geo_cell, Fields, GEO_CELL_DEGREES};
use crate::{EventDoc, FeedMark, SearchError, SearchHit, SearchPage, SearchQuery};

/// Options of a [`SearchIndex`]; `Default` gives sensible values.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// tantivy's indexing memory budget, in bytes (at least 15 MB per indexing thread;
    /// tantivy uses up to `writer_memory_bytes / 15 MB` threads, at most one per core).
    pub writer_memory_bytes: usize,
    /// Entries in the result cache; 0 disables it.
    pub cache_entries: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            writer_memory_bytes: WRITER_MEMORY_BYTES_DEFAULT,
            cache_entries: CACHE_ENTRIES_DEFAULT,
        }
    }
}

/// Boost of each field for term words (BM25 is multiplied by it).
const BOOST_NAME: f32 = 3.0;
const BOOST_PERFORMERS: f32 = 2.0;
const BOOST_VENUE: f32 = 1.0;
const BOOST_CITY: f32 = 1.0;
const BOOST_DESCRIPTION: f32 = 0.5;
/// Constant score of a typo or prefix match (tantivy scores automaton matches as constants).
const BOOST_EXPANDED: f32 = 0.5;
/// Boost of the whole folded term equal to the whole folded name: "exact name ranks first".
const BOOST_EXACT_NAME: f32 = 20.0;

/// What each commit records in its payload (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct CommitPayload {
    applied_index: u64,
    generation: u64,
    /// Absent in commits made before marks existed (then the feeder rebuilds once).
    #[serde(default)]
    mark: Option<FeedMark>,
}

/// What searches read: replaced as a whole after each commit.
#[derive(Clone)]
struct Snapshot {
    searcher: Searcher,
    generation: u64,
    applied_index: u64,
    mark: Option<FeedMark>,
}

/// The local search index: a projection of the catalog, fed by [`SearchIndex::apply`].
/// `Send + Sync`; share it behind an `Arc`. Writes are serialized by an internal mutex;
/// searches never wait for a write (they read the last committed snapshot).
pub struct SearchIndex {
    fields: Fields,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
    snapshot: RwLock<Snapshot>,
    cache: Option<Mutex<LruCache<String, SearchPage>>>,
    dir: Option<PathBuf>,
}

fn io_err(e: impl std::fmt::Display) -> SearchError {
    SearchError::Index(e.to_string())
}

impl SearchIndex {
    /// Open (or create) the index in `dir`, which it owns exclusively. If the index there is
    /// missing, corrupt (a checksum mismatch, an unreadable file or payload) or has another
    /// schema, the directory is emptied and the index starts empty (`applied_index() == 0`),
    /// so the caller re-feeds it.
    pub fn open(dir: &Path, options: SearchOptions) -> Result<SearchIndex, SearchError> {
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let has_meta = dir.join("meta.json").exists();
        if has_meta {
            match Self::open_existing(dir, &options) {
                Ok(index) => return Ok(index),
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "search index unreadable, starting empty");
                    std::fs::remove_dir_all(dir).map_err(io_err)?;
                    std::fs::create_dir_all(dir).map_err(io_err)?;
                }
            }
        } else if std::fs::read_dir(dir).map_err(io_err)?.next().is_some() {
            warn!(dir = %dir.display(), "search index has no meta.json, starting empty");
            std::fs::remove_dir_all(dir).map_err(io_err)?;
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let (schema, _) = schema::build();
        let index = Index::create_in_dir(dir, schema)?;
        Self::from_index(index, &options, Some(dir.to_path_buf()))
    }

    fn open_existing(dir: &Path, options: &SearchOptions) -> Result<SearchIndex, SearchError> {
        let index = Index::open_in_dir(dir)?;
        let (schema, _) = schema::build();
        if index.schema() != schema {
            return Err(SearchError::Index("schema differs from this version's".into()));
        }
        let damaged = index.validate_checksum()?;
        if !damaged.is_empty() {
            return Err(SearchError::Index(format!("damaged files: {damaged:?}")));
        }
        let opened = Self::from_index(index, options, Some(dir.to_path_buf()))?;
        // Touch every segment's fast fields now, not at the first query.
        for segment in opened.snapshot().searcher.segment_readers() {
            let ff = segment.fast_fields();
            ff.u64("starts_at")?;
            ff.str("id")?.ok_or_else(|| SearchError::Index("id column missing".into()))?;
        }
        info!(dir = %dir.display(), applied_index = opened.applied_index(), docs = opened.len(), "search index opened");
        Ok(opened)
    }

    /// An index that lives only in memory (tests, or nodes that always rebuild).
    pub fn in_memory(options: SearchOptions) -> Result<SearchIndex, SearchError> {
        let (schema, _) = schema::build();
        Self::from_index(Index::create_in_ram(schema), &options, None)
    }

    fn from_index(
        index: Index,
        options: &SearchOptions,
        dir: Option<PathBuf>,
    ) -> Result<SearchIndex, SearchError> {
        schema::register_tokenizers(&index);
        let (_, fields) = schema::build();
        let payload = match index.load_metas()?.payload {
            None => CommitPayload { applied_index: 0, generation: 0, mark: None },
            Some(text) => serde_json::from_str::<CommitPayload>(&text)
                .map_err(|e| SearchError::Index(format!("commit payload {text:?}: {e}")))?,
        };
        let writer = index.writer(options.writer_memory_bytes)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let snapshot = Snapshot {
            searcher: reader.searcher(),
            generation: payload.generation,
            applied_index: payload.applied_index,
            mark: payload.mark,
        };
        let cache = NonZeroUsize::new(options.cache_entries).map(|n| Mutex::new(LruCache::new(n)));
        Ok(SearchIndex {
            fields,
            writer: Mutex::new(writer),
            reader,
            snapshot: RwLock::new(snapshot),
            cache,
            dir,
        })
    }

    fn snapshot(&self) -> Snapshot {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The catalog log index the last commit covers (0 for a new or reset index).
    pub fn applied_index(&self) -> u64 {
        self.snapshot().applied_index
    }

    /// Bumps on every commit; persisted, so it keeps growing across restarts of one index
    /// (but restarts from 0 when the index is reset — key ETags on `applied_index` too).
    pub fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    /// Documents in the index, cancelled ones included.
    pub fn len(&self) -> u64 {
        self.snapshot().searcher.num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The directory this index lives in (`None` in memory).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Upsert `events` by id (the last copy of an id in the batch wins), then commit,
    /// recording `catalog_index`. A batch older than the index (`catalog_index <
    /// applied_index()`) was already applied and is ignored; re-feeding the same batch is
    /// harmless. Blocking: call it from `spawn_blocking` or a dedicated thread. On an error
    /// the batch is not committed; the caller should re-feed from `applied_index()`.
    /// The commit records no [`FeedMark`]; see [`SearchIndex::apply_marked`].
    pub fn apply(&self, catalog_index: u64, events: Vec<EventDoc>) -> Result<(), SearchError> {
        self.apply_marked(catalog_index, None, events)
    }

    /// [`SearchIndex::apply`], recording `mark` with the commit ([`SearchIndex::feed_mark`]).
    pub fn apply_marked(
        &self,
        catalog_index: u64,
        mark: Option<FeedMark>,
        events: Vec<EventDoc>,
    ) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let applied = self.applied_index();
        if catalog_index < applied {
            debug!(catalog_index, applied, "search batch already applied, ignored");
            return Ok(());
        }
        let count = events.len();
        let result =
            self.add_events(&writer, events).and_then(|()| self.commit(&mut writer, catalog_index, mark));
        if result.is_err() {
            let _ = writer.rollback();
        }
        result?;
        debug!(catalog_index, events = count, "search batch applied");
        Ok(())
    }

    /// Replace the whole content with `events` and commit, recording `catalog_index`
    /// (a full resync). Blocking, like [`SearchIndex::apply`]. No [`FeedMark`].
    pub fn rebuild(&self, catalog_index: u64, events: Vec<EventDoc>) -> Result<(), SearchError> {
        self.rebuild_marked(catalog_index, None, events)
    }

    /// [`SearchIndex::rebuild`], recording `mark` with the commit.
    pub fn rebuild_marked(
        &self,
        catalog_index: u64,
        mark: Option<FeedMark>,
        events: Vec<EventDoc>,
    ) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let count = events.len();
        let result = writer
            .delete_all_documents()
            .map_err(SearchError::from)
            .and_then(|_| self.add_events(&writer, events))
            .and_then(|()| self.commit(&mut writer, catalog_index, mark));
        if result.is_err() {
            let _ = writer.rollback();
        }
        result?;
        info!(catalog_index, events = count, "search index rebuilt");
        Ok(())
    }

    /// The [`FeedMark`] the last commit recorded, if it recorded one.
    pub fn feed_mark(&self) -> Option<FeedMark> {
        self.snapshot().mark
    }

    /// Merge every segment into one and wait for it (blocking; seconds at a million events).
    /// Optional: tantivy merges in the background anyway, but after a bulk load or a rebuild
    /// one segment answers queries faster (every query pays a fixed cost per segment).
    /// Does not change the content, the applied index or the generation.
    pub fn compact(&self) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // A background merge may replace segments between listing and merging: retry.
        for attempt in 1..=COMPACT_ATTEMPTS_MAX {
            let ids = writer.index().searchable_segment_ids()?;
            if ids.len() <= 1 {
                break;
            }
            match writer.merge(&ids).wait() {
                Ok(_) => break,
                Err(e) if attempt < COMPACT_ATTEMPTS_MAX => {
                    debug!(attempt, error = %e, "compaction raced a background merge, retrying");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(e.into()),
            }
        }
        writer.garbage_collect_files().wait()?;
        self.reader.reload()?;
        let mut snap = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        snap.searcher = self.reader.searcher();
        Ok(())
    }

    fn add_events(
        &self,
        writer: &IndexWriter<TantivyDocument>,
        events: Vec<EventDoc>,
    ) -> Result<(), SearchError> {
        for event in events {
            let doc = schema::to_document(&self.fields, &event).map_err(io_err)?;
            // Delete then add: tantivy applies a delete only to documents added before it
            // (by opstamp), so this replaces any earlier copy, even one in this batch.
            writer.delete_term(Term::from_field_text(self.fields.id, &event.id));
            writer.add_document(doc)?;
        }
        Ok(())
    }

    fn commit(
        &self,
        writer: &mut IndexWriter<TantivyDocument>,
        catalog_index: u64,
        mark: Option<FeedMark>,
    ) -> Result<(), SearchError> {
        let before = self.snapshot();
        let payload = CommitPayload { applied_index: catalog_index, generation: before.generation + 1, mark };
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&serde_json::to_string(&payload).map_err(io_err)?);
        prepared.commit()?;
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        {
            let mut snap = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
            *snap = Snapshot { searcher, generation: payload.generation, applied_index: catalog_index, mark };
        }
        if let Some(cache) = &self.cache {
            cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        Ok(())
    }

    /// Search. Any subset of the query's fields; see the crate doc for the semantics.
    /// Cheap enough to call inline from async code on a warm index, but it does read the
    /// index files (mmap), so `spawn_blocking` is the safe choice under memory pressure.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let plan = plan(query)?;
        let snap = self.snapshot();
        let cache_key = format!("{}|{:?}", snap.generation, plan);
        if let Some(cache) = &self.cache {
            if let Some(page) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&cache_key) {
                return Ok(page.clone());
            }
        }
        let page = self.search_uncached(&plan, &snap)?;
        if let Some(cache) = &self.cache {
            cache.lock().unwrap_or_else(|e| e.into_inner()).put(cache_key, page.clone());
        }
        Ok(page)
    }

    fn search_uncached(&self, plan: &Plan, snap: &Snapshot) -> Result<SearchPage, SearchError> {
        let k = plan.limit + 1;
        let collector = TopAfter { k, scoring: plan.scoring(), after: plan.after.clone(), geo: plan.geo };
        let found = if plan.scoring() {
            let query = self.build_query(&snap.searcher, plan, plan.from_ms, plan.to_ms)?;
            snap.searcher.search(&query, &collector)?
        } else {
            // Sorted by start time: search growing windows from the start of the range; as
            // soon as a window holds a full page, nothing outside it can come earlier.
            let lo = match &plan.after {
                Some(after) => plan.from_ms.max(after.starts_at),
                None => plan.from_ms,
            };
            let mut width = WINDOW_MS_INITIAL;
            loop {
                let hi = lo.saturating_add(width).min(plan.to_ms);
                let query = self.build_query(&snap.searcher, plan, lo, hi)?;
                let found = snap.searcher.search(&query, &collector)?;
                if found.len() >= k || hi >= plan.to_ms {
                    break found;
                }
                width = width.saturating_mul(WINDOW_GROWTH);
            }
        };
        self.page(plan, snap, found)
    }

    fn page(&self, plan: &Plan, snap: &Snapshot, mut found: Vec<Found>) -> Result<SearchPage, SearchError> {
        let more = found.len() > plan.limit;
        found.truncate(plan.limit);
        let next_cursor = match found.last() {
            Some(last) if more => Some(encode_cursor(plan.query_hash(), &last.key)),
            _ => None,
        };
        let mut results = Vec::with_capacity(found.len());
        for f in found {
            let doc: TantivyDocument = snap.searcher.doc(f.address)?;
            let json = doc
                .get_first(self.fields.doc)
                .and_then(|v| v.as_str())
                .ok_or_else(|| SearchError::Index("stored document missing".into()))?;
            let event: EventDoc = serde_json::from_str(json).map_err(io_err)?;
            debug_assert_eq!(event.id, f.key.id, "the stored document is the one the collector found");
            debug_assert!(!event.cancelled, "cancelled events never reach a page");
            results.push(SearchHit { event, score: f.key.score });
        }
        Ok(SearchPage { results, next_cursor, generation: snap.generation })
    }

    /// The dictionary words (other than `word` itself) that `word` also matches: at edit
    /// distance 1 when it has [`FUZZY_CHARS_MIN`]+ characters, and as a prefix when it is the
    /// last word. Enumerated here so each becomes a plain BM25 term query (tantivy's automaton
    /// queries would read every matching posting list into a bitset, per query).
    fn expansions(&self, searcher: &Searcher, word: &str, last: bool) -> Result<Vec<String>, SearchError> {
        let chars = word.chars().count();
        let distance = u8::from(chars >= FUZZY_CHARS_MIN);
        let all = Term::from_field_text(self.fields.all, word);
        let query = if last && chars >= PREFIX_CHARS_MIN {
            FuzzyTermQuery::new_prefix(all, distance, true)
        } else if distance > 0 {
            FuzzyTermQuery::new(all, distance, true)
        } else {
            return Ok(Vec::new());
        };
        let automaton = query.automaton()?;
        let mut out = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.fields.all)?;
            let mut stream = inverted.terms().search(&automaton).into_stream().map_err(io_err)?;
            let mut taken = 0;
            while taken < EXPANSIONS_MAX && stream.advance() {
                let key = std::str::from_utf8(stream.key()).map_err(io_err)?;
                if key != word {
                    out.insert(key.to_string());
                    taken += 1;
                }
            }
        }
        Ok(out.into_iter().take(EXPANSIONS_MAX).collect())
    }

    fn build_query(
        &self,
        searcher: &Searcher,
        plan: &Plan,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<BooleanQuery, SearchError> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let last = plan.words.len().saturating_sub(1);
        for (i, word) in plan.words.iter().enumerate() {
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, boost) in [
                (f.name, BOOST_NAME),
                (f.performers, BOOST_PERFORMERS),
                (f.venue, BOOST_VENUE),
                (f.city, BOOST_CITY),
                (f.description, BOOST_DESCRIPTION),
            ] {
                let term = TermQuery::new(Term::from_field_text(field, word), IndexRecordOption::WithFreqs);
                alternatives.push((Occur::Should, Box::new(BoostQuery::new(Box::new(term), boost))));
            }
            for expansion in self.expansions(searcher, word, i == last)? {
                let term =
                    TermQuery::new(Term::from_field_text(f.all, &expansion), IndexRecordOption::WithFreqs);
                alternatives.push((Occur::Should, Box::new(BoostQuery::new(Box::new(term), BOOST_EXPANDED))));
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
        }
        if let Some(name) = &plan.name_key {
            let exact = TermQuery::new(Term::from_field_text(f.name_key, name), IndexRecordOption::WithFreqs);
            clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(exact), BOOST_EXACT_NAME))));
        }
        let mut filters: Vec<Box<dyn Query>> = Vec::new();
        if let Some(city) = &plan.city_key {
            filters.push(Box::new(TermQuery::new(
                Term::from_field_text(f.city_key, city),
                IndexRecordOption::Basic,
            )));
        }
        if let Some(t) = &plan.event_type {
            filters.push(Box::new(TermQuery::new(
                Term::from_field_text(f.event_type, t),
                IndexRecordOption::Basic,
            )));
        }
        if from_ms > 0 || to_ms < u64::MAX {
            let (lo, hi) = (
                Bound::Included(Term::from_field_u64(f.starts_at, from_ms)),
                Bound::Included(Term::from_field_u64(f.starts_at, to_ms)),
            );
            filters.push(Box::new(RangeQuery::new(lo, hi)));
        }
        if let Some(g) = plan.geo {
            if let Some(cells) = covering_cells(g.lat, g.lon, g.radius_km) {
                let terms = cells
                    .into_iter()
                    .map(|cell| {
                        let q = TermQuery::new(
                            Term::from_field_text(f.geo_cell, &cell),
                            IndexRecordOption::Basic,
                        );
                        (Occur::Should, Box::new(q) as Box<dyn Query>)
                    })
                    .collect();
                filters.push(Box::new(BooleanQuery::new(terms)));
            }
        }
        for filter in filters {
            // Filters match or not; they add nothing to the score.
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(filter, 0.0))));
        }
        if clauses.iter().all(|(occur, _)| *occur != Occur::Must) {
            clauses.push((Occur::Must, Box::new(tantivy::query::AllQuery)));
        }
        Ok(BooleanQuery::new(clauses))
    }
}

/// The grid cells (at the finest level needing at most [`GEO_CELLS_MAX`]) covering the box
/// around the circle; `None` when even the coarsest level needs more (then only the exact
/// distance check filters, on every candidate).
fn covering_cells(lat: f64, lon: f64, radius_km: f64) -> Option<Vec<String>> {
    let b = bounding_box(lat, lon, radius_km);
    let (lon_lo, lon_hi) = b.lon.unwrap_or((-180.0, 180.0));
    for level in 0..GEO_CELL_DEGREES.len() {
        let (lat_a, lon_a) = cell_index(level, b.lat.0, lon_lo);
        let (lat_b, lon_b) = cell_index(level, b.lat.1, lon_hi);
        let count = (lat_b - lat_a + 1) * (lon_b - lon_a + 1);
        if count as usize <= GEO_CELLS_MAX {
            let mut cells = Vec::with_capacity(count as usize);
            for i in lat_a..=lat_b {
                for j in lon_a..=lon_b {
                    cells.push(geo_cell(level, i, j));
                }
            }
            return Some(cells);
        }
    }
    None
}
