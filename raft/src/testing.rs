//! Test support for running Raft hosts in one process — raft's own integration tests and the
//! `cluster` crate's: fast timers, placeholder addresses, a host on a [`LocalTransport`], a
//! sled database opened again after an in-process restart, and polling waits. Nothing here
//! is used by a running node; it lives in the library so that every in-process test builds
//! its hosts one way.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Group, HostConfig, LocalTransport, MachineFactory, NodeAddr, NodeId, RaftHost, StateMachine};

/// Placeholder addresses for a host on a [`LocalTransport`] (which routes by node id).
pub fn addr(id: NodeId) -> NodeAddr {
    NodeAddr { raft_addr: format!("raft-{id}"), http_addr: format!("http-{id}") }
}

/// Fast timers for tests (still randomized by openraft), with the given clock skew. Groups
/// never sleep: tests of sleeping groups set `sleep_after_ms` themselves.
pub fn test_config(node_id: NodeId, clock_skew_ms: i64) -> HostConfig {
    HostConfig {
        node_id,
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        clock_skew_ms,
        sleep_after_ms: 0,
        evict_after_ms: 0,
        ..HostConfig::default()
    }
}

/// Open the db under `dir`, retrying for up to 5 s while a previous host on the same path still
/// holds sled's file lock: `RaftHost::shutdown` returns before every openraft task has dropped
/// its sled handles, so an in-process restart can briefly find the lock taken.
pub fn open_db_retrying(dir: &Path) -> sled::Db {
    let start = Instant::now();
    loop {
        match crate::open_db(dir.join("db"), 16 << 20) {
            Ok(db) => return db,
            Err(e) if start.elapsed() < Duration::from_secs(5) && e.to_string().contains("lock") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("open db: {e}"),
        }
    }
}

/// A host on a db under `dir`, registered on `router` under its own sending handle.
pub fn start_local_host<M: StateMachine>(
    dir: &Path,
    config: HostConfig,
    router: &LocalTransport,
    factory: MachineFactory<M>,
) -> RaftHost<M> {
    let db = open_db_retrying(dir);
    let id = config.node_id;
    let host = RaftHost::new(config, db, dir.join("snapshots"), Arc::new(router.for_node(id)), factory)
        .expect("new host");
    router.register(&host);
    host
}

/// Hosts on one [`LocalTransport`], each in a directory `node-<id>` under a base the caller
/// keeps (a temp dir).
pub struct LocalHosts<M: StateMachine> {
    pub router: LocalTransport,
    pub hosts: BTreeMap<NodeId, RaftHost<M>>,
}

impl<M: StateMachine> LocalHosts<M> {
    /// One host per config under `base`, every one making its machines with `factory`.
    pub fn start(base: &Path, configs: Vec<HostConfig>, factory: MachineFactory<M>) -> LocalHosts<M> {
        let router = LocalTransport::new();
        let mut hosts = BTreeMap::new();
        for config in configs {
            let id = config.node_id;
            let dir = base.join(format!("node-{id}"));
            hosts.insert(id, start_local_host(&dir, config, &router, factory.clone()));
        }
        LocalHosts { router, hosts }
    }

    /// Open group `gid` on every host (not initialized).
    pub async fn open_group(&self, gid: &str) -> BTreeMap<NodeId, Group<M>> {
        let mut groups = BTreeMap::new();
        for (id, host) in &self.hosts {
            groups.insert(*id, host.open_group(gid).await.expect("open group"));
        }
        groups
    }

    /// Shut every host down.
    pub async fn shutdown(&self) {
        shutdown_all(self.hosts.values()).await;
    }
}

/// Poll `cond` every 20 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until `group` knows a leader and return it.
pub async fn wait_leader<M: StateMachine>(group: &Group<M>, timeout: Duration) -> NodeId {
    wait_until("a leader", timeout, || group.leader().is_some()).await;
    group.leader().expect("leader")
}

/// Shut every host down.
pub async fn shutdown_all<'a, M: StateMachine + 'a>(hosts: impl IntoIterator<Item = &'a RaftHost<M>>) {
    for host in hosts {
        host.shutdown().await;
    }
}
