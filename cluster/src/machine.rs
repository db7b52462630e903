//! The state machine every group hosts: a catalog or one event's inventory, behind the
//! generic `raft::StateMachine` trait. A thin adapter: the rules are in `tickets`.
//!
//! Each entry carries the leader's wall-clock stamp, which the `tickets` machines turn into a
//! clock that never runs backwards. After each entry the machine publishes its applied log
//! index (the "version" of browse answers) on a watch channel, and an inventory publishes the
//! tickets whose status the entry changed — one change set per entry, however many commands
//! it batched — on a broadcast channel made when the first watcher subscribes (an event nobody
//! watches pays nothing for it).
//!
//! An inventory also tells the node ([`NodeHooks`]) what it must act on outside the log: its
//! next deadline (a hold's expiry, the queue's next admission, a payment left in
//! `confirming`, a refund left pending), and the bookings it made or changed (a refund
//! changes one), so the node can list a user's bookings without visiting every event.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use tickets::catalog::{Catalog, CatalogCommand, CatalogReply};
use tickets::inventory::{
    Booking, Inventory, InventoryCommand, InventoryCore, InventoryReply, Outcome, TicketChange,
};
use tickets::{Millis, Rejection};

/// Ticket-change messages kept for slow subscribers; a subscriber that lags further
/// re-reads the whole seat map.
pub const CHANGES_CHANNEL_CAPACITY: usize = 1_024;
/// Change sets kept for resuming seat streams; a client further behind gets a snapshot.
pub const RECENT_CHANGES_MAX: usize = 1_024;
/// Ticket changes kept over those change sets (a batch can change thousands of seats).
pub const RECENT_TICKET_CHANGES_MAX: usize = 100_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GroupCommand {
    Catalog(CatalogCommand),
    Inventory(InventoryCommand),
}

/// A reply lives for one command (built in `apply`, moved to the waiting caller); an
/// inventory reply is the common case, so boxing it would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GroupReply {
    Catalog(CatalogReply),
    Inventory(InventoryReply),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MachineState {
    Catalog(Catalog),
    Inventory(Box<Inventory>),
}

/// What a snapshot copies under the state lock: the catalog, or an inventory's stored core
/// (which shares its records with the live state). Encoded as a [`MachineState`]: same
/// variants, same bytes.
#[derive(Serialize)]
pub enum MachineSnapshot {
    Catalog(Catalog),
    Inventory(Box<InventoryCore>),
}

/// One applied entry's ticket changes, tagged with its log index.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangeSet {
    pub version: u64,
    pub changes: Vec<TicketChange>,
}

/// What an event's inventory tells the node it lives on.
pub trait NodeHooks: Send + Sync + 'static {
    /// The inventory of `event_id` next needs its leader at `at` (ms since the epoch), or
    /// never (`None`).
    fn deadline(&self, event_id: &str, at: Option<Millis>);
    /// These bookings of `event_id` exist as given (made or changed by the last entry, or
    /// all of them after a snapshot was installed).
    fn booked(&self, event_id: &str, bookings: &[Booking]);
}

pub struct GroupMachine {
    pub state: MachineState,
    /// The group id (an event id for inventories).
    id: String,
    version: watch::Sender<u64>,
    changes: std::sync::OnceLock<broadcast::Sender<ChangeSet>>,
    /// The most recent change sets, oldest first, for resuming a seat stream
    /// (`Last-Event-ID`) without gaps; their ticket changes add up to `recent_tickets`.
    recent: VecDeque<ChangeSet>,
    recent_tickets: usize,
    /// Every change made after this version is in `recent`.
    recent_from: u64,
    /// Changes of the entry being applied.
    pending: Vec<TicketChange>,
    /// Bookings made by the entry being applied.
    booked: Vec<Booking>,
    /// Catalog changes with the log index that made them (feeds the search index).
    catalog_changes: Option<broadcast::Sender<(u64, tickets::catalog::CatalogChange)>>,
    hooks: Option<Arc<dyn NodeHooks>>,
    /// The deadline last told to the hooks.
    told_deadline: Option<Millis>,
}

