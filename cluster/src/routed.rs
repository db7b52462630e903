//! The store's front: every operation the API calls, served here when this node serves it
//! and asked of the peer that does otherwise ([`crate::route`] decides, [`crate::peer`]
//! carries). Each is the local operation (`local_*`, in `browse`, `booking` and `admin`) and
//! the peer request that stands for it; the API never learns which node answered.

use std::time::Duration;

use futures::StreamExt;
use tickets::catalog::NodeInfo;
use tickets::inventory::{Booking, Hold, Idempotency, Refunder, Selection};
use tickets::{BookingId, EventId, HoldId, NodeId, UserId};

use crate::booking::QueuePlace;
use crate::browse::{EventPage, SeatMap, SeatStatuses, SeatWatch};
use crate::error::{Error, Result};
use crate::ids;
use crate::machine::ChangeSet;
use crate::peer::{decode_item, Answer, PeerCall, PeerWatch, SeatStart, PEER_CALL_TIMEOUT};
use crate::store::Store;

/// Peers that may fail to answer a user's bookings before the list could miss some: every
/// event has three replicas, so with two silent one replica of each still answered.
pub const PEERS_SILENT_MAX: usize = tickets::placement::REPLICAS_PER_EVENT - 1;

impl Store {
    /// `local`'s result, or — when it says another node serves it — that node's answer to
    /// `call`.
    async fn routed<T: Answer>(&self, local: Result<T>, call: impl FnOnce() -> PeerCall) -> Result<T> {
        match local {
            Err(Error::Elsewhere { nodes }) => self.ask(&nodes, call(), PEER_CALL_TIMEOUT).await,
            other => other,
        }
    }

    /// `routed` for a write to event `event_id` (when known): a relayed write drops the
    /// event's relayed reads ([`crate::relay_cache`]) once answered, whatever the answer.
    async fn routed_write<T: Answer>(
        &self,
        event_id: Option<&str>,
        local: Result<T>,
        call: impl FnOnce() -> PeerCall,
    ) -> Result<T> {
        let relayed = matches!(local, Err(Error::Elsewhere { .. }));
        let answer = self.routed(local, call).await;
        if let (true, Some(event_id)) = (relayed, event_id) {
            self.inner.relayed_pages.forget(event_id);
        }
        answer
    }

    /// The event page; relayed ones are kept for [`crate::relay_cache::RELAYED_READ_TTL`].
    pub async fn event_page(&self, id: &str) -> Result<EventPage> {
        match self.local_event_page(id).await {
            Err(Error::Elsewhere { nodes }) => {
                let call = PeerCall::EventPage { id: id.into() };
                self.inner.relayed_pages.get_or_ask(id, || self.ask(&nodes, call, PEER_CALL_TIMEOUT)).await
            }
            other => other,
        }
    }

    pub async fn seat_map(&self, id: &str) -> Result<SeatMap> {
        self.routed(self.local_seat_map(id).await, || PeerCall::SeatMap { id: id.into() }).await
    }

    /// The event's inventory version (applied log index), without reading its seats.
    pub async fn seat_version(&self, id: &str) -> Result<u64> {
        self.routed(self.local_seat_version(id).await, || PeerCall::SeatVersion { id: id.into() }).await
    }

    /// The event's ticket layout (sections, rows, prices), fixed when the event was made.
    pub async fn seat_layout(&self, id: &str) -> Result<tickets::layout::Layout> {
        self.routed(self.local_seat_layout(id).await, || PeerCall::SeatLayout { id: id.into() }).await
    }

    /// The event's ticket statuses in layout order as of now, without the specs.
    pub async fn seat_statuses(&self, id: &str) -> Result<SeatStatuses> {
        self.routed(self.local_seat_statuses(id).await, || PeerCall::SeatStatuses { id: id.into() }).await
    }

    /// Wait until the event's inventory version passes `since`, at most `limit`; returns the
    /// version then (unchanged if the wait timed out).
    pub async fn wait_version(&self, id: &str, since: u64, limit: Duration) -> Result<u64> {
        match self.local_wait_version(id, since, limit).await {
            Err(Error::Elsewhere { nodes }) => {
                let call = PeerCall::WaitVersion { id: id.into(), since, wait_ms: limit.as_millis() as u64 };
                self.ask(&nodes, call, limit + PEER_CALL_TIMEOUT).await
            }
            other => other,
        }
    }

