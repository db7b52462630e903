//! Paying for a hold: `BeginPayment` pins it (`Confirming`), then the leader charges the
//! provider outside apply and commits `Confirm` or `PaymentFailed`.
//!
//! A `Confirming` hold does not expire: once the charge may have run, the hold must end
//! sold if it was paid, so `Confirm` succeeds even past `expires_at`. `PaymentFailed` puts
//! the hold back to `Active` with its old expiry; if that is already past, the hold is
//! expired on the spot and its tickets freed.

use std::sync::Arc;

use super::outbox::{NoticeData, NoticeKind};
use super::{
    status_name, BookingRecord, BookingStatus, Changes, Found, HoldStatus, Idempotency, Inventory,
    InventoryReply, Outcome, PaymentAttempt, TicketState,
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
        _changes: &mut Changes,
    ) -> InventoryReply {
        if let Some(reply) = self.replay(&user, idempotency.as_ref()) {
            return reply;
        }
        let no = match self.find_hold(&hold_id) {
            None => return Err(Rejection::not_found("hold")),
            Some(Found::Booked(b)) if *b.hold.user != *user => return Err(Rejection::Forbidden),
            Some(Found::Booked(b)) => return Ok(Outcome::Booked(self.booking_view(b))),
            Some(Found::Live(r) | Found::Ended(r)) if *r.user != *user => return Err(Rejection::Forbidden),
            Some(Found::Ended(r)) => {
                return Err(match r.status {
                    HoldStatus::Expired => Rejection::HoldExpired,
                    status => Rejection::HoldNotActive { status: status_name(status).into() },
                })
            }
            Some(Found::Live(r)) if r.status == HoldStatus::Confirming => {
                return Ok(Outcome::Hold(self.view(r)))
            }
            Some(Found::Live(r)) => r.no,
        };
        if self.core.cancelled {
            return Err(Rejection::EventClosed { detail: "event cancelled".into() });
        }
        let hold = self.update_hold(no, |h| {
            let attempt = h.payment.as_ref().map_or(0, |p| p.attempt) + 1;
            h.status = HoldStatus::Confirming;
            h.payment =
                Some(PaymentAttempt { token, started_at: now, idempotency: idempotency.clone(), attempt });
        });
        let reply = Ok(Outcome::Hold(self.view(&hold)));
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
        let no = match self.find_hold(&hold_id) {
            None => return Err(Rejection::not_found("hold")),
            Some(Found::Booked(b)) => return Ok(Outcome::Booked(self.booking_view(b))),
            Some(Found::Live(r)) if r.status == HoldStatus::Confirming => r.no,
            Some(Found::Live(r) | Found::Ended(r)) => {
                return Err(Rejection::HoldNotActive { status: status_name(r.status).into() })
            }
        };
        if self.core.bookings.contains_key(booking_id.as_str()) {
            return Err(Rejection::invalid("booking_id", "booking id already used"));
        }
        let hold = self.core.holds.remove(&no).expect("found live");
        self.derived.unindex_hold(&hold);
        self.offer_ended(no);
        for &i in &hold.tickets {
            debug_assert_eq!(
                self.core.states[i as usize],
                TicketState::Held(no),
                "a confirming hold keeps its tickets"
            );
            self.set_ticket(i, TicketState::Sold, changes);
        }
        let mut hold = Arc::unwrap_or_clone(hold);
        hold.status = HoldStatus::Confirmed;
        let idempotency = hold.payment.as_ref().and_then(|p| p.idempotency.clone());
        let user = hold.user.clone();
        let booking = Arc::new(BookingRecord {
            id: Arc::from(booking_id.into_string()),
            hold,
            payment_ref,
            created_at: now,
            status: BookingStatus::Confirmed,
            refund: None,
            refund_ref: None,
            refunded_at: None,
        });
        self.derived.index_booking(&booking);
        self.core.bookings.insert(booking.id.clone(), booking.clone());
        // A shopper who completed a booking stops counting against the queue's admissions,
        // so the next waiting user can be admitted.
        self.core.queue.finish_admission(&user, now);
        let view = self.booking_view(&booking);
        self.notify(NoticeKind::BookingConfirmed, now, NoticeData::Booking(Box::new(view.clone())));
        let reply = Ok(Outcome::Booked(view));
        self.remember(&user, idempotency.as_ref(), &reply, now);
        reply
    }

    pub(super) fn payment_failed(
        &mut self,
        hold_id: HoldId,
        detail: String,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        let no = match self.find_hold(&hold_id) {
            None => return Err(Rejection::not_found("hold")),
            Some(Found::Booked(_)) => {
                return Err(Rejection::HoldNotActive { status: status_name(HoldStatus::Confirmed).into() })
            }
            Some(Found::Live(r)) if r.status == HoldStatus::Confirming => r.no,
            Some(Found::Live(r) | Found::Ended(r)) => {
                return Err(Rejection::HoldNotActive { status: status_name(r.status).into() })
            }
        };
        let hold = self.update_hold(no, |h| h.status = HoldStatus::Active);
        if hold.expires_at <= now {
            self.end_hold(no, HoldStatus::Expired, now, changes);
        }
        let reply = Err(Rejection::PaymentDeclined { detail });
        let idempotency = hold.payment.as_ref().and_then(|p| p.idempotency.as_ref());
        self.remember(&hold.user, idempotency, &reply, now);
        reply
    }
}
