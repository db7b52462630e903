//! Node liveness: one heartbeat per pair of nodes, not one per group.
//!
//! Sleeping groups send nothing, so a follower of a sleeping group cannot tell from the group
//! whether its leader's node is alive. Instead every host pings each peer node
//! ([`RpcRequest::Ping`](crate::RpcRequest::Ping), empty group id) every
//! [`LIVENESS_INTERVAL_MS`]; a peer that has not answered (or pinged us) for
//! [`LIVENESS_TIMEOUT_MS`] is [`PeerStatus::Dead`]. The host uses this view to wake, on the
//! survivors, the groups a dead node led (`quiesce`), and to refuse votes from candidates while
//! a sleeping group's leader is known to be alive (so a restarted node cannot depose it).
//!
//! Silence counts only while this node runs: when this node itself was stopped or starved
//! (SIGSTOP, a VM pause, a CPU-starved runtime), the gap between two sweeps is added back to
//! every peer's last-heard time, so a node coming back from a pause does not declare every
//! peer dead and fail over their groups (measured before this rule: a paused-and-resumed node
//! started elections for the 38 groups a healthy peer led, which set off a cascade of
//! liveness flaps on a busy cluster).
//!
//! A refused connection ([`TransportError::Refused`](crate::TransportError::Refused): the
//! peer's host says nothing listens on its address) is proof that the peer's process is not
//! running, so the peer is dead at once instead of after [`LIVENESS_TIMEOUT_MS`]; its next
//! answer makes it live again. A kill -9 is then seen within a ping or two (~200–400 ms), not
//! a second, which is most of a failover of sleeping groups. Silence alone (a partition, a
//! paused process, a lost host) still takes the full timeout.
//!
//! A pong carries the peer's incarnation (a number picked at each process start), so a
//! restart is visible even when no ping was missed.
//!
//! The peers are set by the application ([`crate::RaftHost::set_peers`]): every node of the
//! cluster, from the catalog.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::group::mono_ms;
use crate::NodeAddr;
use crate::NodeId;

/// How often each peer is pinged.
pub const LIVENESS_INTERVAL_MS: u64 = 200;
/// A peer silent this long is dead; also the bound of one ping.
pub const LIVENESS_TIMEOUT_MS: u64 = 1_000;
/// A gap between two sweeps longer than this means this node was not running (see the
/// module doc).
const SELF_STALL_MS: u64 = 400;
/// How often the host sweeps (`quiesce::KEEPER_TICK_MS`).
const SWEEP_INTERVAL_MS: u64 = 200;

/// What this node believes of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// Heard from within [`LIVENESS_TIMEOUT_MS`].
    Live,
    /// Known for less than [`LIVENESS_TIMEOUT_MS`] and not heard from yet.
    Unknown,
    /// Silent for [`LIVENESS_TIMEOUT_MS`] or more.
    Dead,
}

#[derive(Clone, Debug)]
struct Peer {
    addr: NodeAddr,
    /// `mono_ms` of the last pong (or ping) from it.
    heard_ms: Option<u64>,
    /// When this node started to watch it.
    since_ms: u64,
    incarnation: Option<u64>,
    /// A connection to it was refused since it was last heard from.
    refused: bool,
    /// Status at the last [`Liveness::sweep`], to report changes once.
    reported: PeerStatus,
}

/// The liveness view of one host.
pub(crate) struct Liveness {
    me: NodeId,
    incarnation: u64,
    peers: RwLock<BTreeMap<NodeId, Peer>>,
    /// Nodes that were peers and are no longer (removed from the cluster): dead for good, so
    /// the groups they led fail over and their candidates' rivals get votes.
    gone: RwLock<std::collections::BTreeSet<NodeId>>,
    /// Gone nodes the next sweep reports dead (once).
    newly_gone: RwLock<Vec<NodeId>>,
    /// `mono_ms` of the last [`Liveness::sweep`].
    last_sweep_ms: std::sync::atomic::AtomicU64,
}

impl Liveness {
    pub(crate) fn new(me: NodeId, incarnation: u64) -> Liveness {
        Liveness {
            me,
            incarnation,
            peers: RwLock::new(BTreeMap::new()),
            gone: RwLock::new(std::collections::BTreeSet::new()),
            newly_gone: RwLock::new(Vec::new()),
            last_sweep_ms: std::sync::atomic::AtomicU64::new(mono_ms()),
        }
    }

    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Watch exactly `peers` (this node is left out); new ones start `Unknown`. A peer that is
    /// left out from now on is gone: [`PeerStatus::Dead`] for good (and reported once by the
    /// next sweep), unless it is listed again.
    pub(crate) fn set_peers(&self, peers: BTreeMap<NodeId, NodeAddr>) {
        let now = mono_ms();
        let mut table = self.peers.write().unwrap_or_else(|p| p.into_inner());
        let left: Vec<NodeId> = table.keys().copied().filter(|id| !peers.contains_key(id)).collect();
        if !left.is_empty() {
            self.gone.write().unwrap_or_else(|p| p.into_inner()).extend(&left);
            self.newly_gone.write().unwrap_or_else(|p| p.into_inner()).extend(&left);
        }
        {
            let mut gone = self.gone.write().unwrap_or_else(|p| p.into_inner());
            if !gone.is_empty() {
                gone.retain(|id| !peers.contains_key(id));
            }
        }
        table.retain(|id, _| peers.contains_key(id));
        for (id, addr) in peers {
            if id == self.me {
                continue;
            }
            let entry = table.entry(id).or_insert_with(|| Peer {
                addr: addr.clone(),
                heard_ms: None,
                since_ms: now,
                incarnation: None,
                refused: false,
                reported: PeerStatus::Unknown,
            });
            entry.addr = addr;
        }
    }

