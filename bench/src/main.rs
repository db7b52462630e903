//! # boxoffice-bench — the project's load generator and side-by-side comparisons
//!
//! Drives boxoffice's own HTTP API (`docs/api.md`) with a workload, or runs the same hold
//! workload against other stores, and reports ops/s, p50/p90/p99/p99.9/max latency
//! (hdrhistogram) and errors by code, as a Markdown table or `--json`. A progress bar runs
//! on stderr when it is a terminal.
//!
//! ```sh
//! cargo build --release -p boxoffice -p boxoffice-bench
//! B=$CARGO_TARGET_DIR/release/boxoffice-bench
//! $B --mode hold --clients 64 --seconds 10               # 1 local node
//! $B --mode hold,flash-sale --nodes 3 --clients 32 --json
//! $B --mode many-events --target 127.0.0.1:8080,127.0.0.1:8081 --auth-secret S
//! $B --mode peer --peer redis-aof --clients 64           # starts it with scripts/peers.sh
//! $B --mode ga,best-available --nodes 3 --clients 64    # the buyers' paths: section + quantity
//! $B --mode ga --nodes 3 --clients 64 --seconds 300 --hold-seconds 15   # an on-sale
//! $B --mode compare --seconds 10 --clients 1,64          # boxoffice x3 vs etcd, PostgreSQL, Redis
//! $B --mode sse --watchers 1000 --changes 20             # seat-change fan-out
//! $B --mode queue --users 100000 --clients 64            # waiting-queue joins
//! $B --mode idle --nodes 3 --events 10000 --clients 8    # what 10,000 idle events cost
//! $B --mode seatmap --seats 20000 --clients 64           # an on-sale's viewers loading the seat map
//! $B --mode search-restart --events 1000000 --changed 1000   # search after a restart, in process
//! $B --mode queue-sale --nodes 3 --users 1000000 --clients 64  # a waiting room beside a selling event
//! ```
//!
//! Modules, each owning one thing: [`cluster`] (local nodes, killed on exit), [`client`]
//! (HTTP requests, error names), [`driver`] (the client loop), [`workloads`] (boxoffice's
//! workloads and checks), [`peers`] (etcd, PostgreSQL, Redis), [`compare`], [`fsync_probe`],
//! [`report`], [`progress`], [`live`] (SSE fan-out and queue), [`seatmap`] (seat-map page loads).
//!
//! Everything this tool starts — nodes, and peers through `scripts/peers.sh` — is stopped
//! when the run ends, fails, or gets Ctrl-C / SIGTERM.

use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;

mod client;
mod cluster;
mod compare;
mod driver;
mod fsync_probe;
mod idle;
mod live;
mod peers;
mod progress;
mod queue_sale;
mod repair;
mod report;
mod search_restart;
mod seatmap;
mod workloads;

use crate::cluster::Nodes;
use crate::progress::Budget;
use crate::workloads::Workload;

