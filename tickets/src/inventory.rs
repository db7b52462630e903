//! The event-inventory machine: one event's tickets, holds, bookings, idempotency records
//! and waiting queue (see [`crate::queue`]).
//!
//! Rules (the event state machine; `docs/tickets.md` tells the story):
//! - Reserve: a set of ticket ids, or `{section, quantity}` (best-available adjacent seats in
//!   one row of a seated section, see [`free`]; the lowest-numbered free tickets of a general
//!   section). All-or-nothing.
//! - Expiry is exact in log order: every command first expires the `Active` holds whose
//!   `expires_at <= now` (from an index ordered by expiry, so nothing is scanned) and frees
//!   their seats; those seats are in the command's changes. `Expire` does only that, and
//!   answers the holds it expired; the leader proposes it at the earliest expiry so watchers
//!   see seats come back without waiting for other traffic.
//! - Per-user limit per event counts the user's live holds and purchases.
//! - Confirm is two commands: `BeginPayment` (hold pinned in `Confirming`, no expiry while
//!   the payment runs), then `Confirm` or `PaymentFailed`, proposed after the charge ran
//!   outside apply. `PaymentFailed` puts the hold back to `Active` with its old expiry.
//! - Release by the holder; extend at most `HOLD_EXTENSIONS_MAX` times, never past
//!   `created_at + HOLD_TOTAL_MS_MAX`.
//! - Idempotency: `(user, key) -> (fingerprint, reply)` kept `IDEMPOTENCY_TTL_MS`.
//! - Cancel and refund is two commands too, mirroring payment: `BeginRefund` (booking
//!   pinned `RefundPending`, seats still sold), then `Refunded` (seats back on sale) or
//!   `RefundFailed` (booking `Confirmed` again). A booking is refunded at most once. See
//!   `inventory/refund.rs` for who may cancel when.
//! - The waiting list: seats that come back (expiry, release, refund) are first offered, in
//!   the same apply, to the oldest waiting entry of their section that fits, as a hold made
//!   for it; see `inventory/waitlist.rs`.
//!
//! **What the state keeps.** Live holds (`Active`, `Confirming`) and bookings, whose number
//! follows the seats; idempotency records for their 24 hours. A hold that ends leaves the
//! live state: a confirmed one is found through its booking (forever), an expired or
//! released one is kept as a tombstone for [`ENDED_HOLD_MS`] or until
//! [`ENDED_HOLDS_MAX`] newer ones push it out — long enough to answer a late confirm
//! `hold_expired` — and is then forgotten (`not_found`). So the state's size follows the
//! live holds and bookings, not every hold ever made.
//!
//! **Layout.** The tickets are not stored one by one: the `Setup` carries the venue's
//! sections and prices, and [`Layout`] computes ids, sections, rows and prices from a
//! ticket's index. A ticket's state is one small enum (`Available | Held(hold number) |
//! Sold`); which booking sold it is on the booking.
//!
//! **Stored and derived.** [`Inventory`] is the stored core (what snapshots carry) plus
//! indexes derived from it (ids to holds, holds by expiry, free seats per section and row,
//! per-user holds and bookings...), rebuilt on restore and compared with a rebuild by
//! [`Inventory::check_invariants`]. The core's collections hold their records behind
//! `Arc`s with cheap keys, so [`Inventory::snapshot_core`] is a cheap copy taken under the
//! state lock and serialized outside it.
//!
//! Decisions the architecture leaves open, made here:
//! - An unknown ticket id or section in a reserve is `invalid_request` (on `ticket_ids` /
//!   `section`): a bad value in the request, not a missing resource.
//! - Only a successful reserve is recorded under its idempotency key; a refused one is
//!   decided afresh on retry. An idempotency key longer than `IDEMPOTENCY_KEY_BYTES_MAX` is
//!   `invalid_request` on `idempotency_key`.
//! - `Confirm` with a booking id already used is `invalid_request` on `booking_id` (the hold
//!   stays `Confirming`; the leader must retry with a fresh id).
//! - Release and extend still work on a cancelled event; reserve, join and begin-payment
//!   do not. `QueueAdmit` on an event without a queue, or cancelled, is a no-op.
//!
//! Code layout: this file has the types, the dispatch and the queries; `inventory/` has
//! one file per group of commands (`setup`, `reserve`, `payment`, `holds`, `queue_commands`),
//! the idempotency records, the free-seat indexes (`free`), the other derived indexes
//! (`derived`) and `check_invariants`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalog::{QueueSettings, SectionSpec};
use crate::clock::Clock;
use crate::layout::{Layout, TicketSpec};
use crate::queue::{Queue, QueueView};
use crate::{BookingId, EventId, HoldId, Millis, Rejection, TicketId, UserId};

