//! Many groups on one node share one flusher: concurrent writes are group-committed.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use raft::LocalTransport;

const GROUPS: usize = 50;
const WRITES_PER_GROUP: i64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_groups_concurrent_writes_share_flushes() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let router = LocalTransport::new();
        let host = start_host(dir.path(), test_config(1), &router);

        let mut groups = Vec::new();
        for i in 0..GROUPS {
            let g = host.open_group(&format!("evt_{i:03}")).await.unwrap();
            g.initialize(BTreeMap::from([(1, addr(1))])).await.unwrap();
            groups.push(g);
        }
        for g in &groups {
            wait_leader(g, Duration::from_secs(10)).await;
        }

        let flushes_before = host.flush_count();
        let tasks: Vec<_> = groups
            .iter()
            .cloned()
            .map(|g| {
                tokio::spawn(async move {
                    for n in 1..=WRITES_PER_GROUP {
                        let got = g.write(add("sold", n)).await.expect("write");
                        assert_eq!(got, n * (n + 1) / 2, "group {} write {n}", g.id());
                    }
                    g
                })
            })
            .collect();
        for t in tasks {
            let g = t.await.expect("writer task");
            let (total, commands) = g.read_local(|s| (s.values["sold"], s.commands));
            assert_eq!(total, WRITES_PER_GROUP * (WRITES_PER_GROUP + 1) / 2);
            assert_eq!(commands, WRITES_PER_GROUP as u64);
        }
        let flushes = host.flush_count() - flushes_before;
        let writes = GROUPS as u64 * WRITES_PER_GROUP as u64;
        println!("{writes} writes over {GROUPS} groups took {flushes} flushes");
        // Every write is at least one append (and one flush wait). With group commit, appends of
        // different groups that arrive during a flush share the next one, so there are fewer
        // flushes than writes; how many fewer depends on the disk's fsync latency.
        assert!(flushes < writes, "{flushes} flushes for {writes} writes: no group commit");
        assert_eq!(host.stored_groups().len(), GROUPS);
        host.shutdown().await;
    })
    .await
    .expect("test timed out");
}
