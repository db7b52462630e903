//! Nemeses and their schedule. The schedule (when, which fault, how long, which node or
//! split) is drawn from the seed before the run; faults aimed at "the leader" look the
//! leader up when they start (falling back to the drawn node). Fault windows alternate
//! with quiet windows; every fault is healed when its window ends and before the final
//! reads. Every action is logged (`nemesis.jsonl`).
//!
//! The schedule names nodes by position (1..=n): the k-th member in id order when the
//! fault starts. Without membership changes that is node k; after the membership nemesis
//! replaced a node, the position names its successor, so the cluster stays n nodes and
//! every fault still aims at a member. The membership nemesis's actions may outlast their
//! window (a join waits for the new node); a fault whose time has come when the run is
//! over is skipped and logged as such.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;

use super::cluster::Cluster;
use super::membership::{self, MembershipAction};
use super::workload::now_ms;
use crate::lazyfs::CrashReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NemesisKind {
    Kill,
    Pause,
    Partition,
    Clock,
    /// A node leaves and a fresh one joins ([`super::membership`]).
    Membership,
    /// Power loss: kill -9 of one node, a minority or every node at once, and their
    /// disks lose what was not fsynced ([`crate::lazyfs`]); restarted when the window ends.
    Power,
    /// A node's disk answers `ENOSPC` to every write for the window.
    DiskFull,
    /// A node is stopped, bits are flipped in one of its files (sled's log, a snapshot, the
    /// search index) and it is restarted: it must refuse the data (then it is replaced, as
    /// an operator would: wiped, removed, a fresh node joins) or serve only right answers.
    Corrupt,
}

impl NemesisKind {
    /// Whether the nodes' data directories must be lazy disks for it.
    pub fn needs_disks(self) -> bool {
        matches!(self, NemesisKind::Power | NemesisKind::DiskFull)
    }

    /// Every kind `--nemesis all` draws from (the disk faults are asked for by name: they
    /// need FUSE).
    pub const ALL: [NemesisKind; 5] = [
        NemesisKind::Partition,
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Clock,
        NemesisKind::Membership,
    ];

