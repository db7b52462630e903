//! The event-inventory machine: one event's tickets, holds, bookings, idempotency records
//! and waiting queue (see [`crate::queue`]).
//!
//! Rules (ARCHITECTURE.md, "The event state machine"):
//! - Reserve: a set of ticket ids, or `{section, quantity}` (best-available adjacent seats in
//!   one row of a seated section, else `ticket_unavailable`; lowest-numbered free tickets of
//!   a general section). All-or-nothing. A held ticket whose hold is `Active` with
//!   `expires_at <= now` counts as available: expiry is exact in log order.
//! - Per-user limit per event counts the user's live holds and purchases.
//! - Confirm is two commands: `BeginPayment` (hold pinned in `Confirming`, no expiry while
//!   the payment runs), then `Confirm` or `PaymentFailed`, proposed after the charge ran
//!   outside apply. `PaymentFailed` puts the hold back to `Active` with its old expiry.
//! - Release by the holder; `Expire` turns every active hold past its expiry into `Expired`.
//! - Extend: at most `HOLD_EXTENSIONS_MAX` times, never past `created_at + HOLD_TOTAL_MS_MAX`.
//! - Idempotency: `(user, key) -> (fingerprint, reply)` kept `IDEMPOTENCY_TTL_MS`.
//!
//! Decisions the architecture leaves open, made here:
//! - An unknown ticket id or section in a reserve is `invalid_request` (on `ticket_ids` /
//!   `section`): a bad value in the request, not a missing resource.
//! - Only a successful reserve is recorded under its idempotency key; a refused one is
//!   decided afresh on retry. An idempotency key longer than `IDEMPOTENCY_KEY_BYTES_MAX` is
//!   `invalid_request` on `idempotency_key`.
//! - A hold found expired by a command (take-over of its tickets, begin-payment, release,
//!   extend, payment failed past expiry) is marked `Expired` on the spot and its remaining
//!   tickets are freed; those tickets are reported in the changes as `Available`.
//! - `Confirm` with a booking id already used is `invalid_request` on `booking_id` (the hold
//!   stays `Confirming`; the leader must retry with a fresh id).
//! - Release and extend still work on a cancelled event; reserve, join and begin-payment
//!   do not. `QueueAdmit` on an event without a queue, or cancelled, is a no-op.
//!
//! Code layout: this file has the types, the dispatch and the queries; `inventory/` has
//! one file per group of commands (`setup`, `reserve`, `payment`, `holds`, `queue_commands`),
//! the idempotency records, the derived indexes (`derived`) and `check_invariants`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::QueueSettings;
use crate::clock::Clock;
use crate::layout::TicketSpec;
use crate::queue::{Queue, QueueView};
use crate::{BookingId, EventId, HoldId, Millis, Rejection, TicketId, UserId};

mod derived;
mod holds;
mod idempotency;
mod invariants;
mod payment;
mod queue_commands;
mod reserve;
mod setup;

use derived::Derived;

/// The first command of every event group: the event's tickets and rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySetup {
    pub event_id: EventId,
    pub tickets: Vec<TicketSpec>,
    pub currency: String,
    pub per_user_limit: u32,
    pub hold_ms: u64,
    pub on_sale_at: Millis,
    pub queue: QueueSettings,
}

/// What to reserve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// Exactly these tickets (1..=TICKETS_PER_HOLD_MAX, no duplicates).
    Tickets(Vec<TicketId>),
    /// `quantity` tickets of `section`: adjacent seats in one row for a seated section,
    /// any free tickets for a general one.
    Best { section: String, quantity: u32 },
}

