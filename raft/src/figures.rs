//! Raft figures for operators: what `/metrics` shows of the groups a node hosts.
//!
//! Owns three things, none of which runs a task or touches a dormant group:
//! - [`RaftFigures`] and the pure [`aggregate`] that computes them from one [`GroupView`] per
//!   group **in memory** (read from each group's metrics watch, without waking it): groups led
//!   here, leaderless groups, under-replicated groups, commit and apply lag, highest term.
//!   Dormant groups are left out: counting them would mean loading them, and a dormant group
//!   has, by construction, nothing to commit or apply.
//! - [`LeaderWatch`]: an openraft [`MetricsRecorder`] installed on each group when it is
//!   loaded. openraft calls it from the group's own core whenever the group reports its
//!   metrics, so leadership changes are counted as they happen, with no watcher task; an idle
//!   (sleeping) group reports nothing and costs nothing.
//! - [`SnapshotCounting`]: the host's transport, wrapped to count snapshots delivered to peers.
//!
//! The counters live in the host (`host::Counters`) and are read through
//! [`RaftHost::stats`](crate::RaftHost::stats).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::future::BoxFuture;
use openraft::metrics::MetricsRecorder;

use crate::liveness::PeerStatus;
use crate::network::RpcRequest;
use crate::network::RpcResponse;
use crate::network::Transport;
use crate::network::TransportError;
use crate::NodeAddr;
use crate::NodeId;

/// Voters a group should have (fewer only when the cluster has fewer nodes): below this a
/// group it leads is counted as under-replicated.
pub const REPLICAS_TARGET: usize = 3;

/// One group in memory, as its metrics watch shows it (see [`crate::RaftHost::raft_figures`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupView {
    /// Ticks off (see `quiesce`).
    pub(crate) asleep: bool,
    /// openraft's server state here is `Leader`.
    pub(crate) leading: bool,
    /// The leader openraft knows of (no hint from before a reload).
    pub(crate) leader: Option<NodeId>,
    pub(crate) term: u64,
    pub(crate) last_log_index: u64,
    pub(crate) committed_index: u64,
    pub(crate) applied_index: u64,
    /// Voters of the current (effective) membership.
    pub(crate) voters: Vec<NodeId>,
}

/// Figures over the groups in memory on one node, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftFigures {
    /// Groups whose openraft instance runs here (awake or asleep).
    pub in_memory: u64,
    /// Groups this node leads.
    pub leading: u64,
    /// Awake groups with no known leader (an election is due or running).
    pub leaderless: u64,
    /// Groups this node leads with fewer voters than [`REPLICAS_TARGET`] (or than the live
    /// cluster's node count, if smaller), or with a voter this node does not see as live.
    pub under_replicated: u64,
    /// Sum and largest over groups of `last_log_index − committed_index`: entries in the local
    /// log not yet known committed.
    pub commit_lag_sum: u64,
    pub commit_lag_max: u64,
    /// Sum and largest over groups of `committed_index − applied_index`: committed entries
    /// not yet applied here.
    pub apply_lag_sum: u64,
    pub apply_lag_max: u64,
    /// The highest current term over the groups.
    pub term_max: u64,
}

/// Aggregate the views of the groups in memory on node `me`. `peers` is this node's liveness
/// view of every other non-removed node (see [`crate::RaftHost::set_peers`]).
pub(crate) fn aggregate(
    me: NodeId,
    views: &[GroupView],
    peers: &BTreeMap<NodeId, PeerStatus>,
) -> RaftFigures {
    let nodes = peers.keys().filter(|id| **id != me).count() + 1;
    let voters_wanted = REPLICAS_TARGET.min(nodes);
    let live = |id: &NodeId| *id == me || peers.get(id) == Some(&PeerStatus::Live);
    let mut f = RaftFigures { in_memory: views.len() as u64, ..RaftFigures::default() };
    for v in views {
        if v.leading {
            f.leading += 1;
            if v.voters.len() < voters_wanted || !v.voters.iter().all(live) {
                f.under_replicated += 1;
            }
        }
        if !v.asleep && v.leader.is_none() {
            f.leaderless += 1;
        }
        let commit_lag = v.last_log_index.saturating_sub(v.committed_index);
        let apply_lag = v.committed_index.saturating_sub(v.applied_index);
        f.commit_lag_sum += commit_lag;
        f.commit_lag_max = f.commit_lag_max.max(commit_lag);
        f.apply_lag_sum += apply_lag;
        f.apply_lag_max = f.apply_lag_max.max(apply_lag);
        f.term_max = f.term_max.max(v.term);
    }
    f
}

