//! [`Store`]: the running store on one node. It hosts the catalog group and the event
//! groups, stamps each proposal with the leader's wall-clock time, creates an event's
//! group when the event is created, and starts the per-event driver (expiry, queue,
//! payment recovery, see [`crate::driver`]).
//!
//! Start-up is a reconciliation, so a crash at any point heals: open every group stored
//! on disk; initialize the catalog if this is a pristine one-node cluster; then for every
//! event in the catalog make sure its group is open, initialized and set up.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{info, warn};

use raft::{Group, HostConfig, LocalTransport, NodeAddr, NodeId, RaftHost};
use tickets::catalog::{
    Catalog, CatalogChange, CatalogCommand, Event, EventPatch, EventSpec, Performer, PerformerSpec, Venue,
    VenueSpec,
};
use tickets::inventory::{InventoryCommand, InventorySetup, Outcome};
use tickets::{Millis, Rejection};

use crate::error::{Error, Result};
use crate::ids;
use crate::machine::{GroupCommand, GroupMachine, GroupReply};
use crate::payment::PaymentProvider;

/// The catalog group's id.
pub const CATALOG_GROUP: &str = "catalog";
/// How long start-up waits for the catalog group to elect a leader.
pub const STARTUP_LEADER_WAIT: Duration = Duration::from_secs(10);

/// Options for [`Store::start`]; `node` fills them from its configuration.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub node_id: NodeId,
    pub raft_addr: String,
    pub http_addr: String,
    pub raft: HostConfig,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            node_id: 1,
            raft_addr: "127.0.0.1:9080".into(),
            http_addr: "127.0.0.1:8080".into(),
            raft: HostConfig::default(),
        }
    }
}

/// The leader's wall clock, in ms since the epoch. Only ever used to stamp proposals.
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
    pub shutdown: watch::Sender<bool>,
    drivers: Mutex<HashSet<String>>,
}

