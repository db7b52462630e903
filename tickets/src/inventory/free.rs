//! Free-seat indexes: which tickets are free, kept in step with the ticket states by every
//! change (`Inventory::set_ticket`), so that finding seats never walks a section.
//!
//! - A bitmap over all tickets (bit set = free) with a summary bitmap over its words (bit
//!   set = the word has a free ticket): the lowest free tickets of a general section are
//!   found in `O(quantity + words / 64)`, however many tickets are taken before them.
//! - The longest run of free seats of every seated row: "best available" goes straight to
//!   the first row (front to back) where `quantity` adjacent seats fit, and only walks that
//!   row's free runs.
//!
//! The rule for seats, in the chosen row: `quantity` adjacent seats that leave no single
//! free seat stranded beside them (an orphan: a gap of exactly one seat between the new
//! hold and a taken seat or the row's end) where the row allows it, then the run closest to
//! the row's centre, ties to the lower seat number. [`FreeSeats::check`] compares the
//! indexes with a rebuild, and the property tests compare the choices with a brute-force
//! scan of the row.

use crate::layout::{Layout, SectionTickets};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FreeSeats {
    /// Bit `i` set: ticket `i` is free.
    bits: Vec<u64>,
    /// Bit `w` set: `bits[w]` is not zero.
    summary: Vec<u64>,
    /// Longest free run of each seated row, rows numbered across sections in layout order.
    row_runs: Vec<u32>,
    /// For each section, its first row's number in `row_runs` (seated sections only).
    row_base: Vec<u32>,
    free: u64,
}

/// A row's seats as ticket indexes `start..start + len`.
#[derive(Clone, Copy)]
struct Row {
    start: u32,
    len: u32,
}

impl FreeSeats {
    /// The indexes of `layout` with ticket `i` free when `is_free(i)`.
    pub(crate) fn new(layout: &Layout, is_free: impl Fn(u32) -> bool) -> FreeSeats {
        let words = layout.count().div_ceil(64);
        let mut f = FreeSeats {
            bits: vec![0; words],
            summary: vec![0; words.div_ceil(64)],
            row_runs: Vec::new(),
            row_base: Vec::with_capacity(layout.sections().len()),
            free: 0,
        };
        for i in 0..layout.count() as u32 {
            if is_free(i) {
                f.set_bit(i, true);
            }
        }
        for section in layout.sections() {
            f.row_base.push(f.row_runs.len() as u32);
            if let SectionTickets::Seated { rows, .. } = &section.tickets {
                for r in rows {
                    let run = f.longest_run(Row { start: r.start, len: r.len });
                    f.row_runs.push(run);
                }
            }
        }
        f
    }

    pub(crate) fn is_free(&self, i: u32) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Tickets free.
    pub(crate) fn free_count(&self) -> u64 {
        self.free
    }

    /// Mark ticket `i` free or taken, keeping every index in step.
    pub(crate) fn set(&mut self, layout: &Layout, i: u32, free: bool) {
        if self.is_free(i) == free {
            return;
        }
        self.set_bit(i, free);
        let place = layout.place(i);
        if let (Some((r, _)), SectionTickets::Seated { rows, .. }) =
            (place.seat, &layout.sections()[place.section].tickets)
        {
            let row = &rows[r as usize];
            let n = (self.row_base[place.section] + r) as usize;
            self.row_runs[n] = self.longest_run(Row { start: row.start, len: row.len });
        }
    }

    fn set_bit(&mut self, i: u32, free: bool) {
        let w = (i / 64) as usize;
        if free {
            self.bits[w] |= 1 << (i % 64);
            self.free += 1;
        } else {
            self.bits[w] &= !(1 << (i % 64));
            self.free -= 1;
        }
        if self.bits[w] != 0 {
            self.summary[w / 64] |= 1 << (w % 64);
        } else {
            self.summary[w / 64] &= !(1 << (w % 64));
        }
    }

    /// The first word `>= w` with a free ticket.
    fn next_word(&self, w: usize) -> Option<usize> {
        let mut s = w / 64;
        let mut word = *self.summary.get(s)? & (u64::MAX << (w % 64));
        loop {
            if word != 0 {
                return Some(s * 64 + word.trailing_zeros() as usize);
            }
            s += 1;
            word = *self.summary.get(s)?;
        }
    }

