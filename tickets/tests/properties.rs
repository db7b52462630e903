//! Property tests: random command logs against one small event (a seated section `A` of
//! 3 rows x 5 seats and a general section `GA` of 10), a few users, holds of 10 s or 20 min,
//! and stamps that mostly move forward and sometimes backwards (and sometimes jump 700 s). After every command we check the invariants the
//! store promises; at the end, a replay of the log from scratch must give the same replies,
//! changes and state. proptest prints a minimal failing log and keeps its seed in
//! `proptest-regressions/` (set `PROPTEST_CASES` for a longer run).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tickets::catalog::{GeoPoint, QueueSettings, RowSpec, SectionKind, SectionSpec, VenueSpec};
use tickets::inventory::{
    BookingStatus, HoldStatus, Idempotency, Inventory, InventoryCommand, InventoryReply, InventorySetup,
    Notice, NoticeData, NoticeKind, Outcome, Refunder, Selection, TicketChange, TicketStatus, WaitlistStatus,
};
use tickets::layout::SectionTickets;
use tickets::limits::{HOLD_EXTENSIONS_MAX, HOLD_TOTAL_MS_MAX};
use tickets::{BookingId, HoldId, Millis, Rejection, UserId};

const USERS: [&str; 8] = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"];
const LIMIT: u32 = 4;

#[derive(Clone, Debug)]
enum Op {
    ReserveIds {
        user: usize,
        tickets: Vec<usize>,
        key: Option<u8>,
    },
    ReserveBest {
        user: usize,
        general: bool,
        quantity: u32,
        key: Option<u8>,
    },
    /// `owner`: pay as the hold's user (else as `user`).
    Pay {
        hold: usize,
        owner: bool,
        user: usize,
        key: Option<u8>,
    },
    Confirm {
        hold: usize,
        booking: u8,
    },
    Fail {
        hold: usize,
    },
    Release {
        hold: usize,
        owner: bool,
        user: usize,
    },
    Extend {
        hold: usize,
        owner: bool,
        user: usize,
    },
    Expire,
    /// Not drawn by `op()`: placed once, at `cancel_at`, so most of a run is not cancelled.
    Cancel,
    Join {
        user: usize,
    },
    /// One `QueueJoinMany` of these users (repeats allowed).
    JoinMany {
        users: Vec<usize>,
    },
    Leave {
        user: usize,
    },
    Admit {
        seed: u64,
    },
    /// The catalog moves the end of sales (`u64::MAX`: no end).
    SalesEnd {
        at: Millis,
    },
    /// Cancel one of the bookings made so far: as its buyer (`owner`), as another user, or
    /// as an admin.
    Refund {
        booking: usize,
        owner: bool,
        admin: bool,
        user: usize,
        key: Option<u8>,
    },
    /// The provider refunded / declined the refund of a booking.
    Refunded {
        booking: usize,
    },
    RefundFailed {
        booking: usize,
    },
    /// The catalog moves the buyers' refund window.
    RefundUntil {
        at: Millis,
    },
    /// Not drawn by `op()`: placed at `cancel_at` instead of `Cancel` half the time.
    CancelAndRefund,
    /// Join the waiting list for `quantity` of a section.
    WaitJoin {
        user: usize,
        general: bool,
        quantity: u32,
    },
    WaitLeave {
        user: usize,
    },
    /// Acknowledge the outbox but its last `keep` notices.
    Ack {
        keep: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let key = prop::option::weighted(0.3, 0u8..3);
    prop_oneof![
        6 => (user.clone(), prop::collection::vec(0usize..25, 0..4), key.clone())
            .prop_map(|(user, tickets, key)| Op::ReserveIds { user, tickets, key }),
        4 => (user.clone(), any::<bool>(), 0u32..6, key.clone())
            .prop_map(|(user, general, quantity, key)| Op::ReserveBest { user, general, quantity, key }),
        4 => (0usize..64, prop::bool::weighted(0.9), user.clone(), key)
            .prop_map(|(hold, owner, user, key)| Op::Pay { hold, owner, user, key }),
        3 => (0usize..64, 0u8..40).prop_map(|(hold, booking)| Op::Confirm { hold, booking }),
        2 => (0usize..64).prop_map(|hold| Op::Fail { hold }),
        2 => (0usize..64, prop::bool::weighted(0.9), user.clone())
            .prop_map(|(hold, owner, user)| Op::Release { hold, owner, user }),
        2 => (0usize..64, prop::bool::weighted(0.9), user.clone())
            .prop_map(|(hold, owner, user)| Op::Extend { hold, owner, user }),
        2 => Just(Op::Expire),
        2 => user.clone().prop_map(|user| Op::Join { user }),
        1 => prop::collection::vec(user.clone(), 0..6).prop_map(|users| Op::JoinMany { users }),
        1 => user.clone().prop_map(|user| Op::Leave { user }),
        2 => any::<u64>().prop_map(|seed| Op::Admit { seed }),
        1 => prop_oneof![3 => 0u64..40_000, 1 => Just(Millis::MAX)].prop_map(|at| Op::SalesEnd { at }),
        3 => (0usize..16, prop::bool::weighted(0.8), prop::bool::weighted(0.2), 0..USERS.len(),
              prop::option::weighted(0.3, 0u8..3))
            .prop_map(|(booking, owner, admin, user, key)| Op::Refund { booking, owner, admin, user, key }),
        2 => (0usize..16).prop_map(|booking| Op::Refunded { booking }),
        1 => (0usize..16).prop_map(|booking| Op::RefundFailed { booking }),
        1 => prop_oneof![3 => 0u64..60_000, 1 => Just(Millis::MAX)].prop_map(|at| Op::RefundUntil { at }),
        3 => (user.clone(), prop::bool::weighted(0.7), 0u32..5)
            .prop_map(|(user, general, quantity)| Op::WaitJoin { user, general, quantity }),
        1 => user.prop_map(|user| Op::WaitLeave { user }),
        1 => (0u8..3).prop_map(|keep| Op::Ack { keep }),
    ]
}

/// Operations of a sale whose general section sells out and gets a waiting list: buyers
/// take most places in a few holds, others wait, holds lapse, are released, paid and
/// refunded, entries leave.
fn waitlist_op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    prop_oneof![
        6 => (user.clone(), prop::bool::weighted(0.8), 1u32..5)
            .prop_map(|(user, general, quantity)| Op::ReserveBest { user, general, quantity, key: None }),
        6 => (user.clone(), prop::bool::weighted(0.8), 1u32..5)
            .prop_map(|(user, general, quantity)| Op::WaitJoin { user, general, quantity }),
        2 => user.clone().prop_map(|user| Op::WaitLeave { user }),
        3 => (0usize..64, user.clone())
            .prop_map(|(hold, user)| Op::Release { hold, owner: true, user }),
        3 => (0usize..64, user.clone()).prop_map(|(hold, user)| Op::Pay { hold, owner: true, user, key: None }),
        3 => (0usize..64, 0u8..40).prop_map(|(hold, booking)| Op::Confirm { hold, booking }),
        1 => (0usize..64).prop_map(|hold| Op::Fail { hold }),
        2 => Just(Op::Expire),
        2 => (0usize..16, user.clone())
            .prop_map(|(booking, user)| Op::Refund { booking, owner: true, admin: false, user, key: None }),
        2 => (0usize..16).prop_map(|booking| Op::Refunded { booking }),
        1 => prop_oneof![3 => 0u64..40_000, 2 => Just(Millis::MAX)].prop_map(|at| Op::SalesEnd { at }),
        1 => (0u8..3).prop_map(|keep| Op::Ack { keep }),
    ]
}

