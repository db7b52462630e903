//! Idle groups sleep and leave memory, wake on anything, and fail over without their timers:
//! three hosts in one process over `LocalTransport` (wrapped to count the RPCs that cross it).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use common::*;
use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use raft::HostConfig;
use raft::LocalTransport;
use raft::NodeAddr;
use raft::NodeId;
use raft::RaftHost;
use raft::Residency;
use raft::RpcRequest;
use raft::RpcResponse;
use raft::Transport;
use raft::TransportError;

const GROUPS: usize = 20;

/// Counts every RPC but pings, then hands it to the router.
struct Counting {
    inner: LocalTransport,
    rpcs: Arc<AtomicU64>,
}

impl Transport for Counting {
    fn send<'a>(
        &'a self,
        target: NodeId,
        addr: &'a NodeAddr,
        group: &'a str,
        rpc: RpcRequest,
    ) -> BoxFuture<'a, Result<RpcResponse, TransportError>> {
        if !matches!(rpc, RpcRequest::Ping { .. }) {
            self.rpcs.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.send(target, addr, group, rpc)
    }
}

struct Cluster {
    hosts: BTreeMap<NodeId, RaftHost<Counters>>,
    router: LocalTransport,
    rpcs: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

/// The production timers (an election timeout of 1–2 s): what these tests check (no election
/// on waking, failover driven by liveness rather than timers) is a property of those. With the
/// test suite's 300–600 ms, a follower woken by a write on a busy CI machine sometimes timed
/// out before the reloaded leader's first heartbeat and won an election.
fn sleepy(id: NodeId) -> HostConfig {
    let production = HostConfig::default();
    HostConfig {
        sleep_after_ms: 300,
        evict_after_ms: 1_000,
        heartbeat_interval_ms: production.heartbeat_interval_ms,
        election_timeout_min_ms: production.election_timeout_min_ms,
        election_timeout_max_ms: production.election_timeout_max_ms,
        ..test_config(id)
    }
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let router = LocalTransport::new();
    let rpcs = Arc::new(AtomicU64::new(0));
    let mut hosts = BTreeMap::new();
    let peers: BTreeMap<NodeId, NodeAddr> = (1..=3).map(|id| (id, addr(id))).collect();
    for id in 1..=3 {
        let path = dir.path().join(format!("n{id}"));
        let db = open_db_retrying(&path);
        let transport = Arc::new(Counting { inner: router.for_node(id), rpcs: rpcs.clone() });
        let host = RaftHost::new(sleepy(id), db, path.join("snapshots"), transport, counters()).unwrap();
        router.register(&host);
        host.set_peers(peers.clone());
        hosts.insert(id, host);
    }
    let members: BTreeMap<NodeId, NodeAddr> = (1..=3).map(|id| (id, addr(id))).collect();
    for g in 0..GROUPS {
        let gid = format!("evt_{g:02}");
        for host in hosts.values() {
            host.open_group(&gid).await.unwrap();
        }
        // Spread the initial leaders over the nodes.
        let first = (g % 3) as NodeId + 1;
        hosts[&first].group(&gid).unwrap().initialize(members.clone()).await.unwrap();
    }
    Cluster { hosts, router, rpcs, _dir: dir }
}

fn gid(g: usize) -> String {
    format!("evt_{g:02}")
}

impl Cluster {
    /// How many group replicas (over the hosts) are in `state`.
    fn count(&self, state: Residency) -> usize {
        self.hosts.values().flat_map(|h| h.group_statuses()).filter(|s| s.residency == state).count()
    }

    /// Write one command to every group through `via`.
    async fn write_all(&self, via: NodeId) {
        let host = &self.hosts[&via];
        for g in 0..GROUPS {
            let group = host.load(&gid(g)).await.unwrap();
            group.write(add("x", 1)).await.unwrap_or_else(|e| panic!("group {g} via {via}: {e}"));
        }
    }

