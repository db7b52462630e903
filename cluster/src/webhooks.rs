//! Webhook delivery: the event leader sends its outbox's notices (`tickets::inventory::outbox`)
//! to the endpoints the catalog lists (`tickets::webhooks`), then proposes `OutboxAck`.
//!
//! - **When.** An inventory with notices waiting is due now ([`crate::machine::next_deadline`]);
//!   the scheduler hands it to [`Store::deliver_outbox`] on the event's leader, at most one
//!   pass per event at a time (claimed in `Webhooks::running`). A pass works in batches while
//!   notices wait (up to [`BATCHES_PER_PASS_MAX`]): a batch takes the oldest notices up to
//!   [`NOTICES_PER_PASS_MAX`] that some endpoint wants, sends each to every endpoint that
//!   wants its kind, [`DELIVERIES_PARALLEL`] at a time, and acknowledges the batch (with the
//!   unwanted notices among it) once each is delivered or given up. With no endpoints, one
//!   ack clears the outbox. Nothing of this is on a request's path: an endpoint that does not
//!   answer slows no booking, only the delivery of its event's later notices.
//! - **At least once, never invented.** The notices are in the log; one that was sent but not
//!   acknowledged when the leader died is sent again by the next leader, with the same id.
//!   Receivers dedupe on `Boxoffice-Delivery` (the notice id).
//! - **Retries.** Up to [`ATTEMPTS_MAX`] attempts, waiting 0.5, 1, 2, 4 s between them; an
//!   answer 2xx is delivered, anything else (or no answer within [`DELIVERY_TIMEOUT`]) fails
//!   the attempt. An endpoint whose last [`FAILING_AFTER`] deliveries all failed gets one
//!   attempt per notice until one succeeds, so a dead endpoint cannot hold the outbox back.
//!   A notice given up on is in the delivery log, to redeliver by hand.
//! - **Signature** (the Stripe scheme): `Boxoffice-Signature: t=<unix seconds>,v1=<hex
//!   HMAC-SHA256 of "<t>.<body>" keyed with the endpoint's secret>`.
//! - **Delivery log.** Each node keeps the last [`LOG_PER_ENDPOINT_MAX`] deliveries it made per
//!   endpoint, in memory (a restart forgets them; the notices themselves are in the log until
//!   delivered). `GET /v1/webhooks/{id}/deliveries` gathers them from every node.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use tickets::inventory::{InventoryCommand, Notice, NoticeData, NoticeKind};
use tickets::webhooks::Webhook;

use crate::error::{Error, Result};
use crate::machine::GroupMachine;
use crate::store::{wall_ms, Store};

/// One attempt's longest wait for an answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notice and endpoint.
pub const ATTEMPTS_MAX: u32 = 5;
/// The first wait between attempts (doubling).
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Wanted notices one batch sends.
pub const NOTICES_PER_PASS_MAX: usize = 64;
/// Requests in flight per pass.
pub const DELIVERIES_PARALLEL: usize = 16;
/// Batches one pass delivers before it lets the scheduler call again (a bound, not a pace).
pub const BATCHES_PER_PASS_MAX: usize = 64;
/// Deliveries a node remembers per endpoint.
pub const LOG_PER_ENDPOINT_MAX: usize = 500;
/// Failed deliveries in a row after which an endpoint gets one attempt per notice.
pub const FAILING_AFTER: u32 = 3;

/// One delivery (a notice to an endpoint), as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `whd_<node>_<n>`: the node that made it, so a redelivery goes there.
    pub id: String,
    pub webhook_id: String,
    /// The notice id (`Boxoffice-Delivery`).
    pub notice_id: String,
    pub event_id: String,
    /// The event type, e.g. `booking.confirmed`.
    pub kind: String,
    /// `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    /// The last answer's status, if one came.
    pub http_status: Option<u16>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When the last attempt ended (ms).
    pub at: u64,
    /// The body sent (so it can be sent again).
    pub payload: String,
}

