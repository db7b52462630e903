//! Hand-written histories the checkers must accept or reject, each a small story
//! (`time process kind f ticket key=value...`, see `jepsen_checker::history::parse_story`).

use jepsen_checker::checker::direct::{CheckName, Counts, FinalRead, FinalState};
use jepsen_checker::history::{pair_calls, parse_story};
use jepsen_checker::{
    check_linearizable, LinearConfig, ModelConfig, Results, TicketStatus, Validity, Verdict,
};

fn linear(story: &str, skew_ms: u64) -> Verdict {
    let ops = parse_story(story).expect("story parses");
    let config = LinearConfig { model: ModelConfig { skew_ms }, ..LinearConfig::default() };
    check_linearizable(&ops, &config).expect("well formed").verdict
}

#[track_caller]
fn assert_valid(story: &str, skew_ms: u64) {
    let v = linear(story, skew_ms);
    assert!(v.is_valid(), "want valid with skew {skew_ms}, got {v:#?}\n{story}");
}

#[track_caller]
fn assert_invalid(story: &str, skew_ms: u64) {
    let v = linear(story, skew_ms);
    assert!(v.is_invalid(), "want invalid with skew {skew_ms}, got {v:#?}\n{story}");
}

fn results(story: &str, fin: &FinalState, skew_ms: u64) -> Results {
    let ops = parse_story(story).unwrap();
    let config = LinearConfig { model: ModelConfig { skew_ms }, ..LinearConfig::default() };
    Results::compute(&ops, fin, &config).unwrap()
}

// ---- Sales and holds ----

const DOUBLE_SALE: &str = "
    100 p1 invoke reserve A user=alice
    105 p2 invoke reserve A user=bob
    120 p1 ok reserve A hold=h1 until=10000
    125 p2 ok reserve A hold=h2 until=10005
    200 p1 invoke confirm A hold=h1 user=alice
    210 p1 ok confirm A booking=b1
    220 p2 invoke confirm A hold=h2 user=bob
    230 p2 ok confirm A booking=b2
";

#[test]
fn double_sale_is_invalid_for_every_checker() {
    assert_invalid(DOUBLE_SALE, 0);
    let fin = FinalState {
        capacity: Some(1),
        reads: vec![FinalRead {
            ticket: "A".into(),
            status: TicketStatus::Sold,
            booking_id: Some("b1".into()),
        }],
        counts: None,
        bookings: Vec::new(),
    };
    let r = results(DOUBLE_SALE, &fin, 0);
    assert_eq!(r.valid, Validity::Invalid);
    assert_eq!(r.direct(CheckName::NoDoubleSale), Validity::Invalid);
    assert_eq!(r.direct(CheckName::HoldsExclusive), Validity::Invalid);
    // b2 was acknowledged but the ticket ended up under b1.
    assert_eq!(r.direct(CheckName::BookingsDurable), Validity::Invalid);
    let v = r.violations.iter().find(|v| v.check == CheckName::NoDoubleSale).unwrap();
    assert_eq!(v.ops, vec![4, 6], "names the two confirms' invokes");
    assert!(r.summary().contains("INVALID"), "{}", r.summary());
}

#[test]
fn reserve_succeeding_while_another_hold_is_live_is_invalid() {
    let story = "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=10000
        200 p2 invoke reserve A user=bob
        230 p2 ok reserve A hold=h2 until=10200
    ";
    assert_invalid(story, 0);
    assert_invalid(story, 9_000);
    // Only a skew bound that could put bob's point past h1's expiry explains it.
    assert_valid(story, 9_770);
}

#[test]
fn reserve_after_expiry_is_valid() {
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=1000
        1500 p2 invoke reserve A user=bob
        1530 p2 ok reserve A hold=h2 until=2500
        ",
        0,
    );
}