mod derived;
mod free;
mod holds;
mod idempotency;
mod invariants;
mod outbox;
mod payment;
mod queue_commands;
mod refund;
mod reserve;
mod setup;
mod waitlist;

use derived::Derived;
pub use outbox::{Notice, NoticeData, NoticeKind, OUTBOX_MAX};
use waitlist::WaitRecord;
pub use waitlist::{WaitlistEntry, WaitlistStatus, WAITLIST_ENTRIES_MAX, WAITLIST_PASSES_MAX};

/// How long an expired or released hold is remembered after it ended, so that a late
/// confirm, release or status read gets `hold_expired` / its status rather than
/// `not_found`. Later, its id is unknown.
pub const ENDED_HOLD_MS: Millis = 10 * 60 * 1_000;
/// Most ended holds remembered; past it the oldest is forgotten first, so the state stays
/// bounded in a sale with seats lapsing all the time.
pub const ENDED_HOLDS_MAX: usize = 100_000;

/// The first command of every event group: the event's seats and rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventorySetup {
    pub event_id: EventId,
    /// The venue's sections, in order: the tickets are made from them ([`Layout`]).
    pub sections: Vec<SectionSpec>,
    /// Price per section name, in minor units (a section without one costs 0).
    pub prices: BTreeMap<String, u64>,
    pub currency: String,
    pub per_user_limit: u32,
    pub hold_ms: u64,
    pub on_sale_at: Millis,
    /// Reserves at or after this are refused ([`crate::catalog::EventSpec::sales_end`]);
    /// moved by [`InventoryCommand::SetSalesEnd`].
    pub sales_end: Millis,
    pub queue: QueueSettings,
    /// A buyer may cancel (and be refunded) while `now < refund_until`; an admin any time
    /// ([`crate::catalog::EventSpec::refund_until`]); moved by
    /// [`InventoryCommand::SetRefundUntil`].
    pub refund_until: Millis,
    /// How long a waiting-list offer (a hold made for the entry) is kept for it
    /// ([`crate::catalog::EventSpec::waitlist_offer_seconds`]).
    pub waitlist_offer_ms: u64,
}

/// What to reserve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// Exactly these tickets (1..=TICKETS_PER_HOLD_MAX, no duplicates).
    Tickets(Vec<TicketId>),
    /// `quantity` tickets of `section`: adjacent seats in one row for a seated section,
    /// the lowest-numbered free tickets for a general one.
    Best { section: String, quantity: u32 },
}

