//! The `waitlist` workload: a sold-out general section with a waiting list. A third of the
//! clients are *holders*: they reserve an available seat (read from the seat map), keep it a
//! moment and release it, confirm it, or let it expire — so seats keep coming back. The
//! others are *waiters*: they join the current event's waiting list for one ticket of `GA`,
//! poll their entry (`GET …/waitlist/me`, a linearizable read) every 100–300 ms, and when
//! offered, confirm the offer's hold (half of them), release it (a quarter) or let it lapse
//! to the next entry; an entry that ended is joined again, until the waiter has bought one
//! ticket of that event.
//!
//! Waiting-list calls go to `waitlist.jsonl` ([`WaitCall`], checked by
//! `jepsen::checker::waitlist`: offers first come first served). Reserves, confirms and
//! releases — of holders' holds and of offers — go to the ticket history, where
//! `no_double_sale`, `bookings_durable` and `holds_exclusive` judge them. The per-ticket
//! model is not run on this workload: an offer is a hold the server makes with no reserve
//! in the history, which the model cannot see.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

use super::{available_in, now_ms, Client, HoldRef, Request};
use crate::checker::waitlist::{WaitCall, WaitFn, WaitState};
use crate::history::OpKind;

/// How long an offer is the entry's (the events' `waitlist_offer_seconds`): long beside a
/// poll's interval, so most offers are seen and answered.
pub const OFFER_SECONDS: u64 = 4;

#[derive(Default)]
pub struct WaitRecorder {
    calls: Mutex<Vec<WaitCall>>,
}

impl WaitRecorder {
    pub fn push(&self, mut call: WaitCall) {
        let mut calls = self.calls.lock().unwrap();
        call.id = calls.len() as u64;
        calls.push(call);
    }
    pub fn snapshot(&self) -> Vec<WaitCall> {
        self.calls.lock().unwrap().clone()
    }
}

/// An offer as a waiter sees it.
struct Offer {
    hold: HoldRef,
}

fn offer_of(event: &str, body: &Value) -> Option<Offer> {
    let o = &body["offer"];
    let hold_id = o["hold_id"].as_str()?.to_string();
    let ticket = o["tickets"].as_array()?.first()?.as_str()?.to_string();
    let expires_at_ms = o["expires_at"].as_str().and_then(super::parse_rfc3339_ms)?;
    Some(Offer { hold: HoldRef { hold_id, event: event.to_string(), ticket, expires_at_ms } })
}