#[test]
fn confirm_ok_after_expiry_beyond_skew_is_invalid() {
    let story = "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=1000
        1200 p1 invoke confirm A hold=h1 user=alice
        1210 p1 ok confirm A booking=b1
    ";
    assert_invalid(story, 0);
    assert_invalid(story, 200); // window starts at 1000: already expired
    assert_valid(story, 201); // could have taken effect at 999
}

#[test]
fn confirm_by_someone_else_is_invalid() {
    assert_invalid(
        "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=10000
        200 p2 invoke confirm A hold=h1 user=mallory
        210 p2 ok confirm A booking=b1
        ",
        0,
    );
}

#[test]
fn unavailable_while_available_the_whole_time_is_invalid() {
    assert_invalid(
        "
        100 p1 invoke reserve A user=alice
        110 p1 fail reserve A code=ticket_unavailable
        ",
        0,
    );
    // Expired hold: still available the whole time of bob's call.
    assert_invalid(
        "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=1000
        1000 p2 invoke reserve A user=bob
        1010 p2 fail reserve A code=ticket_unavailable
        ",
        0,
    );
}

#[test]
fn concurrent_reserves_where_one_wins_are_valid() {
    // Completions in either order, the loser refused.
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        101 p2 invoke reserve A user=bob
        120 p2 fail reserve A code=ticket_unavailable
        130 p1 ok reserve A hold=h1 until=5000
        ",
        0,
    );
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        101 p2 invoke reserve A user=bob
        102 p3 invoke reserve A user=carol
        120 p1 ok reserve A hold=h1 until=5000
        121 p3 fail reserve A code=ticket_unavailable
        130 p2 fail reserve A code=ticket_unavailable
        140 p2 invoke read A
        150 p2 ok read A status=held
        ",
        0,
    );
}

#[test]
fn unknown_reserve_may_or_may_not_have_happened() {
    // Took effect: bob is refused, a read sees it held.
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        5000 p1 info reserve A code=timeout
        200 p2 invoke reserve A user=bob
        210 p2 fail reserve A code=ticket_unavailable
        220 p3 invoke read A
        230 p3 ok read A status=held
        ",
        0,
    );
    // Did not: bob gets it.
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        200 p2 invoke reserve A user=bob
        210 p2 ok reserve A hold=h2 until=5000
        5000 p1 info reserve A code=timeout
        ",
        0,
    );
    // It cannot have taken effect before it was invoked.
    assert_invalid(
        "
        100 p2 invoke reserve A user=bob
        110 p2 fail reserve A code=ticket_unavailable
        200 p1 invoke reserve A user=alice
        ",
        0,
    );
    // Once seen expired, it stays expired: held, available, then held again is invalid.
    assert_invalid(
        "
        100 p1 invoke reserve A user=alice
        200 p2 invoke read A
        210 p2 ok read A status=held
        300 p2 invoke read A
        310 p2 ok read A status=available
        400 p2 invoke read A
        410 p2 ok read A status=held
        ",
        0,
    );
}

#[test]
fn a_5xx_confirm_is_an_unknown_outcome() {
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=100000
        200 p1 invoke confirm A hold=h1 user=alice
        300 p1 fail confirm A code=unavailable http=503
        400 p2 invoke read A
        410 p2 ok read A status=sold
        ",
        0,
    );
    // A 403 is a definite refusal: it cannot explain the sale.
    assert_invalid(
        "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=100000
        200 p1 invoke confirm A hold=h1 user=alice
        300 p1 fail confirm A code=forbidden
        400 p2 invoke read A
        410 p2 ok read A status=sold
        ",
        0,
    );
}