/// An `Idempotency-Key` with the fingerprint (hash) of the request body it came with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// with the same idempotency key after a crash.
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
    /// Expire every active hold with `expires_at <= now` (which every command does first
    /// anyway) and answer which.
    Expire,
    /// The event was cancelled: no more reserves, joins or payments begin.
    Cancel,
    QueueJoin {
        user: UserId,
    },
    /// Many joins in one command (a node gathers the joins it takes while the previous batch
    /// commits, see `cluster::queue_joins`): exactly the `QueueJoin`s of `users` in this
    /// order at the same time, with one answer each.
    QueueJoinMany {
        users: Vec<UserId>,
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
    /// The catalog moved the end of sales (`PATCH` of `starts_at` or `sales_end`); holds
    /// already made are not touched.
    SetSalesEnd {
        at: Millis,
    },
    /// Cancel a booking: pin it `RefundPending` while the refund runs outside apply (see
    /// `inventory/refund.rs`). A buyer only their own and only before `refund_until`; an
    /// admin any time. Again on a pending booking: the same answer (idempotent).
    BeginRefund {
        booking_id: BookingId,
        by: Refunder,
        idempotency: Option<Idempotency>,
    },
    /// The refund succeeded: the booking is `Refunded` and its tickets are on sale again.
    Refunded {
        booking_id: BookingId,
        refund_ref: String,
    },
    /// The provider declined the refund: the booking is `Confirmed` again.
    RefundFailed {
        booking_id: BookingId,
        detail: String,
    },
    /// The catalog moved the refund window (`PATCH` of `starts_at` or `refund_until`).
    SetRefundUntil {
        at: Millis,
    },
    /// The event is cancelled (as [`InventoryCommand::Cancel`]) and every `Confirmed` booking
    /// begins its refund, by `admin`, in the same apply: one command, so a crash cannot
    /// leave the event cancelled with bookings nobody refunds.
    CancelAndRefund {
        admin: UserId,
    },
    /// The catalog says the event is cancelled: [`InventoryCommand::CancelAndRefund`] if this
    /// inventory is not cancelled yet, else nothing. What an event leader's reconciler
    /// proposes to carry a cancellation over: it races the admin's own `CancelAndRefund`,
    /// and a second `CancelAndRefund` landing after a declined refund would start another
    /// attempt nobody asked for (a re-posted event cancel does that, on purpose).
    PropagateCancel {
        admin: UserId,
    },
    /// Join the waiting list for `quantity` tickets of `section`; the offer's hold, when
    /// one comes, is `offer_hold_id` (chosen by the node). See `inventory/waitlist.rs`.
    WaitlistJoin {
        user: UserId,
        section: String,
        quantity: u32,
        offer_hold_id: HoldId,
    },
    /// Leave the waiting list (an unpaid offer is released to the next entry).
    WaitlistLeave {
        user: UserId,
    },
    /// The leader delivered the outbox's notices numbered up to `upto`: drop them.
    OutboxAck {
        upto: u64,
    },
}

/// Who cancels a booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refunder {
    /// The buyer: only their own booking, only before the event's `refund_until`.
    Buyer(UserId),
    /// An admin: any booking, any time.
    Admin(UserId),
}

/// Where a booking is in its life. Appended variants only (stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingStatus {
    Confirmed,
    /// A refund began and its outcome is not committed yet: the seats stay sold.
    RefundPending,
    /// Refunded (once, for good): the seats went back on sale.
    Refunded,
}

/// A refund's run, kept on the booking (after it ended too, for audit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAttempt {
    pub by: Refunder,
    pub started_at: Millis,
    pub idempotency: Option<Idempotency>,
    /// 1 for the booking's first refund, +1 for each `BeginRefund` after a decline.
    pub attempt: u32,
    /// The provider's reason when this attempt was declined.
    pub declined: Option<String>,
}

impl RefundAttempt {
    /// The provider's idempotency key: `refund:<booking id>` for the first attempt,
    /// `refund:<booking id>-<n>` after a decline. The same on every replica and after any
    /// crash (so a retried refund is made once), new only after a decline (final, nothing
    /// refunded).
    pub fn refund_key(&self, booking_id: &str) -> String {
        match self.attempt {
            0 | 1 => format!("refund:{booking_id}"),
            n => format!("refund:{booking_id}-{n}"),
        }
    }
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

/// A hold as the rules answer it (built from the stored record).
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
    /// As stored; an `Active` hold past `expires_at` is expired even before the next
    /// command ends it: use [`Hold::status_at`].
    pub status: HoldStatus,
    /// Set while `Confirming` (and kept after, for audit).
    pub payment: Option<PaymentAttempt>,
    pub booking_id: Option<BookingId>,
}

