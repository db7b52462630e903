//! The membership nemesis's steps: a node leaves the cluster and a new one joins while the
//! clients run — what an operator does when a disk dies or a machine is retired. Two
//! actions, drawn from the seed (the order is in [`super::nemesis::run`]):
//!
//! - **replace**: kill -9 node N, delete its data directory, remove N
//!   (`DELETE /v1/cluster/nodes/N`), wait out the fault window, then start a fresh process
//!   on N's machine (its slot: the same addresses) with an empty data directory, `--join`
//!   and no id: it becomes node M, the next id the cluster never used. (Restarting the
//!   wiped node under its old id is refused by the store, so this is the only way back.)
//! - **remove+join**: remove live node N, give it a moment to notice (it then answers 503
//!   to everything), kill it, wait out the window, start a fresh process on a new machine
//!   (a spare slot) the same way.
//!
//! Either ends when the new node answers `/readyz` 200 and says its id, and then — bounded,
//! best effort, reported in the log — when every event is placed on three members again
//! (lost replicas are made again on the new node). The cluster's size is the same before
//! and after. Every wait here is bounded by a named constant; [`ACTION_MAX`] bounds one
//! whole action, and the run waits that long for the nemesis to finish.
//!
//! The admin calls use an admin JWT minted from the harness's auth secret, sent to any live
//! member (the API forwards to the catalog leader); 503s, 5xx and timeouts are retried.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;

use super::cluster::{Cluster, AUTH_SECRET};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipAction {
    /// Kill -9, wipe, remove, join a fresh process on the same machine.
    Replace,
    /// Remove a live node, kill it, join a fresh process on a new machine.
    RemoveJoin,
}

/// How long a removal is retried (503 while the catalog elects a leader, timeouts) before
/// the nemesis gives up with an error.
pub const REMOVE_WAIT: Duration = Duration::from_secs(20);
/// How long, after a 202, until a live member reports the node `removed`.
pub const REMOVED_SEEN_WAIT: Duration = Duration::from_secs(10);
/// remove+join: how long the removed (still running) node gets to say it was removed
/// before it is killed anyway.
pub const REMOVED_NOTICED_WAIT: Duration = Duration::from_secs(10);
/// How long a joiner may take to answer `/readyz` 200 (a debug build on a busy machine
/// catches up on the catalog first).
pub const JOIN_READY_WAIT: Duration = Duration::from_secs(45);
/// How long, after the join, until every event is on three members again; past it the
/// nemesis goes on and says so.
pub const REPAIR_WAIT: Duration = Duration::from_secs(15);
/// The longest one action can take beyond its fault window.
pub const ACTION_MAX: Duration = Duration::from_secs(
    REMOVE_WAIT.as_secs()
        + REMOVED_SEEN_WAIT.as_secs()
        + REMOVED_NOTICED_WAIT.as_secs()
        + JOIN_READY_WAIT.as_secs()
        + REPAIR_WAIT.as_secs(),
);
/// One admin request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_PAUSE: Duration = Duration::from_millis(500);
const TOKEN_TTL_S: u64 = 3_600;
/// Replicas per event the store keeps (when it has that many members).
const REPLICAS: usize = 3;

fn admin_token() -> String {
    testkit::Tokens::new(AUTH_SECRET.as_bytes()).mint("jepsen-nemesis", true, TOKEN_TTL_S)
}