/// openraft's code for the `Leader` server state in [`MetricsRecorder::set_server_state`].
const STATE_LEADER: u8 = 3;
/// Any state but `Leader`, before the first report (openraft's codes are 0..=4).
const STATE_NOT_LEADER: u8 = u8::MAX;

/// Whether a group whose last known server state was `previous` took leadership here on
/// reporting `now`.
pub(crate) fn took_leadership(previous: u8, now: u8) -> bool {
    now == STATE_LEADER && previous != STATE_LEADER
}

/// Counts, into the host's counter, the times one group became the leader on this node. Summed
/// over the nodes of a cluster, that is the cluster's leader changes (each new leader counts
/// once, on its own node).
#[derive(Debug)]
pub(crate) struct LeaderWatch {
    last_state: AtomicU8,
    leader_changes: Arc<AtomicU64>,
    /// The group's id, sent on `became_leader` each time it takes leadership here.
    group: String,
    became_leader: tokio::sync::broadcast::Sender<String>,
}

impl LeaderWatch {
    /// A watch on a group that leads here already (`leading`: a leader restored at load, which
    /// is no change) or not. The baseline is given rather than taken from the first report: a
    /// new group's first election can finish before openraft first reports to the watch.
    pub(crate) fn new(
        leader_changes: Arc<AtomicU64>,
        leading: bool,
        group: String,
        became_leader: tokio::sync::broadcast::Sender<String>,
    ) -> LeaderWatch {
        let state = if leading { STATE_LEADER } else { STATE_NOT_LEADER };
        LeaderWatch { last_state: AtomicU8::new(state), leader_changes, group, became_leader }
    }
}

impl MetricsRecorder for LeaderWatch {
    fn set_server_state(&self, state: u8) {
        let previous = self.last_state.swap(state, Ordering::Relaxed);
        if took_leadership(previous, state) {
            self.leader_changes.fetch_add(1, Ordering::Relaxed);
            // No receiver (nobody subscribed) is fine.
            let _ = self.became_leader.send(self.group.clone());
        }
    }

    // The rest are read from the metrics watch at scrape time instead (see `GroupView`).
    fn record_apply_batch(&self, _entry_count: u64) {}
    fn record_append_batch(&self, _entry_count: u64) {}
    fn record_write_batch(&self, _entry_count: u64) {}
    fn set_current_term(&self, _term: u64) {}
    fn set_last_log_index(&self, _index: u64) {}
    fn set_committed_index(&self, _index: u64) {}
    fn set_applied_index(&self, _index: u64) {}
    fn set_snapshot_index(&self, _index: u64) {}
    fn set_purged_index(&self, _index: u64) {}
    fn increment_vote(&self) {}
    fn increment_heartbeat(&self) {}
    fn increment_append(&self) {}
}

/// The host's transport, counting the snapshots a peer received and answered, and sending an
/// RPC addressed without an address (the members of a seeded group, see
/// [`crate::RaftHost::create_seeded`]) to the address the cluster records for its target.
pub(crate) struct SnapshotCounting {
    pub(crate) inner: Arc<dyn Transport>,
    pub(crate) sent: Arc<AtomicU64>,
    pub(crate) liveness: Arc<crate::liveness::Liveness>,
}