impl Hold {
    /// The status as of `now`, applying expiry that no command has applied yet.
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
    pub status: BookingStatus,
    /// The current or last refund attempt.
    pub refund: Option<RefundAttempt>,
    /// The provider's reference of the refund, once `Refunded`.
    pub refund_ref: Option<String>,
    pub refunded_at: Option<Millis>,
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
    /// QueueJoinMany: one answer per user, in the command's order.
    QueueMany(Vec<Result<QueueView, Rejection>>),
    /// QueueAdmit: users newly admitted, and QueueLeave.
    QueueChanged {
        admitted: Vec<UserId>,
    },
    /// CancelAndRefund: the bookings whose refund began, in id order.
    Refunding(Vec<BookingId>),
    /// WaitlistJoin: the entry (offered at once when seats fit). WaitlistLeave: the entry
    /// as it was.
    Waitlist(Box<WaitlistEntry>),
    /// OutboxAck: notices still waiting.
    Acked {
        pending: u64,
    },
}

pub type InventoryReply = Result<Outcome, Rejection>;

/// What one ticket is doing, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketState {
    Available,
    /// In the live hold with this number.
    Held(u64),
    /// In a booking (which one is on the booking).
    Sold,
}

/// A hold as stored: live in `holds`, or ended (expired, released) in `ended`, or
/// confirmed inside its booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HoldRecord {
    /// Sequence number, unique within the event, in creation order.
    pub no: u64,
    pub id: Arc<str>,
    pub user: Arc<str>,
    /// Ticket indexes, ascending.
    pub tickets: Vec<u32>,
    pub amount: u64,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub extensions: u32,
    pub status: HoldStatus,
    pub payment: Option<PaymentAttempt>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BookingRecord {
    pub id: Arc<str>,
    /// The hold it was made from, as it was confirmed.
    pub hold: HoldRecord,
    pub payment_ref: String,
    pub created_at: Millis,
    pub status: BookingStatus,
    pub refund: Option<RefundAttempt>,
    pub refund_ref: Option<String>,
    pub refunded_at: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub reply: InventoryReply,
    pub expires_at: Millis,
}

/// The stored state: what snapshots carry. Every collection keeps its records behind an
/// `Arc` with a cheap key, so a copy of the core is cheap (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InventoryCore {
    clock: Clock,
    /// `None` until `Setup` applied.
    setup: Option<Arc<InventorySetup>>,
    cancelled: bool,
    /// One per ticket of the layout.
    states: Vec<TicketState>,
    next_hold_no: u64,
    /// Live holds (`Active`, `Confirming`) by number.
    holds: BTreeMap<u64, Arc<HoldRecord>>,
    /// Ended holds (`Expired`, `Released`) by `(ended at, number)`: oldest first.
    #[serde(with = "crate::pairs")]
    ended: BTreeMap<(Millis, u64), Arc<HoldRecord>>,
    bookings: BTreeMap<Arc<str>, Arc<BookingRecord>>,
    /// `(user, key) -> record`. Stored as a sequence of pairs (same bincode bytes as a map;
    /// JSON cannot have tuple keys): see the private `pairs` module.
    #[serde(with = "crate::pairs")]
    idempotency: BTreeMap<Arc<(String, String)>, Arc<IdempotencyRecord>>,
    queue: Queue,
    next_wait_seq: u64,
    /// The waiting list by join order.
    waitlist: BTreeMap<u64, Arc<WaitRecord>>,
    /// Notices for webhooks not yet delivered (see `outbox`), oldest first.
    outbox: std::collections::VecDeque<Notice>,
    /// The number of the last notice made.
    next_notice_seq: u64,
    /// Notices dropped because the outbox was full.
    outbox_dropped: u64,
}

/// The inventory of one event: the stored core plus its derived indexes.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    core: InventoryCore,
    derived: Derived,
}

impl PartialEq for Inventory {
    /// Equal cores; the derived indexes follow from them.
    fn eq(&self, other: &Self) -> bool {
        self.core == other.core
    }
}

impl Serialize for Inventory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.core.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Inventory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let core = InventoryCore::deserialize(deserializer)?;
        Inventory::from_core(core).map_err(serde::de::Error::custom)
    }
}

impl Inventory {
    /// An inventory from its stored core, with every derived index rebuilt.
    pub fn from_core(core: InventoryCore) -> Result<Inventory, String> {
        let derived = Derived::rebuild(&core)?;
        Ok(Inventory { core, derived })
    }

