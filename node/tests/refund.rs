//! Cancel and refund against a real `boxoffice serve` process over HTTP: a buyer's cancel,
//! its refusals, an event cancel that refunds every booking, and a refund in flight at
//! `kill -9` that ends refunded exactly once after the restart.
//!
//! "Refunded once" is read from outside the process: the built-in test provider appends every
//! refund it makes to `<data dir>/test-payments.jsonl` (one JSON line per refund key, written
//! before it answers), which outlives the process. A refund made twice for one booking — a
//! new key after the restart — shows as two lines for its `payment_ref`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{eventually, small_event, token, Client, Node};
use serde_json::{json, Value};

/// Refunds made per payment ref, from the test provider's journal in `data_dir`.
fn refunds_made(data_dir: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(data_dir.join("test-payments.jsonl")).unwrap_or_default();
    let mut out: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("journal line {line:?}: {e}"));
        let refund = &entry["Refund"];
        if refund["refund_ref"].is_string() {
            *out.entry(refund["payment_ref"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    out
}

/// Reserve `seat` for `user` and pay with `card`: the booking.
async fn book(c: &Client, user: &str, event: &str, seat: &str, card: &str) -> Value {
    let hold = c.post("/v1/booking/reserve", user, json!({"event_id": event, "ticket_ids": [seat]})).await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let booking = c
        .post(
            "/v1/booking/confirm",
            user,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": card}}),
        )
        .await;
    assert_eq!(booking.status, 201, "{}", booking.body);
    assert_eq!(booking.body["status"], "confirmed", "{}", booking.body);
    booking.body
}

async fn availability(c: &Client, event: &str) -> Value {
    c.get(&format!("/v1/events/{event}"), None).await.body["availability"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_cancels_once_and_an_event_cancel_refunds_every_booking() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let (alice, bob, carol) = (token("alice", false), token("bob", false), token("carol", false));
    let booking = book(&c, &alice, &event, "A-1-1", "tok_visa").await;
    let id = booking["booking_id"].as_str().unwrap().to_string();
    assert_eq!(availability(&c, &event).await, json!({"available": 39, "held": 0, "sold": 1}));

    // Someone else's booking: refused as a confirm of someone else's hold is (403).
    let cancel = format!("/v1/bookings/{id}/cancel");
    let other = c.post(&cancel, &bob, json!(null)).await;
    assert_eq!((other.status, other.body["code"].as_str()), (403, Some("forbidden")), "{}", other.body);
    let missing = c.post("/v1/bookings/bkg_nope_nope/cancel", &alice, json!(null)).await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    // The buyer, within the window (until the show starts): refunded, seat back on sale.
    let done = c.post(&cancel, &alice, json!(null)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["booking_id"], id.as_str());
    assert_eq!(done.body["status"], "refunded", "{}", done.body);
    let refund_ref = done.body["refund_ref"].as_str().expect("a refund reference").to_string();
    assert_eq!(availability(&c, &event).await, json!({"available": 40, "held": 0, "sold": 0}));
    let read = c.get(&format!("/v1/bookings/{id}"), Some(&alice)).await;
    assert_eq!(
        (read.body["status"].as_str(), read.body["refund_ref"].as_str()),
        (Some("refunded"), Some(refund_ref.as_str()))
    );
    let mine = c.get("/v1/me/bookings", Some(&alice)).await;
    assert_eq!(mine.body["bookings"][0]["status"], "refunded", "{}", mine.body);

    // Refunded once: a second cancel is refused, by the buyer and by an admin.
    let again = c.post(&cancel, &alice, json!(null)).await;
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("not_refundable")), "{}", again.body);
    let admin_again = c.post(&cancel, &token("root", true), json!(null)).await;
    assert_eq!(admin_again.status, 409, "{}", admin_again.body);

    // The seat is sold again, once; then the admin cancels the event: every booking refunded.
    let resold = book(&c, &carol, &event, "A-1-1", "tok_visa").await;
    let taken =
        c.post("/v1/booking/reserve", &bob, json!({"event_id": event, "ticket_ids": ["A-1-1"]})).await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    let others = [(bob.clone(), book(&c, &bob, &event, "A-1-2", "tok_visa").await)];
    let second = book(&c, &carol, &event, "A-2-5", "tok_visa").await;
    let cancelled = c.post(&format!("/v1/events/{event}/cancel"), &token("root", true), json!(null)).await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (200, Some("cancelled")),
        "{}",
        cancelled.body
    );
    let all =
        [(carol.clone(), resold), (carol.clone(), second)].into_iter().chain(others).collect::<Vec<_>>();
    for (user, b) in &all {
        let path = format!("/v1/bookings/{}", b["booking_id"].as_str().unwrap());
        eventually("the event cancel refunds the booking", Duration::from_secs(20), || {
            let (c, user, path) = (c.clone(), user.clone(), path.clone());
            async move {
                let read = c.get(&path, Some(&user)).await;
                match read.body["status"].as_str() {
                    Some("refunded") => Ok(()),
                    _ => Err(read.body.to_string()),
                }
            }
        })
        .await;
    }
    assert_eq!(availability(&c, &event).await, json!({"available": 40, "held": 0, "sold": 0}));
    let made = refunds_made(dir.path());
    assert_eq!(made.len(), 4, "four charges refunded: {made:?}");
    assert!(made.values().all(|n| *n == 1), "each refunded once: {made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_in_flight_at_kill_9_ends_refunded_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let alice = token("alice", false);
    // The test provider makes this card's refund at once but answers only after the attempt
    // timeout, three times per key: the cancel answers before the refund commits.
    let booking = book(&c, &alice, &event, "A-2-3", "tok_refundTimeout").await;
    let id = booking["booking_id"].as_str().unwrap().to_string();
    let payment_ref = booking["payment_ref"].as_str().unwrap().to_string();
    let pending = c.post(&format!("/v1/bookings/{id}/cancel"), &alice, json!(null)).await;
    assert_eq!(pending.status, 200, "{}", pending.body);
    assert_eq!(
        (pending.body["status"].as_str(), &pending.body["refund_ref"]),
        (Some("refund_pending"), &Value::Null)
    );
    // The refund is made at the provider, not committed here: kill -9 now.
    assert_eq!(refunds_made(dir.path()).get(&payment_ref), Some(&1), "the provider made the refund");
    let read = c.get(&format!("/v1/bookings/{id}"), Some(&alice)).await;
    assert_eq!(read.body["status"], "refund_pending", "still pending at the kill: {}", read.body);
    assert_eq!(availability(&c, &event).await["sold"], 1, "the seat stays sold while pending");
    node.kill();

    node.restart();
    let c = node.client();
    let refunded =
        eventually("the pending refund is finished after the restart", Duration::from_secs(40), || {
            let (c, alice, id) = (c.clone(), alice.clone(), id.clone());
            async move {
                let read = c.get(&format!("/v1/bookings/{id}"), Some(&alice)).await;
                match read.body["status"].as_str() {
                    Some("refunded") => Ok(read.body),
                    _ => Err(read.body.to_string()),
                }
            }
        })
        .await;
    // The same key after the restart: the provider's first refund, not a second one.
    assert_eq!(refunded["refund_ref"], format!("re_test_refund:{id}"), "{refunded}");
    assert_eq!(refunds_made(dir.path()).get(&payment_ref), Some(&1), "refunded exactly once");
    assert_eq!(availability(&c, &event).await, json!({"available": 40, "held": 0, "sold": 0}));
    let mine = c.get("/v1/me/bookings", Some(&alice)).await;
    assert_eq!(mine.body["bookings"][0]["status"], "refunded", "the per-user index follows: {}", mine.body);
    let again = c.post(&format!("/v1/bookings/{id}/cancel"), &alice, json!(null)).await;
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("not_refundable")), "{}", again.body);
}
