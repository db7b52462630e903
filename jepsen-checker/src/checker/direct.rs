//! Direct checks: properties read straight off the history and the final reads, without a
//! search. Cheap, and they name the ops at fault; they overlap the linearizability check on
//! purpose (two independent ways to catch the worst bugs).
//!
//! - `no_double_sale`: per ticket, all ok confirms of bookings that were not refunded name
//!   one hold and one booking (a refunded seat may be sold again, once).
//! - `bookings_durable`: every ticket with an ok confirm of a booking that was not refunded
//!   reads `sold` at the end, and when the final read reports the booking id, every such
//!   acknowledged booking of it is that one. An acknowledged booking that was refunded is
//!   listed at the end (as refunded), not lost.
//! - `refund_once`: a booking is refunded at most once and only when someone asked: every ok
//!   cancel answering `refunded` names one refund reference, the final list shows that
//!   reference, a booking a cancel said was refunded is not `confirmed` again at the end, and
//!   no booking is refunded without a cancel of it in the history.
//! - `holds_exclusive`: two ok reserves of one ticket (different holds, neither ever the
//!   object of a release, nor confirmed into a booking someone cancelled) whose lives
//!   `[t_ok, expires_at)` must overlap even with every clock off by `skew_ms`: hold B was
//!   granted at the latest at `B.t_ok + skew`; it was legal only if A had expired by then
//!   (`A.expires_at <= B.t_ok + skew`) or the other way round.
//! - `conservation`: the final reads cover `capacity` distinct tickets, and the final
//!   counts (if given) sum to `capacity`.
//! - `idempotent_once`: ok replies to one `(user, idempotency key)` name at most one hold
//!   (reserve) and one booking (confirm).
//! - `expiry_bounded` (when the hold length is known): every granted hold expires no later
//!   than `hold_ms` after the reserve completed and no earlier than `hold_ms` after the
//!   first send of that request was invoked (retries with one idempotency key count from
//!   the first), both widened by `skew_ms` — a hold can neither outlive its length nor be
//!   cut short. (That an expired hold really stops blocking is the model's job.)
//! - The waiting queue's checks are in [`super::queue`], the waiting list's in
//!   [`super::waitlist`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::history::{Call, OpFn, Outcome, TicketStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    NoDoubleSale,
    BookingsDurable,
    HoldsExclusive,
    Conservation,
    IdempotentOnce,
    ExpiryBounded,
    QueueFifo,
    QueueNoSkip,
    QueueDurable,
    RefundOnce,
    WaitlistFifo,
    /// Every node starts again on what its disk kept after the faults (power cuts), and
    /// every event has a node to serve it: a node that finds its data gone or unreadable
    /// forgot writes it had acknowledged. Judged by the harness, not from the history.
    NodesRecover,
}

impl CheckName {
    pub const ALL: [CheckName; 11] = [
        CheckName::NoDoubleSale,
        CheckName::BookingsDurable,
        CheckName::HoldsExclusive,
        CheckName::Conservation,
        CheckName::IdempotentOnce,
        CheckName::ExpiryBounded,
        CheckName::QueueFifo,
        CheckName::QueueNoSkip,
        CheckName::QueueDurable,
        CheckName::RefundOnce,
        CheckName::WaitlistFifo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckName::NoDoubleSale => "no_double_sale",
            CheckName::BookingsDurable => "bookings_durable",
            CheckName::HoldsExclusive => "holds_exclusive",
            CheckName::Conservation => "conservation",
            CheckName::IdempotentOnce => "idempotent_once",
            CheckName::ExpiryBounded => "expiry_bounded",
            CheckName::QueueFifo => "queue_fifo",
            CheckName::QueueNoSkip => "queue_no_skip",
            CheckName::QueueDurable => "queue_durable",
            CheckName::WaitlistFifo => "waitlist_fifo",
            CheckName::RefundOnce => "refund_once",
            CheckName::NodesRecover => "nodes_recover",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub check: CheckName,
    pub ticket: Option<String>,
    /// Invoke indexes of the ops involved.
    pub ops: Vec<u64>,
    pub message: String,
}

/// One ticket read after every fault healed (and every node restarted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    pub ticket: String,
    pub status: TicketStatus,
    /// The booking that holds it, when the read can tell (e.g. from the buyer's bookings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
}