/// The node's delivery state.
pub struct Webhooks {
    http: reqwest::Client,
    /// Events whose outbox a pass is delivering now.
    running: Mutex<HashSet<String>>,
    /// Endpoint -> its last deliveries, oldest first.
    log: Mutex<HashMap<String, VecDeque<Delivery>>>,
    /// Endpoint -> failed deliveries in a row.
    failing: Mutex<HashMap<String, u32>>,
    next: AtomicU64,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            http: reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build().expect("http client builds"),
            running: Mutex::new(HashSet::new()),
            log: Mutex::new(HashMap::new()),
            failing: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The JSON body of a notice: `{id, type, created_at, event_id, data}`; `data` is the booking
/// or hold as the API shows it, or `{}` for the event's own notices.
pub fn payload(event_id: &str, notice: &Notice) -> String {
    let data = match &notice.data {
        NoticeData::Booking(b) => json!({
            "booking_id": b.id, "hold_id": b.hold_id, "event_id": b.event_id, "user": b.user,
            "tickets": b.tickets, "amount": b.amount, "currency": b.currency,
            "status": tickets::inventory::booking_status_name(b.status),
            "created_at": rfc3339(b.created_at), "refund_ref": b.refund_ref,
        }),
        NoticeData::Hold(h) => json!({
            "hold_id": h.id, "event_id": h.event_id, "user": h.user, "tickets": h.tickets,
            "amount": h.amount, "currency": h.currency, "expires_at": rfc3339(h.expires_at),
        }),
        NoticeData::Event => json!({}),
    };
    json!({
        "id": notice.id(event_id), "type": notice.kind.name(), "created_at": rfc3339(notice.at),
        "event_id": event_id, "data": data,
    })
    .to_string()
}

/// What one delivery came to.
struct Sent {
    ok: bool,
    http_status: Option<u16>,
    error: Option<String>,
}

impl Webhooks {
    fn claim(&self, event: &str) -> bool {
        self.running.lock().expect("webhooks lock").insert(event.to_string())
    }

    fn unclaim(&self, event: &str) {
        self.running.lock().expect("webhooks lock").remove(event);
    }

    pub(crate) fn claimed(&self, event: &str) -> bool {
        self.running.lock().expect("webhooks lock").contains(event)
    }

