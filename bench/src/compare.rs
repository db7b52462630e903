//! `compare`: boxoffice and each available peer, back to back, with the same clients and
//! duration, in one table of ratios — never a lone absolute number. boxoffice runs each of
//! its workloads (by default `hold` with explicit ids, and the buyers' paths `ga` and
//! `best-available`); every peer runs its conditional-update hold of one named seat.
//!
//! Owns: [`Options`], [`run`], and the comparison table. For each system in turn (boxoffice
//! on N local nodes first, then `etcd3`, `etcd1`, `postgres`, `redis`, `redis-aof`): start
//! it (peers through `scripts/peers.sh`, which installs missing Debian packages when root),
//! then for each client count run the [fsync probe](crate::fsync_probe) in the data
//! directory's file system and then the workload, then stop it — so no system competes for
//! the two cores with another. A peer that cannot start is listed as skipped, with the
//! reason. The ratio column is the row's holds/s divided by PostgreSQL's at the same client
//! count (the peer the target names).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::cluster::Nodes;
use crate::fsync_probe::{self, FsyncProbe};
use crate::peers;
use crate::progress::Budget;
use crate::report::{ms, Report};
use crate::workloads::{self, Workload};

/// Pause between two runs, so one system's background work (compaction, checkpoints,
/// flushes) does not land in the next one's numbers.
const SETTLE: Duration = Duration::from_secs(2);

pub struct Options {
    pub systems: Vec<String>,
    pub clients: Vec<usize>,
    pub seconds: u64,
    pub nodes: usize,
    /// boxoffice's workloads, in order.
    pub workloads: Vec<Workload>,
    pub binary: PathBuf,
    pub script: PathBuf,
    /// Where the fsync probe writes: the file system the systems keep their data in.
    pub probe_dir: PathBuf,
    pub progress: bool,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub report: Report,
    pub fsync: FsyncProbe,
    /// This row's ok/s ÷ PostgreSQL's at the same clients.
    pub ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub seconds: u64,
    pub rows: Vec<Row>,
    /// (system, why it did not run)
    pub skipped: Vec<(String, String)>,
}

async fn measure_boxoffice(o: &Options, keys: &testkit::Tokens, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let nodes = Nodes::start(&o.binary, o.nodes, &o.probe_dir).await?;
    let probe_dir = nodes.data_dir().unwrap_or(&o.probe_dir).to_path_buf();
    for &clients in &o.clients {
        for &workload in &o.workloads {
            tokio::time::sleep(SETTLE).await;
            let fsync = fsync_probe::probe(&probe_dir).await?;
            let opts = workloads::Options {
                clients,
                budget: Budget::Seconds(o.seconds),
                seats: None,
                events: 1,
                hold_seconds: None,
                progress: o.progress,
            };
            let report = workloads::run(workload, &nodes, keys, &opts).await?;
            eprintln!(
                "boxoffice {} x{clients}: {:.0} holds/s (fsync p50 {} µs)",
                workload.name(),
                report.ops_per_sec,
                fsync.p50_us
            );
            rows.push(Row { report, fsync, ratio: None });
        }
    }
    Ok(())
}

async fn measure_peer(o: &Options, name: &str, rows: &mut Vec<Row>) -> Result<(), String> {
    let started = peers::Started::start(&o.script, name)?;
    for &clients in &o.clients {
        tokio::time::sleep(SETTLE).await;
        let fsync = fsync_probe::probe(&o.probe_dir).await.map_err(|e| format!("fsync probe: {e:#}"))?;
        let report = peers::run(name, &started.urls, clients, Budget::Seconds(o.seconds), o.progress)
            .await
            .map_err(|e| format!("{e:#}"))?;
        eprintln!("{name} x{clients}: {:.0} holds/s (fsync p50 {} µs)", report.ops_per_sec, fsync.p50_us);
        rows.push(Row { report, fsync, ratio: None });
    }
    drop(started);
    Ok(())
}

pub async fn run(o: &Options, keys: &testkit::Tokens) -> anyhow::Result<Comparison> {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for system in &o.systems {
        if system == "boxoffice" {
            measure_boxoffice(o, keys, &mut rows).await?;
        } else if let Err(reason) = measure_peer(o, system, &mut rows).await {
            eprintln!("{system}: skipped: {reason}");
            skipped.push((system.clone(), reason));
        }
    }
    for i in 0..rows.len() {
        let postgres = rows
            .iter()
            .find(|r| r.report.system == "postgres" && r.report.clients == rows[i].report.clients)
            .map(|r| r.report.ops_per_sec)
            .filter(|p| *p > 0.0);
        rows[i].ratio = postgres.map(|p| rows[i].report.ops_per_sec / p);
    }
    Ok(Comparison { seconds: o.seconds, rows, skipped })
}

/// The Markdown table: one row per system and client count, then the skipped systems.
pub fn table(c: &Comparison) -> String {
    let mut out = String::from(
        "| system | workload | nodes | clients | holds/s | p50 ms | p99 ms | max ms | errors | ÷ postgres | fsync p50 µs | fsync p99 µs |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut ordered: Vec<&Row> = c.rows.iter().collect();
    ordered.sort_by_key(|r| r.report.clients);
    for row in ordered {
        let r = &row.report;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.system,
            r.workload,
            r.nodes,
            r.clients,
            r.ops_per_sec,
            ms(r.latency.p50_us),
            ms(r.latency.p99_us),
            ms(r.latency.max_us),
            r.errors_total(),
            row.ratio.map_or("n/a".into(), |x| format!("{x:.2}")),
            row.fsync.p50_us,
            row.fsync.p99_us,
        ));
    }
    for (system, reason) in &c.skipped {
        out.push_str(&format!("\n{system}: skipped — {reason}"));
    }
    for row in &c.rows {
        for n in &row.report.notes {
            out.push_str(&format!("\nnote ({} x{}): {n}", row.report.system, row.report.clients));
        }
    }
    out.push('\n');
    out
}

/// Where `scripts/peers.sh` is: `$BOXOFFICE_PEERS_SCRIPT`, else `scripts/peers.sh` under the
/// current directory, else beside this crate's source.
pub fn default_script() -> PathBuf {
    if let Ok(p) = std::env::var("BOXOFFICE_PEERS_SCRIPT") {
        return PathBuf::from(p);
    }
    let here = Path::new("scripts/peers.sh");
    if here.exists() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/peers.sh")
}