/// The availability counts read at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub available: u64,
    pub held: u64,
    pub sold: u64,
}

/// One booking as the buyers' booking lists show it after every fault healed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalBooking {
    pub booking_id: String,
    /// `confirmed`, `refund_pending` or `refunded`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_ref: Option<String>,
}

/// What the run knows at the end besides the history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalState {
    /// Number of tickets of the event under test.
    pub capacity: Option<u64>,
    pub reads: Vec<FinalRead>,
    pub counts: Option<Counts>,
    /// Every booking the final lists showed (empty when the run did not read them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bookings: Vec<FinalBooking>,
}

impl FinalState {
    /// Bookings known to be refunded: a cancel answered `refunded`, or the final lists say so.
    fn refunded<'a>(&'a self, calls: &'a [Call]) -> BTreeSet<&'a str> {
        let mut out: BTreeSet<&str> =
            self.bookings.iter().filter(|b| b.status == "refunded").map(|b| b.booking_id.as_str()).collect();
        for c in ok_calls(calls, OpFn::Cancel) {
            if c.completion.as_ref().and_then(|o| o.refund()).is_some_and(|(st, _)| st == "refunded") {
                out.extend(c.invoke.booking_id.as_deref());
            }
        }
        out
    }
}

/// One direct check's outcome. `ran: false` = it lacked its input (e.g. no final reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub check: CheckName,
    pub ran: bool,
    pub violations: Vec<Violation>,
}

/// Run every direct check on tickets, in [`CheckName::ALL`] order; `expiry_bounded` only
/// when `hold_ms` is known.
pub fn check_all(calls: &[Call], fin: &FinalState, skew_ms: u64, hold_ms: Option<u64>) -> Vec<CheckResult> {
    let has_reads = !fin.reads.is_empty();
    let has_conservation_input = fin.capacity.is_some() && (has_reads || fin.counts.is_some());
    let refunded = fin.refunded(calls);
    let mut out = vec![
        CheckResult {
            check: CheckName::NoDoubleSale,
            ran: true,
            violations: no_double_sale(calls, &refunded),
        },
        CheckResult {
            check: CheckName::BookingsDurable,
            ran: has_reads,
            violations: if has_reads { bookings_durable(calls, fin, &refunded) } else { Vec::new() },
        },
        CheckResult {
            check: CheckName::HoldsExclusive,
            ran: true,
            violations: holds_exclusive(calls, skew_ms),
        },
        CheckResult {
            check: CheckName::Conservation,
            ran: has_conservation_input,
            violations: if has_conservation_input { conservation(fin) } else { Vec::new() },
        },
        CheckResult { check: CheckName::IdempotentOnce, ran: true, violations: idempotent_once(calls) },
    ];
    if calls.iter().any(|c| c.f() == OpFn::Cancel) || fin.bookings.iter().any(|b| b.status != "confirmed") {
        out.push(CheckResult {
            check: CheckName::RefundOnce,
            ran: true,
            violations: refund_once(calls, fin),
        });
    }
    if let Some(hold_ms) = hold_ms {
        out.push(CheckResult {
            check: CheckName::ExpiryBounded,
            ran: true,
            violations: expiry_bounded(calls, hold_ms, skew_ms),
        });
    }
    out
}

/// Every ok reserve's `expires_at` lies in `[first invoke + hold − skew, complete + hold +
/// skew]`, where "first invoke" is the earliest send of the same `(user, idempotency key)`.
pub fn expiry_bounded(calls: &[Call], hold_ms: u64, skew_ms: u64) -> Vec<Violation> {
    let mut first_send: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.f() == OpFn::Reserve) {
        if let (Some(user), Some(key)) = (c.user(), c.invoke.idempotency_key.as_deref()) {
            let t = first_send.entry((user, key)).or_insert(c.invoke.time_ms);
            *t = (*t).min(c.invoke.time_ms);
        }
    }
    let mut out = Vec::new();
    for c in ok_calls(calls, OpFn::Reserve) {
        let Some(done) = c.completion.as_ref() else { continue };
        let Some((hold, expires_at)) = done.hold() else { continue };
        let first = match (c.user(), c.invoke.idempotency_key.as_deref()) {
            (Some(user), Some(key)) => first_send[&(user, key)],
            _ => c.invoke.time_ms,
        };
        let earliest = (first + hold_ms).saturating_sub(skew_ms);
        let latest = done.time_ms + hold_ms + skew_ms;
        if expires_at < earliest || expires_at > latest {
            out.push(Violation {
                check: CheckName::ExpiryBounded,
                ticket: Some(c.ticket().to_string()),
                ops: vec![c.index()],
                message: format!(
                    "hold {hold} expires at {expires_at}, outside [{earliest}, {latest}] (hold {hold_ms} ms, \
                     reserve [{first}, {}], skew {skew_ms} ms)",
                    done.time_ms
                ),
            });
        }
    }
    out
}

