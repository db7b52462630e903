//! A Wing–Gong–Lowe linearizability checker over any [`Model`].
//!
//! The history is a list of calls and returns in real-time order, kept as a doubly linked
//! list. The search walks it from the head: a call whose op the model accepts in the
//! current state is *lifted* (its call and return leave the list, the op joins the
//! linearization, its state is pushed); reaching a return means the op it belongs to was
//! not linearized before it returned, so the search backtracks (pops the last lifted op,
//! puts it back, and tries the entry after it). Lowe's improvement: a cache of
//! `(set of linearized ops, model state)`; a configuration already seen is not explored
//! again, which makes commuting ops cheap.
//!
//! Unknown outcomes (`info`): their return is placed after every other return (+∞), so they
//! may linearize anywhere after their invoke; and they need not linearize at all — the
//! search succeeds once every *determinate* op is linearized. A model sees every op the
//! same way; it is the model that knows an info op's result is unknown.
//!
//! Observations ([`Model::is_observation`]: ops that never change the state, at most
//! narrow what is known, like a read or a refusal) that leave the state exactly as it is
//! are lifted without a choice point: if any linearization exists, one exists with such an
//! op first (move it to the front: it changes nothing there, and taking it out later
//! leaves later states no more constrained). A flash sale's burst of `409`s on one seat —
//! dozens of concurrent refusals — would otherwise be explored in every order.
//!
//! The search is exponential in the worst case, so it has a [`Budget`]: past it the answer
//! is [`Verdict::Unknown`], never a hang.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A sequential specification. `step` is the whole model: `None` if `op` (with the result
/// it recorded) cannot happen in `state`, else the state after it. It must be a pure
/// function; the checker calls it many times for the same arguments.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Op: Debug;
    fn init(&self) -> Self::State;
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
    /// `op` never changes the state beyond narrowing it (a read, a refusal), and the step
    /// is monotone in that narrowing: from a less narrowed state every later op is at least
    /// as possible. Lets the search lift such an op for good when it leaves the state as it
    /// is (see the module doc). Default: no op is.
    fn is_observation(&self, op: &Self::Op) -> bool {
        let _ = op;
        false
    }
}

/// One call of the history for the checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<O> {
    /// Names the op in witnesses (the history's invoke index).
    pub id: u64,
    /// Position of the invoke in real-time order.
    pub invoke_at: u64,
    /// Position of the completion; `None` = unknown outcome (returns at +∞, may never take
    /// effect). Must be after `invoke_at`.
    pub return_at: Option<u64>,
    pub op: O,
}

/// How much search one check may spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Model steps (each tried lift counts one) per check; past it: Unknown.
    pub steps_max: u64,
    /// Wall time per check; past it: Unknown.
    pub time_max_ms: u64,
    /// Entries in the `(linearized, state)` cache; past it: Unknown (bounds memory).
    pub cache_entries_max: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { steps_max: 20_000_000, time_max_ms: 60_000, cache_entries_max: 5_000_000 }
    }
}

/// Why a history is not linearizable: the longest linearization found and where it stuck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// Op ids linearized, in order, in the deepest attempt.
    pub linearized: Vec<u64>,
    /// The model state after them (Debug form).
    pub state: String,
    /// The op whose completion was reached without it (or anything else pending) being
    /// linearizable next.
    pub stuck_at: u64,
    /// The ops that were pending (invoked, not linearized) at that point, with their
    /// Debug form: none of them could be the next step.
    pub pending: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    Valid,
    Invalid { witness: Witness },
    Unknown { reason: String },
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }
    pub fn is_invalid(&self) -> bool {
        matches!(self, Verdict::Invalid { .. })
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Verdict::Unknown { .. })
    }
}

/// Search statistics, for reports and budget tuning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub steps: u64,
    pub cache_entries: usize,
    pub elapsed_ms: u64,
}

const NIL: usize = usize::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    prev: usize,
    next: usize,
    /// Index into the entries.
    op: usize,
    is_return: bool,
    /// Call node: its return node.
    partner: usize,
}

/// The list of calls and returns; node 0 is the head sentinel.
struct List {
    nodes: Vec<Node>,
}

impl List {
    fn next(&self, n: usize) -> usize {
        self.nodes[n].next
    }

    fn unlink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = n;
        if next != NIL {
            self.nodes[next].prev = n;
        }
    }

    /// Take a call and its return out (in this order; [`List::unlift`] reverses it).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.nodes[call].partner);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.nodes[call].partner);
        self.relink(call);
    }
}

