//! The waiting-queue commands, with the event's rules around [`crate::queue::Queue`].

use super::{Inventory, InventoryReply, Outcome};
use crate::{Millis, Rejection, UserId};

impl Inventory {
    /// Join (cancelled: `event_closed`; queue off: `invalid_request` on `queue`).
    pub(super) fn queue_join(&mut self, user: UserId, now: Millis) -> InventoryReply {
        let setup = self.core.setup.as_ref().expect("set up");
        if self.core.cancelled {
            return Err(Rejection::EventClosed { detail: "event cancelled".into() });
        }
        if !setup.queue.enabled {
            return Err(Rejection::invalid("queue", "this event has no waiting queue"));
        }
        let on_sale_at = setup.on_sale_at;
        Ok(Outcome::Queue(self.core.queue.join(&user, now, on_sale_at)?))
    }

    /// `queue_join` for each user in order: a refusal of one (the queue filled up) is its
    /// answer alone; a refusal of all (cancelled, queue off) is every user's answer.
    pub(super) fn queue_join_many(&mut self, users: Vec<UserId>, now: Millis) -> InventoryReply {
        let answers = users
            .into_iter()
            .map(|user| match self.queue_join(user, now) {
                Ok(Outcome::Queue(view)) => Ok(view),
                Ok(other) => unreachable!("a join answers its place, not {other:?}"),
                Err(rejection) => Err(rejection),
            })
            .collect();
        Ok(Outcome::QueueMany(answers))
    }

    pub(super) fn queue_leave(&mut self, user: UserId, now: Millis) -> InventoryReply {
        self.core.queue.leave(&user, now)?;
        Ok(Outcome::QueueChanged { admitted: Vec::new() })
    }

    /// Open the sale if due and admit the next batch. Without an enabled queue, or once the
    /// event is cancelled, nothing happens (the leader may propose this any time).
    pub(super) fn queue_admit(&mut self, seed: u64, now: Millis) -> InventoryReply {
        let setup = self.core.setup.as_ref().expect("set up");
        if !setup.queue.enabled || self.core.cancelled {
            return Ok(Outcome::QueueChanged { admitted: Vec::new() });
        }
        let settings = setup.queue;
        let on_sale_at = setup.on_sale_at;
        let admission_ms = settings.admission_seconds.saturating_mul(1_000);
        let admitted = self.core.queue.admit(now, seed, on_sale_at, settings.max_admitted, admission_ms);
        Ok(Outcome::QueueChanged { admitted })
    }
}