fn ok_calls(calls: &[Call], f: OpFn) -> impl Iterator<Item = &Call> {
    calls.iter().filter(move |c| c.f() == f && c.outcome() == Outcome::Ok)
}

fn booking_of(call: &Call) -> Option<&str> {
    call.completion.as_ref().and_then(|c| c.booking())
}

/// Ok confirms of bookings not known to be refunded, per ticket, in ticket order.
fn confirms_by_ticket<'a>(calls: &'a [Call], refunded: &BTreeSet<&str>) -> BTreeMap<&'a str, Vec<&'a Call>> {
    let mut by_ticket: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in ok_calls(calls, OpFn::Confirm) {
        if booking_of(c).is_some_and(|b| refunded.contains(b)) {
            continue;
        }
        by_ticket.entry(c.ticket()).or_default().push(c);
    }
    by_ticket
}

/// Per ticket, every ok confirm of a booking that was not refunded must name the same hold
/// and the same booking.
pub fn no_double_sale(calls: &[Call], refunded: &BTreeSet<&str>) -> Vec<Violation> {
    let mut out = Vec::new();
    for (ticket, confirms) in confirms_by_ticket(calls, refunded) {
        let holds: BTreeSet<Option<&str>> = confirms.iter().map(|c| c.hold_id()).collect();
        let bookings: BTreeSet<Option<&str>> = confirms.iter().map(|c| booking_of(c)).collect();
        if holds.len() > 1 || bookings.len() > 1 {
            out.push(Violation {
                check: CheckName::NoDoubleSale,
                ticket: Some(ticket.to_string()),
                ops: confirms.iter().map(|c| c.index()).collect(),
                message: format!(
                    "{ticket} sold {} times: holds {:?}, bookings {:?}",
                    holds.len().max(bookings.len()),
                    holds.iter().flatten().collect::<Vec<_>>(),
                    bookings.iter().flatten().collect::<Vec<_>>()
                ),
            });
        }
    }
    out
}

