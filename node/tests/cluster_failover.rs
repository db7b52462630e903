//! Three nodes; kill -9 of an event group's leader. Bookings made through a node that is not
//! the leader are acknowledged; after the kill a reserve through a survivor succeeds within
//! [`FAILOVER_MAX`] (the measured time is printed; the goal is 2 s); every booking
//! acknowledged before the kill is still there; the killed node, restarted on the same
//! addresses and data, catches up with the new leader.

mod common;

use std::time::{Duration, Instant};

use common::{applied_index, eventually, small_event, token, Cluster, READY_TIMEOUT};
use serde_json::json;

/// How long an event group may take to elect its first leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// A reserve through a survivor must succeed within this long after the leader's kill. The
/// goal is 2 s, measured and printed; this bound leaves room for a slow, shared machine.
const FAILOVER_MAX: Duration = Duration::from_secs(10);
/// How long one reserve attempt during the failover may wait for its answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two reserve attempts during the failover.
const ATTEMPT_PAUSE: Duration = Duration::from_millis(50);
/// How long a surviving replica may take to show what was acknowledged before the kill.
const BROWSE_CATCH_UP_MAX: Duration = Duration::from_secs(5);
/// How long the restarted node may take to apply what the leader has applied.
const CATCH_UP_MAX: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_group_leader_is_replaced_and_no_acknowledged_booking_is_lost() {
    let mut cluster = Cluster::start(3).await;
    let event = small_event(&cluster.client(1), 600, 20).await;
    let leader = cluster.wait_leader(&event, LEADER_WAIT).await;
    let via = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    eprintln!("event {event}: group leader is node {leader}; booking through node {via}");
    let c = &cluster.client(via);

    // Bookings and a live hold, acknowledged through a node that is not the leader.
    let mut acked = Vec::new();
    for (user, seat) in [("alice", "A-1-1"), ("bob", "A-1-2"), ("carol", "A-1-3")] {
        let t = token(user, false);
        let hold = c.post("/v1/booking/reserve", &t, json!({"event_id": event, "ticket_ids": [seat]})).await;
        assert_eq!(hold.status, 201, "reserve {seat} through node {via}: {}", hold.body);
        let booking = c
            .post(
                "/v1/booking/confirm",
                &t,
                json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
            )
            .await;
        assert_eq!(booking.status, 201, "confirm {seat} through node {via}: {}", booking.body);
        acked.push((t, booking.body["booking_id"].as_str().unwrap().to_string(), seat));
    }
    let dave = token("dave", false);
    let held =
        c.post("/v1/booking/reserve", &dave, json!({"event_id": event, "ticket_ids": ["A-1-4"]})).await;
    assert_eq!(held.status, 201, "reserve A-1-4 through node {via}: {}", held.body);
    let held_id = held.body["hold_id"].as_str().unwrap().to_string();

    cluster.kill(leader);
    let killed = Instant::now();
    let erin = token("erin", false);
    let mut tries = Vec::new();
    loop {
        let answer = c
            .try_send(
                "POST",
                "/v1/booking/reserve",
                Some(&erin),
                Some(json!({"event_id": event, "section": "GA", "quantity": 1})),
                ATTEMPT_TIMEOUT,
            )
            .await;
        let at = killed.elapsed();
        match answer {
            Ok(a) if a.status == 201 => break,
            Ok(a) if a.status == 503 => {
                assert_eq!(a.body["code"], "unavailable", "{}", a.body);
                tries.push(format!("{} ms: 503", at.as_millis()));
            }
            // A request forwarded to the leader just as it died: the survivor cannot know
            // whether it was proposed (docs/api.md: retry, or look the hold up).
            Ok(a) if a.status == 504 => {
                assert_eq!(a.body["code"], "outcome_unknown", "{}", a.body);
                assert!(a.body["hold_id"].is_string(), "504 names the hold to look up: {}", a.body);
                tries.push(format!("{} ms: 504", at.as_millis()));
            }
            Ok(a) => panic!(
                "reserve through node {via} {} ms after the kill answered {} {}; earlier tries: {tries:?}",
                at.as_millis(),
                a.status,
                a.body
            ),
            Err(e) => tries.push(format!("{} ms: no answer ({e})", at.as_millis())),
        }
        assert!(
            at < FAILOVER_MAX,
            "no reserve through node {via} succeeded within {FAILOVER_MAX:?} of killing leader {leader}; \
             tries: {tries:?}"
        );
        tokio::time::sleep(ATTEMPT_PAUSE).await;
    }
    let failover = killed.elapsed();
    eprintln!(
        "failover: a reserve through node {via} succeeded {} ms after kill -9 of group leader node {leader} \
         (goal 2000 ms; {} tries before it, first {:?}, last {:?})",
        failover.as_millis(),
        tries.len(),
        tries.first(),
        tries.last()
    );
    assert!(failover < FAILOVER_MAX);

    // Everything acknowledged before the kill is there, through each survivor.
    for survivor in cluster.running() {
        let c = cluster.client(survivor);
        for (t, id, seat) in &acked {
            let read = c.get(&format!("/v1/bookings/{id}"), Some(t)).await;
            assert_eq!(read.status, 200, "booking {id} through node {survivor}: {}", read.body);
            assert_eq!(read.body["tickets"], json!([seat]), "booking {id} through node {survivor}");
        }
        let hold = c.get(&format!("/v1/holds/{held_id}"), Some(&dave)).await;
        assert_eq!(hold.status, 200, "hold {held_id} through node {survivor}: {}", hold.body);
        assert_eq!(hold.body["status"], "active", "hold {held_id} through node {survivor}");
    }
    // Browsing may be served by a replica that is a little behind; it catches up.
    let ev = event.as_str();
    eventually(&format!("node {via}'s replica shows the 3 seats sold"), BROWSE_CATCH_UP_MAX, || async move {
        let page = c.get(&format!("/v1/events/{ev}"), None).await;
        match page.body["availability"]["sold"].as_u64() {
            Some(3) if page.status == 200 => Ok(()),
            _ => Err(format!("GET /v1/events/{ev}: {} {}", page.status, page.body)),
        }
    })
    .await;

    // The killed node comes back on the same addresses and data and catches up.
    cluster.restart(leader);
    let restarted = Instant::now();
    cluster.wait_ready(leader, READY_TIMEOUT).await;
    let new_leader = cluster.wait_leader(&event, LEADER_WAIT).await;
    let (cluster, event) = (&cluster, event.as_str());
    let (mine, theirs) = eventually(
        &format!("restarted node {leader} applies what leader {new_leader} has applied in group {event}"),
        CATCH_UP_MAX,
        || async move {
            let theirs = applied_index(&cluster.try_view(new_leader).await?, event)
                .ok_or_else(|| format!("leader {new_leader} does not list group {event}"))?;
            let view = cluster.try_view(leader).await?;
            let mine = applied_index(&view, event)
                .ok_or_else(|| format!("node {leader} does not list group {event}: {}", view["groups"]))?;
            if mine >= theirs {
                Ok((mine, theirs))
            } else {
                Err(format!("node {leader} applied {mine}, leader {new_leader} applied {theirs}"))
            }
        },
    )
    .await;
    eprintln!(
        "catch-up: restarted node {leader} reached applied index {mine} (leader {new_leader}: {theirs}) \
         {} ms after its restart",
        restarted.elapsed().as_millis()
    );
    // And it serves the bookings made before it died.
    let (t, id, _) = &acked[0];
    let read = cluster.client(leader).get(&format!("/v1/bookings/{id}"), Some(t)).await;
    assert_eq!(read.status, 200, "booking {id} through the restarted node {leader}: {}", read.body);
}
