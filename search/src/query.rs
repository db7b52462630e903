//! Validating a [`SearchQuery`] into a [`Plan`] (pure), and the cursor codec.
//!
//! A plan is the normalized query: folded words, folded city, checked numbers, the effective
//! date range and the position after which the page starts. Its `Debug` form (with the index
//! generation) is the result-cache key, so two spellings of one query share an entry.
//!
//! Cursors are keyset positions: the sort key `(score, starts_at, id)` of the last result
//! of the previous page, plus a hash of the query they belong to. The next page holds the
//! results strictly after that key, so pages neither repeat nor skip results while the index
//! is unchanged (and, for queries without a term, even when it changes: the key is then
//! `(starts_at, id)` which does not depend on index statistics).

use std::cmp::Ordering;

use crate::limits::*;
use crate::schema::{fold_key, fold_words};
use crate::{SearchError, SearchQuery};

/// A point and a radius, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geo {
    pub lat: f64,
    pub lon: f64,
    pub radius_km: f64,
}

/// A position in the result order: score descending, then starts_at ascending, then id.
#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    pub score: f32,
    pub starts_at: u64,
    pub id: String,
}

/// Compare two keys in result order (`Less` = comes first).
pub fn order(a_score: f32, a_starts: u64, a_id: &str, b_score: f32, b_starts: u64, b_id: &str) -> Ordering {
    b_score.total_cmp(&a_score).then(a_starts.cmp(&b_starts)).then_with(|| a_id.cmp(b_id))
}

/// The normalized query.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Folded words of the term; empty = no term (then every score is 0).
    pub words: Vec<String>,
    /// Folded whole term, for the exact-name boost.
    pub name_key: Option<String>,
    pub city_key: Option<String>,
    pub geo: Option<Geo>,
    pub event_type: Option<String>,
    /// Inclusive starts_at range (already includes "upcoming").
    pub from_ms: u64,
    pub to_ms: u64,
    pub limit: usize,
    pub after: Option<SortKey>,
}

impl Plan {
    pub fn scoring(&self) -> bool {
        !self.words.is_empty()
    }

    /// Stable hash of everything that decides the result order (not the limit, not the
    /// cursor): a cursor carries it so it cannot be replayed against another query.
    pub fn query_hash(&self) -> u64 {
        let text = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}",
            self.words, self.name_key, self.city_key, self.geo, self.event_type, self.from_ms, self.to_ms
        );
        fnv1a(text.as_bytes())
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Check every bound and normalize. Empty strings count as absent.
pub fn plan(q: &SearchQuery) -> Result<Plan, SearchError> {
    let limit = match q.limit {
        0 => SEARCH_RESULTS_DEFAULT,
        n if n > SEARCH_RESULTS_MAX => {
            return Err(SearchError::invalid("limit", format!("must be 1..={SEARCH_RESULTS_MAX}, got {n}")))
        }
        n => n,
    };

    let (words, name_key) = match non_empty(&q.term) {
        None => (Vec::new(), None),
        Some(term) => {
            if term.len() > TERM_BYTES_MAX {
                return Err(SearchError::invalid("term", format!("longer than {TERM_BYTES_MAX} bytes")));
            }
            let words = fold_words(term);
            if words.is_empty() {
                return Err(SearchError::invalid("term", "has no searchable words"));
            }
            if words.len() > TERM_WORDS_MAX {
                return Err(SearchError::invalid("term", format!("more than {TERM_WORDS_MAX} words")));
            }
            (words, Some(fold_key(term)))
        }
    };

    let city_key = match non_empty(&q.location) {
        None => None,
        Some(loc) if loc.len() > LOCATION_BYTES_MAX => {
            return Err(SearchError::invalid("location", format!("longer than {LOCATION_BYTES_MAX} bytes")))
        }
        Some(loc) => Some(fold_key(loc)),
    };

    let event_type = match non_empty(&q.event_type) {
        None => None,
        Some(t) if t.len() > EVENT_TYPE_BYTES_MAX => {
            return Err(SearchError::invalid("type", format!("longer than {EVENT_TYPE_BYTES_MAX} bytes")))
        }
        Some(t) => Some(t.to_lowercase()),
    };

    let geo = match (q.lat, q.lon, q.radius_km) {
        (None, None, None) => None,
        (Some(lat), Some(lon), Some(radius_km)) => {
            if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
                return Err(SearchError::invalid("lat", "must be within -90..=90"));
            }
            if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
                return Err(SearchError::invalid("lon", "must be within -180..=180"));
            }
            if !radius_km.is_finite() || radius_km <= 0.0 || radius_km > RADIUS_KM_MAX {
                return Err(SearchError::invalid("radius_km", format!("must be > 0 and <= {RADIUS_KM_MAX}")));
            }
            Some(Geo { lat, lon, radius_km })
        }
        (lat, lon, _) => {
            let missing = if lat.is_none() {
                "lat"
            } else if lon.is_none() {
                "lon"
            } else {
                "radius_km"
            };
            return Err(SearchError::invalid(missing, "lat, lon and radius_km go together"));
        }
    };

    let mut from_ms = q.date_from_ms.unwrap_or(0);
    let to_ms = q.date_to_ms.unwrap_or(u64::MAX);
    if from_ms > to_ms {
        return Err(SearchError::invalid("date_to", "is before date_from"));
    }
    let no_parameters = words.is_empty()
        && city_key.is_none()
        && event_type.is_none()
        && geo.is_none()
        && q.date_from_ms.is_none()
        && q.date_to_ms.is_none();
    if no_parameters {
        from_ms = q.now_ms - q.now_ms % UPCOMING_NOW_GRANULARITY_MS;
    }

    let mut plan = Plan { words, name_key, city_key, geo, event_type, from_ms, to_ms, limit, after: None };
    if let Some(cursor) = non_empty(&q.cursor) {
        plan.after = Some(decode_cursor(cursor, plan.query_hash())?);
    }
    Ok(plan)
}