/// A step: an operation and how far the stamp moves (sometimes backwards).
fn steps_of(op: impl Strategy<Value = Op>) -> impl Strategy<Value = Vec<(Op, i64)>> {
    prop::collection::vec(
        (op, prop_oneof![8 => 0i64..4_000, 2 => -3_000i64..0, 1 => Just(10_000i64), 1 => Just(700_000i64)]),
        1..80,
    )
}

fn steps() -> impl Strategy<Value = Vec<(Op, i64)>> {
    steps_of(op())
}

fn setup(queue: bool, on_sale_at: Millis, hold_ms: u64) -> InventorySetup {
    let rows = (1..=3).map(|r| RowSpec { name: r.to_string(), seats: 5 }).collect();
    let venue = VenueSpec {
        name: "Hall".into(),
        city: "Oslo".into(),
        country: "NO".into(),
        location: GeoPoint { lat: 0.0, lon: 0.0 },
        sections: vec![
            SectionSpec { name: "A".into(), kind: SectionKind::Seated { rows } },
            SectionSpec { name: "GA".into(), kind: SectionKind::General { capacity: 10 } },
        ],
    };
    let prices = BTreeMap::from([("A".to_string(), 5_000), ("GA".to_string(), 2_000)]);
    InventorySetup {
        event_id: "e1".into(),
        sections: venue.sections,
        prices,
        currency: "EUR".into(),
        per_user_limit: LIMIT,
        hold_ms,
        on_sale_at,
        sales_end: Millis::MAX,
        queue: QueueSettings { enabled: queue, max_admitted: 2, admission_seconds: 20 },
        refund_until: 30_000,
        waitlist_offer_ms: 5_000,
    }
}