    /// A copy of the stored core, cheap enough to take under a lock: serialize it
    /// elsewhere (it shares its records with the live state).
    pub fn snapshot_core(&self) -> InventoryCore {
        self.core.clone()
    }

    /// Apply one command at the stamped time `now_ms`. Deterministic; returns the reply and
    /// the tickets whose public status changed (in ticket order).
    pub fn apply(
        &mut self,
        command: InventoryCommand,
        now_ms: Millis,
    ) -> (InventoryReply, Vec<TicketChange>) {
        let now = self.core.clock.advance(now_ms);
        let mut changes = Changes::default();
        self.prune_idempotency(now);
        self.prune_ended(now);
        let expired = self.expire_due(now, &mut changes);
        if self.core.setup.is_some() {
            // Seats that lapsed go to the waiting list before the command runs.
            self.offer_returned(now, &mut changes);
        }
        let reply = match command {
            InventoryCommand::Setup(setup) => self.set_up(setup),
            _ if self.core.setup.is_none() => Err(Rejection::not_found("event")),
            InventoryCommand::Expire => {
                let mut ids: Vec<HoldId> = expired.iter().map(|id| HoldId::from(&**id)).collect();
                ids.sort();
                Ok(Outcome::Expired(ids))
            }
            command => {
                let (was_cancelled, was_sold) = (self.core.cancelled, self.derived.sold);
                let reply = self.dispatch(command, now, &mut changes);
                self.offer_returned(now, &mut changes);
                if self.core.cancelled && !was_cancelled {
                    self.notify(NoticeKind::EventCancelled, now, NoticeData::Event);
                }
                let capacity = self.core.states.len() as u64;
                if self.derived.sold == capacity && was_sold < capacity {
                    self.notify(NoticeKind::EventSoldOut, now, NoticeData::Event);
                }
                reply
            }
        };
        debug_assert_eq!(
            self.derived.free.free_count() + self.derived.held + self.derived.sold,
            self.core.states.len() as u64,
            "free + held + sold must be the ticket count"
        );
        (reply, changes.into_list(&self.derived.layout))
    }

    fn dispatch(&mut self, command: InventoryCommand, now: Millis, changes: &mut Changes) -> InventoryReply {
        match command {
            InventoryCommand::Setup(_) | InventoryCommand::Expire => unreachable!("handled in apply"),
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
            InventoryCommand::Extend { hold_id, user } => self.extend(hold_id, user, now),
            InventoryCommand::Cancel => {
                self.core.cancelled = true;
                self.waitlist_close();
                Ok(Outcome::Cancelled)
            }
            InventoryCommand::QueueJoin { user } => self.queue_join(user, now),
            InventoryCommand::QueueJoinMany { users } => self.queue_join_many(users, now),
            InventoryCommand::QueueLeave { user } => self.queue_leave(user, now),
            InventoryCommand::QueueAdmit { seed } => self.queue_admit(seed, now),
            InventoryCommand::SetSalesEnd { at } => {
                let setup = self.core.setup.as_mut().expect("set up");
                Arc::make_mut(setup).sales_end = at;
                // Reopened: seats that came back while sales were closed were offered to
                // nobody.
                self.offer_everywhere(now, changes);
                Ok(Outcome::SetUp)
            }
            InventoryCommand::BeginRefund { booking_id, by, idempotency } => {
                self.begin_refund(booking_id, by, idempotency, now)
            }
            InventoryCommand::Refunded { booking_id, refund_ref } => {
                self.refunded(booking_id, refund_ref, now, changes)
            }
            InventoryCommand::RefundFailed { booking_id, detail } => {
                self.refund_failed(booking_id, detail, now)
            }
            InventoryCommand::SetRefundUntil { at } => {
                let setup = self.core.setup.as_mut().expect("set up");
                Arc::make_mut(setup).refund_until = at;
                Ok(Outcome::SetUp)
            }
            InventoryCommand::CancelAndRefund { admin } => {
                self.core.cancelled = true;
                self.waitlist_close();
                self.refund_all(admin, now)
            }
            InventoryCommand::PropagateCancel { .. } if self.core.cancelled => {
                Ok(Outcome::Refunding(Vec::new()))
            }
            InventoryCommand::PropagateCancel { admin } => {
                self.core.cancelled = true;
                self.waitlist_close();
                self.refund_all(admin, now)
            }
            InventoryCommand::WaitlistJoin { user, section, quantity, offer_hold_id } => {
                self.waitlist_join(user, section, quantity, offer_hold_id, now, changes)
            }
            InventoryCommand::WaitlistLeave { user } => self.waitlist_leave(user, now, changes),
            InventoryCommand::OutboxAck { upto } => self.outbox_ack(upto),
        }
    }

