//! `--mode idle`: what thousands of idle events cost.
//!
//! Owns: [`run`]. It creates `--events` events of a 20-place GA venue through the API (8
//! admin clients by default, spread over the nodes), records the creation rate and every
//! error, waits until no group is awake (from each node's `/metrics`: `boxoffice_raft_groups`),
//! then measures each local node's CPU over `--idle-seconds` (from `/proc/<pid>/stat`) and its
//! RSS, and finally times a first reserve on `--first-reserves` of the sleeping events (one at
//! a time, each through a random node) — the latency a buyer sees on an event nobody touched
//! for a while.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::json;

use crate::client::{get_text, outcome_name, post};
use crate::cluster::Nodes;

/// Tickets of every idle event (the "at least 20").
const SEATS: u32 = 20;
/// Longest wait for every group to sleep after the creations.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Lifetime of the tokens this mode mints.
const TOKEN_TTL_S: u64 = 24 * 3_600;

pub struct Options {
    pub events: usize,
    pub creators: usize,
    pub idle_seconds: u64,
    pub first_reserves: usize,
    pub kill_leader: bool,
    /// Reserves in flight at once during the failover phase.
    pub failover_clients: usize,
}

/// `--kill-leader`: the failover target (issue 11): every event serves a reserve through a
/// survivor within this long of the kill.
const FAILOVER_TARGET: Duration = Duration::from_secs(3);
/// Longest the failover phase keeps trying.
const FAILOVER_GIVE_UP: Duration = Duration::from_secs(60);
/// Soonest an event not served is tried again.
const FAILOVER_RETRY: Duration = Duration::from_millis(50);

