//! [`Store`]: the running store on one node, its groups and its writes. It finds an event's
//! group here (loaded or created on demand) or says which peers serve it
//! ([`crate::route::route`]), proposes commands (stamped by whichever node leads), and writes
//! the catalog. Start-up, health, shutdown and the background tasks are [`crate::node`]'s; the
//! local operations over one group are `booking`, `refund`, `browse` and `admin`; the front that
//! routes them is [`crate::routed`].

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use raft::{Group, NodeId, RaftHost};
use tickets::catalog::{
    Catalog, CatalogChange, CatalogCommand, Event, EventPatch, EventSpec, Performer, PerformerSpec, Venue,
    VenueSpec,
};
use tickets::inventory::{InventoryCommand, InventorySetup, Outcome};
use tickets::{Millis, Rejection};

use crate::bookings::BookingIndex;
use crate::error::{Error, Result};
use crate::ids;
use crate::machine::{GroupCommand, GroupMachine, GroupReply};
use crate::node::StoreOptions;
use crate::payment::PaymentProvider;
use crate::route::{route, EventView, Need, Route};
use crate::schedule::Scheduler;

/// The catalog group's id.
pub const CATALOG_GROUP: &str = "catalog";
/// How long `create_event` waits for the new event's inventory to be set up.
pub const EVENT_READY_WAIT: Duration = Duration::from_secs(10);

/// How long a booking write may take before it answers: 503 if it was not proposed by then
/// (nothing happened), 504 `outcome_unknown` if it was (it may still commit: clients look the
/// hold up or retry with their `Idempotency-Key`).
pub const BOOKING_WRITE_TIMEOUT: Duration = Duration::from_millis(1_500);
/// A leader whose quorum has not acknowledged it for this long answers 503 at once.
pub const QUORUM_ACK_MAX_AGE: Duration = Duration::from_millis(1_000);
/// Longest a write waits for a new leader when its group's leader's node is dead (see
/// [`Store::write_group`]): a failover of sleeping groups takes 0.2–2 s after the death is
/// seen.
pub const FAILOVER_WAIT: Duration = Duration::from_millis(2_000);

/// This node's wall clock, in ms since the epoch: what reads judge time by (a hold's status,
/// browse answers, never before the state's own clock) and what the scheduler's deadlines are
/// compared with. Proposals are not stamped with it: the group's leader stamps each entry
/// once, as it proposes it (`raft::group`, `stamp_clock_ms`).
pub fn wall_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}

#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub options: StoreOptions,
    pub host: RaftHost<GroupMachine>,
    pub catalog: Group<GroupMachine>,
    pub payments: Arc<dyn PaymentProvider>,
    /// Holds whose payment this process is running; a confirming hold not in here was
    /// left by a crash or an earlier leader and is finished by the driver.
    pub payments_inflight: Mutex<HashSet<String>>,
    /// Bookings whose refund this process is running (see [`crate::refund`]).
    pub refunds_inflight: Mutex<HashSet<String>>,
    pub shutdown: watch::Sender<bool>,
    /// Deadlines of the events placed here (expiry, queue, payments to finish).
    pub scheduler: Arc<Scheduler>,
    /// The bookings of the events placed here, by user.
    pub bookings: Arc<BookingIndex>,
    /// The gRPC transport to the peers: Raft RPCs and the peer plane ([`crate::peer`]).
    pub transport: Arc<raft::GrpcTransport>,
    /// This node's search index, fed from the catalog.
    pub search: Option<Arc<search::SearchIndex>>,
    /// Why this node must not serve (its data is not what the cluster registered), once known.
    pub refused: Mutex<Option<String>>,
    /// [`Store::out_of_service`] had a reason at the reconciler's last look: the request path
    /// reads this flag, not the catalog.
    pub out_of_service: std::sync::atomic::AtomicBool,
    /// Webhook deliveries: passes running, the delivery log (see [`crate::webhooks`]).
    pub webhooks: crate::webhooks::Webhooks,
    /// Event pages this node relayed from a replica (see [`crate::relay_cache`]).
    pub relayed_pages: crate::relay_cache::RelayCache<crate::browse::EventPage>,
    /// Queue joins waiting for their event's next batch (see [`crate::queue_joins`]).
    pub queue_joins: crate::queue_joins::QueueJoins,
}

impl Store {
    // ---- groups -------------------------------------------------------------------------

