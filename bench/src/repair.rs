//! `--mode repair`: how long a cluster runs short of replicas after losing a node for good.
//!
//! Owns: [`run`]. On `--nodes` local nodes (5 by default) started with `--dead-after`, it
//! creates `--events` small GA events and one stadium of `--seats` seated tickets (whose
//! snapshot is what a replica move transfers), and keeps `--clients` buyers reserving one GA
//! ticket at a time on random events through the first two nodes. Then it kills the last node
//! with SIGKILL and deletes its data directory (a lost disk), and polls node 1's
//! `GET /v1/cluster` until no event is under-replicated and none is placed on the lost node —
//! the time to repair, which includes the dead time. It checks that every hold the buyers got
//! a 201 for is still there, kills a second node, and times a reserve on every event through
//! node 1 (each must serve: three replicas, one lost).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::client::{get, outcome_name, post};
use crate::cluster::Nodes;

pub struct Options {
    pub events: usize,
    pub seats: u32,
    pub clients: usize,
    pub dead_after_s: u64,
}

/// Lifetime of the tokens this mode mints.
const TOKEN_TTL_S: u64 = 24 * 3_600;
/// GA places of each small event (room for the buyers' reserves).
const GA_PLACES: u32 = 2_000;
/// Seats per row of the stadium.
const SEATS_PER_ROW: u32 = 1_000;
/// Longest the repair may take past the dead time before the run fails.
const REPAIR_GIVE_UP: Duration = Duration::from_secs(600);
/// Pause between two looks at node 1's cluster view.
const POLL: Duration = Duration::from_millis(500);
/// Longest one event may take to serve a reserve after the second kill.
const SERVE_GIVE_UP: Duration = Duration::from_secs(60);
/// Reserves in flight at once after the second kill.
const PROBES_IN_FLIGHT: usize = 32;
/// Creations in flight at once.
const CREATORS: usize = 8;

