//! Cluster administration: adding a node (the target of `--join`), removing one, and the
//! cluster view of `GET /v1/cluster`.

use std::collections::BTreeMap;

use tickets::catalog::{CatalogChange, CatalogCommand, NodeInfo};
use tickets::{EventId, NodeId, Rejection};

use crate::error::{Error, Result};
use crate::store::askable;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct NodeView {
    pub info: NodeInfo,
    /// `up`, `down`, `dead` (down for longer than the dead time: its replicas were moved) or
    /// `removed`: from this node's liveness view (one ping per node pair) and the catalog, so
    /// every node answers for itself, not only the catalog leader.
    pub status: &'static str,
}

#[derive(Clone, Debug)]
pub struct GroupView {
    pub id: String,
    pub members: Vec<NodeId>,
    pub voters: Vec<NodeId>,
    /// A membership change is in flight (`voters` is then the old and new sets together).
    pub changing: bool,
    pub leader: Option<NodeId>,
    pub last_log_index: u64,
    pub applied_index: u64,
    /// `awake` (ticking) or `asleep` (idle: no heartbeat, no timer).
    pub state: &'static str,
    /// Whether its Raft instance is in memory (an asleep group leaves memory after a while).
    pub in_memory: bool,
}

#[derive(Clone, Debug)]
pub struct ClusterView {
    pub node_id: NodeId,
    pub nodes: Vec<NodeView>,
    /// Groups hosted on this node.
    pub groups: Vec<GroupView>,
    /// The catalog's placement of every event.
    pub placement: BTreeMap<EventId, Vec<NodeId>>,
    /// Events with fewer than three replicas up, as this node sees them (fewer placed, or
    /// placed on nodes that are down or removed).
    pub under_replicated: Vec<EventId>,
}

impl Store {
    /// Let a node in (on the catalog leader): record it in the catalog — `id` 0 asks for a
    /// fresh id, `store_id` is the joining process's data directory (0 when an operator adds a
    /// node by hand) — and answer the node as recorded. The reconciler then makes it a catalog
    /// learner, and a voter (up to five) only once it has caught up; events are placed on it
    /// once its own process has registered. A taken id is a [`Rejection::Conflict`].
    pub(crate) async fn local_add_node(
        &self,
        id: NodeId,
        raft_addr: String,
        http_addr: String,
        store_id: u64,
    ) -> Result<NodeInfo> {
        let catalog = self.catalog_group();
        match catalog.leader() {
            Some(l) if l == self.node_id() => {}
            Some(l) => {
                return Err(if self.catalog_read(|c| askable(c, l)) {
                    Error::Elsewhere { nodes: vec![l] }
                } else {
                    Error::unavailable("the catalog leader's address is not known yet")
                });
            }
            None => return Err(Error::unavailable("the catalog group has no leader")),
        }
        for (field, addr) in [("raft_addr", &raft_addr), ("http_addr", &http_addr)] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(Rejection::invalid(field, "must be an IP:PORT address").into());
            }
        }
        let command = CatalogCommand::RegisterNode { id, raft_addr, http_addr, store_id };
        match self.write_catalog(command).await? {
            CatalogChange::Node(n) => Ok(n),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// Take a node out. The catalog moves each of its event replicas to another node in
    /// the same apply; the event groups' leaders then change their membership.
    pub async fn remove_node(&self, id: NodeId) -> Result<NodeInfo> {
        let (known, live) = self.catalog_read(|c| (c.nodes.contains_key(&id), c.live_nodes()));
        if !known {
            return Err(Rejection::not_found("node").into());
        }
        if live == vec![id] {
            return Err(Rejection::invalid("id", "cannot remove the last node").into());
        }
        match self.write_catalog(CatalogCommand::RemoveNode { id }).await? {
            CatalogChange::Node(n) => Ok(n),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    pub fn cluster_view(&self) -> ClusterView {
        let me = self.node_id();
        let liveness = self.host().peer_statuses();
        let (nodes, placement, under_replicated) = self.catalog_read(|c| {
            let nodes = c
                .nodes
                .values()
                .map(|n| {
                    let status = if n.removed {
                        "removed"
                    } else if n.id == me || liveness.get(&n.id) == Some(&raft::PeerStatus::Live) {
                        "up"
                    } else if n.down {
                        "dead"
                    } else {
                        "down"
                    };
                    NodeView { info: n.clone(), status }
                })
                .collect();
            let placement = c.events.values().map(|e| (e.id.clone(), e.replicas.clone())).collect();
            let up = |id: &NodeId| {
                *id == me
                    || (liveness.get(id) == Some(&raft::PeerStatus::Live)
                        && c.nodes.get(id).is_some_and(|n| !n.removed))
            };
            let under_replicated = c
                .events
                .values()
                .filter(|e| {
                    e.replicas.iter().filter(|id| up(id)).count() < tickets::placement::REPLICAS_PER_EVENT
                })
                .map(|e| e.id.clone())
                .collect();
            (nodes, placement, under_replicated)
        });
        let groups = self
            .host()
            .group_statuses()
            .into_iter()
            .map(|g| GroupView {
                members: g.voters.iter().chain(&g.learners).copied().collect(),
                voters: g.voters.clone(),
                changing: g.changing,
                state: if g.residency == raft::Residency::Awake { "awake" } else { "asleep" },
                in_memory: g.residency != raft::Residency::Dormant,
                id: g.id,
                leader: g.leader,
                last_log_index: g.last_log_index,
                applied_index: g.applied_index,
            })
            .collect();
        ClusterView { node_id: me, nodes, groups, placement, under_replicated }
    }

    /// The other members that can be asked (for fan-out reads).
    pub fn peer_nodes(&self) -> Vec<NodeId> {
        let me = self.node_id();
        self.catalog_read(|c| {
            c.nodes.values().filter(|n| n.id != me && askable(c, n.id)).map(|n| n.id).collect()
        })
    }
}