    /// The event's group here if it is placed here: loaded if stored, created if not
    /// (seeded, see [`Store::seed_event_group`], or empty on a replica placed after the
    /// creation). Idempotent.
    pub(crate) async fn open_event_group(&self, event: &Event) -> Result<Option<Group<GroupMachine>>> {
        if !event.replicas.contains(&self.node_id()) {
            return Ok(None);
        }
        let host = &self.inner.host;
        if !host.is_stored(&event.id) && !self.seed_event_group(event).await? {
            // A replica placed after the creation: an empty group that its leader fills.
            return Ok(Some(host.open_group(&event.id).await?));
        }
        Ok(Some(host.load(&event.id).await?))
    }

    /// Whether this node stores the event's group seeded: it was placed on it at creation
    /// and the event's replicas never moved. (After a move the group may have run for a
    /// while; a replica then starts empty and its leader fills it.)
    pub(crate) fn seeds_here(&self, event: &Event) -> bool {
        let me = self.node_id();
        let same = |a: &[NodeId], b: &[NodeId]| a.iter().collect::<BTreeSet<_>>() == b.iter().collect();
        event.initial_replicas.contains(&me) && same(&event.replicas, &event.initial_replicas)
    }

    /// Store the event's group here as a seeded group (`raft::RaftHost::create_seeded`) if this
    /// node [seeds it](Store::seeds_here) and has not yet: voters the creation's replicas, and
    /// the inventory's `Setup` as its first command, stamped with the creation time — so the
    /// event is set up on every replica and has a leader without any Raft round. Every
    /// replica derives both from the catalog's record of the event, which is the same on every
    /// node, and the parts of it they use never change: the venue, the prices, the limits, the
    /// hold time, the on-sale time and the queue (an update changes only names, performers
    /// and the start time). `true` if the group is stored here now (seeded now or before).
    pub(crate) async fn seed_event_group(&self, event: &Event) -> Result<bool> {
        let host = &self.inner.host;
        if host.is_stored(&event.id) {
            return Ok(true);
        }
        if !self.seeds_here(event) {
            return Ok(false);
        }
        let setup = self.catalog_read(|c| setup_for(c, event))?;
        let voters: BTreeSet<NodeId> = event.initial_replicas.iter().copied().collect();
        let seed = [GroupCommand::Inventory(InventoryCommand::Setup(setup))];
        host.create_seeded(&event.id, &voters, event.created_at, &seed).await?;
        Ok(true)
    }

    /// The event's group if it runs here and is set up; otherwise [`Error::Elsewhere`] with
    /// the peers that serve it (decided by [`crate::route::route`]), or 503.
    pub(crate) async fn event_group(&self, event_id: &str) -> Result<Group<GroupMachine>> {
        let me = self.node_id();
        // The hot path reads one flag of the catalog's event, not a copy of it.
        let placed_here = self
            .catalog_read(|c| c.events.get(event_id).map(|e| e.replicas.contains(&me)))
            .ok_or_else(|| Rejection::not_found("event"))?;
        let event = || {
            self.catalog_read(|c| c.events.get(event_id).cloned())
                .ok_or_else(|| Error::from(Rejection::not_found("event")))
        };
        let group = if placed_here {
            let group = match self.inner.host.group(event_id) {
                Some(g) => g,
                None => self
                    .open_event_group(&event()?)
                    .await?
                    .ok_or_else(|| Error::unavailable("event group not open"))?,
            };
            if group.read_local(|m| m.as_inventory().is_some_and(|i| i.is_set_up())) {
                return Ok(group);
            }
            Some(group)
        } else {
            None
        };
        let leader = group.as_ref().and_then(|g| g.leader());
        Err(self.elsewhere(self.route_event(event_id, false, leader, Need::Replica)?))
    }

    /// [`route`] for `event_id` as this node's catalog replica knows it, in one catalog read
    /// (no copy of the event).
    fn route_event(
        &self,
        event_id: &str,
        set_up_here: bool,
        leader: Option<NodeId>,
        need: Need,
    ) -> Result<Route> {
        let me = self.node_id();
        self.catalog_read(|c| {
            let event = c.events.get(event_id)?;
            let view = EventView { replicas: &event.replicas, set_up_here, leader };
            Some(route(me, &view, need, |n| askable(c, n)))
        })
        .ok_or_else(|| Rejection::not_found("event").into())
    }

