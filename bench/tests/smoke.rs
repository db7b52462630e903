//! Smoke test of the bench tool itself — its correctness, not the store's speed: it runs
//! `boxoffice-bench` for ~2 s per workload against real local nodes (1 and 3) and checks
//! that the JSON report is sane: every attempt is accounted for (ok + errors by code),
//! holds of distinct seats all succeed, and the flash-sale sells out without overselling,
//! its seat map agreeing with its confirms; `queue-sale` and `search-restart` run small and
//! print both of their phases. Peers (etcd, PostgreSQL, Redis) are not needed.
//!
//! The `boxoffice` binary is taken from `$BOXOFFICE_BIN`, else from beside the bench binary
//! (`cargo test --workspace` builds it there; alone: `cargo build -p boxoffice` first).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest one invocation of the tool may take here.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn boxoffice() -> PathBuf {
    if let Ok(p) = std::env::var("BOXOFFICE_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_BIN_EXE_boxoffice-bench")).with_file_name("boxoffice");
    assert!(p.exists(), "no boxoffice binary at {}: run `cargo build -p boxoffice` first", p.display());
    p
}

/// The tests that start nodes run one at a time: two clusters of debug builds on two cores
/// would only test the machine's patience.
static NODES: Mutex<()> = Mutex::new(());

/// Run the tool with `args` (plus `--json`) and return its reports.
fn bench(args: &[&str]) -> Vec<Value> {
    let _one_at_a_time = NODES.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_boxoffice-bench"))
        .args(args)
        .arg("--json")
        .arg("--binary")
        .arg(boxoffice())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn boxoffice-bench");
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            panic!("boxoffice-bench {args:?} took over {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "boxoffice-bench {args:?} failed: {}", out.status);
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout).expect("stdout is a JSON list of reports");
    eprintln!("{args:?}: {} in {:?}", String::from_utf8_lossy(&out.stdout).len(), started.elapsed());
    reports
}

/// What every report must satisfy.
fn check_sane(r: &Value, workload: &str, nodes: u64) {
    assert_eq!(r["workload"], workload, "{r}");
    assert_eq!(r["system"], "boxoffice", "{r}");
    assert_eq!(r["nodes"], nodes, "{r}");
    let ok = r["ok"].as_u64().unwrap();
    let attempts = r["attempts"].as_u64().unwrap();
    let errors: u64 = r["errors"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(ok > 0, "no successful operation: {r}");
    assert_eq!(attempts, ok + errors, "every attempt is an ok or a counted error: {r}");
    assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    let l = &r["latency"];
    let (p50, p99, max) =
        (l["p50_us"].as_u64().unwrap(), l["p99_us"].as_u64().unwrap(), l["max_us"].as_u64().unwrap());
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "latency percentiles out of order: {l}");
}

fn check_hold(r: &Value, nodes: u64) {
    check_sane(r, "hold", nodes);
    // Each attempt holds a distinct free seat as a distinct user: anything but 201 is a bug.
    assert!(r["errors"].as_object().unwrap().is_empty(), "holds of distinct seats failed: {r}");
    assert_eq!(r["clients"], 4);
}

fn check_flash_sale(r: &Value, nodes: u64, capacity: u64) {
    check_sane(r, "flash-sale", nodes);
    let f = &r["flash_sale"];
    assert_eq!(f["capacity"], capacity, "{f}");
    assert_eq!(f["sold_twice"], 0, "a ticket was sold twice: {f}");
    assert!(f["sold"].as_u64().unwrap() <= capacity, "oversold: {f}");
    assert_eq!(f["sold"], f["confirms"], "seat map disagrees with the confirms: {f}");
    assert_eq!(f["sold"], capacity, "not sold out within the run: {f}");
    assert!(f["sold_out_ms"].as_u64().is_some(), "{f}");
    assert_eq!(f["consistent"], true, "{f}");
    assert_eq!(r["ok"], capacity, "one ok per ticket sold: {r}");
}

