//! The reconciler: one loop per node that makes what runs here match what the catalog
//! says, so formation, joins, placement and replica moves are all the same small steps,
//! retried until they hold (a crash between two steps heals on the next pass):
//!
//! 1. register this node (id, Raft and HTTP addresses) in the catalog, and watch the
//!    liveness of every node it lists;
//! 2. on the catalog leader: live nodes become catalog learners, then voters up to
//!    [`CATALOG_VOTERS_MAX`]; removed nodes leave the membership;
//! 3. for every event placed here: store its group — seeded on the replicas placed at
//!    creation (`Store::seed_event_group`: set up and with a leader, with no Raft round;
//!    nothing runs until it is used), empty on a replica placed later;
//! 4. on each event group's leader: propagate a cancellation, and move the group's voters
//!    to the catalog's `replicas` (add learner, catch up, change membership).
//!
//! **Work follows changes.** Steps 1–2 run every [`NODE_TICK`] (they touch a handful of
//! nodes). Steps 3–4 run for the event a catalog change names, when it is applied; a change to
//! the nodes (a join or a removal moves replicas) and a lagging subscription run them for every
//! event, and so does a safety-net pass every [`FULL_PASS_INTERVAL`] — which only looks at
//! groups in memory, events with no group here yet, and groups this node led whose stored
//! voters are not the catalog's replicas (a move that did not finish before the group left
//! memory), so 10,000 idle events cost a walk of the catalog's map, not 10,000 group loads.
//!
//! The catalog decides (placement is a pure function applied in the catalog group); this
//! loop only executes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use raft::NodeAddr;
use tickets::catalog::{CatalogChange, CatalogCommand, Event};
use tickets::inventory::InventoryCommand;

use crate::error::{Error, Result};
use crate::node::{CATALOG_VOTERS_MAX, MOVES_CONCURRENT_MAX};
use crate::store::Store;

/// How often this node's registration, the catalog's membership and the liveness peers are
/// checked.
pub const NODE_TICK: Duration = Duration::from_secs(1);
/// The same while this node is not registered in a formed cluster yet.
pub const NODE_TICK_FORMING: Duration = Duration::from_millis(50);
/// How often every event is looked at, whatever changed (a safety net).
pub const FULL_PASS_INTERVAL: Duration = Duration::from_secs(30);
/// How long a new replica may take to catch up before the change is retried.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one membership change may take to commit.
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an event is being reconciled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// A catalog change named it: load its group if need be.
    Changed,
    /// The safety net: only groups in memory, and events with no group here yet.
    Pass,
}

/// The replica moves this node runs: one at a time per group, at most
/// [`MOVES_CONCURRENT_MAX`] at once (a lost node's thousand replicas must not all stream
/// snapshots together). The reconciler's own state, not the store's.
struct Moves {
    running: Mutex<HashSet<tickets::EventId>>,
    permits: Semaphore,
}

/// The reconciler's task: the store whose operations it drives, and the node's shutdown
/// signal.
pub(crate) async fn run(store: Store, mut shutdown: watch::Receiver<bool>) {
    let moves = Arc::new(Moves {
        running: Mutex::new(HashSet::new()),
        permits: Semaphore::new(MOVES_CONCURRENT_MAX),
    });
    let mut changes = store.catalog_group().read_local(|m| m.subscribe_catalog_changes());
    let mut leaderships = store.host().subscribe_leaderships();
    let mut full_pass = tokio::time::interval(FULL_PASS_INTERVAL);
    full_pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Until this node is part of the cluster, look often: requests wait for it.
        let node_tick = if store.is_ready() { NODE_TICK } else { NODE_TICK_FORMING };
        tokio::select! {
            _ = tokio::time::sleep(node_tick) => {
                if let Err(e) = node_step(&store).await {
                    debug!(error = %e, "node step incomplete");
                }
            }
            _ = full_pass.tick() => pass(&store, &moves, Why::Pass).await,
            change = changes.recv() => match change {
                Ok((_, CatalogChange::Event(event))) => event_step_logged(&store, &moves, &event, Why::Changed).await,
                Ok((_, CatalogChange::Node(node))) => {
                    if let Err(e) = node_step(&store).await {
                        debug!(error = %e, "node step incomplete");
                    }
                    // A removal moved replicas of the events it hosted: their leaders act.
                    pass(&store, &moves, if node.removed { Why::Changed } else { Why::Pass }).await;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    debug!(missed = n, "catalog changes lagged; looking at every event");
                    pass(&store, &moves, Why::Changed).await;
                }
                Err(RecvError::Closed) => return,
            },
            // A group that takes leadership here reconciles at once: its old leader may have
            // left a replica move unfinished (a removed or dead node), and nobody else acts.
            led = leaderships.recv() => match led {
                Ok(gid) => {
                    if let Some(event) = store.catalog_read(|c| c.events.get(gid.as_str()).cloned()) {
                        event_step_logged(&store, &moves, &event, Why::Changed).await;
                    }
                }
                Err(RecvError::Lagged(_)) => pass(&store, &moves, Why::Pass).await,
                Err(RecvError::Closed) => return,
            },
            _ = shutdown.changed() => {}
        }
    }
}

