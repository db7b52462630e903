//! Five nodes, twenty events: every event's group gets three distinct replicas, the groups
//! spread over all five nodes (loads within one of each other), every node's catalog
//! replica records the same placement, and each node hosts exactly the groups placed on it.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{event_at, eventually, members, placement, token, venue, Cluster};

const NODES: u64 = 5;
const EVENTS: usize = 20;
/// How long the catalog's followers may take to record the last placement.
const PLACEMENT_WAIT: Duration = Duration::from_secs(15);
/// How long a node may take to open (or drop) the groups placed on it.
const HOSTING_WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_events_spread_over_five_nodes_with_three_replicas_each() {
    let cluster = Cluster::start(NODES as usize).await;
    let admin = token("admin", true);
    let venue_id = venue(&cluster.client(1), &admin, 20).await;
    let start = Instant::now();
    let mut events = Vec::new();
    for i in 0..EVENTS {
        // Through every node in turn: catalog writes are forwarded to the catalog's leader.
        let via = (i as u64 % NODES) + 1;
        events.push(event_at(&cluster.client(via), &admin, &venue_id, &format!("Night {i}"), 4).await);
    }
    eprintln!("created {EVENTS} events through nodes 1..={NODES} in {} ms", start.elapsed().as_millis());
    events.sort();

    let (cluster, events) = (&cluster, &events);
    let placed = eventually(
        "every node records the same placement, for all 20 events",
        PLACEMENT_WAIT,
        || async move {
            let first = placement(&cluster.try_view(1).await?);
            let named: Vec<&String> = first.keys().collect();
            if named != events.iter().collect::<Vec<_>>() {
                return Err(format!("node 1's placement names {named:?}; the events are {events:?}"));
            }
            for id in 2..=NODES {
                let theirs = placement(&cluster.try_view(id).await?);
                if theirs != first {
                    return Err(format!("node {id}'s placement {theirs:?} differs from node 1's {first:?}"));
                }
            }
            Ok(first)
        },
    )
    .await;

    let mut load: BTreeMap<u64, usize> = (1..=NODES).map(|id| (id, 0)).collect();
    for (event, replicas) in &placed {
        let mut distinct = replicas.clone();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            3,
            "event {event} is placed on {replicas:?}: three distinct nodes expected"
        );
        for r in replicas {
            *load.get_mut(r).unwrap_or_else(|| panic!("event {event} is placed on unknown node {r}")) += 1;
        }
    }
    eprintln!("event groups per node: {load:?}");
    assert!(load.values().all(|n| *n >= 1), "a node hosts no event: {load:?}");
    let (min, max) = (load.values().min().unwrap(), load.values().max().unwrap());
    assert!(max - min <= 1, "loads differ by more than one: {load:?}");

    // Each node hosts exactly the groups placed on it, with the placed replicas as members.
    for id in 1..=NODES {
        let expected: BTreeMap<String, Vec<u64>> =
            placed.iter().filter(|(_, r)| r.contains(&id)).map(|(e, r)| (e.clone(), r.clone())).collect();
        let expected = &expected;
        eventually(
            &format!("node {id} hosts exactly the groups placed on it"),
            HOSTING_WAIT,
            || async move {
                let view = cluster.try_view(id).await?;
                if view["node_id"] != id {
                    return Err(format!("node {id} says it is node {}", view["node_id"]));
                }
                let hosted: BTreeMap<String, Vec<u64>> = view["groups"]
                    .as_array()
                    .ok_or_else(|| format!("node {id}: no groups in {view}"))?
                    .iter()
                    .filter(|g| g["id"] != "catalog")
                    .map(|g| (g["id"].as_str().unwrap_or_default().to_string(), members(g)))
                    .collect();
                if &hosted == expected {
                    Ok(())
                } else {
                    Err(format!("node {id} hosts (group: members) {hosted:?}; placed on it: {expected:?}"))
                }
            },
        )
        .await;
    }
}
