//! The `queue` workload: every event has its waiting queue on (few admitted at once, a
//! long admission). A client joins the current event's queue, polls its place
//! (`GET …/queue/me`, a linearizable read) every 100–400 ms, and once admitted reads the
//! map, reserves an available seat and confirms it — the completed booking ends its
//! admission. Some waiting clients leave (3 % per poll), and some try to reserve while
//! still waiting (5 % per poll: must be refused 403). Queue calls go to `queue.jsonl`
//! ([`QueueCall`]); reserves and confirms go to the ticket history as usual. The checks are
//! `jepsen::checker::queue`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use super::{available_in, now_ms, Client, Request};
use crate::checker::queue::{QueueCall, QueueFn, QueueState};
use crate::history::OpKind;

/// Admitted at once, per event.
pub const MAX_ADMITTED: u32 = 2;
/// Admission length: longer than a run's tail (deadline → final polls), so a place that
/// vanishes before it could have run out is a lost place (`queue_durable`).
pub const ADMISSION_SECONDS: u64 = 120;

#[derive(Default)]
pub struct QueueRecorder {
    calls: Mutex<Vec<QueueCall>>,
}

impl QueueRecorder {
    pub fn push(&self, mut call: QueueCall) {
        let mut calls = self.calls.lock().unwrap();
        call.id = calls.len() as u64;
        calls.push(call);
    }
    pub fn snapshot(&self) -> Vec<QueueCall> {
        self.calls.lock().unwrap().clone()
    }
    /// `(event, user)` pairs whose last sighting was waiting or admitted: the final polls.
    pub fn still_queued(&self) -> Vec<(String, String)> {
        let calls = self.calls.lock().unwrap();
        let mut last: std::collections::BTreeMap<(String, String), &QueueCall> = Default::default();
        for c in calls.iter().filter(|c| c.outcome == "ok" || c.f == QueueFn::Leave) {
            last.insert((c.event.clone(), c.user.clone()), c);
        }
        last.into_iter().filter(|(_, c)| c.f != QueueFn::Leave && c.state.is_some()).map(|(k, _)| k).collect()
    }
}

/// Send one queue request and record it. `process` is the client's (or the final reader's).
#[allow(clippy::too_many_arguments)]
pub async fn queue_call(
    http: &reqwest::Client,
    rec: &QueueRecorder,
    base: &str,
    token: &str,
    process: u64,
    user: &str,
    node: u64,
    event: &str,
    f: QueueFn,
    timeout: Duration,
) -> QueueCall {
    let url = match f {
        QueueFn::Join => format!("{base}/v1/events/{event}/queue"),
        QueueFn::Poll | QueueFn::Leave => format!("{base}/v1/events/{event}/queue/me"),
    };
    let method = match f {
        QueueFn::Join => reqwest::Method::POST,
        QueueFn::Poll => reqwest::Method::GET,
        QueueFn::Leave => reqwest::Method::DELETE,
    };
    let invoke_ms = now_ms();
    let sent = http.request(method, url).bearer_auth(token).timeout(timeout).send().await;
    let (outcome, http_status, body) = match sent {
        Err(e) if e.is_connect() => ("fail", None, Value::Null),
        Err(_) => ("info", None, Value::Null),
        Ok(r) => {
            let status = r.status().as_u16();
            match tokio::time::timeout(timeout, r.text()).await {
                Ok(Ok(t)) => {
                    let body = serde_json::from_str(&t).unwrap_or(Value::Null);
                    let outcome = match status {
                        200..=299 => "ok",
                        500.. if f != QueueFn::Poll => "info",
                        _ => "fail",
                    };
                    (outcome, Some(status), body)
                }
                _ => ("info", Some(status), Value::Null),
            }
        }
    };
    let state = match body["status"].as_str() {
        Some("waiting") if outcome == "ok" => Some(QueueState::Waiting),
        Some("admitted") if outcome == "ok" => Some(QueueState::Admitted),
        _ => None,
    };
    let call = QueueCall {
        id: 0,
        process,
        user: user.to_string(),
        node,
        event: event.to_string(),
        f,
        outcome: outcome.to_string(),
        state,
        position: body["position"].as_u64(),
        http_status,
        invoke_ms,
        complete_ms: now_ms().max(invoke_ms),
    };
    rec.push(call.clone());
    call
}

impl Client {
    async fn queue(&mut self, node: u64, event: &str, f: QueueFn) -> QueueCall {
        let w = self.w.clone();
        let base = &w.nodes.base(node);
        let c = queue_call(
            &self.http,
            &w.queue,
            base,
            &self.token,
            self.process,
            &self.user,
            node,
            event,
            f,
            w.op_timeout,
        )
        .await;
        if c.outcome == "info" {
            self.process += w.clients as u64;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        c
    }
}

/// Admitted: read the map, reserve an available seat, confirm. True if it ended the
/// admission (booked, or left because nothing was left to buy).
async fn buy(c: &mut Client, event: &str) -> bool {
    for _ in 0..3 {
        let node = c.pick_node();
        let Some(map) = c.seat_map(node, event).await else { continue };
        let free = available_in(&map);
        if free.is_empty() {
            break;
        }
        let ticket = free[c.rng.random_range(0..free.len())].clone();
        let node = c.pick_node();
        let done = c.call(node, Request::reserve(event, &ticket)).await;
        let Some(hold) = done.hold else { continue };
        let node = c.pick_node();
        let done = c.call(node, Request::confirm(&hold)).await;
        return done.kind != OpKind::Fail;
    }
    let node = c.pick_node();
    c.queue(node, event, QueueFn::Leave).await;
    true
}

pub async fn run(mut c: Client) {
    let mut finished_in: Option<usize> = None;
    while !c.w.over() {
        let index = c.w.event_index_at(c.w.started.elapsed());
        if finished_in == Some(index) {
            tokio::time::sleep_until(c.w.event_end(index).min(c.w.deadline).into()).await;
            continue;
        }
        c.think(10, 300).await;
        let ev = c.w.events[index].clone();
        let window_end: Instant = c.w.event_end(index).min(c.w.deadline);
        // Join (again after an unknown outcome: joining twice returns the same place).
        let mut joined = false;
        for _ in 0..3 {
            let node = c.pick_node();
            let j = c.queue(node, &ev.id, QueueFn::Join).await;
            if j.outcome == "ok" {
                joined = true;
                break;
            }
            if j.outcome == "fail" || c.w.over() {
                break;
            }
        }
        if !joined {
            c.think(200, 500).await;
            continue;
        }
        finished_in = Some(index);
        while Instant::now() < window_end {
            c.think(100, 400).await;
            let roll = c.rng.random_range(0..100);
            let node = c.pick_node();
            if roll < 5 {
                // Try to jump the queue: the store must refuse (403) unless admitted.
                let ticket = ev.tickets[c.rng.random_range(0..ev.tickets.len())].clone();
                if let Some(hold) = c.call(node, Request::reserve(&ev.id, &ticket)).await.hold {
                    let node = c.pick_node();
                    c.call(node, Request::release(&hold)).await;
                }
                continue;
            }
            let p = c.queue(node, &ev.id, QueueFn::Poll).await;
            match (p.outcome.as_str(), p.state) {
                ("ok", Some(QueueState::Admitted)) if buy(&mut c, &ev.id).await => break,
                ("ok", Some(QueueState::Waiting)) if roll < 8 => {
                    let node = c.pick_node();
                    c.queue(node, &ev.id, QueueFn::Leave).await;
                    break;
                }
                ("fail", _) if p.http_status == Some(404) => break,
                _ => {}
            }
        }
    }
}
