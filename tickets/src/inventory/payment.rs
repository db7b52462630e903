//! Paying for a hold: `BeginPayment` pins it (`Confirming`), then the leader charges the
//! provider outside apply and commits `Confirm` or `PaymentFailed`.
//!
//! A `Confirming` hold does not expire: once the charge may have run, the hold must end
//! sold if it was paid, so `Confirm` succeeds even past `expires_at`. `PaymentFailed` puts
//! the hold back to `Active` with its old expiry; if that is already past, the hold is
//! expired on the spot and its tickets freed.

use super::{
    status_name, Booking, Changes, HoldStatus, Idempotency, Inventory, InventoryReply, Outcome,
    PaymentAttempt, TicketState,
};
use crate::{BookingId, HoldId, Millis, Rejection, UserId};

impl Inventory {
    pub(super) fn begin_payment(
        &mut self,
        hold_id: HoldId,
        user: UserId,
        token: String,
        idempotency: Option<Idempotency>,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        if let Some(reply) = self.replay(&user, idempotency.as_ref()) {
            return reply;
        }
        let Some(hold) = self.holds.get(&hold_id) else {
            return Err(Rejection::not_found("hold"));
        };
        if hold.user != user {
            return Err(Rejection::Forbidden);
        }
        match hold.status_at(now) {
            HoldStatus::Confirmed => {
                let booking_id = hold.booking_id.as_ref().expect("a confirmed hold has a booking");
                return Ok(Outcome::Booked(self.bookings[booking_id].clone()));
            }
            HoldStatus::Confirming => return Ok(Outcome::Hold(hold.clone())),
            HoldStatus::Released => return Err(Rejection::HoldNotActive { status: "released".into() }),
            HoldStatus::Expired => {
                if hold.status == HoldStatus::Active {
                    self.expire_hold(&hold_id, changes);
                }
                return Err(Rejection::HoldExpired);
            }
            HoldStatus::Active => {}
        }
        if self.cancelled {
            return Err(Rejection::EventClosed { detail: "event cancelled".into() });
        }
        let hold = self.update_hold(&hold_id, |h| {
            let attempt = h.payment.as_ref().map_or(0, |p| p.attempt) + 1;
            let payment =
                PaymentAttempt { token, started_at: now, idempotency: idempotency.clone(), attempt };
            h.status = HoldStatus::Confirming;
            h.payment = Some(payment);
        });
        let reply = Ok(Outcome::Hold(hold));
        self.remember(&user, idempotency.as_ref(), &reply, now);
        reply
    }

    pub(super) fn confirm(
        &mut self,
        hold_id: HoldId,
        booking_id: BookingId,
        payment_ref: String,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        let Some(hold) = self.holds.get(&hold_id) else {
            return Err(Rejection::not_found("hold"));
        };
        match hold.status {
            HoldStatus::Confirming => {}
            HoldStatus::Confirmed => {
                let booking_id = hold.booking_id.as_ref().expect("a confirmed hold has a booking");
                return Ok(Outcome::Booked(self.bookings[booking_id].clone()));
            }
            _ => return Err(Rejection::HoldNotActive { status: status_name(hold.status_at(now)).into() }),
        }
        if self.bookings.contains_key(&booking_id) {
            return Err(Rejection::invalid("booking_id", "booking id already used"));
        }
        let booking = Booking {
            id: booking_id.clone(),
            hold_id: hold_id.clone(),
            event_id: hold.event_id.clone(),
            user: hold.user.clone(),
            tickets: hold.tickets.clone(),
            amount: hold.amount,
            currency: hold.currency.clone(),
            payment_ref,
            created_at: now,
        };
        for ticket in &booking.tickets {
            let i = self.index[ticket];
            debug_assert_eq!(
                self.states[i],
                TicketState::Held(hold_id.clone()),
                "a confirming hold keeps its tickets"
            );
            self.set_ticket(i, TicketState::Sold(booking_id.clone()), changes);
        }
        let hold = self.update_hold(&hold_id, |h| {
            h.status = HoldStatus::Confirmed;
            h.booking_id = Some(booking_id.clone());
        });
        self.derived.user_bookings.entry(booking.user.clone()).or_default().insert(booking_id.clone());
        self.bookings.insert(booking_id, booking.clone());
        // A shopper who completed a booking stops counting against the queue's admissions,
        // so the next waiting user can be admitted.
        self.queue.finish_admission(&booking.user);
        let reply = Ok(Outcome::Booked(booking));
        let idempotency = hold.payment.as_ref().and_then(|p| p.idempotency.as_ref());
        self.remember(&hold.user, idempotency, &reply, now);
        reply
    }

    pub(super) fn payment_failed(
        &mut self,
        hold_id: HoldId,
        detail: String,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        let Some(hold) = self.holds.get(&hold_id) else {
            return Err(Rejection::not_found("hold"));
        };
        if hold.status != HoldStatus::Confirming {
            return Err(Rejection::HoldNotActive { status: status_name(hold.status_at(now)).into() });
        }
        let hold = self.update_hold(&hold_id, |h| h.status = HoldStatus::Active);
        if hold.expires_at <= now {
            self.expire_hold(&hold_id, changes);
        }
        let reply = Err(Rejection::PaymentDeclined { detail });
        let idempotency = hold.payment.as_ref().and_then(|p| p.idempotency.as_ref());
        self.remember(&hold.user, idempotency, &reply, now);
        reply
    }
}
