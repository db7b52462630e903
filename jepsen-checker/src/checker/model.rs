//! The sequential model of one ticket, with time.
//!
//! State: `Available | Held { hold, user, until } | Sold { hold, booking } | Refunding { hold,
//! booking }`, the server
//! time `now` reached so far, and the holds ever granted on the ticket with their expiry
//! (to judge idempotent replays and `hold_expired` answers about past holds).
//!
//! ## Time and skew
//!
//! Every op takes effect at one server instant `t` (its linearization point). The server's
//! time for an event never runs backwards (the leader stamps `now = max(prev, stamped)`),
//! so along a linearization `t` is non-decreasing: the state carries `now`, and an op may
//! take effect at `t >= now` only.
//!
//! The client recorded its own wall clock at invoke (`t_inv`) and completion (`t_ret`). We
//! assume every clock involved (clients and servers) is within `skew_ms` of true time, so
//! `t ∈ [t_inv − skew_ms, t_ret + skew_ms]` (for an unknown outcome, `t_ret = +∞`). Inside
//! that window the comparisons are exact, as in `tickets::inventory`: a hold is live at `t`
//! iff `t < until`, expired iff `until <= t`. The model always takes the *earliest* `t`
//! the op allows (`max(now, t_inv − skew)`, or `until` if the op needs the hold expired);
//! a later `t` never makes more histories valid, so this loses nothing.
//!
//! ## The rules (one op, recorded result → allowed?)
//!
//! - reserve ok `(h, until)`: `h` already granted here → an idempotent replay, allowed if
//!   `until` matches (no change). Else the ticket must be available at `t` (Available, or
//!   Held with `until <= t`) and `t <= until`; → `Held { h, until }`.
//! - reserve fail `ticket_unavailable`: the ticket must not be available at `t` (Held and
//!   live, or Sold). No change.
//! - reserve info: if it took effect, the ticket was available and is now held by an
//!   unknown hold whose expiry is only known to be after `t` (an interval, narrowed by
//!   later observations).
//! - confirm ok `(h, booking)`: Held by `h` (by the same user, when recorded), live at `t`
//!   → `Sold { h, booking }`; or already `Sold` by `h` with that booking (a retry).
//! - confirm / release fail `hold_expired`: `h` is the current hold and expired at `t`
//!   (→ Available: the server frees the tickets on the spot), or an earlier hold of this
//!   ticket already expired at `t` (no change).
//! - release ok: Held by `h`, live at `t` → Available.
//! - confirm / release info: if it took effect, as ok (the booking id unknown).
//! - read ok `status`: the status at `t` with expiry applied.
//! - cancel ok `refunded` (booking `b`): Sold under `b` (or under a booking a confirm with an
//!   unknown outcome made), or Refunding `b` → Available: the refund committed before the
//!   answer, and the seat is back on sale.
//! - cancel ok `refund_pending`, and cancel info: Sold under `b` (or Refunding `b`) →
//!   Refunding `b`. The refund finishes at some later instant nobody observed (the leader's
//!   scheduler finishes it), or — for an info, or a pending refund the provider declines —
//!   never. So Refunding reads as Sold or as Available: a read `sold` or a `ticket_unavailable`
//!   keeps it; a read `available` or a reserve ok says the refund finished before (→ as
//!   Available). It never reads `held` without a reserve first.
//! - other failures (400, 403, 404, 409 `hold_not_active`, 422, ...) are definite
//!   refusals that change nothing: they are not given to the model. A 5xx on a write is
//!   treated as an unknown outcome (a 503 from confirm means "the payment goes on";
//!   `504 outcome_unknown` says so outright) — except `503 overloaded`, which the server
//!   answers before proposing anything (its queue was full): a definite "did not happen".
//!   A read that failed or timed out observed nothing and is dropped.

use std::collections::BTreeMap;

use super::linear::{Entry, Model};
use crate::history::{Call, OpFn, Outcome, TicketStatus};

/// Parameters of the ticket model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    /// Bound on |any clock − true time|, clients and servers (ms). Widens every op's window
    /// by this on both sides.
    pub skew_ms: u64,
}

