//! `--mode queue-sale` (issue 18): a waiting room beside a selling event, on the nodes given
//! (3 by default). One event with its queue on; `--hold-clients` buyers join first and are
//! admitted (the event admits as many as there are buyers), then:
//!
//! 1. **alone**: the buyers reserve one seat and release it, again and again, for
//!    `--seconds` — the holds/s of the sale without a crowd;
//! 2. **with the crowd**: `--users` fans join the same event's queue with `--clients`
//!    connections (spread over every node), while the buyers go on as before; joins/s, join
//!    latency, and the buyers' holds/s during the joins.
//!
//! It prints both phases, the ratio of holds/s (issue 18 asks ≥ 0.8 at ≥ 20,000 joins/s) and
//! the nodes' resident memory per queued fan (from /proc, when this tool started them).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::client::post;

/// Most fans in one run.
const USERS_MAX: usize = 2_000_000;
/// How long the buyers may wait to be admitted before the run gives up.
const ADMISSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the crowd phase may last, whatever `--users` is.
const CROWD_SECONDS_MAX: u64 = 900;

pub struct Options {
    pub users: usize,
    pub clients: usize,
    pub hold_clients: usize,
    pub seconds: u64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn create_event(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    admitted: usize,
) -> anyhow::Result<String> {
    let venue = post(http, format!("{base}/v1/venues"), admin, json!({
        "name": "Queue Arena", "city": "Benchville", "country": "US", "location": {"lat": 0.0, "lon": 0.0},
        "sections": [{"name": "S", "kind": "seated", "rows": [{"name": "1", "seats": 1000}, {"name": "2", "seats": 1000}]}]
    }))
    .await?;
    if venue.0 != 201 {
        bail!("creating the venue: {} {}", venue.0, venue.1);
    }
    let event = post(http, format!("{base}/v1/events"), admin, json!({
        "name": "Queue Night", "type": "concert", "venue_id": venue.1["id"], "starts_at": "2030-01-01T00:00:00Z",
        "prices": {"S": 1000}, "per_user_limit": 1,
        "queue": {"enabled": true, "max_admitted": admitted, "admission_seconds": 3600}
    }))
    .await?;
    if event.0 != 201 {
        bail!("creating the event: {} {}", event.0, event.1);
    }
    Ok(event.1["id"].as_str().unwrap_or_default().to_string())
}

/// The buyers: reserve one seat, release it, until `stop`; counts holds made.
fn spawn_buyers(
    http: &reqwest::Client,
    bases: &[String],
    tokens: &[String],
    event: &str,
    stop: &Arc<AtomicBool>,
    holds: &Arc<AtomicU64>,
    errors: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let (http, base, token, event) =
                (http.clone(), bases[i % bases.len()].clone(), token.clone(), event.to_string());
            let (stop, holds, errors) = (stop.clone(), holds.clone(), errors.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"event_id": event, "section": "S", "quantity": 1});
                    let Ok((201, hold)) =
                        post(&http, format!("{base}/v1/booking/reserve"), &token, body).await
                    else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    holds.fetch_add(1, Ordering::Relaxed);
                    let release = json!({"hold_id": hold["hold_id"]});
                    if !matches!(
                        post(&http, format!("{base}/v1/booking/release"), &token, release).await,
                        Ok((200, _))
                    ) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

pub async fn run(bases: &[String], pids: &[u32], keys: &testkit::Tokens, o: &Options) -> anyhow::Result<()> {
    if o.users == 0 || o.users > USERS_MAX {
        bail!("--users must be within 1..={USERS_MAX}");
    }
    if o.hold_clients == 0 || o.hold_clients > 1_000 {
        bail!("--hold-clients must be within 1..=1000");
    }
    let admin = keys.mint("bench-admin", true, 3_600);
    let http = reqwest::Client::builder().pool_max_idle_per_host(1_024).build()?;
    let event = create_event(&http, &bases[0], &admin, o.hold_clients).await?;
    // The buyers join first and wait for their admission.
    let tokens: Vec<String> =
        (0..o.hold_clients).map(|i| keys.mint(&format!("buyer-{i}"), false, 3_600)).collect();
    for (i, token) in tokens.iter().enumerate() {
        let joined =
            post(&http, format!("{}/v1/events/{event}/queue", bases[i % bases.len()]), token, json!({}))
                .await?;
        if !(200..300).contains(&joined.0) {
            bail!("buyer {i} could not join: {} {}", joined.0, joined.1);
        }
    }
    let started = Instant::now();
    for (i, token) in tokens.iter().enumerate() {
        loop {
            let me: Value = http
                .get(format!("{}/v1/events/{event}/queue/me", bases[0]))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await
                .unwrap_or(Value::Null);
            if me["status"] == "admitted" {
                break;
            }
            if started.elapsed() > ADMISSION_TIMEOUT {
                bail!("buyer {i} not admitted within {ADMISSION_TIMEOUT:?}: {me}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // 1. The sale alone.
    let (stop, holds, hold_errors) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let buyers = spawn_buyers(&http, bases, &tokens, &event, &stop, &holds, &hold_errors);
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    let alone = holds.load(Ordering::Relaxed) as f64 / o.seconds as f64;

    // 2. The crowd joins while the buyers go on.
    let rss_before: u64 = pids.iter().filter_map(|p| rss_kib(*p)).sum();
    let holds_at_start = holds.load(Ordering::Relaxed);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(CROWD_SECONDS_MAX);
    let crowd_started = Instant::now();
    let mut fans = Vec::new();
    for c in 0..o.clients {
        let (http, next, keys) = (http.clone(), next.clone(), keys.clone());
        let url = format!("{}/v1/events/{event}/queue", bases[c % bases.len()]);
        let users = o.users;
        fans.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            // Failed joins by HTTP status (0: no answer).
            let mut errors = std::collections::BTreeMap::<u16, u64>::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= users || Instant::now() > deadline {
                    break;
                }
                let token = keys.mint(&format!("fan-{n}"), false, 3_600);
                let t0 = Instant::now();
                match http.post(&url).bearer_auth(token).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => *errors.entry(r.status().as_u16()).or_default() += 1,
                    Err(_) => *errors.entry(0).or_default() += 1,
                }
                hist.record(t0.elapsed().as_micros() as u64).ok();
            }
            (hist, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut join_errors = std::collections::BTreeMap::<u16, u64>::new();
    for f in fans {
        let (h, e) = f.await?;
        hist.add(h)?;
        for (status, n) in e {
            *join_errors.entry(status).or_default() += n;
        }
    }
    let join_errors = if join_errors.is_empty() {
        "0".to_string()
    } else {
        join_errors.iter().map(|(s, n)| format!("{n}×{s}")).collect::<Vec<_>>().join(" ")
    };
    let crowd_seconds = crowd_started.elapsed().as_secs_f64();
    let holds_during = (holds.load(Ordering::Relaxed) - holds_at_start) as f64 / crowd_seconds;
    stop.store(true, Ordering::Relaxed);
    for b in buyers {
        b.await.context("a buyer task")?;
    }
    let rss_after: u64 = pids.iter().filter_map(|p| rss_kib(*p)).sum();
    let joined = next.load(Ordering::Relaxed).min(o.users);
    let per_fan = if pids.is_empty() {
        "n/a".to_string()
    } else {
        format!("{:.0}", rss_after.saturating_sub(rss_before) as f64 * 1024.0 / joined.max(1) as f64)
    };
    println!(
        "waiting room beside a sale: {} node(s), {} buyers, {joined} fans over {} connections",
        bases.len(),
        o.hold_clients,
        o.clients
    );
    println!("| phase | seconds | holds/s | joins/s | join p50 ms | join p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| sale alone | {} | {alone:.0} | – | – | – | {} |",
        o.seconds,
        hold_errors.load(Ordering::Relaxed)
    );
    println!(
        "| sale + crowd | {crowd_seconds:.1} | {holds_during:.0} | {:.0} | {:.2} | {:.2} | {join_errors} |",
        joined as f64 / crowd_seconds,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    );
    println!(
        "holds/s with the crowd ÷ alone: {:.2}; nodes' RSS {:.0} → {:.0} MiB (all nodes): {per_fan} bytes per queued fan (every node keeps the queue)",
        holds_during / alone.max(1.0),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    Ok(())
}
