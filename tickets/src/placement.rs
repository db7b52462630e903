//! Placement: which nodes host an event's group. A pure function of the registered nodes
//! and how many event replicas each already hosts, so every catalog replica computes the
//! same answer in apply: the `replicas` least-loaded live nodes, ties broken by node id.

use std::collections::BTreeMap;

use crate::NodeId;

/// Replicas per event group when the cluster has that many nodes.
pub const REPLICAS_PER_EVENT: usize = 3;

/// Pick up to `replicas` nodes from `nodes` (live node ids) by ascending load, then id.
/// `load` maps a node to the number of event replicas it hosts (missing = 0).
pub fn place(nodes: &[NodeId], load: &BTreeMap<NodeId, usize>, replicas: usize) -> Vec<NodeId> {
    let mut ranked: Vec<(usize, NodeId)> =
        nodes.iter().map(|n| (load.get(n).copied().unwrap_or(0), *n)).collect();
    ranked.sort_unstable();
    ranked.dedup_by_key(|(_, n)| *n);
    let mut chosen: Vec<NodeId> = ranked.into_iter().take(replicas).map(|(_, n)| n).collect();
    chosen.sort_unstable();
    chosen
}

/// The least-loaded live node not already in `current`, to take over a replica.
pub fn replacement(nodes: &[NodeId], load: &BTreeMap<NodeId, usize>, current: &[NodeId]) -> Option<NodeId> {
    let candidates: Vec<NodeId> = nodes.iter().copied().filter(|n| !current.contains(n)).collect();
    place(&candidates, load, 1).into_iter().next()
}

/// One step toward an even spread: move a replica from the most loaded node to the least
/// loaded one, when their loads differ by more than one. `events` lists each event's replicas;
/// the event moved is the first (in the order given) on the most loaded node that the least
/// loaded one does not hold. `None` when the spread is even enough or no such event exists.
/// Only `nodes` (placeable) count as targets; a node missing from `load` hosts nothing.
pub fn rebalance_step<'a, E: Clone + 'a>(
    nodes: &[NodeId],
    load: &BTreeMap<NodeId, usize>,
    events: impl IntoIterator<Item = (&'a E, &'a [NodeId])>,
) -> Option<(E, NodeId, NodeId)> {
    let mut ranked: Vec<(usize, NodeId)> =
        nodes.iter().map(|n| (load.get(n).copied().unwrap_or(0), *n)).collect();
    ranked.sort_unstable();
    let (&(low, to), &(high, from)) = (ranked.first()?, ranked.last()?);
    if high <= low + 1 {
        return None;
    }
    events
        .into_iter()
        .find(|(_, replicas)| replicas.contains(&from) && !replicas.contains(&to))
        .map(|(e, _)| (e.clone(), from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_first_ties_by_id() {
        let load = BTreeMap::from([(1, 5), (2, 0), (3, 1), (4, 0), (5, 0)]);
        assert_eq!(place(&[1, 2, 3, 4, 5], &load, 3), vec![2, 4, 5]);
        assert_eq!(place(&[5, 4, 3, 2, 1], &load, 3), vec![2, 4, 5], "input order does not matter");
    }

    #[test]
    fn fewer_nodes_than_replicas_takes_them_all() {
        assert_eq!(place(&[7, 3], &BTreeMap::new(), 3), vec![3, 7]);
        assert_eq!(place(&[], &BTreeMap::new(), 3), Vec::<NodeId>::new());
    }

    #[test]
    fn spreading_many_events_keeps_loads_within_one() {
        let nodes = [1, 2, 3, 4, 5];
        let mut load = BTreeMap::new();
        for _ in 0..20 {
            for n in place(&nodes, &load, 3) {
                *load.entry(n).or_insert(0) += 1;
            }
        }
        let (min, max) = (load.values().min().unwrap(), load.values().max().unwrap());
        assert_eq!(load.len(), 5, "every node hosts some: {load:?}");
        assert!(max - min <= 1, "{load:?}");
        assert_eq!(load.values().sum::<usize>(), 60);
    }

    #[test]
    fn rebalancing_moves_from_the_most_to_the_least_loaded() {
        let events: Vec<(String, Vec<NodeId>)> = (0..4).map(|i| (format!("e{i}"), vec![1, 2, 3])).collect();
        let listed = || events.iter().map(|(e, r)| (e, r.as_slice()));
        let load = BTreeMap::from([(1, 4), (2, 4), (3, 4)]);
        assert_eq!(rebalance_step(&[1, 2, 3], &load, listed()), None, "even");
        // Node 4 joins with nothing: the most loaded (ties: highest id) gives it one.
        assert_eq!(rebalance_step(&[1, 2, 3, 4], &load, listed()), Some(("e0".to_string(), 3, 4)));
        let load = BTreeMap::from([(1, 4), (2, 4), (3, 3), (4, 2)]);
        assert_eq!(rebalance_step(&[1, 2, 3, 4], &load, listed()), Some(("e0".to_string(), 2, 4)));
        let load = BTreeMap::from([(1, 3), (2, 3), (3, 3), (4, 3)]);
        assert_eq!(rebalance_step(&[1, 2, 3, 4], &load, listed()), None, "within one");
    }

    #[test]
    fn replacement_avoids_current_members() {
        let load = BTreeMap::from([(1, 0), (2, 0), (3, 0), (4, 2)]);
        assert_eq!(replacement(&[1, 2, 3, 4], &load, &[1, 2, 3]), Some(4));
        assert_eq!(replacement(&[1, 2, 3], &load, &[1, 2, 3]), None);
    }
}