/// Interned hold / user / booking id (per ticket).
pub type Id = u32;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Available,
    /// `hold: None` = granted by a reserve whose outcome was unknown. The expiry is known
    /// to lie in `[until_lo, until_hi]` (equal for a known hold).
    Held {
        hold: Option<Id>,
        user: Option<Id>,
        until_lo: u64,
        until_hi: u64,
    },
    /// `booking: None` = sold by a confirm whose outcome was unknown.
    Sold {
        hold: Id,
        booking: Option<Id>,
    },
    /// A cancel of the booking took effect (or may have): still sold, until a refund nobody
    /// observed finishes (see the module doc).
    Refunding {
        hold: Id,
        booking: Option<Id>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TicketState {
    /// Server time reached by the linearization so far.
    pub now: u64,
    pub status: Status,
    /// `(hold, until)` of every hold granted on this ticket, sorted by hold.
    pub granted: Vec<(Id, u64)>,
}

impl TicketState {
    fn until_of(&self, hold: Id) -> Option<u64> {
        self.granted.binary_search_by_key(&hold, |(h, _)| *h).ok().map(|i| self.granted[i].1)
    }

    fn at(&self, now: u64, status: Status) -> TicketState {
        let mut next = TicketState { now, status, granted: self.granted.clone() };
        // Time only moves on: a hold whose expiry is surely past is the same as Available.
        if let Status::Held { until_hi, .. } = next.status {
            if until_hi <= now {
                next.status = Status::Available;
            }
        }
        next
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    ReserveOk {
        hold: Id,
        user: Option<Id>,
        until: u64,
    },
    ReserveUnavailable,
    ReserveInfo {
        user: Option<Id>,
    },
    ConfirmOk {
        hold: Id,
        user: Option<Id>,
        booking: Id,
    },
    ConfirmInfo {
        hold: Id,
        user: Option<Id>,
    },
    ReleaseOk {
        hold: Id,
        user: Option<Id>,
    },
    ReleaseInfo {
        hold: Id,
        user: Option<Id>,
    },
    /// Confirm or release answered `hold_expired`.
    HoldExpired {
        hold: Id,
    },
    /// Cancel answered 200: `refunded` (done) or `refund_pending`.
    CancelOk {
        booking: Id,
        refunded: bool,
    },
    /// Cancel with an unknown outcome.
    CancelInfo {
        booking: Id,
    },
    Read(TicketStatus),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketOp {
    /// Earliest server time the op can take effect at (`t_inv − skew`).
    pub lo: u64,
    /// Latest (`t_ret + skew`; `u64::MAX` when the outcome is unknown).
    pub hi: u64,
    pub action: Action,
}

/// The model of one ticket.
#[derive(Clone, Copy, Debug, Default)]
pub struct TicketModel;

impl Model for TicketModel {
    type State = TicketState;
    type Op = TicketOp;

    fn init(&self) -> TicketState {
        TicketState { now: 0, status: Status::Available, granted: Vec::new() }
    }

    /// Reads and `ticket_unavailable` refusals: they keep the status and only narrow `now`
    /// and a hold's `until_lo` upward — and a lower `now` or `until_lo` never makes a later
    /// step impossible (expiry comes sooner, windows start earlier).
    fn is_observation(&self, op: &TicketOp) -> bool {
        matches!(op.action, Action::ReserveUnavailable | Action::Read(_))
    }

    fn step(&self, s: &TicketState, op: &TicketOp) -> Option<TicketState> {
        // Earliest instant the op can take effect at.
        let t0 = s.now.max(op.lo);
        if t0 > op.hi {
            return None;
        }
        // Earliest instant >= t0 at which the current hold has surely expired, if in window.
        let expired_at = |until_lo: u64| -> Option<u64> {
            let t = t0.max(until_lo);
            (t <= op.hi).then_some(t)
        };
        let same_user = |holder: &Option<Id>, user: &Option<Id>| match (holder, user) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        match (&op.action, &s.status) {
            (Action::ReserveOk { hold, until, .. }, _) if s.until_of(*hold).is_some() => {
                (s.until_of(*hold) == Some(*until)).then(|| s.at(t0, s.status.clone()))
            }
            (Action::ReserveOk { hold, user, until }, status) => {
                let t = match status {
                    Status::Available | Status::Refunding { .. } => t0,
                    Status::Held { until_lo, .. } => expired_at(*until_lo)?,
                    Status::Sold { .. } => return None,
                };
                if t > *until {
                    return None;
                }
                let mut next = s.at(
                    t,
                    Status::Held { hold: Some(*hold), user: *user, until_lo: *until, until_hi: *until },
                );
                let i = next.granted.binary_search_by_key(hold, |(h, _)| *h).unwrap_err();
                next.granted.insert(i, (*hold, *until));
                Some(next)
            }
            (Action::ReserveUnavailable, Status::Available) => None,
            // Observations (see `is_observation`) narrow what is known of a hold but do not
            // move `now`: nothing later depends on time having passed their instant (a
            // held or sold ticket changes only at or after the hold's expiry, or by its
            // holder), and it keeps them free of choice points in the search.
            (Action::ReserveUnavailable, Status::Held { hold, user, until_lo, until_hi }) => {
                // Live at t0: until > t0.
                (t0 < *until_hi).then(|| {
                    let until_lo = (*until_lo).max(t0 + 1);
                    s.at(s.now, Status::Held { hold: *hold, user: *user, until_lo, until_hi: *until_hi })
                })
            }
            (Action::ReserveUnavailable, Status::Sold { .. } | Status::Refunding { .. }) => Some(s.clone()),
            (Action::ReserveInfo { user }, status) => {
                let t = match status {
                    Status::Available | Status::Refunding { .. } => t0,
                    Status::Held { until_lo, .. } => expired_at(*until_lo)?,
                    Status::Sold { .. } => return None,
                };
                Some(s.at(t, Status::Held { hold: None, user: *user, until_lo: t + 1, until_hi: u64::MAX }))
            }
            (
                Action::ConfirmOk { hold, user, booking },
                Status::Held { hold: Some(h), user: holder, until_hi, .. },
            ) if h == hold && same_user(holder, user) && t0 < *until_hi => {
                Some(s.at(t0, Status::Sold { hold: *hold, booking: Some(*booking) }))
            }
            (Action::ConfirmOk { hold, booking, .. }, Status::Sold { hold: h, booking: b })
                if h == hold && b.is_none_or(|b| b == *booking) =>
            {
                Some(s.at(t0, Status::Sold { hold: *hold, booking: Some(*booking) }))
            }
            // A confirm answered (again) after the booking's cancel began: it took effect before.
            (Action::ConfirmOk { hold, booking, .. }, Status::Refunding { hold: h, booking: b })
                if h == hold && b.is_none_or(|b| b == *booking) =>
            {
                Some(s.at(t0, Status::Refunding { hold: *hold, booking: Some(*booking) }))
            }
            (Action::ConfirmOk { .. }, _) => None,
            (
                Action::ConfirmInfo { hold, user },
                Status::Held { hold: Some(h), user: holder, until_hi, .. },
            ) if h == hold && same_user(holder, user) && t0 < *until_hi => {
                Some(s.at(t0, Status::Sold { hold: *hold, booking: None }))
            }
            (Action::ConfirmInfo { .. }, _) => None,
            (
                Action::ReleaseOk { hold, user } | Action::ReleaseInfo { hold, user },
                Status::Held { hold: Some(h), user: holder, until_hi, .. },
            ) if h == hold && same_user(holder, user) && t0 < *until_hi => Some(s.at(t0, Status::Available)),
            (Action::ReleaseOk { .. } | Action::ReleaseInfo { .. }, _) => None,
            (Action::HoldExpired { hold }, Status::Held { hold: Some(h), until_lo, .. }) if h == hold => {
                let t = expired_at(*until_lo)?;
                Some(s.at(t, Status::Available))
            }
            (
                Action::HoldExpired { hold },
                Status::Sold { hold: h, .. } | Status::Refunding { hold: h, .. },
            ) if h == hold => None,
            (Action::HoldExpired { hold }, _) => {
                let until = s.until_of(*hold)?;
                let t = expired_at(until)?;
                Some(s.at(t, s.status.clone()))
            }
            (Action::Read(TicketStatus::Available), Status::Available) => Some(s.clone()),
            (Action::Read(TicketStatus::Available), Status::Held { until_lo, .. }) => {
                let t = expired_at(*until_lo)?;
                Some(s.at(t, Status::Available))
            }
            (Action::Read(TicketStatus::Held), Status::Held { hold, user, until_lo, until_hi }) => {
                (t0 < *until_hi).then(|| {
                    let until_lo = (*until_lo).max(t0 + 1);
                    s.at(s.now, Status::Held { hold: *hold, user: *user, until_lo, until_hi: *until_hi })
                })
            }
            (Action::Read(TicketStatus::Sold), Status::Sold { .. } | Status::Refunding { .. }) => {
                Some(s.clone())
            }
            (Action::Read(TicketStatus::Available), Status::Refunding { .. }) => {
                Some(s.at(t0, Status::Available))
            }
            (Action::Read(_), _) => None,
            (
                Action::CancelOk { booking, refunded },
                Status::Sold { hold, booking: b } | Status::Refunding { hold, booking: b },
            ) if b.is_none_or(|b| b == *booking) => Some(if *refunded {
                s.at(t0, Status::Available)
            } else {
                s.at(t0, Status::Refunding { hold: *hold, booking: Some(*booking) })
            }),
            (Action::CancelOk { .. }, _) => None,
            (
                Action::CancelInfo { booking },
                Status::Sold { hold, booking: b } | Status::Refunding { hold, booking: b },
            ) if b.is_none_or(|b| b == *booking) => {
                Some(s.at(t0, Status::Refunding { hold: *hold, booking: Some(*booking) }))
            }
            (Action::CancelInfo { .. }, _) => None,
        }
    }
}

/// Strings of one ticket's history as small ids.
#[derive(Clone, Debug, Default)]
pub struct Interner {
    ids: BTreeMap<String, Id>,
}

impl Interner {
    pub fn id(&mut self, s: &str) -> Id {
        let next = self.ids.len() as Id;
        *self.ids.entry(s.to_string()).or_insert(next)
    }
}

/// How a call enters the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Give it to the checker.
    Op { entry: Entry<TicketOp> },
    /// A definite refusal with no effect, or a read that observed nothing: left out.
    Skip,
    /// The call lacks what the model needs (e.g. confirm without a hold id): a harness bug.
    Malformed(String),
}

/// Translate one call (of the ticket whose strings `ids` holds) for the model.
pub fn prepare(call: &Call, config: &ModelConfig, ids: &mut Interner) -> Prepared {
    let inv = &call.invoke;
    let lo = inv.time_ms.saturating_sub(config.skew_ms);
    let user = inv.user.as_deref().map(|u| ids.id(&format!("user:{u}")));
    let completion = call.completion.as_ref();
    let code = completion.and_then(|c| c.error_code());
    // `overloaded` is refused before anything is proposed: nothing happened.
    let server_error =
        completion.and_then(|c| c.http_status()).is_some_and(|s| s >= 500) && code != Some("overloaded");
    let outcome = match call.outcome() {
        Outcome::Fail if server_error && call.f() != OpFn::Read => Outcome::Info,
        o => o,
    };
    let (hi, return_at) = match (outcome, completion) {
        (Outcome::Info, _) | (_, None) => (u64::MAX, None),
        (_, Some(c)) => (c.time_ms.saturating_add(config.skew_ms), Some(c.index)),
    };
    let hold = inv.hold_id.as_deref().map(|h| ids.id(&format!("hold:{h}")));
    let needs_hold = || hold.ok_or_else(|| format!("{:?} without hold_id", call.f()));
    let action = match (call.f(), outcome) {
        (OpFn::Reserve, Outcome::Ok) => {
            let Some((h, until)) = completion.and_then(|c| c.hold()) else {
                return Prepared::Malformed("reserve ok without a hold value".into());
            };
            Action::ReserveOk { hold: ids.id(&format!("hold:{h}")), user, until }
        }
        (OpFn::Reserve, Outcome::Fail) if code == Some("ticket_unavailable") => Action::ReserveUnavailable,
        (OpFn::Reserve, Outcome::Info) => Action::ReserveInfo { user },
        (OpFn::Confirm, Outcome::Ok) => {
            let Some(b) = completion.and_then(|c| c.booking()) else {
                return Prepared::Malformed("confirm ok without a booking value".into());
            };
            let booking = ids.id(&format!("booking:{b}"));
            match needs_hold() {
                Ok(hold) => Action::ConfirmOk { hold, user, booking },
                Err(e) => return Prepared::Malformed(e),
            }
        }
        (OpFn::Confirm, Outcome::Info) => match needs_hold() {
            Ok(hold) => Action::ConfirmInfo { hold, user },
            Err(e) => return Prepared::Malformed(e),
        },
        (OpFn::Release, Outcome::Ok) => match needs_hold() {
            Ok(hold) => Action::ReleaseOk { hold, user },
            Err(e) => return Prepared::Malformed(e),
        },
        (OpFn::Release, Outcome::Info) => match needs_hold() {
            Ok(hold) => Action::ReleaseInfo { hold, user },
            Err(e) => return Prepared::Malformed(e),
        },
        (OpFn::Confirm | OpFn::Release, Outcome::Fail) if code == Some("hold_expired") => {
            match needs_hold() {
                Ok(hold) => Action::HoldExpired { hold },
                Err(e) => return Prepared::Malformed(e),
            }
        }
        (OpFn::Read, Outcome::Ok) => match completion.and_then(|c| c.status()) {
            Some(status) => Action::Read(status),
            None => return Prepared::Malformed("read ok without a status value".into()),
        },
        (OpFn::Read, _) => return Prepared::Skip,
        (OpFn::Cancel, Outcome::Ok | Outcome::Info) => {
            let Some(b) = inv.booking_id.as_deref() else {
                return Prepared::Malformed("cancel without booking_id".into());
            };
            let booking = ids.id(&format!("booking:{b}"));
            if outcome == Outcome::Info {
                Action::CancelInfo { booking }
            } else {
                match completion.and_then(|c| c.refund()) {
                    Some((status, _)) => Action::CancelOk { booking, refunded: status == "refunded" },
                    None => return Prepared::Malformed("cancel ok without a refund value".into()),
                }
            }
        }
        (_, Outcome::Fail) => return Prepared::Skip,
    };
    Prepared::Op {
        entry: Entry { id: inv.index, invoke_at: inv.index, return_at, op: TicketOp { lo, hi, action } },
    }
}
