//! The metrics catalog: every metric boxoffice emits, in one table with its type, unit and
//! meaning, and the Prometheus recorder that renders them at `/metrics`.
//!
//! - [`install`] builds the recorder — request latency as a **histogram** with
//!   [`REQUEST_SECONDS_BUCKETS`] (a summary's quantiles cannot be added up across nodes;
//!   buckets can) — installs it globally and describes every metric of [`CATALOG`] plus the
//!   process figures, so each one renders with a `# HELP` line. Call it once, in the binary.
//! - [`record_scrape`] sets, just before rendering, the figures that are read rather than
//!   counted as they happen: the raft host's counters and gauges (groups in memory only: a
//!   scrape never wakes or loads a group) and the process's memory, CPU, fds and threads.
//!
//! Naming: counters end in `_total`, the unit is the last word of the name (`_seconds`,
//! `_entries`, `_bytes`), and the names are what `docs/operations.md` lists. A metric emitted
//! anywhere in `api` or `cluster` and missing here is caught by this module's test.

use metrics::Unit;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// The request latency histogram (`track` in `lib.rs`).
pub const HTTP_REQUEST_SECONDS: &str = "boxoffice_http_request_seconds";

/// Upper bounds of the request latency buckets, in seconds: from a cached read (sub-ms) to the
/// longest a request may take (the write timeout is a few seconds; 10 s is past any answer).
/// Slower requests land in the implicit `+Inf` bucket.
pub const REQUEST_SECONDS_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// What kind of Prometheus metric a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: name, kind, unit and the `# HELP` text.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Metric {
    Metric { name, kind, unit, help }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric boxoffice emits itself (the process figures come from `metrics-process`).
