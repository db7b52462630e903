//! Leader clock safety: a new leader whose wall clock is behind stamps earlier times, but
//! the rules' clock never goes back (`now = max(previous, stamped)`), so a hold never
//! lives longer, or expires later, because leadership moved to a slow clock.
//!
//! Three in-process Raft hosts host one event group with the real `GroupMachine`; node 2's
//! clock is one hour behind. Leadership moves from node 1 to node 2, then writes through
//! node 2 must see the machine's `now` stay at or after node 1's last stamp.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::machine::{GroupCommand, GroupMachine, GroupReply};
use raft::{Group, HostConfig, LocalTransport, NodeAddr, NodeId, RaftHost};
use tickets::catalog::QueueSettings;
use tickets::inventory::{InventoryCommand, InventorySetup, Outcome, Selection};
use tickets::layout::TicketSpec;

const HOUR_MS: i64 = 3_600_000;

fn addr(id: NodeId) -> NodeAddr {
    NodeAddr { raft_addr: format!("raft-{id}"), http_addr: format!("http-{id}") }
}

fn config(node_id: NodeId, clock_skew_ms: i64) -> HostConfig {
    HostConfig {
        node_id,
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        clock_skew_ms,
        ..HostConfig::default()
    }
}

fn inv(command: InventoryCommand) -> GroupCommand {
    // The leader overwrites the stamp (StateMachine::stamp); 0 proves it does.
    GroupCommand::Inventory { now_ms: 0, command }
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn machine_now(g: &Group<GroupMachine>) -> u64 {
    g.read_local(|m| m.as_inventory().map(|i| i.now()).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_a_slow_clock_never_moves_time_back() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let router = LocalTransport::new();
        let mut dirs = Vec::new();
        let mut hosts = BTreeMap::new();
        let mut groups = BTreeMap::new();
        for (id, skew) in [(1, 0), (2, -HOUR_MS), (3, 0)] {
            let dir = tempfile::tempdir().unwrap();
            let db = raft::open_db(dir.path(), 16 * 1024 * 1024).unwrap();
            let host: RaftHost<GroupMachine> =
                RaftHost::new(config(id, skew), db, Arc::new(router.for_node(id))).unwrap();
            router.register(&host);
            groups.insert(id, host.open_group("evt_clock", GroupMachine::inventory()).await.unwrap());
            hosts.insert(id, host);
            dirs.push(dir);
        }
        let members: BTreeMap<_, _> = (1..=3).map(|id| (id, addr(id))).collect();
        groups[&1].initialize(members).await.unwrap();
        wait_for("node 1 leads", Duration::from_secs(10), || groups[&1].leader() == Some(1)).await;

        let tickets = (1..=4)
            .map(|n| TicketSpec {
                id: format!("A-1-{n}"),
                section: "A".into(),
                row: Some("1".into()),
                seat: Some(n),
                price: 100,
            })
            .collect();
        let setup = InventorySetup {
            event_id: "evt_clock".into(),
            tickets,
            currency: "USD".into(),
            per_user_limit: 4,
            hold_ms: 600_000,
            on_sale_at: 0,
            queue: QueueSettings::default(),
        };
        groups[&1].write(inv(InventoryCommand::Setup(setup))).await.unwrap();
        let reply = groups[&1]
            .write(inv(InventoryCommand::Reserve {
                hold_id: "h1".into(),
                user: "alice".into(),
                selection: Selection::Tickets(vec!["A-1-1".into()]),
                idempotency: None,
            }))
            .await
            .unwrap();
        let GroupReply::Inventory(Ok(Outcome::Hold(hold))) = reply else { panic!("{reply:?}") };
        let before = machine_now(&groups[&1]);
        assert!(before > 1_700_000_000_000, "stamped by the leader's wall clock, not the proposer's 0");
        assert_eq!(hold.created_at, before);

        // Move leadership to node 2, whose clock is an hour behind.
        groups[&1].raft().trigger().transfer_leader(2).await.unwrap();
        wait_for("node 2 leads", Duration::from_secs(10), || groups.values().all(|g| g.leader() == Some(2)))
            .await;

        let reply = groups[&2]
            .write(inv(InventoryCommand::Reserve {
                hold_id: "h2".into(),
                user: "bob".into(),
                selection: Selection::Tickets(vec!["A-1-2".into()]),
                idempotency: None,
            }))
            .await
            .unwrap();
        let GroupReply::Inventory(Ok(Outcome::Hold(h2))) = reply else { panic!("{reply:?}") };
        let after = machine_now(&groups[&2]);
        assert!(after >= before, "time went back from {before} to {after}");
        assert!(h2.created_at >= before, "a hold made under the slow leader starts at the machine's now");
        assert!(h2.expires_at >= hold.expires_at, "the later hold does not expire first");
        // Every replica agrees.
        wait_for("replicas apply", Duration::from_secs(10), || {
            groups.values().all(|g| g.applied_index() == groups[&2].applied_index())
        })
        .await;
        for g in groups.values() {
            assert_eq!(machine_now(g), after);
        }
        for h in hosts.values() {
            h.shutdown().await;
        }
    })
    .await
    .expect("test finished in time");
}
