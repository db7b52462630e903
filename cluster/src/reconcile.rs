//! The reconciler: one loop per node that makes what runs here match what the catalog
//! says, so formation, joins, placement and replica moves are all the same small steps,
//! retried until they hold (a crash between two steps heals on the next pass):
//!
//! 1. register this node (id, Raft and HTTP addresses) in the catalog, and watch the
//!    liveness of every node it lists;
//! 2. on the catalog leader: live nodes become catalog learners, then voters up to
//!    [`CATALOG_VOTERS_MAX`]; removed nodes leave the membership;
//! 3. for every event placed here: create its group (its initializer, and only it,
//!    initializes it while pristine);
//! 4. on each event group's leader: propose `Setup`, propagate a cancellation, and move the
//!    group's voters to the catalog's `replicas` (add learner, catch up, change membership).
//!
//! **Work follows changes.** Steps 1–2 run every [`NODE_TICK`] (they touch a handful of
//! nodes). Steps 3–4 run for the event a catalog change names, when it is applied; a change to
//! the nodes (a join or a removal moves replicas) and a lagging subscription run them for every
//! event, and so does a safety-net pass every [`FULL_PASS_INTERVAL`] — which only looks at
//! groups in memory and events with no group here yet, so 10,000 idle events cost a walk of
//! the catalog's map, not 10,000 group loads.
//!
//! The catalog decides (placement is a pure function applied in the catalog group); this
//! loop only executes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

use raft::NodeAddr;
use tickets::catalog::{CatalogChange, CatalogCommand, Event};
use tickets::inventory::InventoryCommand;

use crate::error::{Error, Result};
use crate::store::{Store, CATALOG_VOTERS_MAX};

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
/// How long a joining node keeps asking to be let in.
pub const JOIN_ATTEMPTS_MAX: u32 = 120;

/// Why an event is being reconciled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// A catalog change named it: load its group if need be.
    Changed,
    /// The safety net: only groups in memory, and events with no group here yet.
    Pass,
}

pub(crate) async fn run(store: Store) {
    let mut shutdown = store.inner.shutdown.subscribe();
    let mut changes = store.catalog_group().read_local(|m| m.subscribe_catalog_changes());
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
            _ = full_pass.tick() => pass(&store, Why::Pass).await,
            change = changes.recv() => match change {
                Ok((_, CatalogChange::Event(event))) => event_step_logged(&store, &event, Why::Changed).await,
                Ok((_, CatalogChange::Node(node))) => {
                    if let Err(e) = node_step(&store).await {
                        debug!(error = %e, "node step incomplete");
                    }
                    // A removal moved replicas of the events it hosted: their leaders act.
                    pass(&store, if node.removed { Why::Changed } else { Why::Pass }).await;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    debug!(missed = n, "catalog changes lagged; looking at every event");
                    pass(&store, Why::Changed).await;
                }
                Err(RecvError::Closed) => return,
            },
            _ = shutdown.changed() => {}
        }
    }
}

/// Steps 1 and 2 (see the module doc).
async fn node_step(store: &Store) -> Result<()> {
    let catalog = store.catalog_group();
    let peers: BTreeMap<u64, NodeAddr> = store.catalog_read(|c| {
        c.nodes
            .values()
            .filter(|n| !n.removed && !n.raft_addr.is_empty())
            .map(|n| (n.id, NodeAddr { raft_addr: n.raft_addr.clone(), http_addr: n.http_addr.clone() }))
            .collect()
    });
    store.host().set_peers(peers);
    if catalog.leader().is_none() {
        return Ok(());
    }
    register_self(store).await?;
    if catalog.leader() == Some(store.node_id()) {
        catalog_membership(store).await?;
    }
    Ok(())
}

/// Steps 3 and 4 for every event (see the module doc).
async fn pass(store: &Store, why: Why) {
    if store.catalog_group().leader().is_none() {
        return;
    }
    let me = store.node_id();
    let host = store.host();
    let events: Vec<Event> = store.catalog_read(|c| {
        c.events.values().filter(|e| e.replicas.contains(&me) || host.is_stored(&e.id)).cloned().collect()
    });
    for event in events {
        event_step_logged(store, &event, why).await;
    }
}

async fn event_step_logged(store: &Store, event: &Event, why: Why) {
    if let Err(e) = event_step(store, event, why).await {
        debug!(event = %event.id, error = %e, "event group not reconciled yet");
    }
}

async fn register_self(store: &Store) -> Result<()> {
    let o = store.options();
    let current = store.catalog_read(|c| c.nodes.get(&o.node_id).cloned());
    let up_to_date =
        current.is_some_and(|n| n.removed || (n.raft_addr == o.raft_addr && n.http_addr == o.http_addr));
    if !up_to_date {
        info!(node = o.node_id, raft = %o.raft_addr, http = %o.http_addr, "registering in the catalog");
        store
            .write_catalog(CatalogCommand::RegisterNode {
                id: o.node_id,
                raft_addr: o.raft_addr.clone(),
                http_addr: o.http_addr.clone(),
            })
            .await?;
    }
    Ok(())
}

