//! [`Store`]: the running store on one node. It hosts the catalog group and the event
//! groups placed here, serves Raft RPCs, routes requests (the group here, or where to
//! forward them), proposes commands (stamped by whichever node leads), and starts the
//! deadline scheduler ([`crate::schedule`]), the reconciler ([`crate::reconcile`]) and the
//! search feed ([`crate::feed`]).
//!
//! Start-up opens the catalog group, reopens the event groups that were running when the node
//! stopped (the others stay on disk until something needs them: `raft`'s residency), and
//! initializes the catalog only on a pristine node that is the cluster's initializer (one-node
//! mode, or the lowest id of `--peers`); everything after that — registering, joining, opening
//! and initializing event groups, moving replicas — is the reconciler's, so a crash at any
//! point heals.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::info;

use raft::{Group, HostConfig, NodeAddr, NodeId, RaftHost};
use tickets::catalog::{
    Catalog, CatalogChange, CatalogCommand, Event, EventPatch, EventSpec, Performer, PerformerSpec, Venue,
    VenueSpec,
};
use tickets::inventory::{InventoryCommand, InventorySetup, Outcome};
use tickets::{Millis, Rejection};

use crate::bookings::BookingIndex;
use crate::error::{Error, Result};
use crate::ids;
use crate::machine::{GroupCommand, GroupMachine, GroupReply, NodeHooks};
use crate::payment::PaymentProvider;
use crate::route::{route, EventView, Need, Route};
use crate::schedule::Scheduler;

/// The catalog group's id.
pub const CATALOG_GROUP: &str = "catalog";
/// How long `create_event` waits for the new event's inventory to be set up.
pub const EVENT_READY_WAIT: Duration = Duration::from_secs(10);

/// Options for [`Store::start`]; `node` fills them from its configuration.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub node_id: NodeId,
    /// This node's Raft (gRPC) address as peers reach it.
    pub raft_addr: String,
    /// This node's HTTP address as clients reach it (recorded in the catalog).
    pub http_addr: String,
    /// Static formation: every node's Raft address, this node's included. Empty (and no
    /// `join`) means a one-node cluster.
    pub peers: BTreeMap<NodeId, String>,
    /// This node joined a running cluster (`--join`, done before the store starts: see
    /// [`crate::join`]): it never initializes one.
    pub join: Option<String>,
    /// Peers authenticate Raft RPCs with it.
    pub cluster_secret: Option<String>,
    /// Mutual TLS between peers (the Raft port and the calls to other nodes' Raft ports);
    /// `None`: plain HTTP/2.
    pub peer_tls: Option<raft::PeerTls>,
    /// Where the groups' snapshot files go (beside the sled database).
    pub snapshot_dir: PathBuf,
    /// A node silent this long is down for good: the catalog leader gives its event replicas
    /// to other nodes ([`tickets::catalog::CatalogCommand::MarkNodeDown`]).
    pub dead_after: Duration,
    pub raft: HostConfig,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            node_id: 1,
            raft_addr: "127.0.0.1:9080".into(),
            http_addr: "127.0.0.1:8080".into(),
            peers: BTreeMap::new(),
            join: None,
            cluster_secret: None,
            peer_tls: None,
            snapshot_dir: PathBuf::from("data/snapshots"),
            dead_after: DEAD_AFTER_DEFAULT,
            raft: HostConfig::default(),
        }
    }
}

/// How long a node may be silent before its replicas are made again elsewhere (CockroachDB's
/// `server.time_until_store_dead` is 5 minutes too): long enough for a restart or a reboot,
/// short enough that a second failure is unlikely in the meantime.
pub const DEAD_AFTER_DEFAULT: Duration = Duration::from_secs(300);
/// Replica moves (learner catch-up by snapshot, then a membership change) that run at once
/// on one node: a lost node's thousand replicas must not all stream snapshots together.
pub const MOVES_CONCURRENT_MAX: usize = 8;