#[test]
fn overloaded_did_not_happen_outcome_unknown_may_have() {
    // `504 outcome_unknown` was proposed: it may explain a hold nobody was told about.
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        300 p1 fail reserve A code=outcome_unknown http=504
        400 p2 invoke read A
        410 p2 ok read A status=held
        ",
        0,
    );
    // `503 overloaded` was refused before proposing: it cannot.
    assert_invalid(
        "
        100 p1 invoke reserve A user=alice
        300 p1 fail reserve A code=overloaded http=503
        400 p2 invoke read A
        410 p2 ok read A status=held
        ",
        0,
    );
    // ... and an overloaded reserve beside a real one changes nothing.
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        110 p1 fail reserve A code=overloaded http=503
        200 p2 invoke reserve A user=bob
        210 p2 ok reserve A hold=h2 until=5000
        400 p3 invoke read A
        410 p3 ok read A status=held
        ",
        0,
    );
}

// ---- Expiry at the boundary: live while t < until, expired from t = until ----

const HOLD_UNTIL_1000: &str = "
    100 p1 invoke reserve A user=alice
    130 p1 ok reserve A hold=h1 until=1000
";

#[test]
fn expiry_exactly_at_the_boundary() {
    let with = |rest: &str| format!("{HOLD_UNTIL_1000}{rest}");
    // A reserve at exactly expires_at finds the ticket available.
    assert_valid(&with("1000 p2 invoke reserve A user=bob\n1005 p2 ok reserve A hold=h2 until=2000"), 0);
    assert_invalid(&with("990 p2 invoke reserve A user=bob\n999 p2 ok reserve A hold=h2 until=2000"), 0);
    assert_valid(&with("990 p2 invoke reserve A user=bob\n999 p2 ok reserve A hold=h2 until=2000"), 1);
    // A confirm must take effect strictly before expires_at.
    assert_valid(&with("995 p1 invoke confirm A hold=h1 user=alice\n1000 p1 ok confirm A booking=b1"), 0);
    assert_invalid(&with("1000 p1 invoke confirm A hold=h1 user=alice\n1005 p1 ok confirm A booking=b1"), 0);
    // hold_expired is legal only from expires_at on.
    assert_invalid(
        &with("995 p1 invoke confirm A hold=h1 user=alice\n999 p1 fail confirm A code=hold_expired"),
        0,
    );
    assert_valid(
        &with("995 p1 invoke confirm A hold=h1 user=alice\n1000 p1 fail confirm A code=hold_expired"),
        0,
    );
    assert_valid(
        &with("995 p1 invoke release A hold=h1 user=alice\n999 p1 fail release A code=hold_expired"),
        1,
    );
    // Reads: held strictly before, available from the boundary.
    assert_invalid(&with("1000 p3 invoke read A\n1001 p3 ok read A status=held"), 0);
    assert_valid(&with("999 p3 invoke read A\n1001 p3 ok read A status=held"), 0);
    assert_invalid(&with("990 p3 invoke read A\n999 p3 ok read A status=available"), 0);
    assert_valid(&with("990 p3 invoke read A\n1000 p3 ok read A status=available"), 0);
}

#[test]
fn hold_expired_then_the_ticket_is_free() {
    assert_invalid(
        &format!("{HOLD_UNTIL_1000}1100 p1 invoke confirm A hold=h1 user=alice\n1110 p1 fail confirm A code=hold_expired\n1200 p2 invoke read A\n1210 p2 ok read A status=held"),
        0,
    );
    // An unknown hold id cannot be answered hold_expired.
    assert_invalid(
        &format!("{HOLD_UNTIL_1000}1100 p1 invoke confirm A hold=h9 user=alice\n1110 p1 fail confirm A code=hold_expired"),
        0,
    );
}

// ---- Reads ----

#[test]
fn stale_read_that_cannot_be_linearized_is_invalid() {
    assert_invalid(
        "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=100000
        200 p2 invoke read A
        210 p2 ok read A status=available
        ",
        0,
    );
    // After a sale, a read may not see the ticket free again.
    assert_invalid(
        "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=100000
        140 p1 invoke confirm A hold=h1 user=alice
        150 p1 ok confirm A booking=b1
        160 p2 invoke read A
        170 p2 ok read A status=sold
        180 p2 invoke read A
        190 p2 ok read A status=held
        ",
        0,
    );
    // A read concurrent with the reserve may see either.
    assert_valid(
        "
        100 p1 invoke reserve A user=alice
        110 p2 invoke read A
        120 p2 ok read A status=available
        130 p1 ok reserve A hold=h1 until=100000
        ",
        0,
    );
}

