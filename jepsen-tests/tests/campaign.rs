//! The short campaign of the test command: 3 nodes, one run per nemesis — partition,
//! kill, pause, clock — about 60 s of workload each, each with another workload
//! (contention, flash-sale, idempotent, expiry-edge), then 30 s of the queue workload under
//! the combined schedule; and, as a test of its own (`-- membership`), 60 s of contention
//! while nodes are replaced by fresh ones that join (the membership nemesis); and (`--
//! power`) 60 s of contention while nodes lose power — one, a minority, or all at once — on
//! lazy disks that drop whatever was not fsynced (FUSE; skipped with its reason printed
//! where FUSE is unavailable); and (`-- refund`) 40 s of buyers who cancel and are refunded
//! under partition, kill and pause; and (`-- waitlist`) 40 s of a sold-out section whose
//! returned seats are offered to its waiting list, under the same faults. Fixed seeds.
//! Every run must come out valid. The tests take turns (one cluster at a time).
//!
//! As root the nodes run in network namespaces with iptables partitions and the clock
//! nemesis runs under libfaketime (the harness installs `iproute2`, `iptables` and
//! `faketime` when missing); otherwise the nodes run on loopback behind the link proxies
//! and the clock run is skipped with its reason printed.
//!
//! The `boxoffice` binary must be built (`cargo test --workspace` builds it); if it is not
//! next to this test's target directory, the test builds it with cargo. Run directories
//! (history, nemesis log, node logs, results, summary, timeline.png) are kept under
//! `$CARGO_TARGET_TMPDIR/jepsen-campaign/`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use jepsen::harness::nemesis::NemesisKind;
use jepsen::harness::run::{run, RunConfig};
use jepsen::Validity;

fn boxoffice_binary() -> PathBuf {
    if let Ok(p) = std::env::var("BOXOFFICE_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/campaign-<hash> -> target/<profile>/boxoffice
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = profile_dir.join("boxoffice");
    if !bin.exists() {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "boxoffice", "--bin", "boxoffice"]);
        if release {
            cmd.arg("--release");
        }
        if let Some(target) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let st = cmd.status().expect("run cargo build -p boxoffice");
        assert!(st.success(), "cargo build -p boxoffice failed");
    }
    assert!(bin.exists(), "no boxoffice binary at {}", bin.display());
    bin
}

/// One cluster at a time: two at once would starve a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Why the campaign is skipped here, if it is: scripts/test.sh sets this, with the reason,
/// only when it could not provide a C compiler (not root); the skip is printed, never silent.
fn skipped() -> bool {
    match std::env::var("BOXOFFICE_SKIP_FAULT_CAMPAIGN") {
        Ok(reason) => {
            eprintln!("SKIPPED: the short fault campaign: {reason}");
            true
        }
        Err(_) => false,
    }
}

/// Returns the run directory.
fn campaign_run(name: &str, workload: &str, nemeses: &[NemesisKind], time_s: u64, seed: u64) -> PathBuf {
    campaign_run_with(name, workload, nemeses, time_s, seed, |_| {})
}

fn campaign_run_with(
    name: &str,
    workload: &str,
    nemeses: &[NemesisKind],
    time_s: u64,
    seed: u64,
    tune: impl FnOnce(&mut RunConfig),
) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jepsen-campaign").join(name);
    let _ = std::fs::remove_dir_all(&out);
    let mut cfg = RunConfig::new(boxoffice_binary(), out.clone(), seed);
    cfg.nodes = 3;
    cfg.nemeses = nemeses.to_vec();
    cfg.workload = workload.into();
    cfg.time_s = time_s;
    cfg.quiet_ms = (3_000, 6_000);
    cfg.fault_ms = (5_000, 10_000);
    cfg.quiet = true;
    match workload {
        "flash-sale" => (cfg.seats, cfg.clients, cfg.event_seconds) = (10, 60, 5),
        "idempotent" | "expiry-edge" => cfg.seats = 10,
        "queue" => cfg.clients = 12,
        _ => {}
    }
    cfg.check_time_max_ms = 120_000;
    tune(&mut cfg);
    let started = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outcome = rt.block_on(run(cfg)).unwrap_or_else(|e| panic!("{name}: harness failed: {e:#}"));
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    eprintln!("{name} (seed {seed}) took {:?}:\n{summary}", started.elapsed());
    assert_eq!(
        outcome.results.valid,
        Validity::Valid,
        "{name} (seed {seed}) not valid; run directory {}:\n{summary}",
        outcome.dir.display()
    );
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert!(history.lines().count() > 50, "{name}: the workload ran ({} events)", history.lines().count());
    let nemesis_log = std::fs::read_to_string(out.join("nemesis.jsonl")).unwrap();
    let clock_skipped = summary.contains("clock nemesis skipped");
    if clock_skipped {
        eprintln!(
            "SKIPPED: {name}: the clock nemesis (libfaketime missing and not installable); ran without it"
        );
    } else {
        assert!(nemesis_log.contains("\"start\""), "{name}: the nemesis acted:\n{nemesis_log}");
    }
    assert!(out.join("timeline.png").exists(), "{name}: timeline.png written");
    out
}