    pub fn now(&self) -> Millis {
        self.core.clock.now()
    }

    pub fn is_set_up(&self) -> bool {
        self.core.setup.is_some()
    }

    /// The `Setup` the inventory was made with.
    pub fn setup(&self) -> Option<&InventorySetup> {
        self.core.setup.as_deref()
    }

    pub fn cancelled(&self) -> bool {
        self.core.cancelled
    }

    /// Where the tickets are (empty before setup).
    pub fn layout(&self) -> &Layout {
        &self.derived.layout
    }

    /// The tickets in layout order (empty before setup).
    pub fn tickets(&self) -> Vec<TicketSpec> {
        self.derived.layout.specs()
    }

    /// The index of the ticket called `id`.
    pub fn ticket_index(&self, id: &str) -> Option<u32> {
        self.derived.layout.find(id)
    }

    /// Public status of every ticket at `now`, in layout order.
    pub fn ticket_statuses(&self, now: Millis) -> Vec<(TicketSpec, TicketStatus)> {
        let layout = &self.derived.layout;
        (0..layout.count() as u32).map(|i| (layout.spec(i), self.status_of(i, now))).collect()
    }

    /// Public status of every ticket at `now`, in layout order, without the ticket specs.
    pub fn statuses(&self, now: Millis) -> Vec<TicketStatus> {
        (0..self.core.states.len() as u32).map(|i| self.status_of(i, now)).collect()
    }

    /// Public status of one ticket at `now`.
    pub fn ticket_status(&self, id: &str, now: Millis) -> Option<TicketStatus> {
        self.derived.layout.find(id).map(|i| self.status_of(i, now))
    }

    /// Status of ticket `index` at `now`; a hold past its expiry that no command has ended
    /// yet (a read at a later time than the machine's) shows its seats available.
    pub(crate) fn status_of(&self, index: u32, now: Millis) -> TicketStatus {
        match self.core.states[index as usize] {
            TicketState::Available => TicketStatus::Available,
            TicketState::Held(no) => {
                let hold = &self.core.holds[&no];
                if hold.status == HoldStatus::Active && hold.expires_at <= now {
                    TicketStatus::Available
                } else {
                    TicketStatus::Held
                }
            }
            TicketState::Sold => TicketStatus::Sold,
        }
    }

    /// Counts at `now`. `available + held + sold` is the capacity.
    pub fn availability(&self, now: Millis) -> Availability {
        let lapsed: u64 = self
            .derived
            .by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .map(|(_, no)| self.core.holds[no].tickets.len() as u64)
            .sum();
        let capacity = self.core.states.len() as u64;
        let held = self.derived.held - lapsed;
        Availability { available: capacity - held - self.derived.sold, held, sold: self.derived.sold }
    }

    /// Earliest `expires_at` among `Active` holds: when the leader should propose `Expire`.
    pub fn earliest_expiry(&self) -> Option<Millis> {
        self.derived.by_expiry.first().map(|(expires_at, _)| *expires_at)
    }

    /// The first time after `now` at which a read's statuses change without a new entry:
    /// the earliest `expires_at` later than `now` among `Active` holds (a hold past its
    /// expiry already reads as available, see [`Inventory::statuses`]). `None`: no such time,
    /// so the statuses at `now` hold until the next entry.
    pub fn next_lapse_after(&self, now: Millis) -> Option<Millis> {
        self.derived.by_expiry.range((now.saturating_add(1), 0)..).next().map(|(expires_at, _)| *expires_at)
    }

