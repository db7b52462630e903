//! Issue 13's long run, bounded: five nodes and a stream of reserves; one node is killed and
//! its disk lost for good. After the dead time (`--dead-after 10s` here, 5 minutes by default)
//! the catalog leader gives its replicas to the other nodes, and every event is back at three
//! replicas with no acknowledged hold lost; then a second node is killed and every event still
//! takes reserves.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Events of the run.
const EVENTS: usize = 12;
/// The dead time the nodes run with.
const DEAD_AFTER_S: u64 = 10;
/// How long, past the dead time, the replicas may take to be made again.
const REPAIR_BOUND: Duration = Duration::from_secs(60);
/// Reserves the background loop sends at most, and for how long.
const LOOP_RESERVES_MAX: usize = 3_000;
const LOOP_TIME_MAX: Duration = Duration::from_secs(150);
/// How long one reserve may wait for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long each event may take to take a reserve after the second kill.
const SERVE_WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lost_for_good_has_its_replicas_made_again_after_the_dead_time() {
    let mut cluster = Cluster::start_with(5, vec!["--dead-after".into(), format!("{DEAD_AFTER_S}s")]).await;
    let admin = token("admin", true);
    let venue_id = venue(&cluster.client(1), &admin, 5_000).await;
    let mut events = Vec::new();
    for i in 0..EVENTS {
        events.push(event_at(&cluster.client(1), &admin, &venue_id, &format!("Night {i}"), 50).await);
    }
    let placed_on_5 = placement(&cluster.view(1).await).values().filter(|r| r.contains(&5)).count();
    assert!(placed_on_5 > 0, "node 5 hosts some events");

    // Reserves through nodes 1 and 2, each acknowledged hold remembered.
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let load = tokio::spawn({
        let (clients, stop, events) =
            (vec![cluster.client(1), cluster.client(2)], stop.clone(), events.clone());
        async move {
            let mut acknowledged: Vec<(String, String)> = Vec::new();
            let (mut refused, mut unanswered) = (0usize, 0usize);
            for i in 0..LOOP_RESERVES_MAX {
                if stop.load(Ordering::Relaxed) || began.elapsed() > LOOP_TIME_MAX {
                    break;
                }
                let user = format!("fan{}", i % 200);
                let body = json!({"event_id": events[i % events.len()], "section": "GA", "quantity": 1});
                let answer = clients[i % 2]
                    .try_send(
                        "POST",
                        "/v1/booking/reserve",
                        Some(&token(&user, false)),
                        Some(body),
                        ANSWER_TIMEOUT,
                    )
                    .await;
                match answer {
                    Ok(a) if a.status == 201 => {
                        acknowledged.push((a.body["hold_id"].as_str().unwrap().to_string(), user))
                    }
                    Ok(_) => refused += 1,
                    Err(_) => unanswered += 1,
                }
            }
            (acknowledged, refused, unanswered)
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.wipe(5);
    let lost = Instant::now();
    let cl = &cluster;
    let evs = &events;
    eventually(
        "every event back at three replicas, none on node 5",
        Duration::from_secs(DEAD_AFTER_S) + REPAIR_BOUND,
        || async move {
            let view = cl.try_view(1).await?;
            let placed = placement(&view);
            for e in evs {
                let r = placed.get(e).cloned().unwrap_or_default();
                if r.len() != 3 || r.contains(&5) {
                    return Err(format!("event {e} placed on {r:?}"));
                }
            }
            if view["under_replicated"].as_array().is_none_or(|u| !u.is_empty()) {
                return Err(format!("under-replicated: {}", view["under_replicated"]));
            }
            // Every event's leader has exactly the placed nodes as voters, the change committed
            // (a group asleep everywhere: every replica in memory agrees).
            for e in evs {
                let want = placed[e].clone();
                let mut led = false;
                for id in want.iter().copied() {
                    let v = cl.try_view(id).await?;
                    let Some(g) = group(&v, e) else { continue };
                    let voters = settled_voters(g);
                    if g["leader"].as_u64() == Some(id) || g["in_memory"] == json!(true) {
                        if voters.as_ref() != Some(&want) {
                            return Err(format!("event {e}: node {id} has voters {voters:?}, want {want:?}"));
                        }
                        led |= g["leader"].as_u64() == Some(id);
                    }
                }
                if !led {
                    return Err(format!("event {e}: no placed node leads it"));
                }
            }
            Ok(())
        },
    )
    .await;
    let repaired = lost.elapsed();
    eprintln!(
        "node 5 lost: every event back at three replicas after {repaired:?} (dead time {DEAD_AFTER_S}s)"
    );
    let view = cluster.view(1).await;
    let status5 = view["nodes"].as_array().unwrap().iter().find(|n| n["id"] == 5).unwrap()["status"].clone();
    assert_eq!(status5, json!("dead"), "node 1 reports node 5 dead");

    stop.store(true, Ordering::Relaxed);
    let (acknowledged, refused, unanswered) = load.await.unwrap();
    eprintln!("reserves: {} acknowledged, {refused} refused, {unanswered} unanswered", acknowledged.len());
    assert!(acknowledged.len() > 50, "the load ran: {} acknowledged", acknowledged.len());

    // A second node goes: every event still serves, and every acknowledged hold is there.
    cluster.kill(4);
    let c1 = cluster.client(1);
    for (i, e) in events.iter().enumerate() {
        let user = token(&format!("after{i}"), false);
        eventually(&format!("event {e} takes a reserve with nodes 4 and 5 gone"), SERVE_WAIT, || {
            let (c1, user) = (c1.clone(), user.clone());
            async move {
                let body = json!({"event_id": e, "section": "GA", "quantity": 1});
                match c1
                    .try_send("POST", "/v1/booking/reserve", Some(&user), Some(body), ANSWER_TIMEOUT)
                    .await
                {
                    Ok(a) if a.status == 201 => Ok(()),
                    Ok(a) => Err(format!("{} {}", a.status, a.body)),
                    Err(err) => Err(err.to_string()),
                }
            }
        })
        .await;
    }
    for (hold_id, user) in &acknowledged {
        let got = c1.get(&format!("/v1/holds/{hold_id}"), Some(&token(user, false))).await;
        assert_eq!(got.status, 200, "acknowledged hold {hold_id}: {}", got.body);
    }
}

/// A node that joins takes its share of the existing events' replicas over time (one move per
/// second), and the event groups follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_its_share_of_existing_replicas() {
    let mut cluster = Cluster::start(3).await;
    let admin = token("admin", true);
    let venue_id = venue(&cluster.client(1), &admin, 100).await;
    let mut events = Vec::new();
    for i in 0..6 {
        events.push(event_at(&cluster.client(1), &admin, &venue_id, &format!("Night {i}"), 10).await);
    }
    let fresh = cluster.join_with(1, false, Vec::new());
    cluster.wait_ready(fresh, READY_TIMEOUT).await;
    let cl = &cluster;
    let evs = &events;
    eventually(
        "18 replicas spread 4-5 per node, and node 4's groups follow",
        Duration::from_secs(60),
        || async move {
            let view = cl.try_view(1).await?;
            let placed = placement(&view);
            let mut load = std::collections::BTreeMap::new();
            for r in placed.values() {
                for id in r {
                    *load.entry(*id).or_insert(0) += 1;
                }
            }
            if load.values().any(|n| !(4..=5).contains(n)) || load.len() != 4 {
                return Err(format!("loads {load:?}"));
            }
            let mine = cl.try_view(fresh).await?;
            for e in evs.iter().filter(|e| placed[*e].contains(&fresh)) {
                let g = group(&mine, e).ok_or(format!("node {fresh} does not host {e} yet"))?;
                if !members(g).contains(&fresh) {
                    return Err(format!("{e}: members {:?}", members(g)));
                }
            }
            Ok(())
        },
    )
    .await;
    // And the moved events serve.
    for e in &events {
        let body = json!({"event_id": e, "section": "GA", "quantity": 1});
        let a = cluster.client(fresh).post("/v1/booking/reserve", &token("fan", false), body).await;
        assert_eq!(a.status, 201, "{e}: {}", a.body);
    }
}