    /// A route that is not [`Route::Here`] as the error that carries it.
    fn elsewhere(&self, route: Route) -> Error {
        match route {
            Route::Peers(nodes) => Error::Elsewhere { nodes },
            Route::Nowhere(reason) => Error::unavailable(reason),
            Route::Here => Error::Internal("routed here after all".into()),
        }
    }

    /// For confirms: the event's group if this node leads it (so payments and their recovery
    /// run in one place); otherwise [`Error::Elsewhere`] naming the leader, or fail fast when
    /// the group has no working quorum.
    pub(crate) async fn booking_group(&self, event_id: &str) -> Result<Group<GroupMachine>> {
        let group = self.event_group(event_id).await?;
        match self.route_event(event_id, true, group.leader(), Need::Leader)? {
            Route::Here => {
                if group.quorum_acked_within(QUORUM_ACK_MAX_AGE) == Some(false) {
                    return Err(Error::unavailable("the event's group has lost its quorum"));
                }
                Ok(group)
            }
            other => Err(self.elsewhere(other)),
        }
    }

    /// For booking writes that need no payment (reserve, release, extend, queue): the event's
    /// group on any replica — a follower sends the write to the leader in its next batch,
    /// over the Raft transport. Fails fast, without proposing, when the group has no leader
    /// here, and when this node leads it but lost its quorum. When its leader's node is dead
    /// the group is failing over: if a majority of its voters is alive the write waits up to
    /// [`FAILOVER_WAIT`] for the new leader (then 503); without one it answers 503 at once.
    /// Answering 503 at once during a failover made every client retry, and with a thousand
    /// of them the retries starved the survivors (measured: p50 30 s to serve 1,000 events
    /// after a kill, against 1.5 s with the writes waiting).
    pub(crate) async fn write_group(&self, event_id: &str) -> Result<Group<GroupMachine>> {
        let group = self.event_group(event_id).await?;
        match group.known_leader() {
            Some(l) if l == self.node_id() => {
                if group.quorum_acked_within(QUORUM_ACK_MAX_AGE) == Some(false) {
                    return Err(Error::unavailable("the event's group has lost its quorum"));
                }
            }
            Some(l) if self.inner.host.peer_status(l) == raft::PeerStatus::Dead => {
                // No majority of voters alive (this node counts as alive): no leader can be
                // elected, so waiting would only delay the 503.
                let voters = group.voters();
                let alive = voters
                    .iter()
                    .filter(|&&n| {
                        n == self.node_id() || self.inner.host.peer_status(n) != raft::PeerStatus::Dead
                    })
                    .count();
                if alive * 2 <= voters.len() {
                    return Err(Error::unavailable("the event's group has lost its quorum"));
                }
                if !group.wait_leader_other_than(l, FAILOVER_WAIT).await {
                    return Err(Error::unavailable("the event's leader is not reachable"));
                }
                if group.leader().is_some_and(|n| self.inner.host.peer_status(n) == raft::PeerStatus::Dead) {
                    return Err(Error::unavailable("the event's leader is not reachable"));
                }
            }
            Some(_) => {}
            None => return Err(Error::unavailable("the event's group has no leader")),
        }
        Ok(group)
    }

    pub fn host(&self) -> &RaftHost<GroupMachine> {
        &self.inner.host
    }

    pub fn catalog_group(&self) -> &Group<GroupMachine> {
        &self.inner.catalog
    }

    // ---- proposing ----------------------------------------------------------------------

    pub(crate) async fn write_catalog(&self, command: CatalogCommand) -> Result<CatalogChange> {
        let reply = self.inner.catalog.write(GroupCommand::Catalog(command)).await?;
        match reply {
            GroupReply::Catalog(r) => Ok(r?),
            GroupReply::Inventory(_) => Err(Error::Internal("catalog answered as an inventory".into())),
        }
    }

    pub(crate) async fn write_inventory(
        &self,
        group: &Group<GroupMachine>,
        command: InventoryCommand,
    ) -> Result<Outcome> {
        let reply = group.write(GroupCommand::Inventory(command)).await?;
        match reply {
            GroupReply::Inventory(r) => Ok(r?),
            GroupReply::Catalog(_) => Err(Error::Internal("inventory answered as the catalog".into())),
        }
    }

    // ---- catalog --------------------------------------------------------------------------