/// Turn an operation into a command, looking up the holds made so far.
fn command(op: &Op, inv: &Inventory, holds: &[String], step: usize) -> InventoryCommand {
    let key = |k: &Option<u8>, kind: &str, body: String| {
        k.map(|k| Idempotency { key: format!("k{k}"), fingerprint: format!("{kind}:{body}") })
    };
    // Mostly one of the last few holds (where the action is); sometimes one that does not exist.
    let hold_at = |i: usize| match holds.len() {
        0 => "nope".to_string(),
        _ if i >= 60 => "nope".to_string(),
        n => holds[n - 1 - i % n.min(6)].clone(),
    };
    let who = |hold: &str, owner: bool, user: usize| match (owner, inv.hold(hold)) {
        (true, Some(h)) => h.user.clone(),
        _ => USERS[user].to_string().into(),
    };
    // One of the bookings made so far (in id order), or one that does not exist.
    let bookings = inv.bookings();
    let booking_at = |i: usize| match bookings.len() {
        0 => "nope".to_string(),
        n if i < 14 => bookings[i % n].id.to_string(),
        _ => "nope".to_string(),
    };
    let tickets = inv.tickets();
    match op {
        Op::ReserveIds { user, tickets: picks, key: k } => {
            let ids: Vec<String> = picks.iter().map(|i| tickets[*i % tickets.len()].id.clone()).collect();
            InventoryCommand::Reserve {
                hold_id: format!("h{step}").into(),
                user: USERS[*user].into(),
                idempotency: key(k, "reserve", ids.join(",")),
                selection: Selection::Tickets(ids),
            }
        }
        Op::ReserveBest { user, general, quantity, key: k } => {
            let section = if *general { "GA" } else { "A" }.to_string();
            InventoryCommand::Reserve {
                hold_id: format!("h{step}").into(),
                user: USERS[*user].into(),
                idempotency: key(k, "best", format!("{section}{quantity}")),
                selection: Selection::Best { section, quantity: *quantity },
            }
        }
        Op::Pay { hold, owner, user, key: k } => {
            let hold_id = hold_at(*hold);
            InventoryCommand::BeginPayment {
                user: who(&hold_id, *owner, *user),
                idempotency: key(k, "pay", hold_id.clone()),
                hold_id: hold_id.into(),
                payment_token: "tok_visa".into(),
            }
        }
        Op::Confirm { hold, booking } => InventoryCommand::Confirm {
            hold_id: hold_at(*hold).into(),
            booking_id: format!("b{booking}").into(),
            payment_ref: "ch".into(),
        },
        Op::Fail { hold } => {
            InventoryCommand::PaymentFailed { hold_id: hold_at(*hold).into(), detail: "declined".into() }
        }
        Op::Release { hold, owner, user } => {
            let hold_id = hold_at(*hold);
            InventoryCommand::Release { user: who(&hold_id, *owner, *user), hold_id: hold_id.into() }
        }
        Op::Extend { hold, owner, user } => {
            let hold_id = hold_at(*hold);
            InventoryCommand::Extend { user: who(&hold_id, *owner, *user), hold_id: hold_id.into() }
        }
        Op::Expire => InventoryCommand::Expire,
        Op::Cancel => InventoryCommand::Cancel,
        Op::Join { user } => InventoryCommand::QueueJoin { user: USERS[*user].into() },
        Op::JoinMany { users } => {
            InventoryCommand::QueueJoinMany { users: users.iter().map(|u| UserId::from(USERS[*u])).collect() }
        }
        Op::Leave { user } => InventoryCommand::QueueLeave { user: USERS[*user].into() },
        Op::Admit { seed } => InventoryCommand::QueueAdmit { seed: *seed },
        Op::SalesEnd { at } => InventoryCommand::SetSalesEnd { at: *at },
        Op::Refund { booking, owner, admin, user, key: k } => {
            let b = booking_at(*booking);
            let buyer = inv.booking(&b).map(|b| b.user);
            let by = match (admin, owner, buyer) {
                (true, _, _) => Refunder::Admin("root".into()),
                (false, true, Some(buyer)) => Refunder::Buyer(buyer),
                _ => Refunder::Buyer(USERS[*user].into()),
            };
            InventoryCommand::BeginRefund {
                idempotency: key(k, "refund", b.clone()),
                booking_id: b.into(),
                by,
            }
        }
        Op::Refunded { booking } => {
            let b = booking_at(*booking);
            InventoryCommand::Refunded { refund_ref: format!("re_{b}"), booking_id: b.into() }
        }
        Op::RefundFailed { booking } => InventoryCommand::RefundFailed {
            booking_id: booking_at(*booking).into(),
            detail: "declined".into(),
        },
        Op::RefundUntil { at } => InventoryCommand::SetRefundUntil { at: *at },
        Op::CancelAndRefund => InventoryCommand::CancelAndRefund { admin: "root".into() },
        Op::WaitJoin { user, general, quantity } => InventoryCommand::WaitlistJoin {
            user: USERS[*user].into(),
            section: if *general { "GA" } else { "A" }.into(),
            quantity: *quantity,
            offer_hold_id: format!("w{step}").into(),
        },
        Op::WaitLeave { user } => InventoryCommand::WaitlistLeave { user: USERS[*user].into() },
        Op::Ack { keep } => {
            InventoryCommand::OutboxAck { upto: inv.last_notice_seq().saturating_sub(u64::from(*keep)) }
        }
    }
}

