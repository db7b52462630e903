//! The node: start-up, health and shutdown of the store on one machine, and the background
//! tasks it runs, each handed only what it needs.
//!
//! Start-up opens the catalog group, reopens the event groups that were running when the node
//! stopped (the others stay on disk until something needs them: `raft`'s residency), and
//! initializes the catalog only on a pristine node that is the cluster's initializer (one-node
//! mode, or the lowest id of `--peers`); everything after that — registering, joining, opening
//! and initializing event groups, moving replicas — is the reconciler's, so a crash at any
//! point heals.
//!
//! The tasks and what they are given:
//! - the search feed ([`crate::feed`]): the catalog group, the index, the shutdown signal;
//! - the deadline scheduler ([`crate::schedule`]): its table, the shutdown signal, and the
//!   work it hands due events to (the store's local operations, behind
//!   [`crate::schedule::DueWork`]);
//! - the reconciler ([`crate::reconcile`]): the store and the shutdown signal — what it does
//!   is drive the store's own operations (formation, joins, placement, replica moves) from
//!   the catalog; its own state (the replica moves running) is its own, not the store's;
//! - the peer plane's handler ([`crate::peer`]): the store's local operations, bound once the
//!   store exists.
//!
//! The rest of the store: [`crate::store`] (groups, proposing, catalog writes), the local
//! operations over one group (`booking`, `refund`, `browse`, `admin`), and the front that routes
//! them ([`crate::routed`]).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use raft::{HostConfig, NodeAddr, NodeId, RaftHost};

use crate::bookings::BookingIndex;
use crate::error::{Error, Result};
use crate::machine::{GroupMachine, NodeHooks};
use crate::payment::PaymentProvider;
use crate::schedule::Scheduler;
use crate::store::{Inner, Store, CATALOG_GROUP};

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
                webhooks: Default::default(),
                shutdown,
                scheduler,
                bookings,
                transport,
                search: search.clone(),
                refused: Mutex::new(None),
                out_of_service: std::sync::atomic::AtomicBool::new(false),
                relayed_pages: Default::default(),
                queue_joins: Default::default(),
            }),
        };
        peer.bind(store.clone());
        let stop = || store.inner.shutdown.subscribe();
        if let Some(index) = search {
            tokio::spawn(crate::feed::run(store.inner.catalog.clone(), index, stop()));
        }
        tokio::spawn(crate::schedule::run(store.inner.scheduler.clone(), store.clone(), stop()));
        tokio::spawn(crate::reconcile::run(store.clone(), stop()));
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