/// Most voters of the catalog group; further nodes follow it as learners.
pub const CATALOG_VOTERS_MAX: usize = 5;
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
    /// Event groups whose membership change is running (one at a time per group).
    pub reconciling: Mutex<HashSet<String>>,
    /// The gRPC transport to the peers: Raft RPCs and the peer plane ([`crate::peer`]).
    pub transport: Arc<raft::GrpcTransport>,
    /// This node's search index, fed from the catalog.
    pub search: Option<Arc<search::SearchIndex>>,
    /// Why this node must not serve (its data is not what the cluster registered), once known.
    pub refused: Mutex<Option<String>>,
    /// Bounds the replica moves running at once ([`MOVES_CONCURRENT_MAX`]).
    pub moves: tokio::sync::Semaphore,
    /// [`Store::out_of_service`] had a reason at the reconciler's last look: the request path
    /// reads this flag, not the catalog.
    pub out_of_service: std::sync::atomic::AtomicBool,
    /// Event pages this node relayed from a replica (see [`crate::relay_cache`]).
    pub relayed_pages: crate::relay_cache::RelayCache<crate::browse::EventPage>,
}

impl Store {
    /// Open the groups stored in `db`, serve Raft RPCs on `raft_listener`, and start
    /// forming or rejoining the cluster in the background. Returns before the cluster is
    /// formed: [`Store::is_ready`] says when it is.
    pub async fn start(
        options: StoreOptions,
        db: sled::Db,
        payments: Arc<dyn PaymentProvider>,
        raft_listener: tokio::net::TcpListener,
        search: Option<Arc<search::SearchIndex>>,
    ) -> Result<Store> {
        let transport = Arc::new(raft::GrpcTransport::with_config(
            options.cluster_secret.clone(),
            raft::GrpcConfig { tls: options.peer_tls.clone(), ..Default::default() },
        )?);
        let host_config = HostConfig { node_id: options.node_id, ..options.raft.clone() };
        let scheduler =
            Arc::new(Scheduler::open(db.open_tree("index:deadlines").map_err(raft::RaftError::from)?));
        let bookings = Arc::new(BookingIndex::open(&db).map_err(raft::RaftError::from)?);
        let hooks: Arc<dyn NodeHooks> =
            Arc::new(Hooks { scheduler: scheduler.clone(), bookings: bookings.clone() });
        let factory: raft::MachineFactory<GroupMachine> = Arc::new(move |gid: &str| {
            if gid == CATALOG_GROUP {
                GroupMachine::catalog()
            } else {
                GroupMachine::inventory_on(gid, hooks.clone())
            }
        });
        let host = RaftHost::new(host_config, db, options.snapshot_dir.clone(), transport.clone(), factory)?;
        transport.set_identity(host.identity().clone());
        let (shutdown, _) = watch::channel(false);
        let peer = crate::peer::Handler::default();
        {
            let (host, secret, tls, mut stop) = (
                host.clone(),
                options.cluster_secret.clone(),
                options.peer_tls.clone(),
                shutdown.subscribe(),
            );
            let handler: Arc<dyn raft::PeerHandler> = Arc::new(peer.clone());
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) =
                    raft::serve_node(host, raft_listener, secret, tls, Some(handler), stopped).await
                {
                    tracing::error!(error = %e, "raft server stopped");
                }
            });
        }
        let catalog = host.open_group(CATALOG_GROUP).await?;
        let reopened = host.recover().await?;
        if !reopened.is_empty() {
            info!(groups = reopened.len(), "reopened the event groups that ran when the node stopped");
        }
        if !catalog.is_initialized().await {
            let initializer = options.join.is_none()
                && options.peers.keys().next().copied().is_none_or(|id| id == options.node_id);
            check_pristine(&host, &options, initializer).await?;
            if initializer {
                let members = if options.peers.is_empty() {
                    self_membership(&options)
                } else {
                    options
                        .peers
                        .iter()
                        .take(CATALOG_VOTERS_MAX)
                        .map(|(id, raft_addr)| {
                            let http_addr = if *id == options.node_id {
                                options.http_addr.clone()
                            } else {
                                String::new()
                            };
                            (*id, NodeAddr { raft_addr: raft_addr.clone(), http_addr })
                        })
                        .collect()
                };
                if host.identity().cluster().is_none() {
                    host.identity().adopt_cluster(&uuid::Uuid::new_v4().to_string())?;
                }
                info!(
                    node = options.node_id,
                    voters = members.len(),
                    cluster = host.identity().cluster().unwrap_or_default(),
                    "pristine cluster: initializing the catalog group"
                );
                catalog.initialize(members).await?;
            }
        }
        let store = Store {
            inner: Arc::new(Inner {
                options,
                host,
                catalog,
                payments,
                payments_inflight: Mutex::new(HashSet::new()),
                refunds_inflight: Mutex::new(HashSet::new()),
                shutdown,
                scheduler,
                bookings,
                reconciling: Mutex::new(HashSet::new()),
                transport,
                search: search.clone(),
                refused: Mutex::new(None),
                moves: tokio::sync::Semaphore::new(MOVES_CONCURRENT_MAX),
                out_of_service: std::sync::atomic::AtomicBool::new(false),
                relayed_pages: Default::default(),
            }),
        };
        peer.bind(store.clone());
        if let Some(index) = search {
            tokio::spawn(crate::feed::run(store.clone(), index));
        }
        tokio::spawn(crate::reconcile::run(store.clone()));
        tokio::spawn(crate::schedule::run(store.clone()));
        Ok(store)
    }

    /// Record why this node must not serve (logged once, loudly): see [`Store::out_of_service`].
    pub(crate) fn refuse(&self, reason: String) {
        let mut refused = self.inner.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.is_none() {
            tracing::error!(node = self.node_id(), "{reason}");
        }
        *refused = Some(reason);
        self.inner.out_of_service.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Why this node does not serve requests, if it does not: its data directory is not the
    /// one the cluster registered under its id (wiped or replaced: its peers' RPCs are refused,
    /// see `raft::Identity`), its storage failed (a full disk: `RaftHost::storage_failure`;
    /// the binary restarts in place once the disk takes writes), or it was removed from the
    /// cluster. `None` while it serves or is
    /// still forming ([`Store::is_ready`] says which).
    pub fn out_of_service(&self) -> Option<String> {
        if let Some(reason) = self.inner.refused.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Some(reason);
        }
        if let Some(reason) = self.host().identity().refusal() {
            return Some(reason);
        }
        if let Some(e) = self.host().storage_failure() {
            return Some(format!(
                "this node's storage failed ({e}); it takes no writes until it restarts on a disk with room"
            ));
        }
        let me = self.node_id();
        self.catalog_read(|c| c.nodes.get(&me).is_some_and(|n| n.removed)).then(|| {
            format!(
                "node {me} was removed from the cluster; it no longer serves (start a new node with --join)"
            )
        })
    }

    /// [`Store::out_of_service`] as of the reconciler's last look (it looks on every catalog
    /// change and every second): one atomic load, for the request path.
    pub fn serving(&self) -> bool {
        !self.inner.out_of_service.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Look again whether this node is out of service (the reconciler calls this).
    pub(crate) fn check_service(&self) {
        let out = self.out_of_service().is_some();
        self.inner.out_of_service.store(out, std::sync::atomic::Ordering::Relaxed);
    }

    /// `(live, members)`: how many of the cluster's nodes (not removed) this node reaches,
    /// itself included, by its own liveness view.
    pub fn reachable(&self) -> (usize, usize) {
        let me = self.node_id();
        let host = self.host();
        self.catalog_read(|c| {
            let members: Vec<u64> = c.nodes.values().filter(|n| !n.removed).map(|n| n.id).collect();
            let live = members
                .iter()
                .filter(|id| **id == me || host.peer_status(**id) == raft::PeerStatus::Live)
                .count();
            (live, members.len())
        })
    }

    /// Part of a formed cluster: the catalog has a leader and this node is registered.
    pub fn is_ready(&self) -> bool {
        self.inner.catalog.leader().is_some()
            && self.catalog_read(|c| c.nodes.get(&self.node_id()).is_some_and(|n| !n.removed))
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.options.node_id
    }

    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Stop the node's tasks and raft groups. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.host.shutdown().await;
    }

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
        Ok(event)
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
                let call = crate::peer::PeerCall::SeatVersion { id: event.id.clone() };
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
        let event =
            match self.write_catalog(CatalogCommand::UpdateEvent { id: id.to_string(), patch }).await? {
                CatalogChange::Event(e) => e,
                other => return Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
            };
        if moves_sales_end {
            self.set_sales_end(id, event.spec.sales_end()).await?;
        }
        if moves_refund_until {
            self.set_refund_until(id, event.spec.refund_until()).await?;
        }
        Ok(event)
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
        let event = match self.write_catalog(CatalogCommand::CancelEvent { id: id.to_string() }).await? {
            CatalogChange::Event(e) => e,
            other => return Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        };
        self.cancel_and_refund(id, admin).await?;
        Ok(event)
    }

    /// [`InventoryCommand::CancelAndRefund`] on this node, which must lead the event's group.
    pub(crate) async fn local_cancel_and_refund(&self, event_id: &str, admin: &str) -> Result<()> {
        let group = self.booking_group(event_id).await?;
        let command = InventoryCommand::CancelAndRefund { admin: admin.to_string() };
        self.write_inventory(&group, command).await?;
        Ok(())
    }
}

