//! `jepsen`: run boxoffice under faults and check what the clients saw.
//!
//! ```text
//! cargo run -p jepsen-tests --bin jepsen -- --nodes 5 --nemesis partition,kill,pause,clock \
//!     --workload contention --time 300 --seed 42 [--out DIR] [--binary PATH] [--net auto]
//! ```
//! Workloads: contention, flash-sale, idempotent, expiry-edge, queue. Nemeses: kill, pause,
//! partition, clock (libfaketime), membership (remove a node, join a fresh one), power
//! (kill -9 and lose what was not fsynced: one node, a minority or all), disk-full (a node's
//! writes answer ENOSPC), corrupt (bits flipped in a stopped node's files; a node that
//! refuses them is replaced), or `all` (a random schedule of the first five). power and
//! disk-full put every node's data on a lazy disk (FUSE, as root; `--disks` does it for
//! any run, making the final restart a power cut of every node).
//! Prints its seed; the same seed replays the same nemesis schedule and client choices.
//! Exit code 0 only if the run is valid (1 invalid / unknown, 2 the harness failed).

use std::path::PathBuf;

use clap::Parser;
use jepsen::harness::nemesis::NemesisKind;
use jepsen::harness::run::{default_out, run, RunConfig};
use jepsen::Validity;

#[derive(Parser, Debug)]
#[command(about = "Jepsen-style fault injection against real boxoffice processes")]
struct Args {
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Comma-separated: kill, pause, partition, clock (clock needs libfaketime), membership
    /// (a node replaced by a fresh one that joins), power, disk-full (both need FUSE),
    /// corrupt, or `all` (the first five).
    #[arg(long, default_value = "all")]
    nemesis: String,
    #[arg(long, default_value = "contention")]
    workload: String,
    /// Seconds of workload.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Default: drawn from the clock (and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Run directory (default: $TMPDIR/boxoffice-jepsen/run-<ms>-seed<seed>); must not exist
    /// or be empty.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The `boxoffice` binary (default: next to this binary, target/{debug,release}).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Default: 10; flash-sale: 6 × seats; queue: 12.
    #[arg(long)]
    clients: Option<usize>,
    /// Tickets per event. Default: 5; flash-sale, idempotent, expiry-edge: 10.
    #[arg(long)]
    seats: Option<u32>,
    #[arg(long, default_value_t = 3)]
    hold_seconds: u64,
    /// A new event (fresh seats) every this many seconds. Default: 10; flash-sale: 5.
    #[arg(long)]
    event_seconds: Option<u64>,
    #[arg(long, default_value_t = 3000)]
    op_timeout_ms: u64,
    /// Fault window length, ms: MIN..MAX.
    #[arg(long, default_value = "5000..10000")]
    fault_ms: String,
    /// Quiet window length, ms: MIN..MAX.
    #[arg(long, default_value = "5000..10000")]
    quiet_ms: String,
    /// Clock-skew bound given to the checker (ms).
    #[arg(long, default_value_t = 0)]
    skew_ms: u64,
    /// Put the (possibly stale) seat-map reads into the checked history.
    #[arg(long)]
    check_browse_reads: bool,
    /// Skip the kill -9 + restart of every node before the final reads.
    #[arg(long)]
    no_final_restart: bool,
    /// `auto` (network namespaces + iptables when root, else loopback proxies), `netns`, `proxy`.
    #[arg(long, default_value = "auto")]
    net: String,
    /// Largest clock offset of the clock nemesis, seconds (offsets 1, 5, 15, 60, 180 up to it).
    #[arg(long, default_value_t = 60)]
    clock_max_s: u64,
    /// No progress bar (a plain line every 10 s).
    #[arg(long)]
    quiet: bool,
    /// Every node's data on a lazy disk (FUSE): the final restart becomes a power cut of
    /// every node. Implied by the power and disk-full nemeses.
    #[arg(long)]
    disks: bool,
    /// Run nothing: check a finished run's directory again and print the verdict.
    #[arg(long, value_name = "RUN_DIR")]
    recheck: Option<PathBuf>,
}