/// An `Idempotency-Key` with the fingerprint (hash) of the request body it came with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryCommand {
    /// Create the inventory. Rejected (`Invalid`) if already set up.
    Setup(InventorySetup),
    Reserve {
        hold_id: HoldId,
        user: UserId,
        selection: Selection,
        idempotency: Option<Idempotency>,
    },
    /// Pin a live hold for payment. `payment_token` is kept so the payment can be retried
    /// with the same idempotency key (the hold id) after a crash.
    BeginPayment {
        hold_id: HoldId,
        user: UserId,
        payment_token: String,
        idempotency: Option<Idempotency>,
    },
    /// The charge succeeded: the hold's tickets become sold under `booking_id`.
    Confirm {
        hold_id: HoldId,
        booking_id: BookingId,
        payment_ref: String,
    },
    /// The charge was declined or failed for good: the hold goes back to `Active`.
    PaymentFailed {
        hold_id: HoldId,
        detail: String,
    },
    Release {
        hold_id: HoldId,
        user: UserId,
    },
    Extend {
        hold_id: HoldId,
        user: UserId,
    },
    /// Turn every active hold with `expires_at <= now` into `Expired`.
    Expire,
    /// The event was cancelled: no more reserves, joins or payments begin.
    Cancel,
    QueueJoin {
        user: UserId,
    },
    QueueLeave {
        user: UserId,
    },
    /// Leader-proposed: randomize pre-sale joiners with `seed` once the sale opens (first
    /// call at/after `on_sale_at`), then admit waiting users up to `max_admitted` live
    /// admissions. Safe to propose any time; a no-op when nothing changes.
    QueueAdmit {
        seed: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    Active,
    Confirming,
    Confirmed,
    Released,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAttempt {
    pub token: String,
    pub started_at: Millis,
    pub idempotency: Option<Idempotency>,
    /// 1 for the hold's first payment, +1 for each `BeginPayment` after a decline.
    pub attempt: u32,
}

impl PaymentAttempt {
    /// The provider's idempotency key for this attempt: the same on every replica and
    /// after any crash (so a retried charge is charged once), new after a decline (so the
    /// holder can pay with another card).
    pub fn charge_key(&self, hold_id: &str) -> String {
        format!("{hold_id}-{}", self.attempt)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub event_id: EventId,
    pub user: UserId,
    pub tickets: Vec<TicketId>,
    pub amount: u64,
    pub currency: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub extensions: u32,
    /// As stored; an `Active` hold past `expires_at` is expired even before `Expire` runs:
    /// use [`Hold::status_at`].
    pub status: HoldStatus,
    /// Set while `Confirming` (and kept after, for audit).
    pub payment: Option<PaymentAttempt>,
    pub booking_id: Option<BookingId>,
}

impl Hold {
    /// The status as of `now`, applying lazy expiry.
    pub fn status_at(&self, now: Millis) -> HoldStatus {
        if self.status == HoldStatus::Active && self.expires_at <= now {
            HoldStatus::Expired
        } else {
            self.status
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub id: BookingId,
    pub hold_id: HoldId,
    pub event_id: EventId,
    pub user: UserId,
    pub tickets: Vec<TicketId>,
    pub amount: u64,
    pub currency: String,
    pub payment_ref: String,
    pub created_at: Millis,
}

/// A ticket's public status (whose hold it is is never shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketStatus {
    Available,
    Held,
    Sold,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub available: u64,
    pub held: u64,
    pub sold: u64,
}

/// A ticket whose public status changed, for live seat updates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketChange {
    pub id: TicketId,
    pub status: TicketStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    SetUp,
    /// Reserve: the new hold. Extend: the hold with its new expiry. Release: the released
    /// hold. BeginPayment: the hold, now `Confirming` (or still `Confirming` on a retry).
    Hold(Hold),
    /// Confirm (or BeginPayment / retry on an already confirmed hold): the booking.
    Booked(Booking),
    /// Expire: the holds that expired, in id order.
    Expired(Vec<HoldId>),
    Cancelled,
    Queue(QueueView),
    /// QueueAdmit: users newly admitted, and QueueLeave.
    QueueChanged {
        admitted: Vec<UserId>,
    },
}

pub type InventoryReply = Result<Outcome, Rejection>;

/// What one ticket is doing, as stored (expiry is applied lazily on top of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketState {
    Available,
    Held(HoldId),
    Sold(BookingId),
}

/// The inventory of one event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub clock: Clock,
    /// `None` until `Setup` applied.
    pub setup: Option<InventorySetup>,
    pub cancelled: bool,
    /// Parallel to `setup.tickets`.
    pub states: Vec<TicketState>,
    /// ticket id -> index into `setup.tickets`.
    pub index: BTreeMap<TicketId, usize>,
    pub holds: BTreeMap<HoldId, Hold>,
    pub bookings: BTreeMap<BookingId, Booking>,
    /// `(user, key) -> record`. Stored as a sequence of pairs (same bincode bytes as a map;
    /// JSON cannot have tuple keys): see the private `pairs` module.
    #[serde(with = "crate::pairs")]
    pub idempotency: BTreeMap<(UserId, String), IdempotencyRecord>,
    pub queue: Queue,
    /// Indexes derived from the fields above, kept in step by every command so that no
    /// command scans all holds. `check_invariants` rebuilds and compares them.
    derived: Derived,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub reply: InventoryReply,
    pub expires_at: Millis,
}

