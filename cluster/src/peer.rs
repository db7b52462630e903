//! The peer plane: what nodes ask each other above Raft, as typed requests on the
//! authenticated gRPC listener (`raft`'s `Peer` service, beside its `Raft` service).
//!
//! A node asks a peer when [`crate::route`] says the peer serves the request: a read or a
//! booking write about an event not placed here (or not set up here yet), a confirm on the
//! event's leader (and a cancel), a node's join on the catalog's leader, and a user's bookings from every
//! node. The peer runs only the *local* operation ([`Handler`]): when it does not serve the
//! request either it answers [`Error::Elsewhere`] and the asking node tries its next peer, so a
//! request makes one hop at most and a stale view cannot loop. Identity never travels in a
//! header: the user a request acts for is a field of the request, which only an authenticated
//! cluster member can send.
//!
//! Requests and answers are bincode (serde) of [`PeerCall`] / [`PeerWatch`] and
//! [`PeerAnswer`]; a change to them must keep old variants in place (append only), as for
//! commands in the log, so that nodes of two versions can talk during a rolling upgrade.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use tickets::inventory::{Idempotency, Refunder, Selection};
use tickets::{BookingId, HoldId, NodeId};

use crate::browse::SeatMap;
use crate::error::{Error, Result};
use crate::machine::ChangeSet;
use crate::store::Store;

/// One request to a peer, answered once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerCall {
    EventPage {
        id: String,
    },
    SeatMap {
        id: String,
    },
    SeatVersion {
        id: String,
    },
    SeatLayout {
        id: String,
    },
    SeatStatuses {
        id: String,
    },
    /// The seat map's long poll: wait until the version passes `since`, at most `wait_ms`.
    WaitVersion {
        id: String,
        since: u64,
        wait_ms: u64,
    },
    /// `hold_id`: chosen by the asking node, so its `outcome_unknown` answer can name it.
    Reserve {
        user: String,
        event_id: String,
        hold_id: HoldId,
        selection: Selection,
        idempotency: Option<Idempotency>,
    },
    Confirm {
        user: String,
        hold_id: HoldId,
        payment_token: String,
        idempotency: Option<Idempotency>,
    },
    Release {
        user: String,
        hold_id: HoldId,
    },
    Extend {
        user: String,
        hold_id: HoldId,
    },
    Hold {
        user: String,
        hold_id: HoldId,
    },
    Booking {
        user: String,
        booking_id: BookingId,
    },
    QueueJoin {
        user: String,
        event_id: String,
    },
    QueueLeave {
        user: String,
        event_id: String,
    },
    QueueView {
        user: String,
        event_id: String,
        linearizable: bool,
    },
    /// The user's bookings of the events hosted on the peer (its index; no group is read).
    BookingsHere {
        user: String,
    },
    /// Let a node in (asked of the catalog's leader).
    AddNode {
        id: NodeId,
        raft_addr: String,
        http_addr: String,
        store_id: u64,
    },
    /// Tell the event's inventory its new end of sales (asked of the event's leader).
    SetSalesEnd {
        event_id: String,
        at: tickets::Millis,
    },
    /// Cancel and refund a booking (asked of the event's leader).
    CancelBooking {
        by: Refunder,
        booking_id: BookingId,
        idempotency: Option<Idempotency>,
    },
    /// Tell the event's inventory its new refund window (asked of the event's leader).
    SetRefundUntil {
        event_id: String,
        at: tickets::Millis,
    },
    /// Cancel the event's inventory and begin every confirmed booking's refund (asked of the
    /// event's leader).
    CancelAndRefund {
        event_id: String,
        admin: String,
    },
    /// `offer_hold_id`: chosen by the asking node, like a reserve's hold id.
    WaitlistJoin {
        user: String,
        event_id: String,
        section: String,
        quantity: u32,
        offer_hold_id: HoldId,
    },
    WaitlistLeave {
        user: String,
        event_id: String,
    },
    WaitlistView {
        user: String,
        event_id: String,
        linearizable: bool,
    },
    /// The peer's log of its deliveries to a webhook endpoint.
    WebhookDeliveriesHere {
        webhook: String,
    },
    /// Send a logged delivery again (asked of the node that made it).
    Redeliver {
        webhook: String,
        delivery: String,
    },
}

