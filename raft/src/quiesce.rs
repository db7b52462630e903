//! Quiescence: groups that sleep when idle, wake on anything, and fail over without timers.
//!
//! What costs an idle group nothing is a group whose openraft instance does not tick: no
//! heartbeat, no election timer, no message (TiKV's "hibernate region", CockroachDB's range
//! quiescence; openraft's `RuntimeConfigHandle::tick`). This module decides when that is safe,
//! and what stands in for the timers while it sleeps.
//!
//! **Going to sleep** (the keeper, on the leader): a group whose leader is this node, idle for
//! `sleep_after_ms` (no write, read or RPC), with nothing queued, no membership change in
//! flight, everything committed and applied, and every member's matched log id equal to the
//! leader's last one (members whose node is dead are left out), sends each member a
//! [`RpcRequest::Sleep`] with its vote, last log id and committed id. A member sleeps only if
//! it has exactly that vote, last log id and committed id, and answers whether it did. When
//! every member that is not dead did, the leader sleeps too.
//!
//! **Waking**: every write, linearizable read and incoming RPC ([`Group::touch`]) turns the
//! ticks on again; a proposal replicates at once (no timer is needed for that), and the
//! followers wake when its entries reach them. A sleeping follower hears nothing, so its
//! leader's lease lapses; that is harmless because nothing but an incoming message or a dead
//! leader wakes it.
//!
//! **Failover** (the keeper): node liveness (`liveness`: one ping per node pair) declares a
//! peer dead after `LIVENESS_TIMEOUT_MS`. Every group here whose leader was that node wakes —
//! resident ones at once, dormant ones loaded (at most [`FAILOVER_LOADS_MAX`] at a time) — and
//! one live voter, picked by a hash of the group id ([`elector`]), starts an election right
//! away (the others' timers are the fallback). Once a group has a new leader and nothing to
//! do, it sleeps again: the dead node's missing answer does not keep it awake (TiKV #19070).
//!
//! **The vote guard** (in `RaftHost::handle_rpc`): a sleeping replica's lease has lapsed, so
//! openraft would grant a (pre-)vote to any candidate — a restarted node, or a follower whose
//! sleep message got lost — and depose a healthy leader. So while a group sleeps here and its
//! leader is this node or a node that is not dead, a vote request from another node is refused
//! without waking the group (and a sleeping leader wakes, so the candidate hears from it).
//! Refusing a vote is always safe; a leadership transfer is never refused.
//!
//! **Safety.** Sleeping only stops timers. Raft's safety never depends on timers, and reads
//! stay linearizable: a read index is confirmed by a quorum round whatever the group was
//! doing, and writes commit only on a quorum. Expiry does not depend on ticks either: the
//! application proposes `Expire` when a hold is due, which wakes the group.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::Weak;
use std::time::Duration;
use std::time::Instant;

use openraft::async_runtime::WatchReceiver;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;

use crate::group::Group;
use crate::host::HostInner;
use crate::host::Slot;
use crate::liveness::PeerStatus;
use crate::network::RpcRequest;
use crate::network::RpcResponse;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;
use crate::NodeId;
use crate::StateMachine;

/// How often the keeper looks at the groups.
pub const KEEPER_TICK_MS: u64 = 200;
/// Longest wait for the members' answers to a sleep request.
pub const SLEEP_ROUND_TIMEOUT_MS: u64 = 500;
/// Most dormant groups loaded at once to fail over.
pub const FAILOVER_LOADS_MAX: usize = 64;
/// Spacing of the elections a survivor starts for a group whose leader's node died.
pub const FAILOVER_ELECTION_RETRY_MS: u64 = 250;
/// Most such elections before the election timers take over.
pub const FAILOVER_ELECTIONS_MAX: u32 = 12;
/// Most evictions started per keeper tick.
pub const EVICTIONS_PER_TICK_MAX: usize = 256;
/// A group that applied this many commands since its last snapshot takes one, whatever
/// openraft's entry count says: entries are batches of up to 2,048 commands, so 20,000
/// entries could be millions of commands to replay when the group is reloaded or its node
/// restarts. Found by a 30-minute on-sale (7.1 M holds in ~120 k entries, ~60 per entry):
/// a node restarted after it reloaded the group for ~30 s, its RPCs timing out meanwhile.
pub const SNAPSHOT_COMMANDS: u64 = 100_000;