    pub fn parse(s: &str) -> Option<NemesisKind> {
        match s {
            "kill" => Some(NemesisKind::Kill),
            "pause" => Some(NemesisKind::Pause),
            "partition" => Some(NemesisKind::Partition),
            "clock" => Some(NemesisKind::Clock),
            "membership" => Some(NemesisKind::Membership),
            "power" => Some(NemesisKind::Power),
            "disk-full" => Some(NemesisKind::DiskFull),
            "corrupt" => Some(NemesisKind::Corrupt),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionShape {
    IsolateOne,
    Halves,
    IsolateLeader,
    /// Packets from the node to the others are dropped (namespace mode: a real one-way
    /// cut). Through the TCP proxies this is "the node cannot open connections to the
    /// others"; connections the others open to it still carry both directions.
    OneWay,
    /// Two halves that cannot talk, and one node that talks to both (Jepsen's bridge).
    Bridge,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub start_ms: u64,
    pub duration_ms: u64,
    pub kind: NemesisKind,
    /// The node drawn for it (a fallback when the leader is wanted but unknown).
    pub node: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<PartitionShape>,
    /// Halves: a shuffled order of the nodes; the first `n/2` form the minority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<u64>,
    /// Clock: the offset given to the node's wall clock, seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset_s: i64,
    /// Clock: aim at the tested event's leader (else at `node`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_leader: bool,
    /// Membership: what happens to `node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<MembershipAction>,
    /// Power: which nodes lose power, and whether a last write may survive torn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerCut>,
}

/// Which nodes a power fault cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerScope {
    /// The drawn node.
    One,
    /// The first `(n - 1) / 2` of the shuffled order: the cluster keeps a majority.
    Minority,
    /// Every node at once: only what was fsynced survives anywhere.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerCut {
    pub scope: PowerScope,
    /// The last unsynced write of a file may survive in part.
    pub torn: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Clock offsets the nemesis draws from (seconds), up to the run's bound.
const CLOCK_OFFSETS_S: [i64; 5] = [1, 5, 15, 60, 180];

/// The largest offset the clock nemesis may apply with `clock_max_s`: what the checker's
/// skew bound must cover.
pub fn clock_bound_s(clock_max_s: u64) -> u64 {
    CLOCK_OFFSETS_S.iter().map(|o| *o as u64).filter(|o| *o <= clock_max_s.max(1)).max().unwrap_or(1)
}

/// Draw the schedule for `time_ms` of run from `seed`.
pub fn schedule(
    seed: u64,
    kinds: &[NemesisKind],
    nodes: usize,
    time_ms: u64,
    quiet: (u64, u64),
    fault: (u64, u64),
    clock_max_s: u64,
) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
    let mut out = Vec::new();
    if kinds.is_empty() {
        return out;
    }
    let mut t = rng.random_range(quiet.0..=quiet.1);
    // Leave the last quiet window (and at least 2 s) fault-free.
    while t + fault.0 + 2_000 <= time_ms {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let duration_ms = rng.random_range(fault.0..=fault.1).min(time_ms - 2_000 - t);
        let node = rng.random_range(1..=nodes as u64);
        let shape = (kind == NemesisKind::Partition).then(|| match rng.random_range(0..5) {
            0 => PartitionShape::IsolateOne,
            1 => PartitionShape::Halves,
            2 => PartitionShape::IsolateLeader,
            3 => PartitionShape::OneWay,
            _ => PartitionShape::Bridge,
        });
        let mut order: Vec<u64> = (1..=nodes as u64).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let (offset_s, at_leader) = if kind == NemesisKind::Clock {
            let bound = clock_bound_s(clock_max_s) as i64;
            let choices: Vec<i64> = CLOCK_OFFSETS_S.iter().copied().filter(|o| *o <= bound).collect();
            let magnitude = choices[rng.random_range(0..choices.len())];
            let sign = if rng.random_bool(0.5) { 1 } else { -1 };
            (sign * magnitude, rng.random_bool(0.5))
        } else {
            (0, false)
        };
        // Drawn only for this kind, so the other kinds' schedules are what they were.
        let action = (kind == NemesisKind::Membership).then(|| {
            if rng.random_bool(0.5) {
                MembershipAction::Replace
            } else {
                MembershipAction::RemoveJoin
            }
        });
        // Every other power cut takes every node: the test of fsync discipline.
        let power = (kind == NemesisKind::Power).then(|| {
            let scope = match rng.random_range(0..4) {
                0 => PowerScope::One,
                1 => PowerScope::Minority,
                _ => PowerScope::All,
            };
            PowerCut { scope, torn: rng.random_bool(0.5) }
        });
        out.push(Fault {
            start_ms: t,
            duration_ms,
            kind,
            node,
            shape,
            order,
            offset_s,
            at_leader,
            action,
            power,
        });
        t += duration_ms + rng.random_range(quiet.0..=quiet.1);
    }
    out
}

/// Spare slots (machines) a schedule needs: one per join onto a new machine.
pub fn spare_slots(faults: &[Fault]) -> usize {
    faults.iter().filter(|f| f.action == Some(MembershipAction::RemoveJoin)).count()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NemesisEvent {
    pub time_ms: u64,
    /// Since the workload started.
    pub offset_ms: u64,
    /// `start`, `end` or `skip`; `step` within a membership action (between its start
    /// and its end).
    pub phase: String,
    pub kind: NemesisKind,
    pub detail: String,
    pub nodes: Vec<u64>,
    /// Power: what the cut threw away, over its nodes' disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<CrashReport>,
}

#[derive(Default)]
pub struct NemesisLog {
    pub events: Mutex<Vec<NemesisEvent>>,
}

impl NemesisLog {
    fn log(&self, started: Instant, phase: &str, kind: NemesisKind, detail: String, nodes: Vec<u64>) {
        self.log_dropped(started, phase, kind, detail, nodes, None)
    }

    fn log_dropped(
        &self,
        started: Instant,
        phase: &str,
        kind: NemesisKind,
        detail: String,
        nodes: Vec<u64>,
        dropped: Option<CrashReport>,
    ) {
        let ev = NemesisEvent {
            time_ms: now_ms(),
            offset_ms: started.elapsed().as_millis() as u64,
            phase: phase.into(),
            kind,
            detail,
            nodes,
            dropped,
        };
        eprintln!(
            "[nemesis +{:>6} ms] {} {:?}: {} {:?}",
            ev.offset_ms, ev.phase, ev.kind, ev.detail, ev.nodes
        );
        self.events.lock().unwrap().push(ev);
    }
    pub fn snapshot(&self) -> Vec<NemesisEvent> {
        self.events.lock().unwrap().clone()
    }
    /// Currently active fault description, for progress lines.
    pub fn active(&self) -> Option<String> {
        let evs = self.events.lock().unwrap();
        let last = evs.last()?;
        (last.phase == "start" || last.phase == "step").then(|| format!("{:?} {}", last.kind, last.detail))
    }
}

/// Run the schedule against the cluster. `group` gives the event group to aim at
/// (by offset since start). Heals each fault at the end of its window. A fault whose start
/// comes after `until` (an earlier membership action ran long) is skipped.
pub async fn run(
    cluster: Arc<AsyncMutex<Cluster>>,
    faults: Vec<Fault>,
    started: Instant,
    until: Instant,
    group_at: impl Fn(Duration) -> String,
    log: Arc<NemesisLog>,
) -> Result<()> {
    for mut f in faults {
        let start = started + Duration::from_millis(f.start_ms);
        tokio::time::sleep_until(start.into()).await;
        if Instant::now() >= until {
            log.log(started, "skip", f.kind, "the run is over (an earlier action ran long)".into(), vec![]);
            continue;
        }
        let group = group_at(started.elapsed());
        // Positions -> the members now (node k while membership has not changed).
        let members = cluster.lock().await.ids();
        let at = |k: u64| members[(k as usize + members.len() - 1) % members.len()];
        f.node = at(f.node);
        f.order = f.order.iter().map(|k| at(*k)).collect();
        let all = members.clone();
        match f.kind {
            NemesisKind::Kill => {
                cluster.lock().await.kill(f.node);
                log.log(started, "start", f.kind, "kill -9".into(), vec![f.node]);
                tokio::time::sleep(Duration::from_millis(f.duration_ms)).await;
                cluster.lock().await.restart(f.node)?;
                log.log(started, "end", f.kind, "restarted".into(), vec![f.node]);
            }
            NemesisKind::Power => {
                let cut = f.power.unwrap_or(PowerCut { scope: PowerScope::One, torn: false });
                let targets = match cut.scope {
                    PowerScope::One => vec![f.node],
                    PowerScope::Minority => f.order[..((all.len() - 1) / 2).max(1)].to_vec(),
                    PowerScope::All => all.clone(),
                };
                let seed = f.start_ms ^ 0x0070_6f77_6572;
                let reports = cluster.lock().await.power_cut(&targets, cut.torn, seed)?;
                let total = sum_reports(reports.iter().map(|(_, r)| r));
                let each: Vec<String> = reports
                    .iter()
                    .map(|(id, r)| {
                        format!("node {id}: {} B, {} entries", r.bytes_dropped, r.entries_reverted)
                    })
                    .collect();
                let torn = if cut.torn { ", torn writes" } else { "" };
                let detail =
                    format!("power cut ({:?}{torn}): not durable, dropped: {}", cut.scope, each.join(", "));
                log.log_dropped(started, "start", f.kind, detail, targets.clone(), Some(total));
                tokio::time::sleep(Duration::from_millis(f.duration_ms)).await;
                let mut c = cluster.lock().await;
                for id in &targets {
                    c.restart(*id)?;
                }
                log.log(started, "end", f.kind, "power back: restarted".into(), targets);
            }
            NemesisKind::DiskFull => {
                cluster.lock().await.set_disk_full(f.node, true)?;
                log.log(
                    started,
                    "start",
                    f.kind,
                    "disk full: every write answers ENOSPC".into(),
                    vec![f.node],
                );
                tokio::time::sleep(Duration::from_millis(f.duration_ms)).await;
                let mut c = cluster.lock().await;
                c.set_disk_full(f.node, false)?;
                // The node must refuse writes, not die: say so if it did (heal_all restarts it).
                let detail = match c.exited(f.node)? {
                    None => "disk has room again".to_string(),
                    Some(st) => format!("disk has room again; the node EXITED while it was full ({st})"),
                };
                log.log(started, "end", f.kind, detail, vec![f.node]);
            }
            NemesisKind::Corrupt => {
                let c0 = {
                    let c = cluster.lock().await;
                    (c.ids().len(), c.live().len(), c.live().contains(&f.node))
                };
                let (n, live, target_live) = c0;
                if n - live + usize::from(target_live) > (n - 1) / 2 {
                    log.log(started, "skip", f.kind, "a majority would be down".into(), vec![f.node]);
                    continue;
                }
                let done = {
                    let mut c = cluster.lock().await;
                    c.kill(f.node);
                    let done = c.corrupt(f.node, f.start_ms ^ 0x00c0_7272_7570);
                    c.restart(f.node)?;
                    done?
                };
                log.log(started, "start", f.kind, format!("stopped; {done}; restarted"), vec![f.node]);
                tokio::time::sleep(Duration::from_millis(f.duration_ms)).await;
                let exited = cluster.lock().await.exited(f.node)?;
                match exited {
                    None => log.log(
                        started,
                        "end",
                        f.kind,
                        "the node runs on the corrupted data".into(),
                        vec![f.node],
                    ),
                    Some(st) => {
                        let why = cluster.lock().await.log_tail(f.node, 3).replace('\n', " | ");
                        let detail =
                            format!("the node refused the corrupted data ({st}): {why}; replacing it");
                        log.log(started, "step", f.kind, detail, vec![f.node]);
                        let mut repair = f.clone();
                        repair.duration_ms = 1_000;
                        change_membership(&cluster, &repair, MembershipAction::Replace, started, &log)
                            .await?;
                    }
                }
            }
            NemesisKind::Membership => {
                let action = f.action.unwrap_or(MembershipAction::Replace);
                change_membership(&cluster, &f, action, started, &log).await?;
            }
            NemesisKind::Pause => {
                let leader = cluster.lock().await.leader_of(&group).await;
                let target = leader.unwrap_or(f.node);
                let who = if leader.is_some() { "leader" } else { "leader unknown: drawn node" };
                cluster.lock().await.pause(target)?;
                log.log(started, "start", f.kind, format!("SIGSTOP ({who} of {group})"), vec![target]);
                tokio::time::sleep(Duration::from_millis(f.duration_ms)).await;
                cluster.lock().await.resume(target)?;
                log.log(started, "end", f.kind, "SIGCONT".into(), vec![target]);
            }
            NemesisKind::Partition => {
                let shape = f.shape.unwrap_or(PartitionShape::IsolateOne);
                let (detail, sides, one_way): (String, Vec<Vec<u64>>, bool) = match shape {
                    PartitionShape::IsolateOne => {
                        let rest = all.iter().copied().filter(|i| *i != f.node).collect();
                        ("isolate one node".into(), vec![vec![f.node], rest], false)
                    }
                    PartitionShape::IsolateLeader => {
                        let leader = cluster.lock().await.leader_of(&group).await;
                        let target = leader.unwrap_or(f.node);
                        let rest = all.iter().copied().filter(|i| *i != target).collect();
                        let who = if leader.is_some() { "" } else { " (unknown: drawn node)" };
                        (format!("isolate the leader of {group}{who}"), vec![vec![target], rest], false)
                    }
                    PartitionShape::Halves => {
                        let k = all.len() / 2;
                        let minority = f.order[..k].to_vec();
                        let majority = f.order[k..].to_vec();
                        ("majority/minority halves".into(), vec![minority, majority], false)
                    }
                    PartitionShape::OneWay => {
                        let rest = all.iter().copied().filter(|i| *i != f.node).collect();
                        (
                            "one way: the node's packets to the others dropped".into(),
                            vec![vec![f.node], rest],
                            true,
                        )
                    }
                    PartitionShape::Bridge => {
                        // order = [left.., bridge, right..]: left and right cannot talk.
                        let mid = f.order.len() / 2;
                        let left = f.order[..mid].to_vec();
                        let right = f.order[mid + 1..].to_vec();
                        (format!("bridge through node {}", f.order[mid]), vec![left, right], false)
                    }
                };
                {
                    let c = cluster.lock().await;
                    if one_way {
                        for to in &sides[1] {
                            c.cut_one_way(sides[0][0], *to)?;
                        }
                    } else {
                        c.partition(&sides)?;
                    }
                }
                let nodes = sides.iter().flatten().copied().collect::<Vec<_>>();
                log.log(started, "start", f.kind, format!("{detail}: {sides:?}"), nodes);
                tokio::time::sleep(Duration::from_millis(f.duration_ms)).await;
                cluster.lock().await.heal_network()?;
                log.log(started, "end", f.kind, "healed".into(), vec![]);
            }
            NemesisKind::Clock => {
                let leader = if f.at_leader { cluster.lock().await.leader_of(&group).await } else { None };
                let target = leader.unwrap_or(f.node);
                let who = if leader.is_some() { format!(" (leader of {group})") } else { String::new() };
                cluster.lock().await.set_clock_offset(target, f.offset_s)?;
                log.log(
                    started,
                    "start",
                    f.kind,
                    format!("wall clock {:+} s{who}", f.offset_s),
                    vec![target],
                );
                tokio::time::sleep(Duration::from_millis(f.duration_ms)).await;
                cluster.lock().await.set_clock_offset(target, 0)?;
                log.log(started, "end", f.kind, "wall clock reset".into(), vec![target]);
            }
        }
    }
    Ok(())
}

/// The sum of power-cut reports.
pub fn sum_reports<'a>(reports: impl IntoIterator<Item = &'a CrashReport>) -> CrashReport {
    reports.into_iter().fold(CrashReport::default(), |a, r| CrashReport {
        bytes_dropped: a.bytes_dropped + r.bytes_dropped,
        files_reverted: a.files_reverted + r.files_reverted,
        entries_reverted: a.entries_reverted + r.entries_reverted,
        torn_bytes_kept: a.torn_bytes_kept + r.torn_bytes_kept,
    })
}

/// One membership action on `f.node` (see [`super::membership`]): a removal paired with a
/// join, so the cluster keeps its size. Skipped when taking the node out would leave a
/// majority of the members down.
async fn change_membership(
    cluster: &AsyncMutex<Cluster>,
    f: &Fault,
    action: MembershipAction,
    started: Instant,
    log: &NemesisLog,
) -> Result<()> {
    let (target, kind) = (f.node, f.kind);
    {
        let c = cluster.lock().await;
        let (n, live) = (c.ids().len(), c.live().len());
        // Counting the node about to go: at most a minority of the members down.
        let down = n - live + usize::from(c.live().contains(&target));
        if down > (n - 1) / 2 {
            let why = format!("{action:?}: {down} of {n} members would be down");
            log.log(started, "skip", kind, why, vec![target]);
            return Ok(());
        }
    }
    let slot = match action {
        MembershipAction::Replace => {
            let slot = {
                let mut c = cluster.lock().await;
                c.withdraw(target);
                c.kill(target);
                c.wipe(target)?;
                c.slot_of(target)
            };
            log.log(started, "start", kind, "replace: kill -9, data directory deleted".into(), vec![target]);
            let removed = membership::remove(cluster, target).await?;
            cluster.lock().await.retire(target);
            log.log(started, "step", kind, removed, vec![target]);
            slot
        }
        MembershipAction::RemoveJoin => {
            cluster.lock().await.withdraw(target);
            log.log(started, "start", kind, "remove+join: remove a live node".into(), vec![target]);
            let removed = membership::remove(cluster, target).await?;
            let noticed = membership::removed_noticed(cluster, target).await;
            let mut c = cluster.lock().await;
            let old = c.slot_of(target);
            c.retire(target);
            let said = if noticed { "it said so" } else { "it did not say so in time" };
            log.log(started, "step", kind, format!("{removed}; {said}; killed"), vec![target]);
            c.spare_slot().unwrap_or(old)
        }
    };
    tokio::time::sleep(Duration::from_millis(f.duration_ms)).await;
    let (id, took) = membership::join(cluster, slot).await?;
    let repaired = membership::wait_repaired(cluster).await;
    let detail = format!(
        "node {id} joined on slot {slot} in {} ms, replacing node {target}; {repaired}",
        took.as_millis()
    );
    log.log(started, "end", kind, detail, vec![id]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_fixes_the_schedule_and_faults_end_before_the_run() {
        let kinds = NemesisKind::ALL;
        let a = schedule(42, &kinds, 3, 60_000, (5_000, 10_000), (5_000, 10_000), 60);
        let b = schedule(42, &kinds, 3, 60_000, (5_000, 10_000), (5_000, 10_000), 60);
        let c = schedule(43, &kinds, 3, 60_000, (5_000, 10_000), (5_000, 10_000), 60);
        let json = |s: &[Fault]| serde_json::to_string(s).unwrap();
        assert_eq!(json(&a), json(&b));
        assert_ne!(json(&a), json(&c));
        assert!(!a.is_empty());
        let mut prev_end = 0;
        for f in &a {
            assert!(f.start_ms >= prev_end + 5_000, "a quiet window between faults: {a:?}");
            assert!(f.start_ms + f.duration_ms <= 58_000, "healed 2 s before the end: {f:?}");
            prev_end = f.start_ms + f.duration_ms;
            assert!(f.offset_s.unsigned_abs() <= 60, "clock offsets within the bound: {f:?}");
            assert_eq!(f.kind == NemesisKind::Clock, f.offset_s != 0, "only clock faults move clocks: {f:?}");
        }
    }

    #[test]
    fn power_cuts_take_one_node_a_minority_or_all_and_other_kinds_none() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            for f in schedule(seed, &NemesisKind::ALL, 3, 60_000, (3_000, 6_000), (2_000, 4_000), 60) {
                assert!(f.power.is_none(), "only power faults draw a cut: {f:?}");
            }
            for f in schedule(seed, &[NemesisKind::Power], 5, 60_000, (3_000, 6_000), (2_000, 4_000), 60) {
                seen.insert(format!("{:?}", f.power.expect("a power fault has its cut").scope));
            }
        }
        assert_eq!(seen.len(), 3, "every scope drawn: {seen:?}");
        // The seed of the short campaign's power run cuts every node at least once.
        let run = schedule(707, &[NemesisKind::Power], 3, 60_000, (3_000, 6_000), (2_000, 4_000), 60);
        assert!(run.iter().any(|f| f.power.unwrap().scope == PowerScope::All), "{run:?}");
    }

    #[test]
    fn the_clock_bound_covers_every_drawn_offset() {
        assert_eq!(clock_bound_s(60), 60);
        assert_eq!(clock_bound_s(100), 60);
        assert_eq!(clock_bound_s(0), 1);
        for seed in 0..50 {
            for f in schedule(seed, &[NemesisKind::Clock], 5, 120_000, (1_000, 2_000), (1_000, 2_000), 15) {
                assert!(f.offset_s != 0 && f.offset_s.unsigned_abs() <= clock_bound_s(15), "{f:?}");
            }
        }
    }
}
