//! Three hosts in one process over LocalTransport: replication, forwarding to the leader,
//! failover, and bounded failure without quorum.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;
use std::time::Instant;

use common::*;
use raft::Group;
use raft::LocalTransport;
use raft::NodeId;
use raft::RaftHost;
use raft::WriteError;

const GID: &str = "evt_cluster";

struct Cluster {
    router: LocalTransport,
    hosts: BTreeMap<NodeId, RaftHost<Counters>>,
    groups: BTreeMap<NodeId, Group<Counters>>,
    _dirs: Vec<tempfile::TempDir>,
}

/// Three hosts, one group with three voters, initialized on node 1; returns once a leader is
/// known on every node.
async fn three_nodes() -> Cluster {
    let router = LocalTransport::new();
    let mut hosts = BTreeMap::new();
    let mut groups = BTreeMap::new();
    let mut dirs = Vec::new();
    for id in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let host = start_host(dir.path(), test_config(id), &router);
        groups.insert(id, host.open_group(GID).await.unwrap());
        hosts.insert(id, host);
        dirs.push(dir);
    }
    let members: BTreeMap<_, _> = (1..=3).map(|id| (id, addr(id))).collect();
    groups[&1].initialize(members.clone()).await.unwrap();
    for g in groups.values() {
        wait_leader(g, Duration::from_secs(10)).await;
    }
    wait_until("members known everywhere", Duration::from_secs(10), || {
        groups.values().all(|g| g.members() == members)
    })
    .await;
    Cluster { router, hosts, groups, _dirs: dirs }
}

impl Cluster {
    fn leader(&self) -> NodeId {
        self.groups[&1].leader().expect("leader")
    }

    async fn shutdown(self) {
        for h in self.hosts.values() {
            h.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_forward_and_fail_over() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = three_nodes().await;
        let leader = c.leader();
        let lg = &c.groups[&leader];
        for n in 1..=10 {
            assert_eq!(lg.write(add("x", n)).await.unwrap(), n * (n + 1) / 2);
        }
        let applied = lg.applied_index();
        let state = lg.read_linearizable(|s| s.clone()).await.unwrap();
        for (id, g) in &c.groups {
            g.wait_applied(applied, Duration::from_secs(5)).await.unwrap();
            assert_eq!(g.read_local(|s| s.clone()), state, "node {id} has the leader's state");
        }

        // Without forwarding, a follower answers with the leader's id and address.
        let follower = (1..=3).find(|id| *id != leader).unwrap();
        match c.groups[&follower].write_local(add("x", 1)).await {
            Err(WriteError::ForwardToLeader { leader: Some((id, a)) }) => {
                assert_eq!(id, leader);
                assert_eq!(a, addr(leader));
            }
            other => panic!("follower write_local: expected ForwardToLeader, got {other:?}"),
        }
        match c.groups[&follower].read_linearizable_local(|s| s.commands).await {
            Err(WriteError::ForwardToLeader { leader: Some((id, _)) }) => assert_eq!(id, leader),
            other => panic!("follower read_linearizable_local: expected ForwardToLeader, got {other:?}"),
        }
        // With forwarding (the default), the same calls work on the follower.
        assert_eq!(c.groups[&follower].write(add("x", 0)).await.unwrap(), 55);
        assert_eq!(c.groups[&follower].read_linearizable(|s| s.commands).await.unwrap(), 11);

        // Cut the leader off: the other two elect a new one and keep writing.
        c.router.set_reachable(leader, false);
        let others: Vec<NodeId> = (1..=3).filter(|id| *id != leader).collect();
        wait_until("a new leader", Duration::from_secs(15), || {
            others.iter().any(|id| c.groups[id].leader().is_some_and(|l| l != leader))
        })
        .await;
        let new_leader = others.iter().find_map(|id| c.groups[id].leader().filter(|l| *l != leader)).unwrap();
        assert!(others.contains(&new_leader));
        let mut last = 0;
        for n in 1..=5 {
            last = c.groups[&new_leader].write(add("x", 100)).await.unwrap();
            assert_eq!(last, 55 + 100 * n);
        }
        let other = *others.iter().find(|id| **id != new_leader).unwrap();
        c.groups[&other]
            .wait_applied(c.groups[&new_leader].applied_index(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(c.groups[&other].read_local(|s| s.values["x"]), last);

        // Healed, the old leader catches up.
        c.router.set_reachable(leader, true);
        c.groups[&leader]
            .wait_applied(c.groups[&new_leader].applied_index(), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(c.groups[&leader].read_local(|s| s.values["x"]), last);
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_without_quorum_is_unknown_in_bounded_time() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = three_nodes().await;
        let leader = c.leader();
        c.groups[&leader].write(add("x", 1)).await.unwrap();
        for id in (1..=3).filter(|id| *id != leader) {
            c.router.set_reachable(id, false);
        }
        let start = Instant::now();
        let result = c.groups[&leader].write(add("x", 1)).await;
        let took = start.elapsed();
        // It reached the leader's log, so whether it ever commits is not known: Unknown, never
        // the Unavailable that would tell the client nothing happened.
        assert!(matches!(result, Err(WriteError::Unknown(_))), "expected Unknown, got {result:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");

        let start = Instant::now();
        let read = c.groups[&leader].read_linearizable(|s| s.commands).await;
        assert!(read.is_err(), "linearizable read without quorum must fail, got {read:?}");
        assert!(start.elapsed() < Duration::from_secs(3), "read took {:?}", start.elapsed());
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}
