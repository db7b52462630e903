//! The catalog machine: venues, performers and events' descriptive data, one per cluster.
//!
//! Specs arrive from the API already parsed; [`VenueSpec::validate`] and friends check every
//! bound in [`crate::limits`] and are run both by the API before proposing (to answer 400
//! early) and by [`Catalog::apply`] (so the log can never hold an invalid entity). Cross
//! references (an event's venue and performers exist, its prices name the venue's sections)
//! are checked only in apply, against the catalog as it is at that log position.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::placement::{self, REPLICAS_PER_EVENT};
use crate::webhooks::{Webhook, WebhookSpec, WEBHOOKS_MAX};
use crate::{EventId, Millis, NodeId, PerformerId, Rejection, VenueId};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowSpec {
    pub name: String,
    pub seats: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SectionKind {
    /// Numbered seats in named rows; seats `1..=seats` of each row.
    Seated { rows: Vec<RowSpec> },
    /// Standing room: `capacity` interchangeable tickets.
    General { capacity: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SectionSpec {
    pub name: String,
    pub kind: SectionKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VenueSpec {
    pub name: String,
    pub city: String,
    pub country: String,
    pub location: GeoPoint,
    pub sections: Vec<SectionSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Venue {
    pub id: VenueId,
    pub spec: VenueSpec,
    pub created_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerformerSpec {
    pub name: String,
    pub genre: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Performer {
    pub id: PerformerId,
    pub spec: PerformerSpec,
    pub created_at: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSettings {
    pub enabled: bool,
    /// Most shoppers admitted at once.
    pub max_admitted: u32,
    /// How long one admission lasts.
    pub admission_seconds: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings { enabled: false, max_admitted: 100, admission_seconds: 600 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventSpec {
    pub name: String,
    pub description: String,
    /// Free-form kind of event: "concert", "sports", "theater", ...
    pub event_type: String,
    pub venue_id: VenueId,
    pub performer_ids: Vec<PerformerId>,
    pub starts_at: Millis,
    pub on_sale_at: Millis,
    /// Sales close here (reserves at or after it are refused, holds made before may still
    /// be confirmed); `None`: at `starts_at` ([`EventSpec::sales_end`]).
    pub sales_end: Option<Millis>,
    /// Price per section name, in minor units. Every section of the venue must be priced.
    pub prices: BTreeMap<String, u64>,
    /// ISO 4217 code, three upper-case letters.
    pub currency: String,
    pub per_user_limit: u32,
    pub hold_seconds: u64,
    pub queue: QueueSettings,
    /// Buyers may cancel their bookings (and be refunded) before this; `None`: until
    /// `starts_at`, i.e. until the show starts ([`EventSpec::refund_until`]). Admins may
    /// refund any time.
    pub refund_until: Option<Millis>,
    /// How long a waiting-list offer is kept for its entry, in seconds; `None`: as long as
    /// a hold (`hold_seconds`) ([`EventSpec::waitlist_offer_ms`]).
    pub waitlist_offer_seconds: Option<u64>,
}

/// Descriptive fields an admin may change after creation (`PATCH /v1/events/{id}`).
/// `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub event_type: Option<String>,
    pub performer_ids: Option<Vec<PerformerId>>,
    pub starts_at: Option<Millis>,
    /// A new end of sales; it may be now or past (closing the sale early).
    pub sales_end: Option<Millis>,
    /// A new end of the buyers' refund window; it may be now or past (closing it early).
    pub refund_until: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub spec: EventSpec,
    pub cancelled: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The nodes that host the event's group now (sorted).
    pub replicas: Vec<NodeId>,
    /// The nodes placed at creation; never changes. They store the group *seeded*
    /// (`raft::RaftHost::create_seeded`: set up, with a first leader picked by a hash of the
    /// event id, so first leaders spread over the nodes — with every group led by one node,
    /// killing that node made every group fail over at once). The order is the sorted
    /// replicas rotated by the number of events created before (it once chose the
    /// initializer; kept so the catalog's format and placement stay as they were).
    pub initial_replicas: Vec<NodeId>,
}

/// A cluster member as the catalog records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    pub raft_addr: String,
    pub http_addr: String,
    /// Removed nodes keep their record (ids are never reused for a new placement).
    pub removed: bool,
    pub joined_at: Millis,
    /// The store id of the data directory the node runs on (`raft::Identity`), once the node
    /// registered itself; 0 while unknown (a node an operator added that has not started).
    /// Another store under the same id is another machine, or this one wiped: refused.
    pub store_id: u64,
    /// Down for longer than the cluster's dead time (`MarkNodeDown`): its replicas were given
    /// to other nodes where there were any, and it gets no new ones until it is back.
    pub down: bool,
}

/// A catalog command as proposed: ids are chosen by the proposer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CatalogCommand {
    CreateVenue {
        id: VenueId,
        spec: VenueSpec,
    },
    CreatePerformer {
        id: PerformerId,
        spec: PerformerSpec,
    },
    CreateEvent {
        id: EventId,
        spec: EventSpec,
    },
    UpdateEvent {
        id: EventId,
        patch: EventPatch,
    },
    CancelEvent {
        id: EventId,
    },
    /// A node announces itself (or its new addresses), or an operator or the join path adds
    /// one. `id` 0 asks for a fresh id (the next after every id ever used; a node that already
    /// registered its `store_id` gets its own id back, so a join can be retried). A removed id
    /// is never reused; an id registered with another store, or (with `store_id` 0) with other
    /// addresses, is taken. A new node also becomes a replica of every event that has fewer
    /// than [`REPLICAS_PER_EVENT`] (lost replicas are made again).
    RegisterNode {
        id: NodeId,
        raft_addr: String,
        http_addr: String,
        store_id: u64,
    },
    /// A node has been down longer than the cluster's dead time (`down`), or is back. Down:
    /// each of its event replicas moves to the least-loaded placeable node not already a
    /// replica — where there is none, the replica stays (an event is not shrunk below what it
    /// has) — and it gets no new events. Back: it is placeable again and takes the replicas
    /// events are short of.
    MarkNodeDown {
        id: NodeId,
        down: bool,
    },
    /// Move one replica of `event` from node `from` to node `to` (rebalancing: a node that
    /// joined takes its share over time). Refused unless `from` holds one, `to` is placeable
    /// and does not.
    MoveReplica {
        event: EventId,
        from: NodeId,
        to: NodeId,
    },
    /// Record the cluster's id (made by the node that initialized it). Set once.
    SetClusterId {
        id: String,
    },
    /// Take a node out: it gets no new events, and each event it hosts is given a
    /// replacement replica (the least-loaded other node) in the same apply; the event
    /// groups' leaders then move their membership to match.
    RemoveNode {
        id: NodeId,
    },
    /// Replace a venue's spec (name, place, sections). Only while no event is on it: an
    /// event's tickets, prices and seat map were made from the venue when it was created,
    /// so a venue in use is fixed (`Conflict`) — make a new venue for a new layout. (Last
    /// variant: the log's encoding of the earlier ones does not change.)
    UpdateVenue {
        id: VenueId,
        spec: VenueSpec,
    },
    /// Replace a performer's name and genre (the events that name it show the new ones; the
    /// search feed re-indexes them).
    UpdatePerformer {
        id: PerformerId,
        spec: PerformerSpec,
    },
    /// Register a webhook endpoint (at most [`WEBHOOKS_MAX`]).
    CreateWebhook {
        id: String,
        spec: WebhookSpec,
    },
    /// Remove a webhook endpoint: no notice is sent to it after this entry.
    DeleteWebhook {
        id: String,
    },
}

/// What a catalog command changed, for the reply and for projections (search index).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CatalogChange {
    Venue(Venue),
    Performer(Performer),
    /// Created, updated or cancelled: the event as it now is.
    Event(Box<Event>),
    /// Registered or removed: the node as it now is.
    Node(NodeInfo),
    /// The cluster's id, as recorded.
    Cluster(String),
    /// Registered, or (`DeleteWebhook`) as it was before it was removed.
    Webhook(Box<Webhook>),
}

pub type CatalogReply = Result<CatalogChange, Rejection>;

/// The catalog state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub clock: Clock,
    pub venues: BTreeMap<VenueId, Venue>,
    pub performers: BTreeMap<PerformerId, Performer>,
    pub events: BTreeMap<EventId, Event>,
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// The cluster's id ([`CatalogCommand::SetClusterId`]), once recorded.
    pub cluster_id: Option<String>,
    /// Webhook endpoints by id.
    pub webhooks: BTreeMap<String, Webhook>,
    /// Event replicas per node, derived from `events` (not stored: counted again on first use
    /// after decoding) and kept up to date by `apply`. Counting on every `CreateEvent` was
    /// O(events) and, at 10,000 events, the top user-space cost of creating one.
    #[serde(skip)]
    load: ReplicaLoad,
}

/// A lazily counted [`Catalog::load`]; equal to any other (it is derived data).
#[derive(Clone, Debug, Default)]
struct ReplicaLoad(std::sync::OnceLock<BTreeMap<NodeId, usize>>);

impl PartialEq for ReplicaLoad {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl ReplicaLoad {
    /// Add `delta` replicas to `node`, if the counts exist yet (else they are counted later).
    fn add(&mut self, node: NodeId, delta: isize) {
        if let Some(counts) = self.0.get_mut() {
            let n = counts.entry(node).or_insert(0);
            *n = n.checked_add_signed(delta).expect("replica counts never go below zero");
            if *n == 0 {
                counts.remove(&node);
            }
        }
    }
}

impl Catalog {
    /// Apply one command at the stamped time `now_ms`. Deterministic.
    pub fn apply(&mut self, command: CatalogCommand, now_ms: Millis) -> CatalogReply {
        let now = self.clock.advance(now_ms);
        match command {
            CatalogCommand::CreateVenue { id, spec } => {
                spec.validate()?;
                if self.venues.contains_key(&id) {
                    return Err(Rejection::invalid("id", "venue id already exists"));
                }
                let venue = Venue { id: id.clone(), spec, created_at: now };
                self.venues.insert(id, venue.clone());
                Ok(CatalogChange::Venue(venue))
            }
            CatalogCommand::UpdateVenue { id, spec } => {
                if !self.venues.contains_key(&id) {
                    return Err(Rejection::not_found("venue"));
                }
                spec.validate()?;
                if let Some(event) = self.events.values().find(|e| e.spec.venue_id == id) {
                    return Err(Rejection::Conflict {
                        detail: format!(
                            "venue {id} is in use by event {}: its tickets were made from it; \
                             create a new venue for a new layout",
                            event.id
                        ),
                    });
                }
                let venue = self.venues.get_mut(&id).expect("checked above");
                venue.spec = spec;
                Ok(CatalogChange::Venue(venue.clone()))
            }
            CatalogCommand::UpdatePerformer { id, spec } => {
                let Some(performer) = self.performers.get_mut(&id) else {
                    return Err(Rejection::not_found("performer"));
                };
                spec.validate()?;
                performer.spec = spec;
                Ok(CatalogChange::Performer(performer.clone()))
            }
            CatalogCommand::CreatePerformer { id, spec } => {
                spec.validate()?;
                if self.performers.contains_key(&id) {
                    return Err(Rejection::invalid("id", "performer id already exists"));
                }
                let performer = Performer { id: id.clone(), spec, created_at: now };
                self.performers.insert(id, performer.clone());
                Ok(CatalogChange::Performer(performer))
            }
            CatalogCommand::CreateEvent { id, spec } => {
                spec.validate()?;
                if spec.starts_at <= now {
                    return Err(Rejection::invalid("starts_at", "is already past"));
                }
                if spec.sales_end() <= now {
                    return Err(Rejection::invalid("sales_end", "is already past"));
                }
                if self.events.contains_key(&id) {
                    return Err(Rejection::invalid("id", "event id already exists"));
                }
                self.check_references(&spec)?;
                let replicas = placement::place(&self.placeable_nodes(), &self.load(), REPLICAS_PER_EVENT);
                if replicas.is_empty() {
                    return Err(Rejection::invalid("replicas", "no live node to place the event on"));
                }
                let mut initial_replicas = replicas.clone();
                initial_replicas.rotate_left(self.events.len() % replicas.len());
                let event = Event {
                    id: id.clone(),
                    spec,
                    cancelled: false,
                    created_at: now,
                    updated_at: now,
                    initial_replicas,
                    replicas,
                };
                for n in &event.replicas {
                    self.load.add(*n, 1);
                }
                self.events.insert(id, event.clone());
                Ok(CatalogChange::Event(Box::new(event)))
            }
            CatalogCommand::UpdateEvent { id, patch } => {
                let Some(current) = self.events.get(&id) else {
                    return Err(Rejection::not_found("event"));
                };
                let mut spec = current.spec.clone();
                if let Some(v) = patch.name {
                    spec.name = v;
                }
                if let Some(v) = patch.description {
                    spec.description = v;
                }
                if let Some(v) = patch.event_type {
                    spec.event_type = v;
                }
                if let Some(v) = patch.performer_ids {
                    spec.performer_ids = v;
                }
                if let Some(v) = patch.starts_at {
                    if v <= now && v != spec.starts_at {
                        return Err(Rejection::invalid("starts_at", "is already past"));
                    }
                    spec.starts_at = v;
                }
                if let Some(v) = patch.sales_end {
                    spec.sales_end = Some(v);
                }
                if let Some(v) = patch.refund_until {
                    spec.refund_until = Some(v);
                }
                spec.validate()?;
                self.check_references(&spec)?;
                let event = self.events.get_mut(&id).expect("checked above");
                event.spec = spec;
                event.updated_at = now;
                Ok(CatalogChange::Event(Box::new(event.clone())))
            }
            CatalogCommand::CancelEvent { id } => {
                let Some(event) = self.events.get_mut(&id) else {
                    return Err(Rejection::not_found("event"));
                };
                event.cancelled = true;
                event.updated_at = now;
                Ok(CatalogChange::Event(Box::new(event.clone())))
            }
            CatalogCommand::RegisterNode { id, raft_addr, http_addr, store_id } => {
                check_name("raft_addr", &raft_addr)?;
                check_name("http_addr", &http_addr)?;
                let id = match id {
                    0 => self.fresh_node_id(store_id),
                    id => id,
                };
                if let Some(node) = self.nodes.get_mut(&id) {
                    if node.removed {
                        return Err(Rejection::invalid(
                            "id",
                            format!("node {id} was removed and ids are not reused; join with a new id"),
                        ));
                    }
                    let other_store = store_id != 0 && node.store_id != 0 && store_id != node.store_id;
                    let other_addrs =
                        store_id == 0 && (node.raft_addr != raft_addr || node.http_addr != http_addr);
                    if other_store || other_addrs {
                        return Err(Rejection::Conflict {
                            detail: format!(
                                "node id {id} is taken (by the node at {}); use another id, or remove node {id} first",
                                node.raft_addr
                            ),
                        });
                    }
                    node.raft_addr = raft_addr;
                    node.http_addr = http_addr;
                    let arrived = node.store_id == 0 && store_id != 0;
                    if store_id != 0 {
                        node.store_id = store_id;
                    }
                    let node = node.clone();
                    if arrived {
                        self.repair_onto(id, now);
                    }
                    return Ok(CatalogChange::Node(node));
                }
                let node = NodeInfo {
                    id,
                    raft_addr,
                    http_addr,
                    removed: false,
                    joined_at: now,
                    store_id,
                    down: false,
                };
                self.nodes.insert(id, node.clone());
                if store_id != 0 {
                    self.repair_onto(id, now);
                }
                Ok(CatalogChange::Node(node))
            }
            CatalogCommand::MoveReplica { event, from, to } => {
                let placeable = self.placeable_nodes().contains(&to);
                let Some(e) = self.events.get_mut(&event) else {
                    return Err(Rejection::not_found("event"));
                };
                if !e.replicas.contains(&from) || e.replicas.contains(&to) || !placeable {
                    return Err(Rejection::invalid(
                        "to",
                        format!("cannot move a replica of {event} from node {from} to node {to}"),
                    ));
                }
                e.replicas.retain(|n| *n != from);
                e.replicas.push(to);
                e.replicas.sort_unstable();
                e.updated_at = now;
                let e = e.clone();
                self.load.add(from, -1);
                self.load.add(to, 1);
                Ok(CatalogChange::Event(Box::new(e)))
            }
            CatalogCommand::CreateWebhook { id, spec } => {
                check_name("id", &id)?;
                spec.validate()?;
                if self.webhooks.contains_key(&id) {
                    return Err(Rejection::invalid("id", "webhook id already exists"));
                }
                if self.webhooks.len() >= WEBHOOKS_MAX {
                    return Err(Rejection::limit(format!("at most {WEBHOOKS_MAX} webhook endpoints")));
                }
                let hook = Webhook { id: id.clone(), spec, created_at: now };
                self.webhooks.insert(id, hook.clone());
                Ok(CatalogChange::Webhook(Box::new(hook)))
            }
            CatalogCommand::DeleteWebhook { id } => match self.webhooks.remove(&id) {
                Some(hook) => Ok(CatalogChange::Webhook(Box::new(hook))),
                None => Err(Rejection::not_found("webhook")),
            },
            CatalogCommand::SetClusterId { id } => {
                check_name("id", &id)?;
                match &self.cluster_id {
                    Some(known) if *known != id => {
                        Err(Rejection::Conflict { detail: format!("the cluster's id is already {known}") })
                    }
                    _ => {
                        self.cluster_id = Some(id.clone());
                        Ok(CatalogChange::Cluster(id))
                    }
                }
            }
            CatalogCommand::RemoveNode { id } => {
                let Some(node) = self.nodes.get_mut(&id) else {
                    return Err(Rejection::not_found("node"));
                };
                node.removed = true;
                let node = node.clone();
                self.evacuate(id, true, now);
                Ok(CatalogChange::Node(node))
            }
            CatalogCommand::MarkNodeDown { id, down } => {
                let Some(node) = self.nodes.get_mut(&id) else {
                    return Err(Rejection::not_found("node"));
                };
                if node.removed {
                    return Err(Rejection::invalid("id", format!("node {id} was removed")));
                }
                let changed = node.down != down;
                node.down = down;
                let node = node.clone();
                if changed && down {
                    self.evacuate(id, false, now);
                } else if changed && node.store_id != 0 {
                    self.repair_onto(id, now);
                }
                Ok(CatalogChange::Node(node))
            }
        }
    }

    /// The id a node registering with `store_id` and no id gets: its own if that store is
    /// registered already, else the next after every id ever used.
    fn fresh_node_id(&self, store_id: u64) -> NodeId {
        let mine = self.nodes.values().find(|n| store_id != 0 && n.store_id == store_id && !n.removed);
        match mine {
            Some(n) => n.id,
            None => self.nodes.keys().next_back().map_or(1, |last| last + 1),
        }
    }

    /// Make `new` (a node just registered) a replica of every event that has fewer than
    /// [`REPLICAS_PER_EVENT`]: the replicas lost with removed nodes are made again as soon as
    /// there is a node to hold them.
    fn repair_onto(&mut self, new: NodeId, now: Millis) {
        let short: Vec<EventId> = self
            .events
            .values()
            .filter(|e| e.replicas.len() < REPLICAS_PER_EVENT && !e.replicas.contains(&new))
            .map(|e| e.id.clone())
            .collect();
        for event_id in short {
            let event = self.events.get_mut(&event_id).expect("listed above");
            event.replicas.push(new);
            event.replicas.sort_unstable();
            event.updated_at = now;
            self.load.add(new, 1);
        }
    }

    /// Give each event replica of node `gone` to the least-loaded placeable node not already a
    /// replica. Where there is none: drop the replica when `always` (a removed node), else
    /// keep it (a node that is only down may come back, and fewer voters protect nothing).
    fn evacuate(&mut self, gone: NodeId, always: bool, now: Millis) {
        let nodes = self.placeable_nodes();
        let ids: Vec<EventId> =
            self.events.values().filter(|e| e.replicas.contains(&gone)).map(|e| e.id.clone()).collect();
        for event_id in ids {
            let load = self.load();
            let event = self.events.get_mut(&event_id).expect("listed above");
            let others: Vec<NodeId> = event.replicas.iter().copied().filter(|n| *n != gone).collect();
            let new = placement::replacement(&nodes, &load, &event.replicas);
            if new.is_none() && !always {
                continue;
            }
            event.replicas = others;
            self.load.add(gone, -1);
            if let Some(new) = new {
                event.replicas.push(new);
                event.replicas.sort_unstable();
                self.load.add(new, 1);
            }
            event.updated_at = now;
        }
    }

    /// Ids of the nodes events may be placed on: not removed, not down, and registered by their
    /// own process (a known store id). A node an operator added that never started gets nothing,
    /// so it cannot take a quorum hostage.
    pub fn placeable_nodes(&self) -> Vec<NodeId> {
        self.nodes.values().filter(|n| !n.removed && !n.down && n.store_id != 0).map(|n| n.id).collect()
    }

    /// The next replica move toward an even spread over the placeable nodes, if the loads
    /// differ by more than one ([`placement::rebalance_step`]).
    pub fn rebalance_step(&self) -> Option<CatalogCommand> {
        let load = self.load();
        let events = self.events.values().map(|e| (&e.id, e.replicas.as_slice()));
        placement::rebalance_step(&self.placeable_nodes(), &load, events)
            .map(|(event, from, to)| CatalogCommand::MoveReplica { event, from, to })
    }

    /// Ids of the nodes that are registered and not removed.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.nodes.values().filter(|n| !n.removed).map(|n| n.id).collect()
    }

    /// Event replicas per node.
    pub fn load(&self) -> BTreeMap<NodeId, usize> {
        self.load.0.get_or_init(|| self.count_load()).clone()
    }

    /// [`Catalog::load`] counted from the events.
    fn count_load(&self) -> BTreeMap<NodeId, usize> {
        let mut load = BTreeMap::new();
        for event in self.events.values() {
            for n in &event.replicas {
                *load.entry(*n).or_insert(0) += 1;
            }
        }
        load
    }

    fn check_references(&self, spec: &EventSpec) -> Result<(), Rejection> {
        let Some(venue) = self.venues.get(&spec.venue_id) else {
            return Err(Rejection::invalid("venue_id", "no such venue"));
        };
        for p in &spec.performer_ids {
            if !self.performers.contains_key(p) {
                return Err(Rejection::invalid("performer_ids", format!("no such performer {p}")));
            }
        }
        for section in &venue.spec.sections {
            if !spec.prices.contains_key(&section.name) {
                return Err(Rejection::invalid("prices", format!("section {} has no price", section.name)));
            }
        }
        for name in spec.prices.keys() {
            if !venue.spec.sections.iter().any(|s| &s.name == name) {
                return Err(Rejection::invalid("prices", format!("venue has no section {name}")));
            }
        }
        Ok(())
    }
}

fn check_name(field: &str, value: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::invalid(field, "must not be empty"));
    }
    if value.len() > crate::limits::NAME_BYTES_MAX {
        return Err(Rejection::invalid(
            field,
            format!("longer than {} bytes", crate::limits::NAME_BYTES_MAX),
        ));
    }
    Ok(())
}

impl VenueSpec {
    pub fn validate(&self) -> Result<(), Rejection> {
        use crate::limits::*;
        check_name("name", &self.name)?;
        check_name("city", &self.city)?;
        check_name("country", &self.country)?;
        let GeoPoint { lat, lon } = self.location;
        if !(-90.0..=90.0).contains(&lat) || !lat.is_finite() {
            return Err(Rejection::invalid("location.lat", "must be within -90..=90"));
        }
        if !(-180.0..=180.0).contains(&lon) || !lon.is_finite() {
            return Err(Rejection::invalid("location.lon", "must be within -180..=180"));
        }
        if self.sections.is_empty() {
            return Err(Rejection::invalid("sections", "at least one section is needed"));
        }
        if self.sections.len() > SECTIONS_PER_VENUE_MAX {
            return Err(Rejection::invalid("sections", format!("more than {SECTIONS_PER_VENUE_MAX}")));
        }
        let mut total: u64 = 0;
        let mut names = std::collections::BTreeSet::new();
        // Field paths name the entry at fault, as a body's parse errors do: `sections[0].rows[2].name`.
        for (i, section) in self.sections.iter().enumerate() {
            let field = |leaf: &str| format!("sections[{i}].{leaf}");
            check_name(&field("name"), &section.name)?;
            if section.name.contains('-') {
                return Err(Rejection::invalid(field("name"), "must not contain '-' (used in ticket ids)"));
            }
            if !names.insert(section.name.as_str()) {
                return Err(Rejection::invalid(field("name"), format!("duplicate section {}", section.name)));
            }
            match &section.kind {
                SectionKind::Seated { rows } => {
                    if rows.is_empty() || rows.len() > ROWS_PER_SECTION_MAX {
                        return Err(Rejection::invalid(
                            field("rows"),
                            format!("a seated section needs 1..={ROWS_PER_SECTION_MAX} rows"),
                        ));
                    }
                    let mut row_names = std::collections::BTreeSet::new();
                    for (j, row) in rows.iter().enumerate() {
                        let row_field = |leaf: &str| field(&format!("rows[{j}].{leaf}"));
                        check_name(&row_field("name"), &row.name)?;
                        if row.name.contains('-') {
                            return Err(Rejection::invalid(row_field("name"), "must not contain '-'"));
                        }
                        if !row_names.insert(row.name.as_str()) {
                            return Err(Rejection::invalid(
                                row_field("name"),
                                format!("duplicate row {}", row.name),
                            ));
                        }
                        if row.seats == 0 || row.seats > SEATS_PER_ROW_MAX {
                            return Err(Rejection::invalid(
                                row_field("seats"),
                                format!("must be within 1..={SEATS_PER_ROW_MAX}"),
                            ));
                        }
                        total += u64::from(row.seats);
                    }
                }
                SectionKind::General { capacity } => {
                    if *capacity == 0 {
                        return Err(Rejection::invalid(field("capacity"), "must be at least 1"));
                    }
                    total += u64::from(*capacity);
                }
            }
        }
        if total > u64::from(TICKETS_PER_EVENT_MAX) {
            return Err(Rejection::invalid("sections", format!("more than {TICKETS_PER_EVENT_MAX} tickets")));
        }
        Ok(())
    }

    /// Number of tickets an event at this venue has.
    pub fn capacity(&self) -> u64 {
        self.sections
            .iter()
            .map(|s| match &s.kind {
                SectionKind::Seated { rows } => rows.iter().map(|r| u64::from(r.seats)).sum(),
                SectionKind::General { capacity } => u64::from(*capacity),
            })
            .sum()
    }
}

impl PerformerSpec {
    pub fn validate(&self) -> Result<(), Rejection> {
        check_name("name", &self.name)?;
        check_name("genre", &self.genre)
    }
}

impl EventSpec {
    /// When sales close: `sales_end`, or `starts_at` when it is not set.
    pub fn sales_end(&self) -> Millis {
        self.sales_end.unwrap_or(self.starts_at)
    }

    /// How long a waiting-list offer is kept: `waitlist_offer_seconds`, or `hold_seconds`.
    pub fn waitlist_offer_ms(&self) -> u64 {
        self.waitlist_offer_seconds.unwrap_or(self.hold_seconds).saturating_mul(1_000)
    }

    /// Until when buyers may cancel: `refund_until`, or `starts_at` when it is not set.
    pub fn refund_until(&self) -> Millis {
        self.refund_until.unwrap_or(self.starts_at)
    }

    pub fn validate(&self) -> Result<(), Rejection> {
        use crate::limits::*;
        check_name("name", &self.name)?;
        check_name("type", &self.event_type)?;
        if self.description.len() > DESCRIPTION_BYTES_MAX {
            return Err(Rejection::invalid(
                "description",
                format!("longer than {DESCRIPTION_BYTES_MAX} bytes"),
            ));
        }
        if self.performer_ids.len() > PERFORMERS_PER_EVENT_MAX {
            return Err(Rejection::invalid("performer_ids", format!("more than {PERFORMERS_PER_EVENT_MAX}")));
        }
        if self.on_sale_at > self.starts_at {
            return Err(Rejection::invalid("on_sale_at", "must not be after starts_at"));
        }
        if self.sales_end.is_some_and(|end| end <= self.on_sale_at) {
            return Err(Rejection::invalid("sales_end", "must be after on_sale_at"));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Rejection::invalid("currency", "must be three upper-case letters (ISO 4217)"));
        }
        if let Some((section, _)) = self.prices.iter().find(|(_, p)| **p > PRICE_MAX) {
            return Err(Rejection::invalid("prices", format!("price of {section} above {PRICE_MAX}")));
        }
        if self.per_user_limit == 0 || self.per_user_limit > PER_USER_LIMIT_MAX {
            return Err(Rejection::invalid(
                "per_user_limit",
                format!("must be within 1..={PER_USER_LIMIT_MAX}"),
            ));
        }
        if !(HOLD_SECONDS_MIN..=HOLD_SECONDS_MAX).contains(&self.hold_seconds) {
            return Err(Rejection::invalid(
                "hold_seconds",
                format!("must be within {HOLD_SECONDS_MIN}..={HOLD_SECONDS_MAX}"),
            ));
        }
        if self.waitlist_offer_seconds.is_some_and(|s| !(HOLD_SECONDS_MIN..=HOLD_SECONDS_MAX).contains(&s)) {
            return Err(Rejection::invalid(
                "waitlist_offer_seconds",
                format!("must be within {HOLD_SECONDS_MIN}..={HOLD_SECONDS_MAX}"),
            ));
        }
        let q = self.queue;
        if q.enabled && (q.max_admitted == 0 || q.max_admitted > QUEUE_MAX_ADMITTED_MAX) {
            return Err(Rejection::invalid(
                "queue.max_admitted",
                format!("must be within 1..={QUEUE_MAX_ADMITTED_MAX}"),
            ));
        }
        if q.enabled && (q.admission_seconds == 0 || q.admission_seconds > QUEUE_ADMISSION_SECONDS_MAX) {
            return Err(Rejection::invalid(
                "queue.admission_seconds",
                format!("must be within 1..={QUEUE_ADMISSION_SECONDS_MAX}"),
            ));
        }
        Ok(())
    }
}
