//! openraft's own storage conformance suite (`openraft::testing::log::Suite`) run against
//! [`LogStore`] + [`SmStore`] on a fresh sled database per case.

use std::sync::Arc;

use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::StorageError;

use crate::flusher::Flusher;
use crate::store::log::LogStore;
use crate::store::state::SmStore;
use crate::store::GroupTrees;
use crate::types::TypeConfig;
use crate::StateMachine;

/// A trivial machine: a sum of the applied numbers.
#[derive(Default)]
struct Sum {
    total: u64,
}

impl StateMachine for Sum {
    type Command = u64;
    type Reply = u64;
    type Snapshot = u64;

    fn apply(&mut self, command: u64, _now_ms: u64, _index: u64) -> u64 {
        self.total += command;
        self.total
    }

    fn snapshot(&self) -> u64 {
        self.total
    }

    fn encode_snapshot(total: u64) -> Vec<u8> {
        total.to_be_bytes().to_vec()
    }

    fn restore(&mut self, bytes: &[u8], _index: u64) -> Result<(), String> {
        let b: [u8; 8] = bytes.try_into().map_err(|_| format!("snapshot of {} bytes", bytes.len()))?;
        self.total = u64::from_be_bytes(b);
        Ok(())
    }
}

/// Keeps the temp dirs alive and stops the flusher when a case ends.
struct Guard {
    flusher: Flusher,
    _dir: tempfile::TempDir,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.flusher.stop();
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, SmStore<Sum>, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, LogStore, SmStore<Sum>), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).cache_capacity(8 << 20).open().expect("open sled");
        let flusher = Flusher::start(db.clone(), 0, None).expect("start flusher");
        let trees = GroupTrees::open(&db, "conformance").expect("open trees");
        let gid: Arc<str> = Arc::from("conformance");
        let log = LogStore::new(gid.clone(), trees.clone(), flusher.clone());
        let snapshots = Arc::new(dir.path().join("snapshots"));
        let sm = SmStore::new(gid, trees.meta.clone(), flusher.clone(), Sum::default(), snapshots);
        Ok((Guard { flusher, _dir: dir }, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    let result = tokio::time::timeout(std::time::Duration::from_secs(120), Suite::test_all(Builder)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("openraft storage suite failed: {e}"),
        Err(_) => panic!("openraft storage suite did not finish within 120 s"),
    }
}