const CURSOR_PREFIX: &str = "c1";

/// Opaque cursor for the position after `key` in the query hashed `query_hash`.
pub fn encode_cursor(query_hash: u64, key: &SortKey) -> String {
    let raw = format!("{query_hash:016x}:{:08x}:{}:{}", key.score.to_bits(), key.starts_at, key.id);
    let mut out = String::with_capacity(CURSOR_PREFIX.len() + raw.len() * 2);
    out.push_str(CURSOR_PREFIX);
    for b in raw.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

pub fn decode_cursor(cursor: &str, query_hash: u64) -> Result<SortKey, SearchError> {
    let bad = |detail: &str| SearchError::invalid("cursor", detail);
    if cursor.len() > CURSOR_BYTES_MAX {
        return Err(bad("too long"));
    }
    let hex = cursor.strip_prefix(CURSOR_PREFIX).ok_or_else(|| bad("malformed"))?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(bad("malformed"));
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad("malformed"))?;
    let raw = String::from_utf8(bytes).map_err(|_| bad("malformed"))?;
    let mut parts = raw.splitn(4, ':');
    let (Some(h), Some(score), Some(starts_at), Some(id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed"));
    };
    let h = u64::from_str_radix(h, 16).map_err(|_| bad("malformed"))?;
    if h != query_hash {
        return Err(bad("belongs to another query"));
    }
    let score = f32::from_bits(u32::from_str_radix(score, 16).map_err(|_| bad("malformed"))?);
    let starts_at = starts_at.parse().map_err(|_| bad("malformed"))?;
    let key = SortKey { score, starts_at, id: id.to_string() };
    debug_assert_eq!(encode_cursor(query_hash, &key), cursor, "cursor codec must round-trip");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_query() {
        let key = SortKey { score: 3.25, starts_at: 42, id: "ev:1:x".into() };
        let c = encode_cursor(7, &key);
        assert_eq!(decode_cursor(&c, 7).unwrap(), key);
        assert!(matches!(decode_cursor(&c, 8), Err(SearchError::Invalid { field, .. }) if field == "cursor"));
        assert!(decode_cursor("zz", 7).is_err());
        assert!(decode_cursor("c1zz", 7).is_err());
    }

    #[test]
    fn empty_strings_are_absent_and_now_is_floored() {
        let q = SearchQuery { term: Some("  ".into()), now_ms: 125_000, ..Default::default() };
        let p = plan(&q).unwrap();
        assert!(p.words.is_empty());
        assert_eq!(p.from_ms, 120_000);
        assert_eq!(p.limit, SEARCH_RESULTS_DEFAULT);
    }
}