/// One request to a peer, answered by a stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerWatch {
    /// An event's seats: a [`SeatStart`] first, then one [`ChangeSet`] per applied entry.
    Seats { id: String, last_seen: Option<u64> },
    /// An event's applied version: the current one first, then each new one.
    Version { id: String },
}

/// The first answer of [`PeerWatch::Seats`] (the rest of a `SeatWatch`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeatStart {
    pub snapshot: Option<SeatMap>,
    pub missed: Vec<ChangeSet>,
    pub version: u64,
}

/// What a peer answers: the operation's value or its error, as if made here.
pub type PeerAnswer<T> = std::result::Result<T, Error>;

/// Deadline of a peer request, beyond the operation's own wait: a confirm may wait
/// [`crate::booking::CONFIRM_WAIT`] for its payment.
pub const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest long poll a peer runs for another node (the API allows 60 s).
pub const LONG_POLL_MAX: Duration = Duration::from_secs(60);
/// How long a peer stream may take to start.
pub const PEER_WATCH_START_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("peer messages encode")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| format!("not a peer message: {e}"))
}

/// Streams this node relays to its peers at once (seat streams and version feeds of events it
/// hosts, for clients connected to nodes that do not); one more is answered 503. The node a
/// client is connected to bounds that client's streams; this bounds what all peers together
/// can hold open here.
pub const RELAYED_WATCHES_MAX: usize = 10_000;

/// A bound on open relayed streams: a permit per stream, held until the stream ends.
#[derive(Clone)]
pub(crate) struct WatchLimit {
    open: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl WatchLimit {
    pub(crate) fn new(max: usize) -> WatchLimit {
        WatchLimit { open: Arc::new(tokio::sync::Semaphore::new(max)), max }
    }

    /// A place for one more stream, or 503 when all are taken.
    pub(crate) fn acquire(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.open.clone().try_acquire_owned().map_err(|_| {
            Error::unavailable(format!("this node relays {} streams to its peers already", self.max))
        })
    }
}

/// The server side: answers peers' requests with this node's local operations. Set up before
/// the store exists (the gRPC server starts first); answers 503 until it does.
#[derive(Clone)]
pub struct Handler {
    store: Arc<OnceLock<Store>>,
    watches: WatchLimit,
}

impl Default for Handler {
    fn default() -> Self {
        Handler { store: Arc::default(), watches: WatchLimit::new(RELAYED_WATCHES_MAX) }
    }
}

impl Handler {
    pub(crate) fn bind(&self, store: Store) {
        let _ = self.store.set(store);
    }

