//! Webhooks over three real processes and a small receiving server: every notice of an
//! event's story — bookings confirmed, a hold that expired, the sell-out, refunds, a
//! waiting-list offer, the event's cancellation — reaches the endpoint, signed, and exactly
//! once after deduplication on `Boxoffice-Delivery`, although the event's leader is killed
//! (`kill -9`) in the middle of it. The receiver is slow (deliveries are in flight at the
//! kill, so the next leader sends them again) and refuses the first attempt of some notices,
//! so retries are exercised too. Then the delivery log, a redelivery, and removal.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use common::{eventually, token, Client, Cluster};

const SECRET: &str = "whsec-test-0123456789abcdef";
/// Every event type there is.
const ALL_TYPES: [&str; 6] = [
    "booking.confirmed",
    "booking.refunded",
    "hold.expired",
    "event.sold_out",
    "waitlist.offered",
    "event.cancelled",
];

/// How long the receiver takes to answer.
const RECEIVER_DELAY: Duration = Duration::from_millis(300);

/// One POST the receiver got.
#[derive(Clone, Debug)]
struct Got {
    delivery: String,
    signature: String,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Notice ids already refused once (the receiver refuses the first attempt of every
    /// third notice).
    refused: Arc<Mutex<BTreeSet<String>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let delivery = header("boxoffice-delivery");
    r.got.lock().unwrap().push(Got {
        delivery: delivery.clone(),
        signature: header("boxoffice-signature"),
        body,
    });
    // A slow endpoint: deliveries are still in flight (received, not yet acknowledged in the
    // log) when the leader dies, so its successor sends them again.
    tokio::time::sleep(RECEIVER_DELAY).await;
    let seq: u64 = delivery.rsplit('_').next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if seq.is_multiple_of(3) && r.refused.lock().unwrap().insert(delivery) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::OK
}

/// Whether `sig` (`t=<t>,v1=<hex>`) signs `body` with [`SECRET`], made within 5 minutes.
fn signed(sig: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    t.abs_diff(now) < 300 && mac.verify_slice(&v1).is_ok()
}

async fn book(c: &Client, user: &str, event: &str, quantity: u32) -> Value {
    let hold = c
        .post("/v1/booking/reserve", user, json!({"event_id": event, "section": "GA", "quantity": quantity}))
        .await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let b = c
        .post(
            "/v1/booking/confirm",
            user,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.body);
    b.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notice_arrives_signed_and_once_after_dedupe_across_a_leader_kill() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(receiver.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut cluster = Cluster::start(3).await;
    let (c1, c2) = (cluster.client(1), cluster.client(2));
    let admin = token("root", true);
    let alice = token("alice", false);

    // Registration, and what it refuses.
    let bad = [
        (json!({"url": "ftp://x", "events": ["booking.confirmed"], "secret": SECRET}), 400, "url"),
        (json!({"url": url, "events": ["booking.made"], "secret": SECRET}), 400, "events"),
        (json!({"url": url, "events": [], "secret": SECRET}), 400, "events"),
        (json!({"url": url, "events": ["booking.confirmed"], "secret": "short"}), 400, "secret"),
    ];
    for (body, status, field) in bad {
        let a = c1.post("/v1/webhooks", &admin, body.clone()).await;
        assert_eq!((a.status, a.body["field"].as_str()), (status, Some(field)), "{body}: {}", a.body);
    }
    let not_admin =
        c1.post("/v1/webhooks", &alice, json!({"url": url, "events": ALL_TYPES, "secret": SECRET})).await;
    assert_eq!(not_admin.status, 403, "{}", not_admin.body);
    let made =
        c1.post("/v1/webhooks", &admin, json!({"url": url, "events": ALL_TYPES, "secret": SECRET})).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert!(made.body.get("secret").is_none(), "the secret is never shown: {}", made.body);
    let hook_id = made.body["id"].as_str().unwrap().to_string();
    eventually("the endpoint is listed on another node", Duration::from_secs(5), || {
        let (c2, admin, hook_id) = (c2.clone(), admin.clone(), hook_id.clone());
        async move {
            let l = c2.get("/v1/webhooks", Some(&admin)).await;
            let ids: Vec<&str> = l.body["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w["id"].as_str())
                .collect();
            if ids.contains(&hook_id.as_str()) {
                Ok(())
            } else {
                Err(l.body.to_string())
            }
        }
    })
    .await;

    // An event of 4 general places, holds of 3 s.
    let venue = c1
        .post("/v1/venues", &admin, json!({
            "name": "Hook Hall", "city": "Springfield", "country": "US", "location": {"lat": 40.0, "lon": -75.0},
            "sections": [{"name": "GA", "kind": "general", "capacity": 4}]
        }))
        .await;
    assert_eq!(venue.status, 201, "{}", venue.body);
    let event = c1
        .post("/v1/events", &admin, json!({
            "name": "Hook Night", "type": "concert", "venue_id": venue.body["id"], "starts_at": "2030-01-01T20:00:00Z",
            "prices": {"GA": 2500}, "currency": "USD", "per_user_limit": 4, "hold_seconds": 3
        }))
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    let event = event.body["id"].as_str().unwrap().to_string();
    let [ann, bob, cat, dan, eve] = ["ann", "bob", "cat", "dan", "eve"].map(|u| token(u, false));

    let mut want: BTreeSet<(String, String)> = BTreeSet::new();
    let b_ann = book(&c1, &ann, &event, 1).await;
    let bob_hold = c2
        .post("/v1/booking/reserve", &bob, json!({"event_id": event, "section": "GA", "quantity": 1}))
        .await;
    assert_eq!(bob_hold.status, 201, "{}", bob_hold.body);
    let b_cat = book(&c2, &cat, &event, 1).await;

    // Kill the event's leader right after; a node that survives goes on.
    let leader = cluster.wait_leader(&event, Duration::from_secs(10)).await;
    cluster.kill(leader);
    let alive = cluster.running()[0];
    let c = cluster.client(alive);
    // bob's hold runs out; dan takes the last two places: sold out.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let b_dan = book(&c, &dan, &event, 2).await;
    // ann cancels: refunded, one place free; eve joins the waiting list and is offered it.
    let cancelled = c
        .post(&format!("/v1/bookings/{}/cancel", b_ann["booking_id"].as_str().unwrap()), &ann, json!(null))
        .await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (200, Some("refunded")),
        "{}",
        cancelled.body
    );
    let offer =
        c.post(&format!("/v1/events/{event}/waitlist"), &eve, json!({"section": "GA", "quantity": 1})).await;
    assert_eq!((offer.status, offer.body["status"].as_str()), (201, Some("offered")), "{}", offer.body);
    // The organizer cancels the event: every booking left is refunded.
    let gone = c.post(&format!("/v1/events/{event}/cancel"), &admin, json!(null)).await;
    assert_eq!(gone.status, 200, "{}", gone.body);

    for b in [&b_ann, &b_cat, &b_dan] {
        let id = b["booking_id"].as_str().unwrap().to_string();
        want.insert(("booking.confirmed".into(), id.clone()));
        want.insert(("booking.refunded".into(), id));
    }
    want.insert(("hold.expired".into(), bob_hold.body["hold_id"].as_str().unwrap().into()));
    let offer_hold = offer.body["offer"]["hold_id"].as_str().unwrap().to_string();
    want.insert(("waitlist.offered".into(), offer_hold.clone()));
    // The offer lapses too (the event is cancelled: nobody can pay it).
    want.insert(("hold.expired".into(), offer_hold));
    want.insert(("event.sold_out".into(), event.clone()));
    want.insert(("event.cancelled".into(), event.clone()));

    // Everything arrives (retries included), deduplicated on the delivery id.
    let subject = |v: &Value| -> String {
        let d = &v["data"];
        d["booking_id"]
            .as_str()
            .or(d["hold_id"].as_str())
            .or(v["event_id"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let seen = || -> BTreeMap<String, (String, String)> {
        let got = receiver.got.lock().unwrap().clone();
        let mut by_id = BTreeMap::new();
        for g in got {
            let v: Value = serde_json::from_str(&g.body).unwrap_or(Value::Null);
            by_id.insert(g.delivery.clone(), (v["type"].as_str().unwrap_or("").to_string(), subject(&v)));
        }
        by_id
    };
    eventually("every notice reached the endpoint", Duration::from_secs(60), || {
        let have: BTreeSet<(String, String)> = seen().into_values().collect();
        let missing: Vec<_> = want.difference(&have).cloned().collect();
        async move {
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?}"))
            }
        }
    })
    .await;
    // Nothing else comes (give stragglers a moment): one notice per thing that happened.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_id = seen();
    let have: Vec<(String, String)> = by_id.values().cloned().collect();
    let distinct: BTreeSet<(String, String)> = have.iter().cloned().collect();
    assert_eq!(have.len(), distinct.len(), "one delivery id per notice: {by_id:?}");
    assert_eq!(distinct, want, "exactly the notices of what happened");
    let got = receiver.got.lock().unwrap().clone();
    for g in &got {
        assert!(signed(&g.signature, &g.body), "a valid signature on {}: {}", g.delivery, g.signature);
        let v: Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["id"], g.delivery.as_str(), "the body's id is the delivery id");
        assert!(ALL_TYPES.contains(&v["type"].as_str().unwrap()), "{v}");
    }
    let refused = receiver.refused.lock().unwrap().len();
    assert!(refused > 0, "some first attempts were refused, and retried");
    let mut posts: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &got {
        *posts.entry(g.delivery.as_str()).or_default() += 1;
    }
    let again = posts.values().filter(|n| **n > 1).count();
    eprintln!(
        "webhooks: {} POSTs for {} notices ({refused} refused once and retried; {again} notices sent more \
         than once), leader {leader} killed",
        got.len(),
        want.len()
    );

    // The delivery log (gathered from the nodes alive), a redelivery, and removal.
    let log = c.get(&format!("/v1/webhooks/{hook_id}/deliveries"), Some(&admin)).await;
    assert_eq!(log.status, 200, "{}", log.body);
    let entries = log.body["deliveries"].as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty(), "{}", log.body);
    let one = entries.iter().find(|d| d["status"] == "delivered").expect("a delivered one").clone();
    let before = receiver.got.lock().unwrap().len();
    let again = c
        .post(
            &format!("/v1/webhooks/{hook_id}/deliveries/{}/redeliver", one["id"].as_str().unwrap()),
            &admin,
            json!(null),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let last = receiver.got.lock().unwrap().last().cloned().unwrap();
    assert_eq!(receiver.got.lock().unwrap().len(), before + 1);
    assert_eq!(last.delivery, one["notice_id"].as_str().unwrap(), "a redelivery keeps the notice id");
    let nope =
        c.post(&format!("/v1/webhooks/{hook_id}/deliveries/whd_99_1/redeliver"), &admin, json!(null)).await;
    assert!(matches!(nope.status, 404 | 503), "{}", nope.body);
    // A bad query is a problem+json 400 naming the parameter (what the fuzzer once found).
    for (q, field) in [("since=1", "since"), ("limit=0", "limit"), ("limit=501", "limit")] {
        let a = c.get(&format!("/v1/webhooks/{hook_id}/deliveries?{q}"), Some(&admin)).await;
        let ct = a.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(
            (a.status, a.body["field"].as_str(), ct.as_str()),
            (400, Some(field), "application/problem+json"),
            "{q}: {}",
            a.body
        );
    }
    let removed = c.send("DELETE", &format!("/v1/webhooks/{hook_id}"), Some(&admin), None, &[]).await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    let again = c.send("DELETE", &format!("/v1/webhooks/{hook_id}"), Some(&admin), None, &[]).await;
    assert_eq!(again.status, 404, "{}", again.body);
    server.abort();
}