    /// Holds in `Confirming`: payments a new leader must finish.
    pub fn confirming(&self) -> Vec<Hold> {
        self.derived.confirming.iter().map(|no| self.view(&self.core.holds[no])).collect()
    }

    /// Whether a refund is pending (cheap: no booking is copied).
    pub fn has_refunding(&self) -> bool {
        !self.derived.refunding.is_empty()
    }

    /// Bookings in `RefundPending`: refunds a new leader must finish.
    pub fn refunding(&self) -> Vec<Booking> {
        self.derived.refunding.iter().map(|id| self.booking_view(&self.core.bookings[id])).collect()
    }

    /// The hold `id` if the event knows it: live, ended not long ago, or confirmed.
    pub fn hold(&self, id: &str) -> Option<Hold> {
        match self.find_hold(id)? {
            Found::Live(r) | Found::Ended(r) => Some(self.view(r)),
            Found::Booked(b) => {
                let mut hold = self.view(&b.hold);
                hold.booking_id = Some(BookingId::from(&*b.id));
                Some(hold)
            }
        }
    }

    /// The live holds (`Active`, `Confirming`), by number.
    pub fn live_holds(&self) -> Vec<Hold> {
        self.core.holds.values().map(|r| self.view(r)).collect()
    }

    pub fn booking(&self, id: &str) -> Option<Booking> {
        self.core.bookings.get(id).map(|b| self.booking_view(b))
    }

    /// Every booking, in booking id order.
    pub fn bookings(&self) -> Vec<Booking> {
        self.core.bookings.values().map(|b| self.booking_view(b)).collect()
    }

    /// A user's bookings, in booking id order.
    pub fn bookings_of(&self, user: &str) -> Vec<Booking> {
        match self.derived.user_bookings.get(user) {
            Some(ids) => ids.iter().map(|b| self.booking_view(&self.core.bookings[b])).collect(),
            None => Vec::new(),
        }
    }

    /// The reply recorded for `(user, key)`, if any and not expired at `now`.
    pub fn idempotent_reply(&self, user: &str, key: &str, now: Millis) -> Option<&IdempotencyRecord> {
        self.core
            .idempotency
            .get(&(user.to_string(), key.to_string()))
            .map(|r| r.as_ref())
            .filter(|r| now < r.expires_at)
    }

    /// Tickets `user` has at `now`: in live holds (`Active` and not past expiry, or
    /// `Confirming`) plus bought and not refunded. This is what the per-user limit counts.
    pub fn tickets_of_user(&self, user: &str, now: Millis) -> u64 {
        let held: u64 = self
            .derived
            .user_holds
            .get(user)
            .into_iter()
            .flatten()
            .map(|no| &self.core.holds[no])
            .filter(|h| h.status == HoldStatus::Confirming || h.expires_at > now)
            .map(|h| h.tickets.len() as u64)
            .sum();
        let bought: u64 = self
            .derived
            .user_bookings
            .get(user)
            .into_iter()
            .flatten()
            .map(|b| &self.core.bookings[b])
            .filter(|b| b.status != BookingStatus::Refunded)
            .map(|b| b.hold.tickets.len() as u64)
            .sum();
        held + bought
    }

    /// `user`'s place in the waiting queue at `now`.
    pub fn queue_view(&self, user: &str, now: Millis) -> Option<QueueView> {
        self.core.queue.view(user, now)
    }

    /// The waiting queue.
    pub fn queue(&self) -> &Queue {
        &self.core.queue
    }

    /// When the leader should next propose `QueueAdmit`: the on-sale time while the queue
    /// has not opened; the machine's `now` when users wait and a slot is free (admit right
    /// away); else the earliest end of an admission. `None` without an enabled queue, or
    /// when nothing is due.
    pub fn queue_next_deadline(&self) -> Option<Millis> {
        let setup = self.core.setup.as_ref()?;
        if !setup.queue.enabled || self.core.cancelled {
            return None;
        }
        let queue = &self.core.queue;
        if !queue.is_opened() {
            return Some(setup.on_sale_at);
        }
        let now = self.now();
        if queue.waiting_len() > 0 && queue.live_admissions(now) < setup.queue.max_admitted as usize {
            return Some(now);
        }
        queue.earliest_admission_end()
    }