impl GroupMachine {
    fn new(id: &str, state: MachineState, hooks: Option<Arc<dyn NodeHooks>>) -> Self {
        let (version, _) = watch::channel(0);
        let catalog_changes =
            matches!(state, MachineState::Catalog(_)).then(|| broadcast::channel(CHANGES_CHANNEL_CAPACITY).0);
        GroupMachine {
            state,
            id: id.to_string(),
            version,
            changes: std::sync::OnceLock::new(),
            recent: VecDeque::new(),
            recent_tickets: 0,
            recent_from: 0,
            pending: Vec::new(),
            booked: Vec::new(),
            catalog_changes,
            hooks,
            told_deadline: None,
        }
    }

    pub fn catalog() -> Self {
        Self::new(crate::store::CATALOG_GROUP, MachineState::Catalog(Catalog::default()), None)
    }

    /// An empty inventory (tests; the store uses [`GroupMachine::inventory_on`]).
    pub fn inventory() -> Self {
        Self::new("", MachineState::Inventory(Box::default()), None)
    }

    /// The empty inventory of `event_id`, reporting to `hooks`.
    pub fn inventory_on(event_id: &str, hooks: Arc<dyn NodeHooks>) -> Self {
        Self::new(event_id, MachineState::Inventory(Box::default()), Some(hooks))
    }

