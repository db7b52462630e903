//! The booking path: reserve, confirm (with the payment step outside apply), release,
//! extend, and the holder's reads. Every decision is made by the event's group in log
//! order; reads that decide anything are linearizable.

use std::time::Duration;

use tickets::catalog::QueueSettings;
use tickets::inventory::{
    Booking, Hold, HoldStatus, Idempotency, InventoryCommand, Outcome, Selection, WaitlistEntry,
};
use tickets::{BookingId, HoldId, Rejection};

use crate::error::{Error, Result};
use crate::ids;
use crate::machine::{GroupCommand, GroupMachine, GroupReply};
use crate::payment::{ChargeOutcome, ChargeRequest, CHARGE_ATTEMPT_TIMEOUT};
use crate::store::{Store, BOOKING_WRITE_TIMEOUT};

/// How long a confirm waits for the payment's outcome before answering 503 (the payment
/// goes on; a retry of the confirm picks up its result).
pub const CONFIRM_WAIT: Duration = Duration::from_secs(15);
/// Charge attempts per payment run before giving up for now (the driver retries later).
pub const CHARGE_ATTEMPTS_MAX: u32 = 5;

impl Store {
    /// `hold_id` is chosen before proposing (by the node the client asked), so an answer whose
    /// outcome is unknown can name it.
    pub(crate) async fn local_reserve(
        &self,
        user: &str,
        event_id: &str,
        hold_id: &str,
        selection: Selection,
        idempotency: Option<Idempotency>,
    ) -> Result<Hold> {
        let group = self.write_group(event_id).await?;
        let command =
            InventoryCommand::Reserve { hold_id: hold_id.into(), user: user.into(), selection, idempotency };
        match self.write_booking(&group, command).await.map_err(|e| e.with_hold(hold_id))? {
            Outcome::Hold(hold) => Ok(hold),
            other => Err(unexpected(other)),
        }
    }

    /// A booking write with [`BOOKING_WRITE_TIMEOUT`] as its deadline, so a group without
    /// quorum answers quickly — and truthfully: `Unavailable`/`Overloaded` when nothing was
    /// proposed, `OutcomeUnknown` when it was (see `raft::WriteError`).
    pub(crate) async fn write_booking(
        &self,
        group: &raft::Group<GroupMachine>,
        command: InventoryCommand,
    ) -> Result<Outcome> {
        let deadline = tokio::time::Instant::now() + BOOKING_WRITE_TIMEOUT;
        match group.write_by(GroupCommand::Inventory(command), deadline).await? {
            GroupReply::Inventory(r) => Ok(r?),
            GroupReply::Catalog(_) => Err(Error::Internal("inventory answered as the catalog".into())),
        }
    }

    /// Begin the payment, charge, and commit the outcome. A retry of a confirm that is
    /// already paying waits for that payment instead of charging again.
    pub(crate) async fn local_confirm(
        &self,
        user: &str,
        hold_id: &HoldId,
        payment_token: &str,
        idempotency: Option<Idempotency>,
    ) -> Result<Booking> {
        let group = self.hold_booking_group(hold_id).await?;
        // Claim the payment before BeginPayment commits, so the driver never mistakes it
        // for one left behind by a crash.
        let claimed = self.claim_payment(hold_id);
        let begun = self
            .write_booking(
                &group,
                InventoryCommand::BeginPayment {
                    hold_id: hold_id.clone(),
                    user: user.into(),
                    payment_token: payment_token.to_string(),
                    idempotency,
                },
            )
            .await
            .map_err(|e| e.with_hold(hold_id));
        let hold = match begun {
            Ok(Outcome::Booked(booking)) => {
                self.unclaim_payment(hold_id, claimed);
                return Ok(booking);
            }
            Ok(Outcome::Hold(hold)) => hold,
            Ok(other) => {
                self.unclaim_payment(hold_id, claimed);
                return Err(unexpected(other));
            }
            Err(e) => {
                self.unclaim_payment(hold_id, claimed);
                return Err(e);
            }
        };
        if claimed {
            let result = self.run_payment(&group, &hold).await;
            self.unclaim_payment(hold_id, true);
            return result;
        }
        self.unclaim_payment(hold_id, claimed);
        self.await_payment(&group, user, hold_id).await
    }