    /// The first free ticket in `from..end`.
    fn next_free(&self, from: u32, end: u32) -> Option<u32> {
        if from >= end {
            return None;
        }
        let mut w = (from / 64) as usize;
        let mut word = self.bits[w] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let i = w as u32 * 64 + word.trailing_zeros();
                return (i < end).then_some(i);
            }
            w = self.next_word(w + 1)?;
            if w as u32 * 64 >= end {
                return None;
            }
            word = self.bits[w];
        }
    }

    /// The first taken ticket in `from..end`, or `end`.
    fn next_taken(&self, from: u32, end: u32) -> u32 {
        let mut i = from;
        while i < end {
            let w = (i / 64) as usize;
            let word = !self.bits[w] & (u64::MAX << (i % 64));
            if word != 0 {
                return (w as u32 * 64 + word.trailing_zeros()).min(end);
            }
            i = (w as u32 + 1) * 64;
        }
        end
    }

    /// The free runs of `row`, as `(first ticket, length)`, in order.
    fn runs(&self, row: Row) -> impl Iterator<Item = (u32, u32)> + '_ {
        let end = row.start + row.len;
        let mut at = row.start;
        std::iter::from_fn(move || {
            let s = self.next_free(at, end)?;
            let e = self.next_taken(s, end);
            at = e;
            Some((s, e - s))
        })
    }

    fn longest_run(&self, row: Row) -> u32 {
        self.runs(row).map(|(_, len)| len).max().unwrap_or(0)
    }

    /// The `quantity` lowest free tickets of `start..start + len`, or `None` if fewer are free.
    pub(crate) fn lowest(&self, start: u32, len: u32, quantity: u32) -> Option<Vec<u32>> {
        let end = start + len;
        let mut out = Vec::with_capacity(quantity as usize);
        let mut at = start;
        while out.len() < quantity as usize {
            let i = self.next_free(at, end)?;
            out.push(i);
            at = i + 1;
        }
        Some(out)
    }

    /// Best available in the seated section `section` of `layout`: `quantity` adjacent seats
    /// in the first row (front to back) where they fit, placed as the module doc says.
    pub(crate) fn best_in_rows(&self, layout: &Layout, section: usize, quantity: u32) -> Option<Vec<u32>> {
        let SectionTickets::Seated { rows, .. } = &layout.sections()[section].tickets else {
            return None;
        };
        let base = self.row_base[section] as usize;
        let r = (0..rows.len()).find(|r| self.row_runs[base + r] >= quantity)?;
        let row = Row { start: rows[r].start, len: rows[r].len };
        let first = self.runs(row).filter_map(|(s, len)| best_in_run(row, s, len, quantity)).min()?.2;
        Some((first..first + quantity).collect())
    }

    /// Compare with indexes rebuilt from `is_free`; the first difference as a sentence.
    pub(crate) fn check(&self, layout: &Layout, is_free: impl Fn(u32) -> bool) -> Result<(), String> {
        let rebuilt = FreeSeats::new(layout, is_free);
        if rebuilt != *self {
            let first = (0..layout.count() as u32).find(|i| rebuilt.is_free(*i) != self.is_free(*i));
            return Err(format!(
                "free-seat index out of step (first differing ticket {first:?}; free {} vs {}; row runs {:?} vs {:?})",
                self.free, rebuilt.free, self.row_runs, rebuilt.row_runs
            ));
        }
        Ok(())
    }
}

/// The best placement of `quantity` seats in the free run `s..s + len` of `row`, as
/// `(leaves an orphan, distance to the row's centre, first ticket)` — smaller is better.
fn best_in_run(row: Row, s: u32, len: u32, quantity: u32) -> Option<(bool, u32, u32)> {
    if len < quantity {
        return None;
    }
    // Offsets within the row; doubled coordinates keep centres integral: the row's centre
    // is len_row + 1, a run from offset p has centre 2p + quantity + 1.
    let (lo, hi) = (s - row.start, s - row.start + len - quantity);
    let ideal = ((row.len - quantity) / 2).clamp(lo, hi);
    (ideal.saturating_sub(2).max(lo)..=(ideal + 2).min(hi))
        .map(|p| {
            let orphan = p - lo == 1 || hi - p == 1;
            let distance = (2 * p + quantity).abs_diff(row.len);
            (orphan, distance, row.start + p)
        })
        .min()
}

