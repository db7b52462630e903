//! `/metrics` of a real `boxoffice serve` process, as Prometheus would scrape it: every metric
//! described, counters typed as counters, request latency as a histogram with buckets (which
//! sum across nodes, unlike a summary's quantiles), and the Raft and process figures present.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{eventually, small_event, token, Cluster, Node};
use serde_json::json;

/// What one scrape says: each metric's `# TYPE`, the names with a `# HELP`, and the samples
/// as `(name with labels, value)`.
struct Scrape {
    types: BTreeMap<String, String>,
    helped: BTreeSet<String>,
    samples: Vec<(String, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let (mut types, mut helped, mut samples) = (BTreeMap::new(), BTreeSet::new(), Vec::new());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["#", "TYPE", name, kind] => {
                    types.insert(name.to_string(), kind.to_string());
                }
                ["#", "HELP", name, ..] => {
                    helped.insert(name.to_string());
                }
                _ if line.starts_with('#') => {}
                _ => {
                    let (series, value) = line.rsplit_once(' ').expect("sample line: series value");
                    samples.push((series.to_string(), value.parse().expect("sample value")));
                }
            }
        }
        Scrape { types, helped, samples }
    }

    /// The value of the unlabelled sample `name`.
    fn value(&self, name: &str) -> Option<f64> {
        self.samples.iter().find(|(s, _)| s == name).map(|(_, v)| *v)
    }

    fn has_series_starting(&self, prefix: &str) -> bool {
        self.samples.iter().any(|(s, _)| s.starts_with(prefix))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_described_typed_and_cover_raft_and_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let hold = c
        .post(
            "/v1/booking/reserve",
            &token("alice", false),
            json!({"event_id": event, "ticket_ids": ["A-1-1"]}),
        )
        .await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    // An error answer too, so the error counter is in the scrape.
    assert!(c.get("/v1/holds/no-such-hold", Some(&token("alice", false))).await.status >= 400);

    let answer = c.get("/metrics", None).await;
    assert_eq!(answer.status, 200);
    let text = answer.body.as_str().expect("/metrics is text").to_string();
    let scrape = Scrape::parse(&text);
    assert!(!scrape.types.is_empty(), "no metric at all:\n{text}");

    // Every metric is described.
    let undescribed: Vec<&String> = scrape.types.keys().filter(|n| !scrape.helped.contains(*n)).collect();
    assert!(undescribed.is_empty(), "# TYPE without # HELP: {undescribed:?}\n{text}");

    // Counters are counters, and nothing is a summary.
    for (name, kind) in &scrape.types {
        assert_eq!(name.ends_with("_total"), kind == "counter", "{name} is typed {kind}");
        assert_ne!(kind, "summary", "{name} is a summary: its quantiles cannot be added across nodes");
    }
    assert_eq!(scrape.types.get("boxoffice_raft_flushes_total").map(String::as_str), Some("counter"));

    // Request latency is a histogram with buckets, for the routes just called.
    assert_eq!(scrape.types.get("boxoffice_http_request_seconds").map(String::as_str), Some("histogram"));
    for le in ["0.0005", "0.01", "10", "+Inf"] {
        let bucket = format!("le=\"{le}\"");
        assert!(
            scrape.samples.iter().any(|(s, _)| s.starts_with("boxoffice_http_request_seconds_bucket{")
                && s.contains("route=\"/v1/booking/reserve\"")
                && s.contains(&bucket)),
            "no bucket {le} for reserve:\n{text}"
        );
    }
    assert!(scrape.has_series_starting("boxoffice_http_request_seconds_count{"));

    // Raft figures: this one node leads the catalog (elected here) and the event's group
    // (seeded: led from its creation, with no election, so no leader change).
    let raft = |name: &str| scrape.value(name).unwrap_or_else(|| panic!("no {name}:\n{text}"));
    assert!(raft("boxoffice_raft_groups_leading") >= 2.0);
    assert!(raft("boxoffice_raft_leader_changes_total") >= 1.0);
    assert_eq!(raft("boxoffice_raft_groups_leaderless"), 0.0);
    assert_eq!(raft("boxoffice_raft_groups_under_replicated"), 0.0, "one node wants one voter");
    assert!(raft("boxoffice_raft_catalog_term") >= 1.0);
    assert!(raft("boxoffice_raft_term_max") >= raft("boxoffice_raft_catalog_term"));
    for name in [
        "boxoffice_raft_commit_lag_entries",
        "boxoffice_raft_commit_lag_max_entries",
        "boxoffice_raft_apply_lag_entries",
        "boxoffice_raft_apply_lag_max_entries",
        "boxoffice_raft_snapshots_sent_total",
        "boxoffice_raft_snapshots_installed_total",
    ] {
        raft(name);
    }
    assert!(scrape.has_series_starting("boxoffice_raft_groups{state=\"awake\"}"));

    // Process figures.
    assert!(raft("process_resident_memory_bytes") > 1_000_000.0);
    assert!(raft("process_open_fds") > 0.0);
    assert!(raft("process_threads") >= 1.0);
    assert!(raft("process_start_time_seconds") > 1.6e9);
    assert_eq!(scrape.types.get("process_cpu_seconds_total").map(String::as_str), Some("counter"));
}

/// Sum of the unlabelled gauge `name` over the nodes `ids` of `cluster` (a scrape each).
async fn sum_over(cluster: &Cluster, ids: &[u64], name: &str) -> Result<f64, String> {
    let mut sum = 0.0;
    for id in ids {
        let answer = cluster.client(*id).get("/metrics", None).await;
        let text = answer.body.as_str().ok_or("/metrics is not text")?.to_string();
        sum += Scrape::parse(&text).value(name).ok_or(format!("node {id} has no {name}"))?;
    }
    Ok(sum)
}

/// Under-replication is counted by the leader of each group, from its liveness view: none
/// while all three nodes run, some on the survivors once a voter of every group is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_voter_makes_the_groups_it_replicates_under_replicated() {
    let mut cluster = Cluster::start(3).await;
    let event = small_event(&cluster.client(1), 600, 4).await;
    let leader = cluster.wait_leader(&event, Duration::from_secs(20)).await;
    let all = cluster.ids();
    let wait = Duration::from_secs(20);
    let under = "boxoffice_raft_groups_under_replicated";
    eventually("no group under-replicated with every node up", wait, || async {
        match sum_over(&cluster, &all, under).await? {
            0.0 => Ok(()),
            n => Err(format!("{n} under-replicated")),
        }
    })
    .await;

    // Kill a node that is not the event's leader: its leader stays, and sees a voter dead.
    let victim = all.iter().copied().find(|id| *id != leader).unwrap();
    cluster.kill(victim);
    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != victim).collect();
    eventually("the survivors count under-replicated groups", wait, || async {
        match sum_over(&cluster, &survivors, under).await? {
            n if n >= 1.0 => Ok(()),
            n => Err(format!("{n} under-replicated")),
        }
    })
    .await;
    assert_eq!(sum_over(&cluster, &survivors, "boxoffice_raft_groups_leaderless").await.ok(), Some(0.0));
}