    /// Wait until a confirming hold is decided, then answer as its confirm would have.
    async fn await_payment(
        &self,
        group: &raft::Group<GroupMachine>,
        user: &str,
        hold_id: &HoldId,
    ) -> Result<Booking> {
        let mut version = group.read_local(|m| m.subscribe_version());
        let deadline = tokio::time::Instant::now() + CONFIRM_WAIT;
        loop {
            let hold = self.read_hold(group, user, hold_id).await?;
            match hold.status {
                HoldStatus::Confirmed => {
                    let booking_id = hold.booking_id.clone().unwrap_or_default();
                    return group
                        .read_local(|m| m.as_inventory().and_then(|i| i.booking(&booking_id)))
                        .ok_or_else(|| Error::Internal("confirmed hold without booking".into()));
                }
                HoldStatus::Confirming => {}
                _ => return Err(Rejection::PaymentDeclined { detail: "payment failed".into() }.into()),
            }
            if tokio::time::timeout_at(deadline, version.changed()).await.is_err() {
                return Err(Error::Unavailable { reason: "payment still running".into(), retry_after_s: 2 });
            }
        }
    }

    /// Charge the provider for a confirming hold (idempotency key = hold id) and commit
    /// `Confirm` or `PaymentFailed`. Unknown outcomes are retried with the same key.
    pub(crate) async fn run_payment(
        &self,
        group: &raft::Group<GroupMachine>,
        hold: &Hold,
    ) -> Result<Booking> {
        let payment =
            hold.payment.as_ref().ok_or_else(|| Error::Internal("confirming hold without payment".into()))?;
        let request = ChargeRequest {
            idempotency_key: payment.charge_key(&hold.id),
            amount: hold.amount,
            currency: hold.currency.clone(),
            token: payment.token.clone(),
            description: format!("boxoffice {} {}", hold.event_id, hold.id),
        };
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            match tokio::time::timeout(CHARGE_ATTEMPT_TIMEOUT, self.inner.payments.charge(&request)).await {
                Ok(Ok(outcome)) => break outcome,
                Ok(Err(e)) => tracing::warn!(hold = %hold.id, attempt, error = %e, "charge outcome unknown"),
                Err(_) => tracing::warn!(hold = %hold.id, attempt, "charge attempt timed out"),
            }
            if attempt >= CHARGE_ATTEMPTS_MAX {
                return Err(Error::Unavailable {
                    reason: "payment provider not answering".into(),
                    retry_after_s: 5,
                });
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        };
        metrics::counter!("boxoffice_payments_total", "outcome" => outcome_label(&outcome)).increment(1);
        let command = match outcome {
            ChargeOutcome::Succeeded { payment_ref } => InventoryCommand::Confirm {
                hold_id: hold.id.clone(),
                booking_id: ids::booking_id(&hold.event_id),
                payment_ref,
            },
            ChargeOutcome::Declined { detail } => {
                InventoryCommand::PaymentFailed { hold_id: hold.id.clone(), detail }
            }
        };
        match self.write_inventory(group, command).await? {
            Outcome::Booked(booking) => Ok(booking),
            other => Err(unexpected(other)),
        }
    }

    fn claim_payment(&self, hold_id: &str) -> bool {
        self.inner.payments_inflight.lock().expect("inflight lock").insert(hold_id.to_string())
    }

    fn unclaim_payment(&self, hold_id: &str, claimed: bool) {
        if claimed {
            self.inner.payments_inflight.lock().expect("inflight lock").remove(hold_id);
        }
    }

    pub(crate) fn payment_claimed(&self, hold_id: &str) -> bool {
        self.inner.payments_inflight.lock().expect("inflight lock").contains(hold_id)
    }

    /// Run a payment left in `Confirming` by a crash or an earlier leader.
    pub(crate) async fn recover_payment(&self, group: &raft::Group<GroupMachine>, hold: Hold) {
        if !self.claim_payment(&hold.id) {
            return;
        }
        // Read again under the claim: the scheduler's list may be older than a run that just
        // ended (and, after a decline, a new attempt with a new card and key began, whose
        // confirm waits for whoever holds the claim). Running the stale attempt would answer
        // the new one with the old one's decline; running the current one is what is owed.
        let current = group.read_local(|m| m.as_inventory().and_then(|i| i.hold(&hold.id)));
        let Some(hold) = current.filter(|h| h.status == HoldStatus::Confirming) else {
            self.unclaim_payment(&hold.id, true);
            return;
        };
        tracing::info!(hold = %hold.id, "finishing a payment left in confirming");
        if let Err(e) = self.run_payment(group, &hold).await {
            if !matches!(e, Error::Rejected(Rejection::PaymentDeclined { .. })) {
                tracing::warn!(hold = %hold.id, error = %e, "payment recovery did not finish; will retry");
            }
        }
        self.unclaim_payment(&hold.id, true);
    }