pub const CATALOG: &[Metric] = &[
    // HTTP
    m("boxoffice_http_requests_total", Counter, Unit::Count, "HTTP requests answered, by matched route, method and status."),
    m(HTTP_REQUEST_SECONDS, Histogram, Unit::Seconds, "Time to answer an HTTP request, by matched route and method."),
    m("boxoffice_http_errors_total", Counter, Unit::Count, "problem+json error answers, by their docs/api.md code."),
    m("boxoffice_peer_calls_total", Counter, Unit::Count, "Requests this node served by asking the peer that serves them over the peer plane (an event not placed here, a confirm on the event's leader, a user's bookings)."),
    m("boxoffice_streams_open", Gauge, Unit::Count, "Server-sent event streams open on this node (live seats and queue places)."),
    // Buyers
    m("boxoffice_holds_total", Counter, Unit::Count, "Holds created by reserves answered here."),
    m("boxoffice_bookings_total", Counter, Unit::Count, "Holds confirmed into bookings by confirms answered here."),
    m("boxoffice_payments_total", Counter, Unit::Count, "Charges the payment provider decided, by outcome (succeeded or declined)."),
    m("boxoffice_cancels_total", Counter, Unit::Count, "Booking cancels answered here, by status (refunded or refund_pending)."),
    m("boxoffice_refunds_total", Counter, Unit::Count, "Refunds the payment provider decided, by outcome (refunded or declined)."),
    m("boxoffice_queue_joins_total", Counter, Unit::Count, "Waiting-queue joins this node committed (in batches: see boxoffice_queue_join_batches_total)."),
    m("boxoffice_queue_join_batches_total", Counter, Unit::Count, "Batches of waiting-queue joins this node committed; joins ÷ batches is the mean batch."),
    m("boxoffice_waitlist_joins_total", Counter, Unit::Count, "Waiting-list joins answered here."),
    m("boxoffice_webhook_deliveries_total", Counter, Unit::Count, "Webhook deliveries this node made (a notice to an endpoint, after its retries), by outcome (delivered or failed)."),
    // Raft: storage and residency
    m("boxoffice_raft_flushes_total", Counter, Unit::Count, "fsyncs of the node's database; with group commit, fewer than committed writes."),
    m("boxoffice_raft_groups", Gauge, Unit::Count, "Raft groups stored on this node, by state: awake, asleep (in memory, no ticks) or dormant (on disk only)."),
    m("boxoffice_raft_group_sleeps_total", Counter, Unit::Count, "Times a group went to sleep on this node."),
    m("boxoffice_raft_group_wakes_total", Counter, Unit::Count, "Times a sleeping group woke on this node."),
    m("boxoffice_raft_group_evictions_total", Counter, Unit::Count, "Times a long-sleeping group left memory (became dormant)."),
    m("boxoffice_raft_group_loads_total", Counter, Unit::Count, "Times a group was loaded into memory (at start, on demand, or woken from dormant)."),
    m("boxoffice_raft_failover_wakes_total", Counter, Unit::Count, "Groups woken because the node that led them was declared dead."),
    // Raft: leadership, replication, lag (groups in memory on this node)
    m("boxoffice_raft_leader_changes_total", Counter, Unit::Count, "Times a group became the leader on this node; summed over nodes, the cluster's leader changes."),
    m("boxoffice_raft_snapshots_sent_total", Counter, Unit::Count, "Snapshots this node sent to a peer that received and answered them."),
    m("boxoffice_raft_snapshots_installed_total", Counter, Unit::Count, "Snapshots a leader sent that this node installed."),
    m("boxoffice_raft_groups_leading", Gauge, Unit::Count, "Groups in memory that this node leads."),
    m("boxoffice_raft_groups_leaderless", Gauge, Unit::Count, "Awake groups in memory with no known leader (an election is due or running)."),
    m("boxoffice_raft_groups_under_replicated", Gauge, Unit::Count, "Groups this node leads with fewer than 3 voters (fewer nodes: all of them) or a voter not live as this node sees it."),
    m("boxoffice_raft_commit_lag_entries", Gauge, Unit::Count, "Sum over groups in memory of entries in the local log not yet known committed."),
    m("boxoffice_raft_commit_lag_max_entries", Gauge, Unit::Count, "Largest commit lag of one group in memory."),
    m("boxoffice_raft_apply_lag_entries", Gauge, Unit::Count, "Sum over groups in memory of committed entries not yet applied here."),
    m("boxoffice_raft_apply_lag_max_entries", Gauge, Unit::Count, "Largest apply lag of one group in memory."),
    m("boxoffice_raft_term_max", Gauge, Unit::Count, "Highest current term over the groups in memory (each election raises a group's term)."),
    m("boxoffice_raft_catalog_term", Gauge, Unit::Count, "Current term of the catalog group on this node."),
];

/// The process figures (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
/// `process_open_fds`, `process_threads`, `process_start_time_seconds`, ...): read from
/// `/proc/self` on Linux at each scrape.
static PROCESS: std::sync::LazyLock<metrics_process::Collector> =
    std::sync::LazyLock::new(metrics_process::Collector::default);

/// Build and install the global recorder and describe every metric (see the module doc).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_SECONDS.into()), &REQUEST_SECONDS_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

/// Describe every metric to the installed recorder (units and `# HELP` text).
pub fn describe() {
    for metric in CATALOG {
        match metric.kind {
            Counter => metrics::describe_counter!(metric.name, metric.unit, metric.help),
            Gauge => metrics::describe_gauge!(metric.name, metric.unit, metric.help),
            Histogram => metrics::describe_histogram!(metric.name, metric.unit, metric.help),
        }
    }
    PROCESS.describe();
}