    /// Read the local catalog replica (possibly a little stale on a follower).
    pub fn catalog_read<T>(&self, f: impl FnOnce(&Catalog) -> T) -> T {
        self.inner.catalog.read_local(|m| f(m.as_catalog().expect("the catalog group hosts the catalog")))
    }

    pub fn catalog_version(&self) -> u64 {
        self.inner.catalog.applied_index()
    }

    pub async fn create_venue(&self, spec: VenueSpec) -> Result<Venue> {
        spec.validate()?;
        match self.write_catalog(CatalogCommand::CreateVenue { id: ids::venue_id(), spec }).await? {
            CatalogChange::Venue(v) => Ok(v),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// Replace venue `id`'s spec; refused (`Conflict`) once an event is on it.
    pub async fn update_venue(&self, id: &str, spec: VenueSpec) -> Result<Venue> {
        spec.validate()?;
        match self.write_catalog(CatalogCommand::UpdateVenue { id: id.to_string(), spec }).await? {
            CatalogChange::Venue(v) => Ok(v),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// Replace performer `id`'s name and genre.
    pub async fn update_performer(&self, id: &str, spec: PerformerSpec) -> Result<Performer> {
        spec.validate()?;
        match self.write_catalog(CatalogCommand::UpdatePerformer { id: id.to_string(), spec }).await? {
            CatalogChange::Performer(p) => Ok(p),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// Register a webhook endpoint.
    pub async fn create_webhook(
        &self,
        spec: tickets::webhooks::WebhookSpec,
    ) -> Result<tickets::webhooks::Webhook> {
        spec.validate()?;
        match self.write_catalog(CatalogCommand::CreateWebhook { id: ids::webhook_id(), spec }).await? {
            CatalogChange::Webhook(w) => Ok(*w),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// Remove a webhook endpoint; its notices stop with this entry.
    pub async fn delete_webhook(&self, id: &str) -> Result<tickets::webhooks::Webhook> {
        match self.write_catalog(CatalogCommand::DeleteWebhook { id: id.to_string() }).await? {
            CatalogChange::Webhook(w) => Ok(*w),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// The endpoints, from the local catalog replica.
    pub fn webhooks(&self) -> Vec<tickets::webhooks::Webhook> {
        self.catalog_read(|c| c.webhooks.values().cloned().collect())
    }

    pub async fn create_performer(&self, spec: PerformerSpec) -> Result<Performer> {
        spec.validate()?;
        match self.write_catalog(CatalogCommand::CreatePerformer { id: ids::performer_id(), spec }).await? {
            CatalogChange::Performer(p) => Ok(p),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// Create the event in the catalog, then its inventory group, seeded (see
    /// [`Store::seed_event_group`]): no openraft instance, election or entry until the event
    /// is first used. The answer comes once this node stores the group (or, on a
    /// node that does not host the event, once a replica serves it), so a reserve right
    /// after it works. If the group is
    /// not ready within [`EVENT_READY_WAIT`] the event still exists (the catalog write
    /// committed), so the answer is still the event: an error here would hide its id and
    /// invite a retry that creates a second one. Booking calls before the group is ready
    /// answer 503 (retryable) or are forwarded.
    pub async fn create_event(&self, spec: EventSpec) -> Result<Event> {
        spec.validate()?;
        if !self.is_ready() {
            return Err(Error::unavailable("this node is not part of a formed cluster yet"));
        }
        let event =
            match self.write_catalog(CatalogCommand::CreateEvent { id: ids::event_id(), spec }).await? {
                CatalogChange::Event(e) => e,
                other => return Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
            };
        if let Err(e) = self.await_event_ready(&event).await {
            tracing::warn!(event = %event.id, "created, but its inventory is not ready yet: {e}");
        }
        Ok(*event)
    }

    /// Wait (bounded) until the new event's group is stored here, or serves on another node,
    /// so that a reserve right after the creation answer works.
    async fn await_event_ready(&self, event: &Event) -> Result<()> {
        let deadline = tokio::time::Instant::now() + EVENT_READY_WAIT;
        loop {
            if event.replicas.contains(&self.node_id()) {
                // Seeded here: set up, with a leader. (A replica placed after the creation has
                // nothing to wait for either: the leader fills it.)
                if self.seed_event_group(event).await? || self.open_event_group(event).await?.is_some() {
                    return Ok(());
                }
            } else {
                let call = crate::peer::PeerCall::SeatVersion { id: event.id.clone().into() };
                if self.ask::<u64>(&event.replicas, call, Duration::from_secs(2)).await.is_ok() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::unavailable("the event was created but its inventory is not ready yet"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Change the catalog's record; a new end of sales (a moved `starts_at` or `sales_end`)
    /// then goes to the inventory, which decides reserves by it, on the event's leader (asked
    /// over the peer plane when that is another node). If that write fails, the answer is its
    /// error although the catalog changed: the same PATCH again repeats it (and the event
    /// leader's reconciler also repairs a difference it finds in a group in memory).
    pub async fn update_event(&self, id: &str, patch: EventPatch) -> Result<Event> {
        let moves_sales_end = patch.starts_at.is_some() || patch.sales_end.is_some();
        let moves_refund_until = patch.starts_at.is_some() || patch.refund_until.is_some();
        let event = match self.write_catalog(CatalogCommand::UpdateEvent { id: id.into(), patch }).await? {
            CatalogChange::Event(e) => e,
            other => return Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        };
        if moves_sales_end {
            self.set_sales_end(id, event.spec.sales_end()).await?;
        }
        if moves_refund_until {
            self.set_refund_until(id, event.spec.refund_until()).await?;
        }
        Ok(*event)
    }

    /// [`InventoryCommand::SetRefundUntil`] on this node, which must lead the event's group.
    pub(crate) async fn local_set_refund_until(&self, event_id: &str, at: tickets::Millis) -> Result<()> {
        let group = self.booking_group(event_id).await?;
        self.write_inventory(&group, InventoryCommand::SetRefundUntil { at }).await?;
        Ok(())
    }

    /// [`InventoryCommand::SetSalesEnd`] on this node, which must lead the event's group.
    pub(crate) async fn local_set_sales_end(&self, event_id: &str, at: tickets::Millis) -> Result<()> {
        let group = self.booking_group(event_id).await?;
        self.write_inventory(&group, InventoryCommand::SetSalesEnd { at }).await?;
        Ok(())
    }

    /// Cancel in the catalog (browse shows it), then in the inventory, by `admin`, on the
    /// event's leader (asked over the peer plane when that is another node): no more sales,
    /// and every confirmed booking begins its refund (one `CancelAndRefund`; the scheduler
    /// runs the refunds, see [`crate::refund`]). Again on a cancelled event, it begins the
    /// refunds of bookings confirmed again since (a declined refund). If the inventory write
    /// fails, the answer is its error although the catalog changed: the same cancel again
    /// repeats it (and the event leader's reconciler carries a first cancellation over).
    pub async fn cancel_event(&self, id: &str, admin: &str) -> Result<Event> {
        let event = match self.write_catalog(CatalogCommand::CancelEvent { id: id.into() }).await? {
            CatalogChange::Event(e) => e,
            other => return Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        };
        self.cancel_and_refund(id, admin).await?;
        Ok(*event)
    }

    /// [`InventoryCommand::CancelAndRefund`] on this node, which must lead the event's group.
    pub(crate) async fn local_cancel_and_refund(&self, event_id: &str, admin: &str) -> Result<()> {
        let group = self.booking_group(event_id).await?;
        let command = InventoryCommand::CancelAndRefund { admin: admin.into() };
        self.write_inventory(&group, command).await?;
        Ok(())
    }
}

/// Whether peer `id` can be asked (Raft RPCs, peer requests): registered with an address and
/// not removed.
pub(crate) fn askable(catalog: &Catalog, id: NodeId) -> bool {
    catalog.nodes.get(&id).is_some_and(|n| !n.removed && !n.raft_addr.is_empty())
}

/// The `Setup` command of an event's inventory, from the catalog.
fn setup_for(catalog: &Catalog, event: &Event) -> Result<InventorySetup> {
    let venue = catalog
        .venues
        .get(&event.spec.venue_id)
        .ok_or_else(|| Error::Internal(format!("event {} names a missing venue", event.id)))?;
    Ok(InventorySetup {
        event_id: event.id.clone(),
        sections: venue.spec.sections.clone(),
        prices: event.spec.prices.clone(),
        currency: event.spec.currency.clone(),
        per_user_limit: event.spec.per_user_limit,
        hold_ms: event.spec.hold_seconds * 1_000,
        on_sale_at: event.spec.on_sale_at,
        sales_end: event.spec.sales_end(),
        queue: event.spec.queue,
        refund_until: event.spec.refund_until(),
        waitlist_offer_ms: event.spec.waitlist_offer_ms(),
    })
}