    fn store(&self) -> Result<Store> {
        self.store.get().cloned().ok_or_else(|| Error::unavailable("this node is starting"))
    }
}

/// Run one request on this node only.
async fn serve(store: Store, call: PeerCall) -> Vec<u8> {
    match call {
        PeerCall::EventPage { id } => encode(&store.local_event_page(&id).await),
        PeerCall::SeatMap { id } => encode(&store.local_seat_map(&id).await),
        PeerCall::SeatVersion { id } => encode(&store.local_seat_version(&id).await),
        PeerCall::SeatLayout { id } => encode(&store.local_seat_layout(&id).await),
        PeerCall::SeatStatuses { id } => encode(&store.local_seat_statuses(&id).await),
        PeerCall::WaitVersion { id, since, wait_ms } => {
            let wait = Duration::from_millis(wait_ms).min(LONG_POLL_MAX);
            encode(&store.local_wait_version(&id, since, wait).await)
        }
        PeerCall::Reserve { user, event_id, hold_id, selection, idempotency } => {
            encode(&store.local_reserve(&user, &event_id, &hold_id, selection, idempotency).await)
        }
        PeerCall::Confirm { user, hold_id, payment_token, idempotency } => {
            encode(&store.local_confirm(&user, &hold_id, &payment_token, idempotency).await)
        }
        PeerCall::Release { user, hold_id } => encode(&store.local_release(&user, &hold_id).await),
        PeerCall::Extend { user, hold_id } => encode(&store.local_extend(&user, &hold_id).await),
        PeerCall::Hold { user, hold_id } => encode(&store.local_hold(&user, &hold_id).await),
        PeerCall::Booking { user, booking_id } => encode(&store.local_booking(&user, &booking_id).await),
        PeerCall::QueueJoin { user, event_id } => encode(&store.local_queue_join(&user, &event_id).await),
        PeerCall::QueueLeave { user, event_id } => encode(&store.local_queue_leave(&user, &event_id).await),
        PeerCall::QueueView { user, event_id, linearizable } => {
            encode(&store.local_queue_view(&user, &event_id, linearizable).await)
        }
        PeerCall::BookingsHere { user } => encode(&PeerAnswer::Ok(store.bookings_here(&user))),
        PeerCall::AddNode { id, raft_addr, http_addr, store_id } => {
            encode(&store.local_add_node(id, raft_addr, http_addr, store_id).await)
        }
        PeerCall::SetSalesEnd { event_id, at } => encode(&store.local_set_sales_end(&event_id, at).await),
        PeerCall::CancelBooking { by, booking_id, idempotency } => {
            encode(&store.local_cancel_booking(by, &booking_id, idempotency).await)
        }
        PeerCall::SetRefundUntil { event_id, at } => {
            encode(&store.local_set_refund_until(&event_id, at).await)
        }
        PeerCall::CancelAndRefund { event_id, admin } => {
            encode(&store.local_cancel_and_refund(&event_id, &admin).await)
        }
        PeerCall::WaitlistJoin { user, event_id, section, quantity, offer_hold_id } => {
            encode(&store.local_waitlist_join(&user, &event_id, &section, quantity, &offer_hold_id).await)
        }
        PeerCall::WaitlistLeave { user, event_id } => {
            encode(&store.local_waitlist_leave(&user, &event_id).await)
        }
        PeerCall::WaitlistView { user, event_id, linearizable } => {
            encode(&store.local_waitlist_view(&user, &event_id, linearizable).await)
        }
        PeerCall::WebhookDeliveriesHere { webhook } => {
            encode(&PeerAnswer::Ok(store.webhook_deliveries_here(&webhook)))
        }
        PeerCall::Redeliver { webhook, delivery } => {
            encode(&store.local_redeliver(&webhook, &delivery).await)
        }
    }
}

/// Start one stream on this node only: the first item is a `PeerAnswer` of the start, the
/// others the stream's values.
async fn watch(store: Store, watch: PeerWatch) -> raft::PeerStream {
    match watch {
        PeerWatch::Seats { id, last_seen } => match store.local_watch_seats(&id, last_seen).await {
            Ok(w) => {
                let start = SeatStart { snapshot: w.snapshot, missed: w.missed, version: w.version };
                let first = encode(&PeerAnswer::Ok(start));
                futures::stream::iter([first]).chain(w.live.map(|set| encode(&set))).boxed()
            }
            Err(e) => futures::stream::iter([encode(&PeerAnswer::<SeatStart>::Err(e))]).boxed(),
        },
        PeerWatch::Version { id } => match store.local_watch_version(&id).await {
            Ok(rx) => {
                let first = encode(&PeerAnswer::Ok(*rx.borrow()));
                let rest = futures::stream::unfold(rx, |mut rx| async move {
                    rx.changed().await.ok()?;
                    let v = *rx.borrow_and_update();
                    Some((encode(&v), rx))
                });
                futures::stream::iter([first]).chain(rest).boxed()
            }
            Err(e) => futures::stream::iter([encode(&PeerAnswer::<u64>::Err(e))]).boxed(),
        },
    }
}

impl raft::PeerHandler for Handler {
    fn call(&self, payload: Vec<u8>) -> BoxFuture<'static, std::result::Result<Vec<u8>, String>> {
        let this = self.clone();
        Box::pin(async move {
            let call: PeerCall = decode(&payload)?;
            match this.store() {
                Ok(store) => Ok(serve(store, call).await),
                // Every answer type starts with the `Result` tag, so an error encodes alike.
                Err(e) => Ok(encode(&PeerAnswer::<()>::Err(e))),
            }
        })
    }