pub async fn run(nodes: &mut Nodes, keys: &testkit::Tokens, opts: &Options) -> anyhow::Result<()> {
    let n = nodes.bases.len();
    if n < 4 {
        bail!("--mode repair needs --nodes 4 or more (one lost, three replicas, one more lost)");
    }
    let http = crate::client::client()?;
    let admin = keys.mint("bench-admin", true, TOKEN_TTL_S);
    let base = nodes.bases[0].clone();
    let events = create_events(&http, &nodes.bases, &admin, opts).await?;
    eprintln!("created {} events (one a stadium of {} seats)", events.len(), opts.seats);

    // Buyers through nodes 1 and 2, each acknowledged hold remembered.
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let mut buyers = Vec::new();
    for c in 0..opts.clients {
        let (http, stop, next, events) = (http.clone(), stop.clone(), next.clone(), events.clone());
        let url = format!("{}/v1/booking/reserve", nodes.bases[c % 2]);
        let keys = keys.clone();
        buyers.push(tokio::spawn(async move {
            let mut acked: Vec<(String, String)> = Vec::new();
            let mut failed: BTreeMap<String, u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let user = format!("buyer-{}", i % 5_000);
                let token = keys.mint(&user, false, TOKEN_TTL_S);
                // Events 1..: the small ones (event 0 is the stadium).
                let event = &events[1 + i % (events.len() - 1)];
                let body = json!({"event_id": event, "section": "GA", "quantity": 1});
                let r = post(&http, url.clone(), &token, body).await;
                match &r {
                    Ok((201, b)) => acked.push((b["hold_id"].as_str().unwrap_or_default().to_string(), user)),
                    _ => *failed.entry(outcome_name(&r)).or_default() += 1,
                }
            }
            (acked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let lost = n - 1;
    let placed_there =
        placement(&http, &base).await?.values().filter(|r| r.contains(&(lost as u64 + 1))).count();
    nodes.wipe(lost)?;
    let killed = Instant::now();
    eprintln!(
        "killed node {} and deleted its data; it held {placed_there} of the events' replicas",
        lost + 1
    );
    let mut marked_dead = None;
    let mut placed_at = None;
    let mut last_unmoved: Vec<String> = Vec::new();
    let survivors: Vec<String> = nodes.bases[..lost].to_vec();
    let repaired = loop {
        let view = cluster_view(&http, &base).await.unwrap_or(Value::Null);
        let status = view["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|x| x["id"] == json!(lost + 1)))
            .map(|x| x["status"].clone());
        if marked_dead.is_none() && status == Some(json!("dead")) {
            marked_dead = Some(killed.elapsed());
        }
        let under = view["under_replicated"].as_array().map(Vec::len);
        let placed = placement_of(&view);
        let on_lost = placed.values().filter(|r| r.contains(&(lost as u64 + 1))).count();
        if placed_at.is_none() && under == Some(0) && on_lost == 0 && !placed.is_empty() {
            placed_at = Some(killed.elapsed());
        }
        if placed_at.is_some() {
            let (unmoved, described) = groups_not_at(&http, &survivors, &placed, lost as u64 + 1).await?;
            last_unmoved = described;
            if unmoved == 0 {
                break killed.elapsed();
            }
        }
        if killed.elapsed() > Duration::from_secs(opts.dead_after_s) + REPAIR_GIVE_UP {
            bail!(
                "not repaired {REPAIR_GIVE_UP:?} past the dead time: {under:?} under-replicated, {on_lost} placed on the lost node; groups not moved: {last_unmoved:#?}"
            );
        }
        tokio::time::sleep(POLL).await;
    };
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut failed) = (Vec::new(), BTreeMap::<String, u64>::new());
    for b in buyers {
        let (a, f) = b.await?;
        acked.extend(a);
        for (k, v) in f {
            *failed.entry(k).or_default() += v;
        }
    }
    let secs =
        |d: Option<Duration>| d.map_or("never seen".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!(
        "repair: node {} lost with {placed_there} replicas (dead time {} s); marked dead after {}; placed on 3 live nodes after {}; every group's voters moved after {:.1} s",
        lost + 1,
        opts.dead_after_s,
        secs(marked_dead),
        secs(placed_at),
        repaired.as_secs_f64()
    );
    println!(
        "buyers during the loss and repair: {} holds acknowledged, not acknowledged {failed:?}",
        acked.len()
    );

    // Every acknowledged hold is still there (an answer other than 200 or 404 — a group
    // changing hands — is asked again).
    let mut missing: BTreeMap<String, u64> = BTreeMap::new();
    for (hold, user) in &acked {
        let token = keys.mint(user, false, TOKEN_TTL_S);
        let mut last = String::new();
        for _ in 0..20 {
            let r = get_with(&http, format!("{base}/v1/holds/{hold}"), &token).await;
            match &r {
                Ok((200, _)) => {
                    last.clear();
                    break;
                }
                Ok((404, _)) => {
                    last = outcome_name(&r);
                    eprintln!("acknowledged hold {hold} of {user}: 404");
                    break;
                }
                _ => last = outcome_name(&r),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if !last.is_empty() {
            *missing.entry(last).or_default() += 1;
        }
    }
    let lost_holds: u64 = missing.values().sum();
    println!(
        "acknowledged holds found afterwards: {} of {} (not found: {missing:?})",
        acked.len() as u64 - lost_holds,
        acked.len()
    );

    // A second node goes: every event still serves.
    let second = n - 2;
    nodes.kill(second)?;
    let second_killed = Instant::now();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut unserved = 0;
    let url = format!("{base}/v1/booking/reserve");
    let mut probes = futures::stream::iter(events.iter().enumerate().map(|(i, event)| {
        let (http, url, keys) = (http.clone(), url.clone(), keys.clone());
        async move {
            let token = keys.mint(&format!("after-{i}"), false, TOKEN_TTL_S);
            let section = if i == 0 {
                json!({"section": "S", "quantity": 2})
            } else {
                json!({"section": "GA", "quantity": 1})
            };
            let mut body = json!({"event_id": event});
            body.as_object_mut().expect("object").extend(section.as_object().expect("object").clone());
            loop {
                if let Ok((201, _)) = post(&http, url.clone(), &token, body.clone()).await {
                    return Some(second_killed.elapsed());
                }
                if second_killed.elapsed() > SERVE_GIVE_UP {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }))
    .buffer_unordered(PROBES_IN_FLIGHT);
    use futures::StreamExt;
    while let Some(served) = probes.next().await {
        match served {
            Some(d) => hist.saturating_record(d.as_micros() as u64),
            None => unserved += 1,
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "after a second node (node {}) was killed: {} of {} events served a reserve (p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms after the kill)",
        second + 1,
        hist.len(),
        events.len(),
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1_000.0
    );
    if lost_holds > 0 || unserved > 0 {
        bail!(
            "{lost_holds} acknowledged holds not found, {unserved} events not served after the second kill"
        );
    }
    Ok(())
}

/// The stadium (first) and `opts.events` small GA events; their ids.
async fn create_events(
    http: &reqwest::Client,
    bases: &[String],
    admin: &str,
    opts: &Options,
) -> anyhow::Result<Vec<String>> {
    let base = &bases[0];
    let rows: Vec<Value> = (0..opts.seats.div_ceil(SEATS_PER_ROW))
        .map(|r| json!({"name": (r + 1).to_string(), "seats": SEATS_PER_ROW.min(opts.seats - r * SEATS_PER_ROW)}))
        .collect();
    let venue = |sections: Value| {
        json!({"name": "Repair Arena", "city": "Fixville", "country": "US", "location": {"lat": 0.0, "lon": 0.0},
               "sections": sections})
    };
    let stadium = post(
        http,
        format!("{base}/v1/venues"),
        admin,
        venue(json!([{"name": "S", "kind": "seated", "rows": rows}])),
    )
    .await?;
    let hall = post(
        http,
        format!("{base}/v1/venues"),
        admin,
        venue(json!([{"name": "GA", "kind": "general", "capacity": GA_PLACES}])),
    )
    .await?;
    if stadium.0 != 201 || hall.0 != 201 {
        bail!("creating the venues: {} {} / {} {}", stadium.0, stadium.1, hall.0, hall.1);
    }
    let event = |venue: &Value, i: usize| {
        let prices = if i == 0 { json!({"S": 5000}) } else { json!({"GA": 1000}) };
        json!({"name": format!("Repair night {i}"), "type": "concert", "venue_id": venue["id"],
               "starts_at": "2030-01-01T00:00:00Z", "prices": prices, "currency": "USD",
               "per_user_limit": 50})
    };
    let first = post(http, format!("{base}/v1/events"), admin, event(&stadium.1, 0)).await?;
    let mut ids = vec![first.1["id"]
        .as_str()
        .with_context(|| format!("stadium event: {} {}", first.0, first.1))?
        .to_string()];
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CREATORS {
        let (http, next, admin, hall) = (http.clone(), next.clone(), admin.to_string(), hall.1.clone());
        let url = format!("{}/v1/events", bases[c % bases.len()]);
        let total = opts.events;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(ids);
                }
                let r = post(&http, url.clone(), &admin, event(&hall, i + 1)).await?;
                if r.0 != 201 {
                    bail!("creating event {i}: {} {}", r.0, r.1);
                }
                ids.push(r.1["id"].as_str().unwrap_or_default().to_string());
            }
        }));
    }
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok(ids)
}

/// A GET with a bearer token.
async fn get_with(http: &reqwest::Client, url: String, token: &str) -> anyhow::Result<(u16, Value)> {
    let r = http.get(url).bearer_auth(token).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn cluster_view(http: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    let (status, body) = get(http, format!("{base}/v1/cluster")).await?;
    if status != 200 {
        bail!("GET /v1/cluster: {status} {body}");
    }
    Ok(body)
}

async fn placement(http: &reqwest::Client, base: &str) -> anyhow::Result<BTreeMap<String, Vec<u64>>> {
    Ok(placement_of(&cluster_view(http, base).await?))
}

/// Events whose group is not at its placement yet: some placed node still lists the lost node
/// among its voters or has a membership change in flight, or none lists exactly the placed
/// nodes as its voters. (A node an event moved away from — by the repair or by rebalancing —
/// keeps a stale copy of its group on disk: not looked at.) Up to five of them, described.
async fn groups_not_at(
    http: &reqwest::Client,
    survivors: &[String],
    placed: &BTreeMap<String, Vec<u64>>,
    lost: u64,
) -> anyhow::Result<(usize, Vec<String>)> {
    let mut seen: BTreeMap<String, (bool, bool, Vec<String>)> = BTreeMap::new();
    for (i, base) in survivors.iter().enumerate() {
        let node = i as u64 + 1;
        let view = cluster_view(http, base).await?;
        for g in view["groups"].as_array().into_iter().flatten() {
            let Some(id) = g["id"].as_str() else { continue };
            let Some(want) = placed.get(id).filter(|w| w.contains(&node)) else { continue };
            let mut voters: Vec<u64> = g["voters"]
                .as_array()
                .map(|m| m.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            voters.sort_unstable();
            let settled = g["membership_changing"] == json!(false);
            let entry = seen.entry(id.to_string()).or_default();
            entry.0 |= voters.contains(&lost) || !settled;
            entry.1 |= settled && voters == *want;
            entry
                .2
                .push(format!("node {node}: voters {voters:?} changing {} leader {}", !settled, g["leader"]));
        }
    }
    let bad: Vec<&String> =
        placed.keys().filter(|e| seen.get(*e).is_none_or(|(stale, exact, _)| *stale || !*exact)).collect();
    let described = bad
        .iter()
        .take(5)
        .map(|e| format!("{e} placed on {:?}: {:?}", placed[*e], seen.get(*e).map(|s| &s.2)))
        .collect();
    Ok((bad.len(), described))
}

fn placement_of(view: &Value) -> BTreeMap<String, Vec<u64>> {
    view["placement"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(e, r)| {
                    (
                        e.clone(),
                        r.as_array()
                            .map(|r| r.iter().filter_map(Value::as_u64).collect())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
