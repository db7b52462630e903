//! The per-event driver: a task that, while this node leads the event's group, proposes
//! `Expire` at the earliest hold expiry (so watchers see seats come back at once; the
//! rules never depend on it), `QueueAdmit` when the queue's next deadline passes, and
//! finishes payments left in `Confirming` by a crash or an earlier leader.

use std::time::Duration;

use tickets::inventory::InventoryCommand;

use crate::machine::GroupMachine;
use crate::store::{wall_ms, Store};

/// Longest sleep between checks, so leadership changes and clock jumps are noticed.
pub const DRIVER_TICK_MAX: Duration = Duration::from_millis(500);
/// Pause after a proposal failed (no quorum, shutting down) before the next try.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_millis(200);

pub(crate) async fn run(store: Store, group: raft::Group<GroupMachine>) {
    let mut shutdown = store.inner.shutdown.subscribe();
    let mut version = group.read_local(|m| m.subscribe_version());
    let me = store.node_id();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut wait = DRIVER_TICK_MAX;
        if group.leader() == Some(me) {
            let now = wall_ms();
            let (expiry, queue_deadline, queue_on, confirming) =
                group.read_local(|m| match m.as_inventory() {
                    Some(inv) => (
                        inv.earliest_expiry(),
                        inv.queue_next_deadline(),
                        inv.setup().is_some_and(|s| s.queue.enabled),
                        inv.confirming(),
                    ),
                    None => (None, None, false, Vec::new()),
                });
            for hold in confirming {
                if !store.payment_claimed(&hold.id) {
                    let (store, group) = (store.clone(), group.clone());
                    tokio::spawn(async move { store.recover_payment(&group, hold).await });
                }
            }
            if let Some(at) = expiry {
                if at <= now {
                    match store.write_inventory(&group, InventoryCommand::Expire).await {
                        Ok(_) => continue,
                        Err(e) => tracing::debug!(group = group.id(), error = %e, "expire not proposed"),
                    }
                    wait = RETRY_AFTER_ERROR;
                } else {
                    wait = wait.min(Duration::from_millis(at - now));
                }
            }
            if queue_on {
                if let Some(at) = queue_deadline {
                    if at <= now {
                        let seed = rand_seed();
                        match store.write_inventory(&group, InventoryCommand::QueueAdmit { seed }).await {
                            Ok(_) => continue,
                            Err(e) => {
                                tracing::debug!(group = group.id(), error = %e, "queue admit not proposed")
                            }
                        }
                        wait = RETRY_AFTER_ERROR;
                    } else {
                        wait = wait.min(Duration::from_millis(at - now));
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = version.changed() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// A seed for the queue shuffle, chosen by the leader and carried in the command.
fn rand_seed() -> u64 {
    let id = uuid::Uuid::new_v4();
    let bytes = id.as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}