/// Whether peer `id` can be asked (Raft RPCs, peer requests): registered with an address and
/// not removed.
pub(crate) fn askable(catalog: &Catalog, id: NodeId) -> bool {
    catalog.nodes.get(&id).is_some_and(|n| !n.removed && !n.raft_addr.is_empty())
}

/// How long a pristine node waits for each `--peers` peer to say who it is.
pub const IDENTIFY_TIMEOUT: Duration = Duration::from_millis(1_500);

/// A node with no cluster data asks its `--peers` who they are before it takes part, and
/// refuses to start when that would be a mistake (see `raft::Identity`):
/// - a peer knows this node's id registered with another data directory: this node was wiped
///   (or is another machine given its id), and Raft cannot trust a node that forgot its votes;
/// - this node would initialize a new cluster while a peer already belongs to one (a wiped
///   initializer, or a wrong `--peers` list).
///
/// A peer that does not answer is not evidence either way (at a first start the peers come up
/// in any order); the RPC checks of `raft::Identity` still stand behind this.
async fn check_pristine(
    host: &RaftHost<GroupMachine>,
    options: &StoreOptions,
    initializer: bool,
) -> Result<()> {
    let me = options.node_id;
    let mine = host.identity().store_id();
    let asks = options.peers.iter().filter(|(id, _)| **id != me).map(|(id, raft_addr)| async move {
        let addr = NodeAddr { raft_addr: raft_addr.clone(), http_addr: String::new() };
        (*id, raft_addr, tokio::time::timeout(IDENTIFY_TIMEOUT, host.identify(*id, &addr)).await)
    });
    for (peer, addr, answer) in futures::future::join_all(asks).await {
        let Ok(Ok(answer)) = answer else { continue };
        let Some(cluster) = answer.cluster else { continue };
        if let Some(registered) = answer.registered_as.filter(|r| *r != mine) {
            return Err(Error::Refused(format!(
                "node {peer} at {addr} knows node {me} as the data directory with store id {registered:016x}, \
                 but this node's data directory is new (store {mine:016x}): node {me}'s data was lost or \
                 this is another machine. Raft cannot trust a node that forgot its votes, so this node will not \
                 start as node {me}. Remove node {me} (DELETE /v1/cluster/nodes/{me}) and start this machine \
                 with an empty data directory and --join (docs/operations.md, \"Replace a dead node\")"
            )));
        }
        if initializer {
            return Err(Error::Refused(format!(
                "node {peer} at {addr} already belongs to cluster {cluster}, and this node has no cluster data: \
                 it will not initialize a second cluster beside it. If this node's data was lost, remove node \
                 {me} and join with --join; if --peers is wrong, fix it (docs/operations.md)"
            )));
        }
    }
    Ok(())
}

fn self_membership(options: &StoreOptions) -> BTreeMap<NodeId, NodeAddr> {
    BTreeMap::from([(
        options.node_id,
        NodeAddr { raft_addr: options.raft_addr.clone(), http_addr: options.http_addr.clone() },
    )])
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
    })
}

/// What the node's inventories report to (see [`NodeHooks`]).
struct Hooks {
    scheduler: Arc<Scheduler>,
    bookings: Arc<BookingIndex>,
}

impl NodeHooks for Hooks {
    fn deadline(&self, event_id: &str, at: Option<tickets::Millis>) {
        self.scheduler.set(event_id, at);
    }

    fn booked(&self, event_id: &str, bookings: &[tickets::inventory::Booking]) {
        self.bookings.add(event_id, bookings);
    }
}