impl Client {
    /// Send one waiting-list request for `event` and record it.
    async fn waitlist(&mut self, node: u64, event: &str, f: WaitFn) -> (WaitCall, Value) {
        let w = self.w.clone();
        let base = w.nodes.base(node);
        let req = match f {
            WaitFn::Join => self
                .http
                .post(format!("{base}/v1/events/{event}/waitlist"))
                .json(&json!({"section": "GA", "quantity": 1})),
            WaitFn::Poll => self.http.get(format!("{base}/v1/events/{event}/waitlist/me")),
        };
        let invoke_ms = now_ms();
        let sent = req.bearer_auth(&self.token).timeout(w.op_timeout).send().await;
        let (outcome, http_status, body) = match sent {
            Err(e) if e.is_connect() => ("fail", None, Value::Null),
            Err(_) => ("info", None, Value::Null),
            Ok(r) => {
                let status = r.status().as_u16();
                match tokio::time::timeout(w.op_timeout, r.text()).await {
                    Ok(Ok(t)) => {
                        let body = serde_json::from_str(&t).unwrap_or(Value::Null);
                        let outcome = match status {
                            200..=299 => "ok",
                            500.. if f == WaitFn::Join => "info",
                            _ => "fail",
                        };
                        (outcome, Some(status), body)
                    }
                    _ => ("info", Some(status), Value::Null),
                }
            }
        };
        let state = match body["status"].as_str() {
            Some("waiting") if outcome == "ok" => Some(WaitState::Waiting),
            Some("offered") if outcome == "ok" => Some(WaitState::Offered),
            _ => None,
        };
        let call = WaitCall {
            id: 0,
            process: self.process,
            user: self.user.clone(),
            node,
            event: event.to_string(),
            f,
            outcome: outcome.to_string(),
            state,
            position: body["position"].as_u64(),
            hold_id: body["offer"]["hold_id"].as_str().map(str::to_string),
            http_status,
            invoke_ms,
            complete_ms: now_ms().max(invoke_ms),
        };
        w.waitlist.push(call.clone());
        if outcome == "info" {
            self.process += w.clients as u64;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        (call, body)
    }
}

pub async fn run(c: Client) {
    if c.client.is_multiple_of(3) {
        holder(c).await
    } else {
        waiter(c).await
    }
}

/// Reserve a free seat, keep it a moment, then release (60 %), confirm (15 %) or let it
/// expire.
async fn holder(mut c: Client) {
    while !c.w.over() {
        c.think(100, 600).await;
        let ev = c.w.current_event().clone();
        let node = c.pick_node();
        let Some(map) = c.seat_map(node, &ev.id).await else { continue };
        let free = available_in(&map);
        if free.is_empty() {
            continue;
        }
        let ticket = free[c.rng.random_range(0..free.len())].clone();
        let node = c.pick_node();
        let Some(hold) = c.call(node, Request::reserve(&ev.id, &ticket)).await.hold else { continue };
        c.think(300, 1500).await;
        let roll = c.rng.random_range(0..100);
        let node = c.pick_node();
        if roll < 60 {
            c.call(node, Request::release(&hold)).await;
        } else if roll < 75 {
            c.call(node, Request::confirm(&hold)).await;
        }
    }
}

/// What a waiter did with an offer.
enum Answered {
    /// Bought: done with this event.
    Booked,
    /// Released, refused or unknown: the entry is over; join again.
    Over,
    /// Left to lapse: keep polling until the entry is gone.
    Lapsing,
}

async fn answer_offer(c: &mut Client, offer: &Offer) -> Answered {
    c.think(100, 800).await;
    let roll = c.rng.random_range(0..100);
    let node = c.pick_node();
    if roll < 50 {
        let done = c.call(node, Request::confirm(&offer.hold)).await;
        if done.kind == OpKind::Ok {
            return Answered::Booked;
        }
        Answered::Over
    } else if roll < 75 {
        c.call(node, Request::release(&offer.hold)).await;
        Answered::Over
    } else {
        Answered::Lapsing
    }
}

/// Join, poll, answer offers; one bought ticket per event.
async fn waiter(mut c: Client) {
    let mut booked_in: Option<usize> = None;
    while !c.w.over() {
        let index = c.w.event_index_at(c.w.started.elapsed());
        if booked_in == Some(index) {
            tokio::time::sleep_until(c.w.event_end(index).min(c.w.deadline).into()).await;
            continue;
        }
        c.think(10, 300).await;
        let ev = c.w.events[index].clone();
        let window_end: Instant = c.w.event_end(index).min(c.w.deadline);
        let node = c.pick_node();
        let (join, body) = c.waitlist(node, &ev.id, WaitFn::Join).await;
        if join.outcome != "ok" {
            // Refused (409: an entry from an unknown outcome, or sales closed) or unknown:
            // polls say whether an entry exists.
            c.think(200, 500).await;
        }
        let mut offer = offer_of(&ev.id, &body);
        let mut lapsing = false;
        while Instant::now() < window_end {
            if let (Some(o), false) = (&offer, lapsing) {
                match answer_offer(&mut c, o).await {
                    Answered::Booked => {
                        booked_in = Some(index);
                        break;
                    }
                    Answered::Over => break,
                    Answered::Lapsing => lapsing = true,
                }
            }
            c.think(100, 300).await;
            let node = c.pick_node();
            let (p, body) = c.waitlist(node, &ev.id, WaitFn::Poll).await;
            match (p.outcome.as_str(), p.state) {
                ("ok", Some(WaitState::Offered)) if offer.is_none() => offer = offer_of(&ev.id, &body),
                ("fail", _) if p.http_status == Some(404) => break,
                _ => {}
            }
        }
    }
}