/// Steps 1 and 2 (see the module doc).
async fn node_step(store: &Store) -> Result<()> {
    let catalog = store.catalog_group();
    let (peers, registered, removed, cluster_id) = store.catalog_read(|c| {
        let peers: BTreeMap<u64, NodeAddr> = c
            .nodes
            .values()
            .filter(|n| !n.removed && !n.raft_addr.is_empty())
            .map(|n| (n.id, NodeAddr { raft_addr: n.raft_addr.clone(), http_addr: n.http_addr.clone() }))
            .collect();
        let registered: BTreeMap<u64, u64> = c.nodes.values().map(|n| (n.id, n.store_id)).collect();
        let removed: Vec<u64> = c.nodes.values().filter(|n| n.removed).map(|n| n.id).collect();
        (peers, registered, removed, c.cluster_id.clone())
    });
    store.host().set_peers(peers);
    store.host().set_gone(&removed);
    let identity = store.host().identity();
    identity.set_registered(registered);
    if let Some(id) = &cluster_id {
        if let Err(e) = identity.adopt_cluster(id) {
            store.refuse(format!("{e}; this node must not serve this cluster"));
        }
    }
    store.check_service();
    if catalog.leader().is_none() {
        return Ok(());
    }
    register_self(store).await?;
    if catalog.leader() == Some(store.node_id()) {
        if cluster_id.is_none() {
            record_cluster_id(store).await?;
        }
        mark_down_nodes(store).await?;
        catalog_membership(store).await?;
        rebalance(store).await?;
    }
    Ok(())
}

/// Catalog leader: a node silent for longer than the dead time is marked down (its
/// replicas go to other nodes), and a node marked down that answers again is marked back.
async fn mark_down_nodes(store: &Store) -> Result<()> {
    let dead_after = store.options().dead_after;
    let host = store.host();
    let nodes: Vec<(u64, bool)> =
        store.catalog_read(|c| c.nodes.values().filter(|n| !n.removed).map(|n| (n.id, n.down)).collect());
    for (id, down) in nodes {
        if id == store.node_id() {
            continue;
        }
        let silent = host.peer_silence(id).is_some_and(|s| s >= dead_after);
        let live = host.peer_status(id) == raft::PeerStatus::Live;
        if silent && !down {
            warn!(
                node = id,
                ?dead_after,
                "node down for longer than the dead time: its replicas move to other nodes"
            );
            store.write_catalog(CatalogCommand::MarkNodeDown { id, down: true }).await?;
        } else if live && down {
            info!(node = id, "node marked down is back");
            store.write_catalog(CatalogCommand::MarkNodeDown { id, down: false }).await?;
        }
    }
    Ok(())
}

/// Catalog leader: one replica move per tick toward an even spread, so a node that joined
/// takes its share of the existing events over time without a burst of snapshot transfers.
/// Not while a node is down but not yet marked (its replicas are about to move anyway).
async fn rebalance(store: &Store) -> Result<()> {
    let host = store.host();
    let (step, nodes) = store.catalog_read(|c| {
        let nodes: Vec<u64> = c.nodes.values().filter(|n| !n.removed && !n.down).map(|n| n.id).collect();
        (c.rebalance_step(), nodes)
    });
    let Some(command) = step else { return Ok(()) };
    let me = store.node_id();
    if nodes.iter().any(|id| *id != me && host.peer_status(*id) != raft::PeerStatus::Live) {
        return Ok(());
    }
    debug!(?command, "rebalancing");
    store.write_catalog(command).await?;
    Ok(())
}

/// Catalog leader: record the cluster id this node made when it initialized the cluster (or
/// make one now, for a cluster formed before cluster ids existed).
async fn record_cluster_id(store: &Store) -> Result<()> {
    let identity = store.host().identity();
    let id = match identity.cluster() {
        Some(id) => id,
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            identity.adopt_cluster(&id)?;
            id
        }
    };
    info!(cluster = %id, "recording the cluster's id in the catalog");
    store.write_catalog(CatalogCommand::SetClusterId { id }).await?;
    Ok(())
}