/// Catalog leader: live nodes in, removed nodes out, at most five voters.
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
        catalog.add_learner(*id, addrs[id].clone(), true, CATCH_UP_TIMEOUT).await?;
    }
    let voters = catalog.voters();
    // Only removed nodes leave: a voter of the initial `--peers` list that has not
    // registered yet (still starting) keeps its vote.
    let mut desired: BTreeSet<u64> = voters.difference(&removed).copied().collect();
    for id in &live {
        if desired.len() >= CATALOG_VOTERS_MAX {
            break;
        }
        desired.insert(*id);
    }
    if !desired.is_empty() && desired != voters {
        info!(?voters, ?desired, "changing the catalog group's voters");
        catalog.set_voters(desired, MEMBERSHIP_TIMEOUT).await?;
    }
    Ok(())
}

async fn event_step(store: &Store, event: &Event, why: Why) -> Result<()> {
    let me = store.node_id();
    let host = store.host();
    // A node the event moved away from still acts while it leads the group: it moves the
    // voters to the new replicas.
    if !event.replicas.contains(&me) && !host.is_stored(&event.id) {
        return Ok(());
    }
    let group = match host.group(&event.id) {
        Some(g) => g,
        // Not here yet: create it (and initialize it if this node is the initializer).
        None if !host.is_stored(&event.id) => match store.open_event_group(event).await? {
            Some(g) => g,
            None => return Ok(()),
        },
        // Out of memory: it was reconciled when it ran; only a change may need it again, and
        // only on its leader.
        None if why == Why::Changed && host.known_leader(&event.id) == Some(me) => {
            host.load(&event.id).await?
        }
        None => return Ok(()),
    };
    let set_up = group.read_local(|m| m.as_inventory().is_some_and(|i| i.is_set_up()));
    if !set_up && event.initial_replicas.first() == Some(&me) {
        // The initializer sets the inventory up once the new group has a leader; in its own
        // task, so a burst of new events does not queue behind each one's election.
        if store.inner.reconciling.lock().expect("reconciling lock").insert(event.id.clone()) {
            let (store, event, group) = (store.clone(), event.clone(), group.clone());
            tokio::spawn(async move {
                if let Err(e) = store.set_up_event(&group, &event).await {
                    debug!(event = %event.id, error = %e, "inventory not set up yet; will retry");
                }
                store.inner.reconciling.lock().expect("reconciling lock").remove(&event.id);
            });
        }
        return Ok(());
    }
    if group.leader() != Some(me) {
        return Ok(());
    }
    store.set_up_event(&group, event).await?;
    let cancelled = group.read_local(|m| m.as_inventory().is_some_and(|i| i.cancelled()));
    if event.cancelled && !cancelled {
        store.write_inventory(&group, InventoryCommand::Cancel).await?;
    }
    let desired: BTreeSet<u64> = event.replicas.iter().copied().collect();
    if desired.is_empty() || group.voters() == desired || group.membership_changing() {
        return Ok(());
    }
    if !store.inner.reconciling.lock().expect("reconciling lock").insert(event.id.clone()) {
        return Ok(());
    }
    let (store, event) = (store.clone(), event.clone());
    tokio::spawn(async move {
        if let Err(e) = move_replicas(&store, &event, &group, desired).await {
            warn!(event = %event.id, error = %e, "replica move incomplete; will retry");
        }
        store.inner.reconciling.lock().expect("reconciling lock").remove(&event.id);
    });
    Ok(())
}

/// Event-group leader: bring the voters to `desired` — new nodes join as learners and
/// catch up first, then one joint-consensus change replaces the voter set.
async fn move_replicas(
    store: &Store,
    event: &Event,
    group: &raft::Group<crate::machine::GroupMachine>,
    desired: BTreeSet<u64>,
) -> Result<()> {
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
    info!(event = %event.id, voters = ?desired, "changing the event group's voters");
    group.set_voters(desired, MEMBERSHIP_TIMEOUT).await?;
    Ok(())
}

/// A node started with `--join`: ask a running node to let it in, until it is.
pub(crate) async fn join(store: Store) {
    let o = store.options().clone();
    let Some(target) = o.join.clone() else { return };
    let base = if target.starts_with("http") { target } else { format!("http://{target}") };
    let body = serde_json::json!({"id": o.node_id, "raft_addr": o.raft_addr, "http_addr": o.http_addr});
    for attempt in 1..=JOIN_ATTEMPTS_MAX {
        if store.catalog_group().leader().is_some() && store.is_ready() {
            return;
        }
        let mut request = store.inner.http.post(format!("{base}/v1/cluster/nodes")).json(&body);
        if let Some(token) = &o.join_token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => {
                info!(node = o.node_id, via = %base, "joined the cluster");
                return;
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                warn!(attempt, %status, answer = %text, "join refused; retrying");
            }
            Err(e) => warn!(attempt, error = %e, "join request failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    warn!(node = o.node_id, "gave up joining; restart with --join to try again");
}
