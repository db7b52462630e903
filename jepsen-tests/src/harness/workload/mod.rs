//! Workloads: what the clients do during a run, and the machinery they share — the
//! [`Recorder`] of the history, and [`Client::call`], which sends one request, records it
//! as invoke then ok / fail / info, and backs off after a 503 or an unknown outcome.
//!
//! Outcome mapping (every workload): 2xx → ok; 4xx → fail with the code; 5xx on a write
//! and a timeout or an answer cut off → info (unknown); a connection never made (refused:
//! the node is down) → fail `connection_refused` (http_status 0), since the request was
//! never sent. After a 503 (its `Retry-After`, at most 2 s) or an unknown outcome the
//! client waits 1 s. After an `info` the process id changes (as Jepsen does: the old op
//! may still be in flight); the user stays.
//!
//! Seat-map reads (`GET /v1/events/{id}/tickets`) are *browse* reads, served from
//! whichever replica answers (possibly a little stale), so they go to `reads.jsonl`, not
//! into the checked history, unless `--check-browse-reads`.
//!
//! Events rotate every `event_seconds`: tickets are keyed `<event_id>/<ticket_id>`, so
//! per-ticket histories stay short (the WGL search is exponential) and the workload goes
//! on after an event sells out.

pub mod contention;
pub mod expiry_edge;
pub mod flash_sale;
pub mod idempotent;
pub mod many_events;
pub mod queue;
pub mod refund;
pub mod waitlist;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use super::members::Directory;
use crate::history::{Op, OpFn, OpKind, OpValue, TicketStatus};
use queue::QueueRecorder;
use waitlist::WaitRecorder;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The workloads, by their command-line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A few seats, many clients: reserve / confirm / release / read.
    Contention,
    /// Capacity N, 5–10×N buyers who each want one seat: read the map, reserve an
    /// available seat, confirm; the event sells out, the next one goes on sale.
    FlashSale,
    /// Reserve and confirm with an `Idempotency-Key`, re-sent (same key, same body, any
    /// node) after every unknown outcome.
    Idempotent,
    /// Confirms aimed at the last moments of a hold, and just after it.
    ExpiryEdge,
    /// The waiting queue: join, poll until admitted, buy, or leave; some try to skip it.
    Queue,
    /// Hundreds of events, each op on a random one: most are asleep when touched.
    ManyEvents,
    /// Reserve, confirm, and cancel (refund) some bookings: seats are sold again.
    Refund,
    /// A sold-out section with a waiting list: holders return seats, waiters are offered
    /// them in join order and confirm, release or let the offers lapse.
    Waitlist,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Contention,
        Kind::FlashSale,
        Kind::Idempotent,
        Kind::ExpiryEdge,
        Kind::Queue,
        Kind::ManyEvents,
        Kind::Refund,
        Kind::Waitlist,
    ];

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Contention => "contention",
            Kind::FlashSale => "flash-sale",
            Kind::Idempotent => "idempotent",
            Kind::ExpiryEdge => "expiry-edge",
            Kind::Queue => "queue",
            Kind::ManyEvents => "many-events",
            Kind::Refund => "refund",
            Kind::Waitlist => "waitlist",
        }
    }
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
    /// Record a completion and fill its latency from its invoke.
    fn complete(&self, mut op: Op, invoked: &Op) -> Op {
        let mut ops = self.ops.lock().unwrap();
        let last = ops.last().map(|o| o.time_ms).unwrap_or(0);
        op.index = ops.len() as u64;
        op.time_ms = now_ms().max(last);
        op.latency_ms = Some(op.time_ms - invoked.time_ms);
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
    pub kind: Kind,
    pub events: Vec<EventUnderTest>,
    pub event_seconds: u64,
    /// The members clients send to, and every node's base URL (membership may change).
    pub nodes: Arc<Directory>,
    pub clients: usize,
    pub hold_ms: u64,
    pub op_timeout: Duration,
    pub history: Recorder,
    pub reads: Recorder,
    pub queue: QueueRecorder,
    pub waitlist: WaitRecorder,
    pub check_browse_reads: bool,
    pub started: Instant,
    pub deadline: Instant,
}

