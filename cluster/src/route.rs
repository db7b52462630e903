//! Routing, decided once: whether a request about one event is served on this node, by which
//! peers instead (best first), or nowhere right now. A pure function of what the node knows —
//! the event's replicas in the catalog, whether its group here is set up, the group's leader,
//! and which peers can be asked — so it is tested like `placement`, without a cluster.
//!
//! The store ([`crate::store::Store::event_group`]) feeds it; a [`Route::Peers`] travels as
//! [`crate::Error::Elsewhere`] to the facade ([`crate::routed`]), which asks those peers over
//! the peer plane ([`crate::peer`]). A peer runs only the local operation, so a request makes
//! at most one hop.

use tickets::NodeId;

/// What a request needs of the node that serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any replica whose group is set up: reads, and writes that a follower hands to the
    /// leader in its next batch (reserve, release, extend, queue).
    Replica,
    /// The group's leader: confirms (payments run in one place).
    Leader,
}

/// Where a request is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// On this node.
    Here,
    /// On one of these peers, in this order (the leader first when it is known).
    Peers(Vec<NodeId>),
    /// Nowhere right now: answer 503 with this reason (safe to retry).
    Nowhere(&'static str),
}

/// What this node knows about one event when a request comes.
#[derive(Clone, Debug)]
pub struct EventView<'a> {
    /// The catalog's replicas of the event.
    pub replicas: &'a [NodeId],
    /// This node's group of the event has applied the event's `Setup` (false when the group
    /// is not here).
    pub set_up_here: bool,
    /// The group's leader as this node knows it (only when the group is here).
    pub leader: Option<NodeId>,
}

/// Decide where a request that needs `need` is served, on node `me`. `reachable(n)`: peer `n`
/// can be asked (registered, not removed, not known dead).
pub fn route(me: NodeId, event: &EventView<'_>, need: Need, reachable: impl Fn(NodeId) -> bool) -> Route {
    let placed_here = event.replicas.contains(&me);
    // Peers to ask instead: the live replicas other than this node, the leader first.
    let others = || {
        let mut ids: Vec<NodeId> =
            event.replicas.iter().copied().filter(|n| *n != me && reachable(*n)).collect();
        if let Some(l) = event.leader.filter(|l| ids.contains(l)) {
            ids.retain(|n| *n != l);
            ids.insert(0, l);
        }
        ids
    };
    if !placed_here {
        let ids = others();
        return if ids.is_empty() {
            Route::Nowhere("no live replica of this event")
        } else {
            Route::Peers(ids)
        };
    }
    if !event.set_up_here {
        // A replica placed after the creation, not filled yet: another replica can answer.
        let ids = others();
        return if ids.is_empty() {
            Route::Nowhere("the event's inventory is not set up yet")
        } else {
            Route::Peers(ids)
        };
    }
    match (need, event.leader) {
        (Need::Replica, _) => Route::Here,
        (Need::Leader, Some(l)) if l == me => Route::Here,
        (Need::Leader, Some(l)) if event.replicas.contains(&l) && reachable(l) => Route::Peers(vec![l]),
        (Need::Leader, Some(_)) => Route::Nowhere("the event's leader is not reachable"),
        (Need::Leader, None) => Route::Nowhere("the event's group has no leader"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(replicas: &[NodeId], set_up_here: bool, leader: Option<NodeId>) -> EventView<'_> {
        EventView { replicas, set_up_here, leader }
    }

    const ALL: fn(NodeId) -> bool = |_| true;

    #[test]
    fn a_set_up_replica_serves_reads_and_batched_writes_here() {
        assert_eq!(route(1, &view(&[1, 2, 3], true, Some(2)), Need::Replica, ALL), Route::Here);
        assert_eq!(route(1, &view(&[1, 2, 3], true, None), Need::Replica, ALL), Route::Here);
    }

    #[test]
    fn a_node_without_a_replica_asks_the_live_replicas() {
        assert_eq!(route(4, &view(&[1, 2, 3], false, None), Need::Replica, ALL), Route::Peers(vec![1, 2, 3]));
        assert_eq!(
            route(4, &view(&[1, 2, 3], false, None), Need::Replica, |n| n != 2),
            Route::Peers(vec![1, 3])
        );
        assert_eq!(
            route(4, &view(&[1, 2, 3], false, None), Need::Leader, |_| false),
            Route::Nowhere("no live replica of this event")
        );
    }

    #[test]
    fn a_replica_not_set_up_asks_the_others_leader_first() {
        assert_eq!(route(1, &view(&[1, 2, 3], false, Some(3)), Need::Replica, ALL), Route::Peers(vec![3, 2]));
        assert_eq!(
            route(1, &view(&[1, 2, 3], false, Some(3)), Need::Replica, |n| n == 1),
            Route::Nowhere("the event's inventory is not set up yet")
        );
    }

    #[test]
    fn confirms_go_to_the_leader_only() {
        assert_eq!(route(1, &view(&[1, 2, 3], true, Some(1)), Need::Leader, ALL), Route::Here);
        assert_eq!(route(1, &view(&[1, 2, 3], true, Some(2)), Need::Leader, ALL), Route::Peers(vec![2]));
        assert_eq!(
            route(1, &view(&[1, 2, 3], true, Some(2)), Need::Leader, |n| n != 2),
            Route::Nowhere("the event's leader is not reachable")
        );
        // A leader the catalog no longer lists (a replica just moved) is not asked.
        assert_eq!(
            route(1, &view(&[1, 2, 3], true, Some(7)), Need::Leader, ALL),
            Route::Nowhere("the event's leader is not reachable")
        );
        assert_eq!(
            route(1, &view(&[1, 2, 3], true, None), Need::Leader, ALL),
            Route::Nowhere("the event's group has no leader")
        );
    }

    #[test]
    fn never_routes_to_itself() {
        for me in 1..=4 {
            for leader in [None, Some(1), Some(2), Some(3), Some(4)] {
                for set_up in [false, true] {
                    for need in [Need::Replica, Need::Leader] {
                        if let Route::Peers(ids) = route(me, &view(&[1, 2, 3], set_up, leader), need, ALL) {
                            assert!(
                                !ids.contains(&me) && !ids.is_empty(),
                                "{me} {leader:?} {set_up} {need:?}: {ids:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