/// Every acknowledged sale not refunded reads `sold` at the end, under an acknowledged
/// booking; every acknowledged booking that was refunded is still listed.
pub fn bookings_durable(calls: &[Call], fin: &FinalState, refunded: &BTreeSet<&str>) -> Vec<Violation> {
    let reads: BTreeMap<&str, &FinalRead> = fin.reads.iter().map(|r| (r.ticket.as_str(), r)).collect();
    let mut out = Vec::new();
    if !fin.bookings.is_empty() {
        let listed: BTreeSet<&str> = fin.bookings.iter().map(|b| b.booking_id.as_str()).collect();
        for c in ok_calls(calls, OpFn::Confirm) {
            if let Some(b) = booking_of(c).filter(|b| refunded.contains(b) && !listed.contains(b)) {
                out.push(Violation {
                    check: CheckName::BookingsDurable,
                    ticket: Some(c.ticket().to_string()),
                    ops: vec![c.index()],
                    message: format!(
                        "booking {b} was acknowledged and refunded, but no list shows it at the end"
                    ),
                });
            }
        }
    }
    let mut sold_acknowledged = 0u64;
    for (ticket, confirms) in confirms_by_ticket(calls, refunded) {
        sold_acknowledged += 1;
        let ops: Vec<u64> = confirms.iter().map(|c| c.index()).collect();
        let acknowledged: BTreeSet<&str> = confirms.iter().filter_map(|c| booking_of(c)).collect();
        let problem = match reads.get(ticket) {
            None => Some("not in the final reads".to_string()),
            Some(r) if r.status != TicketStatus::Sold => Some(format!("reads {:?} at the end", r.status)),
            Some(FinalRead { booking_id: Some(b), .. }) if acknowledged.iter().any(|a| a != b) => {
                let lost: Vec<&&str> = acknowledged.iter().filter(|a| **a != b).collect();
                Some(format!("sold under booking {b}: acknowledged {lost:?} lost"))
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            out.push(Violation {
                check: CheckName::BookingsDurable,
                ticket: Some(ticket.to_string()),
                ops,
                message: format!("{ticket}: booking acknowledged, but {problem}"),
            });
        }
    }
    if let Some(counts) = fin.counts {
        if counts.sold < sold_acknowledged {
            out.push(Violation {
                check: CheckName::BookingsDurable,
                ticket: None,
                ops: Vec::new(),
                message: format!(
                    "{sold_acknowledged} tickets acknowledged sold, final count says {}",
                    counts.sold
                ),
            });
        }
    }
    out
}

/// A booking is refunded at most once, and only when a cancel asked for it (see the module
/// doc).
pub fn refund_once(calls: &[Call], fin: &FinalState) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |ticket: Option<&str>, ops: Vec<u64>, message: String| {
        out.push(Violation { check: CheckName::RefundOnce, ticket: ticket.map(str::to_string), ops, message })
    };
    let mut cancels: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.f() == OpFn::Cancel) {
        if let Some(b) = c.invoke.booking_id.as_deref() {
            cancels.entry(b).or_default().push(c);
        }
    }
    let finals: BTreeMap<&str, &FinalBooking> =
        fin.bookings.iter().map(|b| (b.booking_id.as_str(), b)).collect();
    for (booking, cs) in &cancels {
        let ops: Vec<u64> = cs.iter().map(|c| c.index()).collect();
        let ticket = cs.first().map(|c| c.ticket());
        let refs: BTreeSet<&str> = cs
            .iter()
            .filter(|c| c.outcome() == Outcome::Ok)
            .filter_map(|c| c.completion.as_ref().and_then(|o| o.refund()))
            .filter(|(st, _)| *st == "refunded")
            .map(|(_, r)| r.unwrap_or(""))
            .collect();
        if refs.len() > 1 {
            v(ticket, ops.clone(), format!("booking {booking} refunded {} times: {refs:?}", refs.len()));
        }
        match (refs.first(), finals.get(booking)) {
            (Some(r), Some(f)) if f.status != "refunded" => v(
                ticket,
                ops.clone(),
                format!("booking {booking}: a cancel answered refunded ({r}), the end shows it {}", f.status),
            ),
            (Some(r), Some(f)) if f.refund_ref.as_deref().unwrap_or("") != *r => v(
                ticket,
                ops.clone(),
                format!("booking {booking} refunded as {r}, the end shows refund {:?}", f.refund_ref),
            ),
            _ => {}
        }
    }
    for b in fin.bookings.iter().filter(|b| b.status != "confirmed") {
        if !cancels.contains_key(b.booking_id.as_str()) {
            v(
                None,
                Vec::new(),
                format!("booking {} is {} at the end, but nobody cancelled it", b.booking_id, b.status),
            );
        }
    }
    out
}

