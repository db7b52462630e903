//! The waiting list over three real processes: buyers join a sold-out section through one
//! node, the seats come back through another, and the first entry that fits is offered
//! them at once (read on its stream from a third node, within a second of the release),
//! confirms the offer with a card; an offer left to lapse goes to the next entry; leaving
//! the list gives the offer's seats back.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, token, venue, Client, Cluster};
use serde_json::{json, Value};

/// How long an offer stays the entry's (the event's `waitlist_offer_seconds`).
const OFFER_SECONDS: u64 = 3;
/// The most an entry may wait, after the release that freed its seats, to see its offer.
const OFFER_SEEN_MAX: Duration = Duration::from_secs(1);

async fn entry(c: &Client, event: &str, user: &str) -> (u16, Value) {
    let a = c.get(&format!("/v1/events/{event}/waitlist/me"), Some(user)).await;
    (a.status, a.body)
}

/// Wait until the event page (which a node may serve from a short-lived relayed copy) shows
/// `want` as the event's availability.
async fn availability_is(c: &Client, event: &str, want: Value) {
    eventually("the event page's availability", Duration::from_secs(5), || {
        let (c, path, want) = (c.clone(), format!("/v1/events/{event}"), want.clone());
        async move {
            let got = c.get(&path, None).await.body["availability"].clone();
            if got == want {
                Ok(())
            } else {
                Err(got.to_string())
            }
        }
    })
    .await
}