// Runs in sequence: clusters at once would starve a 2-core machine.
#[test]
fn short_campaign_partition_kill_pause_clock_is_valid() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if skipped() {
        return;
    }
    use NemesisKind::*;
    campaign_run("partition", "contention", &[Partition], 60, 303);
    campaign_run("kill", "flash-sale", &[Kill], 60, 101);
    campaign_run("pause", "idempotent", &[Pause], 60, 202);
    campaign_run("clock", "expiry-edge", &[Clock], 60, 404);
    campaign_run("all-queue", "queue", &[Partition, Kill, Pause, Clock], 30, 505);
}

/// Nodes replaced while the clients run: kill -9 + wipe + remove + a fresh node joining on
/// the same machine, or remove a live node + a fresh node joining on a new one. At least one
/// join must have completed, and the cluster must end as many nodes as it began.
///
/// It found two store bugs before it first passed (docs/fault-tests.md, "The membership
/// nemesis (issue 13)"): a sleeping group whose remembered leader was removed never failed
/// over, and a new node on a removed node's address took RPCs meant for the old one as proof
/// that it was wiped.
#[test]
fn membership_nemesis_is_valid() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if skipped() {
        return;
    }
    let out = campaign_run("membership", "contention", &[NemesisKind::Membership], 60, 606);
    let log = std::fs::read_to_string(out.join("nemesis.jsonl")).unwrap();
    let joins = log.lines().filter(|l| l.contains("\"end\"") && l.contains("joined on slot")).count();
    assert!(joins >= 1, "membership: a fresh node joined at least once:\n{log}");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    assert!(!summary.contains("nemesis error"), "membership: the nemesis did all it meant to:\n{summary}");
}

/// Power cuts on lazy disks ([`jepsen::lazyfs`]): kill -9, and every byte not fsynced is
/// lost — of one node, a minority, or every node at once — then the final reads after a
/// power cut of every node. Every acknowledged hold and booking must still be there, and the
/// cuts must have dropped data (else they tested nothing). Before it first passed it found
/// that sled's flush is not an fsync (docs/fault-tests.md, "Power loss (issue 15)").
#[test]
fn power_nemesis_is_valid() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if skipped() {
        return;
    }
    jepsen::harness::tools::ensure_installed();
    if let Err(why) = jepsen::lazyfs::LazyFs::available() {
        eprintln!("SKIPPED: the power nemesis: FUSE is unavailable here: {why}");
        return;
    }
    // Shorter faults: a power cut of every node stops every write while it lasts.
    let out = campaign_run_with("power", "contention", &[NemesisKind::Power], 60, 707, |cfg| {
        cfg.fault_ms = (2_000, 4_000);
    });
    let log = std::fs::read_to_string(out.join("nemesis.jsonl")).unwrap();
    let cuts: Vec<&str> =
        log.lines().filter(|l| l.contains("\"start\"") && l.contains("power cut")).collect();
    assert!(cuts.iter().any(|l| l.contains("(All")), "power: every node lost power at least once:\n{log}");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    assert!(summary.contains("power cut of every node"), "power: the final cut ran:\n{summary}");
}

/// Buyers who cancel (issue 17): reserve, confirm and cancel with a refund while nodes are
/// partitioned, killed and paused. Seats are sold, refunded and sold again; the checks that
/// must hold: no seat in two bookings that were not refunded, every booking refunded at most
/// once and only when asked (`refund_once`), every acknowledged booking sold or refunded.
#[test]
fn refund_workload_under_partition_kill_pause_is_valid() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if skipped() {
        return;
    }
    use NemesisKind::*;
    let out = campaign_run_with("refund", "refund", &[Partition, Kill, Pause], 40, 808, |cfg| {
        cfg.seats = 8;
    });
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let refunded = results["counts"]["cancel"]["ok"].as_u64().unwrap_or(0);
    assert!(refunded >= 5, "refund: cancels went through ({refunded}):\n{results}");
    assert_eq!(results["checkers"]["refund_once"], "valid", "refund: refund_once ran:\n{results}");
}

/// The waiting list (issue 17): a sold-out section whose seats keep coming back (holders
/// release, confirm or let holds expire) while waiters join, are offered the seats, and
/// confirm, release or let the offers lapse — under partition, kill and pause. Must hold:
/// offers first come first served (`waitlist_fifo`), no seat in two bookings, every
/// acknowledged booking sold at the end. (A planted bug that offered the second entry
/// first was caught by `waitlist_fifo` on this seed.)
#[test]
fn waitlist_workload_under_partition_kill_pause_is_valid() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if skipped() {
        return;
    }
    use NemesisKind::*;
    let out = campaign_run_with("waitlist", "waitlist", &[Partition, Kill, Pause], 40, 909, |cfg| {
        (cfg.seats, cfg.clients) = (4, 12);
    });
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["checkers"]["waitlist_fifo"], "valid", "waitlist: the FIFO check ran:\n{results}");
    let calls = std::fs::read_to_string(out.join("waitlist.jsonl")).unwrap();
    let offered = calls.lines().filter(|l| l.contains("\"state\":\"offered\"")).count();
    assert!(offered >= 10, "waitlist: offers were made and seen ({offered} sightings)");
    let confirmed = results["counts"]["confirm"]["ok"].as_u64().unwrap_or(0);
    assert!(confirmed >= 3, "waitlist: offers and holds were bought ({confirmed}):\n{results}");
}
