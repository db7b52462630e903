//! The waiting queue over three real processes: 200 concurrent joins through all nodes get
//! unique places; at the on-sale time the pre-queue is shuffled into an order every node
//! agrees on and stays ahead of later joiners; at most `max_admitted` shoppers are admitted
//! at once; a non-admitted reserve is refused; and when an admitted shopper books, the next
//! in line is admitted and told so on their queue stream.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{eventually, token, venue, Client, Cluster};
use serde_json::{json, Value};

const JOINERS: usize = 200;
const MAX_ADMITTED: u64 = 2;
/// The sale opens this long after the event is created: the joins happen before it.
const OPENS_IN: Duration = Duration::from_secs(6);

/// The tests of this file run one at a time: the estimate test measures waits against the
/// clock and must not share the machine's cores with the three-node cluster of the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn user_token(keys: &testkit::Tokens, n: usize) -> String {
    keys.mint(&format!("fan{n:03}"), false, 3_600)
}

async fn place(c: &Client, event: &str, tok: &str) -> Value {
    let a = c.get(&format!("/v1/events/{event}/queue/me"), Some(tok)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

/// A counter of one node's `/metrics`, summed over its labels.
async fn counter(c: &Client, name: &str) -> f64 {
    let a = c.get("/metrics", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let text = a.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fair_queue_across_three_nodes() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(3).await;
    let clients: Vec<Client> = (1..=3).map(|id| cluster.client(id)).collect();
    let keys = testkit::Tokens::new(common::SECRET.as_bytes());
    let admin = token("admin", true);
    let venue_id = venue(&clients[0], &admin, 50).await;
    let opens_at = time::OffsetDateTime::now_utc() + time::Duration::seconds(OPENS_IN.as_secs() as i64);
    let created = Instant::now();
    let event = clients[0]
        .post(
            "/v1/events",
            &admin,
            json!({
                "name": "Hot Show", "type": "concert", "venue_id": venue_id,
                "starts_at": "2030-01-01T20:00:00Z",
                "on_sale_at": opens_at.format(&time::format_description::well_known::Rfc3339).unwrap(),
                "prices": {"A": 5000, "GA": 2500}, "per_user_limit": 2,
                "queue": {"enabled": true, "max_admitted": MAX_ADMITTED, "admission_seconds": 60}
            }),
        )
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    let event = event.body["id"].as_str().unwrap().to_string();
    // Each node's catalog replica learns of the event a moment later; a join through a node
    // that has not yet is 404 `event not found`.
    for c in &clients {
        eventually("every node knows the event", Duration::from_secs(5), || async {
            let a = c.get(&format!("/v1/events/{event}"), None).await;
            if a.status == 200 {
                Ok(())
            } else {
                Err(format!("{}: {}", a.status, a.body))
            }
        })
        .await;
    }

    // 200 joins at once, spread over the three nodes, before the sale opens.
    let mut joins = Vec::new();
    for n in 0..JOINERS {
        let (c, event, tok) = (clients[n % 3].clone(), event.clone(), user_token(&keys, n));
        joins.push(tokio::spawn(async move {
            c.send("POST", &format!("/v1/events/{event}/queue"), Some(&tok), None, &[]).await
        }));
    }
    let mut positions = BTreeSet::new();
    for j in joins {
        let a = j.await.unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["status"], "waiting");
        positions.insert(a.body["position"].as_u64().unwrap());
    }
    assert!(created.elapsed() < OPENS_IN, "the joins must land before the sale opens; raise OPENS_IN");
    assert_eq!(positions, (1..=JOINERS as u64).collect(), "200 unique places 1..200");
    // Each node gathered the joins it took into batches (cluster/src/queue_joins.rs): every
    // join was committed once, in fewer commands than joins.
    let (mut joined, mut batches) = (0.0, 0.0);
    for c in &clients {
        joined += counter(c, "boxoffice_queue_joins_total").await;
        batches += counter(c, "boxoffice_queue_join_batches_total").await;
    }
    assert_eq!(joined, JOINERS as f64, "every join committed once");
    assert!(batches < joined, "{joined} joins in {batches} batches: no batching");
    // Joining twice returns the same place.
    let again = clients[1]
        .send("POST", &format!("/v1/events/{event}/queue"), Some(&user_token(&keys, 7)), None, &[])
        .await;
    let before = place(&clients[1], &event, &user_token(&keys, 7)).await;
    assert_eq!(again.body["position"], before["position"]);

    // Nobody is admitted before the sale: a reserve is refused.
    let early = clients[2]
        .post(
            "/v1/booking/reserve",
            &user_token(&keys, 0),
            json!({"event_id": event, "section": "GA", "quantity": 1}),
        )
        .await;
    assert!(matches!(early.status, 403 | 409), "{}", early.body);

    // After the opening: admitted shoppers appear, at most MAX_ADMITTED.
    tokio::time::sleep(OPENS_IN.saturating_sub(created.elapsed())).await;
    let late = user_token(&keys, 999);
    let late_join =
        clients[2].send("POST", &format!("/v1/events/{event}/queue"), Some(&late), None, &[]).await;
    assert_eq!(late_join.status, 200, "{}", late_join.body);
    let order = eventually("two admitted shoppers", Duration::from_secs(10), || {
        let (clients, event, keys) = (clients.clone(), event.clone(), &keys);
        async move {
            let mut by_node: Vec<BTreeMap<usize, (String, u64)>> = Vec::new();
            for c in &clients {
                let mut view = BTreeMap::new();
                for n in 0..JOINERS {
                    let p = place(c, &event, &user_token(keys, n)).await;
                    view.insert(
                        n,
                        (p["status"].as_str().unwrap().to_string(), p["position"].as_u64().unwrap()),
                    );
                }
                by_node.push(view);
            }
            let admitted = by_node[0].values().filter(|(s, _)| s == "admitted").count() as u64;
            if admitted == MAX_ADMITTED {
                Ok(by_node)
            } else {
                Err(format!("{admitted} admitted"))
            }
        }
    })
    .await;
    assert!(order.iter().all(|v| *v == order[0]), "every node sees the same order");
    let waiting: BTreeMap<u64, usize> =
        order[0].iter().filter(|(_, (s, _))| s == "waiting").map(|(n, (_, p))| (*p, *n)).collect();
    let shuffled: Vec<usize> = waiting.values().copied().collect();
    assert_eq!(shuffled.len(), JOINERS - MAX_ADMITTED as usize);
    assert_ne!(
        shuffled,
        (0..JOINERS).filter(|n| waiting.values().any(|m| m == n)).collect::<Vec<_>>(),
        "shuffled, not FIFO"
    );
    let late_place = place(&clients[0], &event, &late).await;
    assert_eq!(
        late_place["position"].as_u64(),
        Some((JOINERS - MAX_ADMITTED as usize + 1) as u64),
        "later joiners queue behind the pre-queue"
    );

    // A waiting shopper cannot reserve.
    let next_in_line = *waiting.values().next().unwrap();
    let refused = clients[0]
        .post(
            "/v1/booking/reserve",
            &user_token(&keys, next_in_line),
            json!({"event_id": event, "section": "GA", "quantity": 1}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (403, Some("queue_admission_required")),
        "{}",
        refused.body
    );

    // The next in line watches their place; an admitted shopper books; they are admitted.
    let stream_tok = user_token(&keys, next_in_line);
    let mut stream = clients[1]
        .http
        .get(format!("{}/v1/events/{event}/queue/me/stream", clients[1].base))
        .bearer_auth(&stream_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let shopper = *order[0].iter().find(|(_, (s, _))| s == "admitted").unwrap().0;
    let tok = user_token(&keys, shopper);
    let hold = clients[2]
        .post("/v1/booking/reserve", &tok, json!({"event_id": event, "section": "GA", "quantity": 1}))
        .await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let booked = clients[2]
        .post(
            "/v1/booking/confirm",
            &tok,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let started = Instant::now();
    let mut text = String::new();
    while !text.contains("\"admitted\"") {
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await.expect("notified in time");
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
    }
    eprintln!(
        "queue: the next shopper was notified {} ms after a booking freed a place",
        started.elapsed().as_millis()
    );
    let admitted = place(&clients[0], &event, &stream_tok).await;
    assert_eq!(admitted["status"], "admitted");
    let count = (0..JOINERS).filter(|n| order[0].contains_key(n)).count();
    assert_eq!(count, JOINERS);
}

// ---- wait estimates ----------------------------------------------------------------------

/// Fans in the estimate test.
const FANS: usize = 40;
/// Shoppers admitted at once in the estimate test.
const ESTIMATE_MAX_ADMITTED: u64 = 5;
/// Fans arrive one after another at the opening, this far apart on average (exponential
/// gaps, milliseconds): 40 fans in about 1.6 s.
const JOIN_GAP_MEAN_MS: f64 = 40.0;
/// Each admitted fan shops this long (uniform, milliseconds), then leaves.
const SHOP_MS: std::ops::Range<u64> = 300..900;
/// The whole estimate test (joins, shopping, every fan's wait) must end within this.
const ESTIMATE_TEST_MAX: Duration = Duration::from_secs(50);
/// Fans whose actual wait is at least this long count toward the error.
const LONG_WAIT: Duration = Duration::from_secs(2);
/// Most a fan waits for their admission before the test gives up.
const FAN_WAIT_MAX: Duration = Duration::from_secs(40);
/// Streams open per client address are bounded by the server (32); fans spread over this
/// many loopback source addresses (127.0.0.1, 127.0.0.2, ...).
const SOURCE_ADDRESSES: usize = 2;

/// What one fan saw: the answer to their join, and how long they actually waited.
#[derive(Debug)]
struct FanRecord {
    fan: usize,
    ahead: u64,
    /// When the join was answered, from the first join.
    joined: Duration,
    /// What the queue stream pushed until the admission.
    pushed: Vec<Value>,
    estimate_s: f64,
    range_s: Option<(f64, f64)>,
    waited: Duration,
}

/// Wait on a fan's queue stream until it says `admitted`; returns when it did, and every
/// `queue` answer the stream pushed.
async fn admitted_on_stream(
    http: &reqwest::Client,
    base: &str,
    event: &str,
    tok: &str,
) -> (Instant, Vec<Value>) {
    let mut stream = http
        .get(format!("{base}/v1/events/{event}/queue/me/stream"))
        .bearer_auth(tok)
        .send()
        .await
        .expect("stream opened");
    assert_eq!(stream.status(), 200, "queue stream");
    let mut text = String::new();
    let deadline = Instant::now() + FAN_WAIT_MAX;
    loop {
        if text.contains("\"status\":\"admitted\"") {
            let pushed = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| serde_json::from_str(data.trim()).expect("a queue answer"))
                .collect();
            return (Instant::now(), pushed);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("admitted within {FAN_WAIT_MAX:?}"))
            .expect("stream readable")
            .expect("stream open until admitted");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Whether the stream had a reason to push `next` after `last`: a new place or status, or
/// an estimate more than 10 % away.
fn pushed_for_a_reason(last: &Value, next: &Value) -> bool {
    let place = |q: &Value| (q["position"].clone(), q["status"].clone(), q["admitted_until"].clone());
    let estimate = |q: &Value| q["estimated_wait_seconds"].as_f64().unwrap();
    place(last) != place(next) || (estimate(next) - estimate(last)).abs() > 0.1 * estimate(last)
}

/// Median of a non-empty list.
fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty(), "median of nothing");
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

/// Honest estimates: 40 fans join one after another at the opening of a sale that admits 5
/// at a time for up to 30 s; each admitted fan shops 0.3–0.9 s (seeded) and leaves. The
/// estimate each fan got at join must be close to the wait they then had (median relative
/// error ≤ 20 % over fans who waited ≥ 2 s), and the range given at join must hold their
/// actual wait for ≥ 80 % of the fans who had to wait. `QUEUE_SEED=n` replays a run.
///
/// The fans arrive over about 1.6 s (seeded exponential gaps), not all in the first 0.2 s
/// that back-to-back joins take: a fan who joins before any shopper has finished can only
/// get the prior, and then this test would measure how close the prior happens to be to
/// 0.6 s of shopping (it measured 529 % off; the old estimate 4,617 %). Against the old
/// estimator this test fails (40.9 %, no range); `docs/live.md` has the runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_estimates_at_join_match_the_waits() {
    let _alone = ONE_AT_A_TIME.lock().await;
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("QUEUE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(18);
    eprintln!("queue estimates: seed {seed} (QUEUE_SEED={seed} replays the shopping times)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let shop: Vec<Duration> = (0..FANS).map(|_| Duration::from_millis(rng.random_range(SHOP_MS))).collect();
    let mean_ms = |xs: &[Duration]| xs.iter().map(|d| d.as_millis() as f64).sum::<f64>() / xs.len() as f64;
    eprintln!(
        "queue estimates: shopping takes {:.0} ms on average ({:.0} ms for the first 10 fans)",
        mean_ms(&shop),
        mean_ms(&shop[..10])
    );
    let gaps: Vec<Duration> = (0..FANS)
        .map(|_| Duration::from_secs_f64(-JOIN_GAP_MEAN_MS * (1.0 - rng.random::<f64>()).ln() / 1_000.0))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let node = common::Node::start(dir.path());
    let c = node.client();
    let keys = testkit::Tokens::new(common::SECRET.as_bytes());
    let admin = token("admin", true);
    let venue_id = venue(&c, &admin, 100).await;
    let event = c
        .post(
            "/v1/events",
            &admin,
            json!({
                "name": "Estimates", "type": "concert", "venue_id": venue_id,
                "starts_at": "2030-01-01T20:00:00Z",
                "prices": {"A": 5000, "GA": 2500}, "per_user_limit": 2,
                "queue": {"enabled": true, "max_admitted": ESTIMATE_MAX_ADMITTED, "admission_seconds": 30}
            }),
        )
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    let event = event.body["id"].as_str().unwrap().to_string();
    let https: Vec<reqwest::Client> = (0..SOURCE_ADDRESSES)
        .map(|i| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, 1 + i as u8]))
                .build()
                .unwrap()
        })
        .collect();

    let started = Instant::now();
    let run = async {
        let mut fans = Vec::new();
        // One after another: each join is sent a gap after the previous one was sent (or
        // when it is answered, if that takes longer).
        let mut next_join = Instant::now();
        for (fan, shop) in shop.iter().copied().enumerate() {
            tokio::time::sleep_until(next_join.into()).await;
            next_join += gaps[fan];
            let tok = keys.mint(&format!("est{fan:03}"), false, 3_600);
            let joined = c.send("POST", &format!("/v1/events/{event}/queue"), Some(&tok), None, &[]).await;
            let joined_at = Instant::now();
            let joined_after = joined_at - started;
            assert_eq!(joined.status, 200, "{}", joined.body);
            let body = joined.body;
            let (http, base, event) = (https[fan % SOURCE_ADDRESSES].clone(), c.base.clone(), event.clone());
            fans.push(tokio::spawn(async move {
                let (admitted_at, pushed) = if body["status"] == "admitted" {
                    (joined_at, Vec::new())
                } else {
                    admitted_on_stream(&http, &base, &event, &tok).await
                };
                tokio::time::sleep(shop).await;
                let left = http
                    .delete(format!("{base}/v1/events/{event}/queue/me"))
                    .bearer_auth(&tok)
                    .send()
                    .await
                    .expect("leave sent");
                assert_eq!(left.status(), 204, "leave");
                let range = body["estimated_wait_range"]
                    .as_array()
                    .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()));
                FanRecord {
                    fan,
                    ahead: body["ahead"].as_u64().unwrap(),
                    joined: joined_after,
                    pushed,
                    estimate_s: body["estimated_wait_seconds"].as_f64().unwrap(),
                    range_s: range,
                    waited: admitted_at.saturating_duration_since(joined_at),
                }
            }));
        }
        let mut records = Vec::new();
        for f in fans {
            records.push(f.await.unwrap());
        }
        records
    };
    let records = tokio::time::timeout(ESTIMATE_TEST_MAX, run).await.expect("the estimate test ends in time");
    eprintln!("queue estimates: {} fans done in {} ms", records.len(), started.elapsed().as_millis());

    let mut errors = Vec::new();
    let (mut waiting, mut inside) = (0, 0);
    for r in &records {
        let waited = r.waited.as_secs_f64();
        let in_range = r.range_s.is_some_and(|(low, high)| low <= waited && waited <= high);
        eprintln!(
            "  fan {:2} joined at {:4} ms, ahead {:2}: estimate {:>4} s, range {:?}, waited {:.2} s{}",
            r.fan,
            r.joined.as_millis(),
            r.ahead,
            r.estimate_s,
            r.range_s,
            waited,
            if in_range { "" } else { "  (outside the range)" }
        );
        if r.estimate_s == 0.0 && r.waited < Duration::from_millis(100) {
            continue; // admitted at join: nothing was estimated
        }
        waiting += 1;
        inside += usize::from(in_range);
        if r.waited >= LONG_WAIT {
            errors.push((r.estimate_s - waited).abs() / waited);
        }
    }
    assert!(errors.len() >= 5, "too few fans waited {LONG_WAIT:?} to judge: {}", errors.len());
    // The stream pushes a new place, or an estimate that moved by more than 10 %; nothing else.
    let (mut pushes, mut estimate_only) = (0, 0);
    for r in &records {
        pushes += r.pushed.len();
        for pair in r.pushed.windows(2) {
            assert!(
                pushed_for_a_reason(&pair[0], &pair[1]),
                "fan {}: pushed {} after {}",
                r.fan,
                pair[1],
                pair[0]
            );
            estimate_only += usize::from(pair[0]["position"] == pair[1]["position"]);
        }
    }
    eprintln!(
        "queue estimates: {pushes} answers pushed on the streams, {estimate_only} for the estimate alone"
    );
    let median_error = median(errors.clone());
    let share_inside = inside as f64 / waiting as f64;
    eprintln!(
        "queue estimates: median relative error {:.1} % over {} fans who waited >= {LONG_WAIT:?}; \
         {inside}/{waiting} waits inside the range given at join ({:.0} %)",
        median_error * 100.0,
        errors.len(),
        share_inside * 100.0
    );
    assert!(median_error <= 0.20, "median relative error {:.1} % > 20 %", median_error * 100.0);
    assert!(
        share_inside >= 0.80,
        "only {:.0} % of waits inside the range given at join",
        share_inside * 100.0
    );
    assert!(started.elapsed() < ESTIMATE_TEST_MAX);
}
