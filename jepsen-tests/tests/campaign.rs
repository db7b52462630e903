//! A short campaign against real processes: 3 nodes, workload `contention`, one run per
//! nemesis (kill, pause, partition; clock is skipped until libfaketime is wired in), fixed
//! seeds, about 20 s of workload each. Every run must come out valid.
//!
//! The `boxoffice` binary must be built (`cargo test --workspace` builds it); if it is not
//! next to this test's target directory, the test builds it with cargo. Run directories
//! (history, nemesis log, node logs, results, summary, timeline) are kept under
//! `$CARGO_TARGET_TMPDIR/jepsen-campaign/`.

use std::path::PathBuf;
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

fn campaign_run(name: &str, nemesis: NemesisKind, seed: u64) {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jepsen-campaign").join(name);
    let _ = std::fs::remove_dir_all(&out);
    let mut cfg = RunConfig::new(boxoffice_binary(), out.clone(), seed);
    cfg.nodes = 3;
    cfg.nemeses = vec![nemesis];
    cfg.time_s = 20;
    cfg.quiet_ms = (2_000, 3_000);
    cfg.fault_ms = (4_000, 6_000);
    cfg.event_seconds = 5;
    cfg.check_time_max_ms = 120_000;
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
    assert!(history.lines().count() > 100, "{name}: the workload ran ({} events)", history.lines().count());
    let nemesis_log = std::fs::read_to_string(out.join("nemesis.jsonl")).unwrap();
    assert!(nemesis_log.contains("\"start\""), "{name}: the nemesis acted:\n{nemesis_log}");
}

// One test, runs in sequence: three clusters at once would starve a 2-core machine.
#[test]
fn short_campaign_kill_pause_partition_is_valid() {
    // scripts/test.sh sets this, with the reason, only when it could not provide a C
    // compiler (not root); the skip is printed, never silent.
    if let Ok(reason) = std::env::var("BOXOFFICE_SKIP_FAULT_CAMPAIGN") {
        eprintln!("SKIPPED: the short fault campaign: {reason}");
        return;
    }
    campaign_run("kill", NemesisKind::Kill, 101);
    campaign_run("pause", NemesisKind::Pause, 202);
    campaign_run("partition", NemesisKind::Partition, 303);
}