    pub(crate) async fn local_release(&self, user: &str, hold_id: &HoldId) -> Result<Hold> {
        let group = self.hold_write_group(hold_id).await?;
        let command = InventoryCommand::Release { hold_id: hold_id.clone(), user: user.into() };
        match self.write_booking(&group, command).await.map_err(|e| e.with_hold(hold_id))? {
            Outcome::Hold(hold) => Ok(hold),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) async fn local_extend(&self, user: &str, hold_id: &HoldId) -> Result<Hold> {
        let group = self.hold_write_group(hold_id).await?;
        let command = InventoryCommand::Extend { hold_id: hold_id.clone(), user: user.into() };
        match self.write_booking(&group, command).await.map_err(|e| e.with_hold(hold_id))? {
            Outcome::Hold(hold) => Ok(hold),
            other => Err(unexpected(other)),
        }
    }

    /// The hold as of now, with lazy expiry applied; only its holder sees it.
    pub(crate) async fn local_hold(&self, user: &str, hold_id: &HoldId) -> Result<Hold> {
        let group = self.hold_group(hold_id).await?;
        self.read_hold(&group, user, hold_id).await
    }

    async fn read_hold(
        &self,
        group: &raft::Group<GroupMachine>,
        user: &str,
        hold_id: &HoldId,
    ) -> Result<Hold> {
        let now = crate::store::wall_ms();
        let hold = group
            .read_linearizable(|m| {
                let inv = m.as_inventory()?;
                let mut hold = inv.hold(hold_id)?;
                hold.status = hold.status_at(now.max(inv.now()));
                Some(hold)
            })
            .await?;
        match hold {
            Some(h) if h.user == user => Ok(h),
            _ => Err(Rejection::not_found("hold").into()),
        }
    }

    pub(crate) async fn local_booking(&self, user: &str, booking_id: &BookingId) -> Result<Booking> {
        let event_id = booking_id.event().ok_or_else(|| Rejection::not_found("booking"))?;
        let group = self.event_group(&event_id).await.map_err(|e| not_found_as(e, "booking"))?;
        let booking = group.read_linearizable(|m| m.as_inventory()?.booking(booking_id)).await?;
        match booking {
            Some(b) if b.user == user => Ok(b),
            _ => Err(Rejection::not_found("booking").into()),
        }
    }

    /// The user's bookings over every event hosted here, newest first (from the node's
    /// index: no event group is read).
    pub(crate) fn bookings_here(&self, user: &str) -> Vec<Booking> {
        self.inner.bookings.of_user(user)
    }

    async fn hold_group(&self, hold_id: &HoldId) -> Result<raft::Group<GroupMachine>> {
        let event_id = hold_id.event().ok_or_else(|| Rejection::not_found("hold"))?;
        self.event_group(&event_id).await.map_err(|e| not_found_as(e, "hold"))
    }

    async fn hold_write_group(&self, hold_id: &HoldId) -> Result<raft::Group<GroupMachine>> {
        let event_id = hold_id.event().ok_or_else(|| Rejection::not_found("hold"))?;
        self.write_group(&event_id).await.map_err(|e| not_found_as(e, "hold"))
    }

    async fn hold_booking_group(&self, hold_id: &HoldId) -> Result<raft::Group<GroupMachine>> {
        let event_id = hold_id.event().ok_or_else(|| Rejection::not_found("hold"))?;
        self.booking_group(&event_id).await.map_err(|e| not_found_as(e, "hold"))
    }
}

/// A hold id naming an unknown event is an unknown hold.
pub(crate) fn not_found_as(e: Error, what: &str) -> Error {
    match e {
        Error::Rejected(Rejection::NotFound { .. }) => Rejection::not_found(what).into(),
        other => other,
    }
}

pub(crate) fn unexpected(outcome: Outcome) -> Error {
    Error::Internal(format!("unexpected outcome {outcome:?}"))
}

fn outcome_label(outcome: &ChargeOutcome) -> &'static str {
    match outcome {
        ChargeOutcome::Succeeded { .. } => "succeeded",
        ChargeOutcome::Declined { .. } => "declined",
    }
}

