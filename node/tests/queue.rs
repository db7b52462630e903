//! The waiting queue over three real processes: 200 concurrent joins through all nodes get
//! unique places; at the on-sale time the pre-queue is shuffled into an order every node
//! agrees on and stays ahead of later joiners; at most `max_admitted` shoppers are admitted
//! at once; a non-admitted reserve is refused; and when an admitted shopper books, the next
//! in line is admitted and told so on their queue stream.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{eventually, token, venue, Client, Cluster};
use serde_json::{json, Value};

const JOINERS: usize = 200;
const MAX_ADMITTED: u64 = 2;
/// The sale opens this long after the event is created: the joins happen before it.
const OPENS_IN: Duration = Duration::from_secs(6);

fn user_token(keys: &api::AuthKeys, n: usize) -> String {
    keys.mint(&format!("fan{n:03}"), false, 3_600)
}

async fn place(c: &Client, event: &str, tok: &str) -> Value {
    let a = c.get(&format!("/v1/events/{event}/queue/me"), Some(tok)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fair_queue_across_three_nodes() {
    let cluster = Cluster::start(3).await;
    let clients: Vec<Client> = (1..=3).map(|id| cluster.client(id)).collect();
    let keys = api::AuthKeys::new(common::SECRET.as_bytes());
    let admin = token("admin", true);
    let venue_id = venue(&clients[0], &admin, 50).await;
    let opens_at = time::OffsetDateTime::now_utc() + time::Duration::seconds(OPENS_IN.as_secs() as i64);
    let created = Instant::now();
    let event = clients[0]
        .post(
            "/v1/events",
            &admin,
            json!({
                "name": "Hot Show", "type": "concert", "venue_id": venue_id,
                "starts_at": "2030-01-01T20:00:00Z",
                "on_sale_at": opens_at.format(&time::format_description::well_known::Rfc3339).unwrap(),
                "prices": {"A": 5000, "GA": 2500}, "per_user_limit": 2,
                "queue": {"enabled": true, "max_admitted": MAX_ADMITTED, "admission_seconds": 60}
            }),
        )
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    let event = event.body["id"].as_str().unwrap().to_string();

    // 200 joins at once, spread over the three nodes, before the sale opens.
    let mut joins = Vec::new();
    for n in 0..JOINERS {
        let (c, event, tok) = (clients[n % 3].clone(), event.clone(), user_token(&keys, n));
        joins.push(tokio::spawn(async move {
            c.send("POST", &format!("/v1/events/{event}/queue"), Some(&tok), None, &[]).await
        }));
    }
    let mut positions = BTreeSet::new();
    for j in joins {
        let a = j.await.unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["status"], "waiting");
        positions.insert(a.body["position"].as_u64().unwrap());
    }
    assert!(created.elapsed() < OPENS_IN, "the joins must land before the sale opens; raise OPENS_IN");
    assert_eq!(positions, (1..=JOINERS as u64).collect(), "200 unique places 1..200");
    // Joining twice returns the same place.
    let again = clients[1]
        .send("POST", &format!("/v1/events/{event}/queue"), Some(&user_token(&keys, 7)), None, &[])
        .await;
    let before = place(&clients[1], &event, &user_token(&keys, 7)).await;
    assert_eq!(again.body["position"], before["position"]);

    // Nobody is admitted before the sale: a reserve is refused.
    let early = clients[2]
        .post(
            "/v1/booking/reserve",
            &user_token(&keys, 0),
            json!({"event_id": event, "section": "GA", "quantity": 1}),
        )
        .await;
    assert!(matches!(early.status, 403 | 409), "{}", early.body);

    // After the opening: admitted shoppers appear, at most MAX_ADMITTED.
    tokio::time::sleep(OPENS_IN.saturating_sub(created.elapsed())).await;
    let late = user_token(&keys, 999);
    let late_join =
        clients[2].send("POST", &format!("/v1/events/{event}/queue"), Some(&late), None, &[]).await;
    assert_eq!(late_join.status, 200, "{}", late_join.body);
    let order = eventually("two admitted shoppers", Duration::from_secs(10), || {
        let (clients, event, keys) = (clients.clone(), event.clone(), &keys);
        async move {
            let mut by_node: Vec<BTreeMap<usize, (String, u64)>> = Vec::new();
            for c in &clients {
                let mut view = BTreeMap::new();
                for n in 0..JOINERS {
                    let p = place(c, &event, &user_token(keys, n)).await;
                    view.insert(
                        n,
                        (p["status"].as_str().unwrap().to_string(), p["position"].as_u64().unwrap()),
                    );
                }
                by_node.push(view);
            }
            let admitted = by_node[0].values().filter(|(s, _)| s == "admitted").count() as u64;
            if admitted == MAX_ADMITTED {
                Ok(by_node)
            } else {
                Err(format!("{admitted} admitted"))
            }
        }
    })
    .await;
    assert!(order.iter().all(|v| *v == order[0]), "every node sees the same order");
    let waiting: BTreeMap<u64, usize> =
        order[0].iter().filter(|(_, (s, _))| s == "waiting").map(|(n, (_, p))| (*p, *n)).collect();
    let shuffled: Vec<usize> = waiting.values().copied().collect();
    assert_eq!(shuffled.len(), JOINERS - MAX_ADMITTED as usize);
    assert_ne!(
        shuffled,
        (0..JOINERS).filter(|n| waiting.values().any(|m| m == n)).collect::<Vec<_>>(),
        "shuffled, not FIFO"
    );
    let late_place = place(&clients[0], &event, &late).await;
    assert_eq!(
        late_place["position"].as_u64(),
        Some((JOINERS - MAX_ADMITTED as usize + 1) as u64),
        "later joiners queue behind the pre-queue"
    );

    // A waiting shopper cannot reserve.
    let next_in_line = *waiting.values().next().unwrap();
    let refused = clients[0]
        .post(
            "/v1/booking/reserve",
            &user_token(&keys, next_in_line),
            json!({"event_id": event, "section": "GA", "quantity": 1}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (403, Some("queue_admission_required")),
        "{}",
        refused.body
    );

    // The next in line watches their place; an admitted shopper books; they are admitted.
    let stream_tok = user_token(&keys, next_in_line);
    let mut stream = clients[1]
        .http
        .get(format!("{}/v1/events/{event}/queue/me/stream", clients[1].base))
        .bearer_auth(&stream_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let shopper = *order[0].iter().find(|(_, (s, _))| s == "admitted").unwrap().0;
    let tok = user_token(&keys, shopper);
    let hold = clients[2]
        .post("/v1/booking/reserve", &tok, json!({"event_id": event, "section": "GA", "quantity": 1}))
        .await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let booked = clients[2]
        .post(
            "/v1/booking/confirm",
            &tok,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let started = Instant::now();
    let mut text = String::new();
    while !text.contains("\"admitted\"") {
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await.expect("notified in time");
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
    }
    eprintln!(
        "queue: the next shopper was notified {} ms after a booking freed a place",
        started.elapsed().as_millis()
    );
    let admitted = place(&clients[0], &event, &stream_tok).await;
    assert_eq!(admitted["status"], "admitted");
    let count = (0..JOINERS).filter(|n| order[0].contains_key(n)).count();
    assert_eq!(count, JOINERS);
}
