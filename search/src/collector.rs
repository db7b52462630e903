//! The one collector: top `k` in result order after a keyset position, with the filters
//! that are cheaper as fast-field checks than as queries (cancelled, exact distance).
//!
//! Per segment it keeps a bounded heap of candidates keyed by `(score, starts_at, id ord)`:
//! inside one segment the id column's term ordinals sort like the ids themselves, so ties
//! cost no string work. Ids are turned into strings only for the (at most `k`) survivors of
//! a segment and for exact ties with the cursor. With scoring on, it drives the weight with
//! `for_each_pruning` so tantivy can skip blocks that cannot beat the current `k`-th score
//! (block-max WAND for pure term unions).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::Weight;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyError};

use crate::geo::distance_km;
use crate::query::{order, Geo, SortKey};

/// A result found by the collector, before its stored document is loaded.
#[derive(Clone, Debug)]
pub struct Found {
    pub key: SortKey,
    pub address: DocAddress,
}

pub struct TopAfter {
    pub k: usize,
    pub scoring: bool,
    pub after: Option<SortKey>,
    pub geo: Option<Geo>,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: Score,
    starts_at: u64,
    id_ord: u64,
    doc: DocId,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Result order: `Less` comes first, so the heap's max is the worst kept candidate.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.starts_at.cmp(&other.starts_at))
            .then(self.id_ord.cmp(&other.id_ord))
            .then(self.doc.cmp(&other.doc))
    }
}

pub struct SegmentTop {
    k: usize,
    scoring: bool,
    after: Option<SortKey>,
    geo: Option<Geo>,
    segment_ord: SegmentOrdinal,
    starts_at: Column<u64>,
    cancelled: Column<u64>,
    lat: Column<f64>,
    lon: Column<f64>,
    id: Option<StrColumn>,
    heap: BinaryHeap<Candidate>,
    id_buf: String,
    error: Option<String>,
}

/// The largest float strictly below `x` (for "score >= worst" with a strict `>` threshold).
fn next_down(x: f32) -> f32 {
    if x.is_nan() || x == f32::NEG_INFINITY {
        return x;
    }
    if x == 0.0 {
        return -f32::from_bits(1);
    }
    let bits = x.to_bits();
    f32::from_bits(if x > 0.0 { bits - 1 } else { bits + 1 })
}

impl SegmentTop {
    /// Scores at or below the returned value cannot enter the page.
    fn threshold(&self) -> Score {
        match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.k => next_down(worst.score),
            _ => f32::MIN,
        }
    }

    fn id_ord(&self, doc: DocId) -> u64 {
        self.id.as_ref().and_then(|c| c.term_ords(doc).next()).unwrap_or(0)
    }

    fn id_string(&mut self, ord: u64) -> String {
        self.id_buf.clear();
        if let Some(column) = &self.id {
            match column.ord_to_str(ord, &mut self.id_buf) {
                Ok(true) => {}
                Ok(false) => self.error = Some(format!("id ordinal {ord} missing from its dictionary")),
                Err(e) => self.error = Some(format!("reading an id: {e}")),
            }
        }
        self.id_buf.clone()
    }
}

impl SegmentCollector for SegmentTop {
    type Fruit = Result<Vec<Found>, String>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let score = if self.scoring { score } else { 0.0 };
        let full = self.heap.len() >= self.k;
        if full && self.heap.peek().is_some_and(|w| score < w.score) {
            return;
        }
        let starts_at = self.starts_at.first(doc).unwrap_or(0);
        if full && self.heap.peek().is_some_and(|w| score == w.score && starts_at > w.starts_at) {
            return;
        }
        if self.cancelled.first(doc).unwrap_or(0) != 0 {
            return;
        }
        if let Some(g) = self.geo {
            let (Some(lat), Some(lon)) = (self.lat.first(doc), self.lon.first(doc)) else { return };
            if distance_km(g.lat, g.lon, lat, lon) > g.radius_km {
                return;
            }
        }
        let id_ord = self.id_ord(doc);
        if let Some(after) = &self.after {
            match order(score, starts_at, "", after.score, after.starts_at, "") {
                Ordering::Less => return,
                Ordering::Greater => {}
                Ordering::Equal => {
                    let (after_id, id) = (after.id.clone(), self.id_string(id_ord));
                    if id <= after_id {
                        return;
                    }
                }
            }
        }
        let candidate = Candidate { score, starts_at, id_ord, doc };
        if !full {
            self.heap.push(candidate);
        } else if self.heap.peek().is_some_and(|w| candidate < *w) {
            self.heap.pop();
            self.heap.push(candidate);
        }
        debug_assert!(self.heap.len() <= self.k, "the heap is bounded by k");
    }

    fn harvest(mut self) -> Self::Fruit {
        let candidates = std::mem::take(&mut self.heap).into_vec();
        let mut out = Vec::with_capacity(candidates.len());
        for c in candidates {
            let id = self.id_string(c.id_ord);
            out.push(Found {
                key: SortKey { score: c.score, starts_at: c.starts_at, id },
                address: DocAddress::new(self.segment_ord, c.doc),
            });
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl Collector for TopAfter {
    type Fruit = Vec<Found>;
    type Child = SegmentTop;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentTop> {
        let ff = reader.fast_fields();
        Ok(SegmentTop {
            k: self.k,
            scoring: self.scoring,
            after: self.after.clone(),
            geo: self.geo,
            segment_ord,
            starts_at: ff.u64("starts_at")?,
            cancelled: ff.u64("cancelled")?,
            lat: ff.f64("lat")?,
            lon: ff.f64("lon")?,
            id: ff.str("id")?,
            heap: BinaryHeap::with_capacity(self.k + 1),
            id_buf: String::new(),
            error: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scoring
    }

    fn merge_fruits(&self, fruits: Vec<Result<Vec<Found>, String>>) -> tantivy::Result<Vec<Found>> {
        let mut all = Vec::new();
        for fruit in fruits {
            all.extend(fruit.map_err(TantivyError::InternalError)?);
        }
        all.sort_by(|a, b| {
            order(a.key.score, a.key.starts_at, &a.key.id, b.key.score, b.key.starts_at, &b.key.id)
        });
        all.truncate(self.k);
        Ok(all)
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment_ord: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<Result<Vec<Found>, String>> {
        let mut top = self.for_segment(segment_ord, reader)?;
        let alive = reader.alive_bitset();
        if self.scoring {
            weight.for_each_pruning(f32::MIN, reader, &mut |doc, score| {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    top.collect(doc, score);
                }
                top.threshold()
            })?;
        } else {
            weight.for_each_no_score(reader, &mut |docs| {
                for &doc in docs {
                    if alive.is_none_or(|a| a.is_alive(doc)) {
                        top.collect(doc, 0.0);
                    }
                }
            })?;
        }
        Ok(top.harvest())
    }
}

#[cfg(test)]
mod tests {
    use super::next_down;

    #[test]
    fn next_down_is_just_below() {
        for x in [0.0f32, 1.0, 3.5, 1e-30, -2.0] {
            let y = next_down(x);
            assert!(y < x, "{y} < {x}");
        }
        assert_eq!(next_down(1.0).to_bits(), 1.0f32.to_bits() - 1);
    }
}
