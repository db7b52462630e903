//! Shared helpers for the integration tests: a small deterministic machine and host builders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use raft::HostConfig;
use raft::LocalTransport;
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

#[allow(unused_imports)] // each test file uses some of them
pub use raft::testing::{addr, open_db_retrying, shutdown_all, wait_leader, wait_until};

/// [`raft::testing::test_config`] without clock skew.
pub fn test_config(node_id: NodeId) -> HostConfig {
    raft::testing::test_config(node_id, 0)
}

/// The machine factory of the test hosts.
pub fn counters() -> raft::MachineFactory<Counters> {
    Arc::new(|_| Counters::default())
}

/// A host of counters on a db under `dir`, registered on `router`.
pub fn start_host(dir: &Path, config: HostConfig, router: &LocalTransport) -> RaftHost<Counters> {
    raft::testing::start_local_host(dir, config, router, counters())
}

pub fn add(key: &str, n: i64) -> Cmd {
    Cmd::Add { key: key.to_string(), n }
}
