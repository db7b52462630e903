//! The peer plane, from outside: a node that hosts no replica of an event serves a buyer's
//! whole path (browse, reserve, hold, extend, confirm, booking, my bookings, queue, release)
//! by asking the replicas over the authenticated gRPC peer service; and headers that nodes
//! used to trust from each other change nothing when a client sends them.

mod common;

use std::time::Duration;

use serde_json::json;

use common::{token, Client};

/// The headers a client could send to pass for a peer, before the peer plane.
const FORGED: [(&str, &str); 2] = [("x-boxoffice-forwarded", "1"), ("x-forwarded-for", "10.9.9.9")];

async fn reserve(c: &Client, user: &str, event: &str, body: serde_json::Value) -> String {
    let mut body = body;
    body["event_id"] = json!(event);
    let hold = c.post("/v1/booking/reserve", &token(user, false), body).await;
    assert_eq!(hold.status, 201, "reserve through {}: {}", c.base, hold.body);
    hold.body["hold_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_a_replica_serves_the_whole_booking_path() {
    let cluster = common::Cluster::start(4).await;
    let event = common::small_event(&cluster.client(1), 600, 8).await;
    let replicas = common::placement(&cluster.view(1).await)[&event].clone();
    let outsider =
        cluster.ids().into_iter().find(|id| !replicas.contains(id)).expect("a node without a replica");
    let c = cluster.client(outsider);
    let dana = token("dana", false);

    let page = c.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.to_string().contains(&event), "{}", page.body);

    let held_before = page.body["availability"]["held"].as_u64().expect("availability.held");
    let hold_id = reserve(&c, "dana", &event, json!({"section": "GA", "quantity": 2})).await;
    // The outsider keeps the page it relayed for a moment, but a write it relayed for the
    // event drops it: the buyer sees their own hold at once (both asks go leader first).
    let page = c.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["availability"]["held"].as_u64(), Some(held_before + 2), "{}", page.body);
    let hold = c.get(&format!("/v1/holds/{hold_id}"), Some(&dana)).await;
    assert_eq!(hold.status, 200, "{}", hold.body);
    assert_eq!(hold.body["tickets"].as_array().map(Vec::len), Some(2), "{}", hold.body);
    // Another user's hold is not found through the outsider either: the user travels in the
    // peer request, not in a header the replica trusts.
    let theirs = c.get(&format!("/v1/holds/{hold_id}"), Some(&token("eve", false))).await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    let extended = c.post(&format!("/v1/holds/{hold_id}/extend"), &dana, json!({})).await;
    assert_eq!(extended.status, 200, "{}", extended.body);

    // The confirm runs on the event's leader (payments in one place), asked by the outsider.
    let booking = c
        .post("/v1/booking/confirm", &dana, json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}))
        .await;
    assert_eq!(booking.status, 201, "{}", booking.body);
    let booking_id = booking.body["booking_id"].as_str().unwrap().to_string();
    let read = c.get(&format!("/v1/bookings/{booking_id}"), Some(&dana)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let mine = c.get("/v1/me/bookings", Some(&dana)).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let ids: Vec<&str> =
        mine.body["bookings"].as_array().unwrap().iter().filter_map(|b| b["booking_id"].as_str()).collect();
    assert_eq!(ids, vec![booking_id.as_str()], "the outsider gathers the bookings from the replicas");

    let other = reserve(&c, "dana", &event, json!({"ticket_ids": ["A-1-1"]})).await;
    let released = c.post("/v1/booking/release", &dana, json!({"hold_id": other})).await;
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(released.body["status"], "released", "{}", released.body);

    // An organizer closes the sale through the outsider: the catalog changes there, and the
    // new end reaches the inventory on the event's leader over the peer plane at once.
    let admin = token("admin", true);
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let closed = c
        .send("PATCH", &format!("/v1/events/{event}"), Some(&admin), Some(json!({"sales_end": now})), &[])
        .await;
    assert_eq!(closed.status, 200, "{}", closed.body);
    let hold =
        c.post("/v1/booking/reserve", &dana, json!({"event_id": event, "ticket_ids": ["A-1-2"]})).await;
    assert_eq!(hold.status, 409, "{}", hold.body);
    assert_eq!(hold.body["code"], "event_closed", "{}", hold.body);

    // An event that does not exist is a 404 through any node, not a 503.
    let missing = c.get("/v1/events/ev_nope", None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_peer_headers_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::Node::start(dir.path());
    let c = node.client();
    let event = common::small_event(&c, 600, 8).await;
    let fay = token("fay", false);

    // Two bookings, then a page of one: the forged headers do not unpage the list.
    for seat in ["A-1-1", "A-1-2"] {
        let hold_id = reserve(&c, "fay", &event, json!({"ticket_ids": [seat]})).await;
        let booking = c
            .post("/v1/booking/confirm", &fay, json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}))
            .await;
        assert_eq!(booking.status, 201, "{}", booking.body);
    }
    let page = c.send("GET", "/v1/me/bookings?limit=1", Some(&fay), None, &FORGED).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["bookings"].as_array().map(Vec::len), Some(1), "{}", page.body);
    assert!(page.body["next_cursor"].is_string(), "still paged: {}", page.body);

    // Stream limits count the connection's address, whatever address a header names: a
    // client naming a new address on every stream still gets 429 past the per-client cap.
    let mut open = Vec::new();
    let mut refused = None;
    for i in 0..64 {
        let forged_ip = format!("10.9.{}.{}", i / 250, i % 250 + 1);
        let response = c
            .http
            .get(format!("{}/v1/events/{event}/tickets/stream", c.base))
            .header("x-boxoffice-forwarded", "1")
            .header("x-forwarded-for", forged_ip)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("stream request");
        if response.status() == 429 {
            refused = Some(i);
            break;
        }
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    assert_eq!(refused, Some(32), "the 33rd stream from one address is refused, forged headers or not");
}