/// The same choice by brute force: every placement of every row, in order. For tests.
#[cfg(test)]
pub(crate) fn best_by_scan(
    layout: &Layout,
    section: usize,
    quantity: u32,
    is_free: impl Fn(u32) -> bool,
) -> Option<Vec<u32>> {
    let SectionTickets::Seated { rows, .. } = &layout.sections()[section].tickets else {
        return None;
    };
    for row in rows {
        let mut best: Option<(bool, u32, u32)> = None;
        for p in 0..row.len.saturating_sub(quantity - 1) {
            if !(p..p + quantity).all(|o| is_free(row.start + o)) {
                continue;
            }
            let mut left = 0;
            while p > left && is_free(row.start + p - left - 1) {
                left += 1;
            }
            let mut right = 0;
            while p + quantity + right < row.len && is_free(row.start + p + quantity + right) {
                right += 1;
            }
            let key = (left == 1 || right == 1, (2 * p + quantity).abs_diff(row.len), row.start + p);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        if let Some((_, _, first)) = best {
            return Some((first..first + quantity).collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::catalog::{RowSpec, SectionKind, SectionSpec};

    fn layout(rows: &[u32], general: u32) -> Layout {
        let rows =
            rows.iter().enumerate().map(|(i, n)| RowSpec { name: format!("{}", i + 1), seats: *n }).collect();
        let sections = vec![
            SectionSpec { name: "S".into(), kind: SectionKind::Seated { rows } },
            SectionSpec { name: "G".into(), kind: SectionKind::General { capacity: general } },
        ];
        Layout::new(&sections, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn an_empty_row_is_filled_from_the_middle_without_orphans() {
        let l = layout(&[5, 9], 3);
        let f = FreeSeats::new(&l, |_| true);
        // Seats 2-3 of 5 would leave seat 1 alone: 1-2 instead (as close to the centre).
        assert_eq!(f.best_in_rows(&l, 0, 2), Some(vec![0, 1]));
        assert_eq!(f.best_in_rows(&l, 0, 1), Some(vec![2]));
        // The centred 2-4 would strand seats 1 and 5: 1-3 (as close as 3-5; the lower wins).
        assert_eq!(f.best_in_rows(&l, 0, 3), Some(vec![0, 1, 2]));
        assert_eq!(f.best_in_rows(&l, 0, 6), Some((5..11).collect()));
        assert_eq!(f.best_in_rows(&l, 0, 10), None);
        assert_eq!(f.lowest(14, 3, 3), Some(vec![14, 15, 16]));
        assert_eq!(f.lowest(14, 3, 4), None);
    }

    #[test]
    fn lowest_skips_long_taken_stretches() {
        let l = layout(&[1], 200_000 - 1);
        let f = FreeSeats::new(&l, |i| i > 150_000 && i % 7 == 0);
        let got = f.lowest(1, 199_999, 3).unwrap();
        assert_eq!(got, vec![150_003, 150_010, 150_017]);
    }

    proptest! {
        /// After any sequence of takes and frees the indexes equal a rebuild, and the
        /// chosen seats equal a brute-force scan of the rows.
        #[test]
        fn indexes_match_a_scan(rows in prop::collection::vec(1u32..140, 1..6), ops in prop::collection::vec((0u32..600, any::<bool>()), 0..300), q in 1u32..8) {
            let l = layout(&rows, 70);
            let n = l.count() as u32;
            let mut free = vec![true; n as usize];
            let mut f = FreeSeats::new(&l, |_| true);
            for (i, set) in ops {
                let i = i % n;
                free[i as usize] = set;
                f.set(&l, i, set);
                f.check(&l, |t| free[t as usize]).map_err(TestCaseError::fail)?;
                prop_assert_eq!(f.best_in_rows(&l, 0, q), best_by_scan(&l, 0, q, |t| free[t as usize]));
                let g = l.section("G").unwrap();
                let want: Vec<u32> = (g.start..g.start + g.len).filter(|t| free[*t as usize]).take(q as usize).collect();
                prop_assert_eq!(f.lowest(g.start, g.len, q), (want.len() == q as usize).then_some(want));
            }
        }
    }
}
