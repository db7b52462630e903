//! Membership an operator can trust (issue 13): real `boxoffice serve` processes on loopback
//! and the operator's mistakes, one test each —
//!
//! 1. a node whose data directory was lost comes back under its old id: refused loudly (it
//!    exits with what to do), and the procedure (remove it, join the machine with no id) puts
//!    every event back at three replicas;
//! 2. lost replicas are made again when a node joins (part of 1);
//! 3. node ids are unique: a taken id is a 409, `--join` without `--node-id` gets a fresh id
//!    (kept across restarts), a join with a taken id or a wrong secret exits;
//! 4. a wiped node with a wrong `--peers` list cannot take the cluster over;
//! 5. a node that never arrives does not count in the quorum and can be removed;
//! 6. a removed node knows it and stops serving;
//!
//! and honest health: a node that reaches no majority is not ready.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// How long a refused node may take to exit.
const EXIT_WAIT: Duration = Duration::from_secs(30);
/// How long replicas may take to be made again after a join.
const REPAIR_WAIT: Duration = Duration::from_secs(60);
/// How long a condition about a group's leader or a node's status may take to settle.
const SETTLE_WAIT: Duration = Duration::from_secs(30);

fn node_status(view: &Value, id: u64) -> Option<String> {
    view["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["status"].as_str())
        .map(String::from)
}

fn node_raft_addr(view: &Value, id: u64) -> Option<String> {
    view["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["raft_addr"].as_str())
        .map(String::from)
}

/// `Ok` when `method path` answers 503 with `needle` in its problem's `detail`.
async fn answers_503_saying(
    client: &Client,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    needle: &str,
) -> Result<(), String> {
    match client.try_send(method, path, token, body, POLL_REQUEST_TIMEOUT).await {
        Ok(a) if a.status == 503 && a.body["detail"].as_str().is_some_and(|d| d.contains(needle)) => Ok(()),
        Ok(a) => Err(format!("{} {}", a.status, a.body)),
        Err(e) => Err(e.to_string()),
    }
}

/// Reserve one GA ticket of `event` through `client` until it answers 201 (a group may be
/// changing hands); panics with the last answer after `timeout`.
async fn reserve_until_201(client: &Client, user: &str, event: &str, timeout: Duration) -> Value {
    let token = token(user, false);
    eventually(&format!("a reserve of {event}"), timeout, || {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let body = json!({"event_id": event, "section": "GA", "quantity": 1});
            match client
                .try_send("POST", "/v1/booking/reserve", Some(&token), Some(body), Duration::from_secs(5))
                .await
            {
                Ok(a) if a.status == 201 => Ok(a.body),
                Ok(a) => Err(format!("{} {}", a.status, a.body)),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}

/// Findings 1 and 2: kill -9 node 3, wipe its data, start it again with the same `--peers`:
/// it refuses to start (it forgot its votes). The operator's procedure then works: remove node
/// 3, start the machine with `--join` and no id; it becomes node 4, the event's lost replica is
/// made on it, and the event survives losing another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_refused_and_its_replacement_gets_the_lost_replicas() {
    let mut cluster = Cluster::start(3).await;
    let admin = token("admin", true);
    let event = small_event(&cluster.client(1), 600, 10).await;
    let held = reserve_until_201(&cluster.client(1), "before", &event, SETTLE_WAIT).await;

    cluster.wipe(3);
    let peers = cluster.peers_arg();
    cluster.restart_with(3, peers);
    let (status, log) = cluster.wait_exit(3, EXIT_WAIT).await;
    assert!(!status.success(), "a wiped node 3 must not start: {status}\n{log}");
    assert!(log.contains("forgot its votes") && log.contains("--join"), "the reason and the remedy: {log}");

    // Nodes 1 and 2 still serve the event (two of its three replicas).
    reserve_until_201(&cluster.client(1), "while-two", &event, SETTLE_WAIT).await;

    // The procedure: remove node 3, start the machine with --join and no id.
    let removed = cluster.client(1).send("DELETE", "/v1/cluster/nodes/3", Some(&admin), None, &[]).await;
    assert_eq!(removed.status, 202, "{}", removed.body);
    let fresh = cluster.join_with(1, false, Vec::new());
    cluster.wait_ready(fresh, READY_TIMEOUT).await;
    assert_eq!(cluster.view(fresh).await["node_id"], json!(fresh), "the cluster gave it the next id");

    let cl = &cluster;
    let ev = event.as_str();
    eventually("the event is back at three replicas, node 4 among them", REPAIR_WAIT, || async move {
        let view = cl.try_view(1).await?;
        let placed = placement(&view).get(ev).cloned().unwrap_or_default();
        if placed != vec![1, 2, fresh] {
            return Err(format!("placed on {placed:?}"));
        }
        // Its leader has the three as voters, the change committed: losing one more is fine.
        for id in [1, 2, fresh] {
            let view = cl.try_view(id).await?;
            let Some(g) = group(&view, ev) else { return Err(format!("node {id} does not host it")) };
            if g["leader"] == json!(id) {
                return match settled_voters(g) {
                    Some(v) if v == vec![1, 2, fresh] => Ok(()),
                    other => Err(format!("leader {id}: voters {other:?} ({})", g["voters"])),
                };
            }
        }
        Err("no replica leads it".into())
    })
    .await;

    // Now a second node can go: the event still serves, and the first hold is still there.
    cluster.kill(2);
    reserve_until_201(&cluster.client(1), "after", &event, SETTLE_WAIT).await;
    let hold_id = held["hold_id"].as_str().expect("hold id");
    let got = cluster.client(fresh).get(&format!("/v1/holds/{hold_id}"), Some(&token("before", false))).await;
    assert_eq!(got.status, 200, "the hold made before the wipe: {}", got.body);
}

/// Finding 3: ids are unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ids_are_unique_and_a_join_without_an_id_gets_a_fresh_one() {
    let mut cluster = Cluster::start(3).await;
    let admin = token("admin", true);
    let node1_raft = cluster.node(1).raft.clone();

    // POST with a taken id and other addresses: 409, and node 1's record is unchanged.
    let taken = cluster
        .client(1)
        .post(
            "/v1/cluster/nodes",
            &admin,
            json!({"id": 1, "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"}),
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert_eq!(taken.body["code"], "conflict");
    assert_eq!(node_raft_addr(&cluster.view(2).await, 1), Some(node1_raft));

    // --join without --node-id: the next id, kept across a restart.
    let fresh = cluster.join_with(2, false, Vec::new());
    cluster.wait_ready(fresh, READY_TIMEOUT).await;
    assert_eq!(cluster.view(fresh).await["node_id"], json!(fresh));
    cluster.restart(fresh);
    cluster.wait_ready(fresh, READY_TIMEOUT).await;
    assert_eq!(cluster.view(fresh).await["node_id"], json!(fresh), "its id is kept in its data directory");

    // A fresh machine given the id of node 3 (down) with --join: refused, and it exits.
    let node3_raft = cluster.node(3).raft.clone();
    cluster.wipe(3);
    let via = cluster.node(1).http.clone();
    cluster.restart_with(3, vec!["--join".into(), via]);
    let (status, log) = cluster.wait_exit(3, EXIT_WAIT).await;
    assert!(!status.success() && log.contains("409"), "a join with a taken id exits: {status}\n{log}");
    assert_eq!(node_raft_addr(&cluster.view(1).await, 3), Some(node3_raft), "node 3's record is unchanged");

    // A join with the wrong auth secret exits at once instead of retrying forever.
    let wrong = cluster.join_with(1, false, vec!["--auth-secret".into(), "not-the-cluster-secret".into()]);
    let (status, log) = cluster.wait_exit(wrong, EXIT_WAIT).await;
    assert!(!status.success() && log.contains("401"), "a join with a wrong secret exits: {status}\n{log}");
}

/// Finding 4: a wiped node 3 started with `--peers` naming only itself forms a cluster of its
/// own; it must not take the first one over, and it must say it is not the node 3 its old
/// peers know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_with_a_wrong_peers_list_cannot_take_the_cluster_over() {
    let mut cluster = Cluster::start(3).await;
    let admin = token("admin", true);
    cluster.wipe(3);
    let own = format!("3={}", cluster.node(3).raft);
    cluster.restart_with(3, vec!["--peers".into(), own]);

    let c3 = cluster.client(3);
    let c3 = &c3;
    eventually("node 3 says it is not the node 3 its peers know", SETTLE_WAIT, || {
        answers_503_saying(c3, "GET", "/readyz", None, None, "wiped")
    })
    .await;
    // Give a takeover time to happen, then check it did not.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in [1, 2] {
        let view = cluster.view(id).await;
        let catalog = group(&view, "catalog").expect("catalog group");
        let leader = catalog["leader"].as_u64();
        assert!(matches!(leader, Some(1 | 2)), "node {id}: catalog leader {leader:?}");
        assert_eq!(members(catalog), vec![1, 2, 3], "node {id}: catalog members");
        assert_eq!(node_status(&view, 3).as_deref(), Some("down"), "node {id} sees node 3 down");
    }
    let venue = venue(&cluster.client(1), &admin, 10).await;
    assert!(!venue.is_empty(), "the first cluster still takes catalog writes");
    let on3 = cluster.client(3).get("/v1/venues", Some(&admin)).await;
    assert_eq!(on3.status, 503, "node 3 serves nothing: {}", on3.body);
}

/// Finding 5: on a one-node store, adding a node that never starts must not cost the quorum,
/// and the node can be removed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_arrives_does_not_brick_the_store() {
    let cluster = Cluster::start(1).await;
    let admin = token("admin", true);
    let c = cluster.client(1);
    let added = c
        .post(
            "/v1/cluster/nodes",
            &admin,
            json!({"id": 74, "http_addr": "127.0.0.1:1", "raft_addr": "127.0.0.1:2"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    // The reconciler runs every second: give it a few passes at promoting node 74.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let venue_id = venue(&c, &admin, 10).await;
    let event = event_at(&c, &admin, &venue_id, "Still Selling", 4).await;
    let view = cluster.view(1).await;
    assert_eq!(
        placement(&view).get(&event),
        Some(&vec![1]),
        "nothing is placed on a node that never started"
    );
    reserve_until_201(&c, "fan", &event, SETTLE_WAIT).await;
    let removed = c.send("DELETE", "/v1/cluster/nodes/74", Some(&admin), None, &[]).await;
    assert_eq!(removed.status, 202, "{}", removed.body);
    let cl = &cluster;
    eventually("node 74 is out of the catalog group", SETTLE_WAIT, || async move {
        let view = cl.try_view(1).await?;
        let m = members(group(&view, "catalog").ok_or("no catalog group")?);
        if m == vec![1] {
            Ok(())
        } else {
            Err(format!("members {m:?}"))
        }
    })
    .await;
    let ready = c.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
}

/// Finding 6: a removed node knows it: it answers 503 with the reason instead of serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_stops_serving_and_says_why() {
    let cluster = Cluster::start(3).await;
    let admin = token("admin", true);
    let event = small_event(&cluster.client(1), 600, 10).await;
    let removed = cluster.client(1).send("DELETE", "/v1/cluster/nodes/3", Some(&admin), None, &[]).await;
    assert_eq!(removed.status, 202, "{}", removed.body);
    let c3 = cluster.client(3);
    let ev = event.as_str();
    let user = token("fan", false);
    let (c3, user) = (&c3, user.as_str());
    eventually("node 3 refuses a reserve because it was removed", SETTLE_WAIT, || {
        let body = json!({"event_id": ev, "section": "GA", "quantity": 1});
        answers_503_saying(c3, "POST", "/v1/booking/reserve", Some(user), Some(body), "removed")
    })
    .await;
    let ready = c3.get("/readyz", None).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body["detail"].as_str().is_some_and(|d| d.contains("removed")), "{}", ready.body);
}

/// Honest health: a node that reaches no majority of the cluster says so on `/readyz`, and is
/// ready again once it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_majority_is_not_ready() {
    let mut cluster = Cluster::start(3).await;
    cluster.kill(2);
    let c1 = cluster.client(1);
    assert_eq!(c1.get("/readyz", None).await.status, 200, "two of three: a majority");
    cluster.kill(3);
    let probe = c1.clone();
    let probe = &probe;
    eventually("node 1 says it reaches no majority", SETTLE_WAIT, || {
        answers_503_saying(probe, "GET", "/readyz", None, None, "1 of the cluster's 3")
    })
    .await;
    cluster.restart(2);
    cluster.wait_ready(1, READY_TIMEOUT).await;
}