/// The outbox after one command (`before` -> `inv`, at `now`): the notices it made are
/// numbered on from the last, and say exactly what happened — one `booking.confirmed` per new
/// booking, one `booking.refunded` per booking refunded, one `hold.expired` per hold that ran
/// out (at its expiry), one `waitlist.offered` per new offer, `event.cancelled` and
/// `event.sold_out` on those transitions; an ack drops exactly what it names.
fn check_outbox(
    before: &Inventory,
    inv: &Inventory,
    cmd: &InventoryCommand,
    now: Millis,
    ctx: &str,
) -> Result<(), TestCaseError> {
    let from = before.last_notice_seq();
    let made: Vec<&Notice> = inv.outbox().filter(|n| n.seq > from).collect();
    let seqs: Vec<u64> = made.iter().map(|n| n.seq).collect();
    prop_assert_eq!(
        seqs,
        (from + 1..=inv.last_notice_seq()).collect::<Vec<_>>(),
        "{}: notices numbered on",
        ctx
    );
    let of = |kind: NoticeKind| -> Vec<&Notice> { made.iter().copied().filter(|n| n.kind == kind).collect() };
    let booking_ids = |kind: NoticeKind| -> BTreeSet<BookingId> {
        of(kind)
            .iter()
            .filter_map(|n| match &n.data {
                NoticeData::Booking(b) => Some(b.id.clone()),
                _ => None,
            })
            .collect()
    };
    let hold_ids = |kind: NoticeKind| -> BTreeSet<HoldId> {
        of(kind)
            .iter()
            .filter_map(|n| match &n.data {
                NoticeData::Hold(h) => Some(h.id.clone()),
                _ => None,
            })
            .collect()
    };
    let new_bookings: BTreeSet<BookingId> =
        inv.bookings().into_iter().filter(|b| before.booking(&b.id).is_none()).map(|b| b.id).collect();
    prop_assert_eq!(booking_ids(NoticeKind::BookingConfirmed), new_bookings, "{}: booking.confirmed", ctx);
    prop_assert_eq!(
        of(NoticeKind::BookingConfirmed).len(),
        booking_ids(NoticeKind::BookingConfirmed).len(),
        "{}",
        ctx
    );
    let refunded: BTreeSet<BookingId> = inv
        .bookings()
        .into_iter()
        .filter(|b| b.status == BookingStatus::Refunded)
        .filter(|b| before.booking(&b.id).is_none_or(|x| x.status != BookingStatus::Refunded))
        .map(|b| b.id)
        .collect();
    prop_assert_eq!(booking_ids(NoticeKind::BookingRefunded), refunded, "{}: booking.refunded", ctx);
    // Live before, ended expired now (by expiry at the stamp, or a failed payment whose hold
    // had run out meanwhile).
    let ran_out: BTreeSet<HoldId> = before
        .live_holds()
        .into_iter()
        .filter(|h| inv.hold(&h.id).is_some_and(|x| x.status == HoldStatus::Expired))
        .map(|h| h.id)
        .collect();
    prop_assert_eq!(hold_ids(NoticeKind::HoldExpired), ran_out, "{}: hold.expired", ctx);
    for n in of(NoticeKind::HoldExpired) {
        if let NoticeData::Hold(h) = &n.data {
            prop_assert_eq!(n.at, h.expires_at, "{}: an expiry is noticed at its own time", ctx);
        }
    }
    let offers: BTreeSet<HoldId> = inv
        .waitlist(now)
        .into_iter()
        .filter_map(|e| e.offer)
        .filter(|h| before.hold(&h.id).is_none())
        .map(|h| h.id)
        .collect();
    prop_assert!(hold_ids(NoticeKind::WaitlistOffered).is_superset(&offers), "{}: waitlist.offered", ctx);
    let cancelled = usize::from(inv.cancelled() && !before.cancelled());
    prop_assert_eq!(of(NoticeKind::EventCancelled).len(), cancelled, "{}: event.cancelled", ctx);
    let capacity = inv.tickets().len() as u64;
    let sold_out =
        usize::from(inv.availability(now).sold == capacity && before.availability(now).sold < capacity);
    prop_assert_eq!(of(NoticeKind::EventSoldOut).len(), sold_out, "{}: event.sold_out", ctx);
    if let InventoryCommand::OutboxAck { upto } = cmd {
        prop_assert!(inv.outbox().all(|n| n.seq > *upto), "{}: acked notices stay", ctx);
        let kept = before.outbox().filter(|n| n.seq > *upto).count() + made.len();
        prop_assert_eq!(inv.outbox_len(), kept, "{}: an ack dropped more than it named", ctx);
    }
    Ok(())
}

type Log = Vec<(InventoryCommand, Millis, InventoryReply, Vec<TicketChange>)>;