/// Read SSE text from `stream` until it contains `needle`, at most `limit`.
async fn read_until(stream: &mut reqwest::Response, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut text = String::new();
    while !text.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within {limit:?}; got {text:?}"));
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_seat_is_offered_to_the_first_entry_that_fits_and_a_lapsed_offer_moves_on() {
    let cluster = Cluster::start(3).await;
    let (c1, c2, c3) = (cluster.client(1), cluster.client(2), cluster.client(3));
    let admin = token("root", true);
    let venue_id = venue(&c1, &admin, 4).await;
    let created = c1
        .post(
            "/v1/events",
            &admin,
            json!({
                "name": "Waitlist Night", "type": "concert", "venue_id": venue_id,
                "starts_at": "2030-01-01T20:00:00Z", "prices": {"A": 5000, "GA": 2500}, "currency": "USD",
                "per_user_limit": 4, "hold_seconds": 600, "waitlist_offer_seconds": OFFER_SECONDS
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["waitlist_offer_seconds"], OFFER_SECONDS, "{}", created.body);
    let event = created.body["id"].as_str().unwrap().to_string();
    let [ann, bob, cat, dan, eve] = ["ann", "bob", "cat", "dan", "eve"].map(|u| token(u, false));
    let join = format!("/v1/events/{event}/waitlist");
    let me = format!("/v1/events/{event}/waitlist/me");

    // Seats free: a join is offered at once.
    let now = c1.post(&join, &eve, json!({"section": "A", "quantity": 2})).await;
    assert_eq!((now.status, now.body["status"].as_str()), (201, Some("offered")), "{}", now.body);
    assert_eq!(now.body["offer"]["tickets"].as_array().map(Vec::len), Some(2), "{}", now.body);
    let left = c2.send("DELETE", &me, Some(&eve), None, &[]).await;
    assert_eq!(left.status, 204, "{}", left.body);
    availability_is(&c1, &event, json!({"available": 24, "held": 0, "sold": 0})).await;

    // ann takes the whole general section; bob, cat and dan wait, in that order.
    let all = c1
        .post("/v1/booking/reserve", &ann, json!({"event_id": event, "section": "GA", "quantity": 4}))
        .await;
    assert_eq!(all.status, 201, "{}", all.body);
    for (i, (user, quantity)) in [(&bob, 2), (&cat, 2), (&dan, 1)].into_iter().enumerate() {
        let a = c1.post(&join, user, json!({"section": "GA", "quantity": quantity})).await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(
            (a.body["status"].as_str(), a.body["position"].as_u64()),
            (Some("waiting"), Some(i as u64 + 1))
        );
        assert_eq!(a.body["offer"], Value::Null);
    }

    // What a client gets wrong is refused with the codes of a reserve, and changes nothing.
    let twice = c2.post(&join, &bob, json!({"section": "GA", "quantity": 1})).await;
    assert_eq!((twice.status, twice.body["code"].as_str()), (409, Some("conflict")), "{}", twice.body);
    let none = c1.post(&join, &eve, json!({"section": "GA", "quantity": 0})).await;
    assert_eq!((none.status, none.body["code"].as_str()), (422, Some("limit_exceeded")), "{}", none.body);
    let nowhere = c1.post(&join, &eve, json!({"section": "Z", "quantity": 1})).await;
    assert_eq!(nowhere.status, 400, "{}", nowhere.body);
    let extra = c1.post(&join, &eve, json!({"section": "GA", "quantity": 1, "seat": "x"})).await;
    assert_eq!(extra.status, 400, "{}", extra.body);
    let unknown =
        c1.post("/v1/events/evt_nope/waitlist", &eve, json!({"section": "GA", "quantity": 1})).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let anonymous = c1.send("POST", &join, None, Some(json!({"section": "GA", "quantity": 1})), &[]).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(entry(&c3, &event, &eve).await.0, 404);
    assert_eq!(entry(&c3, &event, &cat).await.1["position"], 2);

    // bob follows his entry on node 2; ann releases through node 3.
    let mut stream = c2.http.get(format!("{}{me}/stream", c2.base)).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    read_until(&mut stream, "\"waiting\"", Duration::from_secs(5)).await;
    let released = c3.post("/v1/booking/release", &ann, json!({"hold_id": all.body["hold_id"]})).await;
    assert_eq!(released.status, 200, "{}", released.body);
    let at = Instant::now();
    read_until(&mut stream, "\"offered\"", OFFER_SEEN_MAX).await;
    eprintln!("waitlist: bob saw his offer {} ms after the release answered", at.elapsed().as_millis());

    // bob (first, 2) and cat (next, 2) are offered the four places; dan (1) still waits.
    let (_, b) = entry(&c1, &event, &bob).await;
    let (_, c) = entry(&c1, &event, &cat).await;
    let (_, d) = entry(&c1, &event, &dan).await;
    assert_eq!((b["status"].as_str(), c["status"].as_str()), (Some("offered"), Some("offered")));
    assert_eq!((d["status"].as_str(), d["position"].as_u64()), (Some("waiting"), Some(1)), "{d}");
    availability_is(&c1, &event, json!({"available": 20, "held": 4, "sold": 0})).await;

    // bob pays; his entry is done and his stream says so.
    let booked = c3
        .post(
            "/v1/booking/confirm",
            &bob,
            json!({"hold_id": b["offer"]["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    assert_eq!(booked.body["tickets"], b["offer"]["tickets"], "{}", booked.body);
    read_until(&mut stream, "event: ended", Duration::from_secs(5)).await;
    assert_eq!(entry(&c1, &event, &bob).await.0, 404);

    // cat lets her offer lapse: dan gets one of its places, the other goes back on sale.
    let d = eventually("cat's offer lapses to dan", Duration::from_secs(OFFER_SECONDS + 10), || {
        let (c, event, dan) = (c2.clone(), event.clone(), dan.clone());
        async move {
            let (_, d) = entry(&c, &event, &dan).await;
            if d["status"] == "offered" {
                Ok(d)
            } else {
                Err(d.to_string())
            }
        }
    })
    .await;
    assert_eq!(d["offer"]["tickets"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(entry(&c1, &event, &cat).await.0, 404, "a lapsed offer ends the entry");
    availability_is(&c1, &event, json!({"available": 21, "held": 1, "sold": 2})).await;

    // dan leaves: his offer's place is back on sale, sold to the next buyer who asks.
    let gone = c1.send("DELETE", &me, Some(&dan), None, &[]).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    let again = c1.send("DELETE", &me, Some(&dan), None, &[]).await;
    assert_eq!(again.status, 404, "{}", again.body);
    let last = c2
        .post("/v1/booking/reserve", &eve, json!({"event_id": event, "section": "GA", "quantity": 2}))
        .await;
    assert_eq!(last.status, 201, "{}", last.body);
    availability_is(&c1, &event, json!({"available": 20, "held": 2, "sold": 2})).await;
}