/// Steps 3 and 4 for every event (see the module doc).
async fn pass(store: &Store, moves: &Arc<Moves>, why: Why) {
    if store.catalog_group().leader().is_none() {
        return;
    }
    let me = store.node_id();
    let host = store.host();
    let events: Vec<Event> = store.catalog_read(|c| {
        c.events.values().filter(|e| e.replicas.contains(&me) || host.is_stored(&e.id)).cloned().collect()
    });
    for event in events {
        event_step_logged(store, moves, &event, why).await;
    }
}

async fn event_step_logged(store: &Store, moves: &Arc<Moves>, event: &Event, why: Why) {
    if let Err(e) = event_step(store, moves, event, why).await {
        debug!(event = %event.id, error = %e, "event group not reconciled yet");
    }
}

async fn register_self(store: &Store) -> Result<()> {
    let o = store.options();
    let store_id = store.host().identity().store_id();
    let current = store.catalog_read(|c| c.nodes.get(&o.node_id).cloned());
    let up_to_date = current.is_some_and(|n| {
        n.removed || (n.raft_addr == o.raft_addr && n.http_addr == o.http_addr && n.store_id == store_id)
    });
    if !up_to_date {
        info!(node = o.node_id, raft = %o.raft_addr, http = %o.http_addr, store = format!("{store_id:016x}"), "registering in the catalog");
        let command = CatalogCommand::RegisterNode {
            id: o.node_id,
            raft_addr: o.raft_addr.clone(),
            http_addr: o.http_addr.clone(),
            store_id,
        };
        match store.write_catalog(command).await {
            Err(Error::Rejected(tickets::Rejection::Conflict { detail })) => {
                store.refuse(format!(
                    "this node cannot register as node {}: {detail}. Its data directory is not the one \
                     node {} was registered with; remove node {} and join with a new id (docs/operations.md)",
                    o.node_id, o.node_id, o.node_id
                ));
            }
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// How far behind the leader's log a catalog learner may be and still be promoted to voter.
pub const CATCH_UP_LAG_MAX: u64 = 100;

/// Catalog leader: live nodes in as learners; a learner becomes a voter (up to five) only
/// once it has caught up, so a node that never arrives never counts in the quorum; removed
/// nodes out. At most one voter change per step.
async fn catalog_membership(store: &Store) -> Result<()> {
    let catalog = store.catalog_group();
    if catalog.membership_changing() {
        return Ok(());
    }
    let (live, removed, addrs) = store.catalog_read(|c| {
        let live: BTreeSet<u64> = c.live_nodes().into_iter().collect();
        let removed: BTreeSet<u64> = c.nodes.values().filter(|n| n.removed).map(|n| n.id).collect();
        let addrs: std::collections::BTreeMap<u64, NodeAddr> = c
            .nodes
            .values()
            .map(|n| (n.id, NodeAddr { raft_addr: n.raft_addr.clone(), http_addr: n.http_addr.clone() }))
            .collect();
        (live, removed, addrs)
    });
    let members = catalog.members();
    for id in live.iter().filter(|id| !members.contains_key(id)) {
        info!(node = id, "adding a node to the catalog group as a learner");
        catalog.add_learner(*id, addrs[id].clone(), false, CATCH_UP_TIMEOUT).await?;
    }
    let voters = catalog.voters();
    let plan = plan_voters(&voters, &catalog.members().keys().copied().collect(), &live, &removed, |id| {
        catalog.caught_up(id, CATCH_UP_LAG_MAX)
    });
    match plan {
        Some(Change::Voters(desired)) => {
            info!(?voters, ?desired, "changing the catalog group's voters");
            catalog.set_voters(desired, MEMBERSHIP_TIMEOUT).await?;
        }
        Some(Change::DropLearners(gone)) => {
            info!(learners = ?gone, "taking removed nodes out of the catalog group");
            catalog.remove_learners(gone, MEMBERSHIP_TIMEOUT).await?;
        }
        None => {}
    }
    Ok(())
}

/// One membership change of the catalog group.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// Make this the voter set.
    Voters(BTreeSet<u64>),
    /// Take these learners out.
    DropLearners(BTreeSet<u64>),
}

/// The catalog's next membership change, one at a time: drop a removed voter (or every removed
/// learner); else promote the lowest live learner that has caught up, while there are fewer
/// than [`CATALOG_VOTERS_MAX`] voters. A voter of the initial `--peers` list that has not
/// registered yet (still starting) keeps its vote. `None`: nothing to change.
fn plan_voters(
    voters: &BTreeSet<u64>,
    members: &BTreeSet<u64>,
    live: &BTreeSet<u64>,
    removed: &BTreeSet<u64>,
    caught_up: impl Fn(u64) -> bool,
) -> Option<Change> {
    if let Some(gone) = voters.iter().find(|id| removed.contains(id)) {
        let rest: BTreeSet<u64> = voters.iter().copied().filter(|id| id != gone).collect();
        return (!rest.is_empty()).then_some(Change::Voters(rest));
    }
    let gone: BTreeSet<u64> = members.intersection(removed).copied().collect();
    if !gone.is_empty() {
        return Some(Change::DropLearners(gone));
    }
    if voters.len() >= CATALOG_VOTERS_MAX {
        return None;
    }
    let next = members.iter().find(|id| !voters.contains(id) && live.contains(id) && caught_up(**id))?;
    let mut desired = voters.clone();
    desired.insert(*next);
    Some(Change::Voters(desired))
}

async fn event_step(store: &Store, moves: &Arc<Moves>, event: &Event, why: Why) -> Result<()> {
    let me = store.node_id();
    let host = store.host();
    // A node the event moved away from still acts while it leads the group: it moves the
    // voters to the new replicas.
    if !event.replicas.contains(&me) && !host.is_stored(&event.id) {
        return Ok(());
    }
    let group = match host.group(&event.id) {
        Some(g) => g,
        // Not here yet: store it seeded (nothing runs until it is used), or, on a replica
        // placed after the creation, open it empty for its leader to fill.
        None if !host.is_stored(&event.id) => {
            if store.seed_event_group(event).await? {
                return Ok(());
            }
            match store.open_event_group(event).await? {
                Some(g) => g,
                None => return Ok(()),
            }
        }
        // Out of memory: it was reconciled when it ran; only a change that gives its leader
        // work loads it again — a cancellation, or replicas that moved (also found by the
        // safety-net pass: a move that did not finish before the group left memory). Any
        // other change (a new event's own, a renaming) leaves it on disk.
        None if host.known_leader(&event.id) == Some(me)
            && ((why == Why::Changed && event.cancelled)
                || !same_nodes(host.stored_voters(&event.id), &event.replicas)) =>
        {
            host.load(&event.id).await?
        }
        None => return Ok(()),
    };
    if group.leader() != Some(me) {
        return Ok(());
    }
    let (cancelled, sales_end, refund_until) = group.read_local(|m| {
        let inventory = m.as_inventory();
        let setup = inventory.and_then(|i| i.setup());
        (inventory.is_some_and(|i| i.cancelled()), setup.map(|s| s.sales_end), setup.map(|s| s.refund_until))
    });
    if event.cancelled && !cancelled {
        // The admin who cancelled is the catalog's to know, not the inventory's.
        // Not CancelAndRefund: the admin's own may land first, and a second one after a
        // declined refund would start another attempt (PropagateCancel is a no-op then).
        let command = InventoryCommand::PropagateCancel { admin: EVENT_CANCEL_ACTOR.into() };
        store.write_inventory(&group, command).await?;
    }
    if sales_end.is_some_and(|end| end != event.spec.sales_end()) {
        store.write_inventory(&group, InventoryCommand::SetSalesEnd { at: event.spec.sales_end() }).await?;
    }
    if refund_until.is_some_and(|until| until != event.spec.refund_until()) {
        let command = InventoryCommand::SetRefundUntil { at: event.spec.refund_until() };
        store.write_inventory(&group, command).await?;
    }
    let desired: BTreeSet<u64> = event.replicas.iter().copied().collect();
    if desired.is_empty() || group.voters() == desired || group.membership_changing() {
        return Ok(());
    }
    if !moves.running.lock().expect("moves lock").insert(event.id.clone()) {
        return Ok(());
    }
    let (store, moves, event) = (store.clone(), moves.clone(), event.clone());
    tokio::spawn(async move {
        let _permit = moves.permits.acquire().await;
        for attempt in 1..=MOVE_ATTEMPTS_MAX {
            match move_replicas(&store, &event, &group, desired.clone()).await {
                Ok(()) => break,
                // Another node leads now: it moves them (its next pass looks at the group).
                Err(_) if group.leader() != Some(store.node_id()) => break,
                Err(e) if attempt == MOVE_ATTEMPTS_MAX => {
                    warn!(event = %event.id, error = %e, "replica move incomplete; the next pass retries")
                }
                Err(e) => {
                    debug!(event = %event.id, attempt, error = %e, "replica move incomplete; retrying");
                    tokio::time::sleep(MOVE_RETRY_PAUSE).await;
                }
            }
        }
        moves.running.lock().expect("moves lock").remove(&event.id);
    });
    Ok(())
}

/// Whether `voters` (if known) are exactly the nodes of `replicas`.
fn same_nodes(voters: Option<Vec<u64>>, replicas: &[u64]) -> bool {
    voters.is_some_and(|v| v.into_iter().collect::<BTreeSet<_>>() == replicas.iter().copied().collect())
}

/// How often a move looks whether its new replica has caught up.
const CATCH_UP_POLL: Duration = Duration::from_millis(50);
/// Tries of one replica move before it is left to the next pass.
const MOVE_ATTEMPTS_MAX: u32 = 5;
/// Who an event cancellation's refunds are recorded as begun by when the event's leader's
/// reconciler carries the cancellation over (the admin is known only where the cancel came in).
pub const EVENT_CANCEL_ACTOR: &str = "event-cancel";
/// Pause between two tries of a replica move.
const MOVE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Event-group leader: bring the voters to `desired` — new nodes join as learners and
/// catch up first, then one joint-consensus change replaces the voter set. A group that was
/// asleep (or just loaded) confirms its leadership with a quorum first: openraft refuses a
/// membership change until the leader has re-established itself.
async fn move_replicas(
    store: &Store,
    event: &Event,
    group: &raft::Group<crate::machine::GroupMachine>,
    desired: BTreeSet<u64>,
) -> Result<()> {
    group.read_linearizable_local(|_| ()).await?;
    let members = group.members();
    for id in desired.iter().filter(|id| !members.contains_key(id)) {
        let addr = store
            .catalog_read(|c| {
                c.nodes
                    .get(id)
                    .map(|n| NodeAddr { raft_addr: n.raft_addr.clone(), http_addr: n.http_addr.clone() })
            })
            .ok_or_else(|| Error::Internal(format!("replica {id} is not a registered node")))?;
        info!(event = %event.id, node = id, "adding a replica: learner first");
        group.add_learner(*id, addr, true, CATCH_UP_TIMEOUT).await?;
    }
    // openraft's blocking add_learner counts a learner within its replication lag threshold
    // (thousands of entries) as caught up, even one that has not answered yet: wait for ours.
    let started = std::time::Instant::now();
    for id in desired.iter().filter(|id| !group.voters().contains(id)) {
        while !group.caught_up(*id, CATCH_UP_LAG_MAX) {
            if started.elapsed() > CATCH_UP_TIMEOUT {
                return Err(Error::unavailable(format!("replica {id} of {} not caught up", event.id)));
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }
    info!(event = %event.id, voters = ?desired, "changing the event group's voters");
    group.set_voters(desired, MEMBERSHIP_TIMEOUT).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_learner_votes_only_once_it_has_caught_up() {
        let (voters, members, live) = (set(&[1]), set(&[1, 74]), set(&[1, 74]));
        assert_eq!(plan_voters(&voters, &members, &live, &set(&[]), |_| false), None, "never arrived");
        assert_eq!(
            plan_voters(&voters, &members, &live, &set(&[]), |id| id == 74),
            Some(Change::Voters(set(&[1, 74])))
        );
    }

    #[test]
    fn one_voter_change_at_a_time() {
        let (voters, members, live) = (set(&[1, 2]), set(&[1, 2, 3, 4]), set(&[1, 2, 3, 4]));
        assert_eq!(
            plan_voters(&voters, &members, &live, &set(&[]), |_| true),
            Some(Change::Voters(set(&[1, 2, 3])))
        );
        // A removed voter leaves first, alone.
        let removed = set(&[2]);
        assert_eq!(
            plan_voters(&voters, &members, &live, &removed, |_| true),
            Some(Change::Voters(set(&[1])))
        );
        // Removed learners are taken out.
        let removed = set(&[4]);
        let plan = plan_voters(&set(&[1, 2, 3]), &members, &live, &removed, |_| true);
        assert_eq!(plan, Some(Change::DropLearners(set(&[4]))));
    }

    #[test]
    fn at_most_five_voters_and_never_none() {
        let voters = set(&[1, 2, 3, 4, 5]);
        let members = set(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(plan_voters(&voters, &members, &members, &set(&[]), |_| true), None);
        assert_eq!(
            plan_voters(&set(&[1]), &set(&[1]), &set(&[]), &set(&[1]), |_| true),
            None,
            "the last voter stays"
        );
    }
}