impl Store {
    /// Open the groups stored in `db`, form a one-node cluster if pristine, and reconcile
    /// the event groups with the catalog.
    pub async fn start(
        options: StoreOptions,
        db: sled::Db,
        payments: Arc<dyn PaymentProvider>,
    ) -> Result<Store> {
        let transport = Arc::new(LocalTransport::default());
        let host = RaftHost::new(options.raft.clone(), db, transport.clone())?;
        transport.register(&host);
        let catalog = host.open_group(CATALOG_GROUP, GroupMachine::catalog()).await?;
        if !catalog.is_initialized().await {
            info!(node = options.node_id, "pristine node: initializing a one-node cluster");
            catalog.initialize(self_membership(&options)).await?;
        }
        let (shutdown, _) = watch::channel(false);
        let store = Store {
            inner: Arc::new(Inner {
                options,
                host,
                catalog,
                payments,
                payments_inflight: Mutex::new(HashSet::new()),
                shutdown,
                drivers: Mutex::new(HashSet::new()),
            }),
        };
        store.wait_for_leader(&store.inner.catalog, STARTUP_LEADER_WAIT).await?;
        store.reconcile().await?;
        Ok(store)
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.options.node_id
    }

    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Stop drivers and raft groups. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.host.shutdown().await;
    }

    async fn wait_for_leader(&self, group: &Group<GroupMachine>, limit: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        while group.leader().is_none() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::unavailable(format!("group {} has no leader", group.id())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Bring every event of the catalog to a running, set-up group.
    async fn reconcile(&self) -> Result<()> {
        for gid in self.inner.host.stored_groups() {
            if ids::is_event_id(&gid) {
                self.inner.host.open_group(&gid, GroupMachine::inventory()).await?;
            }
        }
        let events: Vec<Event> = self.catalog_read(|c| c.events.values().cloned().collect());
        for event in events {
            if let Err(e) = self.ensure_event_group(&event).await {
                warn!(event = %event.id, error = %e, "event group not ready at start-up; will retry on use");
            }
        }
        Ok(())
    }

    // ---- groups -------------------------------------------------------------------------

    /// Open, initialize and set up the event's group, and start its driver. Idempotent.
    pub(crate) async fn ensure_event_group(&self, event: &Event) -> Result<Group<GroupMachine>> {
        let group = self.inner.host.open_group(&event.id, GroupMachine::inventory()).await?;
        if !group.is_initialized().await {
            group.initialize(self_membership(&self.inner.options)).await?;
        }
        self.wait_for_leader(&group, STARTUP_LEADER_WAIT).await?;
        let set_up = group.read_local(|m| m.as_inventory().is_some_and(|i| i.is_set_up()));
        if !set_up {
            let setup = self.catalog_read(|c| setup_for(c, event))?;
            match self.write_inventory(&group, InventoryCommand::Setup(setup)).await {
                Ok(_) | Err(Error::Rejected(Rejection::Invalid { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        self.start_driver(&group);
        Ok(group)
    }

    fn start_driver(&self, group: &Group<GroupMachine>) {
        let mut drivers = self.inner.drivers.lock().expect("drivers lock");
        if drivers.insert(group.id().to_string()) {
            tokio::spawn(crate::driver::run(self.clone(), group.clone()));
        }
    }

    /// The running group of an event that exists in the catalog.
    pub(crate) async fn event_group(&self, event_id: &str) -> Result<Group<GroupMachine>> {
        if let Some(group) = self.inner.host.group(event_id) {
            if group.read_local(|m| m.as_inventory().is_some_and(|i| i.is_set_up())) {
                return Ok(group);
            }
        }
        let event = self
            .catalog_read(|c| c.events.get(event_id).cloned())
            .ok_or_else(|| Rejection::not_found("event"))?;
        self.ensure_event_group(&event).await
    }

    /// Every event group open on this node.
    pub(crate) fn event_groups(&self) -> Vec<Group<GroupMachine>> {
        let ids: Vec<String> = self.catalog_read(|c| c.events.keys().cloned().collect());
        ids.iter().filter_map(|id| self.inner.host.group(id)).collect()
    }

    pub fn host(&self) -> &RaftHost<GroupMachine> {
        &self.inner.host
    }

    pub fn catalog_group(&self) -> &Group<GroupMachine> {
        &self.inner.catalog
    }

    // ---- proposing ----------------------------------------------------------------------

    pub(crate) async fn write_catalog(&self, command: CatalogCommand) -> Result<CatalogChange> {
        let reply = self.inner.catalog.write(GroupCommand::Catalog { now_ms: wall_ms(), command }).await?;
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
        let reply = group.write(GroupCommand::Inventory { now_ms: wall_ms(), command }).await?;
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

    pub async fn create_performer(&self, spec: PerformerSpec) -> Result<Performer> {
        spec.validate()?;
        match self.write_catalog(CatalogCommand::CreatePerformer { id: ids::performer_id(), spec }).await? {
            CatalogChange::Performer(p) => Ok(p),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// Create the event in the catalog, then its inventory group. The answer comes once
    /// the group is set up, so a reserve right after it works.
    pub async fn create_event(&self, spec: EventSpec) -> Result<Event> {
        spec.validate()?;
        let event =
            match self.write_catalog(CatalogCommand::CreateEvent { id: ids::event_id(), spec }).await? {
                CatalogChange::Event(e) => e,
                other => return Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
            };
        self.ensure_event_group(&event).await?;
        Ok(event)
    }

    pub async fn update_event(&self, id: &str, patch: EventPatch) -> Result<Event> {
        match self.write_catalog(CatalogCommand::UpdateEvent { id: id.to_string(), patch }).await? {
            CatalogChange::Event(e) => Ok(e),
            other => Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        }
    }

    /// Cancel in the catalog (browse shows it), then in the inventory (no more sales).
    pub async fn cancel_event(&self, id: &str) -> Result<Event> {
        let event = match self.write_catalog(CatalogCommand::CancelEvent { id: id.to_string() }).await? {
            CatalogChange::Event(e) => e,
            other => return Err(Error::Internal(format!("unexpected catalog change {other:?}"))),
        };
        let group = self.event_group(id).await?;
        self.write_inventory(&group, InventoryCommand::Cancel).await?;
        Ok(event)
    }
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
        tickets: tickets::layout::tickets_for(&venue.spec, &event.spec.prices),
        currency: event.spec.currency.clone(),
        per_user_limit: event.spec.per_user_limit,
        hold_ms: event.spec.hold_seconds * 1_000,
        on_sale_at: event.spec.on_sale_at,
        queue: event.spec.queue,
    })
}