    /// One POST of `body` to `hook`, signed now.
    async fn send(&self, hook: &Webhook, notice_id: &str, body: &str) -> Sent {
        let t = wall_ms() / 1_000;
        let sent = self
            .http
            .post(&hook.spec.url)
            .header("content-type", "application/json")
            .header("boxoffice-delivery", notice_id)
            .header("boxoffice-signature", signature(&hook.spec.secret, t, body))
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                Sent { ok: true, http_status: Some(r.status().as_u16()), error: None }
            }
            Ok(r) => Sent {
                ok: false,
                http_status: Some(r.status().as_u16()),
                error: Some(format!("answered {}", r.status().as_u16())),
            },
            Err(e) => Sent { ok: false, http_status: None, error: Some(e.to_string()) },
        }
    }

    /// Deliver one notice to one endpoint with retries; log it.
    async fn deliver(
        &self,
        node: u64,
        hook: &Webhook,
        event_id: &str,
        notice_id: &str,
        kind: NoticeKind,
        body: String,
    ) {
        let failing = self.failing.lock().expect("webhooks lock").get(&hook.id).copied().unwrap_or(0);
        let attempts_max = if failing >= FAILING_AFTER { 1 } else { ATTEMPTS_MAX };
        let mut wait = RETRY_FIRST;
        let mut attempts = 0;
        let sent = loop {
            attempts += 1;
            let sent = self.send(hook, notice_id, &body).await;
            if sent.ok || attempts >= attempts_max {
                break sent;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        };
        {
            let mut failing = self.failing.lock().expect("webhooks lock");
            if sent.ok {
                failing.remove(&hook.id);
            } else {
                *failing.entry(hook.id.clone()).or_default() += 1;
            }
        }
        let outcome = if sent.ok { "delivered" } else { "failed" };
        metrics::counter!("boxoffice_webhook_deliveries_total", "outcome" => outcome).increment(1);
        if !sent.ok {
            tracing::warn!(webhook = %hook.id, notice = notice_id, error = ?sent.error, "webhook delivery failed");
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.record(Delivery {
            id: format!("whd_{node}_{n}"),
            webhook_id: hook.id.clone(),
            notice_id: notice_id.to_string(),
            event_id: event_id.to_string(),
            kind: kind.name().to_string(),
            status: outcome.to_string(),
            attempts,
            http_status: sent.http_status,
            error: sent.error,
            at: wall_ms(),
            payload: body,
        });
    }

    fn record(&self, d: Delivery) {
        let mut log = self.log.lock().expect("webhooks lock");
        let mine = log.entry(d.webhook_id.clone()).or_default();
        if let Some(old) = mine.iter_mut().find(|x| x.id == d.id) {
            *old = d;
            return;
        }
        mine.push_back(d);
        while mine.len() > LOG_PER_ENDPOINT_MAX {
            mine.pop_front();
        }
    }

    /// This node's deliveries to `webhook`, newest first.
    pub(crate) fn deliveries_here(&self, webhook: &str) -> Vec<Delivery> {
        let log = self.log.lock().expect("webhooks lock");
        log.get(webhook).map(|l| l.iter().rev().cloned().collect()).unwrap_or_default()
    }

    fn find(&self, webhook: &str, delivery: &str) -> Option<Delivery> {
        let log = self.log.lock().expect("webhooks lock");
        log.get(webhook)?.iter().find(|d| d.id == delivery).cloned()
    }
}

impl Store {
    /// One delivery pass over `event`'s outbox (see the module doc), if this node leads it and
    /// no pass runs already. Ends by acknowledging what it delivered or gave up on.
    pub(crate) async fn deliver_outbox(&self, group: &raft::Group<GroupMachine>, event: &str) {
        let hooks = &self.inner.webhooks;
        if !hooks.claim(event) {
            return;
        }
        // Batch after batch while this node leads and notices wait: a hot event makes
        // thousands a second, and one batch per scheduler tick would fall behind.
        for _ in 0..BATCHES_PER_PASS_MAX {
            if group.leader() != Some(self.node_id()) {
                break;
            }
            let endpoints: Vec<Webhook> = self.catalog_read(|c| c.webhooks.values().cloned().collect());
            let wanted: BTreeSet<NoticeKind> =
                endpoints.iter().flat_map(|h| h.spec.events.iter().copied()).collect();
            // Notices nobody wants are acknowledged with the batch; only wanted ones are sent,
            // at most NOTICES_PER_PASS_MAX a batch.
            let (notices, last) = group.read_local(|m| {
                let Some(inv) = m.as_inventory() else { return (Vec::new(), None) };
                let mut sent = Vec::new();
                let mut last = None;
                for n in inv.outbox() {
                    if wanted.contains(&n.kind) {
                        if sent.len() == NOTICES_PER_PASS_MAX {
                            break;
                        }
                        sent.push(n.clone());
                    }
                    last = Some(n.seq);
                }
                (sent, last)
            });
            let Some(last) = last else { break };
            let node = self.node_id();
            let work: Vec<(Webhook, String, NoticeKind, String)> = notices
                .iter()
                .flat_map(|n| {
                    let (id, body) = (n.id(event), payload(event, n));
                    endpoints
                        .iter()
                        .filter(|h| h.spec.events.contains(&n.kind))
                        .map(move |h| (h.clone(), id.clone(), n.kind, body.clone()))
                })
                .collect();
            futures::stream::iter(work)
                .for_each_concurrent(DELIVERIES_PARALLEL, |(hook, id, kind, body)| async move {
                    hooks.deliver(node, &hook, event, &id, kind, body).await
                })
                .await;
            if let Err(e) = self.write_inventory(group, InventoryCommand::OutboxAck { upto: last }).await {
                // Not acknowledged: the next pass (or leader) sends them again.
                tracing::debug!(event, error = %e, "outbox ack not proposed");
                break;
            }
        }
        hooks.unclaim(event);
    }

    pub(crate) fn webhook_deliveries_here(&self, webhook: &str) -> Vec<Delivery> {
        self.inner.webhooks.deliveries_here(webhook)
    }

    /// Send a logged delivery again, from the node that made it (signed anew); the log
    /// entry is updated.
    pub(crate) async fn local_redeliver(&self, webhook: &str, delivery: &str) -> Result<Delivery> {
        let hooks = &self.inner.webhooks;
        let Some(mut d) = hooks.find(webhook, delivery) else {
            return Err(tickets::Rejection::not_found("delivery").into());
        };
        let Some(hook) = self.catalog_read(|c| c.webhooks.get(webhook).cloned()) else {
            return Err(tickets::Rejection::not_found("webhook").into());
        };
        let sent = hooks.send(&hook, &d.notice_id, &d.payload).await;
        d.attempts += 1;
        d.status = if sent.ok { "delivered" } else { "failed" }.to_string();
        d.http_status = sent.http_status;
        d.error = sent.error;
        d.at = wall_ms();
        hooks.record(d.clone());
        Ok(d)
    }
}

/// The node a delivery id names (`whd_<node>_<n>`).
pub fn delivery_node(id: &str) -> Option<u64> {
    id.strip_prefix("whd_")?.split('_').next()?.parse().ok()
}

/// The error a malformed delivery id gets (it names no node: no such delivery).
pub fn bad_delivery_id() -> Error {
    tickets::Rejection::not_found("delivery").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_signature_is_stripes_scheme() {
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac secret`
        let s = signature("secret", 1_700_000_000, "{}");
        assert_eq!(s, "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163");
        assert_ne!(s, signature("secret2", 1_700_000_000, "{}"));
        assert_ne!(s, signature("secret", 1_700_000_001, "{}"));
    }

    #[test]
    fn delivery_ids_name_their_node() {
        assert_eq!(delivery_node("whd_3_17"), Some(3));
        assert_eq!(delivery_node("whd_x_1"), None);
        assert_eq!(delivery_node("nope"), None);
    }

    #[test]
    fn a_notice_body_names_its_type_and_subject() {
        let n = Notice { seq: 7, kind: NoticeKind::EventSoldOut, at: 1_000, data: NoticeData::Event };
        let v: Value = serde_json::from_str(&payload("evt_ab", &n)).unwrap();
        assert_eq!(v["id"], "ntc_ab_7");
        assert_eq!(v["type"], "event.sold_out");
        assert_eq!(v["event_id"], "evt_ab");
        assert_eq!(v["created_at"], "1970-01-01T00:00:01Z");
    }
}