/// Hold, then a flash sale of 200 seats, on `nodes` local nodes.
fn hold_and_flash_sale(nodes: &str) {
    let r =
        bench(&["--mode", "hold", "--nodes", nodes, "--clients", "4", "--seconds", "2", "--seats", "2000"]);
    check_hold(&r[0], nodes.parse().unwrap());
    let flash =
        ["--mode", "flash-sale", "--nodes", nodes, "--clients", "8", "--seconds", "20", "--seats", "200"];
    let r = bench(&flash);
    check_flash_sale(&r[0], nodes.parse().unwrap(), 200);
}

#[test]
fn one_node_hold_and_flash_sale() {
    hold_and_flash_sale("1");
}

#[test]
fn three_nodes_hold_and_flash_sale() {
    hold_and_flash_sale("3");
}

/// The buyers' paths on 3 nodes: `ga` and `best-available` over small venues, sold out
/// within the run. The ledger must balance (held tickets = tickets in 201 answers, no
/// unknown outcomes on a quiet machine) and every ok names seats.
#[test]
fn three_nodes_ga_and_best_available_sell_out_with_a_balanced_ledger() {
    let r = bench(&[
        "--mode",
        "ga,best-available",
        "--nodes",
        "3",
        "--clients",
        "8",
        "--seconds",
        "20",
        "--seats",
        "600",
    ]);
    // A general section stops at its last ticket; a seated one when a section cannot seat
    // the next party together (up to 3 seats left in each of its 10 sections).
    for (report, (workload, sold_min)) in r.iter().zip([("ga", 599), ("best-available", 540)]) {
        check_sane(report, workload, 3);
        let l = &report["ledger"];
        assert_eq!(l["consistent"], true, "{l}");
        let (answered, held) = (l["answered"].as_u64().unwrap(), l["held"].as_u64().unwrap());
        assert!(answered >= report["ok"].as_u64().unwrap(), "each ok names at least one seat: {report}");
        assert_eq!(held, answered, "held tickets differ from those in 201 answers: {l}");
        assert!(answered >= sold_min, "the run stopped before selling out: {report}");
        let notes = report["notes"].as_array().expect("a sold-out run has a note");
        assert!(notes.iter().any(|n| n.as_str().unwrap().contains("seats held")), "{report}");
    }
}

#[test]
fn a_count_budget_makes_exactly_that_many_attempts() {
    let r =
        bench(&["--mode", "contention", "--nodes", "1", "--clients", "4", "--count", "200", "--seats", "4"]);
    check_sane(&r[0], "contention", 1);
    assert_eq!(r[0]["attempts"], 200, "{}", r[0]);
}

#[test]
fn an_unknown_workload_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_boxoffice-bench"))
        .args(["--mode", "no-such-workload", "--binary", "/nonexistent"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no workload"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run the tool with `args` (text output) and return what it printed.
fn bench_text(args: &[&str]) -> String {
    let _one_at_a_time = NODES.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_boxoffice-bench"))
        .args(args)
        .arg("--binary")
        .arg(boxoffice())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn boxoffice-bench");
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            panic!("boxoffice-bench {args:?} took over {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "boxoffice-bench {args:?} failed ({}): {text}", out.status);
    text
}

#[test]
fn queue_sale_measures_both_phases_on_three_nodes() {
    let args = ["--mode", "queue-sale", "--nodes", "3", "--users", "300", "--clients", "8"];
    let text = bench_text(&[&args[..], &["--hold-clients", "4", "--seconds", "1"]].concat());
    assert!(text.contains("| sale alone | 1 |"), "{text}");
    let crowd = text.lines().find(|l| l.starts_with("| sale + crowd |")).unwrap_or_else(|| panic!("{text}"));
    assert!(crowd.ends_with("| 0 |"), "every join answered 2xx: {crowd}");
    assert!(text.contains("bytes per queued fan"), "{text}");
}

#[test]
fn search_restart_catches_up_in_process() {
    // The mode itself fails unless a renamed and a created event are found after the catch-up
    // and the index holds every event of the catalog.
    let text = bench_text(&["--mode", "search-restart", "--events", "3000", "--changed", "30"]);
    assert!(text.contains("restart: catch-up (31 re-indexed, one commit)"), "{text}");
    assert!(text.contains("search up to date"), "{text}");
}