/// CPU ticks (user + system) and RSS (KiB) of a process, from `/proc`.
fn proc_sample(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((ticks, rss))
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times: Linux's `USER_HZ`, 100 on every
/// architecture it runs this on (`sysconf(_SC_CLK_TCK)`).
const TICKS_PER_SECOND: u64 = 100;

/// The value of `boxoffice_raft_groups{state="<state>"}` in a `/metrics` text.
fn groups_in(metrics: &str, state: &str) -> Option<u64> {
    let prefix = format!("boxoffice_raft_groups{{state=\"{state}\"}}");
    metrics
        .lines()
        .find(|l| l.starts_with(&prefix))?
        .split_whitespace()
        .last()?
        .parse::<f64>()
        .ok()
        .map(|v| v as u64)
}

/// Wait until every node at `bases` reports no awake group in `/metrics` (a node that does
/// not answer counts as awake), for at most [`SETTLE_TIMEOUT`].
async fn wait_all_asleep(http: &reqwest::Client, bases: &[String], when: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut awake = 0;
        for b in bases {
            let text = get_text(http, format!("{b}/metrics")).await.unwrap_or_default();
            awake += groups_in(&text, "awake").unwrap_or(u64::MAX / 8);
        }
        if awake == 0 {
            return Ok(());
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            bail!("{awake} groups still awake {SETTLE_TIMEOUT:?} {when}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(nodes: &mut Nodes, keys: &testkit::Tokens, opts: &Options) -> anyhow::Result<()> {
    if opts.events == 0 || opts.creators == 0 {
        bail!("--events and --clients must be at least 1");
    }
    let http = crate::client::client()?;
    let admin = keys.mint("bench-admin", true, TOKEN_TTL_S);
    let pids = nodes.pids();
    let before: Vec<Option<(u64, u64)>> = pids.iter().map(|p| proc_sample(*p)).collect();
    let base = &nodes.bases[0];
    let venue = post(
        &http,
        format!("{base}/v1/venues"),
        &admin,
        json!({
            "name": "Idle Hall", "city": "Quietville", "country": "US", "location": {"lat": 0.0, "lon": 0.0},
            "sections": [{"name": "GA", "kind": "general", "capacity": SEATS}]
        }),
    )
    .await?;
    if venue.0 != 201 {
        bail!("creating the venue: {} {}", venue.0, venue.1);
    }
    let venue_id = venue.1["id"].as_str().context("venue id")?.to_string();

    // Create the events: `creators` admin clients, spread over the nodes.
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..opts.creators {
        let (http, next, admin, venue_id) = (http.clone(), next.clone(), admin.clone(), venue_id.clone());
        let url = format!("{}/v1/events", nodes.bases[c % nodes.bases.len()]);
        let total = opts.events;
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut ids = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let body = json!({
                    "name": format!("Idle night {i}"), "type": "concert", "venue_id": venue_id,
                    "starts_at": "2030-01-01T00:00:00Z", "prices": {"GA": 1000}, "currency": "USD",
                    "per_user_limit": 4
                });
                let t0 = Instant::now();
                let r = post(&http, url.clone(), &admin, body).await;
                hist.saturating_record(t0.elapsed().as_micros() as u64);
                match &r {
                    Ok((201, b)) => ids.push(b["id"].as_str().unwrap_or_default().to_string()),
                    _ => *errors.entry(outcome_name(&r)).or_default() += 1,
                }
            }
            (hist, ids, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut events = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let (h, ids, e) = t.await?;
        hist.add(h)?;
        events.extend(ids);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let created_in = started.elapsed();
    let rate = events.len() as f64 / created_in.as_secs_f64();
    eprintln!(
        "created {} events in {:.1} s ({rate:.0}/s), errors {errors:?}",
        events.len(),
        created_in.as_secs_f64()
    );

    // Settle: every node reports no awake group.
    let settle = Instant::now();
    wait_all_asleep(&http, &nodes.bases, "after the creations").await?;
    eprintln!("every group asleep {:.1} s after the last creation", settle.elapsed().as_secs_f64());
    // Let evictions finish, then measure.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let hz = TICKS_PER_SECOND;
    let at_start: Vec<Option<(u64, u64)>> = pids.iter().map(|p| proc_sample(*p)).collect();
    tokio::time::sleep(Duration::from_secs(opts.idle_seconds)).await;
    let at_end: Vec<Option<(u64, u64)>> = pids.iter().map(|p| proc_sample(*p)).collect();
    let mut states = Vec::new();
    for b in &nodes.bases {
        let text = get_text(&http, format!("{b}/metrics")).await.unwrap_or_default();
        states.push((groups_in(&text, "awake"), groups_in(&text, "asleep"), groups_in(&text, "dormant")));
    }

    // First reserves on sleeping events.
    let mut first = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut first_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut pick = 0x9E37_79B9_7F4A_7C15u64;
    for n in 0..opts.first_reserves.min(events.len()) {
        pick ^= pick << 13;
        pick ^= pick >> 7;
        pick ^= pick << 17;
        // Distinct events: stride through the list from a random start.
        let event = &events[(pick as usize + n * 7919) % events.len()];
        let base = &nodes.bases[(pick >> 32) as usize % nodes.bases.len()];
        let token = keys.mint(&format!("first-{n}"), false, TOKEN_TTL_S);
        let t0 = Instant::now();
        let r = post(
            &http,
            format!("{base}/v1/booking/reserve"),
            &token,
            json!({"event_id": event, "section": "GA", "quantity": 1}),
        )
        .await;
        first.saturating_record(t0.elapsed().as_micros() as u64);
        if !matches!(r, Ok((201, _))) {
            *first_errors.entry(outcome_name(&r)).or_default() += 1;
        }
    }

    println!("| events | created/s | creation p99 ms | creation errors | first reserve p50 ms | p99 ms | max ms | first reserve errors |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {rate:.0} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {} |",
        events.len(),
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        if errors.is_empty() { "0".to_string() } else { format!("{errors:?}") },
        first.value_at_quantile(0.5) as f64 / 1000.0,
        first.value_at_quantile(0.99) as f64 / 1000.0,
        first.max() as f64 / 1000.0,
        if first_errors.is_empty() { "0".to_string() } else { format!("{first_errors:?}") },
    );
    println!();
    println!("| node | idle CPU % of a core ({} s) | RSS before MiB | RSS idle MiB | groups awake / asleep / out of memory |", opts.idle_seconds);
    println!("|---|---|---|---|---|");
    for i in 0..pids.len() {
        let cpu = match (at_start[i], at_end[i]) {
            (Some((a, _)), Some((b, _))) => {
                format!("{:.2}", (b - a) as f64 / hz as f64 / opts.idle_seconds as f64 * 100.0)
            }
            _ => "n/a".into(),
        };
        let mib =
            |s: Option<(u64, u64)>| s.map_or("n/a".to_string(), |(_, k)| format!("{:.0}", k as f64 / 1024.0));
        let (a, s, d) = states[i];
        let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        println!(
            "| {} | {cpu} | {} | {} | {} / {} / {} |",
            i + 1,
            mib(before[i]),
            mib(at_end[i]),
            show(a),
            show(s),
            show(d)
        );
    }
    if !errors.is_empty() || !first_errors.is_empty() {
        bail!("errors: creation {errors:?}, first reserves {first_errors:?}");
    }
    if opts.kill_leader {
        fail_over(nodes, keys, &events, opts).await?;
    }
    Ok(())
}

/// Kill -9 the node leading the most event groups (as node 1 sees it), then reserve once on
/// every event through the survivors, `opts.creators` at a time, each retried until it
/// answers 201; print when each was first served, then the survivors' CPU once their groups
/// sleep again with the dead node still down.
async fn fail_over(
    nodes: &mut Nodes,
    keys: &testkit::Tokens,
    events: &[String],
    opts: &Options,
) -> anyhow::Result<()> {
    let http = crate::client::client()?;
    let view: serde_json::Value = {
        let text = get_text(&http, format!("{}/v1/cluster", nodes.bases[0])).await?;
        serde_json::from_str(&text)?
    };
    let mut led: BTreeMap<u64, usize> = BTreeMap::new();
    let mut leader_of: BTreeMap<String, u64> = BTreeMap::new();
    for g in view["groups"].as_array().cloned().unwrap_or_default() {
        if let Some(id) = g["id"].as_str().filter(|id| id.starts_with("evt_")) {
            if let Some(l) = g["leader"].as_u64() {
                *led.entry(l).or_default() += 1;
                leader_of.insert(id.to_string(), l);
            }
        }
    }
    let (&victim, &count) = led.iter().max_by_key(|(_, n)| **n).context("no event group has a leader")?;
    let survivors: Vec<String> =
        (0..nodes.bases.len()).filter(|i| *i as u64 + 1 != victim).map(|i| nodes.bases[i].clone()).collect();
    eprintln!("node {victim} leads {count} of {} event groups: kill -9", events.len());
    nodes.kill(victim as usize - 1)?;
    let killed = Instant::now();
    // `--failover-clients` clients take events from one queue; an event not served goes to the
    // back of the queue (tried again no sooner than `FAILOVER_RETRY`), so each event's time is
    // its own: no barrier between rounds, no event stuck behind another's failing request. A new
    // buyer for every try: a try that timed out may have held a ticket, and the buyer's
    // per-event limit must not turn the next try into a 422.
    struct Queue {
        due: std::collections::VecDeque<(usize, Instant)>,
        failures: BTreeMap<String, usize>,
        last_failure: BTreeMap<usize, String>,
        /// The first answer seen of each kind of failure.
        samples: BTreeMap<String, String>,
        /// When each served event was served (event index, time since the kill).
        served: Vec<(usize, Duration)>,
    }
    let queue = Arc::new(tokio::sync::Mutex::new(Queue {
        due: (0..events.len()).map(|i| (i, killed)).collect(),
        failures: BTreeMap::new(),
        last_failure: BTreeMap::new(),
        samples: BTreeMap::new(),
        served: Vec::new(),
    }));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let tries = Arc::new(AtomicUsize::new(0));
    let clients = (0..opts.failover_clients).map(|_| {
        let (queue, in_flight, tries, http, survivors) =
            (queue.clone(), in_flight.clone(), tries.clone(), http.clone(), survivors.clone());
        async move {
            while killed.elapsed() < FAILOVER_GIVE_UP {
                let next = {
                    let mut q = queue.lock().await;
                    let next = q.due.pop_front();
                    if next.is_some() {
                        in_flight.fetch_add(1, Ordering::SeqCst);
                    }
                    next
                };
                let Some((i, due)) = next else {
                    if in_flight.load(Ordering::SeqCst) == 0 {
                        return; // every event served
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                tokio::time::sleep_until(due.into()).await;
                let attempt = tries.fetch_add(1, Ordering::Relaxed);
                let token = keys.mint(&format!("failover-{attempt}"), false, TOKEN_TTL_S);
                let r = post(
                    &http,
                    format!("{}/v1/booking/reserve", survivors[attempt % survivors.len()]),
                    &token,
                    json!({"event_id": events[i], "section": "GA", "quantity": 1}),
                )
                .await;
                let mut q = queue.lock().await;
                if matches!(r, Ok((201, _))) {
                    q.served.push((i, killed.elapsed()));
                } else {
                    let why = outcome_name(&r);
                    let sample = match &r {
                        Ok((_, body)) => body.to_string(),
                        Err(e) => e.to_string(),
                    };
                    q.samples.entry(why.clone()).or_insert(sample);
                    *q.failures.entry(why.clone()).or_default() += 1;
                    q.last_failure.insert(i, why);
                    q.due.push_back((i, Instant::now() + FAILOVER_RETRY));
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
    });
    futures::future::join_all(clients).await;
    let Queue { due: pending, failures, last_failure, samples, served: times } =
        Arc::try_unwrap(queue).map_err(|_| anyhow::anyhow!("failover clients still running"))?.into_inner();
    let mut served = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    // Split by whether the dead node led the event's group (a new leader is elected) or not
    // (the group is loaded on the survivors with its leader).
    let mut by_kind = [Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?, served.clone()];
    let mut late = 0usize;
    for (i, at) in times {
        late += usize::from(at > FAILOVER_TARGET);
        served.saturating_record(at.as_micros() as u64);
        let orphaned = leader_of.get(&events[i]) == Some(&victim);
        by_kind[usize::from(!orphaned)].saturating_record(at.as_micros() as u64);
    }
    for (kind, h) in ["led by the dead node", "led by a survivor"].iter().zip(&by_kind) {
        eprintln!(
            "served, {kind}: {} events, p50 {:.0} ms, max {:.0} ms",
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }
    let failed = pending.len();
    // The survivors' groups sleep again, with the dead node still down.
    wait_all_asleep(&http, &survivors, "on the survivors after the failover").await?;
    let asleep_after = killed.elapsed();
    let pids: Vec<(usize, u32)> =
        nodes.pids().into_iter().enumerate().filter(|(i, _)| *i as u64 + 1 != victim).collect();
    let at_start: Vec<Option<(u64, u64)>> = pids.iter().map(|(_, p)| proc_sample(*p)).collect();
    let window = opts.idle_seconds.clamp(5, 30);
    tokio::time::sleep(Duration::from_secs(window)).await;
    let at_end: Vec<Option<(u64, u64)>> = pids.iter().map(|(_, p)| proc_sample(*p)).collect();
    println!();
    println!("| failover: events | served within {} s | p50 ms | p99 ms | max ms | never served | survivors asleep again after s |", FAILOVER_TARGET.as_secs());
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.0} | {:.0} | {:.0} | {failed} | {:.1} |",
        events.len(),
        events.len() - late - failed,
        served.value_at_quantile(0.5) as f64 / 1000.0,
        served.value_at_quantile(0.99) as f64 / 1000.0,
        served.max() as f64 / 1000.0,
        asleep_after.as_secs_f64()
    );
    for (k, (i, _)) in pids.iter().enumerate() {
        if let (Some((a, _)), Some((b, rss))) = (at_start[k], at_end[k]) {
            println!(
                "survivor node {}: CPU {:.2} % of a core over {window} s after the failover, RSS {:.0} MiB",
                i + 1,
                (b - a) as f64 / TICKS_PER_SECOND as f64 / window as f64 * 100.0,
                rss as f64 / 1024.0
            );
        }
    }
    println!("failed tries while failing over, by answer: {failures:?}");
    for (kind, body) in &samples {
        println!("  e.g. {kind}: {}", body.chars().take(300).collect::<String>());
    }
    if failed > 0 {
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, _) in &pending {
            *last.entry(last_failure.get(i).map_or("", |s| s.as_str())).or_default() += 1;
        }
        bail!("{failed} events never served a reserve after the kill; their last answers: {last:?}");
    }
    Ok(())
}
