//! Live seats over real processes: a watcher's SSE stream on one node sees a reserve made
//! through another within 1 s; `Last-Event-ID` resumes with exactly the missed changes; an
//! expiry shows up live; the long poll answers on change and on timeout.

mod common;

use std::time::{Duration, Instant};

use common::{small_event, token, Client, Cluster};
use serde_json::{json, Value};

/// A change must reach a watcher within this long (the goal is 1 s; the test allows a
/// little more for a loaded CI machine and prints what it measured).
const SEEN_WITHIN: Duration = Duration::from_millis(1_500);

/// One server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: Option<u64>,
    data: Value,
}

/// A seat stream read frame by frame.
struct Watcher {
    response: reqwest::Response,
    buffer: String,
}

impl Watcher {
    async fn open(c: &Client, event: &str, last_event_id: Option<u64>) -> Watcher {
        let mut req = c.http.get(format!("{}/v1/events/{event}/tickets/stream", c.base));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = req.send().await.expect("stream opens");
        if response.status() != 200 {
            panic!("stream answered {}: {}", response.status(), response.text().await.unwrap_or_default());
        }
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Watcher { response, buffer: String::new() }
    }

    /// The next event (comments skipped), or None after `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(Sse { event, id, data: serde_json::from_str(&data).expect("json data") });
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next `change` event naming `ticket`, with its status.
    async fn until_change(&mut self, ticket: &str, limit: Duration) -> Option<(Sse, String)> {
        let deadline = Instant::now() + limit;
        while let Some(ev) = self.next(deadline.saturating_duration_since(Instant::now())).await {
            if ev.event == "change" {
                if let Some(t) = ev.data["tickets"].as_array().unwrap().iter().find(|t| t["id"] == ticket) {
                    let status = t["status"].as_str().unwrap().to_string();
                    return Some((ev.clone(), status));
                }
            }
        }
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seat_changes_stream_live_across_nodes_and_resume_exactly() {
    let cluster = Cluster::start(3).await;
    let event = small_event(&cluster.client(1), 1, 8).await;
    let (b, c) = (cluster.client(2), cluster.client(3));
    let alice = token("alice", false);

    // A watcher on node 2 gets the snapshot first.
    let mut watcher = Watcher::open(&b, &event, None).await;
    let snapshot = watcher.next(Duration::from_secs(5)).await.expect("a snapshot");
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.data["tickets"].as_array().unwrap().len(), 40);
    assert_eq!(snapshot.id, snapshot.data["version"].as_u64());

    // A reserve through node 3 reaches it within a second.
    let started = Instant::now();
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-1"]})).await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let (change, status) =
        watcher.until_change("A-1-1", Duration::from_secs(5)).await.expect("the reserve is seen");
    let seen = started.elapsed();
    eprintln!("live seats: a reserve through node 3 reached a watcher on node 2 in {} ms", seen.as_millis());
    assert_eq!(status, "held");
    assert!(seen <= SEEN_WITHIN, "seen after {seen:?}");

    // The hold lasts 1 s: its expiry shows up live, driven by the leader's Expire.
    let expires_at = time::OffsetDateTime::parse(
        hold.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let (_, status) =
        watcher.until_change("A-1-1", Duration::from_secs(5)).await.expect("the expiry is seen");
    let late = time::OffsetDateTime::now_utc() - expires_at;
    eprintln!("live seats: the expiry reached the watcher {} ms after expires_at", late.whole_milliseconds());
    assert_eq!(status, "available");
    assert!(late.whole_milliseconds() <= SEEN_WITHIN.as_millis() as i128, "expiry seen {late} late");

    // Resume: the watcher goes away after `change.id`; two reserves happen; reconnecting
    // with Last-Event-ID gets exactly those two changes, in order, and no snapshot.
    let last_id = change.id.expect("changes carry ids");
    drop(watcher);
    let mut missed = Vec::new();
    for seat in ["A-2-1", "A-2-2"] {
        let r = c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": [seat]})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        missed.push(seat);
    }
    // Let node 2's replica apply them before it is asked.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The expiry above happened after `last_id` too: skip it by resuming from its id.
    let mut resumed = Watcher::open(&b, &event, Some(last_id)).await;
    let mut seen_tickets = Vec::new();
    // (Holds here last 1 s, so the two new ones expire soon after: read only what was missed.)
    while seen_tickets.len() < 3 {
        let Some(ev) = resumed.next(Duration::from_secs(3)).await else { break };
        assert_eq!(ev.event, "change", "a resume within the window sends no snapshot: {ev:?}");
        assert!(ev.id.unwrap() > last_id);
        for t in ev.data["tickets"].as_array().unwrap() {
            seen_tickets
                .push((t["id"].as_str().unwrap().to_string(), t["status"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(
        seen_tickets,
        vec![
            ("A-1-1".to_string(), "available".to_string()),
            ("A-2-1".to_string(), "held".to_string()),
            ("A-2-2".to_string(), "held".to_string()),
        ],
        "exactly the missed changes, in log order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_answers_on_change_and_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 8).await;
    // The version is the group's applied log index: entries that change no ticket (a new
    // group's election settling on a slow machine) move it too. Start from a settled one.
    let mut version = 0;
    for _ in 0..40 {
        let v = c.get(&format!("/v1/events/{event}/tickets"), None).await.body["version"].as_u64().unwrap();
        if v == version {
            break;
        }
        version = v;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // No change: the poll answers at its wait with the same version.
    let started = Instant::now();
    let idle = c.get(&format!("/v1/events/{event}/tickets?since={version}&wait=1"), None).await;
    let waited = started.elapsed();
    assert_eq!(idle.status, 200);
    assert_eq!(idle.body["version"].as_u64(), Some(version));
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "waited {waited:?}");

    // A change during the poll answers it at once.
    let poll = {
        let (c, event) = (c.clone(), event.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let a = c.get(&format!("/v1/events/{event}/tickets?since={version}&wait=30"), None).await;
            (a, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c
        .post(
            "/v1/booking/reserve",
            &token("bob", false),
            json!({"event_id": event, "ticket_ids": ["A-1-3"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    let (answer, took) = poll.await.unwrap();
    assert!(answer.body["version"].as_u64().unwrap() > version);
    assert!(took < Duration::from_secs(5), "the poll answered after {took:?}");
    let held =
        answer.body["tickets"].as_array().unwrap().iter().find(|t| t["id"] == "A-1-3").unwrap().clone();
    assert_eq!(held["status"], "held");
    let bad = c.get(&format!("/v1/events/{event}/tickets?since={version}&wait=61"), None).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_a_replica_relays_the_stream() {
    let mut cluster = Cluster::start(4).await;
    let event = small_event(&cluster.client(1), 600, 8).await;
    let view = cluster.view(1).await;
    let replicas = common::placement(&view)[&event].clone();
    assert_eq!(replicas.len(), 3);
    let outsider =
        cluster.ids().into_iter().find(|id| !replicas.contains(id)).expect("a node without a replica");
    let inside = replicas[0];
    let mut watcher = Watcher::open(&cluster.client(outsider), &event, None).await;
    let snapshot = watcher.next(Duration::from_secs(5)).await.expect("a relayed snapshot");
    assert_eq!(snapshot.event, "snapshot");
    let started = Instant::now();
    let r = cluster
        .client(inside)
        .post(
            "/v1/booking/reserve",
            &token("carol", false),
            json!({"event_id": event, "ticket_ids": ["A-1-9"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (_, status) =
        watcher.until_change("A-1-9", Duration::from_secs(5)).await.expect("the relayed change");
    eprintln!(
        "live seats: node {outsider} (no replica) relayed the change in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(status, "held");

    // A long poll through the outsider outlives the ordinary 20 s forwarding bound.
    let c = cluster.client(outsider);
    let version = c.get(&format!("/v1/events/{event}/tickets"), None).await.body["version"].as_u64().unwrap();
    let started = Instant::now();
    let idle = c.get(&format!("/v1/events/{event}/tickets?since={version}&wait=21"), None).await;
    assert_eq!(idle.status, 200, "{}", idle.body);
    assert!(started.elapsed() >= Duration::from_secs(20), "answered after {:?}", started.elapsed());
    cluster.kill(outsider);
}