    /// These nodes left the cluster (even if this node never watched them, e.g. removed before
    /// it started): dead for good; each newly named one is reported once by the next sweep.
    pub(crate) fn set_gone(&self, ids: &[NodeId]) {
        let mut gone = self.gone.write().unwrap_or_else(|p| p.into_inner());
        let new: Vec<NodeId> =
            ids.iter().copied().filter(|id| *id != self.me && !gone.contains(id)).collect();
        if !new.is_empty() {
            gone.extend(&new);
            self.newly_gone.write().unwrap_or_else(|p| p.into_inner()).extend(new);
        }
    }

    /// The address of peer `id` as the cluster records it (see [`crate::RaftHost::set_peers`]).
    pub(crate) fn addr_of(&self, id: NodeId) -> Option<NodeAddr> {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).get(&id).map(|p| p.addr.clone())
    }

    /// The peers and their addresses, to ping.
    pub(crate) fn targets(&self) -> Vec<(NodeId, NodeAddr)> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, p)| (*id, p.addr.clone()))
            .collect()
    }

    /// `from` answered (or pinged us) as `incarnation`. `true` if that is a new incarnation
    /// (it restarted since we last heard from it).
    pub(crate) fn heard(&self, from: NodeId, incarnation: u64) -> bool {
        let mut table = self.peers.write().unwrap_or_else(|p| p.into_inner());
        let Some(peer) = table.get_mut(&from) else { return false };
        peer.heard_ms = Some(mono_ms());
        peer.refused = false;
        let restarted = peer.incarnation.is_some_and(|i| i != incarnation);
        peer.incarnation = Some(incarnation);
        restarted
    }

    /// A connection to `node` was refused: it is dead until it answers again (module doc).
    pub(crate) fn refused(&self, node: NodeId) {
        let mut table = self.peers.write().unwrap_or_else(|p| p.into_inner());
        if let Some(peer) = table.get_mut(&node) {
            peer.refused = true;
        }
    }

    fn status_of(peer: &Peer, now: u64) -> PeerStatus {
        if peer.refused {
            return PeerStatus::Dead;
        }
        match peer.heard_ms {
            Some(t) if now.saturating_sub(t) < LIVENESS_TIMEOUT_MS => PeerStatus::Live,
            None if now.saturating_sub(peer.since_ms) < LIVENESS_TIMEOUT_MS => PeerStatus::Unknown,
            _ => PeerStatus::Dead,
        }
    }

    /// What this node believes of `node` (itself: live; a node it does not watch: unknown).
    pub(crate) fn status(&self, node: NodeId) -> PeerStatus {
        if node == self.me {
            return PeerStatus::Live;
        }
        let table = self.peers.read().unwrap_or_else(|p| p.into_inner());
        match table.get(&node) {
            Some(p) => Self::status_of(p, mono_ms()),
            None if self.gone.read().unwrap_or_else(|p| p.into_inner()).contains(&node) => PeerStatus::Dead,
            None => PeerStatus::Unknown,
        }
    }

    /// How long `node` has been silent (since its last answer, or since this node started to
    /// watch it); `None` for a node not watched, and this node.
    pub(crate) fn silent_ms(&self, node: NodeId) -> Option<u64> {
        let now = mono_ms();
        let table = self.peers.read().unwrap_or_else(|p| p.into_inner());
        table.get(&node).map(|p| now.saturating_sub(p.heard_ms.unwrap_or(p.since_ms)))
    }

    /// Every watched peer with its status.
    pub(crate) fn statuses(&self) -> BTreeMap<NodeId, PeerStatus> {
        let now = mono_ms();
        let table = self.peers.read().unwrap_or_else(|p| p.into_inner());
        table.iter().map(|(id, p)| (*id, Self::status_of(p, now))).collect()
    }

    /// Peers whose status changed since the last sweep, with the new status.
    pub(crate) fn sweep(&self) -> Vec<(NodeId, PeerStatus)> {
        let now = mono_ms();
        let mut table = self.peers.write().unwrap_or_else(|p| p.into_inner());
        let last = self.last_sweep_ms.swap(now, std::sync::atomic::Ordering::Relaxed);
        let stalled = now.saturating_sub(last);
        if stalled > SELF_STALL_MS {
            // This node was not running: that silence is not the peers' (module doc).
            tracing::info!(
                node = self.me,
                stalled_ms = stalled,
                "this node stalled; peers' silence forgiven"
            );
            // Only the time past one normal tick is forgiven: a node that is merely slow
            // (every sweep a little late) still sees a dead peer, only later.
            let forgiven = stalled - SWEEP_INTERVAL_MS;
            for peer in table.values_mut() {
                peer.heard_ms = peer.heard_ms.map(|t| (t + forgiven).min(now));
                peer.since_ms = (peer.since_ms + forgiven).min(now);
            }
        }
        let mut changed: Vec<(NodeId, PeerStatus)> =
            std::mem::take(&mut *self.newly_gone.write().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .filter(|id| !table.contains_key(id))
                .map(|id| (id, PeerStatus::Dead))
                .collect();
        for (id, peer) in table.iter_mut() {
            let status = Self::status_of(peer, now);
            if status != peer.reported {
                peer.reported = status;
                changed.push((*id, status));
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_then_live_then_dead() {
        let l = Liveness::new(1, 7);
        l.set_peers(BTreeMap::from([(1, NodeAddr::default()), (2, NodeAddr::default())]));
        assert_eq!(l.status(1), PeerStatus::Live);
        assert_eq!(l.status(2), PeerStatus::Unknown);
        assert_eq!(l.status(3), PeerStatus::Unknown);
        assert!(!l.heard(2, 5));
        assert_eq!(l.status(2), PeerStatus::Live);
        assert_eq!(l.sweep(), vec![(2, PeerStatus::Live)]);
        assert!(l.sweep().is_empty());
        assert!(l.heard(2, 6), "a new incarnation is a restart");
        {
            let mut t = l.peers.write().unwrap();
            t.get_mut(&2).unwrap().heard_ms = Some(mono_ms().saturating_sub(LIVENESS_TIMEOUT_MS));
        }
        assert_eq!(l.status(2), PeerStatus::Dead);
        assert_eq!(l.sweep(), vec![(2, PeerStatus::Dead)]);
    }

    #[test]
    fn a_peer_left_out_is_dead_for_good() {
        let l = Liveness::new(1, 7);
        l.set_peers(BTreeMap::from([(2, NodeAddr::default()), (3, NodeAddr::default())]));
        l.heard(2, 5);
        l.heard(3, 5);
        assert_eq!(l.sweep().len(), 2);
        // Node 2 is removed from the cluster while it still answers.
        l.set_peers(BTreeMap::from([(3, NodeAddr::default())]));
        assert_eq!(l.status(2), PeerStatus::Dead, "its groups must fail over");
        assert_eq!(l.sweep(), vec![(2, PeerStatus::Dead)], "reported once");
        assert!(l.sweep().is_empty());
        assert_eq!(l.status(4), PeerStatus::Unknown, "a node never watched is not gone");
        l.set_peers(BTreeMap::from([(2, NodeAddr::default()), (3, NodeAddr::default())]));
        assert_eq!(l.status(2), PeerStatus::Unknown, "listed again: watched again");
        l.set_gone(&[9]);
        assert_eq!(l.status(9), PeerStatus::Dead, "removed before this node watched it");
        assert_eq!(l.sweep(), vec![(9, PeerStatus::Dead)]);
        l.set_gone(&[9]);
        assert!(l.sweep().is_empty(), "reported once");
    }

    #[test]
    fn own_stall_is_not_the_peers_silence() {
        let l = Liveness::new(1, 7);
        l.set_peers(BTreeMap::from([(2, NodeAddr::default()), (3, NodeAddr::default())]));
        l.heard(2, 5);
        l.heard(3, 5);
        assert_eq!(l.sweep().len(), 2);
        // Both went silent 1.5 s ago, but this node's last sweep was 1.4 s ago: it was
        // paused for nearly all of that time, so neither is dead yet.
        let now = mono_ms();
        for p in l.peers.write().unwrap().values_mut() {
            p.heard_ms = Some(now.saturating_sub(1_500));
        }
        l.last_sweep_ms.store(now.saturating_sub(1_400), std::sync::atomic::Ordering::Relaxed);
        assert!(l.sweep().is_empty(), "no peer is dead after this node's own pause");
        assert_eq!(l.status(2), PeerStatus::Live);
        // Without a stall, the same silence is death.
        for p in l.peers.write().unwrap().values_mut() {
            p.heard_ms = Some(mono_ms().saturating_sub(1_500));
        }
        assert_eq!(l.sweep(), vec![(2, PeerStatus::Dead), (3, PeerStatus::Dead)]);
    }

    #[test]
    fn a_refused_connection_is_death_until_the_next_answer() {
        let l = Liveness::new(1, 7);
        l.set_peers(BTreeMap::from([(2, NodeAddr::default())]));
        l.heard(2, 5);
        assert_eq!(l.sweep(), vec![(2, PeerStatus::Live)]);
        l.refused(2);
        assert_eq!(l.status(2), PeerStatus::Dead, "no need to wait for the timeout");
        assert_eq!(l.sweep(), vec![(2, PeerStatus::Dead)]);
        assert!(l.heard(2, 6), "it came back as a new process");
        assert_eq!(l.sweep(), vec![(2, PeerStatus::Live)]);
        l.refused(3); // not watched: ignored
        assert_eq!(l.status(3), PeerStatus::Unknown);
    }
}