#[test]
fn release_frees_the_ticket() {
    let released = "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=100000
        200 p1 invoke release A hold=h1 user=alice
        210 p1 ok release A
    ";
    assert_valid(
        &format!("{released}300 p2 invoke reserve A user=bob\n310 p2 ok reserve A hold=h2 until=100300"),
        0,
    );
    assert_invalid(&format!("{released}300 p2 invoke read A\n310 p2 ok read A status=held"), 0);
    assert_invalid(
        &format!("{released}300 p1 invoke confirm A hold=h1 user=alice\n310 p1 ok confirm A booking=b1"),
        0,
    );
}

#[test]
fn tickets_are_checked_independently() {
    // B's history is fine; A's is not; the report names A.
    let story = "
        100 p1 invoke reserve B user=alice
        130 p1 ok reserve B hold=h1 until=100000
        140 p2 invoke read A
        150 p2 ok read A status=sold
    ";
    let ops = parse_story(story).unwrap();
    let report = check_linearizable(&ops, &LinearConfig::default()).unwrap();
    assert!(report.verdict.is_invalid());
    assert_eq!(report.ticket.as_deref(), Some("A"));
    assert_eq!(report.tickets.len(), 2);
    assert!(report.tickets[1].verdict.is_valid(), "B");
}

// ---- Idempotent retries ----

#[test]
fn idempotent_replay_of_a_reserve_is_valid_a_second_hold_is_not() {
    let first = "
        100 p1 invoke reserve A user=alice key=k1
        130 p1 ok reserve A hold=h1 until=100000
    ";
    let replay =
        format!("{first}200 p1 invoke reserve A user=alice key=k1\n210 p1 ok reserve A hold=h1 until=100000");
    assert_valid(&replay, 0);
    let r = results(&replay, &FinalState::default(), 0);
    assert_eq!(r.direct(CheckName::IdempotentOnce), Validity::Valid);

    let doubled =
        format!("{first}200 p1 invoke reserve A user=alice key=k1\n210 p1 ok reserve A hold=h2 until=100100");
    assert_invalid(&doubled, 0);
    let r = results(&doubled, &FinalState::default(), 0);
    assert_eq!(r.direct(CheckName::IdempotentOnce), Validity::Invalid);
    // The replay must repeat the original answer exactly.
    let changed =
        format!("{first}200 p1 invoke reserve A user=alice key=k1\n210 p1 ok reserve A hold=h1 until=200000");
    assert_invalid(&changed, 0);
}

// ---- Direct checks on their own ----

const SOLD_B1: &str = "
    100 p1 invoke reserve A user=alice
    130 p1 ok reserve A hold=h1 until=100000
    140 p1 invoke confirm A hold=h1 user=alice
    150 p1 ok confirm A booking=b1
";

fn final_reads(reads: &[(&str, TicketStatus)], capacity: u64) -> FinalState {
    FinalState {
        capacity: Some(capacity),
        reads: reads
            .iter()
            .map(|(t, s)| FinalRead { ticket: t.to_string(), status: *s, booking_id: None })
            .collect(),
        counts: None,
        bookings: Vec::new(),
    }
}

