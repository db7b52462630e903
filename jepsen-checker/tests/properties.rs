//! Property tests: histories made by a simple sequential simulator of the store must always
//! check valid; the same histories with one result mutated are usually invalid, and a
//! mutation that creates a double sale always is. Plus the search budget.
//!
//! Every randomized test names its seed; `JEPSEN_SEED=<n> cargo test -p jepsen-tests --test
//! properties replay -- --nocapture` replays one and prints its history as a story.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jepsen_checker::checker::direct::{CheckName, FinalBooking, FinalRead, FinalState};
use jepsen_checker::checker::linear::Budget;
use jepsen_checker::history::{Op, OpFn, OpKind, OpValue, TicketStatus};
use jepsen_checker::{check_linearizable, LinearConfig, ModelConfig, Results, Validity};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Server time at which simulations start (ms), far from 0 so skew never underflows.
const EPOCH_MS: u64 = 1_000_000;

/// The simulated run: the history, what the end looks like, and the skew bound it used.
struct Sim {
    ops: Vec<Op>,
    fin: FinalState,
    skew_ms: u64,
    hold_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
enum HoldState {
    Active,
    Released,
    Confirmed,
    Expired,
}

struct HoldRec {
    ticket: usize,
    user: String,
    until: u64,
    state: HoldState,
    /// When a client learned the id (its reserve returned ok), real time.
    known_at: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum BookingState {
    Confirmed,
    /// Cancelled; the refund runs (the seat stays sold until it is done).
    RefundPending,
    Refunded,
}

struct BookingRec {
    ticket: usize,
    user: String,
    state: BookingState,
    /// When a client learned the id (its confirm returned ok), real time.
    known_at: Option<u64>,
}

/// The reference server: the rules of `tickets::inventory` for one-ticket ops, written
/// independently of the checker's model.
#[derive(Default)]
struct Server {
    /// Per ticket: the hold (id) holding it or the booking that sold it.
    holder: Vec<Option<String>>,
    sold: Vec<Option<String>>,
    holds: BTreeMap<String, HoldRec>,
    bookings: BTreeMap<String, BookingRec>,
}

enum Reply {
    Hold(String, u64),
    Booking(String),
    Status(TicketStatus),
    /// A cancel's answer: `refunded` with its reference, or `refund_pending`.
    Refund(&'static str, Option<String>),
    Error(u16, &'static str),
}

impl Server {
    fn status(&mut self, ticket: usize, now: u64) -> TicketStatus {
        if self.sold[ticket].is_some() {
            return TicketStatus::Sold;
        }
        match &self.holder[ticket] {
            Some(h) if self.holds[h].until > now => TicketStatus::Held,
            _ => TicketStatus::Available,
        }
    }

    fn reserve(&mut self, ticket: usize, user: &str, hold: String, now: u64, hold_ms: u64) -> Reply {
        if self.status(ticket, now) != TicketStatus::Available {
            return Reply::Error(409, "ticket_unavailable");
        }
        if let Some(old) = self.holder[ticket].take() {
            self.holds.get_mut(&old).unwrap().state = HoldState::Expired;
        }
        let until = now + hold_ms;
        let rec = HoldRec { ticket, user: user.to_string(), until, state: HoldState::Active, known_at: None };
        self.holds.insert(hold.clone(), rec);
        self.holder[ticket] = Some(hold.clone());
        Reply::Hold(hold, until)
    }

    /// The checks of confirm and release: `Ok` if the hold is live and the user's.
    fn live(&mut self, hold: &str, user: &str, now: u64) -> Result<usize, Reply> {
        let rec = self.holds.get_mut(hold).ok_or(Reply::Error(404, "not_found"))?;
        if rec.user != user {
            return Err(Reply::Error(403, "forbidden"));
        }
        if rec.state == HoldState::Active && rec.until <= now {
            rec.state = HoldState::Expired;
            let ticket = rec.ticket;
            if self.holder[ticket].as_deref() == Some(hold) {
                self.holder[ticket] = None;
            }
        }
        match rec.state {
            HoldState::Active => Ok(rec.ticket),
            HoldState::Expired => Err(Reply::Error(410, "hold_expired")),
            HoldState::Released | HoldState::Confirmed => Err(Reply::Error(409, "hold_not_active")),
        }
    }

    fn confirm(&mut self, hold: &str, user: &str, booking: String, now: u64) -> Reply {
        match self.live(hold, user, now) {
            Ok(ticket) => {
                self.holds.get_mut(hold).unwrap().state = HoldState::Confirmed;
                self.holder[ticket] = None;
                self.sold[ticket] = Some(booking.clone());
                let rec = BookingRec {
                    ticket,
                    user: user.to_string(),
                    state: BookingState::Confirmed,
                    known_at: None,
                };
                self.bookings.insert(booking.clone(), rec);
                Reply::Booking(booking)
            }
            Err(e) => e,
        }
    }

    /// The buyer cancels: refunded at once (`done`), or left pending for [`Server::finish_refund`].
    fn cancel(&mut self, booking: &str, user: &str, done: bool) -> Reply {
        let Some(rec) = self.bookings.get_mut(booking) else { return Reply::Error(404, "not_found") };
        if rec.user != user {
            return Reply::Error(403, "forbidden");
        }
        match rec.state {
            BookingState::Refunded => Reply::Error(409, "not_refundable"),
            BookingState::RefundPending => Reply::Refund("refund_pending", None),
            BookingState::Confirmed if done => {
                rec.state = BookingState::RefundPending;
                self.finish_refund(booking);
                Reply::Refund("refunded", Some(format!("re_{booking}")))
            }
            BookingState::Confirmed => {
                rec.state = BookingState::RefundPending;
                Reply::Refund("refund_pending", None)
            }
        }
    }

    /// A pending refund is done: the seat is back on sale.
    fn finish_refund(&mut self, booking: &str) {
        let rec = self.bookings.get_mut(booking).unwrap();
        assert_eq!(rec.state, BookingState::RefundPending);
        rec.state = BookingState::Refunded;
        assert_eq!(self.sold[rec.ticket].as_deref(), Some(booking));
        self.sold[rec.ticket] = None;
    }

    fn release(&mut self, hold: &str, user: &str, now: u64) -> Reply {
        match self.live(hold, user, now) {
            Ok(ticket) => {
                self.holds.get_mut(hold).unwrap().state = HoldState::Released;
                self.holder[ticket] = None;
                Reply::Status(TicketStatus::Available)
            }
            Err(e) => e,
        }
    }
}

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Run the reference server with random ops; each op's client window contains the server
/// instant it was applied at, widened by per-process clock offsets within `skew_ms`.
fn simulate(seed: u64) -> Sim {
    let mut rng = StdRng::seed_from_u64(seed);
    let tickets = rng.random_range(1..=3usize);
    let processes = rng.random_range(2..=6usize);
    let ops_target = rng.random_range(5..=60usize);
    let hold_ms = rng.random_range(20..=200u64);
    let skew_ms = if rng.random_bool(0.5) { 0 } else { rng.random_range(1..=30u64) };
    let window_ms = rng.random_range(0..=60u64);
    let info_p = rng.random_range(0.0..0.2);

    let offsets: Vec<i64> =
        (0..processes).map(|_| rng.random_range(-(skew_ms as i64)..=skew_ms as i64)).collect();
    let mut busy_until = vec![0u64; processes];
    let mut server = Server { holder: vec![None; tickets], sold: vec![None; tickets], ..Server::default() };
    // (real time, phase, seq, op): phase 0 invoke, 1 completion.
    let mut events: Vec<(u64, u8, usize, Op)> = Vec::new();
    let mut now = EPOCH_MS;
    let mut made = 0;
    let mut ids = 0;
    while made < ops_target {
        now += rng.random_range(0..=hold_ms / 3);
        let free: Vec<usize> = (0..processes).filter(|p| busy_until[*p] < now).collect();
        if free.is_empty() {
            continue;
        }
        let p = free[rng.random_range(0..free.len())];
        let inv_real = rng.random_range(now.saturating_sub(window_ms).max(busy_until[p] + 1)..=now);
        let ret_real = rng.random_range(now..=now + window_ms);
        busy_until[p] = ret_real;
        made += 1;
        ids += 1;

        // Refunds left pending finish on their own, some time later.
        let pending: Vec<String> = server
            .bookings
            .iter()
            .filter(|(_, b)| b.state == BookingState::RefundPending)
            .map(|(id, _)| id.clone())
            .collect();
        for b in pending {
            if rng.random_bool(0.3) {
                server.finish_refund(&b);
            }
        }
        let ticket = rng.random_range(0..tickets);
        let known_bookings: Vec<String> = server
            .bookings
            .iter()
            .filter(|(_, b)| b.known_at.is_some_and(|k| k < inv_real) && b.ticket == ticket)
            .map(|(id, _)| id.clone())
            .collect();
        let known: Vec<String> = server
            .holds
            .iter()
            .filter(|(_, r)| r.known_at.is_some_and(|k| k < inv_real) && r.ticket == ticket)
            .map(|(h, _)| h.clone())
            .collect();
        let roll = rng.random_range(0..100);
        let f = match roll {
            0..40 => OpFn::Reserve,
            40..70 if !known.is_empty() => OpFn::Confirm,
            70..80 if !known.is_empty() => OpFn::Release,
            80..90 if !known_bookings.is_empty() => OpFn::Cancel,
            _ => OpFn::Read,
        };
        let mut user = USERS[rng.random_range(0..USERS.len())].to_string();
        let mut hold_id = None;
        if matches!(f, OpFn::Confirm | OpFn::Release) {
            let h = known[rng.random_range(0..known.len())].clone();
            if rng.random_bool(0.9) {
                user = server.holds[&h].user.clone();
            }
            hold_id = Some(h);
        }
        let mut booking_id = None;
        if f == OpFn::Cancel {
            let b = known_bookings[rng.random_range(0..known_bookings.len())].clone();
            if rng.random_bool(0.9) {
                user = server.bookings[&b].user.clone();
            }
            booking_id = Some(b);
        }
        let info = f != OpFn::Read && rng.random_bool(info_p);
        // An unknown outcome took effect or was lost, at random.
        let applied = !info || rng.random_bool(0.5);
        let reply = if !applied {
            None
        } else {
            Some(match f {
                OpFn::Reserve => server.reserve(ticket, &user, format!("h{ids}"), now, hold_ms),
                OpFn::Confirm => server.confirm(hold_id.as_ref().unwrap(), &user, format!("b{ids}"), now),
                OpFn::Release => server.release(hold_id.as_ref().unwrap(), &user, now),
                OpFn::Read => Reply::Status(server.status(ticket, now)),
                OpFn::Cancel => server.cancel(booking_id.as_ref().unwrap(), &user, rng.random_bool(0.6)),
            })
        };
        let (kind, value) = match (info, reply) {
            (true, _) | (_, None) => {
                (OpKind::Info, Some(OpValue::Error { http_status: 0, code: "timeout".into() }))
            }
            (false, Some(Reply::Hold(h, until))) => {
                server.holds.get_mut(&h).unwrap().known_at = Some(ret_real);
                (OpKind::Ok, Some(OpValue::Hold { hold_id: h, expires_at_ms: until }))
            }
            (false, Some(Reply::Booking(b))) => {
                server.bookings.get_mut(&b).unwrap().known_at = Some(ret_real);
                (OpKind::Ok, Some(OpValue::Booking { booking_id: b }))
            }
            (false, Some(Reply::Refund(status, refund_ref))) => {
                (OpKind::Ok, Some(OpValue::Refund { status: status.into(), refund_ref }))
            }
            (false, Some(Reply::Status(s))) if f == OpFn::Read => {
                (OpKind::Ok, Some(OpValue::Status { status: s }))
            }
            (false, Some(Reply::Status(_))) => (OpKind::Ok, None),
            (false, Some(Reply::Error(http_status, code))) => {
                (OpKind::Fail, Some(OpValue::Error { http_status, code: code.into() }))
            }
        };
        let clock = |real: u64| (real as i64 + offsets[p]) as u64;
        let invoke = Op {
            index: 0,
            process: p as u64,
            node: 0,
            kind: OpKind::Invoke,
            f,
            ticket: format!("T{ticket}"),
            hold_id: hold_id.clone(),
            user: Some(user.clone()),
            booking_id: booking_id.clone(),
            idempotency_key: None,
            value: None,
            time_ms: clock(inv_real),
            latency_ms: None,
        };
        let completion = Op {
            kind,
            value,
            time_ms: clock(ret_real),
            latency_ms: Some(ret_real - inv_real),
            ..invoke.clone()
        };
        events.push((inv_real, 0, events.len(), invoke));
        events.push((ret_real, 1, events.len(), completion));
    }
    events.sort_by_key(|(t, phase, seq, _)| (*t, *phase, *seq));
    let ops: Vec<Op> =
        events.into_iter().enumerate().map(|(i, (_, _, _, op))| Op { index: i as u64, ..op }).collect();

    let end = now + 2 * hold_ms;
    let reads = (0..tickets)
        .map(|t| FinalRead {
            ticket: format!("T{t}"),
            status: server.status(t, end),
            booking_id: server.sold[t].clone(),
        })
        .collect();
    let bookings = server
        .bookings
        .iter()
        .map(|(id, b)| FinalBooking {
            booking_id: id.clone(),
            status: match b.state {
                BookingState::Confirmed => "confirmed",
                BookingState::RefundPending => "refund_pending",
                BookingState::Refunded => "refunded",
            }
            .into(),
            refund_ref: (b.state == BookingState::Refunded).then(|| format!("re_{id}")),
        })
        .collect();
    Sim {
        ops,
        fin: FinalState { capacity: Some(tickets as u64), reads, counts: None, bookings },
        skew_ms,
        hold_ms,
    }
}

fn config(skew_ms: u64) -> LinearConfig {
    LinearConfig { model: ModelConfig { skew_ms }, ..LinearConfig::default() }
}

fn story(ops: &[Op]) -> String {
    ops.iter().map(|op| serde_json::to_string(op).unwrap() + "\n").collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the simulator produced is valid for every checker.
    #[test]
    fn simulated_histories_are_valid(seed in any::<u64>()) {
        let sim = simulate(seed);
        let r = Results::compute(&sim.ops, &sim.fin, &config(sim.skew_ms)).unwrap();
        prop_assert_eq!(r.valid, Validity::Valid, "seed {}: {}\n{}", seed, r.summary(), story(&sim.ops));
    }
}

/// Seeds for the mutation tests: fixed, so their counts are stable.
const MUTATION_SEEDS: std::ops::Range<u64> = 0..400;

/// Flip a failed or unknown confirm of another hold on a sold ticket into an ok: a double
/// sale. Both the linearizability check and `no_double_sale` must catch every one. (Tickets
/// with a cancel are left out: there a refund may have freed the seat in between, so the
/// flip is not always a double sale; the refund stories in `tests/scenarios.rs` cover them.)
#[test]
fn a_mutation_creating_a_double_sale_is_always_caught() {
    let mut tried = 0;
    for seed in MUTATION_SEEDS {
        let mut sim = simulate(seed);
        let cancelled: std::collections::BTreeSet<String> =
            sim.ops.iter().filter(|op| op.f == OpFn::Cancel).map(|op| op.ticket.clone()).collect();
        let sold_by: BTreeMap<String, String> = sim
            .ops
            .iter()
            .filter(|op| op.kind == OpKind::Ok && op.f == OpFn::Confirm)
            .map(|op| (op.ticket.clone(), find_hold(&sim.ops, op)))
            .collect();
        let target = sim.ops.iter().position(|op| {
            op.f == OpFn::Confirm
                && matches!(op.kind, OpKind::Fail | OpKind::Info)
                && !cancelled.contains(&op.ticket)
                && sold_by.get(&op.ticket).is_some_and(|h| *h != find_hold(&sim.ops, op))
        });
        let Some(i) = target else { continue };
        tried += 1;
        sim.ops[i].kind = OpKind::Ok;
        sim.ops[i].value = Some(OpValue::Booking { booking_id: "b-mutant".into() });
        let r = Results::compute(&sim.ops, &sim.fin, &config(sim.skew_ms)).unwrap();
        assert_eq!(r.checkers["linearizable"], Validity::Invalid, "seed {seed}\n{}", story(&sim.ops));
        assert_eq!(r.direct(CheckName::NoDoubleSale), Validity::Invalid, "seed {seed}");
    }
    assert!(tried >= 20, "only {tried} seeds had a double-sale mutation to make");
    println!("double-sale mutations caught: {tried}/{tried}");
}

/// The hold a confirm/release completion is about (from its invoke).
fn find_hold(ops: &[Op], completion: &Op) -> String {
    ops.iter()
        .rev()
        .find(|op| {
            op.kind == OpKind::Invoke && op.process == completion.process && op.index < completion.index
        })
        .and_then(|op| op.hold_id.clone())
        .unwrap_or_default()
}

/// One changed result: a refusal turned ok, an ok turned refusal, a read changed. Not every
/// such change is wrong (windows can allow it), so this asserts that most are caught.
#[test]
fn single_result_mutations_are_usually_caught() {
    let (mut tried, mut caught) = (0u32, 0u32);
    for seed in MUTATION_SEEDS {
        let mut sim = simulate(seed);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let candidates: Vec<usize> = (0..sim.ops.len())
            .filter(|i| {
                let op = &sim.ops[*i];
                matches!(op.kind, OpKind::Ok | OpKind::Fail) && matches!(op.f, OpFn::Reserve | OpFn::Read)
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let i = candidates[rng.random_range(0..candidates.len())];
        let op = &mut sim.ops[i];
        match (op.f, op.kind) {
            (OpFn::Reserve, OpKind::Fail) if op.error_code() == Some("ticket_unavailable") => {
                op.kind = OpKind::Ok;
                op.value = Some(OpValue::Hold {
                    hold_id: "h-mutant".into(),
                    expires_at_ms: op.time_ms + sim.hold_ms,
                });
            }
            (OpFn::Reserve, OpKind::Ok) => {
                op.kind = OpKind::Fail;
                op.value = Some(OpValue::Error { http_status: 409, code: "ticket_unavailable".into() });
            }
            (OpFn::Read, OpKind::Ok) => {
                let other = match op.status() {
                    Some(TicketStatus::Available) => TicketStatus::Held,
                    Some(TicketStatus::Held) => TicketStatus::Sold,
                    _ => TicketStatus::Available,
                };
                op.value = Some(OpValue::Status { status: other });
            }
            _ => continue,
        }
        tried += 1;
        let verdict = check_linearizable(&sim.ops, &config(sim.skew_ms)).unwrap().verdict;
        assert!(!verdict.is_unknown(), "seed {seed}: small histories must be decided");
        if verdict.is_invalid() {
            caught += 1;
        }
    }
    println!("single-result mutations caught: {caught}/{tried}");
    assert!(tried >= 200, "only {tried} mutations made");
    assert!(caught * 10 >= tried * 6, "only {caught}/{tried} mutations caught");
}

/// Replay one seed from `JEPSEN_SEED`, printing its history; a no-op without it.
#[test]
fn replay() {
    let Ok(seed) = std::env::var("JEPSEN_SEED") else { return };
    let seed: u64 = seed.parse().expect("JEPSEN_SEED is a u64");
    let sim = simulate(seed);
    let r = Results::compute(&sim.ops, &sim.fin, &config(sim.skew_ms)).unwrap();
    println!(
        "seed {seed}, skew {} ms, hold {} ms\n{}\n{}",
        sim.skew_ms,
        sim.hold_ms,
        story(&sim.ops),
        r.summary()
    );
    assert_eq!(r.valid, Validity::Valid);
}

/// One op on ticket `A` by user `u<process>`.
fn ticket_a_op(index: u64, process: u64, f: OpFn, kind: OpKind, time_ms: u64, value: Option<OpValue>) -> Op {
    Op {
        index,
        process,
        node: 0,
        kind,
        f,
        ticket: "A".into(),
        hold_id: None,
        user: Some(format!("u{process}")),
        booking_id: None,
        idempotency_key: None,
        value,
        time_ms,
        latency_ms: None,
    }
}

/// Many concurrent reserves whose outcome is unknown (each may have taken effect, in any
/// order, or not), then a read that no choice explains: the search must try the subsets
/// and orders of the unknown reserves, so it answers Unknown at its budget instead of
/// hanging. (Concurrent *reads* used to be the pathological case; they are observations
/// now and lifted without a choice point.)
fn pathological(unknowns: u64) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut push = |process: u64, f: OpFn, kind: OpKind, time_ms: u64, value: Option<OpValue>| {
        ops.push(ticket_a_op(ops.len() as u64, process, f, kind, time_ms, value))
    };
    for p in 0..unknowns {
        push(p, OpFn::Reserve, OpKind::Invoke, 100 + p, None);
    }
    for p in 0..unknowns {
        push(p, OpFn::Reserve, OpKind::Info, 200 + p, None);
    }
    push(unknowns, OpFn::Read, OpKind::Invoke, 300, None);
    push(unknowns, OpFn::Read, OpKind::Ok, 310, Some(OpValue::Status { status: TicketStatus::Sold }));
    ops
}

#[test]
fn many_concurrent_refusals_are_decided_at_once() {
    // 40 concurrent 409s on a held ticket, then a read that cannot be: invalid, quickly.
    let mut ops = Vec::new();
    let mut push = |process: u64, f: OpFn, kind: OpKind, time_ms: u64, value: Option<OpValue>| {
        ops.push(ticket_a_op(ops.len() as u64, process, f, kind, time_ms, value))
    };
    push(0, OpFn::Reserve, OpKind::Invoke, 100, None);
    let hold = OpValue::Hold { hold_id: "h1".into(), expires_at_ms: 100_000 };
    push(0, OpFn::Reserve, OpKind::Ok, 110, Some(hold));
    for p in 1..=40 {
        push(p, OpFn::Reserve, OpKind::Invoke, 200, None);
    }
    for p in 1..=40 {
        let refused = OpValue::Error { http_status: 409, code: "ticket_unavailable".into() };
        push(p, OpFn::Reserve, OpKind::Fail, 300, Some(refused));
    }
    push(41, OpFn::Read, OpKind::Invoke, 400, None);
    push(41, OpFn::Read, OpKind::Ok, 410, Some(OpValue::Status { status: TicketStatus::Sold }));
    let report = check_linearizable(&ops, &config(0)).unwrap();
    assert!(report.verdict.is_invalid(), "{:?}", report.verdict);
    assert!(report.tickets[0].stats.steps < 10_000, "{:?}", report.tickets[0].stats);
    // Without the impossible read it is valid, as quickly.
    ops.truncate(ops.len() - 2);
    let report = check_linearizable(&ops, &config(0)).unwrap();
    assert!(report.verdict.is_valid(), "{:?}", report.verdict);
    assert!(report.tickets[0].stats.steps < 10_000, "{:?}", report.tickets[0].stats);
}

#[test]
fn pathological_history_is_unknown_within_the_step_budget() {
    let ops = pathological(40);
    let mut config = config(0);
    config.budget = Budget { steps_max: 200_000, time_max_ms: 30_000, cache_entries_max: 10_000_000 };
    let started = Instant::now();
    let report = check_linearizable(&ops, &config).unwrap();
    assert!(report.verdict.is_unknown(), "{:?}", report.verdict);
    assert_eq!(report.tickets[0].stats.steps, 200_001);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn pathological_history_is_unknown_within_the_time_budget() {
    let ops = pathological(40);
    let mut config = config(0);
    config.budget = Budget { steps_max: u64::MAX, time_max_ms: 300, cache_entries_max: usize::MAX };
    let started = Instant::now();
    let report = check_linearizable(&ops, &config).unwrap();
    assert!(report.verdict.is_unknown(), "{:?}", report.verdict);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn small_pathological_history_is_decided_invalid() {
    // The same shape, small enough to search fully: the budget, not the checker, was the limit.
    let report = check_linearizable(&pathological(8), &config(0)).unwrap();
    assert!(report.verdict.is_invalid(), "{:?}", report.verdict);
}

/// The simulated histories really exercise refunds: cancels answered `refunded` and
/// `refund_pending`, and seats sold again after a refund — so `simulated_histories_are_valid`
/// is not vacuous for them.
#[test]
fn the_simulator_refunds_and_sells_refunded_seats_again() {
    let (mut refunded, mut pending, mut resold) = (0, 0, 0);
    for seed in MUTATION_SEEDS {
        let sim = simulate(seed);
        let answered = |status: &str| {
            sim.ops.iter().any(|op| op.f == OpFn::Cancel && op.refund().is_some_and(|(s, _)| s == status))
        };
        refunded += answered("refunded") as u32;
        pending += answered("refund_pending") as u32;
        let mut sales: BTreeMap<&str, usize> = BTreeMap::new();
        for op in sim.ops.iter().filter(|op| op.kind == OpKind::Ok && op.f == OpFn::Confirm) {
            *sales.entry(op.ticket.as_str()).or_default() += 1;
        }
        resold += sales.values().any(|n| *n > 1) as u32;
    }
    println!("seeds with refunds: {refunded}, pending refunds: {pending}, seats sold again: {resold}");
    assert!(refunded >= 40 && pending >= 20 && resold >= 20, "{refunded} {pending} {resold}");
}