    /// The applied log index, updated after every entry and snapshot install.
    pub fn subscribe_version(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn subscribe_catalog_changes(&self) -> broadcast::Receiver<(u64, tickets::catalog::CatalogChange)> {
        match &self.catalog_changes {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// The live ticket changes (the channel is made by the first subscriber).
    pub fn subscribe_changes(&self) -> broadcast::Receiver<ChangeSet> {
        self.changes.get_or_init(|| broadcast::channel(CHANGES_CHANNEL_CAPACITY).0).subscribe()
    }

    /// The changes made after `version`, if the window still holds all of them.
    pub fn changes_since(&self, version: u64) -> Option<Vec<ChangeSet>> {
        (version >= self.recent_from)
            .then(|| self.recent.iter().filter(|c| c.version > version).cloned().collect())
    }

    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    pub fn as_catalog(&self) -> Option<&Catalog> {
        match &self.state {
            MachineState::Catalog(c) => Some(c),
            MachineState::Inventory(_) => None,
        }
    }

    pub fn as_inventory(&self) -> Option<&Inventory> {
        match &self.state {
            MachineState::Inventory(i) => Some(i),
            MachineState::Catalog(_) => None,
        }
    }

    /// Tell the hooks this inventory's next deadline, if it moved.
    fn report_deadline(&mut self) {
        let (Some(hooks), MachineState::Inventory(inv)) = (&self.hooks, &self.state) else { return };
        let next = next_deadline(inv);
        if next != self.told_deadline {
            self.told_deadline = next;
            hooks.deadline(&self.id, next);
        }
    }

    fn publish(&mut self, set: ChangeSet) {
        if self.recent.len() == RECENT_CHANGES_MAX
            || self.recent_tickets + set.changes.len() > RECENT_TICKET_CHANGES_MAX
        {
            while let Some(old) = self.recent.pop_front() {
                self.recent_tickets -= old.changes.len();
                self.recent_from = old.version;
                if self.recent.len() < RECENT_CHANGES_MAX
                    && self.recent_tickets + set.changes.len() <= RECENT_TICKET_CHANGES_MAX
                {
                    break;
                }
            }
        }
        if let Some(tx) = self.changes.get() {
            // No receivers is fine: the watchers left.
            let _ = tx.send(set.clone());
        }
        self.recent_tickets += set.changes.len();
        self.recent.push_back(set);
    }
}

/// When the leader of `inv` must next act: the earliest hold expiry, the queue's next
/// admission, or now when a payment sits in `confirming`, a refund is pending (a crash or
/// an earlier leader left it; the node finishes it unless it runs it already) or notices wait
/// in the outbox ([`crate::webhooks`]).
pub fn next_deadline(inv: &Inventory) -> Option<Millis> {
    let queue = inv.queue_next_deadline();
    let confirming =
        (!inv.confirming().is_empty() || inv.has_refunding() || inv.outbox_len() > 0).then(|| inv.now());
    [inv.earliest_expiry(), queue, confirming].into_iter().flatten().min()
}

impl raft::StateMachine for GroupMachine {
    type Command = GroupCommand;
    type Reply = GroupReply;
    type Snapshot = MachineSnapshot;

    fn apply(&mut self, command: GroupCommand, now_ms: u64, index: u64) -> GroupReply {
        match (&mut self.state, command) {
            (MachineState::Catalog(c), GroupCommand::Catalog(command)) => {
                let reply = c.apply(command, now_ms);
                if let (Ok(change), Some(tx)) = (&reply, &self.catalog_changes) {
                    // No receivers is fine: the search feeder may not be running.
                    let _ = tx.send((index, change.clone()));
                }
                GroupReply::Catalog(reply)
            }
            (MachineState::Inventory(inv), GroupCommand::Inventory(command)) => {
                // A declined refund changes its booking back, but answers an error.
                let refund_failed = match &command {
                    InventoryCommand::RefundFailed { booking_id, .. } => Some(booking_id.clone()),
                    _ => None,
                };
                let (reply, changes) = inv.apply(command, now_ms);
                self.pending.extend(changes);
                match &reply {
                    Ok(Outcome::Booked(b)) => self.booked.push(b.clone()),
                    Ok(Outcome::Refunding(ids)) => {
                        self.booked.extend(ids.iter().filter_map(|id| inv.booking(id)))
                    }
                    _ => {}
                }
                if let Some(b) = refund_failed.and_then(|id| inv.booking(&id)) {
                    self.booked.push(b);
                }
                GroupReply::Inventory(reply)
            }
            // A command routed to the wrong kind of group is a bug in the proposer; it is
            // answered the same way on every replica and changes nothing.
            (MachineState::Catalog(_), GroupCommand::Inventory(_)) => {
                GroupReply::Inventory(Err(Rejection::not_found("event")))
            }
            (MachineState::Inventory(_), GroupCommand::Catalog(_)) => {
                GroupReply::Catalog(Err(Rejection::invalid("group", "not the catalog group")))
            }
        }
    }

    fn applied(&mut self, index: u64) {
        if !self.pending.is_empty() {
            let changes = std::mem::take(&mut self.pending);
            self.publish(ChangeSet { version: index, changes });
        }
        if !self.booked.is_empty() {
            let booked = std::mem::take(&mut self.booked);
            if let Some(hooks) = &self.hooks {
                hooks.booked(&self.id, &booked);
            }
        }
        self.report_deadline();
        self.version.send_replace(index);
    }

    fn snapshot(&self) -> MachineSnapshot {
        match &self.state {
            MachineState::Catalog(c) => MachineSnapshot::Catalog(c.clone()),
            MachineState::Inventory(inv) => MachineSnapshot::Inventory(Box::new(inv.snapshot_core())),
        }
    }

    fn encode_snapshot(snapshot: MachineSnapshot) -> Vec<u8> {
        bincode::serde::encode_to_vec(&snapshot, bincode::config::standard())
            .expect("machine state always encodes")
    }

    fn restore(&mut self, bytes: &[u8], index: u64) -> Result<(), String> {
        let (state, _): (MachineState, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| e.to_string())?;
        self.state = state;
        self.recent.clear();
        self.recent_tickets = 0;
        self.recent_from = index;
        if let (Some(hooks), MachineState::Inventory(inv)) = (&self.hooks, &self.state) {
            hooks.booked(&self.id, &inv.bookings());
        }
        self.told_deadline = None;
        self.report_deadline();
        // Watchers (long polls) wake up and browse answers carry the snapshot's version.
        self.version.send_replace(index);
        Ok(())
    }

    /// In use beyond its state: someone watches its seats or versions, or its queue or a
    /// payment needs its leader soon. Such a group stays in memory while it sleeps.
    fn busy(&self) -> bool {
        let watched =
            self.changes.get().is_some_and(|tx| tx.receiver_count() > 0) || self.version.receiver_count() > 0;
        let pending = match &self.state {
            MachineState::Inventory(inv) => {
                inv.queue_len() > 0 || !inv.confirming().is_empty() || inv.has_refunding()
            }
            MachineState::Catalog(_) => true,
        };
        watched || pending
    }
}