/// Run the log, checking every property after every command; returns the log.
fn run(
    queue: bool,
    on_sale_at: Millis,
    hold_ms: u64,
    cancel_at: Option<usize>,
    steps: &[(Op, i64)],
) -> Result<(Inventory, Log), TestCaseError> {
    let mut inv = Inventory::default();
    let mut log: Log = Vec::new();
    let first = InventoryCommand::Setup(setup(queue, on_sale_at, hold_ms));
    let (reply, changes) = inv.apply(first.clone(), 0);
    prop_assert_eq!(&reply, &Ok(Outcome::SetUp));
    log.push((first, 0, reply, changes));
    let capacity = inv.tickets().len() as u64;
    let mut holds: Vec<String> = Vec::new();
    let mut stamp: i64 = 0;
    for (step, (op, dt)) in steps.iter().enumerate() {
        stamp = (stamp + dt).max(0);
        let stamped = stamp as Millis;
        let op = match cancel_at {
            Some(at) if at == step && step % 2 == 0 => &Op::Cancel,
            Some(at) if at == step => &Op::CancelAndRefund,
            _ => op,
        };
        let cmd = command(op, &inv, &holds, step);
        let before = inv.clone();
        let now = before.now().max(stamped);
        let (reply, changes) = inv.apply(cmd.clone(), stamped);
        let ctx = format!("step {step}: {cmd:?} at {stamped} -> {reply:?}");

        // Time never runs backwards.
        prop_assert_eq!(inv.now(), now, "{}", ctx);
        // A batch of joins is exactly its joins one by one at the same time.
        if let InventoryCommand::QueueJoinMany { users } = &cmd {
            check_join_many(&before, users, stamped, &reply, &inv, &ctx)?;
        }
        // Every invariant, from scratch.
        if let Err(e) = inv.check_invariants() {
            return Err(TestCaseError::fail(format!("{ctx}: {e}")));
        }
        // Conservation, by the counters and by the per-ticket statuses.
        let a = inv.availability(now);
        prop_assert_eq!(a.available + a.held + a.sold, capacity, "{}", ctx);
        let statuses: Vec<TicketStatus> = inv.ticket_statuses(now).into_iter().map(|(_, s)| s).collect();
        let count = |s: TicketStatus| statuses.iter().filter(|x| **x == s).count() as u64;
        prop_assert_eq!(
            (count(TicketStatus::Available), count(TicketStatus::Held), count(TicketStatus::Sold)),
            (a.available, a.held, a.sold),
            "{}",
            ctx
        );
        // `next_lapse_after` (the seat-map cache keeps a body until then): the statuses read
        // the same until just before it, and differ at it; with `None`, at any later time.
        let reads = |t: Millis| -> Vec<TicketStatus> { inv.statuses(t) };
        match inv.next_lapse_after(now) {
            Some(lapse) => {
                prop_assert!(lapse > now, "{}: lapse {} not after {}", ctx, lapse, now);
                prop_assert_eq!(&reads(lapse - 1), &statuses, "{}: changed before the lapse {}", ctx, lapse);
                prop_assert_ne!(&reads(lapse), &statuses, "{}: nothing lapsed at {}", ctx, lapse);
            }
            None => prop_assert_eq!(
                &reads(now.saturating_add(86_400_000)),
                &statuses,
                "{}: a lapse unreported",
                ctx
            ),
        }
        // Never sold twice: a ticket is in one booking at most, but for bookings refunded
        // (their seats went back on sale), so a refunded seat is sold at most once again.
        // Every ticket of a live booking reads sold.
        let mut sold = BTreeSet::new();
        for b in inv.bookings().into_iter().filter(|b| b.status != BookingStatus::Refunded) {
            for t in &b.tickets {
                prop_assert!(sold.insert(t.clone()), "{}: {} in two live bookings", ctx, t);
                prop_assert_eq!(
                    inv.ticket_status(t, now),
                    Some(TicketStatus::Sold),
                    "{}: {} not sold",
                    ctx,
                    t
                );
            }
        }
        // A booking changes only by a refund command, along Confirmed -> RefundPending ->
        // (Confirmed | Refunded); a refunded booking never changes again (refunded once).
        for b in before.bookings() {
            let after = inv.booking(&b.id).expect("bookings are never forgotten");
            let targeted = match &cmd {
                InventoryCommand::BeginRefund { booking_id, .. }
                | InventoryCommand::Refunded { booking_id, .. }
                | InventoryCommand::RefundFailed { booking_id, .. } => *booking_id == b.id,
                InventoryCommand::CancelAndRefund { .. } => true,
                _ => false,
            };
            if !targeted || b.status == BookingStatus::Refunded {
                prop_assert_eq!(&after, &b, "{}: booking changed", ctx);
                continue;
            }
            let moved = (b.status, after.status);
            prop_assert!(
                matches!(
                    moved,
                    (BookingStatus::Confirmed, BookingStatus::Confirmed | BookingStatus::RefundPending)
                        | (BookingStatus::RefundPending, _)
                ),
                "{}: booking {} went {:?}",
                ctx,
                b.id,
                moved
            );
            prop_assert_eq!(
                (&after.tickets, &after.user, &after.payment_ref),
                (&b.tickets, &b.user, &b.payment_ref)
            );
            if after.status == BookingStatus::Refunded {
                prop_assert!(
                    matches!(cmd, InventoryCommand::Refunded { .. }),
                    "{}: refunded by {:?}",
                    ctx,
                    cmd
                );
                // Its seats came back: on sale, or offered to the waiting list by this command
                // (nothing can sell them in the same command).
                let offered: BTreeSet<String> = inv
                    .waitlist(now)
                    .into_iter()
                    .filter_map(|e| e.offer)
                    .filter(|h| h.created_at == now && before.hold(&h.id).is_none())
                    .flat_map(|h| h.tickets)
                    .collect();
                for t in &after.tickets {
                    let want = if offered.contains(t) { TicketStatus::Held } else { TicketStatus::Available };
                    prop_assert_eq!(inv.ticket_status(t, now), Some(want), "{}", ctx);
                }
            }
        }
        // Extensions stay within their bounds.
        for h in inv.live_holds() {
            prop_assert!(
                h.extensions <= HOLD_EXTENSIONS_MAX,
                "{}: {} extended {} times",
                ctx,
                h.id,
                h.extensions
            );
            prop_assert!(h.expires_at <= h.created_at + HOLD_TOTAL_MS_MAX, "{}: {} past the cap", ctx, h.id);
        }
        // Per-user limit, counted from the public records.
        for user in USERS {
            let held: usize = inv
                .live_holds()
                .into_iter()
                .filter(|h| h.user == user)
                .filter(|h| matches!(h.status_at(now), HoldStatus::Active | HoldStatus::Confirming))
                .map(|h| h.tickets.len())
                .sum();
            let bought: usize = inv
                .bookings_of(user)
                .iter()
                .filter(|b| b.status != BookingStatus::Refunded)
                .map(|b| b.tickets.len())
                .sum();
            prop_assert!(held + bought <= LIMIT as usize, "{}: {} has {} + {}", ctx, user, held, bought);
        }
        // The changes cover every ticket whose public status moved, with its new status.
        let old: Vec<TicketStatus> = before.ticket_statuses(now).into_iter().map(|(_, s)| s).collect();
        let listed: BTreeMap<&str, TicketStatus> =
            changes.iter().map(|c| (c.id.as_str(), c.status)).collect();
        prop_assert_eq!(listed.len(), changes.len(), "{}: a ticket listed twice", ctx);
        for (i, spec) in inv.tickets().iter().enumerate() {
            match listed.get(spec.id.as_str()) {
                Some(s) => prop_assert_eq!(*s, statuses[i], "{}: change of {} is stale", ctx, spec.id),
                None => prop_assert_eq!(old[i], statuses[i], "{}: change of {} not reported", ctx, spec.id),
            }
        }
        let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|id| inv.tickets().iter().position(|t| t.id == *id));
        prop_assert_eq!(ids, sorted, "{}: changes not in ticket order", ctx);

        match &cmd {
            InventoryCommand::BeginPayment { hold_id, .. } => {
                // A hold that is expired (or released) at the log time never begins payment.
                if let Some(h) = before.hold(hold_id) {
                    if before.cancelled() && h.status_at(now) == HoldStatus::Active {
                        prop_assert!(reply.is_err(), "{}: payment began on a cancelled event", ctx);
                    }
                    if matches!(h.status_at(now), HoldStatus::Expired | HoldStatus::Released) {
                        prop_assert!(reply.is_err(), "{}: payment began on a dead hold", ctx);
                        // (It may be forgotten by now: an ended hold is kept a while only.)
                        prop_assert_ne!(
                            inv.hold(hold_id).map(|h| h.status),
                            Some(HoldStatus::Confirming),
                            "{}",
                            ctx
                        );
                    }
                }
            }
            InventoryCommand::Confirm { hold_id, .. } => {
                let was = before.hold(hold_id).map(|h| h.status);
                match was {
                    Some(HoldStatus::Confirming) | Some(HoldStatus::Confirmed) => {}
                    // Without a running payment (expired, active, released, unknown) no sale.
                    _ => {
                        prop_assert!(reply.is_err(), "{}: confirm without payment", ctx);
                        prop_assert_eq!(inv.bookings().len(), before.bookings().len(), "{}", ctx);
                    }
                }
                // (A confirm repeated after the booking's refund answers the refunded booking.)
                if let (Ok(Outcome::Booked(b)), true) = (&reply, was != Some(HoldStatus::Confirmed)) {
                    for t in &b.tickets {
                        prop_assert_eq!(inv.ticket_status(t, now), Some(TicketStatus::Sold), "{}", ctx);
                    }
                }
                // A paid hold always ends sold: a confirming hold confirms past its expiry.
                if was == Some(HoldStatus::Confirming) && before.booking(booking_of(&cmd)).is_none() {
                    prop_assert!(matches!(reply, Ok(Outcome::Booked(_))), "{}: paid hold not sold", ctx);
                }
            }
            InventoryCommand::Reserve { hold_id, .. } => {
                if let Ok(Outcome::Hold(h)) = &reply {
                    // Sold only inside the sales window as it stood at the log time.
                    let window = before.setup().map(|s| (s.on_sale_at, s.sales_end));
                    if h.id == *hold_id && h.created_at == now {
                        let (opens, closes) = window.expect("set up");
                        prop_assert!(opens <= now && now < closes, "{}: sold outside {:?}", ctx, window);
                    }
                    if h.id == *hold_id {
                        holds.push(hold_id.to_string());
                        // Every ticket was available at the log time and is now held by it.
                        for t in &h.tickets {
                            let i = before.ticket_index(t).expect("a held ticket exists") as usize;
                            prop_assert_eq!(old[i], TicketStatus::Available, "{}: took {}", ctx, t);
                            prop_assert_eq!(statuses[i], TicketStatus::Held, "{}", ctx);
                        }
                        prop_assert_eq!(h.expires_at, now + hold_ms, "{}", ctx);
                    }
                }
                if matches!(reply, Err(Rejection::QueueAdmissionRequired)) {
                    prop_assert!(queue, "{}", ctx);
                }
                // Seat finding by the indexes picks what a scan of the seats would.
                if let InventoryCommand::Reserve {
                    selection: Selection::Best { section, quantity }, ..
                } = &cmd
                {
                    // Seats that lapsed at the start of this command went to the waiting
                    // list first: offers made now are not there for the reserve.
                    let mut seen = old.clone();
                    for e in inv.waitlist(now) {
                        if let Some(h) = e.offer.filter(|h| before.hold(&h.id).is_none()) {
                            for t in &h.tickets {
                                seen[before.ticket_index(t).expect("a ticket") as usize] = TicketStatus::Held;
                            }
                        }
                    }
                    let want = best_by_scan(&before, section, *quantity, &seen);
                    match &reply {
                        Ok(Outcome::Hold(h)) if h.id == hold_id_of(&cmd) => {
                            prop_assert_eq!(
                                Some(h.tickets.clone()),
                                want,
                                "{}: best available differs from a scan",
                                ctx
                            )
                        }
                        Err(Rejection::TicketUnavailable { .. }) => {
                            prop_assert_eq!(None, want, "{}: a scan finds seats the indexes missed", ctx)
                        }
                        _ => {}
                    }
                }
            }
            InventoryCommand::BeginRefund { booking_id, by, idempotency } => {
                if let (Some(b), None) = (before.booking(booking_id), idempotency) {
                    let until = before.setup().expect("set up").refund_until;
                    match by {
                        Refunder::Buyer(u) if *u != b.user => {
                            prop_assert_eq!(&reply, &Err(Rejection::Forbidden), "{}", ctx)
                        }
                        _ if b.status == BookingStatus::Refunded => {
                            prop_assert!(matches!(reply, Err(Rejection::NotRefundable { .. })), "{}", ctx)
                        }
                        _ if b.status == BookingStatus::RefundPending => {
                            prop_assert_eq!(&reply, &Ok(Outcome::Booked(b.clone())), "{}", ctx)
                        }
                        Refunder::Buyer(_) if now >= until => {
                            prop_assert!(
                                matches!(reply, Err(Rejection::NotRefundable { .. })),
                                "{}: past the window",
                                ctx
                            )
                        }
                        _ => prop_assert!(
                            matches!(&reply, Ok(Outcome::Booked(x)) if x.status == BookingStatus::RefundPending),
                            "{}: a refundable booking was not pinned",
                            ctx
                        ),
                    }
                }
            }
            _ => {}
        }
        // The waiting list.
        // Seats that lapsed at this stamp come back (and are offered) before the command
        // runs: check that pass alone, then the command's own.
        let mut lapsed = before.clone();
        let _ = lapsed.apply(InventoryCommand::Expire, stamped);
        check_waitlist(&before, &lapsed, now, &ctx, &mut holds)?;
        check_waitlist(&lapsed, &inv, now, &ctx, &mut holds)?;
        check_outbox(&before, &inv, &cmd, now, &ctx)?;
        // Pending refunds are exactly the bookings in RefundPending (what a new leader finishes).
        let pending: Vec<BookingId> = inv
            .bookings()
            .into_iter()
            .filter(|b| b.status == BookingStatus::RefundPending)
            .map(|b| b.id)
            .collect();
        let listed: Vec<BookingId> = inv.refunding().into_iter().map(|b| b.id).collect();
        prop_assert_eq!(pending, listed, "{}: refunding index", ctx);
        // The whole state survives a JSON round trip (stand-in for the snapshot encoding).
        let json = serde_json::to_string(&inv).map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
        let back: Inventory =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
        prop_assert_eq!(&back, &inv, "{}: JSON round trip", ctx);

        log.push((cmd, stamped, reply, changes));
    }
    Ok((inv, log))
}

