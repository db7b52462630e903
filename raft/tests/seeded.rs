//! Seeded groups (`RaftHost::create_seeded`): created on every voter without a running
//! instance, an election or any RPC; applied on every voter when it loads; led, with no
//! election, by the voter the seed names, whose first entry commits it everywhere; kept
//! across restarts; given to a replica added later by the leader.

mod common;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use openraft::async_runtime::WatchReceiver;
use raft::LocalTransport;
use raft::NodeAddr;
use raft::NodeId;
use raft::RaftHost;
use raft::Residency;

const GID: &str = "evt_seeded";

fn voters() -> BTreeSet<NodeId> {
    [1, 2, 3].into()
}

async fn hosts(
    dir: &std::path::Path,
    router: &LocalTransport,
    ids: &[NodeId],
) -> BTreeMap<NodeId, RaftHost<Counters>> {
    let mut hosts = BTreeMap::new();
    let peers: BTreeMap<NodeId, NodeAddr> = (1..=4).map(|id| (id, addr(id))).collect();
    for &id in ids {
        let host = start_host(&dir.join(format!("n{id}")), test_config(id), router);
        host.set_peers(peers.clone());
        hosts.insert(id, host);
    }
    hosts
}

/// Load the group on the leader its seed names and wait until it leads (no election).
async fn lead(hosts: &BTreeMap<NodeId, RaftHost<Counters>>) -> NodeId {
    let named = hosts.values().next().unwrap().known_leader(GID).expect("a seeded leader");
    let group = hosts[&named].load(GID).await.unwrap();
    let leader = wait_leader(&group, Duration::from_secs(10)).await;
    assert_eq!(leader, named);
    assert_eq!(
        group.raft().metrics().borrow_watched().current_term,
        1,
        "led in term 1, not elected in a later one"
    );
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_group_is_set_up_everywhere_and_led_without_an_election() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let router = LocalTransport::new();
        let hosts = hosts(dir.path(), &router, &[1, 2, 3]).await;
        for host in hosts.values() {
            assert!(host.create_seeded(GID, &voters(), 1_000, &[add("x", 5)]).await.unwrap());
            // Idempotent: a second call stores nothing.
            assert!(!host.create_seeded(GID, &voters(), 1_000, &[add("x", 7)]).await.unwrap());
            // Stored, not started: no instance, no leader.
            assert!(host.is_stored(GID));
            assert!(host.group(GID).is_none());
            assert_eq!(host.stored_voters(GID), Some(vec![1, 2, 3]));
        }

        // Every voter names the same leader, and a voter that loads the group has applied the
        // seed at once, before any leader ran.
        let named = hosts[&1].known_leader(GID).expect("a named leader");
        for host in hosts.values() {
            assert_eq!(host.known_leader(GID), Some(named));
        }
        let follower = if named == 1 { 2 } else { 1 };
        let loaded = hosts[&follower].load(GID).await.unwrap();
        assert_eq!(loaded.voters(), voters());
        assert_eq!(loaded.read_local(|m| (m.values.get("x").copied(), m.commands)), (Some(5), 1));
        drop(loaded);

        let leader = lead(&hosts).await;
        let group = hosts[&leader].load(GID).await.unwrap();
        // The seed is the first command applied, at index 1, before anything written after.
        assert_eq!(group.write(add("x", 1)).await.unwrap(), 6);
        for host in hosts.values() {
            let g = host.load(GID).await.unwrap();
            wait_until("the write applied everywhere", Duration::from_secs(10), || {
                g.read_local(|m| m.values.get("x").copied()) == Some(6)
            })
            .await;
            assert_eq!(g.read_local(|m| m.commands), 2, "the seed, then the write, once each");
        }
        shutdown_all(hosts.values()).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_survives_a_restart_and_reaches_a_replica_added_later() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        let router = LocalTransport::new();
        let hosts1 = hosts(dir.path(), &router, &[1, 2, 3]).await;
        for host in hosts1.values() {
            host.create_seeded(GID, &voters(), 1_000, &[add("x", 5)]).await.unwrap();
        }
        shutdown_all(hosts1.values()).await;
        drop(hosts1);

        // Restarted: the group is stored, dormant; its named leader leads it as before.
        let router = LocalTransport::new();
        let hosts = hosts(dir.path(), &router, &[1, 2, 3, 4]).await;
        for id in 1..=3 {
            assert!(hosts[&id].is_stored(GID), "node {id} kept the seeded group");
            let status = hosts[&id].group_statuses().into_iter().find(|s| s.id == GID).unwrap();
            assert_eq!(status.residency, Residency::Dormant);
        }
        let leader = lead(&hosts).await;
        let group = hosts[&leader].load(GID).await.unwrap();
        assert_eq!(group.write(add("x", 1)).await.unwrap(), 6);

        // A fourth node, not seeded, joins as a learner: it gets the seed from the leader.
        let learner = hosts[&4].open_group(GID).await.unwrap();
        group.add_learner(4, addr(4), true, Duration::from_secs(10)).await.unwrap();
        wait_until("the learner caught up", Duration::from_secs(10), || {
            learner.read_local(|m| m.values.get("x").copied()) == Some(6)
        })
        .await;
        assert_eq!(learner.read_local(|m| m.commands), 2);
        shutdown_all(hosts.values()).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_named_leader_a_seeded_group_elects_another() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let router = LocalTransport::new();
        let mut hosts = hosts(dir.path(), &router, &[1, 2, 3]).await;
        for host in hosts.values() {
            host.create_seeded(GID, &voters(), 1_000, &[add("x", 5)]).await.unwrap();
        }
        let named = hosts[&1].known_leader(GID).unwrap();
        hosts.remove(&named).unwrap().shutdown().await;
        let survivor = *hosts.keys().next().unwrap();
        let group = hosts[&survivor].load(GID).await.unwrap();
        assert!(group.wait_leader_other_than(named, Duration::from_secs(10)).await, "a new leader");
        assert!(group.raft().metrics().borrow_watched().current_term >= 2);
        let leader = group.leader().unwrap();
        let led = hosts[&leader].load(GID).await.unwrap();
        assert_eq!(led.write(add("x", 1)).await.unwrap(), 6);
        shutdown_all(hosts.values()).await;
    })
    .await
    .expect("test timed out");
}
