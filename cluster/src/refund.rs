//! Cancel and refund: the refund runner, mirroring the payment step of [`crate::booking`].
//!
//! A cancel proposes `BeginRefund` (the booking is pinned `RefundPending` in the log), then
//! asks the provider for the refund *outside* apply — keyed by
//! `tickets::inventory::RefundAttempt::refund_key`, so every retry, on any node, after any
//! crash, is the same refund — retrying an unknown outcome with the same key, and commits
//! `Refunded` or `RefundFailed`. The request waits for that at most [`REFUND_WAIT`] and
//! otherwise answers the booking as `refund_pending`: the run goes on in its own task.
//!
//! A refund left `RefundPending` by a crash, a leader change or a run that gave up is
//! finished by the node's scheduler on the event's leader ([`crate::schedule`]): the
//! inventory reports "now" as its deadline while a refund is pending, as it does for a
//! payment left in `confirming`. This process's runs are claimed in `refunds_inflight`, so
//! the scheduler never runs a refund twice at once here; across nodes and restarts the
//! provider's idempotency key is what keeps it to one refund.
//!
//! Event cancellation is one `CancelAndRefund` command (see [`Store::cancel_event`]): it
//! pins every confirmed booking at once, and the scheduler runs their refunds,
//! [`REFUNDS_STARTED_PER_PASS_MAX`] at a time.

use std::time::Duration;

use tickets::inventory::{Booking, BookingStatus, Idempotency, InventoryCommand, Outcome, Refunder};
use tickets::{BookingId, Rejection};

use crate::booking::{not_found_as, unexpected};
use crate::error::{Error, Result};

use crate::machine::GroupMachine;
use crate::payment::{RefundOutcome, RefundRequest, CHARGE_ATTEMPT_TIMEOUT};
use crate::store::Store;

/// How long a cancel waits for its refund before answering `refund_pending` (the refund
/// goes on; the booking shows `refunded` once it is done).
pub const REFUND_WAIT: Duration = Duration::from_secs(3);
/// Refund attempts per run before giving up for now (the scheduler runs it again).
pub const REFUND_ATTEMPTS_MAX: u32 = 5;
/// Most refunds of one event the scheduler starts per pass (an event cancel pins them all).
pub const REFUNDS_STARTED_PER_PASS_MAX: usize = 16;

impl Store {
    /// Cancel `booking_id` for `by` on the event's leader: begin the refund, run it, and
    /// answer the booking — `refunded`, or `refund_pending` when the refund takes longer
    /// than [`REFUND_WAIT`] (or runs elsewhere). A declined refund is
    /// [`Rejection::RefundDeclined`].
    pub(crate) async fn local_cancel_booking(
        &self,
        by: Refunder,
        booking_id: &BookingId,
        idempotency: Option<Idempotency>,
    ) -> Result<Booking> {
        let event_id = booking_id.event().ok_or_else(|| Rejection::not_found("booking"))?;
        let group = self.booking_group(&event_id).await.map_err(|e| not_found_as(e, "booking"))?;
        // Claim the run before BeginRefund commits, so the scheduler never mistakes it for
        // one left behind.
        let claimed = self.claim_refund(booking_id);
        let command = InventoryCommand::BeginRefund { booking_id: booking_id.clone(), by, idempotency };
        let booking = match self.write_booking(&group, command).await {
            Ok(Outcome::Booked(b)) => b,
            Ok(other) => {
                self.unclaim_refund(booking_id, claimed);
                return Err(unexpected(other));
            }
            Err(e) => {
                self.unclaim_refund(booking_id, claimed);
                return Err(e);
            }
        };
        if booking.status != BookingStatus::RefundPending {
            // A replayed answer (same idempotency key) of a refund already decided.
            self.unclaim_refund(booking_id, claimed);
            return Ok(booking);
        }
        if !claimed {
            return self.await_refund(&group, booking).await;
        }
        let run = {
            let (store, group, booking) = (self.clone(), group.clone(), booking.clone());
            tokio::spawn(async move {
                let result = store.run_refund(&group, &booking).await;
                store.unclaim_refund(&booking.id, true);
                result
            })
        };
        match tokio::time::timeout(REFUND_WAIT, run).await {
            Ok(Ok(Ok(done))) => Ok(done),
            Ok(Ok(Err(e @ Error::Rejected(_)))) => Err(e),
            // The provider did not answer in time, or the outcome did not commit: the
            // booking stays pending and the scheduler finishes it.
            Ok(Ok(Err(e))) => {
                tracing::warn!(booking = %booking.id, error = %e, "refund not finished; the scheduler retries");
                Ok(booking)
            }
            Ok(Err(join)) => Err(Error::Internal(format!("refund task failed: {join}"))),
            Err(_) => Ok(booking),
        }
    }