/// Tickets `user` has at `now`, from the public records (what the per-user limit counts).
fn tickets_of(inv: &Inventory, user: &str, now: Millis) -> u64 {
    let held: usize = inv
        .live_holds()
        .into_iter()
        .filter(|h| h.user == user)
        .filter(|h| matches!(h.status_at(now), HoldStatus::Active | HoldStatus::Confirming))
        .map(|h| h.tickets.len())
        .sum();
    let bought: usize = inv
        .bookings_of(user)
        .iter()
        .filter(|b| b.status != BookingStatus::Refunded)
        .map(|b| b.tickets.len())
        .sum();
    (held + bought) as u64
}

/// The waiting list after one command (`before` -> `inv`, at `now`):
/// - an offer made by this command is a live hold of the entry's quantity in its section,
///   for the event's offer time, made inside the sales window of a live event;
/// - FIFO (general section): an entry still waiting that joined before one offered by
///   this command did not fit (its user at the limit, or more than the places left plus
///   those offered after it);
/// - nothing is left on the table: no waiting entry fits the free seats of its section
///   (a seated one: by a scan of the rows) while sales are open;
/// - a cancelled event has no waiting entries.
///
/// Offer holds made here join `holds`, so later steps pay, confirm and release them.
fn check_waitlist(
    before: &Inventory,
    inv: &Inventory,
    now: Millis,
    ctx: &str,
    holds: &mut Vec<String>,
) -> Result<(), TestCaseError> {
    let setup = inv.setup().expect("set up");
    let was_offered: BTreeSet<UserId> = before
        .waitlist(now)
        .into_iter()
        .filter(|e| e.status == WaitlistStatus::Offered)
        .map(|e| e.user)
        .collect();
    let list = inv.waitlist(now);
    let statuses = inv.statuses(now);
    let free_in = |section: &str| {
        inv.tickets()
            .iter()
            .zip(&statuses)
            .filter(|(t, s)| t.section == section && **s == TicketStatus::Available)
            .count() as u64
    };
    let open = !inv.cancelled() && setup.on_sale_at <= now && now < setup.sales_end;
    // Offers made before the command ran (seats that lapsed) saw the window before it.
    let was_open =
        before.setup().is_some_and(|s| !before.cancelled() && s.on_sale_at <= now && now < s.sales_end);
    for (i, e) in list.iter().enumerate() {
        if e.status == WaitlistStatus::Offered && !was_offered.contains(&e.user) {
            let hold = e.offer.as_ref().expect("an offered entry has its hold");
            holds.push(hold.id.to_string());
            prop_assert!(open || was_open, "{}: offer {} outside the sales window", ctx, hold.id);
            prop_assert_eq!(&hold.user, &e.user, "{}", ctx);
            prop_assert_eq!(hold.tickets.len(), e.quantity as usize, "{}", ctx);
            prop_assert!(
                hold.tickets.iter().all(|t| t.starts_with(&format!("{}-", e.section))),
                "{}: offer {} outside {}",
                ctx,
                hold.id,
                e.section
            );
            prop_assert_eq!(
                (hold.created_at, hold.expires_at),
                (now, now + setup.waitlist_offer_ms),
                "{}",
                ctx
            );
            if e.section == "GA" {
                for a in list[..i].iter().filter(|a| a.section == "GA" && a.status == WaitlistStatus::Waiting)
                {
                    let later: u64 = list
                        .iter()
                        .skip_while(|x| x.user != a.user)
                        .filter(|x| {
                            x.section == "GA"
                                && x.status == WaitlistStatus::Offered
                                && !was_offered.contains(&x.user)
                        })
                        .map(|x| u64::from(x.quantity))
                        .sum();
                    let at_limit = tickets_of(inv, &a.user, now) + u64::from(a.quantity) > u64::from(LIMIT);
                    prop_assert!(
                        at_limit || u64::from(a.quantity) > free_in("GA") + later,
                        "{}: {} offered before {}, who joined first and fits",
                        ctx,
                        e.user,
                        a.user
                    );
                }
            }
        }
        if e.status == WaitlistStatus::Waiting {
            prop_assert!(!inv.cancelled(), "{}: {} waits on a cancelled event", ctx, e.user);
            let at_limit = tickets_of(inv, &e.user, now) + u64::from(e.quantity) > u64::from(LIMIT);
            if open && !at_limit {
                prop_assert!(
                    best_by_scan(inv, &e.section, e.quantity, &statuses).is_none(),
                    "{}: {} waits for {} in {} while they are free",
                    ctx,
                    e.user,
                    e.quantity,
                    e.section
                );
            }
        }
    }
    Ok(())
}