/// The keeper: sleep, evict, fail over, until the host is gone or shut down.
pub(crate) async fn keeper<S: StateMachine>(host: Weak<HostInner<S>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(KEEPER_TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Groups with a sleep round in flight, so a slow round is not started twice.
    let rounds: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    loop {
        tick.tick().await;
        let Some(inner) = host.upgrade() else { return };
        if inner.is_shut_down() {
            return;
        }
        for (node, status) in inner.liveness.sweep() {
            tracing::info!(node = inner.config.node_id, peer = node, ?status, "peer liveness changed");
            if status == PeerStatus::Dead {
                fail_over(&inner, node);
            }
        }
        let resident: Vec<Group<S>> = {
            let table = inner.groups.read().unwrap_or_else(|p| p.into_inner());
            table
                .values()
                .filter_map(|e| match &e.slot {
                    Slot::Resident(g) => Some(g.clone()),
                    Slot::Dormant(_) => None,
                })
                .collect()
        };
        let config = &inner.config;
        let mut evictions = 0;
        for group in resident {
            if group.commands_since_snapshot() >= SNAPSHOT_COMMANDS {
                // Ignored by openraft while a snapshot of the group is being built.
                group.raft().trigger().snapshot().await.ok();
            }
            if config.sleep_after_ms > 0 && !group.is_asleep() && group.idle_ms() >= config.sleep_after_ms {
                if rounds.lock().unwrap_or_else(|p| p.into_inner()).insert(group.id().to_string()) {
                    let (inner, rounds) = (inner.clone(), rounds.clone());
                    tokio::spawn(async move {
                        try_sleep(&inner, &group).await;
                        rounds.lock().unwrap_or_else(|p| p.into_inner()).remove(group.id());
                    });
                }
            } else if config.evict_after_ms > 0
                && group.asleep_ms() >= config.evict_after_ms
                && evictions < EVICTIONS_PER_TICK_MAX
            {
                evictions += 1;
                let (inner, gid) = (inner.clone(), group.id().to_string());
                drop(group);
                tokio::spawn(async move {
                    if let Err(e) = inner.evict(&gid).await {
                        tracing::warn!(group = %gid, error = %e, "eviction failed");
                    }
                });
            }
        }
    }
}

/// The leader side of going to sleep (see the module doc).
async fn try_sleep<S: StateMachine>(host: &HostInner<S>, group: &Group<S>) {
    let me = host.config.node_id;
    let (vote, committed, members, matched, active_before) = {
        let metrics = group.raft().metrics();
        let m = metrics.borrow_watched();
        if m.current_leader != Some(me) || group.proposals_pending() > 0 || group.membership_changing() {
            return;
        }
        let last = group.raft().data_metrics().borrow_watched().last_log;
        if m.local_committed != last || m.last_applied != last {
            return;
        }
        let matched = m.replication.clone().unwrap_or_default();
        let members: Vec<(NodeId, crate::NodeAddr)> = m
            .membership_config
            .nodes()
            .filter(|(id, _)| **id != me)
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        for (id, _) in &members {
            let caught_up = matched.get(id).is_some_and(|l| *l == last);
            let dead = host.liveness.status(*id) == PeerStatus::Dead;
            if !caught_up && !dead && voters.contains(id) {
                return;
            }
        }
        (m.vote, m.local_committed, members, last, group.idle_ms())
    };
    let rpc_for = || RpcRequest::Sleep { vote, last_log_id: matched, committed };
    let asks = members.iter().map(|(id, addr)| {
        let rpc = rpc_for();
        async move {
            let sent = tokio::time::timeout(
                Duration::from_millis(SLEEP_ROUND_TIMEOUT_MS),
                host.transport.send(*id, addr, group.id(), rpc),
            )
            .await;
            (*id, matches!(sent, Ok(Ok(RpcResponse::Sleep(true)))))
        }
    });
    let answers = futures::future::join_all(asks).await;
    let voters: BTreeSet<NodeId> = group.voters();
    for (id, slept) in answers {
        if !slept && voters.contains(&id) && host.liveness.status(id) != PeerStatus::Dead {
            tracing::trace!(group = group.id(), member = id, "a member did not sleep; staying awake");
            return;
        }
    }
    // Nothing happened meanwhile (a write would have made it less idle than before).
    if group.idle_ms() >= active_before {
        group.sleep();
        host.stats.sleeps.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(group = group.id(), "asleep");
    }
}

/// The member side of a sleep request: sleep if this replica has exactly the leader's vote,
/// last log id and committed id, and everything applied.
pub(crate) fn accept_sleep<S: StateMachine>(
    group: &Group<S>,
    vote: &Vote,
    last: Option<&LogId>,
    committed: Option<&LogId>,
) -> bool {
    let ok = {
        let metrics = group.raft().metrics();
        let m = metrics.borrow_watched();
        let data = group.raft().data_metrics();
        let d = data.borrow_watched();
        m.vote == *vote
            && d.last_log.as_ref() == last
            && m.local_committed.as_ref() == committed
            && m.last_applied.as_ref() == committed
    };
    if ok {
        group.sleep();
    }
    ok
}

/// The vote guard (see the module doc): `Some(refusal)` to answer instead of openraft.
pub(crate) fn guard_vote<S: StateMachine>(
    host: &HostInner<S>,
    group: &Group<S>,
    req: &VoteRequest<TypeConfig>,
) -> Option<VoteResponse<TypeConfig>> {
    if !group.is_asleep() || req.leadership_transfer {
        return None;
    }
    let me = host.config.node_id;
    let candidate = req.vote.leader_id.node_id;
    let leader = group.known_leader()?;
    if leader == candidate || (leader != me && host.liveness.status(leader) == PeerStatus::Dead) {
        return None;
    }
    let (vote, last) = {
        let metrics = group.raft().metrics();
        let vote = metrics.borrow_watched().vote;
        (vote, group.raft().data_metrics().borrow_watched().last_log)
    };
    tracing::debug!(
        group = group.id(),
        candidate,
        leader,
        "refused a vote: the group sleeps under a live leader"
    );
    if leader == me {
        // The candidate has not heard from us: wake, so our heartbeats reach it.
        group.touch();
    }
    Some(VoteResponse::new(vote, last, false))
}

/// `dead` was declared dead: wake the groups here that it led (see the module doc).
fn fail_over<S: StateMachine>(host: &Arc<HostInner<S>>, dead: NodeId) {
    let mut dormant = Vec::new();
    {
        let table = host.groups.read().unwrap_or_else(|p| p.into_inner());
        for (gid, entry) in table.iter() {
            match &entry.slot {
                Slot::Resident(g) if g.known_leader() == Some(dead) => {
                    let (host, g) = (host.clone(), g.clone());
                    tokio::spawn(async move { elect_if_first(&host, &g, dead).await });
                }
                Slot::Dormant(d) if d.leader == Some(dead) => dormant.push((gid.clone(), entry.lock.clone())),
                _ => {}
            }
        }
    }
    if dormant.is_empty() {
        return;
    }
    tracing::info!(
        node = host.config.node_id,
        dead,
        groups = dormant.len(),
        "loading dormant groups the dead node led"
    );
    let host = host.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let count = dormant.len();
        let permits = Arc::new(tokio::sync::Semaphore::new(FAILOVER_LOADS_MAX));
        let mut tasks = Vec::with_capacity(dormant.len());
        for (gid, lock) in dormant {
            let (host, permits) = (host.clone(), permits.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(_permit) = permits.acquire().await else { return };
                match host.load(&gid, &lock, false).await {
                    Ok(g) => elect_if_first(&host, &g, dead).await,
                    Err(e) => tracing::warn!(group = %gid, error = %e, "could not load a group to fail over"),
                }
            }));
        }
        futures::future::join_all(tasks).await;
        tracing::info!(
            node = host.config.node_id,
            dead,
            groups = count,
            ms = started.elapsed().as_millis() as u64,
            "failed over the dormant groups the dead node led"
        );
    });
}

