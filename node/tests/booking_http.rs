//! The booking flow against a real `boxoffice serve` process over HTTP, as a client would
//! see it: contention, exact expiry, payments, ownership, idempotency, limits and errors.

mod common;

use std::time::Duration;

use common::{small_event, token, Node};
use serde_json::json;

fn ms_until(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
    ((t - time::OffsetDateTime::now_utc()).whole_milliseconds()) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_reserves_of_one_seat_give_exactly_one_hold() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let c = c.clone();
        let event = event.clone();
        tasks.push(tokio::spawn(async move {
            let t = token(&format!("user{i}"), false);
            c.post("/v1/booking/reserve", &t, json!({"event_id": event, "ticket_ids": ["A-1-5"]})).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let a = t.await.unwrap();
        match a.status {
            201 => created += 1,
            409 => {
                assert_eq!(a.body["code"], "ticket_unavailable", "{}", a.body);
                assert_eq!(a.body["tickets"], json!(["A-1-5"]));
                assert_eq!(a.headers["content-type"], "application/problem+json");
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert_eq!(created, 1);
    let page = c.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(page.body["availability"], json!({"available": 39, "held": 1, "sold": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_expires_exactly_and_the_seat_goes_to_the_next_user() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 2, 4).await;
    let (alice, bob) = (token("alice", false), token("bob", false));
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-2-1"]})).await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let expires_at = hold.body["expires_at"].as_str().unwrap().to_string();
    let left = ms_until(&expires_at);
    assert!((1_000..=2_100).contains(&left), "hold of 2 s expires in {left} ms");
    // Shortly before expiry the seat is still taken.
    tokio::time::sleep(Duration::from_millis((left - 400).max(0) as u64)).await;
    let early =
        c.post("/v1/booking/reserve", &bob, json!({"event_id": event, "ticket_ids": ["A-2-1"]})).await;
    assert_eq!(early.status, 409, "{}", early.body);
    // Right after expiry it is bob's, with no sweep delay.
    tokio::time::sleep(Duration::from_millis((ms_until(&expires_at) + 20).max(0) as u64)).await;
    let late = c.post("/v1/booking/reserve", &bob, json!({"event_id": event, "ticket_ids": ["A-2-1"]})).await;
    assert_eq!(late.status, 201, "{}", late.body);
    // Alice's confirm now finds her hold expired.
    let confirm = c
        .post(
            "/v1/booking/confirm",
            &alice,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(confirm.status, 410, "{}", confirm.body);
    assert_eq!(confirm.body["code"], "hold_expired");
    let status = c.get(&format!("/v1/holds/{}", hold.body["hold_id"].as_str().unwrap()), Some(&alice)).await;
    assert_eq!(status.body["status"], "expired", "{}", status.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_confirm_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 6).await;
    let alice = token("alice", false);
    let hold = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "section": "A", "quantity": 3}))
        .await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    assert_eq!(
        hold.body["tickets"],
        json!(["A-1-4", "A-1-5", "A-1-6"]),
        "best seats: centre of the front row"
    );
    assert_eq!(hold.body["amount"], 15_000);
    let ga = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "section": "GA", "quantity": 2}))
        .await;
    assert_eq!(ga.status, 201, "{}", ga.body);
    let hold_id = hold.body["hold_id"].as_str().unwrap();
    let booking = c
        .post("/v1/booking/confirm", &alice, json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}))
        .await;
    assert_eq!(booking.status, 201, "{}", booking.body);
    assert_eq!(booking.body["tickets"], hold.body["tickets"]);
    let booking_id = booking.body["booking_id"].as_str().unwrap();
    let read = c.get(&format!("/v1/bookings/{booking_id}"), Some(&alice)).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["payment_ref"], booking.body["payment_ref"]);
    let mine = c.get("/v1/me/bookings", Some(&alice)).await;
    assert_eq!(mine.body["bookings"].as_array().unwrap().len(), 1);
    let held = c.get(&format!("/v1/holds/{hold_id}"), Some(&alice)).await;
    assert_eq!(held.body["status"], "confirmed");
    // Others see neither the booking nor the hold.
    let bob = token("bob", false);
    assert_eq!(c.get(&format!("/v1/bookings/{booking_id}"), Some(&bob)).await.status, 404);
    assert_eq!(c.get(&format!("/v1/holds/{hold_id}"), Some(&bob)).await.status, 404);
    // The seat map shows them sold, with a version and cache headers.
    let map = c.get(&format!("/v1/events/{event}/tickets"), None).await;
    let sold: Vec<_> = map.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "sold")
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(sold, vec![json!("A-1-4"), json!("A-1-5"), json!("A-1-6")]);
    let etag = map.headers["etag"].to_str().unwrap().to_string();
    assert!(map.headers["cache-control"].to_str().unwrap().contains("max-age"));
    let again =
        c.send("GET", &format!("/v1/events/{event}/tickets"), None, None, &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_payment_keeps_the_hold_and_strangers_are_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let (alice, mallory) = (token("alice", false), token("mallory", false));
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-1"]})).await;
    let hold_id = hold.body["hold_id"].as_str().unwrap();
    let declined = c
        .post(
            "/v1/booking/confirm",
            &alice,
            json!({"hold_id": hold_id, "payment": {"token": "tok_chargeDeclined"}}),
        )
        .await;
    assert_eq!(declined.status, 402, "{}", declined.body);
    assert_eq!(declined.body["code"], "payment_declined");
    let status = c.get(&format!("/v1/holds/{hold_id}"), Some(&alice)).await;
    assert_eq!(status.body["status"], "active", "{}", status.body);
    let theirs = c
        .post("/v1/booking/confirm", &mallory, json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}))
        .await;
    assert_eq!(theirs.status, 403, "{}", theirs.body);
    assert_eq!(theirs.body["code"], "forbidden");
    let release = c.post("/v1/booking/release", &mallory, json!({"hold_id": hold_id})).await;
    assert_eq!(release.status, 403, "{}", release.body);
    let paid = c
        .post("/v1/booking/confirm", &alice, json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}))
        .await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    let released = c.post("/v1/booking/release", &alice, json!({"hold_id": hold_id})).await;
    assert_eq!(released.status, 409, "a confirmed hold cannot be released: {}", released.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_timeout_completes_later_with_one_booking() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let alice = token("alice", false);
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-2"]})).await;
    let hold_id = hold.body["hold_id"].as_str().unwrap();
    let confirm = c
        .post("/v1/booking/confirm", &alice, json!({"hold_id": hold_id, "payment": {"token": "tok_timeout"}}))
        .await;
    assert!(matches!(confirm.status, 201 | 503), "{}: {}", confirm.status, confirm.body);
    // Either way the booking completes, once.
    let mut status = String::new();
    for _ in 0..100 {
        let h = c.get(&format!("/v1/holds/{hold_id}"), Some(&alice)).await;
        status = h.body["status"].as_str().unwrap_or_default().to_string();
        if status == "confirmed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "confirmed");
    let retry = c
        .post("/v1/booking/confirm", &alice, json!({"hold_id": hold_id, "payment": {"token": "tok_timeout"}}))
        .await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(c.get("/v1/me/bookings", Some(&alice)).await.body["bookings"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let alice = token("alice", false);
    let body = json!({"event_id": event, "ticket_ids": ["A-1-3"]});
    let key = [("Idempotency-Key", "reserve-once-1")];
    let first = c.send("POST", "/v1/booking/reserve", Some(&alice), Some(body.clone()), &key).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = c.send("POST", "/v1/booking/reserve", Some(&alice), Some(body.clone()), &key).await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(second.body, first.body);
    let other = json!({"event_id": event, "ticket_ids": ["A-1-4"]});
    let conflict = c.send("POST", "/v1/booking/reserve", Some(&alice), Some(other), &key).await;
    assert_eq!(conflict.status, 422, "{}", conflict.body);
    assert_eq!(conflict.body["code"], "idempotency_conflict");
    // Confirm: a retry with the same key gets the same booking.
    let confirm = json!({"hold_id": first.body["hold_id"], "payment": {"token": "tok_visa"}});
    let ckey = [("Idempotency-Key", "pay-once-1")];
    let b1 = c.send("POST", "/v1/booking/confirm", Some(&alice), Some(confirm.clone()), &ckey).await;
    let b2 = c.send("POST", "/v1/booking/confirm", Some(&alice), Some(confirm), &ckey).await;
    assert_eq!((b1.status, b2.status), (201, 201), "{} {}", b1.body, b2.body);
    assert_eq!(b1.body["booking_id"], b2.body["booking_id"]);
    let page = c.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(page.body["availability"]["sold"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limit_counts_holds_and_purchases() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 3).await;
    let alice = token("alice", false);
    let two = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-1", "A-1-2"]}))
        .await;
    assert_eq!(two.status, 201);
    let paid = c
        .post(
            "/v1/booking/confirm",
            &alice,
            json!({"hold_id": two.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(paid.status, 201);
    let over = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "section": "GA", "quantity": 2}))
        .await;
    assert_eq!(over.status, 422, "{}", over.body);
    assert_eq!(over.body["code"], "limit_exceeded");
    let fits = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "section": "GA", "quantity": 1}))
        .await;
    assert_eq!(fits.status, 201, "{}", fits.body);
    let zero = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "section": "GA", "quantity": 0}))
        .await;
    assert_eq!(zero.status, 422, "{}", zero.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_problem_json_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let alice = token("alice", false);
    // No token, bad token, wrong role.
    let none = c
        .send(
            "POST",
            "/v1/booking/reserve",
            None,
            Some(json!({"event_id": event, "ticket_ids": ["A-1-1"]})),
            &[],
        )
        .await;
    assert_eq!((none.status, none.body["code"].as_str()), (401, Some("unauthorized")));
    let forged =
        c.post("/v1/booking/reserve", "not.a.jwt", json!({"event_id": event, "ticket_ids": ["A-1-1"]})).await;
    assert_eq!(forged.status, 401);
    let not_admin = c.post("/v1/performers", &alice, json!({"name": "x", "genre": "y"})).await;
    assert_eq!((not_admin.status, not_admin.body["code"].as_str()), (403, Some("forbidden")));
    // Malformed JSON, unknown field, wrong type, missing field.
    let raw = c
        .http
        .post(format!("{}/v1/booking/reserve", c.base))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{\"event_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");
    let unknown = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-1"], "seat": 1}))
        .await;
    assert_eq!((unknown.status, unknown.body["code"].as_str()), (400, Some("invalid_request")));
    assert!(unknown.body["detail"].as_str().unwrap().contains("seat"), "{}", unknown.body);
    let wrong = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "quantity": "two", "section": "GA"}))
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.body["field"], "quantity", "{}", wrong.body);
    let both = c.post("/v1/booking/reserve", &alice, json!({"event_id": event})).await;
    assert_eq!(both.status, 400);
    // Oversized body.
    let big = "x".repeat(2 * 1024 * 1024);
    let huge = c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": [big]})).await;
    assert_eq!((huge.status, huge.body["code"].as_str()), (413, Some("payload_too_large")));
    // The server closes that connection (it does not read 2 MiB it refused); a pooled
    // client could send the next request down it before seeing the close. A new client
    // keeps the test about the server, not about that race.
    let c = node.client();
    // Unknown things.
    let nope =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": "evt_nope", "ticket_ids": ["A-1-1"]})).await;
    assert_eq!(nope.status, 404);
    let no_seat =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["Z-9-9"]})).await;
    assert_eq!(
        (no_seat.status, no_seat.body["field"].as_str()),
        (400, Some("ticket_ids")),
        "{}",
        no_seat.body
    );
    assert_eq!(c.get("/v1/holds/hld_zz_zz", Some(&alice)).await.status, 404);
    assert_eq!(c.get("/v1/nowhere", None).await.status, 404);
    let bad_key = "k".repeat(300);
    let long_key = c
        .send(
            "POST",
            "/v1/booking/reserve",
            Some(&alice),
            Some(json!({"event_id": event, "ticket_ids": ["A-1-1"]})),
            &[("Idempotency-Key", &bad_key)],
        )
        .await;
    assert_eq!(long_key.status, 400);
    // Nothing of that took a seat.
    let page = c.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(page.body["availability"], json!({"available": 40, "held": 0, "sold": 0}));
    // Bad catalog input names the field.
    let admin = token("admin", true);
    let venue = c
        .post("/v1/venues", &admin, json!({"name": "V", "city": "C", "country": "US", "location": {"lat": 95.0, "lon": 0.0}, "sections": [{"name": "A", "kind": "general", "capacity": 5}]}))
        .await;
    assert_eq!(venue.status, 400);
    assert_eq!(venue.body["field"], "location.lat", "{}", venue.body);
    let ev = c
        .post("/v1/events", &admin, json!({"name": "E", "type": "concert", "venue_id": "ven_missing", "starts_at": "2030-01-01T00:00:00Z", "prices": {}}))
        .await;
    assert_eq!((ev.status, ev.body["field"].as_str()), (400, Some("venue_id")), "{}", ev.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_release_cancel_and_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let alice = token("alice", false);
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-2-2"]})).await;
    let hold_id = hold.body["hold_id"].as_str().unwrap();
    let e1 = c.post(&format!("/v1/holds/{hold_id}/extend"), &alice, json!({})).await;
    assert_eq!(e1.status, 200, "{}", e1.body);
    let e2 = c.post(&format!("/v1/holds/{hold_id}/extend"), &alice, json!({})).await;
    assert_eq!(e2.status, 200, "{}", e2.body);
    let e3 = c.post(&format!("/v1/holds/{hold_id}/extend"), &alice, json!({})).await;
    assert_eq!((e3.status, e3.body["code"].as_str()), (422, Some("limit_exceeded")));
    assert!(ms_until(e2.body["expires_at"].as_str().unwrap()) <= 30 * 60 * 1000);
    let released = c.post("/v1/booking/release", &alice, json!({"hold_id": hold_id})).await;
    assert_eq!(released.status, 200, "{}", released.body);
    let admin = token("admin", true);
    let cancelled = c.post(&format!("/v1/events/{event}/cancel"), &admin, json!({})).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let after =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-2-2"]})).await;
    assert_eq!((after.status, after.body["code"].as_str()), (409, Some("event_closed")));
    let doc = c.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    for path in [
        "/v1/venues",
        "/v1/events",
        "/v1/events/{id}/tickets",
        "/v1/booking/reserve",
        "/v1/booking/confirm",
        "/v1/cluster",
    ] {
        assert!(doc.body["paths"].get(path).is_some(), "{path} missing from /openapi.json");
    }
    assert_eq!(c.get("/healthz", None).await.status, 200);
    assert_eq!(c.get("/readyz", None).await.status, 200);
    let metrics = c.get("/metrics", None).await;
    assert!(metrics.body.as_str().unwrap_or_default().contains("boxoffice_http_requests_total"));
    let cluster = c.get("/v1/cluster", None).await;
    assert_eq!(cluster.body["node_id"], 1);
}
