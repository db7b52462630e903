//! Live-seat fan-out and waiting-queue benchmarks.
//!
//! - `sse`: W watchers open the seat stream of one event (spread over loopback source
//!   addresses 127.0.0.2.., since a node caps streams per client address); then C seats are
//!   reserved one by one and, for each, the time from the reserve's answer to the LAST
//!   watcher receiving the change is recorded.
//! - `queue`: U users join one event's queue with `--concurrency` clients; joins/s, and the
//!   node's resident memory before and after (from /proc when this tool started the node).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::mpsc;

use crate::client::post;

/// Streams one source address opens (the node allows 32 per client address).
const WATCHERS_PER_ADDRESS: usize = 30;
/// Most watchers one run opens.
const WATCHERS_MAX: usize = 5_000;
/// Most queue joiners one run makes.
const USERS_MAX: usize = 1_000_000;
/// How long a change may take to reach every watcher before the run fails.
const FAN_OUT_TIMEOUT: Duration = Duration::from_secs(30);

async fn queue_event(base: &str, admin: &str, http: &reqwest::Client, queue: bool) -> anyhow::Result<String> {
    let venue = post(http, format!("{base}/v1/venues"), admin, json!({
        "name": "Bench Arena", "city": "Benchville", "country": "US", "location": {"lat": 0.0, "lon": 0.0},
        "sections": [{"name": "S", "kind": "seated", "rows": [{"name": "1", "seats": 1000}]}]
    }))
    .await?;
    let event = post(http, format!("{base}/v1/events"), admin, json!({
        "name": "Bench Night", "type": "concert", "venue_id": venue.1["id"], "starts_at": "2030-01-01T00:00:00Z",
        "prices": {"S": 1000}, "per_user_limit": 1,
        "queue": {"enabled": queue, "max_admitted": 100, "admission_seconds": 600}
    }))
    .await?;
    if event.0 != 201 {
        bail!("creating the event: {} {}", event.0, event.1);
    }
    Ok(event.1["id"].as_str().unwrap_or_default().to_string())
}

pub async fn sse_fan_out(
    base: &str,
    keys: &testkit::Tokens,
    watchers: usize,
    changes: usize,
) -> anyhow::Result<()> {
    if watchers == 0 || watchers > WATCHERS_MAX {
        bail!("--watchers must be within 1..={WATCHERS_MAX}");
    }
    let admin = keys.mint("bench-admin", true, 3_600);
    let http = reqwest::Client::new();
    let event = queue_event(base, &admin, &http, false).await?;
    // Each watcher reports (seat index) when it sees a change.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<usize>();
    let mut clients = Vec::new();
    for a in 0..watchers.div_ceil(WATCHERS_PER_ADDRESS) {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, (2 + a / 250) as u8, (2 + a % 250) as u8));
        clients.push(reqwest::Client::builder().local_address(ip).build()?);
    }
    let opened = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let client = clients[w / WATCHERS_PER_ADDRESS].clone();
        let (url, seen_tx, opened) =
            (format!("{base}/v1/events/{event}/tickets/stream"), seen_tx.clone(), opened.clone());
        tasks.push(tokio::spawn(async move {
            let mut response = match client.get(url).send().await {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => return Err(format!("stream answered {}", r.status())),
                Err(e) => return Err(e.to_string()),
            };
            opened.add_permits(1);
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    if frame.contains("event: change") {
                        if let Some(i) = frame.find("\"S-1-") {
                            let rest = &frame[i + 5..];
                            let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                            let _ = seen_tx.send(n.parse().unwrap_or(0));
                        }
                    }
                }
            }
            Ok(())
        }));
    }
    let _all = tokio::time::timeout(FAN_OUT_TIMEOUT, opened.acquire_many(watchers as u32)).await?;
    eprintln!("{watchers} watchers connected");
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for c in 1..=changes {
        let token = keys.mint(&format!("buyer{c}"), false, 3_600);
        let r = post(
            &http,
            format!("{base}/v1/booking/reserve"),
            &token,
            json!({"event_id": event, "ticket_ids": [format!("S-1-{c}")]}),
        )
        .await?;
        if r.0 != 201 {
            bail!("reserve answered {}: {}", r.0, r.1);
        }
        let answered = Instant::now();
        let mut got = 0;
        while got < watchers {
            match tokio::time::timeout(FAN_OUT_TIMEOUT, seen_rx.recv()).await {
                Ok(Some(seat)) if seat == c => got += 1,
                Ok(Some(_)) => {}
                _ => bail!("only {got} of {watchers} watchers saw change {c}"),
            }
        }
        hist.record(answered.elapsed().as_micros() as u64)?;
    }
    for t in tasks {
        t.abort();
    }
    println!("| watchers | changes | p50 ms to last watcher | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!(
        "| {watchers} | {changes} | {:.2} | {:.2} | {:.2} |",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    Ok(())
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub async fn queue_joins(
    base: &str,
    keys: &testkit::Tokens,
    users: usize,
    concurrency: usize,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    if users == 0 || users > USERS_MAX {
        bail!("--users must be within 1..={USERS_MAX}");
    }
    let admin = keys.mint("bench-admin", true, 3_600);
    let http = reqwest::Client::builder().pool_max_idle_per_host(1_024).build()?;
    let event = queue_event(base, &admin, &http, true).await?;
    let rss_before = rss_kib(pid);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, next, keys, url) =
            (http.clone(), next.clone(), keys.clone(), format!("{base}/v1/events/{event}/queue"));
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut errors = 0u64;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= users {
                    break;
                }
                let token = keys.mint(&format!("q{n}"), false, 3_600);
                let t0 = Instant::now();
                match http.post(&url).bearer_auth(token).send().await {
                    Ok(r) if r.status().is_success() => {}
                    _ => errors += 1,
                }
                hist.record(t0.elapsed().as_micros() as u64).ok();
            }
            (hist, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(h)?;
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_after = rss_kib(pid);
    let mib = |k: Option<u64>| k.map_or("n/a".to_string(), |k| format!("{:.0}", k as f64 / 1024.0));
    println!("| users | concurrency | seconds | joins/s | p50 ms | p99 ms | node RSS before MiB | after MiB | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {users} | {concurrency} | {elapsed:.1} | {:.0} | {:.2} | {:.2} | {} | {} | {errors} |",
        users as f64 / elapsed,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        mib(rss_before),
        mib(rss_after),
    );
    if errors > 0 {
        bail!("{errors} joins failed");
    }
    Ok(())
}