impl Transport for SnapshotCounting {
    fn send<'a>(
        &'a self,
        target: NodeId,
        addr: &'a NodeAddr,
        group: &'a str,
        rpc: RpcRequest,
    ) -> BoxFuture<'a, Result<RpcResponse, TransportError>> {
        let snapshot = matches!(rpc, RpcRequest::InstallSnapshot { .. });
        if addr.raft_addr.is_empty() {
            if let Some(known) = self.liveness.addr_of(target) {
                return Box::pin(async move {
                    let answer = self.inner.send(target, &known, group, rpc).await;
                    if snapshot && matches!(answer, Ok(RpcResponse::InstallSnapshot(_))) {
                        self.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    answer
                });
            }
        }
        let sent = self.inner.send(target, addr, group, rpc);
        if !snapshot {
            return sent;
        }
        Box::pin(async move {
            let answer = sent.await;
            if matches!(answer, Ok(RpcResponse::InstallSnapshot(_))) {
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(voters: &[NodeId]) -> GroupView {
        GroupView { leading: true, leader: Some(1), voters: voters.to_vec(), ..GroupView::default() }
    }

    fn peers(list: &[(NodeId, PeerStatus)]) -> BTreeMap<NodeId, PeerStatus> {
        list.iter().copied().collect()
    }

    #[test]
    fn a_led_group_is_under_replicated_below_three_voters_or_with_a_voter_not_live() {
        let live3 = peers(&[(2, PeerStatus::Live), (3, PeerStatus::Live)]);
        let f = aggregate(1, &[led(&[1, 2, 3]), led(&[1, 2])], &live3);
        assert_eq!((f.leading, f.under_replicated), (2, 1), "two voters of three nodes: {f:?}");

        let one_dead = peers(&[(2, PeerStatus::Live), (3, PeerStatus::Dead)]);
        assert_eq!(aggregate(1, &[led(&[1, 2, 3])], &one_dead).under_replicated, 1);
        let one_unknown = peers(&[(2, PeerStatus::Live), (3, PeerStatus::Unknown)]);
        assert_eq!(aggregate(1, &[led(&[1, 2, 3])], &one_unknown).under_replicated, 1);
        // A voter that is no longer a peer (removed from the cluster) is not live.
        assert_eq!(aggregate(1, &[led(&[1, 2, 4])], &live3).under_replicated, 1);
    }

    #[test]
    fn a_small_cluster_wants_only_as_many_voters_as_it_has_nodes() {
        assert_eq!(aggregate(1, &[led(&[1])], &BTreeMap::new()).under_replicated, 0);
        let two = peers(&[(2, PeerStatus::Live)]);
        assert_eq!(aggregate(1, &[led(&[1, 2])], &two).under_replicated, 0);
        assert_eq!(aggregate(1, &[led(&[1])], &two).under_replicated, 1);
    }

    #[test]
    fn groups_led_elsewhere_are_never_under_replicated_here() {
        let follower = GroupView { leader: Some(2), voters: vec![1], ..GroupView::default() };
        let f = aggregate(1, &[follower], &peers(&[(2, PeerStatus::Dead), (3, PeerStatus::Live)]));
        assert_eq!((f.leading, f.under_replicated), (0, 0));
    }

    #[test]
    fn only_awake_groups_without_a_leader_are_leaderless() {
        let awake = GroupView::default();
        let asleep = GroupView { asleep: true, ..GroupView::default() };
        let led_elsewhere = GroupView { leader: Some(2), ..GroupView::default() };
        assert_eq!(aggregate(1, &[awake, asleep, led_elsewhere], &BTreeMap::new()).leaderless, 1);
    }

    #[test]
    fn lags_are_summed_and_maxed_and_never_negative() {
        let a = GroupView {
            last_log_index: 10,
            committed_index: 7,
            applied_index: 5,
            term: 4,
            ..Default::default()
        };
        let b = GroupView {
            last_log_index: 3,
            committed_index: 3,
            applied_index: 1,
            term: 9,
            ..Default::default()
        };
        // A follower that learned a commit index beyond its own log (it cannot happen with
        // openraft's local committed, but the figures must not wrap if it did).
        let c = GroupView { last_log_index: 2, committed_index: 4, applied_index: 4, ..Default::default() };
        let f = aggregate(1, &[a, b, c], &BTreeMap::new());
        assert_eq!((f.commit_lag_sum, f.commit_lag_max), (3, 3));
        assert_eq!((f.apply_lag_sum, f.apply_lag_max), (4, 2));
        assert_eq!((f.term_max, f.in_memory), (9, 3));
    }

    #[test]
    fn leadership_counts_on_taking_it_not_on_keeping_it_or_on_a_restore() {
        let (follower, candidate) = (1, 2);
        assert!(took_leadership(STATE_NOT_LEADER, STATE_LEADER), "a new group's first election");
        assert!(took_leadership(candidate, STATE_LEADER));
        assert!(took_leadership(follower, STATE_LEADER));
        assert!(!took_leadership(STATE_LEADER, STATE_LEADER));
        assert!(!took_leadership(STATE_LEADER, follower));

        let changes = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::broadcast::channel(8);
        let watch = LeaderWatch::new(changes.clone(), false, "g1".into(), tx.clone());
        for state in [STATE_LEADER, STATE_LEADER, follower, candidate, STATE_LEADER] {
            watch.set_server_state(state);
        }
        assert_eq!(changes.load(Ordering::Relaxed), 2);
        assert_eq!((rx.try_recv().unwrap(), rx.try_recv().unwrap()), ("g1".to_string(), "g1".to_string()));
        assert!(rx.try_recv().is_err(), "announced once per leadership taken");

        let restored = LeaderWatch::new(changes.clone(), true, "g2".into(), tx);
        restored.set_server_state(STATE_LEADER);
        assert_eq!(changes.load(Ordering::Relaxed), 2, "a leader restored at load is no change");
        assert!(rx.try_recv().is_err());
    }
}