fn range(s: &str) -> (u64, u64) {
    let (a, b) = s.split_once("..").unwrap_or((s, s));
    let a: u64 = a.trim().parse().expect("range MIN..MAX in ms");
    let b: u64 = b.trim().parse().expect("range MIN..MAX in ms");
    (a.min(b), a.max(b))
}

fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    for cand in [dir.join("boxoffice"), dir.join("../boxoffice")] {
        if cand.exists() {
            return cand;
        }
    }
    dir.join("boxoffice")
}

fn main() {
    let args = Args::parse();
    if let Some(dir) = &args.recheck {
        match jepsen::harness::run::recheck(dir) {
            Ok(results) => {
                print!("{}", results.summary());
                std::process::exit(if results.valid == Validity::Valid { 0 } else { 1 });
            }
            Err(e) => {
                eprintln!("recheck {}: {e:#}", dir.display());
                std::process::exit(2);
            }
        }
    }
    let seed = args.seed.unwrap_or_else(|| jepsen::harness::workload::now_ms() % 1_000_000);
    println!("seed: {seed}");
    let mut nemeses = Vec::new();
    for n in args.nemesis.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if n == "all" {
            nemeses.extend(NemesisKind::ALL);
            continue;
        }
        match NemesisKind::parse(n) {
            Some(k) => nemeses.push(k),
            None => {
                eprintln!(
                    "unknown nemesis {n:?} (kill, pause, partition, clock, membership, power, disk-full, corrupt, all)"
                );
                std::process::exit(2);
            }
        }
    }
    nemeses.dedup();
    let binary = args.binary.clone().unwrap_or_else(default_binary);
    if !binary.exists() {
        eprintln!(
            "boxoffice binary not found at {} (build it: cargo build -p boxoffice, or pass --binary)",
            binary.display()
        );
        std::process::exit(2);
    }
    let out =
        args.out.clone().unwrap_or_else(|| default_out(&std::env::temp_dir().join("boxoffice-jepsen"), seed));
    let mut cfg = RunConfig::new(binary, out, seed);
    cfg.nodes = args.nodes;
    cfg.nemeses = nemeses;
    cfg.workload = args.workload.clone();
    cfg.time_s = args.time;
    let seats = args.seats.unwrap_or(match args.workload.as_str() {
        "flash-sale" | "idempotent" | "expiry-edge" => 10,
        _ => 5,
    });
    cfg.seats = seats;
    cfg.clients = args.clients.unwrap_or(match args.workload.as_str() {
        "flash-sale" => 6 * seats as usize,
        "queue" => 12,
        _ => 10,
    });
    cfg.hold_seconds = args.hold_seconds;
    cfg.event_seconds = args.event_seconds.unwrap_or(if args.workload == "flash-sale" { 5 } else { 10 });
    cfg.op_timeout_ms = args.op_timeout_ms;
    cfg.fault_ms = range(&args.fault_ms);
    cfg.quiet_ms = range(&args.quiet_ms);
    cfg.skew_ms = args.skew_ms;
    cfg.check_browse_reads = args.check_browse_reads;
    cfg.final_restart = !args.no_final_restart;
    cfg.net = args.net.clone();
    cfg.clock_max_s = args.clock_max_s;
    cfg.quiet = args.quiet;
    cfg.disks = args.disks;
    println!("run directory: {}", cfg.out.display());
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    // Ctrl-C drops the run like an error does, so the nodes are killed and the lazy disks
    // unmounted (a mount whose server died leaves "transport endpoint is not connected").
    let result = rt.block_on(async {
        tokio::select! {
            r = run(cfg) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    // Drop the runtime before exiting: tasks still holding the cluster (after an error)
    // drop it, which kills every node and closes every proxy. `exit` runs no destructors.
    drop(rt);
    let Some(result) = result else {
        eprintln!("interrupted: every node killed, every disk unmounted");
        std::process::exit(130);
    };
    match result {
        Ok(outcome) => {
            println!(
                "seed: {seed}; result: {}; run directory: {}",
                outcome.results.valid.name(),
                outcome.dir.display()
            );
            std::process::exit(if outcome.results.valid == Validity::Valid { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("harness failed: {e:#}");
            std::process::exit(2);
        }
    }
}
