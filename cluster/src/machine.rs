//! The state machine every group hosts: a catalog or one event's inventory, behind the
//! generic `raft::StateMachine` trait. A thin adapter: the rules are in `tickets`.
//!
//! Each command travels with the leader's wall-clock stamp; the `tickets` machines turn it
//! into a clock that never runs backwards. After each apply the machine publishes its
//! applied log index (the "version" of browse answers) on a watch channel, and an
//! inventory publishes the tickets whose status changed on a bounded broadcast channel.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use tickets::catalog::{Catalog, CatalogCommand, CatalogReply};
use tickets::inventory::{Inventory, InventoryCommand, InventoryReply, TicketChange};
use tickets::{Millis, Rejection};

/// Ticket-change messages kept for slow subscribers; a subscriber that lags further
/// re-reads the whole seat map.
pub const CHANGES_CHANNEL_CAPACITY: usize = 1_024;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GroupCommand {
    Catalog { now_ms: Millis, command: CatalogCommand },
    Inventory { now_ms: Millis, command: InventoryCommand },
}

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

/// One applied batch of ticket changes, tagged with the log index that made them.
#[derive(Clone, Debug)]
pub struct ChangeSet {
    pub version: u64,
    pub changes: Vec<TicketChange>,
}

pub struct GroupMachine {
    pub state: MachineState,
    version: watch::Sender<u64>,
    changes: broadcast::Sender<ChangeSet>,
    /// The most recent change sets, oldest first, for resuming a seat stream
    /// (`Last-Event-ID`) without gaps.
    recent: VecDeque<ChangeSet>,
    /// Every change made after this version is in `recent`.
    recent_from: u64,
    /// Catalog changes with the log index that made them (feeds the search index).
    catalog_changes: broadcast::Sender<(u64, tickets::catalog::CatalogChange)>,
}

/// Change sets kept for resuming seat streams; a client further behind gets a snapshot.
pub const RECENT_CHANGES_MAX: usize = 1_024;

impl GroupMachine {
    fn new(state: MachineState) -> Self {
        let (version, _) = watch::channel(0);
        let (changes, _) = broadcast::channel(CHANGES_CHANNEL_CAPACITY);
        let (catalog_changes, _) = broadcast::channel(CHANGES_CHANNEL_CAPACITY);
        GroupMachine { state, version, changes, recent: VecDeque::new(), recent_from: 0, catalog_changes }
    }

    pub fn catalog() -> Self {
        Self::new(MachineState::Catalog(Catalog::default()))
    }

    pub fn inventory() -> Self {
        Self::new(MachineState::Inventory(Box::default()))
    }

    /// The applied log index, updated after every apply and snapshot install.
    pub fn subscribe_version(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn subscribe_catalog_changes(&self) -> broadcast::Receiver<(u64, tickets::catalog::CatalogChange)> {
        self.catalog_changes.subscribe()
    }

    pub fn subscribe_changes(&self) -> broadcast::Receiver<ChangeSet> {
        self.changes.subscribe()
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
}

impl raft::StateMachine for GroupMachine {
    type Command = GroupCommand;
    type Reply = GroupReply;

    fn apply(&mut self, command: GroupCommand, index: u64) -> GroupReply {
        let reply = match (&mut self.state, command) {
            (MachineState::Catalog(c), GroupCommand::Catalog { now_ms, command }) => {
                let reply = c.apply(command, now_ms);
                if let Ok(change) = &reply {
                    // No receivers is fine: the search feeder may not be running.
                    let _ = self.catalog_changes.send((index, change.clone()));
                }
                GroupReply::Catalog(reply)
            }
            (MachineState::Inventory(inv), GroupCommand::Inventory { now_ms, command }) => {
                let (reply, changes) = inv.apply(command, now_ms);
                if !changes.is_empty() {
                    let set = ChangeSet { version: index, changes };
                    if self.recent.len() == RECENT_CHANGES_MAX {
                        if let Some(old) = self.recent.pop_front() {
                            self.recent_from = old.version;
                        }
                    }
                    self.recent.push_back(set.clone());
                    // No receivers is fine: nobody is watching this event.
                    let _ = self.changes.send(set);
                }
                GroupReply::Inventory(reply)
            }
            // A command routed to the wrong kind of group is a bug in the proposer; it is
            // answered the same way on every replica and changes nothing.
            (MachineState::Catalog(_), GroupCommand::Inventory { .. }) => {
                GroupReply::Inventory(Err(Rejection::not_found("event")))
            }
            (MachineState::Inventory(_), GroupCommand::Catalog { .. }) => {
                GroupReply::Catalog(Err(Rejection::invalid("group", "not the catalog group")))
            }
        };
        self.version.send_replace(index);
        reply
    }

    /// The proposing leader stamps its wall-clock time into the command (see `raft`), so
    /// the rules run on the leader's clock, never a follower's.
    fn stamp(command: &mut GroupCommand, now_ms: u64) {
        match command {
            GroupCommand::Catalog { now_ms: t, .. } | GroupCommand::Inventory { now_ms: t, .. } => {
                *t = now_ms
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(&self.state, bincode::config::standard())
            .expect("machine state always encodes")
    }

    fn restore(&mut self, bytes: &[u8], index: u64) -> Result<(), String> {
        let (state, _): (MachineState, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| e.to_string())?;
        self.state = state;
        self.recent.clear();
        self.recent_from = index;
        // Watchers (long polls) wake up and browse answers carry the snapshot's version.
        self.version.send_replace(index);
        Ok(())
    }
}