impl Workload {
    pub fn current_event(&self) -> &EventUnderTest {
        &self.events[self.event_index_at(self.started.elapsed())]
    }
    pub fn event_index_at(&self, elapsed: Duration) -> usize {
        ((elapsed.as_secs() / self.event_seconds.max(1)) as usize).min(self.events.len() - 1)
    }
    /// When the event at `index` stops being the current one.
    pub fn event_end(&self, index: usize) -> Instant {
        self.started + Duration::from_secs(self.event_seconds.max(1) * (index as u64 + 1))
    }
    pub fn over(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// Run one client of the workload's kind until the deadline. `seed` fixes its choices.
pub async fn run_client(w: Arc<Workload>, client: usize, user: String, token: String, seed: u64) {
    let c = Client::new(w.clone(), client, user, token, seed);
    match w.kind {
        Kind::Contention => contention::run(c).await,
        Kind::FlashSale => flash_sale::run(c).await,
        Kind::Idempotent => idempotent::run(c).await,
        Kind::ExpiryEdge => expiry_edge::run(c).await,
        Kind::Queue => queue::run(c).await,
        Kind::ManyEvents => many_events::run(c).await,
        Kind::Refund => refund::run(c).await,
        Kind::Waitlist => waitlist::run(c).await,
    }
}

/// A hold a client got and may confirm or release.
#[derive(Clone, Debug)]
pub struct HoldRef {
    pub hold_id: String,
    pub event: String,
    pub ticket: String,
    pub expires_at_ms: u64,
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

/// One request to make: what it is in the history, and what goes on the wire.
pub struct Request {
    pub f: OpFn,
    pub ticket: String,
    pub hold_id: Option<String>,
    /// Cancel: the booking.
    pub booking_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub method: reqwest::Method,
    pub path: String,
    pub body: Option<Value>,
}

impl Request {
    pub fn reserve(event: &str, ticket: &str) -> Request {
        Request {
            f: OpFn::Reserve,
            ticket: ticket_key(event, ticket),
            hold_id: None,
            booking_id: None,
            idempotency_key: None,
            method: reqwest::Method::POST,
            path: "/v1/booking/reserve".into(),
            body: Some(json!({"event_id": event, "ticket_ids": [ticket]})),
        }
    }
    pub fn confirm(h: &HoldRef) -> Request {
        Request {
            f: OpFn::Confirm,
            ticket: ticket_key(&h.event, &h.ticket),
            hold_id: Some(h.hold_id.clone()),
            booking_id: None,
            idempotency_key: None,
            method: reqwest::Method::POST,
            path: "/v1/booking/confirm".into(),
            body: Some(json!({"hold_id": h.hold_id, "payment": {"token": "tok_visa"}})),
        }
    }
    pub fn release(h: &HoldRef) -> Request {
        Request {
            f: OpFn::Release,
            ticket: ticket_key(&h.event, &h.ticket),
            hold_id: Some(h.hold_id.clone()),
            booking_id: None,
            idempotency_key: None,
            method: reqwest::Method::POST,
            path: "/v1/booking/release".into(),
            body: Some(json!({"hold_id": h.hold_id})),
        }
    }
    /// A browse read of one ticket's status (the whole seat map is fetched).
    pub fn read(event: &str, ticket: &str) -> Request {
        Request {
            f: OpFn::Read,
            ticket: ticket_key(event, ticket),
            hold_id: None,
            booking_id: None,
            idempotency_key: None,
            method: reqwest::Method::GET,
            path: format!("/v1/events/{event}/tickets"),
            body: None,
        }
    }
    /// The buyer cancels their booking of one ticket (and is refunded).
    pub fn cancel(event: &str, ticket: &str, booking_id: &str) -> Request {
        Request {
            f: OpFn::Cancel,
            ticket: ticket_key(event, ticket),
            hold_id: None,
            booking_id: Some(booking_id.to_string()),
            idempotency_key: None,
            method: reqwest::Method::POST,
            path: format!("/v1/bookings/{booking_id}/cancel"),
            body: None,
        }
    }
    pub fn with_key(mut self, key: String) -> Request {
        self.idempotency_key = Some(key);
        self
    }
}

/// What a call came to.
pub struct Done {
    pub kind: OpKind,
    pub value: Option<OpValue>,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    pub body: Value,
    /// Reserve ok: the hold.
    pub hold: Option<HoldRef>,
}

impl Done {
    pub fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }
}

pub struct Client {
    pub w: Arc<Workload>,
    pub rng: StdRng,
    pub http: reqwest::Client,
    pub process: u64,
    pub client: usize,
    pub user: String,
    pub token: String,
}

pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn error_value(status: u16, body: &Value) -> OpValue {
    OpValue::Error { http_status: status, code: body["code"].as_str().unwrap_or("unknown").to_string() }
}

impl Client {
    pub fn new(w: Arc<Workload>, client: usize, user: String, token: String, seed: u64) -> Client {
        Client {
            w,
            rng: StdRng::seed_from_u64(seed),
            http: reqwest::Client::builder().build().expect("http client"),
            process: client as u64,
            client,
            user,
            token,
        }
    }

    /// A random member's id.
    pub fn pick_node(&mut self) -> u64 {
        self.w.nodes.pick(&mut self.rng)
    }

    /// Mostly (70 %) "this client's" seat, else any: most reserves succeed, some collide.
    pub fn mostly_own_seat(&mut self, tickets: &[String]) -> String {
        if self.rng.random_range(0..100) < 70 {
            tickets[self.client % tickets.len()].clone()
        } else {
            tickets[self.rng.random_range(0..tickets.len())].clone()
        }
    }

    /// Sleep a random think time in `lo..hi` ms.
    pub async fn think(&mut self, lo: u64, hi: u64) {
        let ms = self.rng.random_range(lo..hi.max(lo + 1));
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    async fn send(
        &self,
        node: u64,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Reply {
        let url = format!("{}{path}", self.w.nodes.base(node));
        let mut req = self.http.request(method, url).bearer_auth(&self.token).timeout(self.w.op_timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
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
        match tokio::time::timeout(self.w.op_timeout, resp.text()).await {
            Ok(Ok(text)) => Reply::Answer {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                retry_after_s,
            },
            _ => Reply::NoAnswer,
        }
    }

    /// Send `req` to `node`, record it (invoke, then ok / fail / info), back off after a
    /// 503 or an unknown outcome.
    pub async fn call(&mut self, node: u64, req: Request) -> Done {
        let invoke = Op {
            index: 0,
            process: self.process,
            node,
            kind: OpKind::Invoke,
            f: req.f,
            ticket: req.ticket.clone(),
            hold_id: req.hold_id.clone(),
            user: Some(self.user.clone()),
            booking_id: req.booking_id.clone(),
            idempotency_key: req.idempotency_key.clone(),
            value: None,
            time_ms: 0,
            latency_ms: None,
        };
        let f = req.f;
        let w = self.w.clone();
        let rec = if f == OpFn::Read && !w.check_browse_reads { &w.reads } else { &w.history };
        let invoked = rec.record(invoke.clone());
        let reply =
            self.send(node, req.method, &req.path, req.body.as_ref(), req.idempotency_key.as_deref()).await;
        let mut backoff = None;
        let mut hold = None;
        let (kind, value, status, body) = match reply {
            Reply::NoAnswer => {
                backoff = Some(BACKOFF);
                (OpKind::Info, None, None, Value::Null)
            }
            Reply::NotSent => {
                backoff = Some(BACKOFF);
                let v = OpValue::Error { http_status: 0, code: "connection_refused".into() };
                (OpKind::Fail, Some(v), None, Value::Null)
            }
            Reply::Answer { status: 503, body, retry_after_s } => {
                backoff =
                    Some(retry_after_s.map_or(BACKOFF, |s| Duration::from_secs(s.min(RETRY_AFTER_MAX_S))));
                // `overloaded`: refused before proposing (the group's queue was full), so it
                // did not happen; any other 503 on a write may have.
                let kind =
                    if f == OpFn::Read || body["code"] == "overloaded" { OpKind::Fail } else { OpKind::Info };
                (kind, Some(error_value(503, &body)), Some(503), body)
            }
            Reply::Answer { status, body, .. } => {
                let (kind, value) = match (f, status) {
                    (OpFn::Reserve, 201) => {
                        let hold_id = body["hold_id"].as_str().unwrap_or_default().to_string();
                        match body["expires_at"].as_str().and_then(parse_rfc3339_ms) {
                            Some(expires_at_ms) if !hold_id.is_empty() => {
                                let (event, ticket) = req.ticket.split_once('/').unwrap();
                                hold = Some(HoldRef {
                                    hold_id: hold_id.clone(),
                                    event: event.into(),
                                    ticket: ticket.into(),
                                    expires_at_ms,
                                });
                                (OpKind::Ok, Some(OpValue::Hold { hold_id, expires_at_ms }))
                            }
                            _ => {
                                (OpKind::Info, Some(error_value(status, &json!({"code": "unparsable_201"}))))
                            }
                        }
                    }
                    (OpFn::Confirm, 200 | 201) => match body["booking_id"].as_str() {
                        Some(b) => (OpKind::Ok, Some(OpValue::Booking { booking_id: b.to_string() })),
                        None => (OpKind::Info, Some(error_value(status, &json!({"code": "unparsable_ok"})))),
                    },
                    (OpFn::Release, 200) => (OpKind::Ok, None),
                    (OpFn::Cancel, 200) => match body["status"].as_str() {
                        Some(st @ ("refunded" | "refund_pending")) => (
                            OpKind::Ok,
                            Some(OpValue::Refund {
                                status: st.to_string(),
                                refund_ref: body["refund_ref"].as_str().map(str::to_string),
                            }),
                        ),
                        _ => (OpKind::Info, Some(error_value(status, &json!({"code": "unparsable_ok"})))),
                    },
                    (OpFn::Read, 200) => {
                        let t = req.ticket.split_once('/').unwrap().1;
                        match seat_status(&body, t) {
                            Some(st) => (OpKind::Ok, Some(OpValue::Status { status: st })),
                            None => (
                                OpKind::Fail,
                                Some(error_value(200, &json!({"code": "ticket_missing_in_map"}))),
                            ),
                        }
                    }
                    (OpFn::Read, s) => (OpKind::Fail, Some(error_value(s, &body))),
                    (_, s) if s >= 500 => (OpKind::Info, Some(error_value(s, &body))),
                    (_, s) => (OpKind::Fail, Some(error_value(s, &body))),
                };
                (kind, value, Some(status), body)
            }
        };
        let mut done = invoke;
        done.kind = kind;
        done.value = value.clone();
        rec.complete(done, &invoked);
        if kind == OpKind::Info {
            self.process += w.clients as u64;
        }
        if let Some(b) = backoff {
            tokio::time::sleep(b).await;
        }
        Done { kind, value, status, body, hold }
    }

    /// The seat map of `event` from `node` (a browse read, not recorded), if it answered.
    pub async fn seat_map(&self, node: u64, event: &str) -> Option<Value> {
        match self.send(node, reqwest::Method::GET, &format!("/v1/events/{event}/tickets"), None, None).await
        {
            Reply::Answer { status: 200, body, .. } => Some(body),
            _ => None,
        }
    }
}

/// One ticket's status in a seat map.
pub fn seat_status(map: &Value, ticket: &str) -> Option<TicketStatus> {
    map["tickets"].as_array().and_then(|ts| ts.iter().find(|x| x["id"] == ticket)).and_then(|x| {
        match x["status"].as_str() {
            Some("available") => Some(TicketStatus::Available),
            Some("held") => Some(TicketStatus::Held),
            Some("sold") => Some(TicketStatus::Sold),
            _ => None,
        }
    })
}

/// The tickets a seat map shows as available.
pub fn available_in(map: &Value) -> Vec<String> {
    map["tickets"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| t["status"] == "available")
                .filter_map(|t| t["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
