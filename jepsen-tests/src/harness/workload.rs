//! The `contention` workload: a few seats per event, many clients, each a distinct user
//! (JWT subject), doing reserve / confirm / release / read against random nodes, every op
//! recorded as invoke then ok / fail / info.
//!
//! - reserve `{event_id, ticket_ids: [t]}`: 201 → ok `Hold`; 4xx → fail with the code;
//!   5xx → info with the code (the model treats a write's 5xx as unknown); timeout or
//!   an answer cut off → info; a connection never made (refused: the node is down) → fail
//!   `connection_refused` (http_status 0), since the request was never sent. After a 503
//!   (its `Retry-After`, at most 2 s) or an unknown outcome the client backs off 1 s.
//! - confirm (`tok_visa`) and release of a hold the client got: same mapping.
//! - read: `GET /v1/events/{id}/tickets`, one ticket's status. This is a *browse* read,
//!   served from the local state of whichever replica answers (docs/cluster.md: "possibly a
//!   little stale"), so it is not a linearizable read and by default goes to `reads.jsonl`,
//!   not into the checked history (`--check-browse-reads` puts it there).
//!
//! After an `info` the process id changes (as Jepsen does: the old op may still be in
//! flight); the user stays.
//!
//! Events rotate every `event_seconds`: tickets are keyed `<event_id>/<ticket_id>`, so the
//! per-ticket histories stay short (the WGL search is exponential) and contention goes on
//! after an event sells out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::history::{Op, OpFn, OpKind, OpValue, TicketStatus};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The history being written: indexes in recording order, client wall-clock times that
/// never go backwards.
#[derive(Default)]
pub struct Recorder {
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    pub fn record(&self, mut op: Op) -> Op {
        let mut ops = self.ops.lock().unwrap();
        let last = ops.last().map(|o| o.time_ms).unwrap_or(0);
        op.index = ops.len() as u64;
        op.time_ms = now_ms().max(last);
        ops.push(op.clone());
        op
    }
    pub fn snapshot(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.ops.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug)]
pub struct EventUnderTest {
    pub id: String,
    pub tickets: Vec<String>,
}

pub fn ticket_key(event: &str, ticket: &str) -> String {
    format!("{event}/{ticket}")
}

pub struct Workload {
    pub events: Vec<EventUnderTest>,
    pub event_seconds: u64,
    /// Node id -> base URL (index id-1).
    pub bases: Vec<String>,
    pub clients: usize,
    pub op_timeout: Duration,
    pub history: Recorder,
    pub reads: Recorder,
    pub check_browse_reads: bool,
    pub started: Instant,
    pub deadline: Instant,
}

impl Workload {
    pub fn current_event(&self) -> &EventUnderTest {
        let i = (self.started.elapsed().as_secs() / self.event_seconds.max(1)) as usize;
        &self.events[i.min(self.events.len() - 1)]
    }
    pub fn event_index_at(&self, elapsed: Duration) -> usize {
        ((elapsed.as_secs() / self.event_seconds.max(1)) as usize).min(self.events.len() - 1)
    }
}

/// Holds a client remembers (to confirm or release); older ones are forgotten.
const HOLDS_KEPT_MAX: usize = 4;

struct HoldRef {
    hold_id: String,
    event: String,
    ticket: String,
}

enum Reply {
    Answer {
        status: u16,
        body: Value,
        retry_after_s: Option<u64>,
    },
    /// The connection was never made (refused, connect timeout): the request was not sent,
    /// so it definitely did not happen.
    NotSent,
    /// Sent, no (complete) answer: unknown.
    NoAnswer,
}

/// After a 503 (honouring `Retry-After`, capped) or an unknown outcome, the client waits
/// this long before its next op, as a well-behaved client would; it also keeps the
/// number of unknown outcomes per ticket (what makes the WGL search expensive) bounded.
const BACKOFF: Duration = Duration::from_millis(1000);
const RETRY_AFTER_MAX_S: u64 = 2;

async fn send(
    http: &reqwest::Client,
    url: String,
    method: reqwest::Method,
    token: &str,
    body: Option<Value>,
    timeout: Duration,
) -> Reply {
    let mut req = http.request(method, url).bearer_auth(token).timeout(timeout);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Reply::NotSent,
        Err(_) => return Reply::NoAnswer,
    };
    let status = resp.status().as_u16();
    let retry_after_s = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match tokio::time::timeout(timeout, resp.text()).await {
        Ok(Ok(text)) => Reply::Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            retry_after_s,
        },
        _ => Reply::NoAnswer,
    }
}

fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn error_value(status: u16, body: &Value) -> OpValue {
    OpValue::Error { http_status: status, code: body["code"].as_str().unwrap_or("unknown").to_string() }
}

