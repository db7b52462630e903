//! Cancel and refund against real `boxoffice serve` processes over HTTP: a buyer's cancel,
//! its refusals, an event cancel that refunds every booking, a refund in flight at `kill -9`
//! that ends refunded exactly once after the restart, a refund in flight when its leader dies
//! (against a fake Stripe-compatible provider all nodes share) finished by the new leader,
//! and cancels sent to nodes that do not lead the event (carried over the peer plane).
//!
//! "Refunded once" is read from outside the process: the built-in test provider appends every
//! refund it makes to `<data dir>/test-payments.jsonl` (one JSON line per refund key, written
//! before it answers), which outlives the process. A refund made twice for one booking — a
//! new key after the restart — shows as two lines for its `payment_ref`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use common::{event_at, eventually, small_event, token, venue, Client, Cluster, Node};
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

/// The node leading `event`'s group, as node 1 sees it.
async fn leader_of(cluster: &Cluster, event: &str) -> Option<u64> {
    let view = cluster.view(1).await;
    view["groups"].as_array()?.iter().find(|g| g["id"] == event)?["leader"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_sent_to_any_node_reach_the_events_leader() {
    let cluster = Cluster::start(3).await;
    let admin = token("admin", true);
    let venue_id = venue(&cluster.client(1), &admin, 20).await;
    let event = event_at(&cluster.client(1), &admin, &venue_id, "Routed", 4).await;
    let ann = token("ann", false);
    let mut bookings = Vec::new();
    for seat in ["A-1-1", "A-1-2", "A-1-3"] {
        bookings.push(book(&cluster.client(1), &ann, &event, seat, "tok_visa").await);
    }
    // One cancel through each node: at least two of them do not lead the event.
    for (via, b) in (1..=3).zip(&bookings) {
        let path = format!("/v1/bookings/{}/cancel", b["booking_id"].as_str().unwrap());
        let done = cluster.client(via).post(&path, &ann, json!(null)).await;
        assert_eq!(
            (done.status, done.body["status"].as_str()),
            (200, Some("refunded")),
            "via node {via}: {}",
            done.body
        );
        let again = cluster.client(via).post(&path, &ann, json!(null)).await;
        assert_eq!(again.body["code"], "not_refundable", "via node {via}: {}", again.body);
    }
    assert_eq!(availability(&cluster.client(2), &event).await["sold"], 0);

    // The event cancel through a node that does not lead it refunds its bookings too.
    let last = book(&cluster.client(1), &ann, &event, "A-2-1", "tok_visa").await;
    let leader = leader_of(&cluster, &event).await.expect("node 1 knows the event's leader");
    let via = (1..=3).find(|id| *id != leader).unwrap();
    let cancelled =
        cluster.client(via).post(&format!("/v1/events/{event}/cancel"), &admin, json!(null)).await;
    assert_eq!(cancelled.status, 200, "via node {via} (leader {leader}): {}", cancelled.body);
    let path = format!("/v1/bookings/{}", last["booking_id"].as_str().unwrap());
    eventually("the event cancel refunds the booking", Duration::from_secs(20), || {
        let (c, ann, path) = (cluster.client(via), ann.clone(), path.clone());
        async move {
            let read = c.get(&path, Some(&ann)).await;
            match read.body["status"].as_str() {
                Some("refunded") => Ok(()),
                _ => Err(read.body.to_string()),
            }
        }
    })
    .await;
}

/// The refund keys the test provider in `data_dir` was asked for `payment_ref`, in order.
fn refund_keys(data_dir: &Path, payment_ref: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data_dir.join("test-payments.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["Refund"]["payment_ref"] == payment_ref)
        .map(|e| e["Refund"]["key"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_cancel_posted_again_to_any_node_retries_declined_refunds() {
    let cluster = Cluster::start(3).await;
    let admin = token("admin", true);
    let venue_id = venue(&cluster.client(1), &admin, 20).await;
    let event = event_at(&cluster.client(1), &admin, &venue_id, "Declined", 4).await;
    let ann = token("ann", false);
    let booking = book(&cluster.client(1), &ann, &event, "A-1-1", "tok_refundDeclined").await;
    let (id, payment_ref) =
        (booking["booking_id"].as_str().unwrap(), booking["payment_ref"].as_str().unwrap());
    let leader = leader_of(&cluster, &event).await.expect("node 1 knows the event's leader");
    let via = (1..=3).find(|n| *n != leader).unwrap();
    let journal = cluster.node(leader).data_dir.clone();
    // First cancel: the leader's provider declines the refund (attempt 1); the booking stays.
    for (attempt, key) in [(1, format!("refund:{id}")), (2, format!("refund:{id}-2"))] {
        let cancelled =
            cluster.client(via).post(&format!("/v1/events/{event}/cancel"), &admin, json!(null)).await;
        assert_eq!(cancelled.status, 200, "cancel {attempt} via node {via}: {}", cancelled.body);
        let keys = eventually("the refund is tried and declined", Duration::from_secs(20), || {
            let (journal, c, ann) = (journal.clone(), cluster.client(via), ann.clone());
            async move {
                let keys = refund_keys(&journal, payment_ref);
                let read = c.get(&format!("/v1/bookings/{id}"), Some(&ann)).await;
                match (keys.len() == attempt, read.body["status"].as_str()) {
                    (true, Some("confirmed")) => Ok(keys),
                    _ => Err(format!("keys {keys:?}, booking {}", read.body)),
                }
            }
        })
        .await;
        assert_eq!(keys.last(), Some(&key), "attempt {attempt} uses its own provider key");
    }
}

/// A Stripe-compatible provider shared by every node: charges always succeed; refunds are
/// kept per idempotency key (one refund per key, its id answered again on a retry) and,
/// while `slow`, answered only after the nodes' 2 s attempt timeout.
#[derive(Clone, Default)]
struct FakeStripe {
    /// idempotency key -> (refund id, requests seen)
    refunds: Arc<Mutex<HashMap<String, (String, u32)>>>,
    slow: Arc<AtomicBool>,
}

async fn fake_intents(headers: HeaderMap) -> Json<Value> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
    Json(json!({"id": format!("pi_{key}"), "status": "succeeded"}))
}

async fn fake_refunds(State(fake): State<FakeStripe>, headers: HeaderMap) -> Json<Value> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let id = {
        let mut refunds = fake.refunds.lock().unwrap();
        let n = refunds.len();
        let entry = refunds.entry(key).or_insert_with(|| (format!("re_fake_{n}"), 0));
        entry.1 += 1;
        entry.0.clone()
    };
    if fake.slow.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Json(json!({"id": id, "object": "refund", "status": "succeeded"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_in_flight_when_its_leader_dies_is_finished_by_the_next_once() {
    let fake = FakeStripe::default();
    fake.slow.store(true, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/v1/payment_intents", axum::routing::post(fake_intents))
        .route("/v1/refunds", axum::routing::post(fake_refunds))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stripe_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let args =
        ["--payment", "stripe", "--stripe-base-url", &stripe_url, "--stripe-secret-key", "sk_test_fake"];
    let mut cluster = Cluster::start_with(3, args.iter().map(|s| s.to_string()).collect()).await;
    let admin = token("admin", true);
    let venue_id = venue(&cluster.client(1), &admin, 20).await;
    let event = event_at(&cluster.client(1), &admin, &venue_id, "Failover", 4).await;
    let ann = token("ann", false);
    let booking = book(&cluster.client(1), &ann, &event, "A-1-4", "pm_card_visa").await;
    let id = booking["booking_id"].as_str().unwrap().to_string();
    let leader = cluster.wait_leader(&event, Duration::from_secs(10)).await;

    // The provider takes the refund but answers too late: the cancel answers pending.
    let pending = cluster.client(leader).post(&format!("/v1/bookings/{id}/cancel"), &ann, json!(null)).await;
    assert_eq!(
        (pending.status, pending.body["status"].as_str()),
        (200, Some("refund_pending")),
        "{}",
        pending.body
    );
    let key = format!("refund:{id}");
    assert!(fake.refunds.lock().unwrap().contains_key(&key), "the refund reached the provider");
    cluster.kill(leader);
    fake.slow.store(false, Ordering::SeqCst);

    let survivor = (1..=3).find(|n| *n != leader).unwrap();
    let refunded = eventually("the next leader finishes the refund", Duration::from_secs(40), || {
        let (c, ann, id) = (cluster.client(survivor), ann.clone(), id.clone());
        async move {
            let read = c
                .try_send("GET", &format!("/v1/bookings/{id}"), Some(&ann), None, Duration::from_secs(5))
                .await;
            match read {
                Ok(r) if r.body["status"] == "refunded" => Ok(r.body),
                Ok(r) => Err(r.body.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    let refunds = fake.refunds.lock().unwrap().clone();
    assert_eq!(refunds.keys().collect::<Vec<_>>(), vec![&key], "one refund key: {refunds:?}");
    assert_eq!(refunded["refund_ref"], refunds[&key].0, "the provider's one refund: {refunded}");
    assert!(refunds[&key].1 >= 2, "the refund was asked again with the same key: {refunds:?}");
    assert_eq!(availability(&cluster.client(survivor), &event).await["sold"], 0);
}
