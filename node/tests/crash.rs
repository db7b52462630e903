//! kill -9 at the worst moments: right after an acknowledged confirm, and while a payment
//! is in flight (against a fake Stripe-compatible provider that outlives the node and
//! counts charges per idempotency key).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use common::{small_event, token, Node};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_booking_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let alice = token("alice", false);
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-7"]})).await;
    let other =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-8"]})).await;
    let booking = c
        .post(
            "/v1/booking/confirm",
            &alice,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(booking.status, 201, "{}", booking.body);
    node.kill();
    node.restart();
    let c = node.client();
    let id = booking.body["booking_id"].as_str().unwrap();
    let read = c.get(&format!("/v1/bookings/{id}"), Some(&alice)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["tickets"], json!(["A-1-7"]));
    let page = c.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(page.body["availability"], json!({"available": 38, "held": 1, "sold": 1}), "{}", page.body);
    // The acknowledged hold survived too, and the store takes new writes.
    let h = c.get(&format!("/v1/holds/{}", other.body["hold_id"].as_str().unwrap()), Some(&alice)).await;
    assert_eq!(h.body["status"], "active");
    let again = c
        .post(
            "/v1/booking/reserve",
            &token("bob", false),
            json!({"event_id": event, "ticket_ids": ["A-1-7"]}),
        )
        .await;
    assert_eq!(again.status, 409);
}

#[derive(Clone, Default)]
struct FakeStripe {
    /// idempotency key -> (intent id, requests seen)
    charges: Arc<Mutex<HashMap<String, (String, u32)>>>,
}

async fn payment_intents(State(fake): State<FakeStripe>, headers: HeaderMap, body: String) -> Json<Value> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(body.contains("payment_method=pm_slow"), "form body: {body}");
    let (id, first) = {
        let mut charges = fake.charges.lock().unwrap();
        let n = charges.len();
        let entry = charges.entry(key).or_insert_with(|| (format!("pi_fake_{n}"), 0));
        entry.1 += 1;
        (entry.0.clone(), entry.1 == 1)
    };
    if first {
        // The charge is made, but the answer is slow: the node dies before it arrives.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    Json(json!({"id": id, "object": "payment_intent", "status": "succeeded"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_in_flight_at_kill_9_ends_sold_and_charged_once() {
    let fake = FakeStripe::default();
    let app = axum::Router::new()
        .route("/v1/payment_intents", axum::routing::post(payment_intents))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stripe_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BOXOFFICE_PAYMENT", "stripe"),
        ("BOXOFFICE_STRIPE_BASE_URL", stripe_url.as_str()),
        ("BOXOFFICE_STRIPE_SECRET_KEY", "sk_test_fake"),
    ];
    let mut node = Node::start_with(dir.path(), &env);
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let alice = token("alice", false);
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-9"]})).await;
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let confirm = {
        let (c, alice, hold_id) = (c.clone(), alice.clone(), hold_id.clone());
        tokio::spawn(async move {
            c.http
                .post(format!("{}/v1/booking/confirm", c.base))
                .bearer_auth(alice)
                .json(&json!({"hold_id": hold_id, "payment": {"token": "pm_slow"}}))
                .send()
                .await
        })
    };
    // Wait for the provider to see the charge, then kill the node mid-payment.
    let charge_key = format!("{hold_id}-1");
    for _ in 0..100 {
        if fake.charges.lock().unwrap().contains_key(&charge_key) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fake.charges.lock().unwrap().contains_key(&charge_key), "the charge never reached the provider");
    node.kill();
    assert!(confirm.await.unwrap().is_err(), "the confirm cannot have been answered");

    node.restart();
    let c = node.client();
    let mut status = Value::Null;
    for _ in 0..150 {
        let h = c.get(&format!("/v1/holds/{hold_id}"), Some(&alice)).await;
        status = h.body["status"].clone();
        if status == "confirmed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "confirmed", "the payment left in confirming was finished at start-up");
    let charges = fake.charges.lock().unwrap().clone();
    assert_eq!(charges.len(), 1, "one charge (one idempotency key): {charges:?}");
    assert!(charges[&charge_key].1 >= 2, "the charge was retried with the same key");
    let mine = c.get("/v1/me/bookings", Some(&alice)).await;
    let bookings = mine.body["bookings"].as_array().unwrap();
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0]["payment_ref"], charges[&charge_key].0);
}
