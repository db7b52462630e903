//! Cancelling a booking and refunding it: `BeginRefund` pins it (`RefundPending`), then the
//! leader asks the provider for the refund outside apply and commits `Refunded` or
//! `RefundFailed`. `CancelAndRefund` cancels the event and begins the refund of every
//! `Confirmed` booking in one apply.
//!
//! Rules:
//! - A buyer may cancel only their own booking (`forbidden` otherwise) and only while
//!   `now < refund_until` (`not_refundable` after); an admin any booking, any time.
//! - A booking is refunded at most once: cancelling a `Refunded` booking is
//!   `not_refundable`; cancelling a `RefundPending` one answers it as it is (idempotent,
//!   whoever asks — the refund runs already).
//! - While `RefundPending` the seats stay sold (the money may already be on its way back,
//!   but nothing is decided); `Refunded` puts them back on sale (`Available`), and they
//!   stop counting against the buyer's per-user limit. `RefundFailed` (a declined refund)
//!   puts the booking back to `Confirmed`; a later cancel starts attempt n + 1, with a new
//!   provider key.
//! - `Refunded` on a refunded booking answers it again (a leader's retry after an unknown
//!   outcome); `Refunded` / `RefundFailed` without a refund pending are refused.

use std::sync::Arc;

use super::outbox::{NoticeData, NoticeKind};
use super::{
    BookingRecord, BookingStatus, Changes, Idempotency, Inventory, InventoryReply, Outcome, RefundAttempt,
    Refunder, TicketState,
};
use crate::{BookingId, Millis, Rejection, UserId};

impl Inventory {
    pub(super) fn begin_refund(
        &mut self,
        booking_id: BookingId,
        by: Refunder,
        idempotency: Option<Idempotency>,
        now: Millis,
    ) -> InventoryReply {
        let asker = match &by {
            Refunder::Buyer(user) | Refunder::Admin(user) => user.clone(),
        };
        if let Some(reply) = self.replay(&asker, idempotency.as_ref()) {
            return reply;
        }
        let Some(booking) = self.core.bookings.get(booking_id.as_str()) else {
            return Err(Rejection::not_found("booking"));
        };
        if let Refunder::Buyer(user) = &by {
            if *booking.hold.user != **user {
                return Err(Rejection::Forbidden);
            }
        }
        match booking.status {
            BookingStatus::Refunded => {
                return Err(Rejection::NotRefundable { detail: "already refunded".into() })
            }
            BookingStatus::RefundPending => return Ok(Outcome::Booked(self.booking_view(booking))),
            BookingStatus::Confirmed => {}
        }
        let refund_until = self.core.setup.as_ref().expect("bookings exist only after setup").refund_until;
        if matches!(by, Refunder::Buyer(_)) && now >= refund_until {
            return Err(Rejection::NotRefundable {
                detail: format!("the refund window closed at {refund_until}"),
            });
        }
        let booking = self.start_refund(&booking_id, by, idempotency.clone(), now);
        let reply = Ok(Outcome::Booked(self.booking_view(&booking)));
        self.remember(&asker, idempotency.as_ref(), &reply, now);
        reply
    }

    /// Pin a `Confirmed` booking `RefundPending` with a new attempt.
    fn start_refund(
        &mut self,
        booking_id: &str,
        by: Refunder,
        idempotency: Option<Idempotency>,
        now: Millis,
    ) -> Arc<BookingRecord> {
        self.update_booking(booking_id, |b| {
            debug_assert_eq!(b.status, BookingStatus::Confirmed, "only a confirmed booking begins a refund");
            let attempt = b.refund.as_ref().map_or(0, |r| r.attempt) + 1;
            b.status = BookingStatus::RefundPending;
            b.refund = Some(RefundAttempt { by, started_at: now, idempotency, attempt, declined: None });
        })
    }

    pub(super) fn refund_all(&mut self, admin: UserId, now: Millis) -> InventoryReply {
        let confirmed: Vec<Arc<str>> = self
            .core
            .bookings
            .values()
            .filter(|b| b.status == BookingStatus::Confirmed)
            .map(|b| b.id.clone())
            .collect();
        for id in &confirmed {
            self.start_refund(id, Refunder::Admin(admin.clone()), None, now);
        }
        Ok(Outcome::Refunding(confirmed.iter().map(|id| BookingId::from(&**id)).collect()))
    }

    pub(super) fn refunded(
        &mut self,
        booking_id: BookingId,
        refund_ref: String,
        now: Millis,
        changes: &mut Changes,
    ) -> InventoryReply {
        let Some(booking) = self.core.bookings.get(booking_id.as_str()) else {
            return Err(Rejection::not_found("booking"));
        };
        match booking.status {
            BookingStatus::Refunded => return Ok(Outcome::Booked(self.booking_view(booking))),
            BookingStatus::Confirmed => {
                return Err(Rejection::NotRefundable { detail: "no refund is pending".into() })
            }
            BookingStatus::RefundPending => {}
        }
        let booking = self.update_booking(&booking_id, |b| {
            b.status = BookingStatus::Refunded;
            b.refund_ref = Some(refund_ref);
            b.refunded_at = Some(now);
        });
        changes.user_freed(&booking.hold.user);
        for &i in &booking.hold.tickets {
            debug_assert_eq!(
                self.core.states[i as usize],
                TicketState::Sold,
                "a booking's tickets are sold until it is refunded"
            );
            self.set_ticket(i, TicketState::Available, changes);
        }
        let view = self.booking_view(&booking);
        self.notify(NoticeKind::BookingRefunded, now, NoticeData::Booking(Box::new(view.clone())));
        let reply = Ok(Outcome::Booked(view));
        if let Some(refund) = &booking.refund {
            let asker = match &refund.by {
                Refunder::Buyer(user) | Refunder::Admin(user) => user,
            };
            self.remember(asker, refund.idempotency.as_ref(), &reply, now);
        }
        reply
    }

    pub(super) fn refund_failed(
        &mut self,
        booking_id: BookingId,
        detail: String,
        now: Millis,
    ) -> InventoryReply {
        let Some(booking) = self.core.bookings.get(booking_id.as_str()) else {
            return Err(Rejection::not_found("booking"));
        };
        match booking.status {
            BookingStatus::Refunded => {
                return Err(Rejection::NotRefundable { detail: "already refunded".into() })
            }
            BookingStatus::Confirmed => {
                return Err(Rejection::NotRefundable { detail: "no refund is pending".into() })
            }
            BookingStatus::RefundPending => {}
        }
        let booking = self.update_booking(&booking_id, |b| {
            b.status = BookingStatus::Confirmed;
            if let Some(refund) = &mut b.refund {
                refund.declined = Some(detail.clone());
            }
        });
        let reply = Err(Rejection::RefundDeclined { detail });
        if let Some(refund) = &booking.refund {
            let asker = match &refund.by {
                Refunder::Buyer(user) | Refunder::Admin(user) => user,
            };
            self.remember(asker, refund.idempotency.as_ref(), &reply, now);
        }
        reply
    }

    /// Change a stored booking, keeping the `refunding` index in step.
    fn update_booking(&mut self, id: &str, change: impl FnOnce(&mut BookingRecord)) -> Arc<BookingRecord> {
        let record = self.core.bookings.get_mut(id).expect("update_booking of a missing booking");
        let before = record.status;
        change(Arc::make_mut(record));
        let record = record.clone();
        if before == BookingStatus::RefundPending {
            self.derived.refunding.remove(&record.id);
        }
        if record.status == BookingStatus::RefundPending {
            self.derived.refunding.insert(record.id.clone());
        }
        record
    }
}