    /// Start watching an event's seats (see [`SeatWatch`]); relayed from a replica when the
    /// event is not served here.
    pub async fn watch_seats(&self, id: &str, last_seen: Option<u64>) -> Result<SeatWatch> {
        let nodes = match self.local_watch_seats(id, last_seen).await {
            Err(Error::Elsewhere { nodes }) => nodes,
            other => return other,
        };
        let (start, rest) =
            self.ask_watch::<SeatStart>(&nodes, PeerWatch::Seats { id: id.into(), last_seen }).await?;
        let live = rest.filter_map(|bytes| futures::future::ready(decode_item::<ChangeSet>(&bytes))).boxed();
        Ok(SeatWatch { snapshot: start.snapshot, missed: start.missed, version: start.version, live })
    }

    /// The applied-version feed of an event's group (wakes queue streams); relayed from a
    /// replica when the event is not served here (it then closes when the relay breaks).
    pub async fn watch_version(&self, id: &str) -> Result<tokio::sync::watch::Receiver<u64>> {
        let nodes = match self.local_watch_version(id).await {
            Err(Error::Elsewhere { nodes }) => nodes,
            other => return other,
        };
        let (first, mut rest) = self.ask_watch::<u64>(&nodes, PeerWatch::Version { id: id.into() }).await?;
        let (tx, rx) = tokio::sync::watch::channel(first);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    item = rest.next() => match item.and_then(|b| decode_item::<u64>(&b)) {
                        Some(v) => { tx.send_replace(v); }
                        None => return,
                    },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }

    pub async fn reserve(
        &self,
        user: &UserId,
        event_id: &EventId,
        selection: Selection,
        idempotency: Option<Idempotency>,
    ) -> Result<Hold> {
        // The id is chosen here, before anything is proposed anywhere, so an answer whose
        // outcome is unknown can name it.
        let hold_id = ids::hold_id(event_id);
        let local =
            self.local_reserve(user, event_id, &hold_id, selection.clone(), idempotency.clone()).await;
        self.routed_write(Some(event_id), local, || PeerCall::Reserve {
            user: user.into(),
            event_id: event_id.into(),
            hold_id: hold_id.clone(),
            selection,
            idempotency,
        })
        .await
    }

    /// Begin the payment, charge, and commit the outcome, on the event's leader.
    pub async fn confirm(
        &self,
        user: &UserId,
        hold_id: &HoldId,
        payment_token: &str,
        idempotency: Option<Idempotency>,
    ) -> Result<Booking> {
        let local = self.local_confirm(user, hold_id, payment_token, idempotency.clone()).await;
        self.routed_write(hold_id.event().as_deref(), local, || PeerCall::Confirm {
            user: user.into(),
            hold_id: hold_id.clone(),
            payment_token: payment_token.into(),
            idempotency,
        })
        .await
    }

    pub async fn release(&self, user: &UserId, hold_id: &HoldId) -> Result<Hold> {
        let local = self.local_release(user, hold_id).await;
        self.routed_write(hold_id.event().as_deref(), local, || PeerCall::Release {
            user: user.into(),
            hold_id: hold_id.clone(),
        })
        .await
    }

    pub async fn extend(&self, user: &UserId, hold_id: &HoldId) -> Result<Hold> {
        let local = self.local_extend(user, hold_id).await;
        self.routed_write(hold_id.event().as_deref(), local, || PeerCall::Extend {
            user: user.into(),
            hold_id: hold_id.clone(),
        })
        .await
    }

    /// The hold as of now, with lazy expiry applied; only its holder sees it.
    pub async fn hold(&self, user: &UserId, hold_id: &HoldId) -> Result<Hold> {
        let local = self.local_hold(user, hold_id).await;
        self.routed(local, || PeerCall::Hold { user: user.into(), hold_id: hold_id.clone() }).await
    }

    pub async fn booking(&self, user: &UserId, booking_id: &BookingId) -> Result<Booking> {
        let local = self.local_booking(user, booking_id).await;
        self.routed(local, || PeerCall::Booking { user: user.into(), booking_id: booking_id.clone() }).await
    }

