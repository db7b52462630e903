//! `jepsen_checker`: the pure half of boxoffice's Jepsen-style testing (issue 6). This crate
//! owns the **history format** and the **checkers**: no IO beyond reading/writing a history,
//! no clock except the checker's own time budget, and no dependency but serde and thiserror —
//! checking a history compiles no HTTP client, no plotting, no FUSE. The harness that runs
//! real `boxoffice` processes, injects faults and records histories in this format is the
//! `jepsen-tests` crate (`jepsen::harness` and the `jepsen` binary).
//!
//! ```text
//! cargo build -p boxoffice
//! cargo run -p jepsen-tests --bin jepsen -- --nodes 5 --nemesis partition,kill,pause,clock \
//!     --workload contention --time 300 --seed 42 [--out DIR] [--binary PATH] [--net auto]
//! ```
//! writes `history.jsonl`, `reads.jsonl` (browse reads, unchecked), `queue.jsonl`,
//! `nemesis.jsonl`, `schedule.json`, `final.json`, `results.json`, `summary.txt`,
//! `timeline.png` and the node logs and data into the run directory; exits 0 only if
//! valid. `tests/campaign.rs` runs a short campaign (partition, kill, pause, clock; 60 s
//! each, one workload each, then the queue under all of them).
//!
//! ## Layout
//!
//! - [`history`]: [`history::Op`] (one invoke or completion, a JSONL line), pairing into
//!   [`history::Call`]s, JSONL load/save, and [`history::parse_story`], a one-line-per-event
//!   text form for tests.
//! - [`checker::linear`]: a generic Wing–Gong–Lowe linearizability checker (linked list of
//!   calls/returns, backtracking, cache of `(linearized set, state)`) over a
//!   [`checker::linear::Model`], with a [`checker::linear::Budget`] → `Valid | Invalid
//!   { witness } | Unknown`.
//! - [`checker::model`]: the ticket model and the translation of calls into model ops.
//! - [`checker`]: [`checker::check_linearizable`], run per ticket (P-compositionality: every
//!   op touches one ticket, so the history is linearizable iff each ticket's is).
//! - [`checker::direct`]: no double sale, bookings durable, holds exclusive, conservation,
//!   idempotent retries answered once, expiry within its bound, refunds at most once — each
//!   a list of violations naming op indexes.
//! - [`checker::queue`]: the waiting queue's checks (first come first served, no skipping,
//!   no lost places) over `queue.jsonl`.
//! - [`checker::waitlist`]: the waiting list's order (offers first come first served) over
//!   `waitlist.jsonl`.
//! - [`results`]: [`results::Results`], everything above as `results.json` and a summary.
//!
//! ## The model
//!
//! One ticket: `Available | Held { hold, user, until } | Sold { hold, booking } | Refunding`, as in
//! `tickets::inventory`: a hold is live while `now < expires_at` and expired from
//! `expires_at <= now`; only the holder confirms or releases, only while live; a
//! `ticket_unavailable` refusal is legal only if the ticket was held (live) or sold at the
//! op's point; a `hold_expired` refusal only if the hold had expired. Refusals that change
//! nothing (400, 403, 404, `hold_not_active`, 422, ...) are left out of the search. Full
//! rules: [`checker::model`].
//!
//! ## Time and clock skew
//!
//! Each op takes effect at one server instant `t`. Times are ms since the epoch. The client
//! recorded its wall clock at invoke and completion; with every clock (clients, servers)
//! assumed within `skew_ms` of true time, `t ∈ [t_invoke − skew_ms, t_complete + skew_ms]`
//! (`+∞` for an unknown outcome). Along a linearization `t` never decreases (the leader
//! stamps `now = max(prev, stamped)`). Expiry comparisons at `t` are exact; the skew only
//! widens windows. So with `skew_ms = 0` a confirm that completed (client clock) at the
//! hold's `expires_at` must have taken effect before it — at `expires_at` itself the hold
//! is already expired. Direct `holds_exclusive` uses the same bound (see its doc).
//!
//! Unknown outcomes (`info`, a 5xx on a write, or an invoke never completed) may take
//! effect at any point after their invoke, or never; an unknown reserve that took effect
//! holds the ticket under an unknown hold whose expiry is known only to be after its point.
//! Reads that failed or timed out observed nothing and are dropped.
//!
//! ## Caveats
//!
//! - `skew_ms` must bound the real skew, including clock faults the nemesis injects
//!   (faketime on a node): too small a bound turns correct expiries into violations.
//! - Time is one monotone server clock per ticket. A read served by a follower whose clock
//!   is behind the leader's (within the skew bound) could look like time running back; if
//!   the harness sees that, give reads their own, non-monotone time.
//! - The hold length is not an input of the model (it only requires `t <= expires_at`);
//!   the direct check `expiry_bounded` holds `expires_at` to the hold length instead.
//! - `hold_expired` about an earlier hold of the ticket is accepted once that hold's expiry
//!   has passed even if it had been released (the server would say `hold_not_active`).
//! - Holds of several tickets, extend and payments declined are not in the model; one op
//!   is one ticket. The waiting queue has direct checks ([`checker::queue`]), no model.
//! - WGL is exponential in the worst case: budgets make it answer Unknown instead. Keep
//!   per-ticket histories to a few hundred ops with few concurrent processes.

pub mod checker;
pub mod history;
pub mod results;

pub use checker::direct::{FinalRead, FinalState};
pub use checker::linear::{Budget, Verdict};
pub use checker::model::ModelConfig;
pub use checker::{check_linearizable, LinearConfig, LinearReport};
pub use history::{Op, OpFn, OpKind, OpValue, TicketStatus};
pub use results::{Results, Validity};