impl Inventory {
    /// Apply one command at the stamped time `now_ms`. Deterministic; returns the reply and
    /// the tickets whose public status changed (in ticket order).
    pub fn apply(
        &mut self,
        command: InventoryCommand,
        now_ms: Millis,
    ) -> (InventoryReply, Vec<TicketChange>) {
        let now = self.clock.advance(now_ms);
        self.prune_idempotency(now);
        let mut changes = Changes::default();
        let reply = self.dispatch(command, now, &mut changes);
        // Cheap here; the full cross-check is `check_invariants` (O(tickets), for tests).
        debug_assert!(
            self.derived.held + self.derived.sold <= self.states.len() as u64,
            "held/sold counters exceed the ticket count"
        );
        (reply, changes.into_list(self))
    }

    fn dispatch(&mut self, command: InventoryCommand, now: Millis, changes: &mut Changes) -> InventoryReply {
        if let InventoryCommand::Setup(setup) = command {
            return self.set_up(setup);
        }
        if self.setup.is_none() {
            return Err(Rejection::not_found("event"));
        }
        match command {
            InventoryCommand::Setup(_) => unreachable!("handled above"),
            InventoryCommand::Reserve { hold_id, user, selection, idempotency } => {
                self.reserve(hold_id, user, selection, idempotency, now, changes)
            }
            InventoryCommand::BeginPayment { hold_id, user, payment_token, idempotency } => {
                self.begin_payment(hold_id, user, payment_token, idempotency, now, changes)
            }
            InventoryCommand::Confirm { hold_id, booking_id, payment_ref } => {
                self.confirm(hold_id, booking_id, payment_ref, now, changes)
            }
            InventoryCommand::PaymentFailed { hold_id, detail } => {
                self.payment_failed(hold_id, detail, now, changes)
            }
            InventoryCommand::Release { hold_id, user } => self.release(hold_id, user, now, changes),
            InventoryCommand::Extend { hold_id, user } => self.extend(hold_id, user, now, changes),
            InventoryCommand::Expire => self.expire_due(now, changes),
            InventoryCommand::Cancel => {
                self.cancelled = true;
                Ok(Outcome::Cancelled)
            }
            InventoryCommand::QueueJoin { user } => self.queue_join(user, now),
            InventoryCommand::QueueLeave { user } => self.queue_leave(user, now),
            InventoryCommand::QueueAdmit { seed } => self.queue_admit(seed, now),
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn is_set_up(&self) -> bool {
        self.setup.is_some()
    }

    /// The tickets in setup order (empty before setup).
    pub fn tickets(&self) -> &[TicketSpec] {
        self.setup.as_ref().map(|s| s.tickets.as_slice()).unwrap_or(&[])
    }

    /// Public status of every ticket at `now`, in ticket order.
    pub fn ticket_statuses(&self, now: Millis) -> Vec<(&TicketSpec, TicketStatus)> {
        self.tickets().iter().enumerate().map(|(i, spec)| (spec, self.status_of(i, now))).collect()
    }

    /// Public status of one ticket at `now`, with lazy expiry.
    pub fn ticket_status(&self, id: &str, now: Millis) -> Option<TicketStatus> {
        self.index.get(id).map(|i| self.status_of(*i, now))
    }

    pub(crate) fn status_of(&self, index: usize, now: Millis) -> TicketStatus {
        match &self.states[index] {
            TicketState::Available => TicketStatus::Available,
            TicketState::Held(h) => {
                if self.holds[h].status_at(now) == HoldStatus::Expired {
                    TicketStatus::Available
                } else {
                    TicketStatus::Held
                }
            }
            TicketState::Sold(_) => TicketStatus::Sold,
        }
    }

    /// Counts at `now`, with lazy expiry. `available + held + sold` is the capacity.
    pub fn availability(&self, now: Millis) -> Availability {
        let lapsed: u64 = self
            .derived
            .active_by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .map(|(_, h)| self.holds[h].tickets.len() as u64)
            .sum();
        let capacity = self.states.len() as u64;
        let held = self.derived.held - lapsed;
        Availability { available: capacity - held - self.derived.sold, held, sold: self.derived.sold }
    }

    /// Earliest `expires_at` among `Active` holds: when the leader should propose `Expire`.
    pub fn earliest_expiry(&self) -> Option<Millis> {
        self.derived.active_by_expiry.first().map(|(expires_at, _)| *expires_at)
    }

    /// Holds in `Confirming`: payments a new leader must finish.
    pub fn confirming(&self) -> Vec<&Hold> {
        self.derived.confirming.iter().map(|h| &self.holds[h]).collect()
    }

    pub fn hold(&self, id: &str) -> Option<&Hold> {
        self.holds.get(id)
    }

    pub fn booking(&self, id: &str) -> Option<&Booking> {
        self.bookings.get(id)
    }

    /// A user's bookings, in booking id order.
    pub fn bookings_of(&self, user: &str) -> Vec<&Booking> {
        match self.derived.user_bookings.get(user) {
            Some(ids) => ids.iter().map(|b| &self.bookings[b]).collect(),
            None => Vec::new(),
        }
    }

    /// The reply recorded for `(user, key)`, if any and not expired at `now`.
    pub fn idempotent_reply(&self, user: &str, key: &str, now: Millis) -> Option<&IdempotencyRecord> {
        self.idempotency.get(&(user.to_string(), key.to_string())).filter(|r| now < r.expires_at)
    }

    /// Tickets `user` has at `now`: in live holds (`Active` and not expired, or
    /// `Confirming`) plus bought. This is what the per-user limit counts.
    pub fn tickets_of_user(&self, user: &str, now: Millis) -> u64 {
        let held: u64 = self
            .derived
            .user_open_holds
            .get(user)
            .into_iter()
            .flatten()
            .map(|h| &self.holds[h])
            .filter(|h| matches!(h.status_at(now), HoldStatus::Active | HoldStatus::Confirming))
            .map(|h| h.tickets.len() as u64)
            .sum();
        let bought: u64 = self.bookings_of(user).iter().map(|b| b.tickets.len() as u64).sum();
        held + bought
    }

    /// `user`'s place in the waiting queue at `now`.
    pub fn queue_view(&self, user: &str, now: Millis) -> Option<QueueView> {
        self.queue.view(user, now)
    }

    /// When the leader should next propose `QueueAdmit`: the on-sale time while the queue
    /// has not opened; the machine's `now` when users wait and a slot is free (admit right
    /// away); else the earliest end of an admission. `None` without an enabled queue, or
    /// when nothing is due.
    pub fn queue_next_deadline(&self) -> Option<Millis> {
        let setup = self.setup.as_ref()?;
        if !setup.queue.enabled || self.cancelled {
            return None;
        }
        if !self.queue.is_opened() {
            return Some(setup.on_sale_at);
        }
        let now = self.now();
        if self.queue.waiting_len() > 0 && self.queue.live_admissions(now) < setup.queue.max_admitted as usize
        {
            return Some(now);
        }
        self.queue.earliest_admission_end()
    }

    /// Entries in the waiting queue (waiting plus admissions not yet dropped).
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }
}

/// The tickets touched by one command: index -> new public status. Kept in a map so the
/// list comes out in ticket order with one entry per ticket.
#[derive(Default)]
pub(crate) struct Changes(BTreeMap<usize, TicketStatus>);

impl Changes {
    pub(crate) fn set(&mut self, index: usize, status: TicketStatus) {
        self.0.insert(index, status);
    }

    fn into_list(self, inventory: &Inventory) -> Vec<TicketChange> {
        let tickets = inventory.tickets();
        self.0.into_iter().map(|(i, status)| TicketChange { id: tickets[i].id.clone(), status }).collect()
    }
}

/// The API name of a hold status.
pub fn status_name(status: HoldStatus) -> &'static str {
    match status {
        HoldStatus::Active => "active",
        HoldStatus::Confirming => "confirming",
        HoldStatus::Confirmed => "confirmed",
        HoldStatus::Released => "released",
        HoldStatus::Expired => "expired",
    }
}
