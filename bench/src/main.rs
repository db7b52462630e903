//! # boxoffice-bench — holds per second through the HTTP API
//!
//! Starts a real `boxoffice serve` (one node, fresh data directory, loopback) unless
//! `--http` names a running one, creates `--events` events of `--seats` seats each, then
//! runs `--concurrency` clients for `--seconds`, each reserving one distinct seat per
//! request as a distinct user. Prints holds/s and latency percentiles (hdrhistogram).
//! Every answer must be 201; anything else is counted and printed.
//!
//! ```sh
//! cargo run --release -p boxoffice-bench -- --seconds 10 --concurrency 32 --events 1
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod live;

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

const SECRET: &str = "bench-secret-0123456789abcdef";
/// Most seconds one run may last; the loop stops by itself.
const SECONDS_MAX: u64 = 600;
/// Most concurrent clients.
const CONCURRENCY_MAX: usize = 1_024;

#[derive(Parser, Debug)]
struct Args {
    /// Target a running node instead of starting one (it must use --auth-secret of this tool's SECRET).
    #[arg(long)]
    http: Option<String>,
    /// The boxoffice binary [default: next to this one].
    #[arg(long)]
    binary: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Events to spread the holds over (one Raft group each).
    #[arg(long, default_value_t = 1)]
    events: usize,
    /// Seats per event (rows of 1,000).
    #[arg(long, default_value_t = 100_000)]
    seats: u32,
    /// What to measure: `holds` (reserves/s), `sse` (seat-change fan-out to watchers) or
    /// `queue` (waiting-queue joins/s and the node's memory).
    #[arg(long, default_value = "holds")]
    mode: String,
    /// sse: watchers of one event.
    #[arg(long, default_value_t = 1_000)]
    watchers: usize,
    /// sse: changes to time.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// queue: users who join one event's queue.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
}

/// A node this tool started, and its data directory (removed when dropped).
struct Server(Option<Child>, #[allow(dead_code)] Option<tempfile::TempDir>);

impl Server {
    fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(|c| c.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_node(binary: &PathBuf) -> anyhow::Result<(Server, String)> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(binary)
        .args(["serve", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BOXOFFICE_AUTH_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let server = Server(Some(child), Some(dir));
    while let Some(line) = lines.next() {
        if let Some(addr) = line?.strip_prefix("boxoffice listening on ") {
            let addr = addr.trim().to_string();
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return Ok((server, addr));
        }
    }
    bail!("boxoffice exited before listening")
}

pub(crate) async fn post(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let r = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// The node's database fsyncs so far, from `/metrics` (`boxoffice_raft_flushes`).
async fn flushes(http: &reqwest::Client, base: &str) -> Option<u64> {
    let text = http.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    let line = text.lines().find(|l| l.starts_with("boxoffice_raft_flushes "))?;
    line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|v| v as u64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.seconds == 0 || args.seconds > SECONDS_MAX {
        bail!("--seconds must be within 1..={SECONDS_MAX}");
    }
    if args.concurrency == 0 || args.concurrency > CONCURRENCY_MAX {
        bail!("--concurrency must be within 1..={CONCURRENCY_MAX}");
    }
    let (_server, base) = match &args.http {
        Some(h) => {
            (Server(None, None), if h.starts_with("http") { h.clone() } else { format!("http://{h}") })
        }
        None => {
            let binary = args
                .binary
                .clone()
                .unwrap_or_else(|| std::env::current_exe().expect("current exe").with_file_name("boxoffice"));
            start_node(&binary)?
        }
    };
    let keys = api::AuthKeys::new(SECRET.as_bytes());
    let admin = keys.mint("bench-admin", true, 3_600);
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY_MAX).build()?;
    match args.mode.as_str() {
        "holds" => {}
        "sse" => return live::sse_fan_out(&base, &keys, args.watchers, args.changes).await,
        "queue" => return live::queue_joins(&base, &keys, args.users, args.concurrency, _server.pid()).await,
        other => bail!("--mode must be holds, sse or queue, not {other:?}"),
    }
    let rows = args.seats.div_ceil(1_000);
    let venue = post(&http, format!("{base}/v1/venues"), &admin, json!({
        "name": "Bench Stadium", "city": "Benchville", "country": "US", "location": {"lat": 0.0, "lon": 0.0},
        "sections": [{"name": "S", "kind": "seated",
            "rows": (1..=rows).map(|r| json!({"name": r.to_string(), "seats": 1000.min(args.seats - (r - 1) * 1000)})).collect::<Vec<_>>()}]
    })).await?;
    if venue.0 != 201 {
        bail!("creating the venue: {} {}", venue.0, venue.1);
    }
    let setup_started = Instant::now();
    let mut events = Vec::new();
    for i in 0..args.events {
        let e = post(
            &http,
            format!("{base}/v1/events"),
            &admin,
            json!({
                "name": format!("Bench {i}"), "type": "concert", "venue_id": venue.1["id"],
                "starts_at": "2030-01-01T00:00:00Z", "prices": {"S": 1000}, "per_user_limit": 1
            }),
        )
        .await?;
        if e.0 != 201 {
            bail!("creating an event: {} {}", e.0, e.1);
        }
        events.push(e.1["id"].as_str().unwrap_or_default().to_string());
    }
    eprintln!("set up {} event(s) of {} seats in {:?}", args.events, args.seats, setup_started.elapsed());

    let flushes_before = flushes(&http, &base).await;
    let next_seat = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let capacity = u64::from(args.seats) * args.events as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let (http, base, events, next_seat, errors) =
            (http.clone(), base.clone(), events.clone(), next_seat.clone(), errors.clone());
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            while Instant::now() < deadline {
                let n = next_seat.fetch_add(1, Ordering::Relaxed);
                if n >= capacity {
                    break;
                }
                let event = &events[(n % events.len() as u64) as usize];
                let seat = n / events.len() as u64;
                let ticket = format!("S-{}-{}", seat / 1000 + 1, seat % 1000 + 1);
                let token = keys.mint(&format!("u{w}-{n}"), false, 3_600);
                let t0 = Instant::now();
                let r = post(
                    &http,
                    format!("{base}/v1/booking/reserve"),
                    &token,
                    json!({"event_id": event, "ticket_ids": [ticket]}),
                )
                .await;
                hist.record(t0.elapsed().as_micros() as u64).ok();
                match r {
                    Ok((201, _)) => {}
                    Ok((s, b)) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("unexpected {s}: {b}");
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("request failed: {e}");
                        }
                    }
                }
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        hist.add(t.await?)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    let ok = hist.len() - errors;
    let fsyncs = match (flushes_before, flushes(&http, &base).await) {
        (Some(a), Some(b)) => format!("{}", b.saturating_sub(a)),
        _ => "n/a".into(),
    };
    println!("| events | concurrency | seconds | holds | holds/s | p50 ms | p90 ms | p99 ms | max ms | fsyncs | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
        args.events,
        args.concurrency,
        elapsed,
        ok,
        ok as f64 / elapsed,
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.90) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        fsyncs,
        errors
    );
    if errors > 0 {
        bail!("{errors} requests did not answer 201");
    }
    Ok(())
}
