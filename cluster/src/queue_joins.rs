//! Joins of an event's waiting queue, gathered on the node that takes them: while one batch
//! of an event's joins is being committed, the joins that arrive for it wait together and go
//! next as one [`InventoryCommand::QueueJoinMany`] — one command, one apply and one answer
//! on the way back for many fans, instead of one each (a group commit, as TigerBeetle batches
//! its requests). A fan's answer still comes only once its join is committed, so a join that
//! answered 2xx is as durable as any other write.
//!
//! At most [`BATCHES_IN_FLIGHT_MAX`] batches of an event are in flight from this node; a batch
//! takes at most [`JOINS_PER_BATCH_MAX`] joins. Measured against a command per join in
//! `docs/benchmarks.md` ("Joins gathered into batches"). When the batch's write fails, every join in it gets the
//! same answer (nothing happened, or — `outcome_unknown` — it may have).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tickets::inventory::{InventoryCommand, Outcome};
use tickets::queue::QueueView;
use tickets::UserId;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::machine::GroupMachine;
use crate::store::Store;

/// Most joins in one command (an entry of ~40 KB with user ids of 20 bytes).
pub const JOINS_PER_BATCH_MAX: usize = 2_048;

/// Batches of one event's joins this node commits at once. More than one, so a join that
/// arrives while a batch commits need not wait for it (few fans: each join goes alone, as
/// fast as any write); few, so that many fans make big batches.
pub const BATCHES_IN_FLIGHT_MAX: usize = 2;

type Waiter = (UserId, oneshot::Sender<Result<QueueView>>);

/// The joins waiting on this node, per event.
#[derive(Default)]
pub(crate) struct QueueJoins {
    events: Mutex<HashMap<String, Arc<Mutex<Gather>>>>,
}

/// One event's joins waiting for the next batch, and whether a batch is being committed.
#[derive(Default)]
struct Gather {
    waiting: Vec<Waiter>,
    /// Committers running (each takes the next batch when its last one is answered).
    committers: usize,
}

impl QueueJoins {
    fn of(&self, event_id: &str) -> Arc<Mutex<Gather>> {
        let mut events = self.events.lock().expect("queue joins lock");
        if let Some(gather) = events.get(event_id) {
            return gather.clone();
        }
        events.entry(event_id.to_string()).or_default().clone()
    }

    /// Drop an event's gathering once it is idle (a join arriving meanwhile starts another).
    fn forget(&self, event_id: &str, gather: &Arc<Mutex<Gather>>) {
        let mut events = self.events.lock().expect("queue joins lock");
        if events.get(event_id).is_some_and(|g| Arc::ptr_eq(g, gather)) {
            events.remove(event_id);
        }
    }
}

impl Store {
    /// `user` joins the queue of `event_id`, whose group is `group` here, in the next batch of
    /// this node's joins of that event; answers the place the join got.
    pub(crate) async fn gathered_queue_join(
        &self,
        group: &raft::Group<GroupMachine>,
        event_id: &str,
        user: &str,
    ) -> Result<QueueView> {
        let (tx, rx) = oneshot::channel();
        let gather = self.inner.queue_joins.of(event_id);
        let start = {
            let mut g = gather.lock().expect("gather lock");
            g.waiting.push((user.into(), tx));
            let start = g.committers < BATCHES_IN_FLIGHT_MAX;
            g.committers += usize::from(start);
            start
        };
        if start {
            let (store, group, event_id) = (self.clone(), group.clone(), event_id.to_string());
            tokio::spawn(async move { store.commit_joins(&group, &event_id, gather).await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::OutcomeUnknown {
                reason: "the join's batch stopped before answering".into(),
                hold_id: None,
                booking_id: None,
            })
        })
    }

    /// Commit the event's waiting joins batch after batch until none wait.
    async fn commit_joins(
        &self,
        group: &raft::Group<GroupMachine>,
        event_id: &str,
        gather: Arc<Mutex<Gather>>,
    ) {
        loop {
            let batch: Vec<Waiter> = {
                let mut g = gather.lock().expect("gather lock");
                if g.waiting.is_empty() {
                    g.committers -= 1;
                    let idle = g.committers == 0;
                    drop(g);
                    if idle {
                        self.inner.queue_joins.forget(event_id, &gather);
                    }
                    return;
                }
                let n = g.waiting.len().min(JOINS_PER_BATCH_MAX);
                g.waiting.drain(..n).collect()
            };
            let users = batch.iter().map(|(user, _)| user.clone()).collect();
            let answers = match self.write_booking(group, InventoryCommand::QueueJoinMany { users }).await {
                Ok(Outcome::QueueMany(answers)) if answers.len() == batch.len() => {
                    answers.into_iter().map(|a| a.map_err(Error::from)).collect()
                }
                Ok(other) => {
                    let e = Error::Internal(format!("a batch of joins answered {other:?}"));
                    vec![Err(e); batch.len()]
                }
                Err(e) => vec![Err(e); batch.len()],
            };
            metrics::counter!("boxoffice_queue_join_batches_total").increment(1);
            metrics::counter!("boxoffice_queue_joins_total").increment(batch.len() as u64);
            for ((_, tx), answer) in batch.into_iter().zip(answers) {
                // A fan who went away does not take the others' answers with them.
                let _ = tx.send(answer);
            }
        }
    }
}