/// One client: runs until the workload's deadline. `seed` fixes its choices.
pub async fn run_client(w: Arc<Workload>, client: usize, user: String, token: String, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let http = reqwest::Client::builder().build().expect("http client");
    let mut process = client as u64;
    let mut holds: Vec<HoldRef> = Vec::new();
    while Instant::now() < w.deadline {
        let think = rng.random_range(20..100);
        tokio::time::sleep(Duration::from_millis(think)).await;
        if Instant::now() >= w.deadline {
            break;
        }
        let node = rng.random_range(0..w.bases.len());
        let base = &w.bases[node];
        let node_id = node as u64 + 1;
        let roll = rng.random_range(0..100);
        let ev = w.current_event().clone();
        let mk = |f: OpFn, ticket: String, hold_id: Option<String>| Op {
            index: 0,
            process,
            node: node_id,
            kind: OpKind::Invoke,
            f,
            ticket,
            hold_id,
            user: Some(user.clone()),
            idempotency_key: None,
            value: None,
            time_ms: 0,
            latency_ms: None,
        };
        // Pick the op.
        let (invoke, url, method, body) = if !holds.is_empty() && roll < 4 {
            let h = holds.swap_remove(rng.random_range(0..holds.len()));
            let body = json!({"hold_id": h.hold_id, "payment": {"token": "tok_visa"}});
            (
                mk(OpFn::Confirm, ticket_key(&h.event, &h.ticket), Some(h.hold_id)),
                format!("{base}/v1/booking/confirm"),
                reqwest::Method::POST,
                Some(body),
            )
        } else if !holds.is_empty() && roll < 25 {
            let h = holds.swap_remove(rng.random_range(0..holds.len()));
            let body = json!({"hold_id": h.hold_id});
            (
                mk(OpFn::Release, ticket_key(&h.event, &h.ticket), Some(h.hold_id)),
                format!("{base}/v1/booking/release"),
                reqwest::Method::POST,
                Some(body),
            )
        } else if roll >= 75 {
            let t = ev.tickets[rng.random_range(0..ev.tickets.len())].clone();
            (
                mk(OpFn::Read, ticket_key(&ev.id, &t), None),
                format!("{base}/v1/events/{}/tickets", ev.id),
                reqwest::Method::GET,
                None,
            )
        } else {
            let t = ev.tickets[rng.random_range(0..ev.tickets.len())].clone();
            let body = json!({"event_id": ev.id, "ticket_ids": [t]});
            (
                mk(OpFn::Reserve, ticket_key(&ev.id, &t), None),
                format!("{base}/v1/booking/reserve"),
                reqwest::Method::POST,
                Some(body),
            )
        };
        let f = invoke.f;
        let rec = if f == OpFn::Read && !w.check_browse_reads { &w.reads } else { &w.history };
        let invoked = rec.record(invoke.clone());
        let reply = send(&http, url, method, &token, body, w.op_timeout).await;
        let mut done = invoke.clone();
        let mut backoff = None;
        let (kind, value) = match &reply {
            Reply::NoAnswer => {
                backoff = Some(BACKOFF);
                (OpKind::Info, None)
            }
            Reply::NotSent => {
                backoff = Some(BACKOFF);
                (OpKind::Fail, Some(OpValue::Error { http_status: 0, code: "connection_refused".into() }))
            }
            Reply::Answer { status, retry_after_s, .. } if *status == 503 => {
                backoff =
                    Some(retry_after_s.map_or(BACKOFF, |s| Duration::from_secs(s.min(RETRY_AFTER_MAX_S))));
                let body = match &reply {
                    Reply::Answer { body, .. } => body,
                    _ => unreachable!(),
                };
                (if f == OpFn::Read { OpKind::Fail } else { OpKind::Info }, Some(error_value(503, body)))
            }
            Reply::Answer { status, body, .. } => match (f, *status) {
                (OpFn::Reserve, 201) => {
                    let hold_id = body["hold_id"].as_str().unwrap_or_default().to_string();
                    let expires = body["expires_at"].as_str().and_then(parse_rfc3339_ms);
                    match expires {
                        Some(expires_at_ms) if !hold_id.is_empty() => {
                            let (event, ticket) = invoke.ticket.split_once('/').unwrap();
                            holds.push(HoldRef {
                                hold_id: hold_id.clone(),
                                event: event.into(),
                                ticket: ticket.into(),
                            });
                            if holds.len() > HOLDS_KEPT_MAX {
                                holds.remove(0);
                            }
                            (OpKind::Ok, Some(OpValue::Hold { hold_id, expires_at_ms }))
                        }
                        _ => (OpKind::Info, Some(error_value(*status, &json!({"code": "unparsable_201"})))),
                    }
                }
                (OpFn::Confirm, 200 | 201) => match body["booking_id"].as_str() {
                    Some(b) => (OpKind::Ok, Some(OpValue::Booking { booking_id: b.to_string() })),
                    None => (OpKind::Info, Some(error_value(*status, &json!({"code": "unparsable_ok"})))),
                },
                (OpFn::Release, 200) => (OpKind::Ok, None),
                (OpFn::Read, 200) => {
                    let http_status = *status;
                    let t = invoke.ticket.split_once('/').unwrap().1;
                    let status = body["tickets"]
                        .as_array()
                        .and_then(|ts| ts.iter().find(|x| x["id"] == t))
                        .and_then(|x| match x["status"].as_str() {
                            Some("available") => Some(TicketStatus::Available),
                            Some("held") => Some(TicketStatus::Held),
                            Some("sold") => Some(TicketStatus::Sold),
                            _ => None,
                        });
                    match status {
                        Some(status) => (OpKind::Ok, Some(OpValue::Status { status })),
                        None => (
                            OpKind::Fail,
                            Some(error_value(http_status, &json!({"code": "ticket_missing_in_map"}))),
                        ),
                    }
                }
                (OpFn::Read, s) => (OpKind::Fail, Some(error_value(s, body))),
                (_, s) if s >= 500 => (OpKind::Info, Some(error_value(s, body))),
                (_, s) => (OpKind::Fail, Some(error_value(s, body))),
            },
        };
        done.kind = kind;
        done.value = value;
        let done = rec.record(done);
        let _ = done.time_ms.saturating_sub(invoked.time_ms);
        // Fill latency: recorded after the fact (the recorder stamps the time).
        {
            let mut ops = rec.ops.lock().unwrap();
            if let Some(last) = ops.iter_mut().rev().find(|o| o.index == done.index) {
                last.latency_ms = Some(done.time_ms - invoked.time_ms);
            }
        }
        if kind == OpKind::Info {
            process += w.clients as u64;
        }
        if let Some(b) = backoff {
            tokio::time::sleep(b).await;
        }
    }
}
