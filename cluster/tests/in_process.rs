//! Event groups with the real `GroupMachine` on three in-process Raft hosts
//! (`LocalTransport`, which round-trips every RPC through the wire encoding):
//!
//! - leader clock safety: a new leader whose wall clock is behind stamps earlier times, but
//!   the rules' clock never goes back (`now = max(previous, stamped)`);
//! - snapshot transfer: a replica added after the log was purged receives the inventory of
//!   an event with 100,000 tickets as a snapshot and ends identical.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cluster::machine::{GroupCommand, GroupMachine, GroupReply};
use raft::openraft::async_runtime::WatchReceiver;
use raft::testing::{addr, test_config as config, wait_until, LocalHosts};
use raft::{Group, HostConfig, NodeId};
use tickets::catalog::{QueueSettings, RowSpec, SectionKind, SectionSpec};
use tickets::inventory::{InventoryCommand, InventorySetup, Outcome, Selection};

const HOUR_MS: i64 = 3_600_000;

struct Hosts {
    local: LocalHosts<GroupMachine>,
    groups: BTreeMap<NodeId, Group<GroupMachine>>,
    _dir: tempfile::TempDir,
}

/// Hosts `id -> config` (`raft::testing`), each with the group `gid` open (not initialized).
async fn hosts(gid: &str, configs: Vec<HostConfig>) -> Hosts {
    let dir = tempfile::tempdir().unwrap();
    let factory: raft::MachineFactory<GroupMachine> = Arc::new(|_| GroupMachine::inventory());
    let local = LocalHosts::start(dir.path(), configs, factory);
    let groups = local.open_group(gid).await;
    Hosts { local, groups, _dir: dir }
}

fn setup(event_id: &str, seats: u32) -> InventoryCommand {
    // Rows of 1,000 seats (the last one shorter): ids A-<row>-<seat>.
    let rows = (0..seats.div_ceil(1000))
        .map(|r| RowSpec { name: (r + 1).to_string(), seats: (seats - r * 1000).min(1000) })
        .collect();
    InventoryCommand::Setup(InventorySetup {
        event_id: event_id.into(),
        sections: vec![SectionSpec { name: "A".into(), kind: SectionKind::Seated { rows } }],
        prices: BTreeMap::from([("A".to_string(), 100)]),
        currency: "USD".into(),
        per_user_limit: 4,
        hold_ms: 600_000,
        on_sale_at: 0,
        sales_end: u64::MAX,
        queue: QueueSettings::default(),
        refund_until: u64::MAX,
        waitlist_offer_ms: 60_000,
    })
}

fn reserve(hold: &str, user: &str, ticket: &str) -> GroupCommand {
    inv(InventoryCommand::Reserve {
        hold_id: hold.into(),
        user: user.into(),
        selection: Selection::Tickets(vec![ticket.into()]),
        idempotency: None,
    })
}

fn inv(command: InventoryCommand) -> GroupCommand {
    GroupCommand::Inventory(command)
}

fn machine_now(g: &Group<GroupMachine>) -> u64 {
    g.read_local(|m| m.as_inventory().map(|i| i.now()).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_a_slow_clock_never_moves_time_back() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let cluster = hosts("evt_clock", vec![config(1, 0), config(2, -HOUR_MS), config(3, 0)]).await;
        let groups = &cluster.groups;
        let members: BTreeMap<_, _> = (1..=3).map(|id| (id, addr(id))).collect();
        groups[&1].initialize(members).await.unwrap();
        wait_until("node 1 leads", Duration::from_secs(10), || groups[&1].leader() == Some(1)).await;

        let set_up = groups[&1].write(inv(setup("evt_clock", 4))).await.unwrap();
        assert!(matches!(set_up, GroupReply::Inventory(Ok(Outcome::SetUp))), "{set_up:?}");
        let reply = groups[&1].write(reserve("h1", "alice", "A-1-2")).await.unwrap();
        let GroupReply::Inventory(Ok(Outcome::Hold(hold))) = reply else { panic!("{reply:?}") };
        let before = machine_now(&groups[&1]);
        assert!(before > 1_700_000_000_000, "stamped by the leader's wall clock, not the proposer's 0");
        assert_eq!(hold.created_at, before);

        // Move leadership to node 2, whose clock is an hour behind.
        groups[&1].raft().trigger().transfer_leader(2).await.unwrap();
        wait_until("node 2 leads", Duration::from_secs(10), || {
            groups.values().all(|g| g.leader() == Some(2))
        })
        .await;

        let reply = groups[&2].write(reserve("h2", "bob", "A-1-3")).await.unwrap();
        let GroupReply::Inventory(Ok(Outcome::Hold(h2))) = reply else { panic!("{reply:?}") };
        let after = machine_now(&groups[&2]);
        assert!(after >= before, "time went back from {before} to {after}");
        assert!(h2.created_at >= before, "a hold made under the slow leader starts at the machine's now");
        assert!(h2.expires_at >= hold.expires_at, "the later hold does not expire first");
        // Every replica agrees.
        wait_until("replicas apply", Duration::from_secs(10), || {
            groups.values().all(|g| g.applied_index() == groups[&2].applied_index())
        })
        .await;
        for g in groups.values() {
            assert_eq!(machine_now(g), after);
        }
        cluster.local.shutdown().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_receives_a_hundred_thousand_tickets_as_a_snapshot() {
    tokio::time::timeout(Duration::from_secs(120), async {
        // Debug builds move a 100,000-ticket entry slowly: give writes time.
        let snapshotting = |id| HostConfig {
            snapshot_logs_since_last: 20,
            max_in_snapshot_log_to_keep: 0,
            write_timeout_ms: 30_000,
            ..config(id, 0)
        };
        let cluster = hosts("evt_big", vec![snapshotting(1), snapshotting(2), snapshotting(3)]).await;
        let g = &cluster.groups;
        g[&1].initialize(BTreeMap::from([(1, addr(1)), (2, addr(2))])).await.unwrap();
        wait_until("node 1 leads", Duration::from_secs(10), || g[&1].leader() == Some(1)).await;
        let set_up = g[&1].write(inv(setup("evt_big", 100_000))).await.unwrap();
        assert!(matches!(set_up, GroupReply::Inventory(Ok(Outcome::SetUp))), "{set_up:?}");
        for n in 0..40 {
            g[&1]
                .write(reserve(&format!("h{n}"), &format!("u{n}"), &format!("A-{}-{}", n + 1, n + 1)))
                .await
                .unwrap();
        }
        // The leader's log is purged behind a snapshot, so node 3 cannot catch up from it.
        wait_until("a purge", Duration::from_secs(30), || {
            g[&1].raft().metrics().borrow_watched().purged.is_some_and(|p| p.index() > 2)
        })
        .await;
        g[&1].add_learner(3, addr(3), true, Duration::from_secs(60)).await.unwrap();
        wait_until("node 3 catches up", Duration::from_secs(60), || {
            g[&3].applied_index() >= g[&1].applied_index()
        })
        .await;
        let leader_state = g[&1].read_local(|m| m.as_inventory().cloned());
        let learner_state = g[&3].read_local(|m| m.as_inventory().cloned());
        let learner = learner_state.expect("an inventory");
        assert_eq!(learner.layout().count(), 100_000);
        assert_eq!(Some(&learner), leader_state.as_ref(), "the snapshot carries the whole inventory");
        assert_eq!(g[&3].read_local(|m| m.version()), g[&1].read_local(|m| m.version()));
        cluster.local.shutdown().await;
    })
    .await
    .expect("test finished in time");
}