#[test]
fn acknowledged_booking_must_survive() {
    let ok = final_reads(&[("A", TicketStatus::Sold), ("B", TicketStatus::Available)], 2);
    let r = results(SOLD_B1, &ok, 0);
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());

    let lost = final_reads(&[("A", TicketStatus::Available), ("B", TicketStatus::Available)], 2);
    let r = results(SOLD_B1, &lost, 0);
    assert_eq!(r.direct(CheckName::BookingsDurable), Validity::Invalid);
    assert_eq!(r.checkers["linearizable"], Validity::Valid, "the final reads are not in the history");

    let missing = final_reads(&[("B", TicketStatus::Available)], 2);
    assert_eq!(results(SOLD_B1, &missing, 0).direct(CheckName::BookingsDurable), Validity::Invalid);

    let mut other_booking = ok.clone();
    other_booking.reads[0].booking_id = Some("b7".into());
    assert_eq!(results(SOLD_B1, &other_booking, 0).direct(CheckName::BookingsDurable), Validity::Invalid);
}

#[test]
fn conservation_counts_every_ticket_once() {
    let short = final_reads(&[("A", TicketStatus::Sold)], 2);
    assert_eq!(results(SOLD_B1, &short, 0).direct(CheckName::Conservation), Validity::Invalid);
    let mut counts = final_reads(&[("A", TicketStatus::Sold), ("B", TicketStatus::Held)], 2);
    counts.counts = Some(Counts { available: 1, held: 1, sold: 1 });
    assert_eq!(results(SOLD_B1, &counts, 0).direct(CheckName::Conservation), Validity::Invalid);
    counts.counts = Some(Counts { available: 0, held: 1, sold: 1 });
    assert_eq!(results(SOLD_B1, &counts, 0).direct(CheckName::Conservation), Validity::Valid);
    // Without final reads the checks that need them are unknown, not valid.
    let r = results(SOLD_B1, &FinalState::default(), 0);
    assert_eq!(r.direct(CheckName::Conservation), Validity::Unknown);
    assert_eq!(r.direct(CheckName::BookingsDurable), Validity::Unknown);
    assert_eq!(r.valid, Validity::Unknown);
}

#[test]
fn holds_exclusive_respects_the_skew_bound_and_releases() {
    let overlap = "
        100 p1 invoke reserve A user=alice
        130 p1 ok reserve A hold=h1 until=1000
        900 p2 invoke reserve A user=bob
        950 p2 ok reserve A hold=h2 until=1950
    ";
    let calls = pair_calls(&parse_story(overlap).unwrap()).unwrap();
    let v = jepsen_checker::checker::direct::holds_exclusive(&calls, 0);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].ops, vec![0, 2]);
    assert!(
        jepsen_checker::checker::direct::holds_exclusive(&calls, 50).is_empty(),
        "bob's point may be at 1000"
    );
    let released = format!("{overlap}300 p1 invoke release A hold=h1 user=alice\n310 p1 ok release A");
    let calls = pair_calls(&parse_story(&released).unwrap()).unwrap();
    assert!(jepsen_checker::checker::direct::holds_exclusive(&calls, 0).is_empty());
}

#[test]
fn results_json_round_trips() {
    let r = results(DOUBLE_SALE, &final_reads(&[("A", TicketStatus::Sold)], 1), 0);
    let back: Results = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(back, r);
    assert_eq!(r.counts["reserve"].ok, 2);
    assert_eq!(r.counts["confirm"].ok, 2);
}

// ---- Expiry bound (hold length) ----

fn expiry_verdict(story: &str, hold_ms: u64, skew_ms: u64) -> Validity {
    let ops = parse_story(story).unwrap();
    let config =
        LinearConfig { model: ModelConfig { skew_ms }, hold_ms: Some(hold_ms), ..LinearConfig::default() };
    Results::compute(&ops, &FinalState::default(), &config).unwrap().direct(CheckName::ExpiryBounded)
}