    /// Join; the answer is the place the join got, with the estimate at that moment.
    pub async fn queue_join(&self, user: &UserId, event_id: &EventId) -> Result<QueuePlace> {
        let local = self.local_queue_join(user, event_id).await;
        self.routed(local, || PeerCall::QueueJoin { user: user.into(), event_id: event_id.into() }).await
    }

    pub async fn queue_leave(&self, user: &UserId, event_id: &EventId) -> Result<()> {
        let local = self.local_queue_leave(user, event_id).await;
        self.routed(local, || PeerCall::QueueLeave { user: user.into(), event_id: event_id.into() }).await
    }

    /// The user's place, with what the wait estimate needs. Linearizable, or from a replica's
    /// local state (for streams, which re-read on every change).
    pub async fn queue_view(
        &self,
        user: &UserId,
        event_id: &EventId,
        linearizable: bool,
    ) -> Result<QueuePlace> {
        let local = self.local_queue_view(user, event_id, linearizable).await;
        self.routed(local, || PeerCall::QueueView {
            user: user.into(),
            event_id: event_id.into(),
            linearizable,
        })
        .await
    }

    /// Join the event's waiting list; the answer is the entry, offered at once when seats
    /// of the section are free. The offer's hold id is chosen here, once.
    pub async fn waitlist_join(
        &self,
        user: &UserId,
        event_id: &EventId,
        section: &str,
        quantity: u32,
    ) -> Result<tickets::inventory::WaitlistEntry> {
        let offer_hold_id = ids::hold_id(event_id);
        let local = self.local_waitlist_join(user, event_id, section, quantity, &offer_hold_id).await;
        self.routed_write(Some(event_id), local, || PeerCall::WaitlistJoin {
            user: user.into(),
            event_id: event_id.into(),
            section: section.into(),
            quantity,
            offer_hold_id: offer_hold_id.clone(),
        })
        .await
    }

    /// Leave the waiting list (an open offer's hold is released).
    pub async fn waitlist_leave(&self, user: &UserId, event_id: &EventId) -> Result<()> {
        let local = self.local_waitlist_leave(user, event_id).await;
        self.routed_write(Some(event_id), local, || PeerCall::WaitlistLeave {
            user: user.into(),
            event_id: event_id.into(),
        })
        .await
    }

    /// The user's entry; linearizable, or from a replica's local state (for streams).
    pub async fn waitlist_view(
        &self,
        user: &UserId,
        event_id: &EventId,
        linearizable: bool,
    ) -> Result<tickets::inventory::WaitlistEntry> {
        let local = self.local_waitlist_view(user, event_id, linearizable).await;
        self.routed(local, || PeerCall::WaitlistView {
            user: user.into(),
            event_id: event_id.into(),
            linearizable,
        })
        .await
    }

    /// Move the end of sales in the event's inventory, on its leader.
    pub(crate) async fn set_sales_end(&self, event_id: &str, at: tickets::Millis) -> Result<()> {
        let local = self.local_set_sales_end(event_id, at).await;
        self.routed_write(Some(event_id), local, || PeerCall::SetSalesEnd { event_id: event_id.into(), at })
            .await
    }

    /// Move the buyers' refund window in the event's inventory, on its leader.
    pub(crate) async fn set_refund_until(&self, event_id: &str, at: tickets::Millis) -> Result<()> {
        let local = self.local_set_refund_until(event_id, at).await;
        self.routed_write(Some(event_id), local, || PeerCall::SetRefundUntil {
            event_id: event_id.into(),
            at,
        })
        .await
    }

    /// Cancel the event's inventory and begin its refunds, on the event's leader.
    pub(crate) async fn cancel_and_refund(&self, event_id: &str, admin: &str) -> Result<()> {
        let local = self.local_cancel_and_refund(event_id, admin).await;
        self.routed_write(Some(event_id), local, || PeerCall::CancelAndRefund {
            event_id: event_id.into(),
            admin: admin.into(),
        })
        .await
    }

