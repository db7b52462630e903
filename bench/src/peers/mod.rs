//! The peers: other stores running the *same* hold workload as boxoffice's `hold` — each
//! operation holds one distinct seat, durably where the peer's configuration says so.
//!
//! Owns: [`PEERS`] (their names), [`Started`] (a peer that `scripts/peers.sh` started for a
//! run, stopped again when dropped), [`run`] (the hold workload against one peer).
//!
//! | name | what | a hold |
//! |---|---|---|
//! | `etcd3`, `etcd1` | etcd, 3 members / 1 member | txn: create_revision(key) == 0 → put with a 600 s lease ([`etcd`]) |
//! | `postgres` | PostgreSQL, `synchronous_commit = on` | conditional UPDATE of a pre-seeded row ([`postgres`]) |
//! | `redis`, `redis-aof` | Redis without persistence / `appendfsync always` | `SET key v NX PX 600000` ([`redis`]) |
//!
//! All peers run on this machine's loopback, like boxoffice's local nodes; each client has
//! its own connection, spread round-robin over the members.

pub mod etcd;
pub mod postgres;
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;

use crate::driver::{drive, Client, OpFuture, Outcome};
use crate::progress::Budget;
use crate::report::Report;

/// Every peer `compare` knows, in the order it runs them.
pub const PEERS: [&str; 5] = ["etcd3", "etcd1", "postgres", "redis", "redis-aof"];
/// Rows seeded in PostgreSQL's tickets table per run (the run stops early if it holds them all).
pub const POSTGRES_ROWS: u64 = 400_000;
/// Longest error text kept as an error's name.
const ERROR_NAME_CHARS_MAX: usize = 80;

/// Members of a peer, for the report.
pub fn members(name: &str) -> usize {
    if name == "etcd3" {
        3
    } else {
        1
    }
}

/// A peer started by `scripts/peers.sh start NAME` for this run; `peers.sh stop NAME` when
/// dropped, if it was this call that started it.
pub struct Started {
    pub name: String,
    pub urls: Vec<String>,
    script: PathBuf,
    stop_on_drop: bool,
}

fn run_script(script: &Path, args: &[&str]) -> (bool, String) {
    match Command::new("bash").arg(script).args(args).output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).to_string();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text)
        }
        Err(e) => (false, format!("running {}: {e}", script.display())),
    }
}

fn last_line(text: &str) -> String {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output)").trim().to_string()
}

impl Started {
    /// Start `name` (installing its package when root); `Err(reason)` when it cannot run.
    pub fn start(script: &Path, name: &str) -> Result<Started, String> {
        eprintln!("starting peer {name} ({} start {name})", script.display());
        let (ok, out) = run_script(script, &["start", name]);
        if !ok {
            return Err(last_line(&out));
        }
        let stop_on_drop = !out.contains("already running");
        let mut started =
            Started { name: name.into(), urls: Vec::new(), script: script.into(), stop_on_drop };
        let (ok, urls) = run_script(script, &["url", name]);
        if !ok {
            return Err(format!("no url for {name}: {}", last_line(&urls)));
        }
        started.urls = last_line(&urls).split(',').map(String::from).collect();
        Ok(started)
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let (ok, out) = run_script(&self.script, &["stop", &self.name]);
            if !ok {
                eprintln!("stopping peer {}: {}", self.name, last_line(&out));
            }
        }
    }
}

enum Conn {
    Etcd(etcd::Conn),
    Postgres(postgres::Conn),
    Redis(redis::Conn),
}

impl Conn {
    async fn connect(name: &str, url: &str) -> anyhow::Result<Conn> {
        Ok(match name {
            "etcd3" | "etcd1" | "etcd" => Conn::Etcd(etcd::Conn::connect(url).await?),
            "postgres" => Conn::Postgres(postgres::Conn::connect(url).await?),
            "redis" | "redis-aof" => Conn::Redis(redis::Conn::connect(url).await?),
            other => bail!("no peer {other:?} ({})", PEERS.join(", ")),
        })
    }

    async fn hold(&mut self, prefix: &str, seat: u64, holder: &str) -> anyhow::Result<bool> {
        match self {
            Conn::Etcd(c) => c.hold(&format!("{prefix}{seat:09}"), holder).await,
            Conn::Postgres(c) => c.hold(seat, holder).await,
            Conn::Redis(c) => c.hold(&format!("{prefix}{seat:09}"), holder).await,
        }
    }

    /// Holds stored under `prefix`.
    async fn stored(&mut self, prefix: &str) -> anyhow::Result<u64> {
        match self {
            Conn::Etcd(c) => c.count(prefix).await,
            Conn::Postgres(c) => c.held().await,
            Conn::Redis(c) => c.count(prefix).await,
        }
    }
}

struct PeerClient {
    conn: Conn,
    prefix: Arc<str>,
    id: usize,
    /// Seats that exist (PostgreSQL's seeded rows); `u64::MAX` for key-value stores.
    seats: u64,
    exhausted: Arc<AtomicBool>,
}

fn error_name(e: &anyhow::Error) -> String {
    if let Some(s) = e.downcast_ref::<tonic::Status>() {
        return format!("grpc {:?}", s.code());
    }
    let text = e.root_cause().to_string();
    text.chars().take(ERROR_NAME_CHARS_MAX).collect()
}

impl Client for PeerClient {
    fn op(&mut self, n: u64) -> OpFuture<'_> {
        Box::pin(async move {
            if n >= self.seats {
                self.exhausted.store(true, Ordering::Relaxed);
                return Outcome::Done;
            }
            let holder = format!("u{}-{n}", self.id);
            match self.conn.hold(&self.prefix, n, &holder).await {
                Ok(true) => Outcome::Ok,
                Ok(false) => Outcome::Err("taken".into()),
                Err(e) => Outcome::Err(error_name(&e)),
            }
        })
    }
}

/// The hold workload with `clients` against peer `name` at `urls`.
pub async fn run(
    name: &str,
    urls: &[String],
    clients: usize,
    budget: Budget,
    progress: bool,
) -> anyhow::Result<Report> {
    if urls.is_empty() {
        bail!("no address for peer {name}");
    }
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let prefix: Arc<str> = format!("bench/{run_id}/seat/").into();
    let seats = if name == "postgres" {
        postgres::prepare_table(&urls[0], POSTGRES_ROWS).await?;
        POSTGRES_ROWS
    } else {
        u64::MAX
    };
    let exhausted = Arc::new(AtomicBool::new(false));
    let mut conns = Vec::new();
    for id in 0..clients {
        conns.push(PeerClient {
            conn: Conn::connect(name, &urls[id % urls.len()]).await?,
            prefix: prefix.clone(),
            id,
            seats,
            exhausted: exhausted.clone(),
        });
    }
    let mut check = Conn::connect(name, &urls[0]).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let run = drive(&format!("{name} hold x{clients}"), conns, budget, stop, progress).await?;
    let mut report = Report::new(name, "hold", members(name), clients, run.elapsed, &run.stats);
    if exhausted.load(Ordering::Relaxed) {
        report.notes.push(format!(
            "all {seats} rows held after {:.1} s; the run stopped there",
            run.elapsed.as_secs_f64()
        ));
    }
    let stored = check.stored(&prefix).await?;
    if stored != run.stats.ok {
        report.notes.push(format!("{stored} holds stored but {} acknowledged", run.stats.ok));
    }
    Ok(report)
}