#[test]
fn a_hold_longer_or_shorter_than_its_length_is_invalid() {
    // Hold 3 s granted in [100, 120]: expires_at must lie in [3100, 3120] (skew 0).
    let story = |until: u64| {
        format!("100 p1 invoke reserve A user=alice\n120 p1 ok reserve A hold=h1 until={until}\n")
    };
    assert_eq!(expiry_verdict(&story(3_100), 3_000, 0), Validity::Valid);
    assert_eq!(expiry_verdict(&story(3_120), 3_000, 0), Validity::Valid);
    assert_eq!(expiry_verdict(&story(3_121), 3_000, 0), Validity::Invalid, "outlives its length");
    assert_eq!(expiry_verdict(&story(3_099), 3_000, 0), Validity::Invalid, "cut short");
    assert_eq!(expiry_verdict(&story(3_150), 3_000, 30), Validity::Valid, "inside the skew bound");
    assert_eq!(expiry_verdict(&story(63_120), 3_000, 1_000), Validity::Invalid, "a minute too long");
    // Without a hold length the check does not run at all (not a silent pass).
    let ops = parse_story(&story(63_120)).unwrap();
    let r = Results::compute(&ops, &FinalState::default(), &LinearConfig::default()).unwrap();
    assert!(!r.checkers.contains_key("expiry_bounded"));
}

#[test]
fn an_idempotent_replay_keeps_the_first_sends_expiry() {
    // The first send (key k1) timed out but created the hold at ~100; the replay at 2000
    // returns the same hold, expiring 3 s after the *first* send: valid.
    let story = "
        100 p1 invoke reserve A user=alice key=k1
        900 p1 info reserve A
        2000 p2 invoke reserve A user=alice key=k1
        2010 p2 ok reserve A hold=h1 until=3105
    ";
    assert_eq!(expiry_verdict(story, 3_000, 0), Validity::Valid);
    // Without the key it would be a hold cut short.
    let no_key = story.replace(" key=k1", "");
    assert_eq!(expiry_verdict(&no_key, 3_000, 0), Validity::Invalid);
}

// ---- Refunds ----

/// Alice buys A, cancels it (refunded), Bob buys A again.
const REFUND_THEN_RESALE: &str = "
    100 p1 invoke reserve A user=alice
    110 p1 ok reserve A hold=h1 until=10000
    120 p1 invoke confirm A hold=h1 user=alice
    130 p1 ok confirm A booking=b1
    200 p1 invoke cancel A booking=b1 user=alice
    210 p1 ok cancel A refund=refunded ref=re_b1
    300 p2 invoke reserve A user=bob
    310 p2 ok reserve A hold=h2 until=10300
    320 p2 invoke confirm A hold=h2 user=bob
    330 p2 ok confirm A booking=b2
";

fn refund_final(bookings: &[(&str, &str, Option<&str>)], sold_by: Option<&str>) -> FinalState {
    FinalState {
        capacity: Some(1),
        reads: vec![FinalRead {
            ticket: "A".into(),
            status: if sold_by.is_some() { TicketStatus::Sold } else { TicketStatus::Available },
            booking_id: sold_by.map(str::to_string),
        }],
        counts: None,
        bookings: bookings
            .iter()
            .map(|(id, status, r)| jepsen_checker::checker::direct::FinalBooking {
                booking_id: id.to_string(),
                status: status.to_string(),
                refund_ref: r.map(str::to_string),
            })
            .collect(),
    }
}

#[test]
fn a_refunded_seat_sold_again_is_valid_for_every_checker() {
    assert_valid(REFUND_THEN_RESALE, 0);
    let fin = refund_final(&[("b1", "refunded", Some("re_b1")), ("b2", "confirmed", None)], Some("b2"));
    let r = results(REFUND_THEN_RESALE, &fin, 0);
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
    assert_eq!(r.direct(CheckName::RefundOnce), Validity::Valid);
}