    fn watch(&self, payload: Vec<u8>) -> BoxFuture<'static, std::result::Result<raft::PeerStream, String>> {
        let this = self.clone();
        Box::pin(async move {
            let request: PeerWatch = decode(&payload)?;
            match this.store().and_then(|store| Ok((store, this.watches.acquire()?))) {
                Ok((store, permit)) => {
                    // The permit lives as long as the stream.
                    let stream = watch(store, request).await.map(move |item| {
                        let _held = &permit;
                        item
                    });
                    Ok(stream.boxed())
                }
                Err(e) => Ok(futures::stream::iter([encode(&PeerAnswer::<()>::Err(e))]).boxed()),
            }
        })
    }
}

// ---- the client side ------------------------------------------------------------------

/// Typed answers of [`PeerCall`]s.
pub(crate) trait Answer: DeserializeOwned + Send + 'static {}
impl<T: DeserializeOwned + Send + 'static> Answer for T {}

impl Store {
    /// Ask `nodes` in order until one serves `call`: the first answer that is not
    /// [`Error::Elsewhere`] wins. A peer that cannot be reached before the request left is
    /// skipped; one whose answer was lost after it left (`Network`) may have run it, so the
    /// outcome is unknown and no other peer is asked (a write must not run twice).
    pub(crate) async fn ask<T: Answer>(
        &self,
        nodes: &[NodeId],
        call: PeerCall,
        deadline: Duration,
    ) -> Result<T> {
        let payload = encode(&call);
        let mut last = Error::unavailable("no peer serves this now");
        for &node in nodes {
            let Some(addr) = self.raft_addr_of(node) else { continue };
            match self.inner.transport.peer_call(node, &addr, payload.clone(), deadline).await {
                Ok(bytes) => match decode::<PeerAnswer<T>>(&bytes) {
                    Ok(Err(Error::Elsewhere { .. })) => {
                        tracing::debug!(node, ?call, "the peer does not serve it either; asking the next");
                        last = Error::unavailable("the peers that serve this could not answer now");
                    }
                    Ok(answer) => {
                        metrics::counter!("boxoffice_peer_calls_total").increment(1);
                        return answer;
                    }
                    Err(e) => return Err(Error::Internal(format!("node {node} answered {call:?} with {e}"))),
                },
                Err(raft::TransportError::Network(reason)) if call.is_write() => {
                    return Err(Error::OutcomeUnknown {
                        reason: format!("node {node}: {reason}"),
                        hold_id: call.hold_id(),
                        booking_id: call.booking_id(),
                    })
                }
                Err(e) => {
                    tracing::debug!(node, error = %e, "peer call failed; asking the next peer");
                    last = Error::unavailable("the node that serves this could not be reached");
                }
            }
        }
        Err(last)
    }

    /// Open a stream on the first of `nodes` that serves `watch`: its first answer (the
    /// start) and the rest as undecoded bytes.
    pub(crate) async fn ask_watch<S: Answer>(
        &self,
        nodes: &[NodeId],
        watch: PeerWatch,
    ) -> Result<(S, futures::stream::BoxStream<'static, Vec<u8>>)> {
        let payload = encode(&watch);
        let mut last = Error::unavailable("no peer serves this now");
        for &node in nodes {
            let Some(addr) = self.raft_addr_of(node) else { continue };
            let mut stream = match self
                .inner
                .transport
                .peer_watch(node, &addr, payload.clone(), PEER_WATCH_START_TIMEOUT)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(node, error = %e, "peer watch failed; asking the next peer");
                    last = Error::unavailable("the node that serves this could not be reached");
                    continue;
                }
            };
            let first = match tokio::time::timeout(PEER_WATCH_START_TIMEOUT, stream.next()).await {
                Ok(Some(Ok(bytes))) => bytes,
                _ => {
                    last = Error::unavailable("the node that serves this did not start the stream");
                    continue;
                }
            };
            match decode::<PeerAnswer<S>>(&first) {
                Ok(Ok(start)) => {
                    // The rest until the peer ends it or the connection breaks.
                    let rest = stream
                        .take_while(|item| futures::future::ready(item.is_ok()))
                        .filter_map(|item| futures::future::ready(item.ok()))
                        .boxed();
                    return Ok((start, rest));
                }
                Ok(Err(Error::Elsewhere { .. })) => {
                    last = Error::unavailable("the peers that serve this could not answer now");
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(Error::Internal(format!("node {node} answered {watch:?} with {e}"))),
            }
        }
        Err(last)
    }

    /// A node's Raft (peer plane) address from the catalog.
    fn raft_addr_of(&self, node: NodeId) -> Option<String> {
        self.catalog_read(|c| {
            c.nodes.get(&node).filter(|n| !n.raft_addr.is_empty()).map(|n| n.raft_addr.clone())
        })
    }
}