fn bit_set(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn bit_clear(bits: &mut [u64], i: usize) {
    bits[i / 64] &= !(1 << (i % 64));
}

/// Check that `entries` can be linearized against `model`.
pub fn check<M: Model>(model: &M, entries: &[Entry<M::Op>], budget: &Budget) -> (Verdict, Stats) {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(budget.time_max_ms);
    let mut stats = Stats::default();

    // Events in real-time order; unknown returns after everything, in entry order.
    let mut events: Vec<(u64, u64, usize, bool)> = Vec::with_capacity(entries.len() * 2);
    for (i, e) in entries.iter().enumerate() {
        assert!(e.return_at.is_none_or(|r| r > e.invoke_at), "op {}: returns before it is invoked", e.id);
        events.push((e.invoke_at, 0, i, false));
        match e.return_at {
            Some(r) => events.push((r, 0, i, true)),
            None => events.push((u64::MAX, 1, i, true)),
        }
    }
    events.sort_unstable();
    let mut list = List { nodes: Vec::with_capacity(events.len() + 1) };
    list.nodes.push(Node { prev: NIL, next: NIL, op: usize::MAX, is_return: false, partner: NIL });
    let mut call_node = vec![NIL; entries.len()];
    for (k, &(_, _, op, is_return)) in events.iter().enumerate() {
        let n = k + 1;
        let next = if k + 1 < events.len() { n + 1 } else { NIL };
        list.nodes.push(Node { prev: n - 1, next, op, is_return, partner: NIL });
        if is_return {
            let c = call_node[op];
            assert!(c != NIL, "a return before its call");
            list.nodes[c].partner = n;
        } else {
            call_node[op] = n;
        }
    }
    if !events.is_empty() {
        list.nodes[0].next = 1;
    }

    let words = entries.len().div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut state = model.init();
    // (lifted call node, state before it, lifted without a choice point)
    let mut stack: Vec<(usize, M::State, bool)> = Vec::new();
    let mut best: Option<Witness> = None;
    let mut entry = list.next(0);

    let verdict = loop {
        if entry == NIL {
            break Verdict::Valid;
        }
        let node = list.nodes[entry];
        if node.is_return && entries[node.op].return_at.is_none() {
            // Only unknown-outcome ops remain un-linearized: they may never have happened.
            break Verdict::Valid;
        }
        stats.steps += 1;
        if stats.steps > budget.steps_max {
            break Verdict::Unknown {
                reason: format!("search budget of {} steps exceeded", budget.steps_max),
            };
        }
        if stats.steps % 1024 == 0 && Instant::now() > deadline {
            break Verdict::Unknown { reason: format!("time budget of {} ms exceeded", budget.time_max_ms) };
        }
        if !node.is_return {
            if let Some(next_state) = model.step(&state, &entries[node.op].op) {
                let forced = next_state == state && model.is_observation(&entries[node.op].op);
                let mut bits = linearized.clone();
                bit_set(&mut bits, node.op);
                if !cache.contains(&(bits.clone(), next_state.clone())) {
                    if cache.len() >= budget.cache_entries_max {
                        break Verdict::Unknown {
                            reason: format!("cache of {} entries full", budget.cache_entries_max),
                        };
                    }
                    cache.insert((bits.clone(), next_state.clone()));
                    stack.push((entry, std::mem::replace(&mut state, next_state), forced));
                    linearized = bits;
                    list.lift(entry);
                    entry = list.next(0);
                    continue;
                }
            }
            entry = list.next(entry);
        } else {
            if best.as_ref().is_none_or(|b| stack.len() > b.linearized.len()) {
                best = Some(witness(&list, entries, &stack, &state, node.op));
            }
            // Undo lifts until one that was a real choice; try the entry after it.
            let mut resumed = None;
            while let Some((call, previous, forced)) = stack.pop() {
                state = previous;
                bit_clear(&mut linearized, list.nodes[call].op);
                list.unlift(call);
                if !forced {
                    resumed = Some(list.next(call));
                    break;
                }
            }
            let Some(next) = resumed else {
                break Verdict::Invalid { witness: best.expect("set just above") };
            };
            entry = next;
        }
    };
    stats.cache_entries = cache.len();
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    (verdict, stats)
}

fn witness<O: Debug, S: Debug>(
    list: &List,
    entries: &[Entry<O>],
    stack: &[(usize, S, bool)],
    state: &S,
    stuck: usize,
) -> Witness {
    let mut pending = Vec::new();
    let mut n = list.next(0);
    while n != NIL {
        let node = list.nodes[n];
        if !node.is_return {
            pending.push(format!("{} {:?}", entries[node.op].id, entries[node.op].op));
        }
        n = node.next;
    }
    Witness {
        linearized: stack.iter().map(|(call, _, _)| entries[list.nodes[*call].op].id).collect(),
        state: format!("{state:?}"),
        stuck_at: entries[stuck].id,
        pending,
    }
}

#[cfg(test)]
mod tests {
    //! The checker on a plain register, with the textbook examples.
    use super::*;

    struct Register;

    #[derive(Debug)]
    enum RegOp {
        Write(u8),
        Read(u8),
        /// A write whose outcome is unknown.
        WriteInfo(u8),
    }

    impl Model for Register {
        type State = u8;
        type Op = RegOp;
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, s: &u8, op: &RegOp) -> Option<u8> {
            match op {
                RegOp::Write(v) | RegOp::WriteInfo(v) => Some(*v),
                RegOp::Read(v) => (v == s).then_some(*s),
            }
        }
    }

    fn e(id: u64, invoke_at: u64, return_at: Option<u64>, op: RegOp) -> Entry<RegOp> {
        Entry { id, invoke_at, return_at, op }
    }

    #[test]
    fn concurrent_write_and_read_may_see_either_value() {
        for seen in [0, 1] {
            let h = [e(0, 0, Some(3), RegOp::Write(1)), e(1, 1, Some(2), RegOp::Read(seen))];
            assert!(check(&Register, &h, &Budget::default()).0.is_valid(), "read {seen}");
        }
    }

    #[test]
    fn read_after_completed_write_must_see_it() {
        let h = [e(0, 0, Some(1), RegOp::Write(1)), e(1, 2, Some(3), RegOp::Read(0))];
        let (v, _) = check(&Register, &h, &Budget::default());
        let Verdict::Invalid { witness } = v else { panic!("{v:?}") };
        assert_eq!(witness.linearized, vec![0]);
        assert_eq!(witness.stuck_at, 1);
    }

    #[test]
    fn reads_may_not_go_back_in_time() {
        // w1 and w2 concurrent with two sequential reads seeing 2 then 1 is fine; seeing
        // 2, 1, 2 is not.
        let ok = [
            e(0, 0, Some(10), RegOp::Write(1)),
            e(1, 0, Some(10), RegOp::Write(2)),
            e(2, 1, Some(2), RegOp::Read(2)),
            e(3, 3, Some(4), RegOp::Read(1)),
        ];
        assert!(check(&Register, &ok, &Budget::default()).0.is_valid());
        let bad = [
            e(0, 0, Some(10), RegOp::Write(1)),
            e(1, 0, Some(10), RegOp::Write(2)),
            e(2, 1, Some(2), RegOp::Read(2)),
            e(3, 3, Some(4), RegOp::Read(1)),
            e(4, 5, Some(6), RegOp::Read(2)),
        ];
        assert!(check(&Register, &bad, &Budget::default()).0.is_invalid());
    }

    #[test]
    fn unknown_write_may_or_may_not_happen_any_time_after_invoke() {
        let happened = [e(0, 0, None, RegOp::WriteInfo(1)), e(1, 5, Some(6), RegOp::Read(1))];
        assert!(check(&Register, &happened, &Budget::default()).0.is_valid());
        let did_not = [e(0, 0, None, RegOp::WriteInfo(1)), e(1, 5, Some(6), RegOp::Read(0))];
        assert!(check(&Register, &did_not, &Budget::default()).0.is_valid());
        let late = [
            e(0, 0, None, RegOp::WriteInfo(1)),
            e(1, 5, Some(6), RegOp::Read(0)),
            e(2, 7, Some(8), RegOp::Read(1)),
        ];
        assert!(check(&Register, &late, &Budget::default()).0.is_valid(), "takes effect late");
        let before_invoke = [e(0, 0, Some(1), RegOp::Read(1)), e(1, 2, None, RegOp::WriteInfo(1))];
        assert!(check(&Register, &before_invoke, &Budget::default()).0.is_invalid());
    }

    #[test]
    fn empty_history_is_valid() {
        assert!(check(&Register, &[], &Budget::default()).0.is_valid());
    }
}