/// Set the figures that are read at scrape time (see the module doc).
pub fn record_scrape(store: &cluster::Store) {
    let host = store.host();
    metrics::counter!("boxoffice_raft_flushes_total").absolute(host.flush_count());
    let stats = host.stats();
    metrics::gauge!("boxoffice_raft_groups", "state" => "awake").set(stats.awake as f64);
    metrics::gauge!("boxoffice_raft_groups", "state" => "asleep").set(stats.asleep as f64);
    metrics::gauge!("boxoffice_raft_groups", "state" => "dormant").set(stats.dormant as f64);
    metrics::counter!("boxoffice_raft_group_sleeps_total").absolute(stats.sleeps);
    metrics::counter!("boxoffice_raft_group_wakes_total").absolute(stats.wakes);
    metrics::counter!("boxoffice_raft_group_evictions_total").absolute(stats.evictions);
    metrics::counter!("boxoffice_raft_group_loads_total").absolute(stats.loads);
    metrics::counter!("boxoffice_raft_failover_wakes_total").absolute(stats.failover_wakes);
    metrics::counter!("boxoffice_raft_leader_changes_total").absolute(stats.leader_changes);
    metrics::counter!("boxoffice_raft_snapshots_sent_total").absolute(stats.snapshots_sent);
    metrics::counter!("boxoffice_raft_snapshots_installed_total").absolute(stats.snapshots_installed);
    let f = host.raft_figures();
    metrics::gauge!("boxoffice_raft_groups_leading").set(f.leading as f64);
    metrics::gauge!("boxoffice_raft_groups_leaderless").set(f.leaderless as f64);
    metrics::gauge!("boxoffice_raft_groups_under_replicated").set(f.under_replicated as f64);
    metrics::gauge!("boxoffice_raft_commit_lag_entries").set(f.commit_lag_sum as f64);
    metrics::gauge!("boxoffice_raft_commit_lag_max_entries").set(f.commit_lag_max as f64);
    metrics::gauge!("boxoffice_raft_apply_lag_entries").set(f.apply_lag_sum as f64);
    metrics::gauge!("boxoffice_raft_apply_lag_max_entries").set(f.apply_lag_max as f64);
    metrics::gauge!("boxoffice_raft_term_max").set(f.term_max as f64);
    metrics::gauge!("boxoffice_raft_catalog_term").set(store.catalog_group().term() as f64);
    PROCESS.collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_only_counters_end_in_total() {
        for metric in CATALOG {
            assert_eq!(metric.name.ends_with("_total"), metric.kind == Counter, "{metric:?}");
        }
    }

    #[test]
    fn each_name_is_listed_once() {
        let mut names: Vec<&str> = CATALOG.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a name is listed twice");
    }

    #[test]
    fn buckets_rise_strictly() {
        assert!(REQUEST_SECONDS_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    /// Every counter, gauge and histogram macro called with a literal name in `api` and
    /// `cluster` names a metric of the catalog, of the same kind, so it renders with `# HELP`.
    #[test]
    fn every_metric_emitted_in_api_and_cluster_is_in_the_catalog() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut emitted = Vec::new();
        for dir in [root.join("src"), root.join("../cluster/src")] {
            collect_emitted(&dir, &mut emitted);
        }
        assert!(emitted.len() >= 10, "found only {emitted:?}: is the scan broken?");
        for (kind, name, file) in emitted {
            let listed = CATALOG.iter().find(|m| m.name == name);
            assert_eq!(
                listed.map(|m| m.kind),
                Some(kind),
                "{name} ({kind:?}) in {file} is not in the catalog"
            );
        }
    }

    /// The operations guide and the sample dashboard name only metrics that exist.
    #[test]
    fn the_docs_and_the_dashboard_name_only_catalogued_metrics() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        for doc in ["operations.md", "grafana-dashboard.json"] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            let mut named = 0;
            for (at, _) in text.match_indices("boxoffice_") {
                let rest = &text[at..];
                let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(rest.len());
                let name = &rest[..end];
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix).filter(|b| b.ends_with("_seconds")))
                    .unwrap_or(name);
                assert!(
                    CATALOG.iter().any(|m| m.name == base),
                    "{doc} names {name}, which is not in the catalog"
                );
                named += 1;
            }
            assert!(named >= 10, "{doc} names only {named} metrics");
        }
    }

    fn collect_emitted(dir: &std::path::Path, out: &mut Vec<(Kind, String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect_emitted(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (kind, mac) in [(Counter, "counter!(\""), (Gauge, "gauge!(\""), (Histogram, "histogram!(\"")]
            {
                for (at, _) in text.match_indices(mac) {
                    let rest = &text[at + mac.len()..];
                    let name = &rest[..rest.find('"').unwrap()];
                    out.push((kind, name.to_string(), path.display().to_string()));
                }
            }
        }
    }
}