    /// Cancel a booking and refund it, on the event's leader (see [`crate::refund`]): the
    /// booking `refunded`, or `refund_pending` while the refund still runs.
    pub async fn cancel_booking(
        &self,
        by: Refunder,
        booking_id: &BookingId,
        idempotency: Option<Idempotency>,
    ) -> Result<Booking> {
        let local = self.local_cancel_booking(by.clone(), booking_id, idempotency.clone()).await;
        self.routed_write(booking_id.event().as_deref(), local, || PeerCall::CancelBooking {
            by,
            booking_id: booking_id.clone(),
            idempotency,
        })
        .await
    }

    /// Let a node in, on the catalog's leader (see [`Store::local_add_node`]).
    pub async fn add_node(
        &self,
        id: NodeId,
        raft_addr: String,
        http_addr: String,
        store_id: u64,
    ) -> Result<NodeInfo> {
        let local = self.local_add_node(id, raft_addr.clone(), http_addr.clone(), store_id).await;
        self.routed(local, || PeerCall::AddNode { id, raft_addr, http_addr, store_id }).await
    }

    /// The deliveries to webhook `webhook` that every live node remembers, newest first (at
    /// most `limit`). 503 when more than [`PEERS_SILENT_MAX`] nodes did not answer.
    pub async fn webhook_deliveries(
        &self,
        webhook: &str,
        limit: usize,
    ) -> Result<Vec<crate::webhooks::Delivery>> {
        if self.catalog_read(|c| !c.webhooks.contains_key(webhook)) {
            return Err(tickets::Rejection::not_found("webhook").into());
        }
        let mut all = self.webhook_deliveries_here(webhook);
        let asks = self.peer_nodes().into_iter().map(|node| async move {
            let call = PeerCall::WebhookDeliveriesHere { webhook: webhook.into() };
            (node, self.ask::<Vec<crate::webhooks::Delivery>>(&[node], call, Duration::from_secs(5)).await)
        });
        let mut failed = 0;
        for (node, answer) in futures::future::join_all(asks).await {
            match answer {
                Ok(found) => all.extend(found),
                Err(e) => {
                    tracing::warn!(node, error = %e, "a node did not list its webhook deliveries");
                    failed += 1;
                }
            }
        }
        if failed > PEERS_SILENT_MAX {
            return Err(Error::unavailable("too many nodes did not answer; retry"));
        }
        all.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
        all.truncate(limit);
        Ok(all)
    }

    /// Send a logged delivery again, from the node that made it.
    pub async fn redeliver(&self, webhook: &str, delivery: &str) -> Result<crate::webhooks::Delivery> {
        let Some(node) = crate::webhooks::delivery_node(delivery) else {
            return Err(crate::webhooks::bad_delivery_id());
        };
        if node == self.node_id() {
            return self.local_redeliver(webhook, delivery).await;
        }
        let call = PeerCall::Redeliver { webhook: webhook.into(), delivery: delivery.into() };
        self.ask(&[node], call, crate::webhooks::DELIVERY_TIMEOUT + PEER_CALL_TIMEOUT).await
    }

    /// The user's bookings over every event, newest first: this node's and every other live
    /// node's (bookings live in their events' groups, spread over the nodes), without
    /// duplicates (an event has several replicas). 503 when more than [`PEERS_SILENT_MAX`]
    /// nodes did not answer: the list could then be incomplete.
    pub async fn my_bookings(&self, user: &UserId) -> Result<Vec<Booking>> {
        let mut by_id: std::collections::BTreeMap<tickets::BookingId, Booking> =
            self.bookings_here(user).into_iter().map(|b| (b.id.clone(), b)).collect();
        let asks = self.peer_nodes().into_iter().map(|node| async move {
            let call = PeerCall::BookingsHere { user: user.into() };
            (node, self.ask::<Vec<Booking>>(&[node], call, Duration::from_secs(5)).await)
        });
        let mut failed = 0;
        for (node, answer) in futures::future::join_all(asks).await {
            match answer {
                Ok(bookings) => {
                    for b in bookings {
                        by_id.entry(b.id.clone()).or_insert(b);
                    }
                }
                Err(e) => {
                    tracing::warn!(node, error = %e, "a node did not list its bookings");
                    failed += 1;
                }
            }
        }
        if failed > PEERS_SILENT_MAX {
            return Err(Error::unavailable("too many nodes did not answer; retry"));
        }
        let mut all: Vec<Booking> = by_id.into_values().collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }
}