fn hold_id_of(cmd: &InventoryCommand) -> &str {
    match cmd {
        InventoryCommand::Reserve { hold_id, .. } => hold_id,
        _ => "",
    }
}

/// The best-available rule by brute force over the statuses `seen` (layout order): in a
/// seated section the first row (front first) with `quantity` adjacent free seats, there the
/// placement leaving no single free seat beside it if any, then closest to the row's centre,
/// then the lower seat; in a general section the lowest-numbered free tickets.
fn best_by_scan(inv: &Inventory, section: &str, quantity: u32, seen: &[TicketStatus]) -> Option<Vec<String>> {
    let layout = inv.layout();
    let s = layout.section(section)?;
    let free = |i: u32| seen[i as usize] == TicketStatus::Available;
    let picked: Vec<u32> = match &s.tickets {
        SectionTickets::General { start, len } => {
            let got: Vec<u32> = (*start..start + len).filter(|i| free(*i)).take(quantity as usize).collect();
            (got.len() == quantity as usize).then_some(got)?
        }
        SectionTickets::Seated { rows, .. } => rows.iter().find_map(|row| {
            let mut best: Option<(bool, u32, u32)> = None;
            for p in 0..(row.len + 1).saturating_sub(quantity) {
                if !(p..p + quantity).all(|o| free(row.start + o)) {
                    continue;
                }
                let left = (0..p).rev().take_while(|o| free(row.start + o)).count();
                let right = (p + quantity..row.len).take_while(|o| free(row.start + o)).count();
                let key = (left == 1 || right == 1, (2 * p + quantity).abs_diff(row.len), row.start + p);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
            best.map(|(_, _, first)| (first..first + quantity).collect())
        })?,
    };
    Some(picked.into_iter().map(|i| layout.id(i)).collect())
}

/// `QueueJoinMany { users }` applied to `before` at `at` gave `reply` and `after`: the same as
/// each user's `QueueJoin` in order at `at` (answers one for one, same state).
fn check_join_many(
    before: &Inventory,
    users: &[UserId],
    at: Millis,
    reply: &InventoryReply,
    after: &Inventory,
    ctx: &str,
) -> Result<(), TestCaseError> {
    let mut one_by_one = before.clone();
    let mut answers = Vec::new();
    for user in users {
        let (r, _) = one_by_one.apply(InventoryCommand::QueueJoin { user: user.clone() }, at);
        answers.push(match r {
            Ok(Outcome::Queue(view)) => Ok(view),
            Ok(other) => return Err(TestCaseError::fail(format!("{ctx}: a join answered {other:?}"))),
            Err(rejection) => Err(rejection),
        });
    }
    if users.is_empty() {
        // No join at all: only the time moves (and what lapses by then), as with any command.
        let _ = one_by_one.apply(InventoryCommand::Expire, at);
    }
    match reply {
        Err(rejection) => {
            // Refused as a whole only before setup; never once set up.
            prop_assert_eq!(rejection, &Rejection::not_found("event"), "{}", ctx);
        }
        Ok(Outcome::QueueMany(got)) => {
            prop_assert_eq!(got, &answers, "{}: answers differ from one by one", ctx)
        }
        Ok(other) => return Err(TestCaseError::fail(format!("{ctx}: answered {other:?}"))),
    }
    prop_assert_eq!(after, &one_by_one, "{}: state differs from the joins one by one", ctx);
    Ok(())
}

/// Replay from scratch: same replies and changes, same state.
fn check_replay(inv: &Inventory, log: &Log) -> Result<(), TestCaseError> {
    let mut fresh = Inventory::default();
    for (i, (cmd, at, reply, changes)) in log.iter().enumerate() {
        let (r, c) = fresh.apply(cmd.clone(), *at);
        prop_assert_eq!(&r, reply, "replay reply differs at {}", i);
        prop_assert_eq!(&c, changes, "replay changes differ at {}", i);
    }
    prop_assert_eq!(&fresh, inv);
    Ok(())
}

fn booking_of(cmd: &InventoryCommand) -> &str {
    match cmd {
        InventoryCommand::Confirm { booking_id, .. } => booking_id,
        _ => "",
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_waiting_list_is_fifo_and_leaves_nothing_free(hold_ms in prop_oneof![Just(10_000u64), Just(1_200_000u64)], cancel_at in prop::option::weighted(0.15, 0usize..80), steps in steps_of(waitlist_op())) {
        let (inv, log) = run(false, 0, hold_ms, cancel_at, &steps)?;
        check_replay(&inv, &log)?;
    }

    #[test]
    fn invariants_hold_on_random_logs(queue in prop::bool::weighted(0.3), on_sale in prop_oneof![3 => Just(0u64), 1 => 0u64..20_000], hold_ms in prop_oneof![3 => Just(10_000u64), 1 => Just(1_200_000u64)], cancel_at in prop::option::weighted(0.3, 0usize..80), steps in steps()) {
        let (inv, log) = run(queue, on_sale, hold_ms, cancel_at, &steps)?;
        check_replay(&inv, &log)?;
    }
}