impl PeerCall {
    /// A write whose outcome is unknown when its answer is lost (see [`Store::ask`]).
    fn is_write(&self) -> bool {
        matches!(
            self,
            PeerCall::Reserve { .. }
                | PeerCall::Confirm { .. }
                | PeerCall::Release { .. }
                | PeerCall::Extend { .. }
                | PeerCall::QueueJoin { .. }
                | PeerCall::QueueLeave { .. }
                | PeerCall::AddNode { .. }
                | PeerCall::CancelBooking { .. }
                | PeerCall::CancelAndRefund { .. }
                | PeerCall::WaitlistJoin { .. }
                | PeerCall::WaitlistLeave { .. }
        )
    }

    /// The booking a write touches, for an `outcome_unknown` answer.
    fn booking_id(&self) -> Option<String> {
        match self {
            PeerCall::CancelBooking { booking_id, .. } => Some(booking_id.to_string()),
            _ => None,
        }
    }

    /// The hold a write makes or touches, for an `outcome_unknown` answer.
    fn hold_id(&self) -> Option<String> {
        match self {
            PeerCall::Reserve { hold_id, .. }
            | PeerCall::Confirm { hold_id, .. }
            | PeerCall::Release { hold_id, .. }
            | PeerCall::Extend { hold_id, .. } => Some(hold_id.to_string()),
            _ => None,
        }
    }
}

/// Decode one streamed value, or end the stream on a bad one.
pub(crate) fn decode_item<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    decode(bytes).map_err(|e| tracing::warn!(error = %e, "bad item on a peer stream")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickets::catalog::NodeInfo;
    use tickets::inventory::Hold;

    #[test]
    fn an_error_answer_decodes_as_any_answer_type() {
        // The handler answers "starting" without knowing the call's answer type.
        let bytes = encode(&PeerAnswer::<()>::Err(Error::unavailable("this node is starting")));
        let as_hold: PeerAnswer<Hold> = decode(&bytes).unwrap();
        assert!(matches!(as_hold, Err(Error::Unavailable { .. })));
        let as_page: PeerAnswer<SeatStart> = decode(&bytes).unwrap();
        assert!(matches!(as_page, Err(Error::Unavailable { .. })));
    }

    #[test]
    fn relayed_streams_are_bounded_and_their_places_come_back() {
        let limit = WatchLimit::new(2);
        let (a, b) = (limit.acquire().unwrap(), limit.acquire().unwrap());
        assert!(matches!(limit.acquire(), Err(Error::Unavailable { .. })), "a third is refused");
        drop(a);
        let _c = limit.acquire().expect("a stream that ended gives its place back");
        drop(b);
    }

    #[test]
    fn answers_round_trip() {
        let info = NodeInfo {
            id: 4,
            raft_addr: "127.0.0.1:9".into(),
            http_addr: "127.0.0.1:8".into(),
            removed: false,
            joined_at: 5,
            store_id: 7,
            down: false,
        };
        let back: PeerAnswer<NodeInfo> = decode(&encode(&PeerAnswer::Ok(info.clone()))).unwrap();
        assert_eq!(back.unwrap(), info);
        let call = PeerCall::QueueView { user: "u".into(), event_id: "e".into(), linearizable: true };
        assert!(matches!(
            decode::<PeerCall>(&encode(&call)).unwrap(),
            PeerCall::QueueView { linearizable: true, .. }
        ));
        assert!(decode::<PeerCall>(b"\xff\xff\xff").is_err());
    }
}