/// Which voter of group `gid` starts the election when its leader `dead` died: the other
/// voters in id order, one picked by a hash of the group id, or, if `alive` says that one is
/// dead too, the first that is alive. Every survivor computes the same answer from the same
/// membership, and the dead node's groups are shared out among the survivors rather than all
/// elected (and their loads and first appends all paid) by the lowest id.
pub(crate) fn elector(
    gid: &str,
    voters: &BTreeSet<NodeId>,
    dead: NodeId,
    alive: impl Fn(NodeId) -> bool,
) -> Option<NodeId> {
    let others: Vec<NodeId> = voters.iter().copied().filter(|v| *v != dead).collect();
    if others.is_empty() {
        return None;
    }
    // FNV-1a: stable across builds, so nodes of different versions agree.
    let hash =
        gid.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let picked = others[(hash % others.len() as u64) as usize];
    if alive(picked) {
        return Some(picked);
    }
    others.into_iter().find(|v| alive(*v))
}

/// Wake `group` (its leader `dead` is gone) and, if this node is its [`elector`], start an
/// election now.
async fn elect_if_first<S: StateMachine>(host: &HostInner<S>, group: &Group<S>, dead: NodeId) {
    host.stats.failover_wakes.fetch_add(1, Ordering::Relaxed);
    group.touch();
    let me = host.config.node_id;
    let voters = group.voters();
    if !voters.contains(&me) || group.known_leader() != Some(dead) {
        return;
    }
    if elector(group.id(), &voters, dead, |v| v == me || host.liveness.status(v) != PeerStatus::Dead)
        != Some(me)
    {
        return;
    }
    // The other voters may not have declared `dead` dead yet (their sweeps are up to a tick
    // apart), and until they do their vote guard refuses: try again every
    // `FAILOVER_ELECTION_RETRY_MS` instead of waiting an election timeout (1–2 s).
    for _ in 0..FAILOVER_ELECTIONS_MAX {
        if group.known_leader().is_some_and(|l| l != dead) || host.is_shut_down() {
            return;
        }
        if host.liveness.status(dead) != PeerStatus::Dead {
            return;
        }
        tracing::debug!(group = group.id(), dead, "electing: the leader's node is dead");
        if let Err(e) = group.raft().trigger().elect(true).await {
            tracing::debug!(group = group.id(), error = %e, "election not started");
            return;
        }
        tokio::time::sleep(Duration::from_millis(FAILOVER_ELECTION_RETRY_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_elector_is_shared_out_among_the_survivors_and_is_always_alive() {
        let voters: BTreeSet<NodeId> = [1, 2, 3].into();
        let mut by_node = [0usize; 4];
        for i in 0..1_000 {
            let gid = format!("evt_{i:032x}");
            let e = elector(&gid, &voters, 1, |_| true).unwrap();
            assert_ne!(e, 1, "the dead leader never elects");
            assert_eq!(Some(e), elector(&gid, &voters, 1, |_| true), "the same answer every time");
            by_node[e as usize] += 1;
            // The pick is dead too: the other survivor.
            assert_eq!(elector(&gid, &voters, 1, |v| v != e), Some(5 - e));
        }
        assert!(by_node[2] > 400 && by_node[3] > 400, "shared out: {by_node:?}");
        assert_eq!(elector("g", &voters, 1, |_| false), None);
        assert_eq!(elector("g", &[1].into(), 1, |_| true), None);
    }
}