/// Remove node `id` through the admin API of any other live member, retrying 503s, other
/// 5xx and transport errors up to [`REMOVE_WAIT`]; then wait until a member reports it
/// `removed`. Returns a description for the log.
pub async fn remove(cluster: &AsyncMutex<Cluster>, id: u64) -> Result<String> {
    let token = admin_token();
    let start = Instant::now();
    let mut attempts = 0u32;
    let via = loop {
        let vias: Vec<u64> = cluster.lock().await.live().into_iter().filter(|v| *v != id).collect();
        if vias.is_empty() {
            bail!("remove node {id}: no other live member to ask");
        }
        let via = vias[attempts as usize % vias.len()];
        attempts += 1;
        let path = format!("/v1/cluster/nodes/{id}");
        let answer =
            cluster.lock().await.send(via, reqwest::Method::DELETE, &path, &token, REQUEST_TIMEOUT).await;
        let last = match answer {
            Ok((202, _)) => break via,
            Ok((s, body)) if (400..500).contains(&s) && s != 408 && s != 429 => {
                bail!("remove node {id} via node {via}: {s} {body}")
            }
            Ok((s, body)) => format!("{s} {body}"),
            Err(e) => e.to_string(),
        };
        if start.elapsed() > REMOVE_WAIT {
            bail!(
                "remove node {id}: not accepted within {REMOVE_WAIT:?} ({attempts} attempts; last: {last})"
            );
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    };
    let accepted_ms = start.elapsed().as_millis();
    let seen = Instant::now();
    loop {
        if node_status(cluster, id).await.as_deref() == Some("removed") {
            break;
        }
        if seen.elapsed() > REMOVED_SEEN_WAIT {
            bail!("node {id}: removal accepted (202) but no member reports it removed within {REMOVED_SEEN_WAIT:?}");
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Ok(format!("removed via node {via} ({attempts} attempts, 202 after {accepted_ms} ms)"))
}

/// Node `id`'s status (`up`, `down`, `removed`) as the first live member that answers
/// sees it.
async fn node_status(cluster: &AsyncMutex<Cluster>, id: u64) -> Option<String> {
    let c = cluster.lock().await;
    for via in c.live().into_iter().filter(|v| *v != id) {
        let Ok((200, view)) = c.get_json(via, "/v1/cluster", REQUEST_TIMEOUT).await else { continue };
        let status = view["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["id"] == id))
            .and_then(|n| n["status"].as_str())
            .map(String::from);
        if status.is_some() {
            return status;
        }
    }
    None
}

/// remove+join: whether the removed node, still running, says it was removed (`/readyz`
/// 503 naming the removal) within [`REMOVED_NOTICED_WAIT`].
pub async fn removed_noticed(cluster: &AsyncMutex<Cluster>, id: u64) -> bool {
    let start = Instant::now();
    while start.elapsed() <= REMOVED_NOTICED_WAIT {
        let answer = cluster.lock().await.get_json(id, "/readyz", REQUEST_TIMEOUT).await;
        if let Ok((503, body)) = answer {
            if body.to_string().contains("removed") {
                return true;
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    false
}

/// Start a fresh process on `slot` joining through the first live member, and wait until
/// it is ready and named (see [`Cluster::admit_joiner`]). Returns its id and how long it
/// took.
pub async fn join(cluster: &AsyncMutex<Cluster>, slot: u64) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let mut c = cluster.lock().await;
    let Some(via) = c.live().first().copied() else { bail!("join: no live member to join through") };
    c.start_joiner(slot, via)?;
    let id = c.admit_joiner(JOIN_READY_WAIT).await?;
    Ok((id, start.elapsed()))
}

/// Wait until every event is placed on `min(3, members)` members (none removed), as a
/// live member's catalog says, and the group's settled voters are exactly those replicas,
/// as its leader reports them (or, without a leader's word, every replica) — what an
/// operator checks before taking the next node out. Up to [`REPAIR_WAIT`]. Returns a description for
/// the log either way (a slow repair is availability, not safety: the run goes on).
pub async fn wait_repaired(cluster: &AsyncMutex<Cluster>) -> String {
    let start = Instant::now();
    let mut last = String::from("no member answered");
    while start.elapsed() <= REPAIR_WAIT {
        match repair_state(cluster).await {
            Ok(events) => {
                return format!(
                    "every event ({events}) on its replicas after {} ms",
                    start.elapsed().as_millis()
                )
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    format!("replicas not repaired within {REPAIR_WAIT:?}: {last}")
}

/// `Ok(events)` when placement and group memberships agree (see [`wait_repaired`]), else
/// what is still missing.
async fn repair_state(cluster: &AsyncMutex<Cluster>) -> Result<usize, String> {
    let c = cluster.lock().await;
    let members = c.ids();
    let want = REPLICAS.min(members.len());
    let mut views = Vec::new();
    for id in c.live() {
        if let Ok((200, view)) = c.get_json(id, "/v1/cluster", REQUEST_TIMEOUT).await {
            views.push((id, view));
        }
    }
    let (_, first) = views.first().ok_or("no member answered")?;
    let placement = first["placement"].as_object().ok_or("no placement in the view")?;
    for (event, replicas) in placement {
        let ids: Vec<u64> =
            replicas.as_array().map(|r| r.iter().filter_map(|x| x.as_u64()).collect()).unwrap_or_default();
        if ids.len() != want || !ids.iter().all(|i| members.contains(i)) {
            return Err(format!("{event} placed on {ids:?}, members {members:?}"));
        }
        // Only the replicas: a node the event moved away from may keep a stale copy. The
        // group's voters, settled (no joint configuration in flight), must be the placed
        // replicas: in the group leader's own view, or else in every replica's. Learners are
        // not counted (a removed node may linger as one until the leader drops it).
        let mut placed = ids.clone();
        placed.sort_unstable();
        let mut mismatch = None;
        let mut leader_agrees = false;
        for (id, view) in views.iter().filter(|(id, _)| ids.contains(id)) {
            let Some(group) = view["groups"].as_array().and_then(|gs| gs.iter().find(|g| g["id"] == *event))
            else {
                return Err(format!("{event}: node {id} does not host it yet"));
            };
            let mut voters: Vec<u64> = group["voters"]
                .as_array()
                .map(|m| m.iter().filter_map(|x| x.as_u64()).collect())
                .unwrap_or_default();
            voters.sort_unstable();
            let changing = group["membership_changing"].as_bool().unwrap_or(true);
            let settled = !changing && voters == placed;
            if settled && group["leader"].as_u64() == Some(*id) {
                leader_agrees = true;
            }
            if !settled && mismatch.is_none() {
                mismatch = Some(format!(
                    "{event}: node {id} has voters {voters:?}{}, placed on {placed:?}",
                    if changing { " (changing)" } else { "" }
                ));
            }
        }
        if let (false, Some(m)) = (leader_agrees, mismatch) {
            return Err(m);
        }
    }
    Ok(placement.len())
}
