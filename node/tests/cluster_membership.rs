//! Three nodes and a stream of reserves through node 2. A fourth node joins with `--join`;
//! then node 1 is removed with the admin endpoint and its replicas move to the others. The
//! reserves keep succeeding throughout (each answered 201, or 503 while a group changes
//! hands), and a booking through the new node works at the end.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{event_at, eventually, members, node_status, placement, token, venue, Cluster, READY_TIMEOUT};
use serde_json::json;

/// Reserves the background loop sends at most (each takes one GA ticket of its user).
const LOOP_RESERVES_MAX: usize = 600;
/// How long the background loop runs at most.
const LOOP_TIME_MAX: Duration = Duration::from_secs(120);
/// Pause between two reserves of the loop.
const LOOP_PAUSE: Duration = Duration::from_millis(50);
/// How long one reserve of the loop may wait for its answer before it counts as a hang.
const LOOP_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Users the loop takes turns with; with the event's per-user limit of 50, room for
/// [`LOOP_RESERVES_MAX`] holds.
const LOOP_USERS: usize = 12;
/// How long the joined node may take to be listed `up` by every node.
const JOIN_WAIT: Duration = Duration::from_secs(30);
/// How long node 1's replicas may take to move after its removal.
const MOVE_WAIT: Duration = Duration::from_secs(30);
/// Share of the loop's reserves that must succeed, in percent.
const LOOP_SUCCESS_MIN_PERCENT: usize = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fourth_node_joins_and_node_1_is_removed_while_bookings_go_on() {
    let mut cluster = Cluster::start(3).await;
    let admin = token("admin", true);
    let venue_id = venue(&cluster.client(1), &admin, 1_000).await;
    let event = event_at(&cluster.client(1), &admin, &venue_id, "Moving Night", 50).await;
    let users: Vec<String> = (0..LOOP_USERS).map(|i| token(&format!("fan{i}"), false)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let reserves = tokio::spawn({
        let (c, stop, event) = (cluster.client(2), stop.clone(), event.clone());
        async move {
            let mut outcomes: Vec<(u128, String)> = Vec::new();
            for i in 0..LOOP_RESERVES_MAX {
                if stop.load(Ordering::Relaxed) || began.elapsed() > LOOP_TIME_MAX {
                    break;
                }
                let body = json!({"event_id": event, "section": "GA", "quantity": 1});
                let answer = c
                    .try_send(
                        "POST",
                        "/v1/booking/reserve",
                        Some(&users[i % LOOP_USERS]),
                        Some(body),
                        LOOP_ANSWER_TIMEOUT,
                    )
                    .await;
                let outcome = match answer {
                    Ok(a) if a.status == 201 => "201".to_string(),
                    Ok(a) if a.status == 503 && a.body["code"] == "unavailable" => "503".to_string(),
                    Ok(a) => format!("{} {}", a.status, a.body),
                    Err(e) => format!("no answer: {e}"),
                };
                outcomes.push((began.elapsed().as_millis(), outcome));
                tokio::time::sleep(LOOP_PAUSE).await;
            }
            outcomes
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A fourth node joins through node 1.
    let joining = Instant::now();
    let joined = cluster.join(1);
    cluster.wait_ready(joined, READY_TIMEOUT).await;
    let cl = &cluster;
    eventually(&format!("every node lists node {joined} up"), JOIN_WAIT, || async move {
        for id in cl.running() {
            let status = node_status(&cl.try_view(id).await?, joined);
            if status.as_deref() != Some("up") {
                return Err(format!("node {id} lists node {joined} as {status:?}"));
            }
        }
        Ok(())
    })
    .await;
    eprintln!("join: node {joined} ready and listed up by all in {} ms", joining.elapsed().as_millis());

    // Node 1 is removed; its replicas move.
    let removing = Instant::now();
    let removed = cluster.client(2).send("DELETE", "/v1/cluster/nodes/1", Some(&admin), None, &[]).await;
    assert_eq!(removed.status, 202, "DELETE /v1/cluster/nodes/1: {}", removed.body);
    let event_ref = event.as_str();
    eventually("no group or placement names node 1, and it is listed removed", MOVE_WAIT, || async move {
        for id in 2..=joined {
            let view = cl.try_view(id).await?;
            for g in view["groups"].as_array().into_iter().flatten() {
                if members(g).contains(&1) {
                    return Err(format!("node {id}: group {} has members {:?}", g["id"], members(g)));
                }
            }
            if let Some((e, r)) = placement(&view).into_iter().find(|(_, r)| r.contains(&1)) {
                return Err(format!("node {id}: event {e} is placed on {r:?}"));
            }
            let status = node_status(&view, 1);
            if status.as_deref() != Some("removed") {
                return Err(format!("node {id} lists node 1 as {status:?}"));
            }
            if placement(&view).get(event_ref).map(Vec::len) != Some(3) {
                return Err(format!(
                    "node {id}: event {event_ref} is placed on {:?}",
                    placement(&view).get(event_ref)
                ));
            }
        }
        Ok(())
    })
    .await;
    eprintln!("remove: node 1's replicas moved in {} ms", removing.elapsed().as_millis());
    assert_eq!(placement(&cluster.view(2).await)[&event], vec![2, 3, 4]);

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = reserves.await.unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, o) in &outcomes {
        *counts.entry(if o == "201" || o == "503" { o.as_str() } else { "other" }).or_default() += 1;
    }
    let odd: Vec<&(u128, String)> = outcomes.iter().filter(|(_, o)| o != "201").take(20).collect();
    eprintln!(
        "reserves through node 2 over {} ms: {} sent, {counts:?}; first non-201s (ms since start): {odd:?}",
        began.elapsed().as_millis(),
        outcomes.len()
    );
    let others: Vec<&(u128, String)> = outcomes.iter().filter(|(_, o)| o != "201" && o != "503").collect();
    assert!(others.is_empty(), "answers other than 201 and 503: {others:?}");
    let ok = counts.get("201").copied().unwrap_or_default();
    assert!(
        ok * 100 >= outcomes.len() * LOOP_SUCCESS_MIN_PERCENT,
        "only {ok} of {} reserves succeeded: {counts:?}",
        outcomes.len()
    );

    // A booking through the new node.
    let c = cluster.client(joined);
    let last = token("last", false);
    let hold =
        c.post("/v1/booking/reserve", &last, json!({"event_id": event, "ticket_ids": ["A-1-1"]})).await;
    assert_eq!(hold.status, 201, "reserve through node {joined}: {}", hold.body);
    let booking = c
        .post(
            "/v1/booking/confirm",
            &last,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(booking.status, 201, "confirm through node {joined}: {}", booking.body);
    let id = booking.body["booking_id"].as_str().unwrap();
    let read = cluster.client(3).get(&format!("/v1/bookings/{id}"), Some(&last)).await;
    assert_eq!(read.status, 200, "booking {id} through node 3: {}", read.body);
}
