//! The tantivy schema, the analyzers, and how an [`EventDoc`] becomes a tantivy document.
//!
//! Text is analyzed the same way on both sides (indexing and querying): split on
//! non-alphanumeric characters, drop tokens over [`TOKEN_BYTES_MAX`], lowercase, ASCII-fold
//! (so "Mötley" is indexed as "motley"). Keys (exact name, city) use the same filters on the
//! whole whitespace-normalized string.

use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, TantivyDocument};

use crate::EventDoc;

/// Name of the word analyzer registered on every index.
pub const WORDS_TOKENIZER: &str = "boxoffice_words";
/// Name of the whole-string key analyzer registered on every index.
pub const KEY_TOKENIZER: &str = "boxoffice_key";
/// Longer tokens are dropped at indexing and query time alike (they are not words), in bytes.
pub const TOKEN_BYTES_MAX: usize = 40;

/// Every field, resolved once.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// Event id, raw: upsert key (delete_term) and fast tie-breaker.
    pub id: Field,
    /// The whole EventDoc as JSON, stored only.
    pub doc: Field,
    pub name: Field,
    pub performers: Field,
    pub venue: Field,
    pub city: Field,
    pub description: Field,
    /// All the text fields together: the target of typo and prefix expansion.
    pub all: Field,
    /// Folded whole name: "exact name match ranks first".
    pub name_key: Field,
    /// Folded whole city: the `location` filter.
    pub city_key: Field,
    /// Lowercased event type, raw.
    pub event_type: Field,
    pub starts_at: Field,
    pub on_sale_at: Field,
    pub lat: Field,
    pub lon: Field,
    /// 1 when cancelled (filtered out by the collector).
    pub cancelled: Field,
    /// Grid cells containing the venue, one term per level of [`GEO_CELL_DEGREES`]: the
    /// prefilter of distance queries (the exact distance is checked on lat/lon).
    pub geo_cell: Field,
}

/// Sizes of the geo grid levels, finest first, in degrees.
pub const GEO_CELL_DEGREES: [f64; 4] = [0.25, 1.0, 4.0, 16.0];

/// The cell of level `level` holding `(lat, lon)`, as a term text.
pub fn geo_cell(level: usize, lat_index: i64, lon_index: i64) -> String {
    format!("{level}:{lat_index}:{lon_index}")
}

/// Cell indexes of a coordinate at `level` (clamped, so lat 90 / lon 180 fall in the last cell).
pub fn cell_index(level: usize, lat: f64, lon: f64) -> (i64, i64) {
    let size = GEO_CELL_DEGREES[level];
    let lat_cells = (180.0 / size).ceil() as i64;
    let lon_cells = (360.0 / size).ceil() as i64;
    let lat_i = (((lat + 90.0) / size).floor() as i64).clamp(0, lat_cells - 1);
    let lon_i = (((lon + 180.0) / size).floor() as i64).clamp(0, lon_cells - 1);
    (lat_i, lon_i)
}

pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(WORDS_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let key = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(KEY_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING | FAST),
        doc: b.add_text_field("doc", STORED),
        name: b.add_text_field("name", words.clone()),
        performers: b.add_text_field("performers", words.clone()),
        venue: b.add_text_field("venue", words.clone()),
        city: b.add_text_field("city", words.clone()),
        description: b.add_text_field("description", words.clone()),
        all: b.add_text_field("all", words),
        name_key: b.add_text_field("name_key", key.clone()),
        city_key: b.add_text_field("city_key", key),
        event_type: b.add_text_field("type", STRING),
        starts_at: b.add_u64_field("starts_at", FAST),
        on_sale_at: b.add_u64_field("on_sale_at", FAST),
        lat: b.add_f64_field("lat", FAST),
        lon: b.add_f64_field("lon", FAST),
        cancelled: b.add_u64_field("cancelled", FAST),
        geo_cell: b.add_text_field("geo_cell", STRING),
    };
    (b.build(), fields)
}

pub fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(TOKEN_BYTES_MAX))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

pub fn key_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser).filter(AsciiFoldingFilter).build()
}

pub fn register_tokenizers(index: &Index) {
    index.tokenizers().register(WORDS_TOKENIZER, words_analyzer());
    index.tokenizers().register(KEY_TOKENIZER, key_analyzer());
}

/// The folded words of `text`, as the index holds them.
pub fn fold_words(text: &str) -> Vec<String> {
    let mut analyzer = words_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

/// The folded key of `text`: whitespace collapsed, lowercased, ASCII-folded, whole.
pub fn fold_key(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut analyzer = key_analyzer();
    let mut stream = analyzer.token_stream(&collapsed);
    let mut out = String::new();
    while let Some(token) = stream.next() {
        out.push_str(&token.text);
    }
    out
}

/// The tantivy document for `event`. The key fields are pre-collapsed here; the analyzers do
/// the rest.
pub fn to_document(f: &Fields, event: &EventDoc) -> Result<TantivyDocument, serde_json::Error> {
    let mut d = TantivyDocument::default();
    d.add_text(f.id, &event.id);
    d.add_text(f.doc, serde_json::to_string(event)?);
    d.add_text(f.name, &event.name);
    d.add_text(f.description, &event.description);
    d.add_text(f.venue, &event.venue.name);
    d.add_text(f.city, &event.venue.city);
    d.add_text(f.all, &event.name);
    d.add_text(f.all, &event.description);
    d.add_text(f.all, &event.venue.name);
    d.add_text(f.all, &event.venue.city);
    for p in &event.performers {
        d.add_text(f.performers, &p.name);
        d.add_text(f.all, &p.name);
    }
    d.add_text(f.name_key, event.name.split_whitespace().collect::<Vec<_>>().join(" "));
    d.add_text(f.city_key, event.venue.city.split_whitespace().collect::<Vec<_>>().join(" "));
    d.add_text(f.event_type, event.event_type.to_lowercase());
    d.add_u64(f.starts_at, event.starts_at_ms);
    d.add_u64(f.on_sale_at, event.on_sale_at_ms);
    d.add_f64(f.lat, event.venue.lat);
    d.add_f64(f.lon, event.venue.lon);
    d.add_u64(f.cancelled, u64::from(event.cancelled));
    for level in 0..GEO_CELL_DEGREES.len() {
        let (lat_i, lon_i) = cell_index(level, event.venue.lat, event.venue.lon);
        d.add_text(f.geo_cell, geo_cell(level, lat_i, lon_i));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold_words("Mötley  Crüe, LIVE!"), vec!["motley", "crue", "live"]);
        assert_eq!(fold_key("  São   Paulo "), "sao paulo");
    }
}