/// A user's place in a queue.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct QueuePlace {
    pub view: tickets::queue::QueueView,
    pub settings: QueueSettings,
    /// How long the user can expect to wait (`None` once admitted): from the applied state
    /// and this node's clock (`tickets::queue::Queue::estimate_wait`).
    pub estimate: Option<tickets::queue::WaitEstimate>,
}

/// `view` with the settings and, while waiting, the estimate at `now` (from the applied
/// state: `tickets::queue::Queue::estimate_wait`). `inv` is set up.
fn place_of(inv: &tickets::inventory::Inventory, view: tickets::queue::QueueView, now: u64) -> QueuePlace {
    let settings = inv.setup().expect("set up").queue;
    let estimate = (view.status == tickets::queue::QueueStatus::Waiting).then(|| {
        let admission_ms = settings.admission_seconds.saturating_mul(1_000);
        inv.queue().estimate_wait(view.ahead, now, settings.max_admitted, admission_ms)
    });
    QueuePlace { view, settings, estimate }
}

/// The waiting queue: join, leave, and the user's place.
impl Store {
    pub(crate) async fn local_queue_join(&self, user: &str, event_id: &str) -> Result<QueuePlace> {
        let group = self.write_group(event_id).await?;
        let view = self.gathered_queue_join(&group, event_id, user).await?;
        // The estimate reads this replica (it may trail the leader by the join's entry: the
        // rates it needs move slowly).
        let now = crate::store::wall_ms();
        group
            .read_local(|m| {
                let inv = m.as_inventory()?;
                Some(place_of(inv, view.clone(), now.max(inv.now())))
            })
            .ok_or_else(|| Error::Internal("a joined queue without its event".into()))
    }

    pub(crate) async fn local_queue_leave(&self, user: &str, event_id: &str) -> Result<()> {
        let group = self.write_group(event_id).await?;
        self.write_booking(&group, InventoryCommand::QueueLeave { user: user.into() }).await?;
        Ok(())
    }

    /// The user's place, with what the wait estimate needs. Linearizable, or from the
    /// local replica (for streams, which re-read on every change).
    pub(crate) async fn local_queue_view(
        &self,
        user: &str,
        event_id: &str,
        linearizable: bool,
    ) -> Result<QueuePlace> {
        let group = self.event_group(event_id).await?;
        let now = crate::store::wall_ms();
        let read = |m: &GroupMachine| {
            let inv = m.as_inventory()?;
            inv.setup()?;
            let now = now.max(inv.now());
            let view = inv.queue_view(user, now)?;
            Some(place_of(inv, view, now))
        };
        let found = if linearizable { group.read_linearizable(read).await? } else { group.read_local(read) };
        found.ok_or_else(|| Rejection::not_found("queue entry").into())
    }
}

/// The waiting list of a sold-out event: join, leave, and the user's entry (with its offer).
impl Store {
    /// Join with `offer_hold_id` (chosen by the front node, so a join delivered twice is
    /// answered, not repeated); the entry may come back offered at once.
    pub(crate) async fn local_waitlist_join(
        &self,
        user: &str,
        event_id: &str,
        section: &str,
        quantity: u32,
        offer_hold_id: &str,
    ) -> Result<WaitlistEntry> {
        let group = self.write_group(event_id).await?;
        let cmd = InventoryCommand::WaitlistJoin {
            user: user.into(),
            section: section.to_string(),
            quantity,
            offer_hold_id: offer_hold_id.into(),
        };
        match self.write_booking(&group, cmd).await? {
            Outcome::Waitlist(entry) => Ok(*entry),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) async fn local_waitlist_leave(&self, user: &str, event_id: &str) -> Result<()> {
        let group = self.write_group(event_id).await?;
        self.write_booking(&group, InventoryCommand::WaitlistLeave { user: user.into() }).await?;
        Ok(())
    }

    /// The user's entry, linearizable or from the local replica (for streams, which re-read
    /// on every change). A lapsed offer is no entry.
    pub(crate) async fn local_waitlist_view(
        &self,
        user: &str,
        event_id: &str,
        linearizable: bool,
    ) -> Result<WaitlistEntry> {
        let group = self.event_group(event_id).await?;
        let now = crate::store::wall_ms();
        let read = |m: &GroupMachine| {
            let inv = m.as_inventory()?;
            inv.setup()?;
            inv.waitlist_entry(user, now.max(inv.now()))
        };
        let found = if linearizable { group.read_linearizable(read).await? } else { group.read_local(read) };
        found.ok_or_else(|| Rejection::not_found("waitlist entry").into())
    }
}