#[derive(Parser, Debug)]
#[command(
    about = "Load generator for boxoffice's HTTP API, and side-by-side comparisons with etcd, PostgreSQL, Redis"
)]
struct Args {
    /// What to run: workloads `hold`, `hold-confirm`, `contention`, `flash-sale`,
    /// `many-events`, `ga`, `best-available` (several separated by commas run one after the
    /// other on the same nodes); or `compare`, `peer`, `sse`, `queue`, `idle`, `repair`,
    /// `seatmap`, `search-restart`, `queue-sale`. (`holds` is `hold`.)
    #[arg(long, default_value = "hold")]
    mode: String,
    /// Concurrent clients; `compare` takes a list (`1,64`).
    #[arg(long, alias = "concurrency", value_delimiter = ',', default_value = "32")]
    clients: Vec<usize>,
    /// How long each run lasts (an upper bound for the flash-sale).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Attempts per run instead of a duration.
    #[arg(long, conflicts_with = "seconds")]
    count: Option<u64>,
    /// Local nodes to start [default: 1; compare: 3].
    #[arg(long)]
    nodes: Option<usize>,
    /// Running nodes instead of local ones (`host:port` or URLs, comma-separated); they must
    /// use `--auth-secret`.
    #[arg(long, alias = "http", value_delimiter = ',')]
    target: Vec<String>,
    /// The user-token secret of `--target` nodes.
    #[arg(long, env = "BOXOFFICE_AUTH_SECRET", default_value = cluster::AUTH_SECRET)]
    auth_secret: String,
    /// The boxoffice binary [default: next to this one].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Tickets per event [default: hold 100000, contention 16, flash-sale 1000, many-events
    /// 2000, ga and best-available 150000, seatmap 20000].
    #[arg(long)]
    seats: Option<u32>,
    /// Events to spread `hold` and `hold-confirm` over; `idle`: events to create (10,000 by default).
    #[arg(long, default_value_t = 1)]
    events: usize,
    /// Print JSON (a list of reports; for compare, the comparison) instead of tables.
    #[arg(long)]
    json: bool,
    /// The events' hold time in seconds [default: 600]; shorter than the run, seats come back
    /// (an on-sale).
    #[arg(long)]
    hold_seconds: Option<u64>,
    /// compare: boxoffice's workloads, in order.
    #[arg(long, value_delimiter = ',', default_value = "hold,ga,best-available")]
    workloads: Vec<String>,
    /// compare: the systems, in order.
    #[arg(long, value_delimiter = ',', default_value = "boxoffice,etcd3,etcd1,postgres,redis,redis-aof")]
    systems: Vec<String>,
    /// peer: which one (etcd3, etcd1, postgres, redis, redis-aof).
    #[arg(long)]
    peer: Option<String>,
    /// peer: its address(es) when already running; otherwise `scripts/peers.sh` starts it.
    #[arg(long, value_delimiter = ',')]
    peer_url: Vec<String>,
    /// The peers script [default: $BOXOFFICE_PEERS_SCRIPT, or scripts/peers.sh].
    #[arg(long)]
    peers_script: Option<PathBuf>,
    /// Where local nodes keep their data and the fsync probe writes [default: the temp dir].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// sse: watchers of one event.
    #[arg(long, default_value_t = 1_000)]
    watchers: usize,
    /// sse: changes to time.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// queue-sale: buyers who reserve and release beside the crowd joining the queue.
    #[arg(long, default_value_t = 32)]
    hold_clients: usize,
    /// search-restart: events changed while the node was down.
    #[arg(long, default_value_t = 1_000)]
    changed: usize,
    /// queue: users who join one event's queue.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// idle: how long the idle nodes' CPU is measured.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// idle: how many sleeping events get a first reserve, one at a time.
    #[arg(long, default_value_t = 200)]
    first_reserves: usize,
    /// idle: then kill -9 the node that leads the most event groups and time, for every
    /// event, its first reserve through a survivor (the failover of sleeping groups).
    #[arg(long)]
    kill_leader: bool,
    /// idle --kill-leader: reserves in flight at once while failing over (each event not
    /// served yet is tried again from one queue).
    #[arg(long, default_value_t = 64)]
    failover_clients: usize,
    /// repair: the nodes' `--dead-after`, in seconds (how long a lost node is waited for
    /// before its replicas are made again elsewhere).
    #[arg(long, default_value_t = 10)]
    dead_after_seconds: u64,
}

impl Args {
    fn budget(&self) -> Budget {
        match self.count {
            Some(n) => Budget::Count(n),
            None => Budget::Seconds(self.seconds),
        }
    }

    fn one_client_count(&self) -> anyhow::Result<usize> {
        match self.clients.as_slice() {
            [c] if (1..=driver::CLIENTS_MAX).contains(c) => Ok(*c),
            _ => bail!("--clients must be one number within 1..={} here", driver::CLIENTS_MAX),
        }
    }