#[test]
fn a_refunded_seat_sold_twice_again_is_invalid() {
    let story = format!(
        "{REFUND_THEN_RESALE}
    400 p3 invoke reserve A user=carol
    410 p3 ok reserve A hold=h3 until=10400
    420 p3 invoke confirm A hold=h3 user=carol
    430 p3 ok confirm A booking=b3
"
    );
    assert_invalid(&story, 0);
    let fin = refund_final(
        &[("b1", "refunded", Some("re_b1")), ("b2", "confirmed", None), ("b3", "confirmed", None)],
        Some("b2"),
    );
    let r = results(&story, &fin, 0);
    assert_eq!(r.direct(CheckName::NoDoubleSale), Validity::Invalid);
}

#[test]
fn a_seat_refunded_reads_sold_again_only_after_a_new_sale() {
    assert_invalid(
        "
    100 p1 invoke reserve A user=alice
    110 p1 ok reserve A hold=h1 until=10000
    120 p1 invoke confirm A hold=h1 user=alice
    130 p1 ok confirm A booking=b1
    200 p1 invoke cancel A booking=b1 user=alice
    210 p1 ok cancel A refund=refunded ref=re_b1
    300 p2 invoke read A
    310 p2 ok read A status=sold
",
        0,
    );
}

/// A pending refund finishes unobserved: the seat may read sold, then available, then be
/// sold again; but not sold again while a read still sees the old sale after it went.
#[test]
fn a_pending_refund_frees_the_seat_at_some_later_instant() {
    let pending = "
    100 p1 invoke reserve A user=alice
    110 p1 ok reserve A hold=h1 until=10000
    120 p1 invoke confirm A hold=h1 user=alice
    130 p1 ok confirm A booking=b1
    200 p1 invoke cancel A booking=b1 user=alice
    210 p1 ok cancel A refund=refund_pending
    300 p2 invoke read A
    310 p2 ok read A status=sold
    400 p2 invoke reserve A user=bob
    410 p2 ok reserve A hold=h2 until=10400
";
    assert_valid(pending, 0);
    let fin = refund_final(&[("b1", "refunded", Some("re_b1"))], None);
    // bob's hold expired long before the end: the seat is available.
    let r = results(pending, &fin, 0);
    assert_eq!(r.direct(CheckName::RefundOnce), Validity::Valid, "{}", r.summary());
    // Once available it stays so until a reserve: not sold again by itself.
    assert_invalid(
        &format!(
            "{pending}
    500 p3 invoke read A
    510 p3 ok read A status=sold
"
        ),
        0,
    );
}

#[test]
fn a_booking_refunded_twice_or_without_a_cancel_or_lost_is_caught_by_refund_once() {
    let twice = format!(
        "{REFUND_THEN_RESALE}
    500 p1 invoke cancel A booking=b1 user=alice
    510 p1 ok cancel A refund=refunded ref=re_b1_again
"
    );
    let fin = refund_final(&[("b1", "refunded", Some("re_b1")), ("b2", "confirmed", None)], Some("b2"));
    assert_eq!(results(&twice, &fin, 0).direct(CheckName::RefundOnce), Validity::Invalid);
    // b2 refunded at the end, nobody cancelled it.
    let invented =
        refund_final(&[("b1", "refunded", Some("re_b1")), ("b2", "refunded", Some("re_b2"))], None);
    assert_eq!(results(REFUND_THEN_RESALE, &invented, 0).direct(CheckName::RefundOnce), Validity::Invalid);
    // The cancel answered refunded, the end shows b1 confirmed: the refund was lost.
    let lost = refund_final(&[("b1", "confirmed", None), ("b2", "confirmed", None)], Some("b2"));
    assert_eq!(results(REFUND_THEN_RESALE, &lost, 0).direct(CheckName::RefundOnce), Validity::Invalid);
    // A booking acknowledged and refunded must still be listed.
    let gone = refund_final(&[("b2", "confirmed", None)], Some("b2"));
    assert_eq!(results(REFUND_THEN_RESALE, &gone, 0).direct(CheckName::BookingsDurable), Validity::Invalid);
}
