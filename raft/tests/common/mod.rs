//! Shared helpers for the integration tests: a small deterministic machine and host builders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use raft::Group;
use raft::HostConfig;
use raft::LocalTransport;
use raft::NodeAddr;
use raft::NodeId;
use raft::RaftHost;
use raft::StateMachine;
use serde::Deserialize;
use serde::Serialize;

/// Commands of the test machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Cmd {
    /// Add `n` to `key`; replies with the new value.
    Add { key: String, n: i64 },
}

/// A map of counters, plus how many commands were applied and at which last index.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub values: BTreeMap<String, i64>,
    pub commands: u64,
    pub last_index: u64,
}

impl StateMachine for Counters {
    type Command = Cmd;
    type Reply = i64;
    type Snapshot = Counters;

    fn apply(&mut self, command: Cmd, _now_ms: u64, index: u64) -> i64 {
        assert!(index >= self.last_index, "apply out of order: {index} after {}", self.last_index);
        self.commands += 1;
        self.last_index = index;
        match command {
            Cmd::Add { key, n } => {
                let v = self.values.entry(key).or_insert(0);
                *v += n;
                *v
            }
        }
    }

    fn snapshot(&self) -> Counters {
        self.clone()
    }

    fn encode_snapshot(snapshot: Counters) -> Vec<u8> {
        bincode::serde::encode_to_vec(&snapshot, bincode::config::standard()).expect("encode snapshot")
    }

    fn restore(&mut self, bytes: &[u8], _index: u64) -> Result<(), String> {
        let (s, _): (Counters, usize) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| e.to_string())?;
        *self = s;
        Ok(())
    }
}

pub fn addr(id: NodeId) -> NodeAddr {
    NodeAddr { raft_addr: format!("raft-{id}"), http_addr: format!("http-{id}") }
}

/// Fast timers for tests (still randomized by openraft). Groups never sleep: these tests are
/// about Raft itself (`quiescence.rs` tests sleeping).
pub fn test_config(node_id: NodeId) -> HostConfig {
    HostConfig {
        node_id,
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        sleep_after_ms: 0,
        evict_after_ms: 0,
        ..HostConfig::default()
    }
}

/// The machine factory of the test hosts.
pub fn counters() -> raft::MachineFactory<Counters> {
    Arc::new(|_| Counters::default())
}

/// Open a db at `dir` and a host on it, registered on `router` under its own sending handle.
pub fn start_host(dir: &Path, config: HostConfig, router: &LocalTransport) -> RaftHost<Counters> {
    let db = open_db_retrying(dir);
    let id = config.node_id;
    let host = RaftHost::new(config, db, dir.join("snapshots"), Arc::new(router.for_node(id)), counters())
        .expect("new host");
    router.register(&host);
    host
}

/// Open the db at `dir`, retrying for up to 5 s while a previous host on the same path still
/// holds sled's file lock: `RaftHost::shutdown` returns before every openraft task has dropped
/// its sled handles, so an in-process restart can briefly find the lock taken.
pub fn open_db_retrying(dir: &Path) -> sled::Db {
    let start = Instant::now();
    loop {
        match raft::open_db(dir.join("db"), 16 << 20) {
            Ok(db) => return db,
            Err(e) if start.elapsed() < Duration::from_secs(5) && e.to_string().contains("lock") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("open db: {e}"),
        }
    }
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until `group` knows a leader and return it.
pub async fn wait_leader(group: &Group<Counters>, timeout: Duration) -> NodeId {
    wait_until("a leader", timeout, || group.leader().is_some()).await;
    group.leader().expect("leader")
}

pub fn add(key: &str, n: i64) -> Cmd {
    Cmd::Add { key: key.to_string(), n }
}

/// Shut every host down.
pub async fn shutdown_all<'a>(hosts: impl IntoIterator<Item = &'a RaftHost<Counters>>) {
    for host in hosts {
        host.shutdown().await;
    }
}