/// No two holds of one ticket live at once (beyond what clock skew can explain).
pub fn holds_exclusive(calls: &[Call], skew_ms: u64) -> Vec<Violation> {
    // Holds that someone tried to release: their life may have ended early; left out. So
    // are holds whose booking someone cancelled: a refund puts the seat back on sale, maybe
    // before the hold's nominal expiry.
    let cancelled: BTreeSet<&str> = calls
        .iter()
        .filter(|c| c.f() == OpFn::Cancel && c.outcome() != Outcome::Fail)
        .filter_map(|c| c.invoke.booking_id.as_deref())
        .collect();
    let released: BTreeSet<(&str, &str)> = calls
        .iter()
        .filter(|c| c.f() == OpFn::Release && c.outcome() != Outcome::Fail)
        .filter_map(|c| c.hold_id().map(|h| (c.ticket(), h)))
        .chain(
            ok_calls(calls, OpFn::Confirm)
                .filter(|c| booking_of(c).is_some_and(|b| cancelled.contains(b)))
                .filter_map(|c| c.hold_id().map(|h| (c.ticket(), h))),
        )
        .collect();
    // ticket -> hold -> (op, t_ok, expires_at), first ok reserve of each hold.
    let mut holds: BTreeMap<&str, BTreeMap<&str, (u64, u64, u64)>> = BTreeMap::new();
    for c in ok_calls(calls, OpFn::Reserve) {
        let completion = c.completion.as_ref().expect("ok calls have a completion");
        let Some((hold, expires_at)) = completion.hold() else { continue };
        if released.contains(&(c.ticket(), hold)) {
            continue;
        }
        holds.entry(c.ticket()).or_default().entry(hold).or_insert((
            c.index(),
            completion.time_ms,
            expires_at,
        ));
    }
    let mut out = Vec::new();
    for (ticket, holds) in holds {
        let list: Vec<(&str, (u64, u64, u64))> = holds.into_iter().collect();
        for (i, (a, (a_op, a_ok, a_exp))) in list.iter().enumerate() {
            for (b, (b_op, b_ok, b_exp)) in &list[i + 1..] {
                let a_then_b = b_ok.saturating_add(skew_ms) >= *a_exp;
                let b_then_a = a_ok.saturating_add(skew_ms) >= *b_exp;
                if !a_then_b && !b_then_a {
                    out.push(Violation {
                        check: CheckName::HoldsExclusive,
                        ticket: Some(ticket.to_string()),
                        ops: vec![*a_op.min(b_op), *a_op.max(b_op)],
                        message: format!(
                            "{ticket}: hold {a} [{a_ok}, {a_exp}) and hold {b} [{b_ok}, {b_exp}) overlap \
                             beyond the {skew_ms} ms skew bound"
                        ),
                    });
                }
            }
        }
    }
    out
}

/// Final reads cover every ticket once; final counts add up to the capacity.
pub fn conservation(fin: &FinalState) -> Vec<Violation> {
    let Some(capacity) = fin.capacity else { return Vec::new() };
    let mut out = Vec::new();
    let mut v = |message: String| {
        out.push(Violation { check: CheckName::Conservation, ticket: None, ops: Vec::new(), message })
    };
    if !fin.reads.is_empty() {
        let mut statuses: BTreeMap<&str, BTreeSet<TicketStatus>> = BTreeMap::new();
        for r in &fin.reads {
            statuses.entry(&r.ticket).or_default().insert(r.status);
        }
        for (ticket, s) in &statuses {
            if s.len() > 1 {
                v(format!("{ticket} read as {s:?} at the end"));
            }
        }
        let mut tally = Counts { available: 0, held: 0, sold: 0 };
        for s in statuses.values().filter_map(|s| s.first()) {
            match s {
                TicketStatus::Available => tally.available += 1,
                TicketStatus::Held => tally.held += 1,
                TicketStatus::Sold => tally.sold += 1,
            }
        }
        let total = tally.available + tally.held + tally.sold;
        if total != capacity {
            v(format!(
                "final reads: {} available + {} held + {} sold = {total}, capacity {capacity}",
                tally.available, tally.held, tally.sold
            ));
        }
    }
    if let Some(c) = fin.counts {
        let total = c.available + c.held + c.sold;
        if total != capacity {
            v(format!(
                "final counts: {} available + {} held + {} sold = {total}, capacity {capacity}",
                c.available, c.held, c.sold
            ));
        }
    }
    out
}

/// One `(user, idempotency key)` never yields two holds or two bookings.
pub fn idempotent_once(calls: &[Call]) -> Vec<Violation> {
    type Key<'a> = (OpFn, &'a str, &'a str);
    let mut results: BTreeMap<Key, (BTreeSet<&str>, Vec<u64>)> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.outcome() == Outcome::Ok) {
        let (Some(user), Some(key)) = (c.user(), c.invoke.idempotency_key.as_deref()) else { continue };
        let result = match c.f() {
            OpFn::Reserve => c.hold_id(),
            OpFn::Confirm => booking_of(c),
            OpFn::Release | OpFn::Read | OpFn::Cancel => None,
        };
        if let Some(result) = result {
            let slot = results.entry((c.f(), user, key)).or_default();
            slot.0.insert(result);
            slot.1.push(c.index());
        }
    }
    results
        .into_iter()
        .filter(|(_, (distinct, _))| distinct.len() > 1)
        .map(|((f, user, key), (distinct, ops))| Violation {
            check: CheckName::IdempotentOnce,
            ticket: None,
            ops,
            message: format!(
                "{f:?} by {user} with key {key} answered {} different ids: {distinct:?}",
                distinct.len()
            ),
        })
        .collect()
}