    fn binary(&self) -> PathBuf {
        self.binary
            .clone()
            .unwrap_or_else(|| std::env::current_exe().expect("current exe").with_file_name("boxoffice"))
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    async fn nodes(&self, default: usize) -> anyhow::Result<Nodes> {
        if self.target.is_empty() {
            Nodes::start(&self.binary(), self.nodes.unwrap_or(default), &self.data_dir()).await
        } else {
            Ok(Nodes::running(&self.target))
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.seconds == 0 || args.seconds > driver::SECONDS_MAX {
        bail!("--seconds must be within 1..={}", driver::SECONDS_MAX);
    }
    let keys = testkit::Tokens::new(args.auth_secret.as_bytes());
    let progress = !args.json;
    match args.mode.as_str() {
        "compare" => {
            let opts = compare::Options {
                systems: args.systems.clone(),
                clients: args.clients.clone(),
                seconds: args.seconds,
                nodes: args.nodes.unwrap_or(3),
                workloads: args.workloads.iter().map(|w| w.parse()).collect::<anyhow::Result<_>>()?,
                binary: args.binary(),
                script: args.peers_script.clone().unwrap_or_else(compare::default_script),
                probe_dir: args.data_dir(),
                progress,
            };
            if opts.clients.iter().any(|c| !(1..=driver::CLIENTS_MAX).contains(c)) {
                bail!("--clients must be within 1..={}", driver::CLIENTS_MAX);
            }
            let c = compare::run(&opts, &keys).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("{}", compare::table(&c));
            }
            Ok(())
        }
        "peer" => {
            let clients = args.one_client_count()?;
            let Some(name) = args.peer.as_deref() else { bail!("--mode peer needs --peer NAME") };
            let _started;
            let urls = if args.peer_url.is_empty() {
                let script = args.peers_script.clone().unwrap_or_else(compare::default_script);
                let s = peers::Started::start(&script, name).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                let urls = s.urls.clone();
                _started = s;
                urls
            } else {
                args.peer_url.clone()
            };
            let report = peers::run(name, &urls, clients, args.budget(), progress).await?;
            print_reports(&[report], args.json)
        }
        "sse" => {
            let nodes = args.nodes(1).await?;
            live::sse_fan_out(&nodes.bases[0], &keys, args.watchers, args.changes).await
        }
        "idle" => {
            let mut nodes = args.nodes(3).await?;
            let opts = idle::Options {
                events: if args.events > 1 { args.events } else { 10_000 },
                creators: args.one_client_count()?,
                idle_seconds: args.idle_seconds,
                first_reserves: args.first_reserves,
                kill_leader: args.kill_leader,
                failover_clients: args.failover_clients.max(1),
            };
            idle::run(&mut nodes, &keys, &opts).await
        }
        "repair" => {
            let extra = ["--dead-after".to_string(), format!("{}s", args.dead_after_seconds)];
            let mut nodes = if args.target.is_empty() {
                Nodes::start_with(&args.binary(), args.nodes.unwrap_or(5), &args.data_dir(), &extra).await?
            } else {
                bail!("--mode repair starts its own nodes (it kills and wipes them): no --target")
            };
            let opts = repair::Options {
                events: if args.events > 1 { args.events } else { 1_000 },
                seats: args.seats.unwrap_or(100_000),
                clients: args.one_client_count()?,
                dead_after_s: args.dead_after_seconds,
            };
            repair::run(&mut nodes, &keys, &opts).await
        }
        "seatmap" => {
            let opts = seatmap::Options {
                seats: args.seats.unwrap_or(20_000),
                clients: args.one_client_count()?,
                budget: args.budget(),
                progress,
            };
            let nodes = args.nodes(1).await?;
            let reports = seatmap::run(&nodes.bases[0], nodes.bases.len(), &keys, &opts).await?;
            print_reports(&reports, args.json)
        }
        "search-restart" => search_restart::run(&search_restart::Options {
            events: if args.events > 1 { args.events } else { 1_000_000 },
            changed: args.changed,
            dir: args.data_dir(),
        }),
        "queue-sale" => {
            let nodes = args.nodes(3).await?;
            let opts = queue_sale::Options {
                users: args.users,
                clients: args.one_client_count()?,
                hold_clients: args.hold_clients,
                seconds: args.seconds,
            };
            queue_sale::run(&nodes.bases, &nodes.pids(), &keys, &opts).await
        }
        "queue" => {
            let clients = args.one_client_count()?;
            let nodes = args.nodes(1).await?;
            live::queue_joins(&nodes.bases[0], &keys, args.users, clients, nodes.first_pid()).await
        }
        modes => {
            let workloads = modes.split(',').map(str::parse).collect::<anyhow::Result<Vec<Workload>>>()?;
            let opts = workloads::Options {
                clients: args.one_client_count()?,
                budget: args.budget(),
                seats: args.seats,
                events: args.events,
                hold_seconds: args.hold_seconds,
                progress,
            };
            let nodes = args.nodes(1).await?;
            let mut reports = Vec::new();
            for w in workloads {
                reports.push(workloads::run(w, &nodes, &keys, &opts).await?);
            }
            print_reports(&reports, args.json)?;
            if reports.iter().any(|r| r.flash_sale.as_ref().is_some_and(|f| !f.consistent)) {
                bail!("the flash-sale's seat map does not match its confirms (see above)");
            }
            if reports.iter().any(|r| r.ledger.as_ref().is_some_and(|l| !l.consistent)) {
                bail!("the event's held tickets do not match the answers the clients got (see the ledger above)");
            }
            Ok(())
        }
    }
}

fn print_reports(reports: &[report::Report], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(reports)?);
    } else {
        print!("{}", report::table(reports));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Returning drops the run's future, and with it every node and peer it started.
    tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted: stopped the nodes and peers this run started"),
        _ = term.recv() => bail!("terminated: stopped the nodes and peers this run started"),
    }
}