    /// Wait (at most [`REFUND_WAIT`]) for a refund another task runs; the booking then
    /// (refunded or still pending), or the decline when it came back confirmed.
    async fn await_refund(&self, group: &raft::Group<GroupMachine>, pending: Booking) -> Result<Booking> {
        let mut version = group.read_local(|m| m.subscribe_version());
        let deadline = tokio::time::Instant::now() + REFUND_WAIT;
        loop {
            let now = group.read_local(|m| m.as_inventory().and_then(|i| i.booking(&pending.id)));
            match now {
                Some(b) if b.status == BookingStatus::Confirmed => {
                    let detail =
                        b.refund.and_then(|r| r.declined).unwrap_or_else(|| "refund declined".into());
                    return Err(Rejection::RefundDeclined { detail }.into());
                }
                Some(b) if b.status == BookingStatus::Refunded => return Ok(b),
                _ => {}
            }
            if tokio::time::timeout_at(deadline, version.changed()).await.is_err() {
                return Ok(pending);
            }
        }
    }

    /// Ask the provider to refund a pending booking (same key on every retry) and commit
    /// `Refunded` or `RefundFailed`. Unknown outcomes are retried with the same key, at most
    /// [`REFUND_ATTEMPTS_MAX`] times per run.
    pub(crate) async fn run_refund(
        &self,
        group: &raft::Group<GroupMachine>,
        booking: &Booking,
    ) -> Result<Booking> {
        let attempt = booking
            .refund
            .as_ref()
            .ok_or_else(|| Error::Internal("pending refund without attempt".into()))?;
        let request = RefundRequest {
            idempotency_key: attempt.refund_key(&booking.id),
            payment_ref: booking.payment_ref.clone(),
            amount: booking.amount,
            currency: booking.currency.clone(),
        };
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            match tokio::time::timeout(CHARGE_ATTEMPT_TIMEOUT, self.inner.payments.refund(&request)).await {
                Ok(Ok(outcome)) => break outcome,
                Ok(Err(e)) => {
                    tracing::warn!(booking = %booking.id, tries, error = %e, "refund outcome unknown")
                }
                Err(_) => tracing::warn!(booking = %booking.id, tries, "refund attempt timed out"),
            }
            if tries >= REFUND_ATTEMPTS_MAX {
                return Err(Error::Unavailable {
                    reason: "payment provider not answering".into(),
                    retry_after_s: 5,
                });
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await;
        };
        let (label, command) = match outcome {
            RefundOutcome::Refunded { refund_ref } => {
                ("refunded", InventoryCommand::Refunded { booking_id: booking.id.clone(), refund_ref })
            }
            RefundOutcome::Declined { detail } => {
                ("declined", InventoryCommand::RefundFailed { booking_id: booking.id.clone(), detail })
            }
        };
        metrics::counter!("boxoffice_refunds_total", "outcome" => label).increment(1);
        match self.write_inventory(group, command).await? {
            Outcome::Booked(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// Finish a refund left `RefundPending` (by a crash, an earlier leader, or a run that
    /// gave up), unless this process runs it already.
    pub(crate) async fn recover_refund(&self, group: &raft::Group<GroupMachine>, booking: Booking) {
        if !self.claim_refund(&booking.id) {
            return;
        }
        // Read again under the claim: the scheduler's list may be older than a run that just
        // ended (and, after a decline, a new attempt with a new key began). Running a stale
        // attempt would answer the new one with the old one's decline.
        let current = group.read_local(|m| m.as_inventory().and_then(|i| i.booking(&booking.id)));
        let Some(booking) = current.filter(|b| b.status == BookingStatus::RefundPending) else {
            self.unclaim_refund(&booking.id, true);
            return;
        };
        tracing::info!(booking = %booking.id, "finishing a refund left pending");
        if let Err(e) = self.run_refund(group, &booking).await {
            if !matches!(e, Error::Rejected(Rejection::RefundDeclined { .. })) {
                tracing::warn!(booking = %booking.id, error = %e, "refund recovery did not finish; will retry");
            }
        }
        self.unclaim_refund(&booking.id, true);
    }

    fn claim_refund(&self, booking_id: &str) -> bool {
        self.inner.refunds_inflight.lock().expect("inflight lock").insert(booking_id.to_string())
    }

    fn unclaim_refund(&self, booking_id: &str, claimed: bool) {
        if claimed {
            self.inner.refunds_inflight.lock().expect("inflight lock").remove(booking_id);
        }
    }

    pub(crate) fn refund_claimed(&self, booking_id: &str) -> bool {
        self.inner.refunds_inflight.lock().expect("inflight lock").contains(booking_id)
    }
}
