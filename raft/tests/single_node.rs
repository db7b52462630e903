//! One node: writes, restart recovery (snapshot + log replay), snapshot + purge.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use openraft::async_runtime::WatchReceiver;
use raft::LocalTransport;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Write 100 commands, restart the host on the same sled path, and check that the state and
/// applied index are rebuilt exactly and new writes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_state_from_log() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let (before, applied_before) = {
            let router = LocalTransport::new();
            let host = start_host(dir.path(), test_config(1), &router);
            let g = host.open_group("catalog").await.unwrap();
            assert!(!g.is_initialized().await);
            g.initialize(BTreeMap::from([(1, addr(1))])).await.unwrap();
            assert_eq!(wait_leader(&g, Duration::from_secs(5)).await, 1);
            // A second initialize is a no-op.
            g.initialize(BTreeMap::from([(1, addr(1))])).await.unwrap();

            let mut expected = BTreeMap::<String, i64>::new();
            for i in 0..100i64 {
                let key = format!("k{}", i % 7);
                let want = *expected.entry(key.clone()).and_modify(|v| *v += i).or_insert(i);
                let got = g.write(add(&key, i)).await.unwrap();
                assert_eq!(got, want, "reply of write {i}");
            }
            let state = g.read_linearizable(|s| s.clone()).await.unwrap();
            assert_eq!(state.values, expected);
            assert_eq!(state.commands, 100);
            assert_eq!(g.members(), BTreeMap::from([(1, addr(1))]));
            assert!(g.last_log_index() >= 100);
            assert_eq!(host.stored_groups(), vec!["catalog".to_string()]);
            let applied = g.applied_index();
            host.shutdown().await;
            (state, applied)
        };

        // Reopen on the same path: openraft re-applies the committed log into an empty machine.
        let router = LocalTransport::new();
        let host = start_host(dir.path(), test_config(1), &router);
        assert_eq!(host.stored_groups(), vec!["catalog".to_string()]);
        let g = host.open_group("catalog").await.unwrap();
        assert!(g.is_initialized().await);
        assert!(g.applied_index() >= applied_before, "applied {} < {applied_before}", g.applied_index());
        assert_eq!(g.read_local(|s| s.clone()), before, "state rebuilt exactly");
        // Idempotent open returns the running group.
        let again = host.open_group("catalog").await.unwrap();
        assert_eq!(again.applied_index(), g.applied_index());

        assert_eq!(wait_leader(&g, Duration::from_secs(5)).await, 1);
        let v = g.write(add("k0", 1000)).await.unwrap();
        assert_eq!(v, before.values["k0"] + 1000);
        assert_eq!(g.read_linearizable(|s| s.commands).await.unwrap(), 101);
        host.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// With a low snapshot threshold, enough writes build a snapshot and purge the log; after a
/// restart the state comes back from snapshot + remaining log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_purge_then_restart() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let config = raft::HostConfig {
            snapshot_logs_since_last: 20,
            max_in_snapshot_log_to_keep: 5,
            ..test_config(1)
        };
        let before = {
            let router = LocalTransport::new();
            let host = start_host(dir.path(), config.clone(), &router);
            let g = host.open_group("evt_snap").await.unwrap();
            g.initialize(BTreeMap::from([(1, addr(1))])).await.unwrap();
            wait_leader(&g, Duration::from_secs(5)).await;
            for i in 0..103i64 {
                g.write(add("seats", 1)).await.unwrap();
                assert_eq!(g.read_local(|s| s.values["seats"]), i + 1);
            }
            let metrics = g.raft().metrics();
            wait_until("a snapshot and a purge", Duration::from_secs(10), || {
                let m = metrics.borrow_watched();
                m.snapshot.as_ref().is_some_and(|s| s.index >= 80)
                    && m.purged.as_ref().is_some_and(|p| p.index >= 60)
            })
            .await;
            let state = g.read_local(|s| s.clone());
            host.shutdown().await;
            state
        };
        assert_eq!(before.values["seats"], 103);
        {
            // The purged entries are gone from the log tree itself.
            let db = open_db_retrying(dir.path());
            // Shared log tree, keys `{gid}\0{index}` (raft/src/store/mod.rs).
            let log = db.open_tree("raft.log").unwrap();
            let (first, _) = log.scan_prefix(b"evt_snap\0").next().unwrap().unwrap();
            let first = u64::from_be_bytes(first[b"evt_snap\0".len()..].try_into().unwrap());
            assert!(first > 60, "first stored index {first} should be after the purge point");
        }

        let router = LocalTransport::new();
        let host = start_host(dir.path(), config, &router);
        let g = host.open_group("evt_snap").await.unwrap();
        assert_eq!(g.read_local(|s| s.clone()), before, "state rebuilt from snapshot + log");
        let metrics = g.raft().metrics();
        wait_until("metrics showing the stored snapshot and purge", Duration::from_secs(5), || {
            let m = metrics.borrow_watched();
            m.purged.as_ref().is_some_and(|p| p.index >= 60)
                && m.snapshot.as_ref().is_some_and(|s| s.index >= 80)
        })
        .await;
        wait_leader(&g, Duration::from_secs(5)).await;
        assert_eq!(g.write(add("seats", 1)).await.unwrap(), 104);
        host.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// drop_group deletes the group's storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_group_deletes_storage() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let router = LocalTransport::new();
        let host = start_host(dir.path(), test_config(1), &router);
        let g = host.open_group("evt_gone").await.unwrap();
        g.initialize(BTreeMap::from([(1, addr(1))])).await.unwrap();
        wait_leader(&g, Duration::from_secs(5)).await;
        g.write(add("a", 1)).await.unwrap();
        host.open_group("evt_kept").await.unwrap();
        assert_eq!(host.stored_groups(), vec!["evt_gone".to_string(), "evt_kept".to_string()]);
        host.drop_group("evt_gone").await.unwrap();
        assert!(host.group("evt_gone").is_none());
        assert_eq!(host.stored_groups(), vec!["evt_kept".to_string()]);
        assert!(matches!(host.open_group("bad:id").await, Err(raft::RaftError::InvalidGroupId(_))));
        // Reopened, the group is pristine.
        let g = host.open_group("evt_gone").await.unwrap();
        assert!(!g.is_initialized().await);
        assert_eq!(g.applied_index(), 0);
        host.shutdown().await;
    })
    .await
    .expect("test timed out");
}