    async fn shutdown(self) {
        for h in self.hosts.values() {
            h.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_groups_sleep_leave_memory_and_wake_with_their_leader() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        c.write_all(1).await;
        let leaders: Vec<NodeId> = (0..GROUPS).map(|g| c.hosts[&1].group(&gid(g)).unwrap().leader().unwrap()).collect();
        let terms: Vec<u64> =
            (0..GROUPS).map(|g| c.hosts[&1].group(&gid(g)).unwrap().raft().metrics().borrow_watched().current_term).collect();

        // Asleep: no heartbeats, no timers, so no RPC crosses the network any more.
        wait_until("every replica asleep", Duration::from_secs(10), || c.count(Residency::Awake) == 0).await;
        let before = c.rpcs.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(800)).await;
        let quiet = c.rpcs.load(Ordering::Relaxed) - before;
        assert_eq!(quiet, 0, "{quiet} RPCs in 800 ms between sleeping groups");

        // Then out of memory (dormant), on every host.
        wait_until("every replica dormant", Duration::from_secs(10), || c.count(Residency::Dormant) == 3 * GROUPS).await;
        wait_until("the evictions counted", Duration::from_secs(5), || c.hosts[&1].stats().evictions >= GROUPS as u64).await;
        assert!(c.hosts[&1].stats().sleeps >= 1);

        // A write through a follower wakes the group: the leader comes back as the leader
        // (a clean close restores it, no election), and the write is applied everywhere.
        for g in 0..GROUPS {
            let follower = (1..=3).find(|n| *n != leaders[g]).unwrap();
            let started = Instant::now();
            let group = c.hosts[&follower].load(&gid(g)).await.unwrap();
            let loaded = started.elapsed();
            let value = group.write(add("x", 1)).await.unwrap();
            let took = started.elapsed();
            assert_eq!(value, 2, "group {g}");
            assert_eq!(group.leader(), Some(leaders[g]), "group {g}: the leader changed on waking");
            assert_eq!(group.raft().metrics().borrow_watched().current_term, terms[g], "group {g}: an election ran");
            eprintln!("group {g}: first write after eviction through node {follower} took {took:?} (loading it here {loaded:?})");
        }
        // A linearizable read on a sleeping (or dormant) group answers what was written.
        wait_until("asleep again", Duration::from_secs(10), || c.count(Residency::Awake) == 0).await;
        let group = c.hosts[&2].load(&gid(0)).await.unwrap();
        assert_eq!(group.read_linearizable(|s| s.values["x"]).await.unwrap(), 2);
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_groups_fail_over_then_sleep_again() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        c.write_all(2).await;
        wait_until("every replica dormant", Duration::from_secs(10), || {
            c.count(Residency::Dormant) == 3 * GROUPS
        })
        .await;

        // Node 1 goes silent. Its groups elect among the survivors without any timer of theirs
        // (they were not even in memory) and then sleep again while node 1 stays down.
        let led_by_1: Vec<usize> = (0..GROUPS)
            .filter(|g| c.hosts[&2].group_statuses().iter().any(|s| s.id == gid(*g) && s.leader == Some(1)))
            .collect();
        assert!(!led_by_1.is_empty());
        c.router.set_reachable(1, false);
        let cut = Instant::now();
        wait_until("new leaders for node 1's groups", Duration::from_secs(10), || {
            led_by_1
                .iter()
                .all(|g| c.hosts[&2].group(&gid(*g)).and_then(|grp| grp.leader()).is_some_and(|l| l != 1))
        })
        .await;
        eprintln!(
            "{} groups led by node 1 had new leaders {:?} after the cut",
            led_by_1.len(),
            cut.elapsed()
        );
        assert!(c.hosts[&2].stats().failover_wakes >= 1);
        // Every group still takes writes through a survivor.
        c.write_all(3).await;
        let survivors_awake = || {
            [2, 3]
                .iter()
                .flat_map(|id| c.hosts[id].group_statuses())
                .filter(|s| s.residency == Residency::Awake)
                .count()
        };
        wait_until("the survivors' groups asleep again", Duration::from_secs(10), || survivors_awake() == 0)
            .await;
        c.router.set_reachable(1, true);
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_group_refuses_votes_while_its_leader_lives() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        c.write_all(1).await;
        wait_until("every replica asleep", Duration::from_secs(10), || c.count(Residency::Awake) == 0).await;
        let group = c.hosts[&1].load(&gid(0)).await.unwrap();
        let leader = group.known_leader().unwrap();
        let voters: Vec<NodeId> = (1..=3).filter(|n| *n != leader).collect();
        let (candidate, follower) = (voters[0], voters[1]);
        // A vote request as a candidate with an up-to-date log would send.
        let (vote, last) = {
            let m = c.hosts[&candidate].load(&gid(0)).await.unwrap();
            let metrics = m.raft().metrics().borrow_watched().clone();
            let last = m.raft().data_metrics().borrow_watched().last_log;
            (metrics.vote, last)
        };
        let term = vote.leader_id.term + 1;
        let request = openraft::raft::VoteRequest::new(openraft::impls::Vote::new(term, candidate), last);
        let router = c.router.for_node(candidate);
        for target in [follower, leader] {
            match router.send(target, &addr(target), &gid(0), RpcRequest::PreVote(request.clone())).await {
                Ok(RpcResponse::Vote(r)) => {
                    assert!(!r.vote_granted, "node {target} granted a pre-vote under a live leader")
                }
                other => panic!("node {target}: {other:?}"),
            }
        }
        // The leader woke so the candidate hears from it, and is still the leader.
        let on_leader = c.hosts[&leader].group(&gid(0)).unwrap();
        assert!(!on_leader.is_asleep());
        assert_eq!(on_leader.leader(), Some(leader));
        c.shutdown().await;
    })
    .await
    .expect("test timed out");
}
