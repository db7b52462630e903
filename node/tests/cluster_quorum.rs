//! Three nodes, two killed: the event's group has no quorum. Booking through the survivor
//! answers 503 `unavailable` with `Retry-After`, quickly (the latency is printed), and
//! browsing the event from the survivor's replica still answers 200.

mod common;

use std::time::{Duration, Instant};

use common::{applied_index, eventually, small_event, token, Cluster};
use serde_json::json;

/// How long an event group may take to elect its first leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// How long the survivor's replica may take to apply the hold before the kills.
const CATCH_UP_MAX: Duration = Duration::from_secs(5);
/// How long to wait after the kills, for the survivor's elections to have failed.
const ELECTIONS_SETTLE: Duration = Duration::from_secs(3);
/// A booking request without quorum must be answered 503 within this long. The goal is 1 s.
const UNAVAILABLE_MAX: Duration = Duration::from_millis(1_500);
/// How long any request here may wait for an answer before it counts as a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_three_down_booking_answers_503_quickly_and_browsing_still_works() {
    let mut cluster = Cluster::start(3).await;
    let event = small_event(&cluster.client(1), 600, 8).await;
    let leader = cluster.wait_leader(&event, LEADER_WAIT).await;
    // The survivor is a follower of the event group: it must notice it has no leader.
    let survivor = cluster.ids().into_iter().rev().find(|id| *id != leader).unwrap();
    let c = cluster.client(survivor);
    let alice = token("alice", false);
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-1"]})).await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    // Before the kills, the survivor's replica applies all the leader has (the hold among it),
    // so that browsing it afterwards has something to show.
    let (cl, ev) = (&cluster, event.as_str());
    eventually(
        &format!("node {survivor} applies what leader {leader} has applied"),
        CATCH_UP_MAX,
        || async move {
            let theirs =
                applied_index(&cl.try_view(leader).await?, ev).ok_or("the leader does not list the group")?;
            let mine = applied_index(&cl.try_view(survivor).await?, ev)
                .ok_or("the survivor does not list the group")?;
            if mine >= theirs {
                Ok(())
            } else {
                Err(format!("node {survivor} applied {mine}, leader {leader} {theirs}"))
            }
        },
    )
    .await;

    for id in cluster.ids() {
        if id != survivor {
            cluster.kill(id);
        }
    }
    eprintln!(
        "killed every node but {survivor} (event group leader was {leader}); waiting {ELECTIONS_SETTLE:?}"
    );
    tokio::time::sleep(ELECTIONS_SETTLE).await;

    let bob = token("bob", false);
    for (what, body) in [
        ("reserve by section", json!({"event_id": event, "section": "GA", "quantity": 1})),
        ("reserve by ticket", json!({"event_id": event, "ticket_ids": ["A-2-1"]})),
    ] {
        let start = Instant::now();
        let a = c
            .try_send("POST", "/v1/booking/reserve", Some(&bob), Some(body), ANSWER_TIMEOUT)
            .await
            .unwrap_or_else(|e| {
                panic!("{what} through node {survivor}: no answer within {ANSWER_TIMEOUT:?}: {e}")
            });
        let took = start.elapsed();
        eprintln!(
            "no quorum: {what} through node {survivor} answered {} in {} ms",
            a.status,
            took.as_millis()
        );
        assert_eq!(a.status, 503, "{what}: {}", a.body);
        assert_eq!(a.body["code"], "unavailable", "{what}: {}", a.body);
        let retry = a.headers.get("retry-after").unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
        assert!(
            retry.to_str().unwrap_or_default().trim().parse::<u64>().is_ok(),
            "{what}: Retry-After {retry:?} is not a number of seconds"
        );
        assert!(took < UNAVAILABLE_MAX, "{what}: 503 took {took:?}, more than {UNAVAILABLE_MAX:?}");
    }

    // Browsing is served by the survivor's replica.
    let page = c.try_send("GET", &format!("/v1/events/{event}"), None, None, ANSWER_TIMEOUT).await.unwrap();
    assert_eq!(page.status, 200, "GET /v1/events/{event} from node {survivor}: {}", page.body);
    assert_eq!(page.body["availability"]["held"], 1, "{}", page.body);
    let map =
        c.try_send("GET", &format!("/v1/events/{event}/tickets"), None, None, ANSWER_TIMEOUT).await.unwrap();
    assert_eq!(map.status, 200, "GET /v1/events/{event}/tickets from node {survivor}: {}", map.body);
    let tickets = map.body["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 40);
    assert!(tickets.iter().any(|t| t["id"] == "A-1-1" && t["status"] == "held"), "{}", map.body);

    // Confirming the live hold is booking too: 503, quickly.
    let start = Instant::now();
    let confirm = c
        .try_send(
            "POST",
            "/v1/booking/confirm",
            Some(&alice),
            Some(json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}})),
            ANSWER_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| {
            panic!("confirm through node {survivor}: no answer within {ANSWER_TIMEOUT:?}: {e}")
        });
    let took = start.elapsed();
    eprintln!(
        "no quorum: confirm through node {survivor} answered {} in {} ms",
        confirm.status,
        took.as_millis()
    );
    assert_eq!(confirm.status, 503, "confirm: {}", confirm.body);
    assert_eq!(confirm.body["code"], "unavailable", "confirm: {}", confirm.body);
    assert!(took < UNAVAILABLE_MAX, "confirm: 503 took {took:?}, more than {UNAVAILABLE_MAX:?}");
}