    /// Entries in the waiting queue (waiting plus admissions not yet dropped).
    pub fn queue_len(&self) -> usize {
        self.core.queue.len()
    }

    /// The hold `id` wherever the state keeps it.
    fn find_hold(&self, id: &str) -> Option<Found<'_>> {
        if let Some(no) = self.derived.hold_ids.get(id) {
            return Some(Found::Live(&self.core.holds[no]));
        }
        if let Some(key) = self.derived.ended_ids.get(id) {
            return Some(Found::Ended(&self.core.ended[key]));
        }
        let booking = self.derived.booking_by_hold.get(id)?;
        Some(Found::Booked(&self.core.bookings[booking]))
    }

    /// The public form of a stored hold.
    fn view(&self, record: &HoldRecord) -> Hold {
        let setup = self.core.setup.as_ref().expect("holds exist only after setup");
        Hold {
            id: HoldId::from(&*record.id),
            event_id: setup.event_id.clone(),
            user: record.user.to_string().into(),
            tickets: record.tickets.iter().map(|i| self.derived.layout.id(*i)).collect(),
            amount: record.amount,
            currency: setup.currency.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            extensions: record.extensions,
            status: record.status,
            payment: record.payment.clone(),
            booking_id: None,
        }
    }

    fn booking_view(&self, b: &BookingRecord) -> Booking {
        let setup = self.core.setup.as_ref().expect("bookings exist only after setup");
        Booking {
            id: BookingId::from(&*b.id),
            hold_id: HoldId::from(&*b.hold.id),
            event_id: setup.event_id.clone(),
            user: b.hold.user.to_string().into(),
            tickets: b.hold.tickets.iter().map(|i| self.derived.layout.id(*i)).collect(),
            amount: b.hold.amount,
            currency: setup.currency.clone(),
            payment_ref: b.payment_ref.clone(),
            created_at: b.created_at,
            status: b.status,
            refund: b.refund.clone(),
            refund_ref: b.refund_ref.clone(),
            refunded_at: b.refunded_at,
        }
    }
}

/// Where a hold id was found.
enum Found<'a> {
    Live(&'a HoldRecord),
    Ended(&'a HoldRecord),
    Booked(&'a BookingRecord),
}

/// The tickets touched by one command: index -> new public status. Kept in a map so the
/// list comes out in ticket order with one entry per ticket. Also the users whose tickets
/// went back (a hold ended, a booking refunded): their waiting-list entries may fit now.
#[derive(Default)]
pub(crate) struct Changes {
    tickets: BTreeMap<u32, TicketStatus>,
    users_freed: Vec<Arc<str>>,
}

impl Changes {
    pub(crate) fn set(&mut self, index: u32, status: TicketStatus) {
        self.tickets.insert(index, status);
    }

    /// `user` has fewer tickets than before this command.
    pub(crate) fn user_freed(&mut self, user: &Arc<str>) {
        self.users_freed.push(user.clone());
    }

    /// The tickets changed so far, in ticket order, with their new status.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, TicketStatus)> + '_ {
        self.tickets.iter().map(|(i, s)| (*i, *s))
    }

    pub(crate) fn users_freed(&self) -> &[Arc<str>] {
        &self.users_freed
    }

    fn into_list(self, layout: &Layout) -> Vec<TicketChange> {
        self.tickets.into_iter().map(|(i, status)| TicketChange { id: layout.id(i), status }).collect()
    }
}

/// The API name of a booking status.
pub fn booking_status_name(status: BookingStatus) -> &'static str {
    match status {
        BookingStatus::Confirmed => "confirmed",
        BookingStatus::RefundPending => "refund_pending",
        BookingStatus::Refunded => "refunded",
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
